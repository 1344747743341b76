//! Which of lockhub's slots each Nuki keypad code sits in.
//!
//! A Nuki numbers its codes itself (the id it returns on add), while the
//! engine thinks in slots. The map survives restarts in a small JSON file,
//! written atomically (temp file, fsync, rename) on every change. Before an
//! add it records an *intent* (an HMAC of the code under the lock's shared
//! key, so the file never holds a PIN): if lockhub dies before the reply, the
//! next listing finds the code the intent names and binds it to its slot
//! instead of taking it for a stranger's. Only intents must be on disk before
//! the radio acts; other changes ([`SlotMap::note`]) are written with the next
//! intent or [`SlotMap::flush`], since a listing can always rebuild them.

use crate::model::TimeWindow;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Mutex;

/// One slot of one lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binding {
    /// The lock's id for the code; `None` while an add is in flight.
    pub id: Option<u16>,
    /// lockhub put it there (false: a code found on the lock, given a slot
    /// from the top so the engine can track it).
    pub ours: bool,
    /// The window exactly as lockhub asked for it (the lock keeps seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<TimeWindow>,
    /// HMAC of the code of an add whose reply has not come yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<String>,
}

impl Binding {
    /// lockhub's code with the lock's id `id`.
    pub fn bound(id: u16, window: Option<TimeWindow>) -> Binding {
        Binding {
            id: Some(id),
            ours: true,
            window,
            intent: None,
        }
    }

    /// A code found on the lock that lockhub did not put there.
    pub fn stranger(id: u16) -> Binding {
        Binding {
            id: Some(id),
            ours: false,
            window: None,
            intent: None,
        }
    }

    /// An add of lockhub's whose outcome is not known yet.
    pub fn intended(intent: String, window: Option<TimeWindow>) -> Binding {
        Binding {
            id: None,
            ours: true,
            window,
            intent: Some(intent),
        }
    }
}

type Slots = BTreeMap<u32, Binding>;

#[derive(Debug, thiserror::Error)]
#[error("cannot write the BLE slot map {path}: {source}")]
pub struct SlotMapError {
    path: PathBuf,
    source: std::io::Error,
}

/// Slot bindings of every lock, by BLE address.
pub struct SlotMap {
    path: Option<PathBuf>,
    locks: Mutex<BTreeMap<String, Slots>>,
    /// Changes not yet written.
    dirty: std::sync::atomic::AtomicBool,
}

impl SlotMap {
    /// Kept only in memory (tests, or a hub that accepts re-reading after restart).
    pub fn in_memory() -> SlotMap {
        SlotMap {
            path: None,
            locks: Mutex::new(BTreeMap::new()),
            dirty: false.into(),
        }
    }

    /// Loads the file if it exists (a missing file is an empty map).
    pub fn open(path: impl Into<PathBuf>) -> Result<SlotMap, SlotMapError> {
        let path = path.into();
        let locks = match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| SlotMapError {
                path: path.clone(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(source) => return Err(SlotMapError { path, source }),
        };
        Ok(SlotMap {
            path: Some(path),
            locks: Mutex::new(locks),
            dirty: false.into(),
        })
    }

    /// A copy of one lock's bindings.
    pub fn slots(&self, address: &str) -> BTreeMap<u32, Binding> {
        self.locks
            .lock()
            .unwrap()
            .get(address)
            .cloned()
            .unwrap_or_default()
    }

    /// Changes one lock's bindings and, if that changed anything, writes the
    /// file (noted changes included) before returning.
    pub fn update<T>(
        &self,
        address: &str,
        f: impl FnOnce(&mut BTreeMap<u32, Binding>) -> T,
    ) -> Result<T, SlotMapError> {
        let mut locks = self.locks.lock().unwrap();
        let (out, changed) = Self::change(&mut locks, address, f);
        if changed {
            self.save(&locks)?;
        }
        Ok(out)
    }

    /// Changes one lock's bindings in memory; the file follows at the next
    /// [`update`](Self::update) or [`flush`](Self::flush).
    pub fn note<T>(&self, address: &str, f: impl FnOnce(&mut BTreeMap<u32, Binding>) -> T) -> T {
        let mut locks = self.locks.lock().unwrap();
        let (out, changed) = Self::change(&mut locks, address, f);
        if changed {
            self.dirty.store(true, Ordering::SeqCst);
        }
        out
    }

    /// Writes noted changes.
    pub fn flush(&self) -> Result<(), SlotMapError> {
        let locks = self.locks.lock().unwrap();
        if self.dirty.load(Ordering::SeqCst) {
            self.save(&locks)?;
        }
        Ok(())
    }

    fn change<T>(
        locks: &mut BTreeMap<String, Slots>,
        address: &str,
        f: impl FnOnce(&mut BTreeMap<u32, Binding>) -> T,
    ) -> (T, bool) {
        let before = locks.get(address).cloned();
        let slots = locks.entry(address.to_owned()).or_default();
        let out = f(slots);
        let changed = Some(&*slots) != before.as_ref();
        if slots.is_empty() {
            locks.remove(address);
        }
        (out, changed)
    }

    fn save(&self, locks: &BTreeMap<String, Slots>) -> Result<(), SlotMapError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let err = |source| SlotMapError {
            path: path.clone(),
            source,
        };
        let tmp = path.with_extension("json.tmp");
        let mut f = std::fs::File::create(&tmp).map_err(err)?;
        f.write_all(&serde_json::to_vec(locks).expect("a slot map serializes"))
            .map_err(err)?;
        f.sync_all().map_err(err)?;
        std::fs::rename(&tmp, path).map_err(err)?;
        self.dirty.store(false, Ordering::SeqCst);
        if let Some(dir) = path.parent() {
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("slots.json");
        let m = SlotMap::open(&path).unwrap();
        m.update("AA", |s| s.insert(3, Binding::bound(7, None)))
            .unwrap();
        let again = SlotMap::open(&path).unwrap();
        assert_eq!(again.slots("AA")[&3].id, Some(7));
        again.note("AA", |s| s.clear());
        assert_eq!(
            SlotMap::open(&path).unwrap().slots("AA").len(),
            1,
            "noted only"
        );
        again.flush().unwrap();
        assert!(SlotMap::open(&path).unwrap().slots("AA").is_empty());
    }
}
