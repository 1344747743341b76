//! Including and excluding a Z-Wave lock from the installer page, in a real
//! headless Chromium: the daemon owns the zwave-js mock's serial port
//! (secure-incl-s2.cjs: node 4 joins with S2 Access Control), the page shows
//! each step as the job says it (server-sent events), asks for the DSK PIN
//! when the lock needs it, and shows the outcome. Needs Mosquitto,
//! scripts/test-deps-zwave.sh and scripts/test-deps-web.sh.

mod support;

use lockhub::drivers::zwave::testing::MockController;
use serde_json::json;
use support::blackbox::{Broker, Daemon};

const PASSWORD: &str = "front-desk-2026";

/// `text` holds each of `steps`, in that order.
fn assert_in_order(text: &str, steps: &[&str]) {
    let mut at = 0;
    for step in steps {
        let i = text[at..]
            .find(step)
            .unwrap_or_else(|| panic!("step {step:?} missing or out of order:\n{text}"));
        at += i;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn including_and_excluding_a_zwave_lock_from_the_page() {
    let mock = MockController::start_with("mocks/secure-incl-s2.cjs").expect("mock");
    let dir = tempfile::tempdir().unwrap();
    let keys = support::zwave::secure_keys_file(dir.path());
    let broker = Broker::start(dir.path());
    let (web, section) = support::webdriver::web_section(PASSWORD);
    let mut daemon = Daemon::new(
        dir.path(),
        broker.port,
        &format!(
            "[zwave]\nport = \"{}\"\nkeys_file = \"{}\"\nreport_timeout_ms = 3000\n\n{section}",
            mock.url(),
            keys.display(),
        ),
    );
    daemon.start();
    let browser = support::webdriver::logged_in(&web, PASSWORD).await;
    browser
        .wait_text("#zwave", 10, |t| t.contains("Include a lock"))
        .await;

    // Include: the page asks for the DSK PIN once the lock's DSK is known.
    browser.click("#zw-include").await;
    let asked = browser
        .wait_text("#zw-pin-form", 30, |t| t.contains("?????-"))
        .await;
    assert!(asked.contains("DSK"), "{asked}");
    let pin = mock.log_lines("pinFromPub01=")[0]
        .split("pinFromPub01=")
        .nth(1)
        .unwrap()
        .trim()
        .to_owned();
    browser.type_into("#zw-pin", &pin).await;
    browser.click("#zw-pin-button").await;
    let done = browser
        .wait_text("#zw-result", 60, |t| {
            t.starts_with("Done") || t.starts_with("Failed")
        })
        .await;
    assert!(
        done.starts_with("Done: included node 4") && done.contains("S2_AccessControl"),
        "{done}\n{}",
        daemon.log()
    );
    let steps = browser.text_of("#zw-progress").await;
    assert_in_order(
        &steps,
        &[
            "inclusion mode on",
            "node 4 joined; bootstrapping security (the lock offers S2)",
            "the lock's DSK is ?????-",
            "node 4: keys granted: S2_Authenticated, S2_AccessControl",
            "node 4: interviewing",
        ],
    );
    assert!(!steps.contains(&pin), "the PIN shown: {steps}");
    let shot = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/web-zwave.png");
    browser.screenshot(&shot).await;
    println!("screenshot: {}", shot.display());

    // Exclude: the mock's lock is ready to leave.
    mock.control(json!({"cmd": "exclusionReady", "node": 4}))
        .await
        .unwrap();
    browser.click("#zw-exclude").await;
    let done = browser
        .wait_text("#zw-result", 30, |t| {
            t.starts_with("Done") || t.starts_with("Failed")
        })
        .await;
    assert_eq!(done, "Done: excluded node 4", "{}", daemon.log());
    assert!(!daemon.log().contains(&pin), "the PIN logged");
    daemon.terminate();
}
