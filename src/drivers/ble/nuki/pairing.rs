//! The client side of "Authorize App" (section 9), as a pure state machine:
//! feed it each message the lock sends, send what it returns. No I/O, so the
//! same code runs over btleplug and against the fake lock.
//!
//! Authenticators (h1 = HMAC-SHA256 keyed with the shared key) cover fields
//! that are not all sent: 0x0005 covers `pkA | pkK | nK`, 0x0006 covers
//! `id type | app id | name | nA | nK`, 0x0007 covers `auth id | uuid | nK | nA`,
//! 0x001E covers `auth id | nK`.

use super::crypto::{PrivateKey, PublicKey, SharedKey};
use super::error::{NukiError, ProtocolError};
use super::frame::{Command, Message};

/// Length of the name field of Authorization Data.
pub const AUTH_NAME_LEN: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PairingError {
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    #[error("the lock refused: {0}")]
    Lock(NukiError),
    #[error("the lock's authenticator does not match: wrong lock or tampered reply")]
    BadAuthenticator,
    #[error("pairing name longer than 32 bytes")]
    NameTooLong,
    #[error("message {0:#06x} came at the wrong step of pairing")]
    OutOfOrder(u16),
}

/// Where pairing stands. `Done` carries what the key store needs.
#[derive(Debug)]
enum State {
    WantPublicKey,
    WantFirstChallenge { lock_pk: PublicKey, key: SharedKey },
    WantSecondChallenge { key: SharedKey },
    WantAuthorizationId { key: SharedKey, n_a: [u8; 32] },
    WantComplete { key: SharedKey, auth_id: u32 },
    Done,
}

/// What the machine asks the caller to do next.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    Send(Message),
    /// Pairing finished: the authorization id and the shared key.
    Paired {
        auth_id: u32,
        key: SharedKey,
    },
}

pub struct Pairing {
    sk: PrivateKey,
    app_id: u32,
    name: [u8; AUTH_NAME_LEN],
    nonce_a: [u8; 32],
    state: State,
}

impl Pairing {
    /// `nonce_a` is our pairing nonce (random in production, fixed in tests).
    pub fn new(
        sk: PrivateKey,
        app_id: u32,
        name: &str,
        nonce_a: [u8; 32],
    ) -> Result<(Pairing, Message), PairingError> {
        let b = name.as_bytes();
        if b.len() > AUTH_NAME_LEN {
            return Err(PairingError::NameTooLong);
        }
        let mut n = [0u8; AUTH_NAME_LEN];
        n[..b.len()].copy_from_slice(b);
        let first = Message::new(
            Command::RequestData,
            (Command::PublicKey as u16).to_le_bytes(),
        );
        Ok((
            Pairing {
                sk,
                app_id,
                name: n,
                nonce_a,
                state: State::WantPublicKey,
            },
            first,
        ))
    }

    /// The authorization the lock may hold once our confirmation went out,
    /// though its closing status never came (lost, or the link dropped).
    pub fn unconfirmed(&self) -> Option<(u32, SharedKey)> {
        match &self.state {
            State::WantComplete { key, auth_id } => Some((*auth_id, key.clone())),
            _ => None,
        }
    }

    /// Advances on one message from the lock.
    pub fn on_message(&mut self, msg: &Message) -> Result<Step, PairingError> {
        if msg.command == Command::ErrorReport as u16 {
            return Err(PairingError::Lock(NukiError::from_report(&msg.payload)));
        }
        let arr32 = |p: &[u8]| -> Result<[u8; 32], PairingError> {
            p.get(..32)
                .and_then(|s| s.try_into().ok())
                .ok_or(PairingError::Protocol(ProtocolError::BadPayload {
                    command: msg.command,
                    reason: "payload shorter than 32 bytes",
                }))
        };
        let state = std::mem::replace(&mut self.state, State::Done);
        let cmd = Command::from_u16(msg.command);
        let (next, step) = match (state, cmd) {
            (State::WantPublicKey, Some(Command::PublicKey)) => {
                let lock_pk = PublicKey(arr32(&msg.payload)?);
                let key = self.sk.shared_key(&lock_pk);
                let ours = Message::new(Command::PublicKey, self.sk.public_key().0);
                (State::WantFirstChallenge { lock_pk, key }, Step::Send(ours))
            }
            (State::WantFirstChallenge { lock_pk, key }, Some(Command::Challenge)) => {
                let n_k = arr32(&msg.payload)?;
                let a = key.authenticator(&[&self.sk.public_key().0, &lock_pk.0, &n_k]);
                let m = Message::new(Command::AuthorizationAuthenticator, a);
                (State::WantSecondChallenge { key }, Step::Send(m))
            }
            (State::WantSecondChallenge { key }, Some(Command::Challenge)) => {
                let n_k = arr32(&msg.payload)?;
                let m = authorization_data(&key, 0, self.app_id, &self.name, &self.nonce_a, &n_k);
                let n_a = self.nonce_a;
                (State::WantAuthorizationId { key, n_a }, Step::Send(m))
            }
            (State::WantAuthorizationId { key, n_a }, Some(Command::AuthorizationId)) => {
                let p = &msg.payload;
                if p.len() < 32 + 4 + 16 + 32 {
                    return Err(ProtocolError::BadPayload {
                        command: msg.command,
                        reason: "authorization id payload too short",
                    }
                    .into());
                }
                let (auth, rest) = p.split_at(32);
                let auth_id_b = &rest[..4];
                let uuid = &rest[4..20];
                let n_k = &rest[20..52];
                if !key.verify_authenticator(&[auth_id_b, uuid, n_k, &n_a], auth) {
                    return Err(PairingError::BadAuthenticator);
                }
                let auth_id = u32::from_le_bytes(auth_id_b.try_into().expect("4 bytes"));
                let a = key.authenticator(&[auth_id_b, n_k]);
                let mut payload = a.to_vec();
                payload.extend_from_slice(auth_id_b);
                let m = Message::new(Command::AuthorizationIdConfirmation, payload);
                (State::WantComplete { key, auth_id }, Step::Send(m))
            }
            (State::WantComplete { key, auth_id }, Some(Command::Status))
                if msg.payload.first() == Some(&0x00) =>
            {
                (State::Done, Step::Paired { auth_id, key })
            }
            (s, _) => {
                self.state = s;
                return Err(PairingError::OutOfOrder(msg.command));
            }
        };
        self.state = next;
        Ok(step)
    }
}

