//! The Z-Wave [`LockDriver`]: one controller, the locks the interview finds.
//!
//! Concurrency model: the [`Session`] puts one frame on the air at a time.
//! Everything that waits for a node's *report* (a Get's answer, a Supervision
//! Report) waits here, outside the session, on a [`Waiters`] entry, so a slow
//! or silent lock only costs the others the airtime of its own frames.
//! Operations on one lock are serialised by that lock's own mutex.

use super::cc::{self, id, user_code, Incoming};
use super::config::ZwaveConfig;
use super::node::{Filter, Inner, Waiters};
use super::security::{Security, SecurityClass};
use super::serialapi::{self, func, Listening};
use super::session::{Session, SessionError};
use super::transport::{self, TransportError};
use crate::drivers::{DriverError, EventSink, LockDriver, LockEvent, SlotCode, SlotOp, SlotRead};
use crate::model::{DeviceInfo, DriverKind, Pin};
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A node repeats a Supervision Get whose Report it missed within its
/// transmission retries (seconds); the same session and command again within
/// this is that repeat (Supervision CC: the receiver must not carry it out twice).
const SUPERVISION_REPEAT: Duration = Duration::from_secs(30);

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

/// The Z-Wave driver. Cheap to clone; every clone drives the same controller.
#[derive(Clone)]
pub struct ZwaveDriver {
    inner: Arc<Inner>,
    /// Whether the controller's port is open (it is reopened when it closes).
    port_open: tokio::sync::watch::Receiver<bool>,
}

impl ZwaveDriver {
    /// Whether the controller's port is open now, and its changes (for health).
    pub fn port_open(&self) -> tokio::sync::watch::Receiver<bool> {
        self.port_open.clone()
    }

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
        let session = Arc::new(session);
        if config.keys.is_none() {
            tracing::warn!("no Z-Wave network keys: secure locks cannot be served");
        }
        let security = Arc::new(Security::new(
            session.clone(),
            home_id,
            own_node,
            config.keys.as_ref(),
            config.security.clone(),
        ));
        let inner = Arc::new(Inner {
            session,
            security,
            home_id,
            own_node,
            controller_version: version.version,
            config,
            nodes: Mutex::new(BTreeMap::new()),
            waiters: Waiters::default(),
            sink,
            supervision_id: AtomicU8::new(1),
            get_retries: AtomicU64::new(0),
            interviews: tokio_util::task::TaskTracker::new(),
            interview: |i, node| Box::pin(i.interview(node)),
            shutdown: CancellationToken::new(),
            netmgmt: tokio::sync::Mutex::new(()),
            netmgmt_events: Mutex::new(None),
        });
        tokio::spawn(dispatch(Arc::downgrade(&inner), inbound));
        tokio::spawn(watch_port(Arc::downgrade(&inner), port_state.clone()));
        if let Some(every) = inner.config.clock_check_interval {
            tokio::spawn(super::lock_clock::clock_keeper(
                Arc::downgrade(&inner),
                every,
                inner.shutdown.clone(),
            ));
        }
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
        Ok(ZwaveDriver {
            inner,
            port_open: port_state,
        })
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

    /// The security class a node is spoken to in, once its interview found out.
    pub fn security_class(&self, node: u8) -> Option<SecurityClass> {
        self.inner.security.node_class(node)
    }

    /// Includes one lock (put it in inclusion mode): the protocol part, the
    /// S2 or S0 bootstrap, the interview. See [`super::inclusion`].
    pub async fn include(
        &self,
        opts: super::inclusion::IncludeOptions,
    ) -> Result<super::inclusion::Included, super::inclusion::InclusionError> {
        self.inner.include(opts).await
    }

    /// Excludes one lock (put it in exclusion mode); its node id (0: it was
    /// in no network).
    pub async fn exclude(
        &self,
        timeout: Duration,
        progress: &super::inclusion::Progress,
    ) -> Result<u8, super::inclusion::InclusionError> {
        self.inner.exclude(timeout, progress).await
    }

    /// Gets retried after meeting no answer since connecting (a lossy mesh).
    pub fn get_retries(&self) -> u64 {
        self.inner.get_retries.load(Ordering::Relaxed)
    }

    /// What the security layer counted (resends, SOS, discarded reports).
    pub fn security_stats(&self) -> super::security::SecurityStats {
        self.inner.security.stats()
    }
}

