//! An in-process fake Nuki lock written from the API 2.1 spec, for tests.
//! [`FakeLock`] plays the lock's side of pairing ("Authorize App");
//! [`FakeKeypad`] the keypad code store (add, list, update, remove), with
//! single-use nonces, the security PIN and the code rules.

use super::link::Channel;
use super::nuki::crypto::{random_nonce, EncryptedHeader, PrivateKey, PublicKey, SharedKey};
use super::nuki::error::NukiError;
use super::nuki::frame::{Command, Message};
use super::nuki::keypad::SecurityPin;

/// The lock's side of pairing. Each `on_message` returns the lock's replies.
pub struct FakeLock {
    sk: PrivateKey,
    pairing_mode: bool,
    next_auth_id: u32,
    uuid: [u8; 16],
    client_pk: Option<PublicKey>,
    key: Option<SharedKey>,
    n_k: [u8; 32],
    /// Paired clients: authorization id -> shared key.
    pub users: Vec<(u32, SharedKey)>,
}

impl FakeLock {
    pub fn new(pairing_mode: bool) -> FakeLock {
        FakeLock {
            sk: PrivateKey::generate(),
            pairing_mode,
            next_auth_id: 2,
            uuid: [0x5A; 16],
            client_pk: None,
            key: None,
            n_k: [0; 32],
            users: Vec::new(),
        }
    }

    fn challenge(&mut self) -> Message {
        use rand::RngCore;
        rand::rngs::OsRng.fill_bytes(&mut self.n_k);
        Message::new(Command::Challenge, self.n_k)
    }

    pub(super) fn error(e: NukiError, cmd: u16) -> Message {
        let mut p = vec![e.code()];
        p.extend_from_slice(&cmd.to_le_bytes());
        Message::new(Command::ErrorReport, p)
    }

    /// Handles one unencrypted message on the pairing characteristic.
    pub fn on_message(&mut self, m: &Message) -> Vec<Message> {
        let cmd = Command::from_u16(m.command);
        match cmd {
            Some(Command::RequestData) if m.payload == [0x03, 0x00] => {
                if !self.pairing_mode {
                    return vec![Self::error(NukiError::NotPairing, m.command)];
                }
                vec![Message::new(Command::PublicKey, self.sk.public_key().0)]
            }
            Some(Command::PublicKey) if m.payload.len() == 32 => {
                let pk = PublicKey(m.payload[..].try_into().expect("32 bytes"));
                self.key = Some(self.sk.shared_key(&pk));
                self.client_pk = Some(pk);
                vec![self.challenge()]
            }
            Some(Command::AuthorizationAuthenticator) => {
                let (Some(key), Some(pk)) = (&self.key, &self.client_pk) else {
                    return vec![Self::error(NukiError::BadParameter, m.command)];
                };
                let lock_pk = self.sk.public_key();
                if !key.verify_authenticator(&[&pk.0, &lock_pk.0, &self.n_k], &m.payload) {
                    return vec![Self::error(NukiError::BadAuthenticator, m.command)];
                }
                vec![self.challenge()]
            }
            Some(Command::AuthorizationData) if m.payload.len() == 101 => {
                let key = self.key.clone().expect("key agreed before data");
                let (a, rest) = m.payload.split_at(32);
                if !key.verify_authenticator(&[rest, &self.n_k], a) {
                    return vec![Self::error(NukiError::BadAuthenticator, m.command)];
                }
                let n_a = &rest[37..69];
                let id = self.next_auth_id.to_le_bytes();
                let n_k = self.challenge_nonce();
                let auth = key.authenticator(&[&id, &self.uuid, &n_k, n_a]);
                let mut p = auth.to_vec();
                p.extend_from_slice(&id);
                p.extend_from_slice(&self.uuid);
                p.extend_from_slice(&n_k);
                vec![Message::new(Command::AuthorizationId, p)]
            }
            Some(Command::AuthorizationIdConfirmation) if m.payload.len() == 36 => {
                let key = self.key.clone().expect("key agreed before confirmation");
                let (a, id) = m.payload.split_at(32);
                if !key.verify_authenticator(&[id, &self.n_k], a) {
                    return vec![Self::error(NukiError::BadAuthenticator, m.command)];
                }
                self.users.push((self.next_auth_id, key));
                self.next_auth_id += 1;
                vec![Message::new(Command::Status, vec![0x00])]
            }
            _ => vec![Self::error(NukiError::BadLength, m.command)],
        }
    }

