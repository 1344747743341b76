//! Reading and writing a lock's slots.
//!
//! Radio discipline: one batch per call (one wake-up of a sleeping lock,
//! several codes per frame where the lock takes Extended User Code Set), no
//! retries here (a transient error fails the rest of the batch without
//! transmitting, and the engine's backoff decides when to try again), and the
//! User Code checksum to skip re-reading slots that did not change.

use super::cc::{self, id, schedule_entry_lock as sel, user_code};
use super::node::{checksum_of, Filter, Inner, NodeFacts, SlotSum, Walk};
use super::quirks;
use super::serialapi::Listening;
use crate::drivers::{DriverError, PartialRead, SlotCode, SlotOp, SlotRead};
use crate::model::Pin;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// The most command bytes put in one frame (classic Z-Wave's smallest
/// payload limit, leaving room for the Supervision header).
const MAX_FRAME_COMMAND: usize = 42;

fn failed(e: cc::CcError) -> DriverError {
    DriverError::Failed(e.to_string())
}

/// Locks the node for one operation and returns its facts; waits for a
/// sleeping lock to wake up.
pub(super) async fn prepare(
    inner: &Arc<Inner>,
    node: u8,
) -> Result<(tokio::sync::OwnedMutexGuard<()>, NodeFacts), DriverError> {
    let (lock, woke) = inner
        .with_node(node, |n| (n.op_lock.clone(), n.woke.clone()))
        .ok_or(DriverError::UnknownDevice)?;
    let guard = lock.lock_owned().await;
    let (facts, online, listening, awake) = inner
        .with_node(node, |n| (n.facts.clone(), n.online, n.listening, n.awake))
        .ok_or(DriverError::UnknownDevice)?;
    let Some(facts) = facts else {
        // Not interviewed (yet): it has not answered since lockhub started.
        // Try again now; the engine's retry will find it ready.
        drop(guard);
        inner.reinterview(node);
        return Err(if online {
            DriverError::Busy
        } else {
            DriverError::Offline
        });
    };
    if listening == Listening::Sleeping && !awake {
        let notified = woke.notified();
        let awake_now = inner.with_node(node, |n| n.awake).unwrap_or(false);
        if !awake_now
            && tokio::time::timeout(inner.config.wake_up_wait, notified)
                .await
                .is_err()
        {
            return Err(DriverError::Timeout);
        }
    }
    Ok((guard, facts))
}

/// A sleeping lock may go back to sleep once its batch is done.
pub(super) async fn release(inner: &Arc<Inner>, node: u8) {
    let sleeping = inner
        .with_node(node, |n| n.listening == Listening::Sleeping && n.awake)
        .unwrap_or(false);
    if sleeping {
        let _ = inner.send(node, cc::wake_up::no_more_information()).await;
        inner.with_node(node, |n| n.awake = false);
    }
}

#[tracing::instrument(level = "debug", skip(inner), err(level = "debug"))]
pub(super) async fn read_slots(inner: &Arc<Inner>, node: u8) -> Result<SlotRead, DriverError> {
    let (_guard, facts) = prepare(inner, node).await?;
    let result = read_locked(inner, node, &facts).await;
    release(inner, node).await;
    let (slots, partial) = result?;
    Ok(SlotRead {
        slots: slots
            .into_iter()
            .map(|(slot, code)| SlotCode {
                recurring: None,
                slot,
                code,
                name: None,
                window: None,
            })
            .collect(),
        partial,
    })
}

