//! An in-process fake Nuki lock written from the API 2.1 spec, for tests.
//! So far it plays the lock's side of pairing ("Authorize App"); the keypad
//! code store is still to come.

use super::nuki::crypto::{PrivateKey, PublicKey, SharedKey};
use super::nuki::error::NukiError;
use super::nuki::frame::{Command, Message};

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

    fn error(e: NukiError, cmd: u16) -> Message {
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
