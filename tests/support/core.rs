//! A hub core on simulated locks and paused time, for scenario tests.
#![allow(dead_code)]

use chrono::{DateTime, TimeZone, Utc};
use lockhub::commands::Commands;
use lockhub::drivers::sim::{SimDriver, SimLockSpec};
use lockhub::engine::clock::{Clock, TokioClock};
use lockhub::engine::Engine;
use lockhub::model::{Capabilities, CodeConstraint};
use lockhub::settings::HubSettings;
use lockhub::store::Store;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub const FRONT: &str = "8e94044d-a4d1-4691-9f7e-e97d3e8a0b73";
pub const BACK: &str = "d87eea5d-71c6-4633-a966-396c5ac51177";

pub fn base_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 11, 10, 12, 0, 0).unwrap()
}

pub fn keypad(lengths: &[u8], slots: u32) -> Capabilities {
    Capabilities {
        supported_code_lengths: lengths.to_vec(),
        code_constraints: vec![],
        max_active_codes_supported: slots,
        supports_native_scheduling: false,
        supports_backup_access_code_pool: false,
        can_program_online_access_codes: true,
        supports_remote_lock: false,
    }
}

pub fn nuki_like() -> Capabilities {
    Capabilities {
        supported_code_lengths: vec![6],
        code_constraints: vec![
            CodeConstraint::NoZeros,
            CodeConstraint::CannotStartWith12,
            CodeConstraint::NameLength {
                min_length: None,
                max_length: Some(20),
            },
        ],
        max_active_codes_supported: 100,
        supports_native_scheduling: true,
        supports_backup_access_code_pool: false,
        can_program_online_access_codes: true,
        // A Nuki takes Lock Action.
        supports_remote_lock: true,
    }
}

pub struct Hub {
    pub store: Arc<Store>,
    pub sim: Arc<SimDriver>,
    pub engine: Arc<Engine>,
    pub commands: Commands,
    pub clock: Arc<dyn Clock>,
    pub shutdown: CancellationToken,
    n: std::sync::atomic::AtomicU64,
    /// Request ids are this hub's own: a hub restarted on the same store
    /// never meets its predecessor's (`request_id_conflict`).
    tag: String,
}

impl Hub {
    pub async fn start(specs: Vec<SimLockSpec>) -> Hub {
        Self::start_with(
            Arc::new(Store::open_in_memory().unwrap()),
            specs,
            HubSettings::default(),
        )
        .await
    }

    pub async fn start_with(
        store: Arc<Store>,
        specs: Vec<SimLockSpec>,
        settings: HubSettings,
    ) -> Hub {
        Self::start_with_at(store, specs, settings, base_time()).await
    }

    /// As `start_with`, the (paused) clock starting at `base`.
    pub async fn start_with_at(
        store: Arc<Store>,
        specs: Vec<SimLockSpec>,
        settings: HubSettings,
        base: DateTime<Utc>,
    ) -> Hub {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let sim = Arc::new(SimDriver::new(specs, Some(tx)));
        Self::start_on_at(store, sim, rx, settings, base).await
    }

    pub async fn start_on(
        store: Arc<Store>,
        sim: Arc<SimDriver>,
        rx: tokio::sync::mpsc::UnboundedReceiver<lockhub::drivers::LockEvent>,
        settings: HubSettings,
    ) -> Hub {
        Self::start_on_at(store, sim, rx, settings, base_time()).await
    }

    async fn start_on_at(
        store: Arc<Store>,
        sim: Arc<SimDriver>,
        rx: tokio::sync::mpsc::UnboundedReceiver<lockhub::drivers::LockEvent>,
        settings: HubSettings,
        base: DateTime<Utc>,
    ) -> Hub {
        let clock: Arc<dyn Clock> = Arc::new(TokioClock::starting_at(base));
        let shutdown = CancellationToken::new();
        let engine = Engine::new(
            store.clone(),
            clock.clone(),
            settings.clone(),
            shutdown.clone(),
        );
        engine.start(rx).unwrap();
        engine.add_driver(sim.clone()).await.unwrap();
        let commands = Commands::new(store.clone(), clock.clone(), settings, engine.waker());
        Hub {
            store,
            sim,
            engine,
            commands,
            clock,
            shutdown,
            n: Default::default(),
            tag: uuid::Uuid::new_v4().simple().to_string()[..8].to_owned(),
        }
    }

    /// Run a command with a fresh request_id; returns the response body.
    pub fn cmd(&self, command: &str, mut body: Value) -> Value {
        let n = self.n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if body.get("request_id").is_none() {
            body["request_id"] = json!(format!("r-{}-{n}", self.tag));
        }
        self.commands
            .execute(command, &serde_json::to_vec(&body).unwrap())
            .body
    }

    /// The answer published on `responses/{request_id}`, if any yet (a lock
    /// action's comes once the lock confirmed).
    pub fn answer(&self, request_id: &str) -> Option<Value> {
        let topic = format!("responses/{request_id}");
        self.store
            .outbox_peek(0, 1_000_000)
            .unwrap()
            .into_iter()
            .rfind(|r| r.topic == topic)
            .map(|r| serde_json::from_slice(&r.payload).unwrap())
    }

    /// Let the engine work for `d` of (paused) time.
    pub async fn run_for(&self, d: Duration) {
        tokio::time::sleep(d).await;
    }

    pub fn code_on(&self, device: &str, slot: u32) -> Option<String> {
        self.sim
            .state(device)
            .unwrap()
            .slots
            .get(&slot)
            .map(|c| c.code.expose().to_owned())
    }

    pub fn slots(&self, device: &str) -> Vec<(u32, String)> {
        self.sim
            .state(device)
            .unwrap()
            .slots
            .values()
            .map(|c| (c.slot, c.code.expose().to_owned()))
            .collect()
    }

    pub fn get(&self, id: &str) -> Value {
        let r = self.cmd("access_codes/get", json!({"access_code_id": id}));
        assert_eq!(r["ok"], true, "{r}");
        r["access_code"].clone()
    }

    /// Every event published so far, as JSON, in order.
    pub fn events(&self) -> Vec<Value> {
        self.store
            .outbox_peek(0, 1_000_000)
            .unwrap()
            .into_iter()
            .filter(|r| r.topic == "events")
            .map(|r| serde_json::from_slice(&r.payload).unwrap())
            .collect()
    }

    pub fn event_types_for(&self, access_code_id: &str) -> Vec<String> {
        self.events()
            .iter()
            .filter(|e| e["access_code_id"] == access_code_id)
            .map(|e| e["event_type"].as_str().unwrap().to_owned())
            .collect()
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        self.engine.stopped().await;
    }
}

pub fn spec(id: &str, name: &str, caps: Capabilities) -> SimLockSpec {
    SimLockSpec::new(id, name, caps)
}
