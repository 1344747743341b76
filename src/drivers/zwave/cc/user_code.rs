//! User Code CC (0x63): the codes in a lock's slots ("user ids").
//!
//! v1 sets and reads one slot per frame. v2 adds the capabilities report
//! (accepted keys, multi-code frames), extended (16-bit id, several codes per
//! frame) set/report and a checksum over every occupied slot, which tells
//! cheaply whether someone changed codes at the keypad.

use super::{id, need, CcError};
use crate::model::Pin;

pub const SET: u8 = 0x01;
pub const GET: u8 = 0x02;
pub const REPORT: u8 = 0x03;
pub const USERS_NUMBER_GET: u8 = 0x04;
pub const USERS_NUMBER_REPORT: u8 = 0x05;
pub const CAPABILITIES_GET: u8 = 0x06;
pub const CAPABILITIES_REPORT: u8 = 0x07;
pub const EXTENDED_SET: u8 = 0x0B;
pub const EXTENDED_GET: u8 = 0x0C;
pub const EXTENDED_REPORT: u8 = 0x0D;
pub const CHECKSUM_GET: u8 = 0x11;
pub const CHECKSUM_REPORT: u8 = 0x12;

/// User id status values.
pub mod status {
    pub const AVAILABLE: u8 = 0x00;
    pub const ENABLED: u8 = 0x01;
    pub const DISABLED: u8 = 0x02;
    pub const NOT_AVAILABLE: u8 = 0xFE;
}

/// Keypad code lengths the User Code CC allows (its v2 Capabilities Report
/// carries no lengths: a lock's own limits come from config or the
/// integrator's `report_device_constraints`).
pub const MIN_CODE_LEN: usize = 4;
pub const MAX_CODE_LEN: usize = 10;

/// Checks a code against the lock's lengths and keys.
pub fn validate_code(
    code: &Pin,
    keys: &str,
    lengths: std::ops::RangeInclusive<usize>,
) -> Result<(), CcError> {
    let c = code.expose();
    if !lengths.contains(&c.len()) {
        return Err(CcError::CodeLength(c.len()));
    }
    if !c.chars().all(|ch| keys.contains(ch)) {
        return Err(CcError::CodeCharacters);
    }
    Ok(())
}

fn user_id_u8(user: u32) -> Result<u8, CcError> {
    u8::try_from(user)
        .ok()
        .filter(|&u| u != 0)
        .ok_or(CcError::UserId(user))
}

/// v1 Set: put `code` (enabled) in `user`.
pub fn set(user: u32, code: &Pin) -> Result<Vec<u8>, CcError> {
    let mut v = vec![id::USER_CODE, SET, user_id_u8(user)?, status::ENABLED];
    v.extend_from_slice(code.expose().as_bytes());
    Ok(v)
}

/// v1 Set with status "available": empties the slot (four zero bytes as
/// the code, as the specification asks).
pub fn clear(user: u32) -> Result<Vec<u8>, CcError> {
    Ok(vec![
        id::USER_CODE,
        SET,
        user_id_u8(user)?,
        status::AVAILABLE,
        0,
        0,
        0,
        0,
    ])
}

pub fn get(user: u32) -> Result<Vec<u8>, CcError> {
    Ok(vec![id::USER_CODE, GET, user_id_u8(user)?])
}

pub fn users_number_get() -> Vec<u8> {
    vec![id::USER_CODE, USERS_NUMBER_GET]
}

pub fn capabilities_get() -> Vec<u8> {
    vec![id::USER_CODE, CAPABILITIES_GET]
}

pub fn checksum_get() -> Vec<u8> {
    vec![id::USER_CODE, CHECKSUM_GET]
}

/// One entry of an extended set: `Some(code)` to set, `None` to clear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtendedEntry {
    pub user: u32,
    pub code: Option<Pin>,
}

/// v2 Extended User Code Set: several slots in one frame.
pub fn extended_set(entries: &[ExtendedEntry]) -> Result<Vec<u8>, CcError> {
    if entries.is_empty() || entries.len() > 0xFF {
        return Err(CcError::Invalid("extended set needs 1 to 255 codes".into()));
    }
    let mut v = vec![id::USER_CODE, EXTENDED_SET, entries.len() as u8];
    for e in entries {
        let user = u16::try_from(e.user)
            .ok()
            .filter(|&u| u != 0)
            .ok_or(CcError::UserId(e.user))?;
        v.extend_from_slice(&user.to_be_bytes());
        match &e.code {
            Some(code) => {
                let c = code.expose().as_bytes();
                if c.len() > 0x0F {
                    return Err(CcError::CodeLength(c.len()));
                }
                v.push(status::ENABLED);
                v.push(c.len() as u8);
                v.extend_from_slice(c);
            }
            None => {
                v.push(status::AVAILABLE);
                v.push(0);
            }
        }
    }
    Ok(v)
}

