//! The real radio: btleplug (BlueZ over D-Bus on Linux) behind [`Radio`].
//!
//! The adapter scans for as long as the radio lives, so locks are found by
//! address without a scan per connection and their advertisements tell the
//! driver a lock is back in range. A connection resolves services and
//! subscribes to both Nuki characteristics before the first write.
//!
//! [`BtleRadio::supervised`] (the daemon's) also survives the adapter being
//! absent at start, unplugged later, and bluetoothd restarting: a supervisor
//! opens the adapter with backoff (1 s doubling to 60 s) and, once it is open,
//! checks every second that bluetoothd still owns `org.bluez` under the same
//! unique name and that the adapter is still there. btleplug itself notices
//! neither (it has no adapter hot-plugging, deviceplug/btleplug#56): after a
//! restart its match rules still see the new bluetoothd, but the discovery
//! session, the subscriptions and the connections died with the old one, so
//! a lock not in the new daemon's cache would never be found again. On a
//! loss the radio ends every link at once, says so ([`Radio::adapter_up`]:
//! the driver marks its locks offline) and opens the adapter again (a new
//! adapter handle, event stream and scan; the D-Bus connection is re-made
//! too when the system bus itself went away). [`BtleRadio::open`] (pairing,
//! short-lived) opens once and fails when there is no adapter.

use super::link::{Channel, Link, LinkError, Radio, KEYTURNER_SERVICE, PAIRING_SERVICE};
use async_trait::async_trait;
use btleplug::api::{
    Central, CentralEvent, Characteristic, Manager as _, Peripheral as _, ScanFilter,
    ValueNotification, WriteType,
};
use btleplug::platform::{Adapter, Manager, Peripheral, PeripheralId};
use futures::stream::{BoxStream, StreamExt};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::{CancellationToken, DropGuard};

/// How often to look again for a lock that has not advertised yet.
const FIND_POLL: Duration = Duration::from_millis(100);
/// How often the supervisor checks that bluetoothd and the adapter are there.
const HEALTH_EVERY: Duration = Duration::from_secs(1);
/// Opening the adapter again: from this, doubling up to [`RETRY_MAX`].
const RETRY_BASE: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(60);
/// bluetoothd's name on the system bus.
const BLUEZ: &str = "org.bluez";

type Events = std::pin::Pin<Box<dyn futures::Stream<Item = CentralEvent> + Send>>;

/// What outlives one adapter session: the open adapter (none while it is
/// absent) and the announcements the driver follows.
struct Shared {
    adapter: RwLock<Option<Adapter>>,
    seen: broadcast::Sender<String>,
    /// Peripherals whose connection dropped, so a link ends at once rather
    /// than at its reply timeout.
    gone: broadcast::Sender<PeripheralId>,
    /// The adapter was lost: every link ends.
    lost: broadcast::Sender<()>,
    up: watch::Sender<Option<bool>>,
}

impl Shared {
    fn new() -> Arc<Shared> {
        Arc::new(Shared {
            adapter: RwLock::new(None),
            seen: broadcast::channel(64).0,
            gone: broadcast::channel(16).0,
            lost: broadcast::channel(4).0,
            up: watch::channel(None).0,
        })
    }

    fn current(&self) -> Result<Adapter, LinkError> {
        self.adapter.read().unwrap().clone().ok_or_else(|| {
            LinkError::Adapter("no Bluetooth adapter (lockhub keeps looking for it)".into())
        })
    }

    /// Starts serving `adapter`: its events are announced until `session` ends.
    fn install(&self, adapter: Adapter, events: Events, session: CancellationToken) {
        tokio::spawn(watch(
            adapter.clone(),
            events,
            self.seen.clone(),
            self.gone.clone(),
            session,
        ));
        *self.adapter.write().unwrap() = Some(adapter);
        self.up.send_replace(Some(true));
    }

    fn uninstall(&self) {
        *self.adapter.write().unwrap() = None;
        let _ = self.lost.send(());
        self.up.send_replace(Some(false));
    }
}

pub struct BtleRadio {
    shared: Arc<Shared>,
    /// Ends the supervisor (or the one session) with the radio.
    _stop: DropGuard,
}

fn connect_err(e: btleplug::Error) -> LinkError {
    LinkError::Connect(e.to_string())
}

fn adapter_err(e: btleplug::Error) -> LinkError {
    LinkError::Adapter(e.to_string())
}

