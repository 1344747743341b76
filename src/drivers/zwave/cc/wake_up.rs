//! Wake Up CC (0x84): a sleeping lock says it is awake (Notification); we
//! send what is pending, then No More Information so it sleeps again.

use super::{id, need, CcError};

pub const INTERVAL_GET: u8 = 0x05;
pub const INTERVAL_REPORT: u8 = 0x06;
pub const NOTIFICATION: u8 = 0x07;
pub const NO_MORE_INFORMATION: u8 = 0x08;

pub fn interval_get() -> Vec<u8> {
    vec![id::WAKE_UP, INTERVAL_GET]
}

pub fn no_more_information() -> Vec<u8> {
    vec![id::WAKE_UP, NO_MORE_INFORMATION]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntervalReport {
    pub seconds: u32,
    pub controller_node: u8,
}

pub fn parse_interval_report(b: &[u8]) -> Result<IntervalReport, CcError> {
    need(b, 6)?;
    Ok(IntervalReport {
        seconds: u32::from_be_bytes([0, b[2], b[3], b[4]]),
        controller_node: b[5],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn vectors() {
        assert_eq!(interval_get(), vec![0x84, 0x05]);
        assert_eq!(no_more_information(), vec![0x84, 0x08]);
        assert_eq!(
            parse_interval_report(&[0x84, 0x06, 0x00, 0x0E, 0x10, 0x01]).unwrap(),
            IntervalReport {
                seconds: 3600,
                controller_node: 1
            }
        );
        assert!(parse_interval_report(&[0x84, 0x06, 0x00]).is_err());
    }
}
