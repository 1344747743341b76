//! PINs lockhub sent to (or may have put in) a lock's slot and has not seen
//! gone since. After a crash, a lost reply or a superseded operation, a PIN
//! found in a slot is then recognised as lockhub's own (and taken off when no
//! code wants it) instead of being filed as a stranger's code, never removed.
//!
//! Only a digest is kept (a slot is cleared by number; the PIN itself is never
//! needed again): SHA-256 over the lock, the slot and the PIN.
//!
//! A command records a new code's PIN ahead of its send ([`Tx::note_issued_ahead`]),
//! so the fan-out needs no commit of its own before it. Until a driver is
//! handed that PIN, this process knows it cannot be on the lock ([`Ahead`]):
//! a code deleted (or moved on) before then is forgotten, not cleared from a
//! slot that never held it. After a restart nothing is known to be unsent
//! (the last process may have sent it): the lock's read settles the slot.

use super::{Result, Tx};
use crate::model::Pin;
use rusqlite::params;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;

/// The digest stored for `pin` in `slot` of `device_id`.
pub fn digest(device_id: &str, slot: u32, pin: &Pin) -> String {
    let mut h = Sha256::new();
    h.update(b"lockhub issued pin\0");
    h.update(device_id.as_bytes());
    h.update([0]);
    h.update(slot.to_be_bytes());
    h.update(pin.expose().as_bytes());
    // Lowercase hex, as stored; by table (a `format!` per byte was 5% of
    // the daemon's CPU under a fan-out: every pass checks its slots).
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(64);
    for b in h.finalize() {
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 15)] as char);
    }
    out
}

/// The digests recorded ahead of their send ([`Tx::note_issued_ahead`]) in
/// this process whose PIN no driver has been handed yet, each with the
/// number of the note that last recorded it (a forget decided before a newer
/// note must not undo it). Held in memory only: a restart starts it empty.
#[derive(Debug, Default)]
pub struct Ahead {
    notes: Mutex<Notes>,
}

#[derive(Debug, Default)]
struct Notes {
    /// The number of the last note.
    last: u64,
    /// Each unsent digest and the number of the note that last recorded it.
    unsent: HashMap<String, u64>,
}

/// A digest recorded ahead and never sent, as a pass saw it: what
/// [`Tx::forget_unsent`] takes.
#[derive(Debug, Clone, PartialEq)]
pub struct Unsent {
    pub slot: u32,
    pub digest: String,
    note: u64,
}

impl Ahead {
    /// Recorded ahead of its send: `new` (its row was just inserted), or
    /// again while still unsent; a digest stored before and not unsent may
    /// have been sent, and is left alone.
    fn note(&self, digest: String, new: bool) {
        let mut n = self.notes.lock().unwrap();
        if new || n.unsent.contains_key(&digest) {
            n.last += 1;
            let note = n.last;
            n.unsent.insert(digest, note);
        }
    }

    /// A driver is about to be handed `pin` for this slot: from now on it
    /// may be on the lock.
    pub fn handing(&self, device_id: &str, slot: u32, pin: &Pin) {
        let mut n = self.notes.lock().unwrap();
        if !n.unsent.is_empty() {
            n.unsent.remove(&digest(device_id, slot, pin));
        }
    }

    /// `digest` (of `slot`) was recorded ahead and never handed to a driver.
    pub fn unsent(&self, slot: u32, digest: &str) -> Option<Unsent> {
        let n = self.notes.lock().unwrap();
        n.unsent.get(digest).map(|&note| Unsent {
            slot,
            digest: digest.to_owned(),
            note,
        })
    }

    /// Take `u` out, unless a note since recorded its digest again (or a
    /// driver was handed it). Returns whether it was taken.
    fn take(&self, u: &Unsent) -> bool {
        let mut n = self.notes.lock().unwrap();
        if n.unsent.get(&u.digest) != Some(&u.note) {
            return false;
        }
        n.unsent.remove(&u.digest);
        true
    }

