//! The lock itself, as the API 2.1 spec lays it out: Keyturner States
//! (0x000C), Lock Action (0x000D), Request Log Entries (0x0031) and Log
//! Entry (0x0032). Both directions (the fake lock builds what lockhub parses).

use super::error::ProtocolError;
use super::frame::{Command, Message};
use super::keypad::SecurityPin;

/// Lock State values (Keyturner States).
pub mod lock_state {
    pub const UNCALIBRATED: u8 = 0x00;
    pub const LOCKED: u8 = 0x01;
    pub const UNLOCKING: u8 = 0x02;
    pub const UNLOCKED: u8 = 0x03;
    pub const LOCKING: u8 = 0x04;
    pub const UNLATCHED: u8 = 0x05;
    pub const UNLOCKED_LOCK_N_GO: u8 = 0x06;
}

/// Lock Action values.
pub mod action {
    pub const UNLOCK: u8 = 0x01;
    pub const LOCK: u8 = 0x02;
    pub const UNLATCH: u8 = 0x03;
    pub const FULL_LOCK: u8 = 0x06;
}

/// Trigger values (Keyturner States, log entries of type 0x02).
pub mod trigger {
    pub const SYSTEM: u8 = 0x00;
    pub const MANUAL: u8 = 0x01;
    pub const BUTTON: u8 = 0x02;
    pub const AUTOMATIC: u8 = 0x03;
    pub const AUTO_LOCK: u8 = 0x06;
}

/// Log entry types lockhub reads.
pub mod log_type {
    pub const LOCK_ACTION: u8 = 0x02;
    pub const KEYPAD: u8 = 0x05;
    pub const DOOR_SENSOR: u8 = 0x06;
}

/// Completion status of a keypad action: the code was wrong.
pub const INVALID_CODE: u8 = 0xE0;

/// Length of Keyturner States as 2.1 defines it (newer firmware may append).
const STATES_LEN: usize = 19;

fn bad(command: Command, reason: &'static str) -> ProtocolError {
    ProtocolError::BadPayload {
        command: command as u16,
        reason,
    }
}

/// A Nuki's battery, from its Keyturner States.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Battery {
    pub critical: bool,
    pub charging: bool,
    /// 0 to 100, where the firmware states it.
    pub percent: Option<u8>,
}

impl Battery {
    /// The state byte a lock of later firmware sends for `percent` (even
    /// values; an odd one is rounded down, as the lock's 2 % steps are).
    pub fn byte(percent: u8, critical: bool) -> u8 {
        ((percent.min(100) / 2) << 2) | u8::from(critical)
    }
}

/// `year u16 | month | day | hour | minute | second`, as the lock sends it.
pub type Stamp = [u8; 7];

/// The fields of Keyturner States lockhub uses (and the fake lock sends).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyturnerStates {
    pub nuki_state: u8,
    pub lock_state: u8,
    pub trigger: u8,
    pub time: Stamp,
    pub timezone_offset: i16,
    /// "Critical Battery state", as sent: API 2.1 says 0x00 ok / 0x01
    /// critical; later firmware packs more into it (see [`Self::battery`]).
    pub battery_state: u8,
    pub config_update_count: u8,
    pub lock_n_go_timer: u8,
    pub last_action: u8,
    pub last_action_trigger: u8,
    pub last_action_status: u8,
    /// 0x00 unavailable, 0x01 deactivated, 0x02 closed, 0x03 opened, ...
    pub door_sensor: u8,
}

impl KeyturnerStates {
    /// The bolt: thrown (`true`), withdrawn (`false`), or on its way / not
    /// known (`None`).
    pub fn locked(&self) -> Option<bool> {
        match self.lock_state {
            lock_state::LOCKED => Some(true),
            lock_state::UNLOCKED | lock_state::UNLATCHED | lock_state::UNLOCKED_LOCK_N_GO => {
                Some(false)
            }
            _ => None,
        }
    }

