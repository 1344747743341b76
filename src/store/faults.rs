//! A lock's standing fault, shown in its device object's `errors[]`: a
//! failure that is not the lock being away (e.g. replies lockhub cannot
//! read), with the time it began. Set when a read or write of the lock fails
//! that way, cleared when the lock next answers well.

use super::{Result, Tx};
use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};

/// A device's fault: a stable code (`lock_protocol_error`), what happened,
/// and since when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceFault {
    pub code: String,
    pub message: String,
    pub since: DateTime<Utc>,
}

impl Tx<'_> {
    /// Records a fault (keeping the first `since` while the code stays the
    /// same), or clears it with `None`.
    pub fn set_device_fault(
        &self,
        device_id: &str,
        fault: Option<(&str, &str)>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let (code, message) = fault.unzip();
        self.tx
            .prepare_cached(
                "UPDATE devices SET
                   fault_since = CASE WHEN ?2 IS NULL THEN NULL
                                      WHEN fault_code IS ?2 THEN fault_since ELSE ?4 END,
                   fault_code = ?2, fault_message = ?3
                 WHERE device_id = ?1",
            )?
            .execute(params![
                device_id,
                code,
                message,
                crate::model::access_code::ts(now)
            ])?;
        Ok(())
    }

    pub fn device_fault(&self, device_id: &str) -> Result<Option<DeviceFault>> {
        let row: Option<(Option<String>, Option<String>, Option<String>)> = self
            .tx
            .prepare_cached(
                "SELECT fault_code, fault_message, fault_since FROM devices WHERE device_id = ?1",
            )?
            .query_row([device_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        Ok(match row {
            Some((Some(code), message, since)) => Some(DeviceFault {
                code,
                message: message.unwrap_or_default(),
                since: super::parse_ts(since).unwrap_or(DateTime::<Utc>::UNIX_EPOCH),
            }),
            _ => None,
        })
    }
}
