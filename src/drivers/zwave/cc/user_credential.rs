//! User Credential CC (0x83): the lock CC that replaces User Code on new
//! locks. A lock holds *users* (who) and *credentials* (PIN codes, cards,
//! fingerprints, each in a numbered slot of its type, owned by one user).
//!
//! Only what lockhub needs is here: the capabilities (users, and for PIN
//! codes the slots, lengths and whether the lock reads them back), adding
//! and deleting users, setting, reading and deleting PIN credentials, and
//! the per-type credential checksum. The byte layout follows zwave-js's
//! `UserCredentialCC` (15.23+), field for field.

use super::{id, need, CcError};
use crate::model::Pin;

pub const USER_CAPABILITIES_GET: u8 = 0x01;
pub const USER_CAPABILITIES_REPORT: u8 = 0x02;
pub const CREDENTIAL_CAPABILITIES_GET: u8 = 0x03;
pub const CREDENTIAL_CAPABILITIES_REPORT: u8 = 0x04;
pub const USER_SET: u8 = 0x05;
pub const USER_GET: u8 = 0x06;
pub const USER_REPORT: u8 = 0x07;
pub const CREDENTIAL_SET: u8 = 0x0A;
pub const CREDENTIAL_GET: u8 = 0x0B;
pub const CREDENTIAL_REPORT: u8 = 0x0C;
pub const CREDENTIAL_CHECKSUM_GET: u8 = 0x18;
pub const CREDENTIAL_CHECKSUM_REPORT: u8 = 0x19;

/// Credential types (only PIN codes are lockhub's business).
pub const TYPE_NONE: u8 = 0;
pub const TYPE_PIN: u8 = 1;

/// Operation of a User Set / Credential Set.
pub mod op {
    pub const ADD: u8 = 0;
    pub const MODIFY: u8 = 1;
    pub const DELETE: u8 = 2;
}

/// User Report types.
pub mod user_report {
    pub const ADDED: u8 = 0;
    pub const MODIFIED: u8 = 1;
    pub const DELETED: u8 = 2;
    pub const UNCHANGED: u8 = 3;
    pub const RESPONSE_TO_GET: u8 = 4;
    pub const ADD_REJECTED_OCCUPIED: u8 = 5;
    pub const MODIFY_REJECTED_EMPTY: u8 = 6;
}

/// Credential Report types.
pub mod credential_report {
    pub const ADDED: u8 = 0;
    pub const MODIFIED: u8 = 1;
    pub const DELETED: u8 = 2;
    pub const UNCHANGED: u8 = 3;
    pub const RESPONSE_TO_GET: u8 = 4;
    pub const ADD_REJECTED_OCCUPIED: u8 = 5;
    pub const MODIFY_REJECTED_EMPTY: u8 = 6;
    pub const DUPLICATE: u8 = 7;
    pub const MANUFACTURER_RULES: u8 = 8;
    pub const WRONG_USER: u8 = 9;
    pub const DUPLICATE_ADMIN: u8 = 10;
}

/// What the lock says about its users.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserCapabilities {
    pub users: u16,
    pub max_name_len: u8,
}

pub fn user_capabilities_get() -> Vec<u8> {
    vec![id::USER_CREDENTIAL, USER_CAPABILITIES_GET]
}

pub fn parse_user_capabilities(b: &[u8]) -> Result<UserCapabilities, CcError> {
    need(b, 6)?;
    Ok(UserCapabilities {
        users: u16::from_be_bytes([b[2], b[3]]),
        max_name_len: b[5],
    })
}

/// What the lock says about one credential type.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CredentialType {
    pub credential_type: u8,
    pub slots: u16,
    pub min_len: u8,
    pub max_len: u8,
    /// 0: the lock reads the credential back; otherwise it only keeps a hash
    /// of this length (and a Get never shows the code).
    pub max_hash_len: u8,
}

/// The Credential Capabilities Report.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CredentialCapabilities {
    pub checksum: bool,
    pub types: Vec<CredentialType>,
}

