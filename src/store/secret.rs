//! PINs at rest: every column that can hold a PIN (a code's PIN and its stored
//! body, what a slot holds, stored answers, outbox payloads that may hold one)
//! is sealed with XChaCha20-Poly1305 under a key of the hub's own, so a copy of
//! the database file alone reveals no PIN. The key is 32 random bytes in a file of mode
//! 0600, created on first start (`{store.path}.key` unless configured).
//!
//! A sealed text value is `lhs1:` + base64(nonce || ciphertext); a sealed blob
//! is the bytes `LHS1` + nonce || ciphertext. The column's name is the
//! associated data, so a value moved to another column does not open. Values
//! without the marker are plaintext from before sealing (a PIN is digits, the
//! bodies are JSON: never mistaken) and are sealed at open, except outbox rows
//! marked `plain` (events, device states, masked code states: no PIN).

use super::{Result, StoreError};
use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine;
use lockhub_seal::OpenError;
use rand::RngCore;
use rusqlite::Connection;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

const TEXT_MARK: &str = "lhs1:";
const BLOB_MARK: &[u8] = b"LHS1";

/// The columns sealed, as `(table, column, key column, blob, rows)`: `rows`
/// is the SQL condition of the rows that must be sealed (outbox rows stored
/// `plain` on purpose, with no PIN, are not plaintext from before sealing).
const SEALED: &[(&str, &str, &str, bool, &str)] = &[
    ("access_codes", "body", "access_code_id", false, "1"),
    ("slots", "code", "device_id || '/' || slot", false, "1"),
    ("requests", "response", "request_id", false, "1"),
    ("outbox", "payload", "id", true, "plain = 0"),
];

/// Seals and opens values; the key never leaves it (and is never printed).
pub struct Sealer {
    key: lockhub_seal::Key,
    /// HMAC key of the audit chain, derived from the same key.
    pub(super) audit_key: [u8; 32],
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

fn bad(msg: impl Into<String>) -> StoreError {
    StoreError::Other(msg.into())
}

impl Sealer {
    /// A key for this process only (in-memory stores).
    pub fn ephemeral() -> Sealer {
        let mut k = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut k);
        Sealer::from_key(&k)
    }

    pub(super) fn from_key(k: &[u8; 32]) -> Sealer {
        use hmac::Mac;
        let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(k).expect("any key length");
        mac.update(b"lockhub audit chain v1");
        Sealer {
            key: lockhub_seal::Key::new(k),
            audit_key: mac.finalize().into_bytes().into(),
        }
    }

    /// The key in an existing key file, without creating one (for `audit verify`).
    pub fn read(path: &Path) -> Result<Sealer> {
        let bytes = std::fs::read(path).map_err(|e| {
            bad(format!(
                "reading the store's key file {}: {e}",
                path.display()
            ))
        })?;
        let k: [u8; 32] = bytes.try_into().map_err(|_| {
            bad(format!(
                "the store's key file {} is not 32 bytes",
                path.display()
            ))
        })?;
        Ok(Sealer::from_key(&k))
    }

    /// Read the key file, or create it (0600) when it does not exist.
    /// Returns the sealer and whether the key is new.
    pub fn open_or_create(path: &Path) -> Result<(Sealer, bool)> {
        match std::fs::read(path) {
            Ok(bytes) => {
                let k: [u8; 32] = bytes.try_into().map_err(|_| {
                    bad(format!(
                        "the store's key file {} is not 32 bytes",
                        path.display()
                    ))
                })?;
                if let Ok(m) = std::fs::metadata(path) {
                    if m.permissions().mode() & 0o077 != 0 {
                        tracing::warn!(file = %path.display(), "the store's key file is readable by others; chmod 600 it");
                    }
                }
                Ok((Sealer::from_key(&k), false))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut k = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut k);
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                    .map_err(|e| {
                        bad(format!(
                            "creating the store's key file {}: {e}",
                            path.display()
                        ))
                    })?;
                f.write_all(&k).and_then(|_| f.sync_all()).map_err(|e| {
                    bad(format!(
                        "writing the store's key file {}: {e}",
                        path.display()
                    ))
                })?;
                tracing::info!(file = %path.display(), "created the store's key (PINs at rest are sealed with it)");
                Ok((Sealer::from_key(&k), true))
            }
            Err(e) => Err(bad(format!(
                "reading the store's key file {}: {e}",
                path.display()
            ))),
        }
    }

    fn seal_bytes(&self, column: &str, plain: &[u8]) -> Vec<u8> {
        self.key.seal(column.as_bytes(), plain)
    }

    fn open_bytes(&self, column: &str, sealed: &[u8]) -> Result<Vec<u8>> {
        self.key
            .open(column.as_bytes(), sealed)
            .map_err(|e| match e {
                OpenError::Truncated => bad(format!("a sealed {column} is truncated")),
                OpenError::Forged => bad(format!(
                    "a sealed {column} does not open (another store's key, or an edited row)"
                )),
            })
    }

    /// Seal a text value for `column` ("table.column").
    pub fn seal_text(&self, column: &str, plain: &str) -> String {
        format!(
            "{TEXT_MARK}{}",
            STANDARD_NO_PAD.encode(self.seal_bytes(column, plain.as_bytes()))
        )
    }

    /// Open a text value (plaintext from before sealing passes as it is).
    pub fn open_text(&self, column: &str, stored: String) -> Result<String> {
        let Some(b64) = stored.strip_prefix(TEXT_MARK) else {
            return Ok(stored);
        };
        let raw = STANDARD_NO_PAD
            .decode(b64)
            .map_err(|_| bad(format!("a sealed {column} is not base64")))?;
        String::from_utf8(self.open_bytes(column, &raw)?)
            .map_err(|_| bad(format!("a sealed {column} is not text")))
    }

    pub fn seal_blob(&self, column: &str, plain: &[u8]) -> Vec<u8> {
        let mut out = BLOB_MARK.to_vec();
        out.extend(self.seal_bytes(column, plain));
        out
    }

    pub fn open_blob(&self, column: &str, stored: Vec<u8>) -> Result<Vec<u8>> {
        match stored.strip_prefix(BLOB_MARK) {
            Some(sealed) => self.open_bytes(column, sealed),
            None => Ok(stored),
        }
    }
}

