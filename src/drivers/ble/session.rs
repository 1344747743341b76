//! One conversation with one Nuki over a [`Link`]: reassembles indication
//! pieces into messages, seals and opens the encrypted envelope, asks for a
//! fresh challenge before every keypad command, and turns the lock's replies
//! (including Error Reports) into typed results. Every wait has a timeout.

use super::link::{Channel, Link, LinkError};
use super::nuki::crypto::{random_nonce, EncryptedHeader, HEADER_LEN};
use super::nuki::frame::{Command, Message};
use super::nuki::keypad::{self, KeypadCode, KeypadEntry, SecurityPin};
use super::nuki::states::{self, KeyturnerStates, LogEntry};
use super::nuki::{NukiError, ProtocolError, SharedKey};
use crate::drivers::DriverError;
use std::collections::VecDeque;
use std::time::Duration;

/// Longest encrypted message we accept; anything longer is a garbled header.
const MAX_ENCRYPTED_LEN: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    #[error("the lock refused: {0}")]
    Lock(NukiError),
}

impl From<SessionError> for DriverError {
    fn from(e: SessionError) -> DriverError {
        match e {
            SessionError::Link(e) => e.into(),
            SessionError::Protocol(e) => e.into(),
            SessionError::Lock(e) => e.into(),
        }
    }
}

/// Gathers indication pieces of one characteristic into whole messages.
/// Unencrypted messages have a length fixed by their command; encrypted ones
/// announce it in their header.
#[derive(Debug)]
pub struct Reassembler {
    encrypted: bool,
    buf: Vec<u8>,
}

impl Reassembler {
    pub fn new(channel: Channel) -> Reassembler {
        Reassembler {
            encrypted: channel == Channel::Keyturner,
            buf: Vec::new(),
        }
    }

    /// Adds a piece; returns the messages it completed (raw bytes). A header
    /// that cannot be right empties the buffer and fails, so the next message
    /// starts clean.
    pub fn push(&mut self, piece: &[u8]) -> Result<Vec<Vec<u8>>, ProtocolError> {
        self.buf.extend_from_slice(piece);
        let mut out = Vec::new();
        while let Some(len) = self.frame_len()? {
            if self.buf.len() < len {
                break;
            }
            out.push(self.buf.drain(..len).collect());
        }
        Ok(out)
    }

    /// Bytes still waiting for the rest of their message.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    pub fn clear(&mut self) {
        self.buf.clear();
    }

    fn frame_len(&mut self) -> Result<Option<usize>, ProtocolError> {
        if self.encrypted {
            if self.buf.len() < HEADER_LEN {
                return Ok(None);
            }
            let total = EncryptedHeader::parse(&self.buf)?.total_len();
            if total > MAX_ENCRYPTED_LEN {
                self.buf.clear();
                return Err(ProtocolError::BadLength {
                    declared: total,
                    actual: MAX_ENCRYPTED_LEN,
                });
            }
            return Ok(Some(total));
        }
        if self.buf.len() < 2 {
            return Ok(None);
        }
        let command = u16::from_le_bytes([self.buf[0], self.buf[1]]);
        match plain_len(command) {
            Some(n) => Ok(Some(n)),
            None => {
                self.buf.clear();
                Err(ProtocolError::UnexpectedCommand {
                    got: command,
                    expected: Command::PublicKey as u16,
                })
            }
        }
    }
}

/// Whole length (command, payload, CRC) of the unencrypted messages a lock
/// sends while pairing.
fn plain_len(command: u16) -> Option<usize> {
    let payload = match Command::from_u16(command)? {
        Command::PublicKey | Command::Challenge => 32,
        Command::AuthorizationId => 32 + 4 + 16 + 32,
        Command::Status => 1,
        Command::ErrorReport => 3,
        _ => return None,
    };
    Some(2 + payload + 2)
}

/// What a session needs to talk encrypted to a paired lock.
#[derive(Clone)]
pub struct Credentials {
    pub auth_id: u32,
    pub key: SharedKey,
    pub security_pin: SecurityPin,
}

pub struct Session {
    link: Box<dyn Link>,
    timeout: Duration,
    plain: Reassembler,
    sealed: Reassembler,
    /// Decoded messages not yet consumed, per channel.
    plain_queue: VecDeque<Message>,
    sealed_queue: VecDeque<Message>,
    creds: Option<Credentials>,
}

impl Session {
    /// `timeout` bounds each wait for the lock's next message.
    pub fn new(link: Box<dyn Link>, timeout: Duration, creds: Option<Credentials>) -> Session {
        Session {
            link,
            timeout,
            plain: Reassembler::new(Channel::Pairing),
            sealed: Reassembler::new(Channel::Keyturner),
            plain_queue: VecDeque::new(),
            sealed_queue: VecDeque::new(),
            creds,
        }
    }

