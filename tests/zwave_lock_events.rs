//! What a Z-Wave lock says, end to end: the zwave-js mock's lock sends
//! Notification, v1 Alarm, Door Lock and Battery reports (through its
//! control channel's `send`) and the hub turns them into the public events
//! and device state; `locks/lock_door` / `locks/unlock_door` move the mock's
//! bolt (read back from the mock's own state) and are answered once it has;
//! a code with lockhub's `max_uses` goes after that many keypad unlocks, a
//! Supervision Get the lock repeats counted once. Needs scripts/test-deps-zwave.sh.

mod support;

use lockhub::drivers::zwave::testing::MockController;
use lockhub::drivers::zwave::{LockConfig, ZwaveConfig, ZwaveDriver};
use lockhub::engine::clock::SystemClock;
use lockhub::hub::Hub;
use lockhub::settings::HubSettings;
use lockhub::store::Store;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use support::realtime::{cmd, until, until_read, until_status};
use tokio_util::sync::CancellationToken;

const FRONT: &str = "8e94044d-a4d1-4691-9f7e-e97d3e8a0b73";

struct Rig {
    mock: MockController,
    hub: Arc<Hub>,
    shutdown: CancellationToken,
    _dir: tempfile::TempDir,
}

async fn rig() -> Rig {
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
    hub.add_driver(driver).await.unwrap();
    until_read(&hub, &[FRONT]).await;
    Rig {
        mock,
        hub,
        shutdown,
        _dir: dir,
    }
}

impl Rig {
    async fn send(&self, hex: &str) {
        let r = self
            .mock
            .control(json!({"cmd": "send", "node": 2, "hex": hex}))
            .await
            .unwrap();
        assert_eq!(r, "ok");
    }

    fn events(&self) -> Vec<Value> {
        self.hub
            .store
            .outbox_peek(0, 1_000_000)
            .unwrap()
            .into_iter()
            .filter(|r| r.topic == "events")
            .map(|r| serde_json::from_slice(&r.payload).unwrap())
            .collect()
    }

    /// Waits for the first event of `event_type` that `f` accepts.
    async fn event_where(&self, event_type: &str, f: impl Fn(&Value) -> bool) -> Value {
        let mut found = None;
        until(event_type, 10, async || {
            found = self
                .events()
                .into_iter()
                .find(|e| e["event_type"] == event_type && f(e));
            found.is_some()
        })
        .await;
        found.unwrap()
    }

    /// Waits for the `n`th (from 1) event of `event_type`.
    async fn event(&self, event_type: &str, n: usize) -> Value {
        let mut found = None;
        until(&format!("{event_type} #{n}"), 10, async || {
            found = self
                .events()
                .into_iter()
                .filter(|e| e["event_type"] == event_type)
                .nth(n - 1);
            found.is_some()
        })
        .await;
        found.unwrap()
    }

    fn count(&self, event_type: &str) -> usize {
        self.events()
            .iter()
            .filter(|e| e["event_type"] == event_type)
            .count()
    }

    fn device(&self) -> Value {
        cmd(&self.hub, "devices/get", json!({"device_id": FRONT}))["device"].clone()
    }

    /// The mock lock's bolt: its Door Lock state as the mock holds it.
    async fn mock_mode(&self) -> Option<u64> {
        let raw = self
            .mock
            .control(json!({"cmd": "state", "node": 2, "prefix": "DoorLock_currentMode"}))
            .await
            .unwrap();
        let v: Vec<(String, Value)> = serde_json::from_str(&raw).unwrap();
        v.first().and_then(|(_, m)| m.as_u64())
    }

    /// A new code on the front door with `max_uses`, once it is set: its
    /// id and slot (the user id the lock's reports name).
    async fn code_with_max_uses(&self, name: &str, max_uses: u32) -> (String, u32) {
        let r = cmd(
            &self.hub,
            "access_codes/create",
            json!({"device_id": FRONT, "name": name, "preferred_code_length": 4, "max_uses": max_uses}),
        );
        assert_eq!(r["ok"], true, "{r}");
        let id = r["access_code"]["access_code_id"]
            .as_str()
            .unwrap()
            .to_owned();
        until_status(&self.hub, &id, "set").await;
        let slot = self
            .hub
            .store
            .read(|tx| Ok(tx.code(&id)?.unwrap().slot))
            .unwrap();
        (id, slot)
    }

