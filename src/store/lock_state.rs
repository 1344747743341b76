//! What the locks say about themselves: the bolt and door state, each code's
//! last use, and remote lock/unlock attempts, which are answered only once
//! the lock confirms (so the command's answer waits here, with where it goes).

use super::reply::{from_row, ReplyTo};
use super::{Result, Tx};
use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};

/// A lock's bolt and door as last reported (`None`: never reported), and
/// its standing low-battery warning (`low` or `critical`; cleared by a
/// level report of 20 % or more).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LockState {
    pub locked: Option<bool>,
    pub door_open: Option<bool>,
    pub battery_warning: Option<String>,
}

/// A `locks/lock_door` or `locks/unlock_door` as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionAttempt {
    pub action_attempt_id: String,
    pub request_id: String,
    pub device_id: String,
    /// `LOCK_DOOR` or `UNLOCK_DOOR`, as the public API names them.
    pub action_type: String,
    /// `pending`, `success` or `error`.
    pub status: String,
    pub error: Option<(String, String)>,
    pub created_at: DateTime<Utc>,
    pub reply_to: Option<ReplyTo>,
    pub fingerprint: Option<Vec<u8>>,
}

impl ActionAttempt {
    /// The public action attempt object.
    pub fn to_public(&self) -> serde_json::Value {
        let error = match &self.error {
            Some((t, m)) => serde_json::json!({"type": t, "message": m}),
            None => serde_json::Value::Null,
        };
        serde_json::json!({
            "action_attempt_id": self.action_attempt_id,
            "action_type": self.action_type,
            "status": self.status,
            "result": if self.status == "success" { serde_json::json!({}) } else { serde_json::Value::Null },
            "error": error,
            "device_id": self.device_id,
        })
    }
}

fn ts(t: DateTime<Utc>) -> String {
    crate::model::access_code::ts(t)
}

type RawAttempt = (
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    Option<String>,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
);

const ATTEMPT_COLUMNS: &str = "action_attempt_id, request_id, device_id, action_type, status, error_type, error_message, created_at, reply_topic, correlation, fingerprint";

fn attempt(r: RawAttempt) -> ActionAttempt {
    ActionAttempt {
        action_attempt_id: r.0,
        request_id: r.1,
        device_id: r.2,
        action_type: r.3,
        status: r.4,
        error: r.5.map(|t| (t, r.6.unwrap_or_default())),
        created_at: DateTime::parse_from_rfc3339(&r.7)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or(DateTime::<Utc>::UNIX_EPOCH),
        reply_to: from_row(r.8, r.9),
        fingerprint: r.10,
    }
}

fn raw(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawAttempt> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
        r.get(10)?,
    ))
}