/// The lock's slots: the cache where the lock's checksum says nothing
/// changed, else a walk (User Code or User Credential), resumed where the
/// last one stopped. A walk that stops again after reading more is a
/// partial read of the slots read so far.
async fn read_locked(
    inner: &Arc<Inner>,
    node: u8,
    facts: &NodeFacts,
) -> Result<(BTreeMap<u32, Pin>, Option<PartialRead>), DriverError> {
    let sum = SlotSum::of(Some(facts));
    if let Some(slots) = unchanged(inner, node, facts, sum).await? {
        return Ok((slots, None));
    }
    // The cache is not what the lock holds now: while the walk goes on,
    // what it has read is what lockhub knows (`apply`'s duplicate check).
    inner.with_node(node, |n| {
        n.slots = None;
        n.slots_checksum = None;
    });
    let mut walk = Walk::resume(inner, node);
    let from = walk.next;
    let r = if facts.credentials.is_some() {
        super::credentials::walk(inner, node, facts, &mut walk).await
    } else {
        walk_user_codes(inner, node, facts, &mut walk).await
    };
    if let Err(e) = r {
        return stopped(inner, node, walk, from, e).map(|(s, p)| (s, Some(p)));
    }
    let Walk { found, owners, .. } = walk;
    let hidden = inner.with_node(node, |n| n.masked).unwrap_or(false)
        || found.values().any(quirks::is_placeholder);
    // Codes the lock hides cannot be summed here: keep the lock's own sum.
    let lock_sum = if facts.checksum() {
        Some(if hidden {
            lock_checksum(inner, node, sum).await?
        } else {
            sum.compute(&found)
        })
    } else {
        None
    };
    Ok((
        inner
            .with_node(node, |n| {
                n.written.retain(|slot, _| found.contains_key(slot));
                n.slots = Some(found.clone());
                n.owners = owners;
                n.slots_checksum = lock_sum;
                // Hidden slots that held lockhub's codes before a restart.
                quirks::recall(n, sum);
                n.slots.clone().unwrap_or_default()
            })
            .unwrap_or(found),
        None,
    ))
}

/// The cached slots, when the lock's checksum says they did not change.
async fn unchanged(
    inner: &Arc<Inner>,
    node: u8,
    facts: &NodeFacts,
    sum: SlotSum,
) -> Result<Option<BTreeMap<u32, Pin>>, DriverError> {
    let cached = inner
        .with_node(node, |n| n.slots.clone().zip(n.slots_checksum))
        .flatten();
    match cached {
        Some((slots, known)) if facts.checksum() => {
            Ok((lock_checksum(inner, node, sum).await? == known).then_some(slots))
        }
        _ => Ok(None),
    }
}

/// A walk that met an error: kept for the next read to resume. What it
/// read this time and before is a partial read, unless it got no further
/// (then the error). A hidden slot that lockhub remembers from before a
/// restart is not known yet: only the whole walk's checksum can confirm it.
fn stopped(
    inner: &Arc<Inner>,
    node: u8,
    walk: Walk,
    from: u32,
    e: DriverError,
) -> Result<(BTreeMap<u32, Pin>, PartialRead), DriverError> {
    let at = walk.next;
    let read = inner
        .with_node(node, |n| {
            let unconfirmed = |slot: &u32| {
                n.remembered.contains_key(slot)
                    && walk.found.get(slot).is_some_and(quirks::is_placeholder)
            };
            let known: BTreeSet<u32> = (1..at).filter(|s| !unconfirmed(s)).collect();
            let slots: BTreeMap<u32, Pin> = walk
                .found
                .iter()
                .filter(|(s, _)| known.contains(s))
                .map(|(s, p)| (*s, p.clone()))
                .collect();
            n.walk = Some(walk);
            (known, slots)
        })
        .ok_or(DriverError::UnknownDevice)?;
    tracing::debug!(node, resume_at = at, error = %e, "slot walk stopped; the next read resumes");
    if at <= from {
        return Err(e);
    }
    let (known, slots) = read;
    Ok((slots, PartialRead { known, stopped: e }))
}

/// The checksum the lock reports (User Code's, or its PIN credentials').
async fn lock_checksum(inner: &Arc<Inner>, node: u8, sum: SlotSum) -> Result<u16, DriverError> {
    if sum == SlotSum::PinCredential {
        return super::credentials::lock_checksum(inner, node).await;
    }
    let r = inner
        .get(
            node,
            user_code::checksum_get(),
            (id::USER_CODE, user_code::CHECKSUM_REPORT),
            Filter::Any,
        )
        .await?;
    user_code::parse_checksum(&r).map_err(failed)
}

