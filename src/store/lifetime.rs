//! Codes over time: what the store keeps so that slots are taken only while a
//! code is due, PINs a lock held are not handed out again, unmanaged codes
//! have stable ids, integrators' reports about a lock apply, and old codes go.
//!
//! Retention: a code that ended or was deleted, and is off its lock, keeps its
//! row for `retention` (late checkouts, audits) and is then deleted; the PIN
//! history keeps only keyed hashes, each for `pin_reuse`. Request ids are
//! pruned as before. So the store holds at most the codes live now plus those
//! finished within the retention period, whatever the years behind it.

use super::{Result, Tx};
use crate::model::{AccessCode, Capabilities, Pin};
use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};

/// An unmanaged code's id and when lockhub first saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnmanagedRow {
    pub device_id: String,
    pub slot: u32,
    pub access_code_id: String,
    pub created_at: String,
}

/// What an integrator reported about a lock (`access_codes/report_device_constraints`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReportedConstraints {
    pub supported_code_lengths: Vec<u8>,
}

fn ts(t: DateTime<Utc>) -> String {
    crate::model::access_code::ts(t)
}

impl Tx<'_> {
    /// The workspace events and objects are stamped with.
    pub fn workspace_id(&self) -> &str {
        &self.workspace_id
    }

    /// When lockhub first recorded the lock, and since when it is offline.
    pub fn device_times(&self, device_id: &str) -> Result<(Option<String>, Option<String>)> {
        Ok(self
            .tx
            .prepare_cached("SELECT created_at, offline_since FROM devices WHERE device_id = ?1")?
            .query_row([device_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?
            .unwrap_or((None, None)))
    }

    /// When lockhub first met the lock, by the hub's clock (the insert's own
    /// stamp is SQLite's wall clock).
    pub fn set_device_created_at(&self, device_id: &str, at: DateTime<Utc>) -> Result<()> {
        self.tx
            .prepare_cached("UPDATE devices SET created_at = ?2 WHERE device_id = ?1")?
            .execute(params![device_id, ts(at)])?;
        Ok(())
    }

    // ---- reported constraints ----

    pub(super) fn with_reported(&self, mut d: super::DeviceRow) -> Result<super::DeviceRow> {
        if let Some(r) = self.reported_constraints(&d.info.device_id)? {
            apply_reported(&mut d.info.capabilities, &r);
        }
        Ok(d)
    }

    pub fn reported_constraints(&self, device_id: &str) -> Result<Option<ReportedConstraints>> {
        let body: Option<String> = self
            .tx
            .prepare_cached("SELECT body FROM reported_constraints WHERE device_id = ?1")?
            .query_row([device_id], |r| r.get(0))
            .optional()?;
        Ok(body.map(|b| serde_json::from_str(&b)).transpose()?)
    }

    pub fn set_reported_constraints(&self, device_id: &str, r: &ReportedConstraints) -> Result<()> {
        self.tx
            .prepare_cached(
                "INSERT OR REPLACE INTO reported_constraints (device_id, body) VALUES (?1, ?2)",
            )?
            .execute(params![device_id, serde_json::to_string(r)?])?;
        Ok(())
    }

    // ---- PIN history (keyed hashes only) ----

    /// The hub's key for PIN history hashes, made on first use (32 random bytes).
    pub fn pin_history_key(&self) -> Result<[u8; 32]> {
        let found: Option<Vec<u8>> = self
            .tx
            .prepare_cached("SELECT value FROM hub_secrets WHERE name = 'pin_history_key'")?
            .query_row([], |r| r.get(0))
            .optional()?;
        if let Some(k) = found.filter(|k| k.len() == 32) {
            let mut key = [0u8; 32];
            key.copy_from_slice(&k);
            return Ok(key);
        }
        let mut key = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
        self.tx.execute(
            "INSERT OR REPLACE INTO hub_secrets (name, value) VALUES ('pin_history_key', ?1)",
            [&key[..]],
        )?;
        Ok(key)
    }

    /// Remember that the lock held `pin` until `at`.
    pub fn record_pin_held(&self, device_id: &str, pin: &Pin, at: DateTime<Utc>) -> Result<()> {
        let key = self.pin_history_key()?;
        let d = crate::pin::digest(&key, pin.expose());
        self.tx
            .prepare_cached(
                "INSERT INTO pin_history (device_id, digest, last_held) VALUES (?1, ?2, ?3)
                 ON CONFLICT(device_id, digest) DO UPDATE SET last_held = max(last_held, excluded.last_held)",
            )?
            .execute(params![device_id, &d[..], at.timestamp()])?;
        Ok(())
    }

    /// The PINs (as hashes) a lock held since `since`.
    pub fn recent_pins(
        &self,
        device_id: &str,
        since: DateTime<Utc>,
    ) -> Result<crate::pin::RecentPins> {
        let key = self.pin_history_key()?;
        let mut st = self.tx.prepare_cached(
            "SELECT digest FROM pin_history WHERE device_id = ?1 AND last_held >= ?2",
        )?;
        let digests = st
            .query_map(params![device_id, since.timestamp()], |r| {
                r.get::<_, Vec<u8>>(0)
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?
            .into_iter()
            .filter(|d| d.len() == 32)
            .map(|d| {
                let mut a = [0u8; 32];
                a.copy_from_slice(&d);
                a
            });
        Ok(crate::pin::RecentPins::new(key, digests))
    }

    pub fn prune_pin_history(&self, before: DateTime<Utc>) -> Result<usize> {
        Ok(self.tx.execute(
            "DELETE FROM pin_history WHERE last_held < ?1",
            [before.timestamp()],
        )?)
    }

    pub fn count_pin_history(&self) -> Result<u64> {
        Ok(self
            .tx
            .query_row("SELECT COUNT(*) FROM pin_history", [], |r| {
                r.get::<_, i64>(0)
            })? as u64)
    }

    // ---- retention ----

    /// Delete codes finished (ended or deleted, off the lock) before `before`.
    /// Returns how many went.
    pub fn purge_finished_codes(&self, before: DateTime<Utc>) -> Result<usize> {
        let mut st = self.tx.prepare_cached(
            "SELECT body FROM access_codes WHERE slot = 0 AND (deleted = 1 OR (ends_at IS NOT NULL AND ends_at < ?1))",
        )?;
        let bodies = st
            .query_map([before.timestamp()], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut gone = 0;
        for b in bodies {
            let b = self.sealer.open_text("access_codes.body", b)?;
            let c: AccessCode = serde_json::from_str(&b)?;
            let done = c
                .finished_at
                .or(c.window.map(|w| w.ends_at))
                .is_some_and(|t| t < before);
            if done {
                self.delete_code(&c.access_code_id)?;
                gone += 1;
            }
        }
        Ok(gone)
    }

    // ---- unmanaged codes ----

    fn unmanaged_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<UnmanagedRow> {
        Ok(UnmanagedRow {
            device_id: r.get(0)?,
            slot: r.get(1)?,
            access_code_id: r.get(2)?,
            created_at: r.get(3)?,
        })
    }

    /// The unmanaged code in a slot, giving it an id when first seen.
    pub fn ensure_unmanaged(
        &self,
        device_id: &str,
        slot: u32,
        at: DateTime<Utc>,
    ) -> Result<UnmanagedRow> {
        if let Some(u) = self.unmanaged_in_slot(device_id, slot)? {
            return Ok(u);
        }
        let row = UnmanagedRow {
            device_id: device_id.to_owned(),
            slot,
            access_code_id: uuid::Uuid::new_v4().to_string(),
            created_at: ts(at),
        };
        self.tx
            .prepare_cached(
                "INSERT INTO unmanaged_codes (device_id, slot, access_code_id, created_at) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![row.device_id, row.slot, row.access_code_id, row.created_at])?;
        Ok(row)
    }

    pub fn unmanaged_in_slot(&self, device_id: &str, slot: u32) -> Result<Option<UnmanagedRow>> {
        Ok(self
            .tx
            .prepare_cached(
                "SELECT device_id, slot, access_code_id, created_at FROM unmanaged_codes WHERE device_id = ?1 AND slot = ?2",
            )?
            .query_row(params![device_id, slot], Self::unmanaged_from_row)
            .optional()?)
    }

    pub fn unmanaged_by_id(&self, access_code_id: &str) -> Result<Option<UnmanagedRow>> {
        Ok(self
            .tx
            .prepare_cached(
                "SELECT device_id, slot, access_code_id, created_at FROM unmanaged_codes WHERE access_code_id = ?1",
            )?
            .query_row([access_code_id], Self::unmanaged_from_row)
            .optional()?)
    }

    pub fn unmanaged_for_device(&self, device_id: &str) -> Result<Vec<UnmanagedRow>> {
        let mut st = self.tx.prepare_cached(
            "SELECT device_id, slot, access_code_id, created_at FROM unmanaged_codes WHERE device_id = ?1 ORDER BY slot",
        )?;
        let v = st
            .query_map([device_id], Self::unmanaged_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(v)
    }

    /// The slot no longer holds that unmanaged code (gone, or now managed).
    pub fn forget_unmanaged(&self, device_id: &str, slot: u32) -> Result<()> {
        self.tx
            .prepare_cached("DELETE FROM unmanaged_codes WHERE device_id = ?1 AND slot = ?2")?
            .execute(params![device_id, slot])?;
        Ok(())
    }

    /// Rows in the store's main tables, for size checks.
    pub fn table_counts(&self) -> Result<Vec<(&'static str, u64)>> {
        let mut out = Vec::new();
        for t in [
            "access_codes",
            "slots",
            "requests",
            "outbox",
            "pin_history",
            "unmanaged_codes",
        ] {
            let n: i64 = self
                .tx
                .query_row(&format!("SELECT COUNT(*) FROM {t}"), [], |r| r.get(0))?;
            out.push((t, n as u64));
        }
        Ok(out)
    }
}

/// Lengths an integrator reported replace the driver's (they know the keypad).
pub fn apply_reported(caps: &mut Capabilities, r: &ReportedConstraints) {
    if !r.supported_code_lengths.is_empty() {
        caps.supported_code_lengths = r.supported_code_lengths.clone();
    }
}
