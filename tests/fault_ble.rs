//! The Bluetooth side absent or lost, with the real binary: the daemon starts
//! while bluetoothd is not on the (private) system bus, serves its other
//! locks, shows the Nuki offline and takes a code for it; bluetoothd starts
//! (a fresh one that has not cached the lock: it appears only once lockhub
//! scans again), the Nuki comes online and gets its code. Then bluetoothd is
//! killed and another one started: the Nuki goes offline, comes back, and a
//! new code reaches it; then the adapter is unplugged (bluetoothd stays) and
//! plugged in again, with the same outcome; all without a restart of the
//! daemon. The fake
//! bluetoothd is python-dbusmock in a process of its own, relaying GATT
//! writes to the fake Nuki here. Needs scripts/test-deps-ble.sh.

mod support;

use lockhub::drivers::ble::fake_lock::FakeNuki;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use support::blackbox::*;
use support::ble::SECURITY_PIN;
use support::fake_bluez::{Cache, FakeBluez, Reply};

const ADDRESS: &str = "54:D2:72:AA:BB:CC";
const BASE: &str = "lockhub/test-hub";
const NUKI: &str = "5a1e0d1b-0000-4000-8000-00000000b1e0";

/// The Nuki's retained device state, as last published.
fn nuki_online(cloud: &Cloud) -> Option<Value> {
    cloud
        .on(&format!("devices/{NUKI}"))
        .into_iter()
        .next_back()
        .map(|d| d["online"].clone())
}

fn on_nuki(nuki: &Mutex<FakeNuki>, pin: &str) -> bool {
    nuki.lock()
        .unwrap()
        .keypad
        .codes
        .iter()
        .any(|e| format!("{:06}", e.code) == pin)
}

/// Waits until the daemon's log says `what`.
async fn says(daemon: &Daemon, what: &str) {
    wait_for(&format!("the log to say {what:?}"), 15, || {
        daemon.log().contains(what).then_some(())
    })
    .await;
}

