//! The daemon as a flat list of what runs: the store and engine (the hub), the
//! drivers, the MQTT link, the local socket, and systemd's notify/watchdog.
//! `run` returns once `shutdown` fired and everything stopped in order.

use crate::config::Config;
use crate::drivers::sim::{SimDriver, SimLockSpec};
use crate::drivers::zwave::{LockConfig, ZwaveConfig, ZwaveDriver};
use crate::engine::clock::SystemClock;
use crate::hub::Hub;
use crate::mqtt::{self, LinkState};
use crate::status;
use crate::store::Store;
use anyhow::Context;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long an orderly stop may take before the rest is abandoned.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(8);

/// What a running daemon exposes to its caller (the demo, tests).
pub struct Running {
    pub hub: Arc<Hub>,
    pub link: Option<Arc<LinkState>>,
    pub sim: Option<Arc<SimDriver>>,
    tasks: TaskTracker,
}

/// Adds the Nuki driver over a supervised Bluetooth radio. A hub without an
/// adapter (or bluetoothd) keeps serving its other locks: the radio opens the
/// adapter with backoff, and again after bluetoothd restarts or the adapter
/// is unplugged; the Nuki locks are offline meanwhile.
async fn start_ble(cfg: &Config, hub: &Arc<Hub>, shutdown: &CancellationToken) {
    use crate::drivers::ble::{btle::BtleRadio, keys::FileKeyStore, slot_map::SlotMap, BleDriver};
    let radio = BtleRadio::supervised(cfg.ble.adapter().map(str::to_owned), shutdown);
    if let Some(up) = crate::drivers::ble::link::Radio::adapter_up(&radio) {
        tokio::spawn(radio_health(hub.clone(), "ble", up, |up| {
            match up {
            Some(false) => Some("no Bluetooth adapter (or bluetoothd is not running): the Nuki locks are offline; retrying with backoff"),
            _ => None,
        }
        }));
    }
    let slots = match SlotMap::open(&cfg.ble.slots_file) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "the Nuki locks stay unserved");
            return;
        }
    };
    let driver = Arc::new(BleDriver::new(
        cfg.ble.driver_config(),
        Arc::new(radio),
        Arc::new(FileKeyStore::new(&cfg.ble.keys_file)),
        slots,
        Some(hub.event_sink()),
    ));
    driver.watch_advertisements();
    if let Err(e) = hub.add_driver(driver).await {
        tracing::error!(error = %e, "adding the Nuki locks failed");
    }
}

/// Keeps `radio`'s line in health true to `state` (`missing` says what is
/// missing, if anything) until the hub stops.
async fn radio_health<T: Clone + Send + Sync + 'static>(
    hub: Arc<Hub>,
    radio: &'static str,
    mut state: tokio::sync::watch::Receiver<T>,
    missing: fn(T) -> Option<&'static str>,
) {
    loop {
        let now = state.borrow_and_update().clone();
        match missing(now) {
            Some(why) => hub.radios.down(radio, why),
            None => hub.radios.up(radio),
        }
        if state.changed().await.is_err() {
            return;
        }
    }
}

/// Health's line while no Z-Wave controller answers.
const NO_CONTROLLER: &str =
    "no Z-Wave controller answers on its port: its locks are offline; retrying with backoff";

/// Health follows the open controller's port from now on.
fn watch_zwave_port(hub: &Arc<Hub>, d: &ZwaveDriver) {
    tokio::spawn(radio_health(hub.clone(), "zwave", d.port_open(), |open| {
        (!open).then_some("the Z-Wave controller's port closed: its locks are offline; reopening")
    }));
}