    fn challenge_nonce(&mut self) -> [u8; 32] {
        self.challenge();
        self.n_k
    }
}

/// A whole fake Nuki as a radio sees it: bytes written to a characteristic
/// in, encoded messages to indicate out. Pairing runs in the clear on the
/// pairing characteristic; keypad commands are sealed with the key of the
/// authorization they name.
pub struct FakeNuki {
    pub pairing: FakeLock,
    pub keypad: FakeKeypad,
    /// The lock mechanism: states, lock actions, the activity log.
    pub keyturner: super::fake_keyturner::FakeKeyturner,
    /// Answer this many of the next keyturner commands with "busy" (0x45).
    pub busy: u32,
    /// Keyturner commands seen (decrypted), for tests that count traffic.
    pub commands: Vec<u16>,
    /// Carry out the next command with this id but lose its reply (each
    /// entry is used once): the lock did it, the app never hears.
    pub lose_reply: Vec<u16>,
    /// Cut every reply to these commands to half its length (a firmware
    /// whose layout lockhub cannot read).
    pub garble_replies: Vec<u16>,
}

impl FakeNuki {
    pub fn new(pairing_mode: bool, security_pin: u16, capacity: usize) -> FakeNuki {
        FakeNuki {
            pairing: FakeLock::new(pairing_mode),
            keypad: FakeKeypad::new(security_pin, capacity),
            keyturner: super::fake_keyturner::FakeKeyturner::new(),
            busy: 0,
            commands: Vec::new(),
            lose_reply: Vec::new(),
            garble_replies: Vec::new(),
        }
    }

    pub fn on_write(&mut self, channel: Channel, bytes: &[u8]) -> Vec<Vec<u8>> {
        match channel {
            Channel::Pairing => {
                let replies = match Message::decode(bytes) {
                    Ok(m) => self.pairing.on_message(&m),
                    Err(_) => vec![FakeLock::error(NukiError::BadCrc, 0)],
                };
                replies.iter().map(Message::encode).collect()
            }
            Channel::Keyturner => {
                let Ok(header) = EncryptedHeader::parse(bytes) else {
                    return Vec::new();
                };
                // An unknown authorization gets no answer: nothing can be sealed for it.
                let Some(key) = self
                    .pairing
                    .users
                    .iter()
                    .find(|u| u.0 == header.auth_id)
                    .map(|u| u.1.clone())
                else {
                    return Vec::new();
                };
                let replies = match key.open(bytes) {
                    Ok(m) => {
                        self.commands.push(m.message.command);
                        let command = m.message.command;
                        if self.busy > 0 {
                            self.busy -= 1;
                            vec![FakeLock::error(NukiError::Busy, command)]
                        } else if let Some(i) = self.lose_reply.iter().position(|&c| c == command) {
                            self.lose_reply.remove(i);
                            self.dispatch(&m.message, header.auth_id);
                            Vec::new()
                        } else {
                            let mut r = self.dispatch(&m.message, header.auth_id);
                            if self.garble_replies.contains(&command) {
                                for m in
                                    r.iter_mut().filter(|m| m.command != Command::Status as u16)
                                {
                                    m.payload.truncate(m.payload.len() / 2);
                                }
                            }
                            r
                        }
                    }
                    Err(_) => vec![FakeLock::error(NukiError::BadCrc, 0)],
                };
                replies
                    .iter()
                    .map(|r| key.seal(&random_nonce(), header.auth_id, r))
                    .collect()
            }
        }
    }
}

