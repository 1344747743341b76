//! The audit chain: every command applied and every write to a lock, one row
//! each, in order. Each row's hash is an HMAC (keyed from the store's key, so
//! a copy of the database alone cannot forge one) over the previous row's
//! hash and the row itself; `lockhub audit verify` names every row edited or
//! deleted. Rows hold ids, command names and outcomes, never a PIN.
//!
//! Limit: deleting the newest rows leaves a shorter chain that still verifies
//! (the chain has no anchor outside the database).

use super::{Result, Sealer, StoreError, Tx};
use hmac::{Hmac, Mac};
use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;

type HmacSha256 = Hmac<sha2::Sha256>;

fn hash(key: &[u8; 32], prev: &[u8], seq: i64, at: &str, kind: &str, detail: &str) -> Vec<u8> {
    let mut m = <HmacSha256 as Mac>::new_from_slice(key).expect("any key length");
    m.update(prev);
    m.update(&seq.to_be_bytes());
    for part in [at, kind, detail] {
        m.update(&(part.len() as u64).to_be_bytes());
        m.update(part.as_bytes());
    }
    m.finalize().into_bytes().to_vec()
}

impl Tx<'_> {
    /// Append one entry (`detail`: JSON without PINs).
    pub fn audit(&self, kind: &str, detail: &serde_json::Value) -> Result<()> {
        let last: Option<(i64, Vec<u8>)> = self
            .tx
            .prepare_cached("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let (seq, prev) = match last {
            Some((s, h)) => (s + 1, h),
            None => (1, Vec::new()),
        };
        let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let detail = detail.to_string();
        let h = hash(&self.sealer.audit_key, &prev, seq, &at, kind, &detail);
        self.tx
            .prepare_cached(
                "INSERT INTO audit (seq, at, kind, detail, hash) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![seq, at, kind, detail, h])?;
        Ok(())
    }
}

impl Tx<'_> {
    /// Rows in the chain and the bytes their columns hold. The chain is never
    /// pruned yet: it is the one part of the store that grows with history.
    pub fn audit_size(&self) -> Result<(u64, u64)> {
        let (n, bytes): (i64, i64) = self.tx.query_row(
            "SELECT COUNT(*), COALESCE(SUM(length(at) + length(kind) + length(detail) + length(hash) + 8), 0) FROM audit",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok((n as u64, bytes as u64))
    }
}

/// What `audit verify` found wrong, by row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The row's content does not match its hash (edited), or its hash was replaced.
    Edited { seq: i64 },
    /// Rows missing from the chain (deleted).
    Deleted { from: i64, to: i64 },
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Edited { seq } => write!(
                f,
                "row {seq}: edited (its hash does not match its content and the row before)"
            ),
            Problem::Deleted { from, to } if from == to => write!(f, "row {from}: deleted"),
            Problem::Deleted { from, to } => write!(f, "rows {from} to {to}: deleted"),
        }
    }
}

/// Check the chain of the database at `db` with the key in `key_file`.
/// Returns the number of rows and every problem found.
pub fn verify(db: &Path, key_file: &Path) -> Result<(u64, Vec<Problem>)> {
    let key = Sealer::read(key_file)?.audit_key;
    let conn = Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut st = conn.prepare("SELECT seq, at, kind, detail, hash FROM audit ORDER BY seq")?;
    let rows = st.query_map([], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, Vec<u8>>(4)?,
        ))
    })?;
    let mut problems = Vec::new();
    let mut n = 0;
    let mut expected_seq = 1;
    let mut prev: Vec<u8> = Vec::new();
    for row in rows {
        let (seq, at, kind, detail, stored) = row.map_err(StoreError::from)?;
        n += 1;
        if seq > expected_seq {
            problems.push(Problem::Deleted {
                from: expected_seq,
                to: seq - 1,
            });
        }
        // After a gap the row cannot be checked against its lost predecessor;
        // it is still checked against the hash it claims to follow.
        let gap = seq > expected_seq;
        if !gap && hash(&key, &prev, seq, &at, &kind, &detail) != stored {
            problems.push(Problem::Edited { seq });
        }
        prev = stored;
        expected_seq = seq + 1;
    }
    Ok((n, problems))
}