/// Whether the database holds sealed values (so a new key cannot read it).
pub(super) fn has_sealed(conn: &Connection) -> Result<bool> {
    for (table, column, _, blob, _) in SEALED {
        let sql = if *blob {
            format!(
                "SELECT 1 FROM {table} WHERE substr({column}, 1, 4) = CAST('LHS1' AS BLOB) LIMIT 1"
            )
        } else {
            format!("SELECT 1 FROM {table} WHERE {column} LIKE 'lhs1:%' LIMIT 1")
        };
        if conn.prepare(&sql)?.exists([]).map_err(StoreError::from)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Seal every plaintext value left from before sealing (once, at open), and
/// rewrite the file so no page keeps the plaintext. Returns how many.
pub(super) fn seal_existing(conn: &mut Connection, s: &Sealer) -> Result<usize> {
    let tx = conn.transaction()?;
    let mut n = 0;
    for (table, column, key, blob, rows) in SEALED {
        let label = format!("{table}.{column}");
        if *blob {
            let rows: Vec<(i64, Vec<u8>)> = tx
                .prepare(&format!("SELECT {key}, {column} FROM {table} WHERE ({rows}) AND substr({column}, 1, 4) IS NOT CAST('LHS1' AS BLOB)"))?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            for (id, plain) in rows {
                tx.execute(
                    &format!("UPDATE {table} SET {column} = ?2 WHERE {key} = ?1"),
                    rusqlite::params![id, s.seal_blob(&label, &plain)],
                )?;
                n += 1;
            }
        } else {
            let rows: Vec<(rusqlite::types::Value, String)> = tx
                .prepare(&format!(
                    "SELECT {key}, {column} FROM {table} WHERE ({rows}) AND {column} NOT LIKE 'lhs1:%'"
                ))?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            for (id, plain) in rows {
                tx.execute(
                    &format!("UPDATE {table} SET {column} = ?2 WHERE {key} = ?1"),
                    rusqlite::params![id, s.seal_text(&label, &plain)],
                )?;
                n += 1;
            }
        }
    }
    tx.commit()?;
    if n > 0 {
        conn.execute_batch("VACUUM")?;
        tracing::info!(values = n, "sealed PINs stored before sealing existed");
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_key_and_column() {
        let s = Sealer::ephemeral();
        let t = s.seal_text("access_codes.code", "5974");
        assert!(t.starts_with("lhs1:") && !t.contains("5974"));
        assert_eq!(s.open_text("access_codes.code", t.clone()).unwrap(), "5974");
        assert!(
            s.open_text("slots.code", t.clone()).is_err(),
            "another column"
        );
        assert!(
            Sealer::ephemeral()
                .open_text("access_codes.code", t)
                .is_err(),
            "another key"
        );
        assert_eq!(
            s.open_text("x", "1234".into()).unwrap(),
            "1234",
            "plaintext from before"
        );
        let b = s.seal_blob("outbox.payload", b"{\"code\":\"5974\"}");
        assert_eq!(
            s.open_blob("outbox.payload", b).unwrap(),
            b"{\"code\":\"5974\"}"
        );
    }

    #[test]
    fn the_key_file_is_created_0600_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("k");
        let (a, new) = Sealer::open_or_create(&f).unwrap();
        assert!(new);
        assert_eq!(
            std::fs::metadata(&f).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let (b, new) = Sealer::open_or_create(&f).unwrap();
        assert!(!new);
        let t = a.seal_text("c", "1");
        assert_eq!(b.open_text("c", t).unwrap(), "1");
        std::fs::write(&f, b"short").unwrap();
        assert!(Sealer::open_or_create(&f).is_err());
    }
}
