//! The Z-Wave [`LockDriver`]: one controller, the locks the interview finds.
//!
//! Concurrency model: the [`Session`] puts one frame on the air at a time.
//! Everything that waits for a node's *report* (a Get's answer, a Supervision
//! Report) waits here, outside the session, on a [`Waiters`] entry, so a slow
//! or silent lock only costs the others the airtime of its own frames.
//! Operations on one lock are serialised by that lock's own mutex.

use super::cc::{self, id, user_code, Encapsulation, Incoming};
use super::serialapi::{self, func, Listening, TxStatus};
use super::session::{Session, SessionConfig, SessionError};
use super::transport::{self, TransportError};
use crate::drivers::{DriverError, EventSink, LockDriver, LockEvent, SlotCode, SlotOp};
use crate::model::{DeviceInfo, DriverKind, Pin};
use async_trait::async_trait;
use chrono::FixedOffset;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{oneshot, Notify};
use tokio_util::sync::CancellationToken;

/// How config names a lock and pins its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockConfig {
    pub node_id: u8,
    pub name: Option<String>,
    /// lockhub's id for the lock; defaults to [`default_device_id`].
    pub device_id: Option<String>,
}

/// Everything the driver needs to start.
#[derive(Debug, Clone)]
pub struct ZwaveConfig {
    /// `/dev/ttyACM0`-style device or `tcp://host:port`.
    pub port: String,
    /// Names and pinned ids for locks (by node id); other locks found by the
    /// interview are served with default names and ids.
    pub locks: Vec<LockConfig>,
    pub session: SessionConfig,
    /// How long a node gets to send the report a Get asked for.
    pub report_timeout: Duration,
    /// How often an offline lock is pinged to notice it is back (None: only
    /// when it speaks up by itself or an operation reaches it).
    pub offline_ping_interval: Option<Duration>,
    /// How long `apply`/`read_slots` wait for a sleeping lock to wake up.
    pub wake_up_wait: Duration,
    /// The locks' clock offset from UTC (year-day schedules are local time).
    pub lock_utc_offset: FixedOffset,
    /// Wrap Sets in Supervision where the lock supports it.
    pub use_supervision: bool,
}

impl ZwaveConfig {
    pub fn new(port: impl Into<String>) -> Self {
        ZwaveConfig {
            port: port.into(),
            locks: Vec::new(),
            session: SessionConfig::default(),
            report_timeout: Duration::from_secs(5),
            offline_ping_interval: Some(Duration::from_secs(60)),
            wake_up_wait: Duration::from_secs(15 * 60),
            lock_utc_offset: FixedOffset::east_opt(0).expect("zero offset"),
            use_supervision: true,
        }
    }
}

