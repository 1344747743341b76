//! The diff at the heart of the engine: what should be on a lock now versus
//! what is known to be on it, as the operations that close the gap. Pure.

use super::issued::Issued;
use crate::drivers::{SlotCode, SlotOp};
use crate::model::{AccessCode, Timing};
use chrono::{DateTime, Utc};
use std::borrow::Borrow;
use std::collections::{BTreeSet, HashMap};

/// One operation and the code it is for.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub access_code_id: String,
    pub op: SlotOp,
    /// What the slot held before (to tell a first set from an update).
    pub before: Option<SlotCode>,
}

/// The operations that would make the lock hold what it should at `now`.
/// Removals come first (an expired code is a security duty), then sets, soonest
/// window first. Codes whose last attempt failed finally are left out.
pub fn diff(
    codes: &[impl Borrow<AccessCode>],
    observed: &[SlotCode],
    now: DateTime<Utc>,
    timing: &Timing,
) -> Vec<Planned> {
    let by_slot: HashMap<u32, &SlotCode> = observed.iter().map(|s| (s.slot, s)).collect();
    let mut removals = Vec::new();
    let mut sets = Vec::new();
    for c in codes {
        let c = c.borrow();
        // A code waiting for a slot (see `engine::slots`) has nothing to do yet.
        if c.slot == crate::model::access_code::NO_SLOT {
            continue;
        }
        let obs = by_slot.get(&c.slot).copied();
        match (c.wanted_on_lock(now, timing), obs) {
            (true, o) if o.is_some_and(|o| c.held_by(o)) => {}
            (true, o) => {
                if c.retry.gave_up || waiting(c, now) {
                    continue;
                }
                // Never overwrite a code lockhub did not put there.
                if o.is_some_and(|o| o.code != c.code && !c.was_set_once()) {
                    continue;
                }
                let key = c.window.map(|w| w.starts_at);
                sets.push((
                    key,
                    Planned {
                        access_code_id: c.access_code_id.clone(),
                        op: SlotOp::Set(c.content()),
                        before: o.cloned(),
                    },
                ));
            }
            (false, Some(o)) if o.code == c.code && !waiting(c, now) => removals.push(Planned {
                access_code_id: c.access_code_id.clone(),
                op: SlotOp::Clear { slot: c.slot },
                before: Some(o.clone()),
            }),
            (false, _) => {}
        }
    }
    sets.sort_by_key(|(k, _)| *k);
    removals
        .into_iter()
        .chain(sets.into_iter().map(|(_, p)| p))
        .collect()
}

/// Of `ops`, those a read that stopped part way allows (`known`: the slots
/// it read): an op on a slot outside it waits for the rest of the read (the
/// slot may hold anything), and so does a Set of a PIN that lockhub last saw,
/// or sent, in a slot outside it (it may sit there still: the lock would hold
/// it twice, or refuse it as a duplicate). A PIN someone entered at the
/// keypad into an unread slot lockhub cannot know of: the lock takes it twice
/// or refuses it, as it would a code added at the lock between any read and
/// a set, and the whole read then shows it (an unmanaged code).
pub fn known_only(
    ops: Vec<Planned>,
    known: &BTreeSet<u32>,
    observed: &[SlotCode],
    issued: &Issued,
) -> Vec<Planned> {
    let unread = |s: &u32| !known.contains(s);
    let maybe_elsewhere = |slot: u32, pin: &crate::model::Pin| {
        observed
            .iter()
            .any(|o| o.slot != slot && unread(&o.slot) && &o.code == pin)
            || issued
                .slots()
                .any(|s| s != slot && unread(&s) && issued.holds(s, pin))
    };
    ops.into_iter()
        .filter(|p| match &p.op {
            SlotOp::Clear { slot } => !unread(slot),
            SlotOp::Set(c) => !unread(&c.slot) && !maybe_elsewhere(c.slot, &c.code),
        })
        .collect()
}

/// A code whose last attempt asked to wait before the next.
fn waiting(c: &AccessCode, now: DateTime<Utc>) -> bool {
    c.retry.next_attempt_at.is_some_and(|t| t > now)
}