    pub async fn close(mut self) {
        self.link.close().await;
    }

    /// Sends one unencrypted message and waits for the lock's reply.
    pub async fn exchange_plain(&mut self, msg: &Message) -> Result<Message, SessionError> {
        self.plain_queue.clear();
        self.plain.clear();
        self.link.write(Channel::Pairing, &msg.encode()).await?;
        self.recv(Channel::Pairing).await
    }

    async fn recv(&mut self, channel: Channel) -> Result<Message, SessionError> {
        loop {
            let queue = match channel {
                Channel::Pairing => &mut self.plain_queue,
                Channel::Keyturner => &mut self.sealed_queue,
            };
            if let Some(m) = queue.pop_front() {
                return Ok(m);
            }
            let (ch, piece) = tokio::time::timeout(self.timeout, self.link.next_piece())
                .await
                .map_err(|_| LinkError::Timeout)??;
            match ch {
                Channel::Pairing => {
                    for raw in self.plain.push(&piece)? {
                        self.plain_queue.push_back(Message::decode(&raw)?);
                    }
                }
                Channel::Keyturner => {
                    // Nothing sealed can be meant for a session still pairing.
                    let Some(creds) = self.creds.as_ref() else {
                        continue;
                    };
                    for raw in self.sealed.push(&piece)? {
                        let opened = creds.key.open(&raw)?;
                        if opened.auth_id != creds.auth_id {
                            return Err(ProtocolError::AuthIdMismatch {
                                outer: creds.auth_id,
                                inner: opened.auth_id,
                            }
                            .into());
                        }
                        self.sealed_queue.push_back(opened.message);
                    }
                }
            }
        }
    }

    fn creds(&self) -> Result<&Credentials, SessionError> {
        self.creds
            .as_ref()
            .ok_or(SessionError::Lock(NukiError::NotAuthorized))
    }

    async fn send_sealed(&mut self, msg: &Message) -> Result<(), SessionError> {
        let creds = self.creds()?;
        let bytes = creds.key.seal(&random_nonce(), creds.auth_id, msg);
        self.link.write(Channel::Keyturner, &bytes).await?;
        Ok(())
    }

    /// Waits for `want`, passing over intermediate Status "accepted" and
    /// unrelated messages; an Error Report ends the wait with its error.
    async fn expect(&mut self, want: Command) -> Result<Message, SessionError> {
        loop {
            let m = self.recv(Channel::Keyturner).await?;
            match Command::from_u16(m.command) {
                Some(Command::ErrorReport) => {
                    return Err(SessionError::Lock(NukiError::from_report(&m.payload)));
                }
                Some(c) if c == want => {
                    if c == Command::Status && m.payload.first() != Some(&0x00) {
                        continue;
                    }
                    return Ok(m);
                }
                _ => continue,
            }
        }
    }

    /// Asks the lock for a single-use nonce (needed by every keypad command).
    async fn challenge(&mut self) -> Result<[u8; 32], SessionError> {
        // Whatever is left from an earlier command is stale now.
        self.sealed_queue.clear();
        let ask = Message::new(
            Command::RequestData,
            (Command::Challenge as u16).to_le_bytes(),
        );
        self.send_sealed(&ask).await?;
        let m = self.expect(Command::Challenge).await?;
        m.payload
            .get(..32)
            .and_then(|n| n.try_into().ok())
            .ok_or_else(|| {
                ProtocolError::BadPayload {
                    command: m.command,
                    reason: "challenge shorter than 32 bytes",
                }
                .into()
            })
    }

    fn pin(&self) -> Result<SecurityPin, SessionError> {
        Ok(self.creds()?.security_pin)
    }

