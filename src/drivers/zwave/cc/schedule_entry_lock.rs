//! Schedule Entry Lock CC (0x4E): the lock enforces a code's time window
//! itself (a year-day schedule per user id), so the code needs no radio
//! traffic at check-in or check-out.

use super::{id, need, CcError};
use crate::model::{zone, TimeWindow};
use chrono::{DateTime, Duration, Timelike, Utc};

pub const ENABLE_SET: u8 = 0x01;
pub const YEAR_DAY_SET: u8 = 0x06;
pub const SUPPORTED_GET: u8 = 0x09;
pub const SUPPORTED_REPORT: u8 = 0x0A;
pub const TIME_OFFSET_GET: u8 = 0x0B;
pub const TIME_OFFSET_REPORT: u8 = 0x0C;
pub const TIME_OFFSET_SET: u8 = 0x0D;

pub fn supported_get() -> Vec<u8> {
    vec![id::SCHEDULE_ENTRY_LOCK, SUPPORTED_GET]
}

/// Turns schedules for `user` on or off (off: the code works at any time).
pub fn enable_set(user: u8, enabled: bool) -> Vec<u8> {
    vec![id::SCHEDULE_ENTRY_LOCK, ENABLE_SET, user, enabled as u8]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Supported {
    pub week_day_slots: u8,
    pub year_day_slots: u8,
}

pub fn parse_supported(b: &[u8]) -> Result<Supported, CcError> {
    need(b, 4)?;
    Ok(Supported {
        week_day_slots: b[2],
        year_day_slots: b[3],
    })
}

fn fields(t: jiff::civil::DateTime) -> Result<[u8; 5], CcError> {
    let year = t.year() - 2000;
    if !(0..=99).contains(&year) {
        return Err(CcError::Invalid(format!(
            "year {} cannot be scheduled (2000..=2099)",
            t.year()
        )));
    }
    Ok([
        year as u8,
        t.month() as u8,
        t.day() as u8,
        t.hour() as u8,
        t.minute() as u8,
    ])
}

/// Year-Day Schedule Set (action "set") for `user` in schedule slot `slot`.
/// The lock counts in whole minutes of its local time (the wall clock of
/// `tz`, each end at its own UTC offset, so a window across a DST change
/// ends at the right hour): the start is rounded up and the end down, so
/// the lock's window never extends past the one asked for.
pub fn year_day_set(
    user: u8,
    slot: u8,
    window: &TimeWindow,
    tz: &jiff::tz::TimeZone,
) -> Result<Vec<u8>, CcError> {
    let start = ceil_minute(window.starts_at);
    let stop = floor_minute(window.ends_at);
    if stop <= start {
        return Err(CcError::Invalid(
            "time window is shorter than the lock's one-minute resolution".into(),
        ));
    }
    let mut v = vec![id::SCHEDULE_ENTRY_LOCK, YEAR_DAY_SET, 0x01, user, slot];
    v.extend_from_slice(&fields(zone::local(tz, start))?);
    v.extend_from_slice(&fields(zone::local(tz, stop))?);
    Ok(v)
}

/// The lock's time zone as Time Offset Set carries it (v2+): the standard
/// offset from UTC, and the offset while daylight saving time is in effect
/// (equal to the standard one where the zone has no DST), in minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeOffsets {
    pub standard_minutes: i16,
    pub dst_minutes: i16,
}

/// Time Offset Set: sign and hours of the standard offset (TZO), its
/// minutes, then sign and minutes of the DST shift (DST offset minus
/// standard), as zwave-js's `encodeTimezone` lays them out.
pub fn time_offset_set(o: TimeOffsets) -> Result<Vec<u8>, CcError> {
    let std = o.standard_minutes;
    let delta = o.dst_minutes - std;
    if std.unsigned_abs() >= 24 * 60 || delta.unsigned_abs() > 127 {
        return Err(CcError::Invalid(format!(
            "time offset {std} min (DST shift {delta} min) cannot be sent"
        )));
    }
    let hour_sign = u8::from(std < 0) << 7;
    let delta_sign = u8::from(delta < 0) << 7;
    Ok(vec![
        id::SCHEDULE_ENTRY_LOCK,
        TIME_OFFSET_SET,
        hour_sign | (std.unsigned_abs() / 60) as u8,
        (std.unsigned_abs() % 60) as u8,
        delta_sign | delta.unsigned_abs() as u8,
    ])
}

