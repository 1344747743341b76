//! Battery CC (0x80): level in percent, or "low" (0xFF).

use super::{id, need, CcError};

pub const GET: u8 = 0x02;
pub const REPORT: u8 = 0x03;

pub fn get() -> Vec<u8> {
    vec![id::BATTERY, GET]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    Level(u8),
    /// The lock's low-battery warning (0xFF on the wire).
    Low,
}

impl Report {
    /// The level as lockhub reports it: "low" counts as 0 %.
    pub fn percent(self) -> u8 {
        match self {
            Report::Level(l) => l.min(100),
            Report::Low => 0,
        }
    }
}

pub fn parse_report(b: &[u8]) -> Result<Report, CcError> {
    need(b, 3)?;
    Ok(match b[2] {
        0xFF => Report::Low,
        l => Report::Level(l),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn vectors() {
        assert_eq!(get(), vec![0x80, 0x02]);
        assert_eq!(
            parse_report(&[0x80, 0x03, 0x64]).unwrap(),
            Report::Level(100)
        );
        assert_eq!(parse_report(&[0x80, 0x03, 0xFF]).unwrap().percent(), 0);
        assert!(parse_report(&[0x80, 0x03]).is_err());
    }
}
