//! Clock trust with the real binary under libfaketime (Debian's `faketime`):
//! a boot at 1970 and a boot 3 days stale, each corrected later, and a step
//! back of an hour. While the clock is untrusted no time-driven change is made
//! (nothing removed, nothing set for its window) but commands are served;
//! once trusted, codes that ended meanwhile are removed first.

mod support;

use lockhub::drivers::sim::{LoggedOp, SimDriver};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::blackbox::*;

const BASE: &str = "lockhub/test-hub";

fn libfaketime() -> PathBuf {
    [
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/lib",
    ]
    .iter()
    .map(|d| Path::new(d).join("faketime/libfaketimeMT.so.1"))
    .find(|p| p.exists())
    .expect("libfaketime (run scripts/test-deps.sh)")
}

/// libfaketime reading its offset from `file` (each second), so the test can
/// step the daemon's clock while it runs. Monotonic time stays real.
fn faked(file: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("LD_PRELOAD", libfaketime().display().to_string()),
        ("FAKETIME_TIMESTAMP_FILE", file.display().to_string()),
        // Re-read at most once a second: a clock step is seen within 1 s, and
        // the daemon does not read the file on every clock call.
        ("FAKETIME_CACHE_DURATION", "1".into()),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1".into()),
    ]
}

fn set_clock(file: &Path, spec: &str) {
    let tmp = file.with_extension("new");
    std::fs::write(&tmp, format!("{spec}\n")).unwrap();
    std::fs::rename(&tmp, file).unwrap();
}

async fn health(d: &Daemon) -> Value {
    d.health().await
}

