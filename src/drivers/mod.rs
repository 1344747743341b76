//! The boundary between the engine and the radios.
//!
//! A driver serves many locks (a Z-Wave controller's nodes, a BLE adapter's
//! Nukis, a set of simulated locks). It knows nothing of MQTT, SQL or access
//! codes as the cloud sees them: only slots, PINs and time windows. The engine
//! decides what goes into which slot and when; a driver only carries it out and
//! says whether a failure is worth retrying.

pub mod ble;
pub mod sim;
pub mod zwave;

use crate::model::{DeviceInfo, DriverKind, Pin, TimeWindow, WeeklySchedule};
use async_trait::async_trait;
use std::collections::BTreeSet;

/// One code as it sits (or should sit) in a slot of a lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotCode {
    /// 1-based slot number on the lock.
    pub slot: u32,
    pub code: Pin,
    /// The name as the lock shows it (already fitted to the lock's limits).
    pub name: Option<String>,
    /// The window the lock enforces itself (native scheduling), if any.
    pub window: Option<TimeWindow>,
    /// The weekly schedule the lock enforces itself (lockhub's recurring
    /// codes, where the lock can hold one), within `window` if that is set.
    pub recurring: Option<WeeklySchedule>,
}

/// One change to a lock's slots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotOp {
    /// Put this code in its slot (overwriting what lockhub had there).
    Set(SlotCode),
    /// Empty the slot.
    Clear { slot: u32 },
}

impl SlotOp {
    pub fn slot(&self) -> u32 {
        match self {
            SlotOp::Set(c) => c.slot,
            SlotOp::Clear { slot } => *slot,
        }
    }
}

/// What a read of a lock's slots found: the occupied slots among those it
/// read, and (for a read that stopped part way) which slots those were.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotRead {
    /// Occupied slots, as the lock reports them (only known slots).
    pub slots: Vec<SlotCode>,
    /// `None`: every slot was read (a slot not in `slots` is empty).
    pub partial: Option<PartialRead>,
}

/// A read that stopped part way (a lossy mesh): the slots it read, and why
/// it stopped. A slot outside `known` may hold anything, a code included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartialRead {
    pub known: BTreeSet<u32>,
    pub stopped: DriverError,
}

impl SlotRead {
    /// A read of every slot.
    pub fn whole(slots: Vec<SlotCode>) -> Self {
        SlotRead {
            slots,
            partial: None,
        }
    }

    /// Whether the read tells what `slot` holds.
    pub fn knows(&self, slot: u32) -> bool {
        self.partial
            .as_ref()
            .is_none_or(|p| p.known.contains(&slot))
    }
}

/// Why a driver could not do what was asked. `is_transient` tells the engine
/// whether to retry later (with backoff) or to record a final error.
/// Messages never contain a PIN.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DriverError {
    #[error("the lock is offline")]
    Offline,
    #[error("the lock is busy")]
    Busy,
    #[error("the lock did not answer in time")]
    Timeout,
    #[error("the lock rejected the code: {0}")]
    CodeRejected(String),
    #[error("the lock already holds the same code in another slot")]
    DuplicateCode,
    #[error("the lock has no free slot")]
    NoSpace,
    #[error("no such device on this driver")]
    UnknownDevice,
    /// The lock answered, but in a form lockhub cannot read (a firmware or
    /// layout it does not know). Retried with backoff like a busy lock, and
    /// shown on the device as `lock_protocol_error`.
    #[error("the lock's reply could not be read: {0}")]
    Protocol(String),
    /// The lock (or its driver) cannot do this at all (e.g. lock remotely).
    #[error("the lock cannot do this: {0}")]
    Unsupported(String),
    #[error("{0}")]
    Failed(String),
}

impl DriverError {
    /// Worth trying again later: the lock may answer then.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            DriverError::Offline
                | DriverError::Busy
                | DriverError::Timeout
                | DriverError::Protocol(_)
        )
    }
}

/// How a lock's bolt was moved: the public API's `method` of `lock.locked` /
/// `lock.unlocked`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMethod {
    /// A code entered at the keypad.
    Keycode,
    /// By hand (thumb turn, key).
    Manual,
    /// The lock relocked itself (auto-lock).
    Automatic,
    /// The lock said it moved but not how (e.g. by another controller).
    Unknown,
    /// By lockhub (`locks/lock_door`, `locks/unlock_door`).
    Seamapi,
}

impl LockMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            LockMethod::Keycode => "keycode",
            LockMethod::Manual => "manual",
            LockMethod::Automatic => "automatic",
            LockMethod::Unknown => "unknown",
            LockMethod::Seamapi => "seamapi",
        }
    }
}

/// Why a lock turned someone away at its keypad (lockhub's `reason` on
/// `lock.access_denied`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeniedReason {
    /// A PIN the lock does not hold.
    InvalidCode,
    /// A code the lock holds, outside its time window.
    OutsideSchedule,
    /// A code the lock holds but has disabled.
    CodeDisabled,
    /// Too many wrong PINs: the keypad locked itself for a while.
    TooManyAttempts,
}

impl DeniedReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DeniedReason::InvalidCode => "invalid_code",
            DeniedReason::OutsideSchedule => "outside_schedule",
            DeniedReason::CodeDisabled => "code_disabled",
            DeniedReason::TooManyAttempts => "too_many_attempts",
        }
    }
}

