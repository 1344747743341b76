//! WAL checkpoints off the commit path. SQLite's own (every 1000 WAL pages,
//! inside the COMMIT that crosses it) ran with the writer's lock held: it
//! syncs the WAL, copies every page into the database and syncs that, and
//! the command committing then waited for all of it. Here the writer knows
//! the WAL's length after each commit (SQLite's `sqlite3_wal_hook`, which
//! `wal_autocheckpoint=0` leaves free) and every [`LOOK_EVERY`] commits,
//! past [`WAL_BYTES`] (SQLite's 1000 pages), nudges a thread of the store's;
//! the thread runs a PASSIVE checkpoint on a connection of its own, which
//! neither waits for nor blocks the writer or the reader. SQLite then
//! restarts the WAL from its start at the next write. At the last
//! connection's close SQLite checkpoints what is left, as before.
//!
//! A PASSIVE checkpoint never catches up with a writer that keeps
//! committing, and the WAL starts again only once every frame is in the
//! database and no reader is still reading it: under a steady stream of
//! commands it grew without end (196-559 MiB in `mqtt_bench`). Past
//! [`WAL_HARD_BYTES`] the writer asks the thread for one more run and, at
//! its first commit after that run that is not a command's, still holding
//! its connection and the reader's (taken only if free: `Store::write_now`),
//! runs a RESTART checkpoint ([`empty`]): it copies the little the run could
//! not (what was committed meanwhile) and makes the next write start the
//! WAL from its beginning, waiting for no reader. A thread cannot do that
//! for the writer: between two commits the lock is free for microseconds,
//! and a busy handler that sleeps between tries never gets it; nor can it be
//! done without holding the reader, which is in the WAL most of the time
//! under load.
//!
//! The file is written over from its start, not cut: a TRUNCATE checkpoint
//! (with `journal_size_limit=0`) spent 5-10 ms in ftruncate holding the
//! writer (ext4 frees, here discards, 16 MiB of blocks), and every command
//! waiting for the writer waited for it too: that was the p99 of
//! `mqtt_bench`'s commands. `journal_size_limit` is [`WAL_KEEP_BYTES`]: a
//! WAL that grew past it (a long read, a thread that fell behind) is cut
//! back to it when it starts again.

use rusqlite::{ffi, Connection};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;

/// A frame of the WAL: a 4 KiB page and its header.
const FRAME_BYTES: u64 = 4096 + 24;

/// The WAL's length that calls for a checkpoint: SQLite's default of 1000
/// pages.
pub const WAL_BYTES: u64 = 1000 * FRAME_BYTES;

/// The WAL's length past which the writer empties it (after one more run
/// of the thread; at once past twice this).
pub const WAL_HARD_BYTES: u64 = 2 * WAL_BYTES;

/// The writer's `journal_size_limit`: the WAL file is kept up to this size
/// when it starts again (written over, not cut and grown again).
pub const WAL_KEEP_BYTES: u64 = 2 * WAL_HARD_BYTES;

/// Commits between two looks at the WAL's length: a command with its
/// fan-out writes a few dozen pages.
pub const LOOK_EVERY: u64 = 8;

/// The writer's end: nudges the checkpoint thread, which ends (closing its
/// connection, the store's last: SQLite then checkpoints what is left and
/// removes the WAL) when this is dropped.
pub struct Checkpointer {
    nudge: Option<SyncSender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// The WAL's frames after the writer's last commit ([`Checkpointer::watch`]).
    frames: Arc<AtomicU64>,
    /// Past this length the writer empties the WAL ([`empty`]).
    hard: u64,
    /// The thread's runs, asked for and done.
    runs: Arc<Runs>,
    /// The run the writer waits for before it empties a WAL past `hard`
    /// (0: none).
    empty_after: AtomicU64,
}

/// The checkpoint thread's runs, numbered by the writer: a run copies every
/// frame committed before it began (as far as no read holds it back).
#[derive(Default)]
struct Runs {
    /// The last number asked for.
    asked: AtomicU64,
    /// The number last asked for when the last finished run began.
    done: AtomicU64,
}

impl Runs {
    /// One PASSIVE checkpoint on `conn`, done as of the number asked for
    /// when it began.
    fn run(&self, conn: &Connection) {
        let asked = self.asked.load(SeqCst);
        run(conn, "PASSIVE");
        self.done.store(asked, SeqCst);
    }
}