    /// Sends a lock action and waits for its answer (published once the lock confirmed).
    async fn action(&self, command: &str) -> Value {
        let rid = uuid::Uuid::new_v4().to_string();
        let body = serde_json::to_vec(&json!({"request_id": rid, "device_id": FRONT})).unwrap();
        let now = self.hub.handle(&[(command, &body)]).remove(0).body;
        assert_eq!(now["action_attempt"]["status"], "pending", "{now}");
        let topic = format!("responses/{rid}");
        let mut answer = None;
        until("the action's answer", 40, async || {
            answer = self
                .hub
                .store
                .outbox_peek(0, 1_000_000)
                .unwrap()
                .into_iter()
                .find(|r| r.topic == topic)
                .map(|r| serde_json::from_slice::<Value>(&r.payload).unwrap());
            answer.is_some()
        })
        .await;
        answer.unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_reports_become_public_events_and_device_state() {
    let rig = rig().await;
    let hub = &rig.hub;
    let r = cmd(
        hub,
        "access_codes/create_multiple",
        json!({"device_ids": [FRONT], "name": "Jane", "preferred_code_length": 4}),
    );
    assert_eq!(r["ok"], true, "{r}");
    let code = &r["access_codes"][0];
    let id = code["access_code_id"].as_str().unwrap().to_owned();
    let key = code["common_code_key"].as_str().unwrap().to_owned();
    until_status(hub, &id, "set").await;
    let slot = hub
        .store
        .read(|tx| Ok(tx.code(&id)?.unwrap().slot))
        .unwrap();
    assert_eq!(
        cmd(hub, "access_codes/get", json!({"access_code_id": id}))["access_code"]["last_used_at"],
        Value::Null
    );

    // Jane's code at the keypad: Access Control "keypad unlock", user id = her slot.
    rig.send(&format!("7105 0000 00 ff 06 06 01 {slot:02x}"))
        .await;
    let e = rig.event("lock.unlocked", 1).await;
    assert_eq!(e["method"], "keycode", "{e}");
    assert_eq!(e["access_code_id"], id.as_str());
    assert_eq!(e["common_code_key"], key.as_str());
    assert_eq!(e["access_code_is_managed"], true);
    assert_eq!(e["device_id"], FRONT);
    for k in ["workspace_id", "created_at", "occurred_at", "event_id"] {
        assert!(e[k].is_string(), "{k} in {e}");
    }
    let used = cmd(hub, "access_codes/get", json!({"access_code_id": id}))["access_code"]
        ["last_used_at"]
        .clone();
    assert_eq!(
        used, e["occurred_at"],
        "last_used_at from the lock's report"
    );
    assert_eq!(rig.device()["properties"]["locked"], false);

    // Locked by hand, then a v1 Alarm (Kwikset/Yale mapping) manual unlock.
    rig.send("7105 0000 00 ff 06 01 00").await;
    let e = rig.event("lock.locked", 1).await;
    assert_eq!(e["method"], "manual", "{e}");
    assert!(e.get("access_code_id").is_none(), "{e}");
    assert_eq!(rig.device()["properties"]["locked"], true);
    rig.send("7105 16 01").await;
    let e = rig.event("lock.unlocked", 2).await;
    assert_eq!(e["method"], "manual", "{e}");

    // A wrong PIN (Home Security "tampering, invalid code"), and a code the
    // lock holds used outside its schedule (Access Control 0x30 with the user).
    rig.send("7105 0000 00 ff 07 04 00").await;
    let e = rig.event("lock.access_denied", 1).await;
    assert_eq!(e["reason"], "invalid_code", "{e}");
    assert!(e.get("access_code_id").is_none());
    rig.send(&format!("7105 0000 00 ff 06 30 01 {slot:02x}"))
        .await;
    let e = rig.event("lock.access_denied", 2).await;
    assert_eq!(e["reason"], "outside_schedule", "{e}");
    assert_eq!(e["access_code_id"], id.as_str());

    // The door sensor (lockhub's events; the public API has none).
    rig.send("7105 0000 00 ff 06 16 00").await;
    rig.event("lock.door_opened", 1).await;
    assert_eq!(rig.device()["properties"]["door_open"], true);
    rig.send("7105 0000 00 ff 06 17 00").await;
    rig.event("lock.door_closed", 1).await;
    assert_eq!(rig.device()["properties"]["door_open"], false);

    // A Door Lock report (secured) with no word of how: state, and
    // `method: unknown`; the same report again changes nothing.
    rig.send("6203 ff 00 00 fe fe").await;
    let e = rig.event("lock.locked", 2).await;
    assert_eq!(e["method"], "unknown", "{e}");
    assert_eq!(rig.device()["properties"]["locked"], true);
    rig.send("6203 ff 00 00 fe fe").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        rig.count("lock.locked"),
        2,
        "an unchanged state is no event"
    );

    // Battery: good, then low (once), as 0..1.
    rig.send("8003 50").await;
    let e = rig
        .event_where("device.battery_status_changed", |e| {
            e["battery_status"] == "good"
        })
        .await;
    assert_eq!(e["battery_level"].as_f64(), Some(0.8), "{e}");
    rig.send("8003 0f").await;
    let e = rig.event("device.low_battery", 1).await;
    assert_eq!(e["battery_level"].as_f64(), Some(0.15), "{e}");
    let d = rig.device();
    assert_eq!(d["properties"]["battery_level"].as_f64(), Some(0.15));
    assert_eq!(d["properties"]["battery"]["status"], "low");
    rig.send("8003 0e").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rig.count("device.low_battery"), 1, "once per crossing");
    // New batteries, then the lock's own warnings without a level (v1
    // Alarm 167 low, 168 critical; Yale/Kwikset): low_battery once more,
    // then critical.
    rig.send("8003 64").await;
    rig.event_where("device.battery_status_changed", |e| {
        e["battery_status"] == "full"
    })
    .await;
    rig.send("7105 a7 01").await;
    let e = rig.event("device.low_battery", 2).await;
    assert_eq!(e["battery_status"], "low", "{e}");
    rig.send("7105 a7 01").await;
    rig.send("7105 a8 01").await;
    rig.event_where("device.battery_status_changed", |e| {
        e["battery_status"] == "critical"
    })
    .await;
    assert_eq!(
        rig.count("device.low_battery"),
        2,
        "a repeated warning is no news"
    );
    assert_eq!(rig.device()["properties"]["battery"]["status"], "critical");

