//! Unmanaged codes as the public API has them: a code put on a lock at its
//! keypad is listed, read, converted (and then follows update_multiple like
//! any other), and another is removed from the lock by a delete. Every
//! unmanaged object validates against the public unmanaged shape.

mod support;

use lockhub::model::Pin;
use serde_json::{json, Value};
use std::time::Duration;
use support::core::*;

/// The public unmanaged access_code is the managed one's fields `workspace_id,
/// type, access_code_id, device_id, name, code, created_at, errors, warnings,
/// is_managed, starts_at, ends_at`, with `is_managed: false`, `status: set` and
/// a nullable `dormakaba_oracode_metadata` (seamapi/types
/// unmanaged-access-code.ts): derived here from the published managed schema.
fn unmanaged_schema() -> jsonschema::JSONSchema {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/seam-access-code.schema.json"
    );
    let managed: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let picked = [
        "workspace_id",
        "type",
        "access_code_id",
        "device_id",
        "name",
        "code",
        "created_at",
        "errors",
        "warnings",
        "starts_at",
        "ends_at",
    ];
    let mut props = serde_json::Map::new();
    for k in picked {
        props.insert(k.into(), managed["properties"][k].clone());
    }
    props.insert(
        "is_managed".into(),
        json!({"type": "boolean", "enum": [false]}),
    );
    props.insert("status".into(), json!({"type": "string", "enum": ["set"]}));
    props.insert(
        "dormakaba_oracode_metadata".into(),
        json!({"type": ["object", "null"]}),
    );
    let mut required: Vec<&str> = picked
        .iter()
        .copied()
        .filter(|k| !k.ends_with("s_at"))
        .collect();
    required.extend(["is_managed", "status", "dormakaba_oracode_metadata"]);
    let mut s = json!({"type": "object", "required": required, "properties": props, "additionalProperties": false});
    nullable(&mut s);
    jsonschema::JSONSchema::options()
        .should_validate_formats(true)
        .compile(&s)
        .unwrap()
}

fn nullable(v: &mut Value) {
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
            m.values_mut().for_each(nullable);
        }
        Value::Array(a) => a.iter_mut().for_each(nullable),
        _ => {}
    }
}