impl Tx<'_> {
    pub fn lock_state(&self, device_id: &str) -> Result<LockState> {
        Ok(self
            .tx
            .prepare_cached(
                "SELECT locked, door_open, battery_warning FROM lock_state WHERE device_id = ?1",
            )?
            .query_row([device_id], |r| {
                Ok(LockState {
                    locked: r.get(0)?,
                    door_open: r.get(1)?,
                    battery_warning: r.get(2)?,
                })
            })
            .optional()?
            .unwrap_or_default())
    }

    /// Records the bolt's state; returns whether it changed what was known.
    pub fn set_locked(&self, device_id: &str, locked: bool, at: DateTime<Utc>) -> Result<bool> {
        let changed = self.tx.prepare_cached(
            "INSERT INTO lock_state (device_id, locked, updated_at) VALUES (?1, ?2, ?3)
             ON CONFLICT(device_id) DO UPDATE SET locked = excluded.locked, updated_at = excluded.updated_at
             WHERE lock_state.locked IS NOT excluded.locked",
        )?
        .execute(params![device_id, locked, ts(at)])?;
        Ok(changed > 0)
    }

    /// Records the door sensor's state; returns whether it changed.
    pub fn set_door_open(&self, device_id: &str, open: bool, at: DateTime<Utc>) -> Result<bool> {
        let changed = self.tx.prepare_cached(
            "INSERT INTO lock_state (device_id, door_open, updated_at) VALUES (?1, ?2, ?3)
             ON CONFLICT(device_id) DO UPDATE SET door_open = excluded.door_open, updated_at = excluded.updated_at
             WHERE lock_state.door_open IS NOT excluded.door_open",
        )?
        .execute(params![device_id, open, ts(at)])?;
        Ok(changed > 0)
    }

    /// Records (or, `None`, clears) the lock's low-battery warning.
    pub fn set_battery_warning(
        &self,
        device_id: &str,
        warning: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<()> {
        self.tx.prepare_cached(
            "INSERT INTO lock_state (device_id, battery_warning, updated_at) VALUES (?1, ?2, ?3)
             ON CONFLICT(device_id) DO UPDATE SET battery_warning = excluded.battery_warning, updated_at = excluded.updated_at",
        )?
        .execute(params![device_id, warning, ts(at)])?;
        Ok(())
    }

    /// When the code last opened its lock, as the lock reported it.
    pub fn code_last_used(&self, access_code_id: &str) -> Result<Option<String>> {
        Ok(self
            .tx
            .prepare_cached("SELECT last_used_at FROM code_uses WHERE access_code_id = ?1")?
            .query_row([access_code_id], |r| r.get(0))
            .optional()?)
    }

    /// The lock reported an unlock with this code at `at`: its last use, and
    /// one more use counted. Returns the uses counted so far. In the same
    /// transaction as the report's event, so a crash counts it with its
    /// event or not at all.
    pub fn set_code_used(&self, access_code_id: &str, at: DateTime<Utc>) -> Result<u32> {
        Ok(self
            .tx
            .prepare_cached(
                "INSERT INTO code_uses (access_code_id, last_used_at, use_count) VALUES (?1, ?2, 1)
                 ON CONFLICT(access_code_id) DO UPDATE SET last_used_at = excluded.last_used_at,
                   use_count = code_uses.use_count + 1
                 RETURNING use_count",
            )?
            .query_row(params![access_code_id, ts(at)], |r| r.get(0))?)
    }

    /// How many unlocks the lock reported with this code.
    pub fn code_use_count(&self, access_code_id: &str) -> Result<u32> {
        Ok(self
            .tx
            .prepare_cached("SELECT use_count FROM code_uses WHERE access_code_id = ?1")?
            .query_row([access_code_id], |r| r.get(0))
            .optional()?
            .unwrap_or(0))
    }

    /// A code that goes once the lock reports it used `max_uses` times
    /// (`is_one_time_use` is 1; more is lockhub's `max_uses`).
    pub fn set_use_limit(&self, access_code_id: &str, max_uses: u32) -> Result<()> {
        self.tx
            .prepare_cached(
                "INSERT INTO one_time_codes (access_code_id, max_uses) VALUES (?1, ?2)
                 ON CONFLICT(access_code_id) DO UPDATE SET max_uses = excluded.max_uses",
            )?
            .execute(params![access_code_id, max_uses])?;
        Ok(())
    }

    /// The code no longer goes after a number of uses (its count stays).
    pub fn clear_use_limit(&self, access_code_id: &str) -> Result<()> {
        self.tx
            .prepare_cached("DELETE FROM one_time_codes WHERE access_code_id = ?1")?
            .execute([access_code_id])?;
        Ok(())
    }

    /// Records the code that last opened the lock (`body`: its id, name,
    /// whether it is managed and when; never a PIN).
    pub fn set_last_code_used(
        &self,
        device_id: &str,
        body: &serde_json::Value,
        at: DateTime<Utc>,
    ) -> Result<()> {
        self.tx
            .prepare_cached(
                "INSERT INTO lock_state (device_id, last_code, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT(device_id) DO UPDATE SET last_code = excluded.last_code, updated_at = excluded.updated_at",
            )?
            .execute(params![device_id, body.to_string(), ts(at)])?;
        Ok(())
    }

    /// What [`Tx::set_last_code_used`] recorded last, as JSON.
    pub fn last_code_used(&self, device_id: &str) -> Result<Option<String>> {
        Ok(self
            .tx
            .prepare_cached("SELECT last_code FROM lock_state WHERE device_id = ?1")?
            .query_row([device_id], |r| r.get::<_, Option<String>>(0))
            .optional()?
            .flatten())
    }

    /// The uses after which the code goes, if it has a limit.
    pub fn use_limit(&self, access_code_id: &str) -> Result<Option<u32>> {
        Ok(self
            .tx
            .prepare_cached("SELECT max_uses FROM one_time_codes WHERE access_code_id = ?1")?
            .query_row([access_code_id], |r| r.get(0))
            .optional()?)
    }

    pub fn is_one_time_use(&self, access_code_id: &str) -> Result<bool> {
        Ok(self.use_limit(access_code_id)? == Some(1))
    }

    /// A purged code's uses and limit go with it.
    pub(super) fn forget_code_uses(&self, access_code_id: &str) -> Result<()> {
        for sql in [
            "DELETE FROM code_uses WHERE access_code_id = ?1",
            "DELETE FROM one_time_codes WHERE access_code_id = ?1",
        ] {
            self.tx.prepare_cached(sql)?.execute([access_code_id])?;
        }
        Ok(())
    }

    // ---- action attempts ----

    pub fn insert_action_attempt(&self, a: &ActionAttempt) -> Result<()> {
        let (topic, correlation) = match &a.reply_to {
            Some(r) => (Some(r.topic.as_str()), r.correlation.as_deref()),
            None => (None, None),
        };
        self.tx
            .prepare_cached(&format!(
                "INSERT INTO action_attempts ({ATTEMPT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
            ))?
            .execute(params![
                a.action_attempt_id,
                a.request_id,
                a.device_id,
                a.action_type,
                a.status,
                a.error.as_ref().map(|e| &e.0),
                a.error.as_ref().map(|e| &e.1),
                ts(a.created_at),
                topic,
                correlation,
                a.fingerprint,
            ])?;
        Ok(())
    }

    pub fn action_attempt_for_request(&self, request_id: &str) -> Result<Option<ActionAttempt>> {
        Ok(self
            .tx
            .prepare_cached(&format!(
                "SELECT {ATTEMPT_COLUMNS} FROM action_attempts WHERE request_id = ?1"
            ))?
            .query_row([request_id], raw)
            .optional()?
            .map(attempt))
    }

    /// Where a pending attempt's answer goes (a replay may name a new
    /// Response Topic), and the fingerprint of its request's body.
    pub fn set_action_reply(
        &self,
        action_attempt_id: &str,
        reply_to: Option<&ReplyTo>,
        fingerprint: &[u8],
    ) -> Result<()> {
        self.tx
            .prepare_cached(
                "UPDATE action_attempts SET reply_topic = ?2, correlation = ?3, fingerprint = ?4 WHERE action_attempt_id = ?1",
            )?
            .execute(params![
                action_attempt_id,
                reply_to.map(|r| &r.topic),
                reply_to.and_then(|r| r.correlation.as_ref()),
                fingerprint
            ])?;
        Ok(())
    }

    /// Attempts not yet carried out, oldest first.
    pub fn pending_action_attempts(&self) -> Result<Vec<ActionAttempt>> {
        let mut st = self.tx.prepare_cached(&format!(
            "SELECT {ATTEMPT_COLUMNS} FROM action_attempts WHERE status = 'pending' ORDER BY created_at, rowid"
        ))?;
        let rows = st
            .query_map([], raw)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows.into_iter().map(attempt).collect())
    }

    pub fn finish_action_attempt(
        &self,
        action_attempt_id: &str,
        error: Option<(&str, &str)>,
    ) -> Result<()> {
        self.tx
            .prepare_cached(
                "UPDATE action_attempts SET status = ?2, error_type = ?3, error_message = ?4 WHERE action_attempt_id = ?1",
            )?
            .execute(params![
                action_attempt_id,
                if error.is_some() { "error" } else { "success" },
                error.map(|e| e.0),
                error.map(|e| e.1),
            ])?;
        Ok(())
    }

    /// Forgets finished attempts older than `before` (their answers are kept
    /// with the request ids, pruned on the same schedule).
    pub fn prune_action_attempts(&self, before: DateTime<Utc>) -> Result<usize> {
        Ok(self
            .tx
            .prepare_cached(
                "DELETE FROM action_attempts WHERE status != 'pending' AND created_at < ?1",
            )?
            .execute([ts(before)])?)
    }
}