/// Why the driver could not start.
#[derive(Debug, thiserror::Error)]
pub enum ZwaveError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("controller session: {0}")]
    Session(#[from] SessionError),
    #[error("controller answer: {0}")]
    Parse(#[from] serialapi::ParseError),
    #[error("configuration: {0}")]
    Config(String),
}

/// lockhub's default id for a lock: a UUID (version 8, custom) built from
/// the network's home id and the node id, so it survives restarts and
/// re-interviews and differs between networks.
pub fn default_device_id(home_id: u32, node: u8) -> String {
    let mut b = [0u8; 16];
    b[..4].copy_from_slice(b"lhzw");
    b[4..8].copy_from_slice(&home_id.to_be_bytes());
    b[15] = node;
    uuid::Builder::from_custom_bytes(b)
        .into_uuid()
        .hyphenated()
        .to_string()
}

/// What the interview learned about a lock.
#[derive(Debug, Clone, Default)]
pub(super) struct NodeFacts {
    pub classes: Vec<u8>,
    pub versions: HashMap<u8, u8>,
    pub users: u16,
    pub uc_caps: Option<user_code::Capabilities>,
    pub year_day_slots: u8,
    pub manufacturer: Option<cc::manufacturer_specific::Report>,
}

impl NodeFacts {
    pub fn supports(&self, cc: u8) -> bool {
        self.classes.contains(&cc)
    }
    pub fn version(&self, cc: u8) -> u8 {
        self.versions
            .get(&cc)
            .copied()
            .unwrap_or(u8::from(self.supports(cc)))
    }
    /// The keys the keypad has (digits when the lock does not say).
    pub fn keys(&self) -> &str {
        match &self.uc_caps {
            Some(c) if !c.keys.is_empty() => &c.keys,
            _ => "0123456789",
        }
    }
    pub fn multi_set(&self) -> bool {
        self.version(id::USER_CODE) >= 2 && self.uc_caps.as_ref().is_some_and(|c| c.multiple_set)
    }
    pub fn checksum(&self) -> bool {
        self.version(id::USER_CODE) >= 2 && self.uc_caps.as_ref().is_some_and(|c| c.checksum)
    }
}

pub(super) struct NodeState {
    pub node: u8,
    pub device_id: String,
    pub name: String,
    pub listening: Listening,
    pub facts: Option<NodeFacts>,
    pub info: Option<DeviceInfo>,
    pub online: bool,
    pub interviewing: bool,
    /// A sleeping lock is awake (between Wake Up Notification and No More
    /// Information).
    pub awake: bool,
    /// The slots as last read or written, and the checksum that goes with
    /// them; `None` until read, or after a change we could not pin down.
    pub slots: Option<BTreeMap<u32, Pin>>,
    pub slots_checksum: Option<u16>,
    /// Slots we gave a native time window (schedules enabled) since start.
    pub scheduled: std::collections::HashSet<u32>,
    pub op_lock: Arc<tokio::sync::Mutex<()>>,
    pub woke: Arc<Notify>,
}

/// Which report a waiter wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Filter {
    Any,
    /// Byte 2 equals this (user id of a v1 report, class of a version report).
    Byte2(u8),
    /// Supervision session id.
    Session(u8),
}

struct Waiter {
    id: u64,
    node: u8,
    cc: u8,
    cmd: u8,
    filter: Filter,
    tx: oneshot::Sender<Vec<u8>>,
}

#[derive(Default)]
struct Waiters {
    next: AtomicU64,
    list: Mutex<Vec<Waiter>>,
}

impl Waiters {
    fn add(&self, node: u8, cc: u8, cmd: u8, filter: Filter) -> (u64, oneshot::Receiver<Vec<u8>>) {
        let (tx, rx) = oneshot::channel();
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.list.lock().unwrap().push(Waiter {
            id,
            node,
            cc,
            cmd,
            filter,
            tx,
        });
        (id, rx)
    }

    fn remove(&self, id: u64) {
        self.list.lock().unwrap().retain(|w| w.id != id);
    }

    /// Hands `cmd` to the first waiter that wants it; false when none does.
    fn deliver(&self, node: u8, command: &[u8]) -> bool {
        let Some((cc, cmd)) = Incoming::key(command) else {
            return false;
        };
        let mut list = self.list.lock().unwrap();
        let pos = list.iter().position(|w| {
            w.node == node
                && w.cc == cc
                && w.cmd == cmd
                && match w.filter {
                    Filter::Any => true,
                    Filter::Byte2(b) => command.get(2) == Some(&b),
                    Filter::Session(s) => command.get(2).map(|b| b & 0x3F) == Some(s),
                }
        });
        match pos {
            Some(i) => {
                let w = list.swap_remove(i);
                let _ = w.tx.send(command.to_vec());
                true
            }
            None => false,
        }
    }
}

pub(super) struct Inner {
    pub session: Session,
    pub home_id: u32,
    pub own_node: u8,
    pub controller_version: String,
    pub config: ZwaveConfig,
    pub nodes: Mutex<BTreeMap<u8, NodeState>>,
    waiters: Waiters,
    sink: EventSink,
    supervision_id: AtomicU8,
    encapsulation: Encapsulation,
    pub interviews: tokio_util::task::TaskTracker,
    shutdown: CancellationToken,
}

