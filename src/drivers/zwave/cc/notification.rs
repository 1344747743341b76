//! Notification CC (0x71, v2+; v1 "Alarm" reports are read for their type
//! and level, and sorted by `super::super::reports`). Access Control
//! (type 6) tells how the bolt moved, who was turned away, the door sensor
//! and codes changed at the lock; Home Security (type 7) tampering.

use super::{id, need, CcError};

pub const REPORT: u8 = 0x05;
/// Properties1's Sequence bit (v3+): a sequence number follows the parameters.
const SEQUENCE: u8 = 0x80;

/// Notification type Access Control.
pub const ACCESS_CONTROL: u8 = 0x06;
/// Notification type Home Security.
pub const HOME_SECURITY: u8 = 0x07;
/// Notification type Power Management.
pub const POWER_MANAGEMENT: u8 = 0x08;
/// Power Management: "power has been applied" (the node restarted).
pub const POWER_APPLIED: u8 = 0x01;
/// Power Management: "replace battery soon" / "replace battery now".
pub const REPLACE_BATTERY_SOON: u8 = 0x0A;
pub const REPLACE_BATTERY_NOW: u8 = 0x0B;

/// Access Control events the driver acts on (Z-Wave Notification CC event
/// list, as zwave-js's registry names them).
pub mod event {
    pub const MANUAL_LOCK: u8 = 0x01;
    pub const MANUAL_UNLOCK: u8 = 0x02;
    pub const RF_LOCK: u8 = 0x03;
    pub const RF_UNLOCK: u8 = 0x04;
    pub const KEYPAD_LOCK: u8 = 0x05;
    pub const KEYPAD_UNLOCK: u8 = 0x06;
    pub const AUTO_LOCK: u8 = 0x09;
    pub const ALL_USER_CODES_DELETED: u8 = 0x0C;
    pub const SINGLE_USER_CODE_DELETED: u8 = 0x0D;
    pub const NEW_USER_CODE_ADDED: u8 = 0x0E;
    pub const NEW_USER_CODE_NOT_ADDED_DUPLICATE: u8 = 0x0F;
    /// "Manually enter user access code exceeds code limit".
    pub const CODE_LIMIT_EXCEEDED: u8 = 0x13;
    pub const DOOR_OPEN: u8 = 0x16;
    pub const DOOR_CLOSED: u8 = 0x17;
    /// "Lock operation with User Code" / "Unlock operation with User Code".
    pub const LOCK_WITH_USER_CODE: u8 = 0x21;
    pub const UNLOCK_WITH_USER_CODE: u8 = 0x22;
    /// "Valid credential access denied: User Active State set to Occupied Disabled".
    pub const DENIED_USER_DISABLED: u8 = 0x2F;
    /// "Valid credential access denied: Schedule inactive".
    pub const DENIED_SCHEDULE_INACTIVE: u8 = 0x30;
    /// "Invalid credential used".
    pub const INVALID_CREDENTIAL: u8 = 0x32;
}

/// Home Security events the driver acts on.
pub mod security_event {
    /// "Tampering, product cover removed".
    pub const COVER_REMOVED: u8 = 0x03;
    /// "Tampering, invalid code".
    pub const INVALID_CODE: u8 = 0x04;
    /// "Tampering, product moved".
    pub const MOVED: u8 = 0x09;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub v1_type: u8,
    pub v1_level: u8,
    pub notification_type: Option<u8>,
    pub event: Option<u8>,
    pub params: Vec<u8>,
    /// The sequence number of a v3+ report with the Sequence bit set: the
    /// same number again is the lock sending the same report again.
    pub sequence: Option<u8>,
}

impl Report {
    /// The user id (slot) the event names, if any: a bare id (1 or 2 bytes)
    /// or an embedded User Code Report.
    pub fn user_id(&self) -> Option<u32> {
        let p = &self.params;
        match p.len() {
            0 => None,
            1 => Some(p[0] as u32).filter(|&u| u != 0),
            2 => Some(u16::from_be_bytes([p[0], p[1]]) as u32).filter(|&u| u != 0),
            _ if p[0] == id::USER_CODE && p[1] == super::user_code::REPORT => {
                Some(p[2] as u32).filter(|&u| u != 0)
            }
            _ => None,
        }
    }

    /// The embedded User Code Report, where the lock sent one.
    pub fn user_code_report(&self) -> Option<super::user_code::Report> {
        let p = &self.params;
        if p.len() >= 4 && p[0] == id::USER_CODE && p[1] == super::user_code::REPORT {
            super::user_code::parse_report(p).ok()
        } else {
            None
        }
    }

    pub fn is_access_control(&self, ev: u8) -> bool {
        self.notification_type == Some(ACCESS_CONTROL) && self.event == Some(ev)
    }
}

pub fn parse_report(b: &[u8]) -> Result<Report, CcError> {
    need(b, 4)?;
    let mut r = Report {
        v1_type: b[2],
        v1_level: b[3],
        notification_type: None,
        event: None,
        params: Vec::new(),
        sequence: None,
    };
    if b.len() >= 8 {
        r.notification_type = Some(b[6]);
        r.event = Some(b[7]);
        if let Some(&props) = b.get(8) {
            let len = (props & 0x1F) as usize;
            need(b, 9 + len)?;
            r.params = b[9..9 + len].to_vec();
            if props & SEQUENCE != 0 {
                need(b, 10 + len)?;
                r.sequence = Some(b[9 + len]);
            }
        }
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keypad_unlock_with_bare_user_id() {
        let b = [0x71, 0x05, 0x00, 0x00, 0x00, 0xFF, 0x06, 0x06, 0x01, 0x03];
        let r = parse_report(&b).unwrap();
        assert!(r.is_access_control(event::KEYPAD_UNLOCK));
        assert_eq!(r.user_id(), Some(3));
    }

    #[test]
    fn code_added_with_embedded_user_code_report() {
        let b = [
            0x71, 0x05, 0x00, 0x00, 0x00, 0xFF, 0x06, 0x0E, 0x08, 0x63, 0x03, 0x05, 0x01, b'1',
            b'3', b'5', b'7',
        ];
        let r = parse_report(&b).unwrap();
        assert!(r.is_access_control(event::NEW_USER_CODE_ADDED));
        assert_eq!(r.user_id(), Some(5));
        let uc = r.user_code_report().unwrap();
        assert_eq!(uc.code.as_ref().unwrap().expose(), "1357");
    }

    #[test]
    fn sequence_number_after_the_params() {
        // Keypad unlock by user 3, Sequence bit set, sequence number 7.
        let b = [0x71, 0x05, 0, 0, 0, 0xFF, 0x06, 0x06, 0x81, 0x03, 0x07];
        let r = parse_report(&b).unwrap();
        assert_eq!((r.user_id(), r.sequence), (Some(3), Some(7)));
        let plain = parse_report(&b[..10]).err();
        assert!(plain.is_some(), "the Sequence bit without its byte");
        let r = parse_report(&[0x71, 0x05, 0, 0, 0, 0xFF, 0x06, 0x06, 0x01, 0x03]).unwrap();
        assert_eq!(r.sequence, None);
    }

    #[test]
    fn v1_alarm_and_truncated_params() {
        let r = parse_report(&[0x71, 0x05, 0x15, 0x01]).unwrap();
        assert_eq!((r.v1_type, r.v1_level, r.event), (0x15, 0x01, None));
        assert!(parse_report(&[0x71, 0x05, 0, 0, 0, 0xFF, 0x06, 0x06, 0x02, 0x03]).is_err());
        assert!(parse_report(&[0x71, 0x05, 0]).is_err());
    }
}
