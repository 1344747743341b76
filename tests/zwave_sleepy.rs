//! A sleeping lock (mock config `sleepy.cjs`: node 4 neither listens nor is
//! FLiRS): interviewed at its first wake-up, and a batch waits for the next
//! one. Needs node and the mock's packages: run scripts/test-deps-zwave.sh.

use lockhub::drivers::zwave::testing::MockController;
use lockhub::drivers::zwave::{default_device_id, ZwaveConfig, ZwaveDriver};
use lockhub::drivers::{LockDriver, LockEvent, SlotCode, SlotOp};
use lockhub::model::Pin;
use serde_json::json;
use std::time::Duration;

fn set(slot: u32, code: &str) -> SlotOp {
    SlotOp::Set(SlotCode {
        recurring: None,
        slot,
        code: Pin::new(code),
        name: None,
        window: None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sleeping_lock_is_served_at_its_wake_up() {
    let mock = MockController::start_with("mocks/sleepy.cjs").expect("mock");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut cfg = ZwaveConfig::new(mock.url());
    cfg.report_timeout = Duration::from_secs(2);
    cfg.wake_up_wait = Duration::from_secs(10);
    let driver = ZwaveDriver::connect(cfg, tx).await.unwrap();
    assert!(driver.wait_interviews(Duration::from_secs(30)).await);
    let id4 = default_device_id(driver.home_id(), 4);
    assert_eq!(
        driver.devices().await.len(),
        2,
        "node 4 sleeps: not interviewed yet"
    );

    // Its first wake-up: the interview runs then.
    mock.control(json!({"cmd": "send", "node": 4, "hex": "8407"}))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(LockEvent::Discovered(d))) if d.device_id == id4 => break,
            Ok(Some(_)) => continue,
            _ => panic!("node 4 not discovered after its wake-up"),
        }
    }
    // Still awake: served at once, then sent back to sleep.
    assert_eq!(driver.apply(&id4, &[set(1, "1111")]).await, vec![Ok(())]);

    // Asleep now: the next batch waits for the next wake-up.
    let d = driver.clone();
    let id = id4.clone();
    let pending =
        tokio::spawn(async move { d.apply(&id, &[set(2, "2222"), set(3, "3333")]).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!pending.is_finished(), "must wait for the wake-up");
    assert!(!mock.codes(4).await.unwrap().contains_key(&2));
    mock.control(json!({"cmd": "send", "node": 4, "hex": "8407"}))
        .await
        .unwrap();
    let r = tokio::time::timeout(Duration::from_secs(10), pending)
        .await
        .expect("served after the wake-up")
        .unwrap();
    assert_eq!(r, vec![Ok(()), Ok(())]);
    let codes = mock.codes(4).await.unwrap();
    assert_eq!(codes.get(&1).map(String::as_str), Some("1111"));
    assert_eq!(codes.get(&2).map(String::as_str), Some("2222"));
    assert_eq!(codes.get(&3).map(String::as_str), Some("3333"));
}
