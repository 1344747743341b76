//! Restarts at the worst moment, at library level and deterministic: an
//! operation lands on the lock and lockhub dies before recording it. After the
//! restart nothing may be purged or decided until the lock has been read, and
//! a PIN lockhub sent must be recognised as its own (never a stranger's code),
//! even when the code was deleted or changed meanwhile.

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
use support::core::{base_time, keypad, spec, FRONT};
use tokio_util::sync::CancellationToken;

/// The simulated locks, except that once `hang` is set a batch is carried out
/// on the lock and its answer never comes back (lockhub "dies" right after).
struct Landing {
    sim: Arc<SimDriver>,
    hang: AtomicBool,
    /// Carry the batch out but answer "timeout" (a reply lost on the radio).
    lose_answer: AtomicBool,
}

#[async_trait]
impl LockDriver for Landing {
    fn kind(&self) -> DriverKind {
        DriverKind::Sim
    }
    async fn devices(&self) -> Vec<DeviceInfo> {
        self.sim.devices().await
    }
    async fn read_slots(&self, id: &str) -> Result<Vec<SlotCode>, DriverError> {
        self.sim.read_slots(id).await
    }
    async fn apply(&self, id: &str, ops: &[SlotOp]) -> Vec<Result<(), DriverError>> {
        let r = self.sim.apply(id, ops).await;
        if self.hang.load(Ordering::SeqCst) {
            futures::future::pending::<()>().await;
        }
        if self.lose_answer.swap(false, Ordering::SeqCst) {
            return r.iter().map(|_| Err(DriverError::Timeout)).collect();
        }
        r
    }
}

struct Core {
    store: Arc<Store>,
    commands: Commands,
    shutdown: CancellationToken,
    engine: Arc<Engine>,
}

async fn start(db: &std::path::Path, driver: Arc<Landing>) -> Core {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<LockEvent>();
    driver.sim.set_sink(tx);
    let store = Arc::new(Store::open(db).unwrap());
    let clock: Arc<dyn Clock> = Arc::new(TokioClock::starting_at(base_time()));
    let shutdown = CancellationToken::new();
    let settings = HubSettings::default();
    let engine = Engine::new(
        store.clone(),
        clock.clone(),
        settings.clone(),
        shutdown.clone(),
    );
    engine.start(rx).unwrap();
    engine.add_driver(driver).await.unwrap();
    let commands = Commands::new(store.clone(), clock, settings, engine.waker());
    Core {
        store,
        commands,
        shutdown,
        engine,
    }
}

impl Core {
    fn cmd(&self, command: &str, body: Value) -> Value {
        self.commands
            .execute(command, &serde_json::to_vec(&body).unwrap())
            .body
    }
    fn events(&self) -> Vec<Value> {
        self.store
            .outbox_peek(0, 1_000_000)
            .unwrap()
            .into_iter()
            .filter(|r| r.topic == "events")
            .map(|r| serde_json::from_slice(&r.payload).unwrap())
            .collect()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap()
}

fn pins_on(sim: &SimDriver) -> Vec<String> {
    sim.state(FRONT)
        .unwrap()
        .slots
        .values()
        .map(|c| c.code.expose().to_owned())
        .collect()
}

/// Phase 1: create a code, let its set land on the lock with the answer lost,
/// then run `meanwhile` (commands committed while the engine is stuck) and
/// "die" (the runtime is dropped). Phase 2: restart on the same file and locks.
fn landed_then_restart(
    meanwhile: impl FnOnce(&Core, &str),
    check: impl FnOnce(&Core, &SimDriver, &str),
) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("lockhub.db");
    let sim = Arc::new(SimDriver::new(
        vec![spec(FRONT, "Front", keypad(&[4], 30))],
        None,
    ));
    let driver = Arc::new(Landing {
        sim: sim.clone(),
        hang: AtomicBool::new(true),
        lose_answer: AtomicBool::new(false),
    });
    let id = runtime().block_on(async {
        let core = start(&db, driver.clone()).await;
        let r = core.cmd(
            "access_codes/create_multiple",
            json!({"request_id": "c1", "device_ids": [FRONT], "name": "Guest"}),
        );
        assert_eq!(r["ok"], true, "{r}");
        let id = r["access_codes"][0]["access_code_id"]
            .as_str()
            .unwrap()
            .to_owned();
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(pins_on(&sim).len(), 1, "the set landed on the lock");
        meanwhile(&core, &id);
        id
        // dropped here: the answer of the batch is never recorded
    });
    driver.hang.store(false, Ordering::SeqCst);
    runtime().block_on(async {
        let core = start(&db, driver.clone()).await;
        tokio::time::sleep(Duration::from_secs(120)).await;
        check(&core, &sim, &id);
        core.shutdown.cancel();
        core.engine.stopped().await;
    });
}