    /// The door sensor, where the lock has an active one.
    pub fn door_open(&self) -> Option<bool> {
        match self.door_sensor {
            0x02 => Some(false),
            0x03 => Some(true),
            _ => None,
        }
    }

    /// The battery as the state byte tells it. Bit 0 is the critical flag
    /// (API 2.1's 0x01). Later firmware adds bit 1, charging, and the level
    /// in bits 2 to 7, in steps of 2 %: read the byte whole ("non-zero is
    /// critical") and every such lock is critical at any charge. Decoded as
    /// Nuki Hub (technyon/nuki_hub, `NukiNetworkLock.cpp`) decodes it. No
    /// level bits means no level: a 2.1 lock states none.
    pub fn battery(&self) -> Battery {
        let level = (self.battery_state & 0b1111_1100) >> 1;
        Battery {
            critical: self.battery_state & 0x01 != 0,
            charging: self.battery_state & 0x02 != 0,
            percent: (level != 0).then_some(level.min(100)),
        }
    }

    pub fn encode(&self) -> Message {
        let mut p = vec![self.nuki_state, self.lock_state, self.trigger];
        p.extend_from_slice(&self.time);
        p.extend_from_slice(&self.timezone_offset.to_le_bytes());
        p.extend_from_slice(&[
            self.battery_state,
            self.config_update_count,
            self.lock_n_go_timer,
            self.last_action,
            self.last_action_trigger,
            self.last_action_status,
            self.door_sensor,
        ]);
        Message::new(Command::KeyturnerStates, p)
    }
}

pub fn parse_states(m: &Message) -> Result<KeyturnerStates, ProtocolError> {
    let p = &m.payload;
    if m.command != Command::KeyturnerStates as u16 {
        return Err(ProtocolError::UnexpectedCommand {
            got: m.command,
            expected: Command::KeyturnerStates as u16,
        });
    }
    if p.len() < STATES_LEN {
        return Err(bad(Command::KeyturnerStates, "keyturner states too short"));
    }
    Ok(KeyturnerStates {
        nuki_state: p[0],
        lock_state: p[1],
        trigger: p[2],
        time: p[3..10].try_into().expect("7 bytes"),
        timezone_offset: i16::from_le_bytes([p[10], p[11]]),
        battery_state: p[12],
        config_update_count: p[13],
        lock_n_go_timer: p[14],
        last_action: p[15],
        last_action_trigger: p[16],
        last_action_status: p[17],
        door_sensor: p[18],
    })
}

/// Request Data (0x0001) for Keyturner States.
pub fn request_states() -> Message {
    Message::new(
        Command::RequestData,
        (Command::KeyturnerStates as u16).to_le_bytes(),
    )
}

/// Lock Action: `action | app id u32 | flags | nonce` (no name suffix).
pub fn lock_action(action: u8, app_id: u32, nonce: &[u8; 32]) -> Message {
    let mut p = vec![action];
    p.extend_from_slice(&app_id.to_le_bytes());
    p.push(0x00);
    p.extend_from_slice(nonce);
    Message::new(Command::LockAction, p)
}

/// A Lock Action as the lock reads it: the action and the nonce (with or
/// without the optional 20-byte name suffix).
pub fn decode_lock_action(m: &Message) -> Result<(u8, [u8; 32]), ProtocolError> {
    let p = &m.payload;
    if p.len() != 38 && p.len() != 58 {
        return Err(bad(Command::LockAction, "lock action of a wrong length"));
    }
    Ok((p[0], p[p.len() - 32..].try_into().expect("32 bytes")))
}

