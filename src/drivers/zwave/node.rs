//! The driver's shared state: the nodes it knows ([`NodeState`], with the
//! interview's [`NodeFacts`]), the [`Waiters`] for reports (`waiters`), and [`Inner`],
//! the handle every part of the driver works through (send a command, wait
//! for a report, mark a node online or offline).
//!
//! The interview, the slot code and the driver all import from here and
//! nothing here imports them: the interview is handed in as a function
//! (see [`Inner::reinterview`]).

use super::cc::{self, id, user_code, user_credential};
use super::config::{LockQuirks, ZwaveConfig};
use super::lock_clock::ClockKind;
use super::security::{Security, SecurityClass, SecurityError};
use super::serialapi::{Listening, TxStatus};
use super::session::{Session, SessionError};
pub(super) use super::waiters::{Filter, Waiters};
use crate::drivers::{DriverError, EventSink, LockEvent, SlotOp};
use crate::model::{Capabilities, CodeConstraint, DeviceInfo, DriverKind, Pin};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

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
    /// Schedule Entry Lock week-day slots per user (recurring codes).
    pub week_day_slots: u8,
    pub manufacturer: Option<cc::manufacturer_specific::Report>,
    /// The highest security class the node was granted (the command
    /// classes it supports only there are the security layer's business).
    pub security: SecurityClass,
    /// How lockhub sets the lock's clock (see [`super::lock_clock`]).
    pub clock: ClockKind,
    /// Set when the lock speaks User Credential: then it is driven by it.
    pub credentials: Option<CredentialFacts>,
    /// What config says about this lock.
    pub quirks: LockQuirks,
}

/// What a User Credential lock said about its users and PIN codes.
#[derive(Debug, Clone, Default)]
pub(super) struct CredentialFacts {
    pub users: user_credential::UserCapabilities,
    pub pin: user_credential::CredentialType,
    pub checksum: bool,
}

impl NodeFacts {
    /// One week-day slot per weekday of a recurring code (`super::weekly`).
    pub fn native_weekly_days(&self) -> u8 {
        if self.supports(id::SCHEDULE_ENTRY_LOCK) {
            self.week_day_slots.min(7)
        } else {
            0
        }
    }

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
        match &self.credentials {
            Some(c) => c.checksum,
            None => {
                self.version(id::USER_CODE) >= 2
                    && self.uc_caps.as_ref().is_some_and(|c| c.checksum)
            }
        }
    }
    /// The code lengths the lock takes: what it says (User Credential), else
    /// config's, else the User Code CC's 4 to 10. Never past the public API's 20.
    pub fn code_lengths(&self) -> std::ops::RangeInclusive<usize> {
        let (min, max) = match (&self.credentials, self.quirks.code_lengths) {
            (Some(c), _) if c.pin.min_len > 0 && c.pin.max_len >= c.pin.min_len => {
                (c.pin.min_len, c.pin.max_len)
            }
            (_, Some((min, max))) if min > 0 && max >= min => (min, max),
            _ => (user_code::MIN_CODE_LEN as u8, user_code::MAX_CODE_LEN as u8),
        };
        min.min(20) as usize..=max.min(20) as usize
    }
    /// Sets go out wrapped in Supervision: the lock supports it, and
    /// neither the driver's nor this lock's config says no.
    pub fn supervise(&self, globally: bool) -> bool {
        globally && self.quirks.supervision != Some(false) && self.supports(id::SUPERVISION)
    }
    /// The lock takes its time zone (Schedule Entry Lock Time Offset, v2+).
    pub fn time_offset(&self) -> bool {
        self.supports(id::SCHEDULE_ENTRY_LOCK) && self.version(id::SCHEDULE_ENTRY_LOCK) >= 2
    }
    /// The lock can hold a year-day window at the right local hour: year-day
    /// slots, a clock with a date that lockhub sets, and its time zone.
    pub fn native_windows(&self) -> bool {
        self.year_day_slots > 0 && self.clock == ClockKind::TimeParameters && self.time_offset()
    }

    /// The capabilities lockhub sees, from the interview's facts.
    pub fn capabilities(&self) -> Capabilities {
        let keys = self.keys();
        let mut code_constraints = Vec::new();
        let lacks = |cs: &str| cs.chars().all(|c| !keys.contains(c));
        if lacks("0789") {
            code_constraints.push(CodeConstraint::CannotContain0789);
        } else if lacks("089") {
            code_constraints.push(CodeConstraint::CannotContain089);
        } else if lacks("0") {
            code_constraints.push(CodeConstraint::NoZeros);
        }
        Capabilities {
            supported_code_lengths: self.code_lengths().map(|l| l as u8).collect(),
            code_constraints,
            max_active_codes_supported: self.users as u32,
            // Schedule Entry Lock speaks of User Code user ids.
            supports_native_scheduling: self.credentials.is_none() && self.native_windows(),
            supports_backup_access_code_pool: false,
            can_program_online_access_codes: true,
            supports_remote_lock: self.supports(id::DOOR_LOCK),
        }
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
    /// lockhub set the lock's clock and time zone since start.
    pub clock_set: bool,
    /// The lock masks codes on read-back (detected, or config says so).
    pub masked: bool,
    /// What lockhub wrote in each slot and the lock confirmed: what a
    /// masked slot is taken to hold (see `quirks`).
    pub written: BTreeMap<u32, Pin>,
    /// User Credential: the user owning each occupied PIN slot.
    pub owners: BTreeMap<u32, u32>,
    /// A slot walk that stopped part way (a Get met no answer): the next
    /// one resumes here instead of starting again.
    pub walk: Option<Walk>,
    /// Slots we gave week-day schedules (recurring codes) since start.
    pub weekly: std::collections::HashSet<u32>,
    /// The node's last Supervision Get to us (session, command, when): the
    /// same again soon is its retransmission, confirmed but not acted on.
    pub supervised_in: Option<(u8, Vec<u8>, tokio::time::Instant)>,
    /// Notification v3+ reports lately, by sequence number (`reports::Repeats`).
    pub notified: super::reports::Repeats,
    /// What the engine's store says the slots held before a restart: for
    /// a masked lock's hidden slots, once confirmed (`quirks::recall`).
    pub remembered: BTreeMap<u32, Pin>,
    pub op_lock: Arc<tokio::sync::Mutex<()>>,
    pub woke: Arc<Notify>,
}