impl FakeNuki {
    /// A decrypted command to the part of the lock that answers it.
    fn dispatch(&mut self, m: &Message, auth_id: u32) -> Vec<Message> {
        if m.command == Command::RemoveAuthorizationEntry as u16 {
            self.remove_authorization(m)
        } else if super::fake_keyturner::FakeKeyturner::handles(m) {
            self.keyturner.on_message(m, auth_id, &mut self.keypad)
        } else {
            self.keypad.on_message(m)
        }
    }

    /// Remove Authorization Entry (0x0008: `authorization id u32 | nonce |
    /// security PIN`).
    fn remove_authorization(&mut self, m: &Message) -> Vec<Message> {
        let removed = self.keypad.authorize(&m.payload, 4).and_then(|()| {
            let id = u32::from_le_bytes(m.payload[..4].try_into().expect("4 bytes"));
            let before = self.pairing.users.len();
            self.pairing.users.retain(|u| u.0 != id);
            if self.pairing.users.len() == before {
                return Err(NukiError::BadParameter);
            }
            Ok(())
        });
        match removed {
            Ok(()) => vec![Message::new(Command::Status, vec![0x00])],
            Err(e) => vec![FakeLock::error(e, m.command)],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drivers::ble::nuki::pairing::{Pairing, Step};

    #[test]
    fn pairing_against_fake_lock() {
        let mut lock = FakeLock::new(true);
        let (mut p, mut out) = Pairing::new(PrivateKey::generate(), 7, "lockhub", [3; 32]).unwrap();
        let result = loop {
            let replies = lock.on_message(&out);
            assert_eq!(replies.len(), 1);
            match p.on_message(&replies[0]).unwrap() {
                Step::Send(m) => out = m,
                Step::Paired { auth_id, key } => break (auth_id, key),
            }
        };
        assert_eq!(lock.users, vec![result]);
    }

    #[test]
    fn not_in_pairing_mode() {
        let mut lock = FakeLock::new(false);
        let (mut p, out) = Pairing::new(PrivateKey::generate(), 7, "lockhub", [3; 32]).unwrap();
        let r = lock.on_message(&out);
        assert!(p.on_message(&r[0]).is_err());
    }
}

/// One keypad code as the fake lock stores it: the fields of the spec's
/// 0x0045 table, kept as the lock keeps them (dates as their 7 bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeCode {
    pub id: u16,
    pub code: u32,
    pub name: String,
    pub enabled: bool,
    pub created: [u8; 7],
    pub lock_count: u16,
    /// Present when the "Time limited" flag is set.
    pub limits: Option<FakeLimits>,
}

/// The fields that follow a set "Time limited" flag, raw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FakeLimits {
    pub allowed_from: [u8; 7],
    pub allowed_until: [u8; 7],
    /// `-- MO TU WE TH FR SA SU`, bit 6 to bit 0; none set: every day.
    pub weekdays: u8,
    pub from_time: [u8; 2],
    pub until_time: [u8; 2],
}

/// A spec date (`year u16 LE | month | day | hour | minute | second`).
pub fn spec_date(t: chrono::NaiveDateTime) -> [u8; 7] {
    use chrono::{Datelike, Timelike};
    let y = (t.year() as u16).to_le_bytes();
    [
        y[0],
        y[1],
        t.month() as u8,
        t.day() as u8,
        t.hour() as u8,
        t.minute() as u8,
        t.second() as u8,
    ]
}

fn read_spec_date(b: [u8; 7]) -> Option<chrono::NaiveDateTime> {
    chrono::NaiveDate::from_ymd_opt(
        u16::from_le_bytes([b[0], b[1]]) as i32,
        b[2] as u32,
        b[3] as u32,
    )?
    .and_hms_opt(b[4] as u32, b[5] as u32, b[6] as u32)
}

