//! Time Parameters CC (0x8B): the lock's calendar clock, in UTC (the lock
//! turns it into local time with the Schedule Entry Lock time offset).

use super::{id, need, CcError};
use chrono::{DateTime, Datelike, TimeZone, Timelike, Utc};

pub const SET: u8 = 0x01;
pub const GET: u8 = 0x02;
pub const REPORT: u8 = 0x03;

/// Set: year (16 bits, big-endian), month, day, hour, minute, second, UTC.
pub fn set(now: DateTime<Utc>) -> Result<Vec<u8>, CcError> {
    let year = u16::try_from(now.year())
        .map_err(|_| CcError::Invalid(format!("year {} cannot be sent", now.year())))?;
    let [hi, lo] = year.to_be_bytes();
    Ok(vec![
        id::TIME_PARAMETERS,
        SET,
        hi,
        lo,
        now.month() as u8,
        now.day() as u8,
        now.hour() as u8,
        now.minute() as u8,
        now.second().min(59) as u8,
    ])
}

pub fn get() -> Vec<u8> {
    vec![id::TIME_PARAMETERS, GET]
}

/// The lock's clock from a Report (same layout as Set). A lock that lost its
/// clock may report nonsense (month 0): that is an error, not a time.
pub fn parse_report(b: &[u8]) -> Result<DateTime<Utc>, CcError> {
    need(b, 9)?;
    let year = u16::from_be_bytes([b[2], b[3]]) as i32;
    Utc.with_ymd_and_hms(
        year,
        b[4] as u32,
        b[5] as u32,
        b[6] as u32,
        b[7] as u32,
        b[8] as u32,
    )
    .single()
    .ok_or_else(|| {
        CcError::Invalid(format!(
            "the lock's clock reads {year}-{}-{} {}:{}:{}",
            b[4], b[5], b[6], b[7], b[8]
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_and_report_bytes() {
        let t = Utc.with_ymd_and_hms(2027, 3, 28, 1, 2, 3).unwrap();
        let v = set(t).unwrap();
        // 2027 = 0x07EB
        assert_eq!(v, vec![0x8B, 0x01, 0x07, 0xEB, 3, 28, 1, 2, 3]);
        let mut r = v.clone();
        r[1] = REPORT;
        assert_eq!(parse_report(&r).unwrap(), t);
        assert_eq!(get(), vec![0x8B, 0x02]);
    }

    #[test]
    fn a_lost_clock_is_an_error() {
        assert!(parse_report(&[0x8B, 0x03, 0, 0, 0, 0, 0, 0, 0]).is_err());
        assert!(parse_report(&[0x8B, 0x03, 0x07, 0xEB, 2, 30, 0, 0, 0]).is_err());
        assert!(parse_report(&[0x8B, 0x03, 0x07]).is_err());
    }
}
