//! Version CC (0x86): firmware version and the version of each command class.

use super::{id, need, CcError};

pub const GET: u8 = 0x11;
pub const REPORT: u8 = 0x12;
pub const CC_GET: u8 = 0x13;
pub const CC_REPORT: u8 = 0x14;

pub fn get() -> Vec<u8> {
    vec![id::VERSION, GET]
}

pub fn cc_get(cc: u8) -> Vec<u8> {
    vec![id::VERSION, CC_GET, cc]
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub library_type: u8,
    pub protocol: (u8, u8),
    pub firmware: (u8, u8),
}

pub fn parse_report(b: &[u8]) -> Result<Report, CcError> {
    need(b, 7)?;
    Ok(Report {
        library_type: b[2],
        protocol: (b[3], b[4]),
        firmware: (b[5], b[6]),
    })
}

/// (class, version); version 0 means "not supported".
pub fn parse_cc_report(b: &[u8]) -> Result<(u8, u8), CcError> {
    need(b, 4)?;
    Ok((b[2], b[3]))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn vectors() {
        assert_eq!(get(), vec![0x86, 0x11]);
        assert_eq!(cc_get(0x63), vec![0x86, 0x13, 0x63]);
        assert_eq!(
            parse_cc_report(&[0x86, 0x14, 0x63, 0x02]).unwrap(),
            (0x63, 2)
        );
        let r = parse_report(&[0x86, 0x12, 0x03, 0x07, 0x15, 0x01, 0x02]).unwrap();
        assert_eq!(r.firmware, (1, 2));
        assert!(parse_cc_report(&[0x86, 0x14, 0x63]).is_err());
    }
}