/// 0x0006 Authorization Data: `a | id type | app id | name | nA`.
pub fn authorization_data(
    key: &SharedKey,
    id_type: u8,
    app_id: u32,
    name: &[u8; AUTH_NAME_LEN],
    n_a: &[u8; 32],
    n_k: &[u8; 32],
) -> Message {
    let app = app_id.to_le_bytes();
    let a = key.authenticator(&[&[id_type], &app, name, n_a, n_k]);
    let mut p = Vec::with_capacity(32 + 1 + 4 + 32 + 32);
    p.extend_from_slice(&a);
    p.push(id_type);
    p.extend_from_slice(&app);
    p.extend_from_slice(name);
    p.extend_from_slice(n_a);
    Message::new(Command::AuthorizationData, p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }
    fn arr<const N: usize>(s: &str) -> [u8; N] {
        hex(s).try_into().unwrap()
    }

    const S: &str = "217FCB0F18CAF284E9BDEA0B94B83B8D10867ED706BFDEDBD2381F4CB3B8F730";
    const CL_SK: &str = "8CAA54672307BFFDF5EA183FC607158D2011D008ECA6A1088614FF0853A5AA07";
    const N_A: &str = "52AFE0A664B4E9B56DC6BD4CB718A6C9FED6BE17A7411072AA0D315378140577";

    /// Step 16 of the worked example, byte for byte.
    #[test]
    fn authorization_data_matches_spec() {
        let key = SharedKey::from_bytes(arr(S));
        let mut name = [0u8; 32];
        name[..11].copy_from_slice(b"Marc (Test)");
        let n_k = arr::<32>("E0742CFEA39CB46109385BF91286A3C02F40EE86B0B62FC34033094DE41E2C0D");
        let m = authorization_data(&key, 0, 0, &name, &arr(N_A), &n_k);
        assert_eq!(
            m.encode(),
            hex(
                "0600CF1B9E7801E3196E6594E76D57908EE500AAD5C33F4B6E0BBEA0DDEF82967BFC00
                 000000004D6172632028546573742900000000000000000000000000000000000000000052A
                 FE0A664B4E9B56DC6BD4CB718A6C9FED6BE17A7411072AA0D31537814057769F2"
            )
        );
    }

    /// Steps 1-13 of the worked example: the machine sends the spec's bytes.
    #[test]
    fn first_steps_match_spec() {
        let (mut p, first) = Pairing::new(
            PrivateKey::from_bytes(arr(CL_SK)),
            0,
            "Marc (Test)",
            arr(N_A),
        )
        .unwrap();
        assert_eq!(first.encode(), hex("0100 0300 27A7"));
        let lock_pk = Message::decode(&hex(
            "03002FE57DA347CD62431528DAAC5FBB290730FFF684AFC4CFC2ED90995F58CB3B749DB9",
        ))
        .unwrap();
        let Step::Send(ours) = p.on_message(&lock_pk).unwrap() else {
            panic!("expected a message")
        };
        assert_eq!(
            ours.encode(),
            hex("0300F88127CCF48023B5CBE9101D24BAA8A368DA94E8C2E3CDE2DED29CE96AB50C159241")
        );
        let ch = Message::decode(&hex(
            "04006CD4163D159050C798553EAA57E278A579AFFCBC56F09FC57FE879E51C42DF17C3DF",
        ))
        .unwrap();
        let Step::Send(auth) = p.on_message(&ch).unwrap() else {
            panic!("expected a message")
        };
        assert_eq!(
            auth.encode(),
            hex("0500B09A0D3979A029E5FD027B519EAA200BC14AD3E163D3BE4563843E021073BCB1C357")
        );
        let ch2 = Message::decode(&hex(
            "0400E0742CFEA39CB46109385BF91286A3C02F40EE86B0B62FC34033094DE41E2C0D7FE1",
        ))
        .unwrap();
        let Step::Send(data) = p.on_message(&ch2).unwrap() else {
            panic!("expected a message")
        };
        assert_eq!(data.command, 0x0006);
        // A forged Authorization-ID (wrong authenticator) is refused.
        let mut forged = vec![0u8; 32];
        forged.extend_from_slice(&2u32.to_le_bytes());
        forged.extend_from_slice(&[0; 48]);
        assert_eq!(
            p.on_message(&Message::new(Command::AuthorizationId, forged)),
            Err(PairingError::BadAuthenticator)
        );
    }

    #[test]
    fn errors_and_order() {
        let (mut p, _) = Pairing::new(PrivateKey::generate(), 1, "lockhub", [1; 32]).unwrap();
        assert_eq!(
            p.on_message(&Message::new(Command::Challenge, vec![0; 32])),
            Err(PairingError::OutOfOrder(0x0004))
        );
        assert_eq!(
            p.on_message(&Message::new(Command::ErrorReport, vec![0x10, 0x01, 0x00])),
            Err(PairingError::Lock(NukiError::NotPairing))
        );
        assert!(Pairing::new(PrivateKey::generate(), 1, &"x".repeat(33), [1; 32]).is_err());
    }
}
