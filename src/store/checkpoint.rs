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

use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};

/// The WAL's size that calls for a checkpoint: SQLite's default of 1000
/// pages of 4 KiB, with their frame headers.
pub const WAL_BYTES: u64 = 1000 * (4096 + 24);

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
}

impl Checkpointer {
    /// Start the thread, with its own connection to the database at `path`.
    pub fn start(path: &Path, wal: PathBuf) -> super::Result<Checkpointer> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // The checkpoint syncs the WAL before copying and the database
        // after (as SQLite's own did for the writer's connection).
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        let (nudge, wake) = sync_channel::<()>(1);
        let thread = std::thread::Builder::new()
            .name("lockhub-checkpoint".into())
            .spawn(move || {
                while wake.recv().is_ok() {
                    run(&conn);
                }
            })
            .map_err(|e| {
                super::StoreError::Other(format!("cannot start the checkpoint thread: {e}"))
            })?;
        Ok(Checkpointer {
            nudge: Some(nudge),
            thread: Some(thread),
            wal,
        })
    }

    /// Called after commit number `commits`: every [`LOOK_EVERY`] commits,
    /// a checkpoint if the WAL holds more than [`WAL_BYTES`] (one already
    /// asked for and not yet begun covers this one too).
    pub fn committed(&self, commits: u64) {
        let Some(nudge) = &self.nudge else { return };
        if commits % LOOK_EVERY != 0 {
            return;
        }
        let big = std::fs::metadata(&self.wal).is_ok_and(|m| m.len() > WAL_BYTES);
        if big {
            match nudge.try_send(()) {
                Ok(()) | Err(TrySendError::Full(())) => {}
                Err(TrySendError::Disconnected(())) => {
                    tracing::warn!("the WAL checkpoint thread is gone; SQLite checkpoints at close")
                }
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

fn run(conn: &Connection) {
    let r = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
        ))
    });
    match r {
        Ok((busy, frames, copied)) => {
            tracing::trace!(busy, frames, copied, "WAL checkpoint")
        }
        // A full disk or a lock held elsewhere: the WAL grows meanwhile and
        // the next nudge tries again (the writer reports the store's faults).
        Err(e) => tracing::debug!(error = %e, "WAL checkpoint failed; trying again later"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wal_past_its_size_is_checkpointed_and_starts_again_small() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let wal = dir.path().join("db-wal");
        let w = Connection::open(&path).unwrap();
        w.pragma_update(None, "journal_mode", "WAL").unwrap();
        w.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        w.pragma_update(None, "journal_size_limit", 0).unwrap();
        w.execute_batch("CREATE TABLE t (x BLOB)").unwrap();
        let c = Checkpointer::start(&path, wal.clone()).unwrap();
        let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let mut commits = 0;
        // Small commits: no checkpoint while the WAL is small.
        for _ in 0..LOOK_EVERY * 4 {
            w.execute("INSERT INTO t VALUES (?1)", [vec![0u8; 100]])
                .unwrap();
            commits += 1;
            c.committed(commits);
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(size(&path) < 3 * 4096, "no checkpoint yet: {}", size(&path));
        // Past WAL_BYTES: the rows reach the database file.
        while size(&wal) <= WAL_BYTES {
            w.execute("INSERT INTO t VALUES (?1)", [vec![0u8; 4000]])
                .unwrap();
            commits += 1;
            c.committed(commits);
        }
        while commits % LOOK_EVERY != 0 {
            w.execute("INSERT INTO t VALUES (?1)", [vec![0u8; 10]])
                .unwrap();
            commits += 1;
            c.committed(commits);
        }
        let t = std::time::Instant::now();
        // (about 300 rows of 4000 bytes: an overflow page each)
        let moved = 256 * 4096;
        while size(&path) < moved && t.elapsed() < std::time::Duration::from_secs(10) {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(size(&path) >= moved, "checkpointed: {}", size(&path));
        // The next write starts the WAL again, truncated to what it wrote.
        w.execute("INSERT INTO t VALUES (?1)", [vec![0u8; 10]])
            .unwrap();
        assert!(
            size(&wal) < 64 * 1024,
            "the WAL started again: {}",
            size(&wal)
        );
    }
}
