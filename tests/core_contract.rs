//! The wire contract of the core: every access_code lockhub emits validates
//! against the public schema, and every bad input gets a typed answer.

mod support;

use lockhub::drivers::sim::Fault;
use serde_json::{json, Value};
use std::time::Duration;
use support::core::*;

/// The published schema uses OpenAPI's `nullable`; JSON Schema spells it as a
/// type union.
fn openapi_to_json_schema(v: &mut Value) {
    match v {
        Value::Object(m) => {
            if m.remove("nullable") == Some(Value::Bool(true)) {
                if let Some(t) = m.get("type").cloned() {
                    m.insert("type".into(), json!([t, "null"]));
                }
                if let Some(e) = m.get_mut("enum").and_then(Value::as_array_mut) {
                    e.push(Value::Null);
                }
            }
            m.remove("discriminator");
            m.values_mut().for_each(openapi_to_json_schema);
        }
        Value::Array(a) => a.iter_mut().for_each(openapi_to_json_schema),
        _ => {}
    }
}

fn schema() -> jsonschema::JSONSchema {
    // A copy of ../shared/reference/seam-access-code.schema.json, kept with the tests.
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/seam-access-code.schema.json"
    );
    let text = std::fs::read_to_string(path).expect("the access_code schema");
    let mut s: Value = serde_json::from_str(&text).unwrap();
    openapi_to_json_schema(&mut s);
    jsonschema::JSONSchema::options()
        .should_validate_formats(true)
        .compile(&s)
        .expect("schema compiles")
}

/// The device schema (tests/data/seam-device.schema.json, written from the
/// public device type).
fn device_schema() -> jsonschema::JSONSchema {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/seam-device.schema.json"
    );
    let s: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    jsonschema::JSONSchema::options()
        .should_validate_formats(true)
        .compile(&s)
        .expect("device schema compiles")
}

fn assert_valid(schema: &jsonschema::JSONSchema, code: &Value) {
    if let Err(errors) = schema.validate(code) {
        let msgs: Vec<String> = errors
            .map(|e| format!("{} at {}", e, e.instance_path))
            .collect();
        panic!("access_code does not validate: {msgs:?}\n{code:#}");
    }
}

#[tokio::test(start_paused = true)]
async fn every_emitted_access_code_validates() {
    let schema = schema();
    let mut caps = keypad(&[4, 5, 6], 30);
    caps.supports_backup_access_code_pool = true;
    const NUKI: &str = "5a1e0d1b-0000-4000-8000-00000000000a";
    let hub = Hub::start(vec![
        spec(FRONT, "Front", caps),
        spec(BACK, "Back", keypad(&[4], 30)),
        spec(NUKI, "Nuki", nuki_like()),
    ])
    .await;
    let t = |h: i64| (base_time() + chrono::Duration::hours(h)).to_rfc3339();
    let mut emitted = Vec::new();
    let mut keep = |r: &Value| {
        if let Some(a) = r.get("access_codes").and_then(Value::as_array) {
            emitted.extend(a.iter().cloned());
        }
        if let Some(a) = r.get("access_code") {
            emitted.push(a.clone());
        }
    };
    hub.sim.inject(BACK, [Fault::Duplicate]);
    let r = hub.cmd("access_codes/create_multiple", json!({"device_ids": [FRONT, BACK, NUKI], "name": "Guest", "starts_at": t(1), "ends_at": t(30), "behavior_when_code_cannot_be_shared": "create_random_code", "use_backup_access_code_pool": true}));
    keep(&r);
    let front_id = r["access_codes"][0]["access_code_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let custom = hub.cmd(
        "access_codes/create",
        json!({"device_id": FRONT, "code": "4826", "allow_external_modification": true}),
    );
    keep(&custom);
    let custom_id = custom["access_code"]["access_code_id"]
        .as_str()
        .unwrap()
        .to_owned();
    hub.sim.set_online(NUKI, false);
    keep(&hub.cmd(
        "access_codes/create",
        json!({"device_id": NUKI, "ends_at": t(2)}),
    ));
    hub.run_for(Duration::from_secs(3600 * 3)).await;
    // Slots are chosen when a code goes on the lock: ask the store which.
    let slot = hub
        .store
        .read(|tx| tx.code(&custom_id))
        .unwrap()
        .unwrap()
        .slot;
    hub.sim
        .keypad_change(FRONT, slot, Some(lockhub::model::Pin::new("9753")));
    keep(&hub.cmd(
        "access_codes/pull_backup_access_code",
        json!({"access_code_id": front_id}),
    ));
    hub.run_for(Duration::from_secs(10)).await;
    keep(&hub.cmd("access_codes/list", json!({"device_id": FRONT})));
    keep(&hub.cmd("access_codes/list", json!({"device_id": NUKI})));
    keep(&hub.cmd("access_codes/list", json!({"device_id": BACK})));

    // And every retained state the publisher would send.
    for row in hub.store.outbox_peek(0, 1_000_000).unwrap() {
        if row.topic.starts_with("access_codes/") && !row.payload.is_empty() {
            emitted.push(serde_json::from_slice(&row.payload).unwrap());
        }
    }
    let kinds: std::collections::BTreeSet<String> = emitted
        .iter()
        .flat_map(|c| {
            let mut k = vec![format!("status:{}", c["status"].as_str().unwrap())];
            for e in c["errors"].as_array().unwrap() {
                k.push(format!("error:{}", e["error_code"].as_str().unwrap()));
            }
            for w in c["warnings"].as_array().unwrap() {
                k.push(format!("warning:{}", w["warning_code"].as_str().unwrap()));
            }
            for m in c["pending_mutations"].as_array().unwrap() {
                k.push(format!("mutation:{}", m["mutation_code"].as_str().unwrap()));
            }
            k
        })
        .collect();
    for must in [
        "status:set",
        "status:setting",
        "status:unset",
        "error:duplicate_code_on_device",
        "error:failed_to_issue",
        "warning:using_backup_access_code",
        "warning:external_modification_in_effect",
        "mutation:creating",
    ] {
        assert!(
            kinds.contains(must),
            "scenario should cover {must}; covered: {kinds:?}"
        );
    }
    assert!(emitted.len() > 20);
    // The validator does catch a broken object.
    let mut broken = emitted[0].clone();
    broken["status"] = json!("bogus");
    assert!(schema.validate(&broken).is_err());
    let mut broken = emitted[0].clone();
    broken["errors"] = json!([{"error_code": "made_up", "message": "m"}]);
    assert!(schema.validate(&broken).is_err());
    for c in &emitted {
        assert_valid(&schema, c);
    }
    hub.stop().await;
}

