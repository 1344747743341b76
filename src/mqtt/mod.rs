//! The MQTT side: one connection (rumqttc), three tasks.
//!
//! - [`link`]: polls the event loop, reconnects with backoff, and routes what
//!   arrives: command publishes to the ingest, packet ids and PUBACKs to the publisher.
//! - [`ingest`]: takes the commands waiting (up to `max_batch`), commits them in
//!   one transaction through the hub, and only then acks them to the broker;
//!   while the store cannot be written it answers `storage_unavailable`
//!   directly, holds the commands and retries their commit itself.
//! - [`publisher`]: drains the store's outbox in order (QoS 1), deletes a row
//!   only on its PUBACK, and republishes `online` and device state on every connect.
//! - [`discovery`]: Home Assistant discovery as the publisher runs it (which
//!   locks are announced; Home Assistant's birth; stale configs cleared).
//! - [`proto`]: MQTT 5 (default) and 3.1.1 behind one face.
//! - [`topic`]: what a broker accepts as a topic, checked before anything is sent.

mod discovery;
mod ingest;
mod link;
mod proto;
mod publisher;
pub mod topic;

use crate::config::{Config, MqttProtocol};
use crate::hub::Hub;
use proto::{Client, Loop};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    #[error("TLS setup: {0}")]
    Tls(String),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}

/// `{prefix}/{hub_id}` and the topics under it.
#[derive(Debug, Clone)]
pub struct Topics {
    pub base: String,
}

impl Topics {
    pub fn new(prefix: &str, hub_id: &str) -> Self {
        Topics {
            base: format!("{prefix}/{hub_id}"),
        }
    }

    pub fn commands_filter(&self) -> String {
        format!("{}/commands/#", self.base)
    }

    pub fn status(&self) -> String {
        format!("{}/status", self.base)
    }

    /// A topic under the base (`responses/r-1` -> `{base}/responses/r-1`).
    pub fn under(&self, rel: &str) -> String {
        format!("{}/{rel}", self.base)
    }

    /// The command named by a publish topic, if it is one of ours.
    pub fn command<'a>(&self, topic: &'a str) -> Option<&'a str> {
        topic
            .strip_prefix(self.base.as_str())?
            .strip_prefix("/commands/")
    }
}

/// What the socket's health check knows about the broker link.
#[derive(Debug, Default)]
pub struct LinkState {
    pub connected: AtomicBool,
    pub last_error: Mutex<Option<String>>,
    /// The largest packet we may send: the broker's Maximum Packet Size (MQTT
    /// 5) or rumqttc's own limit; a row over it is answered small or dropped,
    /// never sent (the client would drop the connection).
    pub send_limit: AtomicU32,
    /// Set while the broker keeps sending a packet over our limit (MQTT 3.1.1
    /// cannot tell it the limit): the link backs off and says so here.
    pub oversized: Mutex<Option<String>>,
    /// Counts the connections made (each CONNACK): what a received packet
    /// id belongs to.
    pub generation: std::sync::atomic::AtomicU64,
    /// The current connection's CONNACK kept our session: every command
    /// left unacked on an older connection is delivered again on this one.
    pub session_present: AtomicBool,
}

impl LinkState {
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// Why the link is unhealthy though configured, if it is (for health).
    pub fn problem(&self) -> Option<String> {
        self.oversized.lock().unwrap().clone()
    }
}

/// The hub's `online` announcement.
fn online_payload(hub: &Hub) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "state": "online",
        "version": env!("CARGO_PKG_VERSION"),
        "started_at": crate::model::access_code::ts(hub.started_at),
    }))
    .unwrap_or_default()
}

const OFFLINE: &[u8] = br#"{"state":"offline"}"#;

fn client_id(cfg: &Config) -> String {
    cfg.mqtt
        .client_id
        .clone()
        .unwrap_or_else(|| format!("lockhub-{}", cfg.hub_id))
}