/// Request Log Entries: `start u32 | count u16 | sort | total flag | nonce | pin`.
pub fn request_log(
    start: u32,
    count: u16,
    descending: bool,
    nonce: &[u8; 32],
    pin: SecurityPin,
) -> Message {
    let mut p = start.to_le_bytes().to_vec();
    p.extend_from_slice(&count.to_le_bytes());
    p.push(u8::from(descending));
    p.push(0x00);
    p.extend_from_slice(nonce);
    p.extend_from_slice(&pin.0.to_le_bytes());
    Message::new(Command::RequestLogEntries, p)
}

/// A Request Log Entries as the lock reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogRequest {
    pub start: u32,
    pub count: u16,
    pub descending: bool,
    pub nonce: [u8; 32],
    pub pin: SecurityPin,
}

pub fn decode_log_request(m: &Message) -> Result<LogRequest, ProtocolError> {
    let p = &m.payload;
    if p.len() != 42 {
        return Err(bad(
            Command::RequestLogEntries,
            "log request of a wrong length",
        ));
    }
    Ok(LogRequest {
        start: u32::from_le_bytes(p[0..4].try_into().expect("4 bytes")),
        count: u16::from_le_bytes([p[4], p[5]]),
        descending: p[6] != 0,
        nonce: p[8..40].try_into().expect("32 bytes"),
        pin: SecurityPin(u16::from_le_bytes([p[40], p[41]])),
    })
}

/// One entry of the lock's activity log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub index: u32,
    pub time: Stamp,
    pub auth_id: u32,
    /// The authorization's name (32 bytes on the wire, zero-padded).
    pub name: String,
    pub kind: u8,
    pub data: Vec<u8>,
}

/// What a keypad log entry says: the action, its completion status and the
/// keypad code's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeypadUse {
    pub action: u8,
    pub status: u8,
    pub code_id: u16,
}

impl LogEntry {
    pub fn keypad(&self) -> Option<KeypadUse> {
        (self.kind == log_type::KEYPAD && self.data.len() >= 5).then(|| KeypadUse {
            action: self.data[0],
            status: self.data[2],
            code_id: u16::from_le_bytes([self.data[3], self.data[4]]),
        })
    }

    /// A lock action entry: (action, trigger, completion status).
    pub fn lock_action(&self) -> Option<(u8, u8, u8)> {
        (self.kind == log_type::LOCK_ACTION && self.data.len() >= 4)
            .then(|| (self.data[0], self.data[1], self.data[3]))
    }

    /// A door sensor entry: opened (`true`) or closed.
    pub fn door(&self) -> Option<bool> {
        match (self.kind, self.data.first()) {
            (log_type::DOOR_SENSOR, Some(0x00)) => Some(true),
            (log_type::DOOR_SENSOR, Some(0x01)) => Some(false),
            _ => None,
        }
    }

    pub fn encode(&self) -> Message {
        let mut p = self.index.to_le_bytes().to_vec();
        p.extend_from_slice(&self.time);
        p.extend_from_slice(&self.auth_id.to_le_bytes());
        let mut name = [0u8; 32];
        let n = self.name.as_bytes();
        name[..n.len().min(32)].copy_from_slice(&n[..n.len().min(32)]);
        p.extend_from_slice(&name);
        p.push(self.kind);
        p.extend_from_slice(&self.data);
        Message::new(Command::LogEntry, p)
    }
}

