//! The engine: one level-triggered reconciler per lock.
//!
//! Each lock's task computes what should be on the lock now (from the store)
//! and what is known to be on it, carries out the operations that close the
//! gap through the lock's driver, and commits each batch's results with their
//! events and state in one transaction. Retries, restarts, superseding updates,
//! expiry and codes changed at the keypad are all the same diff.

mod actions;
pub mod backoff;
pub mod clock;
mod issued;
mod observe;
pub mod plan;
mod reconciler;
pub mod slots;
mod timed;
pub mod trust;

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
    /// Bumped with `generation` by everything but commands, which touch
    /// `store::issued` only to add the PINs they say (`noted`): while it is
    /// unchanged the reconciler keeps its copy of the lock's issued PINs (read
    /// again, a hundred digests of SQL per pass after each command).
    issued_generation: std::sync::atomic::AtomicU64,
    /// PINs a command committed as issued for this lock, pushed before its
    /// `generation` bump; the reconciler adds them to its copy when it loads.
    noted: Mutex<Vec<(u32, crate::model::Pin)>>,
    /// In engine code (a pass, not waiting for the radio): for the watchdog.
    busy: crate::progress::Busy,
    /// A batch's results could not be recorded (the store failed): what the
    /// lock holds is read again before anything else is sent.
    reread: std::sync::atomic::AtomicBool,
    /// Woken, and counted in `Engine::on_the_way` until a pass takes the
    /// wake (its results then count until they reach the committer).
    woken: std::sync::atomic::AtomicBool,
}

#[derive(Debug, Default, Clone, Copy)]
struct LockBackoff {
    failures: u32,
    until: Option<tokio::time::Instant>,
}

