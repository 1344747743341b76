//! What binds a `request_id` to its command: SHA-256 over the command name and
//! the body in a canonical form (keys sorted at every level, no whitespace), so
//! a retry that serializes the same body differently is still the same request.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// The fingerprint of `command` with `fields` (the body without `request_id`).
pub fn of(command: &str, fields: &Map<String, Value>) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(command.as_bytes());
    h.update([0]);
    let mut text = String::new();
    canonical(&mut text, &Value::Object(fields.clone()));
    h.update(text.as_bytes());
    h.finalize().to_vec()
}

fn canonical(out: &mut String, v: &Value) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical(out, &m[k]);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(out, x);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn same_body_in_another_order_is_the_same_request() {
        let a: Value =
            serde_json::from_str(r#"{"b":{"y":1,"x":[2,{"q":1,"p":2}]},"a":"s"}"#).unwrap();
        let b: Value =
            serde_json::from_str(r#"{ "a" : "s", "b" : {"x":[2,{"p":2,"q":1}],"y":1} }"#).unwrap();
        assert_eq!(of("c", &fields(a.clone())), of("c", &fields(b)));
        assert_ne!(of("c", &fields(a.clone())), of("d", &fields(a.clone())));
        assert_ne!(
            of("c", &fields(a)),
            of("c", &fields(json!({"a": "s", "b": {"y": 1, "x": [2]}})))
        );
    }
}