/// The Z-Wave driver. Cheap to clone; every clone drives the same controller.
#[derive(Clone)]
pub struct ZwaveDriver {
    inner: Arc<Inner>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn map_session(e: SessionError) -> DriverError {
    match e {
        SessionError::Closed => DriverError::Offline,
        SessionError::Refused(_) => DriverError::Busy,
        SessionError::NoAck(_) | SessionError::NoResponse(_) | SessionError::NoCallback(_) => {
            DriverError::Timeout
        }
        SessionError::Malformed(m) => DriverError::Failed(m),
        SessionError::Frame(f) => DriverError::Failed(f.to_string()),
    }
}

impl ZwaveDriver {
    /// Opens the controller, reads who it is and which nodes it knows, and
    /// starts interviewing them in the background (see
    /// [`ZwaveDriver::wait_interviews`]). Locks are announced on `sink` as
    /// `Discovered` once interviewed.
    pub async fn connect(config: ZwaveConfig, sink: EventSink) -> Result<ZwaveDriver, ZwaveError> {
        let mut seen = std::collections::HashSet::new();
        for l in &config.locks {
            if l.node_id == 0 || !seen.insert(l.node_id) {
                return Err(ZwaveError::Config(format!(
                    "lock node id {} is zero or listed twice",
                    l.node_id
                )));
            }
        }
        let port = transport::open(&config.port).await?;
        let port_name = config.port.clone();
        let opener: super::session::Opener = Arc::new(move || {
            let p = port_name.clone();
            Box::pin(async move { transport::open(&p).await })
        });
        let (session, inbound, port_state) =
            Session::start_reconnecting(port, opener, config.session.clone());
        let version = serialapi::parse_version(&session.request(func::GET_VERSION, vec![]).await?)?;
        let (home_id, own_node) =
            serialapi::parse_memory_get_id(&session.request(func::MEMORY_GET_ID, vec![]).await?)?;
        let caps =
            serialapi::parse_capabilities(&session.request(func::GET_CAPABILITIES, vec![]).await?)?;
        let node_ids =
            serialapi::parse_init_data(&session.request(func::GET_INIT_DATA, vec![]).await?)?;
        tracing::info!(
            home_id = format_args!("{home_id:08x}"),
            own_node,
            version = %version.version,
            manufacturer = caps.manufacturer_id,
            nodes = node_ids.len(),
            "z-wave controller ready"
        );
        let inner = Arc::new(Inner {
            session,
            home_id,
            own_node,
            controller_version: version.version,
            config,
            nodes: Mutex::new(BTreeMap::new()),
            waiters: Waiters::default(),
            sink,
            supervision_id: AtomicU8::new(1),
            encapsulation: Encapsulation::Plain,
            interviews: tokio_util::task::TaskTracker::new(),
            shutdown: CancellationToken::new(),
        });
        tokio::spawn(dispatch(Arc::downgrade(&inner), inbound));
        tokio::spawn(watch_port(Arc::downgrade(&inner), port_state));
        if let Some(every) = inner.config.offline_ping_interval {
            tokio::spawn(pinger(
                Arc::downgrade(&inner),
                every,
                inner.shutdown.clone(),
            ));
        }
        for node in node_ids.into_iter().filter(|&n| n != own_node) {
            inner.add_node(node);
            let i = inner.clone();
            inner
                .interviews
                .spawn(async move { i.interview(node).await });
        }
        Ok(ZwaveDriver { inner })
    }

    /// Waits until every interview started so far has ended (done or given
    /// up), at most `timeout`; true when they all ended.
    pub async fn wait_interviews(&self, timeout: Duration) -> bool {
        self.inner.interviews.close();
        let done = tokio::time::timeout(timeout, self.inner.interviews.wait())
            .await
            .is_ok();
        self.inner.interviews.reopen();
        done
    }