/// `sqlite3_wal_hook`'s callback on the writer: the WAL's length in frames
/// after a commit.
unsafe extern "C" fn on_commit(
    frames: *mut std::ffi::c_void,
    _db: *mut ffi::sqlite3,
    _schema: *const std::ffi::c_char,
    n: std::ffi::c_int,
) -> std::ffi::c_int {
    // SAFETY: `frames` is the AtomicU64 `Checkpointer::watch` leaked for
    // this hook: it lives as long as the process.
    unsafe { (*(frames as *const AtomicU64)).store(n.max(0) as u64, SeqCst) };
    ffi::SQLITE_OK
}

impl Checkpointer {
    /// Start the thread, with its own connection to the database at `path`.
    pub fn start(path: &Path) -> super::Result<Checkpointer> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(super::BUSY_TIMEOUT)?;
        // The checkpoint syncs the WAL before copying and the database
        // after (as SQLite's own did for the writer's connection).
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        let (nudge, wake) = sync_channel::<()>(1);
        let runs = Arc::new(Runs::default());
        let thread_runs = runs.clone();
        let thread = std::thread::Builder::new()
            .name("lockhub-checkpoint".into())
            .spawn(move || {
                while wake.recv().is_ok() {
                    thread_runs.run(&conn);
                }
            })
            .map_err(|e| {
                super::StoreError::Other(format!("cannot start the checkpoint thread: {e}"))
            })?;
        Ok(Checkpointer {
            nudge: Some(nudge),
            thread: Some(thread),
            frames: Arc::default(),
            hard: WAL_HARD_BYTES,
            runs,
            empty_after: AtomicU64::new(0),
        })
    }

    /// Follow the WAL's length through `writer`'s commits. After its
    /// `wal_autocheckpoint` pragma, which sets the same hook.
    pub fn watch(&self, writer: &Connection) {
        // One counter per store opened, never freed: the hook may run as long
        // as the connection is open, whatever the order things are dropped in.
        let frames = Arc::into_raw(self.frames.clone()) as *mut std::ffi::c_void;
        // SAFETY: the handle is the open connection's; the callback only
        // stores into the counter, which is never freed.
        unsafe {
            ffi::sqlite3_wal_hook(writer.handle(), Some(on_commit), frames);
        }
    }

    /// Called after commit number `commits`: every [`LOOK_EVERY`] commits,
    /// a checkpoint if the WAL holds more than [`WAL_BYTES`] (one already
    /// asked for and not yet begun covers this one too). True when the
    /// writer must [`empty`] the WAL before it lets go of its connection:
    /// past the hard length, once the run asked for then is done and the
    /// commit is not `urgent` (a command's: its sender waits; under load a
    /// background write comes within milliseconds); past twice the hard
    /// length (the thread stuck, nothing but commands) at once.
    #[must_use]
    pub fn committed(&self, commits: u64, urgent: bool) -> bool {
        let Some(nudge) = &self.nudge else {
            return false;
        };
        let after = self.empty_after.load(SeqCst);
        if after != 0 && !urgent && self.runs.done.load(SeqCst) >= after {
            self.empty_after.store(0, SeqCst);
            return true;
        }
        if commits % LOOK_EVERY != 0 {
            return false;
        }
        let length = self.frames.load(SeqCst) * FRAME_BYTES;
        if length > 2 * self.hard {
            self.empty_after.store(0, SeqCst);
            return true;
        }
        if length > self.hard {
            if after == 0 {
                let run = self.runs.asked.fetch_add(1, SeqCst) + 1;
                self.empty_after.store(run, SeqCst);
                Self::ask(nudge);
            }
            return false;
        }
        if length > WAL_BYTES {
            Self::ask(nudge);
        }
        false
    }

    /// Ask the thread for a run (one asked for and not yet begun covers it).
    fn ask(nudge: &SyncSender<()>) {
        match nudge.try_send(()) {
            Ok(()) | Err(TrySendError::Full(())) => {}
            Err(TrySendError::Disconnected(())) => {
                tracing::warn!("the WAL checkpoint thread is gone; SQLite checkpoints at close")
            }
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.nudge.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Empty the WAL on the writer's connection (no commit can come meanwhile,
/// and the caller holds the reader): a RESTART checkpoint, after which the
/// next commit writes the WAL from its start. It waits at most
/// [`EMPTY_WAIT`] for what else may hold the WAL (the checkpoint thread in
/// the middle of its copy, a backup): the writer must not stall on them; the
/// copy is done anyway and the next look tries again.
pub fn empty(writer: &Connection) {
    let _ = writer.busy_timeout(EMPTY_WAIT);
    run(writer, "RESTART");
    let _ = writer.busy_timeout(super::BUSY_TIMEOUT);
}

/// Longest the writer waits for the WAL it empties.
const EMPTY_WAIT: std::time::Duration = std::time::Duration::from_millis(20);

/// One checkpoint of `mode` (PASSIVE or RESTART).
fn run(conn: &Connection, mode: &str) {
    let r = conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
        ))
    });
    match r {
        Ok((busy, frames, copied)) => {
            tracing::trace!(mode, busy, frames, copied, "WAL checkpoint")
        }
        // A full disk or a lock held elsewhere: the WAL grows meanwhile and
        // the next nudge tries again (the writer reports the store's faults).
        Err(e) => tracing::debug!(mode, error = %e, "WAL checkpoint failed; trying again later"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database in `dir` whose writer is set up as the store's (no
    /// checkpoint of its own, the WAL kept at up to [`WAL_KEEP_BYTES`] when
    /// it starts again), with a table `t (x BLOB)`; with the database's and
    /// the WAL's paths.
    fn writer(dir: &Path) -> (Connection, std::path::PathBuf, std::path::PathBuf) {
        let path = dir.join("db");
        let w = Connection::open(&path).unwrap();
        w.pragma_update(None, "journal_mode", "WAL").unwrap();
        w.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        w.pragma_update(None, "journal_size_limit", WAL_KEEP_BYTES)
            .unwrap();
        w.execute_batch("CREATE TABLE t (x BLOB)").unwrap();
        (w, path, dir.join("db-wal"))
    }

    /// The WAL's length as the hook last said, in bytes.
    fn length(c: &Checkpointer) -> u64 {
        c.frames.load(SeqCst) * FRAME_BYTES
    }

    /// A checkpointer with no thread of its own (the test runs what it is
    /// asked for, or nothing), its hard length [`WAL_BYTES`], watching `w`.
    fn by_hand(nudge: SyncSender<()>, w: &Connection) -> Checkpointer {
        let c = Checkpointer {
            nudge: Some(nudge),
            thread: None,
            frames: Arc::default(),
            hard: WAL_BYTES,
            runs: Arc::default(),
            empty_after: AtomicU64::new(0),
        };
        c.watch(w);
        c
    }

    fn size(p: &Path) -> u64 {
        std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
    }

    #[test]
    fn a_wal_past_its_size_is_checkpointed_and_starts_again_written_over() {
        let dir = tempfile::tempdir().unwrap();
        let (w, path, wal) = writer(dir.path());
        let c = Checkpointer::start(&path).unwrap();
        c.watch(&w);
        let mut commits = 0;
        // Small commits: no checkpoint while the WAL is small.
        for _ in 0..LOOK_EVERY * 4 {
            w.execute("INSERT INTO t VALUES (?1)", [vec![0u8; 100]])
                .unwrap();
            commits += 1;
            let _ = c.committed(commits, false);
        }
        // (the file's 32-byte header, then the frames)
        assert_eq!(32 + length(&c), size(&wal), "the hook follows the WAL");
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(size(&path) < 3 * 4096, "no checkpoint yet: {}", size(&path));
        // Past WAL_BYTES: the rows reach the database file.
        while length(&c) <= WAL_BYTES {
            w.execute("INSERT INTO t VALUES (?1)", [vec![0u8; 4000]])
                .unwrap();
            commits += 1;
            let _ = c.committed(commits, false);
        }
        while commits % LOOK_EVERY != 0 {
            w.execute("INSERT INTO t VALUES (?1)", [vec![0u8; 10]])
                .unwrap();
            commits += 1;
            let _ = c.committed(commits, false);
        }
        let grown = size(&wal);
        let t = std::time::Instant::now();
        // (about 300 rows of 4000 bytes: an overflow page each)
        let moved = 256 * 4096;
        while size(&path) < moved && t.elapsed() < std::time::Duration::from_secs(30) {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(size(&path) >= moved, "checkpointed: {}", size(&path));
        // Once the checkpoint is through (it may still be copying: the file
        // grows as it goes), the next write starts the WAL again, over the
        // file's first frames: the file keeps its size.
        w.execute("INSERT INTO t VALUES (?1)", [vec![0u8; 10]])
            .unwrap();
        while length(&c) >= 64 * 1024 && t.elapsed() < std::time::Duration::from_secs(30) {
            std::thread::sleep(std::time::Duration::from_millis(10));
            w.execute("INSERT INTO t VALUES (?1)", [vec![0u8; 10]])
                .unwrap();
            commits += 1;
            let _ = c.committed(commits, false);
        }
        assert!(
            length(&c) < 64 * 1024,
            "the WAL started again: {}",
            length(&c)
        );
        assert!(size(&wal) >= grown, "written over, not cut: {}", size(&wal));
    }

    /// What bounds the WAL when no checkpoint of the thread's gets through
    /// on its own (as under `mqtt_bench`'s stream of commands, hundreds of
    /// MiB): past the hard length the writer asks for a run, and the first
    /// commit after it that is not urgent empties the WAL. Here the test is
    /// the thread: it runs each checkpoint asked for, on a connection of its
    /// own, between two commits.
    #[test]
    fn past_the_hard_size_the_wal_is_emptied_after_a_run_and_never_by_a_command() {
        let dir = tempfile::tempdir().unwrap();
        let (w, path, wal) = writer(dir.path());
        w.pragma_update(None, "synchronous", "OFF").unwrap();
        let thread = Connection::open(&path).unwrap();
        let (nudge, wake) = sync_channel::<()>(1);
        let c = by_hand(nudge, &w);
        let (mut longest, mut appended, mut emptied, mut runs) = (0, 0, 0, 0);
        let mut commits = 0;
        while appended < 8 * WAL_BYTES {
            let before = length(&c);
            w.execute("INSERT INTO t VALUES (?1)", [vec![7u8; 3000]])
                .unwrap();
            commits += 1;
            // Every other commit a command's.
            let urgent = commits % 2 == 0;
            if c.committed(commits, urgent) {
                assert!(!urgent, "a command emptied a WAL of {}", length(&c));
                empty(&w);
                emptied += 1;
            }
            appended += length(&c).saturating_sub(before);
            longest = longest.max(length(&c));
            if wake.try_recv().is_ok() {
                c.runs.run(&thread);
                runs += 1;
            }
        }
        assert!(emptied >= 4, "emptied {emptied} times after {runs} runs");
        // Seen at the first look past the hard length, emptied a commit or
        // two after the run: within two looks of it.
        assert!(
            longest < WAL_BYTES + 2 * LOOK_EVERY * 2 * FRAME_BYTES,
            "the WAL grew to {longest} bytes with {appended} appended"
        );
        assert!(size(&wal) <= WAL_KEEP_BYTES + 64 * FRAME_BYTES);
        let rows: i64 = w
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows as u64, commits, "nothing lost to the restarts");
    }

    /// With no run of the thread's getting through (it is stuck), a WAL past
    /// twice the hard length is emptied by whichever commit sees it.
    #[test]
    fn without_the_threads_runs_the_wal_is_emptied_past_twice_the_hard_size() {
        let dir = tempfile::tempdir().unwrap();
        let (w, _, _) = writer(dir.path());
        w.pragma_update(None, "synchronous", "OFF").unwrap();
        let (nudge, _never_read) = sync_channel::<()>(1);
        let c = by_hand(nudge, &w);
        let (mut longest, mut emptied) = (0, 0);
        for commits in 1..=(12 * WAL_BYTES / 4096) {
            w.execute("INSERT INTO t VALUES (?1)", [vec![7u8; 3000]])
                .unwrap();
            if c.committed(commits, true) {
                empty(&w);
                emptied += 1;
            }
            longest = longest.max(length(&c));
        }
        assert!(emptied >= 3, "emptied {emptied} times");
        assert!(
            // At most a look's commits (a few frames each) past it.
            longest < 2 * WAL_BYTES + LOOK_EVERY * 4 * FRAME_BYTES,
            "the WAL grew to {longest} bytes"
        );
    }
}