/// What a User Code report says a slot holds, masked slots resolved (and
/// the lock marked as masking the first time one is seen).
pub(super) fn slot_content(inner: &Arc<Inner>, node: u8, r: user_code::Report) -> Option<Pin> {
    let hides = quirks::hides_digits(&r);
    inner
        .with_node(node, |n| {
            if hides
                && !n.masked
                && n.facts.as_ref().and_then(|f| f.quirks.masked_pins) != Some(false)
            {
                tracing::info!(
                    node,
                    "the lock masks codes on read-back: verified by checksum or status from now on"
                );
                n.masked = true;
            }
            quirks::resolve(
                quirks::occupied(r.status),
                r.code.clone(),
                n.masked,
                n.written.get(&r.user),
            )
        })
        .flatten()
}

/// Reads slots from `walk.next` on, into `walk`; on an error `walk` holds
/// what was read and where to go on.
async fn walk_user_codes(
    inner: &Arc<Inner>,
    node: u8,
    facts: &NodeFacts,
    walk: &mut Walk,
) -> Result<(), DriverError> {
    if facts.version(id::USER_CODE) >= 2
        && facts.uc_caps.as_ref().is_some_and(|c| c.multiple_report)
    {
        while walk.next != 0 && walk.next <= facts.users as u32 {
            let next = walk.next;
            let get = vec![
                id::USER_CODE,
                user_code::EXTENDED_GET,
                (next >> 8) as u8,
                next as u8,
                0x01,
            ];
            let r = inner
                .get(
                    node,
                    get,
                    (id::USER_CODE, user_code::EXTENDED_REPORT),
                    Filter::Any,
                )
                .await?;
            let rep = user_code::parse_extended_report(&r).map_err(failed)?;
            let last = rep.entries.iter().map(|e| e.user).max().unwrap_or(next);
            for e in rep.entries {
                let user = e.user;
                match slot_content(inner, node, e) {
                    Some(code) => walk.found.insert(user, code),
                    None => walk.found.remove(&user),
                };
            }
            // Guard against a lock that never advances.
            walk.next = if rep.next_user > last {
                rep.next_user
            } else {
                0
            };
        }
    } else {
        while walk.next >= 1 && walk.next <= facts.users.min(255) as u32 {
            let user = walk.next;
            let r = inner
                .get(
                    node,
                    user_code::get(user).map_err(failed)?,
                    (id::USER_CODE, user_code::REPORT),
                    Filter::Byte2(user as u8),
                )
                .await?;
            let report = user_code::parse_report(&r).map_err(failed)?;
            match slot_content(inner, node, report) {
                Some(code) => walk.found.insert(user, code),
                None => walk.found.remove(&user),
            };
            walk.next += 1;
        }
    }
    Ok(())
}

/// One unit of radio work: a single op, or several plain ops in one
/// Extended User Code Set frame.
enum Unit {
    Single(usize),
    Multi(Vec<usize>),
}

/// Checks an op against the lock's facts (and the codes we know it holds)
/// before any radio traffic.
fn validate(
    op: &SlotOp,
    facts: &NodeFacts,
    known: Option<&BTreeMap<u32, Pin>>,
) -> Result<(), DriverError> {
    let slot = op.slot();
    if slot == 0 || slot > facts.users as u32 {
        return Err(DriverError::Failed(format!(
            "slot {slot} is outside the lock's 1..={}",
            facts.users
        )));
    }
    if let SlotOp::Set(c) = op {
        user_code::validate_code(&c.code, facts.keys(), facts.code_lengths())
            .map_err(|e| DriverError::CodeRejected(e.to_string()))?;
        if c.recurring
            .is_some_and(|w| w.day_count() > facts.native_weekly_days() as u32)
        {
            return Err(DriverError::Failed(
                "the lock cannot hold this weekly schedule itself".into(),
            ));
        }
        if c.window.is_some() && !facts.capabilities().supports_native_scheduling {
            return Err(DriverError::Failed(
                "the lock cannot hold a time window itself".into(),
            ));
        }
        if let Some(slots) = known {
            if slots.iter().any(|(s, p)| *s != slot && p == &c.code) {
                return Err(DriverError::DuplicateCode);
            }
        }
    }
    Ok(())
}

