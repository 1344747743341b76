//! Z-Wave driver (issue 4): the Serial API to User Code, Schedule Entry Lock,
//! Door Lock, Notification, Battery and Wake Up command classes.
//!
//! Layers, bottom up:
//! - [`transport`]: the byte pipe (serial device or `tcp://host:port`);
//! - [`frame`]: SOF/ACK/NAK/CAN framing and checksums;
//! - [`session`]: the controller session (ACKs, retransmission, callbacks,
//!   one transmission in flight);
//! - [`serialapi`]: function ids and the controller's answers;
//! - [`cc`]: command classes, built and parsed;
//! - [`driver`]: interview, slots, events: the [`crate::drivers::LockDriver`].

pub mod cc;
pub mod driver;
pub mod frame;
pub mod interview;
pub mod serialapi;
pub mod session;
mod slots;
pub mod testing;
pub mod transport;

pub use driver::{default_device_id, LockConfig, ZwaveConfig, ZwaveDriver, ZwaveError};