/// Picks the adapter whose description contains `want` (or the first one),
/// subscribes to its events, and starts scanning for Nukis.
async fn open_adapter(
    manager: &Manager,
    want: Option<&str>,
) -> Result<(Adapter, Events), LinkError> {
    let mut chosen = None;
    for a in manager.adapters().await.map_err(adapter_err)? {
        let info = a.adapter_info().await.unwrap_or_default();
        if want.is_none_or(|want| info.contains(want)) {
            chosen = Some(a);
            break;
        }
    }
    let adapter = chosen.ok_or_else(|| LinkError::Adapter("no Bluetooth adapter".into()))?;
    // The stream first (btleplug then names the devices already known), so
    // nothing the scan finds is missed.
    let events = adapter.events().await.map_err(adapter_err)?;
    // Only Nukis (normal and pairing mode): fewer events, fewer wake-ups.
    let filter = ScanFilter {
        services: vec![KEYTURNER_SERVICE, PAIRING_SERVICE],
    };
    adapter.start_scan(filter).await.map_err(adapter_err)?;
    Ok((adapter, events))
}

impl BtleRadio {
    /// Opens the adapter whose description contains `adapter` (or the first
    /// one) and starts scanning; fails when there is none. Nothing reopens
    /// it: for short-lived uses (pairing).
    pub async fn open(adapter: Option<&str>) -> Result<BtleRadio, LinkError> {
        let manager = Manager::new().await.map_err(adapter_err)?;
        let (adapter, events) = open_adapter(&manager, adapter).await?;
        let shared = Shared::new();
        let stop = CancellationToken::new();
        shared.install(adapter, events, stop.clone());
        Ok(BtleRadio {
            shared,
            _stop: stop.drop_guard(),
        })
    }

    /// A radio that opens its adapter when it can and again after it was
    /// lost (see the module doc); returns at once. Ends with `shutdown` or
    /// when dropped.
    pub fn supervised(adapter: Option<String>, shutdown: &CancellationToken) -> BtleRadio {
        let shared = Shared::new();
        let stop = shutdown.child_token();
        tokio::spawn(supervise(shared.clone(), adapter, stop.clone()));
        BtleRadio {
            shared,
            _stop: stop.drop_guard(),
        }
    }

    async fn find(&self, address: &str) -> Result<Peripheral, LinkError> {
        loop {
            // The adapter of the moment: a reopened one after a loss.
            let adapter = self.shared.current()?;
            for p in adapter.peripherals().await.map_err(adapter_err)? {
                if p.address().to_string().eq_ignore_ascii_case(address) {
                    return Ok(p);
                }
            }
            // The caller's connect timeout ends the search.
            tokio::time::sleep(FIND_POLL).await;
        }
    }
}

/// The D-Bus side of the supervisor: btleplug's connection and one of its
/// own to ask who owns `org.bluez`.
struct Bus {
    manager: Manager,
    names: Arc<dbus::blocking::SyncConnection>,
}

/// Why an open adapter was given up, or could not be opened.
struct Trouble {
    why: String,
    /// The system bus connection failed: make it again.
    bus_gone: bool,
}

impl Trouble {
    fn radio(why: impl Into<String>) -> Trouble {
        Trouble {
            why: why.into(),
            bus_gone: false,
        }
    }

    fn bus(why: impl Into<String>) -> Trouble {
        Trouble {
            why: why.into(),
            bus_gone: true,
        }
    }
}

/// bluetoothd's unique name on the bus (a new one after every restart), or
/// `None` when it is not running.
async fn bluez_owner(
    names: &Arc<dbus::blocking::SyncConnection>,
) -> Result<Option<String>, Trouble> {
    let names = names.clone();
    let asked = tokio::task::spawn_blocking(move || {
        let proxy = names.with_proxy(
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            Duration::from_secs(5),
        );
        proxy.method_call::<(String,), _, _, _>("org.freedesktop.DBus", "GetNameOwner", (BLUEZ,))
    })
    .await
    .map_err(|e| Trouble::bus(e.to_string()))?;
    match asked {
        Ok((owner,)) => Ok(Some(owner)),
        Err(e) if e.name() == Some("org.freedesktop.DBus.Error.NameHasNoOwner") => Ok(None),
        Err(e) => Err(Trouble::bus(format!(
            "the system bus: {}",
            e.message().unwrap_or("no answer")
        ))),
    }
}

