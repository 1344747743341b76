//! What the Z-Wave driver is told at start: the controller's port, the
//! locks' names and ids, timings.

use super::security::{NetworkKeys, SecurityTiming};
use super::session::SessionConfig;
use std::collections::BTreeMap;
use std::time::Duration;

/// How config names a lock and pins its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockConfig {
    pub node_id: u8,
    pub name: Option<String>,
    /// lockhub's id for the lock; defaults to [`default_device_id`].
    pub device_id: Option<String>,
}

/// What config says about one lock's quirks, where the lock does not say
/// (or lies). Everything unset: as the interview finds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LockQuirks {
    /// `Some(false)`: never wrap this lock's Sets in Supervision (its
    /// Supervision is broken); `None`/`Some(true)`: where it supports it.
    pub supervision: Option<bool>,
    /// `Some(true)`: the lock masks codes on read-back (`****`); verified by
    /// checksum or slot status, never by digits. `None`: detected on the
    /// first masked read; `Some(false)`: never assumed.
    pub masked_pins: Option<bool>,
    /// The code lengths (min, max) the lock takes, for locks that do not say
    /// (User Code has no length report; User Credential's wins over this).
    pub code_lengths: Option<(u8, u8)>,
}

/// How a Get that met no answer is asked again (a lossy mesh).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetRetry {
    /// Extra tries after the first (0: none).
    pub retries: u8,
    /// Wait before the first retry; doubled for each later one.
    pub backoff: Duration,
}

impl Default for GetRetry {
    fn default() -> Self {
        GetRetry {
            retries: 1,
            backoff: Duration::from_millis(500),
        }
    }
}

/// Everything the driver needs to start.
#[derive(Debug, Clone)]
pub struct ZwaveConfig {
    /// `/dev/ttyACM0`-style device or `tcp://host:port`.
    pub port: String,
    /// Names and pinned ids for locks (by node id); other locks found by the
    /// interview are served with default names and ids.
    pub locks: Vec<LockConfig>,
    /// Per-lock quirks, by node id.
    pub quirks: BTreeMap<u8, LockQuirks>,
    pub session: SessionConfig,
    /// How long a node gets to send the report a Get asked for.
    pub report_timeout: Duration,
    /// How a timed-out Get is retried.
    pub get_retry: GetRetry,
    /// How often an offline lock is pinged to notice it is back (None: only
    /// when it speaks up by itself or an operation reaches it).
    pub offline_ping_interval: Option<Duration>,
    /// How long `apply`/`read_slots` wait for a sleeping lock to wake up.
    pub wake_up_wait: Duration,
    /// The property's time zone: the locks' clocks run in it and their
    /// year-day windows are written in its local time.
    pub timezone: jiff::tz::TimeZone,
    /// How often each lock's clock is read back and set again if it drifted
    /// (also just after each DST change); `None`: only at the interview.
    pub clock_check_interval: Option<Duration>,
    /// Asked before a lock's clock is set or corrected.
    pub hub_clock: HubClockTrust,
    /// Wrap Sets in Supervision where the lock supports it (and its
    /// [`LockQuirks::supervision`] does not say no).
    pub use_supervision: bool,
    /// The network keys (S0 and S2); `None`: plaintext locks only.
    pub keys: Option<NetworkKeys>,
    /// Nonce round trips of the security layer.
    pub security: SecurityTiming,
}

impl ZwaveConfig {
    /// The quirks config gives `node` (none: all unset).
    pub fn quirks_of(&self, node: u8) -> LockQuirks {
        self.quirks.get(&node).cloned().unwrap_or_default()
    }

    pub fn new(port: impl Into<String>) -> Self {
        ZwaveConfig {
            port: port.into(),
            locks: Vec::new(),
            quirks: BTreeMap::new(),
            session: SessionConfig::default(),
            report_timeout: Duration::from_secs(5),
            get_retry: GetRetry::default(),
            offline_ping_interval: Some(Duration::from_secs(60)),
            wake_up_wait: Duration::from_secs(15 * 60),
            timezone: jiff::tz::TimeZone::UTC,
            clock_check_interval: Some(Duration::from_secs(24 * 3600)),
            use_supervision: true,
            keys: None,
            security: SecurityTiming::default(),
            hub_clock: HubClockTrust::default(),
        }
    }
}

/// Whether the hub's own clock can be believed (the engine's clock trust):
/// a lock's clock is never set from a hub that booted at 1970 or woke days
/// stale. Believed always unless the daemon says otherwise.
#[derive(Clone)]
pub struct HubClockTrust(pub std::sync::Arc<dyn Fn() -> bool + Send + Sync>);

impl HubClockTrust {
    pub fn trusted(&self) -> bool {
        (self.0)()
    }
}

impl Default for HubClockTrust {
    fn default() -> Self {
        HubClockTrust(std::sync::Arc::new(|| true))
    }
}

impl std::fmt::Debug for HubClockTrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HubClockTrust(trusted: {})", self.trusted())
    }
}
