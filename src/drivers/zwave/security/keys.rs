//! The network keys: one per security class, in a JSON file with zwave-js's
//! names (`S0_Legacy`, `S2_Unauthenticated`, `S2_Authenticated`,
//! `S2_AccessControl`, each 32 hex digits), so the keys of an existing
//! Z-Wave JS UI network can be pasted in.
//!
//! A missing file is created from the OS's secure generator with mode 0600.
//! A key is a [`NetworkKey`], whose `Debug` and `Display` never show it: no
//! log line, response or socket answer can carry one by accident.

use super::SecurityClass;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// One 128-bit network key. Printing it prints `NetworkKey(***)`.
#[derive(Clone, PartialEq, Eq)]
pub struct NetworkKey([u8; 16]);

impl NetworkKey {
    pub fn from_bytes(b: [u8; 16]) -> NetworkKey {
        NetworkKey(b)
    }

    /// The key's bytes, for the crypto code only.
    pub fn expose(&self) -> &[u8; 16] {
        &self.0
    }

    fn random() -> NetworkKey {
        use rand::RngCore;
        let mut b = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut b);
        NetworkKey(b)
    }

    fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn parse(s: &str) -> Result<NetworkKey, String> {
        let s = s.trim();
        if s.len() != 32 || !s.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!(
                "must be 32 hex digits (got {} characters)",
                s.chars().count()
            ));
        }
        let mut b = [0u8; 16];
        for (i, byte) in b.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("checked hex");
        }
        Ok(NetworkKey(b))
    }
}

impl std::fmt::Debug for NetworkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NetworkKey(***)")
    }
}

impl std::fmt::Display for NetworkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// The four network keys of one Z-Wave network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkKeys {
    pub s0_legacy: NetworkKey,
    pub s2_unauthenticated: NetworkKey,
    pub s2_authenticated: NetworkKey,
    pub s2_access_control: NetworkKey,
}

/// The file's names, in zwave-js's spelling.
pub const NAMES: [(&str, SecurityClass); 4] = [
    ("S0_Legacy", SecurityClass::S0Legacy),
    ("S2_Unauthenticated", SecurityClass::S2Unauthenticated),
    ("S2_Authenticated", SecurityClass::S2Authenticated),
    ("S2_AccessControl", SecurityClass::S2AccessControl),
];

/// Why the keys file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error("zwave.keys_file {path}: cannot read it: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("zwave.keys_file {path}: cannot create it: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("zwave.keys_file {path}: {what}")]
    Invalid { path: PathBuf, what: String },
}

impl NetworkKeys {
    /// Four fresh keys from the OS's secure generator.
    pub fn generate() -> NetworkKeys {
        NetworkKeys {
            s0_legacy: NetworkKey::random(),
            s2_unauthenticated: NetworkKey::random(),
            s2_authenticated: NetworkKey::random(),
            s2_access_control: NetworkKey::random(),
        }
    }

    /// The key of `class` (`None` for [`SecurityClass::None`]).
    pub fn get(&self, class: SecurityClass) -> Option<&NetworkKey> {
        match class {
            SecurityClass::S0Legacy => Some(&self.s0_legacy),
            SecurityClass::S2Unauthenticated => Some(&self.s2_unauthenticated),
            SecurityClass::S2Authenticated => Some(&self.s2_authenticated),
            SecurityClass::S2AccessControl => Some(&self.s2_access_control),
            SecurityClass::None | SecurityClass::Temporary => None,
        }
    }

    /// Parses the file's JSON; the error names the key that is wrong.
    pub fn from_json(text: &str) -> Result<NetworkKeys, String> {
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let obj = v
            .as_object()
            .ok_or("must be a JSON object of the four keys")?;
        for k in obj.keys() {
            if !NAMES.iter().any(|(n, _)| n == k) {
                return Err(format!(
                    "unknown key {k:?} (expected S0_Legacy, S2_Unauthenticated, S2_Authenticated, S2_AccessControl)"
                ));
            }
        }
        let key = |name: &str| -> Result<NetworkKey, String> {
            let s = obj
                .get(name)
                .ok_or_else(|| format!("{name} is missing"))?
                .as_str()
                .ok_or_else(|| format!("{name} must be a string of 32 hex digits"))?;
            NetworkKey::parse(s).map_err(|e| format!("{name} {e}"))
        };
        let keys = NetworkKeys {
            s0_legacy: key("S0_Legacy")?,
            s2_unauthenticated: key("S2_Unauthenticated")?,
            s2_authenticated: key("S2_Authenticated")?,
            s2_access_control: key("S2_AccessControl")?,
        };
        let all = [
            &keys.s0_legacy,
            &keys.s2_unauthenticated,
            &keys.s2_authenticated,
            &keys.s2_access_control,
        ];
        for (i, a) in all.iter().enumerate() {
            if all[i + 1..].contains(a) {
                return Err(format!(
                    "{} and another key are the same; each class needs its own key",
                    NAMES[i].0
                ));
            }
        }
        Ok(keys)
    }

