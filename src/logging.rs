//! Where log lines go and what they look like.
//!
//! One line per event on stderr. Colour escapes only when stderr is a terminal
//! (a log file or the journal gets plain text). No timestamps under systemd,
//! because journald stamps every line itself. `log_format = "json"` writes one
//! JSON object per line (with its own timestamp) for log shippers.
//!
//! Secrets never get here: PINs and keys are types whose `Debug`/`Display` mask them.

use serde::Deserialize;
use std::io::IsTerminal;

/// `log_format` in the config file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `fields`.
    Json,
}

/// What the environment says about stderr; read once, so tests can pass their own.
#[derive(Debug, Clone, Copy)]
pub struct Destination {
    /// stderr is a terminal and `NO_COLOR` is unset.
    pub colour: bool,
    /// Started by systemd with stderr to the journal (`JOURNAL_STREAM`) or as a unit (`INVOCATION_ID`).
    pub under_systemd: bool,
}

impl Destination {
    pub fn detect() -> Self {
        Destination {
            colour: std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
            under_systemd: std::env::var_os("JOURNAL_STREAM").is_some()
                || std::env::var_os("INVOCATION_ID").is_some(),
        }
    }
}

/// Install the process's subscriber (a second call is a no-op).
/// `RUST_LOG` overrides `level`.
pub fn init(level: &str, format: LogFormat) {
    init_for(level, format, Destination::detect());
}

pub fn init_for(level: &str, format: LogFormat, dest: Destination) {
    // The embedded demo broker (rumqttd) is chatty about ordinary disconnects.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("warn,rumqttd=off,lockhub={level}"))
    });
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match (format, dest.under_systemd) {
        (LogFormat::Json, _) => b.json().with_ansi(false).try_init(),
        (LogFormat::Text, true) => b.without_time().with_ansi(false).try_init(),
        (LogFormat::Text, false) => b.with_ansi(dest.colour).try_init(),
    };
}
