//! The daemon's allocator, checked on the built binary: jemalloc is its
//! malloc, with the options of src/main.rs in force. (What that buys, RSS
//! after a burst, is a figure: `mqtt_bench` prints it; no test fails on it.)

mod support;

use std::time::{Duration, Instant};
use support::blackbox::*;

/// The names of the process's threads.
fn threads(pid: i32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| {
            d.flatten()
                .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
                .map(|n| n.trim().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// jemalloc's background thread (it gives freed pages back while the hub is
/// at rest) runs only if jemalloc is the process's malloc and took the
/// options; with `abort_conf` a wrong option ends the daemon at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_runs_jemalloc_with_its_purging_thread() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path());
    let mut daemon = Daemon::new(dir.path(), broker.port, &sim_locks(0, 0));
    daemon.start();
    let cloud = Cloud::connect(broker.port, "lockhub/test-hub", "cloud").await;
    cloud.wait_online().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = threads(daemon.pid());
    while !seen.iter().any(|n| n == "jemalloc_bg_thd") && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        seen = threads(daemon.pid());
    }
    assert!(daemon.alive(), "the daemon ended:\n{}", daemon.log());
    assert!(
        seen.iter().any(|n| n == "jemalloc_bg_thd"),
        "no jemalloc background thread among {seen:?}"
    );
}
