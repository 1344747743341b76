//! SQLite: schema, migrations and every query. The only place SQL lives.
//!
//! One connection behind a mutex (SQLite serialises writers anyway); every
//! command's and every lock operation's whole effect is one transaction, made
//! durable (WAL, fdatasync after the commit: [`durable`]) before anyone is
//! told it happened.

pub mod audit;
pub mod backup;
mod check;
mod checkpoint;
mod clock;
mod durable;
pub mod faults;
pub mod issued;
mod jti;
mod lifetime;
mod lock_state;
mod locks;
mod migrations;
pub mod recent;
mod reply;
mod secret;

/// How long a lock's decoded codes stay in memory unused.
pub use locks::IDLE as CACHE_IDLE;
pub use reply::ReplyTo;
pub use secret::Sealer;

pub use lifetime::{ReportedConstraints, UnmanagedRow};
pub use lock_state::{ActionAttempt, LockState};

/// How long a connection waits for a lock another holds.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

use crate::drivers::SlotCode;
use crate::model::{AccessCode, DeviceInfo, Event, Pin, TimeWindow};
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use tokio::sync::Notify;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("stored record is corrupt: {0}")]
    Corrupt(#[from] serde_json::Error),
    #[error(
        "the database was written by a newer lockhub (schema {found}, this one knows {known})"
    )]
    TooNew { found: i64, known: i64 },
    /// A failure reported on behalf of a shared commit (the original is not `Clone`).
    #[error("{0}")]
    Other(String),
    /// The commit could not be made durable (the WAL's fdatasync failed): it
    /// must not be answered as done (see [`durable`]).
    #[error("database: the commit could not be synced to disk: {0}")]
    Sync(std::io::Error),
}

pub type Result<T> = std::result::Result<T, StoreError>;

impl StoreError {
    /// The storage itself cannot take a write now (a full disk, an I/O error,
    /// a read-only remount, a database held locked): nothing is wrong with
    /// what was asked, and the same write may succeed once the fault clears.
    pub fn is_storage_fault(&self) -> bool {
        use rusqlite::ErrorCode as C;
        match self {
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => matches!(
                e.code,
                C::DiskFull
                    | C::SystemIoFailure
                    | C::ReadOnly
                    | C::CannotOpen
                    | C::DatabaseBusy
                    | C::DatabaseLocked
                    | C::OutOfMemory
            ),
            StoreError::Sync(_) => true,
            _ => false,
        }
    }
}

/// A device as stored: what its driver announced plus what lockhub observed.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceRow {
    pub info: DeviceInfo,
    /// Known to be online: its driver said so (this run or, persisted, before).
    /// `false` also while `presence_known` is false.
    pub online: bool,
    /// A driver has ever said whether the lock is reachable (else: `unknown`).
    pub presence_known: bool,
    pub battery_level: Option<u8>,
    /// The lock's slots were read since it joined (so `slots` is complete).
    pub slots_known: bool,
    pub last_error: Option<String>,
}

/// A message waiting for the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    pub id: i64,
    /// Relative to `{base}`: `responses/r-1`, `events`, `access_codes/<id>`, ...
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
    /// An MQTT 5 Response Topic (absolute) and Correlation Data to answer on
    /// instead of `topic`.
    pub reply_to: Option<ReplyTo>,
}

/// Prepared statements kept per connection (more than lockhub has).
const STATEMENT_CACHE: usize = 256;

pub struct Store {
    conn: Mutex<Connection>,
    /// A second connection for reads (WAL lets it read while the writer
    /// commits), so the publisher and the socket never queue behind the engine.
    /// `None` for in-memory stores, which cannot be shared.
    reader: Option<Mutex<Connection>>,
    /// Writers with someone waiting on them (commands: a cloud waits for the
    /// answer) that the engine's background writes step aside for.
    urgent: std::sync::atomic::AtomicUsize,
    /// Where background writes wait for the urgent ones to finish.
    urgent_gate: Mutex<()>,
    urgent_gone: std::sync::Condvar,
    outbox_changed: Notify,
    /// The writer's current transaction (for the watchdog).
    pub writing: crate::progress::Busy,
    /// Seals the columns that can hold a PIN (see [`secret`]).
    sealer: Sealer,
    /// The last events committed (for the installer page).
    pub recent_events: recent::RecentEvents,
    /// The workspace every event is stamped with (the hub has none of its own:
    /// it comes from the config; see [`Store::set_workspace_id`]).
    workspace_id: Mutex<std::sync::Arc<str>>,
    /// Each lock's codes and slots, decoded (see [`locks`]).
    locks: locks::LockCache,
    /// Issued PINs recorded ahead of their send and not yet sent (see [`issued`]).
    pub ahead: issued::Ahead,
    /// `{path}.audit-head`: the audit chain's head kept outside the database
    /// (see [`audit`]); `None` for in-memory stores.
    audit_anchor: Option<std::path::PathBuf>,
    /// The seq last written there.
    anchored: std::sync::atomic::AtomicI64,
    /// Write transactions committed, and their count when the anchor last looked.
    commits: std::sync::atomic::AtomicU64,
    /// Commits of [`Store::outbox_remove`] (not made durable on their own).
    removal_commits: std::sync::atomic::AtomicU64,
    anchored_at_commit: std::sync::atomic::AtomicU64,
    /// Commits made durable after the writer's lock is let go, one fsync
    /// for all that came before it (see [`durable`]).
    durable: durable::Durable,
    /// WAL checkpoints on a thread of their own (`None`: in memory).
    checkpointer: Option<checkpoint::Checkpointer>,
}

impl Store {
    /// Open (creating if needed) and migrate the database at `path`, its PINs
    /// sealed with the key in `{path}.key` (created on first start).
    pub fn open(path: &Path) -> Result<Store> {
        Self::open_with_key(path, &Self::default_key_file(path))
    }

