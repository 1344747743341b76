//! The engine: one level-triggered reconciler per lock.
//!
//! Each lock's task computes what should be on the lock now (from the store)
//! and what is known to be on it, carries out the operations that close the
//! gap through the lock's driver, and commits each batch's results with their
//! events and state in one transaction. Retries, restarts, superseding updates,
//! expiry and codes changed at the keypad are all the same diff.

pub mod backoff;
pub mod clock;
mod issued;
mod observe;
pub mod plan;
mod reconciler;
mod timed;

use crate::commands::device_json;
use crate::drivers::{LockDriver, LockEvent};
use crate::model::{DeviceInfo, DriverKind, Event};
use crate::settings::HubSettings;
use crate::store::{Store, StoreError, Tx};
use clock::Clock;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Most operations sent to one lock in one batch: keeps a removal that comes
/// due from waiting behind a long batch of sets.
pub const MAX_BATCH: usize = 8;

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct Stats {
    pub ops_ok: AtomicU64,
    pub ops_transient: AtomicU64,
    pub ops_failed: AtomicU64,
    pub passes: AtomicU64,
    pub removals: AtomicU64,
    /// Sum of (removal started - ends_at) in milliseconds, for expired codes.
    pub removal_lag_ms_sum: AtomicU64,
}

/// Per-lock state that lives only in memory.
struct LockHandle {
    wake: Notify,
    backoff: Mutex<LockBackoff>,
    /// Bumped whenever something other than the lock's own reconciler may have
    /// changed its codes or slots: the reconciler's cached copy is then stale.
    generation: std::sync::atomic::AtomicU64,
}

#[derive(Debug, Default, Clone, Copy)]
struct LockBackoff {
    failures: u32,
    until: Option<tokio::time::Instant>,
}

pub struct Engine {
    store: Arc<Store>,
    clock: Arc<dyn Clock>,
    settings: HubSettings,
    drivers: Mutex<HashMap<DriverKind, Arc<dyn LockDriver>>>,
    /// device_id -> the driver that serves it.
    routes: Mutex<HashMap<String, Arc<dyn LockDriver>>>,
    locks: Mutex<HashMap<String, Arc<LockHandle>>>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
    heartbeat_ms: AtomicI64,
    pub stats: Stats,
    /// Batches' results, committed together by one task (engine group commit).
    record_jobs: mpsc::UnboundedSender<reconciler::RecordJob>,
    record_rx: Mutex<Option<mpsc::UnboundedReceiver<reconciler::RecordJob>>>,
}

/// One lock's queue, for the status socket.
#[derive(Debug, Clone, serde::Serialize)]
pub struct QueueEntry {
    pub device_id: String,
    pub access_code_id: String,
    pub operation: &'static str,
    pub slot: u32,
    /// When the next attempt may happen (`null`: as soon as the lock is free).
    pub next_attempt_at: Option<String>,
    pub attempts: u32,
}

impl Engine {
    pub fn new(
        store: Arc<Store>,
        clock: Arc<dyn Clock>,
        settings: HubSettings,
        shutdown: CancellationToken,
    ) -> Arc<Engine> {
        let (record_jobs, record_rx) = mpsc::unbounded_channel();
        let engine = Arc::new(Engine {
            record_jobs,
            record_rx: Mutex::new(Some(record_rx)),
            store,
            clock,
            settings,
            drivers: Mutex::new(HashMap::new()),
            routes: Mutex::new(HashMap::new()),
            locks: Mutex::new(HashMap::new()),
            tasks: TaskTracker::new(),
            shutdown,
            heartbeat_ms: AtomicI64::new(0),
            stats: Stats::default(),
        });
        engine.beat();
        engine
    }

    /// What commands call after a commit: reconcile these locks now.
    pub fn waker(self: &Arc<Self>) -> crate::commands::Waker {
        let me = Arc::downgrade(self);
        Arc::new(move |ids: &[String]| {
            if let Some(e) = me.upgrade() {
                e.wake(ids);
            }
        })
    }

