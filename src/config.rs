//! Settings: built-in defaults < the config file < its `FILE.d/*.toml` drop-ins
//! (sorted) < `LOCKHUB__SECTION__KEY` environment variables < command-line flags.
//! Unknown keys are errors that name the key. Secrets are never read from argv:
//! the MQTT password comes from `mqtt.password_file` or `LOCKHUB_MQTT_PASSWORD`.

use crate::model::{Capabilities, CodeConstraint};
use crate::settings::HubSettings;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `check-config` exits with this when the configuration is bad (EX_CONFIG).
pub const EXIT_CONFIG: i32 = 78;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Invalid(String),
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// This hub's id: part of every topic and of the MQTT client id.
    pub hub_id: String,
    /// The workspace access codes report (the hub has none of its own).
    pub workspace_id: String,
    /// `error`, `warn`, `info`, `debug` or `trace` (RUST_LOG overrides).
    pub log_level: String,
    /// `text` (plain lines; no timestamps under systemd) or `json` (one object per line).
    pub log_format: crate::logging::LogFormat,
    /// The property's time zone, an IANA name (`Europe/Vienna`); empty: the
    /// hub's own (`/etc/localtime`). Z-Wave locks' clocks run in it and
    /// their native windows are written in its local time.
    pub timezone: String,
    pub store: StoreConfig,
    pub mqtt: MqttConfig,
    pub socket: SocketConfig,
    pub engine: EngineConfig,
    pub sim: SimConfig,
    pub zwave: ZwaveSection,
    pub ble: BleSection,
    pub auth: AuthConfig,
    pub web: WebSection,
    pub homeassistant: HomeAssistantSection,
    /// The file this was loaded from (for the installer page's check-config).
    #[serde(skip)]
    pub source_file: Option<PathBuf>,
}

/// The installer page: always on the local socket; on TCP only with a password.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebSection {
    /// `host:port` to serve the page on as well (a loopback or LAN address);
    /// empty: the local socket only.
    pub listen: String,
    /// Argon2 PHC string (`lockhub web hash-password` makes one); required with `listen`.
    pub password_hash: String,
}

/// Home Assistant MQTT discovery (opt-in): each lock announced as entities
/// on the same broker (`crate::homeassistant`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HomeAssistantSection {
    pub enabled: bool,
    /// Home Assistant's discovery prefix (its MQTT integration's setting).
    pub discovery_prefix: String,
    /// Whether Home Assistant may lock and unlock (a `lock` entity with a
    /// command topic). Unset: yes with `[auth] mode = "off"`, no with
    /// `"signed"` (its commands are not signed; `true` lets them in anyway).
    pub commands: Option<bool>,
}

impl Default for HomeAssistantSection {
    fn default() -> Self {
        HomeAssistantSection {
            enabled: false,
            discovery_prefix: "homeassistant".into(),
            commands: None,
        }
    }
}

impl HomeAssistantSection {
    /// Whether Home Assistant's lock commands are taken, given the auth mode.
    pub fn commands_allowed(&self, mode: crate::auth::AuthMode) -> bool {
        self.commands.unwrap_or(mode == crate::auth::AuthMode::Off)
    }
}

/// Who may command the hub over MQTT.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// `off`: anyone who may publish on the command topics; `signed`: only
    /// commands signed (JWS, EdDSA) by a key in `trusted_keys_file`.
    pub mode: crate::auth::AuthMode,
    /// A JWK Set of Ed25519 public keys, each with its `kid`.
    pub trusted_keys_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    pub path: PathBuf,
    /// Where the periodic online backup goes (`store restore` reads it);
    /// empty: `<path>.backup`.
    pub backup_path: PathBuf,
    /// How often the backup is written, in seconds (0: never).
    pub backup_every: u64,
    /// The key PINs at rest are sealed with (32 bytes, mode 0600, created on
    /// first start). Default: `{path}.key`. Keep a copy apart from backups of
    /// the database: without it the PINs in them cannot be read.
    pub key_file: Option<PathBuf>,
}

