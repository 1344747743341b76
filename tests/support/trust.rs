//! Parts of the trust tests: an MQTT 5 "cloud" (Response Topic, Correlation
//! Data, large publishes through Mosquitto's own client), config drop-ins.
#![allow(dead_code)]

use rumqttc::v5::mqttbytes::v5::{Filter, Packet, PublishProperties};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use serde_json::Value;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One publish received: topic, payload, Correlation Data.
#[derive(Debug, Clone)]
pub struct Got {
    pub topic: String,
    pub payload: Vec<u8>,
    pub correlation: Option<Vec<u8>>,
}

/// A cloud speaking MQTT 5, recording everything under the filters it was given.
#[derive(Clone)]
pub struct Cloud5 {
    pub client: AsyncClient,
    pub base: String,
    pub seen: Arc<Mutex<Vec<Got>>>,
}

impl Cloud5 {
    pub async fn connect(port: u16, base: &str, id: &str, filters: &[&str]) -> Cloud5 {
        let mut o = MqttOptions::new(id, "127.0.0.1", port);
        o.set_keep_alive(Duration::from_secs(5));
        o.set_max_packet_size(Some(16 * 1024 * 1024));
        let (client, mut el) = AsyncClient::new(o, 1024);
        let seen: Arc<Mutex<Vec<Got>>> = Arc::default();
        let s = seen.clone();
        let c = client.clone();
        let filters: Vec<String> = filters.iter().map(|f| f.to_string()).collect();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let mut ready_tx = Some(ready_tx);
        tokio::spawn(async move {
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let c = c.clone();
                        let fs: Vec<Filter> = filters
                            .iter()
                            .map(|f| Filter::new(f.clone(), QoS::AtLeastOnce))
                            .collect();
                        tokio::spawn(async move { c.subscribe_many(fs).await });
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        if let Some(t) = ready_tx.take() {
                            let _ = t.send(());
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => s.lock().unwrap().push(Got {
                        topic: String::from_utf8_lossy(&p.topic).into_owned(),
                        payload: p.payload.to_vec(),
                        correlation: p
                            .properties
                            .and_then(|p| p.correlation_data)
                            .map(|c| c.to_vec()),
                    }),
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
        let _ = tokio::time::timeout(Duration::from_secs(10), ready_rx).await;
        Cloud5 {
            client,
            base: base.to_owned(),
            seen,
        }
    }

    /// Publish a command, optionally naming a Response Topic and Correlation Data.
    pub async fn send(
        &self,
        command: &str,
        payload: Vec<u8>,
        response_topic: Option<&str>,
        correlation: Option<&[u8]>,
    ) {
        let props = PublishProperties {
            response_topic: response_topic.map(str::to_owned),
            correlation_data: correlation.map(|c| c.to_vec().into()),
            ..Default::default()
        };
        self.client
            .publish_with_properties(
                format!("{}/commands/{command}", self.base),
                QoS::AtLeastOnce,
                false,
                payload,
                props,
            )
            .await
            .unwrap();
    }

    pub fn on(&self, topic: &str) -> Vec<Got> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|g| g.topic == topic)
            .cloned()
            .collect()
    }

    pub fn json_on(&self, topic: &str) -> Vec<Value> {
        self.on(topic)
            .iter()
            .map(|g| serde_json::from_slice(&g.payload).unwrap_or(Value::Null))
            .collect()
    }
}

/// A drop-in for a test daemon's config (`lockhub.toml.d/NAME.toml`).
pub fn drop_in(config: &Path, name: &str, toml: &str) {
    let d = config.with_extension("toml.d");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join(format!("{name}.toml")), toml).unwrap();
}

/// Publish `bytes` bytes at QoS 1 on `topic` with Mosquitto's own client
/// (rumqttc refuses to build packets that large).
pub fn publish_big(port: u16, topic: &str, bytes: usize, dir: &Path) {
    let f = dir.join(format!("big-{bytes}"));
    std::fs::write(&f, vec![b'x'; bytes]).unwrap();
    let out = std::process::Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-q",
            "1",
            "-t",
            topic,
            "-f",
        ])
        .arg(&f)
        .output()
        .expect("mosquitto_pub (mosquitto-clients)");
    assert!(
        out.status.success(),
        "mosquitto_pub: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_file(f);
}

/// Lines of the daemon's log that contain `needle`.
pub fn count_lines(log: &str, needle: &str) -> usize {
    log.lines().filter(|l| l.contains(needle)).count()
}
