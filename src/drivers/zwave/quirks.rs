//! What real locks do that the specification does not: masked read-backs.
//!
//! Some locks answer a User Code Get with `****` (or zero bytes) in place of
//! the digits, and a User Credential lock may keep only a hash of a PIN
//! (no read-back). Such a slot is *occupied, contents unknown*. lockhub then
//! takes the slot to hold what it wrote there last (and the lock confirmed,
//! by Supervision, the slot's status or the checksum), and never compares
//! digits: comparing would find a difference every time and set the code
//! again forever. A masked slot lockhub never wrote reads as [`MASKED`].
//! After a restart lockhub's memory of what it wrote is the engine's store
//! (`LockDriver::remember`): a hidden slot is taken to hold the remembered
//! code once the lock's checksum agrees (or, without one, by its status),
//! so a restart sets nothing again ([`recall`]). A User Credential lock
//! that keeps only a hash of a PIN is recalled the same way, by its PIN
//! credential checksum (the CRC over each PIN credential's slot, length and
//! data, as zwave-js's mock and the Z-Wave reference lock compute it over the
//! data they store: a lock that sums the hashes instead cannot be confirmed,
//! and its codes are set once more, never in a loop).

use super::cc::user_code;
use super::node::{NodeState, SlotSum};
use crate::model::Pin;

/// What a masked slot lockhub did not write reads as: occupied, code unknown
/// (no keypad code is made of stars).
pub(super) const MASKED: &str = "****";

/// The slot is occupied but the report hides its digits: no code at all
/// with an occupied status, or only `*`s.
pub(super) fn hides_digits(r: &user_code::Report) -> bool {
    occupied(r.status)
        && r.code
            .as_ref()
            .is_none_or(|c| c.expose().chars().all(|ch| ch == '*'))
}

/// The status says the slot holds a code (enabled or disabled).
pub(super) fn occupied(status: u8) -> bool {
    status == user_code::status::ENABLED || status == user_code::status::DISABLED
}

/// Whether a code is the stand-in for a masked slot lockhub did not write.
pub(super) fn is_placeholder(code: &Pin) -> bool {
    code.expose() == MASKED
}

/// What a slot holds, as far as lockhub can know: the code the lock showed,
/// or for a masked read (or a lock known to mask) what lockhub wrote there,
/// else [`MASKED`]. `None`: the slot is empty.
pub(super) fn resolve(
    occupied: bool,
    shown: Option<Pin>,
    masked: bool,
    written: Option<&Pin>,
) -> Option<Pin> {
    if !occupied {
        return None;
    }
    match shown {
        Some(code) if !masked => Some(code),
        _ => Some(written.cloned().unwrap_or_else(|| Pin::new(MASKED))),
    }
}

/// Fills the node's hidden slots ([`MASKED`]) with the codes the engine
/// remembers for them, where the lock confirms it: its checksum (`sum`:
/// User Code's, or a User Credential lock's PIN credential checksum) over
/// the filled slots equals the one it reported, or, for a lock without a
/// checksum, the slot's occupied status alone. Once per remembrance: a
/// refusal leaves the slots unknown (the engine sets them again, once).
/// Nothing until the slots are read.
pub(super) fn recall(n: &mut NodeState, sum: SlotSum) {
    if n.remembered.is_empty() {
        return;
    }
    let Some(slots) = n.slots.as_ref() else {
        return;
    };
    let mut filled = slots.clone();
    let mut recalled = Vec::new();
    for (slot, pin) in filled.iter_mut() {
        if let Some(code) = n.remembered.get(slot).filter(|_| is_placeholder(pin)) {
            *pin = code.clone();
            recalled.push(*slot);
        }
    }
    if recalled.is_empty() {
        return;
    }
    let checksum = n
        .facts
        .as_ref()
        .is_some_and(super::node::NodeFacts::checksum);
    let confirmed = !checksum || n.slots_checksum == Some(sum.compute(&filled));
    tracing::info!(
        node = n.node,
        slots = recalled.len(),
        confirmed,
        by = if checksum { "checksum" } else { "status" },
        "hidden slots recalled from before the restart"
    );
    if confirmed {
        for slot in recalled {
            n.written.insert(slot, filled[&slot].clone());
        }
        n.slots = Some(filled);
    }
    n.remembered.clear();
}

#[cfg(test)]
mod tests {
    use super::*;
    use user_code::status;

    fn report(st: u8, code: Option<&str>) -> user_code::Report {
        user_code::Report {
            user: 1,
            status: st,
            code: code.map(Pin::new),
        }
    }

    #[test]
    fn masked_reports_are_told_apart() {
        assert!(hides_digits(&report(status::ENABLED, Some("****"))));
        assert!(hides_digits(&report(status::ENABLED, None)), "zero bytes");
        assert!(hides_digits(&report(status::DISABLED, Some("******"))));
        assert!(!hides_digits(&report(status::ENABLED, Some("1234"))));
        assert!(
            !hides_digits(&report(status::AVAILABLE, None)),
            "empty slot"
        );
    }

    #[test]
    fn a_masked_slot_holds_what_lockhub_wrote() {
        let mine = Pin::new("2468");
        assert_eq!(resolve(false, None, true, Some(&mine)), None);
        assert_eq!(
            resolve(true, Some(Pin::new("****")), true, Some(&mine)),
            Some(mine.clone())
        );
        assert_eq!(
            resolve(true, None, true, None).map(|p| is_placeholder(&p)),
            Some(true)
        );
        assert_eq!(
            resolve(true, Some(Pin::new("1357")), false, Some(&mine)),
            Some(Pin::new("1357")),
            "a lock that shows digits is believed"
        );
    }
}
