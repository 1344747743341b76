//! Security S0 and S2 against the zwave-js mock, with the project's strict
//! config (tests/zwave-mock/mocks/secure-locks.cjs): node 2 is included with
//! S2 Access Control, node 3 with S0, and both IGNORE every User Code, Door
//! Lock, Schedule Entry Lock and Notification command that does not arrive
//! in their own class. A code on these locks was sent encrypted.
//! Needs scripts/test-deps-zwave.sh.

use lockhub::drivers::zwave::security::{NetworkKeys, SecurityClass};
use lockhub::drivers::zwave::testing::{MockController, SECURE_MOCK_KEYS};
use lockhub::drivers::zwave::{default_device_id, ZwaveConfig, ZwaveDriver};
use lockhub::drivers::{DriverError, LockDriver, LockEvent, LockMethod, SlotCode, SlotOp};
use lockhub::model::Pin;
use serde_json::json;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;

const HOME_ID: u32 = 0xC0FFEE01;
const CONFIG: &str = "mocks/secure-locks.cjs";

/// Writes the keys file (mode 0600) and loads it the way the daemon does.
fn keys(dir: &std::path::Path) -> NetworkKeys {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("zwave-keys.json");
    std::fs::write(&path, SECURE_MOCK_KEYS).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    NetworkKeys::load_or_create(&path).unwrap()
}

fn config(mock: &MockController, keys: Option<NetworkKeys>) -> ZwaveConfig {
    let mut c = ZwaveConfig::new(mock.url());
    c.report_timeout = Duration::from_secs(3);
    c.offline_ping_interval = None;
    c.keys = keys;
    c
}

async fn start() -> (
    MockController,
    ZwaveDriver,
    UnboundedReceiver<LockEvent>,
    tempfile::TempDir,
) {
    let mock = MockController::start_with(CONFIG).expect("mock (run scripts/test-deps-zwave.sh)");
    let dir = tempfile::tempdir().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let driver = ZwaveDriver::connect(config(&mock, Some(keys(dir.path()))), tx)
        .await
        .expect("connect");
    assert!(
        driver.wait_interviews(Duration::from_secs(40)).await,
        "interviews end"
    );
    (mock, driver, rx, dir)
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

fn s2_lock() -> String {
    default_device_id(HOME_ID, 2)
}

fn s0_lock() -> String {
    default_device_id(HOME_ID, 3)
}

/// The next event matching `f` within `secs` (others are skipped).
async fn next_event(
    rx: &mut UnboundedReceiver<LockEvent>,
    secs: u64,
    f: impl Fn(&LockEvent) -> bool,
) -> Option<LockEvent> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(e)) if f(&e) => return Some(e),
            Ok(Some(_)) => continue,
            _ => return None,
        }
    }
}

