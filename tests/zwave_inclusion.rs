//! Inclusion and exclusion while the driver runs, against the zwave-js mock:
//! tests/zwave-mock/mocks/secure-incl-s2.cjs (node 4, S2 Authenticated +
//! Access Control, joins on Add Node), secure-incl-s0.cjs (node 5, S0) and
//! secure-locks.cjs (exclusion). The joined locks are strict: a code lands on
//! them only in their own class. Needs scripts/test-deps-zwave.sh.

use lockhub::drivers::zwave::inclusion::{IncludeOptions, InclusionError, PinSource, Progress};
use lockhub::drivers::zwave::security::NetworkKeys;
use lockhub::drivers::zwave::testing::{MockController, SECURE_MOCK_KEYS};
use lockhub::drivers::zwave::{default_device_id, ZwaveConfig, ZwaveDriver};
use lockhub::drivers::{LockDriver, LockEvent, SlotCode, SlotOp};
use lockhub::model::Pin;
use serde_json::json;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;

const HOME_ID: u32 = 0xC0FFEE01;

async fn start(config: &str) -> (MockController, ZwaveDriver, UnboundedReceiver<LockEvent>) {
    let mock = MockController::start_with(config).expect("mock (run scripts/test-deps-zwave.sh)");
    let mut c = ZwaveConfig::new(mock.url());
    c.report_timeout = Duration::from_secs(3);
    c.offline_ping_interval = None;
    c.keys = Some(NetworkKeys::from_json(SECURE_MOCK_KEYS).unwrap());
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let driver = ZwaveDriver::connect(c, tx).await.expect("connect");
    assert!(driver.wait_interviews(Duration::from_secs(40)).await);
    (mock, driver, rx)
}

fn set(slot: u32, code: &str) -> SlotOp {
    SlotOp::Set(SlotCode {
        recurring: None,
        slot,
        code: Pin::new(code),
        name: None,
        window: None,
    })
}

