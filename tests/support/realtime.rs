#![allow(dead_code)]
//! Helpers for tests that run the hub in real time against real radios (or
//! their mocks): commands with fresh request ids, polling with a deadline,
//! and capturing every log line.

use lockhub::hub::Hub;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Runs one command with a fresh request_id; returns the response body.
pub fn cmd(hub: &Hub, command: &str, mut body: Value) -> Value {
    body["request_id"] = json!(uuid::Uuid::new_v4().to_string());
    hub.handle(&[(command, &serde_json::to_vec(&body).unwrap())])
        .remove(0)
        .body
}

/// Polls `f` until it holds; panics naming `what` after `secs`.
pub async fn until(what: &str, secs: u64, f: impl AsyncFnMut() -> bool) {
    until_or(what, secs, f, String::new).await
}

/// [`until`], and on the timeout the panic also says what `why` finds then
/// (the state a failure in CI needs to be understood).
pub async fn until_or(
    what: &str,
    secs: u64,
    mut f: impl AsyncFnMut() -> bool,
    why: impl FnOnce() -> String,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while tokio::time::Instant::now() < deadline {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let why = why();
    if why.is_empty() {
        panic!("timed out waiting for {what}");
    }
    panic!("timed out waiting for {what}: {why}");
}

/// Every log line at TRACE, for checks that no secret is ever logged.
/// Returns the guard (keep it alive) and the captured text.
#[derive(Clone, Default)]
pub struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    /// Captures this thread's log lines at every level until the guard drops.
    pub fn start() -> (Capture, tracing::subscriber::DefaultGuard) {
        let capture = Capture::default();
        let writer = capture.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .finish();
        (capture, tracing::subscriber::set_default(subscriber))
    }

    /// Captures every log line of this test binary from now on, from every
    /// thread, at every level, without ANSI or timestamps (their digits could
    /// spell a PIN by chance). Set once, globally: a scoped subscriber misses
    /// what other threads log, and came back empty under load.
    pub fn global() -> Capture {
        static LOG: std::sync::OnceLock<Capture> = std::sync::OnceLock::new();
        LOG.get_or_init(|| {
            let capture = Capture::default();
            let writer = capture.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_max_level(tracing::Level::TRACE)
                .with_ansi(false)
                .without_time()
                .with_writer(move || writer.clone())
                .finish();
            tracing::subscriber::set_global_default(subscriber)
                .expect("no other global subscriber in this test binary");
            capture
        })
        .clone()
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

/// Waits until the engine has read the slots of every lock in `ids`.
pub async fn until_read(hub: &Hub, ids: &[&str]) {
    until("every lock read", 20, async || {
        hub.store
            .read(|tx| {
                Ok(ids
                    .iter()
                    .all(|d| tx.device(d).ok().flatten().is_some_and(|d| d.slots_known)))
            })
            .unwrap()
    })
    .await;
}

/// Waits until the access code's public status is `status`.
pub async fn until_status(hub: &Hub, access_code_id: &str, status: &str) {
    until(&format!("status {status}"), 10, async || {
        cmd(
            hub,
            "access_codes/get",
            json!({"access_code_id": access_code_id}),
        )["access_code"]["status"]
            == status
    })
    .await;
}

/// Moves a whole stay's check-out (update_multiple on its common_code_key).
pub fn late_checkout(hub: &Hub, common_code_key: &str, ends_at: chrono::DateTime<chrono::Utc>) {
    let r = cmd(
        hub,
        "access_codes/update_multiple",
        json!({"common_code_key": common_code_key, "ends_at": ends_at.to_rfc3339()}),
    );
    assert_eq!(r["ok"], true, "{r}");
}
