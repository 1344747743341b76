//! What Home Assistant is told (MQTT discovery, opt-in with `[homeassistant]
//! enabled = true`): the config payload of every entity, built from the
//! public device objects, and the meaning of its command topic. Pure: the
//! MQTT publisher (`mqtt::publisher`) sends these and clears stale ones.
//!
//! Topics: `{discovery_prefix}/{platform}/{node}/{object}/config`, where
//! `node` is `lockhub_{hub_id}` (so the publisher can subscribe to exactly
//! its own configs and clear the stale ones) and `object` is the device id
//! (or `hub`). Per lock:
//!
//! - `lock` (when Home Assistant may command it and the lock moves remotely):
//!   state from the retained `{base}/devices/{id}` (`properties.locked`),
//!   commands `LOCK` / `UNLOCK` on `{base}/homeassistant/{id}/set`, which
//!   the ingest turns into `locks/lock_door` / `locks/unlock_door`;
//!   otherwise a `binary_sensor` with `device_class: lock` (state only).
//! - `sensor` battery (`device_class: battery`, `%`).
//! - `sensor` last code used: the code's name from the retained
//!   `{base}/last_code_used/{id}` (never a PIN).
//!
//! Plus the hub itself: a connectivity `binary_sensor` on `{base}/status`,
//! the device every lock names as its `via_device`. Everything comes from
//! the public device object, which never carries a PIN.

use serde_json::{json, Value};

/// A config payload and where it goes (retained).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub topic: String,
    pub payload: Value,
}

/// The discovery settings of one hub.
#[derive(Debug, Clone)]
pub struct Discovery {
    /// Home Assistant's discovery prefix (`homeassistant`).
    pub prefix: String,
    /// `{mqtt.prefix}/{hub_id}`.
    pub base: String,
    pub hub_id: String,
    /// Whether lock entities get a command topic.
    pub commands: bool,
}

/// What Home Assistant asked of a lock on its command topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Lock,
    Unlock,
}

impl Action {
    /// The public command that carries it out.
    pub fn command(self) -> &'static str {
        match self {
            Action::Lock => "locks/lock_door",
            Action::Unlock => "locks/unlock_door",
        }
    }
}

/// `payload_lock` / `payload_unlock` as published in the configs.
const LOCK: &str = "LOCK";
const UNLOCK: &str = "UNLOCK";

