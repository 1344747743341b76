//! Sealing and opening of values at rest: XChaCha20-Poly1305 (RustCrypto's
//! `chacha20poly1305`) with a random 24-byte nonce, stored as
//! `nonce || ciphertext || tag`.
//!
//! Why a crate: the AEAD is generic, so its code is compiled in the crate
//! that names the cipher. Inside lockhub, built for size (opt-level "s"), the
//! cipher's SIMD backends were not inlined and opening a 1.5 KB code body took
//! 5.1 us; compiled here, at opt-level 3 (the root Cargo.toml's
//! `[profile.release.package.lockhub-seal]`), 3.4 us. The functions below are
//! not generic and not inlined into their callers, so the cipher is compiled
//! here and nowhere else.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;

/// Bytes of nonce in front of every sealed value.
pub const NONCE_LEN: usize = 24;

/// Bytes a sealed value has more than its plaintext (nonce and tag).
pub const OVERHEAD: usize = NONCE_LEN + 16;

/// Why a sealed value did not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    /// Shorter than a nonce and a tag.
    Truncated,
    /// The tag does not match: another key, other associated data, or
    /// changed bytes.
    Forged,
}

/// A 32-byte key, ready to seal and open. Never printed.
pub struct Key {
    aead: XChaCha20Poly1305,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

impl Key {
    pub fn new(key: &[u8; 32]) -> Key {
        Key {
            aead: XChaCha20Poly1305::new(key.into()),
        }
    }

    /// Seal `plain` under a fresh random nonce, bound to `aad`.
    pub fn seal(&self, aad: &[u8], plain: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        self.seal_with_nonce(&nonce, aad, plain)
    }

    /// Seal under a given nonce (for test vectors; a nonce must never be
    /// used twice under one key, which [`Key::seal`] makes sure of).
    #[inline(never)]
    pub fn seal_with_nonce(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], plain: &[u8]) -> Vec<u8> {
        let ct = self
            .aead
            .encrypt(XNonce::from_slice(nonce), Payload { msg: plain, aad })
            .expect("XChaCha20-Poly1305 seals any length below 256 GiB");
        let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
        out.extend_from_slice(nonce);
        out.extend_from_slice(&ct);
        out
    }

    /// Open what [`Key::seal`] made with the same key and `aad`.
    #[inline(never)]
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
        if sealed.len() < OVERHEAD {
            return Err(OpenError::Truncated);
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        self.aead
            .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad })
            .map_err(|_| OpenError::Forged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s.split_whitespace().collect::<String>()).unwrap()
    }

    /// draft-irtf-cfrg-xchacha-03, A.3.1 (AEAD_XChaCha20_Poly1305).
    #[test]
    fn the_drafts_test_vector() {
        let key: [u8; 32] =
            unhex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f")
                .try_into()
                .unwrap();
        let nonce: [u8; 24] = unhex("404142434445464748494a4b4c4d4e4f5051525354555657")
            .try_into()
            .unwrap();
        let aad = unhex("50515253c0c1c2c3c4c5c6c7");
        let plain = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";
        let want = unhex(
            "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb
             731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b452
             2f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9
             21f9664c97637da9768812f615c68b13b52e
             c0875924c1c7987947deafd8780acf49",
        );
        let k = Key::new(&key);
        let sealed = k.seal_with_nonce(&nonce, &aad, plain);
        assert_eq!(&sealed[..NONCE_LEN], &nonce);
        assert_eq!(hex::encode(&sealed[NONCE_LEN..]), hex::encode(&want));
        assert_eq!(k.open(&aad, &sealed).unwrap(), plain);
    }

    #[test]
    fn opens_only_with_its_key_and_associated_data() {
        let k = Key::new(&[1; 32]);
        let sealed = k.seal(b"access_codes.body", b"{\"code\":\"1234\"}");
        assert_eq!(sealed.len(), 15 + OVERHEAD);
        assert_eq!(
            k.open(b"access_codes.body", &sealed).unwrap(),
            b"{\"code\":\"1234\"}"
        );
        assert_eq!(k.open(b"slots.code", &sealed), Err(OpenError::Forged));
        assert_eq!(
            Key::new(&[2; 32]).open(b"access_codes.body", &sealed),
            Err(OpenError::Forged)
        );
        let mut edited = sealed.clone();
        edited[NONCE_LEN] ^= 1;
        assert_eq!(
            k.open(b"access_codes.body", &edited),
            Err(OpenError::Forged)
        );
        assert_eq!(
            k.open(b"access_codes.body", &sealed[..OVERHEAD - 1]),
            Err(OpenError::Truncated)
        );
        // Each seal draws its own nonce.
        assert_ne!(sealed, k.seal(b"access_codes.body", b"{\"code\":\"1234\"}"));
        assert_eq!(format!("{k:?}"), "Key(..)");
    }
}
