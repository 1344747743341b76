//! The `lockhub` command: the daemon, the demo, config checks, and the local
//! socket's views as tables.

use clap::{Parser, Subcommand};
use lockhub::config::{Config, Sources, EXIT_CONFIG};
use lockhub::status::client;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "lockhub",
    version,
    about = "Edge gateway for door locks: linked access codes from the cloud onto Z-Wave and BLE locks"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon.
    Run {
        /// The configuration file (drop-ins in FILE.d/*.toml).
        #[arg(long, short, default_value = "/etc/lockhub/lockhub.toml")]
        config: PathBuf,
        /// Override one setting, e.g. --set mqtt.port=1884 (never secrets).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
    },
    /// The main job on embedded defaults: embedded broker, simulated locks, the seed's group and a late checkout.
    Demo,
    /// Check a configuration file: names the bad key and why (exit 78).
    CheckConfig { file: PathBuf },
    /// The daemon's health.
    Status(SocketArgs),
    /// The locks, as a table.
    Devices(SocketArgs),
    /// Bluetooth LE (Nuki) tools.
    #[command(subcommand)]
    Ble(BleCommand),
    /// The installer page.
    #[command(subcommand)]
    Web(WebCommand),
    /// The store: put the last backup back.
    #[command(subcommand)]
    Store(StoreCommand),
    /// Z-Wave network management through the running daemon.
    #[command(subcommand)]
    Zwave(ZwaveCommand),
    /// The audit chain of applied commands and lock writes.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// The access codes, as a table (PINs masked unless --reveal-codes).
    Codes {
        #[command(flatten)]
        socket: SocketArgs,
        #[arg(long)]
        reveal_codes: bool,
    },
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Replace the store with its last backup (store.backup_path), checked
    /// first; the replaced file is kept aside. Stop lockhub before.
    Restore {
        #[arg(long, short, default_value = "/etc/lockhub/lockhub.toml")]
        config: PathBuf,
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the chain: names every row edited or deleted (exit 1 if any).
    Verify {
        #[arg(long, short, default_value = "/etc/lockhub/lockhub.toml")]
        config: PathBuf,
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
    },
}

#[derive(Subcommand)]
enum BleCommand {
    /// Pair with a Nuki in pairing mode (hold its button 5 s) and store its
    /// keys in ble.keys_file (mode 0600). The lock's security PIN is read from
    /// $LOCKHUB_SECURITY_PIN, or else from the first line of standard input.
    Pair {
        /// The lock's BLE address, e.g. 54:D2:72:AA:BB:CC.
        address: String,
        #[arg(long, short, default_value = "/etc/lockhub/lockhub.toml")]
        config: PathBuf,
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// How the lock lists lockhub among its users (up to 32 bytes).
        #[arg(long, default_value = "lockhub")]
        name: String,
        /// Seconds to wait for the lock, and for each of its replies.
        #[arg(long, default_value_t = 20)]
        timeout_secs: u64,
    },
}

#[derive(Subcommand)]
enum WebCommand {
    /// Print an Argon2 hash for `[web] password_hash`. The password is read
    /// from $LOCKHUB_WEB_PASSWORD, or else from the first line of standard input.
    HashPassword,
}

#[derive(Subcommand)]
enum ZwaveCommand {
    /// Include a lock: put it in inclusion mode after starting this. An S2
    /// lock is asked for its DSK PIN (the first 5 digits of the DSK on its
    /// label) on the terminal unless --pin gives it.
    Include {
        #[arg(long, default_value = "/run/lockhub/lockhub.sock")]
        socket: PathBuf,
        /// The DSK PIN (5 digits).
        #[arg(long)]
        pin: Option<String>,
        /// Seconds to wait for the lock.
        #[arg(long, default_value_t = 60)]
        timeout_secs: u64,
    },
    /// Exclude a lock: put it in exclusion mode after starting this.
    Exclude {
        #[arg(long, default_value = "/run/lockhub/lockhub.sock")]
        socket: PathBuf,
        #[arg(long, default_value_t = 60)]
        timeout_secs: u64,
    },
}

