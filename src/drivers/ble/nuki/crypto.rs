//! Keys, the encrypted envelope and authenticators (sections 3.2 and 4).
//!
//! No cryptography is written here: X25519 comes from `x25519-dalek`,
//! HSalsa20 from `salsa20`, XSalsa20-Poly1305 from `crypto_secretbox` and
//! HMAC-SHA256 from `hmac` + `sha2`. This module only arranges the bytes.

use super::error::ProtocolError;
use super::frame::{decode_with_prefix, encode_with_prefix, Message};
use crypto_secretbox::aead::{AeadInPlace, KeyInit};
use crypto_secretbox::XSalsa20Poly1305;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Length of the nonce in front of every encrypted message.
pub const NONCE_LEN: usize = 24;
/// Length of the Poly1305 tag that precedes the ciphertext.
pub const TAG_LEN: usize = 16;
/// nonce + authorization id + length.
pub const HEADER_LEN: usize = NONCE_LEN + 4 + 2;

/// Our X25519 private key. Debug never shows it.
#[derive(Clone)]
pub struct PrivateKey(x25519_dalek::StaticSecret);

/// An X25519 public key (ours or the lock's). Not secret, but kept typed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(pub [u8; 32]);

/// The long-term key shared with one lock: `kdf1(dh1(sk, pk))`.
/// Everything encrypted or authenticated with the lock hangs on it, so its
/// Debug is masked and it is only reachable through [`SharedKey::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct SharedKey([u8; 32]);

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrivateKey(****)")
    }
}

impl std::fmt::Debug for SharedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedKey(****)")
    }
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({:02x}{:02x}..)", self.0[0], self.0[1])
    }
}

impl PrivateKey {
    /// A fresh key for a new pairing.
    pub fn generate() -> PrivateKey {
        PrivateKey(x25519_dalek::StaticSecret::random_from_rng(
            rand::rngs::OsRng,
        ))
    }

    pub fn from_bytes(bytes: [u8; 32]) -> PrivateKey {
        PrivateKey(x25519_dalek::StaticSecret::from(bytes))
    }

    /// The raw key, for the key store only.
    pub fn expose(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey(x25519_dalek::PublicKey::from(&self.0).to_bytes())
    }

    /// dh1: the raw X25519 result `k` (section 4.1).
    pub fn diffie_hellman(&self, their: &PublicKey) -> [u8; 32] {
        self.0
            .diffie_hellman(&x25519_dalek::PublicKey::from(their.0))
            .to_bytes()
    }

    /// dh1 then kdf1: the long-term shared key `s` (sections 4.1, 4.2).
    pub fn shared_key(&self, their: &PublicKey) -> SharedKey {
        SharedKey::derive(&self.diffie_hellman(their))
    }
}

impl SharedKey {
    /// kdf1: `crypto_core_hsalsa20(k, 0^16, s, "expand 32-byte k")`.
    pub fn derive(dh: &[u8; 32]) -> SharedKey {
        use salsa20::cipher::consts::U10;
        let out = salsa20::hsalsa::<U10>(dh.into(), &Default::default());
        SharedKey(out.into())
    }

    pub fn from_bytes(bytes: [u8; 32]) -> SharedKey {
        SharedKey(bytes)
    }

    /// The raw key, for the key store only.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    /// h1: HMAC-SHA256 over the concatenation of `parts` (section 4.3).
    pub fn authenticator(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC accepts any key length");
        for p in parts {
            mac.update(p);
        }
        mac.finalize().into_bytes().into()
    }

    /// Checks an authenticator in constant time.
    pub fn verify_authenticator(&self, parts: &[&[u8]], tag: &[u8]) -> bool {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC accepts any key length");
        for p in parts {
            mac.update(p);
        }
        mac.verify_slice(tag).is_ok()
    }