/// Opens the Z-Wave controller and adds its driver; while the controller is
/// missing or does not answer, retries with backoff (1 s doubling to 60 s, so
/// a stick plugged back in is found within a minute) and keeps the Z-Wave
/// locks lockhub knows offline. A configuration error is reported once.
async fn start_zwave(
    z: ZwaveConfig,
    hub: Arc<Hub>,
    admin: Arc<status::zwave::ZwaveAdmin>,
    shutdown: CancellationToken,
) {
    let mut attempt: u32 = 0;
    loop {
        let connect = ZwaveDriver::connect(z.clone(), hub.event_sink());
        let result = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = connect => r,
        };
        match result {
            Ok(d) => {
                if attempt > 0 {
                    tracing::info!(port = %z.port, attempts = attempt + 1, "Z-Wave controller found");
                }
                watch_zwave_port(&hub, &d);
                admin.connected(d.clone());
                if let Err(e) = hub.add_driver(Arc::new(d)).await {
                    tracing::error!(error = %e, "adding the Z-Wave locks failed");
                }
                return;
            }
            Err(crate::drivers::zwave::ZwaveError::Config(e)) => {
                tracing::error!(error = %e, "the Z-Wave configuration is wrong; its locks stay unserved");
                return;
            }
            Err(e) => {
                attempt += 1;
                let wait = crate::engine::backoff::delay(
                    attempt,
                    Duration::from_secs(1),
                    Duration::from_secs(60),
                );
                if attempt == 1 {
                    hub.radios.down("zwave", NO_CONTROLLER);
                    tracing::error!(port = %z.port, error = %e, "no Z-Wave controller: serving everything else, retrying with backoff; its locks are offline meanwhile");
                    if let Err(e) = hub.engine.mark_offline(crate::model::DriverKind::Zwave) {
                        tracing::warn!(error = %e, "could not mark the Z-Wave locks offline");
                    }
                } else {
                    tracing::info!(port = %z.port, error = %e, attempt, retry_in_ms = wait.as_millis() as u64, "still no Z-Wave controller");
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
}

/// Start everything; the caller waits for `shutdown` and then calls [`Running::stop`].
pub async fn start(cfg: &Config, shutdown: CancellationToken) -> anyhow::Result<Running> {
    let t0 = Instant::now();
    // A damaged or read-only store is named and refused (its own exit status).
    let key_file = cfg
        .store
        .key_file
        .clone()
        .unwrap_or_else(|| Store::default_key_file(&cfg.store.path));
    let store = Arc::new(Store::open_checked(&cfg.store.path, &key_file)?);
    let mut settings = cfg.hub_settings()?;
    // One notion of local time: the engine's weekly windows and the locks' clocks.
    let timezone = settings.timezone.clone();
    tracing::info!(
        timezone = timezone.iana_name().unwrap_or("(unnamed)"),
        "the property's local time (weekly windows, the locks' clocks)"
    );
    if cfg.auth.mode == crate::auth::AuthMode::Signed {
        let file = cfg
            .auth
            .trusted_keys_file
            .as_deref()
            .unwrap_or(std::path::Path::new(""));
        settings.trust = Some(Arc::new(crate::auth::Trust::open(&cfg.hub_id, file)?));
    }
    let hub = Hub::start(store, Arc::new(SystemClock), settings, shutdown.clone())?;

    let mut sim = None;
    if !cfg.sim.locks.is_empty() {
        let specs = cfg
            .sim
            .locks
            .iter()
            .map(|l| {
                let mut s = SimLockSpec::new(l.device_id.clone(), l.name.clone(), l.capabilities());
                s.latency = Duration::from_millis(l.latency_ms);
                s.online = l.online;
                s
            })
            .collect();
        let d = Arc::new(match &cfg.sim.state_dir {
            Some(dir) => SimDriver::persistent(specs, Some(hub.event_sink()), dir)
                .with_context(|| format!("simulated locks' state in {}", dir.display()))?,
            None => SimDriver::new(specs, Some(hub.event_sink())),
        });
        hub.add_driver(d.clone()).await?;
        sim = Some(d);
    }
    let mut zwave_task = None;
    let mut zwave_admin = None;
    if !cfg.zwave.port.is_empty() {
        let mut z = ZwaveConfig::new(cfg.zwave.port.clone());
        let trust = hub.engine.trust.clone();
        z.hub_clock = crate::drivers::zwave::HubClockTrust(Arc::new(move || trust.is_trusted()));
        z.timezone = timezone.clone();
        if let Some(ms) = cfg.zwave.report_timeout_ms {
            z.report_timeout = Duration::from_millis(ms);
        }
        z.keys = Some(
            crate::drivers::zwave::security::NetworkKeys::load_or_create(&cfg.zwave.keys_file)?,
        );
        z.locks = cfg
            .zwave
            .locks
            .iter()
            .map(|l| LockConfig {
                node_id: l.node_id,
                name: l.name.clone(),
                device_id: l.device_id.clone(),
            })
            .collect();
        z.quirks = cfg
            .zwave
            .locks
            .iter()
            .map(|l| {
                let quirks = crate::drivers::zwave::LockQuirks {
                    supervision: l.supervision,
                    masked_pins: l.masked_pins,
                    code_lengths: l.code_lengths.map(|[min, max]| (min, max)),
                };
                (l.node_id, quirks)
            })
            .collect();
        // A controller missing or silent at start is not fatal: the rest is
        // served and the driver is retried with backoff (`start_zwave`; the
        // Z-Wave admin routes answer `zwave_unavailable` until it answers).
        // Locks join as their interviews end (LockEvent::Discovered).
        let admin = status::zwave::ZwaveAdmin::new();
        zwave_admin = Some(admin.clone());
        match ZwaveDriver::connect(z.clone(), hub.event_sink()).await {
            Ok(d) => {
                watch_zwave_port(&hub, &d);
                admin.connected(d.clone());
                hub.add_driver(Arc::new(d)).await?;
            }
            Err(e @ crate::drivers::zwave::ZwaveError::Config(_)) => {
                return Err(anyhow::Error::new(e)
                    .context(format!("the Z-Wave configuration ({})", cfg.zwave.port)));
            }
            Err(e) => {
                hub.radios.down("zwave", NO_CONTROLLER);
                tracing::error!(port = %cfg.zwave.port, error = %e, "no Z-Wave controller: serving everything else, retrying with backoff; its locks are offline meanwhile");
                if let Err(e) = hub.engine.mark_offline(crate::model::DriverKind::Zwave) {
                    tracing::warn!(error = %e, "could not mark the Z-Wave locks offline");
                }
                zwave_task = Some(z);
            }
        }
    }

    if cfg.ble.enabled && !cfg.ble.locks.is_empty() {
        start_ble(cfg, &hub, &shutdown).await;
    }

    let tasks = TaskTracker::new();
    if let (Some(z), Some(admin)) = (zwave_task, zwave_admin.clone()) {
        tasks.spawn(start_zwave(z, hub.clone(), admin, shutdown.clone()));
    }
    let link = if cfg.mqtt.enabled {
        Some(mqtt::start(cfg, hub.clone(), shutdown.clone(), &tasks)?)
    } else {
        None
    };
    let mut page = crate::web::PageInfo::of(cfg);
    page.zwave = zwave_admin.clone();
    if cfg.socket.enabled {
        let mut access = status::peer::Access::new(&cfg.socket.group);
        let listener = status::bind(&cfg.socket.path, cfg.socket_mode(), &mut access).await?;
        tasks.spawn(status::serve(
            listener,
            hub.clone(),
            link.clone(),
            access,
            page.clone(),
            shutdown.clone(),
        ));
    }
    if !cfg.web.listen.is_empty() {
        let server = crate::web::serve_tcp(
            &cfg.web.listen,
            &cfg.web.password_hash,
            hub.clone(),
            link.clone(),
            page,
            shutdown.clone(),
        )
        .await?;
        tasks.spawn(async move {
            let _ = server.await;
        });
    }
    tasks.spawn(watchdog(hub.clone(), shutdown.clone()));
    if cfg.store.backup_every > 0 {
        tasks.spawn(backups(
            hub.store.clone(),
            cfg.store.backup_file(),
            Duration::from_secs(cfg.store.backup_every),
            shutdown.clone(),
        ));
    }
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    tracing::info!(ready_ms = t0.elapsed().as_millis() as u64, hub_id = %cfg.hub_id, "lockhub ready");
    Ok(Running {
        hub,
        link,
        sim,
        tasks,
    })
}

impl Running {
    /// After `shutdown` fired: wait for the tasks (MQTT says offline and
    /// disconnects, the socket closes, the engine finishes its batch).
    pub async fn stop(self) {
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
        self.tasks.close();
        if tokio::time::timeout(STOP_TIMEOUT, async {
            self.tasks.wait().await;
            self.hub.stopped().await;
        })
        .await
        .is_err()
        {
            tracing::warn!(
                "some tasks did not stop in time; exiting anyway (nothing committed is lost)"
            );
        }
        if let Err(e) = self.hub.store.anchor_audit() {
            tracing::warn!(error = %e, "could not write the audit chain's anchor");
        }
    }
}

/// Feed systemd's watchdog only while work completes: every `WatchdogSec/3`
/// a round trip through the engine's committer and the store's writer must
/// finish within `WatchdogSec/2`, and no reconciler, the committer, the
/// lock-event loop or a store write may have been at it longer than that. A
/// store that fails quickly (a full disk) is not a hang: the watchdog is fed
/// and systemd's status says degraded (the hub retries by itself).
async fn watchdog(hub: Arc<Hub>, shutdown: CancellationToken) {
    let Some(period) = watchdog_period() else {
        return;
    };
    let limit = period / 2;
    let mut tick = tokio::time::interval(period / 3);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut status = String::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let (stalled, degraded) = watchdog_check(&hub, limit).await;
        *hub.engine.watchdog_problem.lock().unwrap() = stalled.clone();
        match &stalled {
            None => {
                let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
            }
            Some(why) => tracing::error!(problem = %why, "not feeding the watchdog"),
        }
        let now = match stalled.as_ref().or(degraded.as_ref()) {
            Some(why) => format!("degraded: {why}"),
            None => "ok".to_owned(),
        };
        if now != status {
            let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Status(&now)]);
            status = now;
        }
    }
}

