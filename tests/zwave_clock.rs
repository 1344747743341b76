//! The lock's own clock and time zone against the zwave-js mock: lockhub
//! sets the clock (Time Parameters, UTC) and the time zone (Schedule Entry
//! Lock Time Offset) at the interview, writes year-day windows in the
//! property's local time (each end at its own UTC offset across a DST
//! change), sets the clock again when it drifts or the lock restarts, and
//! a lock whose clock it cannot set gets no native windows. The mock's
//! clock is the project's (tests/zwave-mock/mocks/lock-clock.cjs).
//! Needs scripts/test-deps-zwave.sh.

use chrono::{TimeZone, Utc};
use lockhub::drivers::zwave::security::NetworkKeys;
use lockhub::drivers::zwave::testing::{MockController, SECURE_MOCK_KEYS};
use lockhub::drivers::zwave::{default_device_id, ZwaveConfig, ZwaveDriver};
use lockhub::drivers::{DriverError, LockDriver, SlotCode, SlotOp};
use lockhub::model::{Pin, TimeWindow};
use serde_json::{json, Value};
use std::time::Duration;

const HOME_ID: u32 = 0xC0FFEE01;

fn vienna() -> jiff::tz::TimeZone {
    jiff::tz::TimeZone::get("Europe/Vienna").expect("tzdata (Europe/Vienna)")
}

async fn start(
    mock_config: &str,
    tune: impl FnOnce(&mut ZwaveConfig),
) -> (MockController, ZwaveDriver) {
    let mock =
        MockController::start_with(mock_config).expect("mock (run scripts/test-deps-zwave.sh)");
    let mut c = ZwaveConfig::new(mock.url());
    c.report_timeout = Duration::from_secs(3);
    c.offline_ping_interval = None;
    c.clock_check_interval = None;
    c.timezone = vienna();
    tune(&mut c);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let driver = ZwaveDriver::connect(c, tx).await.expect("connect");
    assert!(
        driver.wait_interviews(Duration::from_secs(40)).await,
        "interviews end"
    );
    (mock, driver)
}

/// The mock lock's clock: (its UTC time now, how often it was set, the
/// Schedule Entry Lock standard and DST offsets in minutes).
async fn lock_clock(mock: &MockController, node: u8) -> (chrono::DateTime<Utc>, u64, Value, Value) {
    let raw = mock
        .control(json!({"cmd": "clock", "node": node}))
        .await
        .unwrap();
    let v: Value = serde_json::from_str(&raw).unwrap();
    let utc = chrono::DateTime::parse_from_rfc3339(v["utc"].as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc);
    (
        utc,
        v["sets"].as_u64().unwrap(),
        v["standardOffset"].clone(),
        v["dstOffset"].clone(),
    )
}

fn assert_clock_right(clock: &(chrono::DateTime<Utc>, u64, Value, Value), what: &str) {
    let off = (clock.0 - Utc::now()).num_seconds().abs();
    assert!(off <= 5, "{what}: lock clock {} is {off} s off", clock.0);
    assert!(clock.1 >= 1, "{what}: clock set");
    assert_eq!(
        (clock.2.as_i64(), clock.3.as_i64()),
        (Some(60), Some(120)),
        "{what}: Vienna's standard and DST offsets"
    );
}

