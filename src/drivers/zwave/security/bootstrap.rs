//! Security bootstrapping of a joining node, the messages and the key
//! agreement (the radio steps are in `zwave::inclusion`).
//!
//! S2: KEX Get -> KEX Report (the keys the node asks for) -> KEX Set (the
//! keys we grant) -> both Public Key Reports -> X25519 -> temporary key
//! (CKDF-TempExtract/Expand) -> under it: KEX Set echo, KEX Report echo, then
//! per key Network Key Get / Report / Verify / Transfer End, and the node's
//! final Transfer End. For an authenticated class the joining node's public
//! key arrives with its first two bytes blanked; they are the DSK PIN the
//! user types (the first five digits of the DSK on the lock's label).
//!
//! S0: Scheme Get / Report, then Network Key Set under the all-zero
//! temporary key and the node's Network Key Verify under the real key.

use super::crypto::{self, S2Keys};
use super::SecurityClass;
use x25519_dalek::{PublicKey, StaticSecret};

const S2: u8 = 0x9F;
const S0: u8 = 0x98;

/// KEX scheme 1 (bit 1 of the schemes field) and Curve25519 (bit 0).
pub const KEX_SCHEME_1: u8 = 0x02;
pub const CURVE_25519: u8 = 0x01;

/// KEX Fail types.
pub mod fail {
    pub const KEY: u8 = 0x01;
    pub const SCHEME: u8 = 0x02;
    pub const CURVES: u8 = 0x03;
    pub const DECRYPT: u8 = 0x05;
    pub const CANCEL: u8 = 0x06;
    pub const AUTH: u8 = 0x07;
    pub const KEY_GET: u8 = 0x08;
    pub const KEY_VERIFY: u8 = 0x09;
    pub const KEY_REPORT: u8 = 0x0A;
}

/// Why a bootstrap message cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BootstrapError {
    #[error("malformed {0}")]
    Malformed(&'static str),
}

fn classes_of(mask: u8) -> Vec<SecurityClass> {
    [
        SecurityClass::S2Unauthenticated,
        SecurityClass::S2Authenticated,
        SecurityClass::S2AccessControl,
        SecurityClass::S0Legacy,
    ]
    .into_iter()
    .filter(|c| mask & c.kex_bit() != 0)
    .collect()
}

fn mask_of(classes: &[SecurityClass]) -> u8 {
    classes.iter().fold(0, |m, c| m | c.kex_bit())
}

/// KEX Report (the joining node's offer) or its echo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KexReport {
    pub echo: bool,
    pub request_csa: bool,
    pub schemes: u8,
    pub curves: u8,
    pub keys: Vec<SecurityClass>,
}

impl KexReport {
    pub fn parse(b: &[u8]) -> Result<KexReport, BootstrapError> {
        if b.len() < 6 || b[..2] != [S2, 0x05] {
            return Err(BootstrapError::Malformed("KEX Report"));
        }
        Ok(KexReport {
            echo: b[2] & 0x01 != 0,
            request_csa: b[2] & 0x02 != 0,
            schemes: b[3],
            curves: b[4],
            keys: classes_of(b[5]),
        })
    }

    /// The same report as an echo (sent back under the temporary key).
    pub fn echo(&self) -> Vec<u8> {
        vec![
            S2,
            0x05,
            0x01 | if self.request_csa { 0x02 } else { 0 },
            self.schemes,
            self.curves,
            mask_of(&self.keys),
        ]
    }
}

pub fn kex_get() -> Vec<u8> {
    vec![S2, 0x04]
}

/// KEX Set granting `keys` with scheme 1 and Curve25519.
pub fn kex_set(keys: &[SecurityClass]) -> Vec<u8> {
    vec![S2, 0x06, 0x00, KEX_SCHEME_1, CURVE_25519, mask_of(keys)]
}

/// The keys of a KEX Set echo, or `None` when it is not an echo.
pub fn parse_kex_set_echo(b: &[u8]) -> Option<Vec<SecurityClass>> {
    if b.len() < 6 || b[..2] != [S2, 0x06] || b[2] & 0x01 == 0 {
        return None;
    }
    Some(classes_of(b[5]))
}

pub fn kex_fail(kind: u8) -> Vec<u8> {
    vec![S2, 0x07, kind]
}

/// Our Public Key Report (including node).
pub fn public_key_report(public: &[u8; 32]) -> Vec<u8> {
    let mut v = vec![S2, 0x08, 0x01];
    v.extend_from_slice(public);
    v
}

/// The joining node's public key from its Public Key Report.
pub fn parse_public_key_report(b: &[u8]) -> Result<[u8; 32], BootstrapError> {
    if b.len() < 35 || b[..2] != [S2, 0x08] || b[2] & 0x01 != 0 {
        return Err(BootstrapError::Malformed("Public Key Report"));
    }
    Ok(b[3..35].try_into().expect("32 bytes"))
}

/// The class a Network Key Get asks for.
pub fn parse_network_key_get(b: &[u8]) -> Result<SecurityClass, BootstrapError> {
    match (b.get(..2), b.get(2).map(|&m| classes_of(m))) {
        (Some([S2, 0x09]), Some(c)) if c.len() == 1 => Ok(c[0]),
        _ => Err(BootstrapError::Malformed("Network Key Get")),
    }
}

pub fn network_key_report(class: SecurityClass, key: &[u8; 16]) -> Vec<u8> {
    let mut v = vec![S2, 0x0A, class.kex_bit()];
    v.extend_from_slice(key);
    v
}