/// Something a lock told its driver, unprompted.
#[derive(Debug, Clone, PartialEq)]
pub enum LockEvent {
    /// A lock was found (or re-interviewed); its capabilities may have changed.
    Discovered(DeviceInfo),
    Online {
        device_id: String,
    },
    Offline {
        device_id: String,
    },
    /// The bolt was moved, and the lock said how; with the slot of the code
    /// used where the lock says.
    Operated {
        device_id: String,
        locked: bool,
        method: LockMethod,
        slot: Option<u32>,
    },
    /// Someone was turned away at the keypad; the slot where the lock says
    /// which of its codes it was.
    AccessDenied {
        device_id: String,
        reason: DeniedReason,
        slot: Option<u32>,
    },
    /// The lock's door sensor: open or closed.
    Door {
        device_id: String,
        open: bool,
    },
    /// The lock reports being tampered with (cover removed, forced).
    Tampered {
        device_id: String,
    },
    /// A slot was changed at the lock itself (not by lockhub): the new content,
    /// or `None` when it was cleared.
    SlotChanged {
        device_id: String,
        slot: u32,
        code: Option<SlotCode>,
    },
    /// The lock's slots may have changed in ways the driver cannot pin down
    /// (e.g. a changed user-code checksum): the engine should read them again.
    SlotsMayHaveChanged {
        device_id: String,
    },
    Battery {
        device_id: String,
        level: u8,
    },
    /// The lock warns that its battery is low (`critical`: too low to go on
    /// for long), without a level: a Z-Wave Power Management "replace
    /// battery soon / now" (or the v1 alarm for it), a Nuki's critical
    /// battery flag. Sent again as long as the lock says so.
    BatteryLow {
        device_id: String,
        critical: bool,
    },
    /// The bolt's state as the lock reports it when asked or on its own
    /// (Door Lock report, Keyturner States), without saying how it got there.
    DoorLock {
        device_id: String,
        locked: bool,
    },
}

impl LockEvent {
    pub fn device_id(&self) -> &str {
        match self {
            LockEvent::Discovered(d) => &d.device_id,
            LockEvent::Online { device_id }
            | LockEvent::Offline { device_id }
            | LockEvent::Operated { device_id, .. }
            | LockEvent::AccessDenied { device_id, .. }
            | LockEvent::Door { device_id, .. }
            | LockEvent::Tampered { device_id }
            | LockEvent::SlotChanged { device_id, .. }
            | LockEvent::SlotsMayHaveChanged { device_id }
            | LockEvent::Battery { device_id, .. }
            | LockEvent::BatteryLow { device_id, .. }
            | LockEvent::DoorLock { device_id, .. } => device_id,
        }
    }
}

/// Where drivers send their `LockEvent`s; the engine holds the receiver.
pub type EventSink = tokio::sync::mpsc::UnboundedSender<LockEvent>;

/// A radio (or the simulator) that serves locks.
#[async_trait]
pub trait LockDriver: Send + Sync + 'static {
    fn kind(&self) -> DriverKind;

    /// The locks this driver serves now, with their capabilities.
    async fn devices(&self) -> Vec<DeviceInfo>;

    /// Whether the driver knows the lock to be reachable right now (`None`:
    /// it cannot tell without talking to it). Asked when a lock is adopted.
    fn presence(&self, _device_id: &str) -> Option<bool> {
        None
    }

    /// What lockhub last knew the lock's slots to hold (its store, kept over
    /// a restart), told when the lock is adopted. A driver whose lock hides
    /// codes on read-back takes a hidden slot to hold that code once the lock
    /// confirms it (its checksum, else the slot's occupied status) rather
    /// than calling it unknown, which would set every code again after each
    /// restart. Default: nothing to do.
    fn remember(&self, _device_id: &str, _slots: &[SlotCode]) {}

    /// Every occupied slot of the lock, as the lock reports it; an error
    /// when not every slot could be read.
    async fn read_slots(&self, device_id: &str) -> Result<Vec<SlotCode>, DriverError>;

    /// What the engine reads with: like `read_slots`, but a read that stopped
    /// part way and still learned something (a slot walk on a lossy mesh)
    /// may come back as a [`PartialRead`], so writes to the slots it knows
    /// need not wait for the whole walk; the next call goes on from where
    /// it stopped. A read that learned nothing is an error. Default: whole
    /// reads only.
    async fn read_partial(&self, device_id: &str) -> Result<SlotRead, DriverError> {
        self.read_slots(device_id).await.map(SlotRead::whole)
    }

    /// Carry out `ops` on one lock, in order, as one batch (one wake-up of a
    /// sleeping lock, one connection, multi-code frames where the radio has
    /// them). Returns one result per op, in the same order.
    async fn apply(&self, device_id: &str, ops: &[SlotOp]) -> Vec<Result<(), DriverError>>;

    /// Lock (`true`) or unlock the door; returns once the lock confirmed it
    /// is in that state. Drivers whose locks cannot be moved remotely keep
    /// this default (and say so in `Capabilities::supports_remote_lock`).
    async fn set_locked(&self, _device_id: &str, _locked: bool) -> Result<(), DriverError> {
        Err(DriverError::Unsupported(
            "this lock cannot be locked or unlocked remotely".into(),
        ))
    }
}
