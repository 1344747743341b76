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
    /// `(allowed from, allowed until)`, in UTC. The lock keeps UTC: its
    /// Keyturner States send the time and, apart, its offset from UTC; its
    /// time zone applies to `daily`'s times of day, which are local.
    /// (The BLE driver's `to_lock_window` writes them.)
    pub window: Option<(NaiveDateTime, NaiveDateTime)>,
    /// Allowed weekdays and time of day (the rest of the "time limited" fields).
    pub daily: Option<DailyLimits>,
}

/// The weekday and time-of-day part of a keypad code's time limits: the code
/// opens only on `weekdays`, from `from` until `until` (hour, minute).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DailyLimits {
    /// The spec's bitmask: bit 6 Monday ... bit 0 Sunday; no bit set = every day.
    pub weekdays: u8,
    pub from: (u8, u8),
    pub until: (u8, u8),
}

impl DailyLimits {
    /// Every day, the whole day: what an entry without such limits carries.
    pub const NONE: DailyLimits = DailyLimits {
        weekdays: 0,
        from: (0, 0),
        until: (0, 0),
    };

    /// The spec's bit for a weekday (Monday 0x40 ... Sunday 0x01).
    pub fn bit(day: chrono::Weekday) -> u8 {
        0x40 >> day.num_days_from_monday()
    }
}

impl std::fmt::Debug for KeypadCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeypadCode")
            .field("code", &"******")
            .field("name", &self.name)
            .field("enabled", &self.enabled)
            .field("window", &self.window)
            .field("daily", &self.daily)
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

/// time limited | from | until | weekdays | from time | until time. Add and
/// Update always carry every field; unused ones are zero.
fn put_limits(out: &mut Vec<u8>, code: &KeypadCode) {
    out.push(code.is_time_limited() as u8);
    put_date(out, code.window.map(|w| w.0));
    put_date(out, code.window.map(|w| w.1));
    let d = code.daily.unwrap_or(DailyLimits::NONE);
    out.push(d.weekdays);
    out.extend_from_slice(&[d.from.0, d.from.1, d.until.0, d.until.1]);
}

impl KeypadCode {
    /// The spec's "Time limited" flag: the code opens only at certain times.
    pub fn is_time_limited(&self) -> bool {
        self.window.is_some() || self.daily.is_some()
    }
}

