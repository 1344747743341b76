//! Sections of work whose progress the watchdog follows: a section that has
//! been running longer than half of systemd's `WatchdogSec` (a reconciler
//! stuck in engine code, a store write blocked on a hung disk) stops the
//! watchdog, so systemd restarts lockhub. A leaf module: the store and the
//! engine both mark their sections.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn mono_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

/// One section: when it was entered (0: not in it).
#[derive(Debug, Default)]
pub struct Busy(AtomicU64);

impl Busy {
    pub fn enter(&self) {
        self.0.store(mono_ms(), Ordering::Relaxed);
    }

    pub fn leave(&self) {
        self.0.store(0, Ordering::Relaxed);
    }

    /// How long the section has been running (`None`: not in it).
    pub fn busy_for(&self) -> Option<Duration> {
        match self.0.load(Ordering::Relaxed) {
            0 => None,
            t => Some(Duration::from_millis(mono_ms().saturating_sub(t))),
        }
    }

    /// Enter now and leave when the guard drops (also on an early return).
    pub fn guard(&self) -> BusyGuard<'_> {
        self.enter();
        BusyGuard(self)
    }
}

pub struct BusyGuard<'a>(&'a Busy);

impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        self.0.leave();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_section_reports_how_long_it_has_run() {
        let b = Busy::default();
        assert_eq!(b.busy_for(), None);
        {
            let _g = b.guard();
            std::thread::sleep(Duration::from_millis(20));
            assert!(b.busy_for().unwrap() >= Duration::from_millis(20));
        }
        assert_eq!(b.busy_for(), None);
    }
}