    pub fn home_id(&self) -> u32 {
        self.inner.home_id
    }

    /// Radio frames (SendData requests) sent since connecting.
    pub fn frames_sent(&self) -> u64 {
        self.inner.session.frames_sent()
    }

    /// The controller's own node id.
    pub fn own_node(&self) -> u8 {
        self.inner.own_node
    }

    pub fn controller_version(&self) -> &str {
        &self.inner.controller_version
    }

    /// The node id serving `device_id`, if any.
    pub fn node_of(&self, device_id: &str) -> Option<u8> {
        self.inner.node_of(device_id)
    }
}

impl Inner {
    pub(super) fn emit(&self, e: LockEvent) {
        let _ = self.sink.send(e);
    }

    fn add_node(&self, node: u8) {
        let cfg = self.config.locks.iter().find(|l| l.node_id == node);
        let device_id = cfg
            .and_then(|c| c.device_id.clone())
            .unwrap_or_else(|| default_device_id(self.home_id, node));
        let name = cfg
            .and_then(|c| c.name.clone())
            .unwrap_or_else(|| format!("Z-Wave lock {node}"));
        self.nodes.lock().unwrap().entry(node).or_insert(NodeState {
            node,
            device_id,
            name,
            listening: Listening::Always,
            facts: None,
            info: None,
            online: true,
            interviewing: false,
            awake: false,
            slots: None,
            slots_checksum: None,
            scheduled: Default::default(),
            op_lock: Arc::new(tokio::sync::Mutex::new(())),
            woke: Arc::new(Notify::new()),
        });
    }

    fn node_of(&self, device_id: &str) -> Option<u8> {
        self.nodes
            .lock()
            .unwrap()
            .values()
            .find(|n| n.device_id == device_id)
            .map(|n| n.node)
    }

    pub(super) fn with_node<T>(&self, node: u8, f: impl FnOnce(&mut NodeState) -> T) -> Option<T> {
        self.nodes.lock().unwrap().get_mut(&node).map(f)
    }

    fn device_id(&self, node: u8) -> Option<String> {
        self.with_node(node, |n| n.device_id.clone())
    }

    /// The node did not acknowledge: announce Offline once.
    pub(super) fn mark_offline(&self, node: u8) {
        let changed = self.with_node(node, |n| {
            let was = n.online;
            n.online = false;
            was.then(|| n.device_id.clone())
        });
        if let Some(Some(device_id)) = changed {
            tracing::warn!(node, %device_id, "z-wave lock stopped answering");
            self.emit(LockEvent::Offline { device_id });
        }
    }

    /// The node answered: announce Online if it was offline, and finish its
    /// interview if that never completed.
    pub(super) fn mark_alive(self: &Arc<Self>, node: u8) {
        let r = self.with_node(node, |n| {
            let was_offline = !n.online;
            n.online = true;
            let reinterview = n.facts.is_none() && !n.interviewing;
            (was_offline.then(|| n.device_id.clone()), reinterview)
        });
        let Some((back, reinterview)) = r else { return };
        if let Some(device_id) = back {
            tracing::info!(node, %device_id, "z-wave lock answers again");
            self.emit(LockEvent::Online { device_id });
        }
        if reinterview {
            self.reinterview(node);
        }
    }

    /// Starts the interview of a lock whose interview never completed.
    pub(super) fn reinterview(self: &Arc<Self>, node: u8) {
        let due = self
            .with_node(node, |n| n.facts.is_none() && !n.interviewing)
            .unwrap_or(false);
        if due {
            let i = self.clone();
            self.interviews
                .spawn(async move { i.interview(node).await });
        }
    }

