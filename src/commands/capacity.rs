//! Slots over time, on the command side. A code needs a slot on its lock only
//! while it must be on it ([`AccessCode::slot_need`]); a create or an update is
//! refused with `no_space_for_access_code_on_device` only if, at some moment,
//! the codes needing a slot on a lock (unmanaged codes and the backup pool
//! included) would exceed its capacity. Which slot a code gets is chosen later,
//! when it goes on the lock (`engine::slots`).

use super::error::{CommandError, ErrorKind};
use crate::model::access_code::ts;
use crate::model::{AccessCode, Timing};
use crate::store::{DeviceRow, StoreError, Tx};
use chrono::{DateTime, Utc};
use serde_json::json;
use std::collections::BTreeSet;

/// `[from, until)`; `until` `None` is for ever.
pub type Need = (DateTime<Utc>, Option<DateTime<Utc>>);

fn covers(n: &Need, t: DateTime<Utc>) -> bool {
    n.0 <= t && n.1.is_none_or(|u| t < u)
}

/// The first moment within the spans of `new` at which `fixed` (always there)
/// plus the needs of `existing` and `new` exceed `capacity`, with the demand
/// then. Demand only rises where a span starts, so those are the moments to look at.
pub fn first_overflow(
    existing: &[Need],
    fixed: u32,
    capacity: u32,
    new: &[Need],
) -> Option<(DateTime<Utc>, u32)> {
    let moments: BTreeSet<DateTime<Utc>> = existing
        .iter()
        .chain(new)
        .map(|n| n.0)
        .filter(|t| new.iter().any(|n| covers(n, *t)))
        .collect();
    moments.into_iter().find_map(|t| {
        let demand = fixed as usize
            + existing.iter().filter(|n| covers(n, t)).count()
            + new.iter().filter(|n| covers(n, t)).count();
        (demand > capacity as usize).then_some((t, demand as u32))
    })
}

/// What a lock's slots are promised to from `now` on.
#[derive(Debug, Clone)]
pub struct LockDemand {
    pub device_id: String,
    pub existing: Vec<Need>,
    /// Unmanaged codes on the lock (they stay until someone removes them).
    pub fixed: u32,
    pub capacity: u32,
}

impl LockDemand {
    pub fn load(
        tx: &Tx<'_>,
        device: &DeviceRow,
        now: DateTime<Utc>,
        timing: &Timing,
        except: &[&str],
    ) -> Result<LockDemand, StoreError> {
        let id = &device.info.device_id;
        let (existing, fixed) = tx.lock_view(id, |codes, observed| {
            let owned: BTreeSet<u32> = codes.iter().map(|c| c.slot).collect();
            let existing = codes
                .iter()
                .filter(|c| !except.contains(&c.access_code_id.as_str()))
                .filter_map(|c| c.slot_need(now, timing))
                .collect();
            let fixed = observed.iter().filter(|s| !owned.contains(&s.slot)).count() as u32;
            (existing, fixed)
        })?;
        Ok(LockDemand {
            device_id: id.clone(),
            existing,
            fixed,
            capacity: device.info.capabilities.max_active_codes_supported,
        })
    }

    /// Where adding `new` would overflow this lock.
    pub fn overflow(&self, new: &[Need]) -> Option<Overflow> {
        first_overflow(&self.existing, self.fixed, self.capacity, new).map(|(at, demand)| {
            Overflow {
                device_id: self.device_id.clone(),
                at,
                demand,
                capacity: self.capacity,
            }
        })
    }

    /// Count `n` as promised too (several codes planned in one command).
    pub fn add(&mut self, n: Need) {
        self.existing.push(n);
    }
}

/// One lock that would run out of slots, and when first.
#[derive(Debug, Clone, PartialEq)]
pub struct Overflow {
    pub device_id: String,
    pub at: DateTime<Utc>,
    pub demand: u32,
    pub capacity: u32,
}

