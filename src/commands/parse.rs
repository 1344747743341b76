//! Turning bytes into typed command bodies, with an error that names the field.

use super::error::{CommandError, ErrorKind};
use super::MAX_REQUEST_ID_LEN;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// A payload with a usable `request_id`; `fields` holds the rest.
#[derive(Debug)]
pub struct Envelope {
    pub request_id: String,
    pub fields: Map<String, Value>,
}

/// Parse the outer shape. On failure, return whatever request_id could be read
/// (`None` when there is none usable) with the error.
#[allow(clippy::result_large_err)] // built once per command, returned at once
pub fn envelope(
    payload: &[u8],
    max_bytes: usize,
) -> Result<Envelope, (Option<String>, CommandError)> {
    if payload.len() > max_bytes {
        return Err((
            None,
            CommandError::new(
                ErrorKind::PayloadTooLarge,
                format!(
                    "payload is {} bytes; the limit is {max_bytes}",
                    payload.len()
                ),
            ),
        ));
    }
    let value: Value = serde_json::from_slice(payload).map_err(|e| {
        (
            None,
            CommandError::new(
                ErrorKind::InvalidInput,
                format!("payload is not valid JSON: {e}"),
            ),
        )
    })?;
    let Value::Object(mut fields) = value else {
        return Err((
            None,
            CommandError::new(ErrorKind::InvalidInput, "payload must be a JSON object"),
        ));
    };
    let request_id = match fields.remove("request_id") {
        Some(Value::String(s)) => s,
        Some(_) => {
            return Err((
                None,
                CommandError::invalid("request_id", "request_id must be a string"),
            ))
        }
        None => {
            return Err((
                None,
                CommandError::invalid("request_id", "request_id is required"),
            ))
        }
    };
    if request_id.is_empty() || request_id.chars().count() > MAX_REQUEST_ID_LEN {
        return Err((
            None,
            CommandError::invalid(
                "request_id",
                format!("request_id must be 1 to {MAX_REQUEST_ID_LEN} characters"),
            ),
        ));
    }
    if request_id
        .chars()
        .any(|c| matches!(c, '+' | '#' | '/') || c.is_control())
    {
        return Err((
            None,
            CommandError::invalid(
                "request_id",
                "request_id must not contain '+', '#', '/' or control characters",
            ),
        ));
    }
    Ok(Envelope { request_id, fields })
}

/// Deserialize a command body; unknown fields and wrong types name the field.
pub fn body<T: DeserializeOwned>(fields: Map<String, Value>) -> Result<T, CommandError> {
    let de = Value::Object(fields);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        if let Some(name) = inner
            .strip_prefix("unknown field `")
            .and_then(|r| r.split('`').next())
        {
            return CommandError::invalid(name, format!("unknown field '{}'", printable(name)));
        }
        if let Some(name) = inner
            .strip_prefix("missing field `")
            .and_then(|r| r.split('`').next())
        {
            return CommandError::invalid(name, format!("{name} is required"));
        }
        let field = if path == "." { String::new() } else { path };
        let message = format!("{field}: {inner}");
        CommandError::invalid(&field, message)
    })
}

/// A strict RFC 3339 timestamp (offset required), as UTC.
pub fn timestamp(field: &str, s: &str) -> Result<DateTime<Utc>, CommandError> {
    DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc)).map_err(|_| {
        CommandError::invalid(
            field,
            format!("{field} must be an ISO 8601 / RFC 3339 timestamp with a time zone, e.g. 2024-11-15T15:00:00Z"),
        )
    })
}

/// An optional timestamp field, parsed strictly.
pub fn opt_timestamp(field: &str, s: Option<&str>) -> Result<Option<DateTime<Utc>>, CommandError> {
    s.map(|s| timestamp(field, s)).transpose()
}

/// An optional name field, checked.
pub fn opt_name(field: &str, s: Option<&str>) -> Result<Option<String>, CommandError> {
    s.map(|s| name(field, s)).transpose()
}

/// The public API spells this flag two ways; both given must agree.
pub fn external_modification(
    allow: Option<bool>,
    is_allowed: Option<bool>,
) -> Result<Option<bool>, CommandError> {
    match (allow, is_allowed) {
        (Some(a), Some(b)) if a != b => Err(CommandError::invalid(
            "is_external_modification_allowed",
            "allow_external_modification and is_external_modification_allowed disagree",
        )),
        (a, b) => Ok(a.or(b)),
    }
}

/// A name as given, within sane bounds.
pub fn name(field: &str, s: &str) -> Result<String, CommandError> {
    const MAX: usize = 255;
    if s.chars().count() > MAX {
        return Err(CommandError::invalid(
            field,
            format!("{field} must be at most {MAX} characters"),
        ));
    }
    if s.chars().any(char::is_control) {
        return Err(CommandError::invalid(
            field,
            format!("{field} must not contain control characters"),
        ));
    }
    Ok(s.to_owned())
}

/// Echo user text in a message safely: bounded and without control characters.
pub fn printable(s: &str) -> String {
    let clean: String = s.chars().filter(|c| !c.is_control()).take(64).collect();
    if s.chars().count() > 64 {
        format!("{clean}...")
    } else {
        clean
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct B {
        flag: Option<bool>,
        ids: Vec<String>,
    }

    fn fields(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn errors_name_the_field() {
        let e = body::<B>(fields(serde_json::json!({"ids": [], "flag": "yes"}))).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("flag"));
        let e = body::<B>(fields(serde_json::json!({"ids": [], "colour": 1}))).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("colour"));
        assert!(e.message.contains("unknown field"));
        let e = body::<B>(fields(serde_json::json!({}))).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("ids"));
        let e = body::<B>(fields(serde_json::json!({"ids": [1]}))).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("ids[0]"));
    }

    #[test]
    fn envelope_rejects_what_cannot_be_answered_by_id() {
        for bad in [
            &b"{"[..],
            b"[]",
            b"{\"request_id\": 5}",
            b"{}",
            b"{\"request_id\": \"a/b\"}",
            b"{\"request_id\": \"\"}",
        ] {
            assert!(
                envelope(bad, 1000).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(envelope(&[b' '; 2000], 1000).is_err());
        let ok = envelope(br#"{"request_id":"r-1","x":1}"#, 1000).unwrap();
        assert_eq!(ok.request_id, "r-1");
        assert!(ok.fields.contains_key("x"));
    }

    #[test]
    fn timestamps_are_strict() {
        assert!(timestamp("t", "2024-11-15T15:00:00Z").is_ok());
        assert!(timestamp("t", "2024-11-15T15:00:00.000+01:00").is_ok());
        for bad in [
            "2024-11-15",
            "2024-11-15T15:00:00",
            "yesterday",
            "2024-13-01T00:00:00Z",
        ] {
            assert!(timestamp("t", bad).is_err(), "{bad}");
        }
    }
}
