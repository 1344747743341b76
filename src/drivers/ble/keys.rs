//! Pairing keys per lock, kept in a small JSON file created with mode 0600.
//!
//! The lead may move this into SQLite later; the [`KeyStore`] trait is the
//! seam. Nothing here logs or formats a key: [`NukiCredentials`]'s Debug is
//! masked.

use super::nuki::keypad::SecurityPin;
use super::nuki::SharedKey;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// What lockhub must remember about one paired lock.
#[derive(Clone, PartialEq, Eq)]
pub struct NukiCredentials {
    /// The authorization id the lock gave us when pairing.
    pub auth_id: u32,
    pub shared_key: SharedKey,
    /// The lock's admin PIN, needed by the keypad commands (set by the owner).
    /// `None`: paired, but the PIN was never confirmed (not usable; kept so
    /// that pairing again can remove this authorization from the lock).
    pub security_pin: Option<SecurityPin>,
    /// Other authorizations lockhub left on the lock (a pairing whose check
    /// failed): removed the next time it pairs with the right PIN.
    pub leftover: Vec<u32>,
}

impl std::fmt::Debug for NukiCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NukiCredentials")
            .field("auth_id", &self.auth_id)
            .field("shared_key", &"****")
            .field("security_pin", &self.security_pin.map(|_| "****"))
            .field("leftover", &self.leftover)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    #[error("cannot read or write the key file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the key file {path} is not valid: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

/// Where paired locks' credentials live, keyed by BLE address.
pub trait KeyStore: Send + Sync + 'static {
    fn get(&self, address: &str) -> Result<Option<NukiCredentials>, KeyStoreError>;
    fn put(&self, address: &str, creds: &NukiCredentials) -> Result<(), KeyStoreError>;
    fn remove(&self, address: &str) -> Result<(), KeyStoreError>;
}

#[derive(Serialize, Deserialize)]
struct Entry {
    auth_id: u32,
    /// hex
    shared_key: String,
    security_pin: Option<u16>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    leftover: Vec<u32>,
}

/// A JSON file `{ address: {auth_id, shared_key, security_pin} }`.
pub struct FileKeyStore {
    path: PathBuf,
    lock: Mutex<()>,
}

impl FileKeyStore {
    pub fn new(path: impl Into<PathBuf>) -> FileKeyStore {
        FileKeyStore {
            path: path.into(),
            lock: Mutex::new(()),
        }
    }

    fn io(&self, source: std::io::Error) -> KeyStoreError {
        KeyStoreError::Io {
            path: self.path.clone(),
            source,
        }
    }

    fn load(&self) -> Result<BTreeMap<String, Entry>, KeyStoreError> {
        match std::fs::read(&self.path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| KeyStoreError::Corrupt {
                path: self.path.clone(),
                // serde_json's message names the position, never the content.
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(self.io(e)),
        }
    }

    /// Writes a temporary file with mode 0600 and renames it over the old
    /// one, so a crash never leaves half a file and the keys are never
    /// readable by others, not even for a moment.
    fn save(&self, map: &BTreeMap<String, Entry>) -> Result<(), KeyStoreError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let tmp = tmp_path(&self.path);
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| self.io(e))?;
        let body = serde_json::to_vec_pretty(map).expect("plain map serializes");
        f.write_all(&body).map_err(|e| self.io(e))?;
        f.sync_all().map_err(|e| self.io(e))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| self.io(e))
    }
}

fn tmp_path(p: &Path) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(".tmp");
    PathBuf::from(s)
}

fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn from_hex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

impl KeyStore for FileKeyStore {
    fn get(&self, address: &str) -> Result<Option<NukiCredentials>, KeyStoreError> {
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let map = self.load()?;
        let Some(e) = map.get(&address.to_ascii_uppercase()) else {
            return Ok(None);
        };
        let key = from_hex32(&e.shared_key).ok_or_else(|| KeyStoreError::Corrupt {
            path: self.path.clone(),
            reason: format!("shared key of {address} is not 32 hex bytes"),
        })?;
        Ok(Some(NukiCredentials {
            auth_id: e.auth_id,
            shared_key: SharedKey::from_bytes(key),
            security_pin: e.security_pin.map(SecurityPin),
            leftover: e.leftover.clone(),
        }))
    }

    fn put(&self, address: &str, c: &NukiCredentials) -> Result<(), KeyStoreError> {
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut map = self.load()?;
        map.insert(
            address.to_ascii_uppercase(),
            Entry {
                auth_id: c.auth_id,
                shared_key: to_hex(c.shared_key.expose()),
                security_pin: c.security_pin.map(|p| p.0),
                leftover: c.leftover.clone(),
            },
        );
        self.save(&map)
    }

    fn remove(&self, address: &str) -> Result<(), KeyStoreError> {
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut map = self.load()?;
        if map.remove(&address.to_ascii_uppercase()).is_some() {
            self.save(&map)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn creds() -> NukiCredentials {
        NukiCredentials {
            auth_id: 2,
            shared_key: SharedKey::from_bytes([0x21; 32]),
            security_pin: Some(SecurityPin(1234)),
            leftover: vec![7],
        }
    }

    #[test]
    fn round_trip_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        let store = FileKeyStore::new(&path);
        assert_eq!(store.get("aa:bb").unwrap(), None);
        store.put("aa:bb", &creds()).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // A fresh store on the same file finds the keys (restart).
        let again = FileKeyStore::new(&path);
        assert_eq!(again.get("AA:BB").unwrap(), Some(creds()));
        again.remove("aa:bb").unwrap();
        assert_eq!(again.get("aa:bb").unwrap(), None);
    }

    #[test]
    fn corrupt_file_is_a_typed_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        std::fs::write(&path, b"{not json").unwrap();
        assert!(matches!(
            FileKeyStore::new(&path).get("x"),
            Err(KeyStoreError::Corrupt { .. })
        ));
        std::fs::write(
            &path,
            br#"{"X":{"auth_id":1,"shared_key":"zz","security_pin":null}}"#,
        )
        .unwrap();
        assert!(matches!(
            FileKeyStore::new(&path).get("x"),
            Err(KeyStoreError::Corrupt { .. })
        ));
    }

    #[test]
    fn debug_is_masked() {
        let s = format!("{:?}", creds());
        assert!(!s.contains("1234") && !s.contains("33"), "{s}");
    }
}
