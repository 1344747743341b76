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
    let value: Value = match serde_json::from_slice(payload) {
        Ok(v) => v,
        Err(e) => {
            // Too deep, a number out of range, a lone surrogate: the parser
            // refuses it, but the sender still deserves its answer by id.
            let id = scan_request_id(payload).filter(|id| check_request_id(id).is_ok());
            return Err((
                id,
                CommandError::new(
                    ErrorKind::InvalidInput,
                    format!("payload is not valid JSON: {e}"),
                ),
            ));
        }
    };
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
    check_request_id(&request_id).map_err(|e| (None, e))?;
    Ok(Envelope { request_id, fields })
}

/// A `request_id` becomes part of a topic: 1 to 128 characters, none of
/// `+ # /`, no control characters and no Unicode noncharacters (Mosquitto
/// closes the connection of a client that publishes a topic holding one).
pub fn check_request_id(request_id: &str) -> Result<(), CommandError> {
    if request_id.is_empty() || request_id.chars().count() > MAX_REQUEST_ID_LEN {
        return Err(CommandError::invalid(
            "request_id",
            format!("request_id must be 1 to {MAX_REQUEST_ID_LEN} characters"),
        ));
    }
    if request_id
        .chars()
        .any(|c| matches!(c, '+' | '#' | '/') || c.is_control() || is_noncharacter(c))
    {
        return Err(CommandError::invalid(
            "request_id",
            "request_id must not contain '+', '#', '/', control characters or Unicode noncharacters",
        ));
    }
    Ok(())
}

/// U+FDD0..U+FDEF and the last two code points of every plane (U+FFFE, U+FFFF,
/// U+1FFFE, ...): the Unicode noncharacters MQTT brokers refuse in topics.
pub fn is_noncharacter(c: char) -> bool {
    let u = c as u32;
    (0xFDD0..=0xFDEF).contains(&u) || (u & 0xFFFE) == 0xFFFE
}

/// The top-level `"request_id"` string of a payload the JSON parser refused,
/// when it can be read: a lexical scan that follows strings and nesting only,
/// so nesting depth, out-of-range numbers or a bad escape elsewhere do not
/// hide it. The last one wins, as in `serde_json`'s maps.
pub fn scan_request_id(payload: &[u8]) -> Option<String> {
    let skip_ws = |mut i: usize| {
        while payload.get(i).is_some_and(|b| b.is_ascii_whitespace()) {
            i += 1;
        }
        i
    };
    // The end (exclusive) of the string starting with the quote at `i`.
    let string_end = |mut i: usize| -> Option<usize> {
        i += 1;
        loop {
            match payload.get(i)? {
                b'"' => return Some(i + 1),
                b'\\' => i += 2,
                _ => i += 1,
            }
        }
    };
    let mut i = skip_ws(0);
    if payload.get(i) != Some(&b'{') {
        return None;
    }
    i += 1;
    let mut depth = 1usize;
    let mut key_position = true;
    let mut found = None;
    while depth > 0 {
        let Some(&b) = payload.get(i) else { break };
        match b {
            b'"' => {
                let end = string_end(i)?;
                if depth == 1 && key_position {
                    key_position = false;
                    let key: Option<String> = serde_json::from_slice(&payload[i..end]).ok();
                    let colon = skip_ws(end);
                    if key.as_deref() == Some("request_id") && payload.get(colon) == Some(&b':') {
                        let v = skip_ws(colon + 1);
                        if payload.get(v) == Some(&b'"') {
                            let vend = string_end(v)?;
                            found = serde_json::from_slice::<String>(&payload[v..vend]).ok();
                            i = vend;
                            continue;
                        }
                    }
                }
                i = end;
                continue;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth -= 1,
            b',' if depth == 1 => key_position = true,
            _ => {}
        }
        i += 1;
    }
    found
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

/// For a field where `null` means something (clear it): present, even as
/// `null`, is `Some` (use with `#[serde(default, deserialize_with = "present")]`).
pub fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    <Value as serde::Deserialize>::deserialize(d).map(Some)
}

/// The most `max_uses` a code may have (a limit beyond it is no limit).
pub const MAX_USES_LIMIT: u64 = 100_000;

/// What `is_one_time_use` and lockhub's `max_uses` ask of a code's use
/// limit (the unlocks after which it goes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UseLimit {
    /// Neither was given.
    #[default]
    Unchanged,
    /// `is_one_time_use: false` alone: not a one-time code (a larger
    /// `max_uses` stays).
    NotOneTime,
    /// Goes after this many unlocks; `None` (`max_uses: null`): no limit.
    Set(Option<u32>),
}

impl UseLimit {
    /// The limit of a code that had `current`, once this is applied.
    pub fn applied_to(self, current: Option<u32>) -> Option<u32> {
        match self {
            UseLimit::Unchanged => current,
            UseLimit::NotOneTime => current.filter(|&n| n != 1),
            UseLimit::Set(limit) => limit,
        }
    }
}