#[tracing::instrument(level = "debug", skip(inner, ops), fields(ops = ops.len()))]
pub(super) async fn apply(
    inner: &Arc<Inner>,
    node: u8,
    ops: &[SlotOp],
) -> Vec<Result<(), DriverError>> {
    let (_guard, facts) = match prepare(inner, node).await {
        Ok(x) => x,
        Err(e) => return ops.iter().map(|_| Err(e.clone())).collect(),
    };
    let mut results: Vec<Option<Result<(), DriverError>>> = vec![None; ops.len()];
    // The slots lockhub knows: all of them, or those a stopped walk read.
    let known = inner
        .with_node(node, |n| {
            n.slots
                .clone()
                .or_else(|| n.walk.as_ref().map(|w| w.found.clone()))
        })
        .flatten();
    let mut plan = Vec::new();
    let mut batch: Vec<usize> = Vec::new();
    let mut batch_bytes = 3;
    // What the lock will hold as the batch goes on, so a batch that puts one
    // code in two slots is caught too.
    let mut view = known.unwrap_or_default();
    for (i, op) in ops.iter().enumerate() {
        if let Err(e) = validate(op, &facts, Some(&view)) {
            results[i] = Some(Err(e));
            continue;
        }
        match op {
            SlotOp::Set(c) => view.insert(c.slot, c.code.clone()),
            SlotOp::Clear { slot } => view.remove(slot),
        };
        let windowed = matches!(op, SlotOp::Set(c) if c.window.is_some() || c.recurring.is_some());
        if facts.multi_set() && !windowed {
            let size = 4 + match op {
                SlotOp::Set(c) => c.code.len(),
                SlotOp::Clear { .. } => 0,
            };
            if batch_bytes + size > MAX_FRAME_COMMAND && !batch.is_empty() {
                plan.push(Unit::Multi(std::mem::take(&mut batch)));
                batch_bytes = 3;
            }
            batch.push(i);
            batch_bytes += size;
        } else {
            if !batch.is_empty() {
                plan.push(Unit::Multi(std::mem::take(&mut batch)));
                batch_bytes = 3;
            }
            plan.push(Unit::Single(i));
        }
    }
    if !batch.is_empty() {
        plan.push(Unit::Multi(batch));
    }
    let supervise = facts.supervise(inner.config.use_supervision);
    let mut stop: Option<DriverError> = None;
    for unit in plan {
        let idx: Vec<usize> = match &unit {
            Unit::Single(i) => vec![*i],
            Unit::Multi(v) => v.clone(),
        };
        if let Some(e) = &stop {
            // The lock is not answering: do not transmit the rest.
            for i in idx {
                results[i] = Some(Err(e.clone()));
            }
            continue;
        }
        let r = match unit {
            Unit::Single(i) if facts.credentials.is_some() => {
                super::credentials::apply_one(inner, node, &facts, &ops[i]).await
            }
            Unit::Single(i) => apply_one(inner, node, &facts, &ops[i], supervise).await,
            Unit::Multi(v) => {
                apply_multi(
                    inner,
                    node,
                    &v.iter().map(|&i| &ops[i]).collect::<Vec<_>>(),
                    supervise,
                )
                .await
            }
        };
        if let Err(e) = &r {
            if e.is_transient() {
                stop = Some(e.clone());
            }
        } else {
            for &i in &idx {
                inner.remember(node, &ops[i]);
            }
        }
        for i in idx {
            results[i] = Some(r.clone());
        }
    }
    release(inner, node).await;
    let results: Vec<Result<(), DriverError>> = results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(DriverError::Failed("not attempted".into()))))
        .collect();
    for (op, r) in ops.iter().zip(&results) {
        // Slot and outcome only: never the code.
        match r {
            Ok(()) => tracing::debug!(slot = op.slot(), "slot written"),
            Err(e) => tracing::info!(slot = op.slot(), error = %e, "slot not written"),
        }
    }
    results
}

