//! Inclusion and exclusion while the driver runs (it owns the serial port).
//!
//! Inclusion: AddNodeToNetwork until the controller reports the protocol
//! part done, then Stop; the security bootstrap (S2, or S0 for S0-only
//! locks, see [`super::security::bootstrap`]); then the ordinary interview,
//! which announces the lock (`Discovered`, hence `device.added`) with its
//! security class. Codes already on the lock are kept as unmanaged, as for
//! every interviewed lock.
//!
//! Exclusion: RemoveNodeFromNetwork until a node left, then Stop; the node
//! is forgotten.

use super::cc::id;
use super::node::{Filter, Inner};
use super::security::bootstrap::{self, KexReport, KeyAgreement};
use super::security::SecurityClass;
use super::serialapi::func;
use crate::drivers::DriverError;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// AddNode / RemoveNode modes and flags.
mod mode {
    pub const ANY: u8 = 0x01;
    pub const STOP: u8 = 0x05;
    pub const HIGH_POWER: u8 = 0x80;
    pub const NETWORK_WIDE: u8 = 0x40;
}

/// AddNode callback statuses.
mod add_status {
    pub const NODE_FOUND: u8 = 0x02;
    pub const ADDING_SLAVE: u8 = 0x03;
    pub const ADDING_CONTROLLER: u8 = 0x04;
    pub const PROTOCOL_DONE: u8 = 0x05;
    pub const DONE: u8 = 0x06;
    pub const FAILED: u8 = 0x07;
}

/// RemoveNode callback statuses.
mod remove_status {
    pub const REMOVING_SLAVE: u8 = 0x03;
    pub const REMOVING_CONTROLLER: u8 = 0x04;
    pub const DONE: u8 = 0x06;
    pub const FAILED: u8 = 0x07;
}

/// The DSK PIN for an S2 Authenticated / Access Control lock.
pub enum PinSource {
    /// Given up front (`--pin`).
    Given(String),
    /// Asked for once the lock's DSK is known: the request carries the DSK
    /// (its first five digits, the PIN, blank) and where to send the answer.
    Ask(mpsc::Sender<PinRequest>),
    /// None available: an authenticated lock is refused its S2 keys.
    Absent,
}

/// A PIN wanted for the lock whose DSK is `dsk` (`?????-` + the rest).
pub struct PinRequest {
    pub dsk: String,
    pub reply: oneshot::Sender<String>,
}

pub struct IncludeOptions {
    /// How long to wait for a lock in inclusion mode.
    pub timeout: Duration,
    pub pin: PinSource,
    /// Told each step as it begins.
    pub progress: Progress,
}

/// Where an inclusion or exclusion says each step as it begins, for a person
/// watching (the installer page, the CLI). Lines never hold a PIN or a key.
#[derive(Clone)]
pub struct Progress(Arc<dyn Fn(&str) + Send + Sync>);

impl Progress {
    pub fn new(f: impl Fn(&str) + Send + Sync + 'static) -> Self {
        Progress(Arc::new(f))
    }

    /// Nobody watching.
    pub fn none() -> Self {
        Progress::new(|_| {})
    }

    pub fn say(&self, line: &str) {
        (self.0)(line)
    }
}

impl Default for Progress {
    fn default() -> Self {
        Progress::none()
    }
}