async fn sets(mock: &MockController, node: u8) -> std::collections::BTreeMap<u32, u64> {
    let raw = mock
        .control(json!({"cmd": "sets", "node": node}))
        .await
        .unwrap();
    let m: std::collections::BTreeMap<String, u64> = serde_json::from_str(&raw).unwrap();
    m.into_iter()
        .map(|(k, v)| (k.parse().unwrap(), v))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_lock_is_spoken_to_in_its_class_and_codes_land() {
    let (mock, driver, _rx, _dir) = start().await;
    assert_eq!(
        mock.log_lines("STRICT on").len(),
        1,
        "the strict config runs"
    );
    assert_eq!(
        driver.security_class(2),
        Some(SecurityClass::S2AccessControl)
    );
    assert_eq!(driver.security_class(3), Some(SecurityClass::S0Legacy));
    let mut devices = driver.devices().await;
    devices.sort_by(|a, b| a.address.cmp(&b.address));
    assert_eq!(devices.len(), 2, "{devices:?}");
    assert_eq!(
        devices[0].security_class.as_deref(),
        Some("S2_AccessControl")
    );
    assert_eq!(devices[1].security_class.as_deref(), Some("S0_Legacy"));
    for d in &devices {
        // Learned from the secure-only User Code and Schedule Entry Lock CCs.
        assert_eq!(d.capabilities.max_active_codes_supported, 30);
        assert!(d.capabilities.supports_native_scheduling);
    }

    let (s2, s0) = (s2_lock(), s0_lock());
    assert_eq!(
        driver.apply(&s2, &[set(1, "1234"), set(2, "24680")]).await,
        vec![Ok(()), Ok(())]
    );
    assert_eq!(driver.apply(&s0, &[set(5, "5555")]).await, vec![Ok(())]);
    let c2 = mock.codes(2).await.unwrap();
    assert_eq!(c2.get(&1).map(String::as_str), Some("1234"));
    assert_eq!(c2.get(&2).map(String::as_str), Some("24680"));
    assert_eq!(
        mock.codes(3).await.unwrap().get(&5).map(String::as_str),
        Some("5555")
    );
    // Read back through the locks' encrypted reports.
    let mut got: Vec<(u32, String)> = driver
        .read_slots(&s2)
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.slot, s.code.expose().to_owned()))
        .collect();
    got.sort();
    assert_eq!(got, vec![(1, "1234".into()), (2, "24680".into())]);
    let got = driver.read_slots(&s0).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].slot, got[0].code.expose()), (5, "5555"));
    // Removal.
    assert_eq!(
        driver.apply(&s2, &[SlotOp::Clear { slot: 1 }]).await,
        vec![Ok(())]
    );
    assert_eq!(
        driver.apply(&s0, &[SlotOp::Clear { slot: 5 }]).await,
        vec![Ok(())]
    );
    assert!(!mock.codes(2).await.unwrap().contains_key(&1));
    assert!(mock.codes(3).await.unwrap().is_empty());
    assert!(
        mock.log_lines("STRICT drop").is_empty(),
        "nothing secure-only went in plaintext: {:?}",
        mock.log_lines("STRICT drop")
    );
    assert_eq!(sets(&mock, 2).await, [(1, 2), (2, 1)].into_iter().collect());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_keys_the_strict_locks_take_nothing() {
    // The control: plaintext is really refused by this mock.
    let mock = MockController::start_with(CONFIG).expect("mock");
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let driver = ZwaveDriver::connect(config(&mock, None), tx).await.unwrap();
    assert!(driver.wait_interviews(Duration::from_secs(40)).await);
    assert_eq!(driver.security_class(2), Some(SecurityClass::None));
    assert!(
        driver.devices().await.is_empty(),
        "no answer to plaintext User Code Gets"
    );
    assert!(!mock.log_lines("STRICT drop node=2 cc=0x63").is_empty());
    assert!(mock.codes(2).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plaintext_code_deleted_report_is_not_believed() {
    let (mock, driver, mut rx, _dir) = start().await;
    let s2 = s2_lock();
    assert_eq!(
        driver.apply(&s2, &[set(4, "4444"), set(6, "6666")]).await,
        vec![Ok(()), Ok(())]
    );
    assert_eq!(driver.read_slots(&s2).await.unwrap().len(), 2);
    let discarded = driver.security_stats().discarded;
    // Someone nearby forges "user code 4 deleted" (Access Control event
    // 0x0D) and a User Code Report "slot 6 available", in plaintext.
    mock.control(json!({"cmd": "send", "node": 2, "hex": "7105 0000 00 ff 06 0d 01 04"}))
        .await
        .unwrap();
    mock.control(json!({"cmd": "send", "node": 2, "hex": "6303 06 00 00000000"}))
        .await
        .unwrap();
    let changed = next_event(&mut rx, 2, |e| {
        matches!(
            e,
            LockEvent::SlotChanged { .. } | LockEvent::SlotsMayHaveChanged { .. }
        )
    })
    .await;
    assert_eq!(changed, None, "forged reports changed nothing");
    assert_eq!(driver.security_stats().discarded, discarded + 2);
    let slots = driver.read_slots(&s2).await.unwrap();
    assert_eq!(slots.len(), 2, "the cache still holds both codes");
    // The same report from the lock itself, encrypted, is believed.
    mock.control(json!({"cmd": "sendSecure", "node": 2, "hex": "7105 0000 00 ff 06 0d 01 04"}))
        .await
        .unwrap();
    let e = next_event(&mut rx, 5, |e| matches!(e, LockEvent::SlotChanged { .. })).await;
    assert_eq!(
        e,
        Some(LockEvent::SlotChanged {
            device_id: s2.clone(),
            slot: 4,
            code: None
        })
    );
    // And from the S0 lock, in S0.
    let s0 = s0_lock();
    assert_eq!(driver.apply(&s0, &[set(2, "2222")]).await, vec![Ok(())]);
    assert_eq!(driver.read_slots(&s0).await.unwrap().len(), 1);
    mock.control(json!({"cmd": "send", "node": 3, "hex": "7105 0000 00 ff 06 0d 01 02"}))
        .await
        .unwrap();
    assert_eq!(
        next_event(&mut rx, 2, |e| matches!(e, LockEvent::SlotChanged { .. })).await,
        None
    );
    mock.control(json!({"cmd": "sendSecure", "node": 3, "hex": "7105 0000 00 ff 06 0d 01 02"}))
        .await
        .unwrap();
    assert_eq!(
        next_event(&mut rx, 5, |e| matches!(e, LockEvent::SlotChanged { .. })).await,
        Some(LockEvent::SlotChanged {
            device_id: s0,
            slot: 2,
            code: None
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_span_mid_batch_resyncs_and_sets_nothing_twice() {
    let (mock, driver, _rx, _dir) = start().await;
    let s2 = s2_lock();
    // Slow the lock down so the batch is still going when its SPAN is lost.
    mock.control(json!({"cmd": "txdelay", "node": 2, "ms": 60}))
        .await
        .unwrap();
    let ops: Vec<SlotOp> = (1..=6).map(|s| set(s, &format!("{}", 7000 + s))).collect();
    let d = driver.clone();
    let id = s2.clone();
    let batch = tokio::spawn(async move { d.apply(&id, &ops).await });
    // After the second code landed, the lock forgets the SPAN.
    let t0 = std::time::Instant::now();
    while sets(&mock, 2).await.values().sum::<u64>() < 2 {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "batch did not start"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    mock.control(json!({"cmd": "desync", "node": 2}))
        .await
        .unwrap();
    let r = batch.await.unwrap();
    assert_eq!(r, vec![Ok(()); 6]);
    assert_eq!(
        mock.log_lines("DESYNC node=2").len(),
        1,
        "the SPAN was lost"
    );
    assert!(
        driver.security_stats().resent >= 1,
        "a frame was sent again"
    );
    assert!(
        driver.security_stats().sos_sent == 0,
        "lockhub decrypted every reply"
    );
    let codes = mock.codes(2).await.unwrap();
    for s in 1..=6u32 {
        assert_eq!(codes.get(&s), Some(&format!("{}", 7000 + s)));
    }
    assert_eq!(
        sets(&mock, 2).await,
        (1..=6).map(|s| (s, 1)).collect(),
        "each code set exactly once"
    );

    // The S0 lock loses a nonce (ignores one Nonce Get) mid-batch.
    let s0 = s0_lock();
    let ops: Vec<SlotOp> = (1..=4).map(|s| set(s, &format!("{}", 8000 + s))).collect();
    let d = driver.clone();
    let id = s0.clone();
    let batch = tokio::spawn(async move { d.apply(&id, &ops).await });
    while sets(&mock, 3).await.values().sum::<u64>() < 1 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    mock.control(json!({"cmd": "dropNonceGet", "node": 3, "count": 1}))
        .await
        .unwrap();
    assert_eq!(batch.await.unwrap(), vec![Ok(()); 4]);
    assert!(!mock.log_lines("NONCE GET dropped node=3").is_empty());
    assert_eq!(sets(&mock, 3).await, (1..=4).map(|s| (s, 1)).collect());
    let codes = mock.codes(3).await.unwrap();
    assert_eq!(codes.len(), 4);
    // A lock that never gives a nonce: a transient error, not a hang.
    mock.control(json!({"cmd": "dropNonceGet", "node": 3, "count": 100}))
        .await
        .unwrap();
    let r = driver.apply(&s0, &[set(9, "9999")]).await;
    assert_eq!(r, vec![Err(DriverError::Timeout)]);
    assert!(!mock.codes(3).await.unwrap().contains_key(&9));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_bolt_reports_of_a_secure_lock_are_not_believed() {
    let (mock, driver, mut rx, _dir) = start().await;
    let s2 = s2_lock();
    let bolt = |e: &LockEvent| {
        matches!(
            e,
            LockEvent::Operated { .. }
                | LockEvent::DoorLock { .. }
                | LockEvent::AccessDenied { .. }
        )
    };
    // What the interview asked (the bolt's state, in the lock's class) is in.
    tokio::time::sleep(Duration::from_secs(1)).await;
    while rx.try_recv().is_ok() {}
    // Door Lock and Notification are secure-only on this lock: a forged
    // "unsecured" Door Lock report and "keypad unlock by user 4" in
    // plaintext are dropped before anything reads them.
    let discarded = driver.security_stats().discarded;
    for hex in [
        "6203 00 00 00 fe fe",
        "7105 0000 00 ff 06 06 01 04",
        "7105 0000 00 ff 07 04 00",
    ] {
        mock.control(json!({"cmd": "send", "node": 2, "hex": hex}))
            .await
            .unwrap();
    }
    assert_eq!(
        next_event(&mut rx, 2, bolt).await,
        None,
        "forged reports told nothing"
    );
    assert_eq!(driver.security_stats().discarded, discarded + 3);
    // Battery is not secure-only on it: believed in plaintext.
    mock.control(json!({"cmd": "send", "node": 2, "hex": "8003 0f"}))
        .await
        .unwrap();
    assert_eq!(
        next_event(&mut rx, 5, |e| matches!(e, LockEvent::Battery { .. })).await,
        Some(LockEvent::Battery {
            device_id: s2.clone(),
            level: 15
        })
    );
    // The lock's own, in its class: believed.
    mock.control(json!({"cmd": "sendSecure", "node": 2, "hex": "7105 0000 00 ff 06 06 01 04"}))
        .await
        .unwrap();
    assert_eq!(
        next_event(&mut rx, 5, bolt).await,
        Some(LockEvent::Operated {
            device_id: s2.clone(),
            locked: false,
            method: LockMethod::Keycode,
            slot: Some(4)
        })
    );
    // And a lock_door goes to it encrypted (the strict mock takes nothing
    // else) and is confirmed.
    assert_eq!(driver.set_locked(&s2, true).await, Ok(()));
    let raw = mock
        .control(json!({"cmd": "state", "node": 2, "prefix": "DoorLock_currentMode"}))
        .await
        .unwrap();
    assert_eq!(raw, r#"[["DoorLock_currentMode",255]]"#);
}
