//! The systemd watchdog is fed only while work completes, and a panic in any
//! task ends the process (systemd then restarts it).

mod support;

use std::os::unix::net::UnixDatagram;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::blackbox::*;

/// A notify socket of the test's own: every datagram the daemon sends, with
/// when it arrived.
fn notify_socket(path: &std::path::Path) -> Arc<Mutex<Vec<(Instant, String)>>> {
    let sock = UnixDatagram::bind(path).unwrap();
    let got: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
    let g = got.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = sock.recv(&mut buf) {
            g.lock().unwrap().push((
                Instant::now(),
                String::from_utf8_lossy(&buf[..n]).into_owned(),
            ));
        }
    });
    got
}

fn feeds_since(got: &Mutex<Vec<(Instant, String)>>, since: Instant) -> usize {
    got.lock()
        .unwrap()
        .iter()
        .filter(|(t, m)| *t >= since && m.contains("WATCHDOG=1"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watchdog_stops_while_the_store_is_blocked_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path());
    let mut daemon = Daemon::new(dir.path(), broker.port, &sim_locks(0, 0));
    let sock = dir.path().join("notify.sock");
    let got = notify_socket(&sock);
    // WatchdogSec=1.2s: fed every 400 ms, a hang is anything over 600 ms.
    daemon.start_env(&[
        ("NOTIFY_SOCKET", sock.display().to_string()),
        ("WATCHDOG_USEC", "1200000".into()),
    ]);
    wait_for("READY=1", 20, || {
        got.lock()
            .unwrap()
            .iter()
            .any(|(_, m)| m.contains("READY=1"))
            .then_some(())
    })
    .await;
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(feeds_since(&got, t0) >= 3, "fed while healthy");

    // Another process holds the database (as a hung disk would): the writer blocks.
    let db = rusqlite::Connection::open(daemon.dir.join("lockhub.db")).unwrap();
    db.execute_batch("BEGIN EXCLUSIVE").unwrap();
    tokio::time::sleep(Duration::from_millis(900)).await;
    let blocked = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        feeds_since(&got, blocked),
        0,
        "not fed while the writer is blocked"
    );
    let h = lockhub::status::client::get(&daemon.socket, "/v1/health")
        .await
        .unwrap();
    assert_eq!(h["status"], "degraded", "{h}");
    assert_ne!(h["watchdog"], "ok", "{h}");
    let stalled = got
        .lock()
        .unwrap()
        .iter()
        .any(|(_, m)| m.contains("STATUS=degraded"));
    assert!(stalled, "systemd's status says why");

    db.execute_batch("COMMIT").unwrap();
    drop(db);
    tokio::time::sleep(Duration::from_secs(6)).await;
    let back = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        feeds_since(&got, back) >= 3,
        "fed again once work completes"
    );
    assert!(daemon.alive());
    let (status, _) = daemon.terminate();
    assert!(status.success());
}

#[test]
fn a_panic_in_a_task_is_logged_and_ends_the_process() {
    if std::env::var_os("LOCKHUB_PANIC_CHILD").is_some() {
        lockhub::logging::init("info", lockhub::logging::LogFormat::Text);
        lockhub::daemon::exit_on_panic();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            // A task nobody awaits: without the hook its panic would be lost.
            tokio::spawn(async { panic!("boom in a background task") });
            tokio::time::sleep(Duration::from_secs(10)).await;
        });
        std::process::exit(0);
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_panic_in_a_task_is_logged_and_ends_the_process",
            "--nocapture",
        ])
        .env("LOCKHUB_PANIC_CHILD", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(lockhub::daemon::EXIT_PANIC),
        "stderr: {err}"
    );
    assert!(err.contains("a task panicked"), "{err}");
    assert!(err.contains("boom in a background task"), "{err}");
}