    // The retained device state carries it too.
    let retained = hub.retained_state().unwrap();
    let (_, body) = retained
        .iter()
        .find(|(t, _)| t == &format!("devices/{FRONT}"))
        .unwrap();
    let body: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(body["properties"]["locked"], true);
    assert_eq!(body["can_remotely_lock"], true);
    rig.shutdown.cancel();
    rig.hub.stopped().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_door_and_unlock_door_move_the_mock_bolt() {
    let rig = rig().await;
    assert_eq!(rig.device()["can_remotely_unlock"], true);
    let a = rig.action("locks/lock_door").await;
    assert_eq!(a["ok"], true, "{a}");
    assert_eq!(a["action_attempt"]["status"], "success");
    assert_eq!(a["action_attempt"]["action_type"], "LOCK_DOOR");
    assert_eq!(
        rig.mock_mode().await,
        Some(0xFF),
        "the mock lock is secured"
    );
    let e = rig.event("lock.locked", 1).await;
    assert_eq!(e["method"], "seamapi", "{e}");
    assert_eq!(
        e["action_attempt_id"],
        a["action_attempt"]["action_attempt_id"]
    );
    assert_eq!(rig.device()["properties"]["locked"], true);

    let a = rig.action("locks/unlock_door").await;
    assert_eq!(a["action_attempt"]["status"], "success", "{a}");
    assert_eq!(
        rig.mock_mode().await,
        Some(0x00),
        "the mock lock is unsecured"
    );
    assert_eq!(rig.device()["properties"]["locked"], false);
    // The lock's own report of that move (RF unlock) is the same move.
    rig.send("7105 0000 00 ff 06 04 00").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rig.count("lock.unlocked"), 1, "{:?}", rig.events());

