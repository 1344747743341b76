//! Z-Wave driver (issue 4): the Serial API to User Code, User Credential,
//! Schedule Entry Lock, Door Lock, Notification, Battery and Wake Up command
//! classes.
//!
//! Layers, bottom up:
//! - [`transport`]: the byte pipe (serial device or `tcp://host:port`);
//! - [`frame`]: SOF/ACK/NAK/CAN framing and checksums;
//! - [`session`]: the controller session (ACKs, retransmission, callbacks,
//!   one transmission in flight);
//! - [`security`]: Security S0 and S2 between the session and the command
//!   classes (keys file, nonces, encryption, the trust rule for reports);
//! - [`serialapi`]: function ids and the controller's answers;
//! - [`cc`]: command classes, built and parsed;
//! - [`driver`]: the [`crate::drivers::LockDriver`]; [`interview`] finds what
//!   a lock can do, `slots` reads and writes codes (User Code, handing User
//!   Credential locks to `credentials`), `quirks` judges masked read-backs,
//!   `retry` asks a lost Get again, `bolt` locks and unlocks, `reports` sorts
//!   what Notification / v1 Alarm reports mean (and knows a report sent
//!   again by its sequence number); all work through `node`, the shared node
//!   state (imports point one way: driver -> interview/slots/bolt ->
//!   credentials -> quirks/retry -> node -> reports, pure);
//! - [`lock_clock`]: the lock's own clock and time zone (set at the
//!   interview, kept when it drifts, after DST changes and restarts);
//! - [`config`]: what the driver is told at start (per-lock [`LockQuirks`],
//!   the [`GetRetry`] policy);
//! - [`testing`]: starts the pinned zwave-js mock controller for tests.
//!
//! ```no_run
//! # async fn demo() -> Result<(), lockhub::drivers::zwave::ZwaveError> {
//! use lockhub::drivers::zwave::{LockConfig, ZwaveConfig, ZwaveDriver};
//! let (events, _rx) = tokio::sync::mpsc::unbounded_channel();
//! let mut config = ZwaveConfig::new("/dev/ttyACM0"); // or "tcp://127.0.0.1:5555"
//! config.locks.push(LockConfig {
//!     node_id: 3,
//!     name: Some("Front door".into()),
//!     device_id: Some("6f1c0f0e-0000-4000-8000-000000000003".into()),
//! });
//! let driver = ZwaveDriver::connect(config, events).await?;
//! // Locks are announced as LockEvent::Discovered as their interviews end.
//! # let _ = driver; Ok(()) }
//! ```
//!
//! - [`inclusion`]: adding (with S2/S0 bootstrapping) and removing locks
//!   while the driver runs.
//!
//! Names on the lock: only User Credential has them (the user's name is the
//! code's, cut to the lock's length); the User Code CC has none.

mod bolt;
pub mod cc;
pub mod config;
mod credentials;
pub mod driver;
pub mod frame;
pub mod inclusion;
pub mod interview;
pub mod lock_clock;
mod node;
mod quirks;
mod reports;
mod retry;
pub mod security;
pub mod serialapi;
pub mod session;
mod slots;
pub mod testing;
pub mod transport;
mod waiters;
mod weekly;

pub use config::{GetRetry, HubClockTrust, LockConfig, LockQuirks, ZwaveConfig};
pub use driver::{ZwaveDriver, ZwaveError};
pub use node::default_device_id;
