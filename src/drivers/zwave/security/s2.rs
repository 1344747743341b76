//! Security 2 CC (0x9F): frames, extensions and the per-peer state (SPAN,
//! sequence numbers, the peer's MPANs), as SDS13783 describes them.
//!
//! Pure and synchronous: the layer in [`super`] owns the radio and the
//! timing; this module turns commands into frames and back.
//!
//! SPAN: the receiver's entropy input (from its Nonce Report, SOS set) and
//! the sender's (in the SPAN extension of the first encrypted frame) are
//! mixed (CKDF-MEI) into the seed of a CTR_DRBG; every encrypted frame in
//! either direction takes the next 13 bytes as its CCM nonce. A receiver
//! that falls behind tries a few nonces ahead; one that cannot decrypt
//! answers with a Nonce Report (SOS) and both sides start a new SPAN.

use super::crypto::{self, Block, CtrDrbg, S2Keys};
use super::SecurityClass;
use std::collections::HashMap;

/// Security 2 command ids.
pub mod cmd {
    pub const NONCE_GET: u8 = 0x01;
    pub const NONCE_REPORT: u8 = 0x02;
    pub const MESSAGE_ENCAPSULATION: u8 = 0x03;
    pub const KEX_GET: u8 = 0x04;
    pub const KEX_REPORT: u8 = 0x05;
    pub const KEX_SET: u8 = 0x06;
    pub const KEX_FAIL: u8 = 0x07;
    pub const PUBLIC_KEY_REPORT: u8 = 0x08;
    pub const NETWORK_KEY_GET: u8 = 0x09;
    pub const NETWORK_KEY_REPORT: u8 = 0x0A;
    pub const NETWORK_KEY_VERIFY: u8 = 0x0B;
    pub const TRANSFER_END: u8 = 0x0C;
    pub const COMMANDS_SUPPORTED_GET: u8 = 0x0D;
    pub const COMMANDS_SUPPORTED_REPORT: u8 = 0x0E;
}

const CC: u8 = 0x9F;

/// How many nonces ahead a receiver tries before it asks for a new SPAN.
pub const MAX_DECRYPT_ATTEMPTS: usize = 5;

/// How long the nonce of our last frame may open a frame that crossed it.
pub const CURRENT_SPAN_LIFETIME: std::time::Duration = std::time::Duration::from_millis(500);

/// Why an S2 frame could not be built or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum S2Error {
    #[error("no SPAN with the node (a nonce exchange is needed)")]
    NoSpan,
    #[error("the frame could not be decrypted or authenticated")]
    CannotDecode,
    #[error("duplicate frame (sequence number {0})")]
    Duplicate(u8),
    #[error("malformed S2 frame: {0}")]
    Malformed(&'static str),
    #[error("an extension marked critical is not understood (type {0})")]
    CriticalExtension(u8),
    #[error("no key for {0:?}")]
    NoKey(SecurityClass),
}

/// An S2 header extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Extension {
    /// The sender's entropy input, to start a SPAN (unencrypted).
    Span { sender_ei: Block },
    /// A multicast group's inner MPAN state (encrypted).
    Mpan { group: u8, state: Block },
    /// The multicast group a follow-up belongs to (unencrypted).
    Mgrp { group: u8 },
    /// Multicast out of sync (unencrypted).
    Mos,
}

mod ext_type {
    pub const SPAN: u8 = 1;
    pub const MPAN: u8 = 2;
    pub const MGRP: u8 = 3;
    pub const MOS: u8 = 4;
}
const MORE_TO_FOLLOW: u8 = 0x80;
const CRITICAL: u8 = 0x40;

impl Extension {
    fn encrypted(&self) -> bool {
        matches!(self, Extension::Mpan { .. })
    }

