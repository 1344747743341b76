//! Slots over time, on the engine's side. A code takes a slot of its lock
//! when it is due on the lock (the lowest slot that neither another code nor a
//! stranger's code holds), and gives it back once it is off the lock and no
//! longer due, so a lock with three slots serves stay after stay. The PIN that
//! leaves is remembered as a keyed hash (`store::lifetime`), never chosen for
//! that lock again within `pin_reuse`. Commands made sure (`commands::capacity`)
//! that at no moment more codes are due than the lock has slots; a code still
//! finds none only when a removal is late or a stranger's code took the slot.

use super::Engine;
use crate::drivers::SlotCode;
use crate::model::access_code::NO_SLOT;
use crate::model::{AccessCode, Event, Issue, Timing};
use crate::store::{StoreError, Tx};
use chrono::{DateTime, Utc};
use std::borrow::Borrow;
use std::collections::BTreeSet;
use std::sync::Arc;

/// What to change about a lock's slots now (indexes into its codes).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SlotPlan {
    /// Codes off the lock and not due: their slots go back.
    pub releases: Vec<usize>,
    /// Codes due on the lock, and the slot each gets.
    pub assigns: Vec<(usize, u32)>,
    /// Codes due with no slot free.
    pub blocked: Vec<usize>,
    /// Some code is still to be removed (its slot frees soon).
    pub removal_pending: bool,
}

/// What each slot holds, looked up by slot (the reconciler's copy of a
/// lock's slots is not kept in slot order).
fn by_slot(observed: &[SlotCode]) -> std::collections::HashMap<u32, &SlotCode> {
    observed.iter().map(|o| (o.slot, o)).collect()
}

fn on_lock(c: &AccessCode, observed: &std::collections::HashMap<u32, &SlotCode>) -> bool {
    c.slot != NO_SLOT && observed.get(&c.slot).is_some_and(|o| o.code == c.code)
}

/// The slot changes due at `now`. Pure. With `known` (a read that stopped
/// part way: only these slots are known) a slot outside it is neither given
/// back (it may still hold the code) nor given out (it may hold another),
/// and a code that finds no known free slot waits for the rest of the read.
pub fn plan(
    codes: &[impl Borrow<AccessCode>],
    observed: &[SlotCode],
    capacity: u32,
    known: Option<&BTreeSet<u32>>,
    now: DateTime<Utc>,
    timing: &Timing,
) -> SlotPlan {
    let codes: Vec<&AccessCode> = codes.iter().map(Borrow::borrow).collect();
    let mut p = SlotPlan::default();
    let held = by_slot(observed);
    let knows = |s: &u32| known.is_none_or(|k| k.contains(s));
    let mut released = vec![false; codes.len()];
    for (i, c) in codes.iter().enumerate() {
        if c.slot == NO_SLOT || c.needs_slot(now, timing) || !knows(&c.slot) {
            continue;
        }
        if on_lock(c, &held) {
            p.removal_pending = true;
        } else {
            p.releases.push(i);
            released[i] = true;
        }
    }
    let mut taken: BTreeSet<u32> = codes
        .iter()
        .enumerate()
        .filter(|(i, c)| c.slot != NO_SLOT && !released[*i])
        .map(|(_, c)| c.slot)
        .collect();
    taken.extend(observed.iter().map(|o| o.slot));
    let mut due: Vec<usize> = codes
        .iter()
        .enumerate()
        .filter(|(_, c)| c.slot == NO_SLOT && c.needs_slot(now, timing))
        .map(|(i, _)| i)
        .collect();
    due.sort_by_key(|&i| (codes[i].on_lock_from(timing), codes[i].created_at));
    for i in due {
        match (1..=capacity).find(|s| !taken.contains(s) && knows(s)) {
            Some(s) => {
                taken.insert(s);
                p.assigns.push((i, s));
            }
            // The rest of the read may find one free.
            None if known.is_some() => {}
            None => p.blocked.push(i),
        }
    }
    p
}