pub fn time_offset_get() -> Vec<u8> {
    vec![id::SCHEDULE_ENTRY_LOCK, TIME_OFFSET_GET]
}

/// Time Offset Report (same layout as Set).
pub fn parse_time_offset(b: &[u8]) -> Result<TimeOffsets, CcError> {
    need(b, 5)?;
    let sign = |bit: u8| if bit & 0x80 != 0 { -1 } else { 1 };
    let std = sign(b[2]) * ((b[2] & 0x7F) as i16 * 60 + b[3] as i16);
    let delta = sign(b[4]) * (b[4] & 0x7F) as i16;
    Ok(TimeOffsets {
        standard_minutes: std,
        dst_minutes: std + delta,
    })
}

/// Year-Day Schedule Set with action "erase".
pub fn year_day_erase(user: u8, slot: u8) -> Vec<u8> {
    let mut v = vec![id::SCHEDULE_ENTRY_LOCK, YEAR_DAY_SET, 0x00, user, slot];
    v.extend_from_slice(&[0; 10]);
    v
}

// ---- week-day schedules (lockhub's recurring codes) ----

pub const WEEK_DAY_SET: u8 = 0x03;

/// Week Day Schedule Set (action "set"): `user` may open in schedule slot
/// `slot` on `day` from `start` until `stop` (hour, minute) of the lock's
/// local time. Day of week as the CC counts: 0 Sunday ... 6 Saturday.
pub fn week_day_set(
    user: u8,
    slot: u8,
    day: chrono::Weekday,
    start: (u8, u8),
    stop: (u8, u8),
) -> Vec<u8> {
    vec![
        id::SCHEDULE_ENTRY_LOCK,
        WEEK_DAY_SET,
        0x01,
        user,
        slot,
        day.num_days_from_sunday() as u8,
        start.0,
        start.1,
        stop.0,
        stop.1,
    ]
}

/// Week Day Schedule Set with action "erase" (the day and times unused).
pub fn week_day_erase(user: u8, slot: u8) -> Vec<u8> {
    vec![
        id::SCHEDULE_ENTRY_LOCK,
        WEEK_DAY_SET,
        0x00,
        user,
        slot,
        0xFF,
        0xFF,
        0xFF,
        0xFF,
        0xFF,
    ]
}

fn floor_minute(t: DateTime<Utc>) -> DateTime<Utc> {
    t - Duration::seconds(t.second() as i64) - Duration::nanoseconds(t.nanosecond() as i64)
}

