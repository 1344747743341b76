//! [`BleDriver`]: lockhub's [`LockDriver`] for paired Nuki smart locks.
//!
//! One connection per lock at a time (a per-lock mutex) and at most
//! `max_connections` at once per adapter (a semaphore): a BLE adapter holds
//! only a few links. Each batch of slot operations is one connection; a link
//! that drops or garbles a reply is reopened once per batch and the operation
//! tried again, which is safe because every operation is idempotent here
//! (see [`super::slot_map`] for how an add whose reply was lost is found).

mod activity;

use super::keys::{KeyStore, NukiCredentials};
use super::link::{LinkError, Radio};
use super::nuki::keypad::{self, DailyLimits, KeypadCode, KeypadEntry, NAME_LEN};
use super::nuki::{NukiError, SharedKey};
use super::session::{Credentials, Session, SessionError};
use super::slot_map::{Binding, SlotMap};
use crate::drivers::{DriverError, EventSink, LockDriver, LockEvent, SlotCode, SlotOp};
use crate::model::{DeviceInfo, DriverKind, Pin, TimeWindow, WeeklySchedule};
use async_trait::async_trait;
use chrono::{NaiveDateTime, SubsecRound};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// One configured lock (also the `[[ble.locks]]` entries of the config file).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BleLockConfig {
    /// BLE address, `54:D2:72:AA:BB:CC`.
    pub address: String,
    /// lockhub's id; defaults to [`default_device_id`].
    pub device_id: Option<String>,
    pub name: Option<String>,
}

#[derive(Debug, Clone)]
pub struct BleConfig {
    pub locks: Vec<BleLockConfig>,
    /// Connections open at once on the adapter.
    pub max_connections: usize,
    pub connect_timeout: Duration,
    /// Longest wait for each message of a reply.
    pub reply_timeout: Duration,
    /// Codes the keypad holds (the Nuki API has no command to ask).
    pub keypad_capacity: u32,
    /// How long a connection stays open after a batch, so the engine's next
    /// batch for the same lock skips the connect. Given up at once when
    /// another lock needs the adapter.
    pub linger: Duration,
}

impl Default for BleConfig {
    fn default() -> Self {
        BleConfig {
            locks: Vec::new(),
            max_connections: 2,
            connect_timeout: Duration::from_secs(10),
            reply_timeout: Duration::from_secs(3),
            keypad_capacity: 100,
            linger: Duration::from_millis(500),
        }
    }
}

/// lockhub's default id for a Nuki: a UUID (version 8) built from its address,
/// stable across restarts and re-pairing.
pub fn default_device_id(address: &str) -> String {
    let mut b = [0u8; 16];
    b[..4].copy_from_slice(b"lhbl");
    let octets: Vec<u8> = address
        .split(':')
        .filter_map(|o| u8::from_str_radix(o, 16).ok())
        .collect();
    let n = octets.len().min(6);
    b[16 - n..].copy_from_slice(&octets[octets.len() - n..]);
    uuid::Builder::from_custom_bytes(b)
        .into_uuid()
        .hyphenated()
        .to_string()
}

struct LockEntry {
    device_id: String,
    address: String,
    name: String,
    /// One conversation with the lock at a time.
    busy: Arc<tokio::sync::Mutex<()>>,
}

pub struct BleDriver {
    radio: Arc<dyn Radio>,
    keys: Arc<dyn KeyStore>,
    slots: Arc<SlotMap>,
    config: BleConfig,
    locks: Vec<LockEntry>,
    online: Mutex<HashMap<String, bool>>,
    permits: Arc<Semaphore>,
    /// Connections kept open after a batch, by device id.
    idle: Arc<Mutex<HashMap<String, Parked>>>,
    /// Tells parked connections apart, so a reaper closes only its own.
    parkings: std::sync::atomic::AtomicU64,
    events: Option<EventSink>,
    /// Each lock's state and log as last read (`activity`).
    seen: Mutex<HashMap<String, activity::Seen>>,
}

struct Parked {
    conn: Conn,
    ticket: u64,
}