/// One slot as the lock reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub user: u32,
    pub status: u8,
    /// The code, when the slot holds one (enabled or disabled).
    pub code: Option<Pin>,
}

/// The code bytes of a report; locks pad with 0x00 / 0xFF or send nothing
/// for an empty slot.
fn code_from(status: u8, raw: &[u8]) -> Option<Pin> {
    if status == status::AVAILABLE || status == status::NOT_AVAILABLE {
        return None;
    }
    let s: String = raw
        .iter()
        .filter(|b| b.is_ascii_graphic())
        .map(|&b| b as char)
        .collect();
    (!s.is_empty()).then(|| Pin::new(s))
}

pub fn parse_report(b: &[u8]) -> Result<Report, CcError> {
    need(b, 4)?;
    Ok(Report {
        user: b[2] as u32,
        status: b[3],
        code: code_from(b[3], &b[4..]),
    })
}

pub fn parse_users_number(b: &[u8]) -> Result<u16, CcError> {
    need(b, 3)?;
    if b.len() >= 5 {
        let ext = u16::from_be_bytes([b[3], b[4]]);
        return Ok(ext.max(b[2] as u16));
    }
    Ok(b[2] as u16)
}

pub fn parse_checksum(b: &[u8]) -> Result<u16, CcError> {
    need(b, 4)?;
    Ok(u16::from_be_bytes([b[2], b[3]]))
}

/// What a v2 lock says about its User Code support.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Capabilities {
    pub admin_code: bool,
    pub checksum: bool,
    pub multiple_report: bool,
    pub multiple_set: bool,
    /// The keys (ASCII characters) the keypad has.
    pub keys: String,
}

pub fn parse_capabilities(b: &[u8]) -> Result<Capabilities, CcError> {
    need(b, 3)?;
    let mut o = 2;
    let admin_code = b[o] & 0x80 != 0;
    let status_len = (b[o] & 0x1F) as usize;
    o += 1 + status_len;
    need(b, o + 1)?;
    let checksum = b[o] & 0x80 != 0;
    let multiple_report = b[o] & 0x40 != 0;
    let multiple_set = b[o] & 0x20 != 0;
    let modes_len = (b[o] & 0x1F) as usize;
    o += 1 + modes_len;
    need(b, o + 1)?;
    let keys_len = (b[o] & 0x1F) as usize;
    o += 1;
    need(b, o + keys_len)?;
    let mut keys = String::new();
    for (i, byte) in b[o..o + keys_len].iter().enumerate() {
        for bit in 0..8 {
            if byte & (1 << bit) != 0 {
                let c = (i * 8 + bit) as u8;
                if c.is_ascii_graphic() {
                    keys.push(c as char);
                }
            }
        }
    }
    Ok(Capabilities {
        admin_code,
        checksum,
        multiple_report,
        multiple_set,
        keys,
    })
}

/// Several slots from one Extended User Code Report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtendedReport {
    pub entries: Vec<Report>,
    /// The next occupied user id after these, 0 when none.
    pub next_user: u32,
}

pub fn parse_extended_report(b: &[u8]) -> Result<ExtendedReport, CcError> {
    need(b, 3)?;
    let n = b[2] as usize;
    let mut o = 3;
    let mut entries = Vec::with_capacity(n);
    for _ in 0..n {
        need(b, o + 4)?;
        let user = u16::from_be_bytes([b[o], b[o + 1]]) as u32;
        let st = b[o + 2];
        let len = (b[o + 3] & 0x0F) as usize;
        o += 4;
        need(b, o + len)?;
        entries.push(Report {
            user,
            status: st,
            code: code_from(st, &b[o..o + len]),
        });
        o += len;
    }
    let next_user = if b.len() >= o + 2 {
        u16::from_be_bytes([b[o], b[o + 1]]) as u32
    } else {
        0
    };
    Ok(ExtendedReport { entries, next_user })
}

