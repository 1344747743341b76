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
