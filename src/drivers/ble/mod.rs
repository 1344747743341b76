//! Bluetooth LE driver (issue 5): Nuki smart locks over btleplug.
//!
//! Layout:
//! - [`nuki`]: the pure Nuki protocol (framing, CRC, encrypted envelope,
//!   authenticators, error codes); no I/O, so it is tested against the
//!   worked examples of the Nuki Smart Lock API 2.1.
//! - [`keys`]: pairing credentials per lock in a 0600 JSON file.

pub mod keys;
pub mod nuki;
