//! WAL checkpoints off the commit path. SQLite's own (every 1000 WAL pages,
//! inside the COMMIT that crosses it) ran with the writer's lock held: it
//! syncs the WAL, copies every page into the database and syncs that, and
//! the command committing then waited for all of it. Here the writer only
//! nudges a thread of the store's every [`EVERY`] commits; the thread runs a
//! PASSIVE checkpoint on a connection of its own, which neither waits for nor
//! blocks the writer or the reader (SQLite restarts the WAL from its start
//! at the next write once every frame is in the database). At the last
//! connection's close SQLite checkpoints what is left, as before.

use rusqlite::Connection;
use std::path::Path;
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};

/// Commits between two checkpoints: a command with its fan-out writes about
/// 10-30 pages, so about SQLite's default of 1000 pages.
pub const EVERY: u64 = 48;

/// The writer's end: nudges the checkpoint thread, which ends (closing its
/// connection, the store's last: SQLite then checkpoints what is left and
/// removes the WAL) when this is dropped.
pub struct Checkpointer {
    nudge: Option<SyncSender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Checkpointer {
    /// Start the thread, with its own connection to the database at `path`.
    pub fn start(path: &Path) -> super::Result<Checkpointer> {
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
        })
    }

    /// Called after commit number `commits`: every [`EVERY`] a checkpoint
    /// (one already asked for and not yet begun covers this one too).
    pub fn committed(&self, commits: u64) {
        let Some(nudge) = &self.nudge else { return };
        if commits % EVERY == 0 {
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
    fn checkpoints_move_the_wal_into_the_database_without_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let w = Connection::open(&path).unwrap();
        w.pragma_update(None, "journal_mode", "WAL").unwrap();
        w.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        w.execute_batch("CREATE TABLE t (x BLOB)").unwrap();
        let c = Checkpointer::start(&path).unwrap();
        for i in 1..=EVERY {
            w.execute("INSERT INTO t VALUES (?1)", [vec![0u8; 4000]])
                .unwrap();
            c.committed(i);
        }
        let db = || std::fs::metadata(&path).unwrap().len();
        let t = std::time::Instant::now();
        while db() < EVERY * 4000 && t.elapsed() < std::time::Duration::from_secs(10) {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(
            db() >= EVERY * 4000,
            "the rows reached the database file: {} bytes",
            db()
        );
    }
}
