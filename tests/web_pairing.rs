//! Pairing a Nuki from the installer page, in a real headless Chromium: the
//! daemon opens the adapter through btleplug, which talks to a fake BlueZ on a
//! private D-Bus bus relaying GATT writes to the fake Nuki (one fake BlueZ per
//! test binary, so this is a binary of its own). The page shows each step as it
//! happens (server-sent events). A screenshot goes to target/web-pairing.png.

mod support;

use lockhub::drivers::ble::fake_lock::FakeNuki;
use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex};
use support::blackbox::{Broker, Daemon};
use support::ble::SECURITY_PIN;
use support::fake_bluez::{FakeBluez, Reply};

const ADDRESS: &str = "54:D2:72:AA:BB:CC";
const PASSWORD: &str = "front-desk-2026";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairing_a_nuki_from_the_page_shows_its_progress() {
    let nuki = Arc::new(Mutex::new(FakeNuki::new(true, SECURITY_PIN, 20)));
    let n = nuki.clone();
    let _bluez = FakeBluez::start(ADDRESS, move |channel, bytes| Reply {
        messages: n.lock().unwrap().on_write(channel, bytes),
        disconnect: false,
    })
    .expect("fake BlueZ (run scripts/test-deps-ble.sh)");

    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path());
    let keys_file = dir.path().join("nuki-keys.json");
    let (web, section) = support::webdriver::web_section(PASSWORD);
    let extra = format!(
        "[ble]\nenabled = true\nkeys_file = \"{}\"\n\n{section}",
        keys_file.display(),
    );
    let mut daemon = Daemon::new(dir.path(), broker.port, &extra);
    daemon.start();
    let browser = support::webdriver::logged_in(&web, PASSWORD).await;
    browser
        .wait_text("#app", 10, |t| t.contains("Pair a Nuki"))
        .await;

    // A wrong security PIN: the page shows the steps and the refusal; nothing is stored.
    browser.type_into("#pair-address", ADDRESS).await;
    browser.type_into("#pair-pin", "1111").await;
    browser.click("#pair-button").await;
    let failed = browser
        .wait_text("#pair-result", 30, |t| t.starts_with("Failed"))
        .await;
    assert!(failed.contains("security PIN"), "{failed}");
    assert!(!failed.contains("1111"), "the PIN echoed: {failed}");
    let steps = browser.text_of("#pair-progress").await;
    assert!(steps.contains("connecting to 54:D2:72:AA:BB:CC"), "{steps}");
    assert!(steps.contains("checking the security PIN"), "{steps}");
    // Nothing usable is stored: at most the authorization the lock kept,
    // without a PIN, for the next pairing to remove (`ble::pair::undo`).
    if keys_file.exists() {
        let stored: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&keys_file).unwrap()).unwrap();
        assert!(
            stored[ADDRESS]["security_pin"].is_null(),
            "a usable key stored after a wrong PIN"
        );
    }

    // The right one: each step, then the keys, stored with mode 0600.
    browser
        .type_into("#pair-pin", &SECURITY_PIN.to_string())
        .await;
    browser.click("#pair-button").await;
    let done = browser
        .wait_text("#pair-result", 30, |t| {
            t.starts_with("Paired") || t.starts_with("Failed")
        })
        .await;
    assert!(
        done.starts_with("Paired: paired with 54:D2:72:AA:BB:CC"),
        "{done}\n{}",
        daemon.log()
    );
    let steps = browser.text_of("#pair-progress").await;
    let order = [
        "pairing with",
        "opening the Bluetooth adapter",
        "connecting to",
        "exchanging keys",
        "paired: the lock gave authorization",
        "storing the keys",
    ];
    let mut at = 0;
    for step in order {
        let i = steps[at..]
            .find(step)
            .unwrap_or_else(|| panic!("step {step:?} missing or out of order:\n{steps}"));
        at += i;
    }
    let mode = std::fs::metadata(&keys_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let shot = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/web-pairing.png");
    browser.screenshot(&shot).await;
    println!("screenshot: {}", shot.display());

    let log = daemon.log();
    assert!(
        !log.contains(&SECURITY_PIN.to_string()) && !log.contains("1111"),
        "a PIN in the log"
    );
    daemon.terminate();
}
