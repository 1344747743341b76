//! Keypad code commands (0x0041 add, 0x0043 list, 0x0044 count, 0x0045 entry,
//! 0x0046 update, 0x0047 remove) and their payloads, section 5.
//!
//! Every command that changes or reads codes ends with the lock's challenge
//! nonce (32 bytes) and the security PIN (u16), so a replayed request fails.

use super::error::ProtocolError;
use super::frame::{Command, Message};
use chrono::{Datelike, NaiveDate, NaiveDateTime, Timelike};

/// Longest name the lock stores for a keypad code.
pub const NAME_LEN: usize = 20;

/// The admin security PIN of a lock. Debug is masked.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SecurityPin(pub u16);

impl std::fmt::Debug for SecurityPin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecurityPin(****)")
    }
}

/// A keypad code as lockhub writes it. `code` is the 6 digits as a number;
/// Debug is masked.
#[derive(Clone, PartialEq, Eq)]
pub struct KeypadCode {
    pub code: u32,
    pub name: String,
    pub enabled: bool,
    /// `(allowed from, allowed until)`, local time of the lock.
    pub window: Option<(NaiveDateTime, NaiveDateTime)>,
}

impl std::fmt::Debug for KeypadCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeypadCode")
            .field("code", &"******")
            .field("name", &self.name)
            .field("enabled", &self.enabled)
            .field("window", &self.window)
            .finish()
    }
}

/// A keypad code as the lock lists it, with the id the lock assigned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeypadEntry {
    pub id: u16,
    pub code: KeypadCode,
}

fn put_name(out: &mut Vec<u8>, name: &str) -> Result<(), ProtocolError> {
    let b = name.as_bytes();
    if b.len() > NAME_LEN {
        return Err(ProtocolError::BadPayload {
            command: Command::AddKeypadCode as u16,
            reason: "name longer than 20 bytes",
        });
    }
    out.extend_from_slice(b);
    out.extend(std::iter::repeat_n(0, NAME_LEN - b.len()));
    Ok(())
}

fn put_date(out: &mut Vec<u8>, d: Option<NaiveDateTime>) {
    match d {
        Some(d) => {
            out.extend_from_slice(&(d.year() as u16).to_le_bytes());
            out.extend_from_slice(&[
                d.month() as u8,
                d.day() as u8,
                d.hour() as u8,
                d.minute() as u8,
                d.second() as u8,
            ]);
        }
        None => out.extend_from_slice(&[0; 7]),
    }
}

/// time limited | from | until | weekdays (all) | from time | until time (whole day).
fn put_limits(out: &mut Vec<u8>, window: &Option<(NaiveDateTime, NaiveDateTime)>) {
    out.push(window.is_some() as u8);
    put_date(out, window.map(|w| w.0));
    put_date(out, window.map(|w| w.1));
    out.push(0);
    out.extend_from_slice(&[0, 0, 0, 0]);
}

fn put_auth(out: &mut Vec<u8>, nonce: &[u8; 32], pin: SecurityPin) {
    out.extend_from_slice(nonce);
    out.extend_from_slice(&pin.0.to_le_bytes());
}

/// 0x0041 Add Keypad Code.
pub fn add(
    code: &KeypadCode,
    nonce: &[u8; 32],
    pin: SecurityPin,
) -> Result<Message, ProtocolError> {
    let mut p = Vec::with_capacity(80);
    p.extend_from_slice(&code.code.to_le_bytes());
    put_name(&mut p, &code.name)?;
    put_limits(&mut p, &code.window);
    put_auth(&mut p, nonce, pin);
    Ok(Message::new(Command::AddKeypadCode, p))
}

