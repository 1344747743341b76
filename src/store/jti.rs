//! Signed commands' ids (`jti`): each accepted once. Kept until the command
//! would have expired anyway (a replay after that fails on `exp`), durably,
//! in the transaction of the command that used it.

use super::{Result, Tx};
use rusqlite::{params, OptionalExtension};

impl Tx<'_> {
    /// Whether a signed command with this `jti` was accepted before (and may
    /// still be replayed: its `exp` has not passed).
    pub fn jti_used(&self, jti: &str, now: i64) -> Result<bool> {
        Ok(self
            .tx
            .prepare_cached("SELECT 1 FROM auth_jti WHERE jti = ?1 AND exp >= ?2")?
            .query_row(params![jti, now], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// Remember a `jti` until `exp`, and forget those already expired.
    pub fn remember_jti(&self, jti: &str, exp: i64, now: i64) -> Result<()> {
        self.tx
            .prepare_cached("DELETE FROM auth_jti WHERE exp < ?1")?
            .execute([now])?;
        self.tx
            .prepare_cached("INSERT OR REPLACE INTO auth_jti (jti, exp) VALUES (?1, ?2)")?
            .execute(params![jti, exp])?;
        Ok(())
    }
}