    /// Builds `nonce | auth id | length | tag | ciphertext(auth id | cmd | payload | crc)`.
    pub fn seal(&self, nonce: &[u8; NONCE_LEN], auth_id: u32, msg: &Message) -> Vec<u8> {
        let mut pdata = encode_with_prefix(&auth_id.to_le_bytes(), msg);
        let cipher = XSalsa20Poly1305::new((&self.0).into());
        let tag = cipher
            .encrypt_in_place_detached(nonce.into(), b"", &mut pdata)
            .expect("XSalsa20-Poly1305 encrypts any message that fits in memory");
        let len = (TAG_LEN + pdata.len()) as u16;
        let mut out = Vec::with_capacity(HEADER_LEN + len as usize);
        out.extend_from_slice(nonce);
        out.extend_from_slice(&auth_id.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&tag);
        out.extend_from_slice(&pdata);
        out
    }

    /// Opens an encrypted message, checking the tag, the CRC and that the
    /// inner authorization id matches the outer one.
    pub fn open(&self, bytes: &[u8]) -> Result<EncryptedMessage, ProtocolError> {
        let header = EncryptedHeader::parse(bytes)?;
        let body = &bytes[HEADER_LEN..];
        if body.len() != header.length as usize {
            return Err(ProtocolError::BadLength {
                declared: header.length as usize,
                actual: body.len(),
            });
        }
        if body.len() < TAG_LEN + 4 + 4 {
            return Err(ProtocolError::TooShort {
                len: bytes.len(),
                min: HEADER_LEN + TAG_LEN + 8,
            });
        }
        let (tag, ct) = body.split_at(TAG_LEN);
        let mut pdata = ct.to_vec();
        let cipher = XSalsa20Poly1305::new((&self.0).into());
        cipher
            .decrypt_in_place_detached((&header.nonce).into(), b"", &mut pdata, tag.into())
            .map_err(|_| ProtocolError::DecryptFailed)?;
        let (inner_id, message) = decode_with_prefix(&pdata, 4)?;
        let inner = u32::from_le_bytes([inner_id[0], inner_id[1], inner_id[2], inner_id[3]]);
        if inner != header.auth_id {
            return Err(ProtocolError::AuthIdMismatch {
                outer: header.auth_id,
                inner,
            });
        }
        Ok(EncryptedMessage {
            nonce: header.nonce,
            auth_id: header.auth_id,
            message,
        })
    }
}

/// The unencrypted header (ADATA) of an encrypted message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptedHeader {
    pub nonce: [u8; NONCE_LEN],
    pub auth_id: u32,
    /// Length of what follows the header (tag + ciphertext).
    pub length: u16,
}

impl EncryptedHeader {
    pub fn parse(bytes: &[u8]) -> Result<EncryptedHeader, ProtocolError> {
        if bytes.len() < HEADER_LEN {
            return Err(ProtocolError::TooShort {
                len: bytes.len(),
                min: HEADER_LEN,
            });
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&bytes[..NONCE_LEN]);
        let a = &bytes[NONCE_LEN..];
        Ok(EncryptedHeader {
            nonce,
            auth_id: u32::from_le_bytes([a[0], a[1], a[2], a[3]]),
            length: u16::from_le_bytes([a[4], a[5]]),
        })
    }

    /// Total bytes of the message this header announces; lets a reader
    /// reassemble indications until the message is complete.
    pub fn total_len(&self) -> usize {
        HEADER_LEN + self.length as usize
    }
}

/// A decrypted message with the envelope fields worth keeping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptedMessage {
    pub nonce: [u8; NONCE_LEN],
    pub auth_id: u32,
    pub message: Message,
}

/// A fresh random nonce for [`SharedKey::seal`].
pub fn random_nonce() -> [u8; NONCE_LEN] {
    use rand::RngCore;
    let mut n = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut n);
    n
}

#[cfg(test)]
mod tests {
    use super::super::frame::Command;
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

    // All figures below are the worked examples of section 9 of the API 2.1.
    const CL_SK: &str = "8CAA54672307BFFDF5EA183FC607158D2011D008ECA6A1088614FF0853A5AA07";
    const CL_PK: &str = "F88127CCF48023B5CBE9101D24BAA8A368DA94E8C2E3CDE2DED29CE96AB50C15";
    const SL_PK: &str = "2FE57DA347CD62431528DAAC5FBB290730FFF684AFC4CFC2ED90995F58CB3B74";
    const DH: &str = "0DE40B998E0E330376F2D2FC4892A6931E25055FD09F054F99E93FECD9BA611E";
    const S: &str = "217FCB0F18CAF284E9BDEA0B94B83B8D10867ED706BFDEDBD2381F4CB3B8F730";

