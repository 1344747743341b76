//! PINs lockhub sent to (or may have put in) a lock's slot and has not seen
//! gone since. After a crash, a lost reply or a superseded operation, a PIN
//! found in a slot is then recognised as lockhub's own (and taken off when no
//! code wants it) instead of being filed as a stranger's code, never removed.
//!
//! Only a digest is kept (a slot is cleared by number; the PIN itself is never
//! needed again): SHA-256 over the lock, the slot and the PIN.

use super::{Result, Tx};
use crate::model::Pin;
use rusqlite::params;
use sha2::{Digest, Sha256};

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

impl Tx<'_> {
    /// Before lockhub sends `pin` to a slot: from now on, finding it there means "ours".
    pub fn note_issued(&self, device_id: &str, slot: u32, pin: &Pin) -> Result<()> {
        self.tx
            .prepare_cached(
                "INSERT OR IGNORE INTO issued_pins (device_id, slot, digest) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![device_id, slot, digest(device_id, slot, pin)])?;
        Ok(())
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
