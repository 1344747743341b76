//! Security CC (0x98, "S0"): frames and the nonces we hand out.
//!
//! Every encrypted frame needs a fresh nonce from its receiver: the sender
//! asks with Nonce Get, the receiver answers with 8 random bytes (the first
//! is the nonce's id), and the frame is AES-OFB encrypted with IV = sender
//! nonce ‖ receiver nonce and authenticated with a CBC-MAC over both nonces,
//! the header and the ciphertext. A nonce is good once and for a few seconds.
//!
//! Pure and synchronous, like [`super::s2`]; the layer in [`super`] does the
//! round trips.

use super::crypto::{self, Block};
use std::time::{Duration, Instant};

/// Security CC command ids.
pub mod cmd {
    pub const COMMANDS_SUPPORTED_GET: u8 = 0x02;
    pub const COMMANDS_SUPPORTED_REPORT: u8 = 0x03;
    pub const SCHEME_GET: u8 = 0x04;
    pub const SCHEME_REPORT: u8 = 0x05;
    pub const NETWORK_KEY_SET: u8 = 0x06;
    pub const NETWORK_KEY_VERIFY: u8 = 0x07;
    pub const SCHEME_INHERIT: u8 = 0x08;
    pub const NONCE_GET: u8 = 0x40;
    pub const NONCE_REPORT: u8 = 0x80;
    pub const MESSAGE_ENCAPSULATION: u8 = 0x81;
    pub const MESSAGE_ENCAPSULATION_NONCE_GET: u8 = 0xC1;
}

const CC: u8 = 0x98;

/// Why an S0 frame could not be built or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum S0Error {
    #[error("malformed S0 frame: {0}")]
    Malformed(&'static str),
    #[error("the frame names a nonce we did not give out, or one that expired")]
    UnknownNonce,
    #[error("the frame's MAC does not verify")]
    BadMac,
    #[error("sequenced (split) S0 frames are not supported")]
    Sequenced,
}

/// S0's two keys, derived from the S0 network key.
#[derive(Clone)]
pub struct S0Keys {
    auth: Block,
    enc: Block,
}

impl std::fmt::Debug for S0Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("S0Keys(***)")
    }
}

impl S0Keys {
    pub fn new(network_key: &Block) -> S0Keys {
        let (auth, enc) = crypto::s0_keys(network_key);
        S0Keys { auth, enc }
    }

    #[cfg(test)]
    pub fn parts(&self) -> (Block, Block) {
        (self.auth, self.enc)
    }
}

pub fn nonce_get() -> Vec<u8> {
    vec![CC, cmd::NONCE_GET]
}

pub fn nonce_report(nonce: &[u8; 8]) -> Vec<u8> {
    let mut v = vec![CC, cmd::NONCE_REPORT];
    v.extend_from_slice(nonce);
    v
}

pub fn parse_nonce_report(b: &[u8]) -> Result<[u8; 8], S0Error> {
    b.get(2..10)
        .and_then(|n| n.try_into().ok())
        .ok_or(S0Error::Malformed("short nonce report"))
}

fn mac(
    keys: &S0Keys,
    command: u8,
    sn: &[u8; 8],
    rn: &[u8; 8],
    src: u8,
    dst: u8,
    ct: &[u8],
) -> [u8; 8] {
    let mut data = Vec::with_capacity(20 + ct.len());
    data.extend_from_slice(sn);
    data.extend_from_slice(rn);
    data.extend_from_slice(&[command, src, dst, ct.len() as u8]);
    data.extend_from_slice(ct);
    let m = crypto::cbc_mac(&keys.auth, &data);
    m[..8].try_into().expect("8 bytes")
}

fn iv(sn: &[u8; 8], rn: &[u8; 8]) -> Block {
    let mut iv = [0u8; 16];
    iv[..8].copy_from_slice(sn);
    iv[8..].copy_from_slice(rn);
    iv
}

/// Message Encapsulation of `command` from `src` to `dst`, with our
/// `sender_nonce` (random) and the receiver's nonce from its Nonce Report.
pub fn encapsulate(
    keys: &S0Keys,
    src: u8,
    dst: u8,
    sender_nonce: &[u8; 8],
    receiver_nonce: &[u8; 8],
    command: &[u8],
) -> Vec<u8> {
    let mut ct = Vec::with_capacity(command.len() + 1);
    ct.push(0x00); // frame control: one frame, not sequenced
    ct.extend_from_slice(command);
    crypto::ofb(&keys.enc, &iv(sender_nonce, receiver_nonce), &mut ct);
    let m = mac(
        keys,
        cmd::MESSAGE_ENCAPSULATION,
        sender_nonce,
        receiver_nonce,
        src,
        dst,
        &ct,
    );
    let mut f = vec![CC, cmd::MESSAGE_ENCAPSULATION];
    f.extend_from_slice(sender_nonce);
    f.extend_from_slice(&ct);
    f.push(receiver_nonce[0]);
    f.extend_from_slice(&m);
    f
}

/// The nonces we gave one peer, each good once until it expires.
#[derive(Debug, Default)]
pub struct Nonces {
    given: Vec<([u8; 8], Instant)>,
}

