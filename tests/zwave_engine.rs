//! End to end on Z-Wave: the core engine drives the Z-Wave driver against the
//! zwave-js mock controller. The seed's front + back door group ends with the
//! PIN in the right slot of each mock lock; late checkout keeps it there; the
//! new check-out removes it. Needs scripts/test-deps-zwave.sh.

mod support;

use chrono::Utc;
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

/// A hub (sets codes 1 s before their window) driving the Z-Wave driver on
/// `mock`, with `locks` (node, device id) pinned, once every lock is read.
async fn hub_on(
    mock: &MockController,
    locks: &[(u8, &str)],
) -> (
    Arc<Hub>,
    Arc<ZwaveDriver>,
    CancellationToken,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("lockhub.db")).unwrap());
    let shutdown = CancellationToken::new();
    let settings = HubSettings {
        set_before_start: chrono::Duration::seconds(1),
        ..HubSettings::default()
    };
    let hub = Hub::start(store, Arc::new(SystemClock), settings, shutdown.clone()).unwrap();
    let mut config = ZwaveConfig::new(mock.url());
    config.report_timeout = Duration::from_secs(2);
    config.locks = locks
        .iter()
        .map(|&(node_id, id)| LockConfig {
            node_id,
            name: Some(format!("Door {node_id}")),
            device_id: Some(id.into()),
        })
        .collect();
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
    let ids: Vec<&str> = locks.iter().map(|l| l.1).collect();
    until_read(&hub, &ids).await;
    (hub, driver, shutdown, dir)
}

/// The slot lockhub recorded for an access code.
fn slot_of(hub: &Hub, access_code: &Value) -> u32 {
    hub.store
        .read(|tx| {
            Ok(tx
                .code(access_code["access_code_id"].as_str().unwrap())?
                .unwrap()
                .slot)
        })
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_group_and_late_checkout_on_mock_zwave_locks() {
    let mock = MockController::start().expect("mock controller (run scripts/test-deps-zwave.sh)");
    let (hub, _driver, shutdown, _dir) = hub_on(&mock, &[(2, FRONT), (3, BACK)]).await;
    until_read(&hub, &[FRONT, BACK]).await;

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
    let slot = |c: &Value| slot_of(&hub, c);
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
    shutdown.cancel();
    hub.stopped().await;
}

/// The seed's group on two User Credential locks (mocks/user-credential.cjs:
/// PINs of 6 to 8 digits): each lock's own state holds the PIN in the slot
/// lockhub recorded, owned by that slot's user; at check-out both go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_group_on_user_credential_locks() {
    let mock = MockController::start_with("mocks/user-credential.cjs").expect("mock controller");
    let (hub, _driver, shutdown, _dir) = hub_on(&mock, &[(2, FRONT), (3, BACK)]).await;
    let starts = Utc::now() + chrono::Duration::seconds(1);
    let ends = starts + chrono::Duration::seconds(5);
    let r = cmd(
        &hub,
        "access_codes/create_multiple",
        json!({
            "device_ids": [FRONT, BACK], "name": "Jane's reservation",
            "starts_at": starts.to_rfc3339(), "ends_at": ends.to_rfc3339(), "preferred_code_length": 6,
            "prefer_native_scheduling": false
        }),
    );
    assert_eq!(r["ok"], true, "{r}");
    let pin = r["access_codes"][0]["code"].as_str().unwrap().to_owned();
    assert_eq!(pin.len(), 6);
    for c in r["access_codes"].as_array().unwrap() {
        until_status(&hub, c["access_code_id"].as_str().unwrap(), "set").await;
    }
    for (node, c) in [(2, &r["access_codes"][0]), (3, &r["access_codes"][1])] {
        let slot = slot_of(&hub, c);
        assert_eq!(
            mock.credentials(node).await.unwrap().get(&slot),
            Some(&(slot, pin.clone())),
            "node {node}: the PIN in slot {slot}, owned by user {slot}"
        );
    }
    // At check-out the PIN goes, and the user lockhub made for it.
    let users = async |node: u8| {
        mock.control(json!({"cmd": "state", "node": node, "prefix": "UserCredential_user_"}))
            .await
            .unwrap()
    };
    assert!(
        users(2).await.contains("Jane's reservati"),
        "named as the code, cut to the lock's 16"
    );
    until("removal at ends_at", 45, async || {
        mock.credentials(2).await.unwrap().is_empty()
            && mock.credentials(3).await.unwrap().is_empty()
            && users(2).await == "[]"
            && users(3).await == "[]"
    })
    .await;
    assert!(Utc::now() >= ends, "not removed before its time");
    shutdown.cancel();
    hub.stopped().await;
}

