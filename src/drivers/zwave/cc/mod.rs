//! Command classes: the bytes a lock understands, built and parsed.
//!
//! Every builder returns the command as sent inside SendData (class id,
//! command id, parameters); every parser takes the same shape from an
//! ApplicationCommandHandler frame (after the security layer opened it:
//! nothing here sees S0 or S2). [`Incoming::parse`] sorts a node's command
//! into what the driver acts on.

pub mod battery;
pub mod clock;
pub mod door_lock;
pub mod manufacturer_specific;
pub mod notification;
pub mod schedule_entry_lock;
pub mod supervision;
pub mod time_parameters;
pub mod user_code;
pub mod user_credential;
pub mod version;
pub mod wake_up;

/// Command class ids.
pub mod id {
    pub const NO_OPERATION: u8 = 0x00;
    pub const BASIC: u8 = 0x20;
    pub const SCHEDULE_ENTRY_LOCK: u8 = 0x4E;
    pub const DOOR_LOCK: u8 = 0x62;
    pub const USER_CODE: u8 = 0x63;
    pub const USER_CREDENTIAL: u8 = 0x83;
    pub const SUPERVISION: u8 = 0x6C;
    pub const NOTIFICATION: u8 = 0x71;
    pub const MANUFACTURER_SPECIFIC: u8 = 0x72;
    pub const BATTERY: u8 = 0x80;
    pub const CLOCK: u8 = 0x81;
    pub const WAKE_UP: u8 = 0x84;
    pub const VERSION: u8 = 0x86;
    pub const TIME_PARAMETERS: u8 = 0x8B;
    pub const SECURITY_S0: u8 = 0x98;
    pub const SECURITY_S2: u8 = 0x9F;
}

/// Why a node's command could not be understood, or a command not built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CcError {
    #[error("command 0x{cc:02x}/0x{cmd:02x} is too short ({len} bytes)")]
    TooShort { cc: u8, cmd: u8, len: usize },
    #[error("empty command")]
    Empty,
    #[error("the lock does not take codes of {0} characters")]
    CodeLength(usize),
    #[error("user code contains a character the lock does not accept")]
    CodeCharacters,
    #[error("user id {0} is out of range")]
    UserId(u32),
    #[error("{0}")]
    Invalid(String),
}

pub(crate) fn need(b: &[u8], n: usize) -> Result<(), CcError> {
    if b.len() < n {
        Err(CcError::TooShort {
            cc: b.first().copied().unwrap_or(0),
            cmd: b.get(1).copied().unwrap_or(0),
            len: b.len(),
        })
    } else {
        Ok(())
    }
}

/// CRC-16/AUG-CCITT (poly 0x1021, start 0x1D0F): the checksum of User Code
/// and User Credential.
pub fn crc16_aug_ccitt(data: &[u8]) -> u16 {
    let mut crc: u16 = 0x1D0F;
    for &byte in data {
        for bit in (0..8).rev() {
            let flag = ((byte >> bit) & 1 != 0) != (crc & 0x8000 != 0);
            crc <<= 1;
            if flag {
                crc ^= 0x1021;
            }
        }
    }
    crc
}

/// A node's command, sorted by what the driver does with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    UserCode(user_code::Report),
    UsersNumber(u16),
    UserCodeCapabilities(user_code::Capabilities),
    UserCodeChecksum(u16),
    ExtendedUserCode(user_code::ExtendedReport),
    Credential(user_credential::CredentialReport),
    CredentialChecksum(u8, u16),
    ScheduleSupported(schedule_entry_lock::Supported),
    DoorLock(door_lock::OperationReport),
    Notification(notification::Report),
    Battery(battery::Report),
    WakeUpNotification,
    WakeUpInterval(wake_up::IntervalReport),
    Version(version::Report),
    CommandClassVersion {
        cc: u8,
        version: u8,
    },
    ManufacturerSpecific(manufacturer_specific::Report),
    SupervisionReport(supervision::Report),
    /// A Supervision Get from the node wrapping a command: answer it, then act
    /// on the inner command.
    SupervisionGet(supervision::Get),
    /// Anything else (kept for logging).
    Other {
        cc: u8,
        cmd: u8,
    },
}