fn valid(schema: &jsonschema::JSONSchema, v: &Value) {
    if let Err(e) = schema.validate(v) {
        let m: Vec<String> = e.map(|e| format!("{e} at {}", e.instance_path)).collect();
        panic!("unmanaged access_code does not validate: {m:?}\n{v:#}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_keypad_code_is_listed_converted_and_another_deleted() {
    let schema = unmanaged_schema();
    let hub = Hub::start(vec![
        spec(FRONT, "Front", keypad(&[4], 5)),
        spec(BACK, "Back", keypad(&[4], 5)),
    ])
    .await;
    hub.run_for(Duration::from_secs(1)).await;
    // The owner sets a code at the keypad.
    hub.sim.keypad_change(FRONT, 3, Some(Pin::new("4826")));
    hub.run_for(Duration::from_secs(1)).await;
    let created: Vec<Value> = hub
        .events()
        .into_iter()
        .filter(|e| e["event_type"] == "access_code.unmanaged.created")
        .collect();
    assert_eq!(created.len(), 1);
    let id = created[0]["access_code_id"]
        .as_str()
        .expect("the event names the code")
        .to_owned();
    let r = hub.cmd("access_codes/unmanaged/list", json!({"device_id": FRONT}));
    let list = r["access_codes"].as_array().unwrap().clone();
    assert_eq!(list.len(), 1, "{r}");
    valid(&schema, &list[0]);
    assert_eq!(list[0]["access_code_id"], id.as_str());
    assert_eq!(list[0]["code"], "4826");
    assert_eq!(list[0]["is_managed"], false);
    // The managed list does not show it; get finds it by id and by code.
    assert_eq!(
        hub.cmd("access_codes/list", json!({"device_id": FRONT}))["access_codes"],
        json!([])
    );
    let by_id = hub.cmd("access_codes/unmanaged/get", json!({"access_code_id": id}));
    valid(&schema, &by_id["access_code"]);
    let by_code = hub.cmd(
        "access_codes/unmanaged/get",
        json!({"device_id": FRONT, "code": "4826"}),
    );
    assert_eq!(by_code["access_code"]["access_code_id"], id.as_str());
    // An unlock with it names the unmanaged code.
    hub.sim.keypad_unlock(FRONT, 3);
    hub.run_for(Duration::from_millis(10)).await;
    let unlock = hub
        .events()
        .into_iter()
        .rfind(|e| e["event_type"] == "lock.unlocked")
        .unwrap();
    assert_eq!(unlock["method"], "keycode");
    assert_eq!(unlock["access_code_id"], id.as_str());
    assert_eq!(unlock["access_code_is_managed"], false);
    // A second keypad code, to be removed from the lock later.
    hub.sim.keypad_change(FRONT, 4, Some(Pin::new("9753")));
    hub.run_for(Duration::from_secs(1)).await;
    let other = hub.cmd(
        "access_codes/unmanaged/get",
        json!({"device_id": FRONT, "code": "9753"}),
    )["access_code"]["access_code_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Convert the first, linked to a group (lockhub's addition), keeping its id.
    let r = hub.cmd("access_codes/unmanaged/convert_to_managed", json!({"access_code_id": id, "is_external_modification_allowed": true, "force": true, "common_code_key": "owner"}));
    assert_eq!(r["ok"], true, "{r}");
    let managed = hub.get(&id);
    assert_eq!(managed["is_managed"], true);
    assert_eq!(managed["status"], "set");
    assert_eq!(managed["code"], "4826");
    assert_eq!(managed["is_external_modification_allowed"], true);
    assert!(hub
        .event_types_for(&id)
        .contains(&"access_code.unmanaged.converted_to_managed".to_string()));
    let r = hub.cmd("access_codes/unmanaged/get", json!({"access_code_id": id}));
    assert_eq!(r["error"]["type"], "access_code_not_found");
    // The same group on the back door: the same PIN.
    let r = hub.cmd(
        "access_codes/create",
        json!({"device_id": BACK, "common_code_key": "owner"}),
    );
    assert_eq!(r["access_code"]["code"], "4826", "{r}");
    hub.run_for(Duration::from_secs(1)).await;
    assert_eq!(hub.slots(BACK), vec![(1, "4826".to_string())]);
    // update_multiple moves both: they end in two hours and leave both locks.
    let end = hub.clock.now() + chrono::Duration::hours(2);
    let r = hub.cmd(
        "access_codes/update_multiple",
        json!({"common_code_key": "owner", "ends_at": end.to_rfc3339()}),
    );
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(hub.get(&id)["type"], "time_bound");
    hub.run_for(Duration::from_secs(2 * 3600 + 5)).await;
    assert_eq!(
        hub.code_on(FRONT, 3),
        None,
        "the converted code left the lock at its end"
    );
    assert!(hub.slots(BACK).is_empty());

    // Delete the other one: it is removed from the lock.
    assert_eq!(hub.code_on(FRONT, 4).as_deref(), Some("9753"));
    let r = hub.cmd(
        "access_codes/unmanaged/delete",
        json!({"access_code_id": other}),
    );
    assert_eq!(r["ok"], true, "{r}");
    hub.run_for(Duration::from_secs(1)).await;
    assert_eq!(hub.code_on(FRONT, 4), None);
    let types = hub.event_types_for(&other);
    assert_eq!(
        types.first().map(String::as_str),
        Some("access_code.unmanaged.created")
    );
    assert!(
        types.contains(&"access_code.removed_from_device".to_string()),
        "{types:?}"
    );
    assert_eq!(
        hub.cmd("access_codes/unmanaged/list", json!({"device_id": FRONT}))["access_codes"],
        json!([])
    );
    let r = hub.cmd(
        "access_codes/unmanaged/delete",
        json!({"access_code_id": other}),
    );
    assert_eq!(r["error"]["type"], "access_code_not_found");

    // A keypad code removed at the keypad: .removed carries its id.
    hub.sim.keypad_change(FRONT, 5, Some(Pin::new("3158")));
    hub.run_for(Duration::from_secs(1)).await;
    let third = hub.cmd(
        "access_codes/unmanaged/get",
        json!({"device_id": FRONT, "code": "3158"}),
    )["access_code"]["access_code_id"]
        .as_str()
        .unwrap()
        .to_owned();
    hub.sim.keypad_change(FRONT, 5, None);
    hub.run_for(Duration::from_secs(1)).await;
    assert_eq!(
        hub.event_types_for(&third),
        vec![
            "access_code.unmanaged.created",
            "access_code.unmanaged.removed"
        ]
    );
    hub.stop().await;
}

#[tokio::test(start_paused = true)]
async fn unmanaged_codes_take_slots_and_bad_requests_are_typed() {
    let hub = Hub::start(vec![spec(FRONT, "Front", keypad(&[4], 2))]).await;
    hub.run_for(Duration::from_secs(1)).await;
    hub.sim.keypad_change(FRONT, 1, Some(Pin::new("4826")));
    hub.run_for(Duration::from_secs(1)).await;
    // One slot left: one ongoing code fits, a second would overflow now.
    let r = hub.cmd("access_codes/create", json!({"device_id": FRONT}));
    assert_eq!(r["ok"], true, "{r}");
    let mine = r["access_code"]["access_code_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = hub.cmd("access_codes/create", json!({"device_id": FRONT}));
    assert_eq!(
        r["error"]["type"], "no_space_for_access_code_on_device",
        "{r}"
    );
    // The lock is overfull now (one more code at the keypad, beyond its slots):
    // a change that needs no more slot time is still accepted; one that does is not.
    hub.run_for(Duration::from_secs(1)).await;
    hub.sim.keypad_change(FRONT, 3, Some(Pin::new("7315")));
    hub.run_for(Duration::from_secs(1)).await;
    let r = hub.cmd(
        "access_codes/update",
        json!({"access_code_id": mine, "name": "Owner"}),
    );
    assert_eq!(r["ok"], true, "{r}");
    let end = hub.clock.now() + chrono::Duration::hours(3);
    let r = hub.cmd(
        "access_codes/update",
        json!({"access_code_id": mine, "ends_at": end.to_rfc3339()}),
    );
    assert_eq!(r["ok"], true, "shortening asks for no more slot time: {r}");
    let r = hub.cmd(
        "access_codes/update",
        json!({"access_code_id": mine, "ends_at": (end + chrono::Duration::hours(1)).to_rfc3339()}),
    );
    assert_eq!(
        r["error"]["type"], "no_space_for_access_code_on_device",
        "extending does: {r}"
    );
    assert_eq!(hub.get(&mine)["name"], "Owner");
    assert_eq!(
        hub.get(&mine)["ends_at"],
        lockhub::model::access_code::ts(end),
        "a refused update changes nothing"
    );
    for (cmd, body, kind, field) in [
        (
            "access_codes/unmanaged/list",
            json!({}),
            "invalid_input",
            Some("device_id"),
        ),
        (
            "access_codes/unmanaged/list",
            json!({"device_id": BACK}),
            "device_not_found",
            None,
        ),
        (
            "access_codes/unmanaged/get",
            json!({"device_id": FRONT}),
            "invalid_input",
            Some("access_code_id"),
        ),
        (
            "access_codes/unmanaged/get",
            json!({"access_code_id": "nope"}),
            "access_code_not_found",
            None,
        ),
        (
            "access_codes/unmanaged/convert_to_managed",
            json!({"access_code_id": "nope"}),
            "access_code_not_found",
            None,
        ),
        (
            "access_codes/unmanaged/convert_to_managed",
            json!({"access_code_id": "x", "allow_external_modification": true, "is_external_modification_allowed": false}),
            "invalid_input",
            Some("is_external_modification_allowed"),
        ),
        (
            "access_codes/unmanaged/delete",
            json!({}),
            "invalid_input",
            Some("access_code_id"),
        ),
    ] {
        let r = hub.cmd(cmd, body.clone());
        assert_eq!(r["error"]["type"], kind, "{cmd} {body}: {r}");
        if let Some(f) = field {
            assert_eq!(r["error"]["field"], f, "{cmd} {body}: {r}");
        }
    }
    hub.stop().await;
}