impl Bus {
    async fn connect() -> Result<Bus, Trouble> {
        let names = tokio::task::spawn_blocking(dbus::blocking::SyncConnection::new_system)
            .await
            .map_err(|e| Trouble::bus(e.to_string()))?
            .map_err(|e| {
                Trouble::bus(format!(
                    "no system bus: {}",
                    e.message().unwrap_or("cannot connect")
                ))
            })?;
        let manager = Manager::new()
            .await
            .map_err(|e| Trouble::bus(format!("no system bus: {e}")))?;
        Ok(Bus {
            manager,
            names: Arc::new(names),
        })
    }

    /// Opens the adapter, with bluetoothd's unique name of the moment.
    async fn open(&self, want: Option<&str>) -> Result<(Adapter, Events, String), Trouble> {
        let owner = bluez_owner(&self.names).await?.ok_or_else(|| {
            Trouble::radio("bluetoothd is not running (no org.bluez on the system bus)")
        })?;
        let (adapter, events) = open_adapter(&self.manager, want)
            .await
            .map_err(|e| Trouble::radio(e.to_string()))?;
        Ok((adapter, events, owner))
    }

    /// Returns once the adapter is lost (`None` when stopping): bluetoothd
    /// left or restarted (another unique name), or the adapter is gone.
    async fn hold(
        &self,
        adapter: &Adapter,
        owner: &str,
        stop: &CancellationToken,
    ) -> Option<Trouble> {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return None,
                _ = tokio::time::sleep(HEALTH_EVERY) => {}
            }
            match bluez_owner(&self.names).await {
                Err(t) => return Some(t),
                Ok(None) => return Some(Trouble::radio("bluetoothd stopped")),
                Ok(Some(now)) if now != owner => {
                    return Some(Trouble::radio("bluetoothd restarted"))
                }
                Ok(Some(_)) => {}
            }
            if let Err(e) = adapter.adapter_info().await {
                return Some(Trouble::radio(format!("the adapter is gone: {e}")));
            }
        }
    }
}

