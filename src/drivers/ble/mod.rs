//! Bluetooth LE driver (issue 5): Nuki smart locks over btleplug.
//!
//! Layout:
//! - [`nuki`]: the pure Nuki protocol (framing, CRC, encrypted envelope, keypad payloads,
//!   authenticators, error codes); no I/O, so it is tested against the
//!   worked examples (including the pairing state machine in `nuki::pairing`)
//!   of the Nuki Smart Lock API 2.1.
//! - [`fake_lock`]: a fake Nuki from the spec for tests (pairing, keypad store).
//! - [`keys`]: pairing credentials per lock in a 0600 JSON file.

pub mod fake_lock;
pub mod keys;
pub mod nuki;