impl FakeCode {
    /// A code with no time limits (the owner's, say).
    pub fn untimed(id: u16, code: u32, name: &str) -> FakeCode {
        FakeCode {
            id,
            code,
            name: name.into(),
            enabled: true,
            created: [0xE9, 0x07, 1, 1, 12, 0, 0],
            lock_count: 0,
            limits: None,
        }
    }

    /// A code limited to `[from, until)` and, if `weekdays` is not 0, to
    /// those days, between `from_time` and `until_time` (hour, minute).
    pub fn timed(
        id: u16,
        code: u32,
        name: &str,
        (from, until): (chrono::NaiveDateTime, chrono::NaiveDateTime),
        (weekdays, from_time, until_time): (u8, [u8; 2], [u8; 2]),
    ) -> FakeCode {
        FakeCode {
            limits: Some(FakeLimits {
                allowed_from: spec_date(from),
                allowed_until: spec_date(until),
                weekdays,
                from_time,
                until_time,
            }),
            ..FakeCode::untimed(id, code, name)
        }
    }

    /// The allowed-from and allowed-until dates, when both are set.
    pub fn window(&self) -> Option<(chrono::NaiveDateTime, chrono::NaiveDateTime)> {
        let l = self.limits?;
        Some((
            read_spec_date(l.allowed_from)?,
            read_spec_date(l.allowed_until)?,
        ))
    }

    /// The 0x0045 payload: the time-limit fields only if the flag is set.
    fn encode(&self) -> Vec<u8> {
        let mut p = Vec::with_capacity(75);
        p.extend_from_slice(&self.id.to_le_bytes());
        p.extend_from_slice(&self.code.to_le_bytes());
        let mut name = [0u8; 20];
        let n = self.name.len().min(20);
        name[..n].copy_from_slice(&self.name.as_bytes()[..n]);
        p.extend_from_slice(&name);
        p.push(self.enabled as u8);
        p.extend_from_slice(&self.created);
        p.extend_from_slice(&[0; 7]); // date last active: never used here
        p.extend_from_slice(&self.lock_count.to_le_bytes());
        match &self.limits {
            None => p.push(0),
            Some(l) => {
                p.push(1);
                p.extend_from_slice(&l.allowed_from);
                p.extend_from_slice(&l.allowed_until);
                p.push(l.weekdays);
                p.extend_from_slice(&l.from_time);
                p.extend_from_slice(&l.until_time);
            }
        }
        p
    }
}

/// Cuts a command's payload into its fixed fields, as the spec's tables
/// give them; `None` when the length is not exactly right.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (a, b) = self.0.split_at_checked(N)?;
        self.0 = b;
        a.try_into().ok()
    }
    fn u16(&mut self) -> Option<u16> {
        self.take::<2>().map(u16::from_le_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take::<4>().map(u32::from_le_bytes)
    }
    fn name(&mut self) -> Option<String> {
        let b = self.take::<20>()?;
        let end = b.iter().position(|&c| c == 0).unwrap_or(20);
        String::from_utf8(b[..end].to_vec()).ok()
    }
    /// Time limited | from | until | weekdays | from time | until time: in
    /// Add and Update these are all mandatory, the flag says if they apply.
    fn limits(&mut self) -> Option<Option<FakeLimits>> {
        let limited = self.take::<1>()?[0] != 0;
        let l = FakeLimits {
            allowed_from: self.take()?,
            allowed_until: self.take()?,
            weekdays: self.take::<1>()?[0],
            from_time: self.take()?,
            until_time: self.take()?,
        };
        Some(limited.then_some(l))
    }
    /// Nonce (32) and security PIN (u16), which end every keypad command.
    fn auth(mut self) -> Option<([u8; 32], u16)> {
        let n = self.take::<32>()?;
        let pin = self.u16()?;
        self.0.is_empty().then_some((n, pin))
    }
}

