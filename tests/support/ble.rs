#![allow(dead_code)]
//! The BLE scenario, over any radio: pair with a fake Nuki, then the
//! seed's group on the Nuki and a simulated Z-Wave-like lock (4-digit keypad)
//! with `create_random_code`, then a late checkout, then removal at the new
//! end. Run over the in-process radio (tests/ble_engine.rs) and over btleplug
//! and a fake BlueZ (tests/ble_bluez.rs), with the same fake lock behind both.

use super::realtime::{cmd, late_checkout, until, until_or, until_read, until_status};
use chrono::{SubsecRound, Utc};
use lockhub::drivers::ble::fake_lock::FakeNuki;
use lockhub::drivers::ble::keys::FileKeyStore;
use lockhub::drivers::ble::link::Radio;
use lockhub::drivers::ble::nuki::keypad::SecurityPin;
use lockhub::drivers::ble::nuki::states::Battery;
use lockhub::drivers::ble::pair::{pair, PairOptions};
use lockhub::drivers::ble::slot_map::SlotMap;
use lockhub::drivers::ble::{BleConfig, BleDriver, BleLockConfig};
use lockhub::drivers::sim::{SimDriver, SimLockSpec};
use lockhub::engine::clock::SystemClock;
use lockhub::hub::Hub;
use lockhub::model::Capabilities;
use lockhub::settings::HubSettings;
use lockhub::store::Store;
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub const FRONT: &str = "8e94044d-a4d1-4691-9f7e-e97d3e8a0b73";
pub const BACK: &str = "d87eea5d-71c6-4633-a966-396c5ac51177";
pub const SECURITY_PIN: u16 = 4711;

fn nuki_codes(nuki: &Mutex<FakeNuki>) -> Vec<(String, Option<chrono::NaiveDateTime>)> {
    nuki.lock()
        .unwrap()
        .keypad
        .codes
        .iter()
        .map(|e| (format!("{:06}", e.code), e.window().map(|w| w.1)))
        .collect()
}