    fn encode(&self, more: bool, out: &mut Vec<u8>) {
        let (typ, critical, data): (u8, bool, Vec<u8>) = match self {
            Extension::Span { sender_ei } => (ext_type::SPAN, true, sender_ei.to_vec()),
            Extension::Mpan { group, state } => {
                let mut d = vec![*group];
                d.extend_from_slice(state);
                (ext_type::MPAN, true, d)
            }
            Extension::Mgrp { group } => (ext_type::MGRP, true, vec![*group]),
            Extension::Mos => (ext_type::MOS, false, vec![]),
        };
        out.push(2 + data.len() as u8);
        out.push(typ | if critical { CRITICAL } else { 0 } | if more { MORE_TO_FOLLOW } else { 0 });
        out.extend_from_slice(&data);
    }
}

fn encode_extensions(exts: &[&Extension], out: &mut Vec<u8>) {
    for (i, e) in exts.iter().enumerate() {
        e.encode(i + 1 < exts.len(), out);
    }
}

/// Parses extensions from the start of `b`; returns them and the bytes read.
/// Unknown non-critical extensions are skipped; unknown critical ones are an error.
fn parse_extensions(b: &[u8]) -> Result<(Vec<Extension>, usize), S2Error> {
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        let len = *b.get(i).ok_or(S2Error::Malformed("truncated extension"))? as usize;
        let t = *b
            .get(i + 1)
            .ok_or(S2Error::Malformed("truncated extension"))?;
        if len < 2 || i + len > b.len() {
            return Err(S2Error::Malformed("bad extension length"));
        }
        let data = &b[i + 2..i + len];
        let typ = t & 0x3F;
        match typ {
            ext_type::SPAN if data.len() == 16 => out.push(Extension::Span {
                sender_ei: data.try_into().expect("16 bytes"),
            }),
            ext_type::MPAN if data.len() == 17 => out.push(Extension::Mpan {
                group: data[0],
                state: data[1..].try_into().expect("16 bytes"),
            }),
            ext_type::MGRP if data.len() == 1 => out.push(Extension::Mgrp { group: data[0] }),
            ext_type::MOS if data.is_empty() => out.push(Extension::Mos),
            _ if t & CRITICAL != 0 => return Err(S2Error::CriticalExtension(typ)),
            _ => {}
        }
        i += len;
        if t & MORE_TO_FOLLOW == 0 {
            return Ok((out, i));
        }
    }
}

/// Where a SPAN with one peer stands.
#[derive(Debug, Clone)]
pub enum Span {
    None,
    /// We sent our entropy input (Nonce Report); the peer's frame with its
    /// SPAN extension completes it.
    LocalEi(Block),
    /// The peer sent its entropy input; our next frame carries ours.
    RemoteEi(Block),
    Established {
        class: SecurityClass,
        drbg: Box<CtrDrbg>,
    },
}

/// Everything S2 keeps about one peer.
#[derive(Debug)]
pub struct Peer {
    pub span: Span,
    own_seq: u8,
    last_peer_seq: Option<u8>,
    /// The nonce of our last frame, for a peer frame that crossed it on the
    /// air (both used the same nonce); good for [`CURRENT_SPAN_LIFETIME`].
    current_nonce: Option<([u8; 13], std::time::Instant)>,
    /// Multicast groups the peer told us about (inner MPAN state).
    pub peer_mpans: HashMap<u8, Block>,
}

impl Default for Peer {
    fn default() -> Self {
        Peer {
            span: Span::None,
            own_seq: rand::random(),
            last_peer_seq: None,
            current_nonce: None,
            peer_mpans: HashMap::new(),
        }
    }
}

/// The keys of each S2 class this controller has (and a temporary key while
/// a node is being bootstrapped).
pub trait KeyRing {
    fn keys(&self, class: SecurityClass) -> Option<&S2Keys>;
}

/// A decrypted frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    pub class: SecurityClass,
    pub sequence: u8,
    /// The encapsulated command (may be empty: a frame that only carries extensions).
    pub command: Vec<u8>,
    pub extensions: Vec<Extension>,
}

