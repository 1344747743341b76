//! Door Lock CC (0x62): the bolt's state.

use super::{id, need, CcError};

pub const OPERATION_GET: u8 = 0x02;
pub const OPERATION_REPORT: u8 = 0x03;

pub fn operation_get() -> Vec<u8> {
    vec![id::DOOR_LOCK, OPERATION_GET]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OperationReport {
    /// The raw door lock mode (0x00 unsecured .. 0xFF secured).
    pub mode: u8,
}

impl OperationReport {
    /// Secured (0xFF) counts as locked; every "unsecured" mode (with or
    /// without timeout, inside or outside handles) as unlocked; 0xFE (unknown)
    /// as not known.
    pub fn locked(&self) -> Option<bool> {
        match self.mode {
            0xFF => Some(true),
            0xFE => None,
            _ => Some(false),
        }
    }
}

pub fn parse_operation_report(b: &[u8]) -> Result<OperationReport, CcError> {
    need(b, 3)?;
    Ok(OperationReport { mode: b[2] })
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn vectors() {
        assert_eq!(operation_get(), vec![0x62, 0x02]);
        let r = parse_operation_report(&[0x62, 0x03, 0xFF, 0x00, 0x00, 0xFE, 0xFE]).unwrap();
        assert_eq!(r.locked(), Some(true));
        let r = parse_operation_report(&[0x62, 0x03, 0x01, 0x00, 0x00, 0xFE, 0xFE]).unwrap();
        assert_eq!(r.locked(), Some(false));
        assert!(parse_operation_report(&[0x62, 0x03]).is_err());
    }
}
