//! lockhub: an edge gateway that puts access codes from the cloud onto the door
//! locks of one property, and keeps them right over time.
//!
//! # Map
//!
//! Dependencies point down this list's layers: the daemon wires everything;
//! `hub` joins `commands` and `engine`; both sit on `store`, `model` and `pin`;
//! the engine drives `drivers`, which know nothing of MQTT or SQL.
//!
//! - [`daemon`]: what runs, started and stopped in order; systemd notify and watchdog.
//! - [`config`]: the configuration file and its layers; [`settings`]: the core's settings.
//! - [`logging`]: stderr for a terminal, a file, journald (no timestamps) or JSON.
//! - [`mqtt`]: the broker link (MQTT 5 or 3.1.1), the ingest (ack after commit) and the
//!   outbox publisher (no row the broker refuses blocks it; Home Assistant's
//!   discovery configs on every connect).
//! - [`homeassistant`]: what Home Assistant's MQTT discovery is told (entity
//!   configs from the public device objects; `mqtt` publishes them).
//! - [`auth`]: signed commands (JWS with EdDSA, the trusted JWK Set).
//! - [`status`]: the local socket (HTTP over a Unix socket; who may do what from the
//!   peer's credentials) and the CLI's tables.
//! - [`web`]: the installer page (socket, or TCP behind a password); [`jobs`]: long
//!   actions whose progress the page follows.
//! - [`hub`]: store + engine + commands, and the views the socket and publisher use.
//! - [`commands`]: one module per public command (parse, validate, plan, answer).
//! - [`engine`]: one reconciler per lock (desired vs observed), time-driven checks,
//!   what locks report (events, lock state), remote lock/unlock.
//! - [`store`]: SQLite (schema, migrations, every query, the outbox, recent events;
//!   PINs sealed at rest, the audit chain, used jtis, each lock's codes decoded in
//!   memory and kept true by the transactions; commits synced after the writer's lock is
//!   let go, one fsync shared by what committed meanwhile: `store::durable`; WAL
//!   checkpoints on a thread of their own: `store::checkpoint`).
//! - [`model`]: access codes (recurring ones: [`model::weekly`]), devices, capabilities,
//!   events, the masked [`model::Pin`] and the property's local time ([`model::zone`]:
//!   one time zone for the engine's weekly windows and the locks' clocks).
//! - [`pin`]: choosing one PIN every lock of a group accepts (pure, property-tested).
//! - [`drivers`]: the [`drivers::LockDriver`] boundary: [`drivers::sim`] (simulated
//!   locks), [`drivers::zwave`] (Serial API, command classes, S0/S2, the locks'
//!   clocks), [`drivers::ble`] (Nuki).
//! - [`progress`]: sections of work the systemd watchdog follows (engine, store writer).
//! - [`demo`]: `lockhub demo` on embedded defaults.
//! - [`fuzzing`]: every parser of outside bytes behind one face (the cargo-fuzz
//!   targets in `fuzz/` and the corpus regression test).

pub mod auth;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod drivers;
pub mod engine;
pub mod fuzzing;
pub mod homeassistant;
pub mod hub;
pub mod jobs;
pub mod logging;
pub mod model;
pub mod mqtt;
pub mod pin;
pub mod progress;
pub mod settings;
pub mod status;
pub mod store;
pub mod web;
