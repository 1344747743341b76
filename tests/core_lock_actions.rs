//! Remote lock/unlock and what simulated locks say, on paused time: an
//! action is answered once its lock confirmed, refusals are typed and
//! immediate, a replay while the lock is at it sends nothing twice, an
//! attempt left by a stopped hub is not carried out late; keypad, manual and
//! refused entries become the public events with the code's id.

mod support;

use lockhub::drivers::sim::Fault;
use lockhub::drivers::{DeniedReason, LockMethod};
use serde_json::{json, Value};
use std::time::Duration;
use support::core::*;

const NUKI: &str = "5a1e0d1b-0000-4000-8000-00000000000a";

/// The slot the store gave a code.
fn slot_of(hub: &Hub, access_code_id: &str) -> u32 {
    hub.store
        .read(|tx| Ok(tx.code(access_code_id)?.unwrap().slot))
        .unwrap()
}

fn events_of(hub: &Hub, event_type: &str) -> Vec<Value> {
    hub.events()
        .into_iter()
        .filter(|e| e["event_type"] == event_type)
        .collect()
}

#[tokio::test(start_paused = true)]
async fn lock_actions_on_simulated_locks() {
    let hub = Hub::start(vec![
        spec(FRONT, "Front door", keypad(&[4], 30)),
        spec(NUKI, "Nuki", nuki_like()),
    ])
    .await;
    hub.run_for(Duration::from_secs(1)).await;
    let dev = |id: &str| hub.cmd("devices/get", json!({"device_id": id}))["device"].clone();
    assert_eq!(dev(NUKI)["can_remotely_lock"], true);
    assert_eq!(dev(FRONT)["can_remotely_unlock"], false);

    // Answered once the lock did it, with the event and the device state.
    let now = hub.cmd(
        "locks/lock_door",
        json!({"request_id": "l-1", "device_id": NUKI}),
    );
    assert_eq!(now["action_attempt"]["status"], "pending", "{now}");
    assert!(
        hub.answer("l-1").is_none(),
        "no answer before the lock confirmed"
    );
    hub.run_for(Duration::from_secs(2)).await;
    let a = hub.answer("l-1").expect("answered");
    assert_eq!(a["ok"], true, "{a}");
    assert_eq!(a["action_attempt"]["status"], "success");
    assert!(hub.sim.state(NUKI).unwrap().locked);
    // The lock's own report of the move came first: still one event.
    let locked = events_of(&hub, "lock.locked");
    assert_eq!(locked.len(), 1, "{locked:?}");
    let e = &locked[0];
    assert_eq!(e["method"], "seamapi");
    assert_eq!(
        e["action_attempt_id"],
        a["action_attempt"]["action_attempt_id"]
    );
    assert_eq!(dev(NUKI)["properties"]["locked"], true);
    // A replay gets the same answer and moves nothing.
    let attempts = hub.sim.state(NUKI).unwrap().attempts;
    let again = hub.cmd(
        "locks/lock_door",
        json!({"request_id": "l-1", "device_id": NUKI}),
    );
    assert_eq!(again, a);
    hub.run_for(Duration::from_secs(2)).await;
    assert_eq!(hub.sim.state(NUKI).unwrap().attempts, attempts);

    // Lock then unlock in a row: carried out in that order.
    hub.cmd(
        "locks/unlock_door",
        json!({"request_id": "l-2", "device_id": NUKI}),
    );
    hub.cmd(
        "locks/lock_door",
        json!({"request_id": "l-3", "device_id": NUKI}),
    );
    hub.cmd(
        "locks/unlock_door",
        json!({"request_id": "l-4", "device_id": NUKI}),
    );
    hub.run_for(Duration::from_secs(2)).await;
    for r in ["l-2", "l-3", "l-4"] {
        assert_eq!(
            hub.answer(r).unwrap()["action_attempt"]["status"],
            "success"
        );
    }
    assert!(!hub.sim.state(NUKI).unwrap().locked, "the last one wins");
    // The lock reports each move before it confirms it: one event a move,
    // lockhub's.
    let moves: Vec<Value> = hub
        .events()
        .into_iter()
        .filter(|e| e["event_type"] == "lock.locked" || e["event_type"] == "lock.unlocked")
        .collect();
    let methods: Vec<&str> = moves
        .iter()
        .map(|e| e["method"].as_str().unwrap())
        .collect();
    assert_eq!(methods, ["seamapi"; 4], "{moves:?}");

    // A lock that fails: an error answer, nothing recorded as moved.
    hub.sim.inject(NUKI, [Fault::Timeout]);
    hub.cmd(
        "locks/lock_door",
        json!({"request_id": "l-5", "device_id": NUKI}),
    );
    hub.run_for(Duration::from_secs(2)).await;
    let a = hub.answer("l-5").unwrap();
    assert_eq!(a["ok"], false, "{a}");
    assert_eq!(a["error"]["type"], "lock_did_not_confirm");
    assert_eq!(a["action_attempt"]["status"], "error");
    assert_eq!(dev(NUKI)["properties"]["locked"], false);

    // The lock moved and said so, but its confirmation was lost: an error
    // answer, and the move told as the lock's, not as lockhub's.
    let locked_before = events_of(&hub, "lock.locked").len();
    hub.sim.inject(NUKI, [Fault::LostReply]);
    hub.cmd(
        "locks/lock_door",
        json!({"request_id": "l-6", "device_id": NUKI}),
    );
    hub.run_for(Duration::from_secs(2)).await;
    let a = hub.answer("l-6").unwrap();
    assert_eq!(a["error"]["type"], "lock_did_not_confirm", "{a}");
    let locked = events_of(&hub, "lock.locked");
    assert_eq!(locked.len(), locked_before + 1, "{locked:?}");
    assert_eq!(locked.last().unwrap()["method"], "unknown");
    assert_eq!(dev(NUKI)["properties"]["locked"], true);

    // Refused at once: no motor, offline, unknown device, bad body.
    let r = hub.cmd("locks/lock_door", json!({"device_id": FRONT}));
    assert_eq!(r["error"]["type"], "unsupported_by_device", "{r}");
    hub.sim.set_online(NUKI, false);
    hub.run_for(Duration::from_millis(100)).await;
    let r = hub.cmd("locks/unlock_door", json!({"device_id": NUKI}));
    assert_eq!(r["error"]["type"], "device_offline", "{r}");
    let r = hub.cmd("locks/unlock_door", json!({"device_id": "nope"}));
    assert_eq!(r["error"]["type"], "device_not_found", "{r}");
    let r = hub.cmd(
        "locks/unlock_door",
        json!({"device_id": NUKI, "force": true}),
    );
    assert_eq!(r["error"]["type"], "invalid_input", "{r}");
    hub.stop().await;
}