impl Inner {
    /// A frame from a node: through the security layer first.
    async fn on_frame(self: &Arc<Self>, node: u8, frame: Vec<u8>) {
        if let Some((command, class)) = self.security.receive(node, frame) {
            self.on_command(node, command, class).await;
        }
    }

    /// A node spoke (in `class`): route its command to a waiter or turn it
    /// into an event. A secure-only command class in the wrong class is
    /// dropped before anything looks at it.
    async fn on_command(self: &Arc<Self>, node: u8, command: Vec<u8>, class: SecurityClass) {
        if self.device_id(node).is_none() {
            return;
        }
        if !self.security.accepts(node, &command, class) {
            tracing::warn!(
                node,
                cc = command.first().copied().unwrap_or(0),
                arrived = %class,
                "report of a securely supported command class not in the node's security class: not believed"
            );
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
        // A node asking for confirmation: confirm, then act on the inner
        // command, once: a node that missed our Supervision Report sends the
        // same session again (a keypad unlock counted twice would use up a
        // code with a use limit early), so a repeat is confirmed only.
        if let Incoming::SupervisionGet(g) = parsed {
            let now = tokio::time::Instant::now();
            let repeat = self
                .with_node(node, |n| {
                    let same = n.supervised_in.as_ref().is_some_and(|(s, c, at)| {
                        *s == g.session && *c == g.inner && now - *at < SUPERVISION_REPEAT
                    });
                    n.supervised_in = Some((g.session, g.inner.clone(), now));
                    same
                })
                .unwrap_or(false);
            let i = self.clone();
            // The answer goes back in the class the question came in.
            tokio::spawn(async move {
                let _ = i
                    .send_in(
                        node,
                        cc::supervision::report(g.session, cc::supervision::status::SUCCESS),
                        Some(class),
                    )
                    .await;
            });
            if repeat {
                tracing::debug!(
                    node,
                    session = g.session,
                    "a Supervision Get repeated: confirmed again, not acted on twice"
                );
                return;
            }
            Box::pin(self.on_command(node, g.inner, class)).await;
            return;
        }
        let taken = self.waiters.deliver(node, &command, class);
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
            Incoming::Notification(r) => self.on_notification(node, device_id, r, &command),
            Incoming::UserCode(r) => {
                let user = r.user;
                let code = super::slots::slot_content(self, node, r);
                self.slot_changed_at_lock(node, device_id, user, code)
            }
            Incoming::Credential(r) => self.credential_changed_at_lock(node, device_id, r),
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

    /// A Notification (or v1 Alarm) report, `raw` as it came.
    fn on_notification(
        self: &Arc<Self>,
        node: u8,
        device_id: String,
        r: cc::notification::Report,
        raw: &[u8],
    ) {
        use cc::notification::event;
        if let Some(seq) = r.sequence {
            // The lock missed our ack and sent the same report again: one
            // unlock, one event, one use of the code.
            let now = tokio::time::Instant::now();
            let repeat = self
                .with_node(node, |n| n.notified.repeated(seq, raw, now))
                .unwrap_or(false);
            if repeat {
                tracing::debug!(
                    node,
                    sequence = seq,
                    "a Notification report sent again: not acted on twice"
                );
                return;
            }
        }
        let r = super::reports::normalize(&r);
        if r.notification_type == Some(cc::notification::POWER_MANAGEMENT)
            && r.event == Some(cc::notification::POWER_APPLIED)
        {
            // The lock restarted: its clock may be gone.
            return self.recheck_clock(node);
        }
        if let Some(e) = super::reports::lock_event(&device_id, &r) {
            return self.emit(e);
        }
        if r.notification_type != Some(cc::notification::ACCESS_CONTROL) {
            return;
        }
        match r.event.unwrap_or(0) {
            event::NEW_USER_CODE_ADDED => match (r.user_code_report(), r.user_id()) {
                (Some(uc), _) => {
                    let user = uc.user;
                    let code = super::slots::slot_content(self, node, uc);
                    self.slot_changed_at_lock(node, device_id, user, code)
                }
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
                            Ok(uc) => {
                                let user = uc.user;
                                let code = super::slots::slot_content(&i, node, uc);
                                i.slot_changed_at_lock(node, device_id, user, code)
                            }
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
            n.walk = None;
        });
        self.emit(LockEvent::SlotsMayHaveChanged { device_id });
    }

    /// A User Credential lock said a PIN slot changed (added, modified or
    /// deleted at the lock, or by another controller).
    fn credential_changed_at_lock(
        &self,
        node: u8,
        device_id: String,
        r: cc::user_credential::CredentialReport,
    ) {
        use cc::user_credential::{credential_report as cr, TYPE_NONE, TYPE_PIN};
        let pin_or_all = r.credential_type == TYPE_PIN || r.credential_type == TYPE_NONE;
        match r.report_type {
            cr::DELETED if pin_or_all && r.slot != 0 && r.credential_type == TYPE_PIN => {
                self.with_node(node, |n| n.owners.remove(&r.slot));
                self.slot_changed_at_lock(node, device_id, r.slot, None)
            }
            // Several at once (a user's, a type's, all): read them again.
            cr::DELETED if pin_or_all => self.slots_unknown(node, device_id),
            cr::ADDED | cr::MODIFIED if r.credential_type == TYPE_PIN && r.slot != 0 => {
                let code = self
                    .with_node(node, |n| {
                        n.owners.insert(r.slot, r.user);
                        super::quirks::resolve(
                            true,
                            r.code.clone(),
                            !r.read_back,
                            n.written.get(&r.slot),
                        )
                    })
                    .flatten();
                self.slot_changed_at_lock(node, device_id, r.slot, code)
            }
            _ => {}
        }
    }

    /// Someone changed a slot at the lock (or the lock told us unasked).
    /// Nothing is announced when the lock only confirms what we already know.
    fn slot_changed_at_lock(&self, node: u8, device_id: String, slot: u32, code: Option<Pin>) {
        if slot == 0 {
            return self.slots_unknown(node, device_id);
        }
        let news = self.with_node(node, |n| {
            if let Some(w) = n.walk.as_mut().filter(|w| slot < w.next) {
                // Already walked past: the resumed walk keeps the news.
                match &code {
                    Some(c) => w.found.insert(slot, c.clone()),
                    None => w.found.remove(&slot),
                };
            }
            let Some(slots) = n.slots.as_mut() else {
                return true;
            };
            let same = slots.get(&slot) == code.as_ref();
            match &code {
                Some(c) => slots.insert(slot, c.clone()),
                None => slots.remove(&slot),
            };
            if !same {
                // Changed by someone else: no longer what lockhub wrote.
                n.written.remove(&slot);
            }
            n.slots_checksum = n.cached_checksum();
            !same
        });
        if news == Some(true) {
            let code = code.map(|code| SlotCode {
                recurring: None,
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
                    Ok((node, command)) => inner.on_frame(node, command).await,
                    Err(e) => tracing::debug!(error = %e, "bad application command"),
                }
            }
            func::ADD_NODE_TO_NETWORK | func::REMOVE_NODE_FROM_NETWORK => {
                let tx = inner.netmgmt_events.lock().unwrap().clone();
                match tx {
                    Some(tx) => {
                        let _ = tx.send((frame.func, frame.payload));
                    }
                    None => tracing::debug!(
                        func = frame.func,
                        "network management callback nobody waits for"
                    ),
                }
            }
            func::APPLICATION_UPDATE => {
                if frame.payload.first() == Some(&serialapi::update::NODE_INFO_RECEIVED) {
                    if let Some(&node) = frame.payload.get(1) {
                        inner.mark_alive(node);
                        // Unasked node information: the lock (re)started.
                        inner.recheck_clock(node);
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

    fn remember(&self, device_id: &str, slots: &[SlotCode]) {
        let Some(node) = self.node_of(device_id) else {
            return;
        };
        self.inner.with_node(node, |n| {
            n.remembered = slots.iter().map(|s| (s.slot, s.code.clone())).collect();
            // Slots read already (at the interview): recalled now.
            let sum = super::node::SlotSum::of(n.facts.as_ref());
            super::quirks::recall(n, sum);
        });
    }

    async fn read_slots(&self, device_id: &str) -> Result<Vec<SlotCode>, DriverError> {
        let read = self.read_partial(device_id).await?;
        match read.partial {
            Some(p) => Err(p.stopped),
            None => Ok(read.slots),
        }
    }

    async fn read_partial(&self, device_id: &str) -> Result<SlotRead, DriverError> {
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

    async fn set_locked(&self, device_id: &str, locked: bool) -> Result<(), DriverError> {
        let node = self.node_of(device_id).ok_or(DriverError::UnknownDevice)?;
        super::bolt::set_locked(&self.inner, node, locked).await
    }
}