/// Waits until the lock's clock has been set more than `sets` times and
/// its time offset (sent just after) is there.
async fn clock_set_again(
    mock: &MockController,
    node: u8,
    sets: u64,
) -> (chrono::DateTime<Utc>, u64, Value, Value) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let c = lock_clock(mock, node).await;
        if c.1 > sets && !c.2.is_null() {
            return c;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "clock not set again"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Midnight CET on 2027-03-28 to noon CEST: the clocks go forward from
/// 02:00 to 03:00 in between.
fn dst_window() -> TimeWindow {
    TimeWindow {
        starts_at: Utc.with_ymd_and_hms(2027, 3, 27, 23, 0, 0).unwrap(),
        ends_at: Utc.with_ymd_and_hms(2027, 3, 28, 10, 0, 0).unwrap(),
    }
}

fn windowed(slot: u32, code: &str, window: TimeWindow) -> SlotOp {
    SlotOp::Set(SlotCode {
        slot,
        code: Pin::new(code),
        name: None,
        window: Some(window),
        recurring: None,
    })
}

/// The year-day schedule the mock lock holds for `user`'s slot 1:
/// (year, month, day, hour, minute) of its start and its stop.
async fn year_day(mock: &MockController, node: u8, user: u32) -> ([u64; 5], [u64; 5]) {
    let raw = mock
        .control(json!({"cmd": "state", "node": node, "prefix": format!("ScheduleEntryLock_schedule_{user}_1_")}))
        .await
        .unwrap();
    let entries: Vec<(String, Value)> = serde_json::from_str(&raw).unwrap();
    assert_eq!(entries.len(), 1, "{raw}");
    let s = &entries[0].1;
    let f = |side: &str| {
        ["Year", "Month", "Day", "Hour", "Minute"]
            .map(|k| s[format!("{side}{k}")].as_u64().unwrap())
    };
    (f("start"), f("stop"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_across_dst_lands_in_vienna_local_time() {
    let (mock, driver) = start("mocks/locks.cjs", |_| {}).await;
    for node in [2, 3, 4] {
        assert_clock_right(&lock_clock(&mock, node).await, &format!("node {node}"));
    }
    for d in driver.devices().await {
        assert!(d.capabilities.supports_native_scheduling, "{}", d.address);
    }
    let id2 = default_device_id(HOME_ID, 2);
    assert_eq!(
        driver
            .apply(&id2, &[windowed(6, "246810", dst_window())])
            .await,
        vec![Ok(())]
    );
    let (start, stop) = year_day(&mock, 2, 6).await;
    assert_eq!(start, [27, 3, 28, 0, 0], "midnight, CET (+01:00)");
    assert_eq!(stop, [27, 3, 28, 12, 0], "noon, CEST (+02:00), not 11:00");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secure_locks_get_their_clock_in_their_own_class() {
    let (mock, driver) = start("mocks/secure-locks.cjs", |c| {
        c.keys = Some(NetworkKeys::from_json(SECURE_MOCK_KEYS).unwrap());
    })
    .await;
    // The strict mock ignores a Time Parameters or Schedule Entry Lock
    // command outside the lock's class: a clock set here went encrypted.
    for node in [2, 3] {
        assert_clock_right(&lock_clock(&mock, node).await, &format!("node {node}"));
    }
    assert!(
        mock.log_lines("STRICT drop").is_empty(),
        "{:?}",
        mock.log_lines("STRICT drop")
    );
    for (node, slot) in [(2u8, 7u32), (3, 8)] {
        let id = default_device_id(HOME_ID, node);
        assert_eq!(
            driver
                .apply(&id, &[windowed(slot, "135790", dst_window())])
                .await,
            vec![Ok(())],
            "node {node}"
        );
        let (start, stop) = year_day(&mock, node, slot).await;
        assert_eq!(
            (start, stop),
            ([27, 3, 28, 0, 0], [27, 3, 28, 12, 0]),
            "node {node}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drifted_clock_is_set_again() {
    let (mock, _driver) = start("mocks/locks.cjs", |c| {
        c.clock_check_interval = Some(Duration::from_millis(400));
    })
    .await;
    let (_, sets, _, _) = lock_clock(&mock, 2).await;
    // Checks of a right clock set nothing.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        lock_clock(&mock, 2).await.1,
        sets,
        "a right clock is left alone"
    );
    mock.control(json!({"cmd": "clockSkew", "node": 2, "ms": 10 * 60 * 1000}))
        .await
        .unwrap();
    let c = clock_set_again(&mock, 2, sets).await;
    assert_clock_right(&c, "after drift");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_lock_gets_its_clock_back() {
    // No periodic check: the lock's "power applied" notification triggers it.
    let (mock, _driver) = start("mocks/locks.cjs", |_| {}).await;
    let (_, sets, _, _) = lock_clock(&mock, 3).await;
    mock.control(json!({"cmd": "clockLost", "node": 3}))
        .await
        .unwrap();
    let lost = lock_clock(&mock, 3).await;
    assert!(
        lost.0.timestamp()
            < Utc
                .with_ymd_and_hms(2001, 1, 1, 0, 0, 0)
                .unwrap()
                .timestamp()
    );
    assert!(lost.2.is_null(), "time offset forgotten");
    // Notification v8, Power Management (0x08), "power has been applied" (0x01).
    mock.control(json!({"cmd": "send", "node": 3, "hex": "7105 0000 00 ff 08 01 00"}))
        .await
        .unwrap();
    let c = clock_set_again(&mock, 3, sets).await;
    assert_clock_right(&c, "after restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_without_a_clock_keeps_no_windows() {
    // Node 2 has Schedule Entry Lock but no Time Parameters.
    let (mock, driver) = start("mocks/clockless.cjs", |_| {}).await;
    let id2 = default_device_id(HOME_ID, 2);
    let devices = driver.devices().await;
    let caps = |id: &str| {
        devices
            .iter()
            .find(|d| d.device_id == id)
            .unwrap()
            .capabilities
            .supports_native_scheduling
    };
    assert!(!caps(&id2), "no clock: the hub keeps its windows");
    assert!(caps(&default_device_id(HOME_ID, 3)));
    assert!(matches!(
        driver
            .apply(&id2, &[windowed(6, "246810", dst_window())])
            .await[0],
        Err(DriverError::Failed(_))
    ));
    let raw = mock
        .control(json!({"cmd": "state", "node": 2, "prefix": "ScheduleEntryLock_schedule_"}))
        .await
        .unwrap();
    assert_eq!(raw, "[]", "nothing scheduled on the lock");
}
