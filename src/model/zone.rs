//! The property's local time: one notion for the whole hub. The top-level
//! `timezone` (an IANA name, resolved by jiff from the tz database) is read
//! once at start; the engine writes hub-driven weekly windows in it, and the
//! Z-Wave driver sets the locks' clocks and native windows from the same zone.
//!
//! Pure conversions between chrono's UTC instants (what the store and the
//! public API carry) and jiff's zoned wall-clock times.

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, Timelike, Utc};
use jiff::tz::TimeZone;

/// The instant as jiff counts it (the epoch for one jiff cannot hold).
pub fn timestamp(t: DateTime<Utc>) -> jiff::Timestamp {
    jiff::Timestamp::new(t.timestamp(), t.timestamp_subsec_nanos() as i32)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

/// The inverse of [`timestamp`].
pub fn utc(t: jiff::Timestamp) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.as_second(), t.subsec_nanosecond().max(0) as u32)
}

/// The wall-clock time in `tz` at instant `t`.
pub fn local(tz: &TimeZone, t: DateTime<Utc>) -> jiff::civil::DateTime {
    tz.to_datetime(timestamp(t))
}

/// The local date in `tz` at instant `t`.
pub fn local_date(tz: &TimeZone, t: DateTime<Utc>) -> NaiveDate {
    let d = local(tz, t).date();
    NaiveDate::from_ymd_opt(i32::from(d.year()), d.month() as u32, d.day() as u32)
        .unwrap_or_default()
}

/// The instant the wall clock of `tz` shows `time` on `date`. A time the
/// clock skips (02:30 on the night DST starts) is the moment after the gap;
/// one it shows twice (the night DST ends) is the first of them: jiff's
/// "compatible" choice, the one RFC 5545 and most calendars make.
pub fn instant(tz: &TimeZone, date: NaiveDate, time: NaiveTime) -> Option<DateTime<Utc>> {
    let civil = jiff::civil::DateTime::new(
        i16::try_from(date.year()).ok()?,
        date.month() as i8,
        date.day() as i8,
        time.hour() as i8,
        time.minute() as i8,
        time.second() as i8,
        0,
    )
    .ok()?;
    utc(tz.to_ambiguous_timestamp(civil).compatible().ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn vienna_on_both_sides_of_its_dst_changes() {
        let vienna = TimeZone::get("Europe/Vienna").unwrap();
        let at = |d: &str, h: &str| {
            instant(
                &vienna,
                NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap(),
                NaiveTime::parse_from_str(h, "%H:%M").unwrap(),
            )
        };
        // DST starts Sunday 2027-03-28 at 02:00 (CET +1 -> CEST +2).
        assert_eq!(at("2027-03-27", "07:30"), Some(t("2027-03-27T06:30:00Z")));
        assert_eq!(at("2027-03-29", "07:30"), Some(t("2027-03-29T05:30:00Z")));
        // 02:30 does not exist that night: the moment after the gap.
        assert_eq!(at("2027-03-28", "02:30"), Some(t("2027-03-28T01:30:00Z")));
        // DST ends Sunday 2027-10-31 at 03:00 (back to +1); 02:30 twice: the first.
        assert_eq!(at("2027-10-29", "07:30"), Some(t("2027-10-29T05:30:00Z")));
        assert_eq!(at("2027-11-01", "07:30"), Some(t("2027-11-01T06:30:00Z")));
        assert_eq!(at("2027-10-31", "02:30"), Some(t("2027-10-31T00:30:00Z")));
        // Local dates follow the wall clock, not UTC.
        assert_eq!(
            local_date(&vienna, t("2027-03-28T23:30:00Z")),
            NaiveDate::from_ymd_opt(2027, 3, 29).unwrap()
        );
        assert_eq!(
            utc(timestamp(t("2027-03-28T01:30:00Z"))),
            Some(t("2027-03-28T01:30:00Z"))
        );
    }
}
