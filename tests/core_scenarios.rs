//! Scenario tests of the core on simulated locks, on paused time.

mod support;

use serde_json::json;
use std::time::Duration;
use support::core::*;

fn iso(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[tokio::test(start_paused = true)]
async fn seed_front_and_back_door_group() {
    let hub = Hub::start(vec![
        spec(FRONT, "Front door", keypad(&[4, 5, 6, 7, 8], 30)),
        spec(BACK, "Back door", keypad(&[4, 6], 20)),
    ])
    .await;
    let start = base_time() + chrono::Duration::days(5);
    let end = start + chrono::Duration::days(2);
    let r = hub.cmd(
        "access_codes/create_multiple",
        json!({"device_ids": [FRONT, BACK], "name": "Jane's reservation", "starts_at": iso(start), "ends_at": iso(end), "preferred_code_length": 4}),
    );
    assert_eq!(r["ok"], true, "{r}");
    let codes = r["access_codes"].as_array().unwrap();
    assert_eq!(codes.len(), 2);
    let pin = codes[0]["code"].as_str().unwrap().to_owned();
    assert_eq!(pin.len(), 4);
    assert_eq!(codes[1]["code"], pin.as_str());
    let key = codes[0]["common_code_key"].as_str().unwrap();
    assert!(key.starts_with("auto_set_by_create_multiple_"));
    assert_eq!(codes[1]["common_code_key"], key);
    assert_eq!(codes[0]["status"], "unset");
    assert_eq!(codes[0]["type"], "time_bound");

    // Before the window nothing is on the locks (no native scheduling).
    hub.run_for(Duration::from_secs(3600)).await;
    assert!(hub.slots(FRONT).is_empty());

    // Shortly before check-in both locks get the PIN.
    hub.run_for((start - base_time()).to_std().unwrap()).await;
    assert_eq!(hub.slots(FRONT), vec![(1, pin.clone())]);
    assert_eq!(hub.slots(BACK), vec![(1, pin.clone())]);
    let front_id = codes[0]["access_code_id"].as_str().unwrap();
    assert_eq!(hub.get(front_id)["status"], "set");
    let evs = hub.event_types_for(front_id);
    assert_eq!(
        evs,
        vec!["access_code.created", "access_code.set_on_device"]
    );

    // At check-out both are removed.
    hub.run_for(Duration::from_secs(2 * 86400 + 1)).await;
    assert!(hub.slots(FRONT).is_empty());
    assert!(hub.slots(BACK).is_empty());
    assert_eq!(hub.get(front_id)["status"], "unset");
    assert!(hub
        .event_types_for(front_id)
        .contains(&"access_code.removed_from_device".to_string()));
    hub.stop().await;
}

#[tokio::test(start_paused = true)]
async fn four_digit_lock_and_nuki_like_lock() {
    const NUKI: &str = "5a1e0d1b-0000-4000-8000-00000000000a";
    let hub = Hub::start(vec![
        spec(FRONT, "Front door", keypad(&[4], 30)),
        spec(NUKI, "Nuki", nuki_like()),
    ])
    .await;
    let before = hub.store.outbox_peek(0, 10_000).unwrap().len();

    // throw: nothing created, no slot, no event.
    let r = hub.cmd(
        "access_codes/create_multiple",
        json!({"device_ids": [FRONT, NUKI], "name": "Guest", "preferred_code_length": 4}),
    );
    assert_eq!(r["ok"], false, "{r}");
    assert_eq!(r["error"]["type"], "cannot_share_code");
    let named: Vec<&str> = r["error"]["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["device_id"].as_str().unwrap())
        .collect();
    assert!(!named.is_empty());
    let rows = hub.store.outbox_peek(0, 10_000).unwrap();
    assert_eq!(rows.len(), before + 1, "only the error response was queued");
    assert!(rows.last().unwrap().topic.starts_with("responses/"));
    assert_eq!(hub.store.read(|tx| tx.count_codes()).unwrap(), 0);

    // create_random_code: the Nuki-like lock gets a code of its own.
    let r = hub.cmd(
        "access_codes/create_multiple",
        json!({"device_ids": [FRONT, NUKI], "name": "A guest with a very long name indeed", "preferred_code_length": 4, "behavior_when_code_cannot_be_shared": "create_random_code"}),
    );
    assert_eq!(r["ok"], true, "{r}");
    let codes = r["access_codes"].as_array().unwrap();
    let front = &codes[0];
    let nuki = &codes[1];
    assert_eq!(front["code"].as_str().unwrap().len(), 4);
    let nuki_pin = nuki["code"].as_str().unwrap();
    assert_eq!(nuki_pin.len(), 6);
    assert!(!nuki_pin.contains('0') && !nuki_pin.starts_with("12"));
    assert_eq!(nuki["warnings"].as_array().unwrap().len(), 1);
    assert_eq!(
        front["common_code_key"], nuki["common_code_key"],
        "still one group for update_multiple"
    );
    assert_eq!(
        nuki["appearance"]["name"].as_str().unwrap().chars().count(),
        20
    );
    assert_eq!(nuki["name"], "A guest with a very long name indeed");

    hub.run_for(Duration::from_secs(5)).await;
    assert_eq!(hub.code_on(FRONT, 1).as_deref(), front["code"].as_str());
    assert_eq!(hub.code_on(NUKI, 1).as_deref(), Some(nuki_pin));
    hub.stop().await;
}

#[tokio::test(start_paused = true)]
async fn custom_code_has_no_key_and_is_updated_one_by_one() {
    let hub = Hub::start(vec![
        spec(FRONT, "Front", keypad(&[4, 5, 6], 30)),
        spec(BACK, "Back", keypad(&[4, 5, 6], 30)),
    ])
    .await;
    let r = hub.cmd(
        "access_codes/create_multiple",
        json!({"device_ids": [FRONT, BACK], "code": "2580", "name": "Cleaner"}),
    );
    assert_eq!(r["ok"], true, "{r}");
    let codes = r["access_codes"].as_array().unwrap();
    assert!(codes
        .iter()
        .all(|c| c["common_code_key"].is_null() && c["code"] == "2580"));
    hub.run_for(Duration::from_secs(1)).await;
    assert_eq!(hub.code_on(FRONT, 1).as_deref(), Some("2580"));

    // Each is updated on its own.
    let id = codes[0]["access_code_id"].as_str().unwrap();
    let r = hub.cmd(
        "access_codes/update",
        json!({"access_code_id": id, "code": "36912"}),
    );
    assert_eq!(r["ok"], true, "{r}");
    hub.run_for(Duration::from_secs(1)).await;
    assert_eq!(hub.code_on(FRONT, 1).as_deref(), Some("36912"));
    assert_eq!(hub.code_on(BACK, 1).as_deref(), Some("2580"));
    assert!(hub
        .event_types_for(id)
        .contains(&"access_code.code_changed".to_string()));

    // A code the lock already has is refused, naming the reason.
    let r = hub.cmd(
        "access_codes/create_multiple",
        json!({"device_ids": [BACK], "code": "2580"}),
    );
    assert_eq!(r["error"]["type"], "duplicate_code_on_device", "{r}");
    let r = hub.cmd(
        "access_codes/create_multiple",
        json!({"device_ids": [BACK], "code": "258"}),
    );
    assert_eq!(r["error"]["type"], "invalid_input");
    assert_eq!(r["error"]["field"], "code");
    hub.stop().await;
}

#[tokio::test(start_paused = true)]
async fn lock_offline_for_ten_minutes_then_back() {
    let hub = Hub::start(vec![
        spec(FRONT, "Front", keypad(&[4], 30)),
        spec(BACK, "Back", keypad(&[4], 30)),
    ])
    .await;
    hub.sim.set_online(BACK, false);
    hub.run_for(Duration::from_millis(10)).await;
    let r = hub.cmd(
        "access_codes/create_multiple",
        json!({"device_ids": [FRONT, BACK], "name": "Guest"}),
    );
    assert_eq!(r["ok"], true, "{r}");
    let pin = r["access_codes"][0]["code"].as_str().unwrap().to_owned();
    let back_id = r["access_codes"][1]["access_code_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // The online lock is not held back by the offline one.
    hub.run_for(Duration::from_secs(1)).await;
    assert_eq!(hub.code_on(FRONT, 1), Some(pin.clone()));
    assert_eq!(hub.code_on(BACK, 1), None);
    assert_eq!(hub.get(&back_id)["status"], "setting");

    // Retries back off: far fewer attempts than seconds.
    hub.run_for(Duration::from_secs(6 * 60)).await;
    let attempts = hub.sim.state(BACK).unwrap().attempts;
    assert!(
        attempts <= 12,
        "backoff keeps retries rare: {attempts} attempts in 6 min"
    );
    let c = hub.get(&back_id);
    assert_eq!(
        c["warnings"][0]["warning_code"], "delay_in_setting_on_device",
        "{c}"
    );
    assert!(hub
        .event_types_for(&back_id)
        .contains(&"access_code.delay_in_setting_on_device".to_string()));

    hub.run_for(Duration::from_secs(4 * 60)).await;
    hub.sim.set_online(BACK, true);
    hub.run_for(Duration::from_millis(100)).await;
    assert_eq!(hub.code_on(BACK, 1), Some(pin));
    let c = hub.get(&back_id);
    assert_eq!(c["status"], "set");
    assert!(c["warnings"].as_array().unwrap().is_empty(), "{c}");

    // attempt_for_offline_device = false refuses the whole request.
    hub.sim.set_online(BACK, false);
    hub.run_for(Duration::from_millis(10)).await;
    let r = hub.cmd(
        "access_codes/create_multiple",
        json!({"device_ids": [FRONT, BACK], "attempt_for_offline_device": false}),
    );
    assert_eq!(r["error"]["type"], "device_offline", "{r}");
    assert_eq!(r["error"]["device_ids"], json!([BACK]));
    hub.stop().await;
}

#[tokio::test(start_paused = true)]
async fn late_checkout_after_the_code_is_set() {
    let hub = Hub::start(vec![
        spec(FRONT, "Front", keypad(&[4], 30)),
        spec(BACK, "Back", keypad(&[4], 30)),
    ])
    .await;
    let end = base_time() + chrono::Duration::hours(2);
    let r = hub.cmd(
        "access_codes/create_multiple",
        json!({"device_ids": [FRONT, BACK], "ends_at": iso(end)}),
    );
    let key = r["access_codes"][0]["common_code_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let id = r["access_codes"][0]["access_code_id"]
        .as_str()
        .unwrap()
        .to_owned();
    hub.run_for(Duration::from_secs(60)).await;
    assert!(hub.code_on(FRONT, 1).is_some());

    let late = end + chrono::Duration::hours(3);
    let r = hub.cmd(
        "access_codes/update_multiple",
        json!({"common_code_key": key, "ends_at": iso(late)}),
    );
    assert_eq!(r, json!({"request_id": r["request_id"], "ok": true}));
    // Past the old check-out the code stays on both locks.
    hub.run_for(Duration::from_secs(3 * 3600)).await;
    assert!(hub.code_on(FRONT, 1).is_some() && hub.code_on(BACK, 1).is_some());
    assert_eq!(
        hub.get(&id)["ends_at"],
        late.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    );
    assert!(hub
        .event_types_for(&id)
        .contains(&"access_code.time_frame_changed".to_string()));
    // And leaves at the new one, within a second.
    hub.run_for((late - hub.clock.now()).to_std().unwrap() + Duration::from_millis(900))
        .await;
    assert!(hub.code_on(FRONT, 1).is_none() && hub.code_on(BACK, 1).is_none());

    // An expired code whose window is extended goes back on the lock.
    let later = hub.clock.now() + chrono::Duration::hours(1);
    let r = hub.cmd(
        "access_codes/update_multiple",
        json!({"common_code_key": key, "ends_at": iso(later)}),
    );
    assert_eq!(r["ok"], true);
    hub.run_for(Duration::from_secs(1)).await;
    assert!(hub.code_on(FRONT, 1).is_some());

    // Impossible windows are refused.
    let r = hub.cmd(
        "access_codes/update_multiple",
        json!({"common_code_key": key, "ends_at": iso(base_time())}),
    );
    assert_eq!(r["error"]["field"], "ends_at", "{r}");
    let r = hub.cmd(
        "access_codes/update_multiple",
        json!({"common_code_key": "nope", "name": "x"}),
    );
    assert_eq!(r["error"]["type"], "common_code_key_not_found");
    hub.stop().await;
}

#[tokio::test(start_paused = true)]
async fn keypad_change_honoured_or_reverted() {
    let hub = Hub::start(vec![spec(FRONT, "Front", keypad(&[4], 30))]).await;
    let strict = hub.cmd(
        "access_codes/create",
        json!({"device_id": FRONT, "code": "4826"}),
    );
    let relaxed = hub.cmd(
        "access_codes/create",
        json!({"device_id": FRONT, "code": "7351", "allow_external_modification": true}),
    );
    let strict_id = strict["access_code"]["access_code_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let relaxed_id = relaxed["access_code"]["access_code_id"]
        .as_str()
        .unwrap()
        .to_owned();
    hub.run_for(Duration::from_secs(1)).await;
    assert_eq!(
        hub.slots(FRONT),
        vec![(1, "4826".into()), (2, "7351".into())]
    );

    hub.sim
        .keypad_change(FRONT, 1, Some(lockhub::model::Pin::new("9999")));
    hub.sim
        .keypad_change(FRONT, 2, Some(lockhub::model::Pin::new("8642")));
    hub.run_for(Duration::from_secs(1)).await;
    // Not allowed: put back, with the error recorded then cleared by the re-set.
    assert_eq!(hub.code_on(FRONT, 1).as_deref(), Some("4826"));
    let evs = hub.event_types_for(&strict_id);
    assert!(
        evs.contains(&"access_code.modified_external_to_seam".to_string()),
        "{evs:?}"
    );
    // Allowed: the lock's change stands.
    assert_eq!(hub.code_on(FRONT, 2).as_deref(), Some("8642"));
    let c = hub.get(&relaxed_id);
    assert_eq!(c["code"], "8642");
    assert_eq!(
        c["warnings"][0]["warning_code"],
        "external_modification_in_effect"
    );
    assert_eq!(c["warnings"][0]["change_type"], "modified");

    // Removed at the keypad.
    hub.sim.keypad_change(FRONT, 1, None);
    hub.sim.keypad_change(FRONT, 2, None);
    hub.run_for(Duration::from_secs(1)).await;
    assert_eq!(hub.code_on(FRONT, 1).as_deref(), Some("4826"));
    assert_eq!(hub.code_on(FRONT, 2), None);
    assert_eq!(
        hub.get(&relaxed_id)["warnings"][0]["change_type"],
        "removed"
    );
    assert!(hub
        .event_types_for(&relaxed_id)
        .contains(&"access_code.deleted_external_to_seam".to_string()));

    // A code added at the keypad in another slot is unmanaged and left alone.
    hub.sim
        .keypad_change(FRONT, 7, Some(lockhub::model::Pin::new("1357")));
    hub.run_for(Duration::from_secs(1)).await;
    assert_eq!(hub.code_on(FRONT, 7).as_deref(), Some("1357"));
    assert!(hub
        .events()
        .iter()
        .any(|e| e["event_type"] == "access_code.unmanaged.created"));
    // ...and its PIN is not handed out again.
    let r = hub.cmd(
        "access_codes/create",
        json!({"device_id": FRONT, "code": "1357"}),
    );
    assert_eq!(r["error"]["type"], "duplicate_code_on_device");
    hub.stop().await;
}

#[tokio::test(start_paused = true)]
async fn backup_pool() {
    let mut caps = keypad(&[4, 5], 30);
    caps.supports_backup_access_code_pool = true;
    let hub = Hub::start(vec![spec(FRONT, "Front", caps)]).await;
    let end = base_time() + chrono::Duration::days(1);
    let r = hub.cmd(
        "access_codes/create",
        json!({"device_id": FRONT, "ends_at": iso(end), "use_backup_access_code_pool": true}),
    );
    let id = r["access_code"]["access_code_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(r["access_code"]["is_backup_access_code_available"], true);
    hub.run_for(Duration::from_secs(1)).await;
    assert_eq!(
        hub.slots(FRONT).len(),
        3,
        "the code and a pool of two backups"
    );

    let r = hub.cmd(
        "access_codes/pull_backup_access_code",
        json!({"access_code_id": id}),
    );
    assert_eq!(r["ok"], true, "{r}");
    let backup = &r["access_code"];
    assert_eq!(backup["is_backup"], true);
    assert_eq!(
        backup["ends_at"],
        end.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    );
    let backup_id = backup["access_code_id"].as_str().unwrap().to_owned();
    let original = hub.get(&id);
    assert_eq!(original["pulled_backup_access_code_id"], backup_id.as_str());
    assert_eq!(
        original["warnings"][0]["warning_code"],
        "using_backup_access_code"
    );
    assert!(hub
        .event_types_for(&id)
        .contains(&"access_code.backup_access_code_pulled".to_string()));
    // Pulling again returns the same backup.
    let again = hub.cmd(
        "access_codes/pull_backup_access_code",
        json!({"access_code_id": id}),
    );
    assert_eq!(again["access_code"]["access_code_id"], backup_id.as_str());
    // The pool is refilled.
    hub.run_for(Duration::from_secs(1)).await;
    assert_eq!(hub.slots(FRONT).len(), 4);
    // The backup leaves with the original's ends_at.
    hub.run_for(Duration::from_secs(86400)).await;
    let pins: Vec<String> = hub.slots(FRONT).into_iter().map(|(_, p)| p).collect();
    assert_eq!(pins.len(), 2, "only the refilled pool is left: {pins:?}");
    assert!(!pins.contains(&backup["code"].as_str().unwrap().to_owned()));
    hub.stop().await;
}

#[tokio::test(start_paused = true)]
async fn native_scheduling_programs_the_window_within_the_horizon() {
    const NUKI: &str = "5a1e0d1b-0000-4000-8000-00000000000a";
    let hub = Hub::start(vec![spec(NUKI, "Nuki", nuki_like())]).await;
    let start = base_time() + chrono::Duration::days(3);
    let end = start + chrono::Duration::days(1);
    let r = hub.cmd(
        "access_codes/create",
        json!({"device_id": NUKI, "starts_at": iso(start), "ends_at": iso(end)}),
    );
    let id = r["access_code"]["access_code_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(r["access_code"]["is_scheduled_on_device"], true);
    // Three days ahead: not on the lock yet (the horizon is 24 h).
    hub.run_for(Duration::from_secs(1)).await;
    assert!(hub.sim.state(NUKI).unwrap().slots.is_empty());
    assert_eq!(
        r["access_code"]["pending_mutations"][0]["scheduled_at"],
        lockhub::model::access_code::ts(start - chrono::Duration::hours(24))
    );
    let horizon = start - chrono::Duration::hours(24) - hub.clock.now();
    hub.run_for(horizon.to_std().unwrap() + Duration::from_secs(1))
        .await;
    let st = hub.sim.state(NUKI).unwrap();
    let slot = st
        .slots
        .get(&1)
        .expect("programmed within the horizon, with its window");
    assert_eq!(slot.window.unwrap().starts_at, start);
    assert!(hub
        .event_types_for(&id)
        .contains(&"access_code.scheduled_on_device".to_string()));
    assert_eq!(hub.get(&id)["status"], "unset");
    hub.run_for((start - hub.clock.now()).to_std().unwrap() + Duration::from_secs(1))
        .await;
    assert_eq!(hub.get(&id)["status"], "set");

    // prefer_native_scheduling = false: lockhub holds the window.
    let r = hub.cmd("access_codes/create", json!({"device_id": NUKI, "starts_at": iso(end), "ends_at": iso(end + chrono::Duration::days(1)), "prefer_native_scheduling": false}));
    assert_eq!(r["access_code"]["is_scheduled_on_device"], false);
    hub.run_for(Duration::from_secs(1)).await;
    assert_eq!(hub.sim.state(NUKI).unwrap().slots.len(), 1);
    hub.stop().await;
}

#[tokio::test(start_paused = true)]
async fn delete_removes_then_forgets() {
    let hub = Hub::start(vec![spec(FRONT, "Front", keypad(&[4], 30))]).await;
    let r = hub.cmd("access_codes/create", json!({"device_id": FRONT}));
    let id = r["access_code"]["access_code_id"]
        .as_str()
        .unwrap()
        .to_owned();
    hub.run_for(Duration::from_secs(1)).await;
    assert!(hub.code_on(FRONT, 1).is_some());
    let r = hub.cmd("access_codes/delete", json!({"access_code_id": id}));
    assert_eq!(r["ok"], true);
    hub.run_for(Duration::from_secs(1)).await;
    assert!(hub.code_on(FRONT, 1).is_none());
    let r = hub.cmd("access_codes/get", json!({"access_code_id": id}));
    assert_eq!(r["error"]["type"], "access_code_not_found");
    // Its retained state is cleared.
    let rows = hub.store.outbox_peek(0, 100_000).unwrap();
    let last = rows
        .iter()
        .rev()
        .find(|r| r.topic == format!("access_codes/{id}"))
        .unwrap();
    assert!(last.payload.is_empty() && last.retain);
    let evs = hub.event_types_for(&id);
    assert_eq!(evs.last().unwrap(), "access_code.removed_from_device");
    hub.stop().await;
}

#[tokio::test(start_paused = true)]
async fn final_lock_errors_become_code_errors() {
    use lockhub::drivers::sim::Fault;
    let hub = Hub::start(vec![spec(FRONT, "Front", keypad(&[4], 30))]).await;
    hub.sim.inject(FRONT, [Fault::Timeout, Fault::NoSpace]);
    let r = hub.cmd("access_codes/create", json!({"device_id": FRONT}));
    let id = r["access_code"]["access_code_id"]
        .as_str()
        .unwrap()
        .to_owned();
    hub.run_for(Duration::from_secs(30)).await;
    let c = hub.get(&id);
    assert_eq!(
        c["errors"][0]["error_code"], "no_space_for_access_code_on_device",
        "{c}"
    );
    assert_eq!(c["status"], "setting");
    assert_eq!(
        hub.sim.state(FRONT).unwrap().attempts,
        2,
        "a final error is not retried"
    );
    // A new desired state (update) tries again.
    let r = hub.cmd(
        "access_codes/update",
        json!({"access_code_id": id, "name": "retry"}),
    );
    assert_eq!(r["ok"], true);
    hub.run_for(Duration::from_secs(1)).await;
    assert!(hub.code_on(FRONT, 1).is_some());
    assert!(hub.get(&id)["errors"].as_array().unwrap().is_empty());
    hub.stop().await;
}