fn ceil_minute(t: DateTime<Utc>) -> DateTime<Utc> {
    let f = floor_minute(t);
    if f == t {
        t
    } else {
        f + Duration::minutes(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn year_day_set_bytes() {
        let w = TimeWindow {
            starts_at: Utc.with_ymd_and_hms(2026, 11, 22, 15, 0, 30).unwrap(),
            ends_at: Utc.with_ymd_and_hms(2026, 11, 25, 10, 59, 59).unwrap(),
        };
        let v = year_day_set(3, 1, &w, &jiff::tz::TimeZone::UTC).unwrap();
        assert_eq!(
            v,
            vec![0x4E, 0x06, 0x01, 3, 1, 26, 11, 22, 15, 1, 26, 11, 25, 10, 59]
        );
        let plus1 = jiff::tz::TimeZone::fixed(jiff::tz::offset(1));
        let v = year_day_set(3, 1, &w, &plus1).unwrap();
        assert_eq!(&v[5..10], &[26, 11, 22, 16, 1]);
    }

    #[test]
    fn rejects_bad_windows() {
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 10).unwrap();
        let w = TimeWindow {
            starts_at: t,
            ends_at: t + Duration::seconds(30),
        };
        assert!(year_day_set(1, 1, &w, &jiff::tz::TimeZone::UTC).is_err());
        let far = Utc.with_ymd_and_hms(2100, 1, 1, 0, 0, 0).unwrap();
        let w = TimeWindow {
            starts_at: far,
            ends_at: far + Duration::days(1),
        };
        assert!(year_day_set(1, 1, &w, &jiff::tz::TimeZone::UTC).is_err());
    }

    #[test]
    fn window_across_a_dst_change_is_local_at_each_end() {
        // Vienna: CET (+1) until 2027-03-28 01:00 UTC, CEST (+2) after.
        let vienna = jiff::tz::TimeZone::get("Europe/Vienna").unwrap();
        let w = TimeWindow {
            starts_at: Utc.with_ymd_and_hms(2027, 3, 27, 23, 0, 0).unwrap(),
            ends_at: Utc.with_ymd_and_hms(2027, 3, 28, 10, 0, 0).unwrap(),
        };
        let v = year_day_set(5, 1, &w, &vienna).unwrap();
        assert_eq!(&v[5..10], &[27, 3, 28, 0, 0], "midnight CET");
        assert_eq!(&v[10..15], &[27, 3, 28, 12, 0], "noon CEST");
    }

    #[test]
    fn time_offset_bytes() {
        let vienna = TimeOffsets {
            standard_minutes: 60,
            dst_minutes: 120,
        };
        let v = time_offset_set(vienna).unwrap();
        assert_eq!(v, vec![0x4E, 0x0D, 0x01, 0x00, 60]);
        let mut r = v.clone();
        r[1] = TIME_OFFSET_REPORT;
        assert_eq!(parse_time_offset(&r).unwrap(), vienna);
        // Newfoundland: -3:30, DST -2:30.
        let nf = TimeOffsets {
            standard_minutes: -210,
            dst_minutes: -150,
        };
        let v = time_offset_set(nf).unwrap();
        assert_eq!(v[2..], [0x80 | 3, 30, 60]);
        let mut r = v.clone();
        r[1] = TIME_OFFSET_REPORT;
        assert_eq!(parse_time_offset(&r).unwrap(), nf);
        // A negative shift (Ireland's "winter time") carries its sign bit.
        let v = time_offset_set(TimeOffsets {
            standard_minutes: 60,
            dst_minutes: 0,
        })
        .unwrap();
        assert_eq!(v[4], 0x80 | 60);
        assert!(time_offset_set(TimeOffsets {
            standard_minutes: 24 * 60,
            dst_minutes: 24 * 60
        })
        .is_err());
        assert_eq!(time_offset_get(), vec![0x4E, 0x0B]);
    }

    #[test]
    fn week_day_vectors() {
        assert_eq!(
            week_day_set(5, 2, chrono::Weekday::Mon, (9, 0), (12, 30)),
            vec![0x4E, 0x03, 0x01, 5, 2, 1, 9, 0, 12, 30]
        );
        assert_eq!(
            week_day_set(5, 1, chrono::Weekday::Sun, (0, 0), (1, 0))[5],
            0
        );
        assert_eq!(
            week_day_erase(5, 2),
            vec![0x4E, 0x03, 0x00, 5, 2, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]
        );
    }

    #[test]
    fn other_vectors() {
        assert_eq!(supported_get(), vec![0x4E, 0x09]);
        assert_eq!(enable_set(4, true), vec![0x4E, 0x01, 4, 1]);
        assert_eq!(year_day_erase(4, 2)[..5], [0x4E, 0x06, 0x00, 4, 2]);
        assert_eq!(year_day_erase(4, 2).len(), 15);
        assert_eq!(
            parse_supported(&[0x4E, 0x0A, 2, 2, 0]).unwrap(),
            Supported {
                week_day_slots: 2,
                year_day_slots: 2
            }
        );
    }
}
