//! The security layer, between the controller session and the command
//! classes: commands go down through [`Security::send`] and come up through
//! [`Security::receive`], and the nonce traffic of S0 and S2 stays in here,
//! so no command class code ever sees a nonce.
//!
//! - [`keys`]: the network keys file;
//! - [`crypto`]: AES, CMAC, CCM, OFB, CBC-MAC (RustCrypto), S2's CKDF and CTR_DRBG;
//! - [`s0`]: Security CC frames and our nonces;
//! - [`s2`]: Security 2 CC frames, SPAN, extensions, sequence numbers.
//!
//! Each node is spoken to in its highest granted class, for the command
//! classes it supports only securely (the interview learns both, see
//! [`Security::set_node`]); everything else goes in plaintext, as zwave-js
//! does. A report of a secure-only command class that arrives in any other
//! class is not believed ([`Security::accepts`]): anyone nearby could forge
//! a plaintext "user code deleted".
//!
//! Resynchronisation: a node that cannot decrypt our frame answers with a
//! Nonce Report (SOS). The SPAN starts over from its new entropy input and
//! the frame is sent again, once; a node that never decrypted the first
//! copy carries the command out once.

pub mod bootstrap;
pub mod crypto;
pub mod keys;
pub mod s0;
pub mod s2;

use super::serialapi::TxStatus;
use super::session::{Session, SessionError};
use crypto::S2Keys;
use s2::KeyRing;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

pub use keys::{KeysError, NetworkKey, NetworkKeys};

/// A security class, as zwave-js names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum SecurityClass {
    /// Plaintext.
    #[default]
    None,
    S0Legacy,
    S2Unauthenticated,
    S2Authenticated,
    S2AccessControl,
    /// The temporary key of a node being bootstrapped (never granted).
    Temporary,
}

impl SecurityClass {
    /// The S2 classes, highest first.
    pub const S2: [SecurityClass; 3] = [
        SecurityClass::S2AccessControl,
        SecurityClass::S2Authenticated,
        SecurityClass::S2Unauthenticated,
    ];

    /// zwave-js's name (`S2_AccessControl`, ..., `None`).
    pub fn name(self) -> &'static str {
        match self {
            SecurityClass::None => "None",
            SecurityClass::S0Legacy => "S0_Legacy",
            SecurityClass::S2Unauthenticated => "S2_Unauthenticated",
            SecurityClass::S2Authenticated => "S2_Authenticated",
            SecurityClass::S2AccessControl => "S2_AccessControl",
            SecurityClass::Temporary => "Temporary",
        }
    }

    pub fn is_s2(self) -> bool {
        Self::S2.contains(&self)
    }

    /// The bit of this class in KEX Report / KEX Set.
    pub fn kex_bit(self) -> u8 {
        match self {
            SecurityClass::S2Unauthenticated => 0x01,
            SecurityClass::S2Authenticated => 0x02,
            SecurityClass::S2AccessControl => 0x04,
            SecurityClass::S0Legacy => 0x80,
            SecurityClass::None | SecurityClass::Temporary => 0,
        }
    }
}

impl std::fmt::Display for SecurityClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a secure command could not be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecurityError {
    #[error("{0}")]
    Session(#[from] SessionError),
    #[error("node {node} sent no nonce")]
    NoNonce { node: u8 },
    #[error("no network key for {0} (zwave.keys_file)")]
    NoKey(SecurityClass),
    #[error("S2: {0}")]
    S2(#[from] s2::S2Error),
}

/// Timing of the nonce round trips.
#[derive(Debug, Clone)]
pub struct SecurityTiming {
    /// How long a node gets to answer our Nonce Get (asked twice).
    pub nonce_timeout: Duration,
    /// How long a nonce we gave out stays good (S0; zwave-js: 5 s).
    pub s0_nonce_lifetime: Duration,
    /// A Nonce Report (SOS) this soon after our frame means the node could
    /// not decrypt it: it is sent again.
    pub resync_window: Duration,
}

impl Default for SecurityTiming {
    fn default() -> Self {
        SecurityTiming {
            nonce_timeout: Duration::from_secs(2),
            s0_nonce_lifetime: Duration::from_secs(5),
            resync_window: Duration::from_secs(2),
        }
    }
}

struct Ring(Vec<(SecurityClass, S2Keys)>);

impl s2::KeyRing for Ring {
    fn keys(&self, class: SecurityClass) -> Option<&S2Keys> {
        self.0.iter().find(|(c, _)| *c == class).map(|(_, k)| k)
    }
}

/// The network's keys plus one node's temporary key while it is bootstrapped.
struct NodeRing<'a> {
    ring: &'a Ring,
    temp: Option<&'a S2Keys>,
}

impl s2::KeyRing for NodeRing<'_> {
    fn keys(&self, class: SecurityClass) -> Option<&S2Keys> {
        match class {
            SecurityClass::Temporary => self.temp,
            c => s2::KeyRing::keys(self.ring, c),
        }
    }
}

