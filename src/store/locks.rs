//! Each lock's codes and slots, decoded, kept in memory and kept true by the
//! transactions that change them: the command path and the engine read a
//! lock's codes several times per command, and opening (XChaCha20) and
//! JSON-decoding every stored code of a lock on each read made every command
//! cost more as codes piled up.
//!
//! - A write transaction that changes a lock's codes or slots (`insert_code`,
//!   `save_code`, `delete_code`, `set_observed`: the only SQL that writes those
//!   tables) applies the same change to its own copy of that lock's rows (the
//!   overlay); the overlay replaces the shared entry when, and only when, the
//!   transaction commits. A savepoint rolled back makes the locks it touched
//!   unknown to the transaction (read from SQL again, dropped at commit).
//! - Every entry carries the commit (`since`) from which it has been true. A
//!   read transaction notes the last commit its snapshot includes and uses an
//!   entry only if it was true by then, so a reader never mixes snapshots.
//! - Entries not used for [`IDLE`] are dropped by [`LockCache::shed_idle`]
//!   while more than [`KEEP_CODES`] codes are held: after a burst over
//!   hundreds of locks the memory goes back, while a property's few locks
//!   stay decoded between its commands, which come minutes apart.

use crate::drivers::SlotCode;
use crate::model::AccessCode;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// An entry unused this long is dropped (while more than [`KEEP_CODES`]
/// are held). Short: during a burst every lock is used many times a second.
pub const IDLE: Duration = Duration::from_secs(2);

/// Held codes up to which nothing is dropped, however long unused. A lock
/// read again after a pause pays one decode of its codes: a command over 10
/// locks of 100 codes answered in 8.5-13.6 ms cold and 3-4.6 ms kept
/// (`BENCH_PROPERTY=1 mqtt_bench`, commands 13 s apart). Two thousand is 20
/// such locks, about 1.5 MiB. Past it every idle entry goes, not only the oldest: a
/// few entries kept among the freed ones of a burst pinned 9 MiB of
/// half-empty pages the allocator could not return.
pub const KEEP_CODES: usize = 2_000;

/// What a look of the shedder did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Shed {
    /// Entries dropped.
    pub dropped: usize,
    /// Every entry is idle now, and some were used since the last look that
    /// found the cache quiet: the time to give back what the activity grew
    /// (SQLite's page caches, malloc's free lists).
    pub went_quiet: bool,
}

/// One lock's rows as `codes_for_device` and `observed` return them.
#[derive(Debug, Clone, Default)]
pub struct LockRows {
    /// The lock's codes in rowid order, leaving out deleted ones already off
    /// the lock (kept only for retention). Shared: a transaction's copy of
    /// the list costs no copy of the codes.
    pub codes: Vec<Arc<AccessCode>>,
    /// What lockhub knows to be on the lock, by slot.
    pub observed: Vec<SlotCode>,
}

/// Whether `codes_for_device` leaves a code out (deleted and off its lock).
pub fn retained_only(c: &AccessCode) -> bool {
    c.deleted && c.slot == crate::model::access_code::NO_SLOT
}

impl LockRows {
    /// A new row (its rowid is the table's largest, so it goes last).
    pub fn insert(&mut self, c: &AccessCode) {
        if !retained_only(c) {
            self.codes.push(Arc::new(c.clone()));
        }
    }

    /// A saved row. Returns `false` when the result cannot be known here (a
    /// row left out before comes back: its place in rowid order is unknown).
    #[must_use]
    pub fn save(&mut self, c: &AccessCode) -> bool {
        match self
            .codes
            .iter()
            .position(|x| x.access_code_id == c.access_code_id)
        {
            Some(i) if retained_only(c) => {
                self.codes.remove(i);
                true
            }
            Some(i) => {
                self.codes[i] = Arc::new(c.clone());
                true
            }
            None => retained_only(c),
        }
    }

    pub fn delete(&mut self, access_code_id: &str) {
        self.codes.retain(|c| c.access_code_id != access_code_id);
    }

    pub fn set_observed(&mut self, slot: u32, content: Option<&SlotCode>) {
        match self.observed.binary_search_by_key(&slot, |s| s.slot) {
            Ok(i) => match content {
                Some(c) => self.observed[i] = c.clone(),
                None => {
                    self.observed.remove(i);
                }
            },
            Err(i) => {
                if let Some(c) = content {
                    self.observed.insert(i, c.clone());
                }
            }
        }
    }
}

struct Entry {
    /// The commit from which these rows have been the lock's.
    since: u64,
    rows: Arc<LockRows>,
    used: Instant,
}

