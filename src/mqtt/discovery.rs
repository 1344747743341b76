//! Home Assistant discovery on the wire (the payloads are
//! [`crate::homeassistant`]'s): which locks are announced, and what the
//! publisher hears from Home Assistant's side of the broker.
//!
//! The configs are retained and live outside `{base}`, so they are not
//! outbox rows: the publisher sends them all again on every connect, when
//! Home Assistant says `online` on `{discovery_prefix}/status` (it has
//! restarted), and when a lock is added or goes on or off line. A lock is
//! announced while a running driver serves it (or its driver is configured
//! and not running yet: a Z-Wave stick being retried keeps its entities).
//! The hub subscribes to its own config topics: a retained config the
//! broker holds for an entity no longer announced (a lock taken out of the
//! configuration, or excluded, while the hub was down too) is cleared with
//! an empty retained payload, and so is one announced earlier in this run.

use crate::homeassistant::{Config, Discovery};
use crate::hub::Hub;
use crate::model::DriverKind;
use serde_json::Value;
use std::collections::HashSet;

/// What arrives from Home Assistant's side (QoS 0, never acked).
#[derive(Debug)]
pub(super) enum Heard {
    /// Home Assistant's birth message: it has (re)started.
    Birth,
    /// A retained config under this hub's node (empty: already cleared).
    Config { topic: String, empty: bool },
}

/// Discovery as the publisher runs it.
pub(super) struct Announcer {
    pub disc: Discovery,
    /// The driver kinds the configuration asks for.
    pub configured: HashSet<DriverKind>,
    /// Config topics announced on this connection.
    pub announced: HashSet<String>,
}

impl Announcer {
    pub fn new(disc: Discovery, configured: HashSet<DriverKind>) -> Self {
        Announcer {
            disc,
            configured,
            announced: HashSet::new(),
        }
    }

    /// Whether `topic` is one the link hands here (Home Assistant's status, our configs).
    pub fn listens_to(disc: &Discovery, topic: &str) -> bool {
        topic == disc.ha_status_topic() || disc.is_config_topic(topic)
    }

    /// What a publish on such a topic says: Home Assistant's birth (its
    /// last will, `offline`, changes nothing here) or one of our configs.
    pub fn heard(disc: &Discovery, topic: &str, payload: &[u8]) -> Option<Heard> {
        if topic == disc.ha_status_topic() {
            return (payload == b"online").then_some(Heard::Birth);
        }
        disc.is_config_topic(topic).then(|| Heard::Config {
            topic: topic.to_owned(),
            empty: payload.is_empty(),
        })
    }

    /// Every config to announce now.
    pub async fn current(&self, hub: &Hub) -> Vec<Config> {
        let devices = match hub.devices_json() {
            Ok(v) => v["devices"].as_array().cloned().unwrap_or_default(),
            Err(e) => {
                tracing::error!(error = %e, "could not read the devices for Home Assistant");
                return Vec::new();
            }
        };
        let (running, served) = hub.engine.served().await;
        let announced: Vec<Value> = devices
            .into_iter()
            .filter(|d| {
                let kind = match d["driver"].as_str() {
                    Some("sim") => DriverKind::Sim,
                    Some("zwave") => DriverKind::Zwave,
                    Some("ble") => DriverKind::Ble,
                    _ => return false,
                };
                let id = d["device_id"].as_str().unwrap_or_default();
                if running.contains(&kind) {
                    served.contains(id)
                } else {
                    self.configured.contains(&kind)
                }
            })
            .collect();
        self.disc.configs(&announced)
    }
}