/// A topic level Home Assistant accepts as a node or object id: `[a-zA-Z0-9_-]`.
fn id_level(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl Discovery {
    /// The node id level of every config topic of this hub.
    pub fn node(&self) -> String {
        format!("lockhub_{}", id_level(&self.hub_id))
    }

    /// Every config topic of this hub (subscribed to find stale ones).
    pub fn configs_filter(&self) -> String {
        format!("{}/+/{}/+/config", self.prefix, self.node())
    }

    /// Whether `topic` is one of this hub's config topics.
    pub fn is_config_topic(&self, topic: &str) -> bool {
        let Some(rest) = topic.strip_prefix(&format!("{}/", self.prefix)) else {
            return false;
        };
        let parts: Vec<&str> = rest.split('/').collect();
        parts.len() == 4 && parts[1] == self.node() && parts[3] == "config"
    }

    /// Home Assistant's birth and last will (`online` / `offline`).
    pub fn ha_status_topic(&self) -> String {
        format!("{}/status", self.prefix)
    }

    /// The command topics of every lock entity.
    pub fn commands_filter(&self) -> String {
        format!("{}/homeassistant/+/set", self.base)
    }

    fn command_topic(&self, device_id: &str) -> String {
        format!("{}/homeassistant/{device_id}/set", self.base)
    }

    /// The lock named by a command topic, if `topic` is one.
    pub fn command_device<'a>(&self, topic: &'a str) -> Option<&'a str> {
        topic
            .strip_prefix(self.base.as_str())?
            .strip_prefix("/homeassistant/")?
            .strip_suffix("/set")
            .filter(|id| !id.is_empty() && !id.contains('/'))
    }

    fn hub_identifier(&self) -> String {
        self.node()
    }

    fn origin() -> Value {
        json!({ "name": "lockhub", "sw_version": env!("CARGO_PKG_VERSION") })
    }

    fn hub_availability(&self) -> Value {
        json!({
            "topic": format!("{}/status", self.base),
            "value_template": "{{ value_json.state }}",
            "payload_available": "online",
            "payload_not_available": "offline",
        })
    }

    fn topic(&self, platform: &str, object: &str) -> String {
        format!(
            "{}/{platform}/{}/{}/config",
            self.prefix,
            self.node(),
            id_level(object)
        )
    }

    /// The hub's own entity: its connection to the broker (what every
    /// entity's availability also follows), and the hub device.
    fn hub_config(&self) -> Config {
        let node = self.node();
        Config {
            topic: self.topic("binary_sensor", "hub"),
            payload: json!({
                "name": "Connection",
                "unique_id": format!("{node}_connection"),
                "device_class": "connectivity",
                "entity_category": "diagnostic",
                "state_topic": format!("{}/status", self.base),
                "value_template": "{{ value_json.state }}",
                "payload_on": "online",
                "payload_off": "offline",
                "qos": 1,
                "device": {
                    "identifiers": [self.hub_identifier()],
                    "name": format!("lockhub {}", self.hub_id),
                    "manufacturer": "lockhub",
                    "model": "lockhub hub",
                    "sw_version": env!("CARGO_PKG_VERSION"),
                },
                "origin": Self::origin(),
            }),
        }
    }

    /// Every config this hub announces for `devices` (public device objects).
    pub fn configs(&self, devices: &[Value]) -> Vec<Config> {
        let mut out = vec![self.hub_config()];
        for d in devices {
            let Some(id) = d["device_id"].as_str() else {
                continue;
            };
            out.extend(self.lock_configs(id, d));
        }
        out
    }

    fn lock_configs(&self, id: &str, d: &Value) -> Vec<Config> {
        let uid = format!("{}_{}", self.node(), id_level(id));
        let state_topic = format!("{}/devices/{id}", self.base);
        let model = &d["properties"]["model"];
        let mut device = json!({
            "identifiers": [uid.clone()],
            "name": d["display_name"].as_str().unwrap_or(id),
            "via_device": self.hub_identifier(),
        });
        if let Some(m) = model["manufacturer_display_name"].as_str() {
            device["manufacturer"] = json!(m);
        }
        if let Some(m) = model["display_name"].as_str() {
            device["model"] = json!(m);
        }
        // The lock's state only while the hub is online and the lock reachable.
        let availability = json!([
            self.hub_availability(),
            {
                "topic": state_topic,
                "value_template": "{{ 'online' if value_json.properties.online else 'offline' }}",
                "payload_available": "online",
                "payload_not_available": "offline",
            },
        ]);
        let movable = d["can_remotely_lock"] == true && d["can_remotely_unlock"] == true;
        let bolt = if self.commands && movable {
            Config {
                topic: self.topic("lock", id),
                payload: json!({
                    "name": null,
                    "unique_id": format!("{uid}_lock"),
                    "state_topic": state_topic,
                    "value_template": "{% if value_json.properties.locked is defined %}{{ 'LOCKED' if value_json.properties.locked else 'UNLOCKED' }}{% else %}None{% endif %}",
                    "state_locked": "LOCKED",
                    "state_unlocked": "UNLOCKED",
                    "command_topic": self.command_topic(id),
                    "payload_lock": LOCK,
                    "payload_unlock": UNLOCK,
                    "optimistic": false,
                    "retain": false,
                    "qos": 1,
                    "availability": availability,
                    "availability_mode": "all",
                    "device": device,
                    "origin": Self::origin(),
                }),
            }
        } else {
            // State only: `on` means unlocked for Home Assistant's lock class.
            Config {
                topic: self.topic("binary_sensor", id),
                payload: json!({
                    "name": null,
                    "unique_id": format!("{uid}_bolt"),
                    "device_class": "lock",
                    "state_topic": state_topic,
                    "value_template": "{% if value_json.properties.locked is defined %}{{ 'OFF' if value_json.properties.locked else 'ON' }}{% else %}None{% endif %}",
                    "payload_on": "ON",
                    "payload_off": "OFF",
                    "qos": 1,
                    "availability": availability,
                    "availability_mode": "all",
                    "device": device,
                    "origin": Self::origin(),
                }),
            }
        };
        // The sensors keep their last value while the lock is away: only the
        // hub's availability.
        let battery = Config {
            topic: self.topic("sensor", &format!("{id}_battery")),
            payload: json!({
                "name": "Battery",
                "unique_id": format!("{uid}_battery"),
                "device_class": "battery",
                "state_class": "measurement",
                "unit_of_measurement": "%",
                "entity_category": "diagnostic",
                "state_topic": state_topic,
                "value_template": "{% if value_json.properties.battery_level is defined %}{{ (value_json.properties.battery_level * 100) | round(0) | int }}{% else %}None{% endif %}",
                "qos": 1,
                "availability": [self.hub_availability()],
                "device": device,
                "origin": Self::origin(),
            }),
        };
        let last_topic = format!("{}/last_code_used/{id}", self.base);
        let last_code = Config {
            topic: self.topic("sensor", &format!("{id}_last_code")),
            payload: json!({
                "name": "Last code used",
                "unique_id": format!("{uid}_last_code"),
                "icon": "mdi:form-textbox-password",
                "state_topic": last_topic,
                "value_template": "{% if value_json.name %}{{ value_json.name }}{% elif value_json.is_managed %}unnamed code{% else %}unmanaged code{% endif %}",
                "json_attributes_topic": last_topic,
                "qos": 1,
                "availability": [self.hub_availability()],
                "device": device,
                "origin": Self::origin(),
            }),
        };
        vec![bolt, battery, last_code]
    }
}