#[tokio::test(start_paused = true)]
async fn every_emitted_device_validates_and_events_carry_the_workspace() {
    let schema = device_schema();
    const NUKI: &str = "5a1e0d1b-0000-4000-8000-00000000000a";
    let settings = lockhub::settings::HubSettings {
        workspace_id: "750fc0bc-4450-4356-8d9f-18c6a3a6b2c7".into(),
        ..Default::default()
    };
    let mut caps = keypad(&[4, 6], 3);
    caps.code_constraints = vec![
        lockhub::model::CodeConstraint::CannotContain089,
        lockhub::model::CodeConstraint::NoAllSameDigits,
    ];
    let hub = Hub::start_with(
        std::sync::Arc::new(lockhub::store::Store::open_in_memory().unwrap()),
        vec![spec(FRONT, "Front", caps), spec(NUKI, "Nuki", nuki_like())],
        settings,
    )
    .await;
    let mut devices = Vec::new();
    let mut take = |r: Value| {
        assert_eq!(r["ok"], true, "{r}");
        devices.extend(r["devices"].as_array().cloned().unwrap_or_default());
        devices.extend(r.get("device").cloned());
    };
    take(hub.cmd("devices/list", json!({})));
    let r = hub.cmd("access_codes/create", json!({"device_id": FRONT}));
    assert_eq!(r["ok"], true);
    for level in [100, 50, 15, 5] {
        hub.sim.report_battery(NUKI, level);
        hub.run_for(Duration::from_millis(10)).await;
        take(hub.cmd("devices/get", json!({"device_id": NUKI})));
    }
    hub.sim.set_online(FRONT, false);
    hub.run_for(Duration::from_millis(10)).await;
    take(hub.cmd("devices/list", json!({})));
    for row in hub.store.outbox_peek(0, 1_000_000).unwrap() {
        if row.topic.starts_with("devices/") && !row.payload.is_empty() {
            devices.push(serde_json::from_slice(&row.payload).unwrap());
        }
    }
    let statuses: std::collections::BTreeSet<String> = devices
        .iter()
        .filter_map(|d| {
            d["properties"]["battery"]["status"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(
        statuses.len(),
        4,
        "every battery status shown: {statuses:?}"
    );
    assert!(devices
        .iter()
        .any(|d| d["errors"][0]["error_code"] == "device_offline"));
    for d in &devices {
        if let Err(errors) = schema.validate(d) {
            let msgs: Vec<String> = errors
                .map(|e| format!("{e} at {}", e.instance_path))
                .collect();
            panic!("device does not validate: {msgs:?}\n{d:#}");
        }
        assert_eq!(d["workspace_id"], "750fc0bc-4450-4356-8d9f-18c6a3a6b2c7");
    }
    // Constraint types byte for byte as the public API writes them.
    let nuki = hub.cmd("devices/get", json!({"device_id": NUKI}))["device"].clone();
    let types: Vec<&str> = nuki["properties"]["code_constraints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["constraint_type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["no_zeros", "cannot_start_with_12", "name_length"]);
    // created_at is when the hub (on its clock) first met the lock.
    assert_eq!(
        nuki["created_at"],
        lockhub::model::access_code::ts(base_time())
    );
    let front = hub.cmd("devices/get", json!({"device_id": FRONT}))["device"].clone();
    assert_eq!(
        front["properties"]["code_constraints"][0]["constraint_type"],
        "cannot_contain_089"
    );
    assert_eq!(front["properties"]["battery_level"], Value::Null);
    // The validator does catch a broken device.
    let mut broken = nuki.clone();
    broken["properties"]["battery_level"] = json!(50);
    assert!(schema.validate(&broken).is_err());
    let mut broken = nuki.clone();
    broken["properties"]["code_constraints"][1]["constraint_type"] = json!("cannot_start_with12");
    assert!(schema.validate(&broken).is_err());
    // Every event carries the workspace, when it was created and when it occurred.
    let events = hub.events();
    assert!(events.len() > 3);
    for e in &events {
        assert_eq!(
            e["workspace_id"], "750fc0bc-4450-4356-8d9f-18c6a3a6b2c7",
            "{e}"
        );
        assert!(
            e["created_at"].is_string() && e["occurred_at"].is_string(),
            "{e}"
        );
        if e["event_type"]
            .as_str()
            .unwrap()
            .starts_with("access_code.")
        {
            assert!(e["access_code_id"].is_string(), "{e}");
        }
    }
    hub.stop().await;
}

#[tokio::test(start_paused = true)]
async fn every_error_type_is_typed_and_answered() {
    let hub = Hub::start(vec![
        spec(FRONT, "Front", keypad(&[4], 1)),
        spec(BACK, "Back", keypad(&[6], 30)),
    ])
    .await;
    let unknown = "11111111-1111-4111-8111-111111111111";
    let cases: Vec<(&str, Value, &str, Option<&str>)> = vec![
        (
            "access_codes/create_multiple",
            json!({}),
            "invalid_input",
            Some("device_ids"),
        ),
        (
            "access_codes/create_multiple",
            json!({"device_ids": []}),
            "invalid_input",
            Some("device_ids"),
        ),
        (
            "access_codes/create_multiple",
            json!({"device_ids": [FRONT, FRONT]}),
            "invalid_input",
            Some("device_ids"),
        ),
        (
            "access_codes/create_multiple",
            json!({"device_ids": "x"}),
            "invalid_input",
            Some("device_ids"),
        ),
        (
            "access_codes/create_multiple",
            json!({"device_ids": [FRONT], "colour": "red"}),
            "invalid_input",
            Some("colour"),
        ),
        (
            "access_codes/create_multiple",
            json!({"device_ids": [FRONT], "code": "12a4"}),
            "invalid_input",
            Some("code"),
        ),
        (
            "access_codes/create_multiple",
            json!({"device_ids": [FRONT], "code": "1234567890"}),
            "invalid_input",
            Some("code"),
        ),
        (
            "access_codes/create_multiple",
            json!({"device_ids": [FRONT], "preferred_code_length": 4.5}),
            "invalid_input",
            Some("preferred_code_length"),
        ),
        (
            "access_codes/create_multiple",
            json!({"device_ids": [FRONT], "preferred_code_length": "4"}),
            "invalid_input",
            Some("preferred_code_length"),
        ),
        (
            "access_codes/create_multiple",
            json!({"device_ids": [FRONT], "behavior_when_code_cannot_be_shared": "shrug"}),
            "invalid_input",
            Some("behavior_when_code_cannot_be_shared"),
        ),
        (
            "access_codes/create_multiple",
            json!({"device_ids": [FRONT], "starts_at": "2030-01-02T00:00:00Z", "ends_at": "2030-01-01T00:00:00Z"}),
            "invalid_input",
            Some("ends_at"),
        ),
        (
            "access_codes/create_multiple",
            json!({"device_ids": [FRONT], "ends_at": "2001-01-01T00:00:00Z"}),
            "invalid_input",
            Some("ends_at"),
        ),
        (
            "access_codes/create_multiple",
            json!({"device_ids": [FRONT], "starts_at": "2030-01-01T00:00:00Z"}),
            "invalid_input",
            Some("ends_at"),
        ),
        (
            "access_codes/create_multiple",
            json!({"device_ids": [FRONT], "ends_at": "next tuesday"}),
            "invalid_input",
            Some("ends_at"),
        ),
        (
            "access_codes/create_multiple",
            json!({"device_ids": [FRONT], "attempt_for_offline_device": "yes"}),
            "invalid_input",
            Some("attempt_for_offline_device"),
        ),
        (
            "access_codes/create_multiple",
            json!({"device_ids": [FRONT], "allow_external_modification": true, "is_external_modification_allowed": false}),
            "invalid_input",
            Some("is_external_modification_allowed"),
        ),
        (
            "access_codes/create_multiple",
            json!({"device_ids": [FRONT, unknown]}),
            "device_not_found",
            None,
        ),
        (
            "access_codes/create_multiple",
            json!({"device_ids": [FRONT, BACK]}),
            "cannot_share_code",
            None,
        ),
        (
            "access_codes/create_multiple",
            json!({"device_ids": [FRONT, BACK], "code": "4826"}),
            "code_constraints_violated",
            None,
        ),
        (
            "access_codes/update_multiple",
            json!({"common_code_key": "auto_set_by_create_multiple_x", "name": "n"}),
            "common_code_key_not_found",
            None,
        ),
        (
            "access_codes/get",
            json!({"access_code_id": unknown}),
            "access_code_not_found",
            None,
        ),
        (
            "access_codes/update",
            json!({"access_code_id": unknown}),
            "access_code_not_found",
            None,
        ),
        (
            "access_codes/delete",
            json!({"access_code_id": unknown}),
            "access_code_not_found",
            None,
        ),
        (
            "access_codes/pull_backup_access_code",
            json!({"access_code_id": unknown}),
            "access_code_not_found",
            None,
        ),
        (
            "access_codes/list",
            json!({}),
            "invalid_input",
            Some("device_id"),
        ),
        (
            "devices/get",
            json!({"device_id": unknown}),
            "device_not_found",
            None,
        ),
        (
            "devices/list",
            json!({"extra": 1}),
            "invalid_input",
            Some("extra"),
        ),
        ("access_codes/explode", json!({}), "unknown_command", None),
        // Documented fields lockhub's locks cannot honour: refused, naming the field.
        // (`is_one_time_use: true` is honoured: tests/core_lock_actions.rs.)
        (
            "access_codes/create",
            json!({"device_id": BACK, "use_offline_access_code": true}),
            "invalid_input",
            Some("use_offline_access_code"),
        ),
        (
            "access_codes/create_multiple",
            json!({"device_ids": [BACK], "is_offline_access_code": true}),
            "invalid_input",
            Some("is_offline_access_code"),
        ),
        (
            "access_codes/create",
            json!({"device_id": BACK, "max_time_rounding": "1week"}),
            "invalid_input",
            Some("max_time_rounding"),
        ),
        (
            "access_codes/create",
            json!({"device_id": BACK, "sync": true}),
            "invalid_input",
            Some("sync"),
        ),
        (
            "access_codes/create",
            json!({"device_id": BACK, "common_code_key": ""}),
            "invalid_input",
            Some("common_code_key"),
        ),
    ];
    for (cmd, body, kind, field) in cases {
        let r = hub.cmd(cmd, body.clone());
        assert_eq!(r["ok"], false, "{cmd} {body}: {r}");
        assert_eq!(r["error"]["type"], kind, "{cmd} {body}: {r}");
        assert!(r["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
        if let Some(f) = field {
            assert_eq!(r["error"]["field"], f, "{cmd} {body}: {r}");
        }
    }
    // No space: the one-slot lock takes one code, then refuses with nothing created.
    assert_eq!(
        hub.cmd("access_codes/create", json!({"device_id": FRONT}))["ok"],
        true
    );
    let r = hub.cmd("access_codes/create", json!({"device_id": FRONT}));
    assert_eq!(
        r["error"]["type"], "no_space_for_access_code_on_device",
        "{r}"
    );
    // device_offline
    hub.sim.set_online(BACK, false);
    hub.run_for(Duration::from_millis(1)).await;
    let r = hub.cmd(
        "access_codes/create",
        json!({"device_id": BACK, "attempt_for_offline_device": false}),
    );
    assert_eq!(r["error"]["type"], "device_offline");
    assert_eq!(
        hub.store.read(|tx| tx.count_codes()).unwrap(),
        1,
        "no refused command left anything behind"
    );
    hub.stop().await;
}

#[tokio::test(start_paused = true)]
async fn documented_create_fields_are_honoured() {
    let hub = Hub::start(vec![
        spec(FRONT, "Front", keypad(&[4], 30)),
        spec(BACK, "Back", keypad(&[4, 6], 30)),
    ])
    .await;
    // The flags that ask for nothing lockhub lacks are accepted.
    let r = hub.cmd("access_codes/create", json!({"device_id": FRONT, "is_one_time_use": false, "use_offline_access_code": false, "is_offline_access_code": false, "sync": false, "max_time_rounding": "1d", "common_code_key": "stay-17"}));
    assert_eq!(r["ok"], true, "{r}");
    let first = r["access_code"].clone();
    assert_eq!(first["common_code_key"], "stay-17");
    assert_eq!(first["is_one_time_use"], false);
    // A second code with the same common_code_key gets the same PIN, on another lock.
    let r = hub.cmd(
        "access_codes/create",
        json!({"device_id": BACK, "common_code_key": "stay-17"}),
    );
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["access_code"]["code"], first["code"]);
    // update_multiple moves both.
    let r = hub.cmd(
        "access_codes/update_multiple",
        json!({"common_code_key": "stay-17", "name": "Both"}),
    );
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(
        hub.get(first["access_code_id"].as_str().unwrap())["name"],
        "Both"
    );
    // The same key with another code is refused; on the same lock, a duplicate.
    let r = hub.cmd(
        "access_codes/create",
        json!({"device_id": BACK, "common_code_key": "stay-17", "code": "2580"}),
    );
    assert_eq!(r["error"]["field"], "code", "{r}");
    let r = hub.cmd(
        "access_codes/create",
        json!({"device_id": FRONT, "common_code_key": "stay-17"}),
    );
    assert_eq!(r["error"]["type"], "duplicate_code_on_device", "{r}");
    hub.stop().await;
}

#[tokio::test(start_paused = true)]
async fn replay_returns_the_first_answer_and_changes_nothing() {
    let hub = Hub::start(vec![spec(FRONT, "Front", keypad(&[4], 30))]).await;
    let body = json!({"request_id": "same", "device_id": FRONT});
    let first = hub.cmd("access_codes/create", body.clone());
    let again = hub.cmd("access_codes/create", body.clone());
    assert_eq!(first, again);
    assert_eq!(hub.store.read(|tx| tx.count_codes()).unwrap(), 1);
    // Both answers were queued for the broker.
    let responses = hub
        .store
        .outbox_peek(0, 10_000)
        .unwrap()
        .into_iter()
        .filter(|r| r.topic == "responses/same")
        .count();
    assert_eq!(responses, 2);
    hub.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_thousand_malformed_payloads_are_each_answered() {
    use rand::{Rng, SeedableRng};
    let hub = Hub::start(vec![spec(FRONT, "Front", keypad(&[4], 30))]).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let valid = serde_json::to_vec(&json!({"request_id": "r", "device_ids": [FRONT], "name": "x", "ends_at": "2030-01-01T00:00:00Z"})).unwrap();
    for i in 0..1000 {
        let payload: Vec<u8> = match i % 5 {
            0 => (0..rng.gen_range(0..200)).map(|_| rng.gen()).collect(),
            1 => {
                let mut p = valid.clone();
                let at = rng.gen_range(0..p.len());
                p[at] = rng.gen();
                p
            }
            2 => valid[..rng.gen_range(0..valid.len())].to_vec(),
            3 => serde_json::to_vec(&json!({"request_id": format!("m{i}"), "device_ids": [rng.gen::<u32>()], "preferred_code_length": rng.gen::<f64>()})).unwrap(),
            _ => vec![b'['; rng.gen_range(1..100_000)],
        };
        let reply = hub
            .commands
            .execute("access_codes/create_multiple", &payload);
        assert!(reply.topic.starts_with("responses/"), "answered");
        assert!(reply.body.get("ok").is_some(), "{}", reply.body);
    }
    // The hub still works.
    let r = hub.cmd("access_codes/create", json!({"device_id": FRONT}));
    assert_eq!(r["ok"], true);
    hub.stop().await;
}