    #[test]
    fn key_agreement_matches_spec() {
        let sk = PrivateKey::from_bytes(arr(CL_SK));
        assert_eq!(sk.public_key(), PublicKey(arr(CL_PK)));
        let sl = PublicKey(arr(SL_PK));
        assert_eq!(sk.diffie_hellman(&sl), arr::<32>(DH));
        assert_eq!(sk.shared_key(&sl), SharedKey::from_bytes(arr(S)));
    }

    #[test]
    fn authorization_authenticator_matches_spec() {
        let s = SharedKey::from_bytes(arr(S));
        let challenge = hex("6CD4163D159050C798553EAA57E278A579AFFCBC56F09FC57FE879E51C42DF17");
        let a = s.authenticator(&[&hex(CL_PK), &hex(SL_PK), &challenge]);
        assert_eq!(
            a.to_vec(),
            hex("B09A0D3979A029E5FD027B519EAA200BC14AD3E163D3BE4563843E021073BCB1")
        );
        assert!(s.verify_authenticator(&[&hex(CL_PK), &hex(SL_PK), &challenge], &a));
        assert!(!s.verify_authenticator(&[&hex(CL_PK), &challenge], &a));
    }

    #[test]
    fn encrypted_request_matches_spec() {
        let s = SharedKey::from_bytes(arr(S));
        let nonce = arr::<24>("37917F1AF31EC5940705F34D1E5550607D5B2F9FE7D496B6");
        let msg = Message::new(Command::RequestData, 0x000Cu16.to_le_bytes());
        let sealed = s.seal(&nonce, 2, &msg);
        assert_eq!(
            sealed,
            hex(
                "37917F1AF31EC5940705F34D1E5550607D5B2F9FE7D496B6 02000000 1A00
                 670D124926004366532E8D927A33FE84E782A9594D39157D065E"
            )
        );
        let opened = s.open(&sealed).unwrap();
        assert_eq!(opened.auth_id, 2);
        assert_eq!(opened.message, msg);
    }

    #[test]
    fn encrypted_lock_action_matches_spec() {
        let s = SharedKey::from_bytes(arr(S));
        let nonce = arr::<24>("19467990B69FFBE3D484A5882C995449E3EBC878712152E7");
        let plain = hex(
            "020000000D00010000000000 57D95521BEA186B5A9244F025737924C5B7E33592D0614D5F6EF2E2F142C6D4B CACF",
        );
        let (_, msg) = decode_with_prefix(&plain, 4).unwrap();
        let sealed = s.seal(&nonce, 2, &msg);
        assert_eq!(
            sealed,
            hex(
                "19467990B69FFBE3D484A5882C995449E3EBC878712152E7020000003E00B30D19E0C0A1
                 2F4D8C887864877B8853437825D587F85BB6C21BF674E204A685AC5E40E8A5FDB85349F5
                 20069496F092FAB63736928C0933DB34CFA21809"
            )
        );
    }

    #[test]
    fn tampering_is_detected() {
        let s = SharedKey::from_bytes(arr(S));
        let msg = Message::new(Command::RequestData, 0x000Cu16.to_le_bytes());
        let mut sealed = s.seal(&random_nonce(), 7, &msg);
        let last = sealed.len() - 1;
        sealed[last] ^= 0x01;
        assert_eq!(s.open(&sealed), Err(ProtocolError::DecryptFailed));
        let other = SharedKey::from_bytes([9; 32]);
        let sealed = s.seal(&random_nonce(), 7, &msg);
        assert_eq!(other.open(&sealed), Err(ProtocolError::DecryptFailed));
        assert!(matches!(
            s.open(&sealed[..sealed.len() - 3]),
            Err(ProtocolError::BadLength { .. })
        ));
    }

    #[test]
    fn keys_never_print() {
        let s = SharedKey::from_bytes(arr(S));
        assert_eq!(format!("{s:?}"), "SharedKey(****)");
        let sk = PrivateKey::from_bytes(arr(CL_SK));
        assert_eq!(format!("{sk:?}"), "PrivateKey(****)");
    }
}