fn transport(cfg: &Config) -> Result<Option<rumqttc::Transport>, MqttError> {
    Ok(if cfg.mqtt.tls.enabled {
        Some(rumqttc::Transport::tls_with_config(tls_config(cfg)?))
    } else {
        None
    })
}

fn network() -> rumqttc::NetworkOptions {
    let mut net = rumqttc::NetworkOptions::new();
    net.set_tcp_nodelay(true);
    net.set_connection_timeout(10);
    net
}

/// MQTT 3.1.1: the broker cannot be told our packet limit.
fn connect_v4(cfg: &Config, topics: &Topics) -> Result<(Client, Loop, u32), MqttError> {
    use rumqttc::{AsyncClient, LastWill, MqttOptions, QoS};
    let m = &cfg.mqtt;
    let mut o = MqttOptions::new(client_id(cfg), m.host.clone(), m.port);
    o.set_keep_alive(Duration::from_secs(m.keep_alive_secs.max(5)));
    o.set_clean_session(false);
    o.set_manual_acks(true);
    let max = m.max_packet_bytes as usize;
    o.set_max_packet_size(max, max);
    o.set_inflight(64);
    o.set_last_will(LastWill::new(
        topics.status(),
        OFFLINE.to_vec(),
        QoS::AtLeastOnce,
        true,
    ));
    if let Some(user) = &m.username {
        o.set_credentials(user.clone(), cfg.mqtt_password()?.unwrap_or_default());
    }
    if let Some(t) = transport(cfg)? {
        o.set_transport(t);
    }
    let (client, mut el) = AsyncClient::new(o, 256);
    el.set_network_options(network());
    Ok((
        Client::V4(client),
        Loop::V4(Box::new(el)),
        m.max_packet_bytes,
    ))
}

/// MQTT 5: Maximum Packet Size in CONNECT (the broker never delivers more),
/// a session that outlives a disconnect by `session_expiry_secs`.
fn connect_v5(cfg: &Config, topics: &Topics) -> Result<(Client, Loop, u32), MqttError> {
    use rumqttc::v5::mqttbytes::v5::LastWill;
    use rumqttc::v5::mqttbytes::QoS;
    use rumqttc::v5::{AsyncClient, MqttOptions};
    let m = &cfg.mqtt;
    let mut o = MqttOptions::new(client_id(cfg), m.host.clone(), m.port);
    o.set_keep_alive(Duration::from_secs(m.keep_alive_secs.max(5)));
    o.set_clean_start(false);
    o.set_session_expiry_interval(Some(m.session_expiry_secs));
    o.set_manual_acks(true);
    o.set_max_packet_size(Some(m.max_packet_bytes));
    o.set_receive_maximum(Some(1024));
    o.set_outgoing_inflight_upper_limit(64);
    o.set_connection_timeout(10);
    o.set_last_will(LastWill::new(
        topics.status(),
        OFFLINE.to_vec(),
        QoS::AtLeastOnce,
        true,
        None,
    ));
    if let Some(user) = &m.username {
        o.set_credentials(user.clone(), cfg.mqtt_password()?.unwrap_or_default());
    }
    if let Some(t) = transport(cfg)? {
        o.set_transport(t);
    }
    o.set_network_options(network());
    let (client, el) = AsyncClient::new(o, 256);
    // Until the CONNACK says otherwise, what we would accept ourselves.
    Ok((
        Client::V5(client),
        Loop::V5(Box::new(el)),
        m.max_packet_bytes,
    ))
}

fn tls_config(cfg: &Config) -> Result<rumqttc::TlsConfiguration, MqttError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let t = &cfg.mqtt.tls;
    let read = |p: &std::path::PathBuf| {
        std::fs::read(p).map_err(|e| MqttError::Tls(format!("{}: {e}", p.display())))
    };
    let ca = match &t.ca_file {
        Some(p) => read(p)?,
        None => {
            return Err(MqttError::Tls(
                "mqtt.tls.ca_file is required with TLS".into(),
            ))
        }
    };
    let client_auth = match (&t.client_cert, &t.client_key) {
        (Some(c), Some(k)) => Some((read(c)?, read(k)?)),
        _ => None,
    };
    Ok(rumqttc::TlsConfiguration::Simple {
        ca,
        alpn: None,
        client_auth,
    })
}