    /// The file's JSON (the only place a key is ever written out).
    pub fn to_json(&self) -> String {
        format!(
            "{{\n  \"S0_Legacy\": \"{}\",\n  \"S2_Unauthenticated\": \"{}\",\n  \"S2_Authenticated\": \"{}\",\n  \"S2_AccessControl\": \"{}\"\n}}\n",
            self.s0_legacy.hex(),
            self.s2_unauthenticated.hex(),
            self.s2_authenticated.hex(),
            self.s2_access_control.hex()
        )
    }

    /// Reads the keys file, or creates it (mode 0600, fresh keys) when it
    /// does not exist. A file others can read is refused.
    pub fn load_or_create(path: &Path) -> Result<NetworkKeys, KeysError> {
        let invalid = |what: String| KeysError::Invalid {
            path: path.to_owned(),
            what,
        };
        match std::fs::metadata(path) {
            Ok(meta) => {
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    return Err(invalid(format!(
                        "is readable by others (mode {mode:04o}); chmod 600 it"
                    )));
                }
                let text = std::fs::read_to_string(path).map_err(|source| KeysError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                NetworkKeys::from_json(&text).map_err(invalid)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let keys = NetworkKeys::generate();
                keys.write_new(path).map_err(|source| KeysError::Write {
                    path: path.to_owned(),
                    source,
                })?;
                tracing::info!(path = %path.display(), "created new Z-Wave network keys");
                Ok(keys)
            }
            Err(source) => Err(KeysError::Read {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Writes a new file atomically: a 0600 temporary file, synced, renamed.
    fn write_new(&self, path: &Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        let res = f
            .write_all(self.to_json().as_bytes())
            .and_then(|_| f.sync_all())
            .and_then(|_| std::fs::rename(&tmp, path));
        if res.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOCK: &str = r#"{"S0_Legacy": "0102030405060708090a0b0c0d0e0f10",
        "S2_Unauthenticated": "11111111111111111111111111111111",
        "S2_Authenticated": "22222222222222222222222222222222",
        "S2_AccessControl": "33333333333333333333333333333333"}"#;

    #[test]
    fn parses_zwave_js_names_and_round_trips() {
        let k = NetworkKeys::from_json(MOCK).unwrap();
        assert_eq!(k.s2_access_control.expose(), &[0x33; 16]);
        assert_eq!(k.s0_legacy.expose()[0], 1);
        assert_eq!(NetworkKeys::from_json(&k.to_json()).unwrap(), k);
        assert_eq!(
            k.get(SecurityClass::S2Authenticated).unwrap().expose(),
            &[0x22; 16]
        );
    }

    #[test]
    fn bad_files_name_the_key() {
        let e = NetworkKeys::from_json(&MOCK.replace("\"3333", "\"x333")).unwrap_err();
        assert!(
            e.contains("S2_AccessControl") && e.contains("32 hex"),
            "{e}"
        );
        let e = NetworkKeys::from_json(&MOCK.replace("S2_Authenticated", "S2_Auth")).unwrap_err();
        assert!(e.contains("S2_Auth"), "{e}");
        let e = NetworkKeys::from_json(r#"{"S0_Legacy": "00"}"#).unwrap_err();
        assert!(e.contains("S0_Legacy"), "{e}");
        let e = NetworkKeys::from_json(&MOCK.replace("2222", "1111")).unwrap_err();
        assert!(e.contains("same"), "{e}");
        assert!(NetworkKeys::from_json("[1]").is_err());
    }

    #[test]
    fn never_printed() {
        let k = NetworkKeys::from_json(MOCK).unwrap();
        let shown = format!("{k:?} {} {:?}", k.s0_legacy, k.s2_access_control);
        assert!(
            !shown.contains("0102") && !shown.contains("3333"),
            "{shown}"
        );
        assert!(shown.contains("***"));
    }

    #[test]
    fn created_with_mode_0600_when_missing_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/zwave-keys.json");
        let a = NetworkKeys::load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let b = NetworkKeys::load_or_create(&path).unwrap();
        assert_eq!(a, b, "the same keys on the next start");
        assert_ne!(a.s0_legacy, a.s2_access_control);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = NetworkKeys::load_or_create(&path).unwrap_err().to_string();
        assert!(e.contains("zwave.keys_file") && e.contains("0644"), "{e}");
        std::fs::write(dir.path().join("bad.json"), "{").unwrap();
        let bad = dir.path().join("bad.json");
        std::fs::set_permissions(&bad, std::fs::Permissions::from_mode(0o600)).unwrap();
        let e = NetworkKeys::load_or_create(&bad).unwrap_err().to_string();
        assert!(e.contains("not JSON"), "{e}");
    }
}
