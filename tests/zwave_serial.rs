//! The serial path: the driver opens a pseudo-terminal (through tokio-serial)
//! that socat bridges to the mock controller's TCP port. Needs socat, node
//! and the mock's packages: run scripts/test-deps-zwave.sh.

use lockhub::drivers::zwave::testing::MockController;
use lockhub::drivers::zwave::{default_device_id, ZwaveConfig, ZwaveDriver};
use lockhub::drivers::{LockDriver, SlotCode, SlotOp};
use lockhub::model::Pin;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// socat, killed on drop.
struct Bridge(Child);

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drives_the_mock_through_a_serial_pty() {
    let mock = MockController::start().expect("mock controller (run scripts/test-deps-zwave.sh)");
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("ttyZW");
    let bridge = Bridge(
        Command::new("socat")
            .arg(format!("pty,raw,echo=0,link={}", link.display()))
            .arg(format!("tcp:127.0.0.1:{}", mock.port))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("socat (run scripts/test-deps-zwave.sh)"),
    );
    for _ in 0..100 {
        if link.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(link.exists(), "socat made no pty");

    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let mut config = ZwaveConfig::new(link.to_str().unwrap());
    config.report_timeout = Duration::from_secs(2);
    let driver = ZwaveDriver::connect(config, tx)
        .await
        .expect("connect over the pty");
    assert!(driver.wait_interviews(Duration::from_secs(30)).await);
    assert_eq!(driver.devices().await.len(), 3);
    let id3 = default_device_id(driver.home_id(), 3);
    let op = SlotOp::Set(SlotCode {
        recurring: None,
        slot: 12,
        code: Pin::new("31415"),
        name: None,
        window: None,
    });
    assert_eq!(driver.apply(&id3, &[op]).await, vec![Ok(())]);
    assert_eq!(
        mock.codes(3).await.unwrap().get(&12).map(String::as_str),
        Some("31415")
    );
    drop(driver);
    drop(bridge);
}
