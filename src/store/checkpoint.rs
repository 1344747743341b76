//! WAL checkpoints off the commit path. SQLite's own (every 1000 WAL pages,
//! inside the COMMIT that crosses it) ran with the writer's lock held: it
//! syncs the WAL, copies every page into the database and syncs that, and
//! the command committing then waited for all of it. Here the writer only
//! looks at the WAL's size every [`LOOK_EVERY`] commits and, past
//! [`WAL_BYTES`] (SQLite's 1000 pages), nudges a thread of the store's; the
//! thread runs a PASSIVE checkpoint on a connection of its own, which neither
//! waits for nor blocks the writer or the reader. SQLite then restarts the
//! WAL from its start at the next write, and `journal_size_limit=0` makes
//! that write truncate the file, so the file's size is what was written since
//! (how the writer can tell). At the last connection's close SQLite
//! checkpoints what is left, as before.
//!
//! A PASSIVE checkpoint never catches up with a writer that keeps
//! committing, and the WAL starts again only once every frame is in the
//! database and no reader is still reading it: under a steady stream of
//! commands it grew without end (196-559 MiB in `mqtt_bench`).
//! Past [`WAL_HARD_BYTES`] the writer itself, still holding its connection
//! and the reader's (taken only if free: `Store::write_now`), runs a TRUNCATE
//! checkpoint ([`empty`]): it copies what the thread has not (most is done)
//! and empties the file, waiting for no reader. A thread cannot do that for the
//! writer: between two commits the lock is free for microseconds, and a busy
//! handler that sleeps between tries never gets it; nor can it be done
//! without holding the reader, which is in the WAL most of the time under
//! load. The commit that crosses the size pays for it (a copy and two
//! fsyncs), about once per [`WAL_HARD_BYTES`] written.

use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};

/// The WAL's size that calls for a checkpoint: SQLite's default of 1000
/// pages of 4 KiB, with their frame headers.
pub const WAL_BYTES: u64 = 1000 * (4096 + 24);

/// The WAL's size past which the writer empties it (a TRUNCATE checkpoint).
pub const WAL_HARD_BYTES: u64 = 4 * WAL_BYTES;

/// Commits between two looks at the WAL's size (a `stat`): a command with
/// its fan-out writes a few dozen pages.
pub const LOOK_EVERY: u64 = 8;

/// The writer's end: nudges the checkpoint thread, which ends (closing its
/// connection, the store's last: SQLite then checkpoints what is left and
/// removes the WAL) when this is dropped.
pub struct Checkpointer {
    nudge: Option<SyncSender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    wal: PathBuf,
    /// Past this size the writer empties the WAL ([`empty`]).
    hard: u64,
}

