//! The clock, injected so tests run on tokio's paused time and never sleep.

use chrono::{DateTime, Utc};
use std::time::Duration;

pub trait Clock: Send + Sync + 'static {
    /// Wall-clock time now (what `starts_at`/`ends_at` are compared with).
    fn now(&self) -> DateTime<Utc>;

    /// Whether the source of this time says it is synchronised (the kernel,
    /// for the system clock). Test clocks are.
    fn synchronised(&self) -> bool {
        true
    }
}

/// The system's wall clock. Sleeps are capped by the engine, so a clock step
/// (an NTP correction on a Pi without an RTC) is noticed within one cap.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    /// adjtimex(2) in read-only mode: `TIME_ERROR` or `STA_UNSYNC` mean the
    /// kernel's clock is not synchronised (a Pi without an RTC before NTP).
    fn synchronised(&self) -> bool {
        // SAFETY: modes = 0 only reads; the struct is ours and zeroed.
        let mut tx: libc::timex = unsafe { std::mem::zeroed() };
        let state = unsafe { libc::adjtimex(&mut tx) };
        state >= 0 && state != libc::TIME_ERROR && tx.status & libc::STA_UNSYNC == 0
    }
}

/// Wall time that advances with tokio's clock: under `start_paused` tests,
/// `tokio::time::advance` moves it forward deterministically.
pub struct TokioClock {
    base_wall: DateTime<Utc>,
    base: tokio::time::Instant,
}

impl TokioClock {
    pub fn starting_at(base_wall: DateTime<Utc>) -> Self {
        TokioClock {
            base_wall,
            base: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        let elapsed = tokio::time::Instant::now().duration_since(self.base);
        self.base_wall + chrono::Duration::from_std(elapsed).unwrap_or_default()
    }
}

/// How long to sleep until `at` (zero if it has passed).
pub fn until(clock: &dyn Clock, at: DateTime<Utc>) -> Duration {
    (at - clock.now()).to_std().unwrap_or(Duration::ZERO)
}
