//! Signed commands (`[auth] mode = "signed"`): each command's MQTT payload is
//! a JWS in compact serialization (RFC 7515), `alg` EdDSA (RFC 8037) with the
//! `kid` of a trusted key, whose payload is
//! `{"aud": hub_id, "cmd": ..., "iat": s, "exp": s, "jti": "...", "body": {...}}`.
//!
//! This module checks everything that needs no storage: form, key, signature,
//! audience, command, times. Whether the `jti` was used before is the store's
//! (`store::jti`), checked by the commands in the command's own transaction so
//! a used id is remembered exactly when the command commits.
//!
//! - [`keys`]: the JWK Set of trusted Ed25519 keys.

pub mod keys;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use keys::{KeySet, KeysError};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::SystemTime;

/// How far in the future `iat` may be (clock skew between cloud and hub).
pub const MAX_IAT_AHEAD_SECS: i64 = 300;
/// The longest a signed command may live (`exp - iat`).
pub const MAX_LIFETIME_SECS: i64 = 600;
/// Longest `jti` kept.
pub const MAX_JTI_LEN: usize = 128;

/// How commands are authorised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// Anyone who may publish on the command topics may command the hub.
    #[default]
    Off,
    /// Only commands signed by a trusted key.
    Signed,
}

/// Why a command was not accepted as signed: the message goes on the wire
/// (`unauthorized`); `request_id` is the body's, when it could be read.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub request_id: Option<String>,
    pub message: String,
}

/// A command whose signature and claims hold.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    /// The command body (`body`), as JSON bytes: what off mode would have received.
    pub body: Vec<u8>,
    pub jti: String,
    /// Seconds since the epoch; the jti is remembered until then.
    pub exp: i64,
}

#[derive(Deserialize)]
struct Header {
    alg: Option<String>,
    kid: Option<String>,
    crit: Option<Value>,
    b64: Option<Value>,
}

/// The trusted keys and this hub's identity. The keys file is read again when
/// it changes, so a rotation needs no restart; a file that stops parsing keeps
/// the keys last read (and says so in the log).
#[derive(Debug)]
pub struct Trust {
    hub_id: String,
    file: PathBuf,
    keys: RwLock<(KeySet, Stamp)>,
}

#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("auth.trusted_keys_file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("auth.trusted_keys_file {path}: {source}")]
    Keys { path: String, source: KeysError },
}

/// What tells a changed keys file: its modification time and length.
type Stamp = Option<(SystemTime, u64)>;