pub(super) fn put_auth(out: &mut Vec<u8>, nonce: &[u8; 32], pin: SecurityPin) {
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
    put_limits(&mut p, code);
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
    put_limits(&mut p, &entry.code);
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

/// 0x0045 Keypad Code: one listed entry. The time-limit fields follow the
/// "Time limited" flag only when it is set ("the following fields are
/// appended only if this flag is set"); an untimed entry ends with the flag.
/// Bytes after the last field are left alone (a newer firmware may add some).
pub fn parse_entry(msg: &Message) -> Result<KeypadEntry, ProtocolError> {
    let mut r = expect(msg, Command::KeypadCode)?;
    let id = r.u16()?;
    let code = r.u32()?;
    let name = r.name()?;
    let enabled = r.u8()? != 0;
    let _created = r.date()?;
    let _last_active = r.date()?;
    let _lock_count = r.u16()?;
    let (window, daily) = if r.u8()? != 0 {
        read_limits(&mut r)?
    } else {
        (None, None)
    };
    Ok(KeypadEntry {
        id,
        code: KeypadCode {
            code,
            name,
            enabled,
            window,
            daily,
        },
    })
}

type Limits = (Option<(NaiveDateTime, NaiveDateTime)>, Option<DailyLimits>);

/// The fields after a set "Time limited" flag: from and until dates (zero:
/// no date limit), weekdays, from and until time of day.
fn read_limits(r: &mut Reader<'_>) -> Result<Limits, ProtocolError> {
    let from = r.date()?;
    let until = r.date()?;
    let weekdays = r.u8()?;
    let t = r.take(4)?;
    let daily = DailyLimits {
        weekdays,
        from: (t[0], t[1]),
        until: (t[2], t[3]),
    };
    let window = match (from, until) {
        (Some(f), Some(u)) => Some((f, u)),
        _ => None,
    };
    Ok((window, (daily != DailyLimits::NONE).then_some(daily)))
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
            daily: None,
        };
        let m = add(&c, &[7; 32], SecurityPin(0x1234)).unwrap();
        let p = &m.payload;
        assert_eq!(m.command, 0x0041);
        assert_eq!(p.len(), 4 + 20 + 1 + 7 + 7 + 1 + 2 + 2 + 32 + 2);
        assert_eq!(&p[0..4], &123456u32.to_le_bytes());
        assert_eq!(&p[4..9], b"Guest");
        assert_eq!(p[24], 1);
        assert_eq!(&p[25..32], &[0xEA, 0x07, 11, 22, 15, 0, 0]);
        assert_eq!(&p[39..44], &[0; 5], "every day, the whole day");
        assert_eq!(&p[p.len() - 2..], &[0x34, 0x12]);
    }

    #[test]
    fn long_name_is_rejected() {
        let c = KeypadCode {
            code: 123456,
            name: "x".repeat(21),
            enabled: true,
            window: None,
            daily: None,
        };
        assert!(add(&c, &[0; 32], SecurityPin(1)).is_err());
    }

    /// A 0x0045 payload laid out field by field from the spec's table:
    /// id, code, name[20], enabled, created[7], last active[7], lock count,
    /// time limited, then (only if set) from[7], until[7], weekdays, from
    /// time[2], until time[2].
    /// from date, until date, weekdays, from and until time of day.
    type SpecLimits = ([u8; 7], [u8; 7], u8, [u8; 4]);

    fn spec_entry(limited: Option<SpecLimits>) -> Message {
        let mut p = vec![0x2A, 0x00]; // id 42
        p.extend_from_slice(&[0x4E, 0x46, 0x05, 0x00]); // 345678
        let mut name = [0u8; 20];
        name[..6].copy_from_slice(b"Owner!");
        p.extend_from_slice(&name);
        p.push(1);
        p.extend_from_slice(&[0xE9, 0x07, 3, 14, 9, 30, 0]); // created 2025-03-14
        p.extend_from_slice(&[0xEA, 0x07, 11, 30, 18, 5, 59]); // last active
        p.extend_from_slice(&[0x07, 0x00]);
        match limited {
            None => p.push(0),
            Some((from, until, days, times)) => {
                p.push(1);
                p.extend_from_slice(&from);
                p.extend_from_slice(&until);
                p.push(days);
                p.extend_from_slice(&times);
            }
        }
        Message::new(Command::KeypadCode, p)
    }

    #[test]
    fn untimed_entry_ends_at_the_flag() {
        let m = spec_entry(None);
        assert_eq!(m.payload.len(), 2 + 4 + 20 + 1 + 7 + 7 + 2 + 1);
        let e = parse_entry(&m).unwrap();
        assert_eq!(e.id, 42);
        assert_eq!(e.code.code, 345678);
        assert_eq!(e.code.name, "Owner!");
        assert!(e.code.enabled);
        assert_eq!(e.code.window, None);
        assert_eq!(e.code.daily, None);
    }

    #[test]
    fn timed_entries_carry_dates_weekdays_and_times() {
        let from = [0xEA, 0x07, 12, 1, 8, 0, 0];
        let until = [0xEB, 0x07, 1, 31, 20, 0, 0];
        // Monday, Wednesday and Friday, 09:30 to 12:00.
        let m = spec_entry(Some((from, until, 0b0101_0100, [9, 30, 12, 0])));
        assert_eq!(
            m.payload.len(),
            2 + 4 + 20 + 1 + 7 + 7 + 2 + 1 + 7 + 7 + 1 + 2 + 2
        );
        let e = parse_entry(&m).unwrap();
        assert_eq!(
            e.code.window,
            Some((dt("2026-12-01 08:00:00"), dt("2027-01-31 20:00:00")))
        );
        let d = e.code.daily.unwrap();
        assert_eq!(d.from, (9, 30));
        assert_eq!(d.until, (12, 0));
        use chrono::Weekday::*;
        assert_eq!(
            d.weekdays,
            DailyLimits::bit(Mon) | DailyLimits::bit(Wed) | DailyLimits::bit(Fri)
        );
        // Weekdays only, no dates.
        let m = spec_entry(Some(([0; 7], [0; 7], DailyLimits::bit(Sun), [7, 0, 9, 0])));
        let e = parse_entry(&m).unwrap();
        assert_eq!(e.code.window, None);
        assert_eq!(e.code.daily.unwrap().weekdays, 0x01);
        assert!(e.code.is_time_limited());
    }

    #[test]
    fn truncated_entry_is_an_error() {
        for m in [
            spec_entry(None),
            spec_entry(Some(([0; 7], [0; 7], 0x7F, [0; 4]))),
        ] {
            for cut in 0..m.payload.len() {
                let short = Message::new(Command::KeypadCode, m.payload[..cut].to_vec());
                assert!(
                    matches!(parse_entry(&short), Err(ProtocolError::BadPayload { .. })),
                    "cut at {cut}"
                );
            }
        }
        let other = Message::new(Command::Status, vec![0]);
        assert!(matches!(
            parse_count(&other),
            Err(ProtocolError::UnexpectedCommand { .. })
        ));
    }

    #[test]
    fn update_carries_weekdays_and_times() {
        let entry = KeypadEntry {
            id: 7,
            code: KeypadCode {
                code: 456789,
                name: "Cleaner".into(),
                enabled: true,
                window: None,
                daily: Some(DailyLimits {
                    weekdays: 0x60,
                    from: (9, 0),
                    until: (12, 30),
                }),
            },
        };
        let m = update(&entry, &[1; 32], SecurityPin(2)).unwrap();
        let p = &m.payload;
        assert_eq!(p.len(), 2 + 4 + 20 + 1 + 1 + 7 + 7 + 1 + 2 + 2 + 32 + 2);
        assert_eq!(p[27], 1, "time limited");
        assert_eq!(&p[28..42], &[0; 14], "no dates");
        assert_eq!(&p[42..47], &[0x60, 9, 0, 12, 30]);
    }

    #[test]
    fn secrets_do_not_print() {
        let c = KeypadCode {
            code: 345678,
            name: "n".into(),
            enabled: true,
            window: None,
            daily: None,
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