async fn apply_one(
    inner: &Arc<Inner>,
    node: u8,
    facts: &NodeFacts,
    op: &SlotOp,
    supervise: bool,
) -> Result<(), DriverError> {
    let slot = op.slot();
    let user = u8::try_from(slot)
        .map_err(|_| DriverError::Failed(format!("slot {slot} needs a 16-bit user id")))?;
    let scheduling = facts.capabilities().supports_native_scheduling;
    let had_window = inner
        .with_node(node, |n| n.scheduled.contains(&slot))
        .unwrap_or(false);
    match op {
        SlotOp::Set(c) => {
            // Old week-day slots go first; a weekly schedule is written whole.
            super::weekly::erase(inner, node, user, facts, supervise).await?;
            if (c.recurring.is_some() || c.window.is_some())
                && !inner.with_node(node, |n| n.clock_set).unwrap_or(false)
            {
                // The lock's clock before its first window (the interview's
                // attempt may not have reached it).
                inner.set_lock_clock(node, facts).await?;
            }
            if let Some(w) = &c.recurring {
                super::weekly::set(inner, node, user, w, facts, supervise).await?;
            } else if let Some(w) = &c.window {
                // Window first: the code must never be valid outside it.
                let set = sel::year_day_set(user, 1, w, &inner.config.timezone)
                    .map_err(|e| DriverError::CodeRejected(e.to_string()))?;
                inner.send_set(node, set, supervise).await?;
                inner
                    .send_set(node, sel::enable_set(user, true), supervise)
                    .await?;
                inner.with_node(node, |n| n.scheduled.insert(slot));
            } else if scheduling && had_window {
                // A code without a window must not inherit the old one.
                inner
                    .send_set(node, sel::enable_set(user, false), supervise)
                    .await?;
                inner.with_node(node, |n| n.scheduled.remove(&slot));
            }
            let confirmed = inner
                .send_set(
                    node,
                    user_code::set(slot, &c.code).map_err(failed)?,
                    supervise,
                )
                .await?;
            if !confirmed {
                verify(inner, node, slot, Some(&c.code)).await?;
            }
        }
        SlotOp::Clear { .. } => {
            let confirmed = inner
                .send_set(node, user_code::clear(slot).map_err(failed)?, supervise)
                .await?;
            if !confirmed {
                verify(inner, node, slot, None).await?;
            }
            super::weekly::erase(inner, node, user, facts, supervise).await?;
            if scheduling && had_window {
                // The empty slot keeps no schedule a later code could inherit.
                inner
                    .send_set(node, sel::enable_set(user, false), supervise)
                    .await?;
                inner.with_node(node, |n| n.scheduled.remove(&slot));
            }
        }
    }
    Ok(())
}

async fn apply_multi(
    inner: &Arc<Inner>,
    node: u8,
    ops: &[&SlotOp],
    supervise: bool,
) -> Result<(), DriverError> {
    let entries: Vec<user_code::ExtendedEntry> = ops
        .iter()
        .map(|op| user_code::ExtendedEntry {
            user: op.slot(),
            code: match op {
                SlotOp::Set(c) => Some(c.code.clone()),
                SlotOp::Clear { .. } => None,
            },
        })
        .collect();
    let confirmed = inner
        .send_set(
            node,
            user_code::extended_set(&entries).map_err(failed)?,
            supervise,
        )
        .await?;
    if !confirmed {
        for e in &entries {
            verify(inner, node, e.user, e.code.as_ref()).await?;
        }
    }
    // Slots we gave a window before hold windowless codes (or none) now.
    let windowed: Vec<u32> = inner
        .with_node(node, |n| {
            entries
                .iter()
                .filter(|e| n.scheduled.contains(&e.user))
                .map(|e| e.user)
                .collect()
        })
        .unwrap_or_default();
    for slot in windowed {
        let user = u8::try_from(slot)
            .map_err(|_| DriverError::Failed(format!("slot {slot} needs a 16-bit user id")))?;
        inner
            .send_set(node, sel::enable_set(user, false), supervise)
            .await?;
        inner.with_node(node, |n| n.scheduled.remove(&slot));
    }
    Ok(())
}