/// The next moment the desired state of any code changes by itself, or a
/// code's wait for its next attempt ends.
pub fn next_boundary(
    codes: &[impl Borrow<AccessCode>],
    now: DateTime<Utc>,
    timing: &Timing,
) -> Option<DateTime<Utc>> {
    let codes = || codes.iter().map(|c| -> &AccessCode { c.borrow() });
    let windows = codes()
        .filter(|c| !c.deleted)
        .filter_map(|c| Some((c.window?, c.on_lock_from(timing)?)))
        .flat_map(|(w, from)| [from, w.starts_at, w.ends_at]);
    let retries = codes().filter_map(|c| c.retry.next_attempt_at);
    let weekly = codes().filter_map(|c| c.next_weekly_change(now, timing));
    windows
        .chain(retries)
        .chain(weekly)
        .filter(|t| *t > now)
        .min()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::{Pin, Retry, TimeWindow};
    use chrono::TimeZone;

    /// A plain code for unit tests (also `slots`' and `store::locks`' fixture).
    pub(crate) fn code(slot: u32, pin: &str, window: Option<TimeWindow>) -> AccessCode {
        AccessCode {
            access_code_id: format!("c{slot}"),
            device_id: "d".into(),
            name: None,
            appearance_name: None,
            code: Pin::new(pin),
            common_code_key: None,
            window,
            created_at: Utc.timestamp_opt(0, 0).unwrap(),
            slot,
            is_backup: false,
            backup_for: None,
            pulled_backup_access_code_id: None,
            allow_external_modification: false,
            prefer_native_scheduling: false,
            attempt_for_offline_device: true,
            use_backup_access_code_pool: false,
            is_scheduled_on_device: false,
            errors: vec![],
            warnings: vec![],
            deleted: false,
            removed_at_lock: false,
            reported_status: None,
            retry: Retry::default(),
            ever_set: false,
            weekly: None,
            finished_at: None,
        }
    }

    fn at(h: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(h * 3600, 0).unwrap()
    }

    /// `held_by` answers what `same_content(&content(), observed)` answers,
    /// for every mix of PIN, window, schedule, name and scheduling on device.
    #[test]
    fn held_by_is_same_content_without_the_copy() {
        use crate::model::access_code::same_content;
        use crate::model::WeeklySchedule;
        let t = |s| Utc.timestamp_opt(s, 0).unwrap();
        let windows = [
            None,
            Some(TimeWindow {
                starts_at: t(100),
                ends_at: t(200),
            }),
            Some(TimeWindow {
                starts_at: t(100),
                ends_at: t(300),
            }),
        ];
        let weekly = WeeklySchedule::from_json(&serde_json::json!({
            "days_of_week": ["monday"], "start_time": "10:00", "end_time": "12:00"
        }))
        .unwrap();
        let names = [None, Some("Guest".to_owned()), Some("Other".to_owned())];
        let mut checked = 0;
        for scheduled in [false, true] {
            for w in windows {
                for recurring in [None, Some(weekly)] {
                    for name in &names {
                        let mut c = code(3, "1234", w);
                        c.is_scheduled_on_device = scheduled;
                        c.weekly = recurring;
                        c.appearance_name = name.clone();
                        for pin in ["1234", "5678"] {
                            for ow in windows {
                                for orec in [None, Some(weekly)] {
                                    for oname in &names {
                                        let o = SlotCode {
                                            slot: 3,
                                            code: Pin::new(pin),
                                            name: oname.clone(),
                                            window: ow,
                                            recurring: orec,
                                        };
                                        assert_eq!(
                                            c.held_by(&o),
                                            same_content(&c.content(), &o),
                                            "{c:?} / {o:?}"
                                        );
                                        checked += 1;
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        assert_eq!(checked, 2 * 3 * 2 * 3 * 2 * 3 * 2 * 3);
    }

    #[test]
    fn removal_of_expired_code_comes_before_sets() {
        let timing = Timing::new(chrono::Duration::minutes(5));
        let expired = code(
            1,
            "5974",
            Some(TimeWindow {
                starts_at: at(1),
                ends_at: at(2),
            }),
        );
        let new = code(2, "3816", None);
        let observed = vec![SlotCode {
            recurring: None,
            slot: 1,
            code: Pin::new("5974"),
            name: None,
            window: None,
        }];
        let ops = diff(&[new, expired], &observed, at(3), &timing);
        assert_eq!(ops.len(), 2);
        assert_eq!(ops[0].op, SlotOp::Clear { slot: 1 });
        assert!(matches!(ops[1].op, SlotOp::Set(_)));
    }

    #[test]
    fn code_goes_on_shortly_before_its_window() {
        let timing = Timing::new(chrono::Duration::minutes(5));
        let c = code(
            1,
            "5974",
            Some(TimeWindow {
                starts_at: at(10),
                ends_at: at(20),
            }),
        );
        assert!(diff(std::slice::from_ref(&c), &[], at(9), &timing).is_empty());
        assert_eq!(
            next_boundary(std::slice::from_ref(&c), at(9), &timing),
            Some(at(10) - chrono::Duration::minutes(5))
        );
        assert_eq!(
            diff(&[c], &[], at(10) - chrono::Duration::minutes(4), &timing).len(),
            1
        );
    }

    #[test]
    fn a_part_read_lets_through_only_ops_on_known_slots() {
        let timing = Timing::new(chrono::Duration::minutes(5));
        let held = |slot, pin: &str| SlotCode {
            recurring: None,
            slot,
            code: Pin::new(pin),
            name: None,
            window: None,
        };
        let mut deleted = code(1, "5974", None);
        deleted.deleted = true;
        let codes = [
            deleted,
            code(2, "3816", None),
            code(3, "2749", None),
            code(4, "1357", None),
            code(9, "8642", None),
        ];
        // Slot 7 (unread) held 2749 when lockhub last looked; lockhub sent
        // 1357 to slot 8 (unread) once.
        let observed = [held(1, "5974"), held(7, "2749")];
        let mut issued = Issued::new("d", vec![]);
        issued.note(8, &Pin::new("1357"));
        let ops = diff(&codes, &observed, at(1), &timing);
        assert_eq!(ops.len(), 5);
        let known: BTreeSet<u32> = [1, 2, 3, 4].into();
        let slots: Vec<u32> = known_only(ops, &known, &observed, &issued)
            .iter()
            .map(|p| p.op.slot())
            .collect();
        // Clear 1 and set 2 go; 3 and 4 wait (their PIN may be in 7 or 8);
        // 9 waits (unread).
        assert_eq!(slots, vec![1, 2]);
    }

    #[test]
    fn foreign_code_in_slot_is_never_overwritten() {
        let timing = Timing::new(chrono::Duration::minutes(5));
        let c = code(1, "5974", None);
        let observed = vec![SlotCode {
            recurring: None,
            slot: 1,
            code: Pin::new("1111"),
            name: None,
            window: None,
        }];
        assert!(diff(&[c], &observed, at(1), &timing).is_empty());
    }
}