impl NodeState {
    /// The checksum the lock should report for the cached slots (User Code
    /// or User Credential's), `None` when a slot's code is unknown (masked).
    pub fn cached_checksum(&self) -> Option<u16> {
        let slots = self.slots.as_ref()?;
        if slots.values().any(|p| p.expose() == super::quirks::MASKED) {
            return None;
        }
        Some(SlotSum::of(self.facts.as_ref()).compute(slots))
    }
}

/// The checksum a lock keeps over its slots: User Code's (over every user
/// code), or User Credential's over its PIN credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SlotSum {
    UserCode,
    PinCredential,
}

impl SlotSum {
    pub fn of(facts: Option<&NodeFacts>) -> SlotSum {
        match facts.and_then(|f| f.credentials.as_ref()) {
            Some(_) => SlotSum::PinCredential,
            None => SlotSum::UserCode,
        }
    }

    /// What the lock should report for `slots`.
    pub fn compute(self, slots: &BTreeMap<u32, Pin>) -> u16 {
        match self {
            SlotSum::UserCode => checksum_of(slots),
            SlotSum::PinCredential => user_credential::checksum(slots.iter().map(|(s, p)| (*s, p))),
        }
    }
}

/// How far a slot walk got: the slots read so far and where to go on.
#[derive(Debug, Clone, Default)]
pub(super) struct Walk {
    pub next: u32,
    pub found: BTreeMap<u32, Pin>,
    pub owners: BTreeMap<u32, u32>,
}

impl Walk {
    /// The walk a read left part way (the next read goes on from there),
    /// else a new one from slot 1.
    pub fn resume(inner: &Inner, node: u8) -> Walk {
        inner
            .with_node(node, |n| n.walk.take())
            .flatten()
            .unwrap_or(Walk {
                next: 1,
                ..Default::default()
            })
    }
}

/// AddNode / RemoveNode callbacks: (function, payload).
pub(super) type NetMgmtSender = tokio::sync::mpsc::UnboundedSender<(u8, Vec<u8>)>;

pub(super) struct Inner {
    pub session: Arc<Session>,
    /// S0/S2 between these commands and the session.
    pub security: Arc<Security>,
    pub home_id: u32,
    pub own_node: u8,
    pub controller_version: String,
    pub config: ZwaveConfig,
    pub nodes: Mutex<BTreeMap<u8, NodeState>>,
    pub waiters: Waiters,
    pub sink: EventSink,
    pub supervision_id: AtomicU8,
    /// Gets asked again after meeting no answer (see `retry`).
    pub get_retries: AtomicU64,
    pub interviews: tokio_util::task::TaskTracker,
    /// Runs a node's interview (the driver hands in `interview::run`, so this
    /// module needs no import of it).
    pub interview: fn(Arc<Inner>, u8) -> futures::future::BoxFuture<'static, ()>,
    pub shutdown: CancellationToken,
    /// One inclusion or exclusion at a time.
    pub netmgmt: tokio::sync::Mutex<()>,
    /// Where AddNode / RemoveNode callbacks go while one runs: (function, payload).
    pub netmgmt_events: Mutex<Option<NetMgmtSender>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub(super) fn map_session(e: SessionError) -> DriverError {
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

impl Inner {
    pub(super) fn emit(&self, e: LockEvent) {
        let _ = self.sink.send(e);
    }

    pub(super) fn add_node(&self, node: u8) {
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
            clock_set: false,
            masked: self.config.quirks_of(node).masked_pins == Some(true),
            written: BTreeMap::new(),
            owners: BTreeMap::new(),
            walk: None,
            weekly: Default::default(),
            supervised_in: None,
            notified: Default::default(),
            remembered: BTreeMap::new(),
            op_lock: Arc::new(tokio::sync::Mutex::new(())),
            woke: Arc::new(Notify::new()),
        });
    }