struct LastSent {
    command: Vec<u8>,
    class: SecurityClass,
    at: Instant,
    resent: bool,
}

/// What the layer knows about one node.
#[derive(Default)]
struct NodeSec {
    /// Its highest granted class; `None` until the interview found out.
    granted: Option<SecurityClass>,
    /// The command classes it supports only securely.
    secure_ccs: Vec<u8>,
    s2: s2::Peer,
    s0_ours: s0::Nonces,
    last_sent: Option<LastSent>,
    /// S2 bootstrapping: the temporary key.
    temp: Option<S2Keys>,
    /// S0 bootstrapping: send under the all-zero temporary key.
    s0_zero_key: bool,
    /// Frames from the node that did not decrypt.
    decode_failures: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NonceKind {
    S0,
    S2,
}

struct NonceWaiter {
    node: u8,
    kind: NonceKind,
    tx: oneshot::Sender<Vec<u8>>,
}

/// Counters for tests and the benchmark.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SecurityStats {
    /// Frames sent again after the node asked for a new SPAN.
    pub resent: u64,
    /// Nonce Reports (SOS) we sent because a frame did not decrypt.
    pub sos_sent: u64,
    /// Reports not believed (secure-only class, wrong security class).
    pub discarded: u64,
}

/// The security layer of one controller.
pub struct Security {
    session: Arc<Session>,
    home_id: u32,
    own_node: u8,
    ring: Ring,
    keys: Option<NetworkKeys>,
    s0: Option<s0::S0Keys>,
    timing: SecurityTiming,
    nodes: Mutex<HashMap<u8, NodeSec>>,
    waiters: Mutex<Vec<NonceWaiter>>,
    tx_locks: Mutex<HashMap<u8, Arc<tokio::sync::Mutex<()>>>>,
    stats: Mutex<SecurityStats>,
}

impl Security {
    /// Without `keys` only plaintext nodes can be served.
    pub fn new(
        session: Arc<Session>,
        home_id: u32,
        own_node: u8,
        keys: Option<&NetworkKeys>,
        timing: SecurityTiming,
    ) -> Security {
        let ring = Ring(
            keys.map(|k| {
                SecurityClass::S2
                    .iter()
                    .map(|&c| (c, crypto::network_keys(k.get(c).expect("S2 key").expose())))
                    .collect()
            })
            .unwrap_or_default(),
        );
        Security {
            session,
            home_id,
            own_node,
            ring,
            keys: keys.cloned(),
            s0: keys.map(|k| s0::S0Keys::new(k.s0_legacy.expose())),
            timing,
            nodes: Mutex::new(HashMap::new()),
            waiters: Mutex::new(Vec::new()),
            tx_locks: Mutex::new(HashMap::new()),
            stats: Mutex::new(SecurityStats::default()),
        }
    }

    /// Whether keys were given (secure nodes can be served).
    pub fn has_keys(&self) -> bool {
        self.s0.is_some()
    }

    pub fn stats(&self) -> SecurityStats {
        *self.stats.lock().unwrap()
    }