/// Transfer End: ours after a verified key, the node's when it is done.
pub fn transfer_end(key_verified: bool, key_request_complete: bool) -> Vec<u8> {
    vec![
        S2,
        0x0C,
        (u8::from(key_verified) << 1) | u8::from(key_request_complete),
    ]
}

/// (key verified, key request complete) of a Transfer End.
pub fn parse_transfer_end(b: &[u8]) -> Result<(bool, bool), BootstrapError> {
    match b {
        [S2, 0x0C, f, ..] => Ok((f & 0x02 != 0, f & 0x01 != 0)),
        _ => Err(BootstrapError::Malformed("Transfer End")),
    }
}

/// The DSK as printed on a lock: the first 16 bytes of the public key as
/// eight 5-digit numbers.
pub fn dsk(public: &[u8; 32]) -> String {
    public[..16]
        .chunks(2)
        .map(|c| format!("{:05}", u16::from_be_bytes([c[0], c[1]])))
        .collect::<Vec<_>>()
        .join("-")
}

/// The DSK PIN (5 digits, 0..=65535) as typed by the user.
pub fn parse_pin(pin: &str) -> Option<u16> {
    let p = pin.trim();
    if p.is_empty() || p.len() > 5 || !p.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    p.parse().ok()
}

/// The joining node's key agreement with us.
pub struct KeyAgreement {
    secret: StaticSecret,
    pub public: [u8; 32],
}

impl std::fmt::Debug for KeyAgreement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyAgreement(***)")
    }
}

impl Default for KeyAgreement {
    fn default() -> Self {
        Self::new()
    }
}

impl KeyAgreement {
    /// A fresh X25519 key pair from the OS's generator.
    pub fn new() -> KeyAgreement {
        let mut b = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut b);
        let secret = StaticSecret::from(b);
        let public = PublicKey::from(&secret).to_bytes();
        KeyAgreement { secret, public }
    }

    /// The temporary keys, from the joining node's public key with `pin`
    /// (when given) in its first two bytes.
    pub fn temp_keys(&self, joining: &[u8; 32], pin: Option<u16>) -> S2Keys {
        let mut theirs = *joining;
        if let Some(pin) = pin {
            theirs[..2].copy_from_slice(&pin.to_be_bytes());
        }
        let shared = self.secret.diffie_hellman(&PublicKey::from(theirs));
        crypto::temp_keys(&crypto::temp_prk(shared.as_bytes(), &self.public, &theirs))
    }
}

/// S0 Scheme Get (scheme 0).
pub fn s0_scheme_get() -> Vec<u8> {
    vec![S0, 0x04, 0x00]
}

/// S0 Network Key Set (sent under the all-zero temporary key).
pub fn s0_network_key_set(key: &[u8; 16]) -> Vec<u8> {
    let mut v = vec![S0, 0x06];
    v.extend_from_slice(key);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages() {
        let r = KexReport::parse(&[0x9F, 0x05, 0x00, 0x02, 0x01, 0x06]).unwrap();
        assert_eq!(
            r.keys,
            vec![
                SecurityClass::S2Authenticated,
                SecurityClass::S2AccessControl
            ]
        );
        assert_eq!(r.echo(), vec![0x9F, 0x05, 0x01, 0x02, 0x01, 0x06]);
        assert_eq!(kex_set(&r.keys), vec![0x9F, 0x06, 0x00, 0x02, 0x01, 0x06]);
        assert_eq!(
            parse_kex_set_echo(&[0x9F, 0x06, 0x01, 0x02, 0x01, 0x06]),
            Some(r.keys.clone())
        );
        assert_eq!(
            parse_kex_set_echo(&[0x9F, 0x06, 0x00, 0x02, 0x01, 0x06]),
            None
        );
        assert_eq!(
            parse_network_key_get(&[0x9F, 0x09, 0x04]),
            Ok(SecurityClass::S2AccessControl)
        );
        assert!(parse_network_key_get(&[0x9F, 0x09, 0x06]).is_err());
        assert_eq!(
            parse_transfer_end(&transfer_end(true, false)),
            Ok((true, false))
        );
        assert_eq!(parse_transfer_end(&[0x9F, 0x0C, 0x01]), Ok((false, true)));
        assert_eq!(parse_pin("02756"), Some(2756));
        assert_eq!(parse_pin("65536"), None);
        assert_eq!(parse_pin("12a45"), None);
        let mut pk = [0u8; 32];
        pk[0] = 0xFA;
        pk[1] = 0x0A;
        assert!(dsk(&pk).starts_with("64010-00000-"));
        assert_eq!(dsk(&pk).split('-').count(), 8);
    }

    #[test]
    fn both_sides_agree_on_the_temporary_key_only_with_the_right_pin() {
        let us = KeyAgreement::new();
        let lock = KeyAgreement::new();
        let pin = u16::from_be_bytes([lock.public[0], lock.public[1]]);
        let mut blanked = lock.public;
        blanked[..2].copy_from_slice(&[0, 0]);
        // The lock computes with the real keys (A = including, B = joining).
        let shared = lock.secret.diffie_hellman(&PublicKey::from(us.public));
        let theirs = crypto::temp_keys(&crypto::temp_prk(
            shared.as_bytes(),
            &us.public,
            &lock.public,
        ));
        assert_eq!(us.temp_keys(&blanked, Some(pin)), theirs);
        assert_ne!(us.temp_keys(&blanked, Some(pin ^ 1)), theirs);
        assert_eq!(
            us.temp_keys(&lock.public, None),
            theirs,
            "unauthenticated: no PIN"
        );
    }
}
