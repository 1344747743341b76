//! Group commit at the fsync. Write transactions commit under the writer's
//! lock without syncing (WAL, `synchronous=NORMAL`); the writer then makes
//! the WAL durable (`fdatasync`) after letting go of that lock, and only then
//! returns, so nothing is answered or acked before it is on disk, exactly as
//! with `synchronous=FULL`. What changes is who waits for whom: the next
//! transaction runs while the previous one's fsync is under way, and one
//! fsync covers every commit made before it started (the WAL is written in
//! order), so a command and the engine's results committed meanwhile share
//! it instead of paying one each, one after the other, with the lock held.
//!
//! Readers can see a commit while its fsync is under way. What leaves the
//! process from them waits for it: the publisher sends outbox rows only once
//! the commits its read included are durable ([`Durable::wait_async`]).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};

/// How long a reader waits for a commit's own writer to sync it before
/// syncing it itself (a writer whose fsync failed leaves it to others).
pub const STRAGGLER: std::time::Duration = std::time::Duration::from_millis(200);

/// The commits written and the commits known durable, by the store's commit
/// sequence number (`locks::LockCache::seq` of a successful commit).
pub struct Durable {
    /// The WAL file to sync; `None` for an in-memory store (nothing to sync).
    wal: Option<PathBuf>,
    /// The latest commit whose frames are all in the WAL (set under the
    /// cache's lock, right after the commit).
    written: AtomicU64,
    state: Mutex<State>,
    done: Condvar,
    synced: tokio::sync::watch::Sender<u64>,
    /// fsyncs made (for the benchmarks and tests: how many commits shared one).
    pub syncs: AtomicU64,
}

#[derive(Default)]
struct State {
    /// Every commit up to this one is durable.
    synced: u64,
    /// A writer is in fdatasync now (the others wait for it, then maybe go).
    syncing: bool,
}

impl Durable {
    pub fn new(wal: Option<PathBuf>) -> Durable {
        Durable {
            wal,
            written: AtomicU64::new(0),
            state: Mutex::new(State::default()),
            done: Condvar::new(),
            synced: tokio::sync::watch::Sender::new(0),
            syncs: AtomicU64::new(0),
        }
    }

    /// Commit `seq` is in the WAL (call with the cache's lock held, so a
    /// reader's snapshot and [`Durable::written`] agree).
    pub fn wrote(&self, seq: u64) {
        self.written.fetch_max(seq, Ordering::SeqCst);
    }

    /// The latest commit written (a reader's snapshot includes up to this
    /// when read under the cache's lock as its snapshot starts).
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::SeqCst)
    }

    /// Whether every commit up to `seq` is durable.
    pub fn is_durable(&self, seq: u64) -> bool {
        *self.synced.borrow() >= seq
    }

    /// Block until commit `seq` is durable: sync the WAL if no one is at it,
    /// else wait for the sync under way (and sync again if that one started
    /// before `seq` was written). An error is the fsync's: the commit is in
    /// the database but not known to be on disk, so it must not be acked.
    pub fn wait(&self, seq: u64) -> std::io::Result<()> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if st.synced >= seq {
                return Ok(());
            }
            if st.syncing {
                st = self.done.wait(st).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            st.syncing = true;
            // Every commit up to `target` is wholly in the WAL file now.
            let target = self.written();
            drop(st);
            let r = self.sync_wal();
            st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            st.syncing = false;
            if r.is_ok() {
                st.synced = st.synced.max(target);
                self.synced.send_replace(st.synced);
            }
            self.done.notify_all();
            r?;
        }
    }

    /// Wait until commit `seq` is durable. Its writer is syncing it, so this
    /// only waits for that; should that sync have failed (and no later
    /// commit's sync covered it), it syncs itself after [`STRAGGLER`], and
    /// again every [`STRAGGLER`] while the disk refuses.
    pub async fn wait_async(&self, seq: u64) {
        let mut rx = self.synced.subscribe();
        while !self.is_durable(seq) {
            let timed_out = tokio::time::timeout(STRAGGLER, rx.wait_for(|s| *s >= seq))
                .await
                .is_err();
            if timed_out && self.wait(seq).is_err() {
                tokio::time::sleep(STRAGGLER).await;
            }
        }
    }

    fn sync_wal(&self) -> std::io::Result<()> {
        let Some(wal) = &self.wal else {
            return Ok(());
        };
        self.syncs.fetch_add(1, Ordering::Relaxed);
        // Opened each time: the file is SQLite's (a handle kept here would
        // outlive a WAL SQLite removed and made again). fdatasync on any
        // descriptor of the file flushes its pages.
        std::fs::File::open(wal)?.sync_data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn one_sync_covers_every_commit_written_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let wal = dir.path().join("x-wal");
        std::fs::write(&wal, b"frames").unwrap();
        let d = Durable::new(Some(wal));
        d.wrote(1);
        d.wrote(2);
        d.wrote(3);
        d.wait(2).unwrap();
        assert!(d.is_durable(3), "the sync covered every commit written");
        d.wait(3).unwrap();
        assert_eq!(d.syncs.load(Ordering::Relaxed), 1);
        d.wrote(4);
        assert!(!d.is_durable(4));
        d.wait(4).unwrap();
        assert_eq!(d.syncs.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_failed_sync_is_an_error_and_nothing_counts_as_durable() {
        let dir = tempfile::tempdir().unwrap();
        let d = Durable::new(Some(dir.path().join("missing-wal")));
        d.wrote(1);
        assert!(d.wait(1).is_err());
        assert!(!d.is_durable(1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_reader_syncs_a_commit_whose_writer_could_not() {
        let dir = tempfile::tempdir().unwrap();
        let wal = dir.path().join("x-wal");
        let d = Durable::new(Some(wal.clone()));
        d.wrote(1);
        // The writer's fsync failed (here: no file to sync).
        assert!(d.wait(1).is_err());
        // The disk is back; no other commit comes.
        std::fs::write(&wal, b"frames").unwrap();
        tokio::time::timeout(STRAGGLER * 3, d.wait_async(1))
            .await
            .expect("the reader synced it itself");
        assert!(d.is_durable(1));
    }

    #[test]
    fn waiters_wake_when_another_writer_syncs() {
        let dir = tempfile::tempdir().unwrap();
        let wal = dir.path().join("x-wal");
        std::fs::write(&wal, b"frames").unwrap();
        let d = Arc::new(Durable::new(Some(wal)));
        d.wrote(5);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let d2 = d.clone();
        let waiter = std::thread::spawn(move || rt.block_on(d2.wait_async(5)));
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(!waiter.is_finished(), "nothing synced yet");
        d.wait(5).unwrap();
        waiter.join().unwrap();
    }
}
