//! What a lock's Notification and v1 Alarm reports mean: how the bolt moved
//! (and by which user code), who was turned away, the door sensor, tampering.
//!
//! Notification v2+ reports are read as the Z-Wave event list names them.
//! A v1 Alarm report (no notification type) is first turned into the
//! notification it stands for by the mapping most Z-Wave locks share
//! (zwave-js's device configs for Kwikset and Yale: `alarmType` 18/19 keypad
//! lock/unlock with the user id in `alarmLevel`, 21/22 manual, 24/25 RF,
//! 27 auto-lock, 32/33 codes deleted, 112/113 code added / duplicate,
//! 161 tamper, 167 low battery, 168 critical battery and 169 battery too low
//! to operate as Power Management's "replace battery soon / now"). Pure: the
//! driver acts on the answer. A v3+ report sent again under the same
//! sequence number is told apart here too ([`Repeats`]).

use super::cc::notification::{
    event, security_event, Report, ACCESS_CONTROL, HOME_SECURITY, POWER_MANAGEMENT,
    REPLACE_BATTERY_NOW, REPLACE_BATTERY_SOON,
};
use crate::drivers::{DeniedReason, LockEvent, LockMethod};
use std::collections::VecDeque;
use std::time::Duration;
use tokio::time::Instant;

/// How long a Notification report's sequence number marks the same report
/// sent again (a lock that missed our ack resends within seconds; a new
/// report with the same number needs 256 reports in between).
pub(super) const REPEAT_WINDOW: Duration = Duration::from_secs(30);

/// The Notification v3+ reports a node sent lately, by sequence number: the
/// same number with the same bytes within [`REPEAT_WINDOW`] is the lock
/// sending a report again (it missed our ack), not a second event.
#[derive(Debug, Default)]
pub(super) struct Repeats {
    seen: VecDeque<(u8, Vec<u8>, Instant)>,
}

impl Repeats {
    /// Whether `report` (sequence number `seq`) repeats one seen lately;
    /// notes it either way.
    pub fn repeated(&mut self, seq: u8, report: &[u8], now: Instant) -> bool {
        self.seen
            .retain(|(_, _, at)| now.saturating_duration_since(*at) < REPEAT_WINDOW);
        let repeat = self
            .seen
            .iter()
            .any(|(s, bytes, _)| *s == seq && bytes == report);
        if !repeat {
            if self.seen.len() >= 16 {
                self.seen.pop_front();
            }
            self.seen.push_back((seq, report.to_vec(), now));
        }
        repeat
    }
}

/// A v1 Alarm report (`notification_type` absent or 0, `v1_type` set) as
/// the Access Control / Home Security notification it stands for; other
/// reports as they are.
pub(super) fn normalize(r: &Report) -> Report {
    if r.notification_type.is_some_and(|t| t != 0) || r.v1_type == 0 {
        return r.clone();
    }
    let level = r.v1_level;
    let (kind, ev, user) = match r.v1_type {
        18 => (ACCESS_CONTROL, event::KEYPAD_LOCK, true),
        19 => (ACCESS_CONTROL, event::KEYPAD_UNLOCK, true),
        21 => (ACCESS_CONTROL, event::MANUAL_LOCK, false),
        22 => (ACCESS_CONTROL, event::MANUAL_UNLOCK, false),
        24 => (ACCESS_CONTROL, event::RF_LOCK, false),
        25 => (ACCESS_CONTROL, event::RF_UNLOCK, false),
        27 => (ACCESS_CONTROL, event::AUTO_LOCK, false),
        32 => (ACCESS_CONTROL, event::ALL_USER_CODES_DELETED, false),
        33 => (ACCESS_CONTROL, event::SINGLE_USER_CODE_DELETED, true),
        112 => (ACCESS_CONTROL, event::NEW_USER_CODE_ADDED, true),
        113 => (
            ACCESS_CONTROL,
            event::NEW_USER_CODE_NOT_ADDED_DUPLICATE,
            true,
        ),
        161 => (HOME_SECURITY, security_event::COVER_REMOVED, false),
        167 => (POWER_MANAGEMENT, REPLACE_BATTERY_SOON, false),
        168 | 169 => (POWER_MANAGEMENT, REPLACE_BATTERY_NOW, false),
        _ => return r.clone(),
    };
    Report {
        v1_type: r.v1_type,
        v1_level: r.v1_level,
        notification_type: Some(kind),
        event: Some(ev),
        params: if user { vec![level] } else { Vec::new() },
        sequence: r.sequence,
    }
}