impl StoreConfig {
    /// `backup_path`, or its default next to the store.
    pub fn backup_file(&self) -> PathBuf {
        if self.backup_path.as_os_str().is_empty() {
            PathBuf::from(format!("{}.backup", self.path.display()))
        } else {
            self.backup_path.clone()
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttConfig {
    /// Without a broker lockhub still runs (local socket only).
    pub enabled: bool,
    pub host: String,
    pub port: u16,
    /// Topics are `{prefix}/{hub_id}/...`.
    pub prefix: String,
    /// Defaults to `lockhub-{hub_id}`.
    pub client_id: Option<String>,
    pub username: Option<String>,
    /// A file holding the password (mode 0600); or set LOCKHUB_MQTT_PASSWORD.
    pub password_file: Option<PathBuf>,
    pub keep_alive_secs: u64,
    /// Include PINs in retained state and events.
    pub publish_codes: bool,
    /// Larger command payloads are refused (answered on responses/_invalid).
    pub max_payload_bytes: usize,
    /// Most commands committed together (group commit).
    pub max_batch: usize,
    pub reconnect_min_ms: u64,
    pub reconnect_max_ms: u64,
    pub tls: TlsConfig,
    /// `v5` (default: Maximum Packet Size, Response Topic, session expiry) or `v3.1.1`.
    pub protocol: MqttProtocol,
    /// MQTT 5: how long the broker keeps the session (and the commands queued
    /// for it) while the hub is away.
    pub session_expiry_secs: u32,
    /// The largest packet accepted from the broker (MQTT 5 sends it in CONNECT,
    /// so the broker never delivers a bigger one).
    pub max_packet_bytes: u32,
}

/// The MQTT protocol version spoken to the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
pub enum MqttProtocol {
    #[default]
    #[serde(rename = "v5")]
    V5,
    #[serde(rename = "v3.1.1")]
    V311,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    pub enabled: bool,
    /// PEM file of the CA(s) that sign the broker's certificate.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate and key, for brokers that ask for one.
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SocketConfig {
    pub enabled: bool,
    pub path: PathBuf,
    /// File mode of the socket, octal.
    pub mode: String,
    /// Members of this group may read (GET, PINs masked); only root and the
    /// service user may send commands or reveal PINs. Empty: no readers.
    pub group: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    pub set_before_start_secs: i64,
    pub delay_warning_after_secs: i64,
    pub retry_base_ms: u64,
    pub retry_max_secs: u64,
    pub backup_pool_size: u32,
    pub max_devices_per_request: usize,
    pub request_retention_days: i64,
    /// Natively scheduled codes are programmed at most this long before starts_at.
    pub native_schedule_horizon_secs: i64,
    /// Ended and deleted codes are kept this long, then purged.
    pub retention_days: i64,
    /// A PIN a lock held within this many days is never chosen again for it.
    pub pin_reuse_days: i64,
    /// Audit rows older than this are pruned (the chain stays verifiable).
    pub audit_retention_days: i64,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimConfig {
    /// Keep the simulated locks' slots on disk here, so they outlive a restart
    /// of lockhub as real locks do (tests, demos). Empty: in memory.
    pub state_dir: Option<PathBuf>,
    pub locks: Vec<SimLockConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimLockConfig {
    pub device_id: String,
    pub name: String,
    #[serde(default = "default_lengths")]
    pub supported_code_lengths: Vec<u8>,
    #[serde(default)]
    pub code_constraints: Vec<CodeConstraint>,
    #[serde(default = "default_slots")]
    pub slots: u32,
    #[serde(default)]
    pub native_scheduling: bool,
    #[serde(default)]
    pub backup_pool: bool,
    #[serde(default)]
    pub latency_ms: u64,
    #[serde(default = "yes")]
    pub online: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ZwaveSection {
    /// `/dev/ttyACM0` or `tcp://host:port`; empty: no Z-Wave.
    pub port: String,
    pub report_timeout_ms: Option<u64>,
    /// The network keys (S0/S2), zwave-js's JSON names; created with fresh
    /// keys (mode 0600) when missing.
    pub keys_file: PathBuf,
    pub locks: Vec<ZwaveLockConfig>,
}

impl Default for ZwaveSection {
    fn default() -> Self {
        ZwaveSection {
            port: String::new(),
            report_timeout_ms: None,
            keys_file: "/var/lib/lockhub/zwave-keys.json".into(),
            locks: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZwaveLockConfig {
    pub node_id: u8,
    pub device_id: Option<String>,
    pub name: Option<String>,
    /// `false`: never wrap this lock's Sets in Supervision (broken on some locks).
    pub supervision: Option<bool>,
    /// `true`: the lock shows `****` for codes on read-back (else detected).
    pub masked_pins: Option<bool>,
    /// `[min, max]` code lengths, for a lock that does not say (User Code).
    pub code_lengths: Option<[u8; 2]>,
}

/// Nuki smart locks over Bluetooth LE.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BleSection {
    /// Off: no Bluetooth, whatever `locks` says.
    pub enabled: bool,
    /// Part of the adapter's description (`hci0`); empty: the first adapter.
    pub adapter: String,
    /// Pairing keys, written by `lockhub ble pair` with mode 0600.
    pub keys_file: PathBuf,
    /// Which lockhub slot each lock's code ids sit in.
    pub slots_file: PathBuf,
    /// Connections open at once on the adapter.
    pub max_connections: usize,
    pub connect_timeout_ms: u64,
    pub reply_timeout_ms: u64,
    /// Codes a Nuki keypad holds (the lock has no command that tells).
    pub keypad_capacity: u32,
    /// Keep a connection this long after a batch (0: close at once).
    pub linger_ms: u64,
    pub locks: Vec<crate::drivers::ble::BleLockConfig>,
}

impl Default for BleSection {
    fn default() -> Self {
        let d = crate::drivers::ble::BleConfig::default();
        BleSection {
            enabled: false,
            adapter: String::new(),
            keys_file: "/var/lib/lockhub/ble-keys.json".into(),
            slots_file: "/var/lib/lockhub/ble-slots.json".into(),
            max_connections: d.max_connections,
            connect_timeout_ms: d.connect_timeout.as_millis() as u64,
            reply_timeout_ms: d.reply_timeout.as_millis() as u64,
            keypad_capacity: d.keypad_capacity,
            linger_ms: d.linger.as_millis() as u64,
            locks: Vec::new(),
        }
    }
}

impl BleSection {
    /// The adapter to open: `None` for the first one.
    pub fn adapter(&self) -> Option<&str> {
        Some(self.adapter.as_str()).filter(|a| !a.is_empty())
    }

    /// The driver's view of this section.
    pub fn driver_config(&self) -> crate::drivers::ble::BleConfig {
        use std::time::Duration;
        crate::drivers::ble::BleConfig {
            locks: self.locks.clone(),
            max_connections: self.max_connections,
            connect_timeout: Duration::from_millis(self.connect_timeout_ms),
            reply_timeout: Duration::from_millis(self.reply_timeout_ms),
            keypad_capacity: self.keypad_capacity,
            linger: Duration::from_millis(self.linger_ms),
        }
    }
}

/// A BLE address: six hex octets separated by ':'.
pub fn is_ble_address(a: &str) -> bool {
    let parts: Vec<&str> = a.split(':').collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
}

fn default_lengths() -> Vec<u8> {
    vec![4, 5, 6, 7, 8]
}
fn default_slots() -> u32 {
    30
}
fn yes() -> bool {
    true
}

impl Default for Config {
    fn default() -> Self {
        Config {
            hub_id: "hub".into(),
            workspace_id: HubSettings::default().workspace_id,
            log_level: "info".into(),
            log_format: Default::default(),
            timezone: String::new(),
            store: StoreConfig::default(),
            mqtt: MqttConfig::default(),
            socket: SocketConfig::default(),
            engine: EngineConfig::default(),
            sim: SimConfig::default(),
            zwave: ZwaveSection::default(),
            ble: BleSection::default(),
            auth: AuthConfig::default(),
            web: WebSection::default(),
            homeassistant: HomeAssistantSection::default(),
            source_file: None,
        }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            path: "/var/lib/lockhub/lockhub.db".into(),
            backup_path: PathBuf::new(),
            backup_every: 3600,
            key_file: None,
        }
    }
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            enabled: true,
            host: "127.0.0.1".into(),
            port: 1883,
            prefix: "lockhub".into(),
            client_id: None,
            username: None,
            password_file: None,
            keep_alive_secs: 30,
            publish_codes: false,
            max_payload_bytes: 64 * 1024,
            max_batch: 32,
            reconnect_min_ms: 500,
            reconnect_max_ms: 30_000,
            tls: TlsConfig::default(),
            protocol: MqttProtocol::V5,
            session_expiry_secs: 7 * 24 * 3600,
            max_packet_bytes: 4 * 1024 * 1024,
        }
    }
}

impl Default for SocketConfig {
    fn default() -> Self {
        SocketConfig {
            enabled: true,
            path: "/run/lockhub/lockhub.sock".into(),
            mode: "0660".into(),
            group: "lockhub".into(),
        }
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        let d = HubSettings::default();
        EngineConfig {
            set_before_start_secs: d.set_before_start.num_seconds(),
            delay_warning_after_secs: d.delay_warning_after.num_seconds(),
            retry_base_ms: d.retry_base.as_millis() as u64,
            retry_max_secs: d.retry_max.as_secs(),
            backup_pool_size: d.backup_pool_size,
            max_devices_per_request: d.max_devices_per_request,
            request_retention_days: d.request_retention.num_days(),
            native_schedule_horizon_secs: d.native_schedule_horizon.num_seconds(),
            retention_days: d.retention.num_days(),
            pin_reuse_days: d.pin_reuse.num_days(),
            audit_retention_days: d.audit_retention.num_days(),
        }
    }
}

/// Where the pieces of the configuration come from.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// The main file; `None`: built-in defaults only.
    pub file: Option<PathBuf>,
    /// `KEY=VALUE` overrides from flags (`mqtt.port=1884`), applied last.
    pub overrides: Vec<(String, String)>,
}

impl Config {
    /// Load and check the configuration from its layers.
    pub fn load(sources: &Sources) -> Result<Config, ConfigError> {
        use config::{Environment, File, FileFormat};
        let mut b = config::Config::builder();
        if let Some(file) = &sources.file {
            if !file.exists() {
                return Err(ConfigError::Invalid(format!(
                    "{}: no such file",
                    file.display()
                )));
            }
            b = b.add_source(
                File::from(file.as_path())
                    .format(FileFormat::Toml)
                    .required(true),
            );
            for d in drop_ins(file)? {
                b = b.add_source(
                    File::from(d.as_path())
                        .format(FileFormat::Toml)
                        .required(true),
                );
            }
        }
        b = b.add_source(
            Environment::with_prefix("LOCKHUB")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true),
        );
        for (k, v) in &sources.overrides {
            b = b
                .set_override(k.as_str(), v.as_str())
                .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        }
        let mut cfg: Config = b
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|e| ConfigError::Invalid(describe(e)))?;
        cfg.source_file = sources.file.clone();
        cfg.validate()?;
        Ok(cfg)
    }

    /// Set when Home Assistant's unsigned lock commands are let in although
    /// commands must be signed (`[homeassistant] commands = true` with
    /// `auth.mode = "signed"`): what to say about it.
    pub fn unsigned_home_assistant(&self) -> Option<String> {
        let ha = &self.homeassistant;
        (ha.enabled
            && ha.commands == Some(true)
            && self.auth.mode == crate::auth::AuthMode::Signed)
            .then(|| {
                format!(
                    "homeassistant.commands = true: Home Assistant's lock commands are taken unsigned although auth.mode is \"signed\"; let only Home Assistant publish on {}/{}/homeassistant/+/set (the broker's ACL)",
                    self.mqtt.prefix, self.hub_id
                )
            })
    }

    /// Checks serde cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, why: &str| Err(ConfigError::Invalid(format!("{key}: {why}")));
        if self.hub_id.is_empty()
            || self
                .hub_id
                .chars()
                .any(|c| matches!(c, '/' | '+' | '#') || c.is_control())
        {
            return bad(
                "hub_id",
                "must be non-empty, without '/', '+', '#' or control characters",
            );
        }
        if uuid::Uuid::parse_str(&self.workspace_id).is_err() {
            return bad("workspace_id", "must be a UUID");
        }
        self.time_zone()?;
        if self.mqtt.prefix.is_empty() || self.mqtt.prefix.contains(['+', '#']) {
            return bad("mqtt.prefix", "must be non-empty, without '+' or '#'");
        }
        let ha = &self.homeassistant.discovery_prefix;
        if ha.is_empty()
            || ha.starts_with('/')
            || ha.ends_with('/')
            || ha.chars().any(|c| matches!(c, '+' | '#') || c.is_control())
        {
            return bad(
                "homeassistant.discovery_prefix",
                "must be non-empty, without '+', '#', control characters or a leading or trailing '/'",
            );
        }
        if self.mqtt.max_batch == 0 {
            return bad("mqtt.max_batch", "must be at least 1");
        }
        if self.mqtt.max_payload_bytes < 1024 {
            return bad("mqtt.max_payload_bytes", "must be at least 1024");
        }
        if (self.mqtt.max_packet_bytes as usize) < self.mqtt.max_payload_bytes + 1024 {
            return bad(
                "mqtt.max_packet_bytes",
                "must exceed max_payload_bytes by at least 1024 (topic and headers)",
            );
        }
        if u32::from_str_radix(self.socket.mode.trim_start_matches("0o"), 8).is_err() {
            return bad("socket.mode", "must be an octal file mode such as \"0660\"");
        }
        if self.mqtt.tls.client_cert.is_some() != self.mqtt.tls.client_key.is_some() {
            return bad(
                "mqtt.tls.client_key",
                "client_cert and client_key go together",
            );
        }
        if self.engine.retry_base_ms == 0 || self.engine.retry_max_secs == 0 {
            return bad("engine.retry_base_ms", "retry delays must be positive");
        }
        if self.engine.native_schedule_horizon_secs < self.engine.set_before_start_secs.max(0) {
            return bad(
                "engine.native_schedule_horizon_secs",
                "must be at least set_before_start_secs",
            );
        }
        if self.engine.retention_days < 1 {
            return bad("engine.retention_days", "must be at least 1");
        }
        if self.engine.pin_reuse_days < 0 {
            return bad("engine.pin_reuse_days", "must not be negative");
        }
        if self.engine.audit_retention_days < 1 {
            return bad("engine.audit_retention_days", "must be at least 1");
        }
        if self.auth.mode == crate::auth::AuthMode::Signed && self.auth.trusted_keys_file.is_none()
        {
            return bad(
                "auth.trusted_keys_file",
                "is required with mode = \"signed\" (a JWK Set of Ed25519 public keys)",
            );
        }
        if self.ble.max_connections == 0 {
            return bad("ble.max_connections", "must be at least 1");
        }
        if self.ble.connect_timeout_ms == 0 || self.ble.reply_timeout_ms == 0 {
            return bad("ble.reply_timeout_ms", "timeouts must be positive");
        }
        if !self.web.listen.is_empty() {
            if self.web.listen.parse::<std::net::SocketAddr>().is_err() {
                return bad(
                    "web.listen",
                    "must be an address and port such as \"192.168.1.20:8080\"",
                );
            }
            if let Err(why) = crate::web::auth::check_hash(&self.web.password_hash) {
                return bad("web.password_hash", &why);
            }
        }
        if self.ble.keypad_capacity == 0 {
            return bad("ble.keypad_capacity", "must be at least 1");
        }
        let mut addresses = std::collections::HashSet::new();
        for (i, l) in self.ble.locks.iter().enumerate() {
            if !is_ble_address(&l.address) {
                return bad(
                    &format!("ble.locks[{i}].address"),
                    "must look like 54:D2:72:AA:BB:CC",
                );
            }
            if !addresses.insert(l.address.to_uppercase()) {
                return bad(&format!("ble.locks[{i}].address"), "is used twice");
            }
        }
        for (i, l) in self.zwave.locks.iter().enumerate() {
            if let Some([min, max]) = l.code_lengths {
                if min == 0 || min > max || max > 20 {
                    return bad(
                        &format!("zwave.locks[{i}].code_lengths"),
                        "is [min, max] with 1 <= min <= max <= 20",
                    );
                }
            }
        }
        let mut seen = std::collections::HashSet::new();
        for (i, l) in self.sim.locks.iter().enumerate() {
            if !seen.insert(&l.device_id) {
                return bad(&format!("sim.locks[{i}].device_id"), "is used twice");
            }
            if l.supported_code_lengths.is_empty()
                || l.supported_code_lengths
                    .iter()
                    .any(|&n| !(4..=9).contains(&n))
            {
                return bad(
                    &format!("sim.locks[{i}].supported_code_lengths"),
                    "lengths must be 4 to 9",
                );
            }
            if l.slots == 0 {
                return bad(&format!("sim.locks[{i}].slots"), "must be at least 1");
            }
        }
        Ok(())
    }

    /// The time zone `timezone` names (from the system's tz database), or
    /// the hub's own when empty (`/etc/localtime`, or `TZ`; UTC, with a
    /// warning, when the hub has none).
    pub fn time_zone(&self) -> Result<jiff::tz::TimeZone, ConfigError> {
        let name = self.timezone.trim();
        if name.is_empty() {
            return Ok(jiff::tz::TimeZone::try_system().unwrap_or_else(|e| {
                tracing::warn!(error = %e, "the hub has no time zone (/etc/localtime): using UTC; set `timezone`");
                jiff::tz::TimeZone::UTC
            }));
        }
        jiff::tz::TimeZone::get(name).map_err(|_| {
            ConfigError::Invalid(format!(
                "timezone: \"{name}\" is not a time zone in the tz database (an IANA name such as \"Europe/Vienna\"; see /usr/share/zoneinfo)"
            ))
        })
    }

    /// The octal socket mode.
    pub fn socket_mode(&self) -> u32 {
        u32::from_str_radix(self.socket.mode.trim_start_matches("0o"), 8).unwrap_or(0o660)
    }

    /// The core's settings; fails only on a `timezone` the tz database does
    /// not name (`check` refuses it first).
    pub fn hub_settings(&self) -> Result<HubSettings, ConfigError> {
        let e = &self.engine;
        Ok(HubSettings {
            workspace_id: self.workspace_id.clone(),
            set_before_start: chrono::Duration::seconds(e.set_before_start_secs),
            max_devices_per_request: e.max_devices_per_request,
            max_payload_bytes: self.mqtt.max_payload_bytes,
            backup_pool_size: e.backup_pool_size,
            delay_warning_after: chrono::Duration::seconds(e.delay_warning_after_secs),
            retry_base: Duration::from_millis(e.retry_base_ms),
            retry_max: Duration::from_secs(e.retry_max_secs),
            publish_codes: self.mqtt.publish_codes,
            request_retention: chrono::Duration::days(e.request_retention_days),
            native_schedule_horizon: chrono::Duration::seconds(e.native_schedule_horizon_secs),
            retention: chrono::Duration::days(e.retention_days),
            pin_reuse: chrono::Duration::days(e.pin_reuse_days),
            audit_retention: chrono::Duration::days(e.audit_retention_days),
            timezone: self.time_zone()?,
            ..HubSettings::default()
        })
    }

    /// The MQTT password: from `password_file`, else `LOCKHUB_MQTT_PASSWORD`.
    pub fn mqtt_password(&self) -> Result<Option<String>, ConfigError> {
        if let Some(p) = &self.mqtt.password_file {
            let s = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                path: p.clone(),
                source,
            })?;
            return Ok(Some(s.trim_end_matches(['\n', '\r']).to_owned()));
        }
        Ok(std::env::var("LOCKHUB_MQTT_PASSWORD").ok())
    }

