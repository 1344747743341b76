//! The lock's own clock. A lock that keeps a code's window itself (Schedule
//! Entry Lock) opens and closes it on its own clock, in its own local time.
//! lockhub sets that clock (Time Parameters, in UTC; Clock CC, in local
//! time, where that is what a lock has) and the lock's time zone (Schedule
//! Entry Lock Time Offset: the standard offset and the DST offset) at the
//! interview, and again when the lock's clock drifts, when the zone's
//! offset changes (DST) and after the lock restarts (it says so with a
//! node information frame or a "power applied" notification).
//!
//! A lock without Time Parameters (so no date) or without Time Offset
//! (Schedule Entry Lock v1) cannot run a year-day window at the right
//! local hour: its capabilities say so and the hub keeps its windows.

use super::cc::{self, id, schedule_entry_lock as sel, time_parameters};
use super::node::{Filter, Inner, NodeFacts};
use super::serialapi::Listening;
use crate::drivers::DriverError;
use crate::model::zone::{self, timestamp};
use chrono::{DateTime, Utc};
use jiff::tz::TimeZone;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How far a lock's clock may be off before it is set again (windows are
/// in whole minutes).
pub const DRIFT_TOLERANCE: chrono::Duration = chrono::Duration::seconds(30);

/// How lockhub can set a lock's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClockKind {
    /// No clock lockhub can set.
    #[default]
    None,
    /// Time Parameters CC (0x8B): date and time, UTC.
    TimeParameters,
    /// Clock CC (0x81): weekday and time of day, local (no date).
    Clock,
}

impl ClockKind {
    /// The best clock among the command classes a lock supports.
    pub fn among(classes: &[u8]) -> ClockKind {
        if classes.contains(&id::TIME_PARAMETERS) {
            ClockKind::TimeParameters
        } else if classes.contains(&id::CLOCK) {
            ClockKind::Clock
        } else {
            ClockKind::None
        }
    }
}

/// The zone's offsets as Time Offset Set carries them, as zwave-js's
/// `getDSTInfo` finds them: the offset now and the other one of the year
/// (the next transition's, within a year); the higher of a DST pair is the
/// DST offset. A zone without DST has both equal.
pub fn time_offsets(tz: &TimeZone, now: DateTime<Utc>) -> sel::TimeOffsets {
    let ts = timestamp(now);
    let info = tz.to_offset_info(ts);
    let minutes = |o: jiff::tz::Offset| (o.seconds() / 60) as i16;
    let current = minutes(info.offset());
    let horizon = ts
        .checked_add(jiff::SignedDuration::from_hours(24 * 366))
        .unwrap_or(ts);
    let other = tz
        .following(ts)
        .take_while(|t| t.timestamp() <= horizon)
        .find(|t| t.offset() != info.offset() && t.dst().is_dst() != info.dst().is_dst())
        .map(|t| minutes(t.offset()));
    match other {
        Some(o) => sel::TimeOffsets {
            standard_minutes: current.min(o),
            dst_minutes: current.max(o),
        },
        None => sel::TimeOffsets {
            standard_minutes: current,
            dst_minutes: current,
        },
    }
}

/// When the zone's offset next changes (a DST start or end), if ever.
pub fn next_offset_change(tz: &TimeZone, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    zone::utc(tz.following(timestamp(now)).next()?.timestamp())
}

fn failed(e: cc::CcError) -> DriverError {
    DriverError::Failed(e.to_string())
}

impl Inner {
    /// Sets the lock's clock and time zone now. The caller holds the lock's
    /// operation lock (the interview, an apply, [`Inner::keep_clock`]).
    pub(super) async fn set_lock_clock(
        self: &Arc<Self>,
        node: u8,
        facts: &NodeFacts,
    ) -> Result<(), DriverError> {
        if !self.config.hub_clock.trusted() {
            // Left unset (`clock_set` stays false): tried again before the
            // lock's first window, which waits for a trusted clock anyway.
            tracing::warn!(
                node,
                "the hub's clock is not trusted; the lock's clock is left as it is"
            );
            return Ok(());
        }
        let supervise = self.config.use_supervision && facts.supports(id::SUPERVISION);
        let tz = &self.config.timezone;
        let now = Utc::now();
        match facts.clock {
            ClockKind::None => return Ok(()),
            ClockKind::TimeParameters => {
                let set = time_parameters::set(now).map_err(failed)?;
                self.send_set(node, set, supervise).await?;
            }
            ClockKind::Clock => {
                let c = cc::clock::LocalClock::at(zone::local(tz, now));
                self.send_set(node, cc::clock::set(c), supervise).await?;
            }
        }
        if facts.time_offset() {
            let o = time_offsets(tz, now);
            let set = sel::time_offset_set(o).map_err(failed)?;
            self.send_set(node, set, supervise).await?;
        }
        self.with_node(node, |n| n.clock_set = true);
        tracing::info!(node, clock = ?facts.clock, "lock clock set");
        Ok(())
    }

