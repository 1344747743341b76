//! Exponential backoff with full jitter, so retries of many locks never line up
//! into a storm on the radio.

use rand::Rng;
use std::time::Duration;

/// The wait before attempt `attempt + 1` (attempt counts failures so far, from 1):
/// a random duration in `[d/2, d]`, where `d = base * 2^(attempt-1)` capped at `max`.
pub fn delay(attempt: u32, base: Duration, max: Duration) -> Duration {
    let exp = attempt.saturating_sub(1).min(20);
    let d = base.saturating_mul(1u32 << exp).min(max);
    let half = d / 2;
    half + rand::thread_rng().gen_range(Duration::ZERO..=half)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_then_caps_and_stays_jittered() {
        let base = Duration::from_secs(2);
        let max = Duration::from_secs(300);
        for attempt in 1..40 {
            let nominal = base.saturating_mul(1 << (attempt - 1).min(20)).min(max);
            let d = delay(attempt, base, max);
            assert!(d >= nominal / 2 && d <= nominal, "attempt {attempt}: {d:?}");
        }
        let spread: std::collections::HashSet<_> = (0..50).map(|_| delay(5, base, max)).collect();
        assert!(spread.len() > 10, "jitter spreads retries");
    }
}