    /// What the interview learned: the node's highest granted class and the
    /// command classes it supports only in that class.
    pub fn set_node(&self, node: u8, class: SecurityClass, secure_ccs: Vec<u8>) {
        let mut nodes = self.nodes.lock().unwrap();
        let n = nodes.entry(node).or_default();
        n.granted = Some(class);
        n.secure_ccs = secure_ccs;
    }

    /// The node's highest granted class, once known.
    pub fn node_class(&self, node: u8) -> Option<SecurityClass> {
        self.nodes
            .lock()
            .unwrap()
            .get(&node)
            .and_then(|n| n.granted)
    }

    /// Forgets a node (excluded or gone).
    pub fn forget(&self, node: u8) {
        self.nodes.lock().unwrap().remove(&node);
    }

    /// S2 bootstrapping: frames to and from `node` may use `temp` (class
    /// [`SecurityClass::Temporary`]); `None` ends it. The SPAN starts over.
    pub fn set_temp_key(&self, node: u8, temp: Option<S2Keys>) {
        self.with(node, |n| {
            n.temp = temp;
            n.s2.reset_span();
        });
    }

    /// S0 bootstrapping: our S0 frames to `node` use the all-zero key.
    pub fn set_s0_zero_key(&self, node: u8, on: bool) {
        self.with(node, |n| n.s0_zero_key = on);
    }

    /// Starts the SPAN with `node` over (the next frame asks for a nonce).
    pub fn reset_span(&self, node: u8) {
        self.with(node, |n| n.s2.reset_span());
    }

    /// How many frames from `node` did not decrypt so far.
    pub fn decode_failures(&self, node: u8) -> u64 {
        self.with(node, |n| n.decode_failures)
    }

    /// The key of `class`, for the Network Key Report of a bootstrap.
    pub fn network_key(&self, class: SecurityClass) -> Option<[u8; 16]> {
        let keys = self.keys.as_ref()?;
        keys.get(class).map(|k| *k.expose())
    }

    /// The class `command` goes to `node` in: its highest granted class for
    /// a command class it supports only securely (also inside Supervision),
    /// otherwise plaintext.
    pub fn class_for(&self, node: u8, command: &[u8]) -> SecurityClass {
        let nodes = self.nodes.lock().unwrap();
        let Some(n) = nodes.get(&node) else {
            return SecurityClass::None;
        };
        let Some(class) = n.granted.filter(|c| *c != SecurityClass::None) else {
            return SecurityClass::None;
        };
        let inner = match command {
            [0x6C, 0x01, _, _, cc, ..] => Some(*cc),
            _ => None,
        };
        let secure = command.first().is_some_and(|cc| n.secure_ccs.contains(cc))
            || inner.is_some_and(|cc| n.secure_ccs.contains(&cc));
        if secure {
            class
        } else {
            SecurityClass::None
        }
    }

    /// Whether a command that arrived in `arrived` may be believed: not when
    /// the node supports its class only securely and it came in another
    /// class, and nothing S0 from a node granted S2.
    pub fn accepts(&self, node: u8, command: &[u8], arrived: SecurityClass) -> bool {
        let ok = {
            let nodes = self.nodes.lock().unwrap();
            match nodes.get(&node).and_then(|n| n.granted.map(|g| (g, n))) {
                None | Some((SecurityClass::None, _)) => true,
                Some((granted, n)) => {
                    if granted.is_s2() && arrived == SecurityClass::S0Legacy {
                        false
                    } else {
                        let cc = command.first().copied().unwrap_or(0);
                        !(n.secure_ccs.contains(&cc) && arrived != granted)
                    }
                }
            }
        };
        if !ok {
            self.stats.lock().unwrap().discarded += 1;
        }
        ok
    }

    fn tx_lock(&self, node: u8) -> Arc<tokio::sync::Mutex<()>> {
        self.tx_locks
            .lock()
            .unwrap()
            .entry(node)
            .or_default()
            .clone()
    }

    fn add_waiter(&self, node: u8, kind: NonceKind) -> oneshot::Receiver<Vec<u8>> {
        let (tx, rx) = oneshot::channel();
        let mut w = self.waiters.lock().unwrap();
        w.retain(|x| !x.tx.is_closed());
        w.push(NonceWaiter { node, kind, tx });
        rx
    }

