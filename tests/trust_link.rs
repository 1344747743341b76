//! No input takes the broker link down: the real binary against a Mosquitto
//! the test starts, fed what a careless or hostile publisher sends.

mod support;

use serde_json::{json, Value};
use std::time::{Duration, Instant};
use support::blackbox::*;
use support::trust::*;

const BASE: &str = "lockhub/test-hub";

async fn setup(extra: &str) -> (tempfile::TempDir, Broker, Daemon, Cloud) {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path());
    let mut daemon = Daemon::new(dir.path(), broker.port, &sim_locks(0, 0));
    if !extra.is_empty() {
        drop_in(&daemon.config, "50-test", extra);
    }
    daemon.start();
    let cloud = Cloud::connect(broker.port, BASE, "cloud").await;
    cloud.wait_online().await;
    (dir, broker, daemon, cloud)
}

/// How many times the daemon has connected to the broker so far.
fn connects(daemon: &Daemon) -> usize {
    count_lines(&daemon.log(), "connected to the broker")
}

async fn still_answers(cloud: &Cloud, id: &str) {
    cloud
        .send_json("devices/list", &json!({ "request_id": id }))
        .await;
    let r = cloud.response(id, 10).await;
    assert_eq!(r["devices"].as_array().map(Vec::len), Some(2), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_payloads_are_answered_and_the_link_stays_up() {
    let (_dir, _broker, mut daemon, cloud) = setup("").await;
    let before = connects(&daemon);

    // request_ids ending in a noncharacter: refused on _invalid (Mosquitto
    // would close the connection on a response topic holding one).
    let bad_ids = [
        "r\u{FFFF}",
        "r\u{FFFE}",
        "r\u{FDD0}",
        "r\u{FDEF}",
        "r\u{1FFFF}",
        "r\u{10FFFE}",
    ];
    for id in bad_ids {
        cloud
            .send_json("devices/list", &json!({ "request_id": id }))
            .await;
    }
    let invalid = wait_for("noncharacter ids refused", 10, || {
        let v = cloud.on("responses/_invalid");
        (v.len() >= bad_ids.len()).then_some(v)
    })
    .await;
    for r in &invalid {
        assert_eq!(r["error"]["type"], "invalid_input", "{r}");
        assert_eq!(r["error"]["field"], "request_id", "{r}");
    }

    // What the JSON parser refuses, with a readable request_id: answered by id.
    let deep = format!(
        r#"{{"request_id":"deep","device_ids":{}{}}}"#,
        "[".repeat(1000),
        "]".repeat(1000)
    );
    let cases = [
        ("deep", deep),
        (
            "surrogate",
            r#"{"request_id":"surrogate","name":"\ud800"}"#.to_string(),
        ),
        (
            "huge",
            r#"{"preferred_code_length":1e999,"request_id":"huge"}"#.to_string(),
        ),
    ];
    for (_, payload) in &cases {
        cloud
            .send("access_codes/create_multiple", payload.clone())
            .await;
    }
    for (id, _) in &cases {
        let r = cloud.response(id, 10).await;
        assert_eq!(r["request_id"], *id, "{r}");
        assert_eq!(r["error"]["type"], "invalid_input", "{r}");
        assert!(
            r["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("payload is not valid JSON"),
            "{r}"
        );
    }

    // The same request_id with another body: request_id_conflict, nothing changed.
    cloud
        .send_json(
            "access_codes/create",
            &json!({"request_id": "c-1", "device_id": FRONT, "name": "A"}),
        )
        .await;
    assert_eq!(cloud.response("c-1", 10).await["ok"], true);
    cloud
        .send_json(
            "access_codes/create",
            &json!({"request_id": "c-1", "device_id": BACK, "name": "B"}),
        )
        .await;
    let second = wait_for("second answer on c-1", 10, || {
        cloud.on("responses/c-1").get(1).cloned()
    })
    .await;
    assert_eq!(second["error"]["type"], "request_id_conflict", "{second}");
    // The same body again, keys in another order: a replay, the first answer.
    cloud
        .send("access_codes/create", br#"{"name":"A","device_id":"8e94044d-a4d1-4691-9f7e-e97d3e8a0b73","request_id":"c-1"}"#.to_vec())
        .await;
    let third = wait_for("third answer on c-1", 10, || {
        cloud.on("responses/c-1").get(2).cloned()
    })
    .await;
    assert_eq!(third, cloud.on("responses/c-1")[0]);
    cloud
        .send_json(
            "access_codes/list",
            &json!({"request_id": "l-1", "device_id": BACK}),
        )
        .await;
    assert_eq!(
        cloud.response("l-1", 10).await["access_codes"],
        json!([]),
        "the conflicting body created nothing"
    );

    // A PIN of the wrong JSON type is not echoed, neither in the answer nor the log.
    cloud
        .send_json(
            "access_codes/create",
            &json!({"request_id": "p-1", "device_id": FRONT, "code": 80516273}),
        )
        .await;
    let r = cloud.response("p-1", 10).await;
    assert_eq!(r["error"]["type"], "invalid_input", "{r}");
    assert_eq!(r["error"]["field"], "code", "{r}");
    assert!(!r.to_string().contains("80516273"), "{r}");

    // A retained command publish: refused, nothing created.
    cloud
        .client
        .publish(
            format!("{BASE}/commands/access_codes/create"),
            rumqttc::QoS::AtLeastOnce,
            true,
            serde_json::to_vec(&json!({"request_id": "ret-1", "device_id": BACK})).unwrap(),
        )
        .await
        .unwrap();
    let r = cloud.response("ret-1", 10).await;
    assert_eq!(r["error"]["type"], "invalid_input", "{r}");
    assert_eq!(r["error"]["field"], "retain", "{r}");
    // Clear it at the broker.
    cloud
        .client
        .publish(
            format!("{BASE}/commands/access_codes/create"),
            rumqttc::QoS::AtLeastOnce,
            true,
            Vec::new(),
        )
        .await
        .unwrap();
    cloud
        .send_json(
            "access_codes/list",
            &json!({"request_id": "l-2", "device_id": BACK}),
        )
        .await;
    assert_eq!(cloud.response("l-2", 10).await["access_codes"], json!([]));

    still_answers(&cloud, "after-all").await;
    assert_eq!(
        connects(&daemon),
        before,
        "the link never dropped:\n{}",
        daemon.log()
    );
    assert!(!daemon.log().contains("lost the broker"));
    assert!(!daemon.log().contains("80516273"), "a PIN in the log");
    assert!(daemon.alive());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_the_broker_would_refuse_never_block_the_outbox() {
    let (_dir, _broker, mut daemon, cloud) = setup("").await;
    still_answers(&cloud, "first").await;
    daemon.terminate();
    // An outbox as an older lockhub could leave it: a response topic with a
    // noncharacter, one with a wildcard, and an answer larger than the
    // broker link takes (mqtt.max_packet_bytes, 4 MiB).
    let db = rusqlite::Connection::open(daemon.dir.join("lockhub.db")).unwrap();
    let big =
        serde_json::to_vec(&json!({"request_id": "big", "ok": true, "x": "y".repeat(5 << 20)}))
            .unwrap();
    for (topic, payload) in [
        ("responses/r\u{FFFF}".to_string(), b"{}".to_vec()),
        ("responses/a+b".to_string(), b"{}".to_vec()),
        ("responses/big".to_string(), big),
    ] {
        db.execute(
            "INSERT INTO outbox (topic, payload, retain, lane) VALUES (?1, ?2, 0, 0)",
            rusqlite::params![topic, payload],
        )
        .unwrap();
    }
    drop(db);
    daemon.start();
    // The oversized answer is replaced by a small one; the others are dropped.
    let r = cloud.response("big", 10).await;
    assert_eq!(r["error"]["type"], "payload_too_large", "{r}");
    still_answers(&cloud, "second").await;
    let h = lockhub::status::client::get(&daemon.socket, "/v1/health")
        .await
        .unwrap();
    assert_eq!(h["broker"], "connected", "{h}");
    assert_eq!(h["outbox_depth"], 0, "{h}");
    assert!(
        !daemon.log().contains("lost the broker"),
        "{}",
        daemon.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_publishes_with_mqtt5_leave_the_hub_connected() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path());
    let mut daemon = Daemon::new(dir.path(), broker.port, &sim_locks(0, 0));
    daemon.start();
    // A cloud that hears only answers (a subscriber to the command topics
    // would be sent the big publishes too).
    let cloud = Cloud5::connect(
        broker.port,
        BASE,
        "cloud5",
        &["lockhub/test-hub/responses/#", "lockhub/test-hub/status"],
    )
    .await;
    wait_for("online", 15, || {
        cloud
            .json_on(&format!("{BASE}/status"))
            .into_iter()
            .find(|s| s["state"] == "online")
    })
    .await;
    let before = connects(&daemon);
    let topic = format!("{BASE}/commands/access_codes/create_multiple");
    for size in [6 << 20, 100 << 20] {
        publish_big(broker.port, &topic, size, dir.path());
        let t = Instant::now();
        let id = format!("after-{size}");
        cloud
            .send(
                "devices/list",
                serde_json::to_vec(&json!({ "request_id": id })).unwrap(),
                None,
                None,
            )
            .await;
        let r = wait_for(&id, 10, || {
            cloud
                .json_on(&format!("{BASE}/responses/{id}"))
                .first()
                .cloned()
        })
        .await;
        let took = t.elapsed();
        assert_eq!(r["ok"], true, "{r}");
        assert!(took < Duration::from_secs(1), "answered in {took:?}");
    }
    assert_eq!(connects(&daemon), before, "{}", daemon.log());
    let h = lockhub::status::client::get(&daemon.socket, "/v1/health")
        .await
        .unwrap();
    assert_eq!(h["broker"], "connected", "{h}");
    assert_eq!(h["status"], "ok", "{h}");
    assert!(daemon.alive());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_publish_with_mqtt311_backs_off_instead_of_spinning() {
    let (dir, broker, daemon, cloud) = setup("[mqtt]\nprotocol = \"v3.1.1\"\n").await;
    assert!(daemon.log().contains("connected to the broker"));
    let topic = format!("{BASE}/commands/access_codes/create_multiple");
    let before = connects(&daemon);
    publish_big(broker.port, &topic, 6 << 20, dir.path());
    tokio::time::sleep(Duration::from_secs(8)).await;
    let reconnects = connects(&daemon) - before;
    // Backoff 1 s doubling (with jitter): at most 1+2+4 s of waits fit in 8 s.
    // Without it: the 100 ms reconnect of the test config, ~50 in 8 s.
    assert!(
        (1..=5).contains(&reconnects),
        "{reconnects} reconnects in 8 s:\n{}",
        daemon.log()
    );
    let log = daemon.log();
    assert_eq!(
        count_lines(&log, "keeps delivering a packet over mqtt.max_packet_bytes"),
        1,
        "logged once a minute:\n{log}"
    );
    let h = lockhub::status::client::get(&daemon.socket, "/v1/health")
        .await
        .unwrap();
    assert_eq!(h["status"], "degraded", "{h}");
    assert!(
        h["broker_problem"]
            .as_str()
            .unwrap()
            .contains("message_size_limit"),
        "{h}"
    );
    drop(cloud);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_topic_and_correlation_data_are_honoured() {
    let (_dir, broker, _daemon, _cloud) = setup("").await;
    let c5 = Cloud5::connect(
        broker.port,
        BASE,
        "cloud5",
        &["cloud/replies/#", "lockhub/test-hub/#"],
    )
    .await;
    c5.send(
        "devices/list",
        serde_json::to_vec(&json!({"request_id": "rt-1"})).unwrap(),
        Some("cloud/replies/one"),
        Some(b"corr-\x00\xff-1"),
    )
    .await;
    let got = wait_for("answer on the response topic", 10, || {
        c5.on("cloud/replies/one").first().cloned()
    })
    .await;
    assert_eq!(got.correlation.as_deref(), Some(&b"corr-\x00\xff-1"[..]));
    let v: Value = serde_json::from_slice(&got.payload).unwrap();
    assert_eq!(v["request_id"], "rt-1");
    assert_eq!(v["ok"], true);
    assert!(
        c5.on(&format!("{BASE}/responses/rt-1")).is_empty(),
        "answered once, where asked"
    );

    // A Response Topic on the hub's own commands: refused, answered on the
    // usual topic. (Mosquitto itself refuses a Response Topic with a wildcard.)
    c5.send(
        "devices/list",
        serde_json::to_vec(&json!({ "request_id": "rt-2" })).unwrap(),
        Some("lockhub/test-hub/commands/devices/list"),
        None,
    )
    .await;
    let r = wait_for("refusal", 10, || {
        c5.json_on(&format!("{BASE}/responses/rt-2"))
            .first()
            .cloned()
    })
    .await;
    assert_eq!(r["error"]["field"], "response_topic", "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_outlives_the_hub_with_mqtt5() {
    let (_dir, _broker, mut daemon, cloud) = setup("").await;
    still_answers(&cloud, "before").await;
    daemon.terminate();
    // Published while the hub is away: the broker keeps it for the session.
    cloud
        .send_json("devices/list", &json!({"request_id": "while-away"}))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    daemon.start();
    let r = cloud.response("while-away", 15).await;
    assert_eq!(r["ok"], true, "{r}");
}