/// The PIN the mock printed for its joining node.
async fn mock_pin(mock: &MockController) -> String {
    for _ in 0..100 {
        if let Some(l) = mock.log_lines("pinFromPub01=").first() {
            return l.split("pinFromPub01=").nth(1).unwrap().trim().to_owned();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the mock printed no PIN");
}

/// Includes with a PIN asker that answers with `answer(real pin)`; returns
/// the DSK shown to the "user" too.
async fn include_asking(
    mock: &MockController,
    driver: &ZwaveDriver,
    answer: impl Fn(&str) -> String + Send + 'static,
) -> (
    Result<lockhub::drivers::zwave::inclusion::Included, InclusionError>,
    String,
) {
    let (ask_tx, mut ask_rx) = tokio::sync::mpsc::channel(1);
    let d = driver.clone();
    let inclusion = tokio::spawn(async move {
        d.include(IncludeOptions {
            timeout: Duration::from_secs(10),
            pin: PinSource::Ask(ask_tx),
            progress: Progress::none(),
        })
        .await
    });
    let req = tokio::time::timeout(Duration::from_secs(20), ask_rx.recv())
        .await
        .expect("the PIN is asked for")
        .expect("asker");
    let pin = mock_pin(mock).await;
    let dsk = req.dsk.clone();
    req.reply.send(answer(&pin)).unwrap();
    (inclusion.await.unwrap(), dsk)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s2_inclusion_with_the_right_pin() {
    let (mock, driver, mut rx) = start("mocks/secure-incl-s2.cjs").await;
    assert!(driver.devices().await.is_empty());
    let (r, dsk) = include_asking(&mock, &driver, |pin| pin.to_owned()).await;
    let inc = r.expect("included");
    // The user compares the rest of the DSK with the label.
    let label = mock.log_lines("MOCKNODE dsk=")[0].clone();
    assert!(dsk.starts_with("?????-"), "{dsk}");
    let pubhex = label
        .split("pub=")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    let b: Vec<u8> = (0..4)
        .map(|i| u8::from_str_radix(&pubhex[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    assert_eq!(
        dsk.split('-').nth(1).unwrap(),
        format!("{:05}", u16::from_be_bytes([b[2], b[3]]))
    );
    assert_eq!(inc.node_id, 4);
    assert_eq!(inc.security_class, "S2_AccessControl");
    assert_eq!(inc.granted, vec!["S2_Authenticated", "S2_AccessControl"]);
    assert_eq!(inc.note, None);
    let id4 = default_device_id(HOME_ID, 4);
    assert_eq!(inc.device_id, id4);
    // Announced with its class.
    let found = loop {
        match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
            Ok(Some(LockEvent::Discovered(d))) => break d,
            Ok(Some(_)) => continue,
            _ => panic!("no Discovered"),
        }
    };
    assert_eq!(found.security_class.as_deref(), Some("S2_AccessControl"));
    // The keys it got work: a code lands on the strict lock.
    let r = driver.apply(&id4, &[set(3, "3141")]).await;
    if r != vec![Ok(())] {
        for l in mock.log_lines("") {
            eprintln!("MOCK {l}");
        }
    }
    assert_eq!(r, vec![Ok(())]);
    assert_eq!(
        mock.codes(4).await.unwrap().get(&3).map(String::as_str),
        Some("3141")
    );
    assert!(mock.log_lines("STRICT drop").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s2_inclusion_with_a_wrong_pin_gets_no_keys() {
    let (mock, driver, _rx) = start("mocks/secure-incl-s2.cjs").await;
    let (r, _) = include_asking(&mock, &driver, |pin| {
        let p: u32 = pin.parse().unwrap();
        format!("{:05}", (p + 1) % 65536)
    })
    .await;
    let inc = r.expect("the node joined, without S2");
    assert_eq!(inc.node_id, 4);
    assert!(inc.granted.is_empty(), "{inc:?}");
    let note = inc.note.clone().unwrap_or_default();
    assert!(note.contains("DSK PIN is wrong"), "{inc:?}");
    // A PIN that is not 5 digits is refused before anything is derived.
    let (mock2, driver2, _rx2) = start("mocks/secure-incl-s2.cjs").await;
    let (r, _) = include_asking(&mock2, &driver2, |_| "12a45".into()).await;
    let inc = r.unwrap();
    assert!(inc.granted.is_empty());
    assert!(inc.note.unwrap_or_default().contains("no valid DSK PIN"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s0_inclusion_and_a_code_on_the_lock() {
    let (mock, driver, _rx) = start("mocks/secure-incl-s0.cjs").await;
    let inc = driver
        .include(IncludeOptions {
            timeout: Duration::from_secs(10),
            pin: PinSource::Absent,
            progress: Progress::none(),
        })
        .await
        .expect("included");
    assert_eq!(inc.node_id, 5);
    assert_eq!(inc.security_class, "S0_Legacy");
    assert_eq!(inc.granted, vec!["S0_Legacy"]);
    assert!(
        inc.note
            .as_deref()
            .unwrap_or("")
            .contains("less than S2_AccessControl"),
        "{inc:?}"
    );
    let id5 = default_device_id(HOME_ID, 5);
    assert_eq!(driver.apply(&id5, &[set(2, "2718")]).await, vec![Ok(())]);
    assert_eq!(
        mock.codes(5).await.unwrap().get(&2).map(String::as_str),
        Some("2718")
    );
    assert!(mock.log_lines("STRICT drop").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exclusion_and_an_inclusion_that_times_out() {
    let (mock, driver, mut rx) = start("mocks/secure-locks.cjs").await;
    assert_eq!(driver.devices().await.len(), 2);
    // Nobody in inclusion mode: a clear timeout, and the controller is back to normal.
    let t0 = std::time::Instant::now();
    let r = driver
        .include(IncludeOptions {
            timeout: Duration::from_secs(1),
            pin: PinSource::Absent,
            progress: Progress::none(),
        })
        .await;
    assert_eq!(r, Err(InclusionError::Timeout(1)));
    assert!(t0.elapsed() < Duration::from_secs(5));
    // Exclusion of node 3.
    mock.control(json!({"cmd": "exclusionReady", "node": 3}))
        .await
        .unwrap();
    assert_eq!(
        driver
            .exclude(Duration::from_secs(10), &Progress::none())
            .await,
        Ok(3)
    );
    let excluded = mock
        .wait_log("EXCLUDED node=3", 1, Duration::from_secs(5))
        .await;
    assert_eq!(excluded.len(), 1);
    let left: Vec<String> = driver
        .devices()
        .await
        .into_iter()
        .map(|d| d.address)
        .collect();
    assert_eq!(left, vec!["zwave:c0ffee01:2".to_owned()]);
    let id3 = default_device_id(HOME_ID, 3);
    let offline = loop {
        match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
            Ok(Some(LockEvent::Offline { device_id })) => break device_id,
            Ok(Some(_)) => continue,
            _ => panic!("no Offline"),
        }
    };
    assert_eq!(offline, id3);
    // Node 2 is still served.
    let id2 = default_device_id(HOME_ID, 2);
    assert_eq!(driver.apply(&id2, &[set(1, "1111")]).await, vec![Ok(())]);
    // No lock in exclusion mode: timeout.
    assert_eq!(
        driver
            .exclude(Duration::from_secs(1), &Progress::none())
            .await,
        Err(InclusionError::Timeout(1))
    );
}
