//! Bluetooth LE driver (issue 5): Nuki smart locks over btleplug.
//!
//! Layout, bottom up:
//! - [`nuki`]: the pure Nuki protocol (framing, CRC, encrypted envelope,
//!   keypad payloads, authenticators, error codes, the pairing state machine);
//!   no I/O, tested against the worked examples of the Nuki Smart Lock API 2.1.
//! - [`link`]: the radio seam (`Radio` connects, `Link` writes and yields
//!   indication pieces); [`btle`] is btleplug behind it, [`memory`] fake
//!   locks with injected faults.
//! - [`session`]: one conversation with a lock: reassembly, the envelope,
//!   challenges, timeouts, typed errors.
//! - [`slot_map`]: lockhub's slots <-> the lock's code ids, on disk.
//! - [`driver`]: `BleDriver`, the `LockDriver` the engine drives.
//! - [`pair`]: pairing with a lock in pairing mode, keys into the [`keys`] store.
//! - [`fake_lock`]: a fake Nuki from the spec for tests (pairing, keypad store);
//!   [`fake_keyturner`] its lock mechanism (states, lock actions, activity log).

pub mod btle;
pub mod driver;
pub mod fake_keyturner;
pub mod fake_lock;
pub mod keys;
pub mod link;
pub mod memory;
pub mod nuki;
pub mod pair;
pub mod session;
pub mod slot_map;

pub use driver::{BleConfig, BleDriver, BleLockConfig};
