//! End to end on secure Z-Wave locks: the core engine drives the Z-Wave
//! driver against the project's strict secure mock (node 2 S2 Access
//! Control, node 3 S0; both ignore secure-only commands in any other class).
//! The seed's front + back door group ends with the PIN in the right slot of
//! each mock lock; late checkout keeps it there; the new check-out removes
//! it; devices/get shows each lock's security class.
//! Needs scripts/test-deps-zwave.sh.

mod support;

use chrono::Utc;
use lockhub::drivers::zwave::security::NetworkKeys;
use lockhub::drivers::zwave::testing::MockController;
use lockhub::drivers::zwave::{LockConfig, ZwaveConfig, ZwaveDriver};
use lockhub::engine::clock::SystemClock;
use lockhub::hub::Hub;
use lockhub::settings::HubSettings;
use lockhub::store::Store;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use support::realtime::{cmd, late_checkout, until, until_read, until_status};
use tokio_util::sync::CancellationToken;

const FRONT: &str = "8e94044d-a4d1-4691-9f7e-e97d3e8a0b73";
const BACK: &str = "d87eea5d-71c6-4633-a966-396c5ac51177";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_group_and_late_checkout_on_s2_and_s0_locks() {
    let mock = MockController::start_with("mocks/secure-locks.cjs")
        .expect("mock controller (run scripts/test-deps-zwave.sh)");
    let dir = tempfile::tempdir().unwrap();
    let keys_file = support::zwave::secure_keys_file(dir.path());
    let store = Arc::new(Store::open(&dir.path().join("lockhub.db")).unwrap());
    let shutdown = CancellationToken::new();
    let settings = HubSettings {
        set_before_start: chrono::Duration::seconds(1),
        ..HubSettings::default()
    };
    let hub = Hub::start(store, Arc::new(SystemClock), settings, shutdown.clone()).unwrap();
    let mut config = ZwaveConfig::new(mock.url());
    config.report_timeout = Duration::from_secs(3);
    config.keys = Some(NetworkKeys::load_or_create(&keys_file).unwrap());
    config.locks = vec![
        LockConfig {
            node_id: 2,
            name: Some("Front door".into()),
            device_id: Some(FRONT.into()),
        },
        LockConfig {
            node_id: 3,
            name: Some("Back door".into()),
            device_id: Some(BACK.into()),
        },
    ];
    let driver = Arc::new(
        ZwaveDriver::connect(config, hub.event_sink())
            .await
            .expect("connect"),
    );
    assert!(
        driver.wait_interviews(Duration::from_secs(30)).await,
        "interviews end"
    );
    hub.add_driver(driver.clone()).await.unwrap();
    until_read(&hub, &[FRONT, BACK]).await;
    for (id, class) in [(FRONT, "S2_AccessControl"), (BACK, "S0_Legacy")] {
        let d = cmd(&hub, "devices/get", json!({ "device_id": id }));
        assert_eq!(d["device"]["security_class"], class, "{d}");
        // device.added says it too.
        let added = hub
            .store
            .outbox_peek(0, 100_000)
            .unwrap()
            .into_iter()
            .filter(|r| r.topic == "events")
            .map(|r| serde_json::from_slice::<Value>(&r.payload).unwrap())
            .find(|e| e["event_type"] == "device.added" && e["device_id"] == id)
            .expect("device.added");
        assert_eq!(added["security_class"], class, "{added}");
    }

    // The seed's request, with a window that opens in 2 s and closes in 8 s.
    let starts = Utc::now() + chrono::Duration::seconds(2);
    let ends = starts + chrono::Duration::seconds(6);
    let r = cmd(
        &hub,
        "access_codes/create_multiple",
        json!({
            "device_ids": [FRONT, BACK], "name": "Jane's reservation",
            "starts_at": starts.to_rfc3339(), "ends_at": ends.to_rfc3339(), "preferred_code_length": 4,
            "prefer_native_scheduling": false
        }),
    );
    assert_eq!(r["ok"], true, "{r}");
    let pin = r["access_codes"][0]["code"].as_str().unwrap().to_owned();
    let key = r["access_codes"][0]["common_code_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let slot = |c: &Value| {
        hub.store
            .read(|tx| {
                Ok(tx
                    .code(c["access_code_id"].as_str().unwrap())?
                    .unwrap()
                    .slot)
            })
            .unwrap()
    };
    // Not before its window; then on each lock.
    assert!(mock.codes(2).await.unwrap().values().all(|c| *c != pin));
    until("the PIN on both mock locks", 20, async || {
        mock.codes(2).await.unwrap().values().any(|c| *c == pin)
            && mock.codes(3).await.unwrap().values().any(|c| *c == pin)
    })
    .await;
    let id = r["access_codes"][0]["access_code_id"].as_str().unwrap();
    until_status(&hub, id, "set").await;
    until_status(
        &hub,
        r["access_codes"][1]["access_code_id"].as_str().unwrap(),
        "set",
    )
    .await;
    // Slots are chosen when a code goes on the lock: each lock holds the PIN in
    // the slot lockhub recorded.
    let (front_slot, back_slot) = (slot(&r["access_codes"][0]), slot(&r["access_codes"][1]));
    assert_eq!(mock.codes(2).await.unwrap().get(&front_slot), Some(&pin));
    assert_eq!(mock.codes(3).await.unwrap().get(&back_slot), Some(&pin));

    // Late checkout: 6 s more. Past the old end the code stays.
    let late = ends + chrono::Duration::seconds(6);
    late_checkout(&hub, &key, late);
    tokio::time::sleep((ends - Utc::now()).to_std().unwrap_or_default() + Duration::from_secs(1))
        .await;
    assert_eq!(
        mock.codes(2).await.unwrap().get(&front_slot),
        Some(&pin),
        "still on after the old check-out"
    );
    // At the new check-out it goes.
    until("removal at the new ends_at", 20, async || {
        !mock.codes(2).await.unwrap().values().any(|c| *c == pin)
            && !mock.codes(3).await.unwrap().values().any(|c| *c == pin)
    })
    .await;
    let removed_at = Utc::now();
    assert!(removed_at >= late, "not removed before its time");
    println!(
        "removed {} ms after ends_at (includes polling)",
        (removed_at - late).num_milliseconds()
    );
    assert!(
        mock.log_lines("STRICT drop").is_empty(),
        "nothing secure-only went in plaintext: {:?}",
        mock.log_lines("STRICT drop")
    );
    shutdown.cancel();
    hub.stopped().await;
}
