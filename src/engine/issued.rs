//! The engine's view of `store::issued`: which PINs lockhub may have put in
//! which slot of one lock, and the operations that settle a slot whose content
//! is uncertain or is a PIN of lockhub's that no code wants any more.

use super::plan::Planned;
use crate::drivers::{SlotCode, SlotOp};
use crate::model::{AccessCode, Pin, Timing};
use crate::store::issued::{digest, Ahead, Unsent};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet};

/// One lock's issued PINs (digests), slot by slot.
#[derive(Debug, Clone, Default)]
pub struct Issued {
    device_id: String,
    by_slot: BTreeMap<u32, BTreeSet<String>>,
}

impl Issued {
    pub fn new(device_id: &str, rows: Vec<(u32, String)>) -> Self {
        let mut by_slot: BTreeMap<u32, BTreeSet<String>> = BTreeMap::new();
        for (slot, d) in rows {
            by_slot.entry(slot).or_default().insert(d);
        }
        Issued {
            device_id: device_id.to_owned(),
            by_slot,
        }
    }

    /// lockhub may have put `pin` in `slot`.
    pub fn holds(&self, slot: u32, pin: &Pin) -> bool {
        self.by_slot
            .get(&slot)
            .is_some_and(|s| s.contains(&digest(&self.device_id, slot, pin)))
    }

    /// lockhub may have put something in `slot` that it has not seen gone.
    pub fn any(&self, slot: u32) -> bool {
        self.by_slot.get(&slot).is_some_and(|s| !s.is_empty())
    }

    /// The slots lockhub may have put a PIN in.
    pub fn slots(&self) -> impl Iterator<Item = u32> + '_ {
        self.by_slot.keys().copied()
    }

    pub fn note(&mut self, slot: u32, pin: &Pin) {
        self.by_slot
            .entry(slot)
            .or_default()
            .insert(digest(&self.device_id, slot, pin));
    }

    /// If every PIN lockhub may have put in `slot` was recorded ahead and never
    /// handed to a driver (`store::issued::Ahead`), those: the slot cannot
    /// hold any of them, so they are forgotten rather than cleared.
    pub fn only_unsent(&self, slot: u32, ahead: &Ahead) -> Option<Vec<Unsent>> {
        let digests = self.by_slot.get(&slot).filter(|s| !s.is_empty())?;
        digests.iter().map(|d| ahead.unsent(slot, d)).collect()
    }

    /// Mirror of `Tx::forget_unsent`.
    pub fn forget(&mut self, u: &Unsent) {
        if let Some(s) = self.by_slot.get_mut(&u.slot) {
            s.remove(&u.digest);
            if s.is_empty() {
                self.by_slot.remove(&u.slot);
            }
        }
    }

    /// Mirror of `Tx::confirm_slot`.
    pub fn confirm(&mut self, slot: u32, content: Option<&Pin>) {
        let keep = content.map(|p| digest(&self.device_id, slot, p));
        if let Some(s) = self.by_slot.get_mut(&slot) {
            s.retain(|d| Some(d) == keep.as_ref());
            if s.is_empty() {
                self.by_slot.remove(&slot);
            }
        }
    }

    /// Operations the plain diff does not see: a slot where lockhub may have
    /// left a PIN that no code wants there now (a code deleted or out of its
    /// window whose removal is uncertain, or a PIN nobody owns any more) is
    /// cleared, unless the lock is known to hold a stranger's code there; and a
    /// code is set over an older PIN of lockhub's in its own slot. `planned`
    /// is the diff's output (slots it already touches are left alone).
    pub fn settle(
        &self,
        codes: &[impl std::borrow::Borrow<AccessCode>],
        observed: &[SlotCode],
        planned: &[Planned],
        now: DateTime<Utc>,
        timing: &Timing,
    ) -> Vec<Planned> {
        let touched: BTreeSet<u32> = planned.iter().map(|p| p.op.slot()).collect();
        // The first code and the first report of each slot, looked up by
        // slot (a scan of every code per slot grew with the square of a
        // lock's codes).
        let mut rows: std::collections::HashMap<u32, &AccessCode> = Default::default();
        for c in codes {
            let c = c.borrow();
            rows.entry(c.slot).or_insert(c);
        }
        let mut reports: std::collections::HashMap<u32, &SlotCode> = Default::default();
        for o in observed {
            reports.entry(o.slot).or_insert(o);
        }
        let mut out = Vec::new();
        for (&slot, digests) in &self.by_slot {
            if digests.is_empty() || touched.contains(&slot) {
                continue;
            }
            let row = rows.get(&slot).copied();
            let obs = reports.get(&slot).copied();
            if row.is_some_and(|c| c.retry.next_attempt_at.is_some_and(|t| t > now)) {
                continue;
            }
            // A digest per slot only where the answer matters (each is a SHA-256).
            let stranger = || obs.is_some_and(|o| !self.holds(slot, &o.code));
            match row.and_then(|c| c.desired(now, timing).map(|d| (c, d))) {
                Some((c, d)) => {
                    // Our older PIN sits where this code goes: replace it.
                    let older = obs.filter(|o| o.code != d.code && !stranger());
                    if let Some(o) = older {
                        if !c.retry.gave_up {
                            out.push(Planned {
                                access_code_id: c.access_code_id.clone(),
                                op: SlotOp::Set(d),
                                before: Some(o.clone()),
                            });
                        }
                    }
                }
                None if stranger() => {}
                None => out.push(Planned {
                    access_code_id: row.map(|c| c.access_code_id.clone()).unwrap_or_default(),
                    op: SlotOp::Clear { slot },
                    before: obs.cloned(),
                }),
            }
        }
        out
    }
}
