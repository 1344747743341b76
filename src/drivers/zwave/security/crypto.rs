//! The cryptography of Z-Wave security, on RustCrypto's crates (no cipher is
//! written here): AES-128 ([`aes`]), AES-CMAC ([`cmac`]), AES-CCM with an
//! 8-byte tag ([`ccm`]), AES-OFB ([`ofb`]) and CBC-MAC ([`cbc_mac`]).
//!
//! What is Z-Wave's own lives here too, as the specifications describe it:
//! the key derivations of S2 (CKDF for network keys, temporary keys and the
//! nonce entropy) and CTR_DRBG (NIST SP 800-90A, AES-128 without derivation
//! function), which S2 uses to turn both sides' entropy into nonces. The
//! golden tests reproduce every value zwave-js gives for them.

use aes::cipher::{BlockEncrypt, KeyInit, KeyIvInit, StreamCipher};
use aes::Aes128;
use ccm::aead::AeadInPlace;
use ccm::consts::{U13, U8};
use cmac::Mac;

/// One AES block.
pub type Block = [u8; 16];

/// AES-128-CCM with Z-Wave's 13-byte nonce and 8-byte tag.
type Ccm = ccm::Ccm<Aes128, U8, U13>;

/// S2's authentication tag length.
pub const TAG_LEN: usize = 8;

/// AES-128 of one block (the "ECB" of the specifications).
pub fn aes_block(key: &Block, block: &Block) -> Block {
    let cipher = Aes128::new(key.into());
    let mut b = aes::Block::clone_from_slice(block);
    cipher.encrypt_block(&mut b);
    b.into()
}

/// AES-CMAC (NIST SP 800-38B).
pub fn cmac(key: &Block, message: &[u8]) -> Block {
    let mut m = <cmac::Cmac<Aes128> as Mac>::new(key.into());
    m.update(message);
    m.finalize().into_bytes().into()
}

/// CBC-MAC with a zero IV over zero-padded data (S0's MAC is its first 8 bytes).
pub fn cbc_mac(key: &Block, data: &[u8]) -> Block {
    let mut m = <cbc_mac::CbcMac<Aes128> as cbc_mac::Mac>::new(key.into());
    cbc_mac::Mac::update(&mut m, data);
    cbc_mac::Mac::finalize(m).into_bytes().into()
}

/// AES-128-OFB; the same call encrypts and decrypts.
pub fn ofb(key: &Block, iv: &Block, data: &mut [u8]) {
    let mut c = ofb::Ofb::<Aes128>::new(key.into(), iv.into());
    c.apply_keystream(data);
}

/// AES-128-CCM encryption: returns ciphertext followed by the 8-byte tag.
pub fn ccm_seal(key: &Block, nonce: &[u8; 13], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let c = <Ccm as ccm::aead::KeyInit>::new(key.into());
    let mut buf = plaintext.to_vec();
    let tag = c
        .encrypt_in_place_detached(nonce.into(), aad, &mut buf)
        .expect("CCM takes any Z-Wave frame length");
    buf.extend_from_slice(&tag);
    buf
}

/// AES-128-CCM decryption of ciphertext followed by its tag; `None` when the
/// tag does not verify.
pub fn ccm_open(key: &Block, nonce: &[u8; 13], aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < TAG_LEN {
        return None;
    }
    let (ct, tag) = sealed.split_at(sealed.len() - TAG_LEN);
    let c = <Ccm as ccm::aead::KeyInit>::new(key.into());
    let mut buf = ct.to_vec();
    c.decrypt_in_place_detached(nonce.into(), aad, &mut buf, tag.into())
        .ok()?;
    Some(buf)
}

/// The keys S2 derives from one permanent network key (CKDF-NetworkKeyExpand).
#[derive(Clone, PartialEq, Eq)]
pub struct S2Keys {
    pub key_ccm: Block,
    pub personalization: [u8; 32],
    pub key_mpan: Block,
}

impl std::fmt::Debug for S2Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("S2Keys(***)")
    }
}

fn expand(prk: &Block, constant: u8, rounds: usize) -> Vec<Block> {
    let mut out: Vec<Block> = Vec::with_capacity(rounds);
    for i in 1..=rounds {
        let mut m = Vec::with_capacity(32);
        if let Some(prev) = out.last() {
            m.extend_from_slice(prev);
        }
        m.extend_from_slice(&[constant; 15]);
        m.push(i as u8);
        out.push(cmac(prk, &m));
    }
    out
}

fn concat(a: &Block, b: &Block) -> [u8; 32] {
    let mut p = [0u8; 32];
    p[..16].copy_from_slice(a);
    p[16..].copy_from_slice(b);
    p
}

/// CKDF-NetworkKeyExpand: keyCCM, personalization string and keyMPAN.
pub fn network_keys(pnk: &Block) -> S2Keys {
    let t = expand(pnk, 0x55, 4);
    S2Keys {
        key_ccm: t[0],
        personalization: concat(&t[1], &t[2]),
        key_mpan: t[3],
    }
}

