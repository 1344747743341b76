//! Simulated locks: configurable capabilities, latency, offline periods and
//! injected faults. They serve the demo, the tests and the benchmarks, and
//! enforce the same rules a real keypad would (lengths, constraints, duplicates,
//! slot count), so the engine is tested against refusals it did not predict.

use super::{
    DeniedReason, DriverError, EventSink, LockDriver, LockEvent, LockMethod, SlotCode, SlotOp,
};
use crate::model::{Capabilities, DeviceInfo, DriverKind, Pin};
use crate::pin;
use async_trait::async_trait;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

/// How long after its own report of a bolt move a simulated lock confirms
/// the command that moved it (a real lock's confirmation follows its report).
const CONFIRM_AFTER_REPORT: Duration = Duration::from_millis(20);

/// A fault the next operation on a simulated lock runs into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    Timeout,
    /// Done at the lock, but its answer never comes (a timeout for lockhub).
    LostReply,
    Busy,
    RejectCode,
    Duplicate,
    NoSpace,
}

/// How to build one simulated lock.
#[derive(Debug, Clone)]
pub struct SimLockSpec {
    pub device_id: String,
    pub name: String,
    pub capabilities: Capabilities,
    /// Time each operation takes on the "radio".
    pub latency: Duration,
    pub online: bool,
    /// Codes already on the lock when lockhub meets it (not lockhub's).
    pub preexisting: Vec<SlotCode>,
}

impl SimLockSpec {
    pub fn new(
        device_id: impl Into<String>,
        name: impl Into<String>,
        capabilities: Capabilities,
    ) -> Self {
        SimLockSpec {
            device_id: device_id.into(),
            name: name.into(),
            capabilities,
            latency: Duration::ZERO,
            online: true,
            preexisting: Vec::new(),
        }
    }
}

/// What a simulated lock holds and has been through.
#[derive(Debug, Clone, Default)]
pub struct SimLockState {
    pub slots: BTreeMap<u32, SlotCode>,
    pub online: bool,
    /// Every operation the lock carried out, in order (for "never applied twice").
    pub applied: Vec<SlotOp>,
    /// When each of `applied` started (wall clock), for latency benchmarks.
    pub applied_started: Vec<std::time::SystemTime>,
    /// Operations attempted, including refused and failed ones.
    pub attempts: u64,
    pub faults: VecDeque<Fault>,
    /// The simulated bolt (moved by `set_locked` and by the helpers below).
    pub locked: bool,
}

struct SimLock {
    info: DeviceInfo,
    latency: Duration,
    state: SimLockState,
}

/// A driver whose locks live in memory, or (with a state directory) on disk,
/// so that they outlive a restart of lockhub as real locks do.
pub struct SimDriver {
    locks: Mutex<HashMap<String, SimLock>>,
    sink: Mutex<Option<EventSink>>,
    state_dir: Option<std::path::PathBuf>,
}

/// A persistent lock's slots (slot, PIN) and its operation log.
pub type Persisted = (Vec<(u32, String)>, Vec<LoggedOp>);

/// One line of a simulated lock's operation log (`<device_id>.log`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LoggedOp {
    pub slot: u32,
    /// The PIN set, or `None` for a clear.
    pub code: Option<String>,
}

impl SimDriver {
    pub fn new(specs: Vec<SimLockSpec>, sink: Option<EventSink>) -> Self {
        let locks = specs
            .into_iter()
            .map(|s| {
                let state = SimLockState {
                    slots: s.preexisting.iter().map(|c| (c.slot, c.clone())).collect(),
                    online: s.online,
                    ..Default::default()
                };
                let info = DeviceInfo {
                    device_id: s.device_id.clone(),
                    name: s.name,
                    driver: DriverKind::Sim,
                    address: format!("sim:{}", s.device_id),
                    // A simulated lock that holds windows holds weekly ones too.
                    native_weekly_days: if s.capabilities.supports_native_scheduling {
                        7
                    } else {
                        0
                    },
                    capabilities: s.capabilities,
                    security_class: None,
                };
                (
                    s.device_id,
                    SimLock {
                        info,
                        latency: s.latency,
                        state,
                    },
                )
            })
            .collect();
        SimDriver {
            locks: Mutex::new(locks),
            sink: Mutex::new(sink),
            state_dir: None,
        }
    }

