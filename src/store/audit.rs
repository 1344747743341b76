//! The audit chain: every command applied and every write to a lock, one row
//! each, in order. Each row's hash is an HMAC (keyed from the store's key, so
//! a copy of the database alone cannot forge one) over the previous row's
//! hash and the row itself; `lockhub audit verify` names every row edited or
//! deleted. Rows hold ids, command names and outcomes, never a PIN.
//!
//! Two things keep it true over a year:
//! - **Pruning.** Rows older than `engine.audit_retention_days` go; the last
//!   pruned row's seq and hash stay behind as the chain's *base*, sealed with
//!   the same key, so the chain still verifies from there and deleting old
//!   rows by hand is still named.
//! - **The anchor.** The newest row's seq and hash are copied every few
//!   seconds to `{db}.audit-head`, outside the database, so truncating the
//!   newest rows is named too. Limit: rows appended after the last anchor
//!   (at most the ticker's 10 s) can be truncated unseen, and someone who can
//!   rewrite both files and holds the key can rewrite history.

use super::{Result, Sealer, Store, StoreError, Tx};
use hmac::{Hmac, Mac};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

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

/// How a row's `at` is written: RFC 3339 UTC with milliseconds, one width.
fn stamp(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The seal of the base left by pruning: without the key, no one can move it.
fn base_seal(key: &[u8; 32], seq: i64, hash: &[u8]) -> Vec<u8> {
    let mut m = <HmacSha256 as Mac>::new_from_slice(key).expect("any key length");
    m.update(b"lockhub audit base");
    m.update(&seq.to_be_bytes());
    m.update(hash);
    m.finalize().into_bytes().to_vec()
}

impl Tx<'_> {
    /// Append one entry (`detail`: JSON without PINs) stamped `at` (the
    /// engine's clock, which pruning measures against).
    pub fn audit(
        &self,
        kind: &str,
        detail: &serde_json::Value,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<()> {
        let (seq, prev) = match self.audit_head()? {
            Some((s, h)) => (s + 1, h),
            None => match read_base(&self.tx)? {
                Some((s, h, _)) => (s + 1, h),
                None => (1, Vec::new()),
            },
        };
        let at = stamp(at);
        let detail = detail.to_string();
        let h = hash(&self.sealer.audit_key, &prev, seq, &at, kind, &detail);
        self.tx
            .prepare_cached(
                "INSERT INTO audit (seq, at, kind, detail, hash) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![seq, at, kind, detail, h])?;
        Ok(())
    }

    /// The newest row's seq and hash.
    pub fn audit_head(&self) -> Result<Option<(i64, Vec<u8>)>> {
        Ok(self
            .tx
            .prepare_cached("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?)
    }

    /// Drop the rows appended before `before`, always keeping the newest (the
    /// chain's head), and leave the last dropped row behind as the sealed base.
    pub fn prune_audit(&self, before: chrono::DateTime<chrono::Utc>) -> Result<usize> {
        // `at` is always `stamp`'s fixed form, so text order is time order.
        let before = stamp(before);
        let cut: Option<(i64, Vec<u8>)> = self
            .tx
            .query_row(
                "SELECT seq, hash FROM audit
                 WHERE at < ?1 AND seq < (SELECT MAX(seq) FROM audit)
                 ORDER BY seq DESC LIMIT 1",
                [before],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((seq, h)) = cut else { return Ok(0) };
        let seal = base_seal(&self.sealer.audit_key, seq, &h);
        self.tx.execute(
            "INSERT INTO audit_base (id, seq, hash, seal) VALUES (1, ?1, ?2, ?3)
             ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, seal = excluded.seal",
            params![seq, h, seal],
        )?;
        Ok(self
            .tx
            .execute("DELETE FROM audit WHERE seq <= ?1", [seq])?)
    }

    /// Rows in the chain and the bytes their columns hold.
    pub fn audit_size(&self) -> Result<(u64, u64)> {
        let (n, bytes): (i64, i64) = self.tx.query_row(
            "SELECT COUNT(*), COALESCE(SUM(length(at) + length(kind) + length(detail) + length(hash) + 8), 0) FROM audit",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok((n as u64, bytes as u64))
    }
}

/// The base left by pruning: the last pruned row's seq and hash, and its seal.
type Base = (i64, Vec<u8>, Vec<u8>);

fn read_base(conn: &Connection) -> rusqlite::Result<Option<Base>> {
    conn.query_row(
        "SELECT seq, hash, seal FROM audit_base WHERE id = 1",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .optional()
}

/// The copy of the chain's head kept outside the database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchor {
    pub seq: i64,
    /// The row's hash, hex.
    pub hash: String,
}

/// Where the anchor of the database at `db` lives: next to it.
pub fn anchor_file(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push(".audit-head");
    p.into()
}

fn read_anchor(path: &Path) -> Result<Option<Anchor>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            StoreError::Other(format!("{}: not an audit anchor ({e})", path.display()))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StoreError::Other(format!("{}: {e}", path.display()))),
    }
}

fn write_anchor(path: &Path, anchor: &Anchor) -> std::io::Result<()> {
    use std::io::Write;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&serde_json::to_vec(anchor).expect("plain struct"))?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

impl Store {
    /// Copy the chain's head to the anchor file if it moved since the last
    /// copy (run by the engine's ticker and at shutdown). In-memory stores
    /// have no anchor.
    pub fn anchor_audit(&self) -> Result<()> {
        let Some(path) = &self.audit_anchor else {
            return Ok(());
        };
        use std::sync::atomic::Ordering::Relaxed;
        // Nothing committed since the last look: no read at all.
        let commits = self.commits.load(Relaxed);
        if self.anchored_at_commit.load(Relaxed) == commits {
            return Ok(());
        }
        let last = self.anchored.load(Relaxed);
        let Some((seq, h)) = self.read(|tx| tx.audit_head())? else {
            return Ok(());
        };
        if seq == last {
            self.anchored_at_commit.store(commits, Relaxed);
            return Ok(());
        }
        let anchor = Anchor {
            seq,
            hash: hex::encode(h),
        };
        write_anchor(path, &anchor)
            .map_err(|e| StoreError::Other(format!("{}: {e}", path.display())))?;
        self.anchored.store(seq, Relaxed);
        self.anchored_at_commit.store(commits, Relaxed);
        Ok(())
    }
}

/// What `audit verify` found wrong, by row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The row's content does not match its hash (edited), or its hash was replaced.
    Edited { seq: i64 },
    /// Rows missing from the chain (deleted).
    Deleted { from: i64, to: i64 },
    /// The newest rows are gone: the anchor outside the database names a
    /// later row than the chain holds.
    Truncated { from: i64, to: i64 },
    /// The row the anchor names holds another hash: history was rewritten.
    AnchorMismatch { seq: i64 },
    /// The base left by pruning does not carry its seal (moved by hand).
    BaseForged { seq: i64 },
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
            Problem::Truncated { from, to } => write!(
                f,
                "rows {from} to {to}: deleted from the end (the anchor outside the database names row {to})"
            ),
            Problem::AnchorMismatch { seq } => write!(
                f,
                "row {seq}: not the row the anchor outside the database names (history rewritten)"
            ),
            Problem::BaseForged { seq } => write!(
                f,
                "row {seq}: the pruned chain's base is not sealed with the store's key (moved by hand)"
            ),
        }
    }
}