    /// Where the key lives unless configured: next to the database.
    pub fn default_key_file(path: &Path) -> std::path::PathBuf {
        let mut p = path.as_os_str().to_owned();
        p.push(".key");
        p.into()
    }

    /// [`Store::open`] with the key in `key_file`.
    pub fn open_with_key(path: &Path, key_file: &Path) -> Result<Store> {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let (sealer, new_key) = Sealer::open_or_create(key_file)?;
        let mut conn = Connection::open(path)?;
        Self::prepare(&mut conn)?;
        if new_key && secret::has_sealed(&conn)? {
            // Not this database's key: leave no wrong key behind.
            let _ = std::fs::remove_file(key_file);
            return Err(StoreError::Other(format!(
                "{}: its PINs are sealed with a key that is not at {} (a new key was made there; restore the old one)",
                path.display(),
                key_file.display()
            )));
        }
        secret::seal_existing(&mut conn, &sealer)?;
        // From here on a commit does not sync; its writer syncs the WAL after
        // letting go of the lock, before returning (`durable`): as durable
        // as synchronous=FULL, one fsync shared by what committed meanwhile.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // Checkpoints are the checkpoint thread's, not a commit's (`checkpoint`).
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        // A WAL that starts again is written over, not cut (`checkpoint`).
        conn.pragma_update(None, "journal_size_limit", checkpoint::WAL_KEEP_BYTES)?;
        let checkpointer = checkpoint::Checkpointer::start(path)?;
        checkpointer.watch(&conn);
        let mut store = Self::finish(conn, sealer);
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        let wal = std::path::PathBuf::from(wal);
        store.checkpointer = Some(checkpointer);
        store.durable = durable::Durable::new(Some(wal));
        let reader = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        reader.pragma_update(None, "cache_size", -1024)?;
        reader.busy_timeout(BUSY_TIMEOUT)?;
        reader.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        store.reader = Some(Mutex::new(reader));
        store.audit_anchor = Some(audit::anchor_file(path));
        Ok(store)
    }

    pub fn open_in_memory() -> Result<Store> {
        let mut conn = Connection::open_in_memory()?;
        Self::prepare(&mut conn)?;
        Ok(Self::finish(conn, Sealer::ephemeral()))
    }

    fn finish(conn: Connection, sealer: Sealer) -> Store {
        Store {
            conn: Mutex::new(conn),
            reader: None,
            urgent: std::sync::atomic::AtomicUsize::new(0),
            urgent_gate: Mutex::new(()),
            urgent_gone: std::sync::Condvar::new(),
            outbox_changed: Notify::new(),
            sealer,
            writing: Default::default(),
            recent_events: Default::default(),
            workspace_id: Mutex::new(crate::settings::HubSettings::default().workspace_id.into()),
            locks: Default::default(),
            ahead: Default::default(),
            audit_anchor: None,
            anchored: std::sync::atomic::AtomicI64::new(0),
            commits: std::sync::atomic::AtomicU64::new(1),
            removal_commits: std::sync::atomic::AtomicU64::new(0),
            anchored_at_commit: std::sync::atomic::AtomicU64::new(0),
            durable: durable::Durable::new(None),
            checkpointer: None,
        }
    }

    fn prepare(conn: &mut Connection) -> Result<()> {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // Savepoint journals (one per command in a group commit) stay in memory.
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        // Enough page cache that a busy hub re-reads little from the OS (grows only as used).
        conn.pragma_update(None, "cache_size", -4096)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        // Every statement lockhub runs stays prepared: rusqlite's default of
        // 16 is fewer than one command and its fan-out use, and each miss
        // parsed its SQL again (a tenth of the daemon's CPU under load).
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        migrations::migrate(conn)?;
        Ok(())
    }

    /// Stamp events with this workspace from now on (commands and the engine
    /// set it from their settings when they are built).
    pub fn set_workspace_id(&self, workspace_id: &str) {
        *self.workspace_id.lock().unwrap_or_else(|e| e.into_inner()) = workspace_id.into();
    }