/// Runs the scenario; `nuki` is the fake lock behind `radio` at `address`.
pub async fn seed_group_on_nuki_and_zwave_like(
    radio: Arc<dyn Radio>,
    address: &str,
    nuki: Arc<Mutex<FakeNuki>>,
) {
    let dir = tempfile::tempdir().unwrap();
    let keys = Arc::new(FileKeyStore::new(dir.path().join("ble-keys.json")));
    let opts = PairOptions {
        name: "lockhub".into(),
        security_pin: SecurityPin(SECURITY_PIN),
        timeout: Duration::from_secs(5),
    };
    let auth_id = pair(radio.as_ref(), address, keys.as_ref(), &opts)
        .await
        .expect("pairing");
    assert_eq!(nuki.lock().unwrap().pairing.users.len(), 1);
    println!("paired: authorization {auth_id}");

    let store = Arc::new(Store::open(&dir.path().join("lockhub.db")).unwrap());
    let shutdown = CancellationToken::new();
    let settings = HubSettings {
        set_before_start: chrono::Duration::seconds(1),
        ..HubSettings::default()
    };
    let hub = Hub::start(store, Arc::new(SystemClock), settings, shutdown.clone()).unwrap();
    // A Z-Wave-like lock set to 4-digit codes (as many are), no own scheduling.
    let zwave_like = Capabilities {
        supported_code_lengths: vec![4],
        code_constraints: vec![],
        max_active_codes_supported: 30,
        supports_native_scheduling: false,
        supports_backup_access_code_pool: false,
        can_program_online_access_codes: true,
        supports_remote_lock: false,
    };
    let sim = Arc::new(SimDriver::new(
        vec![SimLockSpec::new(FRONT, "Front door", zwave_like)],
        Some(hub.event_sink()),
    ));
    hub.add_driver(sim.clone()).await.unwrap();
    let ble = Arc::new(BleDriver::new(
        BleConfig {
            locks: vec![BleLockConfig {
                address: address.into(),
                device_id: Some(BACK.into()),
                name: Some("Back door".into()),
            }],
            reply_timeout: Duration::from_secs(2),
            keypad_capacity: 20,
            ..BleConfig::default()
        },
        radio.clone(),
        keys,
        SlotMap::open(dir.path().join("ble-slots.json")).unwrap(),
        Some(hub.event_sink()),
    ));
    ble.watch_advertisements();
    hub.add_driver(ble).await.unwrap();
    until_read(&hub, &[FRONT, BACK]).await;

    // The seed's request: one guest, front and back door, 4 digits preferred;
    // the Nuki cannot take 4 digits, so it gets a code of its own.
    let starts = Utc::now() + chrono::Duration::seconds(2);
    let ends = starts + chrono::Duration::seconds(5);
    let r = cmd(
        &hub,
        "access_codes/create_multiple",
        json!({
            "device_ids": [FRONT, BACK], "name": "Jane's reservation",
            "starts_at": starts.to_rfc3339(), "ends_at": ends.to_rfc3339(),
            "preferred_code_length": 4,
            "behavior_when_code_cannot_be_shared": "create_random_code"
        }),
    );
    assert_eq!(r["ok"], true, "{r}");
    let codes = r["access_codes"].as_array().unwrap();
    let front_pin = codes[0]["code"].as_str().unwrap().to_owned();
    let nuki_pin = codes[1]["code"].as_str().unwrap().to_owned();
    assert_eq!(front_pin.len(), 4);
    assert_eq!(nuki_pin.len(), 6);
    assert!(!nuki_pin.contains('0') && !nuki_pin.starts_with("12"));
    let key = codes[0]["common_code_key"].as_str().unwrap().to_owned();
    assert_eq!(codes[1]["common_code_key"], key.as_str());
    let nuki_code_id = codes[1]["access_code_id"].as_str().unwrap().to_owned();

    assert!(nuki_codes(&nuki).is_empty(), "nothing before the window");
    let front_has = |pin: &str| {
        sim.state(FRONT)
            .unwrap()
            .slots
            .values()
            .any(|c| c.code.expose() == pin)
    };
    until("the PINs on both locks", 20, async || {
        front_has(&front_pin) && nuki_codes(&nuki).iter().any(|c| c.0 == nuki_pin)
    })
    .await;
    // The Nuki holds the window itself.
    let on_nuki = nuki_codes(&nuki);
    assert_eq!(on_nuki.len(), 1);
    assert_eq!(on_nuki[0].1, Some(ends.trunc_subsecs(0).naive_utc()));
    until_status(&hub, &nuki_code_id, "set").await;

    // Late checkout: 5 s more, for the whole stay (both codes, one key).
    let late = ends + chrono::Duration::seconds(5);
    late_checkout(&hub, &key, late);
    until("the Nuki's own window moved", 10, async || {
        nuki_codes(&nuki).first().and_then(|c| c.1) == Some(late.trunc_subsecs(0).naive_utc())
    })
    .await;
    tokio::time::sleep((ends - Utc::now()).to_std().unwrap_or_default() + Duration::from_secs(1))
        .await;
    assert!(front_has(&front_pin), "still on after the old check-out");
    assert_eq!(
        nuki_codes(&nuki).len(),
        1,
        "still on after the old check-out"
    );

    until_or(
        "removal at the new ends_at",
        20,
        async || !front_has(&front_pin) && nuki_codes(&nuki).is_empty(),
        || {
            // Which lock kept its code, and what the hub thinks of each code.
            let ids: Vec<_> = codes.iter().map(|c| c["access_code_id"].clone()).collect();
            let listed = cmd(&hub, "access_codes/list", json!({ "access_code_ids": ids }));
            let codes: Vec<_> = listed["access_codes"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| {
                    json!({"device_id": c["device_id"], "status": c["status"],
                        "ends_at": c["ends_at"], "errors": c["errors"], "warnings": c["warnings"]})
                })
                .collect();
            format!(
                "({late}) front holds it: {}, nuki holds {} codes; the hub's codes: {}",
                front_has(&front_pin),
                nuki_codes(&nuki).len(),
                serde_json::Value::Array(codes)
            )
        },
    )
    .await;
    let removed_at = Utc::now();
    assert!(removed_at >= late, "not removed before its time");
    println!(
        "both removed {} ms after ends_at (includes polling)",
        (removed_at - late).num_milliseconds()
    );
    // Each change carried out once: no add repeated, no stray code left.
    assert_eq!(
        sim.state(FRONT).unwrap().applied.len(),
        2,
        "one set, one clear"
    );
    let sent = nuki.lock().unwrap().commands.clone();
    let count = |c: u16| sent.iter().filter(|&&x| x == c).count();
    assert_eq!(count(0x0041), 1, "one add");
    assert!(
        count(0x0046) >= 1,
        "the late checkout updated the lock's window"
    );
    assert_eq!(count(0x0047), 1, "one remove");
    shutdown.cancel();
    hub.stopped().await;
}

