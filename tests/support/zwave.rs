#![allow(dead_code)]
//! Z-Wave test helpers: a driver on a mock config, slot ops.

use lockhub::drivers::zwave::testing::MockController;
use lockhub::drivers::zwave::{ZwaveConfig, ZwaveDriver};
use lockhub::drivers::{LockEvent, SlotCode, SlotOp};
use lockhub::model::Pin;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;

/// A Set of `code` in `slot`, no window.
pub fn set(slot: u32, code: &str) -> SlotOp {
    SlotOp::Set(SlotCode {
        slot,
        code: Pin::new(code),
        name: None,
        window: None,
        recurring: None,
    })
}

/// The driver on `mock`, configured by `f` (2 s report timeout to start
/// with), once its interviews have ended.
pub async fn connect(
    mock: &MockController,
    f: impl FnOnce(&mut ZwaveConfig),
) -> (ZwaveDriver, UnboundedReceiver<LockEvent>) {
    let mut c = ZwaveConfig::new(mock.url());
    c.report_timeout = Duration::from_secs(2);
    f(&mut c);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let driver = ZwaveDriver::connect(c, tx).await.expect("connect");
    assert!(
        driver.wait_interviews(Duration::from_secs(60)).await,
        "interviews end"
    );
    (driver, rx)
}

/// The mock network's keys (`testing::SECURE_MOCK_KEYS`) in a keys file under
/// `dir`, mode 0600 as lockhub demands.
pub fn secure_keys_file(dir: &std::path::Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let keys = dir.join("zwave-keys.json");
    std::fs::write(&keys, lockhub::drivers::zwave::testing::SECURE_MOCK_KEYS).unwrap();
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o600)).unwrap();
    keys
}