    /// Hands a nonce to whoever waits for it; false when nobody does.
    fn deliver(&self, node: u8, kind: NonceKind, nonce: Vec<u8>) -> bool {
        let mut w = self.waiters.lock().unwrap();
        let Some(i) = w.iter().position(|x| x.node == node && x.kind == kind) else {
            return false;
        };
        w.swap_remove(i).tx.send(nonce).is_ok()
    }

    /// Sends `command` to `node` in `class`; the nonce exchange it needs is
    /// done here. The transmit status is that of the command's own frame.
    pub async fn send(
        self: &Arc<Self>,
        node: u8,
        command: Vec<u8>,
        class: SecurityClass,
    ) -> Result<TxStatus, SecurityError> {
        match class {
            SecurityClass::None => Ok(self.session.send_data(node, &command).await?),
            SecurityClass::S0Legacy => self.send_s0(node, command).await,
            _ => self.send_s2(node, command, class, false).await,
        }
    }

    /// Asks `node` for a nonce (twice at most); `Ok(None)` when the Nonce
    /// Get itself did not go through (the status says why).
    async fn fetch_nonce(
        &self,
        node: u8,
        kind: NonceKind,
    ) -> Result<Result<Vec<u8>, TxStatus>, SecurityError> {
        for _ in 0..2 {
            let rx = self.add_waiter(node, kind);
            let get = match kind {
                NonceKind::S0 => s0::nonce_get(),
                NonceKind::S2 => self.with(node, |n| n.s2.nonce_get()),
            };
            let st = self.session.send_data(node, &get).await?;
            if st != TxStatus::Ok {
                return Ok(Err(st));
            }
            if let Ok(Ok(nonce)) = tokio::time::timeout(self.timing.nonce_timeout, rx).await {
                return Ok(Ok(nonce));
            }
            tracing::debug!(node, ?kind, "no nonce from the node; asking again");
        }
        Err(SecurityError::NoNonce { node })
    }

    fn with<T>(&self, node: u8, f: impl FnOnce(&mut NodeSec) -> T) -> T {
        f(self.nodes.lock().unwrap().entry(node).or_default())
    }

    async fn send_s0(
        self: &Arc<Self>,
        node: u8,
        command: Vec<u8>,
    ) -> Result<TxStatus, SecurityError> {
        let keys = if self.with(node, |n| n.s0_zero_key) {
            s0::S0Keys::new(&[0; 16])
        } else {
            self.s0
                .clone()
                .ok_or(SecurityError::NoKey(SecurityClass::S0Legacy))?
        };
        let lock = self.tx_lock(node);
        let _guard = lock.lock().await;
        let rn = match self.fetch_nonce(node, NonceKind::S0).await? {
            Ok(n) => n,
            Err(st) => return Ok(st),
        };
        let rn: [u8; 8] = rn.try_into().expect("nonce reports carry 8 bytes");
        let sn: [u8; 8] = rand::random();
        let frame = s0::encapsulate(&keys, self.own_node, node, &sn, &rn, &command);
        Ok(self.session.send_data(node, &frame).await?)
    }

    async fn send_s2(
        self: &Arc<Self>,
        node: u8,
        command: Vec<u8>,
        class: SecurityClass,
        resend: bool,
    ) -> Result<TxStatus, SecurityError> {
        let have = self.with(node, |n| {
            NodeRing {
                ring: &self.ring,
                temp: n.temp.as_ref(),
            }
            .keys(class)
            .is_some()
        });
        if !have {
            return Err(SecurityError::NoKey(class));
        }
        let lock = self.tx_lock(node);
        let _guard = lock.lock().await;
        let ready = self.with(node, |n| match &n.s2.span {
            s2::Span::RemoteEi(_) => true,
            s2::Span::Established { class: c, .. } => *c == class,
            _ => false,
        });
        if !ready {
            if let Err(st) = self.fetch_nonce(node, NonceKind::S2).await? {
                return Ok(st);
            }
        }
        let sender_ei: [u8; 16] = {
            use rand::RngCore;
            let mut b = [0u8; 16];
            rand::rngs::OsRng.fill_bytes(&mut b);
            b
        };
        let frame = self.with(node, |n| {
            let ring = NodeRing {
                ring: &self.ring,
                temp: n.temp.as_ref(),
            };
            let f = n.s2.encapsulate(
                &ring,
                class,
                self.own_node,
                node,
                self.home_id,
                &command,
                &[],
                sender_ei,
            )?;
            n.last_sent = Some(LastSent {
                command: command.clone(),
                class,
                at: Instant::now(),
                resent: resend,
            });
            Ok::<_, SecurityError>(f)
        })?;
        Ok(self.session.send_data(node, &frame).await?)
    }