    /// Every keypad code the lock holds (0x0043, then 0x0044 and 0x0045s).
    pub async fn list_codes(&mut self) -> Result<Vec<KeypadEntry>, SessionError> {
        let nonce = self.challenge().await?;
        let pin = self.pin()?;
        self.send_sealed(&keypad::request(0, u16::MAX, &nonce, pin))
            .await?;
        let count = keypad::parse_count(&self.expect(Command::KeypadCodeCount).await?)?;
        let mut entries = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let m = self.expect(Command::KeypadCode).await?;
            entries.push(keypad::parse_entry(&m)?);
        }
        Ok(entries)
    }

    /// Adds a code; returns the id the lock gave it (0x0042).
    pub async fn add_code(&mut self, code: &KeypadCode) -> Result<u16, SessionError> {
        let nonce = self.challenge().await?;
        let msg = keypad::add(code, &nonce, self.pin()?)?;
        self.send_sealed(&msg).await?;
        let m = self.expect(Command::KeypadCodeId).await?;
        Ok(keypad::parse_code_id(&m)?)
    }

    pub async fn update_code(&mut self, entry: &KeypadEntry) -> Result<(), SessionError> {
        let nonce = self.challenge().await?;
        let msg = keypad::update(entry, &nonce, self.pin()?)?;
        self.send_sealed(&msg).await?;
        self.expect(Command::Status).await.map(|_| ())
    }

    /// The lock's state (Request Data for Keyturner States).
    pub async fn states(&mut self) -> Result<KeyturnerStates, SessionError> {
        self.sealed_queue.clear();
        self.send_sealed(&states::request_states()).await?;
        let m = self.expect(Command::KeyturnerStates).await?;
        Ok(states::parse_states(&m)?)
    }

    /// Runs a Lock Action and waits until the lock says it is complete
    /// (Status ACCEPTED, states, then Status COMPLETE).
    pub async fn lock_action(&mut self, action: u8) -> Result<(), SessionError> {
        let nonce = self.challenge().await?;
        let app_id = self.creds()?.auth_id;
        self.send_sealed(&states::lock_action(action, app_id, &nonce))
            .await?;
        self.expect(Command::Status).await.map(|_| ())
    }

    /// Up to `count` log entries: after index `after`, oldest first; or, with
    /// `after = None`, only the newest one (where to start from).
    pub async fn log_entries(
        &mut self,
        after: Option<u32>,
        count: u16,
    ) -> Result<Vec<LogEntry>, SessionError> {
        let nonce = self.challenge().await?;
        let pin = self.pin()?;
        let msg = match after {
            Some(i) => states::request_log(i, count, false, &nonce, pin),
            None => states::request_log(0, 1, true, &nonce, pin),
        };
        self.send_sealed(&msg).await?;
        let mut out = Vec::new();
        loop {
            let m = self.recv(Channel::Keyturner).await?;
            match Command::from_u16(m.command) {
                Some(Command::ErrorReport) => {
                    return Err(SessionError::Lock(NukiError::from_report(&m.payload)));
                }
                Some(Command::LogEntry) => {
                    out.push(states::parse_log_entry(&m)?);
                    if out.len() >= count as usize {
                        return Ok(out);
                    }
                }
                Some(Command::Status) if m.payload.first() == Some(&0x00) => return Ok(out),
                _ => continue,
            }
        }
    }

    pub async fn remove_code(&mut self, id: u16) -> Result<(), SessionError> {
        let nonce = self.challenge().await?;
        let msg = keypad::remove(id, &nonce, self.pin()?);
        self.send_sealed(&msg).await?;
        self.expect(Command::Status).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn plain_messages() -> Vec<Vec<u8>> {
        vec![
            Message::new(Command::PublicKey, [7u8; 32]).encode(),
            Message::new(Command::Challenge, [9u8; 32]).encode(),
            Message::new(Command::Status, [0u8]).encode(),
            Message::new(Command::ErrorReport, [0x10, 0x01, 0x00]).encode(),
            Message::new(Command::AuthorizationId, vec![3u8; 84]).encode(),
        ]
    }

    proptest! {
        /// However the stream is cut into pieces, the same messages come out.
        #[test]
        fn any_split_reassembles(cuts in proptest::collection::vec(1usize..40, 1..60)) {
            let key = SharedKey::from_bytes([5; 32]);
            for (channel, msgs) in [
                (Channel::Pairing, plain_messages()),
                (Channel::Keyturner, (0..4u8)
                    .map(|i| key.seal(&random_nonce(), 2, &Message::new(Command::Status, vec![i; i as usize * 13])))
                    .collect()),
            ] {
                let stream: Vec<u8> = msgs.concat();
                let mut r = Reassembler::new(channel);
                let mut got = Vec::new();
                let mut at = 0;
                for c in cuts.iter().cycle() {
                    if at >= stream.len() { break; }
                    let end = (at + c).min(stream.len());
                    got.extend(r.push(&stream[at..end]).unwrap());
                    at = end;
                }
                prop_assert_eq!(&got, &msgs);
                prop_assert_eq!(r.pending(), 0);
            }
        }
    }

    #[test]
    fn garbage_header_fails_and_resets() {
        let mut r = Reassembler::new(Channel::Keyturner);
        let mut bad = vec![0u8; HEADER_LEN];
        bad[28] = 0xFF;
        bad[29] = 0xFF;
        assert!(r.push(&bad).is_err());
        assert_eq!(r.pending(), 0);
        let mut p = Reassembler::new(Channel::Pairing);
        assert!(p.push(&[0x99, 0x99, 1, 2]).is_err());
        assert_eq!(p.pending(), 0);
    }
}
