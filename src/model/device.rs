//! Devices (locks) and what they can do: the facts that decide whether locks
//! can share a PIN, and that drivers report from their interview of a lock.

use serde::{Deserialize, Serialize};

/// A rule a lock imposes on the codes it accepts (spec/access-codes.md).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "constraint_type", rename_all = "snake_case")]
pub enum CodeConstraint {
    NoZeros,
    // serde's snake_case would write `cannot_start_with12`; the public API
    // writes `cannot_start_with_12`. The old spelling is still read (stored devices).
    #[serde(rename = "cannot_start_with_12", alias = "cannot_start_with12")]
    CannotStartWith12,
    NoTripleConsecutiveInts,
    NoAscendingOrDescendingSequence,
    AtLeastThreeUniqueDigits,
    NoAllSameDigits,
    #[serde(rename = "cannot_contain_089", alias = "cannot_contain089")]
    CannotContain089,
    #[serde(rename = "cannot_contain_0789", alias = "cannot_contain0789")]
    CannotContain0789,
    UniqueFirstFourDigits,
    CannotSpecifyPinCode,
    NameLength {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min_length: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_length: Option<u32>,
    },
}

/// What a lock can do, as its driver found out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// Code lengths the keypad accepts, ascending.
    pub supported_code_lengths: Vec<u8>,
    #[serde(default)]
    pub code_constraints: Vec<CodeConstraint>,
    /// Number of user-code slots (slots are numbered 1..=this).
    pub max_active_codes_supported: u32,
    /// The lock can hold a code's time window itself.
    #[serde(default)]
    pub supports_native_scheduling: bool,
    #[serde(default)]
    pub supports_backup_access_code_pool: bool,
    #[serde(default = "default_true")]
    pub can_program_online_access_codes: bool,
    /// The lock can be locked and unlocked by lockhub (Door Lock CC, Nuki
    /// Lock Action): the public `can_remotely_lock` / `can_remotely_unlock`.
    #[serde(default)]
    pub supports_remote_lock: bool,
}

fn default_true() -> bool {
    true
}

impl Capabilities {
    /// The longest name the lock can show, if it limits names.
    pub fn name_max_length(&self) -> Option<u32> {
        self.code_constraints.iter().find_map(|c| match c {
            CodeConstraint::NameLength { max_length, .. } => *max_length,
            _ => None,
        })
    }

    pub fn name_min_length(&self) -> Option<u32> {
        self.code_constraints.iter().find_map(|c| match c {
            CodeConstraint::NameLength { min_length, .. } => *min_length,
            _ => None,
        })
    }

    pub fn has(&self, constraint: &CodeConstraint) -> bool {
        self.code_constraints.contains(constraint)
    }
}

/// Which driver serves a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriverKind {
    Sim,
    Zwave,
    Ble,
}

impl DriverKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DriverKind::Sim => "sim",
            DriverKind::Zwave => "zwave",
            DriverKind::Ble => "ble",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "sim" => Some(DriverKind::Sim),
            "zwave" => Some(DriverKind::Zwave),
            "ble" => Some(DriverKind::Ble),
            _ => None,
        }
    }
}

/// A lock as a driver announces it to the engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// lockhub's stable id for the lock (a UUID string).
    pub device_id: String,
    pub name: String,
    pub driver: DriverKind,
    /// The driver's own address of the lock (Z-Wave node id, BLE address, sim name).
    pub address: String,
    pub capabilities: Capabilities,
    /// Z-Wave: the security class the lock is spoken to in (`S2_AccessControl`,
    /// `S2_Authenticated`, `S2_Unauthenticated`, `S0_Legacy`, `None`). A lockhub
    /// addition; absent for other drivers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_class: Option<String>,
}