    /// Keep each lock's operations in `dir/<device_id>.log` (one line each,
    /// replayed at start): the locks then survive lockhub being killed, as real
    /// locks do, and "applied twice" can be checked from the log.
    pub fn persistent(
        specs: Vec<SimLockSpec>,
        sink: Option<EventSink>,
        dir: &std::path::Path,
    ) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut d = Self::new(specs, sink);
        d.state_dir = Some(dir.to_owned());
        for (id, lock) in d.locks.get_mut().unwrap().iter_mut() {
            let (slots, _) = Self::read_persisted(dir, id)?;
            if !slots.is_empty() {
                lock.state.slots = slots
                    .into_iter()
                    .map(|(slot, code)| {
                        (
                            slot,
                            SlotCode {
                                recurring: None,
                                slot,
                                code: Pin::new(code),
                                name: None,
                                window: None,
                            },
                        )
                    })
                    .collect();
            }
        }
        Ok(d)
    }

    /// A persistent lock's slots (the log replayed) and its operation log.
    pub fn read_persisted(dir: &std::path::Path, id: &str) -> std::io::Result<Persisted> {
        let log = match std::fs::read_to_string(dir.join(format!("{id}.log"))) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e),
        };
        // A line cut short by a kill is not an operation the lock carried out.
        let ops: Vec<LoggedOp> = log
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let mut slots = BTreeMap::new();
        for op in &ops {
            match &op.code {
                Some(c) => slots.insert(op.slot, c.clone()),
                None => slots.remove(&op.slot),
            };
        }
        Ok((slots.into_iter().collect(), ops))
    }

    fn persist(&self, id: &str, op: &SlotOp) {
        let Some(dir) = &self.state_dir else { return };
        use std::io::Write;
        let entry = LoggedOp {
            slot: op.slot(),
            code: match op {
                SlotOp::Set(c) => Some(c.code.expose().to_owned()),
                SlotOp::Clear { .. } => None,
            },
        };
        let write = || -> std::io::Result<()> {
            let mut line = serde_json::to_vec(&entry)?;
            line.push(b'\n');
            // One write call: a kill leaves a whole line or a cut one, never two half lines.
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join(format!("{id}.log")))?
                .write_all(&line)
        };
        if let Err(e) = write() {
            tracing::error!(device_id = id, error = %e, "simulated lock could not save its state");
        }
    }

    fn emit(&self, e: LockEvent) {
        if let Some(s) = self.sink.lock().unwrap().as_ref() {
            let _ = s.send(e);
        }
    }

    /// Send events to a new engine (the locks outlive a restart of lockhub).
    pub fn set_sink(&self, sink: EventSink) {
        *self.sink.lock().unwrap() = Some(sink);
    }

    fn with<T>(&self, id: &str, f: impl FnOnce(&mut SimLock) -> T) -> Option<T> {
        self.locks.lock().unwrap().get_mut(id).map(f)
    }

    /// A copy of the lock's state, for tests and the demo.
    pub fn state(&self, id: &str) -> Option<SimLockState> {
        self.with(id, |l| l.state.clone())
    }

    pub fn set_online(&self, id: &str, online: bool) {
        if self.with(id, |l| l.state.online = online).is_some() {
            let device_id = id.to_owned();
            self.emit(if online {
                LockEvent::Online { device_id }
            } else {
                LockEvent::Offline { device_id }
            });
        }
    }

    /// The next operations on the lock run into these faults, one each.
    pub fn inject(&self, id: &str, faults: impl IntoIterator<Item = Fault>) {
        self.with(id, |l| l.state.faults.extend(faults));
    }

    /// Someone changes (`Some`) or deletes (`None`) a code at the keypad.
    pub fn keypad_change(&self, id: &str, slot: u32, code: Option<Pin>) {
        let changed = self.with(id, |l| match &code {
            Some(pin) => {
                let entry = l.state.slots.entry(slot).or_insert_with(|| SlotCode {
                    recurring: None,
                    slot,
                    code: pin.clone(),
                    name: None,
                    window: None,
                });
                entry.code = pin.clone();
                Some(entry.clone())
            }
            None => {
                l.state.slots.remove(&slot);
                None
            }
        });
        if let Some(code) = changed {
            self.emit(LockEvent::SlotChanged {
                device_id: id.to_owned(),
                slot,
                code,
            });
        }
    }

    /// The lock reports its battery level (percent).
    pub fn report_battery(&self, id: &str, level: u8) {
        self.emit(LockEvent::Battery {
            device_id: id.to_owned(),
            level,
        });
    }

    /// The lock warns its battery is low (or `critical`), without a level.
    pub fn battery_warning(&self, id: &str, critical: bool) {
        self.emit(LockEvent::BatteryLow {
            device_id: id.to_owned(),
            critical,
        });
    }

    /// Someone opens the lock with the code in `slot`.
    pub fn keypad_unlock(&self, id: &str, slot: u32) {
        self.operate(id, false, LockMethod::Keycode, Some(slot));
    }

    /// The bolt is moved at the lock (by hand, by its auto-lock, by a code).
    pub fn operate(&self, id: &str, locked: bool, method: LockMethod, slot: Option<u32>) {
        if self.with(id, |l| l.state.locked = locked).is_some() {
            self.emit(LockEvent::Operated {
                device_id: id.to_owned(),
                locked,
                method,
                slot,
            });
        }
    }

    /// Someone is turned away at the keypad.
    pub fn access_denied(&self, id: &str, reason: DeniedReason, slot: Option<u32>) {
        self.emit(LockEvent::AccessDenied {
            device_id: id.to_owned(),
            reason,
            slot,
        });
    }

    /// The door sensor opens or closes.
    pub fn door(&self, id: &str, open: bool) {
        self.emit(LockEvent::Door {
            device_id: id.to_owned(),
            open,
        });
    }

    fn apply_one(lock: &mut SimLock, op: &SlotOp) -> Result<(), DriverError> {
        lock.state.attempts += 1;
        if !lock.state.online {
            return Err(DriverError::Offline);
        }
        if let Some(f) = lock.state.faults.pop_front() {
            if f == Fault::LostReply {
                // The same attempt, done, and its answer lost.
                lock.state.attempts -= 1;
                let _ = Self::apply_one(lock, op);
                return Err(DriverError::Timeout);
            }
            return Err(match f {
                Fault::Timeout => DriverError::Timeout,
                Fault::LostReply => unreachable!("handled above"),
                Fault::Busy => DriverError::Busy,
                Fault::RejectCode => DriverError::CodeRejected("refused by the keypad".into()),
                Fault::Duplicate => DriverError::DuplicateCode,
                Fault::NoSpace => DriverError::NoSpace,
            });
        }
        let caps = &lock.info.capabilities;
        match op {
            SlotOp::Set(code) => {
                if code.slot == 0 || code.slot > caps.max_active_codes_supported {
                    return Err(DriverError::NoSpace);
                }
                let others: Vec<Pin> = lock
                    .state
                    .slots
                    .values()
                    .filter(|c| c.slot != code.slot)
                    .map(|c| c.code.clone())
                    .collect();
                let view = pin::LockView::new(caps, &others);
                match pin::check(code.code.expose(), &view) {
                    Ok(()) => {}
                    Err(pin::Refusal::DuplicateCode) => return Err(DriverError::DuplicateCode),
                    Err(r) => return Err(DriverError::CodeRejected(r.to_string())),
                }
                let mut stored = code.clone();
                if !caps.supports_native_scheduling {
                    stored.window = None;
                }
                lock.state.slots.insert(code.slot, stored);
            }
            SlotOp::Clear { slot } => {
                lock.state.slots.remove(slot);
            }
        }
        lock.state.applied.push(op.clone());
        Ok(())
    }
}

