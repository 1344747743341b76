//! Extended User Code Set: several codes per frame where the lock offers it
//! (mock config `multiset.cjs`). Needs node and the mock's packages: run
//! scripts/test-deps-zwave.sh.

use lockhub::drivers::zwave::testing::MockController;
use lockhub::drivers::zwave::{default_device_id, ZwaveConfig, ZwaveDriver};
use lockhub::drivers::{LockDriver, SlotCode, SlotOp};
use lockhub::model::Pin;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_goes_out_in_few_frames() {
    let mock = MockController::start_with("mocks/multiset.cjs").expect("mock");
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let mut cfg = ZwaveConfig::new(mock.url());
    cfg.report_timeout = Duration::from_secs(2);
    let driver = ZwaveDriver::connect(cfg, tx).await.unwrap();
    assert!(driver.wait_interviews(Duration::from_secs(30)).await);
    let id2 = default_device_id(driver.home_id(), 2);

    let mut ops: Vec<SlotOp> = (1..=6)
        .map(|slot| {
            SlotOp::Set(SlotCode {
                recurring: None,
                slot,
                code: Pin::new(format!("{}", 4100 + slot)),
                name: None,
                window: None,
            })
        })
        .collect();
    ops.push(SlotOp::Clear { slot: 9 });
    let before = driver.frames_sent();
    let r = driver.apply(&id2, &ops).await;
    assert_eq!(r, vec![Ok(()); 7]);
    // 3 + 8 bytes per four-digit code, 42 bytes a frame: four codes, then
    // two codes and the clear.
    assert_eq!(driver.frames_sent() - before, 2);
    let codes = mock.codes(2).await.unwrap();
    for slot in 1..=6u32 {
        assert_eq!(
            codes.get(&slot).map(String::as_str),
            Some(format!("{}", 4100 + slot).as_str())
        );
    }
    assert!(!codes.contains_key(&9));

    // Clearing some of them goes in one frame too.
    let before = driver.frames_sent();
    let clears: Vec<SlotOp> = (1..=3).map(|slot| SlotOp::Clear { slot }).collect();
    assert_eq!(driver.apply(&id2, &clears).await, vec![Ok(()); 3]);
    assert_eq!(driver.frames_sent() - before, 1);
    let codes = mock.codes(2).await.unwrap();
    assert_eq!(codes.keys().copied().collect::<Vec<_>>(), vec![4, 5, 6]);
}