    /// Reads the lock's clock and time zone back and sets them again where
    /// they are off (drift, a restart that lost them, a DST change). Takes
    /// the lock's operation lock.
    pub(super) async fn keep_clock(self: &Arc<Self>, node: u8) -> Result<(), DriverError> {
        let lock = self
            .with_node(node, |n| n.op_lock.clone())
            .ok_or(DriverError::UnknownDevice)?;
        let _guard = lock.lock().await;
        let Some(facts) = self.with_node(node, |n| n.facts.clone()).flatten() else {
            return Ok(());
        };
        if !self.config.hub_clock.trusted() {
            return Ok(()); // nothing to compare a lock's clock with
        }
        let now = Utc::now();
        let clock_right = match facts.clock {
            ClockKind::None => return Ok(()),
            // A weekday and a time need no reading: set again (one frame).
            ClockKind::Clock => false,
            ClockKind::TimeParameters => {
                let r = self
                    .request(
                        node,
                        time_parameters::get(),
                        (id::TIME_PARAMETERS, time_parameters::REPORT),
                        Filter::Any,
                    )
                    .await?;
                match time_parameters::parse_report(&r) {
                    Ok(t) => {
                        let off = t - now;
                        let right = off.abs() <= DRIFT_TOLERANCE;
                        if !right {
                            tracing::info!(
                                node,
                                off_secs = off.num_seconds(),
                                "lock clock drifted"
                            );
                        }
                        right
                    }
                    Err(e) => {
                        tracing::info!(node, error = %e, "lock clock unreadable (lost?)");
                        false
                    }
                }
            }
        };
        let offsets_right = !facts.time_offset() || {
            let r = self
                .request(
                    node,
                    sel::time_offset_get(),
                    (id::SCHEDULE_ENTRY_LOCK, sel::TIME_OFFSET_REPORT),
                    Filter::Any,
                )
                .await?;
            sel::parse_time_offset(&r).ok() == Some(time_offsets(&self.config.timezone, now))
        };
        if clock_right && offsets_right {
            return Ok(());
        }
        self.set_lock_clock(node, &facts).await
    }

    /// Sets the lock's clock and time zone unless that was done since start
    /// (after the interview; a lock that does not take them now is tried
    /// again before its first window, and by the clock keeper).
    pub(super) async fn ensure_clock(self: &Arc<Self>, node: u8) {
        let Some(lock) = self.with_node(node, |n| n.op_lock.clone()) else {
            return;
        };
        let _guard = lock.lock().await;
        let Some((Some(facts), false)) = self.with_node(node, |n| (n.facts.clone(), n.clock_set))
        else {
            return;
        };
        if let Err(e) = self.set_lock_clock(node, &facts).await {
            tracing::warn!(node, error = %e, "lock clock not set");
        }
    }

    /// Checks the lock's clock in the background (a restart was seen).
    pub(super) fn recheck_clock(self: &Arc<Self>, node: u8) {
        let due = self
            .with_node(node, |n| {
                !n.interviewing && n.facts.as_ref().is_some_and(|f| f.clock != ClockKind::None)
            })
            .unwrap_or(false);
        if due {
            let i = self.clone();
            tokio::spawn(async move {
                if let Err(e) = i.keep_clock(node).await {
                    tracing::info!(node, error = %e, "lock clock not checked");
                }
            });
        }
    }
}

/// Checks every reachable lock's clock every `every`, and just after each
/// change of the zone's offset (DST), so windows keep their local hour.
pub(super) async fn clock_keeper(
    inner: std::sync::Weak<Inner>,
    every: Duration,
    stop: CancellationToken,
) {
    loop {
        let Some(wait) = inner.upgrade().map(|i| {
            let now = Utc::now();
            next_offset_change(&i.config.timezone, now)
                .and_then(|t| (t - now + chrono::Duration::seconds(2)).to_std().ok())
                .map_or(every, |d| d.min(every))
        }) else {
            return;
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        let Some(inner) = inner.upgrade() else { return };
        let due: Vec<u8> = inner
            .nodes
            .lock()
            .unwrap()
            .values()
            .filter(|n| {
                n.online
                    && n.listening != Listening::Sleeping
                    && n.facts.as_ref().is_some_and(|f| f.clock != ClockKind::None)
            })
            .map(|n| n.node)
            .collect();
        for node in due {
            if let Err(e) = inner.keep_clock(node).await {
                tracing::info!(node, error = %e, "lock clock not checked");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;

    #[test]
    fn offsets_of_zones_with_and_without_dst() {
        let vienna = TimeZone::get("Europe/Vienna").unwrap();
        let winter = Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap();
        let summer = Utc.with_ymd_and_hms(2027, 7, 1, 12, 0, 0).unwrap();
        let both = sel::TimeOffsets {
            standard_minutes: 60,
            dst_minutes: 120,
        };
        assert_eq!(time_offsets(&vienna, winter), both);
        assert_eq!(time_offsets(&vienna, summer), both);
        let ny = TimeZone::get("America/New_York").unwrap();
        assert_eq!(
            time_offsets(&ny, winter),
            sel::TimeOffsets {
                standard_minutes: -300,
                dst_minutes: -240
            }
        );
        let tokyo = TimeZone::get("Asia/Tokyo").unwrap();
        assert_eq!(
            time_offsets(&tokyo, summer),
            sel::TimeOffsets {
                standard_minutes: 540,
                dst_minutes: 540
            }
        );
        assert_eq!(
            time_offsets(&TimeZone::UTC, winter),
            sel::TimeOffsets {
                standard_minutes: 0,
                dst_minutes: 0
            }
        );
    }

    #[test]
    fn next_change_is_the_dst_start() {
        let vienna = TimeZone::get("Europe/Vienna").unwrap();
        let winter = Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap();
        assert_eq!(
            next_offset_change(&vienna, winter),
            Some(Utc.with_ymd_and_hms(2027, 3, 28, 1, 0, 0).unwrap())
        );
        assert_eq!(next_offset_change(&TimeZone::UTC, winter), None);
    }

    #[test]
    fn clock_kind_prefers_time_parameters() {
        assert_eq!(
            ClockKind::among(&[id::CLOCK, id::TIME_PARAMETERS]),
            ClockKind::TimeParameters
        );
        assert_eq!(ClockKind::among(&[id::CLOCK]), ClockKind::Clock);
        assert_eq!(ClockKind::among(&[id::USER_CODE]), ClockKind::None);
    }
}