impl Checkpointer {
    /// Start the thread, with its own connection to the database at `path`.
    pub fn start(path: &Path, wal: PathBuf) -> super::Result<Checkpointer> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(super::BUSY_TIMEOUT)?;
        // The checkpoint syncs the WAL before copying and the database
        // after (as SQLite's own did for the writer's connection).
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        let (nudge, wake) = sync_channel::<()>(1);
        let thread = std::thread::Builder::new()
            .name("lockhub-checkpoint".into())
            .spawn(move || {
                while wake.recv().is_ok() {
                    run(&conn, "PASSIVE");
                }
            })
            .map_err(|e| {
                super::StoreError::Other(format!("cannot start the checkpoint thread: {e}"))
            })?;
        Ok(Checkpointer {
            nudge: Some(nudge),
            thread: Some(thread),
            wal,
            hard: WAL_HARD_BYTES,
        })
    }

    /// Called after commit number `commits`: every [`LOOK_EVERY`] commits,
    /// a checkpoint if the WAL holds more than [`WAL_BYTES`] (one already
    /// asked for and not yet begun covers this one too). True when the WAL
    /// is past the hard size: the writer must [`empty`] it before it lets go
    /// of its connection.
    #[must_use]
    pub fn committed(&self, commits: u64) -> bool {
        let Some(nudge) = &self.nudge else {
            return false;
        };
        if commits % LOOK_EVERY != 0 {
            return false;
        }
        let size = std::fs::metadata(&self.wal).map_or(0, |m| m.len());
        if size > self.hard {
            // The writer's to empty: a copy of the thread's under way would
            // only make it wait.
            return true;
        }
        if size > WAL_BYTES {
            match nudge.try_send(()) {
                Ok(()) | Err(TrySendError::Full(())) => {}
                Err(TrySendError::Disconnected(())) => {
                    tracing::warn!("the WAL checkpoint thread is gone; SQLite checkpoints at close")
                }
            }
        }
        false
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
/// and the caller holds the reader): a TRUNCATE checkpoint. It waits at most
/// [`EMPTY_WAIT`] for what else may hold the WAL (the checkpoint thread in
/// the middle of its copy, a backup): the writer must not stall on them; the
/// copy is done anyway and the next look tries again.
pub fn empty(writer: &Connection) {
    let _ = writer.busy_timeout(EMPTY_WAIT);
    run(writer, "TRUNCATE");
    let _ = writer.busy_timeout(super::BUSY_TIMEOUT);
}

/// Longest the writer waits for the WAL it empties.
const EMPTY_WAIT: std::time::Duration = std::time::Duration::from_millis(20);

/// One checkpoint of `mode` (PASSIVE or TRUNCATE).
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
    /// checkpoint of its own, the WAL truncated when it starts again), with a
    /// table `t (x BLOB)`; with the database's and the WAL's paths.
    fn writer(dir: &Path) -> (Connection, PathBuf, PathBuf) {
        let path = dir.join("db");
        let w = Connection::open(&path).unwrap();
        w.pragma_update(None, "journal_mode", "WAL").unwrap();
        w.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        w.pragma_update(None, "journal_size_limit", 0).unwrap();
        w.execute_batch("CREATE TABLE t (x BLOB)").unwrap();
        (w, path, dir.join("db-wal"))
    }

    #[test]
    fn a_wal_past_its_size_is_checkpointed_and_starts_again_small() {
        let dir = tempfile::tempdir().unwrap();
        let (w, path, wal) = writer(dir.path());
        let c = Checkpointer::start(&path, wal.clone()).unwrap();
        let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let mut commits = 0;
        // Small commits: no checkpoint while the WAL is small.
        for _ in 0..LOOK_EVERY * 4 {
            w.execute("INSERT INTO t VALUES (?1)", [vec![0u8; 100]])
                .unwrap();
            commits += 1;
            let _ = c.committed(commits);
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(size(&path) < 3 * 4096, "no checkpoint yet: {}", size(&path));
        // Past WAL_BYTES: the rows reach the database file.
        while size(&wal) <= WAL_BYTES {
            w.execute("INSERT INTO t VALUES (?1)", [vec![0u8; 4000]])
                .unwrap();
            commits += 1;
            let _ = c.committed(commits);
        }
        while commits % LOOK_EVERY != 0 {
            w.execute("INSERT INTO t VALUES (?1)", [vec![0u8; 10]])
                .unwrap();
            commits += 1;
            let _ = c.committed(commits);
        }
        let t = std::time::Instant::now();
        // (about 300 rows of 4000 bytes: an overflow page each)
        let moved = 256 * 4096;
        while size(&path) < moved && t.elapsed() < std::time::Duration::from_secs(30) {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(size(&path) >= moved, "checkpointed: {}", size(&path));
        // Once the checkpoint is through (it may still be copying: the file
        // grows as it goes), the next write starts the WAL again, truncated
        // to what it wrote.
        w.execute("INSERT INTO t VALUES (?1)", [vec![0u8; 10]])
            .unwrap();
        while size(&wal) >= 64 * 1024 && t.elapsed() < std::time::Duration::from_secs(30) {
            std::thread::sleep(std::time::Duration::from_millis(10));
            w.execute("INSERT INTO t VALUES (?1)", [vec![0u8; 10]])
                .unwrap();
            commits += 1;
            let _ = c.committed(commits);
        }
        assert!(
            size(&wal) < 64 * 1024,
            "the WAL started again: {}",
            size(&wal)
        );
    }

    /// What bounds the WAL when no checkpoint of the thread's gets through
    /// (as under `mqtt_bench`'s stream of commands, hundreds of MiB): the
    /// writer's look says when it is past the hard size, and [`empty`]
    /// empties it. Here there is no thread at all: without the writer's
    /// TRUNCATE the WAL would hold all that was appended.
    #[test]
    fn past_the_hard_size_the_writer_empties_the_wal() {
        let dir = tempfile::tempdir().unwrap();
        let (w, _, wal) = writer(dir.path());
        w.pragma_update(None, "synchronous", "OFF").unwrap();
        let (nudge, _never_read) = sync_channel::<()>(1);
        let c = Checkpointer {
            nudge: Some(nudge),
            thread: None,
            wal: wal.clone(),
            hard: WAL_BYTES,
        };
        let (mut biggest, mut appended, mut last, mut emptied) = (0, 0, 0, 0);
        let mut commits = 0;
        while appended < 8 * WAL_BYTES {
            w.execute("INSERT INTO t VALUES (?1)", [vec![7u8; 3000]])
                .unwrap();
            commits += 1;
            if c.committed(commits) {
                empty(&w);
                emptied += 1;
            }
            let size = std::fs::metadata(&wal).map_or(0, |m| m.len());
            appended += size.saturating_sub(last);
            last = size;
            biggest = biggest.max(size);
        }
        assert!(emptied >= 4, "emptied {emptied} times");
        // At most one look (LOOK_EVERY commits of a few pages) past the size.
        assert!(
            biggest < WAL_BYTES + 64 * 4120,
            "the WAL grew to {biggest} bytes with {appended} appended"
        );
        let rows: i64 = w
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows as u64, commits, "nothing lost to the TRUNCATEs");
    }
}