#[tokio::test(start_paused = true)]
async fn an_attempt_left_by_a_stopped_hub_is_not_carried_out_late() {
    let store = std::sync::Arc::new(lockhub::store::Store::open_in_memory().unwrap());
    // An unlock recorded two minutes ago by a hub that stopped before its lock confirmed.
    store
        .write(|tx| {
            tx.insert_action_attempt(&lockhub::store::ActionAttempt {
                action_attempt_id: "old-attempt".into(),
                request_id: "l-old".into(),
                device_id: NUKI.into(),
                action_type: "UNLOCK_DOOR".into(),
                status: "pending".into(),
                error: None,
                created_at: base_time() - chrono::Duration::minutes(2),
                reply_to: None,
                fingerprint: None,
            })
        })
        .unwrap();
    let hub = Hub::start_with(
        store,
        vec![spec(NUKI, "Nuki", nuki_like())],
        Default::default(),
    )
    .await;
    hub.sim.operate(NUKI, true, LockMethod::Manual, None);
    hub.run_for(Duration::from_secs(3)).await;
    let a = hub.answer("l-old").expect("answered");
    assert_eq!(a["action_attempt"]["status"], "error", "{a}");
    assert_eq!(a["error"]["type"], "lock_did_not_confirm");
    assert!(
        hub.sim.state(NUKI).unwrap().locked,
        "not unlocked minutes late"
    );
    assert_eq!(
        hub.cmd(
            "locks/unlock_door",
            json!({"request_id": "l-old", "device_id": NUKI})
        ),
        a
    );
    hub.stop().await;
}

