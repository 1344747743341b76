//! The clock's trust as the store keeps it (`engine::trust` decides): the
//! latest trusted time seen, written about once a minute so a reboot with the
//! clock at 1970 or at a stale time is recognised, and since when the clock is
//! untrusted (device state and health show it).

use super::{parse_ts, Result, Tx};
use chrono::{DateTime, Utc};
use rusqlite::OptionalExtension;

impl Tx<'_> {
    pub fn latest_trusted_time(&self) -> Result<Option<DateTime<Utc>>> {
        self.clock_field("SELECT latest_trusted FROM clock_state WHERE id = 1")
    }

    pub fn set_latest_trusted_time(&self, t: DateTime<Utc>) -> Result<()> {
        self.tx.execute(
            "UPDATE clock_state SET latest_trusted = ?1 WHERE id = 1",
            [t.to_rfc3339()],
        )?;
        Ok(())
    }

    /// Since when the clock is untrusted (`None`: it is trusted).
    pub fn clock_untrusted_since(&self) -> Result<Option<DateTime<Utc>>> {
        self.clock_field("SELECT untrusted_since FROM clock_state WHERE id = 1")
    }

    pub fn set_clock_untrusted_since(&self, t: Option<DateTime<Utc>>) -> Result<()> {
        self.tx.execute(
            "UPDATE clock_state SET untrusted_since = ?1 WHERE id = 1",
            [t.map(|t| t.to_rfc3339())],
        )?;
        Ok(())
    }

    fn clock_field(&self, sql: &str) -> Result<Option<DateTime<Utc>>> {
        let v: Option<Option<String>> = self
            .tx
            .prepare_cached(sql)?
            .query_row([], |r| r.get(0))
            .optional()?;
        Ok(parse_ts(v.flatten()))
    }
}