    /// Sends one command (no report expected) and turns the transmit status
    /// into a driver result; no retries here (the engine's backoff decides).
    pub(super) async fn send(
        self: &Arc<Self>,
        node: u8,
        command: Vec<u8>,
    ) -> Result<(), DriverError> {
        let command = self
            .encapsulation
            .encapsulate(command)
            .map_err(|e| DriverError::Failed(e.to_string()))?;
        match self.session.send_data(node, &command).await {
            Ok(TxStatus::Ok) => {
                self.mark_alive(node);
                Ok(())
            }
            Ok(TxStatus::NoAck) => {
                let asleep = self
                    .with_node(node, |n| {
                        let sleeping = n.listening == Listening::Sleeping;
                        if sleeping {
                            n.awake = false;
                        }
                        sleeping
                    })
                    .unwrap_or(false);
                if asleep {
                    // Gone back to sleep: not dead, just not listening now.
                    Err(DriverError::Timeout)
                } else {
                    self.mark_offline(node);
                    Err(DriverError::Offline)
                }
            }
            Ok(TxStatus::Fail) | Ok(TxStatus::Other(_)) => Err(DriverError::Busy),
            Err(e) => Err(map_session(e)),
        }
    }

    /// Sends `command` and waits for the node's (cc, cmd) report matching
    /// `filter`; returns the report's bytes.
    pub(super) async fn request(
        self: &Arc<Self>,
        node: u8,
        command: Vec<u8>,
        expect: (u8, u8),
        filter: Filter,
    ) -> Result<Vec<u8>, DriverError> {
        let (wid, rx) = self.waiters.add(node, expect.0, expect.1, filter);
        if let Err(e) = self.send(node, command).await {
            self.waiters.remove(wid);
            return Err(e);
        }
        match tokio::time::timeout(self.config.report_timeout, rx).await {
            Ok(Ok(report)) => Ok(report),
            _ => {
                self.waiters.remove(wid);
                Err(DriverError::Timeout)
            }
        }
    }

    /// Sends a Set, supervised where the lock supports it; `Ok(true)` when
    /// the lock confirmed it, `Ok(false)` when it could not say.
    pub(super) async fn send_set(
        self: &Arc<Self>,
        node: u8,
        command: Vec<u8>,
        supervise: bool,
    ) -> Result<bool, DriverError> {
        if !supervise {
            self.send(node, command).await?;
            return Ok(false);
        }
        let session = self.supervision_id.fetch_add(1, Ordering::Relaxed) & 0x3F;
        let wrapped = cc::supervision::get(session, &command)
            .map_err(|e| DriverError::Failed(e.to_string()))?;
        let mut report = self
            .request(
                node,
                wrapped,
                (id::SUPERVISION, cc::supervision::REPORT),
                Filter::Session(session),
            )
            .await?;
        loop {
            let r = cc::supervision::parse_report(&report)
                .map_err(|e| DriverError::Failed(e.to_string()))?;
            match r.status {
                cc::supervision::status::SUCCESS => return Ok(true),
                cc::supervision::status::FAIL => {
                    return Err(DriverError::CodeRejected(
                        "the lock reported failure".into(),
                    ))
                }
                cc::supervision::status::NO_SUPPORT => return Ok(false),
                _ if r.more_updates => {
                    // Working: the final report follows.
                    let (wid, rx) = self.waiters.add(
                        node,
                        id::SUPERVISION,
                        cc::supervision::REPORT,
                        Filter::Session(session),
                    );
                    match tokio::time::timeout(self.config.report_timeout, rx).await {
                        Ok(Ok(next)) => report = next,
                        _ => {
                            self.waiters.remove(wid);
                            return Err(DriverError::Timeout);
                        }
                    }
                }
                _ => {
                    return Err(DriverError::Failed(format!(
                        "supervision status {:#04x}",
                        r.status
                    )))
                }
            }
        }
    }