/// The fake lock's keypad: code store, security PIN, challenge nonces and the
/// keypad rules, answering decrypted keypad commands (the envelope is the
/// caller's job: `SharedKey::open` / `seal`). Written from the spec's tables,
/// not from lockhub's own encoder.
pub struct FakeKeypad {
    pub security_pin: u16,
    pub capacity: usize,
    pub codes: Vec<FakeCode>,
    nonce: Option<[u8; 32]>,
    next_id: u16,
}

impl FakeKeypad {
    pub fn new(security_pin: u16, capacity: usize) -> FakeKeypad {
        FakeKeypad {
            security_pin,
            capacity,
            codes: Vec::new(),
            nonce: None,
            next_id: 1,
        }
    }

    /// Puts a code there as the Nuki app would (someone else's).
    pub fn seed(&mut self, code: FakeCode) {
        self.next_id = self.next_id.max(code.id + 1);
        self.codes.push(code);
    }

    /// Checks a command's nonce (single-use) and security PIN.
    fn check_auth(&mut self, auth: Option<([u8; 32], u16)>) -> Result<(), NukiError> {
        let (nonce, pin) = auth.ok_or(NukiError::BadLength)?;
        if self.nonce.take() != Some(nonce) {
            return Err(NukiError::BadNonce);
        }
        if pin != self.security_pin {
            return Err(NukiError::BadPin);
        }
        Ok(())
    }

    /// Uses up the challenge nonce a command carries (Lock Action has no PIN).
    pub(super) fn take_nonce(&mut self, nonce: &[u8; 32]) -> Result<(), NukiError> {
        if self.nonce.take().as_ref() != Some(nonce) {
            return Err(NukiError::BadNonce);
        }
        Ok(())
    }

    pub(super) fn check_pin(&self, pin: SecurityPin) -> Result<(), NukiError> {
        if pin.0 != self.security_pin {
            return Err(NukiError::BadPin);
        }
        Ok(())
    }

    fn valid(code: u32) -> bool {
        let d = code.to_string();
        d.len() == 6 && !d.contains('0') && !d.starts_with("12")
    }

    pub fn on_message(&mut self, m: &Message) -> Vec<Message> {
        match self.handle(m) {
            Ok(r) => r,
            Err(e) => vec![FakeLock::error(e, m.command)],
        }
    }

    /// Checks the nonce and PIN of a command that ends with them and has
    /// `fixed` bytes before (Remove Authorization Entry uses it too).
    pub fn authorize(&mut self, payload: &[u8], fixed: usize) -> Result<(), NukiError> {
        let rest = payload.get(fixed..).ok_or(NukiError::BadLength)?;
        self.check_auth(Fields(rest).auth())
    }