/// Follows an include/exclude job over the socket: prints each step as it
/// comes, asks for the DSK PIN on the terminal when the job waits for it, and
/// prints how it ended; the exit code.
async fn follow_zwave_job(
    socket: &std::path::Path,
    started: (u16, serde_json::Value),
) -> Result<ExitCode, client::ClientError> {
    let (status, v) = started;
    let Some(job_id) = v["job_id"].as_str().map(str::to_owned) else {
        let message = v["message"]
            .as_str()
            .or(v["error"]["message"].as_str())
            .unwrap_or("failed");
        eprintln!("lockhub zwave: {message} ({status})");
        return Ok(ExitCode::FAILURE);
    };
    let mut printed = 0;
    let mut asked = false;
    loop {
        let job = client::get(socket, &format!("/v1/jobs/{job_id}")).await?;
        let lines = job["lines"].as_array().cloned().unwrap_or_default();
        for l in &lines[printed.min(lines.len())..] {
            eprintln!("{}", l.as_str().unwrap_or(""));
        }
        printed = lines.len();
        if job["state"] != "running" {
            let message = job["message"].as_str().unwrap_or("");
            return Ok(if job["state"] == "succeeded" {
                println!("{message}");
                ExitCode::SUCCESS
            } else {
                eprintln!("lockhub zwave: {message}");
                ExitCode::FAILURE
            });
        }
        if let (Some(dsk), false) = (job["input"]["dsk_pin"].as_str(), asked) {
            asked = true;
            eprintln!("the lock's DSK: {dsk}");
            eprint!("enter the 5-digit PIN (the first group of the DSK on the lock's label): ");
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
            let body = serde_json::json!({ "pin": line.trim() });
            let (status, v) = client::post(socket, "/v1/web/zwave/include/pin", &body).await?;
            if v["ok"] != true {
                let message = v["error"]["message"].as_str().unwrap_or("failed");
                eprintln!("lockhub zwave: {message} ({status})");
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

async fn zwave(cmd: ZwaveCommand) -> ExitCode {
    let run = async {
        match cmd {
            ZwaveCommand::Include {
                socket,
                pin,
                timeout_secs,
            } => {
                let mut body = serde_json::json!({ "timeout_secs": timeout_secs });
                if let Some(p) = pin {
                    body["pin"] = serde_json::json!(p);
                }
                let started = client::post(&socket, "/v1/web/zwave/include", &body).await?;
                follow_zwave_job(&socket, started).await
            }
            ZwaveCommand::Exclude {
                socket,
                timeout_secs,
            } => {
                let body = serde_json::json!({ "timeout_secs": timeout_secs });
                let started = client::post(&socket, "/v1/web/zwave/exclude", &body).await?;
                follow_zwave_job(&socket, started).await
            }
        }
    };
    match run.await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("lockhub: {e}");
            ExitCode::FAILURE
        }
    }
}

#[derive(clap::Args)]
struct SocketArgs {
    #[arg(long, default_value = "/run/lockhub/lockhub.sock")]
    socket: PathBuf,
    /// Print the JSON as the socket gives it.
    #[arg(long)]
    json: bool,
}

fn overrides(raw: &[String]) -> Result<Vec<(String, String)>, String> {
    raw.iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                .ok_or_else(|| format!("--set {kv}: expected KEY=VALUE"))
        })
        .collect()
}

/// Loads the configuration, or says why not and gives the exit code.
fn load(config: &std::path::Path, raw: &[String]) -> Result<Config, ExitCode> {
    let overrides = overrides(raw).map_err(|e| {
        eprintln!("lockhub: {e}");
        ExitCode::from(EXIT_CONFIG as u8)
    })?;
    Config::load(&Sources {
        file: Some(config.to_owned()),
        overrides,
    })
    .map_err(|e| {
        eprintln!("lockhub: {}: {e}", config.display());
        ExitCode::from(EXIT_CONFIG as u8)
    })
}