/// Keeps an adapter open: opens it with backoff while it is absent, watches
/// it while open, and starts over when it is lost.
async fn supervise(shared: Arc<Shared>, want: Option<String>, stop: CancellationToken) {
    let mut bus: Option<Bus> = None;
    let mut failures: u32 = 0;
    // The absence was logged (at the first failure, or the loss).
    let mut told = false;
    loop {
        let opened = match &bus {
            Some(b) => b.open(want.as_deref()).await,
            None => match Bus::connect().await {
                Ok(b) => bus.insert(b).open(want.as_deref()).await,
                Err(t) => Err(t),
            },
        };
        match opened {
            Ok((adapter, events, owner)) => {
                if told {
                    tracing::info!(
                        attempts = failures + 1,
                        "Bluetooth adapter found; the Nuki locks come back as they advertise"
                    );
                } else {
                    tracing::debug!("Bluetooth adapter open");
                }
                failures = 0;
                let session = stop.child_token();
                shared.install(adapter.clone(), events, session.clone());
                let b = bus.as_ref().expect("connected");
                let lost = b.hold(&adapter, &owner, &stop).await;
                session.cancel();
                // Stopping is no loss: the locks are not marked offline.
                let Some(t) = lost else { return };
                shared.uninstall();
                // Logged here; the failures to reopen that follow only at info.
                tracing::warn!(reason = %t.why, "Bluetooth adapter lost: the Nuki locks are offline; opening it again with backoff");
                told = true;
                if t.bus_gone {
                    bus = None;
                }
            }
            Err(t) => {
                failures += 1;
                if t.bus_gone {
                    bus = None;
                }
                let wait = crate::engine::backoff::delay(failures, RETRY_BASE, RETRY_MAX);
                if !told {
                    tracing::error!(error = %t.why, "no Bluetooth adapter: serving everything else, retrying with backoff; the Nuki locks are offline meanwhile");
                    told = true;
                    shared.up.send_replace(Some(false));
                } else {
                    tracing::info!(error = %t.why, attempt = failures, retry_in_ms = wait.as_millis() as u64, "still no Bluetooth adapter");
                }
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
}

/// Announces the address of every peripheral that advertises, and every
/// dropped connection, until `session` ends.
async fn watch(
    adapter: Adapter,
    mut events: Events,
    seen: broadcast::Sender<String>,
    gone: broadcast::Sender<PeripheralId>,
    session: CancellationToken,
) {
    loop {
        let ev = tokio::select! {
            _ = session.cancelled() => return,
            ev = events.next() => match ev { Some(ev) => ev, None => return },
        };
        let id = match ev {
            CentralEvent::DeviceDiscovered(id) | CentralEvent::DeviceUpdated(id) => id,
            CentralEvent::DeviceDisconnected(id) => {
                let _ = gone.send(id);
                continue;
            }
            _ => continue,
        };
        if let Ok(p) = adapter.peripheral(&id).await {
            let _ = seen.send(p.address().to_string());
        }
    }
}

#[async_trait]
impl Radio for BtleRadio {
    async fn connect(&self, address: &str) -> Result<Box<dyn Link>, LinkError> {
        let lost = self.shared.lost.subscribe();
        let p = self.find(address).await?;
        if !p.is_connected().await.unwrap_or(false) {
            p.connect().await.map_err(connect_err)?;
        }
        p.discover_services().await.map_err(connect_err)?;
        let mut chars = HashMap::new();
        for c in p.characteristics() {
            if let Some(ch) = Channel::from_uuid(c.uuid) {
                chars.insert(ch, c);
            }
        }
        if chars.is_empty() {
            let _ = p.disconnect().await;
            return Err(LinkError::MissingCharacteristic);
        }
        let gone = self.shared.gone.subscribe();
        // The stream first, then subscribe: nothing sent after can be missed.
        let notes = p.notifications().await.map_err(connect_err)?;
        for c in chars.values() {
            p.subscribe(c).await.map_err(connect_err)?;
        }
        Ok(Box::new(BtleLink {
            p,
            chars,
            notes: Box::pin(notes),
            gone,
            lost,
            closed: false,
        }))
    }

    fn advertisements(&self) -> Option<broadcast::Receiver<String>> {
        Some(self.shared.seen.subscribe())
    }

    fn adapter_up(&self) -> Option<watch::Receiver<Option<bool>>> {
        Some(self.shared.up.subscribe())
    }
}

struct BtleLink {
    p: Peripheral,
    chars: HashMap<Channel, Characteristic>,
    notes: BoxStream<'static, ValueNotification>,
    gone: broadcast::Receiver<PeripheralId>,
    lost: broadcast::Receiver<()>,
    closed: bool,
}
impl Drop for BtleLink {
    /// A link dropped without `close` still lets the lock go.
    fn drop(&mut self) {
        if self.closed {
            return;
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let p = self.p.clone();
            rt.spawn(async move {
                let _ = p.disconnect().await;
            });
        }
    }
}

#[async_trait]
impl Link for BtleLink {
    async fn write(&mut self, channel: Channel, bytes: &[u8]) -> Result<(), LinkError> {
        let c = self
            .chars
            .get(&channel)
            .ok_or(LinkError::MissingCharacteristic)?;
        match self.p.write(c, bytes, WriteType::WithResponse).await {
            Ok(()) => Ok(()),
            Err(e) if self.p.is_connected().await.unwrap_or(false) => {
                Err(LinkError::Adapter(e.to_string()))
            }
            Err(_) => Err(LinkError::Disconnected),
        }
    }

    async fn next_piece(&mut self) -> Result<(Channel, Vec<u8>), LinkError> {
        let me = self.p.id();
        loop {
            tokio::select! {
                n = self.notes.next() => match n {
                    Some(n) => {
                        if let Some(ch) = Channel::from_uuid(n.uuid) {
                            return Ok((ch, n.value));
                        }
                    }
                    None => return Err(LinkError::Disconnected),
                },
                id = self.gone.recv() => match id {
                    Ok(id) if id == me => return Err(LinkError::Disconnected),
                    Err(broadcast::error::RecvError::Closed) => return Err(LinkError::Disconnected),
                    _ => {}
                },
                // The adapter (or bluetoothd) went away with the connection.
                _ = self.lost.recv() => return Err(LinkError::Disconnected),
            }
        }
    }

    async fn close(&mut self) {
        self.closed = true;
        for c in self.chars.values() {
            let _ = self.p.unsubscribe(c).await;
        }
        let _ = self.p.disconnect().await;
    }
}