pub fn parse_log_entry(m: &Message) -> Result<LogEntry, ProtocolError> {
    let p = &m.payload;
    if p.len() < 48 {
        return Err(bad(Command::LogEntry, "log entry too short"));
    }
    let name = &p[15..47];
    let end = name.iter().position(|&b| b == 0).unwrap_or(32);
    Ok(LogEntry {
        index: u32::from_le_bytes(p[0..4].try_into().expect("4 bytes")),
        time: p[4..11].try_into().expect("7 bytes"),
        auth_id: u32::from_le_bytes(p[11..15].try_into().expect("4 bytes")),
        name: String::from_utf8_lossy(&name[..end]).into_owned(),
        kind: p[47],
        data: p[48..].to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> KeyturnerStates {
        KeyturnerStates {
            nuki_state: 0x02,
            lock_state: lock_state::LOCKED,
            trigger: trigger::MANUAL,
            time: [0xEA, 0x07, 12, 1, 15, 42, 7],
            timezone_offset: -60,
            battery_state: 0,
            config_update_count: 3,
            lock_n_go_timer: 0,
            last_action: action::LOCK,
            last_action_trigger: trigger::MANUAL,
            last_action_status: 0,
            door_sensor: 0x03,
        }
    }

    #[test]
    fn states_round_trip_and_meaning() {
        let s = sample();
        let m = s.encode();
        assert_eq!(m.payload.len(), STATES_LEN);
        assert_eq!(m.payload[10..12], [0xC4, 0xFF], "sint16 LE");
        let back = parse_states(&m).unwrap();
        assert_eq!(back, s);
        assert_eq!((back.locked(), back.door_open()), (Some(true), Some(true)));
        // Newer firmware appends fields: still read.
        let mut longer = m.clone();
        longer.payload.extend_from_slice(&[0, 0, 0]);
        assert_eq!(parse_states(&longer).unwrap(), s);
        let mut short = m;
        short.payload.pop();
        assert!(parse_states(&short).is_err());
    }

    #[test]
    fn battery_byte_as_each_firmware_sends_it() {
        let at = |b: u8| KeyturnerStates {
            battery_state: b,
            ..sample()
        };
        let b = |critical, charging, percent| Battery {
            critical,
            charging,
            percent,
        };
        // API 2.1: 0x00 ok, 0x01 critical, no level.
        assert_eq!(at(0x00).battery(), b(false, false, None));
        assert_eq!(at(0x01).battery(), b(true, false, None));
        // Later firmware: 80 % is 0b1010_0000, not critical.
        assert_eq!(at(0xA0).battery(), b(false, false, Some(80)));
        assert_eq!(at(0xA2).battery(), b(false, true, Some(80)));
        assert_eq!(at(0x0D).battery(), b(true, false, Some(6)));
        assert_eq!(at(0xFC).battery(), b(false, false, Some(100)), "capped");
        for p in (0..=100).step_by(2) {
            assert_eq!(
                at(Battery::byte(p, false)).battery().percent,
                (p > 0).then_some(p)
            );
        }
    }

    #[test]
    fn lock_action_and_log_request_layouts() {
        let n = [7u8; 32];
        let m = lock_action(action::UNLOCK, 0xAABBCCDD, &n);
        assert_eq!(m.payload.len(), 38);
        assert_eq!(m.payload[..6], [0x01, 0xDD, 0xCC, 0xBB, 0xAA, 0x00]);
        assert_eq!(decode_lock_action(&m).unwrap(), (action::UNLOCK, n));
        let r = request_log(41, 10, false, &n, SecurityPin(1234));
        assert_eq!(r.payload.len(), 42);
        assert_eq!(
            decode_log_request(&r).unwrap(),
            LogRequest {
                start: 41,
                count: 10,
                descending: false,
                nonce: n,
                pin: SecurityPin(1234)
            }
        );
    }

    #[test]
    fn keypad_log_entry_carries_the_code_id() {
        let e = LogEntry {
            index: 42,
            time: [0xEA, 0x07, 12, 1, 15, 42, 7],
            auth_id: 0,
            name: "Jane".into(),
            kind: log_type::KEYPAD,
            data: vec![action::UNLOCK, 0x00, 0x00, 0x07, 0x00],
        };
        let m = e.encode();
        assert_eq!(m.payload.len(), 4 + 7 + 4 + 32 + 1 + 5);
        let back = parse_log_entry(&m).unwrap();
        assert_eq!(back, e);
        assert_eq!(
            back.keypad(),
            Some(KeypadUse {
                action: action::UNLOCK,
                status: 0,
                code_id: 7
            })
        );
        assert_eq!(back.door(), None);
    }
}