impl Nonces {
    /// A fresh nonce (its id differs from the others still good) for a Nonce Report.
    pub fn issue(&mut self, lifetime: Duration) -> [u8; 8] {
        let now = Instant::now();
        self.given.retain(|(_, exp)| *exp > now);
        loop {
            let n: [u8; 8] = rand::random();
            if n[0] != 0 && !self.given.iter().any(|(g, _)| g[0] == n[0]) {
                self.given.push((n, now + lifetime));
                return n;
            }
        }
    }

    fn take(&mut self, id: u8) -> Option<[u8; 8]> {
        let now = Instant::now();
        self.given.retain(|(_, exp)| *exp > now);
        let i = self.given.iter().position(|(n, _)| n[0] == id)?;
        Some(self.given.swap_remove(i).0)
    }
}

/// Opens a Message Encapsulation (0x81 or 0xC1) frame from `src` to `dst`
/// with a nonce we gave out; returns the command inside. The nonce is used
/// up either way.
pub fn decapsulate(
    keys: &S0Keys,
    nonces: &mut Nonces,
    src: u8,
    dst: u8,
    frame: &[u8],
) -> Result<Vec<u8>, S0Error> {
    // 98 81 SN(8) CT(>=1) id MAC(8)
    if frame.len() < 2 + 8 + 1 + 1 + 8 {
        return Err(S0Error::Malformed("too short"));
    }
    let command = frame[1];
    let sn: [u8; 8] = frame[2..10].try_into().expect("8 bytes");
    let ct = &frame[10..frame.len() - 9];
    let id = frame[frame.len() - 9];
    let got_mac = &frame[frame.len() - 8..];
    let rn = nonces.take(id).ok_or(S0Error::UnknownNonce)?;
    if mac(keys, command, &sn, &rn, src, dst, ct) != got_mac {
        return Err(S0Error::BadMac);
    }
    let mut pt = ct.to_vec();
    crypto::ofb(&keys.enc, &iv(&sn, &rn), &mut pt);
    if pt[0] & 0x10 != 0 {
        return Err(S0Error::Sequenced);
    }
    Ok(pt[1..].to_vec())
}

/// Commands Supported Get.
pub fn commands_supported_get() -> Vec<u8> {
    vec![CC, cmd::COMMANDS_SUPPORTED_GET]
}

/// The supported command classes of a Commands Supported Report.
pub fn parse_commands_supported(b: &[u8]) -> Vec<u8> {
    b.iter()
        .skip(3)
        .copied()
        .take_while(|&c| c != 0xEF)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_a_nonce_good_once() {
        let keys = S0Keys::new(&[7; 16]);
        let mut ours = Nonces::default();
        let rn = ours.issue(Duration::from_secs(5));
        let f = encapsulate(&keys, 3, 1, &[9; 8], &rn, &[0x63, 0x03, 1, 1, b'1', b'2']);
        assert_eq!(
            decapsulate(&keys, &mut ours, 3, 1, &f).unwrap(),
            vec![0x63, 0x03, 1, 1, b'1', b'2']
        );
        assert_eq!(
            decapsulate(&keys, &mut ours, 3, 1, &f),
            Err(S0Error::UnknownNonce),
            "a nonce is good once"
        );
        let rn = ours.issue(Duration::from_secs(5));
        let mut bad = encapsulate(&keys, 3, 1, &[9; 8], &rn, &[0x63, 0x03]);
        bad[11] ^= 1;
        assert_eq!(
            decapsulate(&keys, &mut ours, 3, 1, &bad),
            Err(S0Error::BadMac)
        );
        let rn = ours.issue(Duration::from_secs(5));
        let f = encapsulate(&keys, 3, 1, &[9; 8], &rn, &[0x63, 0x03]);
        assert_eq!(
            decapsulate(&keys, &mut ours, 4, 1, &f),
            Err(S0Error::BadMac),
            "the source is authenticated"
        );
    }

    #[test]
    fn nonces_expire() {
        let keys = S0Keys::new(&[7; 16]);
        let mut ours = Nonces::default();
        let rn = ours.issue(Duration::from_millis(1));
        std::thread::sleep(Duration::from_millis(5));
        let f = encapsulate(&keys, 3, 1, &[9; 8], &rn, &[0x63, 0x03]);
        assert_eq!(
            decapsulate(&keys, &mut ours, 3, 1, &f),
            Err(S0Error::UnknownNonce)
        );
        let ids: std::collections::HashSet<u8> = (0..50)
            .map(|_| ours.issue(Duration::from_secs(5))[0])
            .collect();
        assert_eq!(ids.len(), 50, "ids of live nonces differ");
    }

    #[test]
    fn commands_supported() {
        assert_eq!(
            parse_commands_supported(&[0x98, 0x03, 0, 0x63, 0x62, 0xEF, 0x20]),
            vec![0x63, 0x62]
        );
        assert_eq!(
            parse_nonce_report(&[0x98, 0x80, 1, 2, 3, 4, 5, 6, 7, 8]).unwrap()[7],
            8
        );
        assert!(parse_nonce_report(&[0x98, 0x80, 1]).is_err());
    }
}