/// The refusal naming each lock and the first moment it would overflow.
pub fn refusal(overflows: &[Overflow]) -> CommandError {
    let parts: Vec<String> = overflows
        .iter()
        .map(|o| {
            format!(
                "device {} would need {} slots at {} and has {}",
                o.device_id,
                o.demand,
                ts(o.at),
                o.capacity
            )
        })
        .collect();
    CommandError::new(
        ErrorKind::NoSpaceForAccessCodeOnDevice,
        format!("no space for the access code: {}", parts.join("; ")),
    )
    .with_details(
        "device_ids",
        json!(overflows.iter().map(|o| &o.device_id).collect::<Vec<_>>()),
    )
    .with_details(
        "devices",
        json!(overflows
            .iter()
            .map(|o| json!({
                "device_id": o.device_id,
                "overflows_at": ts(o.at),
                "slots_needed": o.demand,
                "max_active_codes_supported": o.capacity,
            }))
            .collect::<Vec<_>>()),
    )
}

/// The parts of `new` that `old` did not cover: a change is checked only
/// where it asks for more slot time (shortening a stay is never refused).
pub fn added(old: Option<Need>, new: Need) -> Vec<Need> {
    let Some((a, b)) = old else {
        return vec![new];
    };
    let (c, d) = new;
    let mut out = Vec::new();
    if c < a {
        out.push((c, Some(d.map_or(a, |d| d.min(a)))));
    }
    if let Some(b) = b {
        if d.is_none_or(|d| d > b) {
            out.push((c.max(b), d));
        }
    }
    out.retain(|(f, u)| u.is_none_or(|u| *f < u));
    out
}

/// Check one code (new or changed) against the rest of its lock, where it
/// needs slot time it did not need `before`.
pub fn check_code(
    tx: &Tx<'_>,
    device: &DeviceRow,
    code: &AccessCode,
    before: Option<Need>,
    now: DateTime<Utc>,
    timing: &Timing,
) -> Result<Option<Overflow>, StoreError> {
    let Some(need) = code.slot_need(now, timing) else {
        return Ok(None);
    };
    let more = added(before, need);
    if more.is_empty() {
        return Ok(None);
    }
    let demand = LockDemand::load(tx, device, now, timing, &[&code.access_code_id])?;
    Ok(demand.overflow(&more))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(h * 3600, 0).unwrap()
    }

    #[test]
    fn only_added_slot_time_is_checked() {
        let old = Some((at(0), Some(at(10))));
        assert!(added(old, (at(2), Some(at(8)))).is_empty(), "shorter");
        assert_eq!(
            added(old, (at(0), Some(at(12)))),
            vec![(at(10), Some(at(12)))]
        );
        assert_eq!(
            added(old, (at(-2), None)),
            vec![(at(-2), Some(at(0))), (at(10), None)]
        );
        assert_eq!(added(None, (at(1), None)), vec![(at(1), None)]);
        assert_eq!(added(Some((at(0), None)), (at(3), Some(at(4)))), vec![]);
        // Moved later, past the old end: all of it is new.
        assert_eq!(
            added(old, (at(20), Some(at(30)))),
            vec![(at(20), Some(at(30)))]
        );
    }

    #[test]
    fn back_to_back_stays_share_a_slot() {
        let existing = [(at(0), Some(at(10))), (at(10), Some(at(20)))];
        assert_eq!(
            first_overflow(&existing, 0, 1, &[(at(20), Some(at(30)))]),
            None
        );
        assert_eq!(
            first_overflow(&existing, 0, 1, &[(at(5), Some(at(6)))]),
            Some((at(5), 2))
        );
        // An unmanaged code takes one slot for ever.
        assert_eq!(
            first_overflow(&[], 1, 1, &[(at(40), None)]),
            Some((at(40), 2))
        );
        // Overflow elsewhere in time does not concern a code that does not overlap it.
        let full = [(at(0), Some(at(10))), (at(0), Some(at(10)))];
        assert_eq!(first_overflow(&full, 0, 1, &[(at(10), Some(at(11)))]), None);
        // The first moment is named, inside the new span.
        let later = [(at(15), Some(at(16)))];
        assert_eq!(
            first_overflow(&later, 0, 1, &[(at(12), Some(at(20)))]),
            Some((at(15), 2))
        );
    }
}