/// A lock that answers every read with "****" (mocks/masked.cjs) gets the
/// code once, and re-reads (the lock saying its codes may have changed)
/// leave it alone: nothing compares digits it cannot see.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masked_lock_is_set_once_and_left_alone() {
    let mock = MockController::start_with("mocks/masked.cjs").expect("mock controller");
    let (hub, _driver, shutdown, _dir) = hub_on(&mock, &[(2, FRONT)]).await;
    let r = cmd(
        &hub,
        "access_codes/create_multiple",
        json!({"device_ids": [FRONT], "name": "Cleaner", "preferred_code_length": 4}),
    );
    assert_eq!(r["ok"], true, "{r}");
    let c = &r["access_codes"][0];
    let pin = c["code"].as_str().unwrap().to_owned();
    let id = c["access_code_id"].as_str().unwrap();
    until_status(&hub, id, "set").await;
    let slot = slot_of(&hub, c);
    let sets = format!("MOCK_UC_SET node=2 user={slot}");
    assert_eq!(mock.log_lines(&sets).len(), 1);
    for _ in 0..3 {
        // A checksum that matches nothing: the engine reads the lock again.
        mock.control(json!({"cmd": "send", "node": 2, "hex": "6312ffff"}))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        until_read(&hub, &[FRONT]).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(mock.log_lines(&sets).len(), 1, "set once, then left alone");
    assert_eq!(mock.codes(2).await.unwrap().get(&slot), Some(&pin));
    until_status(&hub, id, "set").await;
    shutdown.cancel();
    hub.stopped().await;
}

/// A recurring code on a mock lock that has Schedule Entry Lock week-day
/// slots (two per user in tests/zwave-mock/mocks/locks.cjs): the lock holds
/// the schedule itself, read back from the mock's own state (the zwave-js
/// mock's Week Day Schedule behaviour), and the schedule goes with the code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weekly_code_lands_in_week_day_slots() {
    let mock = MockController::start().expect("mock controller (run scripts/test-deps-zwave.sh)");
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("lockhub.db")).unwrap());
    let shutdown = CancellationToken::new();
    let hub = Hub::start(
        store,
        Arc::new(SystemClock),
        HubSettings::default(),
        shutdown.clone(),
    )
    .unwrap();
    let mut config = ZwaveConfig::new(mock.url());
    config.report_timeout = Duration::from_secs(2);
    config.locks = vec![LockConfig {
        node_id: 2,
        name: Some("Front door".into()),
        device_id: Some(FRONT.into()),
    }];
    let driver = Arc::new(
        ZwaveDriver::connect(config, hub.event_sink())
            .await
            .expect("connect"),
    );
    assert!(driver.wait_interviews(Duration::from_secs(30)).await);
    hub.add_driver(driver.clone()).await.unwrap();
    until_read(&hub, &[FRONT]).await;
    let weekly =
        json!({"days_of_week": ["monday", "thursday"], "start_time": "07:30", "end_time": "11:00"});
    let r = cmd(
        &hub,
        "access_codes/create",
        json!({"device_id": FRONT, "name": "Cleaner", "weekly_schedule": weekly}),
    );
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["access_code"]["is_scheduled_on_device"], true, "{r}");
    let pin = r["access_code"]["code"].as_str().unwrap().to_owned();
    let id = r["access_code"]["access_code_id"]
        .as_str()
        .unwrap()
        .to_owned();
    until("the PIN on the mock lock", 20, async || {
        mock.codes(2).await.unwrap().values().any(|c| *c == pin)
    })
    .await;
    until_status(&hub, &id, "set").await;
    let user = *mock
        .codes(2)
        .await
        .unwrap()
        .iter()
        .find(|(_, c)| **c == pin)
        .unwrap()
        .0;
    // `ScheduleEntryLock_schedule_<user>_<slot>_<kind>` in the mock's state.
    let schedules = async || -> Vec<Value> {
        let raw = mock
            .control(json!({"cmd": "state", "node": 2, "prefix": format!("ScheduleEntryLock_schedule_{user}_")}))
            .await
            .unwrap();
        let pairs: Vec<(String, Value)> = serde_json::from_str(&raw).unwrap();
        let mut v: Vec<(String, Value)> = pairs
            .into_iter()
            .filter(|(_, s)| s.get("weekday").is_some())
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v.into_iter().map(|(_, s)| s).collect()
    };
    // Z-Wave counts days from Sunday = 0.
    assert_eq!(
        schedules().await,
        vec![
            json!({"weekday": 1, "startHour": 7, "startMinute": 30, "stopHour": 11, "stopMinute": 0}),
            json!({"weekday": 4, "startHour": 7, "startMinute": 30, "stopHour": 11, "stopMinute": 0}),
        ]
    );
    let d = cmd(&hub, "access_codes/delete", json!({"access_code_id": id}));
    assert_eq!(d["ok"], true, "{d}");
    until("the code and its schedule gone", 20, async || {
        !mock.codes(2).await.unwrap().values().any(|c| *c == pin) && schedules().await.is_empty()
    })
    .await;
    shutdown.cancel();
    hub.stopped().await;
}
