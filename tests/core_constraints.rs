//! `access_codes/generate_code` and `access_codes/report_device_constraints`.

mod support;

use lockhub::model::{DeviceInfo, DriverKind};
use lockhub::store::StoreError;
use serde_json::json;
use std::time::Duration;
use support::core::*;

const NUKI: &str = "5a1e0d1b-0000-4000-8000-00000000000a";

#[tokio::test(start_paused = true)]
async fn generate_code_gives_a_pin_the_lock_takes_and_stores_nothing() {
    let hub = Hub::start(vec![spec(NUKI, "Nuki", nuki_like())]).await;
    let taken = hub.cmd("access_codes/create", json!({"device_id": NUKI}))["access_code"]["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let events = hub.events().len();
    for _ in 0..50 {
        let r = hub.cmd("access_codes/generate_code", json!({"device_id": NUKI}));
        assert_eq!(r["ok"], true, "{r}");
        assert_eq!(r["generated_code"]["device_id"], NUKI);
        let code = r["generated_code"]["code"].as_str().unwrap();
        assert_eq!(code.len(), 6);
        assert!(!code.contains('0') && !code.starts_with("12"), "{code}");
        assert_ne!(code, taken);
    }
    assert_eq!(hub.store.read(|tx| tx.count_codes()).unwrap(), 1);
    assert_eq!(hub.events().len(), events, "no event");
    let r = hub.cmd("access_codes/generate_code", json!({"device_id": FRONT}));
    assert_eq!(r["error"]["type"], "device_not_found");
    hub.stop().await;
}

#[tokio::test(start_paused = true)]
async fn reported_lengths_apply_at_once_and_outlive_the_drivers_report() {
    let hub = Hub::start(vec![spec(FRONT, "Front", keypad(&[4, 5, 6, 7, 8], 30))]).await;
    let r = hub.cmd(
        "access_codes/report_device_constraints",
        json!({"device_id": FRONT, "supported_code_lengths": [6]}),
    );
    assert_eq!(r["ok"], true, "{r}");
    let d = hub.cmd("devices/get", json!({"device_id": FRONT}))["device"].clone();
    assert_eq!(d["properties"]["supported_code_lengths"], json!([6]));
    // PIN choice uses them at once: the shortest length the lock takes is 6 now.
    let r = hub.cmd("access_codes/create", json!({"device_id": FRONT}));
    assert_eq!(r["access_code"]["code"].as_str().unwrap().len(), 6, "{r}");
    let r = hub.cmd("access_codes/generate_code", json!({"device_id": FRONT}));
    assert_eq!(r["generated_code"]["code"].as_str().unwrap().len(), 6);
    let r = hub.cmd(
        "access_codes/create",
        json!({"device_id": FRONT, "code": "4826"}),
    );
    assert_eq!(r["error"]["type"], "code_constraints_violated", "{r}");
    hub.run_for(Duration::from_secs(1)).await;
    assert_eq!(hub.slots(FRONT).len(), 1);
    // The driver announcing the lock again (a restart) does not undo the report.
    hub.store
        .write(|tx| {
            tx.upsert_device(&DeviceInfo {
                device_id: FRONT.into(),
                name: "Front".into(),
                driver: DriverKind::Sim,
                address: format!("sim:{FRONT}"),
                security_class: None,
                native_weekly_days: 0,
                capabilities: keypad(&[4, 5, 6, 7, 8], 30),
            })?;
            Ok::<_, StoreError>(())
        })
        .unwrap();
    let d = hub.cmd("devices/get", json!({"device_id": FRONT}))["device"].clone();
    assert_eq!(d["properties"]["supported_code_lengths"], json!([6]));
    // min/max form.
    let r = hub.cmd(
        "access_codes/report_device_constraints",
        json!({"device_id": FRONT, "min_code_length": 5, "max_code_length": 7}),
    );
    assert_eq!(r["ok"], true, "{r}");
    let d = hub.cmd("devices/get", json!({"device_id": FRONT}))["device"].clone();
    assert_eq!(d["properties"]["supported_code_lengths"], json!([5, 6, 7]));
    for (body, field) in [
        (json!({"device_id": FRONT}), "supported_code_lengths"),
        (
            json!({"device_id": FRONT, "supported_code_lengths": []}),
            "supported_code_lengths",
        ),
        (
            json!({"device_id": FRONT, "supported_code_lengths": [12]}),
            "supported_code_lengths",
        ),
        (
            json!({"device_id": FRONT, "supported_code_lengths": [4.5]}),
            "supported_code_lengths",
        ),
        (
            json!({"device_id": FRONT, "supported_code_lengths": [4], "min_code_length": 4}),
            "supported_code_lengths",
        ),
        (
            json!({"device_id": FRONT, "min_code_length": 7, "max_code_length": 5}),
            "max_code_length",
        ),
        (
            json!({"device_id": FRONT, "min_code_length": "4"}),
            "min_code_length",
        ),
    ] {
        let r = hub.cmd("access_codes/report_device_constraints", body.clone());
        assert_eq!(r["error"]["type"], "invalid_input", "{body}: {r}");
        assert_eq!(r["error"]["field"], field, "{body}: {r}");
    }
    let r = hub.cmd(
        "access_codes/report_device_constraints",
        json!({"device_id": BACK, "supported_code_lengths": [4]}),
    );
    assert_eq!(r["error"]["type"], "device_not_found");
    hub.stop().await;
}
