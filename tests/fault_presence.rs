//! Presence after a restart: a lock's online state is what its driver knows
//! or what was last persisted, `unknown` until one of them speaks, and
//! `attempt_for_offline_device: false` refuses unknown locks as well as
//! offline ones.

mod support;

use async_trait::async_trait;
use lockhub::commands::Commands;
use lockhub::drivers::sim::SimDriver;
use lockhub::drivers::{DriverError, LockDriver, LockEvent, SlotCode, SlotOp};
use lockhub::engine::clock::{Clock, TokioClock};
use lockhub::engine::Engine;
use lockhub::model::{DeviceInfo, DriverKind};
use lockhub::settings::HubSettings;
use lockhub::store::Store;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::core::{base_time, keypad, spec, BACK, FRONT};
use tokio_util::sync::CancellationToken;

/// A radio that cannot tell whether a lock is there without asking it (like
/// Z-Wave before an answer), and whose locks may not answer at all.
struct Silent {
    sim: Arc<SimDriver>,
    answers: AtomicBool,
}

#[async_trait]
impl LockDriver for Silent {
    fn kind(&self) -> DriverKind {
        DriverKind::Sim
    }
    async fn devices(&self) -> Vec<DeviceInfo> {
        self.sim.devices().await
    }
    async fn read_slots(&self, id: &str) -> Result<Vec<SlotCode>, DriverError> {
        if !self.answers.load(Ordering::SeqCst) {
            return Err(DriverError::Timeout);
        }
        self.sim.read_slots(id).await
    }
    async fn apply(&self, id: &str, ops: &[SlotOp]) -> Vec<Result<(), DriverError>> {
        if !self.answers.load(Ordering::SeqCst) {
            return ops.iter().map(|_| Err(DriverError::Timeout)).collect();
        }
        self.sim.apply(id, ops).await
    }
}

struct Core {
    commands: Commands,
    shutdown: CancellationToken,
    engine: Arc<Engine>,
}

async fn start(store: Arc<Store>, driver: Arc<dyn LockDriver>, sim: &SimDriver) -> Core {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<LockEvent>();
    sim.set_sink(tx);
    let clock: Arc<dyn Clock> = Arc::new(TokioClock::starting_at(base_time()));
    let shutdown = CancellationToken::new();
    let engine = Engine::new(
        store.clone(),
        clock,
        HubSettings::default(),
        shutdown.clone(),
    );
    engine.start(rx).unwrap();
    engine.add_driver(driver).await.unwrap();
    let commands = Commands::new(
        store,
        engine.clock(),
        HubSettings::default(),
        engine.waker(),
    );
    Core {
        commands,
        shutdown,
        engine,
    }
}

impl Core {
    fn cmd(&self, command: &str, mut body: Value) -> Value {
        if body.get("request_id").is_none() {
            body["request_id"] = json!(uuid::Uuid::new_v4().to_string());
        }
        self.commands
            .execute(command, &serde_json::to_vec(&body).unwrap())
            .body
    }
    fn online(&self, id: &str) -> Value {
        self.cmd("devices/get", json!({"device_id": id}))["device"]["online"].clone()
    }
    fn strict_create(&self, rid: &str, id: &str) -> Value {
        self.cmd(
            "access_codes/create_multiple",
            json!({"request_id": rid, "device_ids": [id], "attempt_for_offline_device": false}),
        )
    }
    async fn stop(self) {
        self.shutdown.cancel();
        self.engine.stopped().await;
    }
}

#[tokio::test(start_paused = true)]
async fn the_simulated_locks_state_is_known_at_once() {
    let mut back = spec(BACK, "Back", keypad(&[4], 30));
    back.online = false;
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let sim = Arc::new(SimDriver::new(
        vec![spec(FRONT, "Front", keypad(&[4], 30)), back],
        Some(tx),
    ));
    let store = Arc::new(Store::open_in_memory().unwrap());
    let core = start(store, sim.clone(), &sim).await;
    assert_eq!(core.online(FRONT), json!(true));
    assert_eq!(core.online(BACK), json!(false));
    let r = core.strict_create("s1", BACK);
    assert_eq!(r["error"]["type"], "device_offline", "{r}");
    assert_eq!(core.strict_create("s2", FRONT)["ok"], true);
    core.stop().await;
}

#[test]
fn unknown_until_the_lock_answers_and_persisted_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("lockhub.db");
    let sim = Arc::new(SimDriver::new(
        vec![spec(FRONT, "Front", keypad(&[4], 30))],
        None,
    ));
    let silent = Arc::new(Silent {
        sim: sim.clone(),
        answers: AtomicBool::new(false),
    });
    let rt = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap()
    };
    rt().block_on(async {
        let core = start(Arc::new(Store::open(&db).unwrap()), silent.clone(), &sim).await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        // The lock never answered: nobody knows whether it is there.
        assert_eq!(core.online(FRONT), Value::Null);
        let r = core.strict_create("u1", FRONT);
        assert_eq!(r["error"]["type"], "device_offline", "{r}");
        assert_eq!(
            core.cmd("access_codes/list", json!({"device_id": FRONT}))["access_codes"],
            json!([]),
            "nothing created"
        );
        // It answers: online, and a strict create is accepted.
        silent.answers.store(true, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(core.online(FRONT), json!(true));
        assert_eq!(core.strict_create("u2", FRONT)["ok"], true);
        // Then it goes away (an operation says so).
        sim.set_online(FRONT, false);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(core.online(FRONT), json!(false));
        core.stop().await;
    });
    // After a restart, with a driver that cannot tell, the persisted state holds.
    silent.answers.store(false, Ordering::SeqCst);
    rt().block_on(async {
        let core = start(Arc::new(Store::open(&db).unwrap()), silent.clone(), &sim).await;
        assert_eq!(core.online(FRONT), json!(false));
        let r = core.strict_create("u3", FRONT);
        assert_eq!(r["error"]["type"], "device_offline", "{r}");
        core.stop().await;
    });
}