    /// Sends a plaintext frame of the layer's own (a nonce report) without
    /// holding up the caller.
    fn reply(self: &Arc<Self>, node: u8, frame: Vec<u8>) {
        let s = self.clone();
        tokio::spawn(async move {
            if let Err(e) = s.session.send_data(node, &frame).await {
                tracing::debug!(node, error = %e, "nonce report not sent");
            }
        });
    }

    fn fresh_ei() -> [u8; 16] {
        use rand::RngCore;
        let mut b = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut b);
        b
    }

    /// A frame from `node`: the nonce traffic is answered here; the command
    /// inside (or the plaintext command) comes back with the class it
    /// arrived in. `None`: nothing for the command classes.
    pub fn receive(self: &Arc<Self>, node: u8, frame: Vec<u8>) -> Option<(Vec<u8>, SecurityClass)> {
        match (frame.first().copied(), frame.get(1).copied()) {
            (Some(0x9F), Some(c)) => self.receive_s2(node, c, frame),
            (Some(0x98), Some(c)) => self.receive_s0(node, c, frame),
            _ => Some((frame, SecurityClass::None)),
        }
    }

    fn receive_s2(
        self: &Arc<Self>,
        node: u8,
        c: u8,
        frame: Vec<u8>,
    ) -> Option<(Vec<u8>, SecurityClass)> {
        use s2::cmd;
        if self.ring.0.is_empty() {
            tracing::debug!(node, "S2 frame, but no network keys");
            return None;
        }
        match c {
            cmd::NONCE_GET => {
                let seq = *frame.get(2)?;
                let report = self.with(node, |n| {
                    n.s2.accept_sequence(seq).ok()?;
                    Some(n.s2.nonce_report_sos(Self::fresh_ei()))
                });
                match report {
                    Some(r) => self.reply(node, r),
                    None => tracing::debug!(node, seq, "duplicate S2 nonce get dropped"),
                }
                None
            }
            cmd::NONCE_REPORT => {
                let r = match s2::parse_nonce_report(&frame) {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::debug!(node, error = %e, "bad S2 nonce report");
                        return None;
                    }
                };
                if let Some(rei) = r.receiver_ei {
                    let fresh = self.with(node, |n| {
                        if n.s2.accept_sequence(r.sequence).is_err() {
                            return false;
                        }
                        n.s2.span = s2::Span::RemoteEi(rei);
                        true
                    });
                    if fresh && !self.deliver(node, NonceKind::S2, rei.to_vec()) {
                        self.resync(node);
                    }
                }
                if r.mos {
                    tracing::debug!(
                        node,
                        "node reports its multicast state out of sync (lockhub sends no multicast)"
                    );
                }
                None
            }
            cmd::MESSAGE_ENCAPSULATION => {
                let opened = self.with(node, |n| {
                    let mut classes: Vec<SecurityClass> = match n.granted {
                        Some(g) if g.is_s2() && n.temp.is_none() => vec![g],
                        _ => SecurityClass::S2.to_vec(),
                    };
                    if n.temp.is_some() {
                        classes.insert(0, SecurityClass::Temporary);
                    }
                    let ring = NodeRing {
                        ring: &self.ring,
                        temp: n.temp.as_ref(),
                    };
                    let r = n.s2.decapsulate(
                        &ring,
                        &classes,
                        node,
                        self.own_node,
                        self.home_id,
                        &frame,
                    );
                    if matches!(r, Err(s2::S2Error::CannotDecode | s2::S2Error::NoSpan)) {
                        n.decode_failures += 1;
                    }
                    r
                });
                match opened {
                    Ok(o) => (!o.command.is_empty()).then_some((o.command, o.class)),
                    Err(s2::S2Error::Duplicate(seq)) => {
                        tracing::debug!(node, seq, "duplicate S2 frame dropped");
                        None
                    }
                    Err(e @ (s2::S2Error::CannotDecode | s2::S2Error::NoSpan)) => {
                        tracing::debug!(node, error = %e, "S2 frame not decrypted; asking for a new SPAN");
                        let r = self.with(node, |n| n.s2.nonce_report_sos(Self::fresh_ei()));
                        self.stats.lock().unwrap().sos_sent += 1;
                        self.reply(node, r);
                        None
                    }
                    Err(e) => {
                        tracing::debug!(node, error = %e, "S2 frame dropped");
                        None
                    }
                }
            }
            // Only meaningful encrypted (it says what is secure).
            cmd::COMMANDS_SUPPORTED_REPORT => None,
            // KEX and the other plaintext S2 commands (inclusion).
            _ => Some((frame, SecurityClass::None)),
        }
    }

    /// The node could not decrypt our last frame: send it again in a new
    /// SPAN (once, and only if it was ours just now).
    fn resync(self: &Arc<Self>, node: u8) {
        let again = self.with(node, |n| match &mut n.last_sent {
            Some(l) if !l.resent && l.at.elapsed() < self.timing.resync_window => {
                l.resent = true;
                Some((l.command.clone(), l.class))
            }
            _ => None,
        });
        let Some((command, class)) = again else {
            return;
        };
        tracing::debug!(node, "node lost the SPAN; sending the last frame again");
        self.stats.lock().unwrap().resent += 1;
        let s = self.clone();
        tokio::spawn(async move {
            if let Err(e) = s.send_s2(node, command, class, true).await {
                tracing::debug!(node, error = %e, "resend after resync failed");
            }
        });
    }

    fn receive_s0(
        self: &Arc<Self>,
        node: u8,
        c: u8,
        frame: Vec<u8>,
    ) -> Option<(Vec<u8>, SecurityClass)> {
        use s0::cmd;
        let Some(keys) = self.s0.clone() else {
            tracing::debug!(node, "S0 frame, but no network keys");
            return None;
        };
        match c {
            cmd::NONCE_GET => {
                let n = self.with(node, |n| n.s0_ours.issue(self.timing.s0_nonce_lifetime));
                self.reply(node, s0::nonce_report(&n));
                None
            }
            cmd::NONCE_REPORT => {
                match s0::parse_nonce_report(&frame) {
                    Ok(n) => {
                        if !self.deliver(node, NonceKind::S0, n.to_vec()) {
                            tracing::debug!(node, "S0 nonce nobody asked for");
                        }
                    }
                    Err(e) => tracing::debug!(node, error = %e, "bad S0 nonce report"),
                }
                None
            }
            cmd::MESSAGE_ENCAPSULATION | cmd::MESSAGE_ENCAPSULATION_NONCE_GET => {
                let opened = self.with(node, |n| {
                    s0::decapsulate(&keys, &mut n.s0_ours, node, self.own_node, &frame)
                });
                if c == cmd::MESSAGE_ENCAPSULATION_NONCE_GET {
                    let n = self.with(node, |n| n.s0_ours.issue(self.timing.s0_nonce_lifetime));
                    self.reply(node, s0::nonce_report(&n));
                }
                match opened {
                    Ok(command) => Some((command, SecurityClass::S0Legacy)),
                    Err(e) => {
                        tracing::debug!(node, error = %e, "S0 frame dropped");
                        None
                    }
                }
            }
            cmd::COMMANDS_SUPPORTED_REPORT => None,
            _ => Some((frame, SecurityClass::None)),
        }
    }
}