/// The User Code checksum as the lock computes it: CRC-16/AUG-CCITT (poly
/// 0x1021, start 0x1D0F) over id (2 bytes), status and code of every
/// occupied slot in id order; 0 when no slot is occupied.
pub fn checksum<'a>(slots: impl IntoIterator<Item = (u32, u8, &'a Pin)>) -> u16 {
    let mut data = Vec::new();
    for (user, st, code) in slots {
        if st == status::AVAILABLE || code.is_empty() {
            continue;
        }
        data.extend_from_slice(&(user as u16).to_be_bytes());
        data.push(st);
        data.extend_from_slice(code.expose().as_bytes());
    }
    if data.is_empty() {
        return 0;
    }
    super::crc16_aug_ccitt(&data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_set_clear_get() {
        assert_eq!(
            set(3, &Pin::new("1234")).unwrap(),
            vec![0x63, 0x01, 0x03, 0x01, b'1', b'2', b'3', b'4']
        );
        assert_eq!(clear(30).unwrap(), vec![0x63, 0x01, 30, 0x00, 0, 0, 0, 0]);
        assert_eq!(get(7).unwrap(), vec![0x63, 0x02, 7]);
        assert_eq!(get(0), Err(CcError::UserId(0)));
        assert_eq!(set(256, &Pin::new("1234")), Err(CcError::UserId(256)));
    }

    #[test]
    fn validates_codes() {
        let all = MIN_CODE_LEN..=MAX_CODE_LEN;
        assert!(validate_code(&Pin::new("1234"), "0123456789", all.clone()).is_ok());
        assert_eq!(
            validate_code(&Pin::new("123"), "0123456789", all.clone()),
            Err(CcError::CodeLength(3))
        );
        assert_eq!(
            validate_code(&Pin::new("1234"), "0123456789", 6..=8),
            Err(CcError::CodeLength(4))
        );
        assert_eq!(
            validate_code(&Pin::new("1204"), "123456789", all),
            Err(CcError::CodeCharacters)
        );
    }

    #[test]
    fn parses_reports() {
        let r = parse_report(&[0x63, 0x03, 0x05, 0x01, b'9', b'8', b'7', b'6']).unwrap();
        assert_eq!(r.user, 5);
        assert_eq!(r.code.unwrap().expose(), "9876");
        let r = parse_report(&[0x63, 0x03, 0x05, 0x00, 0, 0, 0, 0]).unwrap();
        assert_eq!(r.code, None);
        let r = parse_report(&[0x63, 0x03, 0x05, 0x01]).unwrap();
        assert_eq!(r.code, None, "enabled but no code: nothing to keep");
        assert_eq!(parse_users_number(&[0x63, 0x05, 30]).unwrap(), 30);
        assert_eq!(
            parse_users_number(&[0x63, 0x05, 0xFF, 0x01, 0x2C]).unwrap(),
            300
        );
        assert_eq!(parse_checksum(&[0x63, 0x12, 0xAB, 0xCD]).unwrap(), 0xABCD);
    }

    #[test]
    fn extended_set_and_report() {
        let v = extended_set(&[
            ExtendedEntry {
                user: 1,
                code: Some(Pin::new("1234")),
            },
            ExtendedEntry {
                user: 300,
                code: None,
            },
        ])
        .unwrap();
        assert_eq!(
            v,
            vec![0x63, 0x0B, 2, 0x00, 0x01, 0x01, 4, b'1', b'2', b'3', b'4', 0x01, 0x2C, 0x00, 0]
        );
        assert!(extended_set(&[]).is_err());
        let r = parse_extended_report(&[
            0x63, 0x0D, 2, 0x00, 0x01, 0x01, 4, b'1', b'2', b'3', b'4', 0x00, 0x02, 0x00, 0, 0x00,
            0x07,
        ])
        .unwrap();
        assert_eq!(r.entries.len(), 2);
        assert_eq!(r.entries[0].code.as_ref().unwrap().expose(), "1234");
        assert_eq!(r.entries[1].code, None);
        assert_eq!(r.next_user, 7);
        assert!(parse_extended_report(&[0x63, 0x0D, 1, 0x00, 0x01, 0x01, 4, b'1']).is_err());
    }

    #[test]
    fn parses_capabilities_report() {
        // ACD, 1 status byte (0,1,2), checksum + multi-set, 1 mode byte, 8 key
        // bytes with '0'..'9' (0x30..0x39: byte 6 bits 0..7, byte 7 bits 0..1).
        let b = [
            0x63, 0x07, 0x81, 0x07, 0xA1, 0x03, 0x08, 0, 0, 0, 0, 0, 0, 0xFF, 0x03,
        ];
        let c = parse_capabilities(&b).unwrap();
        assert!(c.admin_code && c.checksum && c.multiple_set && !c.multiple_report);
        assert_eq!(c.keys, "0123456789");
        assert!(parse_capabilities(&[0x63, 0x07, 0x81, 0x07, 0xA1]).is_err());
    }

    #[test]
    fn checksum_matches_reference() {
        // CRC-16/AUG-CCITT of "123456789" is 0xE5CC; here the input is
        // id 1, status 1, "1234": computed independently with the same
        // algorithm as the lock (SDS13782).
        assert_eq!(checksum(std::iter::empty()), 0);
        let p = Pin::new("1234");
        let c1 = checksum([(1, 1, &p)]);
        let c2 = checksum([(2, 1, &p)]);
        assert_ne!(c1, c2);
        assert_eq!(checksum([(1, 0, &p)]), 0, "available slots do not count");
    }

    #[test]
    fn crc_reference_vector() {
        // Feed "123456789" through the same CRC by abusing id/status bytes:
        // id 0x3132 ("12"), status 0x33 ("3"), code "456789".
        let p = Pin::new("456789");
        assert_eq!(checksum([(0x3132, 0x33, &p)]), 0xE5CC);
    }
}