/// `WatchdogSec` as systemd passes it: `WATCHDOG_USEC`, for this process if
/// `WATCHDOG_PID` is set (as sd_watchdog_enabled(3) reads them).
fn watchdog_period() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.parse::<u32>().ok() != Some(std::process::id()) {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// (a hang that must stop the watchdog, a degradation that must not).
async fn watchdog_check(hub: &Hub, limit: Duration) -> (Option<String>, Option<String>) {
    if let Some((what, d)) = hub.engine.longest_busy().filter(|(_, d)| *d > limit) {
        return (
            Some(format!("{what} has been at work for {} ms", d.as_millis())),
            None,
        );
    }
    if let Some(d) = hub.store.writing.busy_for().filter(|d| *d > limit) {
        return (
            Some(format!(
                "a store write has been blocked for {} ms",
                d.as_millis()
            )),
            None,
        );
    }
    match tokio::time::timeout(limit, hub.engine.probe()).await {
        Err(_) => {
            return (
                Some(format!(
                    "the engine's committer did not answer within {} ms",
                    limit.as_millis()
                )),
                None,
            )
        }
        Ok(Err(e)) => return (None, Some(format!("the store: {e}"))),
        Ok(Ok(())) => {}
    }
    let store = hub.store.clone();
    let probe = tokio::task::spawn_blocking(move || store.probe_writer());
    match tokio::time::timeout(limit, probe).await {
        Err(_) => (
            Some(format!(
                "the store's writer could not take the database within {} ms",
                limit.as_millis()
            )),
            None,
        ),
        Ok(Ok(Err(e))) => (None, Some(format!("the store: {e}"))),
        // An empty transaction commits on a full disk: what failed to be
        // recorded says more.
        Ok(_) => (
            None,
            hub.held.problem().or_else(|| {
                hub.engine
                    .store_trouble
                    .lock()
                    .unwrap()
                    .as_ref()
                    .map(|e| format!("the store: {e}"))
            }),
        ),
    }
}

/// The periodic online backup (`store.backup_path`, every `store.backup_every`):
/// one at start, then on the period. A failed backup is logged and the previous
/// one stays in place.
async fn backups(
    store: Arc<Store>,
    dest: std::path::PathBuf,
    every: Duration,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let (s, d) = (store.clone(), dest.clone());
        match tokio::task::spawn_blocking(move || s.backup_to(&d)).await {
            Ok(Ok(())) => tracing::info!(backup = %dest.display(), "store backed up"),
            Ok(Err(e)) => {
                tracing::warn!(backup = %dest.display(), error = %e, "store backup failed; the previous backup stays")
            }
            Err(e) => tracing::warn!(error = %e, "store backup task failed"),
        }
    }
}