fn modified(path: &Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

fn load(path: &Path) -> Result<KeySet, TrustError> {
    let text = std::fs::read(path).map_err(|source| TrustError::Read {
        path: path.display().to_string(),
        source,
    })?;
    KeySet::parse(&text).map_err(|source| TrustError::Keys {
        path: path.display().to_string(),
        source,
    })
}

impl Trust {
    /// Read the keys file (it must hold at least one good key).
    pub fn open(hub_id: &str, file: &Path) -> Result<Trust, TrustError> {
        let stamp = modified(file);
        let keys = load(file)?;
        tracing::info!(keys = keys.len(), file = %file.display(), "signed commands: trusted keys loaded");
        Ok(Trust {
            hub_id: hub_id.to_owned(),
            file: file.to_owned(),
            keys: RwLock::new((keys, stamp)),
        })
    }

    /// The keys now, re-read first if the file changed.
    fn keys(&self) -> KeySet {
        let stamp = modified(&self.file);
        {
            let k = self.keys.read().unwrap_or_else(|e| e.into_inner());
            if k.1 == stamp {
                return k.0.clone();
            }
        }
        let mut k = self.keys.write().unwrap_or_else(|e| e.into_inner());
        match load(&self.file) {
            Ok(fresh) => {
                tracing::info!(keys = fresh.len(), "trusted keys changed; reloaded");
                *k = (fresh, stamp);
            }
            Err(e) => {
                tracing::error!(error = %e, "trusted keys file unreadable; keeping the keys last read");
                k.1 = stamp;
            }
        }
        k.0.clone()
    }

    /// Check a command payload received for `command` at `now` (seconds).
    pub fn verify(&self, command: &str, payload: &[u8], now: i64) -> Result<Verified, Refusal> {
        let refuse = |request_id: Option<String>, message: &str| Refusal {
            request_id,
            message: message.to_owned(),
        };
        let text = std::str::from_utf8(payload)
            .map_err(|_| refuse(None, "the payload is not a JWS (compact serialization)"))?;
        let text = text.trim();
        let parts: Vec<&str> = text.split('.').collect();
        let [h64, p64, s64] = parts[..] else {
            // Most likely an unsigned command: answer by its id if it has one.
            return Err(refuse(
                readable_id(payload),
                "commands must be signed: the payload is not a JWS in compact serialization",
            ));
        };
        let claims: Option<Map<String, Value>> = URL_SAFE_NO_PAD
            .decode(p64)
            .ok()
            .and_then(|p| serde_json::from_slice(&p).ok());
        // For the answer only: never trusted before the signature holds.
        let id = claims
            .as_ref()
            .and_then(|c| c.get("body"))
            .and_then(|b| b.get("request_id"))
            .and_then(Value::as_str)
            .filter(|id| crate::commands::check_request_id(id).is_ok())
            .map(str::to_owned);
        let header: Header = URL_SAFE_NO_PAD
            .decode(h64)
            .ok()
            .and_then(|h| serde_json::from_slice(&h).ok())
            .ok_or_else(|| refuse(id.clone(), "the JWS header is not base64url JSON"))?;
        if header.alg.as_deref() != Some("EdDSA") {
            return Err(refuse(id, "the JWS alg must be EdDSA"));
        }
        if header.crit.is_some() || header.b64.is_some() {
            return Err(refuse(
                id,
                "the JWS header has extensions (crit, b64) lockhub does not support",
            ));
        }
        let kid = header
            .kid
            .ok_or_else(|| refuse(id.clone(), "the JWS header has no kid"))?;
        let keys = self.keys();
        let key = keys
            .get(&kid)
            .ok_or_else(|| refuse(id.clone(), "the JWS kid names no trusted key"))?;
        let sig = URL_SAFE_NO_PAD
            .decode(s64)
            .ok()
            .and_then(|s| ed25519_dalek::Signature::from_slice(&s).ok())
            .ok_or_else(|| refuse(id.clone(), "the JWS signature is not 64 bytes of base64url"))?;
        let signing_input = &text[..h64.len() + 1 + p64.len()];
        key.verify_strict(signing_input.as_bytes(), &sig)
            .map_err(|_| refuse(id.clone(), "the JWS signature does not verify"))?;
        // Signed: now the claims count.
        let c = claims.ok_or_else(|| refuse(None, "the JWS payload is not a JSON object"))?;
        let str_claim = |name: &str| c.get(name).and_then(Value::as_str);
        let int_claim = |name: &str| c.get(name).and_then(Value::as_i64);
        if str_claim("aud") != Some(self.hub_id.as_str()) {
            return Err(refuse(id, "aud is not this hub's hub_id"));
        }
        if str_claim("cmd") != Some(command) {
            return Err(refuse(
                id,
                "cmd is not the command of the topic it was published on",
            ));
        }
        let (Some(iat), Some(exp)) = (int_claim("iat"), int_claim("exp")) else {
            return Err(refuse(
                id,
                "iat and exp (seconds since the epoch) are required",
            ));
        };
        if iat > now + MAX_IAT_AHEAD_SECS {
            return Err(refuse(
                id,
                "iat is more than 5 minutes ahead of the hub's clock",
            ));
        }
        if exp <= now {
            return Err(refuse(id, "the command has expired (exp)"));
        }
        if exp < iat || exp - iat > MAX_LIFETIME_SECS {
            return Err(refuse(
                id,
                "the command's lifetime (exp - iat) must be 0 to 10 minutes",
            ));
        }
        let jti = str_claim("jti")
            .filter(|j| !j.is_empty() && j.len() <= MAX_JTI_LEN)
            .ok_or_else(|| refuse(id.clone(), "jti (1 to 128 bytes) is required"))?;
        let body = match c.get("body") {
            Some(b @ Value::Object(_)) => {
                serde_json::to_vec(b).map_err(|_| refuse(id.clone(), "body"))?
            }
            _ => {
                return Err(refuse(
                    id,
                    "body (the command body, a JSON object) is required",
                ))
            }
        };
        Ok(Verified {
            body,
            jti: jti.to_owned(),
            exp,
        })
    }
}

/// The request_id of an unsigned payload, when it has a usable one.
fn readable_id(payload: &[u8]) -> Option<String> {
    crate::commands::scan_request_id(payload)
        .filter(|id| crate::commands::check_request_id(id).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};
    use serde_json::json;

    fn b64(b: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(b)
    }

    fn jws(key: &SigningKey, header: Value, claims: Value) -> String {
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let sig = key.sign(input.as_bytes());
        format!("{input}.{}", b64(&sig.to_bytes()))
    }

    fn trust(dir: &Path, keys: &[(&SigningKey, &str)]) -> Trust {
        let set = json!({"keys": keys.iter().map(|(k, kid)| json!({"kty": "OKP", "crv": "Ed25519", "x": b64(k.verifying_key().as_bytes()), "kid": kid})).collect::<Vec<_>>()});
        let f = dir.join("keys.json");
        std::fs::write(&f, set.to_string()).unwrap();
        Trust::open("hub-1", &f).unwrap()
    }

    #[test]
    fn every_claim_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let k1 = SigningKey::from_bytes(&[1; 32]);
        let other = SigningKey::from_bytes(&[2; 32]);
        let t = trust(dir.path(), &[(&k1, "k1")]);
        let now = 1_900_000_000;
        let hdr = json!({"alg": "EdDSA", "kid": "k1"});
        let good = json!({"aud": "hub-1", "cmd": "devices/list", "iat": now, "exp": now + 300, "jti": "j1", "body": {"request_id": "r1"}});
        let v = t
            .verify(
                "devices/list",
                jws(&k1, hdr.clone(), good.clone()).as_bytes(),
                now,
            )
            .unwrap();
        assert_eq!(v.jti, "j1");
        assert_eq!(
            serde_json::from_slice::<Value>(&v.body).unwrap(),
            json!({"request_id": "r1"})
        );
        let with = |k: &str, val: Value| {
            let mut c = good.clone();
            c[k] = val;
            c
        };
        let cases: Vec<(String, &str)> = vec![
            (r#"{"request_id":"r1"}"#.into(), "must be signed"),
            (jws(&other, hdr.clone(), good.clone()), "does not verify"),
            (
                jws(&k1, json!({"alg": "EdDSA", "kid": "k9"}), good.clone()),
                "no trusted key",
            ),
            (
                jws(&k1, json!({"alg": "none", "kid": "k1"}), good.clone()),
                "EdDSA",
            ),
            (jws(&k1, json!({"alg": "EdDSA"}), good.clone()), "no kid"),
            (jws(&k1, hdr.clone(), with("aud", json!("hub-2"))), "aud"),
            (
                jws(&k1, hdr.clone(), with("cmd", json!("access_codes/delete"))),
                "cmd",
            ),
            (
                jws(&k1, hdr.clone(), with("exp", json!(now - 1))),
                "expired",
            ),
            (
                jws(&k1, hdr.clone(), with("iat", json!(now + 301))),
                "ahead",
            ),
            (
                jws(&k1, hdr.clone(), with("exp", json!(now + 601))),
                "lifetime",
            ),
            (jws(&k1, hdr.clone(), with("jti", json!(""))), "jti"),
            (jws(&k1, hdr.clone(), with("body", json!("x"))), "body"),
        ];
        for (payload, why) in cases {
            let r = t
                .verify("devices/list", payload.as_bytes(), now)
                .unwrap_err();
            assert!(r.message.contains(why), "{why}: {}", r.message);
            let want = (why != "body").then_some("r1");
            assert_eq!(r.request_id.as_deref(), want, "{why}");
        }
        // Tampered: a byte of the payload changed after signing.
        let s = jws(&k1, hdr.clone(), good.clone());
        let parts: Vec<&str> = s.split('.').collect();
        let evil = json!({"aud": "hub-1", "cmd": "devices/list", "iat": now, "exp": now + 300, "jti": "j1", "body": {"request_id": "r2"}});
        let tampered = format!(
            "{}.{}.{}",
            parts[0],
            b64(evil.to_string().as_bytes()),
            parts[2]
        );
        assert!(t
            .verify("devices/list", tampered.as_bytes(), now)
            .unwrap_err()
            .message
            .contains("does not verify"));
    }

    #[test]
    fn keys_rotate_without_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (k1, k2) = (
            SigningKey::from_bytes(&[1; 32]),
            SigningKey::from_bytes(&[2; 32]),
        );
        let t = trust(dir.path(), &[(&k1, "k1"), (&k2, "k2")]);
        let now = 1_900_000_000;
        let c = json!({"aud": "hub-1", "cmd": "devices/list", "iat": now, "exp": now + 60, "jti": "j", "body": {"request_id": "r"}});
        let by1 = jws(&k1, json!({"alg": "EdDSA", "kid": "k1"}), c.clone());
        let by2 = jws(&k2, json!({"alg": "EdDSA", "kid": "k2"}), c);
        assert!(t.verify("devices/list", by1.as_bytes(), now).is_ok());
        assert!(t.verify("devices/list", by2.as_bytes(), now).is_ok());
        std::thread::sleep(std::time::Duration::from_millis(20));
        let t2 = trust(dir.path(), &[(&k2, "k2")]);
        drop(t2); // rewrote the file
        assert!(t.verify("devices/list", by1.as_bytes(), now).is_err());
        assert!(t.verify("devices/list", by2.as_bytes(), now).is_ok());
    }
}
