//! Reading and writing a lock's slots.
//!
//! Radio discipline: one batch per call (one wake-up of a sleeping lock,
//! several codes per frame where the lock takes Extended User Code Set), no
//! retries here (a transient error fails the rest of the batch without
//! transmitting, and the engine's backoff decides when to try again), and the
//! User Code checksum to skip re-reading slots that did not change.

use super::cc::{self, id, schedule_entry_lock as sel, user_code};
use super::node::{checksum_of, Filter, Inner, NodeFacts};
use super::serialapi::Listening;
use crate::drivers::{DriverError, SlotCode, SlotOp};
use crate::model::Pin;
use std::collections::BTreeMap;
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
pub(super) async fn read_slots(inner: &Arc<Inner>, node: u8) -> Result<Vec<SlotCode>, DriverError> {
    let (_guard, facts) = prepare(inner, node).await?;
    let result = read_locked(inner, node, &facts).await;
    release(inner, node).await;
    result.map(|slots| {
        slots
            .into_iter()
            .map(|(slot, code)| SlotCode {
                slot,
                code,
                name: None,
                window: None,
            })
            .collect()
    })
}

async fn read_locked(
    inner: &Arc<Inner>,
    node: u8,
    facts: &NodeFacts,
) -> Result<BTreeMap<u32, Pin>, DriverError> {
    let cached = inner
        .with_node(node, |n| n.slots.clone().zip(n.slots_checksum))
        .flatten();
    if facts.checksum() {
        if let Some((slots, sum)) = cached {
            let r = inner
                .request(
                    node,
                    user_code::checksum_get(),
                    (id::USER_CODE, user_code::CHECKSUM_REPORT),
                    Filter::Any,
                )
                .await?;
            if user_code::parse_checksum(&r).map_err(failed)? == sum {
                return Ok(slots);
            }
        }
    }
    let mut slots = BTreeMap::new();
    if facts.version(id::USER_CODE) >= 2
        && facts.uc_caps.as_ref().is_some_and(|c| c.multiple_report)
    {
        let mut next: u32 = 1;
        while next != 0 && next <= facts.users as u32 {
            let get = vec![
                id::USER_CODE,
                user_code::EXTENDED_GET,
                (next >> 8) as u8,
                next as u8,
                0x01,
            ];
            let r = inner
                .request(
                    node,
                    get,
                    (id::USER_CODE, user_code::EXTENDED_REPORT),
                    Filter::Any,
                )
                .await?;
            let rep = user_code::parse_extended_report(&r).map_err(failed)?;
            let last = rep.entries.iter().map(|e| e.user).max().unwrap_or(next);
            for e in rep.entries {
                if let Some(code) = e.code {
                    slots.insert(e.user, code);
                }
            }
            // Guard against a lock that never advances.
            next = if rep.next_user > last {
                rep.next_user
            } else {
                0
            };
        }
    } else {
        for user in 1..=(facts.users.min(255) as u32) {
            let r = inner
                .request(
                    node,
                    user_code::get(user).map_err(failed)?,
                    (id::USER_CODE, user_code::REPORT),
                    Filter::Byte2(user as u8),
                )
                .await?;
            if let Some(code) = user_code::parse_report(&r).map_err(failed)?.code {
                slots.insert(user, code);
            }
        }
    }
    let sum = checksum_of(&slots);
    inner.with_node(node, |n| {
        n.slots = Some(slots.clone());
        n.slots_checksum = Some(sum);
    });
    Ok(slots)
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
        user_code::validate_code(&c.code, facts.keys())
            .map_err(|e| DriverError::CodeRejected(e.to_string()))?;
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
    let known = inner.with_node(node, |n| n.slots.clone()).flatten();
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
        let windowed = matches!(op, SlotOp::Set(c) if c.window.is_some());
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
    let supervise = inner.config.use_supervision && facts.supports(id::SUPERVISION);
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
                remember(inner, node, &ops[i]);
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

/// Keeps the slot cache (and the checksum that goes with it) in step with
/// what we wrote.
fn remember(inner: &Arc<Inner>, node: u8, op: &SlotOp) {
    inner.with_node(node, |n| {
        if let Some(slots) = n.slots.as_mut() {
            match op {
                SlotOp::Set(c) => slots.insert(c.slot, c.code.clone()),
                SlotOp::Clear { slot } => slots.remove(slot),
            };
            n.slots_checksum = Some(checksum_of(slots));
        }
    });
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
            if let Some(w) = &c.window {
                // Window first: the code must never be valid outside it.
                let set = sel::year_day_set(user, 1, w, inner.config.lock_utc_offset)
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

/// Reads a slot back after an unsupervised Set: the lock's only way to say no.
async fn verify(
    inner: &Arc<Inner>,
    node: u8,
    slot: u32,
    want: Option<&Pin>,
) -> Result<(), DriverError> {
    let r = inner
        .request(
            node,
            user_code::get(slot).map_err(failed)?,
            (id::USER_CODE, user_code::REPORT),
            Filter::Byte2(slot as u8),
        )
        .await?;
    let got = user_code::parse_report(&r).map_err(failed)?.code;
    if got.as_ref() == want {
        Ok(())
    } else {
        Err(DriverError::CodeRejected(format!(
            "slot {slot} does not hold the code after setting it"
        )))
    }
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
