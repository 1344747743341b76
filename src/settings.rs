//! The core's settings: what commands and the engine need to know, whatever
//! the configuration file looked like (the `config` module maps onto this).

use crate::model::Timing;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct HubSettings {
    /// The hub has no workspace of its own; access codes carry this one.
    pub workspace_id: String,
    /// Codes without native scheduling go on the lock this long before `starts_at`.
    pub set_before_start: chrono::Duration,
    /// The most locks one command may name.
    pub max_devices_per_request: usize,
    /// The largest command payload accepted, in bytes.
    pub max_payload_bytes: usize,
    /// Backup codes kept on each lock that supports a pool and was asked for one.
    pub backup_pool_size: u32,
    /// A code still not on its lock after this long gets `delay_in_setting_on_device`
    /// (and a removal, `delay_in_removing_from_device`).
    pub delay_warning_after: chrono::Duration,
    /// First retry after a transient failure; doubles up to `retry_max`, with jitter.
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// Include PINs in retained state and events (`mqtt.publish_codes`).
    pub publish_codes: bool,
    /// How long a request_id's response is kept for replays.
    pub request_retention: chrono::Duration,
    /// The engine's longest sleep: bounds how late a wall-clock step is noticed.
    pub max_idle_sleep: Duration,
    /// Natively scheduled codes are programmed at most this long before `starts_at`.
    pub native_schedule_horizon: chrono::Duration,
    /// Ended and deleted codes are kept this long (late checkouts, audits), then purged.
    pub retention: chrono::Duration,
    /// A PIN a lock held within this long is never chosen again for that lock.
    pub pin_reuse: chrono::Duration,
    /// Audit rows are kept this long, then pruned (the chain keeps its base).
    pub audit_retention: chrono::Duration,
    /// Signed commands (`[auth] mode = "signed"`): the trusted keys. `None`:
    /// commands from the broker are not signed.
    pub trust: Option<std::sync::Arc<crate::auth::Trust>>,
    /// The property's time zone (top-level `timezone`): hub-driven weekly
    /// windows are written in its wall-clock time, and the Z-Wave locks'
    /// clocks are set from the same value (`model::zone`).
    pub timezone: jiff::tz::TimeZone,
}

impl Default for HubSettings {
    fn default() -> Self {
        HubSettings {
            workspace_id: "00000000-0000-4000-8000-000000000000".into(),
            set_before_start: chrono::Duration::minutes(5),
            max_devices_per_request: 50,
            max_payload_bytes: 64 * 1024,
            backup_pool_size: 2,
            delay_warning_after: chrono::Duration::minutes(5),
            retry_base: Duration::from_secs(2),
            retry_max: Duration::from_secs(300),
            publish_codes: false,
            request_retention: chrono::Duration::days(7),
            max_idle_sleep: Duration::from_secs(60),
            native_schedule_horizon: chrono::Duration::hours(24),
            retention: chrono::Duration::days(30),
            pin_reuse: chrono::Duration::days(365),
            audit_retention: chrono::Duration::days(180),
            trust: None,
            timezone: jiff::tz::TimeZone::UTC,
        }
    }
}

impl HubSettings {
    pub fn timing(&self) -> Timing {
        Timing {
            set_before_start: self.set_before_start,
            native_schedule_horizon: self.native_schedule_horizon,
            timezone: self.timezone.clone(),
        }
    }
}
