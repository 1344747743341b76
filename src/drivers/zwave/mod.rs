//! Z-Wave driver (issue 4): the Serial API to User Code, Schedule Entry Lock,
//! Door Lock, Notification, Battery and Wake Up command classes.
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
//!   a lock can do, `slots` reads and writes codes, `bolt` locks and unlocks,
//!   `reports` sorts what Notification / v1 Alarm reports mean; all work
//!   through `node`, the shared node state (imports point one way: driver ->
//!   interview/slots/bolt -> node);
//! - [`config`]: what the driver is told at start;
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
//! Not yet: names on the lock (the User Code CC has none).

mod bolt;
pub mod cc;
pub mod config;
pub mod driver;
pub mod frame;
pub mod inclusion;
pub mod interview;
mod node;
mod reports;
pub mod security;
pub mod serialapi;
pub mod session;
mod slots;
pub mod testing;
pub mod transport;

pub use config::{LockConfig, ZwaveConfig};
pub use driver::{ZwaveDriver, ZwaveError};
pub use node::default_device_id;
