//! Log output as the journal, a log file and a log shipper see it: the real
//! binary with stderr to a file (no colour escapes), under systemd's
//! `JOURNAL_STREAM` (no timestamps: journald adds them), and `log_format = "json"`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The daemon's config: no broker, one simulated lock.
fn config(dir: &Path, log_format: &str) -> std::path::PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let config = dir.join("lockhub.toml");
    std::fs::write(
        &config,
        format!(
            "hub_id = \"log-hub\"\nlog_level = \"debug\"\nlog_format = \"{log_format}\"\n\n[store]\npath = \"{}\"\n\n[mqtt]\nenabled = false\n\n[socket]\npath = \"{}\"\n\n[[sim.locks]]\ndevice_id = \"8e94044d-a4d1-4691-9f7e-e97d3e8a0b73\"\nname = \"Front door\"\n",
            dir.join("lockhub.db").display(),
            dir.join("lockhub.sock").display()
        ),
    )
    .unwrap();
    config
}

/// Run the daemon until it is ready, stop it, return its stderr.
fn run_daemon(dir: &Path, log_format: &str, env: &[(&str, &str)]) -> String {
    let config = config(dir, log_format);
    let log_path = dir.join("stderr.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lockhub"));
    cmd.args(["run", "--config"])
        .arg(&config)
        .env_remove("JOURNAL_STREAM")
        .env_remove("INVOCATION_ID")
        .env_remove("RUST_LOG")
        .env_remove("NO_COLOR")
        .stdout(Stdio::null())
        .stderr(log);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("start lockhub");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(&log_path)
        .unwrap_or_default()
        .contains("lockhub ready")
    {
        assert!(Instant::now() < deadline, "lockhub never became ready");
        std::thread::sleep(Duration::from_millis(20));
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
    std::fs::read_to_string(&log_path).unwrap()
}

fn starts_with_timestamp(line: &str) -> bool {
    // tracing's default: 2026-12-01T08:31:48.123456Z
    let b = line.trim_start().as_bytes();
    b.len() > 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[..4].iter().all(u8::is_ascii_digit)
}

#[test]
fn a_log_file_gets_no_colour_escapes_but_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let log = run_daemon(dir.path(), "text", &[]);
    assert!(!log.contains('\x1b'), "escape bytes in a log file:\n{log}");
    let lines: Vec<&str> = log.lines().collect();
    assert!(lines.len() >= 2, "{log}");
    assert!(lines.iter().all(|l| starts_with_timestamp(l)), "{log}");
    assert!(
        log.contains("lockhub ready") && log.contains("stopped"),
        "{log}"
    );
}

#[test]
fn under_journald_lines_have_no_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let log = run_daemon(dir.path(), "text", &[("JOURNAL_STREAM", "8:123456")]);
    assert!(!log.contains('\x1b'), "{log}");
    assert!(log.contains("lockhub ready"), "{log}");
    for line in log.lines() {
        assert!(
            !starts_with_timestamp(line),
            "timestamp under journald: {line}"
        );
    }
    // INVOCATION_ID alone (a unit whose stderr is not the journal) counts too.
    let log = run_daemon(
        &dir.path().join("b"),
        "text",
        &[("INVOCATION_ID", "0123abcd")],
    );
    assert!(log.lines().all(|l| !starts_with_timestamp(l)), "{log}");
}

#[test]
fn json_format_is_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let log = run_daemon(dir.path(), "json", &[("JOURNAL_STREAM", "8:1")]);
    assert!(!log.contains('\x1b'), "{log}");
    let mut ready = false;
    for line in log.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v["timestamp"].is_string(), "{line}");
        assert!(v["level"].is_string(), "{line}");
        if v["fields"]["message"] == "lockhub ready" {
            ready = true;
            assert_eq!(v["fields"]["hub_id"], "log-hub");
        }
    }
    assert!(ready, "{log}");
}

#[test]
fn a_bad_log_format_is_a_named_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "log_format = \"xml\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_lockhub"))
        .arg("check-config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("log_format"), "{err}");
}

/// systemd may stop a unit right after its READY=1: that SIGTERM is an
/// orderly stop (exit 0), never the default action's kill (the handlers were
/// once installed only after READY=1, and a SIGTERM in between killed it).
#[test]
fn a_sigterm_right_after_ready_is_an_orderly_stop() {
    use std::os::unix::process::ExitStatusExt;
    for i in 0..10 {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path(), "text");
        let notify = dir.path().join("notify.sock");
        let sock = std::os::unix::net::UnixDatagram::bind(&notify).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_lockhub"))
            .args(["run", "--config"])
            .arg(&config)
            .env("NOTIFY_SOCKET", &notify)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start lockhub");
        let mut buf = [0u8; 256];
        loop {
            let n = sock.recv(&mut buf).expect("READY=1 from lockhub");
            if String::from_utf8_lossy(&buf[..n]).contains("READY=1") {
                break;
            }
        }
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let status = child.wait().unwrap();
        assert!(
            status.success(),
            "run {i}: SIGTERM just after READY=1 ended lockhub with {status:?} (signal {:?})",
            status.signal()
        );
    }
}
