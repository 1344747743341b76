//! The hub: store, engine, commands and drivers wired together, and the
//! read-only views the local socket and the MQTT publisher need. The daemon
//! holds one `Hub`; tests and the demo build one the same way.

use crate::commands::{device_json, Commands, Reply, Request};
use crate::drivers::{LockDriver, LockEvent};
use crate::engine::clock::Clock;
use crate::engine::Engine;
use crate::model::access_code::ts;
use crate::settings::HubSettings;
use crate::store::{OutboxRow, Store, StoreError};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub struct Hub {
    pub store: Arc<Store>,
    pub engine: Arc<Engine>,
    pub commands: Commands,
    pub started_at: chrono::DateTime<chrono::Utc>,
    events: std::sync::Mutex<Option<mpsc::UnboundedSender<LockEvent>>>,
    commands_ok: AtomicU64,
    commands_refused: AtomicU64,
    /// Commands the MQTT ingest holds uncommitted (the store cannot be written).
    pub held: HeldCommands,
    /// Whether each configured radio has its hardware (for health).
    pub radios: Radios,
}

/// Commands received and not yet committed because the store cannot be
/// written: how many, and the store's error (for health and the watchdog).
#[derive(Debug, Default)]
pub struct HeldCommands(std::sync::Mutex<Option<(usize, String)>>);

impl HeldCommands {
    pub fn set(&self, count: usize, why: &str) {
        *self.0.lock().unwrap() = (count > 0).then(|| (count, why.to_owned()));
    }

    pub fn clear(&self) {
        self.0.lock().unwrap().take();
    }

    /// `(count, the store's error)` while any are held.
    pub fn get(&self) -> Option<(usize, String)> {
        self.0.lock().unwrap().clone()
    }

    /// Why the hub is degraded by them, if it is.
    pub fn problem(&self) -> Option<String> {
        self.get().map(|(n, why)| {
            format!("{n} commands held uncommitted (the store cannot be written: {why})")
        })
    }
}