/// The security PIN from the environment or standard input, never from argv
/// (other users can read a process's arguments).
fn security_pin() -> Result<u16, String> {
    let raw = match std::env::var("LOCKHUB_SECURITY_PIN") {
        Ok(v) => v,
        Err(_) => {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .map_err(|e| format!("reading the security PIN from stdin: {e}"))?;
            line
        }
    };
    raw.trim()
        .parse::<u16>()
        .map_err(|_| "the security PIN must be a number from 0 to 65535".to_owned())
}

async fn ble_pair(
    cfg: &Config,
    address: &str,
    name: String,
    timeout: std::time::Duration,
) -> Result<u32, String> {
    use lockhub::drivers::ble::pair::{pair_with_progress, PairOptions};
    use lockhub::drivers::ble::{btle::BtleRadio, keys::FileKeyStore, nuki::keypad::SecurityPin};
    if !lockhub::config::is_ble_address(address) {
        return Err(format!("{address}: not a BLE address (54:D2:72:AA:BB:CC)"));
    }
    let pin = security_pin()?;
    let radio = BtleRadio::open(cfg.ble.adapter())
        .await
        .map_err(|e| e.to_string())?;
    let keys = FileKeyStore::new(&cfg.ble.keys_file);
    let opts = PairOptions {
        name,
        security_pin: SecurityPin(pin),
        timeout,
    };
    pair_with_progress(&radio, address, &keys, &opts, &|line| eprintln!("{line}"))
        .await
        .map_err(|e| e.to_string())
}

// Rust's allocations go to jemalloc. Measured with `mqtt_bench`: after
// 20,000 codes were set, glibc's malloc held 40 MiB for 11 MiB live, freed
// memory left in fragments between long-lived allocations that no
// malloc_trim can return; jemalloc keeps sizes apart and gives whole pages
// back. C code (SQLite, libdbus, libc itself) keeps glibc's malloc: replacing
// malloc for the whole process deadlocks under LD_PRELOAD libraries that
// allocate while jemalloc starts (libfaketime, tests/fault_clock.rs).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read when it starts (its `malloc_conf` symbol). One
/// arena: two cores, and each more keeps a burst's pages of its own. Freed
/// pages go back to the system within about a second (a background thread
/// does it, so a hub at rest returns them too). A small thread cache. A
/// wrong option aborts at start, in every test that runs the daemon.
#[unsafe(export_name = "_rjem_malloc_conf")]
#[used]
pub static MALLOC_CONF: MallocConf = MallocConf(
    c"narenas:1,background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0,tcache_max:1024,abort_conf:true"
        .as_ptr(),
);

/// A C string pointer that can be a static (jemalloc reads it as `const char *`).
#[repr(transparent)]
pub struct MallocConf(*const std::ffi::c_char);
// SAFETY: it points to a string literal, never written.
unsafe impl Sync for MallocConf {}

/// Two glibc malloc arenas (what C code allocates: SQLite's page caches)
/// instead of up to eight a core: each thread would keep freed memory in an
/// arena of its own, and RSS stays at every burst's peak.
fn few_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: set before any other thread exists; only tunes the allocator.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