/// The slot a new code takes in the transaction that creates it, when it is
/// due now: the one the slot step would give it on the lock's next pass (the
/// same [`plan`]), so the fan-out of a `create_multiple` pays no slot-step
/// commit per lock. `None` leaves it to the slot step: another code waits for
/// a slot or has one to give back first, or no slot is free. The caller
/// asks only for a lock whose slots have been read (`slots_known`).
pub fn at_creation(
    codes: &[Arc<AccessCode>],
    new: &AccessCode,
    observed: &[SlotCode],
    capacity: u32,
    now: DateTime<Utc>,
    timing: &Timing,
) -> Option<u32> {
    let mut all: Vec<&AccessCode> = codes.iter().map(|c| &**c).collect();
    all.push(new);
    let p = plan(&all, observed, capacity, None, now, timing);
    match p.assigns.as_slice() {
        [(i, slot)] if *i == codes.len() && p.releases.is_empty() && p.blocked.is_empty() => {
            Some(*slot)
        }
        _ => None,
    }
}

/// Give back a code's slot: it is off the lock and not due. A code that ended
/// or was deleted is then finished (the retention clock starts).
pub(super) fn release(
    tx: &Tx<'_>,
    c: &mut AccessCode,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    if c.ever_set {
        tx.record_pin_held(&c.device_id, &c.code, now)?;
    }
    c.slot = NO_SLOT;
    if c.deleted || c.window.is_some_and(|w| now >= w.ends_at) {
        c.finished_at = Some(now);
    }
    Ok(())
}

const NO_SPACE: &str = "no_space_for_access_code_on_device";

/// Run the slot step for one lock. With `tx` `None` nothing is written: it
/// only tells (second value) whether it would write. The first value is when
/// to look again (soon, while a code waits for a slot a removal is freeing).
/// `known`: as for [`plan`].
pub(super) fn check(
    engine: &Engine,
    tx: Option<&Tx<'_>>,
    capacity: u32,
    known: Option<&BTreeSet<u32>>,
    codes: &mut [Arc<AccessCode>],
    observed: &[SlotCode],
    now: DateTime<Utc>,
) -> Result<(Option<DateTime<Utc>>, bool), StoreError> {
    let timing = engine.settings.timing();
    let p = plan(codes, observed, capacity, known, now, &timing);
    let stuck = !p.removal_pending;
    let mut due = !p.releases.is_empty() || !p.assigns.is_empty();
    if stuck {
        due |= p.blocked.iter().any(|&i| !codes[i].has_error(NO_SPACE));
    }
    let next =
        (!p.blocked.is_empty() && p.removal_pending).then(|| now + chrono::Duration::seconds(1));
    let Some(tx) = tx else {
        return Ok((next, due));
    };
    for &i in &p.releases {
        let c = Arc::make_mut(&mut codes[i]);
        if c.deleted {
            engine.purge(tx, c)?;
            c.slot = NO_SLOT;
            c.finished_at = Some(now);
        } else {
            release(tx, c, now)?;
            engine.commit_code(tx, c, now)?;
        }
    }
    for &(i, slot) in &p.assigns {
        let c = Arc::make_mut(&mut codes[i]);
        c.slot = slot;
        c.clear_error(NO_SPACE);
        tracing::debug!(slot, access_code_id = %c.access_code_id, "slot taken for a code now due");
        engine.commit_code(tx, c, now)?;
    }
    if stuck {
        for &i in &p.blocked {
            let c = Arc::make_mut(&mut codes[i]);
            if c.raise_error(Issue::new(
                NO_SPACE,
                "every slot of the lock is taken (codes set at the lock itself, or removals still pending)",
                now,
            )) {
                tracing::warn!(access_code_id = %c.access_code_id, "no free slot for a code now due");
                tx.event(
                    &Event::code("access_code.failed_to_set_on_device", c, now)
                        .with("error_code", NO_SPACE),
                )?;
                engine.commit_code(tx, c, now)?;
            }
        }
    }
    Ok((next, due))
}