/// Reads a slot back after an unsupervised Set: the lock's only way to say
/// no. A lock that masks codes is judged by the slot's status (occupied or
/// empty as asked), never by its digits; where it has a User Code checksum
/// and every other slot is known, a sum that differs means another slot
/// changed too: the next read walks the slots again.
async fn verify(
    inner: &Arc<Inner>,
    node: u8,
    slot: u32,
    want: Option<&Pin>,
) -> Result<(), DriverError> {
    let r = inner
        .get(
            node,
            user_code::get(slot).map_err(failed)?,
            (id::USER_CODE, user_code::REPORT),
            Filter::Byte2(slot as u8),
        )
        .await?;
    let report = user_code::parse_report(&r).map_err(failed)?;
    let hides = quirks::hides_digits(&report);
    let (masked, facts, known) = inner
        .with_node(node, |n| {
            let config_says = n.facts.as_ref().and_then(|f| f.quirks.masked_pins);
            if hides && !n.masked && config_says != Some(false) {
                tracing::info!(
                    node,
                    "the lock masks codes on read-back: verified by checksum or status from now on"
                );
                n.masked = true;
            }
            (n.masked, n.facts.clone(), n.slots.clone())
        })
        .ok_or(DriverError::UnknownDevice)?;
    let rejected = || {
        Err(DriverError::CodeRejected(format!(
            "slot {slot} does not hold the code after setting it"
        )))
    };
    if !masked {
        return if report.code.as_ref() == want {
            Ok(())
        } else {
            rejected()
        };
    }
    if quirks::occupied(report.status) != want.is_some() {
        return rejected();
    }
    let checksum = facts.as_ref().is_some_and(NodeFacts::checksum);
    if let (true, Some(mut slots)) = (checksum, known) {
        match want {
            Some(code) => slots.insert(slot, code.clone()),
            None => slots.remove(&slot),
        };
        if !slots.values().any(quirks::is_placeholder)
            && lock_checksum(inner, node, SlotSum::UserCode).await? != checksum_of(&slots)
        {
            tracing::info!(
                node,
                slot,
                "the lock's checksum differs after the set: its slots are read again"
            );
            inner.with_node(node, |n| {
                n.slots = None;
                n.slots_checksum = None;
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drivers::SlotCode;

    fn facts() -> NodeFacts {
        let mut f = NodeFacts {
            classes: vec![id::USER_CODE, id::VERSION],
            users: 10,
            ..Default::default()
        };
        f.versions.insert(id::USER_CODE, 2);
        f.uc_caps = Some(user_code::Capabilities {
            keys: "123456789".into(),
            ..Default::default()
        });
        f
    }

    fn set(slot: u32, code: &str) -> SlotOp {
        SlotOp::Set(SlotCode {
            recurring: None,
            slot,
            code: Pin::new(code),
            name: None,
            window: None,
        })
    }

    #[test]
    fn validation_catches_bad_ops_before_the_radio() {
        let f = facts();
        assert!(validate(&set(1, "1234"), &f, None).is_ok());
        assert!(matches!(
            validate(&set(11, "1234"), &f, None),
            Err(DriverError::Failed(_))
        ));
        assert!(matches!(
            validate(&SlotOp::Clear { slot: 0 }, &f, None),
            Err(DriverError::Failed(_))
        ));
        assert!(matches!(
            validate(&set(1, "1204"), &f, None),
            Err(DriverError::CodeRejected(_))
        ));
        assert!(matches!(
            validate(&set(1, "12"), &f, None),
            Err(DriverError::CodeRejected(_))
        ));
        let mut known = BTreeMap::new();
        known.insert(2, Pin::new("1234"));
        assert_eq!(
            validate(&set(1, "1234"), &f, Some(&known)),
            Err(DriverError::DuplicateCode)
        );
        assert!(
            validate(&set(2, "1234"), &f, Some(&known)).is_ok(),
            "same slot is no duplicate"
        );
        let windowed = SlotOp::Set(SlotCode {
            recurring: None,
            slot: 1,
            code: Pin::new("1234"),
            name: None,
            window: Some(crate::model::TimeWindow {
                starts_at: chrono::Utc::now(),
                ends_at: chrono::Utc::now() + chrono::Duration::hours(1),
            }),
        });
        assert!(matches!(
            validate(&windowed, &f, None),
            Err(DriverError::Failed(_))
        ));
    }
}