/// Each configured radio's hold on its hardware, as the daemon and the
/// drivers see it: a Z-Wave controller missing or its port lost, a Bluetooth
/// adapter absent or bluetoothd gone. Its locks are offline meanwhile; health
/// says why, so an integrator's monitoring sees the hub, not the locks, is
/// the problem.
#[derive(Debug, Default)]
pub struct Radios(std::sync::Mutex<std::collections::BTreeMap<&'static str, RadioState>>);

#[derive(Debug, Clone)]
struct RadioState {
    /// `None` while the hardware answers; else what is missing.
    missing: Option<String>,
    since: chrono::DateTime<chrono::Utc>,
}

impl Radios {
    /// `radio` ("zwave", "ble") has its hardware.
    pub fn up(&self, radio: &'static str) {
        self.set(radio, None);
    }

    /// `radio` lacks its hardware, and `why`.
    pub fn down(&self, radio: &'static str, why: &str) {
        self.set(radio, Some(why.to_owned()));
    }

    fn set(&self, radio: &'static str, missing: Option<String>) {
        let mut all = self.0.lock().unwrap();
        if all.get(radio).is_some_and(|s| s.missing == missing) {
            return;
        }
        all.insert(
            radio,
            RadioState {
                missing,
                since: chrono::Utc::now(),
            },
        );
    }

    /// Health's `radios`: `{"zwave": {"status": "ok" | "missing", "since",
    /// "problem"}}`, and whether every radio is up.
    pub fn json(&self) -> (Value, bool) {
        let all = self.0.lock().unwrap();
        let mut out = serde_json::Map::new();
        for (name, s) in all.iter() {
            let mut r = json!({
                "status": if s.missing.is_some() { "missing" } else { "ok" },
                "since": ts(s.since),
            });
            if let Some(why) = &s.missing {
                r["problem"] = json!(why);
            }
            out.insert((*name).to_owned(), r);
        }
        (
            Value::Object(out),
            all.values().all(|s| s.missing.is_none()),
        )
    }
}

impl Hub {
    /// Open the store and start the engine (no drivers yet: add them with
    /// [`Hub::add_driver`], giving each the sink from [`Hub::event_sink`]).
    pub fn start(
        store: Arc<Store>,
        clock: Arc<dyn Clock>,
        settings: HubSettings,
        shutdown: CancellationToken,
    ) -> Result<Arc<Hub>, StoreError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let engine = Engine::new(store.clone(), clock.clone(), settings.clone(), shutdown);
        engine.start(rx)?;
        let commands = Commands::new(store.clone(), engine.clock(), settings, engine.waker());
        Ok(Arc::new(Hub {
            store,
            engine,
            commands,
            started_at: clock.now(),
            events: std::sync::Mutex::new(Some(tx)),
            commands_ok: AtomicU64::new(0),
            commands_refused: AtomicU64::new(0),
            held: HeldCommands::default(),
            radios: Radios::default(),
        }))
    }

    /// Where drivers send what their locks report.
    pub fn event_sink(&self) -> crate::drivers::EventSink {
        self.events
            .lock()
            .unwrap()
            .clone()
            .expect("event sink taken only at shutdown")
    }

    pub async fn add_driver(&self, driver: Arc<dyn LockDriver>) -> Result<(), StoreError> {
        self.engine.add_driver(driver).await
    }

    /// Commands (a group commit when several are given); answers in order.
    pub fn handle(&self, batch: &[(&str, &[u8])]) -> Vec<Reply> {
        let requests: Vec<Request<'_>> = batch.iter().map(|(c, p)| Request::new(c, p)).collect();
        self.handle_requests(&requests)
    }

    /// [`Hub::handle`] with what the transport knows of each command.
    pub fn handle_requests(&self, batch: &[Request<'_>]) -> Vec<Reply> {
        let replies = self.commands.execute_requests(batch);
        for r in &replies {
            let c = if r.body["ok"] == true {
                &self.commands_ok
            } else {
                &self.commands_refused
            };
            c.fetch_add(1, Ordering::Relaxed);
        }
        replies
    }

    pub fn outbox_peek_lane(
        &self,
        lane: u8,
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        self.store.outbox_peek_lane(lane, after_id, limit)
    }

    /// See [`Store::outbox_written`]: right after an outbox read.
    pub fn outbox_written(&self) -> u64 {
        self.store.outbox_written()
    }

    /// See [`Store::outbox_durable`].
    pub async fn outbox_durable(&self, seq: u64) {
        self.store.outbox_durable(seq).await
    }

    pub fn outbox_remove(&self, ids: &[i64]) -> Result<(), StoreError> {
        self.store.outbox_remove(ids)
    }

    pub async fn outbox_changed(&self) {
        self.store.outbox_changed().await
    }

    /// Retained device state (and each lock's last code used), republished on
    /// every (re)connect.
    pub fn retained_state(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.store.read(|tx| {
            let mut state = Vec::new();
            for d in tx.devices()? {
                let id = &d.info.device_id;
                state.push((
                    format!("devices/{id}"),
                    serde_json::to_vec(&device_json(tx, &d)?)?,
                ));
                if let Some(last) = tx.last_code_used(id)? {
                    state.push((format!("last_code_used/{id}"), last.into_bytes()));
                }
            }
            Ok(state)
        })
    }

    /// Every live code's retained state, as the outbox last queued it (for a
    /// broker that lost its retained messages).
    pub fn retained_codes(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let now = self.commands.clock.now();
        let settings = &self.commands.settings;
        self.store.read(|tx| {
            tx.all_codes()?
                .iter()
                .map(|c| {
                    let body =
                        crate::commands::code_json(tx, c, now, settings, settings.publish_codes)?;
                    Ok((
                        format!("access_codes/{}", c.access_code_id),
                        serde_json::to_vec(&body)?,
                    ))
                })
                .collect()
        })
    }

    pub fn devices_json(&self) -> Result<Value, StoreError> {
        self.store.read(|tx| {
            let v = tx
                .devices()?
                .iter()
                .map(|d| device_json(tx, d))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(json!({ "devices": v }))
        })
    }

    /// Every live code; PINs masked unless `reveal`.
    pub fn codes_json(&self, reveal: bool) -> Result<Value, StoreError> {
        let now = self.commands.clock.now();
        let settings = &self.commands.settings;
        self.store.read(|tx| {
            let v = tx
                .all_codes()?
                .iter()
                .map(|c| crate::commands::code_json(tx, c, now, settings, reveal))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(json!({ "access_codes": v }))
        })
    }

    pub fn queue_json(&self) -> Result<Value, StoreError> {
        Ok(json!({ "pending_operations": self.engine.queue()? }))
    }

    /// Health: store, locks, queue depth, last error. `broker_connected` is the
    /// MQTT link as the caller knows it (`None`: no broker configured).
    pub fn health(&self, broker_connected: Option<bool>) -> Value {
        let store = self.store.read(|tx| Ok((tx.devices()?, tx.count_codes()?)));
        let queue = self.engine.queue().map(|q| q.len());
        let (store_ok, devices, codes, last_error) = match store {
            Ok((d, c)) => {
                let last = d.iter().find_map(|d| {
                    d.last_error
                        .clone()
                        .map(|e| json!({"device_id": d.info.device_id, "error": e}))
                });
                (true, d, c, last)
            }
            Err(e) => (false, Vec::new(), 0, Some(json!({"error": e.to_string()}))),
        };
        let online = devices.iter().filter(|d| d.online).count();
        let unknown = devices.iter().filter(|d| !d.presence_known).count();
        let heartbeat = self.engine.heartbeat_age();
        let watchdog = self.engine.watchdog_problem.lock().unwrap().clone();
        let held = self.held.get();
        let store_trouble = self
            .engine
            .store_trouble
            .lock()
            .unwrap()
            .clone()
            .or_else(|| held.as_ref().map(|(_, why)| why.clone()));
        let (radios, radios_up) = self.radios.json();
        json!({
            "status": if store_ok && heartbeat.as_secs() < 60 && self.engine.trust.is_trusted() && watchdog.is_none() && store_trouble.is_none() && radios_up { "ok" } else { "degraded" },
            "commands_held": held.map_or(0, |(n, _)| n),
            "watchdog": watchdog.unwrap_or_else(|| "ok".into()),
            "clock": if self.engine.trust.is_trusted() { "trusted" } else { "clock_untrusted" },
            "version": env!("CARGO_PKG_VERSION"),
            "started_at": ts(self.started_at),
            "radios": radios,
            "broker": match broker_connected { None => "none", Some(true) => "connected", Some(false) => "disconnected" },
            "store": match (store_ok, &store_trouble) { (true, None) => "ok".to_owned(), (true, Some(e)) => format!("error: {e}"), (false, _) => "error".to_owned() },
            "engine_heartbeat_age_ms": heartbeat.as_millis() as u64,
            "locks": { "online": online, "offline": devices.len() - online - unknown, "unknown": unknown },
            "access_codes": codes,
            "queue_depth": queue.unwrap_or(0),
            "outbox_depth": self.store.outbox_len().unwrap_or(0),
            "last_error": last_error,
        })
    }

    /// Prometheus text exposition.
    pub fn metrics_text(&self) -> String {
        let s = &self.engine.stats;
        let (online, offline, codes) = self
            .store
            .read(|tx| {
                let d = tx.devices()?;
                let on = d.iter().filter(|d| d.online).count();
                Ok((on, d.len() - on, tx.count_codes()?))
            })
            .unwrap_or((0, 0, 0));
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, value: String| {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
            ));
        };
        metric(
            "lockhub_commands_ok_total",
            "counter",
            "Commands answered ok.",
            self.commands_ok.load(Ordering::Relaxed).to_string(),
        );
        metric(
            "lockhub_commands_refused_total",
            "counter",
            "Commands answered with an error.",
            self.commands_refused.load(Ordering::Relaxed).to_string(),
        );
        metric(
            "lockhub_lock_operations_ok_total",
            "counter",
            "Slot operations a lock carried out.",
            s.ops_ok.load(Ordering::Relaxed).to_string(),
        );
        metric(
            "lockhub_lock_operations_retried_total",
            "counter",
            "Slot operations that failed transiently.",
            s.ops_transient.load(Ordering::Relaxed).to_string(),
        );
        metric(
            "lockhub_lock_operations_failed_total",
            "counter",
            "Slot operations a lock refused.",
            s.ops_failed.load(Ordering::Relaxed).to_string(),
        );
        metric(
            "lockhub_expired_removals_total",
            "counter",
            "Removals of codes past their ends_at.",
            s.removals.load(Ordering::Relaxed).to_string(),
        );
        metric(
            "lockhub_expired_removal_lag_seconds_sum",
            "counter",
            "Sum of delays between ends_at and the start of the removal.",
            format!(
                "{:.3}",
                s.removal_lag_ms_sum.load(Ordering::Relaxed) as f64 / 1000.0
            ),
        );
        metric(
            "lockhub_locks_online",
            "gauge",
            "Locks online.",
            online.to_string(),
        );
        metric(
            "lockhub_locks_offline",
            "gauge",
            "Locks offline.",
            offline.to_string(),
        );
        metric(
            "lockhub_access_codes",
            "gauge",
            "Access codes stored.",
            codes.to_string(),
        );
        metric(
            "lockhub_outbox_depth",
            "gauge",
            "Messages waiting for the broker.",
            self.store.outbox_len().unwrap_or(0).to_string(),
        );
        metric(
            "lockhub_store_commits_total",
            "counter",
            "Write transactions committed.",
            self.store.commits().to_string(),
        );
        metric(
            "lockhub_store_outbox_delete_commits_total",
            "counter",
            "Commits that deleted delivered outbox rows (not synced on their own).",
            self.store.removal_commits().to_string(),
        );
        metric(
            "lockhub_store_syncs_total",
            "counter",
            "fdatasyncs of the WAL (each makes every commit before it durable).",
            self.store.syncs().to_string(),
        );
        metric(
            "lockhub_engine_heartbeat_age_seconds",
            "gauge",
            "Age of the engine's last heartbeat.",
            format!("{:.3}", self.engine.heartbeat_age().as_secs_f64()),
        );
        out
    }

    /// Stop: drivers get no more events; wait for the engine's tasks.
    pub async fn stopped(&self) {
        self.events.lock().unwrap().take();
        self.engine.stopped().await;
    }
}