/// 0x0046 Update Keypad Code.
pub fn update(
    entry: &KeypadEntry,
    nonce: &[u8; 32],
    pin: SecurityPin,
) -> Result<Message, ProtocolError> {
    let mut p = Vec::with_capacity(82);
    p.extend_from_slice(&entry.id.to_le_bytes());
    p.extend_from_slice(&entry.code.code.to_le_bytes());
    put_name(&mut p, &entry.code.name)?;
    p.push(entry.code.enabled as u8);
    put_limits(&mut p, &entry.code.window);
    put_auth(&mut p, nonce, pin);
    Ok(Message::new(Command::UpdateKeypadCode, p))
}

/// 0x0047 Remove Keypad Code.
pub fn remove(id: u16, nonce: &[u8; 32], pin: SecurityPin) -> Message {
    let mut p = id.to_le_bytes().to_vec();
    put_auth(&mut p, nonce, pin);
    Message::new(Command::RemoveKeypadCode, p)
}

/// 0x0043 Request Keypad Codes.
pub fn request(offset: u16, count: u16, nonce: &[u8; 32], pin: SecurityPin) -> Message {
    let mut p = Vec::with_capacity(38);
    p.extend_from_slice(&offset.to_le_bytes());
    p.extend_from_slice(&count.to_le_bytes());
    put_auth(&mut p, nonce, pin);
    Message::new(Command::RequestKeypadCodes, p)
}

/// Reads fields in order; every short read is a typed error.
struct Reader<'a> {
    buf: &'a [u8],
    command: u16,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ProtocolError> {
        if self.buf.len() < n {
            return Err(ProtocolError::BadPayload {
                command: self.command,
                reason: "payload too short",
            });
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, ProtocolError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, ProtocolError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, ProtocolError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn name(&mut self) -> Result<String, ProtocolError> {
        let b = self.take(NAME_LEN)?;
        let end = b.iter().position(|&c| c == 0).unwrap_or(NAME_LEN);
        Ok(String::from_utf8_lossy(&b[..end]).into_owned())
    }
    fn date(&mut self) -> Result<Option<NaiveDateTime>, ProtocolError> {
        let b = self.take(7)?;
        if b.iter().all(|&c| c == 0) {
            return Ok(None);
        }
        let year = u16::from_le_bytes([b[0], b[1]]) as i32;
        NaiveDate::from_ymd_opt(year, b[2] as u32, b[3] as u32)
            .and_then(|d| d.and_hms_opt(b[4] as u32, b[5] as u32, b[6] as u32))
            .map(Some)
            .ok_or(ProtocolError::BadPayload {
                command: self.command,
                reason: "invalid date",
            })
    }
}

fn expect(msg: &Message, cmd: Command) -> Result<Reader<'_>, ProtocolError> {
    if msg.command != cmd as u16 {
        return Err(ProtocolError::UnexpectedCommand {
            got: msg.command,
            expected: cmd as u16,
        });
    }
    Ok(Reader {
        buf: &msg.payload,
        command: msg.command,
    })
}

/// 0x0044 Keypad Code Count.
pub fn parse_count(msg: &Message) -> Result<u16, ProtocolError> {
    expect(msg, Command::KeypadCodeCount)?.u16()
}

/// 0x0042 Keypad Code ID: the id the lock gave a new code.
pub fn parse_code_id(msg: &Message) -> Result<u16, ProtocolError> {
    expect(msg, Command::KeypadCodeId)?.u16()
}

/// 0x0045 Keypad Code: one listed entry.
pub fn parse_entry(msg: &Message) -> Result<KeypadEntry, ProtocolError> {
    let mut r = expect(msg, Command::KeypadCode)?;
    let id = r.u16()?;
    let code = r.u32()?;
    let name = r.name()?;
    let enabled = r.u8()? != 0;
    let _created = r.date()?;
    let _last_active = r.date()?;
    let _lock_count = r.u16()?;
    let window = read_limits(&mut r)?;
    Ok(KeypadEntry {
        id,
        code: KeypadCode {
            code,
            name,
            enabled,
            window,
        },
    })
}