impl CredentialCapabilities {
    pub fn pin(&self) -> Option<&CredentialType> {
        self.types.iter().find(|t| t.credential_type == TYPE_PIN)
    }
}

pub fn credential_capabilities_get() -> Vec<u8> {
    vec![id::USER_CREDENTIAL, CREDENTIAL_CAPABILITIES_GET]
}

/// Flags, n, then n-long columns: types, learn flags, slots (2 bytes each),
/// min lengths, max lengths, learn timeouts, learn steps, max hash lengths.
pub fn parse_credential_capabilities(b: &[u8]) -> Result<CredentialCapabilities, CcError> {
    need(b, 4)?;
    let checksum = b[2] & 0x80 != 0;
    let n = b[3] as usize;
    let p = &b[4..];
    if p.len() < n * 9 {
        return Err(CcError::TooShort {
            cc: b[0],
            cmd: b[1],
            len: b.len(),
        });
    }
    let slots_at = 2 * n;
    let min_at = slots_at + 2 * n;
    let max_at = min_at + n;
    let hash_at = max_at + 3 * n;
    let types = (0..n)
        .map(|i| CredentialType {
            credential_type: p[i],
            slots: u16::from_be_bytes([p[slots_at + 2 * i], p[slots_at + 2 * i + 1]]),
            min_len: p[min_at + i],
            max_len: p[max_at + i],
            max_hash_len: p[hash_at + i],
        })
        .collect();
    Ok(CredentialCapabilities { checksum, types })
}

fn user_id(user: u32) -> Result<[u8; 2], CcError> {
    u16::try_from(user)
        .ok()
        .filter(|&u| u != 0)
        .map(u16::to_be_bytes)
        .ok_or(CcError::UserId(user))
}

/// User Set (Add or Modify): a general, active user with one credential
/// rule ("single") and an ASCII name (cut to `max_name_len`).
pub fn user_set(
    operation: u8,
    user: u32,
    name: &str,
    max_name_len: u8,
) -> Result<Vec<u8>, CcError> {
    let name: Vec<u8> = name
        .bytes()
        .filter(|b| b.is_ascii_graphic() || *b == b' ')
        .take(max_name_len as usize)
        .collect();
    let mut v = vec![id::USER_CREDENTIAL, USER_SET, operation & 0x03];
    v.extend_from_slice(&user_id(user)?);
    v.extend_from_slice(&[0x00, 0x01, 0x01, 0x00, 0x00, 0x00, name.len() as u8]);
    v.extend_from_slice(&name);
    Ok(v)
}

/// User Set (Delete): the user and every credential it owns.
pub fn user_delete(user: u32) -> Result<Vec<u8>, CcError> {
    let mut v = vec![id::USER_CREDENTIAL, USER_SET, op::DELETE];
    v.extend_from_slice(&user_id(user)?);
    Ok(v)
}

/// The parts of a User Report lockhub looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserReport {
    pub report_type: u8,
    pub user: u32,
}

pub fn parse_user_report(b: &[u8]) -> Result<UserReport, CcError> {
    need(b, 15)?;
    Ok(UserReport {
        report_type: b[2],
        user: u16::from_be_bytes([b[8], b[9]]) as u32,
    })
}

/// Credential Set (Add or Modify) of a PIN code in `slot`, owned by `user`.
pub fn credential_set(operation: u8, user: u32, slot: u32, code: &Pin) -> Result<Vec<u8>, CcError> {
    let data = code.expose().as_bytes();
    let len = u8::try_from(data.len()).map_err(|_| CcError::CodeLength(data.len()))?;
    let mut v = vec![id::USER_CREDENTIAL, CREDENTIAL_SET];
    v.extend_from_slice(&user_id(user)?);
    v.push(TYPE_PIN);
    v.extend_from_slice(&user_id(slot)?);
    v.push(operation & 0x03);
    v.push(len);
    v.extend_from_slice(data);
    Ok(v)
}