/// What an inclusion ended with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Included {
    pub node_id: u8,
    pub device_id: String,
    /// The class the lock is spoken to in (`None` when it has none).
    pub security_class: String,
    /// What the lock asked for, and what it was granted.
    pub requested: Vec<String>,
    pub granted: Vec<String>,
    /// Said when the lock ends up with less than the best it could have.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Why an inclusion or exclusion did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InclusionError {
    #[error("an inclusion or exclusion is already running")]
    Busy,
    #[error("no lock showed up within {0} s (is it in inclusion/exclusion mode?)")]
    Timeout(u64),
    #[error("the controller reported failure ({0})")]
    Failed(&'static str),
    #[error("the DSK PIN must be the 5 digits printed on the lock (0 to 65535)")]
    BadPin,
    #[error("{0}")]
    Driver(#[from] DriverError),
}

fn names(c: &[SecurityClass]) -> Vec<String> {
    c.iter().map(|c| c.name().to_owned()).collect()
}

/// The highest of `granted`, in zwave-js's order.
fn highest(granted: &[SecurityClass]) -> SecurityClass {
    SecurityClass::S2
        .into_iter()
        .chain([SecurityClass::S0Legacy])
        .find(|c| granted.contains(c))
        .unwrap_or(SecurityClass::None)
}

impl Inner {
    fn start_netmgmt(&self) -> mpsc::UnboundedReceiver<(u8, Vec<u8>)> {
        let (tx, rx) = mpsc::unbounded_channel();
        *self.netmgmt_events.lock().unwrap() = Some(tx);
        rx
    }

    fn end_netmgmt(&self) {
        *self.netmgmt_events.lock().unwrap() = None;
    }

    /// The next callback of `function` with callback id `cb`, before `deadline`.
    async fn callback(
        rx: &mut mpsc::UnboundedReceiver<(u8, Vec<u8>)>,
        function: u8,
        cb: u8,
        deadline: tokio::time::Instant,
    ) -> Option<Vec<u8>> {
        loop {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some((f, p))) if f == function && p.first() == Some(&cb) => return Some(p),
                Ok(Some(_)) => continue,
                _ => return None,
            }
        }
    }

    async fn stop_netmgmt(
        &self,
        rx: &mut mpsc::UnboundedReceiver<(u8, Vec<u8>)>,
        function: u8,
    ) -> Option<Vec<u8>> {
        let cb = self.session.next_callback_id();
        if let Err(e) = self
            .session
            .request_ack_only(function, vec![mode::STOP, cb])
            .await
        {
            tracing::warn!(error = %e, "stopping inclusion/exclusion mode failed");
            return None;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        Self::callback(rx, function, cb, deadline).await
    }

    /// Includes one lock; see the module doc.
    pub(super) async fn include(
        self: &Arc<Self>,
        mut opts: IncludeOptions,
    ) -> Result<Included, InclusionError> {
        let _only_one = self.netmgmt.try_lock().map_err(|_| InclusionError::Busy)?;
        let mut rx = self.start_netmgmt();
        opts.progress.say(&format!(
            "inclusion mode on for {} s: put the lock in inclusion mode (its manual says how)",
            opts.timeout.as_secs()
        ));
        let r = self.add_node_protocol(&mut rx, opts.timeout).await;
        self.end_netmgmt();
        let (node, classes) = r?;
        tracing::info!(node, "z-wave node added; bootstrapping security");
        let offered = if classes.contains(&id::SECURITY_S2) {
            "S2"
        } else if classes.contains(&id::SECURITY_S0) {
            "S0"
        } else {
            "no security"
        };
        opts.progress.say(&format!(
            "node {node} joined; bootstrapping security (the lock offers {offered})"
        ));
        self.add_node(node);
        // No interview while the bootstrap runs (a frame from the node would start one).
        self.with_node(node, |n| {
            n.online = true;
            n.interviewing = true;
        });
        let (requested, granted, note) = if classes.contains(&id::SECURITY_S2)
            && self.security.has_keys()
        {
            self.bootstrap_s2(node, &mut opts.pin).await
        } else if classes.contains(&id::SECURITY_S0) && self.security.has_keys() {
            self.bootstrap_s0(node).await
        } else {
            let note = (classes.contains(&id::SECURITY_S2) || classes.contains(&id::SECURITY_S0))
                .then(|| "lockhub has no network keys: included without security".to_owned());
            (vec![], vec![], note)
        };
        if !granted.is_empty() {
            opts.progress.say(&format!(
                "node {node}: keys granted: {}",
                names(&granted).join(", ")
            ));
        }
        // The ordinary interview finds the class the lock now answers in.
        self.with_node(node, |n| n.interviewing = false);
        opts.progress.say(&format!(
            "node {node}: interviewing (codes, capabilities, slots)"
        ));
        self.clone().interview(node).await;
        let device_id = self.device_id(node).unwrap_or_default();
        let class = self
            .security
            .node_class(node)
            .unwrap_or(SecurityClass::None);
        let note = note.or_else(|| {
            (class != SecurityClass::S2AccessControl).then(|| {
                format!(
                    "the lock is spoken to in {class}, less than S2_AccessControl (it asked for {})",
                    if requested.is_empty() {
                        "no S2 keys".to_owned()
                    } else {
                        names(&requested).join(", ")
                    }
                )
            })
        });
        Ok(Included {
            node_id: node,
            device_id,
            security_class: class.name().to_owned(),
            requested: names(&requested),
            granted: names(&granted),
            note,
        })
    }

    /// AddNodeToNetwork up to Done: the new node and its command classes.
    async fn add_node_protocol(
        &self,
        rx: &mut mpsc::UnboundedReceiver<(u8, Vec<u8>)>,
        timeout: Duration,
    ) -> Result<(u8, Vec<u8>), InclusionError> {
        let cb = self.session.next_callback_id();
        self.session
            .request_ack_only(
                func::ADD_NODE_TO_NETWORK,
                vec![mode::ANY | mode::HIGH_POWER | mode::NETWORK_WIDE, cb],
            )
            .await
            .map_err(|e| InclusionError::Driver(DriverError::Failed(e.to_string())))?;
        let deadline = tokio::time::Instant::now() + timeout;
        let mut found: Option<(u8, Vec<u8>)> = None;
        loop {
            let Some(p) = Self::callback(rx, func::ADD_NODE_TO_NETWORK, cb, deadline).await else {
                self.stop_netmgmt(rx, func::ADD_NODE_TO_NETWORK).await;
                return Err(InclusionError::Timeout(timeout.as_secs()));
            };
            match p.get(1).copied() {
                Some(add_status::NODE_FOUND) => {}
                Some(add_status::ADDING_SLAVE | add_status::ADDING_CONTROLLER) => {
                    // [cb, status, node, len, basic, generic, specific, classes..]
                    let node = p.get(2).copied().unwrap_or(0);
                    let len = p.get(3).copied().unwrap_or(0) as usize;
                    let classes = p.get(7..(4 + len).max(7)).unwrap_or(&[]).to_vec();
                    found = Some((node, classes));
                }
                Some(add_status::PROTOCOL_DONE) => break,
                Some(add_status::DONE) => break,
                Some(add_status::FAILED) => {
                    self.stop_netmgmt(rx, func::ADD_NODE_TO_NETWORK).await;
                    return Err(InclusionError::Failed("add node"));
                }
                _ => {}
            }
        }
        let done = self.stop_netmgmt(rx, func::ADD_NODE_TO_NETWORK).await;
        let node_from_done = done
            .filter(|p| p.get(1) == Some(&add_status::DONE))
            .and_then(|p| p.get(2).copied());
        match found {
            Some((node, classes)) if node != 0 => Ok((node, classes)),
            _ => match node_from_done {
                Some(node) if node != 0 => Ok((node, Vec::new())),
                _ => Err(InclusionError::Failed("no node id")),
            },
        }
    }

    /// How long one bootstrap step may take.
    fn step(&self) -> Duration {
        self.config.report_timeout.max(Duration::from_secs(2)) * 2
    }

    /// S2 bootstrapping; returns (requested, granted, note).
    async fn bootstrap_s2(
        self: &Arc<Self>,
        node: u8,
        pin: &mut PinSource,
    ) -> (Vec<SecurityClass>, Vec<SecurityClass>, Option<String>) {
        match self.try_bootstrap_s2(node, pin).await {
            Ok((requested, granted)) => (requested, granted, None),
            Err((requested, why)) => {
                tracing::warn!(node, reason = %why, "S2 bootstrapping failed; the lock joined without S2");
                self.security.set_temp_key(node, None);
                (
                    requested,
                    vec![],
                    Some(format!("S2 bootstrapping failed: {why}")),
                )
            }
        }
    }

    #[allow(clippy::type_complexity)]
    async fn try_bootstrap_s2(
        self: &Arc<Self>,
        node: u8,
        pin: &mut PinSource,
    ) -> Result<(Vec<SecurityClass>, Vec<SecurityClass>), (Vec<SecurityClass>, String)> {
        let s2 = id::SECURITY_S2;
        let plain = Some(SecurityClass::None);
        let temp = Some(SecurityClass::Temporary);
        let step = self.step();
        let err = |requested: &[SecurityClass], e: String| (requested.to_vec(), e);
        let r = self
            .request_secure(
                node,
                bootstrap::kex_get(),
                plain,
                (s2, 0x05),
                Filter::Any,
                plain,
                step,
            )
            .await
            .map_err(|e| err(&[], format!("no KEX Report ({e})")))?;
        let offer = KexReport::parse(&r).map_err(|e| err(&[], e.to_string()))?;
        let requested = offer.keys.clone();
        if offer.schemes & bootstrap::KEX_SCHEME_1 == 0
            || offer.curves & bootstrap::CURVE_25519 == 0
        {
            let _ = self
                .send_in(node, bootstrap::kex_fail(bootstrap::fail::SCHEME), plain)
                .await;
            return Err(err(
                &requested,
                "the lock offers no KEX scheme 1 / Curve25519".into(),
            ));
        }
        // Grant every key the lock asks for (lockhub holds all four).
        let mut granted: Vec<SecurityClass> = requested
            .iter()
            .copied()
            .filter(|c| self.security.network_key(*c).is_some())
            .collect();
        let authenticated = granted.iter().any(|c| {
            matches!(
                c,
                SecurityClass::S2Authenticated | SecurityClass::S2AccessControl
            )
        });
        let pk = self
            .request_secure(
                node,
                bootstrap::kex_set(&granted),
                plain,
                (s2, 0x08),
                Filter::Any,
                plain,
                step,
            )
            .await
            .map_err(|e| err(&requested, format!("no Public Key Report ({e})")))?;
        let theirs =
            bootstrap::parse_public_key_report(&pk).map_err(|e| err(&requested, e.to_string()))?;
        let pin_value = if authenticated {
            match self.dsk_pin(&theirs, pin).await {
                Some(p) => Some(p),
                None => {
                    // Without the PIN only the unauthenticated classes can go.
                    let _ = self
                        .send_in(node, bootstrap::kex_fail(bootstrap::fail::CANCEL), plain)
                        .await;
                    return Err(err(&requested, "no valid DSK PIN".into()));
                }
            }
        } else {
            None
        };
        let agreement = KeyAgreement::new();
        self.security
            .set_temp_key(node, Some(agreement.temp_keys(&theirs, pin_value)));
        let failures_before = self.security.decode_failures(node);
        let echo = match self
            .request_secure(
                node,
                bootstrap::public_key_report(&agreement.public),
                plain,
                (s2, 0x06),
                Filter::Any,
                temp,
                step,
            )
            .await
        {
            Ok(e) => e,
            Err(e) => {
                let wrong_pin = self.security.decode_failures(node) > failures_before;
                let _ = self
                    .send_in(node, bootstrap::kex_fail(bootstrap::fail::DECRYPT), plain)
                    .await;
                return Err(err(
                    &requested,
                    if wrong_pin && authenticated {
                        "the lock's answer did not decrypt: the DSK PIN is wrong".into()
                    } else {
                        format!("no KEX Set echo ({e})")
                    },
                ));
            }
        };
        let echoed = bootstrap::parse_kex_set_echo(&echo)
            .ok_or_else(|| err(&requested, "bad KEX Set echo".into()))?;
        let mut echoed_sorted = echoed.clone();
        echoed_sorted.sort();
        granted.sort();
        if echoed_sorted != granted {
            let _ = self
                .send_in(node, bootstrap::kex_fail(bootstrap::fail::KEY), temp)
                .await;
            return Err(err(
                &requested,
                "the KEX Set echo does not repeat the granted keys".into(),
            ));
        }
        // KEX Report echo -> the lock asks for its keys one by one.
        let mut get = self
            .request_secure(
                node,
                offer.echo(),
                temp,
                (s2, 0x09),
                Filter::Any,
                temp,
                step,
            )
            .await
            .map_err(|e| err(&requested, format!("no Network Key Get ({e})")))?;
        loop {
            let class = bootstrap::parse_network_key_get(&get)
                .ok()
                .filter(|c| granted.contains(c))
                .ok_or_else(|| {
                    err(
                        &requested,
                        "the lock asked for a key it was not granted".into(),
                    )
                })?;
            let key = self
                .security
                .network_key(class)
                .ok_or_else(|| err(&requested, format!("no key for {class}")))?;
            self.request_secure(
                node,
                bootstrap::network_key_report(class, &key),
                temp,
                (s2, 0x0B),
                Filter::Any,
                Some(class),
                step,
            )
            .await
            .map_err(|e| {
                err(
                    &requested,
                    format!("no Network Key Verify for {class} ({e})"),
                )
            })?;
            // Back to the temporary key, in a new SPAN.
            self.security.reset_span(node);
            let (w_get, rx_get) = self.waiters.add_in(node, s2, 0x09, Filter::Any, temp);
            let (w_end, rx_end) = self.waiters.add_in(node, s2, 0x0C, Filter::Any, temp);
            let sent = self
                .send_in(node, bootstrap::transfer_end(true, false), temp)
                .await;
            let next = match sent {
                Err(e) => Err(e.to_string()),
                Ok(()) => tokio::select! {
                    r = rx_get => r.map(|b| (false, b)).map_err(|e| e.to_string()),
                    r = rx_end => r.map(|b| (true, b)).map_err(|e| e.to_string()),
                    _ = tokio::time::sleep(step) => Err("timeout".into()),
                },
            };
            self.waiters.remove(w_get);
            self.waiters.remove(w_end);
            match next {
                Ok((false, b)) => get = b,
                Ok((true, b)) => {
                    let (_, complete) = bootstrap::parse_transfer_end(&b)
                        .map_err(|e| err(&requested, e.to_string()))?;
                    if !complete {
                        return Err(err(
                            &requested,
                            "Transfer End without key request complete".into(),
                        ));
                    }
                    break;
                }
                Err(e) => return Err(err(&requested, format!("after Transfer End: {e}"))),
            }
        }
        self.security.set_temp_key(node, None);
        let class = highest(&granted);
        tracing::info!(node, security_class = %class, "S2 bootstrapping done");
        Ok((requested, granted))
    }

    /// The PIN for `theirs`, from the options or the asker.
    async fn dsk_pin(&self, theirs: &[u8; 32], pin: &mut PinSource) -> Option<u16> {
        let text = match pin {
            PinSource::Given(p) => p.clone(),
            PinSource::Ask(asker) => {
                let dsk = bootstrap::dsk(theirs);
                let tail = dsk.split_once('-').map(|(_, t)| t).unwrap_or("");
                let (tx, rx) = oneshot::channel();
                asker
                    .send(PinRequest {
                        dsk: format!("?????-{tail}"),
                        reply: tx,
                    })
                    .await
                    .ok()?;
                // The lock gives up after about 240 s.
                tokio::time::timeout(Duration::from_secs(240), rx)
                    .await
                    .ok()?
                    .ok()?
            }
            PinSource::Absent => return None,
        };
        bootstrap::parse_pin(&text)
    }

    /// S0 bootstrapping: scheme, then the network key under the zero key.
    async fn bootstrap_s0(
        self: &Arc<Self>,
        node: u8,
    ) -> (Vec<SecurityClass>, Vec<SecurityClass>, Option<String>) {
        let s0 = id::SECURITY_S0;
        let step = self.step();
        let plain = Some(SecurityClass::None);
        let want = vec![SecurityClass::S0Legacy];
        if let Err(e) = self
            .request_secure(
                node,
                bootstrap::s0_scheme_get(),
                plain,
                (s0, 0x05),
                Filter::Any,
                plain,
                step,
            )
            .await
        {
            return (
                want,
                vec![],
                Some(format!("S0 bootstrapping failed: no Scheme Report ({e})")),
            );
        }
        let Some(key) = self.security.network_key(SecurityClass::S0Legacy) else {
            return (want, vec![], Some("no S0 key".into()));
        };
        self.security.set_s0_zero_key(node, true);
        let r = self
            .request_secure(
                node,
                bootstrap::s0_network_key_set(&key),
                Some(SecurityClass::S0Legacy),
                (s0, 0x07),
                Filter::Any,
                Some(SecurityClass::S0Legacy),
                step,
            )
            .await;
        self.security.set_s0_zero_key(node, false);
        match r {
            Ok(_) => {
                tracing::info!(node, "S0 bootstrapping done");
                (want.clone(), want, None)
            }
            Err(e) => (
                want,
                vec![],
                Some(format!(
                    "S0 bootstrapping failed: no Network Key Verify ({e})"
                )),
            ),
        }
    }

    /// Excludes one node (any network's, as Z-Wave allows); returns its id
    /// (0 when the lock belonged to no network).
    pub(super) async fn exclude(
        self: &Arc<Self>,
        timeout: Duration,
        progress: &Progress,
    ) -> Result<u8, InclusionError> {
        let _only_one = self.netmgmt.try_lock().map_err(|_| InclusionError::Busy)?;
        let mut rx = self.start_netmgmt();
        progress.say(&format!(
            "exclusion mode on for {} s: put the lock in exclusion mode (its manual says how)",
            timeout.as_secs()
        ));
        let r = self.remove_node_protocol(&mut rx, timeout).await;
        self.end_netmgmt();
        let node = r?;
        if node != 0 {
            let device_id = self.device_id(node);
            self.nodes.lock().unwrap().remove(&node);
            self.security.forget(node);
            tracing::info!(node, "z-wave node excluded");
            if let Some(device_id) = device_id {
                self.emit(crate::drivers::LockEvent::Offline { device_id });
            }
        }
        Ok(node)
    }

    async fn remove_node_protocol(
        &self,
        rx: &mut mpsc::UnboundedReceiver<(u8, Vec<u8>)>,
        timeout: Duration,
    ) -> Result<u8, InclusionError> {
        let cb = self.session.next_callback_id();
        self.session
            .request_ack_only(
                func::REMOVE_NODE_FROM_NETWORK,
                vec![mode::ANY | mode::HIGH_POWER | mode::NETWORK_WIDE, cb],
            )
            .await
            .map_err(|e| InclusionError::Driver(DriverError::Failed(e.to_string())))?;
        let deadline = tokio::time::Instant::now() + timeout;
        let mut removed = None;
        loop {
            let Some(p) = Self::callback(rx, func::REMOVE_NODE_FROM_NETWORK, cb, deadline).await
            else {
                self.stop_netmgmt(rx, func::REMOVE_NODE_FROM_NETWORK).await;
                return Err(InclusionError::Timeout(timeout.as_secs()));
            };
            match p.get(1).copied() {
                Some(remove_status::REMOVING_SLAVE | remove_status::REMOVING_CONTROLLER) => {
                    removed = p.get(2).copied();
                }
                Some(remove_status::DONE) => {
                    removed = removed.or(p.get(2).copied());
                    break;
                }
                Some(remove_status::FAILED) => {
                    self.stop_netmgmt(rx, func::REMOVE_NODE_FROM_NETWORK).await;
                    return Err(InclusionError::Failed("remove node"));
                }
                _ => {}
            }
        }
        self.stop_netmgmt(rx, func::REMOVE_NODE_FROM_NETWORK).await;
        Ok(removed.unwrap_or(0))
    }
}
