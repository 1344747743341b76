//! The real btleplug path end to end: BtleRadio and `lockhub ble pair` talk
//! to a fake BlueZ on a private D-Bus bus whose GATT writes are relayed to the
//! same fake Nuki the other BLE tests use (the engine's scenario over this path is
//! tests/ble_bluez_engine.rs: one fake BlueZ per test binary). Needs
//! scripts/test-deps-ble.sh.

mod support;

use lockhub::drivers::ble::btle::BtleRadio;
use lockhub::drivers::ble::fake_lock::{FakeCode, FakeNuki};
use lockhub::drivers::ble::keys::{FileKeyStore, KeyStore};
use lockhub::drivers::ble::slot_map::SlotMap;
use lockhub::drivers::ble::{BleConfig, BleDriver, BleLockConfig};
use lockhub::drivers::{LockDriver, SlotCode, SlotOp};
use lockhub::model::Pin;
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::blackbox::{wait_for, Broker, Cloud, Daemon};
use support::ble::{BACK, FRONT, SECURITY_PIN};
use support::fake_bluez::{FakeBluez, Reply};

const ADDRESS: &str = "54:D2:72:AA:BB:CC";

/// A fake BlueZ whose device is `nuki`; `drop_next` makes the next keyturner
/// write's connection drop right after the lock carried it out.
fn fake_bluez(nuki: Arc<Mutex<FakeNuki>>, drop_next: Arc<AtomicBool>) -> FakeBluez {
    FakeBluez::start(ADDRESS, move |channel, bytes| {
        let messages = nuki.lock().unwrap().on_write(channel, bytes);
        let disconnect = channel == lockhub::drivers::ble::link::Channel::Keyturner
            && drop_next.swap(false, Ordering::SeqCst);
        Reply {
            messages: if disconnect { Vec::new() } else { messages },
            disconnect,
        }
    })
    .expect("fake BlueZ (run scripts/test-deps-ble.sh)")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_pairs_and_the_driver_survives_a_dropped_link() {
    // A lock already in use: the owner's untimed code and a cleaner's timed
    // weekday code (entries of both layouts of the spec's 0x0045).
    let mut lock = FakeNuki::new(true, SECURITY_PIN, 20);
    let dt = |s: &str| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap();
    lock.keypad.seed(FakeCode::untimed(1, 678912, "Owner"));
    lock.keypad.seed(FakeCode::timed(
        2,
        789123,
        "Cleaner",
        (dt("2026-01-01 00:00"), dt("2030-01-01 00:00")),
        (0x7C, [8, 0], [12, 0]),
    ));
    let others = lock.keypad.codes.clone();
    let nuki = Arc::new(Mutex::new(lock));
    let drop_next = Arc::new(AtomicBool::new(false));
    let bluez = fake_bluez(nuki.clone(), drop_next.clone());
    let dir = tempfile::tempdir().unwrap();
    let keys_file = dir.path().join("keys.json");
    let config = dir.path().join("lockhub.toml");
    std::fs::write(
        &config,
        format!(
            "[ble]\nenabled = true\nkeys_file = \"{}\"\n[[ble.locks]]\naddress = \"{ADDRESS}\"\n",
            keys_file.display()
        ),
    )
    .unwrap();
    let pair = |pin: &str| support::ble::pair_cli(&bluez, &config, ADDRESS, pin);

    // A wrong security PIN: refused, no usable keys stored, the PIN not
    // echoed; the authorization the lock keeps is on file, for the next
    // pairing to remove.
    let (ok, text) = pair("1111");
    assert!(!ok && text.contains("security PIN"), "{text}");
    assert!(!text.contains("1111"), "{text}");
    let kept = FileKeyStore::new(&keys_file).get(ADDRESS).unwrap().unwrap();
    assert_eq!(kept.security_pin, None);
    assert_eq!(nuki.lock().unwrap().pairing.users.len(), 1);

    let (ok, text) = pair(&SECURITY_PIN.to_string());
    assert!(ok, "{text}\n{}", bluez.log());
    let users: Vec<u32> = nuki
        .lock()
        .unwrap()
        .pairing
        .users
        .iter()
        .map(|u| u.0)
        .collect();
    assert_eq!(users.len(), 1, "the wrong-PIN authorization was removed");
    assert!(!text.contains(&SECURITY_PIN.to_string()), "{text}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&keys_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let keys = Arc::new(FileKeyStore::new(&keys_file));
    let creds = keys.get(ADDRESS).unwrap().expect("stored");
    let key_hex: String = creds
        .shared_key
        .expose()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(!text.to_lowercase().contains(&key_hex), "{text}");

    // The driver, over btleplug: a link that drops after the lock carried
    // out the add is reopened and the add is not repeated.
    let radio = BtleRadio::open(None).await.expect("adapter");
    let driver = BleDriver::new(
        BleConfig {
            locks: vec![BleLockConfig {
                address: ADDRESS.into(),
                device_id: Some("nuki".into()),
                name: None,
            }],
            reply_timeout: Duration::from_millis(500),
            ..BleConfig::default()
        },
        Arc::new(radio),
        keys,
        SlotMap::open(dir.path().join("slots.json")).unwrap(),
        None,
    );
    assert_eq!(driver.devices().await.len(), 1);
    let set = |slot, pin: &str| {
        SlotOp::Set(SlotCode {
            recurring: None,
            slot,
            code: Pin::new(pin),
            name: Some("Guest".into()),
            window: None,
        })
    };
    let t0 = Instant::now();
    let r = driver
        .apply("nuki", &[set(1, "345678"), set(2, "456789")])
        .await;
    println!("2 adds over btleplug: {:?}", t0.elapsed());
    assert!(r.iter().all(|r| r.is_ok()), "{r:?}");
    // Lose the challenge reply of the next command: the driver reconnects.
    drop_next.store(true, Ordering::SeqCst);
    let before = nuki.lock().unwrap().commands.len();
    let t0 = Instant::now();
    let r = driver.apply("nuki", &[set(3, "567891")]).await;
    println!("an add across a dropped link: {:?}", t0.elapsed());
    assert!(r[0].is_ok(), "{r:?}");
    let sent = nuki.lock().unwrap().commands[before..].to_vec();
    // (A fresh connection then reads the lock's state: one more Request Data.)
    assert_eq!(
        sent[..3],
        [0x0001, 0x0001, 0x0041],
        "challenge lost with the link, asked again after reconnecting, one add"
    );
    assert!(
        sent[3..].iter().all(|&c| c == 0x0001),
        "nothing else written: {sent:?}"
    );
    let read = driver.read_slots("nuki").await.unwrap();
    let mut got: Vec<(u32, String)> = read
        .iter()
        .map(|s| (s.slot, s.code.expose().to_owned()))
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            (1, "345678".to_owned()),
            (2, "456789".to_owned()),
            (3, "567891".to_owned()),
            (99, "789123".to_owned()),
            (100, "678912".to_owned())
        ],
        "lockhub's codes, and the others' in the top slots"
    );
    assert_eq!(nuki.lock().unwrap().keypad.codes.len(), 5);

    drop(driver);

    // The daemon itself, driven over MQTT: the same lock as [[ble.locks]].
    let broker = Broker::start(dir.path());
    let extra = format!(
        "[ble]\nenabled = true\nkeys_file = \"{}\"\nslots_file = \"{}\"\nreply_timeout_ms = 1000\n[[ble.locks]]\naddress = \"{ADDRESS}\"\ndevice_id = \"{BACK}\"\nname = \"Back door\"\n\n[[sim.locks]]\ndevice_id = \"{FRONT}\"\nname = \"Front door\"\nsupported_code_lengths = [4]\n",
        keys_file.display(),
        dir.path().join("daemon-slots.json").display()
    );
    let mut daemon = Daemon::new(dir.path(), broker.port, &extra);
    daemon.start();
    let cloud = Cloud::connect(broker.port, "lockhub/test-hub", "cloud").await;
    cloud.wait_online().await;
    cloud
        .send_json(
            "access_codes/create_multiple",
            &json!({
                "request_id": "r-ble", "device_ids": [FRONT, BACK], "name": "Jane's reservation",
                "preferred_code_length": 4, "behavior_when_code_cannot_be_shared": "create_random_code"
            }),
        )
        .await;
    let r = cloud.response("r-ble", 15).await;
    assert_eq!(r["ok"], true, "{r}\n{}", daemon.log());
    let nuki_pin = r["access_codes"][1]["code"].as_str().unwrap().to_owned();
    assert_eq!(nuki_pin.len(), 6);
    let nuki_code = r["access_codes"][1]["access_code_id"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_for("the daemon put the PIN on the Nuki", 20, || {
        nuki.lock()
            .unwrap()
            .keypad
            .codes
            .iter()
            .any(|e| format!("{:06}", e.code) == nuki_pin)
            .then_some(())
    })
    .await;
    wait_for("access_code.set_on_device for the Nuki's code", 20, || {
        cloud.events().into_iter().find(|e| {
            e["event_type"] == "access_code.set_on_device"
                && e["access_code_id"] == nuki_code.as_str()
        })
    })
    .await;
    // Stranger codes the driver found earlier are left alone.
    assert_eq!(nuki.lock().unwrap().keypad.codes.len(), 6);
    // Deleted over MQTT: off the lock, the others' codes as they were.
    cloud
        .send_json(
            "access_codes/delete",
            &json!({ "request_id": "r-del", "access_code_id": nuki_code }),
        )
        .await;
    assert_eq!(cloud.response("r-del", 15).await["ok"], true);
    wait_for("the daemon took the PIN off the Nuki", 20, || {
        let lock = nuki.lock().unwrap();
        (!lock
            .keypad
            .codes
            .iter()
            .any(|e| format!("{:06}", e.code) == nuki_pin))
        .then_some(())
    })
    .await;
    let now_on = nuki.lock().unwrap().keypad.codes.clone();
    for o in &others {
        assert!(now_on.contains(o), "another's code changed: {}", o.name);
    }
    let log = daemon.log();
    assert!(
        !log.contains(&nuki_pin) && !log.contains(&key_hex),
        "a secret in the daemon's log"
    );
    let (status, took) = daemon.terminate();
    assert!(status.success(), "{status:?} after {took:?}");
}