/// Credential Set (Delete) of the PIN code in `slot` (the lock wants its owner).
pub fn credential_delete(user: u32, slot: u32) -> Result<Vec<u8>, CcError> {
    let mut v = vec![id::USER_CREDENTIAL, CREDENTIAL_SET];
    v.extend_from_slice(&user_id(user)?);
    v.push(TYPE_PIN);
    v.extend_from_slice(&user_id(slot)?);
    v.push(op::DELETE);
    Ok(v)
}

/// Credential Get of the PIN code in `slot`, whoever owns it (slot 0: the
/// first occupied one).
pub fn credential_get(slot: u32) -> Vec<u8> {
    let s = (slot.min(u16::MAX as u32) as u16).to_be_bytes();
    vec![
        id::USER_CREDENTIAL,
        CREDENTIAL_GET,
        0,
        0,
        TYPE_PIN,
        s[0],
        s[1],
    ]
}

/// A Credential Report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialReport {
    pub report_type: u8,
    /// The owner (0: the slot is empty).
    pub user: u32,
    pub credential_type: u8,
    pub slot: u32,
    /// The code when the lock reads it back; `None` for an empty slot or a
    /// lock that keeps only a hash.
    pub code: Option<Pin>,
    /// The lock sent the credential's data (the "read back" flag).
    pub read_back: bool,
    /// The next occupied credential (type, slot) after this one, in answer
    /// to a Get; (0, 0) when none.
    pub next: (u8, u32),
}

impl CredentialReport {
    /// The slot holds a credential (even one the lock does not show).
    pub fn occupied(&self) -> bool {
        self.user != 0
    }
}

pub fn parse_credential_report(b: &[u8]) -> Result<CredentialReport, CcError> {
    need(b, 10)?;
    let p = &b[2..];
    let len = p[7] as usize;
    need(b, 2 + 8 + len + 3)?;
    let read_back = p[6] & 0x80 != 0;
    let data = &p[8..8 + len];
    let o = 8 + len;
    let next = if p.len() >= o + 6 {
        (p[o + 3], u16::from_be_bytes([p[o + 4], p[o + 5]]) as u32)
    } else {
        (TYPE_NONE, 0)
    };
    let user = u16::from_be_bytes([p[1], p[2]]) as u32;
    let code = (read_back && user != 0 && !data.is_empty())
        .then(|| String::from_utf8_lossy(data).into_owned())
        .map(Pin::new);
    Ok(CredentialReport {
        report_type: p[0],
        user,
        credential_type: p[3],
        slot: u16::from_be_bytes([p[4], p[5]]) as u32,
        code,
        read_back,
        next,
    })
}

pub fn credential_checksum_get() -> Vec<u8> {
    vec![id::USER_CREDENTIAL, CREDENTIAL_CHECKSUM_GET, TYPE_PIN]
}

/// (credential type, checksum).
pub fn parse_credential_checksum(b: &[u8]) -> Result<(u8, u16), CcError> {
    need(b, 5)?;
    Ok((b[2], u16::from_be_bytes([b[3], b[4]])))
}