/// CKDF-TempExtract: the PRK of the ECDH shared secret and both public keys
/// (A: the including node, B: the joining node).
pub fn temp_prk(shared_secret: &[u8; 32], pub_a: &[u8; 32], pub_b: &[u8; 32]) -> Block {
    let mut m = Vec::with_capacity(96);
    m.extend_from_slice(shared_secret);
    m.extend_from_slice(pub_a);
    m.extend_from_slice(pub_b);
    cmac(&[0x33; 16], &m)
}

/// CKDF-TempExpand: the temporary keyCCM and personalization string used
/// while the network keys are handed over (no MPAN key).
pub fn temp_keys(prk: &Block) -> S2Keys {
    let t = expand(prk, 0x88, 3);
    S2Keys {
        key_ccm: t[0],
        personalization: concat(&t[1], &t[2]),
        key_mpan: [0; 16],
    }
}

/// CKDF-MEI-Extract: the nonce PRK of both sides' entropy inputs.
pub fn nonce_prk(sender_ei: &Block, receiver_ei: &Block) -> Block {
    let mut m = [0u8; 32];
    m[..16].copy_from_slice(sender_ei);
    m[16..].copy_from_slice(receiver_ei);
    cmac(&[0x26; 16], &m)
}

/// CKDF-MEI-Expand: the mixed entropy input that seeds the SPAN's DRBG.
pub fn mei(prk: &Block) -> [u8; 32] {
    let mut m1 = Vec::with_capacity(32);
    m1.extend_from_slice(&[0x88; 15]);
    m1.push(0x00);
    m1.extend_from_slice(&[0x88; 15]);
    m1.push(0x01);
    let t1 = cmac(prk, &m1);
    let mut m2 = Vec::with_capacity(32);
    m2.extend_from_slice(&t1);
    m2.extend_from_slice(&[0x88; 15]);
    m2.push(0x02);
    let t2 = cmac(prk, &m2);
    concat(&t1, &t2)
}

/// CTR_DRBG (NIST SP 800-90A) with AES-128, no derivation function, no
/// reseeding: what S2 turns the mixed entropy into nonces with.
#[derive(Clone)]
pub struct CtrDrbg {
    key: Block,
    v: Block,
}

impl std::fmt::Debug for CtrDrbg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CtrDrbg(***)")
    }
}

fn increment(v: &mut Block) {
    for b in v.iter_mut().rev() {
        *b = b.wrapping_add(1);
        if *b != 0 {
            break;
        }
    }
}

impl CtrDrbg {
    /// Instantiate with `entropy` XOR `personalization` as the seed.
    pub fn new(entropy: &[u8; 32], personalization: &[u8; 32]) -> CtrDrbg {
        let mut seed = *entropy;
        for (s, p) in seed.iter_mut().zip(personalization) {
            *s ^= p;
        }
        let mut d = CtrDrbg {
            key: [0; 16],
            v: [0; 16],
        };
        d.update(Some(&seed));
        d
    }

    fn update(&mut self, provided: Option<&[u8; 32]>) {
        let cipher = Aes128::new((&self.key).into());
        let mut temp = [0u8; 32];
        for chunk in temp.chunks_mut(16) {
            increment(&mut self.v);
            let mut b = aes::Block::clone_from_slice(&self.v);
            cipher.encrypt_block(&mut b);
            chunk.copy_from_slice(&b);
        }
        if let Some(p) = provided {
            for (t, x) in temp.iter_mut().zip(p) {
                *t ^= x;
            }
        }
        self.key.copy_from_slice(&temp[..16]);
        self.v.copy_from_slice(&temp[16..]);
    }

    /// The next 16 output bytes (Generate without additional input).
    pub fn generate(&mut self) -> Block {
        let cipher = Aes128::new((&self.key).into());
        increment(&mut self.v);
        let mut b = aes::Block::clone_from_slice(&self.v);
        cipher.encrypt_block(&mut b);
        self.update(None);
        b.into()
    }

    /// The next SPAN nonce: the first 13 bytes of one output block.
    pub fn next_nonce(&mut self) -> [u8; 13] {
        let b = self.generate();
        let mut n = [0u8; 13];
        n.copy_from_slice(&b[..13]);
        n
    }
}

/// The MPAN for a multicast group's inner state (and the state's next value).
pub fn mpan_nonce(key_mpan: &Block, state: &mut Block) -> [u8; 13] {
    let b = aes_block(key_mpan, state);
    increment(state);
    let mut n = [0u8; 13];
    n.copy_from_slice(&b[..13]);
    n
}

/// S0's authentication and encryption keys from its network key.
pub fn s0_keys(network_key: &Block) -> (Block, Block) {
    (
        aes_block(network_key, &[0x55; 16]),
        aes_block(network_key, &[0xAA; 16]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h<const N: usize>(s: &str) -> [u8; N] {
        let v: Vec<u8> = (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect();
        v.try_into().unwrap()
    }

    #[test]
    fn cmac_nist_sp800_38b_vectors() {
        // NIST SP 800-38B, Appendix D.1 (AES-128).
        let key: Block = h("2b7e151628aed2a6abf7158809cf4f3c");
        assert_eq!(cmac(&key, &[]), h::<16>("bb1d6929e95937287fa37d129b756746"));
        assert_eq!(
            cmac(&key, &h::<16>("6bc1bee22e409f96e93d7e117393172a")),
            h::<16>("070a16b46b4d4144f79bdd9dd04a287c")
        );
    }
}
