//! The domain's types, serialised with the public API's field names.

pub mod access_code;
pub mod device;
pub mod event;
pub mod secret;
pub mod weekly;
pub mod zone;

pub use access_code::{AccessCode, Issue, Retry, Status, Timing};
pub use device::{Capabilities, CodeConstraint, DeviceInfo, DriverKind};
pub use event::Event;
pub use secret::Pin;
pub use weekly::WeeklySchedule;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A code's validity window: on the lock from `starts_at`, gone at `ends_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeWindow {
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
}

impl TimeWindow {
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.starts_at <= t && t < self.ends_at
    }
}
