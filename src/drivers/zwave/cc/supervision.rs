//! Supervision CC (0x6C): wraps a Set so the lock says whether it carried it
//! out (Success / Fail), instead of us reading the slot back.

use super::{id, need, CcError};

pub const GET: u8 = 0x01;
pub const REPORT: u8 = 0x02;

/// Supervision status values.
pub mod status {
    pub const NO_SUPPORT: u8 = 0x00;
    pub const WORKING: u8 = 0x01;
    pub const FAIL: u8 = 0x02;
    pub const SUCCESS: u8 = 0xFF;
}

/// Wraps `inner` in a Supervision Get with `session` (6 bits).
pub fn get(session: u8, inner: &[u8]) -> Result<Vec<u8>, CcError> {
    if inner.len() > 0xFF {
        return Err(CcError::Invalid("command too long to supervise".into()));
    }
    let mut v = vec![id::SUPERVISION, GET, session & 0x3F, inner.len() as u8];
    v.extend_from_slice(inner);
    Ok(v)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    pub session: u8,
    pub more_updates: bool,
    pub status: u8,
}

pub fn parse_report(b: &[u8]) -> Result<Report, CcError> {
    need(b, 4)?;
    Ok(Report {
        session: b[2] & 0x3F,
        more_updates: b[2] & 0x80 != 0,
        status: b[3],
    })
}

/// A Supervision Get sent *by* the node (it wants to know we took a report).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Get {
    pub session: u8,
    pub inner: Vec<u8>,
}

pub fn parse_get(b: &[u8]) -> Result<Get, CcError> {
    need(b, 4)?;
    let len = b[3] as usize;
    need(b, 4 + len)?;
    Ok(Get {
        session: b[2] & 0x3F,
        inner: b[4..4 + len].to_vec(),
    })
}

/// Our answer to a node's Supervision Get.
pub fn report(session: u8, status: u8) -> Vec<u8> {
    vec![id::SUPERVISION, REPORT, session & 0x3F, status, 0x00]
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn vectors() {
        assert_eq!(
            get(0x45, &[0x63, 0x02, 0x01]).unwrap(),
            vec![0x6C, 0x01, 0x05, 0x03, 0x63, 0x02, 0x01]
        );
        assert_eq!(
            parse_report(&[0x6C, 0x02, 0x85, 0xFF, 0x00]).unwrap(),
            Report {
                session: 5,
                more_updates: true,
                status: status::SUCCESS
            }
        );
        let g = parse_get(&[0x6C, 0x01, 0x07, 0x02, 0x80, 0x03]).unwrap();
        assert_eq!(
            g,
            Get {
                session: 7,
                inner: vec![0x80, 0x03]
            }
        );
        assert!(parse_get(&[0x6C, 0x01, 0x07, 0x03, 0x80]).is_err());
        assert_eq!(
            report(7, status::SUCCESS),
            vec![0x6C, 0x02, 0x07, 0xFF, 0x00]
        );
    }
}
