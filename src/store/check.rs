//! Checks of the store itself: that its writer can take SQLite's write lock
//! (for the watchdog: a hung disk or a stuck writer shows here).

use super::{Result, Store};

impl Store {
    /// Take and release SQLite's write lock (`BEGIN IMMEDIATE; COMMIT`): no
    /// page is written, so this costs no fsync. Blocks while the writer is
    /// busy or another process holds the database (up to the busy timeout).
    pub fn probe_writer(&self) -> Result<()> {
        let _writing = self.writing.guard();
        let conn = self.conn();
        conn.execute_batch("BEGIN IMMEDIATE; COMMIT")?;
        Ok(())
    }
}
