//! docs/mqtt-api.md's examples, run: each request is sent and the answer must
//! have the example's shape (same keys, same `ok` and error `type`).

mod support;

use serde_json::Value;
use support::core::*;

/// (command, request) followed by its expected response, from the doc's fences.
fn examples() -> Vec<(String, Value, Value)> {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/mqtt-api.md")).unwrap();
    let mut out = Vec::new();
    let mut pending: Option<(String, Value)> = None;
    let mut lines = doc.lines();
    while let Some(line) = lines.next() {
        let Some(info) = line.strip_prefix("```json") else {
            continue;
        };
        let body: String = lines
            .by_ref()
            .take_while(|l| !l.starts_with("```"))
            .collect::<Vec<_>>()
            .join("\n");
        let json: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("doc example is not JSON ({e}):\n{body}"));
        let info = info.trim();
        if let Some(cmd) = info.strip_prefix("command=") {
            pending = Some((cmd.to_owned(), json));
        } else if info == "response" {
            let (cmd, req) = pending.take().expect("a response follows its request");
            out.push((cmd, req, json));
        }
    }
    out
}

/// `got` has every key of `want`, recursively (arrays: element by element).
fn same_shape(want: &Value, got: &Value, path: &str) {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            let wk: Vec<_> = w.keys().collect();
            let gk: Vec<_> = g.keys().collect();
            assert_eq!(wk, gk, "keys at {path}");
            for (k, v) in w {
                same_shape(v, &g[k], &format!("{path}.{k}"));
            }
        }
        (Value::Array(w), Value::Array(g)) => {
            assert_eq!(w.len(), g.len(), "length at {path}");
            for (i, (a, b)) in w.iter().zip(g).enumerate() {
                same_shape(a, b, &format!("{path}[{i}]"));
            }
        }
        (Value::Bool(_), _) | (Value::Null, _) => assert_eq!(want, got, "value at {path}"),
        (Value::String(_), Value::String(_)) | (Value::Number(_), Value::Number(_)) => {}
        _ => panic!("type at {path}: want {want}, got {got}"),
    }
}

/// Ids (and keys) in an example answer -> the ones the hub really gave, so a
/// later example's request can name them.
fn learn(want: &Value, got: &Value, ids: &mut std::collections::HashMap<String, String>) {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            for (k, v) in w {
                match (v, g.get(k)) {
                    (Value::String(a), Some(Value::String(b)))
                        if k.ends_with("_id") || k == "common_code_key" =>
                    {
                        ids.insert(a.clone(), b.clone());
                    }
                    (v, Some(gv)) => learn(v, gv, ids),
                    _ => {}
                }
            }
        }
        (Value::Array(w), Value::Array(g)) => {
            for (a, b) in w.iter().zip(g) {
                learn(a, b, ids);
            }
        }
        _ => {}
    }
}

fn substitute(v: &mut Value, ids: &std::collections::HashMap<String, String>) {
    match v {
        Value::String(s) => {
            if let Some(real) = ids.get(s.as_str()) {
                *s = real.clone();
            }
        }
        Value::Object(m) => m.values_mut().for_each(|v| substitute(v, ids)),
        Value::Array(a) => a.iter_mut().for_each(|v| substitute(v, ids)),
        _ => {}
    }
}

#[tokio::test(start_paused = true)]
async fn the_documented_examples_hold() {
    const NUKI: &str = "5a1e0d1b-0000-4000-8000-00000000000a";
    let hub = Hub::start(vec![
        spec(FRONT, "Front door", keypad(&[4], 30)),
        spec(BACK, "Back door", keypad(&[4, 6], 30)),
        spec(NUKI, "Nuki", nuki_like()),
    ])
    .await;
    // Two codes set at the front door's keypad (for the unmanaged examples).
    hub.run_for(std::time::Duration::from_secs(1)).await;
    hub.sim
        .keypad_change(FRONT, 29, Some(lockhub::model::Pin::new("2580")));
    hub.sim
        .keypad_change(FRONT, 30, Some(lockhub::model::Pin::new("3691")));
    hub.run_for(std::time::Duration::from_secs(1)).await;
    let examples = examples();
    assert!(examples.len() >= 10, "the doc has its examples");
    let mut ids = std::collections::HashMap::new();
    for (cmd, mut req, want) in examples {
        substitute(&mut req, &ids);
        let rid = req["request_id"].as_str().map(str::to_owned);
        let mut got = hub.cmd(&cmd, req);
        if got["action_attempt"]["status"] == "pending" {
            // A lock action is answered once the lock confirmed: that answer.
            hub.run_for(std::time::Duration::from_secs(2)).await;
            got = hub
                .answer(&rid.expect("the example names its request_id"))
                .expect("answered");
        }
        learn(&want, &got, &mut ids);
        same_shape(&want, &got, &cmd);
        assert_eq!(want["ok"], got["ok"]);
        assert_eq!(want["error"]["type"], got["error"]["type"]);
        assert_eq!(want["error"]["field"], got["error"]["field"]);
    }
    hub.stop().await;
}
