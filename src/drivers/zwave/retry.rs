//! A lossy mesh: a Get whose report never came is asked again, a bounded
//! number of times with a doubling wait ([`super::config::GetRetry`]).
//! Only Gets: they change nothing on the lock, so asking twice is harmless.
//! Sets are not retried here (a lost confirmation is not a lost Set: the
//! engine's backoff and the read-back decide).

use super::node::{Filter, Inner};
use crate::drivers::DriverError;
use std::sync::atomic::Ordering;
use std::sync::Arc;

impl Inner {
    /// [`Inner::request`] for a Get: on `Timeout` (sent, no report) it is
    /// sent again after the backoff, at most `get_retry.retries` more times.
    /// Every other error is returned at once (an offline lock is not asked
    /// again and again).
    pub(super) async fn get(
        self: &Arc<Self>,
        node: u8,
        command: Vec<u8>,
        expect: (u8, u8),
        filter: Filter,
    ) -> Result<Vec<u8>, DriverError> {
        let policy = &self.config.get_retry;
        let mut wait = policy.backoff;
        let mut tries_left = policy.retries;
        loop {
            match self.request(node, command.clone(), expect, filter).await {
                Err(DriverError::Timeout) if tries_left > 0 => {
                    tries_left -= 1;
                    self.get_retries.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(node, cc = expect.0, "no report to a get: asking again");
                    tokio::time::sleep(wait).await;
                    wait = wait.saturating_mul(2);
                }
                r => return r,
            }
        }
    }
}