impl Peer {
    fn next_seq(&mut self) -> u8 {
        self.own_seq = self.own_seq.wrapping_add(1);
        self.own_seq
    }

    /// A Nonce Get from us.
    pub fn nonce_get(&mut self) -> Vec<u8> {
        vec![CC, cmd::NONCE_GET, self.next_seq()]
    }

    /// A Nonce Report (SOS) from us with a fresh entropy input; the peer's
    /// next frame must start a new SPAN from it.
    pub fn nonce_report_sos(&mut self, receiver_ei: Block) -> Vec<u8> {
        self.span = Span::LocalEi(receiver_ei);
        let mut v = vec![CC, cmd::NONCE_REPORT, self.next_seq(), 0x01];
        v.extend_from_slice(&receiver_ei);
        v
    }

    /// Checks an incoming frame's sequence number: the same number twice in
    /// a row is the radio's duplicate.
    fn check_sequence(&self, seq: u8) -> Result<(), S2Error> {
        if self.last_peer_seq == Some(seq) {
            return Err(S2Error::Duplicate(seq));
        }
        Ok(())
    }

    /// Checks and records the sequence number of a nonce frame.
    pub fn accept_sequence(&mut self, seq: u8) -> Result<(), S2Error> {
        self.check_sequence(seq)?;
        self.record_sequence(seq);
        Ok(())
    }

    /// The next frame we send carries sequence number `seq` (golden tests).
    pub fn set_next_sequence(&mut self, seq: u8) {
        self.own_seq = seq.wrapping_sub(1);
    }

    fn record_sequence(&mut self, seq: u8) {
        self.last_peer_seq = Some(seq);
    }

    /// Encrypts `command` for `dst` in `class` (Message Encapsulation).
    /// `sender_ei` is used when a SPAN must be started (the peer's entropy
    /// input is known): pass fresh random bytes.
    #[allow(clippy::too_many_arguments)]
    pub fn encapsulate(
        &mut self,
        keys: &dyn KeyRing,
        class: SecurityClass,
        src: u8,
        dst: u8,
        home_id: u32,
        command: &[u8],
        encrypted_extensions: &[Extension],
        sender_ei: Block,
    ) -> Result<Vec<u8>, S2Error> {
        let k = keys.keys(class).ok_or(S2Error::NoKey(class))?;
        let mut unencrypted_ext = Vec::new();
        match &self.span {
            Span::RemoteEi(rei) => {
                let mei = crypto::mei(&crypto::nonce_prk(&sender_ei, rei));
                self.span = Span::Established {
                    class,
                    drbg: Box::new(CtrDrbg::new(&mei, &k.personalization)),
                };
                unencrypted_ext.push(Extension::Span { sender_ei });
            }
            Span::Established { class: c, .. } if *c == class => {}
            _ => return Err(S2Error::NoSpan),
        }
        let Span::Established { drbg, .. } = &mut self.span else {
            unreachable!("established above")
        };
        let nonce = drbg.next_nonce();
        self.current_nonce = Some((nonce, std::time::Instant::now()));
        let seq = self.next_seq();
        let mut header = vec![
            seq,
            u8::from(!unencrypted_ext.is_empty())
                | (u8::from(!encrypted_extensions.is_empty()) << 1),
        ];
        encode_extensions(&unencrypted_ext.iter().collect::<Vec<_>>(), &mut header);
        let mut plaintext = Vec::new();
        encode_extensions(
            &encrypted_extensions
                .iter()
                .filter(|e| e.encrypted())
                .collect::<Vec<_>>(),
            &mut plaintext,
        );
        plaintext.extend_from_slice(command);
        let len = 2 + header.len() + plaintext.len() + crypto::TAG_LEN;
        let aad = aad(src, dst, home_id, len, &header);
        let sealed = crypto::ccm_seal(&k.key_ccm, &nonce, &aad, &plaintext);
        let mut frame = vec![CC, cmd::MESSAGE_ENCAPSULATION];
        frame.extend_from_slice(&header);
        frame.extend_from_slice(&sealed);
        Ok(frame)
    }