    /// Turns the interview's facts into the lock's announcement.
    pub(super) fn announce(&self, node: u8) {
        let info = self.with_node(node, |n| {
            let facts = n.facts.as_ref()?;
            let info = DeviceInfo {
                device_id: n.device_id.clone(),
                name: n.name.clone(),
                driver: DriverKind::Zwave,
                address: format!("zwave:{:08x}:{}", self.home_id, node),
                capabilities: super::interview::capabilities(facts),
            };
            n.info = Some(info.clone());
            Some(info)
        });
        if let Some(Some(info)) = info {
            self.emit(LockEvent::Discovered(info));
        }
    }

    /// A node spoke: route its command to a waiter or turn it into an event.
    async fn on_command(self: &Arc<Self>, node: u8, command: Vec<u8>) {
        let command = match self.encapsulation.decapsulate(command) {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(node, error = %e, "dropping command");
                return;
            }
        };
        if self.device_id(node).is_none() {
            return;
        }
        if command.starts_with(&[id::WAKE_UP, cc::wake_up::NOTIFICATION]) {
            // Awake before anything (a re-interview) looks at it.
            self.with_node(node, |n| n.awake = true);
        }
        self.mark_alive(node);
        let parsed = match Incoming::parse(&command) {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!(node, error = %e, "unparsable command from node");
                return;
            }
        };
        // A node asking for confirmation: confirm, then act on the inner command.
        if let Incoming::SupervisionGet(g) = parsed {
            let i = self.clone();
            tokio::spawn(async move {
                let _ = i
                    .send(
                        node,
                        cc::supervision::report(g.session, cc::supervision::status::SUCCESS),
                    )
                    .await;
            });
            Box::pin(self.on_command(node, g.inner)).await;
            return;
        }
        let taken = self.waiters.deliver(node, &command);
        let Some(device_id) = self.device_id(node) else {
            return;
        };
        match parsed {
            Incoming::Battery(b) => self.emit(LockEvent::Battery {
                device_id,
                level: b.percent(),
            }),
            Incoming::DoorLock(r) => {
                if let Some(locked) = r.locked() {
                    self.emit(LockEvent::DoorLock { device_id, locked });
                }
            }
            Incoming::WakeUpNotification => {
                let woke = self.with_node(node, |n| n.woke.clone());
                if let Some(w) = woke {
                    w.notify_waiters();
                }
            }
            _ if taken => {}
            Incoming::Notification(r) => self.on_notification(node, device_id, r),
            Incoming::UserCode(r) => self.slot_changed_at_lock(node, device_id, r.user, r.code),
            Incoming::UserCodeChecksum(sum) => {
                let known = self.with_node(node, |n| n.slots_checksum).flatten();
                if known != Some(sum) {
                    self.with_node(node, |n| n.slots = None);
                    self.emit(LockEvent::SlotsMayHaveChanged { device_id });
                }
            }
            _ => {}
        }
    }

    fn on_notification(self: &Arc<Self>, node: u8, device_id: String, r: cc::notification::Report) {
        use cc::notification::event;
        if r.notification_type != Some(cc::notification::ACCESS_CONTROL) {
            return;
        }
        match r.event.unwrap_or(0) {
            event::KEYPAD_UNLOCK => self.emit(LockEvent::KeypadUnlock {
                device_id,
                slot: r.user_id(),
            }),
            event::NEW_USER_CODE_ADDED => match (r.user_code_report(), r.user_id()) {
                (Some(uc), _) => self.slot_changed_at_lock(node, device_id, uc.user, uc.code),
                (None, Some(user)) => {
                    // Read the one slot the lock named.
                    let i = self.clone();
                    tokio::spawn(async move {
                        let res = match user_code::get(user) {
                            Ok(cmd) => i
                                .request(
                                    node,
                                    cmd,
                                    (id::USER_CODE, user_code::REPORT),
                                    Filter::Byte2(user as u8),
                                )
                                .await
                                .and_then(|b| {
                                    user_code::parse_report(&b)
                                        .map_err(|e| DriverError::Failed(e.to_string()))
                                }),
                            Err(e) => Err(DriverError::Failed(e.to_string())),
                        };
                        match res {
                            Ok(uc) => i.slot_changed_at_lock(node, device_id, uc.user, uc.code),
                            Err(_) => {
                                i.with_node(node, |n| n.slots = None);
                                i.emit(LockEvent::SlotsMayHaveChanged { device_id });
                            }
                        }
                    });
                }
                (None, None) => self.slots_unknown(node, device_id),
            },
            event::SINGLE_USER_CODE_DELETED => match r.user_id() {
                Some(user) => self.slot_changed_at_lock(node, device_id, user, None),
                None => self.slots_unknown(node, device_id),
            },
            event::ALL_USER_CODES_DELETED => self.slots_unknown(node, device_id),
            _ => {}
        }
    }

    fn slots_unknown(&self, node: u8, device_id: String) {
        self.with_node(node, |n| {
            n.slots = None;
            n.slots_checksum = None;
        });
        self.emit(LockEvent::SlotsMayHaveChanged { device_id });
    }

    /// Someone changed a slot at the lock (or the lock told us unasked).
    /// Nothing is announced when the lock only confirms what we already know.
    fn slot_changed_at_lock(&self, node: u8, device_id: String, slot: u32, code: Option<Pin>) {
        if slot == 0 {
            return self.slots_unknown(node, device_id);
        }
        let news = self.with_node(node, |n| {
            let Some(slots) = n.slots.as_mut() else {
                return true;
            };
            let same = slots.get(&slot) == code.as_ref();
            match &code {
                Some(c) => slots.insert(slot, c.clone()),
                None => slots.remove(&slot),
            };
            n.slots_checksum = Some(checksum_of(slots));
            !same
        });
        if news == Some(true) {
            let code = code.map(|code| SlotCode {
                slot,
                code,
                name: None,
                window: None,
            });
            self.emit(LockEvent::SlotChanged {
                device_id,
                slot,
                code,
            });
        }
    }
}

