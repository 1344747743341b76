//! The Nuki Smart Lock BLE protocol (API v2.1), without any I/O.
//!
//! - [`frame`]: unencrypted messages (command id, payload, CRC-CCITT).
//! - [`crypto`]: key agreement (X25519 + HSalsa20), the encrypted envelope
//!   (XSalsa20-Poly1305) and HMAC-SHA256 authenticators.
//! - [`error`]: the lock's error codes and how they map onto lockhub's errors.
//! - [`states`]: the lock itself: Keyturner States, Lock Action, the activity log.

pub mod crypto;
pub mod error;
pub mod frame;
pub mod keypad;
pub mod pairing;
pub mod states;

pub use crypto::{EncryptedMessage, PrivateKey, PublicKey, SharedKey};
pub use error::{NukiError, ProtocolError};
pub use frame::{Command, Message};