#[async_trait]
impl LockDriver for SimDriver {
    fn kind(&self) -> DriverKind {
        DriverKind::Sim
    }

    async fn devices(&self) -> Vec<DeviceInfo> {
        let mut v: Vec<DeviceInfo> = self
            .locks
            .lock()
            .unwrap()
            .values()
            .map(|l| l.info.clone())
            .collect();
        v.sort_by(|a, b| a.device_id.cmp(&b.device_id));
        v
    }

    /// A simulated lock knows whether it is switched on.
    fn presence(&self, device_id: &str) -> Option<bool> {
        self.with(device_id, |l| l.state.online)
    }

    async fn read_slots(&self, device_id: &str) -> Result<Vec<SlotCode>, DriverError> {
        let (latency, online) = self
            .with(device_id, |l| (l.latency, l.state.online))
            .ok_or(DriverError::UnknownDevice)?;
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        if !online {
            return Err(DriverError::Offline);
        }
        self.with(device_id, |l| l.state.slots.values().cloned().collect())
            .ok_or(DriverError::UnknownDevice)
    }

    async fn apply(&self, device_id: &str, ops: &[SlotOp]) -> Vec<Result<(), DriverError>> {
        let Some(latency) = self.with(device_id, |l| l.latency) else {
            return ops
                .iter()
                .map(|_| Err(DriverError::UnknownDevice))
                .collect();
        };
        let mut out = Vec::with_capacity(ops.len());
        for op in ops {
            let started = std::time::SystemTime::now();
            if !latency.is_zero() {
                tokio::time::sleep(latency).await;
            }
            out.push(
                self.with(device_id, |l| {
                    let r = Self::apply_one(l, op);
                    if r.is_ok() {
                        l.state.applied_started.push(started);
                        self.persist(device_id, op);
                    }
                    r
                })
                .unwrap_or(Err(DriverError::UnknownDevice)),
            );
        }
        out
    }

    async fn set_locked(&self, device_id: &str, locked: bool) -> Result<(), DriverError> {
        let latency = self
            .with(device_id, |l| l.latency)
            .ok_or(DriverError::UnknownDevice)?;
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        let r = self
            .with(device_id, |l| {
                l.state.attempts += 1;
                if !l.info.capabilities.supports_remote_lock {
                    return Err(DriverError::Unsupported(
                        "this simulated lock has no motor".into(),
                    ));
                }
                if !l.state.online {
                    return Err(DriverError::Offline);
                }
                let fault = l.state.faults.pop_front();
                match fault {
                    None | Some(Fault::LostReply) => {}
                    Some(Fault::Timeout) => return Err(DriverError::Timeout),
                    Some(_) => return Err(DriverError::Busy),
                }
                l.state.locked = locked;
                Ok(fault)
            })
            .unwrap_or(Err(DriverError::UnknownDevice))?;
        // Like a real lock, it tells of the bolt's move on its own, before
        // the command's confirmation reaches lockhub.
        self.emit(LockEvent::DoorLock {
            device_id: device_id.to_owned(),
            locked,
        });
        tokio::time::sleep(CONFIRM_AFTER_REPORT).await;
        match r {
            Some(Fault::LostReply) => Err(DriverError::Timeout),
            _ => Ok(()),
        }
    }
}