/// What a payload on a lock's command topic asks, if it is one of ours.
pub fn action(payload: &[u8]) -> Option<Action> {
    match payload {
        p if p == LOCK.as_bytes() => Some(Action::Lock),
        p if p == UNLOCK.as_bytes() => Some(Action::Unlock),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disc(commands: bool) -> Discovery {
        Discovery {
            prefix: "homeassistant".into(),
            base: "lockhub/hub.1".into(),
            hub_id: "hub.1".into(),
            commands,
        }
    }

    fn device(movable: bool) -> Value {
        json!({
            "device_id": "8e94044d-a4d1-4691-9f7e-e97d3e8a0b73",
            "display_name": "Front door",
            "can_remotely_lock": movable,
            "can_remotely_unlock": movable,
            "properties": {"model": {"display_name": "Nuki Smart Lock", "manufacturer_display_name": "Nuki"}},
        })
    }

    #[test]
    fn topics_are_under_the_hubs_own_node() {
        let d = disc(true);
        let c = d.configs(&[device(true)]);
        assert_eq!(c.len(), 4);
        assert_eq!(
            c[1].topic,
            "homeassistant/lock/lockhub_hub_1/8e94044d-a4d1-4691-9f7e-e97d3e8a0b73/config"
        );
        for c in &c {
            assert!(d.is_config_topic(&c.topic), "{}", c.topic);
        }
        assert!(!d.is_config_topic("homeassistant/lock/other/x/config"));
        assert!(!d.is_config_topic("homeassistant/status"));
        assert_eq!(d.configs_filter(), "homeassistant/+/lockhub_hub_1/+/config");
    }

    #[test]
    fn a_lock_is_commanded_only_when_allowed_and_movable() {
        let on = disc(true).configs(&[device(true)]);
        assert!(on[1].topic.starts_with("homeassistant/lock/"));
        assert_eq!(
            on[1].payload["command_topic"],
            "lockhub/hub.1/homeassistant/8e94044d-a4d1-4691-9f7e-e97d3e8a0b73/set"
        );
        for c in [
            disc(false).configs(&[device(true)]),
            disc(true).configs(&[device(false)]),
        ] {
            assert!(c[1].topic.starts_with("homeassistant/binary_sensor/"));
            assert!(c.iter().all(|c| c.payload.get("command_topic").is_none()));
            assert_eq!(c[1].payload["device_class"], "lock");
        }
    }

    #[test]
    fn command_topics_and_payloads() {
        let d = disc(true);
        assert_eq!(
            d.command_device("lockhub/hub.1/homeassistant/abc/set"),
            Some("abc")
        );
        assert_eq!(d.command_device("lockhub/hub.1/homeassistant//set"), None);
        assert_eq!(
            d.command_device("lockhub/hub.2/homeassistant/abc/set"),
            None
        );
        assert_eq!(d.command_device("lockhub/hub.1/commands/abc/set"), None);
        assert_eq!(action(b"LOCK"), Some(Action::Lock));
        assert_eq!(action(b"UNLOCK"), Some(Action::Unlock));
        assert_eq!(action(b"OPEN"), None);
        assert_eq!(action(b"lock"), None);
    }
}