#[tokio::test(start_paused = true)]
async fn keypad_manual_and_refused_entries_name_the_code() {
    let hub = Hub::start(vec![spec(FRONT, "Front door", keypad(&[4], 30))]).await;
    hub.run_for(Duration::from_secs(1)).await;
    let r = hub.cmd(
        "access_codes/create_multiple",
        json!({"device_ids": [FRONT], "name": "Jane", "code": "5974"}),
    );
    let id = r["access_codes"][0]["access_code_id"]
        .as_str()
        .unwrap()
        .to_owned();
    hub.run_for(Duration::from_secs(2)).await;
    let slot = slot_of(&hub, &id);
    hub.sim.keypad_unlock(FRONT, slot);
    hub.sim.operate(FRONT, true, LockMethod::Automatic, None);
    hub.sim
        .access_denied(FRONT, DeniedReason::OutsideSchedule, Some(slot));
    hub.sim.door(FRONT, true);
    hub.run_for(Duration::from_millis(100)).await;
    let u = &events_of(&hub, "lock.unlocked")[0];
    assert_eq!(
        (u["method"].as_str(), u["access_code_id"].as_str()),
        (Some("keycode"), Some(id.as_str()))
    );
    assert_eq!(
        u["common_code_key"],
        r["access_codes"][0]["common_code_key"]
    );
    let code = hub.cmd("access_codes/get", json!({"access_code_id": id}))["access_code"].clone();
    assert_eq!(code["last_used_at"], u["occurred_at"]);
    assert_eq!(events_of(&hub, "lock.locked")[0]["method"], "automatic");
    let d = &events_of(&hub, "lock.access_denied")[0];
    assert_eq!(
        (d["reason"].as_str(), d["access_code_id"].as_str()),
        (Some("outside_schedule"), Some(id.as_str()))
    );
    assert_eq!(events_of(&hub, "lock.door_opened").len(), 1);
    let dev = hub.cmd("devices/get", json!({"device_id": FRONT}))["device"].clone();
    assert_eq!(dev["properties"]["locked"], true);
    assert_eq!(dev["properties"]["door_open"], true);
    hub.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_one_time_code_goes_after_its_first_use() {
    let hub = Hub::start(vec![spec(FRONT, "Front door", keypad(&[4], 30))]).await;
    hub.run_for(Duration::from_secs(1)).await;
    let r = hub.cmd(
        "access_codes/create",
        json!({"device_id": FRONT, "name": "Plumber", "code": "5974", "is_one_time_use": true}),
    );
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["access_code"]["is_one_time_use"], true);
    let id = r["access_code"]["access_code_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // An ordinary code beside it stays.
    let other = hub.cmd(
        "access_codes/create",
        json!({"device_id": FRONT, "name": "Owner", "code": "8642"}),
    );
    assert_eq!(other["access_code"]["is_one_time_use"], false);
    hub.run_for(Duration::from_secs(2)).await;
    let slot_of = |id: &str| hub.store.read(|tx| Ok(tx.code(id)?.unwrap().slot)).unwrap();
    let (slot, owner_slot) = (
        slot_of(&id),
        slot_of(other["access_code"]["access_code_id"].as_str().unwrap()),
    );
    assert_eq!(hub.code_on(FRONT, slot).as_deref(), Some("5974"));
    // The owner's use changes nothing; the plumber's removes the plumber's code.
    hub.sim.keypad_unlock(FRONT, owner_slot);
    hub.run_for(Duration::from_secs(1)).await;
    assert_eq!(hub.code_on(FRONT, slot).as_deref(), Some("5974"));
    hub.sim.keypad_unlock(FRONT, slot);
    hub.run_for(Duration::from_secs(2)).await;
    assert_eq!(hub.code_on(FRONT, slot), None, "off the lock after its use");
    assert_eq!(hub.code_on(FRONT, owner_slot).as_deref(), Some("8642"));
    let types = hub.event_types_for(&id);
    assert!(
        types.contains(&"access_code.deleted".to_string()),
        "{types:?}"
    );
    assert!(
        types.contains(&"access_code.removed_from_device".to_string()),
        "{types:?}"
    );
    let r = hub.cmd("access_codes/get", json!({"access_code_id": id}));
    assert_eq!(r["error"]["type"], "access_code_not_found", "{r}");
    hub.stop().await;
}

/// lockhub's `max_uses`: a code goes after the Nth unlock its lock reports,
/// counted across a restart of the hub (the count is in the store, written
/// with the unlock's event); bad limits are refused naming the field.
#[tokio::test(start_paused = true)]
async fn a_code_with_max_uses_goes_after_its_nth_use_across_a_restart() {
    use lockhub::drivers::sim::SimDriver;
    use lockhub::store::Store;
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("lockhub.db");
    let sim = Arc::new(SimDriver::new(
        vec![spec(FRONT, "Front door", keypad(&[4], 30))],
        None,
    ));
    let start = |sim: &Arc<SimDriver>| {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        sim.set_sink(tx);
        let store = Arc::new(Store::open(&db).unwrap());
        Hub::start_on(store, sim.clone(), rx, Default::default())
    };
    let hub = start(&sim).await;
    hub.run_for(Duration::from_secs(1)).await;
    for (bad, why) in [
        (json!({"max_uses": 0}), "zero"),
        (json!({"max_uses": "3"}), "a string"),
        (json!({"max_uses": 2.5}), "not whole"),
        (json!({"max_uses": 100_001}), "too many"),
        (json!({"max_uses": 3, "is_one_time_use": true}), "disagrees"),
        (
            json!({"max_uses": 1, "is_one_time_use": false}),
            "disagrees",
        ),
    ] {
        let mut body = json!({"device_id": FRONT, "code": "5974"});
        body.as_object_mut()
            .unwrap()
            .extend(bad.as_object().unwrap().clone());
        let r = hub.cmd("access_codes/create", body);
        assert_eq!(r["error"]["type"], "invalid_input", "{why}: {r}");
        assert!(
            r["error"]["message"].as_str().unwrap().contains("max_uses"),
            "{why}: {r}"
        );
    }
    let r = hub.cmd(
        "access_codes/create",
        json!({"device_id": FRONT, "name": "Handyman", "code": "5974", "max_uses": 3}),
    );
    assert_eq!(r["ok"], true, "{r}");
    let c = &r["access_code"];
    assert_eq!(
        (&c["max_uses"], &c["use_count"], &c["is_one_time_use"]),
        (&json!(3), &json!(0), &json!(false))
    );
    let id = c["access_code_id"].as_str().unwrap().to_owned();
    let ordinary = hub.cmd(
        "access_codes/create",
        json!({"device_id": FRONT, "code": "8642"}),
    )["access_code"]
        .clone();
    assert_eq!(ordinary["max_uses"], json!(null));
    hub.run_for(Duration::from_secs(2)).await;
    let slot = slot_of(&hub, &id);
    assert_eq!(hub.code_on(FRONT, slot).as_deref(), Some("5974"));
    for _ in 0..2 {
        sim.keypad_unlock(FRONT, slot);
        hub.run_for(Duration::from_secs(1)).await;
    }
    assert_eq!(hub.get(&id)["use_count"], 2);
    assert_eq!(hub.code_on(FRONT, slot).as_deref(), Some("5974"));
    hub.stop().await;

    // A new hub on the same store: the two uses are still counted.
    let hub = start(&sim).await;
    hub.run_for(Duration::from_secs(2)).await;
    let c = hub.get(&id);
    assert_eq!((&c["use_count"], &c["max_uses"]), (&json!(2), &json!(3)));
    assert_eq!(hub.code_on(FRONT, slot).as_deref(), Some("5974"));
    sim.keypad_unlock(FRONT, slot);
    hub.run_for(Duration::from_secs(2)).await;
    assert_eq!(
        hub.code_on(FRONT, slot),
        None,
        "off the lock after its 3rd use"
    );
    let deleted: Vec<Value> = events_of(&hub, "access_code.deleted")
        .into_iter()
        .filter(|e| e["access_code_id"] == id.as_str())
        .collect();
    assert_eq!(deleted.len(), 1, "{deleted:?}");
    assert_eq!(deleted[0]["reason"], "max_uses");
    let r = hub.cmd("access_codes/get", json!({"access_code_id": id}));
    assert_eq!(r["error"]["type"], "access_code_not_found", "{r}");
    let slots = hub.slots(FRONT);
    assert_eq!(slots.len(), 1, "the ordinary code stays: {slots:?}");
    hub.stop().await;
}

/// `access_codes/update` changes a code's use limit (`max_uses`, `null` for
/// none, `is_one_time_use`), never below the uses already counted;
/// `update_multiple` changes it for every code of a group. Only
/// `access_code.changed` tells it: nothing on the lock changes.
#[tokio::test(start_paused = true)]
async fn max_uses_is_changed_by_update_and_update_multiple() {
    let hub = Hub::start(vec![
        spec(FRONT, "Front door", keypad(&[4], 30)),
        spec(BACK, "Back door", keypad(&[4], 30)),
    ])
    .await;
    hub.run_for(Duration::from_secs(1)).await;
    let r = hub.cmd(
        "access_codes/create",
        json!({"device_id": FRONT, "name": "Handyman", "code": "5974", "max_uses": 3}),
    );
    let id = r["access_code"]["access_code_id"]
        .as_str()
        .unwrap()
        .to_owned();
    hub.run_for(Duration::from_secs(2)).await;
    let slot = slot_of(&hub, &id);
    for _ in 0..2 {
        hub.sim.keypad_unlock(FRONT, slot);
        hub.run_for(Duration::from_secs(1)).await;
    }
    assert_eq!(hub.get(&id)["use_count"], 2);
    let update = |body: Value| {
        let mut b = json!({"access_code_id": id});
        b.as_object_mut()
            .unwrap()
            .extend(body.as_object().unwrap().clone());
        hub.cmd("access_codes/update", b)
    };
    let changed = || {
        events_of(&hub, "access_code.changed")
            .into_iter()
            .filter(|e| e["access_code_id"] == id.as_str())
            .count()
    };
    for (bad, why) in [
        (json!({"max_uses": 2}), "already used twice"),
        (json!({"is_one_time_use": true}), "already used"),
        (json!({"max_uses": 0}), "zero"),
        (json!({"max_uses": "5"}), "a string"),
        (json!({"max_uses": 4, "is_one_time_use": true}), "disagrees"),
    ] {
        let r = update(bad);
        assert_eq!(r["error"]["type"], "invalid_input", "{why}: {r}");
        assert!(
            r["error"]["message"].as_str().unwrap().contains("max_uses"),
            "{why}: {r}"
        );
    }
    assert_eq!(hub.get(&id)["max_uses"], 3, "nothing changed");
    assert_eq!(changed(), 0);

    let r = update(json!({"max_uses": 5}));
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(hub.get(&id)["max_uses"], 5);
    assert_eq!(changed(), 1);
    // The same again is no change.
    update(json!({"max_uses": 5}));
    assert_eq!(changed(), 1);
    // No limit: the third and fourth uses keep it on the lock.
    assert_eq!(update(json!({"max_uses": null}))["ok"], true);
    let c = hub.get(&id);
    assert_eq!((&c["max_uses"], &c["use_count"]), (&json!(null), &json!(2)));
    for _ in 0..2 {
        hub.sim.keypad_unlock(FRONT, slot);
        hub.run_for(Duration::from_secs(1)).await;
    }
    assert_eq!(hub.get(&id)["use_count"], 4);
    assert_eq!(hub.code_on(FRONT, slot).as_deref(), Some("5974"));
    // And a limit again, above the uses: the 5th is the last.
    assert_eq!(update(json!({"max_uses": 5}))["ok"], true);
    hub.sim.keypad_unlock(FRONT, slot);
    hub.run_for(Duration::from_secs(2)).await;
    assert_eq!(hub.code_on(FRONT, slot), None, "gone after its 5th use");

    // A group becomes one-time: each code goes after its own first use.
    let r = hub.cmd(
        "access_codes/create_multiple",
        json!({"device_ids": [FRONT, BACK], "name": "Cleaner"}),
    );
    let key = r["access_codes"][0]["common_code_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let ids: Vec<String> = r["access_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["access_code_id"].as_str().unwrap().to_owned())
        .collect();
    hub.run_for(Duration::from_secs(2)).await;
    let r = hub.cmd(
        "access_codes/update_multiple",
        json!({"common_code_key": key, "max_uses": "one"}),
    );
    assert_eq!(r["error"]["type"], "invalid_input", "{r}");
    let r = hub.cmd(
        "access_codes/update_multiple",
        json!({"common_code_key": key, "max_uses": 1}),
    );
    assert_eq!(r["ok"], true, "{r}");
    for id in &ids {
        let c = hub.get(id);
        assert_eq!(
            (&c["max_uses"], &c["is_one_time_use"]),
            (&json!(1), &json!(true))
        );
    }
    let front_slot = slot_of(&hub, &ids[0]);
    hub.sim.keypad_unlock(FRONT, front_slot);
    hub.run_for(Duration::from_secs(2)).await;
    let r = hub.cmd("access_codes/get", json!({"access_code_id": ids[0]}));
    assert_eq!(r["error"]["type"], "access_code_not_found", "{r}");
    assert_eq!(hub.get(&ids[1])["status"], "set", "the back door's stays");
    // `is_one_time_use: false` alone makes the back door's code ordinary.
    let r = hub.cmd(
        "access_codes/update",
        json!({"access_code_id": ids[1], "is_one_time_use": false}),
    );
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(hub.get(&ids[1])["max_uses"], json!(null));
    hub.stop().await;
}

/// A lock's own low-battery warning (no level: a Z-Wave "replace battery
/// soon / now", a Nuki's critical flag) is `device.low_battery` once while
/// it lasts, worsens to critical, shows on the device, and ends when a level
/// of 20 % or more is reported (new batteries).
#[tokio::test(start_paused = true)]
async fn a_low_battery_warning_without_a_level() {
    let hub = Hub::start(vec![spec(FRONT, "Front door", keypad(&[4], 30))]).await;
    hub.run_for(Duration::from_secs(1)).await;
    let step = async |f: &dyn Fn()| {
        f();
        hub.run_for(Duration::from_millis(50)).await;
    };
    let device = || hub.cmd("devices/get", json!({"device_id": FRONT}))["device"].clone();
    step(&|| hub.sim.report_battery(FRONT, 80)).await;
    assert_eq!(device()["properties"]["battery"]["status"], "good");
    step(&|| hub.sim.battery_warning(FRONT, false)).await;
    step(&|| hub.sim.battery_warning(FRONT, false)).await;
    let low = events_of(&hub, "device.low_battery");
    assert_eq!(low.len(), 1, "once while it lasts: {low:?}");
    assert_eq!(low[0]["battery_status"], "low");
    assert_eq!(low[0]["battery_level"], 0.8, "the last level the lock said");
    let d = device();
    assert_eq!(d["properties"]["battery"]["status"], "low", "{d}");
    assert_eq!(d["properties"]["battery"]["level"], 0.8);
    // Critical: the status changes, no second low_battery.
    step(&|| hub.sim.battery_warning(FRONT, true)).await;
    step(&|| hub.sim.battery_warning(FRONT, false)).await;
    assert_eq!(device()["properties"]["battery"]["status"], "critical");
    assert_eq!(events_of(&hub, "device.low_battery").len(), 1);
    let statuses: Vec<Value> = events_of(&hub, "device.battery_status_changed")
        .iter()
        .map(|e| e["battery_status"].clone())
        .collect();
    assert_eq!(
        statuses,
        vec![json!("good"), json!("low"), json!("critical")]
    );
    // New batteries: the warning ends; a later one is news again.
    step(&|| hub.sim.report_battery(FRONT, 100)).await;
    assert_eq!(device()["properties"]["battery"]["status"], "full");
    step(&|| hub.sim.battery_warning(FRONT, false)).await;
    assert_eq!(events_of(&hub, "device.low_battery").len(), 2);
    hub.stop().await;
}