/// `max_uses` (a whole number from 1 to [`MAX_USES_LIMIT`], or `null`) and
/// `is_one_time_use` (a limit of 1); both given must agree.
pub fn use_limit(
    is_one_time_use: Option<bool>,
    max_uses: Option<&Value>,
) -> Result<UseLimit, CommandError> {
    let max = match max_uses {
        None => None,
        Some(Value::Null) => Some(None),
        Some(v) => Some(Some(
            v.as_u64()
                .filter(|n| (1..=MAX_USES_LIMIT).contains(n))
                .ok_or_else(|| {
                    CommandError::invalid(
                        "max_uses",
                        format!("max_uses must be a whole number from 1 to {MAX_USES_LIMIT}, or null for no limit"),
                    )
                })? as u32,
        )),
    };
    match (is_one_time_use, max) {
        (Some(true), Some(Some(n))) if n != 1 => Err(CommandError::invalid(
            "max_uses",
            "a one-time code (is_one_time_use) has max_uses 1; send one of them",
        )),
        (Some(false), Some(Some(1))) => Err(CommandError::invalid(
            "max_uses",
            "max_uses 1 makes a one-time code, but is_one_time_use is false",
        )),
        (Some(true), _) => Ok(UseLimit::Set(Some(1))),
        (_, Some(m)) => Ok(UseLimit::Set(m)),
        (Some(false), None) => Ok(UseLimit::NotOneTime),
        (None, None) => Ok(UseLimit::Unchanged),
    }
}

/// lockhub's `weekly_schedule`: `None` for `null`; a bad one is
/// `invalid_input` naming the field and saying what is wrong.
pub fn weekly_schedule(v: &Value) -> Result<Option<crate::model::WeeklySchedule>, CommandError> {
    if v.is_null() {
        return Ok(None);
    }
    crate::model::WeeklySchedule::from_json(v)
        .map(Some)
        .map_err(|e| CommandError::invalid("weekly_schedule", e.to_string()))
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
    fn request_ids_with_noncharacters_are_refused() {
        for bad in [
            "r\u{FFFF}",
            "r\u{FFFE}",
            "\u{FDD0}",
            "a\u{FDEF}b",
            "x\u{1FFFF}",
            "x\u{10FFFE}",
            "a\u{0}b",
            "a\u{85}",
        ] {
            assert!(check_request_id(bad).is_err(), "{bad:?}");
            let payload = serde_json::to_vec(&serde_json::json!({ "request_id": bad })).unwrap();
            assert!(envelope(&payload, 1000).is_err(), "{bad:?}");
        }
        for good in [
            "r-1",
            "\u{FDCF}",
            "\u{FDF0}",
            "\u{FFFD}",
            "\u{10000}",
            "é日本",
        ] {
            assert!(check_request_id(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn the_request_id_of_a_payload_the_parser_refuses_is_still_read() {
        let deep = format!(
            r#"{{"request_id":"deep","x":{}{}}}"#,
            "[".repeat(1000),
            "]".repeat(1000)
        );
        let after = format!(
            r#"{{"x":{}{},"request_id":"after"}}"#,
            "[".repeat(1000),
            "]".repeat(1000)
        );
        for (payload, id) in [
            (deep.as_str(), "deep"),
            (after.as_str(), "after"),
            (r#"{"request_id":"sur","name":"\ud800"}"#, "sur"),
            (r#"{"n":1e999,"request_id":"big"}"#, "big"),
            (
                r#"{"request_id":"esc\"aped\u0041","n":1e999}"#,
                "esc\"apedA",
            ),
            (r#"{"request_\u0069d":"k","n":1e999}"#, "k"),
            (r#"{"request_id":"trunc","a":"#, "trunc"),
        ] {
            let (got, err) = envelope(payload.as_bytes(), usize::MAX).unwrap_err();
            assert_eq!(got.as_deref(), Some(id), "{payload}: {err}");
        }
        for (payload, why) in [
            (
                r#"{"a":{"request_id":"nested"},"n":1e999}"#,
                "not top level",
            ),
            (
                r#"{"a":"request_id","b":"x","n":1e999}"#,
                "a value, not a key",
            ),
            (
                r#"{"request_id":"\ud800","n":1e999}"#,
                "the id itself is broken",
            ),
            (r#"{"request_id":"a/b","n":1e999}"#, "not a usable id"),
            (r#"{"request_id":5,"n":1e999}"#, "not a string"),
        ] {
            let (got, _) = envelope(payload.as_bytes(), usize::MAX).unwrap_err();
            assert_eq!(got, None, "{why}");
        }
    }

    proptest::proptest! {
        #[test]
        fn the_scan_agrees_with_the_parser(id in "\\PC{1,20}", other in "\\PC{0,20}", before in proptest::bool::ANY) {
            let v = if before {
                serde_json::json!({ "request_id": id, "x": [{ "request_id": other }], "y": other })
            } else {
                serde_json::json!({ "x": { "y": [other, { "request_id": other }] }, "request_id": id })
            };
            let text = serde_json::to_vec(&v).unwrap();
            proptest::prop_assert_eq!(scan_request_id(&text), Some(id));
        }
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
