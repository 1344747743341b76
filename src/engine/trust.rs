//! Whether the wall clock can be believed. A Pi has no real-time clock: it
//! may boot at 1970 or at a stale time saved at shutdown, and NTP steps the
//! clock later. Acting on such a time removes codes whose window is open and
//! keeps codes that ended. So the latest trusted time seen is kept (in the
//! store, about once a minute), and the clock is untrusted while
//!
//! - the kernel says it is unsynchronised and the clock is earlier than that
//!   time, or
//! - the clock is earlier than that time by more than [`STEP_TOLERANCE`]
//!   (a backward step).
//!
//! While untrusted the engine makes no time-driven change (see the
//! reconciler); commands are still accepted. Time-driven decisions use
//! [`ClockTrust::decision_time`], which never goes backwards, so a backward
//! step never re-sets a code that was removed at its end.

use super::clock::Clock;
use chrono::{DateTime, Utc};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// A clock this much earlier than the latest trusted time is untrusted even
/// when the kernel says it is synchronised.
pub const STEP_TOLERANCE: chrono::Duration = chrono::Duration::minutes(1);

pub struct ClockTrust {
    latest: Mutex<Option<DateTime<Utc>>>,
    untrusted: AtomicBool,
    changed: Notify,
}

impl ClockTrust {
    /// `latest`: the latest trusted time the store remembers (`None` on a new hub).
    pub fn new(latest: Option<DateTime<Utc>>) -> Self {
        ClockTrust {
            latest: Mutex::new(latest),
            untrusted: AtomicBool::new(false),
            changed: Notify::new(),
        }
    }

    /// Judge one reading of the clock; a trusted one becomes the latest.
    pub fn judge(&self, now: DateTime<Utc>, synchronised: bool) -> bool {
        let trusted = {
            let mut latest = self.latest.lock().unwrap();
            let trusted = match *latest {
                None => true,
                Some(l) => now >= l - STEP_TOLERANCE && (synchronised || now >= l),
            };
            if trusted {
                *latest = Some(latest.map_or(now, |l| l.max(now)));
            }
            trusted
        };
        if self.untrusted.swap(!trusted, Ordering::SeqCst) == trusted {
            self.changed.notify_one();
        }
        trusted
    }

    /// Judge the clock as it reads now.
    pub fn judge_clock(&self, clock: &dyn Clock) -> bool {
        self.judge(clock.now(), clock.synchronised())
    }

    /// As last judged.
    pub fn is_trusted(&self) -> bool {
        !self.untrusted.load(Ordering::SeqCst)
    }

    pub fn latest(&self) -> Option<DateTime<Utc>> {
        *self.latest.lock().unwrap()
    }

    /// The time to decide by: never earlier than the latest trusted time.
    pub fn decision_time(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        self.latest().map_or(now, |l| l.max(now))
    }

    /// Resolves when the verdict changed.
    pub async fn changed(&self) {
        self.changed.notified().await
    }
}

/// A clock that never goes back past the latest trusted time (for commands:
/// a code created while the clock reads 1970 is not created in 1970).
pub struct MonotonicClock {
    pub inner: Arc<dyn Clock>,
    pub trust: Arc<ClockTrust>,
}

impl Clock for MonotonicClock {
    fn now(&self) -> DateTime<Utc> {
        self.trust.decision_time(self.inner.now())
    }

    fn synchronised(&self) -> bool {
        self.inner.synchronised()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(h: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap() + chrono::Duration::hours(h)
    }

    #[test]
    fn boot_at_1970_is_untrusted_until_the_clock_is_right() {
        let trust = ClockTrust::new(Some(t(0)));
        let epoch = Utc.timestamp_opt(0, 0).unwrap();
        assert!(!trust.judge(epoch, false));
        assert!(
            !trust.judge(epoch, true),
            "1970 is a backward step even when synced"
        );
        assert_eq!(trust.decision_time(epoch), t(0));
        assert!(trust.judge(t(72), true));
        assert_eq!(trust.latest(), Some(t(72)));
    }

    #[test]
    fn unsynchronised_clock_is_believed_only_from_the_latest_trusted_time_on() {
        let trust = ClockTrust::new(Some(t(10)));
        assert!(!trust.judge(t(10) - chrono::Duration::seconds(30), false));
        assert!(
            trust.judge(t(10) - chrono::Duration::seconds(30), true),
            "a synced clock a little behind is within the tolerance"
        );
        assert!(trust.judge(t(11), false), "time passing");
    }

    #[test]
    fn backward_step_is_untrusted_and_decisions_never_go_back() {
        let trust = ClockTrust::new(None);
        assert!(trust.judge(t(5), true));
        assert!(!trust.judge(t(4), true));
        assert_eq!(trust.decision_time(t(4)), t(5));
        assert!(!trust.is_trusted());
        assert!(trust.judge(t(5) + chrono::Duration::seconds(1), true));
        // A forward step is time passing.
        assert!(trust.judge(t(48), true));
        assert_eq!(trust.latest(), Some(t(48)));
    }
}