/// What the lock says, over any radio: a guest's keypad entry on the fake
/// Nuki (its activity log names the keypad code) becomes `lock.unlocked`
/// with the guest's `access_code_id`; a wrong code `lock.access_denied`;
/// `locks/lock_door` runs a Lock Action. `signal(driver)` tells the driver
/// the lock changed (the in-process radio's change signal, or a refresh).
pub async fn lock_activity_on_nuki(
    radio: Arc<dyn Radio>,
    address: &str,
    nuki: Arc<Mutex<FakeNuki>>,
    signal: impl AsyncFn(&BleDriver),
) {
    let dir = tempfile::tempdir().unwrap();
    let keys = Arc::new(FileKeyStore::new(dir.path().join("ble-keys.json")));
    let opts = PairOptions {
        name: "lockhub".into(),
        security_pin: SecurityPin(SECURITY_PIN),
        timeout: Duration::from_secs(5),
    };
    pair(radio.as_ref(), address, keys.as_ref(), &opts)
        .await
        .expect("pairing");
    let store = Arc::new(Store::open(&dir.path().join("lockhub.db")).unwrap());
    let shutdown = CancellationToken::new();
    let hub = Hub::start(
        store,
        Arc::new(SystemClock),
        HubSettings::default(),
        shutdown.clone(),
    )
    .unwrap();
    let ble = Arc::new(BleDriver::new(
        BleConfig {
            locks: vec![BleLockConfig {
                address: address.into(),
                device_id: Some(BACK.into()),
                name: Some("Back door".into()),
            }],
            reply_timeout: Duration::from_secs(2),
            keypad_capacity: 20,
            ..BleConfig::default()
        },
        radio.clone(),
        keys,
        SlotMap::open(dir.path().join("ble-slots.json")).unwrap(),
        Some(hub.event_sink()),
    ));
    ble.watch_advertisements();
    hub.add_driver(ble.clone()).await.unwrap();
    until_read(&hub, &[BACK]).await;
    let events = || -> Vec<serde_json::Value> {
        hub.store
            .outbox_peek(0, 1_000_000)
            .unwrap()
            .into_iter()
            .filter(|r| r.topic == "events")
            .map(|r| serde_json::from_slice(&r.payload).unwrap())
            .collect()
    };
    // History from before lockhub met the lock is not reported.
    assert!(nuki.lock().unwrap().keyturner.log.len() >= 2);
    let r = cmd(
        &hub,
        "access_codes/create_multiple",
        json!({"device_ids": [BACK], "name": "Jane", "preferred_code_length": 6}),
    );
    assert_eq!(r["ok"], true, "{r}");
    let id = r["access_codes"][0]["access_code_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let pin: u32 = r["access_codes"][0]["code"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    until_status(&hub, &id, "set").await;
    assert!(
        !events()
            .iter()
            .any(|e| e["event_type"] == "lock.unlocked" || e["event_type"] == "lock.locked"),
        "old log entries are not news: {:?}",
        events()
    );
    let code_id = {
        let n = nuki.lock().unwrap();
        n.keypad.codes.iter().find(|e| e.code == pin).unwrap().id
    };
    let reads_before = nuki.lock().unwrap().keyturner.log_reads;

    // Jane at the keypad.
    nuki.lock()
        .unwrap()
        .keyturner
        .keypad_use(code_id, "Jane", true);
    signal(&ble).await;
    let mut found = None;
    until("lock.unlocked from the Nuki's log", 10, async || {
        found = events()
            .into_iter()
            .find(|e| e["event_type"] == "lock.unlocked");
        found.is_some()
    })
    .await;
    let e = found.unwrap();
    assert_eq!(e["method"], "keycode", "{e}");
    assert_eq!(e["access_code_id"], id.as_str());
    assert_eq!(e["access_code_is_managed"], true);
    let dev = cmd(&hub, "devices/get", json!({"device_id": BACK}))["device"].clone();
    assert_eq!(dev["properties"]["locked"], false);
    assert_eq!(dev["can_remotely_lock"], true);
    assert_eq!(
        dev["properties"]["door_open"], false,
        "the fake lock's sensor: closed"
    );

    // A wrong code.
    nuki.lock().unwrap().keyturner.keypad_use(999, "", false);
    signal(&ble).await;
    until("lock.access_denied", 10, async || {
        events()
            .iter()
            .any(|e| e["event_type"] == "lock.access_denied" && e["reason"] == "invalid_code")
    })
    .await;

    // Locked from the cloud: a Lock Action, confirmed.
    let rid = uuid::Uuid::new_v4().to_string();
    let body = serde_json::to_vec(&json!({"request_id": rid, "device_id": BACK})).unwrap();
    hub.handle(&[("locks/lock_door", &body)]);
    let topic = format!("responses/{rid}");
    let mut answer = None;
    until("lock_door's answer", 20, async || {
        answer = hub
            .store
            .outbox_peek(0, 1_000_000)
            .unwrap()
            .into_iter()
            .find(|r| r.topic == topic)
            .map(|r| serde_json::from_slice::<serde_json::Value>(&r.payload).unwrap());
        answer.is_some()
    })
    .await;
    let a = answer.unwrap();
    assert_eq!(a["action_attempt"]["status"], "success", "{a}");
    assert_eq!(
        nuki.lock().unwrap().keyturner.states.lock_state,
        lockhub::drivers::ble::nuki::states::lock_state::LOCKED
    );
    let locked: Vec<_> = events()
        .into_iter()
        .filter(|e| e["event_type"] == "lock.locked")
        .collect();
    assert_eq!(
        locked.len(),
        1,
        "lockhub's own Lock Action, once: {locked:?}"
    );
    assert_eq!(locked[0]["method"], "seamapi");
    // The log was read only for the changes: the two signals and the lock action.
    let reads = nuki.lock().unwrap().keyturner.log_reads - reads_before;
    assert!(reads <= 3, "{reads} log reads");

    // The lock's critical battery flag (API 2.1: 0x01): device.low_battery
    // once, no level (such a lock states none), and the device's status.
    nuki.lock().unwrap().keyturner.states.battery_state = 0x01;
    signal(&ble).await;
    let low = |events: &[serde_json::Value]| {
        events
            .iter()
            .filter(|e| e["event_type"] == "device.low_battery")
            .cloned()
            .collect::<Vec<_>>()
    };
    until(
        "device.low_battery from the critical flag",
        10,
        async || !low(&events()).is_empty(),
    )
    .await;
    // A manual move, and the state read it causes.
    let moved = async |locked: bool| {
        nuki.lock().unwrap().keyturner.manual(locked);
        signal(&ble).await;
        until("the next state read", 10, async || {
            cmd(&hub, "devices/get", json!({"device_id": BACK}))["device"]["properties"]["locked"]
                == locked
        })
        .await;
    };
    moved(false).await;
    let once = low(&events());
    assert_eq!(once.len(), 1, "once while it lasts: {once:?}");
    assert_eq!(once[0]["battery_status"], "critical", "{:?}", once[0]);
    assert_eq!(once[0]["battery_level"], serde_json::Value::Null);

    // Later firmware sends its level in the same byte (bit 0 still the
    // critical flag): 80 % is a level, not a critical battery.
    nuki.lock().unwrap().keyturner.states.battery_state = Battery::byte(80, false);
    nuki.lock().unwrap().keyturner.manual(true);
    signal(&ble).await;
    until("the level from the state byte", 10, async || {
        cmd(&hub, "devices/get", json!({"device_id": BACK}))["device"]["properties"]["battery"]
            == json!({"level": 0.8, "status": "good"})
    })
    .await;
    moved(false).await;
    let device = cmd(&hub, "devices/get", json!({"device_id": BACK}));
    assert_eq!(
        device["device"]["properties"]["battery"]["status"], "good",
        "{device}"
    );
    let low = low(&events());
    assert_eq!(low.len(), 1, "80 % is no low battery: {low:?}");
    shutdown.cancel();
    hub.stopped().await;
}

/// `lockhub ble pair ADDRESS` with `config` over `bluez`'s bus, the security
/// PIN in its environment: whether it succeeded, and what it printed.
pub fn pair_cli(
    bluez: &super::fake_bluez::FakeBluez,
    config: &std::path::Path,
    address: &str,
    pin: &str,
) -> (bool, String) {
    let t0 = std::time::Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lockhub"))
        .args(["ble", "pair", address, "--config"])
        .arg(config)
        .args(["--timeout-secs", "5"])
        .env("DBUS_SYSTEM_BUS_ADDRESS", &bluez.bus)
        .env("LOCKHUB_SECURITY_PIN", pin)
        .env("LOCKHUB__LOG_LEVEL", "trace")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("lockhub ble pair: {:?}", t0.elapsed());
    (out.status.success(), text)
}