    // A lock that does not answer: an error answer, no state change.
    rig.mock
        .control(json!({"cmd": "mute", "node": 2}))
        .await
        .unwrap();
    let a = rig.action("locks/lock_door").await;
    assert_eq!(a["ok"], false, "{a}");
    assert_eq!(a["action_attempt"]["status"], "error");
    assert_eq!(a["error"]["type"], "lock_did_not_confirm", "{a}");
    assert_eq!(rig.mock_mode().await, Some(0x00));
    assert_eq!(rig.device()["properties"]["locked"], false);
    rig.shutdown.cancel();
    rig.hub.stopped().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_uses_counts_each_keypad_unlock_once() {
    let rig = rig().await;
    let hub = &rig.hub;
    let (id, slot) = rig.code_with_max_uses("Handyman", 2).await;
    let get = || cmd(hub, "access_codes/get", json!({"access_code_id": id}));
    // The first use, in a Supervision Get (session 5) the lock sends twice,
    // as a lock that missed our Supervision Report does.
    let supervised =
        |session: u8| format!("6c01 {session:02x} 0a 7105 0000 00 ff 06 06 01 {slot:02x}");
    rig.send(&supervised(5)).await;
    rig.send(&supervised(5)).await;
    // Then locked by hand: once that is in, both copies were handled.
    rig.send("7105 0000 00 ff 06 01 00").await;
    rig.event("lock.locked", 1).await;
    assert_eq!(
        rig.count("lock.unlocked"),
        1,
        "the repeat is not a second unlock"
    );
    let c = get()["access_code"].clone();
    assert_eq!(
        (&c["use_count"], &c["max_uses"]),
        (&json!(1), &json!(2)),
        "{c}"
    );
    // The second use (a new session): the code goes, and off the lock.
    rig.send(&supervised(6)).await;
    let e = rig
        .event_where("access_code.deleted", |e| {
            e["access_code_id"] == id.as_str()
        })
        .await;
    assert_eq!(e["reason"], "max_uses", "{e}");
    rig.event_where("access_code.removed_from_device", |e| {
        e["access_code_id"] == id.as_str()
    })
    .await;
    assert_eq!(rig.count("lock.unlocked"), 2);
    rig.shutdown.cancel();
    rig.hub.stopped().await;
}

/// A lock that missed our ack sends the same Notification report again,
/// with the same sequence number (Notification v3+, the Sequence bit): one
/// unlock, one event, one use of a code with `max_uses`. A new sequence
/// number is a new unlock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_sent_again_under_its_sequence_number_counts_once() {
    let rig = rig().await;
    let hub = &rig.hub;
    let (id, slot) = rig.code_with_max_uses("Cleaner", 2).await;
    // Keypad unlock by the code's user id; Properties1 0x81: the Sequence
    // bit and one parameter byte; then the sequence number.
    let unlock = |seq: u8| format!("7105 0000 00 ff 06 06 81 {slot:02x} {seq:02x}");
    rig.send(&unlock(0x21)).await;
    rig.send(&unlock(0x21)).await;
    // Then locked by hand: once that is in, both copies were handled.
    rig.send("7105 0000 00 ff 06 01 80 22").await;
    rig.event("lock.locked", 1).await;
    assert_eq!(
        rig.count("lock.unlocked"),
        1,
        "the repeat is not a second unlock: {:?}",
        rig.events()
    );
    let c = cmd(hub, "access_codes/get", json!({"access_code_id": id}))["access_code"].clone();
    assert_eq!(c["use_count"], json!(1), "{c}");
    // The next report (a new number): the second use, and the code goes.
    rig.send(&unlock(0x23)).await;
    let e = rig
        .event_where("access_code.deleted", |e| {
            e["access_code_id"] == id.as_str()
        })
        .await;
    assert_eq!(e["reason"], "max_uses", "{e}");
    assert_eq!(rig.count("lock.unlocked"), 2);
    rig.shutdown.cancel();
    rig.hub.stopped().await;
}