    fn workspace(&self) -> std::sync::Arc<str> {
        self.workspace_id
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn read_conn(&self) -> MutexGuard<'_, Connection> {
        match &self.reader {
            Some(r) => r.lock().unwrap_or_else(|e| e.into_inner()),
            None => self.conn(),
        }
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (the
        // transaction rolls back on drop), so a poisoned lock is safe to reuse.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Like [`Store::write`], ahead of any background write waiting for the
    /// database: for commands, whose sender is waiting for the answer.
    pub fn write_urgent<T, E>(
        &self,
        f: impl FnOnce(&Tx<'_>) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E>
    where
        E: From<StoreError>,
    {
        use std::sync::atomic::Ordering;
        self.urgent.fetch_add(1, Ordering::SeqCst);
        struct Done<'a>(&'a Store);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                if self.0.urgent.fetch_sub(1, Ordering::SeqCst) == 1 {
                    // Wake the background writers that stepped aside.
                    let _gate = self.0.urgent_gate.lock().unwrap_or_else(|e| e.into_inner());
                    self.0.urgent_gone.notify_all();
                }
            }
        }
        let _done = Done(self);
        self.write_now(f, true)
    }

    /// A command is waiting for the writer (long background transactions
    /// commit what they have and let it go first).
    pub fn urgent_waiting(&self) -> bool {
        self.urgent.load(std::sync::atomic::Ordering::SeqCst) > 0
    }

    /// Run `f` in one transaction; commit if it returns `Ok`, else roll back.
    /// Steps aside while an urgent write is waiting (never for long: commands
    /// are short).
    pub fn write<T, E>(
        &self,
        f: impl FnOnce(&Tx<'_>) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E>
    where
        E: From<StoreError>,
    {
        if self.urgent_waiting() {
            // Asleep until the last urgent write is done (at most 100 ms):
            // polling for it cost a tenth of the daemon's CPU under load.
            let deadline = std::time::Instant::now() + std::time::Duration::from_millis(100);
            let mut gate = self.urgent_gate.lock().unwrap_or_else(|e| e.into_inner());
            while self.urgent_waiting() {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    break;
                }
                gate = self
                    .urgent_gone
                    .wait_timeout(gate, left)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        }
        self.write_now(f, false)
    }

    /// `urgent`: a command's write, which leaves emptying the WAL to a
    /// background one ([`checkpoint::Checkpointer::committed`]).
    fn write_now<T, E>(
        &self,
        f: impl FnOnce(&Tx<'_>) -> std::result::Result<T, E>,
        urgent: bool,
    ) -> std::result::Result<T, E>
    where
        E: From<StoreError>,
    {
        let _writing = self.writing.guard();
        let mut conn = self.conn();
        let (out, wrote, seq, full) = {
            let tx = conn.transaction().map_err(StoreError::from)?;
            // No other commit can come while this connection is held.
            let snapshot = self.locks.lock().seq();
            let wrapped = self.wrap(tx, snapshot);
            let out = f(&wrapped)?;
            let wrote = wrapped.wrote_outbox.get();
            let overlay = wrapped.overlay.take();
            let seq = {
                // Held across the commit: a reader's snapshot and the entries
                // it may use always agree (see `locks`).
                let mut cache = self.locks.lock();
                if let Err(e) = wrapped.tx.commit() {
                    cache.uncertain(overlay.into_keys());
                    return Err(StoreError::from(e).into());
                }
                cache.committed(overlay);
                self.durable.wrote(cache.seq());
                cache.seq()
            };
            let commits = self
                .commits
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let full = self
                .checkpointer
                .as_ref()
                .is_some_and(|c| c.committed(commits, urgent));
            self.recent_events.extend(wrapped.new_events.take());
            (out, wrote, seq, full)
        };
        if full {
            // A WAL the checkpoint thread cannot keep up with (`checkpoint`):
            // emptied while no read is under way on the reader (if one is,
            // the next look tries again), so only the checkpoint thread or a
            // backup's connection can hold it in the WAL (`checkpoint::empty`).
            if let Some(reading) = self.reader.as_ref().and_then(|r| r.try_lock().ok()) {
                checkpoint::empty(&conn);
                drop(reading);
            }
        }
        drop(conn);
        // Durable before anyone hears of it; the next transaction meanwhile
        // runs, and may share this fsync.
        self.durable.wait(seq).map_err(StoreError::Sync)?;
        if wrote {
            self.outbox_changed.notify_waiters();
            self.outbox_changed.notify_one();
        }
        Ok(out)
    }

    /// Read-only work, on the reader connection: one consistent snapshot that
    /// does not wait for the writer.
    pub fn read<T>(&self, f: impl FnOnce(&Tx<'_>) -> Result<T>) -> Result<T> {
        let mut conn = self.read_conn();
        let tx = conn.transaction()?;
        // Start the snapshot (SQLite takes it at the first read) while no
        // commit can land, and note which commit it includes.
        let snapshot = {
            let cache = self.locks.lock();
            tx.prepare_cached("SELECT 1 FROM clock_state LIMIT 1")?
                .query_row([], |_| Ok(()))
                .optional()?;
            cache.seq()
        };
        let wrapped = self.wrap(tx, snapshot);
        let out = f(&wrapped)?;
        wrapped.tx.commit()?;
        Ok(out)
    }

    fn wrap<'c>(&'c self, tx: rusqlite::Transaction<'c>, snapshot: u64) -> Tx<'c> {
        Tx {
            tx,
            wrote_outbox: std::cell::Cell::new(false),
            sealer: &self.sealer,
            new_events: Default::default(),
            events_at_savepoint: Default::default(),
            workspace_id: self.workspace(),
            cache: &self.locks,
            ahead: &self.ahead,
            snapshot,
            overlay: Default::default(),
            since_savepoint: Default::default(),
        }
    }

    /// Drop the decoded codes of locks no one looked at for a while (once
    /// more are held than `locks::KEEP_CODES`) and, then or when the cache
    /// goes quiet, give freed memory back to the system (a hub at rest stays
    /// small). Returns how many locks' codes went.
    pub fn shed_idle(&self) -> usize {
        let shed = self.locks.shed_idle();
        if shed.dropped > 0 || shed.went_quiet {
            // SQLite's page caches too: re-read from the OS's cache if needed.
            let _ = self.conn().execute_batch("PRAGMA shrink_memory");
            if let Some(r) = &self.reader {
                let _ = r
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .execute_batch("PRAGMA shrink_memory");
            }
            locks::return_freed_memory();
        }
        shed.dropped
    }

    /// Whether the engine's shedder has to look again soon
    /// (`LockCache::unsettled`).
    pub fn cache_unsettled(&self) -> bool {
        self.locks.unsettled()
    }

    /// Locks whose decoded codes are held in memory, and how many codes.
    pub fn cached_locks(&self) -> (usize, usize) {
        self.locks.size()
    }

    /// Resolves when rows may have been added to the outbox.
    pub async fn outbox_changed(&self) {
        self.outbox_changed.notified().await
    }

    /// Rows after `after_id`, in id order: every lane.
    pub fn outbox_peek(&self, after_id: i64, limit: usize) -> Result<Vec<OutboxRow>> {
        self.outbox_query(
            "SELECT id, topic, payload, retain, reply_topic, correlation, plain FROM outbox WHERE id > ?1 ORDER BY id LIMIT ?2",
            after_id,
            limit,
        )
    }

    /// Rows of one lane (0: responses, 1: events and state) after `after_id`,
    /// in id order. Responses get their own lane so an answer never waits
    /// behind a burst of events; each lane keeps its own order.
    pub fn outbox_peek_lane(
        &self,
        lane: u8,
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<OutboxRow>> {
        let sql = if lane == 0 {
            "SELECT id, topic, payload, retain, reply_topic, correlation, plain FROM outbox WHERE lane = 0 AND id > ?1 ORDER BY id LIMIT ?2"
        } else {
            "SELECT id, topic, payload, retain, reply_topic, correlation, plain FROM outbox WHERE lane = 1 AND id > ?1 ORDER BY id LIMIT ?2"
        };
        self.outbox_query(sql, after_id, limit)
    }

    fn outbox_query(&self, sql: &str, after_id: i64, limit: usize) -> Result<Vec<OutboxRow>> {
        let conn = self.read_conn();
        let mut st = conn.prepare_cached(sql)?;
        let rows = st
            .query_map(params![after_id, limit as i64], |r| {
                let row = OutboxRow {
                    id: r.get(0)?,
                    topic: r.get(1)?,
                    payload: r.get(2)?,
                    retain: r.get(3)?,
                    reply_to: reply::from_row(r.get(4)?, r.get(5)?),
                };
                Ok((row, r.get::<_, bool>(6)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter()
            .map(|(mut r, plain)| {
                if !plain {
                    r.payload = self
                        .sealer
                        .open_blob("outbox.payload", std::mem::take(&mut r.payload))?;
                }
                Ok(r)
            })
            .collect()
    }

    /// The commits an outbox read just made can include (call right after
    /// it): its rows go out only once [`Store::outbox_durable`] of this says so.
    pub fn outbox_written(&self) -> u64 {
        // A commit a read could see has noted itself by the time the cache's
        // lock is free (the writer holds it from COMMIT to `wrote`).
        let _cache = self.locks.lock();
        self.durable.written()
    }

    /// Resolves once every commit up to `seq` is on disk (its writer is
    /// syncing it): nothing leaves for the broker before it is durable.
    pub async fn outbox_durable(&self, seq: u64) {
        self.durable.wait_async(seq).await
    }

    /// Write transactions committed so far.
    pub fn commits(&self) -> u64 {
        // The count starts at 1 (the anchor's first look then always writes).
        self.commits.load(std::sync::atomic::Ordering::Relaxed) - 1
    }

    /// Commits that deleted delivered outbox rows ([`Store::outbox_remove`]).
    pub fn removal_commits(&self) -> u64 {
        self.removal_commits
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// WAL fsyncs made so far (each may cover several commits).
    pub fn syncs(&self) -> u64 {
        self.durable
            .syncs
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Delete delivered rows. Not made durable on its own (no fsync, still
    /// safe from corruption; the next durable commit's fsync carries it): a
    /// delete lost to a power cut only sends a delivered row again, which
    /// QoS 1 allows.
    pub fn outbox_remove(&self, ids: &[i64]) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        {
            let mut st = tx.prepare_cached("DELETE FROM outbox WHERE id = ?1")?;
            for id in ids {
                st.execute([id])?;
            }
        }
        tx.commit()?;
        self.removal_commits
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    pub fn outbox_len(&self) -> Result<u64> {
        Ok(self
            .conn()
            .query_row("SELECT COUNT(*) FROM outbox", [], |r| r.get::<_, i64>(0))?
            as u64)
    }
}

/// One open transaction, with the queries lockhub needs.
pub struct Tx<'c> {
    tx: rusqlite::Transaction<'c>,
    wrote_outbox: std::cell::Cell<bool>,
    sealer: &'c Sealer,
    /// Events of this transaction, for [`Store::recent_events`] once it commits.
    new_events: std::cell::RefCell<Vec<serde_json::Value>>,
    events_at_savepoint: std::cell::Cell<usize>,
    workspace_id: std::sync::Arc<str>,
    cache: &'c locks::LockCache,
    ahead: &'c issued::Ahead,
    /// The last commit this transaction's snapshot includes.
    snapshot: u64,
    /// The locks this transaction changed, as they are now in it (`None`:
    /// unknown here, read from SQL; dropped from the cache at commit).
    overlay: std::cell::RefCell<std::collections::HashMap<String, Option<locks::LockRows>>>,
    /// Locks changed since the open savepoint.
    since_savepoint: std::cell::RefCell<std::collections::HashSet<String>>,
}

/// A devices row as read: body, online, battery, slots_known, last_error, presence_known.
type RawDevice = (String, bool, Option<u8>, bool, Option<String>, bool);

fn parse_ts(s: Option<String>) -> Option<DateTime<Utc>> {
    s.and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
        .map(|t| t.with_timezone(&Utc))
}

impl Tx<'_> {
    /// Open a nested savepoint (one command inside a group commit).
    pub fn savepoint(&self) -> Result<()> {
        self.tx.execute_batch("SAVEPOINT command")?;
        self.events_at_savepoint.set(self.new_events.borrow().len());
        self.since_savepoint.borrow_mut().clear();
        Ok(())
    }

    /// Keep what was written since `savepoint`.
    pub fn release(&self) -> Result<()> {
        self.tx.execute_batch("RELEASE command")?;
        self.since_savepoint.borrow_mut().clear();
        Ok(())
    }

    /// Undo what was written since `savepoint`, and close it.
    pub fn rollback_to(&self) -> Result<()> {
        self.tx
            .execute_batch("ROLLBACK TO command; RELEASE command")?;
        self.new_events
            .borrow_mut()
            .truncate(self.events_at_savepoint.get());
        // What those locks hold in this transaction is SQL's to say again.
        let mut overlay = self.overlay.borrow_mut();
        for id in self.since_savepoint.borrow_mut().drain() {
            overlay.insert(id, None);
        }
        Ok(())
    }

    // ---- each lock's codes and slots (through `locks`) ----

    /// A lock's rows from SQL: every stored code opened and decoded.
    fn rows_from_sql(&self, device_id: &str) -> Result<locks::LockRows> {
        Ok(locks::LockRows {
            codes: self
                .codes_where(
                    "device_id = ?1 AND NOT (deleted = 1 AND slot = 0)",
                    &device_id,
                )?
                .into_iter()
                .map(std::sync::Arc::new)
                .collect(),
            observed: self.observed_from_sql(device_id)?,
        })
    }

    /// Look at a lock's codes and slots as this transaction sees them,
    /// without copying them.
    pub fn lock_view<T>(
        &self,
        device_id: &str,
        f: impl FnOnce(&[std::sync::Arc<AccessCode>], &[SlotCode]) -> T,
    ) -> Result<T> {
        let f = |r: &locks::LockRows| f(&r.codes, &r.observed);
        if let Some(own) = self.overlay.borrow().get(device_id) {
            return match own {
                Some(rows) => Ok(f(rows)),
                None => Ok(f(&self.rows_from_sql(device_id)?)),
            };
        }
        let hit = self.cache.lock().get(device_id, self.snapshot);
        let rows = match hit {
            Some(rows) => rows,
            None => {
                let rows = std::sync::Arc::new(self.rows_from_sql(device_id)?);
                self.cache
                    .lock()
                    .fill(device_id, self.snapshot, rows.clone());
                rows
            }
        };
        Ok(f(&rows))
    }

    /// Apply a write just made in SQL to this transaction's copy of the
    /// lock's rows (`change` returns `false` when it cannot tell the result).
    fn changed_rows(&self, device_id: &str, change: impl FnOnce(&mut locks::LockRows) -> bool) {
        self.since_savepoint
            .borrow_mut()
            .insert(device_id.to_owned());
        let mut overlay = self.overlay.borrow_mut();
        if !overlay.contains_key(device_id) {
            // The committed rows (this transaction had not changed them), if
            // the cache has them (a copy of the list: the codes are shared);
            // else unknown until the commit.
            let base = self
                .cache
                .lock()
                .get(device_id, self.snapshot)
                .map(|r| (*r).clone());
            overlay.insert(device_id.to_owned(), base);
        }
        let own = overlay.get_mut(device_id).expect("inserted above");
        if let Some(rows) = own {
            if !change(rows) {
                *own = None;
            }
        }
    }

    // ---- devices ----

    /// Record a lock a driver announced; keeps its online state and battery.
    pub fn upsert_device(&self, info: &DeviceInfo) -> Result<()> {
        self.tx.execute(
            "INSERT INTO devices (device_id, body, created_at) VALUES (?1, ?2, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
             ON CONFLICT(device_id) DO UPDATE SET body = excluded.body",
            params![info.device_id, serde_json::to_string(info)?],
        )?;
        Ok(())
    }

    fn device_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawDevice> {
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
        ))
    }

    fn device_row(raw: RawDevice) -> Result<DeviceRow> {
        Ok(DeviceRow {
            info: serde_json::from_str(&raw.0)?,
            online: raw.1 && raw.5,
            presence_known: raw.5,
            battery_level: raw.2,
            slots_known: raw.3,
            last_error: raw.4,
        })
    }

    pub fn device(&self, device_id: &str) -> Result<Option<DeviceRow>> {
        let raw = self
            .tx
            .prepare_cached(
                "SELECT body, online, battery_level, slots_known, last_error, presence_known FROM devices WHERE device_id = ?1",
            )?
            .query_row([device_id], Self::device_from_row)
            .optional()?;
        raw.map(|r| self.with_reported(Self::device_row(r)?))
            .transpose()
    }

    pub fn devices(&self) -> Result<Vec<DeviceRow>> {
        let mut st = self.tx.prepare_cached(
            "SELECT body, online, battery_level, slots_known, last_error, presence_known FROM devices ORDER BY device_id",
        )?;
        let raws = st
            .query_map([], Self::device_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        raws.into_iter()
            .map(|r| self.with_reported(Self::device_row(r)?))
            .collect()
    }

    /// What a driver says about a lock's reachability. Returns whether that
    /// changed what was known (an unknown lock becoming known counts).
    pub fn set_device_online(&self, device_id: &str, online: bool) -> Result<bool> {
        let changed = self
            .tx
            .prepare_cached(
                "UPDATE devices SET online = ?2, presence_known = 1,
               offline_since = CASE WHEN ?2 THEN NULL ELSE strftime('%Y-%m-%dT%H:%M:%fZ', 'now') END
             WHERE device_id = ?1 AND (online != ?2 OR presence_known = 0)",
            )?
            .execute(params![device_id, online])?;
        Ok(changed > 0)
    }

    pub fn set_device_battery(&self, device_id: &str, level: u8) -> Result<()> {
        self.tx
            .prepare_cached("UPDATE devices SET battery_level = ?2 WHERE device_id = ?1")?
            .execute(params![device_id, level])?;
        Ok(())
    }

    /// Record a lock's last error; writes nothing when it is the one already held.
    pub fn set_device_error(&self, device_id: &str, error: Option<&str>) -> Result<()> {
        self.tx
            .prepare_cached(
                "UPDATE devices SET last_error = ?2 WHERE device_id = ?1 AND last_error IS NOT ?2",
            )?
            .execute(params![device_id, error])?;
        Ok(())
    }

    pub fn set_slots_known(&self, device_id: &str, known: bool) -> Result<()> {
        self.tx
            .prepare_cached("UPDATE devices SET slots_known = ?2 WHERE device_id = ?1")?
            .execute(params![device_id, known])?;
        Ok(())
    }

    /// Forget, on every lock, that its slots were read (done at start-up: what a
    /// lock holds may have changed while lockhub was away).
    pub fn forget_all_slots_known(&self) -> Result<()> {
        self.tx.execute("UPDATE devices SET slots_known = 0", [])?;
        Ok(())
    }

    // ---- access codes ----

    pub fn insert_code(&self, c: &AccessCode) -> Result<()> {
        self.tx
            .prepare_cached(
                "INSERT INTO access_codes (access_code_id, device_id, common_code_key, slot, deleted, ends_at, body)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                c.access_code_id,
                c.device_id,
                c.common_code_key,
                c.slot,
                c.deleted,
                c.window.map(|w| w.ends_at.timestamp()),
                self.sealer
                    .seal_text("access_codes.body", &serde_json::to_string(c)?)
            ])?;
        self.changed_rows(&c.device_id, |r| {
            r.insert(c);
            true
        });
        Ok(())
    }

    pub fn save_code(&self, c: &AccessCode) -> Result<()> {
        let body = self
            .sealer
            .seal_text("access_codes.body", &serde_json::to_string(c)?);
        let ends_at = c.window.map(|w| w.ends_at.timestamp());
        // Most saves change only the body (a status, an error): an UPDATE that
        // names an indexed column rewrites that index's entry even when its
        // value is the same, so the slot and key indexes are left out when
        // they are known unchanged. The WHERE checks that (0 rows: the full
        // UPDATE), so a stale copy costs a statement, never a wrong row.
        let unchanged = self
            .known_row(&c.device_id, &c.access_code_id)
            .is_some_and(|(slot, key)| slot == c.slot && key == c.common_code_key);
        if unchanged {
            let n = self
                .tx
                .prepare_cached(
                    "UPDATE access_codes SET deleted = ?2, ends_at = ?3, body = ?4
                     WHERE access_code_id = ?1 AND slot = ?5 AND common_code_key IS ?6",
                )?
                .execute(params![
                    c.access_code_id,
                    c.deleted,
                    ends_at,
                    body,
                    c.slot,
                    c.common_code_key
                ])?;
            if n == 1 {
                self.changed_rows(&c.device_id, |r| r.save(c));
                return Ok(());
            }
        }
        self.tx
            .prepare_cached(
                "UPDATE access_codes SET common_code_key = ?2, slot = ?3, deleted = ?4, ends_at = ?5, body = ?6
                 WHERE access_code_id = ?1",
            )?
            .execute(params![
                c.access_code_id,
                c.common_code_key,
                c.slot,
                c.deleted,
                ends_at,
                body
            ])?;
        self.changed_rows(&c.device_id, |r| r.save(c));
        Ok(())
    }

    /// A code's slot and key as this transaction sees them, from its own
    /// changes or the decoded copy (`store::locks`); `None` when neither
    /// holds the lock's rows or the code (retained only).
    fn known_row(&self, device_id: &str, access_code_id: &str) -> Option<(u32, Option<String>)> {
        let find = |rows: &locks::LockRows| {
            rows.codes
                .iter()
                .find(|x| x.access_code_id == access_code_id)
                .map(|x| (x.slot, x.common_code_key.clone()))
        };
        if let Some(own) = self.overlay.borrow().get(device_id) {
            return own.as_ref().and_then(find);
        }
        self.cache
            .lock()
            .get(device_id, self.snapshot)
            .and_then(|rows| find(&rows))
    }

    pub fn delete_code(&self, access_code_id: &str) -> Result<()> {
        let device: Option<String> = self
            .tx
            .prepare_cached("SELECT device_id FROM access_codes WHERE access_code_id = ?1")?
            .query_row([access_code_id], |r| r.get(0))
            .optional()?;
        self.tx
            .prepare_cached("DELETE FROM access_codes WHERE access_code_id = ?1")?
            .execute([access_code_id])?;
        self.forget_code_uses(access_code_id)?;
        if let Some(device) = device {
            self.changed_rows(&device, |r| {
                r.delete(access_code_id);
                true
            });
        }
        Ok(())
    }

    fn codes_where(&self, clause: &str, arg: &dyn rusqlite::ToSql) -> Result<Vec<AccessCode>> {
        let sql = format!("SELECT body FROM access_codes WHERE {clause} ORDER BY rowid");
        let mut st = self.tx.prepare_cached(&sql)?;
        let bodies = st
            .query_map([arg], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        bodies
            .into_iter()
            .map(|b| {
                let b = self.sealer.open_text("access_codes.body", b)?;
                Ok(serde_json::from_str(&b)?)
            })
            .collect()
    }

    pub fn code(&self, access_code_id: &str) -> Result<Option<AccessCode>> {
        Ok(self
            .codes_where("access_code_id = ?1", &access_code_id)?
            .pop())
    }

    pub fn codes_by_key(&self, common_code_key: &str) -> Result<Vec<AccessCode>> {
        self.codes_where("common_code_key = ?1", &common_code_key)
    }

    /// A lock's codes, leaving out deleted ones already off the lock (kept
    /// only for retention: see `lifetime`).
    pub fn codes_for_device(&self, device_id: &str) -> Result<Vec<AccessCode>> {
        self.lock_view(device_id, |codes, _| {
            codes.iter().map(|c| AccessCode::clone(c)).collect()
        })
    }

    /// [`Tx::codes_for_device`] without copying the codes: shared with the
    /// store's decoded copy (`store::locks`); a caller that changes one
    /// copies it then (`Arc::make_mut`).
    pub fn shared_codes_for_device(
        &self,
        device_id: &str,
    ) -> Result<Vec<std::sync::Arc<AccessCode>>> {
        self.lock_view(device_id, |codes, _| codes.to_vec())
    }

    /// Every code but deleted ones already off their lock (kept only for retention).
    pub fn all_codes(&self) -> Result<Vec<AccessCode>> {
        self.codes_where("NOT (deleted = 1 AND slot = ?1)", &0)
    }

    /// Slots taken on a lock by lockhub's codes (live or being removed).
    pub fn reserved_slots(&self, device_id: &str) -> Result<Vec<u32>> {
        let mut st = self
            .tx
            .prepare_cached("SELECT slot FROM access_codes WHERE device_id = ?1")?;
        let v = st
            .query_map([device_id], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<u32>>>()?;
        Ok(v)
    }

    /// Every PIN on a lock or promised to it: reported by the lock (managed or
    /// not) and lockhub's live codes for it, leaving out one code's own.
    pub fn pins_on_lock(&self, device_id: &str, except_code: Option<&str>) -> Result<Vec<Pin>> {
        let own_slot = |codes: &[std::sync::Arc<AccessCode>]| -> Option<Option<u32>> {
            match except_code {
                None => Some(None),
                Some(e) => codes
                    .iter()
                    .find(|c| c.access_code_id == e)
                    .map(|c| Some(c.slot)),
            }
        };
        let (pins, known_slot) = self.lock_view(device_id, |codes, observed| {
            let pins: Vec<Pin> = codes
                .iter()
                .filter(|c| !c.deleted && Some(c.access_code_id.as_str()) != except_code)
                .map(|c| c.code.clone())
                .collect();
            let slot = own_slot(codes);
            let slots: Vec<Pin> = match slot {
                Some(own) => observed
                    .iter()
                    .filter(|s| Some(s.slot) != own)
                    .map(|s| s.code.clone())
                    .collect(),
                None => Vec::new(),
            };
            ((pins, slots), slot.is_some())
        })?;
        let (mut pins, mut slots) = pins;
        if !known_slot {
            // The code left out is not one of this lock's (or is kept only
            // for retention): its slot from its row.
            let own: Option<u32> = self
                .tx
                .prepare_cached("SELECT slot FROM access_codes WHERE access_code_id = ?1")?
                .query_row([except_code], |r| r.get(0))
                .optional()?;
            slots = self.lock_view(device_id, |_, observed| {
                observed
                    .iter()
                    .filter(|s| Some(s.slot) != own)
                    .map(|s| s.code.clone())
                    .collect()
            })?;
        }
        pins.append(&mut slots);
        Ok(pins)
    }

    pub fn count_codes(&self) -> Result<u64> {
        Ok(self
            .tx
            .query_row("SELECT COUNT(*) FROM access_codes", [], |r| {
                r.get::<_, i64>(0)
            })? as u64)
    }

    // ---- what is on each lock, as far as lockhub knows ----

    fn slot_from_row(&self, r: &rusqlite::Row<'_>) -> rusqlite::Result<SlotCode> {
        let (s, e): (Option<String>, Option<String>) = (r.get(3)?, r.get(4)?);
        let code = self
            .sealer
            .open_text("slots.code", r.get::<_, String>(1)?)
            .map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(
                    1,
                    rusqlite::types::Type::Text,
                    Box::new(e),
                )
            })?;
        Ok(SlotCode {
            slot: r.get(0)?,
            code: Pin::new(code),
            name: r.get(2)?,
            window: match (parse_ts(s), parse_ts(e)) {
                (Some(starts_at), Some(ends_at)) => Some(TimeWindow { starts_at, ends_at }),
                _ => None,
            },
            recurring: r
                .get::<_, Option<String>>(5)?
                .and_then(|w| serde_json::from_str(&w).ok()),
        })
    }

    /// What lockhub knows to be on a lock, slot by slot.
    pub fn observed(&self, device_id: &str) -> Result<Vec<SlotCode>> {
        self.lock_view(device_id, |_, observed| observed.to_vec())
    }

    fn observed_from_sql(&self, device_id: &str) -> Result<Vec<SlotCode>> {
        let mut st = self.tx.prepare_cached(
            "SELECT slot, code, name, starts_at, ends_at, weekly FROM slots WHERE device_id = ?1 ORDER BY slot",
        )?;
        let v = st
            .query_map([device_id], |r| self.slot_from_row(r))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(v)
    }

    /// What lockhub knows to be in one slot.
    pub fn observed_slot(&self, device_id: &str, slot: u32) -> Result<Option<SlotCode>> {
        self.lock_view(device_id, |_, observed| {
            observed
                .binary_search_by_key(&slot, |s| s.slot)
                .ok()
                .map(|i| observed[i].clone())
        })
    }

    /// Record what one slot now holds (`None`: empty).
    pub fn set_observed(
        &self,
        device_id: &str,
        slot: u32,
        content: Option<&SlotCode>,
    ) -> Result<()> {
        match content {
            None => {
                self.tx
                    .prepare_cached("DELETE FROM slots WHERE device_id = ?1 AND slot = ?2")?
                    .execute(params![device_id, slot])?;
            }
            Some(c) => {
                self.tx
                    .prepare_cached(
                        "INSERT OR REPLACE INTO slots (device_id, slot, code, name, starts_at, ends_at, weekly)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    )?
                    .execute(params![
                        device_id,
                        slot,
                        self.sealer.seal_text("slots.code", c.code.expose()),
                        c.name,
                        c.window.map(|w| w.starts_at.to_rfc3339()),
                        c.window.map(|w| w.ends_at.to_rfc3339()),
                        c.recurring.map(|w| serde_json::to_string(&w).expect("plain struct")),
                    ])?;
            }
        }
        self.changed_rows(device_id, |r| {
            r.set_observed(slot, content);
            true
        });
        Ok(())
    }

    // ---- idempotency ----

    pub fn response(&self, request_id: &str) -> Result<Option<String>> {
        self.tx
            .prepare_cached("SELECT response FROM requests WHERE request_id = ?1")?
            .query_row([request_id], |r| r.get(0))
            .optional()?
            .map(|v| self.sealer.open_text("requests.response", v))
            .transpose()
    }

    /// Store the answer to `request_id`, bound to the fingerprint of the body
    /// it answers (`None`: none known). In one statement: the row holds the
    /// sealed answer over overflow pages, and each write of it rewrites them all.
    pub fn save_response(
        &self,
        request_id: &str,
        command: &str,
        response: &str,
        fingerprint: Option<&[u8]>,
        at: DateTime<Utc>,
    ) -> Result<()> {
        self.tx
            .prepare_cached(
                "INSERT OR REPLACE INTO requests (request_id, command, response, created_at, fingerprint) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                request_id,
                command,
                self.sealer.seal_text("requests.response", response),
                at.to_rfc3339(),
                fingerprint
            ])?;
        Ok(())
    }

    /// Forget request ids older than `before` (their replays are no longer expected).
    pub fn prune_requests(&self, before: DateTime<Utc>) -> Result<usize> {
        Ok(self.tx.execute(
            "DELETE FROM requests WHERE created_at < ?1",
            [before.to_rfc3339()],
        )?)
    }

    // ---- outbox ----

    /// Queue a message for the broker. A retained message supersedes any
    /// undelivered one on the same topic (only the last state matters). The
    /// payload is sealed at rest: it may hold a PIN.
    pub fn publish(&self, topic: &str, payload: &[u8], retain: bool) -> Result<()> {
        self.enqueue(topic, payload, retain, true)
    }

    /// Queue a lock's retained `devices/{id}` state, unless it is the very body
    /// last queued for it (compared by SHA-256 kept in `devices.state_digest`): a
    /// fan-out that changes nothing about a lock queued the same state again for
    /// every command. A reconnect republishes every state regardless (hub.rs).
    /// A device object holds no PIN, so it is stored plain.
    pub fn publish_device_state(&self, device_id: &str, body: &[u8]) -> Result<()> {
        use sha2::{Digest, Sha256};
        let digest: [u8; 32] = Sha256::digest(body).into();
        let changed = self
            .tx
            .prepare_cached(
                "UPDATE devices SET state_digest = ?2 WHERE device_id = ?1 AND state_digest IS NOT ?2",
            )?
            .execute(params![device_id, &digest[..]])?;
        if changed > 0 {
            self.publish_public(&format!("devices/{device_id}"), body, true)?;
        }
        Ok(())
    }

    /// [`Tx::publish`] for a payload that can hold no PIN (an event, a device
    /// state, a code state with its PIN masked): stored as it is (`plain`),
    /// neither sealed nor opened again to publish.
    pub fn publish_public(&self, topic: &str, payload: &[u8], retain: bool) -> Result<()> {
        self.enqueue(topic, payload, retain, false)
    }

    fn enqueue(&self, topic: &str, payload: &[u8], retain: bool, seal: bool) -> Result<()> {
        if retain {
            self.tx
                .prepare_cached("DELETE FROM outbox WHERE retain = 1 AND topic = ?1")?
                .execute([topic])?;
        }
        let lane = if topic.starts_with("responses/") {
            0
        } else {
            1
        };
        let stored = if seal {
            std::borrow::Cow::Owned(self.sealer.seal_blob("outbox.payload", payload))
        } else {
            std::borrow::Cow::Borrowed(payload)
        };
        self.tx
            .prepare_cached(
                "INSERT INTO outbox (topic, payload, retain, lane, plain) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![topic, stored.as_ref(), retain, lane, !seal])?;
        self.wrote_outbox.set(true);
        Ok(())
    }

    pub fn event(&self, e: &Event) -> Result<()> {
        let id = uuid::Uuid::new_v4().to_string();
        let json = e.to_json(&id, &self.workspace_id);
        let body = serde_json::to_vec(&json)?;
        // An event names codes and locks, never a PIN.
        self.publish_public("events", &body, false)?;
        self.new_events.borrow_mut().push(json);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retained_state_supersedes_undelivered_state() {
        let s = Store::open_in_memory().unwrap();
        s.write(|tx| {
            tx.publish("access_codes/a", b"1", true)?;
            tx.publish("events", b"e", false)?;
            tx.publish("access_codes/a", b"2", true)?;
            Ok::<_, StoreError>(())
        })
        .unwrap();
        let rows = s.outbox_peek(0, 10).unwrap();
        let got: Vec<_> = rows
            .iter()
            .map(|r| (r.topic.as_str(), r.payload.as_slice()))
            .collect();
        assert_eq!(
            got,
            vec![("events", &b"e"[..]), ("access_codes/a", &b"2"[..])]
        );
    }

    #[test]
    fn only_payloads_that_may_hold_a_pin_are_sealed_and_a_reopen_leaves_public_ones_plain() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let raw = |s: &Store| -> Vec<(Vec<u8>, bool)> {
            let conn = s.conn();
            let mut st = conn
                .prepare("SELECT payload, plain FROM outbox ORDER BY id")
                .unwrap();
            let v = st
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            v
        };
        {
            let s = Store::open(&path).unwrap();
            s.write(|tx| {
                tx.publish("responses/r", br#"{"code":"1234"}"#, false)?;
                tx.publish_public("events", br#"{"event_type":"x"}"#, false)
            })
            .unwrap();
            let rows = raw(&s);
            assert!(rows[0].0.starts_with(b"LHS1") && !rows[0].1, "sealed");
            assert_eq!(rows[1], (br#"{"event_type":"x"}"#.to_vec(), true));
        }
        // At open, plaintext from before sealing is sealed (and the file
        // vacuumed): a public row is not that.
        let s = Store::open(&path).unwrap();
        let rows = raw(&s);
        assert!(rows[0].0.starts_with(b"LHS1"));
        assert_eq!(rows[1], (br#"{"event_type":"x"}"#.to_vec(), true));
        let got: Vec<Vec<u8>> = s
            .outbox_peek(0, 10)
            .unwrap()
            .into_iter()
            .map(|r| r.payload)
            .collect();
        assert_eq!(
            got,
            [
                br#"{"code":"1234"}"#.to_vec(),
                br#"{"event_type":"x"}"#.to_vec()
            ]
        );
    }

    #[test]
    fn failed_closure_rolls_back() {
        let s = Store::open_in_memory().unwrap();
        let r: std::result::Result<(), StoreError> = s.write(|tx| {
            tx.publish("events", b"e", false)?;
            Err(StoreError::TooNew { found: 0, known: 0 })
        });
        assert!(r.is_err());
        assert!(s.outbox_peek(0, 10).unwrap().is_empty());
    }
}
