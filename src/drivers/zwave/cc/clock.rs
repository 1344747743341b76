//! Clock CC (0x81): a weekday and a time of day, in the lock's local time
//! (no date: it serves weekly schedules, not year-day windows).

use super::{id, need, CcError};

pub const SET: u8 = 0x04;
pub const GET: u8 = 0x05;
pub const REPORT: u8 = 0x06;

/// The wall-clock time a Clock Set carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalClock {
    /// 1 = Monday .. 7 = Sunday (0: unknown).
    pub weekday: u8,
    pub hour: u8,
    pub minute: u8,
}

impl LocalClock {
    /// The clock at a civil (local) date and time.
    pub fn at(t: jiff::civil::DateTime) -> LocalClock {
        LocalClock {
            weekday: t.weekday().to_monday_one_offset() as u8,
            hour: t.hour() as u8,
            minute: t.minute() as u8,
        }
    }
}

/// Set: weekday in the top 3 bits, hour in the low 5, then the minute.
pub fn set(c: LocalClock) -> Vec<u8> {
    vec![
        id::CLOCK,
        SET,
        (c.weekday & 0x07) << 5 | (c.hour & 0x1F),
        c.minute,
    ]
}

pub fn get() -> Vec<u8> {
    vec![id::CLOCK, GET]
}

pub fn parse_report(b: &[u8]) -> Result<LocalClock, CcError> {
    need(b, 4)?;
    let c = LocalClock {
        weekday: b[2] >> 5,
        hour: b[2] & 0x1F,
        minute: b[3],
    };
    if c.hour > 23 || c.minute > 59 {
        return Err(CcError::Invalid(format!(
            "the lock's clock reads {}:{}",
            c.hour, c.minute
        )));
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_and_report_bytes() {
        // Sunday 2027-03-28 03:05 local.
        let c = LocalClock::at(jiff::civil::date(2027, 3, 28).at(3, 5, 0, 0));
        assert_eq!(
            c,
            LocalClock {
                weekday: 7,
                hour: 3,
                minute: 5
            }
        );
        let v = set(c);
        assert_eq!(v, vec![0x81, 0x04, 7 << 5 | 3, 5]);
        assert_eq!(parse_report(&[0x81, 0x06, 7 << 5 | 3, 5]).unwrap(), c);
        assert!(parse_report(&[0x81, 0x06, 24, 0]).is_err());
        assert_eq!(get(), vec![0x81, 0x05]);
    }
}