    pub fn wake(&self, device_ids: &[String]) {
        let locks = self.locks.lock().unwrap();
        for id in device_ids {
            if let Some(h) = locks.get(id) {
                h.generation.fetch_add(1, Ordering::SeqCst);
                h.wake.notify_one();
            }
        }
    }

    fn beat(&self) {
        self.heartbeat_ms
            .store(self.clock.now().timestamp_millis(), Ordering::Relaxed);
    }

    /// Age of the engine's last sign of life (for the systemd watchdog).
    pub fn heartbeat_age(&self) -> std::time::Duration {
        let age = self.clock.now().timestamp_millis() - self.heartbeat_ms.load(Ordering::Relaxed);
        std::time::Duration::from_millis(age.max(0) as u64)
    }

    /// Start: every lock's slots are re-read before anything is written (an
    /// operation may have landed just before a crash), then reconcile.
    pub fn start(
        self: &Arc<Self>,
        events: mpsc::UnboundedReceiver<LockEvent>,
    ) -> Result<(), StoreError> {
        self.store.write(|tx| tx.forget_all_slots_known())?;
        let me = self.clone();
        self.tasks.spawn(async move { me.event_loop(events).await });
        let me = self.clone();
        self.tasks.spawn(async move { me.ticker().await });
        if let Some(rx) = self.record_rx.lock().unwrap().take() {
            let me = self.clone();
            self.tasks.spawn(async move { me.committer(rx).await });
        }
        Ok(())
    }

    /// Serve the locks of a driver (and the ones it discovers later).
    pub async fn add_driver(
        self: &Arc<Self>,
        driver: Arc<dyn LockDriver>,
    ) -> Result<(), StoreError> {
        self.drivers
            .lock()
            .unwrap()
            .insert(driver.kind(), driver.clone());
        let devices = driver.devices().await;
        self.adopt(&devices, driver)
    }

    /// Record locks (all in one transaction: start-up with hundreds of locks
    /// stays one fsync) and give each its reconciler.
    fn adopt(
        self: &Arc<Self>,
        devices: &[DeviceInfo],
        driver: Arc<dyn LockDriver>,
    ) -> Result<(), StoreError> {
        let now = self.clock.now();
        self.store.write(|tx| {
            for info in devices {
                let before = tx.device(&info.device_id)?;
                if before.as_ref().is_some_and(|b| b.info == *info) {
                    continue; // unchanged: its retained state is republished on connect anyway
                }
                tx.upsert_device(info)?;
                if before.is_none() {
                    tx.event(&Event::device("device.added", &info.device_id, now))?;
                }
                self.publish_device(tx, &info.device_id)?;
            }
            Ok::<(), StoreError>(())
        })?;
        for info in devices {
            self.routes
                .lock()
                .unwrap()
                .insert(info.device_id.clone(), driver.clone());
            let mut locks = self.locks.lock().unwrap();
            if let Some(h) = locks.get(&info.device_id) {
                h.wake.notify_one();
                continue;
            }
            let handle = Arc::new(LockHandle {
                wake: Notify::new(),
                backoff: Mutex::new(LockBackoff::default()),
                generation: std::sync::atomic::AtomicU64::new(0),
            });
            locks.insert(info.device_id.clone(), handle.clone());
            let me = self.clone();
            let id = info.device_id.clone();
            let span = tracing::info_span!("lock", device_id = %id);
            self.tasks.spawn(tracing::Instrument::instrument(
                async move { me.reconcile_lock(id, handle).await },
                span,
            ));
        }
        Ok(())
    }

    fn driver_for(&self, device_id: &str) -> Option<Arc<dyn LockDriver>> {
        self.routes.lock().unwrap().get(device_id).cloned()
    }

    fn publish_device(&self, tx: &Tx<'_>, device_id: &str) -> Result<(), StoreError> {
        if let Some(d) = tx.device(device_id)? {
            let body = device_json(tx, &d)?;
            tx.publish(
                &format!("devices/{device_id}"),
                &serde_json::to_vec(&body)?,
                true,
            )?;
        }
        Ok(())
    }