/// The checksum a lock reports for `slots` (all enabled).
pub(super) fn checksum_of(slots: &BTreeMap<u32, Pin>) -> u16 {
    user_code::checksum(
        slots
            .iter()
            .map(|(u, p)| (*u, user_code::status::ENABLED, p)),
    )
}

/// Reads the controller's unsolicited frames until the session closes.
async fn dispatch(
    inner: std::sync::Weak<Inner>,
    mut inbound: tokio::sync::mpsc::UnboundedReceiver<crate::drivers::zwave::frame::DataFrame>,
) {
    while let Some(frame) = inbound.recv().await {
        let Some(inner) = inner.upgrade() else { return };
        match frame.func {
            func::APPLICATION_COMMAND_HANDLER | func::BRIDGE_APPLICATION_COMMAND_HANDLER => {
                match serialapi::parse_application_command(frame.func, &frame.payload) {
                    Ok((node, command)) => inner.on_command(node, command).await,
                    Err(e) => tracing::debug!(error = %e, "bad application command"),
                }
            }
            func::APPLICATION_UPDATE => {
                if frame.payload.first() == Some(&serialapi::update::NODE_INFO_RECEIVED) {
                    if let Some(&node) = frame.payload.get(1) {
                        inner.mark_alive(node);
                    }
                }
            }
            other => tracing::trace!(func = other, "unsolicited frame ignored"),
        }
    }
    if let Some(inner) = inner.upgrade() {
        tracing::error!("z-wave controller connection lost");
        let gone: Vec<u8> = inner.nodes.lock().unwrap().keys().copied().collect();
        for n in gone {
            inner.mark_offline(n);
        }
    }
}