/// What `audit verify` read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Rows in the chain.
    pub rows: u64,
    /// Rows pruned before the first one held (the base's seq), if any.
    pub pruned_through: Option<i64>,
    /// The newest row, as `audit verify` prints it for someone keeping
    /// their own copy of the head.
    pub head: Option<Anchor>,
    /// Whether an anchor file was there to check truncation against.
    pub anchored: bool,
    pub problems: Vec<Problem>,
}

/// Check the chain of the database at `db` with the key in `key_file`,
/// against its anchor file when there is one.
pub fn verify(db: &Path, key_file: &Path) -> Result<Verified> {
    let key = Sealer::read(key_file)?.audit_key;
    let conn = Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut problems = Vec::new();
    let mut expected_seq = 1;
    let mut prev: Vec<u8> = Vec::new();
    let base = read_base(&conn)?;
    if let Some((seq, h, seal)) = &base {
        if base_seal(&key, *seq, h) != *seal {
            problems.push(Problem::BaseForged { seq: *seq });
        }
        expected_seq = seq + 1;
        prev = h.clone();
    }
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
    let anchor = read_anchor(&anchor_file(db))?;
    let mut n = 0;
    let mut head = None;
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
        if let Some(a) = &anchor {
            if a.seq == seq && a.hash != hex::encode(&stored) {
                problems.push(Problem::AnchorMismatch { seq });
            }
        }
        head = Some((seq, stored.clone()));
        prev = stored;
        expected_seq = seq + 1;
    }
    if let Some(a) = &anchor {
        if a.seq >= expected_seq {
            problems.push(Problem::Truncated {
                from: expected_seq,
                to: a.seq,
            });
        }
    }
    Ok(Verified {
        rows: n,
        pruned_through: base.map(|(s, _, _)| s),
        head: head.map(|(seq, h)| Anchor {
            seq,
            hash: hex::encode(h),
        }),
        anchored: anchor.is_some(),
        problems,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone, Utc};
    use serde_json::json;

    fn t(days: i64) -> chrono::DateTime<Utc> {
        Utc.with_ymd_and_hms(2027, 1, 1, 12, 0, 0).unwrap() + Duration::days(days)
    }

    /// A store on disk with one row a day for `days` days.
    fn store_with_rows(dir: &Path, days: i64) -> (PathBuf, Store) {
        let db = dir.join("lockhub.db");
        let store = Store::open(&db).unwrap();
        for d in 0..days {
            store
                .write(|tx| tx.audit("command", &json!({"request_id": format!("r{d}")}), t(d)))
                .unwrap();
        }
        (db, store)
    }

    fn check(db: &Path) -> Verified {
        verify(db, &Store::default_key_file(db)).unwrap()
    }

    fn sql(db: &Path, q: &str) {
        Connection::open(db).unwrap().execute_batch(q).unwrap();
    }

    #[test]
    fn a_pruned_chain_still_verifies_and_keeps_appending() {
        let dir = tempfile::tempdir().unwrap();
        let (db, store) = store_with_rows(dir.path(), 10);
        let pruned = store.write(|tx| tx.prune_audit(t(6))).unwrap();
        assert_eq!(pruned, 6, "rows of days 0 to 5");
        store
            .write(|tx| tx.audit("command", &json!({}), t(11)))
            .unwrap();
        let v = check(&db);
        assert_eq!(v.problems, vec![]);
        assert_eq!((v.rows, v.pruned_through), (5, Some(6)));
        assert_eq!(v.head.unwrap().seq, 11);
        // Pruning everything keeps the head, so the chain never restarts at 1.
        store.write(|tx| tx.prune_audit(t(100))).unwrap();
        let v = check(&db);
        assert_eq!(
            (v.rows, v.pruned_through, v.problems),
            (1, Some(10), vec![])
        );
    }

    #[test]
    fn old_rows_deleted_by_hand_or_a_moved_base_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let (db, store) = store_with_rows(dir.path(), 10);
        store.write(|tx| tx.prune_audit(t(3))).unwrap();
        drop(store);
        // Deleting the oldest rows left: a gap after the base.
        sql(&db, "DELETE FROM audit WHERE seq IN (4, 5)");
        assert_eq!(
            check(&db).problems,
            vec![Problem::Deleted { from: 4, to: 5 }]
        );
        // Moving the base over the gap without the key: named.
        sql(&db, "UPDATE audit_base SET seq = 5");
        let p = check(&db).problems;
        assert!(p.contains(&Problem::BaseForged { seq: 5 }), "{p:?}");
    }

    #[test]
    fn the_anchor_names_rows_deleted_from_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let (db, store) = store_with_rows(dir.path(), 8);
        store.anchor_audit().unwrap();
        let v = check(&db);
        assert!(v.anchored && v.problems.is_empty(), "{v:?}");
        drop(store);
        sql(&db, "DELETE FROM audit WHERE seq >= 7");
        assert_eq!(
            check(&db).problems,
            vec![Problem::Truncated { from: 7, to: 8 }]
        );
        // Replacing the anchored row itself: named as the anchor's row.
        sql(&db, "INSERT INTO audit (seq, at, kind, detail, hash) VALUES (7, 'x', 'command', '{}', x'00'), (8, 'x', 'command', '{}', x'00')");
        let p = check(&db).problems;
        assert!(p.contains(&Problem::AnchorMismatch { seq: 8 }), "{p:?}");
        assert!(
            !p.iter().any(|p| matches!(p, Problem::Truncated { .. })),
            "{p:?}"
        );
    }

    #[test]
    fn the_anchor_is_written_only_when_the_head_moved() {
        let dir = tempfile::tempdir().unwrap();
        let (db, store) = store_with_rows(dir.path(), 2);
        store.anchor_audit().unwrap();
        let file = anchor_file(&db);
        let first = std::fs::metadata(&file).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        store.anchor_audit().unwrap();
        assert_eq!(std::fs::metadata(&file).unwrap().modified().unwrap(), first);
        store
            .write(|tx| tx.audit("command", &json!({}), t(3)))
            .unwrap();
        store.anchor_audit().unwrap();
        let a: Anchor = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        assert_eq!(a.seq, 3);
    }
}