    async fn event_loop(self: Arc<Self>, mut events: mpsc::UnboundedReceiver<LockEvent>) {
        loop {
            let ev = tokio::select! {
                _ = self.shutdown.cancelled() => return,
                ev = events.recv() => match ev { Some(ev) => ev, None => return },
            };
            self.beat();
            if let LockEvent::Discovered(info) = &ev {
                let driver = self.drivers.lock().unwrap().get(&info.driver).cloned();
                match driver {
                    Some(d) => {
                        if let Err(e) = self.adopt(std::slice::from_ref(info), d) {
                            tracing::error!(device_id = %info.device_id, error = %e, "could not record a discovered lock");
                        }
                    }
                    None => {
                        tracing::warn!(device_id = %info.device_id, "lock discovered by a driver that was not added")
                    }
                }
                continue;
            }
            let device_id = ev.device_id().to_owned();
            match self
                .store
                .write(|tx| observe::lock_event(self.as_ref(), tx, &ev))
            {
                Ok(wake) => {
                    if wake {
                        if matches!(ev, LockEvent::Online { .. }) {
                            self.reset_backoff(&device_id);
                        }
                        self.wake(&[device_id]);
                    }
                }
                Err(e) => tracing::error!(device_id, error = %e, "could not record a lock event"),
            }
        }
    }

    fn reset_backoff(&self, device_id: &str) {
        if let Some(h) = self.locks.lock().unwrap().get(device_id) {
            *h.backoff.lock().unwrap() = LockBackoff::default();
        }
    }

    /// Keeps the heartbeat fresh and forgets old request ids, at a low rate.
    async fn ticker(self: Arc<Self>) {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(10));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut n: u64 = 0;
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            self.beat();
            n += 1;
            if n % 360 == 0 {
                let before = self.clock.now() - self.settings.request_retention;
                if let Err(e) = self.store.write(|tx| tx.prune_requests(before)) {
                    tracing::warn!(error = %e, "could not prune old request ids");
                }
            }
        }
    }

    /// Wait for every engine task to finish (after the shutdown token fired).
    pub async fn stopped(&self) {
        self.tasks.close();
        self.tasks.wait().await;
    }

    /// Every pending operation and when it will next be tried.
    pub fn queue(&self) -> Result<Vec<QueueEntry>, StoreError> {
        let now = self.clock.now();
        let timing = self.settings.timing();
        let ids: Vec<String> = self.locks.lock().unwrap().keys().cloned().collect();
        let mut out = Vec::new();
        for id in ids {
            let backoff_until = self
                .locks
                .lock()
                .unwrap()
                .get(&id)
                .and_then(|h| h.backoff.lock().unwrap().until);
            let (codes, observed) = self
                .store
                .read(|tx| Ok((tx.codes_for_device(&id)?, tx.observed(&id)?)))?;
            let lock_wait = backoff_until.map(|u| {
                now + chrono::Duration::from_std(
                    u.saturating_duration_since(tokio::time::Instant::now()),
                )
                .unwrap_or_default()
            });
            for p in plan::diff(&codes, &observed, now, &timing) {
                let c = codes.iter().find(|c| c.access_code_id == p.access_code_id);
                let next = c.and_then(|c| c.retry.next_attempt_at).or(lock_wait);
                out.push(QueueEntry {
                    device_id: id.clone(),
                    access_code_id: p.access_code_id.clone(),
                    operation: match p.op {
                        crate::drivers::SlotOp::Set(_) => "set",
                        crate::drivers::SlotOp::Clear { .. } => "clear",
                    },
                    slot: p.op.slot(),
                    next_attempt_at: next.map(crate::model::access_code::ts),
                    attempts: c.map(|c| c.retry.attempts).unwrap_or(0),
                });
            }
        }
        Ok(out)
    }
}