    fn handle(&mut self, m: &Message) -> Result<Vec<Message>, NukiError> {
        let mut f = Fields(&m.payload);
        let ok = || Message::new(Command::Status, vec![0x00]);
        match Command::from_u16(m.command) {
            Some(Command::RequestData) if m.payload[..] == [0x04, 0x00] => {
                let mut n = [0u8; 32];
                rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut n);
                self.nonce = Some(n);
                Ok(vec![Message::new(Command::Challenge, n)])
            }
            // code u32 | name [20] | limits | nonce | PIN
            Some(Command::AddKeypadCode) => {
                let (code, name, limits) =
                    (|| Some((f.u32()?, f.name()?, f.limits()?)))().ok_or(NukiError::BadLength)?;
                self.check_auth(f.auth())?;
                if !Self::valid(code) {
                    return Err(NukiError::CodeInvalid);
                }
                if self.codes.iter().any(|e| e.code == code) {
                    return Err(NukiError::CodeAlreadyExists);
                }
                if self.codes.len() >= self.capacity {
                    return Err(NukiError::TooManyEntries);
                }
                let id = self.next_id;
                self.next_id += 1;
                self.codes.push(FakeCode {
                    limits,
                    ..FakeCode::untimed(id, code, &name)
                });
                // Code ID | date created
                let mut r = id.to_le_bytes().to_vec();
                r.extend_from_slice(&[0xEA, 0x07, 12, 1, 0, 0, 0]);
                Ok(vec![ok(), Message::new(Command::KeypadCodeId, r)])
            }
            // id u16 | code u32 | name [20] | enabled | limits | nonce | PIN
            Some(Command::UpdateKeypadCode) => {
                let (id, code, name, enabled, limits) = (|| {
                    Some((
                        f.u16()?,
                        f.u32()?,
                        f.name()?,
                        f.take::<1>()?[0] != 0,
                        f.limits()?,
                    ))
                })()
                .ok_or(NukiError::BadLength)?;
                self.check_auth(f.auth())?;
                if !Self::valid(code) {
                    return Err(NukiError::CodeInvalid);
                }
                if self.codes.iter().any(|e| e.code == code && e.id != id) {
                    return Err(NukiError::CodeAlreadyExists);
                }
                let e = self
                    .codes
                    .iter_mut()
                    .find(|e| e.id == id)
                    .ok_or(NukiError::BadParameter)?;
                (e.code, e.name, e.enabled, e.limits) = (code, name, enabled, limits);
                Ok(vec![ok()])
            }
            // id u16 | nonce | PIN
            Some(Command::RemoveKeypadCode) => {
                let id = f.u16().ok_or(NukiError::BadLength)?;
                self.check_auth(f.auth())?;
                let before = self.codes.len();
                self.codes.retain(|e| e.id != id);
                if self.codes.len() == before {
                    return Err(NukiError::BadParameter);
                }
                Ok(vec![ok()])
            }
            // offset u16 | count u16 | nonce | PIN -> Count, then the entries
            Some(Command::RequestKeypadCodes) => {
                let (off, count) = (|| Some((f.u16()?, f.u16()?)))().ok_or(NukiError::BadLength)?;
                self.check_auth(f.auth())?;
                let mut r = vec![Message::new(
                    Command::KeypadCodeCount,
                    (self.codes.len() as u16).to_le_bytes(),
                )];
                r.extend(
                    self.codes
                        .iter()
                        .skip(off as usize)
                        .take(count as usize)
                        .map(|e| Message::new(Command::KeypadCode, e.encode())),
                );
                Ok(r)
            }
            _ => Err(NukiError::BadLength),
        }
    }
}

#[cfg(test)]
mod keypad_tests {
    use super::*;
    use crate::drivers::ble::nuki::keypad::{self, KeypadCode, SecurityPin};
    use crate::drivers::DriverError;

    fn nonce(k: &mut FakeKeypad) -> [u8; 32] {
        let r = k.on_message(&Message::new(Command::RequestData, [0x04, 0x00]));
        r[0].payload[..].try_into().unwrap()
    }

    fn code(c: u32) -> KeypadCode {
        KeypadCode {
            code: c,
            name: "Guest".into(),
            enabled: true,
            window: None,
            daily: None,
        }
    }

    fn err(r: &[Message]) -> DriverError {
        assert_eq!(r[0].command, Command::ErrorReport as u16);
        NukiError::from_code(r[0].payload[0]).into()
    }