#[derive(Default)]
pub struct Inner {
    /// Commits made through the cache (each write transaction's commit).
    seq: u64,
    locks: HashMap<String, Entry>,
    /// The shedder's last look.
    last_look: Option<Instant>,
    /// Entries were used since the last quiet look.
    quieting: bool,
}

/// The shared entries (see the module doc).
#[derive(Default)]
pub struct LockCache {
    inner: Mutex<Inner>,
}

impl LockCache {
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The shedder's look: drops the entries not used for [`IDLE`] if more
    /// than [`KEEP_CODES`] codes are held.
    pub fn shed_idle(&self) -> Shed {
        let mut g = self.lock();
        let now = Instant::now();
        let used_since = g.used_since_last_look();
        g.last_look = Some(now);
        let idle = |e: &Entry| now.saturating_duration_since(e.used) >= IDLE;
        let before = g.locks.len();
        if g.codes() > KEEP_CODES {
            g.locks.retain(|_, e| !idle(e));
        }
        g.quieting |= used_since;
        let went_quiet = g.quieting && g.locks.values().all(idle);
        if went_quiet {
            g.quieting = false;
        }
        Shed {
            dropped: before - g.locks.len(),
            went_quiet,
        }
    }

    /// Whether the shedder has to look again soon: more than [`KEEP_CODES`]
    /// codes are held, or locks were used since it last went quiet.
    pub fn unsettled(&self) -> bool {
        let g = self.lock();
        g.quieting || g.used_since_last_look() || g.codes() > KEEP_CODES
    }

    /// Locks with an entry, and their codes (for tests and metrics).
    pub fn size(&self) -> (usize, usize) {
        let g = self.lock();
        (
            g.locks.len(),
            g.locks.values().map(|e| e.rows.codes.len()).sum(),
        )
    }
}

impl Inner {
    pub fn seq(&self) -> u64 {
        self.seq
    }

    fn codes(&self) -> usize {
        self.locks.values().map(|e| e.rows.codes.len()).sum()
    }

    fn used_since_last_look(&self) -> bool {
        self.locks
            .values()
            .any(|e| self.last_look.is_none_or(|l| e.used > l))
    }

    /// The rows of a lock if they were already true at commit `snapshot`.
    pub fn get(&mut self, device_id: &str, snapshot: u64) -> Option<Arc<LockRows>> {
        let e = self.locks.get_mut(device_id)?;
        if e.since > snapshot {
            return None;
        }
        e.used = Instant::now();
        Some(e.rows.clone())
    }

    /// Rows read from SQL in a snapshot at commit `snapshot`: kept only if no
    /// commit came since (else they may be stale already).
    pub fn fill(&mut self, device_id: &str, snapshot: u64, rows: Arc<LockRows>) {
        if snapshot == self.seq && !self.locks.contains_key(device_id) {
            self.locks.insert(
                device_id.to_owned(),
                Entry {
                    since: snapshot,
                    rows,
                    used: Instant::now(),
                },
            );
        }
    }

    /// A transaction committed: its overlay becomes the shared state (`None`:
    /// the lock's rows are unknown and the entry goes).
    pub fn committed(&mut self, overlay: HashMap<String, Option<LockRows>>) {
        self.seq += 1;
        let seq = self.seq;
        for (id, rows) in overlay {
            match rows {
                Some(rows) => {
                    self.locks.insert(
                        id,
                        Entry {
                            since: seq,
                            rows: Arc::new(rows),
                            used: Instant::now(),
                        },
                    );
                }
                None => {
                    self.locks.remove(&id);
                }
            }
        }
    }

    /// A commit that may or may not have happened (it failed): forget what it touched.
    pub fn uncertain(&mut self, touched: impl Iterator<Item = String>) {
        self.seq += 1;
        for id in touched {
            self.locks.remove(&id);
        }
    }
}

