//! Door Lock CC (0x62): the bolt's state.

use super::{id, need, CcError};

pub const OPERATION_SET: u8 = 0x01;
pub const OPERATION_GET: u8 = 0x02;
pub const OPERATION_REPORT: u8 = 0x03;

/// Door lock modes lockhub sets: secured and unsecured.
pub const SECURED: u8 = 0xFF;
pub const UNSECURED: u8 = 0x00;

pub fn operation_get() -> Vec<u8> {
    vec![id::DOOR_LOCK, OPERATION_GET]
}

/// Door Lock Operation Set: bolt thrown (`locked`) or withdrawn.
pub fn operation_set(locked: bool) -> Vec<u8> {
    let mode = if locked { SECURED } else { UNSECURED };
    vec![id::DOOR_LOCK, OPERATION_SET, mode]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OperationReport {
    /// The raw door lock mode (0x00 unsecured .. 0xFF secured).
    pub mode: u8,
    /// v3+: the mode the lock is moving to, and the seconds that takes
    /// (0: it is there); `None` from older locks.
    pub target: Option<(u8, u8)>,
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
    Ok(OperationReport {
        mode: b[2],
        target: (b.len() >= 9).then(|| (b[7], b[8])),
    })
}

/// Seconds a Z-Wave duration byte stands for (0x00..0x7F seconds,
/// 0x80..0xFD minutes, 0xFE unknown: counted as a few seconds).
pub fn duration_secs(d: u8) -> u64 {
    match d {
        0x00..=0x7F => d as u64,
        0x80..=0xFD => (d as u64 - 0x7F) * 60,
        _ => 5,
    }
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
        assert_eq!(r.target, None);
        let r = parse_operation_report(&[0x62, 0x03, 0x00, 0, 0, 0xFE, 0xFE, 0xFF, 0x03]).unwrap();
        assert_eq!((r.locked(), r.target), (Some(false), Some((0xFF, 3))));
        assert_eq!(operation_set(true), vec![0x62, 0x01, 0xFF]);
        assert_eq!(operation_set(false), vec![0x62, 0x01, 0x00]);
        assert_eq!((duration_secs(5), duration_secs(0x81)), (5, 120));
        assert!(parse_operation_report(&[0x62, 0x03]).is_err());
    }
}
