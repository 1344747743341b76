//! An in-process [`Radio`] whose locks are [`FakeNuki`]s, with the faults a
//! real radio has injected on purpose: lost, duplicated and corrupted
//! indication pieces, connections that drop before or after a write reached
//! the lock, and locks out of range. Pieces are 20 bytes, as over a default
//! BLE MTU. Seeded, so a failing property test replays exactly.

use super::fake_lock::FakeNuki;
use super::link::{Channel, Link, LinkError, Radio};
use async_trait::async_trait;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Size of one indication piece.
pub const PIECE: usize = 20;

/// Chances (0..=1) of each fault, rolled per piece or per write.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    pub drop_piece: f64,
    pub duplicate_piece: f64,
    pub corrupt_piece: f64,
    /// The connection drops before the write reaches the lock.
    pub disconnect_before_write: f64,
    /// The write reaches the lock, then the connection drops (its reply is lost).
    pub disconnect_after_write: f64,
}

struct Inner {
    locks: Mutex<HashMap<String, Arc<Mutex<FakeNuki>>>>,
    out_of_range: Mutex<HashSet<String>>,
    faults: Mutex<Faults>,
    rng: Mutex<StdRng>,
    connects: AtomicUsize,
    active: AtomicUsize,
    max_active: AtomicUsize,
    adverts: tokio::sync::broadcast::Sender<String>,
    changes: tokio::sync::broadcast::Sender<String>,
}

/// A radio of fake Nukis. Cheap to clone; clones share the locks.
#[derive(Clone)]
pub struct MemoryRadio {
    inner: Arc<Inner>,
}

impl MemoryRadio {
    pub fn new(seed: u64) -> MemoryRadio {
        MemoryRadio {
            inner: Arc::new(Inner {
                locks: Mutex::new(HashMap::new()),
                out_of_range: Mutex::new(HashSet::new()),
                faults: Mutex::new(Faults::default()),
                rng: Mutex::new(StdRng::seed_from_u64(seed)),
                connects: AtomicUsize::new(0),
                active: AtomicUsize::new(0),
                max_active: AtomicUsize::new(0),
                adverts: tokio::sync::broadcast::channel(64).0,
                changes: tokio::sync::broadcast::channel(64).0,
            }),
        }
    }

    /// Puts a lock in range at `address`; returns it for inspection.
    pub fn add_lock(&self, address: &str, lock: FakeNuki) -> Arc<Mutex<FakeNuki>> {
        let lock = Arc::new(Mutex::new(lock));
        self.inner
            .locks
            .lock()
            .unwrap()
            .insert(address.to_owned(), lock.clone());
        lock
    }

    pub fn lock(&self, address: &str) -> Option<Arc<Mutex<FakeNuki>>> {
        self.inner.locks.lock().unwrap().get(address).cloned()
    }

    pub fn set_in_range(&self, address: &str, in_range: bool) {
        let mut out = self.inner.out_of_range.lock().unwrap();
        if in_range {
            out.remove(address);
            // Back in range: it advertises.
            let _ = self.inner.adverts.send(address.to_owned());
        } else {
            out.insert(address.to_owned());
        }
    }

    /// The lock at `address` signals that its state or log changed (a
    /// keypad entry, a turn by hand).
    pub fn signal_change(&self, address: &str) {
        let _ = self.inner.changes.send(address.to_owned());
    }

    pub fn set_faults(&self, faults: Faults) {
        *self.inner.faults.lock().unwrap() = faults;
    }

    /// Connections opened so far.
    pub fn connects(&self) -> usize {
        self.inner.connects.load(Ordering::SeqCst)
    }

    /// The most connections that were open at once.
    pub fn max_concurrent(&self) -> usize {
        self.inner.max_active.load(Ordering::SeqCst)
    }

    fn in_range(&self, address: &str) -> bool {
        !self.inner.out_of_range.lock().unwrap().contains(address)
    }

    fn roll(&self, chance: f64) -> bool {
        chance > 0.0 && self.inner.rng.lock().unwrap().gen_bool(chance.min(1.0))
    }
}

#[async_trait]
impl Radio for MemoryRadio {
    async fn connect(&self, address: &str) -> Result<Box<dyn Link>, LinkError> {
        // A connection takes a moment, so concurrent connects overlap.
        tokio::task::yield_now().await;
        if !self.in_range(address) {
            return Err(LinkError::NotFound(address.to_owned()));
        }
        let lock = self
            .lock(address)
            .ok_or_else(|| LinkError::NotFound(address.to_owned()))?;
        self.inner.connects.fetch_add(1, Ordering::SeqCst);
        let now = self.inner.active.fetch_add(1, Ordering::SeqCst) + 1;
        self.inner.max_active.fetch_max(now, Ordering::SeqCst);
        Ok(Box::new(MemoryLink {
            radio: self.clone(),
            address: address.to_owned(),
            lock,
            inbox: VecDeque::new(),
            open: true,
        }))
    }

    fn advertisements(&self) -> Option<tokio::sync::broadcast::Receiver<String>> {
        Some(self.inner.adverts.subscribe())
    }

    fn changes(&self) -> Option<tokio::sync::broadcast::Receiver<String>> {
        Some(self.inner.changes.subscribe())
    }
}

struct MemoryLink {
    radio: MemoryRadio,
    address: String,
    lock: Arc<Mutex<FakeNuki>>,
    inbox: VecDeque<(Channel, Vec<u8>)>,
    open: bool,
}

impl MemoryLink {
    fn drop_connection(&mut self) {
        if self.open {
            self.open = false;
            self.inbox.clear();
            self.radio.inner.active.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Drop for MemoryLink {
    fn drop(&mut self) {
        self.drop_connection();
    }
}

#[async_trait]
impl Link for MemoryLink {
    async fn write(&mut self, channel: Channel, bytes: &[u8]) -> Result<(), LinkError> {
        if !self.radio.in_range(&self.address) {
            self.drop_connection();
        }
        if !self.open {
            return Err(LinkError::Disconnected);
        }
        let faults = self.radio.inner.faults.lock().unwrap().clone();
        if self.radio.roll(faults.disconnect_before_write) {
            self.drop_connection();
            return Err(LinkError::Disconnected);
        }
        let replies = self.lock.lock().unwrap().on_write(channel, bytes);
        if self.radio.roll(faults.disconnect_after_write) {
            self.drop_connection();
            return Err(LinkError::Disconnected);
        }
        for reply in replies {
            for piece in reply.chunks(PIECE) {
                if self.radio.roll(faults.drop_piece) {
                    continue;
                }
                let mut piece = piece.to_vec();
                if self.radio.roll(faults.corrupt_piece) {
                    let i = self
                        .radio
                        .inner
                        .rng
                        .lock()
                        .unwrap()
                        .gen_range(0..piece.len());
                    piece[i] ^= 0x5A;
                }
                if self.radio.roll(faults.duplicate_piece) {
                    self.inbox.push_back((channel, piece.clone()));
                }
                self.inbox.push_back((channel, piece));
            }
        }
        Ok(())
    }

    async fn next_piece(&mut self) -> Result<(Channel, Vec<u8>), LinkError> {
        if let Some(p) = self.inbox.pop_front() {
            return Ok(p);
        }
        if !self.open {
            return Err(LinkError::Disconnected);
        }
        // Nothing more will come: the caller's timeout ends the wait.
        std::future::pending().await
    }

    async fn close(&mut self) {
        self.drop_connection();
    }
}
