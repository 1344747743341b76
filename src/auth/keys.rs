//! Trusted keys: a JWK Set (RFC 7517) of Ed25519 public keys (RFC 8037:
//! `kty` OKP, `crv` Ed25519, `x`), each with its `kid`. Several keys at once
//! let the cloud rotate: publish the new key, sign with it, drop the old one.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::VerifyingKey;
use serde::Deserialize;
use std::collections::HashMap;

/// Why a key set was refused (named for `check-config` and the start-up log).
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error("not a JWK Set (expected {{\"keys\": [...]}}): {0}")]
    Shape(String),
    #[error("keys[{index}]: {why}")]
    Key { index: usize, why: String },
    #[error("the key set holds no key")]
    Empty,
}

#[derive(Deserialize)]
struct Jwks {
    keys: Vec<serde_json::Map<String, serde_json::Value>>,
}

/// The keys commands may be signed with, by `kid`.
#[derive(Clone, Default)]
pub struct KeySet {
    keys: HashMap<String, VerifyingKey>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut kids: Vec<&String> = self.keys.keys().collect();
        kids.sort();
        f.debug_struct("KeySet").field("kids", &kids).finish()
    }
}

impl KeySet {
    pub fn parse(text: &[u8]) -> Result<KeySet, KeysError> {
        let set: Jwks =
            serde_json::from_slice(text).map_err(|e| KeysError::Shape(e.to_string()))?;
        let mut keys = HashMap::new();
        for (index, k) in set.keys.iter().enumerate() {
            let bad = |why: &str| KeysError::Key {
                index,
                why: why.to_owned(),
            };
            let field = |name: &str| k.get(name).and_then(|v| v.as_str());
            if field("kty") != Some("OKP") || field("crv") != Some("Ed25519") {
                return Err(bad(
                    "only Ed25519 keys are trusted (kty \"OKP\", crv \"Ed25519\")",
                ));
            }
            if k.contains_key("d") {
                return Err(bad(
                    "holds a private key (\"d\"): the hub needs only the public key; keep the private one in the cloud",
                ));
            }
            if let Some(alg) = field("alg") {
                if alg != "EdDSA" {
                    return Err(bad("alg must be \"EdDSA\" when given"));
                }
            }
            let kid = field("kid")
                .filter(|k| !k.is_empty())
                .ok_or_else(|| bad("kid is required (commands name their key by kid)"))?;
            let x = field("x").ok_or_else(|| bad("x (the public key) is required"))?;
            let raw = URL_SAFE_NO_PAD
                .decode(x)
                .map_err(|_| bad("x must be base64url without padding"))?;
            let raw: [u8; 32] = raw
                .try_into()
                .map_err(|_| bad("x must be 32 bytes (an Ed25519 public key)"))?;
            let key = VerifyingKey::from_bytes(&raw)
                .map_err(|_| bad("x is not a valid Ed25519 public key"))?;
            if key.is_weak() {
                return Err(bad("x is a weak (small-order) key"));
            }
            if keys.insert(kid.to_owned(), key).is_some() {
                return Err(bad("kid is used twice"));
            }
        }
        if keys.is_empty() {
            return Err(KeysError::Empty);
        }
        Ok(KeySet { keys })
    }

    pub fn get(&self, kid: &str) -> Option<&VerifyingKey> {
        self.keys.get(kid)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwk(x: &[u8; 32], kid: &str) -> serde_json::Value {
        serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode(x), "kid": kid})
    }

    #[test]
    fn a_set_of_keys_is_read_and_bad_ones_are_named() {
        let a = ed25519_dalek::SigningKey::from_bytes(&[7; 32])
            .verifying_key()
            .to_bytes();
        let b = ed25519_dalek::SigningKey::from_bytes(&[8; 32])
            .verifying_key()
            .to_bytes();
        let set = serde_json::json!({"keys": [jwk(&a, "k1"), jwk(&b, "k2")]});
        let ks = KeySet::parse(set.to_string().as_bytes()).unwrap();
        assert_eq!(ks.len(), 2);
        assert!(ks.get("k1").is_some() && ks.get("k3").is_none());
        for (bad, why) in [
            (
                serde_json::json!({"keys": [jwk(&a, "k1"), jwk(&b, "k1")]}),
                "twice",
            ),
            (
                serde_json::json!({"keys": [{"kty": "RSA", "kid": "r"}]}),
                "Ed25519",
            ),
            (
                serde_json::json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "AAAA", "kid": "s"}]}),
                "32 bytes",
            ),
            (
                serde_json::json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode(a)}]}),
                "kid",
            ),
            (
                serde_json::json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode(a), "d": "x", "kid": "p"}]}),
                "private",
            ),
            (serde_json::json!({"keys": []}), "no key"),
            (serde_json::json!([1]), "JWK Set"),
        ] {
            let e = KeySet::parse(bad.to_string().as_bytes())
                .unwrap_err()
                .to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
