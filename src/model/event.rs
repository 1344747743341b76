//! Events reported upstream on `{base}/events`.

use super::access_code::ts;
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

/// One event, as published. `extra` carries event-specific fields
/// (never a PIN).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub event_type: &'static str,
    pub occurred_at: DateTime<Utc>,
    pub device_id: Option<String>,
    pub access_code_id: Option<String>,
    pub common_code_key: Option<String>,
    pub extra: Map<String, Value>,
}

impl Event {
    pub fn device(event_type: &'static str, device_id: &str, at: DateTime<Utc>) -> Self {
        Event {
            event_type,
            occurred_at: at,
            device_id: Some(device_id.to_owned()),
            access_code_id: None,
            common_code_key: None,
            extra: Map::new(),
        }
    }

    pub fn code(event_type: &'static str, code: &super::AccessCode, at: DateTime<Utc>) -> Self {
        Event {
            event_type,
            occurred_at: at,
            device_id: Some(code.device_id.clone()),
            access_code_id: Some(code.access_code_id.clone()),
            common_code_key: code.common_code_key.clone(),
            extra: Map::new(),
        }
    }

    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extra.insert(key.to_owned(), value.into());
        self
    }

    /// The public event: `event_id`, `event_type`, `workspace_id` (the hub's
    /// configured workspace), `created_at` and `occurred_at` (the same moment:
    /// the hub records an event when it happens), then the event's own fields.
    pub fn to_json(&self, event_id: &str, workspace_id: &str) -> Value {
        let mut v = json!({
            "event_id": event_id,
            "event_type": self.event_type,
            "workspace_id": workspace_id,
            "created_at": ts(self.occurred_at),
            "occurred_at": ts(self.occurred_at),
        });
        let o = v.as_object_mut().unwrap();
        if let Some(d) = &self.device_id {
            o.insert("device_id".into(), json!(d));
        }
        if let Some(a) = &self.access_code_id {
            o.insert("access_code_id".into(), json!(a));
        }
        if let Some(k) = &self.common_code_key {
            o.insert("common_code_key".into(), json!(k));
        }
        for (k, val) in &self.extra {
            o.insert(k.clone(), val.clone());
        }
        v
    }
}
