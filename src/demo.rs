//! `lockhub demo`: the main job on embedded defaults, with nothing installed.
//! An embedded MQTT broker on a free loopback port, two simulated locks (the
//! seed's front and back door), the daemon, and a "cloud" client that sends the
//! seed's `create_multiple`, shows each lock's progress as it fans out, then
//! sends a late checkout with `update_multiple` and shows the codes leave.

use crate::config::Config;
use crate::daemon;
use anyhow::{bail, Context};
use chrono::Utc;
use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Start rumqttd on 127.0.0.1:`port` in its own thread.
fn embedded_broker(port: u16) -> anyhow::Result<()> {
    let server = rumqttd::ServerSettings {
        name: "demo".into(),
        listen: ([127, 0, 0, 1], port).into(),
        tls: None,
        next_connection_delay_ms: 1,
        connections: rumqttd::ConnectionSettings {
            connection_timeout_ms: 60_000,
            max_payload_size: 1024 * 1024,
            max_inflight_count: 100,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        },
    };
    let config = rumqttd::Config {
        id: 0,
        router: rumqttd::RouterConfig {
            max_connections: 16,
            max_outgoing_packet_count: 200,
            max_segment_size: 10 * 1024 * 1024,
            max_segment_count: 10,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        },
        v4: Some([("demo".to_string(), server)].into_iter().collect()),
        v5: None,
        ws: None,
        cluster: None,
        console: None,
        bridge: None,
        prometheus: None,
        metrics: None,
    };
    std::thread::Builder::new()
        .name("demo-broker".into())
        .spawn(move || {
            let mut broker = rumqttd::Broker::new(config);
            if let Err(e) = broker.start() {
                eprintln!("embedded broker stopped: {e}");
            }
        })?;
    Ok(())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

struct Screen {
    t0: Instant,
    names: HashMap<String, String>,
}

impl Screen {
    fn say(&self, what: impl AsRef<str>) {
        println!(
            "[{:>5.1}s] {}",
            self.t0.elapsed().as_secs_f64(),
            what.as_ref()
        );
    }
    fn lock(&self, id: &str) -> String {
        self.names.get(id).cloned().unwrap_or_else(|| id.to_owned())
    }
}

pub async fn run() -> anyhow::Result<()> {
    let port = free_port()?;
    embedded_broker(port)?;
    // Clients retry until the broker listens.
    let dir = std::env::temp_dir().join(format!("lockhub-demo-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    let mut cfg = Config::embedded_demo();
    cfg.mqtt.port = port;
    cfg.store.path = dir.join("lockhub.db");
    cfg.socket.path = dir.join("lockhub.sock");
    let result = demo(&cfg).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn demo(cfg: &Config) -> anyhow::Result<()> {
    let screen = Screen {
        t0: Instant::now(),
        names: cfg
            .sim
            .locks
            .iter()
            .map(|l| (l.device_id.clone(), l.name.clone()))
            .collect(),
    };
    println!(
        "lockhub demo: embedded MQTT broker on 127.0.0.1:{}, {} simulated locks, store {}",
        cfg.mqtt.port,
        cfg.sim.locks.len(),
        cfg.store.path.display()
    );
    let shutdown = CancellationToken::new();
    let running = daemon::start(cfg, shutdown.clone()).await?;

    // The cloud's side.
    let base = format!("{}/{}", cfg.mqtt.prefix, cfg.hub_id);
    let mut o = MqttOptions::new("demo-cloud", "127.0.0.1", cfg.mqtt.port);
    o.set_keep_alive(Duration::from_secs(30));
    let (cloud, mut el) = AsyncClient::new(o, 64);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, Value)>();
    tokio::spawn(async move {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Incoming::Publish(p))) => {
                    let v = serde_json::from_slice(&p.payload).unwrap_or(Value::Null);
                    if tx.send((p.topic.clone(), v)).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    cloud
        .subscribe(format!("{base}/#"), QoS::AtLeastOnce)
        .await?;

    let starts = Utc::now() + chrono::Duration::seconds(4);
    let ends = starts + chrono::Duration::seconds(6);
    let ids: Vec<&str> = cfg.sim.locks.iter().map(|l| l.device_id.as_str()).collect();
    let create = json!({
        "request_id": "demo-create", "device_ids": ids, "name": "Jane's reservation",
        "starts_at": starts.to_rfc3339(), "ends_at": ends.to_rfc3339(), "preferred_code_length": 4,
    });
    screen.say(format!("cloud -> {base}/commands/access_codes/create_multiple (front + back door, check-in in 4 s, check-out 6 s later)"));
    cloud
        .publish(
            format!("{base}/commands/access_codes/create_multiple"),
            QoS::AtLeastOnce,
            false,
            serde_json::to_vec(&create)?,
        )
        .await?;

    let mut key = None;
    let mut late_sent = false;
    let mut removed = 0;
    let mut status: HashMap<String, String> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while removed < ids.len() {
        let Ok(Some((topic, v))) = tokio::time::timeout_at(deadline.into(), rx.recv()).await else {
            bail!("the demo did not finish in time");
        };
        let rel = topic
            .strip_prefix(&base)
            .unwrap_or(&topic)
            .trim_start_matches('/');
        if rel == "responses/demo-create" {
            if v["ok"] != true {
                bail!("create_multiple failed: {v}");
            }
            let codes = v["access_codes"].as_array().context("access_codes")?;
            key = codes[0]["common_code_key"].as_str().map(str::to_owned);
            let pin = codes[0]["code"].as_str().unwrap_or("");
            screen.say(format!(
                "lockhub -> response ok: {} codes, one {}-digit PIN (shown masked: {}), common_code_key {}",
                codes.len(),
                pin.len(),
                "*".repeat(pin.len()),
                key.as_deref().unwrap_or("-")
            ));
        } else if rel == "responses/demo-late" {
            screen.say(format!("lockhub -> response: ok = {}", v["ok"]));
        } else if rel == "events" {
            let et = v["event_type"].as_str().unwrap_or("?");
            let dev = v["device_id"]
                .as_str()
                .map(|d| screen.lock(d))
                .unwrap_or_default();
            screen.say(format!("event  {dev:<10} {et}"));
            if et == "access_code.removed_from_device" {
                removed += 1;
            }
        } else if let Some(code_id) = rel.strip_prefix("access_codes/") {
            let s = v["status"].as_str().unwrap_or("").to_owned();
            if !s.is_empty() && status.get(code_id) != Some(&s) {
                let dev = v["device_id"]
                    .as_str()
                    .map(|d| screen.lock(d))
                    .unwrap_or_default();
                screen.say(format!(
                    "state  {dev:<10} status {s}{}",
                    if v["pending_mutations"]
                        .as_array()
                        .is_some_and(|m| !m.is_empty())
                    {
                        format!(
                            " (pending: {})",
                            v["pending_mutations"][0]["mutation_code"]
                                .as_str()
                                .unwrap_or("")
                        )
                    } else {
                        String::new()
                    }
                ));
                status.insert(code_id.to_owned(), s);
            }
        } else if rel == "status" {
            screen.say(format!("hub    {}", v["state"].as_str().unwrap_or("?")));
        }
        // Once both locks are set and the window is open: the guest asks for a late checkout.
        if !late_sent && status.len() == ids.len() && status.values().all(|s| s == "set") {
            if let Some(k) = &key {
                let late = ends + chrono::Duration::seconds(4);
                let body = json!({"request_id": "demo-late", "common_code_key": k, "ends_at": late.to_rfc3339()});
                screen.say("cloud -> access_codes/update_multiple (late checkout: 4 s more)");
                cloud
                    .publish(
                        format!("{base}/commands/access_codes/update_multiple"),
                        QoS::AtLeastOnce,
                        false,
                        serde_json::to_vec(&body)?,
                    )
                    .await?;
                late_sent = true;
            }
        }
    }
    let final_state: Vec<String> = running
        .sim
        .as_ref()
        .map(|s| {
            ids.iter()
                .map(|d| {
                    format!(
                        "{}: {} code(s)",
                        screen.lock(d),
                        s.state(d).map(|x| x.slots.len()).unwrap_or(0)
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    screen.say(format!(
        "done: the codes left both locks at the new check-out ({})",
        final_state.join(", ")
    ));
    shutdown.cancel();
    running.stop().await;
    Ok(())
}