/// An open session that holds its adapter permit until dropped.
struct Conn {
    session: Session,
    _permit: OwnedSemaphorePermit,
    /// Opened for this call (not a lingering one): what the lock says is
    /// read on it (a reconnect).
    fresh: bool,
}

/// Why one operation failed, keeping what decides a reconnect.
enum OpError {
    /// The link dropped, timed out or garbled a reply: reconnect and retry.
    Link(SessionError),
    Final(DriverError),
}

impl From<SessionError> for OpError {
    fn from(e: SessionError) -> OpError {
        match e {
            SessionError::Lock(_) => OpError::Final(e.into()),
            other => OpError::Link(other),
        }
    }
}

impl From<DriverError> for OpError {
    fn from(e: DriverError) -> OpError {
        OpError::Final(e)
    }
}

impl From<super::slot_map::SlotMapError> for OpError {
    fn from(e: super::slot_map::SlotMapError) -> OpError {
        OpError::Final(DriverError::Failed(e.to_string()))
    }
}

impl From<OpError> for DriverError {
    fn from(e: OpError) -> DriverError {
        match e {
            OpError::Link(e) => e.into(),
            OpError::Final(e) => e,
        }
    }
}

impl BleDriver {
    pub fn new(
        config: BleConfig,
        radio: Arc<dyn Radio>,
        keys: Arc<dyn KeyStore>,
        slots: SlotMap,
        events: Option<EventSink>,
    ) -> BleDriver {
        let locks = config
            .locks
            .iter()
            .map(|l| LockEntry {
                device_id: l
                    .device_id
                    .clone()
                    .unwrap_or_else(|| default_device_id(&l.address)),
                address: l.address.to_uppercase(),
                name: l
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("Nuki {}", l.address)),
                busy: Arc::new(tokio::sync::Mutex::new(())),
            })
            .collect();
        BleDriver {
            radio,
            keys,
            slots: Arc::new(slots),
            permits: Arc::new(Semaphore::new(config.max_connections.max(1))),
            config,
            locks,
            online: Mutex::new(HashMap::new()),
            idle: Arc::new(Mutex::new(HashMap::new())),
            parkings: 0.into(),
            events,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Follows the radio's advertisements so a lock back in range is online
    /// again before the next connect (and what it says is read then), and
    /// the changes locks signal (read at once); ends with the driver.
    pub fn watch_advertisements(self: &Arc<Self>) {
        if let Some(seen) = self.radio.advertisements() {
            self.follow(seen, true);
        }
        if let Some(changes) = self.radio.changes() {
            self.follow(changes, false);
        }
        if let Some(up) = self.radio.adapter_up() {
            self.follow_adapter(up);
        }
    }

    /// Marks every lock offline whenever the radio says its adapter is absent
    /// or lost (the links died with it); the locks come back as they advertise.
    fn follow_adapter(self: &Arc<Self>, mut up: tokio::sync::watch::Receiver<Option<bool>>) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let state = *up.borrow_and_update();
                if state == Some(false) {
                    let Some(driver) = weak.upgrade() else { return };
                    driver.adapter_lost();
                }
                if up.changed().await.is_err() {
                    return;
                }
            }
        });
    }

    fn adapter_lost(&self) {
        // Lingering links ended with the adapter.
        let parked: Vec<Parked> = self.idle.lock().unwrap().drain().map(|(_, p)| p).collect();
        drop(parked);
        for l in &self.locks {
            self.set_online(&l.device_id, false);
        }
    }

    /// `presence`: an advertisement (read only when the lock was away);
    /// else a change the lock signalled (always read).
    fn follow(
        self: &Arc<Self>,
        mut from: tokio::sync::broadcast::Receiver<String>,
        presence: bool,
    ) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let address = match from.recv().await {
                    Ok(a) => a,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => return,
                };
                let Some(driver) = weak.upgrade() else { return };
                let Some(id) = driver.device_of(&address) else {
                    continue;
                };
                let back = driver.online.lock().unwrap().get(&id) == Some(&false);
                if presence {
                    driver.set_online(&id, true);
                }
                if back || !presence {
                    let d = driver.clone();
                    tokio::spawn(async move {
                        if let Err(e) = d.refresh(&id).await {
                            tracing::debug!(device_id = %id, error = %e, "nuki not read after its signal");
                        }
                    });
                }
            }
        });
    }

    /// The device id serving a BLE address, if configured.
    pub fn device_of(&self, address: &str) -> Option<String> {
        let a = address.to_uppercase();
        self.locks
            .iter()
            .find(|l| l.address == a)
            .map(|l| l.device_id.clone())
    }

    /// Marks a lock seen (an advertisement or a connect) or gone, announcing
    /// a change to the engine once.
    pub fn set_online(&self, device_id: &str, online: bool) {
        // A lock's reachability is unknown until it is first seen or missed.
        let was = self
            .online
            .lock()
            .unwrap()
            .insert(device_id.to_owned(), online);
        if was == Some(online) {
            return;
        }
        let device_id = device_id.to_owned();
        self.emit(if online {
            LockEvent::Online { device_id }
        } else {
            tracing::warn!(%device_id, "nuki out of reach");
            LockEvent::Offline { device_id }
        });
    }

    fn entry(&self, device_id: &str) -> Result<&LockEntry, DriverError> {
        self.locks
            .iter()
            .find(|l| l.device_id == device_id)
            .ok_or(DriverError::UnknownDevice)
    }

    fn credentials(&self, address: &str) -> Result<Credentials, DriverError> {
        let stored = self
            .keys
            .get(address)
            .map_err(|e| DriverError::Failed(e.to_string()))?
            .ok_or_else(|| {
                DriverError::Failed("the lock is not paired: run `lockhub ble pair`".into())
            })?;
        usable(stored)
    }

    /// A lingering connection to the lock, or a new one made with `creds`.
    async fn open(&self, lock: &LockEntry, creds: &Credentials) -> Result<Conn, DriverError> {
        let parked = self.idle.lock().unwrap().remove(&lock.device_id);
        if let Some(mut p) = parked {
            p.conn.fresh = false;
            return Ok(p.conn);
        }
        let permit = match self.permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                // Every link is taken: give up the longest-idle one, if any.
                let oldest = {
                    let mut idle = self.idle.lock().unwrap();
                    let key = idle
                        .iter()
                        .min_by_key(|(_, p)| p.ticket)
                        .map(|(k, _)| k.clone());
                    key.and_then(|k| idle.remove(&k))
                };
                if let Some(p) = oldest {
                    p.conn.session.close().await;
                }
                self.permits
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(|_| DriverError::Failed("the driver is stopping".into()))?
            }
        };
        let link = tokio::time::timeout(
            self.config.connect_timeout,
            self.radio.connect(&lock.address),
        )
        .await
        .unwrap_or(Err(LinkError::Timeout));
        match link {
            Ok(link) => {
                self.set_online(&lock.device_id, true);
                Ok(Conn {
                    session: Session::new(link, self.config.reply_timeout, Some(creds.clone())),
                    _permit: permit,
                    fresh: true,
                })
            }
            Err(e) => {
                tracing::debug!(address = %lock.address, error = %e, "nuki connect failed");
                self.set_online(&lock.device_id, false);
                Err(DriverError::Offline)
            }
        }
    }

    /// Puts on disk, in one write, the intents of the batch's adds into empty
    /// slots (an add into an occupied slot writes its own). Returns the slots
    /// whose same intent was there already (an earlier attempt whose outcome
    /// is unknown) and those announced now.
    fn write_intents(
        &self,
        address: &str,
        key: &SharedKey,
        ops: &[SlotOp],
    ) -> Result<(HashSet<u32>, HashSet<u32>), super::slot_map::SlotMapError> {
        self.slots.update(address, |m| {
            let (mut earlier, mut announced) = (HashSet::new(), HashSet::new());
            for c in ops.iter().filter_map(|op| match op {
                SlotOp::Set(c) => Some(c),
                SlotOp::Clear { .. } => None,
            }) {
                let Ok(code) = keypad::pin_to_code(&c.code) else {
                    continue;
                };
                let mark = intent(key, code);
                match m.get(&c.slot) {
                    None => {
                        announced.insert(c.slot);
                        m.insert(c.slot, Binding::intended(mark, c.window));
                    }
                    Some(b) if b.id.is_none() && b.intent.as_deref() == Some(mark.as_str()) => {
                        earlier.insert(c.slot);
                    }
                    Some(_) => {}
                }
            }
            (earlier, announced)
        })
    }

    /// Keeps a connection open for `linger` after a batch, then closes it.
    async fn park(&self, lock: &LockEntry, conn: Conn) {
        if self.config.linger.is_zero() {
            conn.session.close().await;
            flush_or_warn(&self.slots);
            return;
        }
        let ticket = self
            .parkings
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.idle
            .lock()
            .unwrap()
            .insert(lock.device_id.clone(), Parked { conn, ticket });
        // Weak: a dropped driver leaves nothing behind that writes.
        let idle = Arc::downgrade(&self.idle);
        let slots = Arc::downgrade(&self.slots);
        let device = lock.device_id.clone();
        let linger = self.config.linger;
        tokio::spawn(async move {
            tokio::time::sleep(linger).await;
            let (Some(idle), Some(slots)) = (idle.upgrade(), slots.upgrade()) else {
                return;
            };
            let mine = {
                let mut idle = idle.lock().unwrap();
                match idle.get(&device) {
                    Some(p) if p.ticket == ticket => idle.remove(&device),
                    _ => None,
                }
            };
            if let Some(p) = mine {
                p.conn.session.close().await;
            }
            // What the batches noted rides with the next intent, or goes now.
            flush_or_warn(&slots);
        });
    }

    /// Binds a fresh listing of the lock's codes to slots and reports them.
    fn absorb_listing(
        &self,
        address: &str,
        key: &SharedKey,
        entries: &[KeypadEntry],
    ) -> Vec<SlotCode> {
        let capacity = self.config.keypad_capacity;
        let bound = self.slots.note(address, |map| {
            bind_listing(map, entries, capacity, |code| intent(key, code));
            map.clone()
        });
        flush_or_warn(&self.slots);
        entries
            .iter()
            .filter(|e| e.code.enabled)
            .filter_map(|e| {
                let (slot, b) = bound.iter().find(|(_, b)| b.id == Some(e.id))?;
                Some(SlotCode {
                    recurring: e.code.daily.and_then(from_daily),
                    slot: *slot,
                    code: Pin::new(format!("{:06}", e.code.code)),
                    name: None,
                    window: reported_window(e.code.window, b.window),
                })
            })
            .collect()
    }

    async fn apply_one(
        &self,
        session: &mut Session,
        address: &str,
        key: &SharedKey,
        op: &SlotOp,
        tried_before: bool,
    ) -> Result<(), OpError> {
        match op {
            SlotOp::Set(c) => self.set(session, address, key, c, tried_before).await,
            SlotOp::Clear { slot } => self.clear(session, address, key, *slot).await,
        }
    }

    async fn set(
        &self,
        session: &mut Session,
        address: &str,
        key: &SharedKey,
        c: &SlotCode,
        tried_before: bool,
    ) -> Result<(), OpError> {
        let code = keypad::pin_to_code(&c.code)?;
        let wanted = KeypadCode {
            code,
            name: fit_name(c.name.as_deref().unwrap_or("")),
            enabled: true,
            window: c.window.map(to_lock_window),
            daily: c.recurring.map(to_daily),
        };
        let mark = intent(key, code);
        let mut before = self.slots.slots(address).remove(&c.slot);
        if let Some(Binding {
            id: None,
            intent: Some(earlier),
            ..
        }) = &before
        {
            if *earlier != mark {
                // An add of another code may have landed here: find it, so
                // it is changed rather than left behind.
                let entries = session.list_codes().await?;
                let others = self.slots.slots(address);
                before = match entries.iter().find(|e| {
                    intent(key, e.code.code) == *earlier && !bound_elsewhere(&others, e.id)
                }) {
                    Some(e) => {
                        self.bind(address, c.slot, e.id, None);
                        Some(Binding::bound(e.id, None))
                    }
                    None => None,
                };
            }
        }
        if let Some(Binding {
            id: Some(id),
            ours: true,
            ..
        }) = before
        {
            let entry = KeypadEntry {
                id,
                code: wanted.clone(),
            };
            // Once the code changes, only the binding (not the intent) can
            // find it after a crash: it must be on disk first.
            self.slots.flush()?;
            match session.update_code(&entry).await {
                Ok(()) => {
                    self.bind(address, c.slot, id, c.window);
                    return Ok(());
                }
                // The code was deleted at the lock: add it again.
                Err(SessionError::Lock(NukiError::BadParameter)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let retrying = tried_before
            && before
                .as_ref()
                .is_some_and(|b| b.id.is_none() && b.intent.as_deref() == Some(mark.as_str()));
        self.slots.update(address, |m| {
            m.insert(c.slot, Binding::intended(mark.clone(), c.window))
        })?;
        match session.add_code(&wanted).await {
            Ok(id) => {
                self.bind(address, c.slot, id, c.window);
                Ok(())
            }
            Err(SessionError::Lock(NukiError::CodeAlreadyExists)) if retrying => {
                // An earlier add landed but its reply was lost.
                self.adopt(session, address, c, &wanted).await
            }
            Err(SessionError::Lock(e)) => {
                // A clear refusal: nothing was added.
                self.slots.note(address, |m| m.remove(&c.slot));
                Err(OpError::Final(e.into()))
            }
            // Unknown outcome: keep the intent so the retry can find the code.
            Err(e) => Err(e.into()),
        }
    }

    /// Takes over the lock's entry holding `wanted`'s code (our own add whose
    /// reply was lost) into `c.slot`, bringing its name and window up to date.
    async fn adopt(
        &self,
        session: &mut Session,
        address: &str,
        c: &SlotCode,
        wanted: &KeypadCode,
    ) -> Result<(), OpError> {
        let entries = session.list_codes().await?;
        let Some(found) = entries.iter().find(|e| e.code.code == wanted.code) else {
            return Err(OpError::Link(SessionError::Lock(NukiError::Busy)));
        };
        let id = found.id;
        // A listing in between may have filed it as a stranger's.
        let stale: Vec<u32> = self.slots.note(address, |m| {
            let stale: Vec<u32> = m
                .iter()
                .filter(|(s, b)| b.id == Some(id) && **s != c.slot && !b.ours)
                .map(|(s, _)| *s)
                .collect();
            for s in &stale {
                m.remove(s);
            }
            stale
        });
        for slot in stale {
            self.emit(LockEvent::SlotChanged {
                device_id: self.device_of(address).unwrap_or_default(),
                slot,
                code: None,
            });
        }
        session
            .update_code(&KeypadEntry {
                id,
                code: wanted.clone(),
            })
            .await?;
        self.bind(address, c.slot, id, c.window);
        Ok(())
    }

    async fn clear(
        &self,
        session: &mut Session,
        address: &str,
        key: &SharedKey,
        slot: u32,
    ) -> Result<(), OpError> {
        let mut slots = self.slots.slots(address);
        let Some(b) = slots.remove(&slot) else {
            return Ok(());
        };
        let id = match (b.id, &b.intent) {
            (Some(id), _) => Some(id),
            (None, Some(mark)) => {
                // An add of unknown outcome: look for it, but never take the
                // entry another slot holds (the same PIN, moved there).
                let entries = session.list_codes().await?;
                entries
                    .iter()
                    .find(|e| intent(key, e.code.code) == *mark && !bound_elsewhere(&slots, e.id))
                    .map(|e| e.id)
            }
            (None, None) => None,
        };
        if let Some(id) = id {
            match session.remove_code(id).await {
                // Already gone (an earlier remove whose reply was lost).
                Ok(()) | Err(SessionError::Lock(NukiError::BadParameter)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        // On disk before the clear is reported done: a removal lost in a
        // crash would bring back the slot's add intent, which names the PIN
        // and so would find that PIN's next entry, in another slot.
        self.slots.update(address, |m| m.remove(&slot))?;
        Ok(())
    }

    /// Records where a code now sits (rebuilt by a listing if lost in a crash).
    fn bind(&self, address: &str, slot: u32, id: u16, window: Option<TimeWindow>) {
        self.slots
            .note(address, |m| m.insert(slot, Binding::bound(id, window)));
    }

    fn emit(&self, e: LockEvent) {
        if let Some(tx) = &self.events {
            let _ = tx.send(e);
        }
    }
}

/// Writes what batches noted (the intents are already on disk). A failure
/// costs nothing lasting: the next listing rebuilds the bindings.
fn flush_or_warn(slots: &SlotMap) {
    if let Err(e) = slots.flush() {
        tracing::warn!(error = %e, "the BLE slot map will be rebuilt from the locks");
    }
}

/// Whether an entry of the lock is another slot's (a stale intent naming
/// the same PIN must not take it).
fn bound_elsewhere(others: &BTreeMap<u32, Binding>, id: u16) -> bool {
    others.values().any(|b| b.id == Some(id))
}

/// Credentials a session can use (pairing always stores a security PIN).
fn usable(stored: NukiCredentials) -> Result<Credentials, DriverError> {
    let security_pin = stored.security_pin.ok_or_else(|| {
        DriverError::Failed("no security PIN stored for the lock: pair it again".into())
    })?;
    Ok(Credentials {
        auth_id: stored.auth_id,
        key: stored.shared_key,
        security_pin,
    })
}

/// The mark an add leaves in the slot map: an HMAC of the code under the
/// lock's key, so the file never holds a PIN.
fn intent(key: &SharedKey, code: u32) -> String {
    key.authenticator(&[b"lockhub slot intent", &code.to_le_bytes()])
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Updates one lock's bindings from a full listing: finished intents get
/// their id, bindings whose code is gone are dropped, and codes lockhub did
/// not put there get slots from the top down.
fn bind_listing(
    map: &mut BTreeMap<u32, Binding>,
    entries: &[KeypadEntry],
    capacity: u32,
    intent_of: impl Fn(u32) -> String,
) {
    let pending: Vec<u32> = map
        .iter()
        .filter(|(_, b)| b.id.is_none())
        .map(|(s, _)| *s)
        .collect();
    for slot in pending {
        let mark = map[&slot].intent.clone();
        let hit = entries.iter().find(|e| {
            mark.as_deref() == Some(intent_of(e.code.code).as_str()) && !bound_elsewhere(map, e.id)
        });
        if let Some(e) = hit {
            let b = map.get_mut(&slot).expect("pending slot");
            b.id = Some(e.id);
            b.intent = None;
        }
    }
    // Two slots can name the same id only after an adoption; keep ours.
    map.retain(|_, b| b.id.is_some_and(|id| entries.iter().any(|e| e.id == id)));
    for e in entries {
        if map.values().any(|b| b.id == Some(e.id)) {
            continue;
        }
        let slot = (1..=capacity.max(1))
            .rev()
            .chain(capacity + 1..)
            .find(|s| !map.contains_key(s))
            .expect("a free slot number");
        map.insert(slot, Binding::stranger(e.id));
    }
}

/// The lock keeps whole seconds; report lockhub's own window when the lock
/// holds exactly that, so a sub-second start does not look like a change.
fn reported_window(
    on_lock: Option<(NaiveDateTime, NaiveDateTime)>,
    asked: Option<TimeWindow>,
) -> Option<TimeWindow> {
    let on_lock = on_lock.map(|(s, e)| TimeWindow {
        starts_at: s.and_utc(),
        ends_at: e.and_utc(),
    });
    match (on_lock, asked) {
        (Some(l), Some(a))
            if l.starts_at == a.starts_at.trunc_subsecs(0)
                && l.ends_at == a.ends_at.trunc_subsecs(0) =>
        {
            Some(a)
        }
        _ => on_lock,
    }
}

/// Nuki windows are UTC wall-clock times to the second (see
/// [`KeypadCode::window`]).
fn to_lock_window(w: TimeWindow) -> (NaiveDateTime, NaiveDateTime) {
    (
        w.starts_at.trunc_subsecs(0).naive_utc(),
        w.ends_at.trunc_subsecs(0).naive_utc(),
    )
}

/// A weekly schedule as the keypad holds it: weekday bits and the times of
/// day, in the lock's local time (the property's, set in the Nuki app).
fn to_daily(w: WeeklySchedule) -> DailyLimits {
    DailyLimits {
        weekdays: w.weekdays().map(DailyLimits::bit).fold(0, |a, b| a | b),
        from: w.start_hm(),
        until: w.end_hm(),
    }
}

/// The inverse of [`to_daily`]; no weekday bit means every day. `None` for
/// limits no weekly schedule states (whole days, or an end before the start).
fn from_daily(d: DailyLimits) -> Option<WeeklySchedule> {
    use chrono::Weekday::*;
    let days = [Mon, Tue, Wed, Thu, Fri, Sat, Sun]
        .iter()
        .enumerate()
        .filter(|(_, day)| d.weekdays == 0 || d.weekdays & DailyLimits::bit(**day) != 0)
        .fold(0u8, |a, (i, _)| a | (1 << i));
    let t = |(h, m): (u8, u8)| chrono::NaiveTime::from_hms_opt(h as u32, m as u32, 0);
    let (start_time, end_time) = (t(d.from)?, t(d.until)?);
    (end_time > start_time).then_some(WeeklySchedule {
        days,
        start_time,
        end_time,
    })
}

/// Fits a name into the lock's 20 bytes without splitting a character.
fn fit_name(name: &str) -> String {
    let mut end = name.len().min(NAME_LEN);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].to_owned()
}

#[async_trait]
impl LockDriver for BleDriver {
    fn kind(&self) -> DriverKind {
        DriverKind::Ble
    }

    async fn devices(&self) -> Vec<DeviceInfo> {
        self.locks
            .iter()
            .filter(|l| match self.credentials(&l.address) {
                Ok(_) => true,
                Err(e) => {
                    tracing::warn!(address = %l.address, error = %e, "nuki left out");
                    false
                }
            })
            .map(|l| DeviceInfo {
                device_id: l.device_id.clone(),
                name: l.name.clone(),
                driver: DriverKind::Ble,
                address: l.address.clone(),
                capabilities: keypad::capabilities(self.config.keypad_capacity),
                security_class: None,
                // Weekday bits and a time of day in each keypad entry.
                native_weekly_days: 7,
            })
            .collect()
    }

    async fn read_slots(&self, device_id: &str) -> Result<Vec<SlotCode>, DriverError> {
        let lock = self.entry(device_id)?;
        let _one = lock.busy.lock().await;
        let creds = self.credentials(&lock.address)?;
        let mut last = DriverError::Offline;
        // One reconnect if the link drops or garbles the listing.
        for _ in 0..2 {
            let mut conn = self.open(lock, &creds).await?;
            let listed = conn.session.list_codes().await;
            match listed {
                Ok(entries) => {
                    let slots = self.absorb_listing(&lock.address, &creds.key, &entries);
                    if conn.fresh {
                        self.observe_on(lock, &creds, &mut conn.session, false)
                            .await;
                    }
                    self.park(lock, conn).await;
                    return Ok(slots);
                }
                Err(SessionError::Lock(e)) => {
                    self.park(lock, conn).await;
                    return Err(e.into());
                }
                Err(e) => {
                    conn.session.close().await;
                    last = e.into();
                }
            }
        }
        Err(last)
    }

    async fn apply(&self, device_id: &str, ops: &[SlotOp]) -> Vec<Result<(), DriverError>> {
        let lock = match self.entry(device_id) {
            Ok(l) => l,
            Err(e) => return vec![Err(e); ops.len()],
        };
        let _one = lock.busy.lock().await;
        let creds = match self.credentials(&lock.address) {
            Ok(c) => c,
            Err(e) => return vec![Err(e); ops.len()],
        };
        let key = &creds.key;
        let mut conn = match self.open(lock, &creds).await {
            Ok(c) => Some(c),
            Err(e) => return vec![Err(e); ops.len()],
        };
        let (earlier, announced) = match self.write_intents(&lock.address, key, ops) {
            Ok(x) => x,
            Err(e) => {
                let e = DriverError::Failed(e.to_string());
                return vec![Err(e); ops.len()];
            }
        };
        let mut reconnected = false;
        let mut results = Vec::with_capacity(ops.len());
        let mut untried = Vec::new();
        for op in ops {
            let before = earlier.contains(&op.slot());
            let mut result = match conn.as_mut() {
                Some(c) => {
                    self.apply_one(&mut c.session, &lock.address, key, op, before)
                        .await
                }
                None => {
                    untried.push(op.slot());
                    Err(OpError::Final(DriverError::Offline))
                }
            };
            if matches!(result, Err(OpError::Link(_))) && !reconnected {
                reconnected = true;
                if let Some(c) = conn.take() {
                    c.session.close().await;
                }
                conn = self.open(lock, &creds).await.ok();
                if let Some(c) = conn.as_mut() {
                    result = self
                        .apply_one(&mut c.session, &lock.address, key, op, true)
                        .await;
                }
            }
            results.push(result.map_err(DriverError::from));
        }
        // Intents of adds never sent would make a later "code exists" look like ours.
        self.slots.note(&lock.address, |m| {
            for slot in untried.iter().filter(|s| announced.contains(s)) {
                m.remove(slot);
            }
        });
        if let Some(mut c) = conn {
            if c.fresh {
                self.observe_on(lock, &creds, &mut c.session, false).await;
            }
            self.park(lock, c).await;
        } else {
            flush_or_warn(&self.slots);
        }
        results
    }

    async fn set_locked(&self, device_id: &str, locked: bool) -> Result<(), DriverError> {
        self.lock_action(device_id, locked).await
    }

    /// What the radio told of the lock (an advertisement, a connection, the
    /// adapter absent or lost); `None` until then.
    fn presence(&self, device_id: &str) -> Option<bool> {
        self.online.lock().unwrap().get(device_id).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_ids_are_stable_and_distinct() {
        let a = default_device_id("54:D2:72:AA:BB:CC");
        assert_eq!(a, default_device_id("54:d2:72:aa:bb:cc"));
        assert_ne!(a, default_device_id("54:D2:72:AA:BB:CD"));
        assert_eq!(uuid::Uuid::parse_str(&a).unwrap().get_version_num(), 8);
    }

    #[test]
    fn weekly_schedules_as_keypad_limits() {
        let w = WeeklySchedule::from_json(&serde_json::json!({
            "days_of_week": ["monday", "saturday"], "start_time": "08:15", "end_time": "17:00"
        }))
        .unwrap();
        let d = to_daily(w);
        assert_eq!(d.weekdays, 0x40 | 0x02, "-- MO TU WE TH FR SA SU");
        assert_eq!((d.from, d.until), ((8, 15), (17, 0)));
        assert_eq!(from_daily(d), Some(w));
        let every_day = from_daily(DailyLimits { weekdays: 0, ..d }).unwrap();
        assert_eq!(every_day.day_count(), 7);
    }

    #[test]
    fn names_fit_in_20_bytes() {
        assert_eq!(
            fit_name("Jane's reservation, front"),
            "Jane's reservation, "
        );
        assert_eq!(fit_name("ééééééééééé").len(), 20);
        assert_eq!(fit_name("Ünïcödé nämé ïs löng"), "Ünïcödé nämé ");
    }
}
