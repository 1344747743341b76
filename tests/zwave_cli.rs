//! `lockhub zwave include` / `exclude` through the running daemon's socket:
//! the built binary owns the zwave-js mock's serial port (secure-incl-s2.cjs,
//! node 4 joins with S2), the CLI asks for the DSK PIN on the terminal, and
//! `lockhub devices` shows the new lock's security class. Needs Mosquitto and
//! scripts/test-deps-zwave.sh.

mod support;

use lockhub::drivers::zwave::testing::MockController;
use serde_json::json;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;
use support::blackbox::{wait_for, Broker, Daemon};

fn lockhub(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_lockhub"));
    c.args(args);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn include_with_the_pin_asked_on_the_terminal_then_exclude() {
    let mock = MockController::start_with("mocks/secure-incl-s2.cjs").expect("mock");
    let dir = tempfile::tempdir().unwrap();
    let keys = support::zwave::secure_keys_file(dir.path());
    let broker = Broker::start(dir.path());
    let mut daemon = Daemon::new(
        dir.path(),
        broker.port,
        &format!(
            "[zwave]\nport = \"{}\"\nkeys_file = \"{}\"\nreport_timeout_ms = 3000\n",
            mock.url(),
            keys.display()
        ),
    );
    daemon.start();
    let socket = daemon.socket.clone();
    wait_for("the socket", 20, || socket.exists().then_some(())).await;
    let sock = socket.display().to_string();

    // Include: the CLI shows the DSK and reads the PIN from its terminal.
    let mut child = lockhub(&[
        "zwave",
        "include",
        "--socket",
        &sock,
        "--timeout-secs",
        "20",
    ])
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let mut before = Vec::new();
    let dsk_line = loop {
        let l = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the CLI asks");
        if l.contains("DSK:") {
            break l;
        }
        before.push(l);
    };
    assert!(dsk_line.contains("?????-"), "{dsk_line}");
    for step in ["inclusion mode on", "node 4 joined"] {
        assert!(
            before.iter().any(|l| l.contains(step)),
            "{step:?} not in {before:?}"
        );
    }
    let pin = mock.log_lines("pinFromPub01=")[0]
        .split("pinFromPub01=")
        .nth(1)
        .unwrap()
        .trim()
        .to_owned();
    writeln!(child.stdin.take().unwrap(), "{pin}").unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout} / {}", daemon.log());
    assert!(
        stdout.contains("included node 4") && stdout.contains("S2_AccessControl"),
        "{stdout}"
    );
    assert!(!daemon.log().contains(&pin), "the PIN is not logged");
    // Each step was shown as it began.
    let steps: Vec<String> = rx.try_iter().collect();
    for step in [
        "node 4: keys granted: S2_Authenticated, S2_AccessControl",
        "node 4: interviewing",
    ] {
        assert!(
            steps.iter().any(|l| l.contains(step)),
            "{step:?} not in {steps:?}"
        );
    }

    // `lockhub devices` shows the new lock and its class.
    let s2 = sock.clone();
    let table = wait_for("the lock in devices", 20, move || {
        let o = lockhub(&["devices", "--socket", &s2]).output().unwrap();
        let t = String::from_utf8_lossy(&o.stdout).into_owned();
        t.contains("S2_AccessControl").then_some(t)
    })
    .await;
    assert!(table.contains("SECURITY"), "{table}");

    // A second include with nobody in inclusion mode times out, clearly.
    let o = lockhub(&[
        "zwave",
        "include",
        "--socket",
        &sock,
        "--timeout-secs",
        "1",
        "--pin",
        "00000",
    ])
    .output()
    .unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no lock showed up"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // Exclude it again.
    mock.control(json!({"cmd": "exclusionReady", "node": 4}))
        .await
        .unwrap();
    let o = lockhub(&[
        "zwave",
        "exclude",
        "--socket",
        &sock,
        "--timeout-secs",
        "10",
    ])
    .output()
    .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("excluded node 4"));
    let (status, _) = daemon.terminate();
    assert!(status.success());
}