fn main() -> ExitCode {
    few_malloc_arenas();
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("lockhub: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async {
        match cli.command {
            Command::Run {
                config,
                overrides: raw,
            } => {
                let cfg = match load(&config, &raw) {
                    Ok(c) => c,
                    Err(code) => return code,
                };
                lockhub::logging::init(&cfg.log_level, cfg.log_format);
                match lockhub::daemon::run(cfg).await {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        tracing::error!(error = format!("{e:#}"), "lockhub failed");
                        eprintln!("lockhub: {e:#}");
                        ExitCode::from(lockhub::daemon::exit_code(&e))
                    }
                }
            }
            Command::Ble(BleCommand::Pair {
                address,
                config,
                overrides: raw,
                name,
                timeout_secs,
            }) => {
                let cfg = match load(&config, &raw) {
                    Ok(c) => c,
                    Err(code) => return code,
                };
                lockhub::logging::init(&cfg.log_level, cfg.log_format);
                let timeout = std::time::Duration::from_secs(timeout_secs.max(1));
                match ble_pair(&cfg, &address, name, timeout).await {
                    Ok(auth_id) => {
                        println!(
                            "paired with {address} (authorization {auth_id}); keys in {}",
                            cfg.ble.keys_file.display()
                        );
                        println!("add it under [[ble.locks]] and restart lockhub");
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("lockhub ble pair: {e}");
                        ExitCode::FAILURE
                    }
                }
            }
            Command::Zwave(cmd) => zwave(cmd).await,
            Command::Audit(AuditCommand::Verify {
                config,
                overrides: raw,
            }) => {
                let cfg = match load(&config, &raw) {
                    Ok(c) => c,
                    Err(code) => return code,
                };
                let db = &cfg.store.path;
                let key = cfg
                    .store
                    .key_file
                    .clone()
                    .unwrap_or_else(|| lockhub::store::Store::default_key_file(db));
                match lockhub::store::audit::verify(db, &key) {
                    Ok(v) => {
                        for p in &v.problems {
                            println!("{p}");
                        }
                        if let Some(through) = v.pruned_through {
                            println!("rows 1 to {through}: pruned (past engine.audit_retention_days)");
                        }
                        if let Some(h) = &v.head {
                            println!("head: row {} hash {}", h.seq, h.hash);
                        }
                        if !v.anchored {
                            println!(
                                "no anchor at {}: deleting the newest rows would go unseen",
                                lockhub::store::audit::anchor_file(db).display()
                            );
                        }
                        if v.problems.is_empty() {
                            println!("{}: audit chain intact ({} rows)", db.display(), v.rows);
                            ExitCode::SUCCESS
                        } else {
                            println!(
                                "{}: audit chain BROKEN: {} problem(s) in {} rows",
                                db.display(),
                                v.problems.len(),
                                v.rows
                            );
                            ExitCode::FAILURE
                        }
                    }
                    Err(e) => {
                        eprintln!("lockhub audit verify: {e}");
                        ExitCode::from(2)
                    }
                }
            }
            Command::Demo => {
                lockhub::logging::init("warn", lockhub::logging::LogFormat::Text);
                match lockhub::demo::run().await {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        eprintln!("lockhub demo: {e:#}");
                        ExitCode::FAILURE
                    }
                }
            }
            Command::CheckConfig { file } => match Config::load(&Sources {
                file: Some(file.clone()),
                overrides: vec![],
            }) {
                Ok(c) => {
                    println!(
                        "{}: ok (hub_id {}, {} simulated lock(s), z-wave {}, ble {})",
                        file.display(),
                        c.hub_id,
                        c.sim.locks.len(),
                        if c.zwave.port.is_empty() {
                            "off"
                        } else {
                            &c.zwave.port
                        },
                        if c.ble.enabled {
                            format!("{} lock(s)", c.ble.locks.len())
                        } else {
                            "off".into()
                        }
                    );
                    // Signed commands: a keys file that is there must parse; a
                    // missing one is said (the daemon will not start without it).
                    if let (lockhub::auth::AuthMode::Signed, Some(keys)) =
                        (c.auth.mode, &c.auth.trusted_keys_file)
                    {
                        if keys.exists() {
                            if let Err(e) = lockhub::auth::Trust::open(&c.hub_id, keys) {
                                eprintln!("{}: {e}", file.display());
                                return ExitCode::from(EXIT_CONFIG as u8);
                            }
                        } else {
                            eprintln!(
                                "{}: warning: auth.trusted_keys_file {} does not exist yet: lockhub run refuses to start without it (docs/signing.md)",
                                file.display(),
                                keys.display()
                            );
                        }
                    }
                    if let Some(why) = c.unsigned_home_assistant() {
                        eprintln!("{}: warning: {why}", file.display());
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{}: {e}", file.display());
                    ExitCode::from(EXIT_CONFIG as u8)
                }
            },
            Command::Status(s) => {
                show(&s, "/v1/health", |v| {
                    let mut out = String::new();
                    for (k, val) in v.as_object().into_iter().flatten() {
                        out += &format!(
                            "{k:<24} {}\n",
                            if let Some(s) = val.as_str() {
                                s.to_owned()
                            } else {
                                val.to_string()
                            }
                        );
                    }
                    out
                })
                .await
            }
            Command::Devices(s) => {
                show(&s, "/v1/devices", |v| {
                    client::table(
                        v["devices"].as_array().map(Vec::as_slice).unwrap_or(&[]),
                        &[
                            ("DEVICE", "device_id"),
                            ("NAME", "name"),
                            ("DRIVER", "driver"),
                            ("ONLINE", "online"),
                            ("BATTERY", "battery_level"),
                            ("SLOTS USED", "slots.used"),
                            ("FREE", "slots.free"),
                            ("LENGTHS", "capabilities.supported_code_lengths"),
                            ("SECURITY", "security_class"),
                        ],
                    )
                })
                .await
            }
            Command::Store(StoreCommand::Restore {
                config,
                overrides: raw,
            }) => {
                let cfg = match load(&config, &raw) {
                    Ok(c) => c,
                    Err(code) => return code,
                };
                if cfg.socket.enabled
                    && lockhub::status::client::get(&cfg.socket.path, "/v1/health")
                        .await
                        .is_ok()
                {
                    eprintln!("lockhub store restore: lockhub is running; stop it first (systemctl stop lockhub)");
                    return ExitCode::FAILURE;
                }
                let backup = cfg.store.backup_file();
                match lockhub::store::backup::restore(&backup, &cfg.store.path) {
                    Ok(r) => {
                        println!(
                            "restored {} from {}",
                            cfg.store.path.display(),
                            backup.display()
                        );
                        if let Some(a) = r.kept_aside {
                            println!("the replaced store is kept as {}", a.display());
                        }
                        println!("lockhub re-reads every lock when it starts");
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("lockhub store restore: {e}");
                        ExitCode::FAILURE
                    }
                }
            }
            Command::Web(WebCommand::HashPassword) => {
                let password = match std::env::var("LOCKHUB_WEB_PASSWORD") {
                    Ok(p) => p,
                    Err(_) => {
                        let mut line = String::new();
                        if let Err(e) = std::io::stdin().read_line(&mut line) {
                            eprintln!("lockhub web hash-password: reading stdin: {e}");
                            return ExitCode::FAILURE;
                        }
                        line.trim_end_matches(['\r', '\n']).to_owned()
                    }
                };
                if password.len() < 8 {
                    eprintln!("lockhub web hash-password: use at least 8 characters");
                    return ExitCode::from(2);
                }
                match lockhub::web::auth::hash_password(&password) {
                    Ok(h) => {
                        println!("{h}");
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("lockhub web hash-password: {e}");
                        ExitCode::FAILURE
                    }
                }
            }
            Command::Codes {
                socket,
                reveal_codes,
            } => {
                let path = if reveal_codes {
                    "/v1/access_codes?reveal_codes=true"
                } else {
                    "/v1/access_codes"
                };
                show(&socket, path, |v| {
                    client::table(
                        v["access_codes"]
                            .as_array()
                            .map(Vec::as_slice)
                            .unwrap_or(&[]),
                        &[
                            ("ACCESS CODE", "access_code_id"),
                            ("DEVICE", "device_id"),
                            ("NAME", "name"),
                            ("CODE", "code"),
                            ("STATUS", "status"),
                            ("STARTS", "starts_at"),
                            ("ENDS", "ends_at"),
                            ("ERRORS", "errors"),
                            ("WARNINGS", "warnings"),
                        ],
                    )
                })
                .await
            }
        }
    })
}

async fn show(
    s: &SocketArgs,
    path: &str,
    render: impl Fn(&serde_json::Value) -> String,
) -> ExitCode {
    match client::get(&s.socket, path).await {
        Ok(v) => {
            if s.json {
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else {
                print!("{}", render(&v));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("lockhub: {e}");
            ExitCode::FAILURE
        }
    }
}