impl Incoming {
    pub fn parse(b: &[u8]) -> Result<Incoming, CcError> {
        let (&cc, &cmd) = match (b.first(), b.get(1)) {
            (Some(cc), Some(cmd)) => (cc, cmd),
            (Some(&cc), None) => return Ok(Incoming::Other { cc, cmd: 0 }),
            _ => return Err(CcError::Empty),
        };
        use id::*;
        Ok(match (cc, cmd) {
            (USER_CODE, user_code::REPORT) => Incoming::UserCode(user_code::parse_report(b)?),
            (USER_CODE, user_code::USERS_NUMBER_REPORT) => {
                Incoming::UsersNumber(user_code::parse_users_number(b)?)
            }
            (USER_CODE, user_code::CAPABILITIES_REPORT) => {
                Incoming::UserCodeCapabilities(user_code::parse_capabilities(b)?)
            }
            (USER_CODE, user_code::CHECKSUM_REPORT) => {
                Incoming::UserCodeChecksum(user_code::parse_checksum(b)?)
            }
            (USER_CODE, user_code::EXTENDED_REPORT) => {
                Incoming::ExtendedUserCode(user_code::parse_extended_report(b)?)
            }
            (USER_CREDENTIAL, user_credential::CREDENTIAL_REPORT) => {
                Incoming::Credential(user_credential::parse_credential_report(b)?)
            }
            (USER_CREDENTIAL, user_credential::CREDENTIAL_CHECKSUM_REPORT) => {
                let (t, sum) = user_credential::parse_credential_checksum(b)?;
                Incoming::CredentialChecksum(t, sum)
            }
            (SCHEDULE_ENTRY_LOCK, schedule_entry_lock::SUPPORTED_REPORT) => {
                Incoming::ScheduleSupported(schedule_entry_lock::parse_supported(b)?)
            }
            (DOOR_LOCK, door_lock::OPERATION_REPORT) => {
                Incoming::DoorLock(door_lock::parse_operation_report(b)?)
            }
            (NOTIFICATION, notification::REPORT) => {
                Incoming::Notification(notification::parse_report(b)?)
            }
            (BATTERY, battery::REPORT) => Incoming::Battery(battery::parse_report(b)?),
            (WAKE_UP, wake_up::NOTIFICATION) => Incoming::WakeUpNotification,
            (WAKE_UP, wake_up::INTERVAL_REPORT) => {
                Incoming::WakeUpInterval(wake_up::parse_interval_report(b)?)
            }
            (VERSION, version::REPORT) => Incoming::Version(version::parse_report(b)?),
            (VERSION, version::CC_REPORT) => {
                let (cc, version) = version::parse_cc_report(b)?;
                Incoming::CommandClassVersion { cc, version }
            }
            (MANUFACTURER_SPECIFIC, manufacturer_specific::REPORT) => {
                Incoming::ManufacturerSpecific(manufacturer_specific::parse_report(b)?)
            }
            (SUPERVISION, supervision::REPORT) => {
                Incoming::SupervisionReport(supervision::parse_report(b)?)
            }
            (SUPERVISION, supervision::GET) => Incoming::SupervisionGet(supervision::parse_get(b)?),
            (cc, cmd) => Incoming::Other { cc, cmd },
        })
    }

    /// The (class, command) of the report, so a waiter can match it.
    pub fn key(b: &[u8]) -> Option<(u8, u8)> {
        Some((*b.first()?, *b.get(1)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_incoming_commands() {
        assert_eq!(
            Incoming::parse(&[0x80, 0x03, 0x5A]).unwrap(),
            Incoming::Battery(battery::Report::Level(90))
        );
        assert_eq!(
            Incoming::parse(&[0x84, 0x07]).unwrap(),
            Incoming::WakeUpNotification
        );
        assert_eq!(
            Incoming::parse(&[0x25, 0x03, 0xFF]).unwrap(),
            Incoming::Other {
                cc: 0x25,
                cmd: 0x03
            }
        );
        assert_eq!(Incoming::parse(&[]), Err(CcError::Empty));
        assert!(matches!(
            Incoming::parse(&[0x63, 0x03]),
            Err(CcError::TooShort {
                cc: 0x63,
                cmd: 0x03,
                len: 2
            })
        ));
    }
}
