//! Checks that come due with time rather than with a lock's answer: delay
//! warnings, codes not on the lock when their window opens, codes still on it
//! after it closed, and status changes at window boundaries.

use super::issued::Issued;
use super::Engine;
use crate::drivers::SlotCode;
use crate::model::{AccessCode, Event, Issue, Timing};
use crate::store::{StoreError, Tx};
use chrono::{DateTime, Utc};
use std::borrow::Cow;
use std::sync::Arc;

/// Since when a code has been waiting to go on its lock.
fn pending_since(c: &AccessCode, now: DateTime<Utc>, timing: &Timing) -> DateTime<Utc> {
    let mut since = match c.on_lock_from(timing) {
        Some(from) => c.created_at.max(from),
        None => c.created_at,
    };
    // A hub-driven weekly code is due from its current window's lead on.
    if let Some(w) = c.weekly.filter(|_| c.is_hub_driven_weekly()) {
        if let Some(cur) = w.current(now, timing.set_before_start, &timing.timezone) {
            since = since.max(cur.starts_at - timing.set_before_start);
        }
    }
    since
}

/// Since when a code has been due to leave its lock.
fn removal_due_since(c: &AccessCode, now: DateTime<Utc>, timing: &Timing) -> DateTime<Utc> {
    if c.deleted {
        return c
            .warnings
            .iter()
            .find(|w| w.code == "being_deleted")
            .map(|w| w.created_at)
            .unwrap_or(now);
    }
    let weekly_end = c
        .weekly
        .filter(|_| c.is_hub_driven_weekly())
        .and_then(|w| w.last_end(now, &timing.timezone));
    match (c.window.map(|w| w.ends_at.min(now)), weekly_end) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b).unwrap_or(now),
    }
}

fn earliest(a: &mut Option<DateTime<Utc>>, t: DateTime<Utc>) {
    *a = Some(a.map_or(t, |x| x.min(t)));
}

/// Run the time-driven checks for one lock's codes; returns when to look again.
/// `codes` are the lock's codes as loaded for this pass; purged ones are taken
/// out and changed ones updated in place. With `tx` `None` nothing is written:
/// the check only tells (second value) whether it would write, so the common
/// case, nothing due, never takes the writer. With `known` false (the lock's
/// slots not read since a start or a doubt) nothing is decided from what the
/// lock may hold: a deleted code is forgotten, and `failed_to_issue` raised,
/// only when lockhub never sent a PIN to its slot (`store::issued`, whose
/// entries go only when a read or an answer shows them gone); no `failed_to_expire`.
pub(super) fn check(
    engine: &Engine,
    tx: Option<&Tx<'_>>,
    codes: &mut Vec<Arc<AccessCode>>,
    observed: &[SlotCode],
    issued: &Issued,
    known: bool,
    now: DateTime<Utc>,
) -> Result<(Option<DateTime<Utc>>, bool), StoreError> {
    let timing = engine.settings.timing();
    let delay = engine.settings.delay_warning_after;
    let mut next = None;
    let mut purged = Vec::new();
    let mut wrote = false;
    let by_slot: std::collections::HashMap<u32, &SlotCode> =
        observed.iter().rev().map(|s| (s.slot, s)).collect();
    for shared in codes.iter_mut() {
        // Copied only if this pass changes it (most passes change nothing).
        let mut c = Cow::Borrowed(&**shared);
        let obs = by_slot.get(&c.slot).copied();
        let wanted = c.wanted_on_lock(now, &timing);
        let on_lock = obs.is_some_and(|o| o.code == c.code);
        // A deleted code is forgotten only once its slot is known not to hold
        // a PIN of lockhub's (else `Issued::settle` clears the slot first).
        if c.deleted && !on_lock && !issued.any(c.slot) {
            if let Some(tx) = tx {
                engine.purge(tx, &c)?;
            }
            purged.push(c.access_code_id.clone());
            continue;
        }
        let mut changed = false;
        let settled = match (wanted, obs) {
            (true, Some(o)) => c.held_by(o),
            (false, _) => !on_lock,
            (true, None) => false,
        };
        if wanted && !settled && !c.retry.gave_up {
            let due = pending_since(&c, now, &timing) + delay;
            if now >= due {
                if !c.has_warning("delay_in_setting_on_device")
                    && c.to_mut().raise_warning(Issue::new(
                        "delay_in_setting_on_device",
                        "the code is taking longer than expected to reach the lock",
                        now,
                    ))
                {
                    emit(
                        tx,
                        &Event::code("access_code.delay_in_setting_on_device", &c, now),
                    )?;
                    changed = true;
                }
            } else {
                earliest(&mut next, due);
            }
            if let Some(w) = c.window {
                // Unread lock: only a PIN lockhub never sent is known not to be there.
                let absent = obs.is_none_or(|o| o.code != c.code)
                    && (known || !issued.holds(c.slot, &c.code));
                // A hub-driven weekly code's window is the one open now.
                let opened = c
                    .weekly
                    .filter(|_| c.is_hub_driven_weekly())
                    .and_then(|s| s.current(now, timing.set_before_start, &timing.timezone))
                    .map_or(w.starts_at, |cur| cur.starts_at.max(w.starts_at));
                if absent && now >= opened {
                    if !c.has_error("failed_to_issue")
                        && c.to_mut().raise_error(Issue::new(
                            "failed_to_issue",
                            "the code was not on the lock when its window opened",
                            now,
                        ))
                    {
                        emit(tx, &Event::code("access_code.failed_to_issue", &c, now))?;
                        changed = true;
                    }
                } else if w.starts_at > now {
                    earliest(&mut next, w.starts_at);
                }
            }
        }
        if !wanted && on_lock {
            let due = removal_due_since(&c, now, &timing) + delay;
            if now >= due {
                if !c.has_warning("delay_in_removing_from_device")
                    && c.to_mut().raise_warning(Issue::new(
                        "delay_in_removing_from_device",
                        "the code is taking longer than expected to leave the lock",
                        now,
                    ))
                {
                    emit(
                        tx,
                        &Event::code("access_code.delay_in_removing_from_device", &c, now),
                    )?;
                    changed = true;
                }
                let expired = known && c.window.is_some_and(|w| now >= w.ends_at) && !c.deleted;
                if expired
                    && !c.has_error("failed_to_expire")
                    && c.to_mut().raise_error(Issue::new(
                        "failed_to_expire",
                        "the code is still on the lock after its ends_at",
                        now,
                    ))
                {
                    emit(tx, &Event::code("access_code.failed_to_expire", &c, now))?;
                    changed = true;
                }
            } else {
                earliest(&mut next, due);
            }
        }
        if let Some(w) = c.window {
            for t in [w.starts_at, w.ends_at] {
                if t > now {
                    earliest(&mut next, t);
                }
            }
        }
        let status = c.status(obs, now, &timing);
        if changed || c.reported_status != Some(status) {
            if let Some(tx) = tx {
                engine.commit_code(tx, c.to_mut(), now)?;
            }
            wrote = true;
        }
        if let Cow::Owned(changed) = c {
            *shared = Arc::new(changed);
        }
    }
    wrote |= !purged.is_empty();
    codes.retain(|c| !purged.contains(&c.access_code_id));
    Ok((next, wrote))
}

fn emit(tx: Option<&Tx<'_>>, e: &Event) -> Result<(), StoreError> {
    match tx {
        Some(tx) => tx.event(e),
        None => Ok(()),
    }
}
