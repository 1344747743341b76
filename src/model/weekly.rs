//! Recurring weekly windows, lockhub's addition to the public access code
//! (the public API has no field for them): a code that opens on some days of
//! the week between two times of day, in the property's local time, for
//! cleaners and staff. Within `starts_at`/`ends_at` when the code has them.
//!
//! Pure: the windows a schedule opens, and the next moment that changes.

use super::{zone, TimeWindow};
use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, Timelike, Utc, Weekday};
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

/// Days of the week by their public names, Monday first.
pub const DAY_NAMES: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// Open on `days` (bit 0 Monday ... bit 6 Sunday) from `start_time` until
/// `end_time`, local time; `end_time` is after `start_time` (a shift across
/// midnight is two days' windows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeeklySchedule {
    pub days: u8,
    pub start_time: NaiveTime,
    pub end_time: NaiveTime,
}

/// Why a `weekly_schedule` is refused (the message of `invalid_input`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("weekly_schedule: {0}")]
pub struct WeeklyError(pub String);

impl WeeklySchedule {
    /// From the public form `{"days_of_week": [...], "start_time": "HH:MM",
    /// "end_time": "HH:MM"}`.
    pub fn from_json(v: &serde_json::Value) -> Result<WeeklySchedule, WeeklyError> {
        let bad = |m: &str| WeeklyError(m.into());
        let obj = v.as_object().ok_or_else(|| bad("must be an object"))?;
        if let Some(k) = obj
            .keys()
            .find(|k| !["days_of_week", "start_time", "end_time"].contains(&k.as_str()))
        {
            return Err(WeeklyError(format!("unknown field {k}")));
        }
        let days_v = obj
            .get("days_of_week")
            .and_then(|d| d.as_array())
            .ok_or_else(|| bad("days_of_week must be a list of day names"))?;
        let mut days = 0u8;
        for d in days_v {
            let i = d
                .as_str()
                .and_then(|s| DAY_NAMES.iter().position(|n| *n == s))
                .ok_or_else(|| bad("days_of_week names days monday ... sunday"))?;
            if days & (1 << i) != 0 {
                return Err(bad("days_of_week names a day twice"));
            }
            days |= 1 << i;
        }
        if days == 0 {
            return Err(bad("days_of_week names no day"));
        }
        let time = |k: &str| {
            obj.get(k)
                .and_then(|t| t.as_str())
                .and_then(|t| NaiveTime::parse_from_str(t, "%H:%M").ok())
                .ok_or_else(|| WeeklyError(format!("{k} must be a time of day, HH:MM")))
        };
        let (start_time, end_time) = (time("start_time")?, time("end_time")?);
        if end_time <= start_time {
            return Err(bad("end_time must be after start_time on the same day"));
        }
        Ok(WeeklySchedule {
            days,
            start_time,
            end_time,
        })
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "days_of_week": self.weekdays().map(|d| DAY_NAMES[d.num_days_from_monday() as usize]).collect::<Vec<_>>(),
            "start_time": self.start_time.format("%H:%M").to_string(),
            "end_time": self.end_time.format("%H:%M").to_string(),
        })
    }

    pub fn has(&self, day: Weekday) -> bool {
        self.days & (1 << day.num_days_from_monday()) != 0
    }

    /// The days it opens, Monday first.
    pub fn weekdays(&self) -> impl Iterator<Item = Weekday> + '_ {
        (0..7u8)
            .filter(|i| self.days & (1 << i) != 0)
            .map(|i| Weekday::try_from(i).expect("0..7 is a weekday"))
    }

    pub fn day_count(&self) -> u32 {
        self.days.count_ones()
    }

    /// The window it opens on local date `d`, if `d` is one of its days.
    /// Each end at its own UTC offset, so the window opens at `start_time`
    /// on the wall clock on both sides of a DST change.
    fn on(&self, d: NaiveDate, tz: &TimeZone) -> Option<TimeWindow> {
        if !self.has(d.weekday()) {
            return None;
        }
        Some(TimeWindow {
            starts_at: zone::instant(tz, d, self.start_time)?,
            ends_at: zone::instant(tz, d, self.end_time)?,
        })
    }

    /// The windows that overlap `[from, until)`, clipped to it, in order.
    pub fn windows(
        &self,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
        tz: &TimeZone,
    ) -> Vec<TimeWindow> {
        let first = zone::local_date(tz, from) - Duration::days(1);
        let mut out = Vec::new();
        let mut d = first;
        while zone::instant(tz, d, NaiveTime::MIN).is_some_and(|t| t < until) {
            if let Some(w) = self.on(d, tz) {
                let w = TimeWindow {
                    starts_at: w.starts_at.max(from),
                    ends_at: w.ends_at.min(until),
                };
                if w.starts_at < w.ends_at {
                    out.push(w);
                }
            }
            d += Duration::days(1);
        }
        out
    }

    /// The window in effect at `now` when each one is entered `lead` early
    /// (a window whose start minus `lead` has come and whose end has not).
    pub fn current(&self, now: DateTime<Utc>, lead: Duration, tz: &TimeZone) -> Option<TimeWindow> {
        let today = zone::local_date(tz, now);
        (-1..=1)
            .filter_map(|k| self.on(today + Duration::days(k), tz))
            .find(|w| w.starts_at - lead <= now && now < w.ends_at)
    }

    /// The next moment after `now` a window (entered `lead` early) opens or
    /// closes: within a week and a day, so always found for a non-empty schedule.
    pub fn next_change(
        &self,
        now: DateTime<Utc>,
        lead: Duration,
        tz: &TimeZone,
    ) -> Option<DateTime<Utc>> {
        let today = zone::local_date(tz, now);
        (-1..=8)
            .filter_map(|k| self.on(today + Duration::days(k), tz))
            .flat_map(|w| [w.starts_at - lead, w.ends_at])
            .filter(|t| *t > now)
            .min()
    }

    /// The last window end at or before `now` (when a code last had to leave).
    pub fn last_end(&self, now: DateTime<Utc>, tz: &TimeZone) -> Option<DateTime<Utc>> {
        let today = zone::local_date(tz, now);
        (-8..=0)
            .filter_map(|k| self.on(today + Duration::days(k), tz))
            .map(|w| w.ends_at)
            .filter(|t| *t <= now)
            .max()
    }

    /// Minutes of the day, local: what locks that hold the schedule store.
    pub fn start_hm(&self) -> (u8, u8) {
        (self.start_time.hour() as u8, self.start_time.minute() as u8)
    }

    pub fn end_hm(&self) -> (u8, u8) {
        (self.end_time.hour() as u8, self.end_time.minute() as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cleaner() -> WeeklySchedule {
        WeeklySchedule::from_json(&json!({
            "days_of_week": ["monday", "wednesday", "friday"],
            "start_time": "09:00", "end_time": "12:30"
        }))
        .unwrap()
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn public_form_round_trips_and_bad_input_is_named() {
        let c = cleaner();
        assert_eq!(c.days, 0b0001_0101);
        assert_eq!(WeeklySchedule::from_json(&c.to_json()).unwrap(), c);
        for bad in [
            json!({"days_of_week": [], "start_time": "09:00", "end_time": "10:00"}),
            json!({"days_of_week": ["funday"], "start_time": "09:00", "end_time": "10:00"}),
            json!({"days_of_week": ["monday", "monday"], "start_time": "09:00", "end_time": "10:00"}),
            json!({"days_of_week": ["monday"], "start_time": "9", "end_time": "10:00"}),
            json!({"days_of_week": ["monday"], "start_time": "22:00", "end_time": "06:00"}),
            json!({"days_of_week": ["monday"], "start_time": "09:00", "end_time": "10:00", "x": 1}),
            json!("monday"),
        ] {
            assert!(WeeklySchedule::from_json(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn windows_of_a_week_in_local_time() {
        let plus1 = TimeZone::fixed(jiff::tz::offset(1));
        // Monday 2026-11-30 ... Sunday 2026-12-06.
        let w = cleaner().windows(
            utc("2026-11-30T00:00:00+01:00"),
            utc("2026-12-07T00:00:00+01:00"),
            &plus1,
        );
        let starts: Vec<_> = w.iter().map(|w| w.starts_at).collect();
        assert_eq!(
            starts,
            vec![
                utc("2026-11-30T08:00:00Z"),
                utc("2026-12-02T08:00:00Z"),
                utc("2026-12-04T08:00:00Z")
            ]
        );
        assert!(w
            .iter()
            .all(|w| w.ends_at - w.starts_at == Duration::minutes(210)));
        // Clipped to a bound that cuts a window.
        let cut = cleaner().windows(
            utc("2026-11-30T10:00:00+01:00"),
            utc("2026-12-02T10:00:00+01:00"),
            &plus1,
        );
        assert_eq!(cut.len(), 2);
        assert_eq!(cut[0].starts_at, utc("2026-11-30T10:00:00+01:00"));
        assert_eq!(cut[1].ends_at, utc("2026-12-02T10:00:00+01:00"));
    }

    #[test]
    fn current_and_next_change() {
        let z = &TimeZone::UTC;
        let lead = Duration::minutes(5);
        let c = cleaner();
        // Monday 08:56: inside the lead.
        let mon = utc("2026-11-30T08:56:00Z");
        assert_eq!(
            c.current(mon, lead, z).unwrap().starts_at,
            utc("2026-11-30T09:00:00Z")
        );
        assert_eq!(
            c.next_change(mon, lead, z),
            Some(utc("2026-11-30T12:30:00Z"))
        );
        // Monday 12:30 closed; next opening Wednesday 08:55.
        let after = utc("2026-11-30T12:30:00Z");
        assert_eq!(c.current(after, lead, z), None);
        assert_eq!(
            c.next_change(after, lead, z),
            Some(utc("2026-12-02T08:55:00Z"))
        );
        assert_eq!(c.last_end(after, z), Some(after));
        // Sunday: next is Monday.
        let sun = utc("2026-12-06T20:00:00Z");
        assert_eq!(
            c.next_change(sun, lead, z),
            Some(utc("2026-12-07T08:55:00Z"))
        );
    }

    #[test]
    fn windows_keep_the_wall_clock_across_dst() {
        let vienna = TimeZone::get("Europe/Vienna").unwrap();
        let staff = WeeklySchedule::from_json(&json!({
            "days_of_week": ["friday", "monday"], "start_time": "07:30", "end_time": "16:00"
        }))
        .unwrap();
        // Friday 2027-03-26 (+1) and Monday 2027-03-29 (+2, after the change).
        let w = staff.windows(
            utc("2027-03-26T00:00:00Z"),
            utc("2027-03-30T00:00:00Z"),
            &vienna,
        );
        let got: Vec<_> = w.iter().map(|w| (w.starts_at, w.ends_at)).collect();
        assert_eq!(
            got,
            vec![
                (utc("2027-03-26T06:30:00Z"), utc("2027-03-26T15:00:00Z")),
                (utc("2027-03-29T05:30:00Z"), utc("2027-03-29T14:00:00Z")),
            ]
        );
        let lead = Duration::minutes(5);
        assert_eq!(
            staff.next_change(utc("2027-03-26T15:00:00Z"), lead, &vienna),
            Some(utc("2027-03-29T05:25:00Z"))
        );
        // And back in October: Friday 2027-10-29 (+2), Monday 2027-11-01 (+1).
        assert_eq!(
            staff.next_change(utc("2027-10-29T14:00:00Z"), lead, &vienna),
            Some(utc("2027-11-01T06:25:00Z"))
        );
        assert_eq!(
            staff.last_end(utc("2027-11-01T06:00:00Z"), &vienna),
            Some(utc("2027-10-29T14:00:00Z"))
        );
    }
}
