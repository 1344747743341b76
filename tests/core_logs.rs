//! A PIN never appears in a log line, at any level.

mod support;

use serde_json::json;

use std::time::Duration;
use support::core::*;
use support::realtime::Capture;

#[test]
fn no_pin_in_any_log_line() {
    let (capture, _guard) = Capture::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    let pins = rt.block_on(async {
        use lockhub::drivers::sim::Fault;
        let hub = Hub::start(vec![
            spec(FRONT, "Front", keypad(&[4, 5, 6, 7, 8, 9], 30)),
            spec(BACK, "Back", keypad(&[7], 30)),
        ])
        .await;
        let mut pins = vec![
            "80516273".to_string(),
            "7777777".to_string(),
            "9081726".to_string(),
        ];
        hub.sim.inject(FRONT, [Fault::RejectCode, Fault::Timeout]);
        let r = hub.cmd(
            "access_codes/create_multiple",
            json!({"device_ids": [FRONT, BACK], "preferred_code_length": 7}),
        );
        pins.push(r["access_codes"][0]["code"].as_str().unwrap().to_owned());
        let id = r["access_codes"][0]["access_code_id"]
            .as_str()
            .unwrap()
            .to_owned();
        hub.cmd(
            "access_codes/create",
            json!({"device_id": FRONT, "code": "80516273"}),
        );
        hub.cmd(
            "access_codes/create",
            json!({"device_id": FRONT, "code": "80516273"}),
        );
        hub.cmd(
            "access_codes/create",
            json!({"device_id": BACK, "code": "7777777x"}),
        );
        hub.cmd(
            "access_codes/update",
            json!({"access_code_id": id, "code": "9081726"}),
        );
        hub.run_for(Duration::from_secs(30)).await;
        hub.sim
            .keypad_change(FRONT, 1, Some(lockhub::model::Pin::new("7777777")));
        hub.run_for(Duration::from_secs(30)).await;
        hub.stop().await;
        pins
    });
    let logs = capture.text();
    assert!(
        logs.lines().count() >= 5,
        "the scenario logged something: {logs}"
    );
    for pin in pins {
        assert!(
            !logs.contains(&pin),
            "PIN {pin} leaked into the logs:\n{logs}"
        );
    }
}