fn no_unmanaged(core: &Core) {
    let strangers: Vec<Value> = core
        .events()
        .into_iter()
        .filter(|e| {
            e["event_type"]
                .as_str()
                .unwrap()
                .starts_with("access_code.unmanaged")
        })
        .collect();
    assert!(
        strangers.is_empty(),
        "lockhub's own PIN filed as a stranger's: {strangers:?}"
    );
}

#[test]
fn deleted_while_its_set_was_landing_leaves_the_lock() {
    landed_then_restart(
        |core, id| {
            let r = core.cmd(
                "access_codes/delete",
                json!({"request_id": "d1", "access_code_id": id}),
            );
            assert_eq!(r["ok"], true, "{r}");
        },
        |core, sim, id| {
            assert_eq!(
                pins_on(sim),
                Vec::<String>::new(),
                "the deleted code left the lock"
            );
            let r = core.cmd(
                "access_codes/get",
                json!({"request_id": "g", "access_code_id": id}),
            );
            assert_eq!(r["error"]["type"], "access_code_not_found", "{r}");
            no_unmanaged(core);
        },
    );
}

#[test]
fn pin_changed_while_its_set_was_landing_is_replaced_not_kept() {
    landed_then_restart(
        |core, id| {
            let r = core.cmd(
                "access_codes/update",
                json!({"request_id": "u1", "access_code_id": id, "code": "8642"}),
            );
            assert_eq!(r["ok"], true, "{r}");
        },
        |core, sim, id| {
            assert_eq!(pins_on(sim), vec!["8642".to_string()], "only the new PIN");
            no_unmanaged(core);
            // Deleting it now takes the lock back to empty.
            let r = core.cmd(
                "access_codes/delete",
                json!({"request_id": "d2", "access_code_id": id}),
            );
            assert_eq!(r["ok"], true, "{r}");
        },
    );
}

#[test]
fn nothing_changed_meanwhile_is_not_applied_twice() {
    landed_then_restart(
        |_, _| {},
        |core, sim, id| {
            let st = sim.state(FRONT).unwrap();
            assert_eq!(
                st.applied.len(),
                1,
                "the landed set was recognised: {:?}",
                st.applied
            );
            let r = core.cmd(
                "access_codes/get",
                json!({"request_id": "g", "access_code_id": id}),
            );
            assert_eq!(r["access_code"]["status"], "set", "{r}");
            no_unmanaged(core);
        },
    );
}

#[test]
fn a_set_whose_answer_was_lost_is_taken_off_when_the_code_is_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Arc::new(SimDriver::new(
        vec![spec(FRONT, "Front", keypad(&[4], 30))],
        None,
    ));
    let driver = Arc::new(Landing {
        sim: sim.clone(),
        hang: AtomicBool::new(false),
        lose_answer: AtomicBool::new(true),
    });
    runtime().block_on(async {
        let core = start(&dir.path().join("lockhub.db"), driver.clone()).await;
        let r = core.cmd(
            "access_codes/create_multiple",
            json!({"request_id": "c1", "device_ids": [FRONT], "name": "Guest"}),
        );
        let id = r["access_codes"][0]["access_code_id"]
            .as_str()
            .unwrap()
            .to_owned();
        // The set lands, its answer is lost: lockhub backs off (2 s) before retrying.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(pins_on(&sim).len(), 1);
        let r = core.cmd(
            "access_codes/delete",
            json!({"request_id": "d1", "access_code_id": id}),
        );
        assert_eq!(r["ok"], true, "{r}");
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(pins_on(&sim), Vec::<String>::new(), "the PIN left the lock");
        no_unmanaged(&core);
        core.shutdown.cancel();
        core.engine.stopped().await;
    });
}
