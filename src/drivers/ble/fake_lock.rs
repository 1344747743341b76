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
                            self.dispatch(&m.message, header.auth_id)
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
        if super::fake_keyturner::FakeKeyturner::handles(m) {
            self.keyturner.on_message(m, auth_id, &mut self.keypad)
        } else {
            self.keypad.on_message(m)
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

/// The fake lock's keypad: code store, security PIN, challenge nonces and the
/// keypad rules, answering decrypted keypad commands (the envelope is the
/// caller's job: `SharedKey::open` / `seal`).
pub struct FakeKeypad {
    pub security_pin: u16,
    pub capacity: usize,
    pub codes: Vec<super::nuki::keypad::KeypadEntry>,
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

    /// Checks a command's nonce (single-use) and security PIN.
    fn check_auth(&mut self, nonce: &[u8; 32], pin: SecurityPin) -> Result<(), NukiError> {
        if self.nonce.take().as_ref() != Some(nonce) {
            return Err(NukiError::BadNonce);
        }
        if pin.0 != self.security_pin {
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

    /// Checks the trailing `nonce | security PIN` of a fixed-size command.
    fn check_trailing_auth(&mut self, p: &[u8]) -> Result<(), NukiError> {
        if p.len() < 34 {
            return Err(NukiError::BadLength);
        }
        let (n, pin) = p[p.len() - 34..].split_at(32);
        let nonce: [u8; 32] = n.try_into().expect("32 bytes");
        self.check_auth(&nonce, SecurityPin(u16::from_le_bytes([pin[0], pin[1]])))
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

    fn handle(&mut self, m: &Message) -> Result<Vec<Message>, NukiError> {
        use super::nuki::keypad::{self, encode_entry, KeypadEntry};
        let p = &m.payload;
        match Command::from_u16(m.command) {
            Some(Command::RequestData) if p[..] == [0x04, 0x00] => {
                let mut n = [0u8; 32];
                rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut n);
                self.nonce = Some(n);
                Ok(vec![Message::new(Command::Challenge, n)])
            }
            Some(Command::AddKeypadCode) => {
                let (code, nonce, pin) = keypad::decode_add(m).map_err(|_| NukiError::BadLength)?;
                self.check_auth(&nonce, pin)?;
                if !Self::valid(code.code) {
                    return Err(NukiError::CodeInvalid);
                }
                if self.codes.iter().any(|e| e.code.code == code.code) {
                    return Err(NukiError::CodeAlreadyExists);
                }
                if self.codes.len() >= self.capacity {
                    return Err(NukiError::TooManyEntries);
                }
                let id = self.next_id;
                self.next_id += 1;
                self.codes.push(KeypadEntry { id, code });
                let mut r = id.to_le_bytes().to_vec();
                r.extend_from_slice(&[0; 7]);
                Ok(vec![
                    Message::new(Command::Status, vec![0x00]),
                    Message::new(Command::KeypadCodeId, r),
                ])
            }
            Some(Command::UpdateKeypadCode) => {
                let (entry, nonce, pin) =
                    keypad::decode_update(m).map_err(|_| NukiError::BadLength)?;
                self.check_auth(&nonce, pin)?;
                if !Self::valid(entry.code.code) {
                    return Err(NukiError::CodeInvalid);
                }
                if self
                    .codes
                    .iter()
                    .any(|e| e.code.code == entry.code.code && e.id != entry.id)
                {
                    return Err(NukiError::CodeAlreadyExists);
                }
                let e = self
                    .codes
                    .iter_mut()
                    .find(|e| e.id == entry.id)
                    .ok_or(NukiError::BadParameter)?;
                *e = entry;
                Ok(vec![Message::new(Command::Status, vec![0x00])])
            }
            Some(Command::RemoveKeypadCode) if p.len() == 36 => {
                self.check_trailing_auth(p)?;
                let id = u16::from_le_bytes([p[0], p[1]]);
                let before = self.codes.len();
                self.codes.retain(|e| e.id != id);
                if self.codes.len() == before {
                    return Err(NukiError::BadParameter);
                }
                Ok(vec![Message::new(Command::Status, vec![0x00])])
            }
            Some(Command::RequestKeypadCodes) if p.len() == 38 => {
                self.check_trailing_auth(p)?;
                let off = u16::from_le_bytes([p[0], p[1]]) as usize;
                let count = u16::from_le_bytes([p[2], p[3]]) as usize;
                let mut r = vec![Message::new(
                    Command::KeypadCodeCount,
                    (self.codes.len() as u16).to_le_bytes(),
                )];
                r.extend(self.codes.iter().skip(off).take(count).map(encode_entry));
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
        assert_eq!(listed, k.codes);
        let n = nonce(&mut k);
        let entry = keypad::KeypadEntry {
            id: 2,
            code: code(567891),
        };
        let r = k.on_message(&keypad::update(&entry, &n, pin).unwrap());
        assert_eq!(r[0].command, Command::Status as u16);
        assert_eq!(k.codes[1], entry);
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
}