/// The lock event a (normalized) report stands for, if it is about the
/// bolt, the keypad's refusals, the door or tampering. Code changes at the
/// lock are the driver's slot logic, not here.
pub(super) fn lock_event(device_id: &str, r: &Report) -> Option<LockEvent> {
    let device_id = device_id.to_owned();
    let ev = r.event?;
    let operated = |locked: bool, method: LockMethod, slot: Option<u32>| LockEvent::Operated {
        device_id: device_id.clone(),
        locked,
        method,
        slot,
    };
    let denied = |reason: DeniedReason, slot: Option<u32>| LockEvent::AccessDenied {
        device_id: device_id.clone(),
        reason,
        slot,
    };
    match r.notification_type? {
        ACCESS_CONTROL => Some(match ev {
            event::MANUAL_LOCK => operated(true, LockMethod::Manual, None),
            event::MANUAL_UNLOCK => operated(false, LockMethod::Manual, None),
            // Moved over the radio by some controller: lockhub's own actions
            // are told apart by the engine.
            event::RF_LOCK => operated(true, LockMethod::Unknown, None),
            event::RF_UNLOCK => operated(false, LockMethod::Unknown, None),
            event::KEYPAD_LOCK | event::LOCK_WITH_USER_CODE => {
                operated(true, LockMethod::Keycode, r.user_id())
            }
            event::KEYPAD_UNLOCK | event::UNLOCK_WITH_USER_CODE => {
                operated(false, LockMethod::Keycode, r.user_id())
            }
            event::AUTO_LOCK => operated(true, LockMethod::Automatic, None),
            event::CODE_LIMIT_EXCEEDED => denied(DeniedReason::TooManyAttempts, None),
            event::DENIED_USER_DISABLED => denied(DeniedReason::CodeDisabled, r.user_id()),
            event::DENIED_SCHEDULE_INACTIVE => denied(DeniedReason::OutsideSchedule, r.user_id()),
            event::INVALID_CREDENTIAL => denied(DeniedReason::InvalidCode, None),
            event::DOOR_OPEN => LockEvent::Door {
                device_id,
                open: true,
            },
            event::DOOR_CLOSED => LockEvent::Door {
                device_id,
                open: false,
            },
            _ => return None,
        }),
        HOME_SECURITY => Some(match ev {
            security_event::INVALID_CODE => denied(DeniedReason::InvalidCode, None),
            security_event::COVER_REMOVED | security_event::MOVED => {
                LockEvent::Tampered { device_id }
            }
            _ => return None,
        }),
        POWER_MANAGEMENT => match ev {
            REPLACE_BATTERY_SOON | REPLACE_BATTERY_NOW => Some(LockEvent::BatteryLow {
                device_id,
                critical: ev == REPLACE_BATTERY_NOW,
            }),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drivers::zwave::cc::notification::parse_report;

    fn ev(hex: &[u8]) -> Option<LockEvent> {
        lock_event("d", &normalize(&parse_report(hex).unwrap()))
    }

    #[test]
    fn notifications_by_the_event_list() {
        let keypad = [0x71, 0x05, 0, 0, 0, 0xFF, 0x06, 0x06, 0x01, 0x03];
        assert_eq!(
            ev(&keypad),
            Some(LockEvent::Operated {
                device_id: "d".into(),
                locked: false,
                method: LockMethod::Keycode,
                slot: Some(3)
            })
        );
        let manual = [0x71, 0x05, 0, 0, 0, 0xFF, 0x06, 0x01, 0x00];
        assert!(matches!(
            ev(&manual),
            Some(LockEvent::Operated {
                locked: true,
                method: LockMethod::Manual,
                slot: None,
                ..
            })
        ));
        let auto = [0x71, 0x05, 0, 0, 0, 0xFF, 0x06, 0x09, 0x00];
        assert!(matches!(
            ev(&auto),
            Some(LockEvent::Operated {
                method: LockMethod::Automatic,
                ..
            })
        ));
        let schedule = [0x71, 0x05, 0, 0, 0, 0xFF, 0x06, 0x30, 0x01, 0x07];
        assert!(matches!(
            ev(&schedule),
            Some(LockEvent::AccessDenied {
                reason: DeniedReason::OutsideSchedule,
                slot: Some(7),
                ..
            })
        ));
        let wrong = [0x71, 0x05, 0, 0, 0, 0xFF, 0x07, 0x04, 0x00];
        assert!(matches!(
            ev(&wrong),
            Some(LockEvent::AccessDenied {
                reason: DeniedReason::InvalidCode,
                ..
            })
        ));
        let open = [0x71, 0x05, 0, 0, 0, 0xFF, 0x06, 0x16, 0x00];
        assert!(matches!(
            ev(&open),
            Some(LockEvent::Door { open: true, .. })
        ));
        // A code change is not a lock event (the driver's slot logic).
        let added = [0x71, 0x05, 0, 0, 0, 0xFF, 0x06, 0x0E, 0x01, 0x05];
        assert_eq!(ev(&added), None);
    }

    #[test]
    fn v1_alarms_by_the_common_mapping() {
        // Kwikset / Yale: alarmType 19 keypad unlock, user 4 in alarmLevel.
        assert!(matches!(
            ev(&[0x71, 0x05, 19, 4]),
            Some(LockEvent::Operated {
                locked: false,
                method: LockMethod::Keycode,
                slot: Some(4),
                ..
            })
        ));
        assert!(matches!(
            ev(&[0x71, 0x05, 22, 1]),
            Some(LockEvent::Operated {
                locked: false,
                method: LockMethod::Manual,
                ..
            })
        ));
        assert!(matches!(
            ev(&[0x71, 0x05, 27, 1]),
            Some(LockEvent::Operated {
                locked: true,
                method: LockMethod::Automatic,
                ..
            })
        ));
        assert!(matches!(
            ev(&[0x71, 0x05, 161, 2]),
            Some(LockEvent::Tampered { .. })
        ));
        // v1 "code deleted" becomes the Access Control event the slot logic reads.
        let n = normalize(&parse_report(&[0x71, 0x05, 33, 6]).unwrap());
        assert!(n.is_access_control(event::SINGLE_USER_CODE_DELETED));
        assert_eq!(n.user_id(), Some(6));
        // Unknown alarm types stay as they are (and mean nothing).
        assert_eq!(ev(&[0x71, 0x05, 200, 1]), None);
        // A v2+ report's own type wins over its v1 bytes.
        let both = [0x71, 0x05, 21, 1, 0, 0xFF, 0x06, 0x02, 0x00];
        assert!(matches!(
            ev(&both),
            Some(LockEvent::Operated { locked: false, .. })
        ));
    }

    #[test]
    fn a_report_sent_again_under_its_sequence_number_is_a_repeat() {
        let t = Instant::now();
        let mut r = Repeats::default();
        let unlock = [0x71, 0x05, 0, 0, 0, 0xFF, 0x06, 0x06, 0x81, 0x03, 0x07];
        assert!(!r.repeated(7, &unlock, t));
        assert!(r.repeated(7, &unlock, t + Duration::from_secs(2)));
        // Another report, or the same number with other bytes: new.
        let next = [0x71, 0x05, 0, 0, 0, 0xFF, 0x06, 0x06, 0x81, 0x03, 0x08];
        assert!(!r.repeated(8, &next, t + Duration::from_secs(3)));
        let other = [0x71, 0x05, 0, 0, 0, 0xFF, 0x06, 0x01, 0x80, 0x07];
        assert!(!r.repeated(7, &other, t + Duration::from_secs(3)));
        // Long after: the number came round again.
        assert!(!r.repeated(7, &unlock, t + REPEAT_WINDOW + Duration::from_secs(1)));
    }

    #[test]
    fn battery_warnings_from_notifications_and_v1_alarms() {
        let low = |critical| {
            Some(LockEvent::BatteryLow {
                device_id: "d".into(),
                critical,
            })
        };
        // Power Management: replace battery soon / now.
        assert_eq!(
            ev(&[0x71, 0x05, 0, 0, 0, 0xFF, 0x08, 0x0A, 0x00]),
            low(false)
        );
        assert_eq!(
            ev(&[0x71, 0x05, 0, 0, 0, 0xFF, 0x08, 0x0B, 0x00]),
            low(true)
        );
        // v1 Alarm 167 low, 168 critical, 169 too low to operate.
        assert_eq!(ev(&[0x71, 0x05, 167, 0x01]), low(false));
        assert_eq!(ev(&[0x71, 0x05, 168, 0x01]), low(true));
        assert_eq!(ev(&[0x71, 0x05, 169, 0x01]), low(true));
        // Power applied is the driver's (a clock check), not a battery warning.
        assert_eq!(ev(&[0x71, 0x05, 0, 0, 0, 0xFF, 0x08, 0x01, 0x00]), None);
    }
}