pub struct Engine {
    store: Arc<Store>,
    /// The time decisions are made by: the wall clock, never earlier than the
    /// latest trusted time (`trust::MonotonicClock`).
    clock: Arc<dyn Clock>,
    /// The wall clock as it reads, judged by `trust`.
    wall: Arc<dyn Clock>,
    pub trust: Arc<trust::ClockTrust>,
    settings: HubSettings,
    drivers: Mutex<HashMap<DriverKind, Arc<dyn LockDriver>>>,
    /// device_id -> the driver that serves it.
    routes: Mutex<HashMap<String, Arc<dyn LockDriver>>>,
    locks: Mutex<HashMap<String, Arc<LockHandle>>>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
    heartbeat_ms: AtomicI64,
    pub stats: Stats,
    /// The committer and the lock-event loop at work (for the watchdog).
    committing: crate::progress::Busy,
    /// Locks woken by a command whose pass has not yet handed its results to
    /// the committer (or ended), and locks whose driver is applying a batch:
    /// the committer waits a moment for their results rather than commit
    /// (and fsync) once per lock of a fan-out (`reconciler::LINGER`).
    on_the_way: std::sync::atomic::AtomicUsize,
    handling_event: crate::progress::Busy,
    /// Why the daemon's watchdog is not being fed (`None`: it is).
    pub watchdog_problem: Mutex<Option<String>>,
    /// The engine's last store failure, until a commit succeeds again.
    pub store_trouble: Mutex<Option<String>>,
    /// Batches' results, committed together by one task (engine group commit).
    record_jobs: mpsc::UnboundedSender<reconciler::RecordJob>,
    record_rx: Mutex<Option<mpsc::UnboundedReceiver<reconciler::RecordJob>>>,
    /// Remote lock/unlock (`actions`): woken by commands; the locks with a
    /// worker at it; each lock's last bolt move reported with its method;
    /// the move each lock is making for an attempt now (and whether the lock
    /// already reported it).
    actions_due: Notify,
    acting: Mutex<std::collections::HashSet<String>>,
    moves: Mutex<HashMap<String, (bool, tokio::time::Instant)>>,
    moving: Mutex<HashMap<String, actions::InFlight>>,
    /// Bumped each time a driver starts serving: what is announced (Home
    /// Assistant) depends on which drivers run, not only on device events.
    drivers_added: tokio::sync::watch::Sender<u64>,
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
        let latest = store
            .read(|tx| tx.latest_trusted_time())
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "could not read the latest trusted time");
                None
            });
        let trust = Arc::new(trust::ClockTrust::new(latest));
        let wall = clock;
        let clock: Arc<dyn Clock> = Arc::new(trust::MonotonicClock {
            inner: wall.clone(),
            trust: trust.clone(),
        });
        store.set_workspace_id(&settings.workspace_id);
        let engine = Arc::new(Engine {
            record_jobs,
            record_rx: Mutex::new(Some(record_rx)),
            store,
            clock,
            wall,
            trust,
            settings,
            drivers: Mutex::new(HashMap::new()),
            routes: Mutex::new(HashMap::new()),
            locks: Mutex::new(HashMap::new()),
            tasks: TaskTracker::new(),
            shutdown,
            heartbeat_ms: AtomicI64::new(0),
            stats: Stats::default(),
            committing: Default::default(),
            on_the_way: Default::default(),
            handling_event: Default::default(),
            watchdog_problem: Mutex::new(None),
            store_trouble: Mutex::new(None),
            actions_due: Notify::new(),
            acting: Mutex::new(Default::default()),
            moves: Mutex::new(HashMap::new()),
            moving: Mutex::new(HashMap::new()),
            drivers_added: tokio::sync::watch::Sender::new(0),
        });
        engine.beat();
        engine
    }

    /// What commands call after a commit: reconcile these locks now.
    pub fn waker(self: &Arc<Self>) -> crate::commands::Waker {
        let me = Arc::downgrade(self);
        Arc::new(move |w: &crate::commands::Woken<'_>| {
            if let Some(e) = me.upgrade() {
                e.wake_after_command(w);
            }
        })
    }

    /// Reconcile these locks now: something may have changed their codes,
    /// slots or issued PINs.
    pub fn wake(&self, device_ids: &[String]) {
        self.wake_locks(device_ids, true);
    }

    /// [`Engine::wake`] after a command's commit: codes changed, and issued
    /// PINs only by those the command says (the reconcilers' copies take them).
    fn wake_after_command(&self, woken: &crate::commands::Woken<'_>) {
        if !woken.issued.is_empty() {
            let locks = self.locks.lock().unwrap();
            for i in woken.issued {
                if let Some(h) = locks.get(&i.device_id) {
                    h.noted.lock().unwrap().push((i.slot, i.pin.clone()));
                }
            }
        }
        self.wake_locks(woken.devices, false);
    }

    fn wake_locks(&self, device_ids: &[String], issued: bool) {
        // A command may have asked a lock to lock or unlock.
        self.actions_due.notify_one();
        let locks = self.locks.lock().unwrap();
        for id in device_ids {
            if let Some(h) = locks.get(id) {
                if issued {
                    h.issued_generation.fetch_add(1, Ordering::SeqCst);
                }
                h.generation.fetch_add(1, Ordering::SeqCst);
                if !h.woken.swap(true, Ordering::SeqCst) {
                    self.on_the_way.fetch_add(1, Ordering::SeqCst);
                }
                h.wake.notify_one();
            }
        }
    }

    /// Every lock of a driver that cannot be reached at all (its radio is
    /// missing) is offline, with its event and device state.
    pub fn mark_offline(&self, kind: DriverKind) -> Result<(), StoreError> {
        let now = self.clock.now();
        self.store.write(|tx| {
            for d in tx.devices()? {
                if d.info.driver == kind && tx.set_device_online(&d.info.device_id, false)? {
                    tx.event(&Event::device(
                        "device.disconnected",
                        &d.info.device_id,
                        now,
                    ))?;
                    self.publish_device(tx, &d.info.device_id)?;
                }
            }
            Ok(())
        })
    }

    /// The clock commands should use (never earlier than the latest trusted time).
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    /// Reconcile every lock now (the clock became trusted again).
    fn wake_all(&self) {
        for h in self.locks.lock().unwrap().values() {
            h.issued_generation.fetch_add(1, Ordering::SeqCst);
            h.generation.fetch_add(1, Ordering::SeqCst);
            h.wake.notify_one();
        }
    }

    /// Judges the clock every second (and whenever a pass saw a change):
    /// records the verdict, republishes device state (its `clock_untrusted`
    /// warning), wakes every lock when the clock is trusted again, and keeps
    /// the latest trusted time in the store (at once, then once a minute).
    async fn clock_watch(self: Arc<Self>) {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stored_untrusted = self
            .store
            .read(|tx| tx.clock_untrusted_since())
            .ok()
            .flatten()
            .is_some();
        let mut persisted: Option<chrono::DateTime<chrono::Utc>> = None;
        let mut persisted_at: Option<tokio::time::Instant> = None;
        loop {
            let trusted = self.trust.judge_clock(self.wall.as_ref());
            if trusted == stored_untrusted {
                let wall = self.wall.now();
                let r = self.store.write(|tx| {
                    tx.set_clock_untrusted_since((!trusted).then_some(wall))?;
                    for d in tx.devices()? {
                        self.publish_device(tx, &d.info.device_id)?;
                    }
                    Ok::<_, StoreError>(())
                });
                match r {
                    Ok(()) => stored_untrusted = !trusted,
                    Err(e) => tracing::warn!(error = %e, "could not record the clock's trust"),
                }
                if trusted {
                    tracing::info!("the clock is trusted again; reconciling every lock");
                    self.wake_all();
                } else {
                    tracing::warn!(
                        wall = %wall.to_rfc3339(),
                        latest_trusted = ?self.trust.latest().map(|t| t.to_rfc3339()),
                        synchronised = self.wall.synchronised(),
                        "clock_untrusted: no time-driven change until the clock is right"
                    );
                }
            }
            let latest = self.trust.latest();
            let due =
                persisted_at.is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(60));
            if trusted && due && latest != persisted {
                if let Some(t) = latest {
                    match self.store.write(|tx| tx.set_latest_trusted_time(t)) {
                        Ok(()) => {
                            persisted = latest;
                            persisted_at = Some(tokio::time::Instant::now());
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "could not save the latest trusted time")
                        }
                    }
                }
            }
            tokio::select! {
                _ = self.shutdown.cancelled() => {
                    if let (true, Some(t)) = (self.trust.is_trusted(), self.trust.latest()) {
                        let _ = self.store.write(|tx| tx.set_latest_trusted_time(t));
                    }
                    return;
                }
                _ = tick.tick() => {}
                _ = self.trust.changed() => {}
            }
        }
    }

    /// The engine section that has been at work longest, and for how long
    /// (a reconciler in engine code, the committer, the lock-event loop).
    pub fn longest_busy(&self) -> Option<(String, std::time::Duration)> {
        let mut worst: Option<(String, std::time::Duration)> = None;
        let mut consider = |what: String, d: Option<std::time::Duration>| {
            if let Some(d) = d {
                if worst.as_ref().is_none_or(|(_, w)| d > *w) {
                    worst = Some((what, d));
                }
            }
        };
        for (id, h) in self.locks.lock().unwrap().iter() {
            consider(format!("the reconciler of {id}"), h.busy.busy_for());
        }
        consider("the engine's committer".into(), self.committing.busy_for());
        consider("the lock-event loop".into(), self.handling_event.busy_for());
        worst
    }

    /// A round trip through the committer and the store's writer (an empty
    /// transaction): completes only while both are doing work.
    pub async fn probe(&self) -> Result<(), StoreError> {
        self.record_intents("", &[]).await
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
        let me = self.clone();
        self.tasks.spawn(async move { me.shedder().await });
        let me = self.clone();
        self.tasks.spawn(async move { me.clock_watch().await });
        let me = self.clone();
        self.tasks.spawn(async move { me.action_loop().await });
        if let Some(rx) = self.record_rx.lock().unwrap().take() {
            let me = self.clone();
            let rt = tokio::runtime::Handle::current();
            if rt.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread {
                // Its own thread (commits block); the tracker waits for it.
                let (done, finished) = tokio::sync::oneshot::channel::<()>();
                let spawned = std::thread::Builder::new()
                    .name("lockhub-committer".into())
                    .spawn(move || {
                        me.committer_thread(rx, rt);
                        let _ = done.send(());
                    });
                if let Err(e) = spawned {
                    return Err(StoreError::Other(format!(
                        "cannot start the engine's committer: {e}"
                    )));
                }
                self.tasks.spawn(async move {
                    let _ = finished.await;
                });
            } else {
                self.tasks.spawn(async move { me.committer(rx).await });
            }
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
        self.adopt(&devices, driver)?;
        self.drivers_added.send_modify(|n| *n += 1);
        Ok(())
    }

    /// Changes each time a driver starts serving (see `drivers_added`).
    pub fn drivers_watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.drivers_added.subscribe()
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
                // What the driver knows of its reachability; else the state
                // persisted before, else `unknown` until the lock answers.
                if let Some(online) = driver.presence(&info.device_id) {
                    if before.is_some() && tx.set_device_online(&info.device_id, online)? {
                        let ev = if online {
                            "device.connected"
                        } else {
                            "device.disconnected"
                        };
                        tx.event(&Event::device(ev, &info.device_id, now))?;
                        self.publish_device(tx, &info.device_id)?;
                    }
                }
                if before.as_ref().is_some_and(|b| b.info == *info) {
                    continue; // unchanged: its retained state is republished on connect anyway
                }
                tx.upsert_device(info)?;
                if before.is_none() {
                    let mut e = Event::device("device.added", &info.device_id, now);
                    if let Some(class) = &info.security_class {
                        // lockhub's addition: a Z-Wave lock's security class.
                        e.extra
                            .insert("security_class".into(), serde_json::json!(class));
                    }
                    tx.event(&e)?;
                    if let Some(online) = driver.presence(&info.device_id) {
                        tx.set_device_online(&info.device_id, online)?;
                    }
                    tx.set_device_created_at(&info.device_id, now)?;
                }
                self.publish_device(tx, &info.device_id)?;
            }
            Ok::<(), StoreError>(())
        })?;
        // What the store says each lock's slots held (before a restart, for
        // a lock that hides its codes on read-back), once per new reconciler.
        let fresh: Vec<&DeviceInfo> = {
            let locks = self.locks.lock().unwrap();
            devices
                .iter()
                .filter(|i| !locks.contains_key(&i.device_id))
                .collect()
        };
        for info in fresh {
            let known = self.store.read(|tx| tx.observed(&info.device_id))?;
            if !known.is_empty() {
                driver.remember(&info.device_id, &known);
            }
        }
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
                issued_generation: std::sync::atomic::AtomicU64::new(0),
                noted: Mutex::new(Vec::new()),
                busy: Default::default(),
                reread: Default::default(),
                woken: Default::default(),
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

    /// The kinds of driver running, and the locks they serve now (a lock
    /// taken out of a driver's configuration, or excluded from its network,
    /// is no longer among them, though the store keeps its row).
    pub async fn served(
        &self,
    ) -> (
        std::collections::HashSet<DriverKind>,
        std::collections::HashSet<String>,
    ) {
        let drivers: Vec<Arc<dyn LockDriver>> =
            self.drivers.lock().unwrap().values().cloned().collect();
        let mut kinds = std::collections::HashSet::new();
        let mut ids = std::collections::HashSet::new();
        for d in drivers {
            kinds.insert(d.kind());
            ids.extend(d.devices().await.into_iter().map(|i| i.device_id));
        }
        (kinds, ids)
    }

    fn driver_for(&self, device_id: &str) -> Option<Arc<dyn LockDriver>> {
        self.routes.lock().unwrap().get(device_id).cloned()
    }

    fn publish_device(&self, tx: &Tx<'_>, device_id: &str) -> Result<(), StoreError> {
        crate::commands::queue_device_state(tx, device_id)
    }

    async fn event_loop(self: Arc<Self>, mut events: mpsc::UnboundedReceiver<LockEvent>) {
        loop {
            let ev = tokio::select! {
                _ = self.shutdown.cancelled() => return,
                ev = events.recv() => match ev { Some(ev) => ev, None => return },
            };
            self.beat();
            let _busy = self.handling_event.guard();
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

    /// Locks no one looked at lately keep no decoded codes in memory, once
    /// more are held than a property's few locks need: looked at every
    /// [`crate::store::CACHE_IDLE`] while locks are in use or more than
    /// those are held, so a burst's memory goes back within seconds of its
    /// end; every 10 s otherwise (a hub at rest wakes no more for it).
    async fn shedder(self: Arc<Self>) {
        loop {
            let wait = if self.store.cache_unsettled() {
                crate::store::CACHE_IDLE
            } else {
                std::time::Duration::from_secs(10)
            };
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            self.store.shed_idle();
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
            if let Err(e) = self.store.anchor_audit() {
                tracing::warn!(error = %e, "could not write the audit chain's anchor");
            }
            n += 1;
            if n % 360 == 0 {
                let before = self.clock.now() - self.settings.request_retention;
                if let Err(e) = self.store.write(|tx| {
                    Ok::<_, StoreError>(
                        tx.prune_requests(before)? + tx.prune_action_attempts(before)?,
                    )
                }) {
                    tracing::warn!(error = %e, "could not prune old request ids");
                }
                self.retention_sweep();
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