    /// Opens a Message Encapsulation frame from `src` (the whole frame,
    /// starting 9F 03). `classes`: the classes a new SPAN may be in, highest
    /// first. On `CannotDecode` / `NoSpan` the caller answers with a Nonce
    /// Report (SOS).
    pub fn decapsulate(
        &mut self,
        keys: &dyn KeyRing,
        classes: &[SecurityClass],
        src: u8,
        dst: u8,
        home_id: u32,
        frame: &[u8],
    ) -> Result<Opened, S2Error> {
        if frame.len() < 4 + crypto::TAG_LEN || frame[..2] != [CC, cmd::MESSAGE_ENCAPSULATION] {
            return Err(S2Error::Malformed("too short"));
        }
        let body = &frame[2..];
        let seq = body[0];
        let ctrl = body[1];
        self.check_sequence(seq)?;
        let mut header_len = 2;
        let mut extensions = Vec::new();
        if ctrl & 0x01 != 0 {
            let (exts, n) = parse_extensions(&body[2..])?;
            extensions = exts;
            header_len += n;
        }
        if body.len() < header_len + crypto::TAG_LEN {
            return Err(S2Error::Malformed("no room for the tag"));
        }
        let header = &body[..header_len];
        let sealed = &body[header_len..];
        let aad = aad(src, dst, home_id, frame.len(), header);
        let sender_ei = extensions.iter().find_map(|e| match e {
            Extension::Span { sender_ei } => Some(*sender_ei),
            _ => None,
        });
        let (class, plaintext) = match (&mut self.span, sender_ei) {
            (Span::LocalEi(rei), Some(sei)) => {
                let rei = *rei;
                let mei = crypto::mei(&crypto::nonce_prk(&sei, &rei));
                let mut found = None;
                for &class in classes {
                    let Some(k) = keys.keys(class) else { continue };
                    let mut drbg = CtrDrbg::new(&mei, &k.personalization);
                    let nonce = drbg.next_nonce();
                    if let Some(p) = crypto::ccm_open(&k.key_ccm, &nonce, &aad, sealed) {
                        self.span = Span::Established {
                            class,
                            drbg: Box::new(drbg),
                        };
                        found = Some((class, p));
                        break;
                    }
                }
                found.ok_or(S2Error::CannotDecode)?
            }
            (Span::Established { class, drbg }, None) => {
                let k = keys.keys(*class).ok_or(S2Error::NoKey(*class))?;
                let mut opened = None;
                // Both sides sent at once with the same nonce: the peer's
                // frame, if it is exactly its next one, opens with ours.
                let crossing = self.current_nonce.take().filter(|(_, at)| {
                    at.elapsed() < CURRENT_SPAN_LIFETIME
                        && self.last_peer_seq.map(|p| p.wrapping_add(1)) == Some(seq)
                });
                if let Some((nonce, _)) = crossing {
                    opened = crypto::ccm_open(&k.key_ccm, &nonce, &aad, sealed);
                }
                for _ in 0..MAX_DECRYPT_ATTEMPTS {
                    if opened.is_some() {
                        break;
                    }
                    let nonce = drbg.next_nonce();
                    if let Some(p) = crypto::ccm_open(&k.key_ccm, &nonce, &aad, sealed) {
                        opened = Some(p);
                        break;
                    }
                }
                (*class, opened.ok_or(S2Error::CannotDecode)?)
            }
            // A SPAN extension we did not ask for, or no SPAN at all.
            _ => return Err(S2Error::NoSpan),
        };
        self.record_sequence(seq);
        let mut command = plaintext;
        if ctrl & 0x02 != 0 {
            let (exts, n) = parse_extensions(&command)?;
            for e in &exts {
                if let Extension::Mpan { group, state } = e {
                    self.peer_mpans.insert(*group, *state);
                }
            }
            extensions.extend(exts);
            command.drain(..n);
        }
        Ok(Opened {
            class,
            sequence: seq,
            command,
            extensions,
        })
    }

