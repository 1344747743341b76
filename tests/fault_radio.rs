//! Radios absent at start: the daemon starts with its Z-Wave controller's
//! TCP port closed, serves everything else, retries with backoff, and the
//! Z-Wave locks come online once the port opens (the zwave-js mock behind it).

mod support;

use lockhub::drivers::zwave::testing::MockController;
use serde_json::json;
use std::time::Duration;
use support::blackbox::*;

const BASE: &str = "lockhub/test-hub";

/// Forward connections on `listener` to the mock's Serial API port.
async fn forward(listener: tokio::net::TcpListener, upstream: u16) {
    loop {
        let Ok((mut down, _)) = listener.accept().await else {
            return;
        };
        tokio::spawn(async move {
            if let Ok(mut up) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await {
                let _ = up.set_nodelay(true);
                let _ = down.set_nodelay(true);
                let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
            }
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zwave_port_closed_at_start_then_opened() {
    let mock = MockController::start().expect("mock controller (run scripts/test-deps-zwave.sh)");
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path());
    let port = free_port();
    let keys = dir.path().join("zwave-keys.json");
    let extra = format!(
        "{}[zwave]\nport = \"tcp://127.0.0.1:{port}\"\nreport_timeout_ms = 2000\nkeys_file = \"{}\"\n",
        sim_locks(0, 0),
        keys.display()
    );
    let mut daemon = Daemon::new(dir.path(), broker.port, &extra);
    daemon.start();
    let cloud = Cloud::connect(broker.port, BASE, "cloud").await;
    // The hub is up and serves its other locks while the controller is missing.
    cloud.wait_online().await;
    cloud.wait_serving().await;
    cloud
        .send_json(
            "access_codes/create",
            &json!({"request_id": "sim", "device_id": FRONT, "name": "Cleaner"}),
        )
        .await;
    assert_eq!(cloud.response("sim", 15).await["ok"], true);
    assert!(daemon.alive());
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        daemon.log().contains("no Z-Wave controller"),
        "says the controller is missing: {}",
        daemon.log()
    );
    let h = daemon.health().await;
    assert_eq!(h["radios"]["zwave"]["status"], "missing", "{h}");
    assert_eq!(h["status"], "degraded", "{h}");

    // The stick is plugged in: the port opens.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    tokio::spawn(forward(listener, mock.port));
    let log_on_panic = daemon.dump_on_panic(&["zwave", "Z-Wave", "z-wave"]);
    let online = wait_for("Z-Wave locks online", 60, || {
        let n = cloud
            .seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, p, _)| t.starts_with(&format!("{BASE}/devices/")) && !p.is_empty())
            .filter_map(|(_, p, _)| serde_json::from_slice::<serde_json::Value>(p).ok())
            .filter(|d| d["driver"] == "zwave" && d["online"] == true)
            .count();
        (n > 0).then_some(n)
    })
    .await;
    assert!(online > 0);
    std::mem::forget(log_on_panic);
    assert!(
        daemon.log().contains("Z-Wave controller found"),
        "{}",
        daemon.log()
    );
    let h = daemon.health().await;
    assert_eq!(h["radios"]["zwave"]["status"], "ok", "{h}");
    let (status, _) = daemon.terminate();
    assert!(status.success());
}
