//! lockhub: an edge gateway that puts access codes from the cloud onto the door
//! locks of one property, and keeps them right over time.
//!
//! # Layout
//!
//! - [`model`]: access codes, devices, capabilities and the masked [`model::Pin`].
//! - [`pin`]: choosing one PIN every lock of a group accepts (pure, property-tested).
//! - [`drivers`]: the [`drivers::LockDriver`] boundary and its implementations:
//!   [`drivers::sim`] (simulated locks), [`drivers::zwave`], [`drivers::ble`].
//! - [`auth`]: signed commands (JWS with EdDSA, the trusted JWK Set).
//! - [`mqtt`]: the broker link (MQTT 5 or 3.1.1), ingest of commands, the outbox publisher.

pub mod auth;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod drivers;
pub mod engine;
pub mod hub;
pub mod logging;
pub mod model;
pub mod mqtt;
pub mod pin;
pub mod settings;
pub mod status;
pub mod store;
pub mod web;
