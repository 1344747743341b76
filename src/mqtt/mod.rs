//! The MQTT side: one connection (rumqttc), three tasks.
//!
//! - [`link`]: polls the event loop, reconnects with backoff, and routes what
//!   arrives: command publishes to the ingest, packet ids and PUBACKs to the publisher.
//! - [`ingest`]: takes the commands waiting (up to `max_batch`), commits them in
//!   one transaction through the hub, and only then acks them to the broker.
//! - [`publisher`]: drains the store's outbox in order (QoS 1), deletes a row
//!   only on its PUBACK, and republishes `online` and device state on every connect.

mod ingest;
mod link;
mod publisher;

use crate::config::Config;
use crate::hub::Hub;
use rumqttc::{AsyncClient, LastWill, MqttOptions, QoS};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Largest MQTT packet accepted from the broker. Bigger than any command we
/// accept (`mqtt.max_payload_bytes`), so an oversized command still reaches
/// the ingest and gets its answer instead of breaking the connection.
const MAX_PACKET: usize = 4 * 1024 * 1024;

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
}

impl LinkState {
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
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

fn options(cfg: &Config, topics: &Topics) -> Result<MqttOptions, MqttError> {
    let m = &cfg.mqtt;
    let client_id = m
        .client_id
        .clone()
        .unwrap_or_else(|| format!("lockhub-{}", cfg.hub_id));
    let mut o = MqttOptions::new(client_id, m.host.clone(), m.port);
    o.set_keep_alive(Duration::from_secs(m.keep_alive_secs.max(5)));
    o.set_clean_session(false);
    o.set_manual_acks(true);
    o.set_max_packet_size(MAX_PACKET, MAX_PACKET);
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
    if m.tls.enabled {
        o.set_transport(rumqttc::Transport::tls_with_config(tls_config(cfg)?));
    }
    Ok(o)
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
    let opts = options(cfg, &topics)?;
    let (client, mut eventloop) = AsyncClient::new(opts, 256);
    let mut net = rumqttc::NetworkOptions::new();
    net.set_tcp_nodelay(true);
    net.set_connection_timeout(10);
    eventloop.set_network_options(net);
    let state = Arc::new(LinkState::default());
    let (cmd_tx, cmd_rx) = mpsc::channel(1024);
    let (pub_tx, pub_rx) = mpsc::unbounded_channel();
    let backoff = (
        Duration::from_millis(cfg.mqtt.reconnect_min_ms),
        Duration::from_millis(cfg.mqtt.reconnect_max_ms),
    );
    // The link outlives the other two: it must carry their last packets out.
    let link_stop = CancellationToken::new();
    tasks.spawn(link::run(
        eventloop,
        client.clone(),
        topics.clone(),
        state.clone(),
        cmd_tx,
        pub_tx,
        backoff,
        link_stop.clone(),
    ));
    tasks.spawn(ingest::run(
        client.clone(),
        hub.clone(),
        topics.clone(),
        cmd_rx,
        cfg.mqtt.max_batch,
        shutdown.clone(),
    ));
    tasks.spawn(publisher::run(
        client, hub, topics, pub_rx, shutdown, link_stop,
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