    /// The demo's embedded defaults: two simulated locks, the seed's front and back door.
    pub fn embedded_demo() -> Config {
        let lock = |id: &str, name: &str, latency_ms| SimLockConfig {
            device_id: id.into(),
            name: name.into(),
            supported_code_lengths: vec![4, 5, 6, 7, 8],
            code_constraints: vec![],
            slots: 30,
            native_scheduling: false,
            backup_pool: false,
            latency_ms,
            online: true,
        };
        Config {
            hub_id: "demo".into(),
            sim: SimConfig {
                state_dir: None,
                locks: vec![
                    lock("8e94044d-a4d1-4691-9f7e-e97d3e8a0b73", "Front door", 400),
                    lock("d87eea5d-71c6-4633-a966-396c5ac51177", "Back door", 700),
                ],
            },
            // The embedded broker (rumqttd) is set up for MQTT 3.1.1.
            mqtt: MqttConfig {
                protocol: MqttProtocol::V311,
                ..MqttConfig::default()
            },
            // Only the user running the demo uses its socket.
            socket: SocketConfig {
                group: String::new(),
                ..SocketConfig::default()
            },
            ..Config::default()
        }
    }
}

impl SimLockConfig {
    pub fn capabilities(&self) -> Capabilities {
        Capabilities {
            supported_code_lengths: self.supported_code_lengths.clone(),
            code_constraints: self.code_constraints.clone(),
            max_active_codes_supported: self.slots,
            supports_native_scheduling: self.native_scheduling,
            supports_backup_access_code_pool: self.backup_pool,
            can_program_online_access_codes: true,
            // A simulated bolt: the demo can lock and unlock it.
            supports_remote_lock: true,
        }
    }
}