fn read_limits(
    r: &mut Reader<'_>,
) -> Result<Option<(NaiveDateTime, NaiveDateTime)>, ProtocolError> {
    let limited = r.u8()? != 0;
    let from = r.date()?;
    let until = r.date()?;
    let _weekdays = r.u8()?;
    r.take(4)?;
    Ok(match (limited, from, until) {
        (true, Some(f), Some(u)) => Some((f, u)),
        _ => None,
    })
}

/// The lock's side of 0x0041: the code to add and the trailing nonce and
/// security PIN (checked by the caller).
pub fn decode_add(msg: &Message) -> Result<(KeypadCode, [u8; 32], SecurityPin), ProtocolError> {
    let mut r = expect(msg, Command::AddKeypadCode)?;
    let code = r.u32()?;
    let name = r.name()?;
    let window = read_limits(&mut r)?;
    let (nonce, pin) = read_auth(&mut r)?;
    let code = KeypadCode {
        code,
        name,
        enabled: true,
        window,
    };
    Ok((code, nonce, pin))
}

/// The lock's side of 0x0046.
pub fn decode_update(msg: &Message) -> Result<(KeypadEntry, [u8; 32], SecurityPin), ProtocolError> {
    let mut r = expect(msg, Command::UpdateKeypadCode)?;
    let id = r.u16()?;
    let code = r.u32()?;
    let name = r.name()?;
    let enabled = r.u8()? != 0;
    let window = read_limits(&mut r)?;
    let (nonce, pin) = read_auth(&mut r)?;
    let code = KeypadCode {
        code,
        name,
        enabled,
        window,
    };
    Ok((KeypadEntry { id, code }, nonce, pin))
}

fn read_auth(r: &mut Reader<'_>) -> Result<([u8; 32], SecurityPin), ProtocolError> {
    let nonce = r.take(32)?.try_into().expect("32 bytes");
    let pin = SecurityPin(r.u16()?);
    if !r.buf.is_empty() {
        return Err(ProtocolError::BadPayload {
            command: r.command,
            reason: "payload too long",
        });
    }
    Ok((nonce, pin))
}

