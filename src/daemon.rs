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

/// Opens the Bluetooth adapter and adds the Nuki driver. A hub whose radio is
/// broken keeps serving its other locks: the error is logged, not fatal.
async fn start_ble(cfg: &Config, hub: &Arc<Hub>) {
    use crate::drivers::ble::{btle::BtleRadio, keys::FileKeyStore, slot_map::SlotMap, BleDriver};
    let radio = match BtleRadio::open(cfg.ble.adapter()).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "no Bluetooth: the Nuki locks stay unserved");
            return;
        }
    };
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

/// Start everything; the caller waits for `shutdown` and then calls [`Running::stop`].
pub async fn start(cfg: &Config, shutdown: CancellationToken) -> anyhow::Result<Running> {
    let t0 = Instant::now();
    let store = Arc::new(
        Store::open(&cfg.store.path)
            .with_context(|| format!("opening the store {}", cfg.store.path.display()))?,
    );
    let hub = Hub::start(
        store,
        Arc::new(SystemClock),
        cfg.hub_settings(),
        shutdown.clone(),
    )?;

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
    if !cfg.zwave.port.is_empty() {
        let mut z = ZwaveConfig::new(cfg.zwave.port.clone());
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
        let d = ZwaveDriver::connect(z, hub.event_sink())
            .await
            .with_context(|| format!("opening the Z-Wave controller at {}", cfg.zwave.port))?;
        // Locks join as their interviews end (LockEvent::Discovered).
        hub.add_driver(Arc::new(d)).await?;
    }

    if cfg.ble.enabled && !cfg.ble.locks.is_empty() {
        start_ble(cfg, &hub).await;
    }

    let tasks = TaskTracker::new();
    let link = if cfg.mqtt.enabled {
        Some(mqtt::start(cfg, hub.clone(), shutdown.clone(), &tasks)?)
    } else {
        None
    };
    let page = crate::web::PageInfo::of(cfg);
    if cfg.socket.enabled {
        let listener = status::bind(&cfg.socket.path, cfg.socket_mode()).await?;
        tasks.spawn(status::serve(
            listener,
            hub.clone(),
            link.clone(),
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
    }
}

/// Feed systemd's watchdog only while the engine's heartbeat is fresh.
async fn watchdog(hub: Arc<Hub>, shutdown: CancellationToken) {
    let mut usec = 0;
    if !sd_notify::watchdog_enabled(false, &mut usec) {
        return;
    }
    let period = Duration::from_micros(usec);
    let mut tick = tokio::time::interval(period / 2);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let age = hub.engine.heartbeat_age();
        if age < period {
            let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
        } else {
            tracing::error!(
                age_ms = age.as_millis() as u64,
                "engine heartbeat is stale; not feeding the watchdog"
            );
        }
    }
}

/// Run until SIGTERM or SIGINT, then stop in order.
pub async fn run(cfg: Config) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    let running = start(&cfg, shutdown.clone()).await?;
    wait_for_signal().await;
    tracing::info!("stopping");
    shutdown.cancel();
    running.stop().await;
    tracing::info!("stopped");
    Ok(())
}

pub async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