    /// Forgets the SPAN (after a Network Key Verify, or to start over).
    pub fn reset_span(&mut self) {
        self.span = Span::None;
    }
}

/// The additional authenticated data of a singlecast frame.
fn aad(src: u8, dst: u8, home_id: u32, len: usize, header: &[u8]) -> Vec<u8> {
    let mut a = vec![src, dst];
    a.extend_from_slice(&home_id.to_be_bytes());
    a.extend_from_slice(&(len as u16).to_be_bytes());
    a.extend_from_slice(header);
    a
}

/// A Nonce Report from a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NonceReport {
    pub sequence: u8,
    pub sos: bool,
    pub mos: bool,
    pub receiver_ei: Option<Block>,
}

pub fn parse_nonce_report(b: &[u8]) -> Result<NonceReport, S2Error> {
    if b.len() < 4 {
        return Err(S2Error::Malformed("short nonce report"));
    }
    let sos = b[3] & 0x01 != 0;
    let mos = b[3] & 0x02 != 0;
    let receiver_ei = if sos {
        Some(
            b.get(4..20)
                .ok_or(S2Error::Malformed("nonce report without entropy input"))?
                .try_into()
                .expect("16 bytes"),
        )
    } else {
        None
    };
    if !sos && !mos {
        return Err(S2Error::Malformed("nonce report with neither SOS nor MOS"));
    }
    Ok(NonceReport {
        sequence: b[2],
        sos,
        mos,
        receiver_ei,
    })
}

/// Commands Supported Get (sent encrypted: the answer lists the command
/// classes the node supports only at this class).
pub fn commands_supported_get() -> Vec<u8> {
    vec![CC, cmd::COMMANDS_SUPPORTED_GET]
}