/// Creates a code on the Nuki; returns its PIN.
/// Health's line for the Bluetooth radio comes to `status` ("ok",
/// "missing"); the hub is degraded while it is missing.
async fn radio_is(daemon: &Daemon, status: &str) {
    let mut last = serde_json::Value::Null;
    for _ in 0..100 {
        last = daemon.health().await;
        if last["radios"]["ble"]["status"] == status {
            assert_eq!(
                last["status"] == "ok",
                status == "ok",
                "degraded exactly while the radio is missing: {last}"
            );
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("health never said the Bluetooth radio is {status}: {last}");
}

async fn create_on_nuki(cloud: &Cloud, request_id: &str) -> String {
    cloud
        .send_json(
            "access_codes/create_multiple",
            &json!({"request_id": request_id, "device_ids": [NUKI], "name": request_id}),
        )
        .await;
    let r = cloud.response(request_id, 20).await;
    assert_eq!(r["ok"], true, "{r}");
    r["access_codes"][0]["code"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bluetoothd_missing_at_start_then_restarted() {
    let nuki = Arc::new(Mutex::new(FakeNuki::new(true, SECURITY_PIN, 20)));
    let relay = nuki.clone();
    let mut bluez = FakeBluez::bus_only(ADDRESS, move |channel, bytes| Reply {
        messages: relay.lock().unwrap().on_write(channel, bytes),
        disconnect: false,
    })
    .expect("private D-Bus (run scripts/test-deps-ble.sh)");
    let dir = tempfile::tempdir().unwrap();
    let keys_file = dir.path().join("ble-keys.json");
    let ble = format!(
        "[ble]\nenabled = true\nkeys_file = \"{}\"\nslots_file = \"{}\"\nreply_timeout_ms = 2000\nkeypad_capacity = 20\n[[ble.locks]]\naddress = \"{ADDRESS}\"\ndevice_id = \"{NUKI}\"\nname = \"Garden door\"\n\n",
        keys_file.display(),
        dir.path().join("ble-slots.json").display()
    );

    // Paired earlier, while bluetoothd ran.
    bluez.start_bluez(Cache::Known).unwrap();
    let pair_config = dir.path().join("pair.toml");
    std::fs::write(&pair_config, &ble).unwrap();
    let (ok, text) =
        support::ble::pair_cli(&bluez, &pair_config, ADDRESS, &SECURITY_PIN.to_string());
    assert!(ok, "{text}\n{}", bluez.log());
    bluez.kill_bluez();

    // The hub boots before its Bluetooth service.
    let broker = Broker::start(dir.path());
    let mut daemon = Daemon::new(
        dir.path(),
        broker.port,
        &format!("{}{ble}", sim_locks(0, 0)),
    );
    daemon.start_env(&[("DBUS_SYSTEM_BUS_ADDRESS", bluez.bus.clone())]);
    let log_on_panic = daemon.dump_on_panic(&["ble", "Bluetooth", "nuki"]);
    let cloud = Cloud::connect(broker.port, BASE, "cloud").await;
    cloud.wait_online().await;
    cloud.wait_serving().await;
    // Everything else is served.
    cloud
        .send_json(
            "access_codes/create",
            &json!({"request_id": "sim", "device_id": FRONT, "name": "Cleaner"}),
        )
        .await;
    assert_eq!(cloud.response("sim", 15).await["ok"], true);
    wait_for("the Nuki shown offline", 20, || {
        (nuki_online(&cloud) == Some(json!(false))).then_some(())
    })
    .await;
    says(&daemon, "no Bluetooth adapter").await;
    radio_is(&daemon, "missing").await;
    // A guest's code, taken while the lock cannot be reached.
    let first = create_on_nuki(&cloud, "guest-1").await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert!(!on_nuki(&nuki, &first));
    assert!(daemon.alive());

    // bluetoothd starts; it has not cached the lock: only a new scan finds it.
    bluez.start_bluez(Cache::Empty).unwrap();
    wait_for("the Nuki online with the first code", 90, || {
        (nuki_online(&cloud) == Some(json!(true)) && on_nuki(&nuki, &first)).then_some(())
    })
    .await;
    says(&daemon, "Bluetooth adapter found").await;
    radio_is(&daemon, "ok").await;

    // bluetoothd dies and systemd starts another one.
    bluez.kill_bluez();
    wait_for("the Nuki offline once bluetoothd died", 20, || {
        (nuki_online(&cloud) == Some(json!(false))).then_some(())
    })
    .await;
    says(&daemon, "Bluetooth adapter lost").await;
    radio_is(&daemon, "missing").await;
    let second = create_on_nuki(&cloud, "guest-2").await;
    bluez.start_bluez(Cache::Empty).unwrap();
    wait_for("the Nuki back, with the second code", 90, || {
        (nuki_online(&cloud) == Some(json!(true)) && on_nuki(&nuki, &second)).then_some(())
    })
    .await;
    assert!(on_nuki(&nuki, &first), "the first code stayed");

    // The USB adapter unplugged (bluetoothd stays) and plugged in again.
    bluez.unplug_adapter();
    wait_for("the Nuki offline once the adapter is gone", 20, || {
        (nuki_online(&cloud) == Some(json!(false))).then_some(())
    })
    .await;
    let third = create_on_nuki(&cloud, "guest-3").await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert!(!on_nuki(&nuki, &third));
    bluez.plug_adapter();
    wait_for(
        "the Nuki back after the replug, with the third code",
        90,
        || (nuki_online(&cloud) == Some(json!(true)) && on_nuki(&nuki, &third)).then_some(()),
    )
    .await;
    says(&daemon, "the adapter is gone").await;
    radio_is(&daemon, "ok").await;
    // Each code on the lock once. An add is sent again only when its reply
    // may have died with the link (at most once per loss here): the lock
    // then refuses it as existing and the driver takes its entry over.
    let mut pins: Vec<u32> = nuki
        .lock()
        .unwrap()
        .keypad
        .codes
        .iter()
        .map(|e| e.code)
        .collect();
    pins.sort();
    pins.dedup();
    assert_eq!(pins.len(), 3, "three codes, none twice");
    assert_eq!(nuki.lock().unwrap().keypad.codes.len(), 3);
    let adds = nuki
        .lock()
        .unwrap()
        .commands
        .iter()
        .filter(|&&c| c == 0x0041)
        .count();
    assert!(
        (3..=6).contains(&adds),
        "{adds} adds (0x0041) for 3 codes and 3 losses"
    );
    assert!(daemon.alive(), "no daemon restart");
    let log = daemon.log();
    assert!(
        !log.contains(&first) && !log.contains(&second),
        "a PIN in the log"
    );
    std::mem::forget(log_on_panic);
    let (status, _) = daemon.terminate();
    assert!(status.success());
}
