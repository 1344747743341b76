//! Manufacturer Specific CC (0x72): who made the lock and which model it is.

use super::{id, need, CcError};

pub const GET: u8 = 0x04;
pub const REPORT: u8 = 0x05;

pub fn get() -> Vec<u8> {
    vec![id::MANUFACTURER_SPECIFIC, GET]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    pub manufacturer_id: u16,
    pub product_type: u16,
    pub product_id: u16,
}

pub fn parse_report(b: &[u8]) -> Result<Report, CcError> {
    need(b, 8)?;
    Ok(Report {
        manufacturer_id: u16::from_be_bytes([b[2], b[3]]),
        product_type: u16::from_be_bytes([b[4], b[5]]),
        product_id: u16::from_be_bytes([b[6], b[7]]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn vectors() {
        assert_eq!(get(), vec![0x72, 0x04]);
        let r = parse_report(&[0x72, 0x05, 0x00, 0x90, 0x00, 0x01, 0x06, 0x42]).unwrap();
        assert_eq!(
            (r.manufacturer_id, r.product_type, r.product_id),
            (0x90, 1, 0x642)
        );
        assert!(parse_report(&[0x72, 0x05, 0x00]).is_err());
    }
}