    pub(super) fn node_of(&self, device_id: &str) -> Option<u8> {
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

    pub(super) fn device_id(&self, node: u8) -> Option<String> {
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
            self.interviews.spawn((self.interview)(self.clone(), node));
        }
    }

    /// Sends one command (no report expected) and turns the transmit status
    /// into a driver result; no retries here (the engine's backoff decides).
    pub(super) async fn send(
        self: &Arc<Self>,
        node: u8,
        command: Vec<u8>,
    ) -> Result<(), DriverError> {
        self.send_in(node, command, None).await
    }

    /// [`Inner::send`] in a given security class (`None`: the one the
    /// security layer picks for the command).
    pub(super) async fn send_in(
        self: &Arc<Self>,
        node: u8,
        command: Vec<u8>,
        class: Option<SecurityClass>,
    ) -> Result<(), DriverError> {
        let class = class.unwrap_or_else(|| self.security.class_for(node, &command));
        match self.security.send(node, command, class).await {
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
            Err(SecurityError::Session(e)) => Err(map_session(e)),
            Err(SecurityError::NoNonce { .. }) => Err(DriverError::Timeout),
            Err(e) => Err(DriverError::Failed(e.to_string())),
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
        self.request_in(node, command, expect, filter, None).await
    }

    /// [`Inner::request`] in a given security class.
    pub(super) async fn request_in(
        self: &Arc<Self>,
        node: u8,
        command: Vec<u8>,
        expect: (u8, u8),
        filter: Filter,
        class: Option<SecurityClass>,
    ) -> Result<Vec<u8>, DriverError> {
        self.request_secure(
            node,
            command,
            class,
            expect,
            filter,
            None,
            self.config.report_timeout,
        )
        .await
    }

    /// The general request: sent in `class` (`None`: the layer's choice),
    /// answered by a report that arrived in `answer_class` (`None`: any the
    /// trust rule accepts), within `timeout`.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn request_secure(
        self: &Arc<Self>,
        node: u8,
        command: Vec<u8>,
        class: Option<SecurityClass>,
        expect: (u8, u8),
        filter: Filter,
        answer_class: Option<SecurityClass>,
        timeout: std::time::Duration,
    ) -> Result<Vec<u8>, DriverError> {
        let (wid, rx) = self
            .waiters
            .add_in(node, expect.0, expect.1, filter, answer_class);
        if let Err(e) = self.send_in(node, command, class).await {
            self.waiters.remove(wid);
            return Err(e);
        }
        match tokio::time::timeout(timeout, rx).await {
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

    /// Keeps the slot cache (and the checksum that goes with it) in step with
    /// what we wrote.
    pub(super) fn remember(&self, node: u8, op: &SlotOp) {
        self.with_node(node, |n| {
            match op {
                SlotOp::Set(c) => n.written.insert(c.slot, c.code.clone()),
                SlotOp::Clear { slot } => n.written.remove(slot),
            };
            if let Some(w) = n.walk.as_mut() {
                // A walk that resumes must not bring back what was there before.
                if op.slot() < w.next {
                    match op {
                        SlotOp::Set(c) => w.found.insert(c.slot, c.code.clone()),
                        SlotOp::Clear { slot } => w.found.remove(slot),
                    };
                }
            }
            if let Some(slots) = n.slots.as_mut() {
                match op {
                    SlotOp::Set(c) => slots.insert(c.slot, c.code.clone()),
                    SlotOp::Clear { slot } => slots.remove(slot),
                };
            }
            // The sum of a slot we cannot see is not ours to compute.
            if n.slots.is_some() {
                n.slots_checksum = n.cached_checksum();
            }
        });
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
                capabilities: facts.capabilities(),
                security_class: Some(facts.security.name().to_owned()),
                native_weekly_days: facts.native_weekly_days(),
            };
            n.info = Some(info.clone());
            Some(info)
        });
        if let Some(Some(info)) = info {
            self.emit(LockEvent::Discovered(info));
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
    fn checksum_of_slots_matches_user_code_checksum() {
        let mut s = BTreeMap::new();
        s.insert(1, Pin::new("1234"));
        let p = Pin::new("1234");
        assert_eq!(checksum_of(&s), user_code::checksum([(1, 1, &p)]));
        assert_eq!(checksum_of(&BTreeMap::new()), 0);
    }
}