/// While the controller's port is gone every lock is unreachable: say so
/// once; they come back Online one by one as they answer again.
async fn watch_port(inner: std::sync::Weak<Inner>, mut state: tokio::sync::watch::Receiver<bool>) {
    while state.changed().await.is_ok() {
        let open = *state.borrow_and_update();
        let Some(inner) = inner.upgrade() else { return };
        if !open {
            let all: Vec<u8> = inner.nodes.lock().unwrap().keys().copied().collect();
            for n in all {
                inner.mark_offline(n);
            }
        }
    }
}

/// Pings offline (reachable) locks now and then with a No Operation frame, so
/// their return is noticed even when nothing else is sent to them.
async fn pinger(inner: std::sync::Weak<Inner>, every: Duration, stop: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Some(inner) = inner.upgrade() else { return };
        let (offline, unknown): (Vec<u8>, Vec<u8>) = {
            let nodes = inner.nodes.lock().unwrap();
            let reachable = || {
                nodes
                    .values()
                    .filter(|n| n.listening != Listening::Sleeping)
            };
            (
                reachable().filter(|n| !n.online).map(|n| n.node).collect(),
                reachable()
                    .filter(|n| n.online && n.facts.is_none())
                    .map(|n| n.node)
                    .collect(),
            )
        };
        for node in offline {
            let _ = inner.send(node, vec![id::NO_OPERATION]).await;
        }
        // Answers frames but never finished its interview: try again.
        for node in unknown {
            inner.reinterview(node);
        }
    }
}

#[async_trait]
impl LockDriver for ZwaveDriver {
    fn kind(&self) -> DriverKind {
        DriverKind::Zwave
    }

    async fn devices(&self) -> Vec<DeviceInfo> {
        self.inner
            .nodes
            .lock()
            .unwrap()
            .values()
            .filter_map(|n| n.info.clone())
            .collect()
    }

    async fn read_slots(&self, device_id: &str) -> Result<Vec<SlotCode>, DriverError> {
        let node = self.node_of(device_id).ok_or(DriverError::UnknownDevice)?;
        super::slots::read_slots(&self.inner, node).await
    }

    async fn apply(&self, device_id: &str, ops: &[SlotOp]) -> Vec<Result<(), DriverError>> {
        let Some(node) = self.node_of(device_id) else {
            return ops
                .iter()
                .map(|_| Err(DriverError::UnknownDevice))
                .collect();
        };
        super::slots::apply(&self.inner, node, ops).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_device_id_is_stable_and_distinct() {
        let a = default_device_id(0xC0FFEE01, 2);
        assert_eq!(a, default_device_id(0xC0FFEE01, 2));
        assert_ne!(a, default_device_id(0xC0FFEE01, 3));
        assert_ne!(a, default_device_id(0xC0FFEE02, 2));
        let u = uuid::Uuid::parse_str(&a).unwrap();
        assert_eq!(u.get_version_num(), 8);
    }

    #[test]
    fn waiters_match_by_node_command_and_filter() {
        let w = Waiters::default();
        let (_a, mut rx_a) = w.add(2, 0x63, 0x03, Filter::Byte2(5));
        let (b, _rx_b) = w.add(3, 0x80, 0x03, Filter::Any);
        assert!(!w.deliver(2, &[0x63, 0x03, 6, 1]), "other user id");
        assert!(!w.deliver(4, &[0x80, 0x03, 50]), "other node");
        assert!(w.deliver(2, &[0x63, 0x03, 5, 1, b'1', b'2', b'3', b'4']));
        assert_eq!(rx_a.try_recv().unwrap()[2], 5);
        w.remove(b);
        assert!(!w.deliver(3, &[0x80, 0x03, 50]));
    }

    #[test]
    fn checksum_of_slots_matches_user_code_checksum() {
        let mut s = BTreeMap::new();
        s.insert(1, Pin::new("1234"));
        let p = Pin::new("1234");
        assert_eq!(checksum_of(&s), user_code::checksum([(1, 1, &p)]));
        assert_eq!(checksum_of(&BTreeMap::new()), 0);
    }
}