    #[test]
    fn keypad_store_rules() {
        let pin = SecurityPin(4321);
        let mut k = FakeKeypad::new(4321, 2);
        let n = nonce(&mut k);
        let r = k.on_message(&keypad::add(&code(345678), &n, pin).unwrap());
        assert_eq!(keypad::parse_code_id(&r[1]), Ok(1));
        // The nonce was used up.
        let r = k.on_message(&keypad::add(&code(456789), &n, pin).unwrap());
        assert!(err(&r).is_transient());
        let n = nonce(&mut k);
        let r = k.on_message(&keypad::add(&code(345678), &n, pin).unwrap());
        assert_eq!(err(&r), DriverError::DuplicateCode);
        let n = nonce(&mut k);
        let r = k.on_message(&keypad::add(&code(456789), &n, SecurityPin(1)).unwrap());
        assert!(matches!(err(&r), DriverError::Failed(_)));
        let n = nonce(&mut k);
        let r = k.on_message(&keypad::add(&code(123456), &n, pin).unwrap());
        assert!(matches!(err(&r), DriverError::CodeRejected(_)));
        let n = nonce(&mut k);
        k.on_message(&keypad::add(&code(456789), &n, pin).unwrap());
        let n = nonce(&mut k);
        let r = k.on_message(&keypad::add(&code(567891), &n, pin).unwrap());
        assert_eq!(err(&r), DriverError::NoSpace);
        let n = nonce(&mut k);
        let r = k.on_message(&keypad::request(0, 10, &n, pin));
        assert_eq!(keypad::parse_count(&r[0]), Ok(2));
        let listed: Vec<_> = r[1..]
            .iter()
            .map(|m| keypad::parse_entry(m).unwrap())
            .collect();
        let ids: Vec<_> = listed.iter().map(|e| (e.id, e.code.code)).collect();
        assert_eq!(ids, vec![(1, 345678), (2, 456789)]);
        let n = nonce(&mut k);
        let entry = keypad::KeypadEntry {
            id: 2,
            code: code(567891),
        };
        let r = k.on_message(&keypad::update(&entry, &n, pin).unwrap());
        assert_eq!(r[0].command, Command::Status as u16);
        assert_eq!((k.codes[1].id, k.codes[1].code), (2, 567891));
        let n = nonce(&mut k);
        let dup = keypad::KeypadEntry {
            id: 2,
            code: code(345678),
        };
        let r = k.on_message(&keypad::update(&dup, &n, pin).unwrap());
        assert_eq!(err(&r), DriverError::DuplicateCode);
        let n = nonce(&mut k);
        k.on_message(&keypad::remove(1, &n, pin));
        assert_eq!(k.codes.len(), 1);
    }

    /// Listing a lock that holds untimed and timed codes of others: the
    /// entries are as long as the spec says, and lockhub reads them all.
    #[test]
    fn others_codes_list_per_spec() {
        let dt = |s: &str| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap();
        let pin = SecurityPin(4321);
        let mut k = FakeKeypad::new(4321, 10);
        k.seed(FakeCode::untimed(1, 345678, "Owner"));
        k.seed(FakeCode::timed(
            5,
            456789,
            "Cleaner",
            (dt("2026-01-01 00:00"), dt("2027-01-01 00:00")),
            (0x7C, [8, 0], [12, 0]),
        ));
        let n = nonce(&mut k);
        let r = k.on_message(&keypad::request(0, 10, &n, pin));
        assert_eq!(r.len(), 3);
        assert_eq!(r[1].payload.len(), 44);
        assert_eq!(r[2].payload.len(), 44 + 7 + 7 + 1 + 2 + 2);
        let a = keypad::parse_entry(&r[1]).unwrap();
        let b = keypad::parse_entry(&r[2]).unwrap();
        assert_eq!(
            (a.id, a.code.code, a.code.is_time_limited()),
            (1, 345678, false)
        );
        assert_eq!((b.id, b.code.code), (5, 456789));
        assert_eq!(
            b.code.window,
            Some((dt("2026-01-01 00:00"), dt("2027-01-01 00:00")))
        );
        let d = b.code.daily.unwrap();
        assert_eq!((d.weekdays, d.from, d.until), (0x7C, (8, 0), (12, 0)));
        // A new code gets an id past the seeded ones.
        let n = nonce(&mut k);
        let r = k.on_message(&keypad::add(&code(567891), &n, pin).unwrap());
        assert_eq!(keypad::parse_code_id(&r[1]), Ok(6));
    }
}