/// The command classes of a Commands Supported Report (up to the 0xEF mark).
pub fn parse_commands_supported(b: &[u8]) -> Vec<u8> {
    b.iter()
        .skip(2)
        .copied()
        .take_while(|&c| c != 0xEF)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Ring(Vec<(SecurityClass, S2Keys)>);
    impl KeyRing for Ring {
        fn keys(&self, class: SecurityClass) -> Option<&S2Keys> {
            self.0.iter().find(|(c, _)| *c == class).map(|(_, k)| k)
        }
    }

    fn ring() -> Ring {
        Ring(vec![
            (
                SecurityClass::S2AccessControl,
                crypto::network_keys(&[0x33; 16]),
            ),
            (
                SecurityClass::S2Authenticated,
                crypto::network_keys(&[0x22; 16]),
            ),
        ])
    }

    /// Two ends of one link: the host (node 1) and a lock (node 2).
    fn pair() -> (Peer, Peer) {
        (Peer::default(), Peer::default())
    }

    /// The host after the lock's Nonce Report (SOS) with entropy `ei`.
    fn host_after_nonce_report(lock: &mut Peer, ei: Block) -> Peer {
        let r = parse_nonce_report(&lock.nonce_report_sos(ei)).unwrap();
        Peer {
            span: Span::RemoteEi(r.receiver_ei.unwrap()),
            ..Peer::default()
        }
    }

    #[test]
    fn a_span_starts_from_both_entropy_inputs_and_serves_both_directions() {
        let keys = ring();
        let (mut host, mut lock) = pair();
        let ac = [SecurityClass::S2AccessControl];
        // No SPAN yet: the host cannot encrypt.
        assert_eq!(
            host.encapsulate(&keys, ac[0], 1, 2, 7, &[0x63, 0x01], &[], [9; 16]),
            Err(S2Error::NoSpan)
        );
        // Nonce Get -> Nonce Report (SOS) with the lock's entropy.
        let report = lock.nonce_report_sos([0xA5; 16]);
        let r = parse_nonce_report(&report).unwrap();
        host.span = Span::RemoteEi(r.receiver_ei.unwrap());
        let f = host
            .encapsulate(&keys, ac[0], 1, 2, 7, &[0x63, 0x01, 5], &[], [0x5A; 16])
            .unwrap();
        let o = lock.decapsulate(&keys, &ac, 1, 2, 7, &f).unwrap();
        assert_eq!(o.command, vec![0x63, 0x01, 5]);
        assert_eq!(o.class, SecurityClass::S2AccessControl);
        // The answer rides the same SPAN, no new nonce exchange.
        let back = lock
            .encapsulate(&keys, ac[0], 2, 1, 7, &[0x63, 0x03, 5, 1], &[], [0; 16])
            .unwrap();
        assert!(
            !back.windows(2).any(|w| w == [0x12, 0x41]),
            "no SPAN extension"
        );
        let o = host.decapsulate(&keys, &ac, 2, 1, 7, &back).unwrap();
        assert_eq!(o.command, vec![0x63, 0x03, 5, 1]);
        // The same frame again is a duplicate.
        assert_eq!(
            host.decapsulate(&keys, &ac, 2, 1, 7, &back),
            Err(S2Error::Duplicate(o.sequence))
        );
    }

    #[test]
    fn a_receiver_behind_catches_up_and_a_forgery_fails() {
        let keys = ring();
        let mut lock = Peer::default();
        let mut host = host_after_nonce_report(&mut lock, [1; 16]);
        let ac = [SecurityClass::S2AccessControl];
        let f1 = host
            .encapsulate(&keys, ac[0], 1, 2, 7, &[0x20, 0x01, 1], &[], [2; 16])
            .unwrap();
        lock.decapsulate(&keys, &ac, 1, 2, 7, &f1).unwrap();
        // Two frames lost on the air: the third still opens.
        for _ in 0..2 {
            host.encapsulate(&keys, ac[0], 1, 2, 7, &[0x20, 0x01, 2], &[], [2; 16])
                .unwrap();
        }
        let f4 = host
            .encapsulate(&keys, ac[0], 1, 2, 7, &[0x20, 0x01, 4], &[], [2; 16])
            .unwrap();
        assert_eq!(
            lock.decapsulate(&keys, &ac, 1, 2, 7, &f4).unwrap().command,
            vec![0x20, 0x01, 4]
        );
        // A flipped bit: the tag does not verify.
        let mut bad = host
            .encapsulate(&keys, ac[0], 1, 2, 7, &[0x20, 0x01, 5], &[], [2; 16])
            .unwrap();
        let n = bad.len();
        bad[n - 9] ^= 1;
        assert_eq!(
            lock.decapsulate(&keys, &ac, 1, 2, 7, &bad),
            Err(S2Error::CannotDecode)
        );
        // The wrong home id (AAD) fails too.
        let mut lock2 = Peer::default();
        let mut host2 = host_after_nonce_report(&mut lock2, [3; 16]);
        let f = host2
            .encapsulate(&keys, ac[0], 1, 2, 7, &[0x20, 0x01], &[], [4; 16])
            .unwrap();
        assert_eq!(
            lock2.decapsulate(&keys, &ac, 1, 2, 8, &f),
            Err(S2Error::CannotDecode)
        );
    }

    #[test]
    fn frames_that_cross_on_the_air_still_open() {
        let keys = ring();
        let ac = [SecurityClass::S2AccessControl];
        let mut lock = Peer::default();
        let mut host = host_after_nonce_report(&mut lock, [5; 16]);
        let f1 = host
            .encapsulate(&keys, ac[0], 1, 2, 7, &[0x62, 0x02], &[], [6; 16])
            .unwrap();
        lock.decapsulate(&keys, &ac, 1, 2, 7, &f1).unwrap();
        let first = lock
            .encapsulate(&keys, ac[0], 2, 1, 7, &[0x80, 0x03, 9], &[], [0; 16])
            .unwrap();
        host.decapsulate(&keys, &ac, 2, 1, 7, &first).unwrap();
        // The host sends its next frame while the lock sends its report:
        // both took the same nonce.
        let _f2 = host
            .encapsulate(&keys, ac[0], 1, 2, 7, &[0x63, 0x01], &[], [6; 16])
            .unwrap();
        let report = lock
            .encapsulate(&keys, ac[0], 2, 1, 7, &[0x62, 0x03, 0xFF], &[], [0; 16])
            .unwrap();
        assert_eq!(
            host.decapsulate(&keys, &ac, 2, 1, 7, &report)
                .unwrap()
                .command,
            vec![0x62, 0x03, 0xFF]
        );
    }

    #[test]
    fn a_new_span_finds_the_class_among_the_candidates() {
        let keys = ring();
        let mut lock = Peer::default();
        let mut host = host_after_nonce_report(&mut lock, [7; 16]);
        let f = host
            .encapsulate(
                &keys,
                SecurityClass::S2Authenticated,
                1,
                2,
                7,
                &[0x9F, 0x0D],
                &[],
                [8; 16],
            )
            .unwrap();
        let o = lock
            .decapsulate(
                &keys,
                &[
                    SecurityClass::S2AccessControl,
                    SecurityClass::S2Authenticated,
                ],
                1,
                2,
                7,
                &f,
            )
            .unwrap();
        assert_eq!(o.class, SecurityClass::S2Authenticated);
    }

    #[test]
    fn extensions_round_trip_and_mpan_is_stored() {
        let keys = ring();
        let (mut host, mut lock) = pair();
        let ac = [SecurityClass::S2AccessControl];
        host.span = Span::RemoteEi(
            parse_nonce_report(&lock.nonce_report_sos([7; 16]))
                .unwrap()
                .receiver_ei
                .unwrap(),
        );
        let mpan = Extension::Mpan {
            group: 3,
            state: [0x44; 16],
        };
        let f = host
            .encapsulate(
                &keys,
                ac[0],
                1,
                2,
                7,
                &[0x20, 0x01, 0xFF],
                std::slice::from_ref(&mpan),
                [8; 16],
            )
            .unwrap();
        let o = lock.decapsulate(&keys, &ac, 1, 2, 7, &f).unwrap();
        assert_eq!(o.command, vec![0x20, 0x01, 0xFF]);
        assert!(o.extensions.contains(&mpan));
        assert_eq!(lock.peer_mpans.get(&3), Some(&[0x44; 16]));
        let mut b = Vec::new();
        encode_extensions(&[&Extension::Mgrp { group: 9 }, &Extension::Mos], &mut b);
        assert_eq!(b, vec![0x03, 0xC3, 9, 0x02, 0x04]);
        assert_eq!(
            parse_extensions(&b).unwrap(),
            (vec![Extension::Mgrp { group: 9 }, Extension::Mos], 5)
        );
        // An unknown critical extension makes the frame unusable; an
        // unknown optional one is skipped.
        assert_eq!(
            parse_extensions(&[0x03, 0x4A, 0]),
            Err(S2Error::CriticalExtension(0x0A))
        );
        assert_eq!(parse_extensions(&[0x03, 0x0A, 0]).unwrap(), (vec![], 3));
    }

    #[test]
    fn commands_supported_report_lists_until_the_mark() {
        assert_eq!(
            parse_commands_supported(&[0x9F, 0x0E, 0x63, 0x62, 0xEF, 0x20]),
            vec![0x63, 0x62]
        );
        assert!(parse_nonce_report(&[0x9F, 0x02, 1, 0x00]).is_err());
        assert!(parse_nonce_report(&[0x9F, 0x02, 1, 0x01, 1, 2]).is_err());
        assert_eq!(
            parse_nonce_report(&[0x9F, 0x02, 1, 0x02]).unwrap(),
            NonceReport {
                sequence: 1,
                sos: false,
                mos: true,
                receiver_ei: None
            }
        );
    }
}