    /// Digests waiting for their send (for tests).
    pub fn len(&self) -> usize {
        self.notes.lock().unwrap().unsent.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Tx<'_> {
    /// Before lockhub sends `pin` to a slot: from now on, finding it there means "ours".
    pub fn note_issued(&self, device_id: &str, slot: u32, pin: &Pin) -> Result<()> {
        self.insert_issued(device_id, slot, &digest(device_id, slot, pin))?;
        Ok(())
    }

    /// [`Tx::note_issued`] by a command, ahead of the engine's send: until a
    /// driver is handed the PIN ([`Ahead::handing`]) it can be forgotten
    /// rather than cleared. A digest already stored and not noted ahead may
    /// have been sent before (by a process since killed): it stays as it is.
    pub fn note_issued_ahead(&self, device_id: &str, slot: u32, pin: &Pin) -> Result<()> {
        let d = digest(device_id, slot, pin);
        // Marked before the commit: the engine can see the row only after
        // it, so it never hands the PIN before the mark (a transaction rolled
        // back leaves a mark with no row, which forgets nothing).
        let new = self.insert_issued(device_id, slot, &d)?;
        self.ahead.note(d, new);
        Ok(())
    }

    /// Whether the row is new.
    fn insert_issued(&self, device_id: &str, slot: u32, digest: &str) -> Result<bool> {
        Ok(self
            .tx
            .prepare_cached(
                "INSERT OR IGNORE INTO issued_pins (device_id, slot, digest) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![device_id, slot, digest])?
            == 1)
    }

    /// Drop a digest recorded ahead whose PIN was never sent, unless a note
    /// since `u` recorded it again. Returns whether it was dropped.
    pub fn forget_unsent(&self, device_id: &str, u: &Unsent) -> Result<bool> {
        // Gone from the map even if this transaction rolls back: the row
        // then stays and is treated as maybe sent (cleared), the safe way.
        if !self.ahead.take(u) {
            return Ok(false);
        }
        self.tx
            .prepare_cached(
                "DELETE FROM issued_pins WHERE device_id = ?1 AND slot = ?2 AND digest = ?3",
            )?
            .execute(params![device_id, u.slot, u.digest])?;
        Ok(true)
    }

    /// Every (slot, digest) lockhub may have put on a lock.
    pub fn issued(&self, device_id: &str) -> Result<Vec<(u32, String)>> {
        let mut st = self
            .tx
            .prepare_cached("SELECT slot, digest FROM issued_pins WHERE device_id = ?1")?;
        let v = st
            .query_map([device_id], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(v)
    }

    /// Whether lockhub may have put `pin` in this slot.
    pub fn was_issued(&self, device_id: &str, slot: u32, pin: &Pin) -> Result<bool> {
        Ok(self
            .tx
            .prepare_cached(
                "SELECT 1 FROM issued_pins WHERE device_id = ?1 AND slot = ?2 AND digest = ?3",
            )?
            .exists(params![device_id, slot, digest(device_id, slot, pin)])?)
    }

    /// The slot is known to hold `content` (a read, or an operation's answer):
    /// every other PIN lockhub may have put there is gone.
    pub fn confirm_slot(&self, device_id: &str, slot: u32, content: Option<&Pin>) -> Result<()> {
        let keep = content.map(|p| digest(device_id, slot, p));
        self.tx
            .prepare_cached(
                "DELETE FROM issued_pins WHERE device_id = ?1 AND slot = ?2 AND digest IS NOT ?3",
            )?
            .execute(params![device_id, slot, keep])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Store, StoreError};

    #[test]
    fn a_pin_noted_ahead_is_forgotten_only_while_unsent_and_not_noted_again() {
        let store = Store::open_in_memory().unwrap();
        let pin = Pin::new("4821".to_owned());
        let d = digest("lock-1", 3, &pin);
        let rows = |store: &Store| store.read(|tx| tx.issued("lock-1")).unwrap();
        store
            .write(|tx| tx.note_issued_ahead("lock-1", 3, &pin))
            .unwrap();
        let first = store.ahead.unsent(3, &d).expect("noted ahead, not sent");
        // Noted again (another command, the same PIN in the same slot)
        // before the forget decided on the first note commits: it stays.
        store
            .write(|tx| tx.note_issued_ahead("lock-1", 3, &pin))
            .unwrap();
        assert!(!store
            .write(|tx| tx.forget_unsent("lock-1", &first))
            .unwrap());
        assert_eq!(rows(&store).len(), 1);
        let second = store.ahead.unsent(3, &d).unwrap();
        assert!(store
            .write(|tx| tx.forget_unsent("lock-1", &second))
            .unwrap());
        assert!(rows(&store).is_empty());
        assert!(store.ahead.is_empty());

        // Handed to a driver: it may be on the lock, never forgotten.
        store
            .write(|tx| tx.note_issued_ahead("lock-1", 3, &pin))
            .unwrap();
        let u = store.ahead.unsent(3, &d).unwrap();
        store.ahead.handing("lock-1", 3, &pin);
        assert!(store.ahead.unsent(3, &d).is_none());
        assert!(!store.write(|tx| tx.forget_unsent("lock-1", &u)).unwrap());
        assert_eq!(rows(&store).len(), 1);
    }

    #[test]
    fn a_pin_stored_before_it_was_noted_ahead_counts_as_maybe_sent() {
        // Stored by the engine (or by a process since killed): a command
        // noting it again cannot know it was never sent.
        let store = Store::open_in_memory().unwrap();
        let pin = Pin::new("4821".to_owned());
        store.write(|tx| tx.note_issued("lock-1", 3, &pin)).unwrap();
        store
            .write(|tx| tx.note_issued_ahead("lock-1", 3, &pin))
            .unwrap();
        assert!(store.ahead.is_empty());

        // A note whose transaction rolled back leaves a mark with no row.
        let other = Pin::new("9051".to_owned());
        let failed: std::result::Result<(), StoreError> = store.write(|tx| {
            tx.note_issued_ahead("lock-1", 4, &other)?;
            Err(StoreError::Other("refused".into()))
        });
        assert!(failed.is_err());
        let u = store.ahead.unsent(4, &digest("lock-1", 4, &other)).unwrap();
        assert!(store.write(|tx| tx.forget_unsent("lock-1", &u)).unwrap());
        assert_eq!(store.read(|tx| tx.issued("lock-1")).unwrap().len(), 1);
    }

    #[test]
    fn digests_keep_their_stored_form() {
        // SHA-256 of the same bytes, lowercase hex (rows already stored must
        // still match).
        assert_eq!(
            digest("lock-1", 7, &Pin::new("1234".to_owned())),
            "71040536d317d7e470935eba5f89c84236e09b4f2147cb8cbb73255055fd2ec2"
        );
    }
}