/// Give what C code freed after a burst back to the system: glibc's malloc
/// (SQLite's page caches and statements, libdbus) keeps it in its arenas
/// otherwise, and RSS stays at the burst's peak. The daemon's Rust
/// allocations are jemalloc's, which returns its freed pages by itself (its
/// background thread, `dirty_decay_ms` in src/main.rs): this reaches only
/// glibc's side.
pub fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use crate::drivers::SlotCode;
    use crate::model::{AccessCode, Pin};
    use crate::store::{Store, StoreError, Tx};

    fn code(id: &str, slot: u32, pin: &str) -> AccessCode {
        let mut c = crate::engine::plan::tests::code(slot, pin, None);
        c.access_code_id = id.into();
        c
    }

    fn held(slot: u32, pin: &str) -> SlotCode {
        SlotCode {
            slot,
            code: Pin::new(pin),
            name: None,
            window: None,
            recurring: None,
        }
    }

    /// What a transaction sees through the cache is what SQL holds.
    fn agrees(tx: &Tx<'_>) {
        let sql = tx.rows_from_sql("d").unwrap();
        let seen = tx.lock_view("d", |c, o| (c.to_vec(), o.to_vec())).unwrap();
        assert_eq!(seen, (sql.codes, sql.observed));
    }

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("t.db")).unwrap();
        s.conn().pragma_update(None, "foreign_keys", "OFF").unwrap();
        (dir, s)
    }

    #[test]
    fn the_cache_follows_every_write_savepoints_and_rollbacks() {
        let (_dir, s) = store();
        s.write(|tx| {
            tx.insert_code(&code("a", 1, "1111"))?;
            tx.insert_code(&code("b", 2, "2222"))?;
            tx.set_observed("d", 1, Some(&held(1, "1111")))?;
            agrees(tx);
            Ok::<_, StoreError>(())
        })
        .unwrap();
        // Read once from SQL (fills the cache), then change it in every way.
        s.read(|tx| {
            agrees(tx);
            Ok(())
        })
        .unwrap();
        assert_eq!(s.cached_locks(), (1, 2));
        s.write(|tx| {
            let mut b = code("b", 2, "2323");
            tx.save_code(&b)?;
            tx.insert_code(&code("c", 0, "3333"))?;
            tx.set_observed("d", 2, Some(&held(2, "2323")))?;
            tx.set_observed("d", 1, None)?;
            agrees(tx);
            // A deleted code off its lock leaves the lock's codes.
            b.deleted = true;
            b.slot = 0;
            tx.save_code(&b)?;
            agrees(tx);
            tx.delete_code("a")?;
            agrees(tx);
            // A refused command inside the batch: undone, and still right.
            tx.savepoint()?;
            tx.insert_code(&code("e", 5, "5555"))?;
            tx.set_observed("d", 5, Some(&held(5, "5555")))?;
            tx.rollback_to()?;
            agrees(tx);
            tx.savepoint()?;
            tx.insert_code(&code("f", 6, "6666"))?;
            tx.release()?;
            agrees(tx);
            Ok::<_, StoreError>(())
        })
        .unwrap();
        s.read(|tx| {
            agrees(tx);
            Ok(())
        })
        .unwrap();
        // A transaction that fails leaves the cache as the store is.
        let failed: Result<(), StoreError> = s.write(|tx| {
            tx.insert_code(&code("g", 7, "7777"))?;
            Err(StoreError::Other("refused".into()))
        });
        assert!(failed.is_err());
        s.read(|tx| {
            agrees(tx);
            let pins = tx.pins_on_lock("d", Some("c"))?;
            let mut pins: Vec<&str> = pins.iter().map(Pin::expose).collect();
            pins.sort();
            assert_eq!(pins, ["2323", "6666"]);
            Ok(())
        })
        .unwrap();
    }

    /// The `slot` and `common_code_key` columns (indexed) agree with the bodies.
    fn columns_agree(s: &Store) {
        let conn = s.conn();
        let mut st = conn
            .prepare(
                "SELECT access_code_id, slot, common_code_key FROM access_codes ORDER BY rowid",
            )
            .unwrap();
        let cols: Vec<(String, u32, Option<String>)> = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        drop(st);
        drop(conn);
        for (id, slot, key) in cols {
            let c = s.read(|tx| tx.code(&id)).unwrap().unwrap();
            assert_eq!((slot, key), (c.slot, c.common_code_key), "{id}");
        }
        let ok: String = s
            .conn()
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok, "ok");
    }

    #[test]
    fn a_save_writes_the_indexed_columns_only_when_they_change_and_never_trusts_a_stale_copy() {
        let (_dir, s) = store();
        s.write(|tx| {
            tx.insert_code(&code("a", 1, "1111"))?;
            tx.insert_code(&code("b", 2, "2222"))
        })
        .unwrap();
        s.read(|tx| tx.codes_for_device("d").map(drop)).unwrap();
        // The body alone (the slot and key as the cache has them) ...
        let mut a = code("a", 1, "1212");
        s.write(|tx| tx.save_code(&a)).unwrap();
        columns_agree(&s);
        // ... a new slot and a new key, in the same transaction as a body-only save ...
        a.slot = 3;
        a.common_code_key = Some("k".into());
        s.write(|tx| {
            tx.save_code(&code("b", 2, "2323"))?;
            tx.save_code(&a)
        })
        .unwrap();
        columns_agree(&s);
        // ... and a row changed behind the cache's back: the body-only
        // UPDATE finds no row as the copy says, and the full one runs.
        s.conn()
            .execute(
                "UPDATE access_codes SET slot = 9 WHERE access_code_id = 'b'",
                [],
            )
            .unwrap();
        s.write(|tx| tx.save_code(&code("b", 2, "2424"))).unwrap();
        columns_agree(&s);
        let b = s.read(|tx| tx.code("b")).unwrap().unwrap();
        assert_eq!((b.slot, b.code.expose()), (2, "2424"));
    }

    #[test]
    fn a_reader_never_sees_a_commit_newer_than_its_snapshot() {
        let (_dir, s) = store();
        let s = std::sync::Arc::new(s);
        s.write(|tx| tx.insert_code(&code("a", 1, "1111"))).unwrap();
        s.read(|tx| tx.codes_for_device("d")).unwrap(); // cached
        let (started_tx, started) = std::sync::mpsc::channel();
        let (committed_tx, committed) = std::sync::mpsc::channel::<()>();
        let reader = {
            let s = s.clone();
            std::thread::spawn(move || {
                s.read(|tx| {
                    started_tx.send(()).unwrap();
                    committed.recv().unwrap();
                    // The writer's commit (and its cache entry) came after
                    // this snapshot began: this reader sees the code as it was.
                    let codes = tx.codes_for_device("d")?;
                    agrees(tx);
                    Ok(codes)
                })
                .unwrap()
            })
        };
        started.recv().unwrap();
        s.write(|tx| {
            tx.save_code(&code("a", 1, "1212"))?;
            tx.insert_code(&code("b", 2, "2222"))
        })
        .unwrap();
        committed_tx.send(()).unwrap();
        let seen = reader.join().unwrap();
        assert_eq!(seen, vec![code("a", 1, "1111")]);
        let now = s.read(|tx| tx.codes_for_device("d")).unwrap();
        assert_eq!(now, vec![code("a", 1, "1212"), code("b", 2, "2222")]);
    }

    /// Make every entry look unused for `ago` times IDLE (or, for the ids
    /// in `fresh`, just used).
    fn age(s: &Store, ago: u32, fresh: &[&str]) {
        let mut g = s.locks.lock();
        for (id, e) in g.locks.iter_mut() {
            if !fresh.contains(&id.as_str()) {
                e.used = std::time::Instant::now()
                    .checked_sub(super::IDLE * ago)
                    .unwrap();
            }
        }
    }

    #[test]
    fn a_hub_whose_codes_fit_the_keep_keeps_them_and_gives_back_once_quiet() {
        let (_dir, s) = store();
        s.write(|tx| tx.insert_code(&code("a", 1, "1111"))).unwrap();
        s.read(|tx| tx.codes_for_device("d")).unwrap();
        assert_eq!(s.cached_locks(), (1, 1));
        assert!(s.locks.unsettled());
        age(&s, 1, &[]);
        let shed = s.locks.shed_idle();
        assert_eq!((shed.dropped, shed.went_quiet), (0, true));
        assert_eq!(s.cached_locks(), (1, 1));
        // Quiet and settled: later looks do nothing, and need not come soon.
        assert!(!s.locks.unsettled());
        assert_eq!(s.locks.shed_idle(), super::Shed::default());
        // Used again: unsettled until it is quiet again.
        s.read(|tx| tx.codes_for_device("d")).unwrap();
        assert!(s.locks.unsettled());
        let shed = s.locks.shed_idle();
        assert!(!shed.went_quiet, "used just now");
        assert!(s.locks.unsettled());
        age(&s, 1, &[]);
        assert!(s.locks.shed_idle().went_quiet);
    }

    #[test]
    fn past_the_keep_every_idle_entry_goes_and_those_in_use_stay() {
        let (_dir, s) = store();
        let on = |device: &str, id: String| {
            let mut c = code(&id, 0, "1234");
            c.device_id = device.into();
            c
        };
        s.write(|tx| {
            for i in 0..super::KEEP_CODES {
                tx.insert_code(&on("big", format!("big{i}")))?;
            }
            tx.insert_code(&on("small", "small0".into()))?;
            tx.insert_code(&on("busy", "busy0".into()))
        })
        .unwrap();
        s.read(|tx| {
            for d in ["big", "small", "busy"] {
                tx.codes_for_device(d)?;
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(s.cached_locks(), (3, super::KEEP_CODES + 2));
        age(&s, 2, &["busy"]);
        let shed = s.shed_idle();
        assert_eq!(shed, 2);
        assert_eq!(s.cached_locks(), (1, 1));
        // What is left fits: once idle it stays.
        age(&s, 2, &[]);
        assert_eq!(s.shed_idle(), 0);
        assert_eq!(s.cached_locks(), (1, 1));
    }
}