/// The PIN credential checksum as the lock computes it: CRC-16/AUG-CCITT
/// over slot (2 bytes), length and data of every PIN credential in slot
/// order; 0 when there is none.
pub fn checksum<'a>(creds: impl IntoIterator<Item = (u32, &'a Pin)>) -> u16 {
    let mut data = Vec::new();
    for (slot, code) in creds {
        let c = code.expose().as_bytes();
        data.extend_from_slice(&(slot as u16).to_be_bytes());
        data.push(c.len() as u8);
        data.extend_from_slice(c);
    }
    if data.is_empty() {
        0
    } else {
        super::crc16_aug_ccitt(&data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Reports below are laid out as zwave-js's serialize() writes them.

    #[test]
    fn parses_capabilities() {
        // 10 users, rules {single}, name 32, flags (all-users + user checksum,
        // ASCII), 2 user-type bitmask bytes.
        let u =
            parse_user_capabilities(&[0x83, 0x02, 0, 10, 0x02, 32, 0x60, 2, 0xF9, 0x02]).unwrap();
        assert_eq!(
            u,
            UserCapabilities {
                users: 10,
                max_name_len: 32
            }
        );
        // checksum + admin code, 2 types: PIN (10 slots, 4..10, no hash) and
        // RFID (5 slots, 8..16, hash 32).
        let b = [
            0x83, 0x04, 0xC0, 2, // flags, n
            1, 3, // types
            0, 0, // learn
            0, 10, 0, 5, // slots
            4, 8, // min
            10, 16, // max
            0, 0, 0, 0, // learn timeout, steps
            0, 32, // max hash
        ];
        let c = parse_credential_capabilities(&b).unwrap();
        assert!(c.checksum);
        assert_eq!(
            c.pin(),
            Some(&CredentialType {
                credential_type: 1,
                slots: 10,
                min_len: 4,
                max_len: 10,
                max_hash_len: 0
            })
        );
        assert_eq!(c.types[1].max_hash_len, 32);
        assert!(parse_credential_capabilities(&b[..10]).is_err());
    }

    #[test]
    fn builds_sets_and_gets() {
        assert_eq!(
            user_set(op::ADD, 3, "Jane*", 4).unwrap(),
            vec![0x83, 0x05, 0, 0, 3, 0, 1, 1, 0, 0, 0, 4, b'J', b'a', b'n', b'e']
        );
        assert_eq!(user_delete(300).unwrap(), vec![0x83, 0x05, 2, 0x01, 0x2C]);
        assert_eq!(
            credential_set(op::MODIFY, 3, 3, &Pin::new("1234")).unwrap(),
            vec![0x83, 0x0A, 0, 3, 1, 0, 3, 1, 4, b'1', b'2', b'3', b'4']
        );
        assert_eq!(
            credential_delete(7, 3).unwrap(),
            vec![0x83, 0x0A, 0, 7, 1, 0, 3, 2]
        );
        assert_eq!(credential_get(0), vec![0x83, 0x0B, 0, 0, 1, 0, 0]);
        assert_eq!(user_set(op::ADD, 0, "", 8), Err(CcError::UserId(0)));
    }

    #[test]
    fn parses_credential_reports() {
        // Response to get: user 3, PIN slot 3, read back "1234", modifier
        // Z-Wave node 1, next PIN slot 5.
        let r = parse_credential_report(&[
            0x83, 0x0C, 4, 0, 3, 1, 0, 3, 0x80, 4, b'1', b'2', b'3', b'4', 2, 0, 1, 1, 0, 5,
        ])
        .unwrap();
        assert_eq!((r.report_type, r.user, r.slot), (4, 3, 3));
        assert_eq!(r.code.as_ref().map(Pin::expose), Some("1234"));
        assert_eq!(r.next, (TYPE_PIN, 5));
        assert!(r.occupied());
        // Empty slot, no read back.
        let r = parse_credential_report(&[0x83, 0x0C, 4, 0, 0, 1, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0])
            .unwrap();
        assert!(!r.occupied() && r.code.is_none());
        // Occupied but hashed: no code.
        let r = parse_credential_report(&[0x83, 0x0C, 0, 0, 2, 1, 0, 2, 0x00, 0, 2, 0, 1]).unwrap();
        assert!(r.occupied() && r.code.is_none() && !r.read_back);
        assert!(parse_credential_report(&[0x83, 0x0C, 4, 0, 3, 1, 0, 3, 0x80, 4, b'1']).is_err());
    }

    #[test]
    fn checksum_is_the_locks() {
        // The mock's buildCredentialChecksumData: slot, length, data; its
        // CRC16_CCITT starts at 0x1D0F (7439).
        assert_eq!(checksum(std::iter::empty()), 0);
        let p = Pin::new("1234");
        let mut data = vec![0, 1, 4];
        data.extend_from_slice(b"1234");
        assert_eq!(checksum([(1, &p)]), super::super::crc16_aug_ccitt(&data));
        assert_ne!(checksum([(1, &p)]), checksum([(2, &p)]));
        assert_eq!(
            parse_credential_checksum(&[0x83, 0x19, 1, 0xAB, 0xCD]).unwrap(),
            (1, 0xABCD)
        );
    }
}