/// Start the MQTT tasks on `tasks`; they stop when `shutdown` fires, after
/// announcing `offline` and disconnecting cleanly.
pub fn start(
    cfg: &Config,
    hub: Arc<Hub>,
    shutdown: CancellationToken,
    tasks: &TaskTracker,
) -> Result<Arc<LinkState>, MqttError> {
    let topics = Topics::new(&cfg.mqtt.prefix, &cfg.hub_id);
    let (client, eventloop, own_limit) = match cfg.mqtt.protocol {
        MqttProtocol::V5 => connect_v5(cfg, &topics)?,
        MqttProtocol::V311 => connect_v4(cfg, &topics)?,
    };
    let state = Arc::new(LinkState::default());
    state.send_limit.store(own_limit, Ordering::Relaxed);
    let (cmd_tx, cmd_rx) = mpsc::channel(1024);
    let (pub_tx, pub_rx) = mpsc::unbounded_channel();
    let (direct_tx, direct_rx) = mpsc::unbounded_channel();
    let backoff = (
        Duration::from_millis(cfg.mqtt.reconnect_min_ms),
        Duration::from_millis(cfg.mqtt.reconnect_max_ms),
    );
    // The link outlives the other two: it must carry their last packets out.
    let link_stop = CancellationToken::new();
    let (ha, heard_rx) = match &cfg.homeassistant {
        h if h.enabled => {
            if let Some(why) = cfg.unsigned_home_assistant() {
                tracing::warn!("{why}");
            }
            let disc = crate::homeassistant::Discovery {
                prefix: h.discovery_prefix.clone(),
                base: topics.base.clone(),
                hub_id: cfg.hub_id.clone(),
                commands: h.commands_allowed(cfg.auth.mode),
            };
            let (tx, rx) = mpsc::unbounded_channel();
            (Some((disc, tx)), Some(rx))
        }
        _ => (None, None),
    };
    let announcer = ha.as_ref().zip(heard_rx).map(|((disc, _), rx)| {
        let mut configured = std::collections::HashSet::new();
        if !cfg.sim.locks.is_empty() {
            configured.insert(crate::model::DriverKind::Sim);
        }
        if !cfg.zwave.port.is_empty() {
            configured.insert(crate::model::DriverKind::Zwave);
        }
        if cfg.ble.enabled && !cfg.ble.locks.is_empty() {
            configured.insert(crate::model::DriverKind::Ble);
        }
        (discovery::Announcer::new(disc.clone(), configured), rx)
    });
    let ha_disc = ha.as_ref().map(|(d, _)| d.clone());
    tasks.spawn(link::run(
        eventloop,
        client.clone(),
        topics.clone(),
        state.clone(),
        cmd_tx,
        pub_tx,
        ha,
        (backoff, own_limit),
        link_stop.clone(),
    ));
    tasks.spawn(ingest::run(
        client.clone(),
        hub.clone(),
        topics.clone(),
        state.clone(),
        cmd_rx,
        direct_tx,
        (cfg.mqtt.max_batch, ha_disc),
        shutdown.clone(),
    ));
    tasks.spawn(publisher::run(
        client,
        hub,
        topics,
        state.clone(),
        (pub_rx, direct_rx),
        announcer,
        shutdown,
        link_stop,
    ));
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_topics() {
        let t = Topics::new("lockhub", "hub-1");
        assert_eq!(t.commands_filter(), "lockhub/hub-1/commands/#");
        assert_eq!(
            t.command("lockhub/hub-1/commands/access_codes/create_multiple"),
            Some("access_codes/create_multiple")
        );
        assert_eq!(t.command("lockhub/hub-2/commands/x"), None);
        assert_eq!(t.command("lockhub/hub-1/status"), None);
    }
}