async fn wait_clock(d: &Daemon, want: &str) -> Value {
    for _ in 0..100 {
        let h = health(d).await;
        if h["clock"] == want {
            return h;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("clock never {want}; log:\n{}", d.log());
}

fn lock_ops(d: &Daemon, id: &str) -> Vec<LoggedOp> {
    SimDriver::read_persisted(&d.locks_dir(), id).unwrap().1
}

fn pins(d: &Daemon, id: &str) -> Vec<String> {
    SimDriver::read_persisted(&d.locks_dir(), id)
        .unwrap()
        .0
        .into_iter()
        .map(|(_, p)| p)
        .collect()
}

async fn create(cloud: &Cloud, rid: &str, body: Value) -> Value {
    let mut body = body;
    body["request_id"] = json!(rid);
    cloud.send_json("access_codes/create", &body).await;
    let r = cloud.response(rid, 30).await;
    assert_eq!(r["ok"], true, "{r}");
    r["access_code"].clone()
}

async fn until_pin(d: &Daemon, lock: &str, pin: &str, present: bool, secs: u64) {
    wait_for(&format!("PIN present={present}"), secs, || {
        (pins(d, lock).iter().any(|p| p == pin) == present).then_some(())
    })
    .await
}

/// Phase 1 at the right time sets an open code `open` and a code `ending`
/// whose window ends 12 s later; the daemon then restarts with its clock at
/// `wrong_clock`: nothing is removed (the ending code stays past its end,
/// the open one is not taken for "not started"), a new ongoing code is set,
/// a new time-bound code waits; health, `lockhub status` and the device
/// state say `clock_untrusted`. Corrected, the ended code goes first.
async fn boot_untrusted_then_corrected(wrong_clock: &str) {
    let dir = tempfile::tempdir().unwrap();
    let clock = dir.path().join("faketime");
    set_clock(&clock, "+0");
    let broker = Broker::start(dir.path());
    let mut daemon = Daemon::new(dir.path(), broker.port, &sim_locks(0, 0));
    daemon.start_env(&faked(&clock));
    let cloud = Cloud::connect(broker.port, BASE, "cloud").await;
    cloud.wait_online().await;
    cloud.wait_serving().await;
    let now = chrono::Utc::now();
    let open = create(
        &cloud,
        "open",
        json!({"device_id": FRONT, "name": "Open",
        "starts_at": (now - chrono::Duration::hours(1)).to_rfc3339(),
        "ends_at": (now + chrono::Duration::hours(2)).to_rfc3339()}),
    )
    .await;
    let ends_at = now + chrono::Duration::seconds(12);
    let ending = create(
        &cloud,
        "ending",
        json!({"device_id": FRONT, "name": "Ending",
        "starts_at": (now - chrono::Duration::hours(1)).to_rfc3339(),
        "ends_at": ends_at.to_rfc3339()}),
    )
    .await;
    let open_pin = open["code"].as_str().unwrap().to_owned();
    let ending_pin = ending["code"].as_str().unwrap().to_owned();
    until_pin(&daemon, FRONT, &open_pin, true, 10).await;
    until_pin(&daemon, FRONT, &ending_pin, true, 10).await;
    assert_eq!(health(&daemon).await["clock"], "trusted");
    let (status, _) = daemon.terminate();
    assert!(status.success());

    // The Pi boots with a wrong clock.
    set_clock(&clock, wrong_clock);
    daemon.start_env(&faked(&clock));
    let h = wait_clock(&daemon, "clock_untrusted").await;
    assert_eq!(h["status"], "degraded", "{h}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lockhub"))
        .args(["status", "--socket"])
        .arg(&daemon.socket)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("clock_untrusted"), "lockhub status: {text}");
    cloud
        .send_json(
            "devices/get",
            &json!({"request_id": "dev", "device_id": FRONT}),
        )
        .await;
    let dev = cloud.response("dev", 15).await;
    assert_eq!(
        dev["device"]["warnings"][0]["warning_code"], "clock_untrusted",
        "{dev}"
    );
    // Commands are served: an ongoing code goes on, a time-bound one waits.
    let ongoing = create(
        &cloud,
        "ongoing",
        json!({"device_id": FRONT, "name": "Cleaner"}),
    )
    .await;
    let ongoing_pin = ongoing["code"].as_str().unwrap().to_owned();
    until_pin(&daemon, FRONT, &ongoing_pin, true, 10).await;
    let real = chrono::Utc::now();
    let later = create(
        &cloud,
        "later",
        json!({"device_id": FRONT, "name": "Later",
        "starts_at": (real - chrono::Duration::minutes(1)).to_rfc3339(),
        "ends_at": (real + chrono::Duration::hours(3)).to_rfc3339()}),
    )
    .await;
    let later_pin = later["code"].as_str().unwrap().to_owned();
    // Past the ending code's end (real time): still nothing time-driven.
    let wait = (ends_at - chrono::Utc::now()).to_std().unwrap_or_default() + Duration::from_secs(3);
    tokio::time::sleep(wait).await;
    let on = pins(&daemon, FRONT);
    assert!(on.contains(&open_pin), "the open code was left on: {on:?}");
    assert!(
        on.contains(&ending_pin),
        "no removal while untrusted: {on:?}"
    );
    assert!(
        !on.contains(&later_pin),
        "no set for a window while untrusted"
    );
    let before = lock_ops(&daemon, FRONT).len();

    // NTP corrects the clock: the ended code goes first, then the new one.
    set_clock(&clock, "+0");
    wait_clock(&daemon, "trusted").await;
    until_pin(&daemon, FRONT, &ending_pin, false, 10).await;
    until_pin(&daemon, FRONT, &later_pin, true, 10).await;
    let after: Vec<LoggedOp> = lock_ops(&daemon, FRONT).into_iter().skip(before).collect();
    assert!(
        after[0].code.is_none(),
        "the removal comes first once the clock is trusted: {:?}",
        after.iter().map(|o| o.code.is_some()).collect::<Vec<_>>()
    );
    assert!(pins(&daemon, FRONT).contains(&open_pin));
    assert!(pins(&daemon, FRONT).contains(&ongoing_pin));
    cloud
        .send_json(
            "devices/get",
            &json!({"request_id": "dev2", "device_id": FRONT}),
        )
        .await;
    let dev = cloud.response("dev2", 15).await;
    assert_eq!(dev["device"]["warnings"], json!([]), "{dev}");
    let (status, _) = daemon.terminate();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boot_at_1970_then_corrected() {
    boot_untrusted_then_corrected("@1970-01-01 00:00:00").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boot_three_days_stale_then_corrected() {
    boot_untrusted_then_corrected("-3d").await;
}

/// A code removed at its end is never set again when the clock steps back
/// into its window; commands are still served meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step_back_an_hour() {
    let dir = tempfile::tempdir().unwrap();
    let clock = dir.path().join("faketime");
    set_clock(&clock, "+0");
    let broker = Broker::start(dir.path());
    let mut daemon = Daemon::new(dir.path(), broker.port, &sim_locks(0, 0));
    daemon.start_env(&faked(&clock));
    let cloud = Cloud::connect(broker.port, BASE, "cloud").await;
    cloud.wait_online().await;
    cloud.wait_serving().await;
    let now = chrono::Utc::now();
    let ending = create(
        &cloud,
        "ending",
        json!({"device_id": FRONT, "name": "Ending",
        "starts_at": (now - chrono::Duration::hours(2)).to_rfc3339(),
        "ends_at": (now + chrono::Duration::seconds(6)).to_rfc3339()}),
    )
    .await;
    let pin = ending["code"].as_str().unwrap().to_owned();
    until_pin(&daemon, FRONT, &pin, true, 10).await;
    until_pin(&daemon, FRONT, &pin, false, 20).await;

    set_clock(&clock, "-1h");
    wait_clock(&daemon, "clock_untrusted").await;
    let ongoing = create(
        &cloud,
        "ongoing",
        json!({"device_id": FRONT, "name": "Cleaner"}),
    )
    .await;
    until_pin(&daemon, FRONT, ongoing["code"].as_str().unwrap(), true, 10).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    set_clock(&clock, "+0");
    wait_clock(&daemon, "trusted").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let sets = lock_ops(&daemon, FRONT)
        .iter()
        .filter(|o| o.code.as_deref() == Some(pin.as_str()))
        .count();
    assert_eq!(sets, 1, "the ended code was set once, never again");
    assert!(!pins(&daemon, FRONT).contains(&pin));
    let (status, _) = daemon.terminate();
    assert!(status.success());
}