impl Engine {
    /// Retention: codes finished more than `retention` ago go, with the PIN
    /// history older than `pin_reuse` and the audit rows older than
    /// `audit_retention` (run hourly by the ticker).
    pub(super) fn retention_sweep(&self) {
        let now = self.clock.now();
        let s = &self.settings;
        match self.store.write(|tx| {
            Ok::<_, StoreError>((
                tx.purge_finished_codes(now - s.retention)?,
                tx.prune_pin_history(now - s.pin_reuse)?,
                tx.prune_audit(now - s.audit_retention)?,
            ))
        }) {
            Ok((0, 0, 0)) => {}
            Ok((codes, pins, audit_rows)) => {
                tracing::debug!(
                    codes,
                    pin_hashes = pins,
                    audit_rows,
                    "purged past their retention"
                )
            }
            Err(e) => tracing::warn!(error = %e, "could not purge old codes"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Pin, TimeWindow};
    use chrono::TimeZone;

    fn code(id: &str, slot: u32, pin: &str, w: Option<(i64, i64)>) -> AccessCode {
        let window = w.map(|(a, b)| TimeWindow {
            starts_at: at(a),
            ends_at: at(b),
        });
        let mut c = super::super::plan::tests::code(slot, pin, window);
        c.access_code_id = id.into();
        c.ever_set = true;
        c
    }

    fn at(h: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(h * 3600, 0).unwrap()
    }

    fn held(slot: u32, pin: &str) -> SlotCode {
        SlotCode {
            recurring: None,
            slot,
            code: Pin::new(pin),
            name: None,
            window: None,
        }
    }

    #[test]
    fn an_ended_code_off_the_lock_gives_its_slot_to_the_next_stay() {
        let timing = Timing::new(chrono::Duration::minutes(5));
        let codes = vec![
            code("a", 1, "5974", Some((1, 10))),
            code("b", NO_SLOT, "3816", Some((12, 20))),
            code("c", NO_SLOT, "2749", Some((30, 40))),
        ];
        // At 12h: a is over and off the lock; b is due; c is not yet.
        let p = plan(&codes, &[], 1, None, at(12), &timing);
        assert_eq!(p.releases, vec![0]);
        assert_eq!(p.assigns, vec![(1, 1)]);
        assert!(p.blocked.is_empty());
        // Still on the lock: a removal is pending and b waits for it.
        let p = plan(&codes, &[held(1, "5974")], 1, None, at(12), &timing);
        assert!(p.releases.is_empty() && p.removal_pending);
        assert_eq!(p.blocked, vec![1]);
    }

    #[test]
    fn a_part_read_lock_gives_out_and_back_only_known_slots() {
        let timing = Timing::new(chrono::Duration::minutes(5));
        let codes = vec![
            code("a", 5, "5974", Some((1, 10))),
            code("b", NO_SLOT, "3816", None),
        ];
        // Slots 1 and 3 known (1 held by a stranger); 2 and 5 not read yet.
        let known: BTreeSet<u32> = [1, 3].into();
        let p = plan(&codes, &[held(1, "1111")], 5, Some(&known), at(12), &timing);
        assert!(p.releases.is_empty(), "slot 5 may still hold a's code");
        assert_eq!(p.assigns, vec![(1, 3)], "the known free slot, not 2");
        // No known free slot: b waits for the rest of the read (no error).
        let known: BTreeSet<u32> = [1].into();
        let p = plan(&codes, &[held(1, "1111")], 5, Some(&known), at(12), &timing);
        assert!(p.assigns.is_empty() && p.blocked.is_empty());
    }

    #[test]
    fn a_strangers_code_is_never_a_free_slot() {
        let timing = Timing::new(chrono::Duration::minutes(5));
        let codes = vec![code("b", NO_SLOT, "3816", None)];
        let p = plan(&codes, &[held(1, "1111")], 2, None, at(0), &timing);
        assert_eq!(p.assigns, vec![(0, 2)]);
        let p = plan(
            &codes,
            &[held(1, "1111"), held(2, "2222")],
            2,
            None,
            at(0),
            &timing,
        );
        assert_eq!(p.blocked, vec![0]);
        assert!(!p.removal_pending);
    }
}
