//! BLE fan-out against its lower bound, over the real btleplug path (a fake
//! BlueZ on a private D-Bus bus relaying to the in-process fake Nuki).
//!
//! A keypad command is two exchanges (a challenge, then the command), each one
//! write and its indications. The lower bound of N code sets is N times the
//! cost of two bare exchanges, measured in the same run with a keypad listing
//! of an empty lock (challenge + request, also two exchanges). Prints medians
//! and the ratios; never fails on time. Needs scripts/test-deps-ble.sh.
//!
//! Then, if target/release/lockhub is built, the daemon with this one Nuki and
//! nothing else: its resident memory and wake-ups per second once idle.
//!
//! cargo build --release && cargo run --release --example ble_bench [-- SETS]

#[path = "../tests/support/fake_bluez.rs"]
mod fake_bluez;
#[path = "common/proc.rs"]
mod proc;

use lockhub::drivers::ble::btle::BtleRadio;
use lockhub::drivers::ble::fake_lock::FakeNuki;
use lockhub::drivers::ble::keys::{FileKeyStore, KeyStore};
use lockhub::drivers::ble::link::Radio;
use lockhub::drivers::ble::nuki::keypad::SecurityPin;
use lockhub::drivers::ble::pair::{pair, PairOptions};
use lockhub::drivers::ble::session::{Credentials, Session};
use lockhub::drivers::ble::slot_map::SlotMap;
use lockhub::drivers::ble::{BleConfig, BleDriver, BleLockConfig};
use lockhub::drivers::{LockDriver, SlotCode, SlotOp};
use lockhub::model::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ADDRESS: &str = "54:D2:72:AA:BB:CC";
const BATCH: usize = 8; // the engine's MAX_BATCH

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// The n-th valid Nuki code: 6 digits from 1-9, not starting with 12.
fn code(n: usize) -> String {
    let mut digits = String::new();
    let mut x = n + 345_678;
    while digits.len() < 6 {
        digits.insert(0, char::from(b'1' + (x % 9) as u8));
        x /= 9;
    }
    if digits.starts_with("12") {
        digits.replace_range(0..1, "9");
    }
    digits
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let sets: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(48);
    let nuki = Arc::new(Mutex::new(FakeNuki::new(true, 4711, 1000)));
    let relay = nuki.clone();
    let _bluez = fake_bluez::FakeBluez::start(ADDRESS, move |ch, bytes| fake_bluez::Reply {
        messages: relay.lock().unwrap().on_write(ch, bytes),
        disconnect: false,
    })
    .expect("fake BlueZ (run scripts/test-deps-ble.sh)");
    let radio: Arc<dyn Radio> = Arc::new(BtleRadio::open(None).await.expect("adapter"));
    let dir = tempfile::tempdir().unwrap();
    let keys = Arc::new(FileKeyStore::new(dir.path().join("keys.json")));
    let opts = PairOptions {
        name: "bench".into(),
        security_pin: SecurityPin(4711),
        timeout: Duration::from_secs(5),
    };
    let t = Instant::now();
    pair(radio.as_ref(), ADDRESS, keys.as_ref(), &opts)
        .await
        .unwrap();
    println!(
        "pairing (connect, 4 exchanges, verify): {:.1} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    let stored = keys.get(ADDRESS).unwrap().unwrap();
    let creds = Credentials {
        auth_id: stored.auth_id,
        key: stored.shared_key.clone(),
        security_pin: SecurityPin(4711),
    };

    // Lower bound: two bare exchanges, on an open connection.
    let t = Instant::now();
    let link = radio.connect(ADDRESS).await.unwrap();
    let connect_ms = t.elapsed().as_secs_f64() * 1e3;
    let mut session = Session::new(link, Duration::from_secs(5), Some(creds));
    let mut pair_ms = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        session.list_codes().await.unwrap();
        pair_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    session.close().await;
    let two_exchanges = median(pair_ms);
    println!("connect + resolve + subscribe: {connect_ms:.1} ms");
    println!(
        "two bare exchanges (challenge + listing of an empty lock): median {two_exchanges:.2} ms"
    );

    let driver = BleDriver::new(
        BleConfig {
            locks: vec![BleLockConfig {
                address: ADDRESS.into(),
                device_id: Some("nuki".into()),
                name: None,
            }],
            ..BleConfig::default()
        },
        radio.clone(),
        keys,
        SlotMap::open(dir.path().join("slots.json")).unwrap(),
        None,
    );
    let mut runs = Vec::new();
    for round in 0..3 {
        let ops: Vec<SlotOp> = (0..sets)
            .map(|i| {
                SlotOp::Set(SlotCode {
                    recurring: None,
                    slot: (i + 1) as u32,
                    code: Pin::new(code(round * sets + i)),
                    name: Some(format!("Guest {i}")),
                    window: None,
                })
            })
            .collect();
        let t = Instant::now();
        for batch in ops.chunks(BATCH) {
            let r = driver.apply("nuki", batch).await;
            assert!(r.iter().all(|r| r.is_ok()), "{r:?}");
        }
        runs.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let bound = sets as f64 * two_exchanges;
    println!("lower bound, one exchange at a time: {bound:.1} ms");
    println!(
        "adds   (intents fsynced once per batch): {:.1} ms, {:.1} sets/s, ratio {:.3}",
        runs[0],
        sets as f64 / runs[0] * 1e3,
        runs[0] / bound
    );
    let updates = median(runs[1..].to_vec());
    println!(
        "updates (batches of {BATCH}, one lingering connection): median {updates:.1} ms, {:.1} sets/s, ratio {:.3}",
        sets as f64 / updates * 1e3,
        updates / bound
    );
    println!(
        "codes on the lock: {}",
        nuki.lock().unwrap().keypad.codes.len()
    );

    idle_daemon(dir.path()).await;
}

/// The daemon with BLE on (this Nuki) and no MQTT: RSS and wake-ups over 10 s.
async fn idle_daemon(dir: &std::path::Path) {
    let bin = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/lockhub");
    if !bin.exists() {
        println!("(no target/release/lockhub: cargo build --release for the idle figures)");
        return;
    }
    let config = dir.join("lockhub.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\npath = \"{d}/lockhub.db\"\n[mqtt]\nenabled = false\n[socket]\npath = \"{d}/lockhub.sock\"\n[ble]\nenabled = true\nkeys_file = \"{d}/keys.json\"\nslots_file = \"{d}/daemon-slots.json\"\n[[ble.locks]]\naddress = \"{ADDRESS}\"\n",
            d = dir.display()
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(bin)
        .args(["run", "--config"])
        .arg(&config)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    // Start-up reads the lock's 48 codes, then the linger runs out.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (s0, t0) = (proc::switches(pid), Instant::now());
    tokio::time::sleep(Duration::from_secs(10)).await;
    let per_s = (proc::switches(pid) - s0) as f64 / t0.elapsed().as_secs_f64();
    println!(
        "daemon idle with one Nuki (BLE on, MQTT off): RSS {:.1} MiB, {per_s:.2} wake-ups/s",
        proc::rss_kib(pid) as f64 / 1024.0
    );
    let _ = child.kill();
    let _ = child.wait();
    let seen = SlotMap::open(dir.join("daemon-slots.json"))
        .map(|m| m.slots(ADDRESS).len())
        .unwrap_or(0);
    println!("(the daemon read {seen} codes from the lock at start)");
}
