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
    /// The access codes, as a table (PINs masked unless --reveal-codes).
    Codes {
        #[command(flatten)]
        socket: SocketArgs,
        #[arg(long)]
        reveal_codes: bool,
    },
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

fn main() -> ExitCode {
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
                let ov = match overrides(&raw) {
                    Ok(o) => o,
                    Err(e) => {
                        eprintln!("lockhub: {e}");
                        return ExitCode::from(EXIT_CONFIG as u8);
                    }
                };
                let cfg = match Config::load(&Sources {
                    file: Some(config.clone()),
                    overrides: ov,
                }) {
                    Ok(c) => c,
                    Err(e) => {
                        eprintln!("lockhub: {}: {e}", config.display());
                        return ExitCode::from(EXIT_CONFIG as u8);
                    }
                };
                lockhub::daemon::init_logging(&cfg.log_level);
                match lockhub::daemon::run(cfg).await {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        tracing::error!(error = format!("{e:#}"), "lockhub failed");
                        ExitCode::FAILURE
                    }
                }
            }
            Command::Demo => {
                lockhub::daemon::init_logging("warn");
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
                        "{}: ok (hub_id {}, {} simulated lock(s), z-wave {})",
                        file.display(),
                        c.hub_id,
                        c.sim.locks.len(),
                        if c.zwave.port.is_empty() {
                            "off"
                        } else {
                            &c.zwave.port
                        }
                    );
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
                        ],
                    )
                })
                .await
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