/// The exit status for an error that ended the daemon: a damaged or read-only
/// store gets its own (listed in the unit's `RestartPreventExitStatus=`).
pub fn exit_code(e: &anyhow::Error) -> u8 {
    match e.downcast_ref::<crate::store::backup::OpenError>() {
        Some(o) => o.exit_code() as u8,
        None => 1,
    }
}

/// Exit status after a panic (EX_SOFTWARE): systemd restarts the daemon.
pub const EXIT_PANIC: i32 = 70;

/// A panic in any task (a tokio task or a blocking thread, which would
/// otherwise end silently) is logged and ends the process, so systemd
/// restarts it with every task running.
pub fn exit_on_panic() {
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".into());
        let location = info.location().map(|l| l.to_string()).unwrap_or_default();
        let thread = std::thread::current()
            .name()
            .unwrap_or("unnamed")
            .to_owned();
        tracing::error!(%message, %location, %thread, "a task panicked; lockhub exits so that it is restarted");
        eprintln!("lockhub: panic in thread {thread} at {location}: {message}");
        std::process::exit(EXIT_PANIC);
    }));
}

/// Run until SIGTERM or SIGINT, then stop in order.
pub async fn run(cfg: Config) -> anyhow::Result<()> {
    exit_on_panic();
    // Handlers first: start() says READY=1, and a SIGTERM right after it
    // (systemd stopping a unit that just started) is an orderly stop, not
    // the default action's kill.
    let stop_signals = StopSignals::install()?;
    let shutdown = CancellationToken::new();
    let running = start(&cfg, shutdown.clone()).await?;
    stop_signals.wait().await;
    tracing::info!("stopping");
    shutdown.cancel();
    running.stop().await;
    tracing::info!("stopped");
    Ok(())
}

/// SIGTERM and SIGINT, caught from when they are installed (one that comes
/// before [`StopSignals::wait`] is kept for it).
pub struct StopSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    pub fn install() -> std::io::Result<StopSignals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(StopSignals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// Until SIGTERM or SIGINT.
    pub async fn wait(mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}