/// `FILE.d/*.toml`, sorted; a missing directory is fine.
fn drop_ins(file: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let mut dir = file.as_os_str().to_owned();
    dir.push(".d");
    let dir = PathBuf::from(dir);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(ConfigError::Read { path: dir, source }),
    };
    let mut v: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    v.sort();
    Ok(v)
}

/// The config crate's error, worded for a person fixing a file.
fn describe(e: config::ConfigError) -> String {
    let s = e.to_string();
    if let Some(rest) = s.strip_prefix("unknown field `") {
        let name = rest.split('`').next().unwrap_or("");
        let key = s
            .rsplit_once(" for key `")
            .map(|(_, k)| k.trim_end_matches(['`', '.']).to_owned());
        let full = match key {
            Some(k) if !k.is_empty() => format!("{k}.{name}"),
            _ => name.to_owned(),
        };
        if name == "lock_utc_offset" {
            // A fixed offset is wrong half the year where there is DST.
            return format!(
                "{full}: removed; set the top-level `timezone` (an IANA name such as \"Europe/Vienna\") instead: the locks' clocks follow its daylight saving time"
            );
        }
        return format!("{full}: unknown key");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(toml: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("lockhub.toml");
        std::fs::write(&f, toml).unwrap();
        Config::load(&Sources {
            file: Some(f),
            overrides: vec![],
        })
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = load("[mqtt]\nprot = 1\n").unwrap_err().to_string();
        assert!(e.contains("prot"), "{e}");
        let e = load("colour = 1\n").unwrap_err().to_string();
        assert!(e.contains("colour"), "{e}");
    }

    #[test]
    fn timezone_is_checked_and_lock_utc_offset_is_gone() {
        let c = load("timezone = \"Europe/Vienna\"\n").unwrap();
        assert_eq!(c.time_zone().unwrap().iana_name(), Some("Europe/Vienna"));
        let e = load("timezone = \"Europe/Viena\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("timezone: \"Europe/Viena\""), "{e}");
        assert!(load("").unwrap().time_zone().is_ok(), "the hub's own");
        let e = load("[zwave]\nlock_utc_offset = 3600\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("zwave.lock_utc_offset: removed") && e.contains("timezone"),
            "{e}"
        );
    }

    #[test]
    fn home_assistant_section() {
        use crate::auth::AuthMode::{Off, Signed};
        let c = load("").unwrap();
        assert!(!c.homeassistant.enabled, "opt-in");
        assert_eq!(c.homeassistant.discovery_prefix, "homeassistant");
        // Commands follow the auth mode unless said.
        assert!(c.homeassistant.commands_allowed(Off));
        assert!(!c.homeassistant.commands_allowed(Signed));
        let c = load("[homeassistant]\nenabled = true\ncommands = true\n").unwrap();
        assert!(c.homeassistant.commands_allowed(Signed));
        assert!(c.unsigned_home_assistant().is_none(), "auth is off");
        let c = load("[homeassistant]\ncommands = false\n").unwrap();
        assert!(!c.homeassistant.commands_allowed(Off));
        for bad in ["", "a/#", "ha/+", "/ha", "ha/"] {
            let e = load(&format!("[homeassistant]\ndiscovery_prefix = \"{bad}\"\n"))
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with("homeassistant.discovery_prefix"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn ble_section() {
        let c = load("[ble]\nenabled = true\nmax_connections = 3\n[[ble.locks]]\naddress = \"54:d2:72:aa:bb:cc\"\nname = \"Back\"\n").unwrap();
        let d = c.ble.driver_config();
        assert_eq!(d.max_connections, 3);
        assert_eq!(d.locks[0].name.as_deref(), Some("Back"));
        let e = load("[[ble.locks]]\naddress = \"54:D2:72\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("ble.locks[0].address"), "{e}");
        let twice = "[[ble.locks]]\naddress = \"54:D2:72:AA:BB:CC\"\n[[ble.locks]]\naddress = \"54:d2:72:aa:bb:cc\"\n";
        assert!(load(twice).unwrap_err().to_string().contains("used twice"));
        let e = load("[ble]\nmax_connections = 0\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("ble.max_connections"), "{e}");
        let e = load("[ble]\nsecurity_pin = 1234\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("security_pin"), "{e}");
    }

    #[test]
    fn wrong_types_and_values_are_named() {
        let e = load("[mqtt]\nport = \"many\"\n").unwrap_err().to_string();
        assert!(e.contains("port"), "{e}");
        let e = load("workspace_id = \"x\"\n").unwrap_err().to_string();
        assert!(e.contains("workspace_id"), "{e}");
        let e = load("[[zwave.locks]]\nnode_id = 3\ncode_lengths = [8, 4]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("zwave.locks[0].code_lengths"), "{e}");
        let e =
            load("[[sim.locks]]\ndevice_id = \"a\"\nname = \"A\"\nsupported_code_lengths = [3]\n")
                .unwrap_err()
                .to_string();
        assert!(e.contains("sim.locks[0].supported_code_lengths"), "{e}");
    }

    #[test]
    fn layers_apply_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("lockhub.toml");
        std::fs::write(
            &f,
            "hub_id = \"file\"\n[mqtt]\nport = 1884\nprefix = \"p\"\n",
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("lockhub.toml.d")).unwrap();
        std::fs::write(
            dir.path().join("lockhub.toml.d/10-a.toml"),
            "[mqtt]\nport = 1885\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("lockhub.toml.d/20-b.toml"),
            "[mqtt]\nport = 1886\n",
        )
        .unwrap();
        let c = Config::load(&Sources {
            file: Some(f.clone()),
            overrides: vec![],
        })
        .unwrap();
        assert_eq!(
            (c.hub_id.as_str(), c.mqtt.port, c.mqtt.prefix.as_str()),
            ("file", 1886, "p")
        );
        let c = Config::load(&Sources {
            file: Some(f),
            overrides: vec![("mqtt.port".into(), "1999".into())],
        })
        .unwrap();
        assert_eq!(c.mqtt.port, 1999);
        assert_eq!(c.engine.backup_pool_size, 2, "defaults fill the rest");
    }
}