/// Encodes a 0x0045 entry, as the lock (or the fake lock) sends it.
pub fn encode_entry(e: &KeypadEntry) -> Message {
    let mut p = Vec::with_capacity(64);
    p.extend_from_slice(&e.id.to_le_bytes());
    p.extend_from_slice(&e.code.code.to_le_bytes());
    let _ = put_name(
        &mut p,
        &e.code.name.chars().take(NAME_LEN).collect::<String>(),
    );
    p.push(e.code.enabled as u8);
    put_date(&mut p, None);
    put_date(&mut p, None);
    p.extend_from_slice(&0u16.to_le_bytes());
    put_limits(&mut p, &e.code.window);
    Message::new(Command::KeypadCode, p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dt(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap()
    }

    #[test]
    fn add_layout() {
        let c = KeypadCode {
            code: 123456,
            name: "Guest".into(),
            enabled: true,
            window: Some((dt("2026-11-22 15:00:00"), dt("2026-11-25 11:00:00"))),
        };
        let m = add(&c, &[7; 32], SecurityPin(0x1234)).unwrap();
        let p = &m.payload;
        assert_eq!(m.command, 0x0041);
        assert_eq!(p.len(), 4 + 20 + 1 + 7 + 7 + 1 + 2 + 2 + 32 + 2);
        assert_eq!(&p[0..4], &123456u32.to_le_bytes());
        assert_eq!(&p[4..9], b"Guest");
        assert_eq!(p[24], 1);
        assert_eq!(&p[25..32], &[0xEA, 0x07, 11, 22, 15, 0, 0]);
        assert_eq!(&p[p.len() - 2..], &[0x34, 0x12]);
    }

    #[test]
    fn long_name_is_rejected() {
        let c = KeypadCode {
            code: 123456,
            name: "x".repeat(21),
            enabled: true,
            window: None,
        };
        assert!(add(&c, &[0; 32], SecurityPin(1)).is_err());
    }

    #[test]
    fn entry_round_trips() {
        for window in [
            None,
            Some((dt("2026-01-01 00:00:00"), dt("2026-02-01 10:30:00"))),
        ] {
            let e = KeypadEntry {
                id: 42,
                code: KeypadCode {
                    code: 345678,
                    name: "Room 4".into(),
                    enabled: true,
                    window,
                },
            };
            assert_eq!(parse_entry(&encode_entry(&e)).unwrap(), e);
        }
    }

    #[test]
    fn truncated_entry_is_an_error() {
        let mut m = encode_entry(&KeypadEntry {
            id: 1,
            code: KeypadCode {
                code: 345678,
                name: String::new(),
                enabled: false,
                window: None,
            },
        });
        m.payload.truncate(10);
        assert!(matches!(
            parse_entry(&m),
            Err(ProtocolError::BadPayload { .. })
        ));
        let other = Message::new(Command::Status, vec![0]);
        assert!(matches!(
            parse_count(&other),
            Err(ProtocolError::UnexpectedCommand { .. })
        ));
    }

    #[test]
    fn secrets_do_not_print() {
        let c = KeypadCode {
            code: 345678,
            name: "n".into(),
            enabled: true,
            window: None,
        };
        assert!(!format!("{c:?}").contains("345678"));
        assert_eq!(format!("{:?}", SecurityPin(4321)), "SecurityPin(****)");
    }
}

/// What a Nuki keypad accepts, as lockhub describes locks: 6 digits, no 0,
/// not starting with "12", names up to 20 bytes, native time windows.
/// `capacity` is the keypad's code capacity as the lock reports it.
pub fn capabilities(capacity: u32) -> crate::model::Capabilities {
    use crate::model::CodeConstraint;
    crate::model::Capabilities {
        supported_code_lengths: vec![6],
        code_constraints: vec![
            CodeConstraint::NoZeros,
            CodeConstraint::CannotStartWith12,
            CodeConstraint::NameLength {
                min_length: None,
                max_length: Some(NAME_LEN as u32),
            },
        ],
        max_active_codes_supported: capacity,
        supports_native_scheduling: true,
        supports_backup_access_code_pool: false,
        can_program_online_access_codes: true,
        // Lock Action (0x000D).
        supports_remote_lock: true,
    }
}

/// Turns a lockhub PIN into the keypad's number, enforcing the keypad's rules
/// (6 digits, no 0, not starting with "12") so a bad code fails before any radio
/// traffic. The error never contains the digits.
pub fn pin_to_code(pin: &crate::model::Pin) -> Result<u32, crate::drivers::DriverError> {
    use crate::drivers::DriverError;
    let d = pin.expose();
    if d.len() != 6 || !d.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DriverError::CodeRejected(
            "a Nuki code has exactly 6 digits".into(),
        ));
    }
    if d.contains('0') {
        return Err(DriverError::CodeRejected(
            "a Nuki code cannot contain 0".into(),
        ));
    }
    if d.starts_with("12") {
        return Err(DriverError::CodeRejected(
            "a Nuki code cannot start with 12".into(),
        ));
    }
    Ok(d.parse().expect("six digits fit in u32"))
}

#[cfg(test)]
mod rule_tests {
    use super::*;
    use crate::model::Pin;

    #[test]
    fn keypad_rules() {
        assert_eq!(pin_to_code(&Pin::new("345678")), Ok(345678));
        for bad in ["12345", "1234567", "345670", "123456", "34a678"] {
            let e = pin_to_code(&Pin::new(bad)).unwrap_err();
            assert!(!e.to_string().contains(bad));
        }
        let c = capabilities(100);
        assert_eq!(c.name_max_length(), Some(20));
        assert!(c.supports_native_scheduling);
    }
}
