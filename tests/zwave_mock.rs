//! The Z-Wave driver against the zwave-js mock controller (three locks:
//! nodes 2 and 3 listening, node 4 FLiRS; User Code v2 with 30 users).
//! Needs node and the mock's npm packages: run scripts/test-deps-zwave.sh.

mod support;

use lockhub::drivers::zwave::testing::MockController;
use lockhub::drivers::zwave::{default_device_id, LockConfig, ZwaveConfig, ZwaveDriver};
use lockhub::drivers::{DriverError, LockDriver, LockEvent, LockMethod, SlotCode, SlotOp};
use lockhub::model::Pin;
use serde_json::json;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;

const HOME_ID: u32 = 0xC0FFEE01;

fn config(mock: &MockController) -> ZwaveConfig {
    let mut c = ZwaveConfig::new(mock.url());
    c.report_timeout = Duration::from_secs(2);
    c.offline_ping_interval = Some(Duration::from_millis(500));
    c.locks = vec![LockConfig {
        node_id: 3,
        name: Some("Front door".into()),
        device_id: Some("front-door".into()),
    }];
    c
}

async fn start() -> (MockController, ZwaveDriver, UnboundedReceiver<LockEvent>) {
    let mock = MockController::start().expect("mock controller (run scripts/test-deps-zwave.sh)");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let driver = ZwaveDriver::connect(config(&mock), tx)
        .await
        .expect("connect");
    assert!(
        driver.wait_interviews(Duration::from_secs(30)).await,
        "interviews end"
    );
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

/// Waits for the first event matching `f` (others are skipped).
async fn expect_event(
    rx: &mut UnboundedReceiver<LockEvent>,
    what: &str,
    f: impl Fn(&LockEvent) -> bool,
) -> LockEvent {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(e)) if f(&e) => return e,
            Ok(Some(_)) => continue,
            _ => panic!("no {what} event"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interviews_three_mock_locks() {
    let (_mock, driver, mut rx) = start().await;
    assert_eq!(driver.home_id(), HOME_ID);
    assert_eq!(driver.own_node(), 1);
    let mut devices = driver.devices().await;
    devices.sort_by(|a, b| a.address.cmp(&b.address));
    assert_eq!(devices.len(), 3, "{devices:?}");
    let front = devices
        .iter()
        .find(|d| d.device_id == "front-door")
        .expect("pinned id");
    assert_eq!(front.name, "Front door");
    assert_eq!(front.address, "zwave:c0ffee01:3");
    let d2 = devices
        .iter()
        .find(|d| d.address == "zwave:c0ffee01:2")
        .unwrap();
    assert_eq!(d2.device_id, default_device_id(HOME_ID, 2));
    for d in &devices {
        let c = &d.capabilities;
        assert_eq!(c.max_active_codes_supported, 30);
        assert_eq!(c.supported_code_lengths, vec![4, 5, 6, 7, 8, 9, 10]);
        assert!(
            c.supports_native_scheduling,
            "schedule entry lock with year-day slots"
        );
        assert!(c.code_constraints.is_empty(), "mock keypad has all digits");
    }
    // One Discovered per lock.
    let mut discovered = 0;
    while let Ok(e) = rx.try_recv() {
        if matches!(e, LockEvent::Discovered(_)) {
            discovered += 1;
        }
    }
    assert_eq!(discovered, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codes_land_in_the_right_slots_and_joining_keeps_existing_codes() {
    let mock = MockController::start().expect("mock");
    // A code put on lock 2 before lockhub meets it.
    // (Set through a first driver session, then a fresh driver joins.)
    {
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let d = ZwaveDriver::connect(config(&mock), tx).await.unwrap();
        assert!(d.wait_interviews(Duration::from_secs(30)).await);
        let id2 = default_device_id(HOME_ID, 2);
        assert_eq!(d.apply(&id2, &[set(7, "7777")]).await, vec![Ok(())]);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let driver = ZwaveDriver::connect(config(&mock), tx).await.unwrap();
    assert!(driver.wait_interviews(Duration::from_secs(30)).await);
    let id2 = default_device_id(HOME_ID, 2);
    let id4 = default_device_id(HOME_ID, 4);

    // The interview did not erase it, and read_slots returns it.
    assert_eq!(
        mock.codes(2).await.unwrap().get(&7).map(String::as_str),
        Some("7777")
    );
    let slots = driver.read_slots(&id2).await.unwrap();
    assert_eq!(slots.len(), 1);
    assert_eq!((slots[0].slot, slots[0].code.expose()), (7, "7777"));

    let r = driver
        .apply(&id2, &[set(1, "1234"), set(2, "24680"), set(3, "1111")])
        .await;
    assert_eq!(r, vec![Ok(()), Ok(()), Ok(())]);
    let r = driver.apply("front-door", &[set(5, "5555")]).await;
    assert_eq!(r, vec![Ok(())]);
    let r = driver.apply(&id4, &[set(30, "9876543210")]).await;
    assert_eq!(r, vec![Ok(())]);
    let r = driver.apply(&id2, &[SlotOp::Clear { slot: 3 }]).await;
    assert_eq!(r, vec![Ok(())]);

    let c2 = mock.codes(2).await.unwrap();
    assert_eq!(c2.get(&1).map(String::as_str), Some("1234"));
    assert_eq!(c2.get(&2).map(String::as_str), Some("24680"));
    assert_eq!(c2.get(&3), None);
    assert_eq!(c2.get(&7).map(String::as_str), Some("7777"));
    assert_eq!(
        mock.codes(3).await.unwrap().get(&5).map(String::as_str),
        Some("5555")
    );
    assert_eq!(
        mock.codes(4).await.unwrap().get(&30).map(String::as_str),
        Some("9876543210")
    );
    assert!(
        !mock.codes(3).await.unwrap().contains_key(&1),
        "no code leaked to another lock"
    );

    // Read back after our own writes: cache and lock agree, and the lock's
    // User Code checksum matches ours, so that costs one frame, not 30.
    let before = driver.frames_sent();
    let mut slots: Vec<(u32, String)> = driver
        .read_slots(&id2)
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.slot, s.code.expose().to_owned()))
        .collect();
    slots.sort();
    assert_eq!(
        slots,
        vec![(1, "1234".into()), (2, "24680".into()), (7, "7777".into())]
    );
    assert_eq!(driver.frames_sent() - before, 1, "checksum get only");

    // Bad input: typed, final errors, nothing sent.
    let r = driver
        .apply(&id2, &[set(31, "1234"), set(4, "12"), set(8, "1234")])
        .await;
    assert!(matches!(r[0], Err(DriverError::Failed(_))));
    assert!(matches!(r[1], Err(DriverError::CodeRejected(_))));
    assert_eq!(r[2], Err(DriverError::DuplicateCode));
    let r = driver
        .apply(&id2, &[set(10, "9090"), set(11, "9090")])
        .await;
    assert_eq!(
        r,
        vec![Ok(()), Err(DriverError::DuplicateCode)],
        "one code, two slots in a batch"
    );
    assert_eq!(
        driver.apply("nope", &[set(1, "1234")]).await,
        vec![Err(DriverError::UnknownDevice)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_lock_goes_offline_and_comes_back_online() {
    let (mock, driver, mut rx) = start().await;
    let id3 = "front-door";
    let id2 = default_device_id(HOME_ID, 2);
    mock.control(json!({"cmd": "dead", "node": 3}))
        .await
        .unwrap();
    let r = driver.apply(id3, &[set(1, "1234"), set(2, "2345")]).await;
    assert_eq!(
        r,
        vec![Err(DriverError::Offline), Err(DriverError::Offline)],
        "rest of the batch not sent"
    );
    expect_event(
        &mut rx,
        "Offline",
        |e| matches!(e, LockEvent::Offline { device_id } if device_id == id3),
    )
    .await;
    // The other locks are still served meanwhile.
    assert_eq!(driver.apply(&id2, &[set(1, "1234")]).await, vec![Ok(())]);
    mock.control(json!({"cmd": "alive", "node": 3}))
        .await
        .unwrap();
    // The pinger notices without any operation.
    expect_event(
        &mut rx,
        "Online",
        |e| matches!(e, LockEvent::Online { device_id } if device_id == id3),
    )
    .await;
    assert_eq!(driver.apply(id3, &[set(1, "1234")]).await, vec![Ok(())]);
    assert_eq!(
        mock.codes(3).await.unwrap().get(&1).map(String::as_str),
        Some("1234")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keypad_events_from_the_lock() {
    let (mock, driver, mut rx) = start().await;
    let id2 = default_device_id(HOME_ID, 2);
    // Fill the driver's view of lock 2 first.
    assert_eq!(driver.apply(&id2, &[set(4, "4444")]).await, vec![Ok(())]);
    assert_eq!(driver.read_slots(&id2).await.unwrap().len(), 1);

    // Keypad unlock with user id 4 (Notification, Access Control, event 6).
    mock.control(json!({"cmd": "send", "node": 2, "hex": "7105 0000 00 ff 06 06 01 04"}))
        .await
        .unwrap();
    let e = expect_event(&mut rx, "keypad unlock", |e| {
        matches!(e, LockEvent::Operated { .. })
    })
    .await;
    assert_eq!(
        e,
        LockEvent::Operated {
            device_id: id2.clone(),
            locked: false,
            method: LockMethod::Keycode,
            slot: Some(4)
        }
    );

    // A code changed at the keypad: the lock sends a User Code Report.
    mock.control(json!({"cmd": "send", "node": 2, "hex": "6303 09 01 31323334353637"}))
        .await
        .unwrap();
    let e = expect_event(&mut rx, "SlotChanged", |e| {
        matches!(e, LockEvent::SlotChanged { .. })
    })
    .await;
    match e {
        LockEvent::SlotChanged {
            device_id,
            slot,
            code: Some(c),
        } => {
            assert_eq!((device_id.as_str(), slot), (id2.as_str(), 9));
            assert_eq!(c.code.expose(), "1234567");
        }
        other => panic!("unexpected {other:?}"),
    }

    // A code deleted at the keypad (Access Control event 0x0D, user 4).
    mock.control(json!({"cmd": "send", "node": 2, "hex": "7105 0000 00 ff 06 0d 01 04"}))
        .await
        .unwrap();
    let e = expect_event(&mut rx, "SlotChanged", |e| {
        matches!(e, LockEvent::SlotChanged { .. })
    })
    .await;
    assert_eq!(
        e,
        LockEvent::SlotChanged {
            device_id: id2.clone(),
            slot: 4,
            code: None
        }
    );

    // All codes deleted: the driver cannot say which, the engine must read.
    mock.control(json!({"cmd": "send", "node": 2, "hex": "7105 0000 00 ff 06 0c 00"}))
        .await
        .unwrap();
    expect_event(
        &mut rx,
        "SlotsMayHaveChanged",
        |e| matches!(e, LockEvent::SlotsMayHaveChanged { device_id } if *device_id == id2),
    )
    .await;

    // Battery and door state reach the sink too.
    mock.control(json!({"cmd": "send", "node": 2, "hex": "8003 2a"}))
        .await
        .unwrap();
    let e = expect_event(&mut rx, "Battery", |e| {
        matches!(e, LockEvent::Battery { .. })
    })
    .await;
    assert_eq!(
        e,
        LockEvent::Battery {
            device_id: id2.clone(),
            level: 42
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_time_window_goes_on_the_lock() {
    use chrono::TimeZone;
    let (mock, driver, _rx) = start().await;
    let id2 = default_device_id(HOME_ID, 2);
    let window = lockhub::model::TimeWindow {
        starts_at: chrono::Utc
            .with_ymd_and_hms(2026, 12, 24, 15, 0, 0)
            .unwrap(),
        ends_at: chrono::Utc
            .with_ymd_and_hms(2026, 12, 27, 11, 0, 0)
            .unwrap(),
    };
    let op = SlotOp::Set(SlotCode {
        recurring: None,
        slot: 6,
        code: Pin::new("246810"),
        name: None,
        window: Some(window),
    });
    let before = driver.frames_sent();
    assert_eq!(driver.apply(&id2, &[op]).await, vec![Ok(())]);
    assert_eq!(
        driver.frames_sent() - before,
        3,
        "year-day schedule, enable, code"
    );
    assert_eq!(
        mock.codes(2).await.unwrap().get(&6).map(String::as_str),
        Some("246810")
    );
    let raw = mock
        .control(json!({"cmd": "state", "node": 2, "prefix": "ScheduleEntryLock_schedule_6_1_"}))
        .await
        .unwrap();
    let entries: Vec<(String, serde_json::Value)> = serde_json::from_str(&raw).unwrap();
    assert_eq!(entries.len(), 1, "{raw}");
    let s = &entries[0].1;
    assert_eq!(
        (
            s["startMonth"].as_u64(),
            s["startDay"].as_u64(),
            s["startHour"].as_u64()
        ),
        (Some(12), Some(24), Some(15))
    );
    assert_eq!(
        (
            s["stopMonth"].as_u64(),
            s["stopDay"].as_u64(),
            s["stopHour"].as_u64()
        ),
        (Some(12), Some(27), Some(11))
    );
    // The slot's next code has no window: schedules go off first.
    let before = driver.frames_sent();
    assert_eq!(driver.apply(&id2, &[set(6, "135790")]).await, vec![Ok(())]);
    assert_eq!(
        driver.frames_sent() - before,
        2,
        "schedule off, then the code"
    );
    let before = driver.frames_sent();
    assert_eq!(driver.apply(&id2, &[set(6, "135791")]).await, vec![Ok(())]);
    assert_eq!(driver.frames_sent() - before, 1, "nothing left to turn off");
    // A window the lock cannot hold (past its two-digit year) is refused
    // before anything is sent.
    let far = lockhub::model::TimeWindow {
        starts_at: chrono::Utc.with_ymd_and_hms(2100, 1, 1, 0, 0, 0).unwrap(),
        ends_at: chrono::Utc.with_ymd_and_hms(2100, 1, 2, 0, 0, 0).unwrap(),
    };
    let op = SlotOp::Set(SlotCode {
        recurring: None,
        slot: 7,
        code: Pin::new("1357"),
        name: None,
        window: Some(far),
    });
    assert!(matches!(
        driver.apply(&id2, &[op]).await[0],
        Err(DriverError::CodeRejected(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_added_at_keypad_is_read_from_the_lock() {
    let (mock, driver, mut rx) = start().await;
    let id4 = default_device_id(HOME_ID, 4);
    // The code is on the lock (the driver has not read the lock's slots).
    assert_eq!(driver.apply(&id4, &[set(5, "8642")]).await, vec![Ok(())]);
    // Access Control event 0x0E "new user code added" naming only user 5:
    // the driver reads that one slot and reports its content.
    mock.control(json!({"cmd": "send", "node": 4, "hex": "7105 0000 00 ff 06 0e 01 05"}))
        .await
        .unwrap();
    let e = expect_event(&mut rx, "SlotChanged", |e| {
        matches!(e, LockEvent::SlotChanged { .. })
    })
    .await;
    match e {
        LockEvent::SlotChanged {
            device_id,
            slot: 5,
            code: Some(c),
        } => {
            assert_eq!(device_id, id4);
            assert_eq!(c.code.expose(), "8642");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_lock_does_not_hold_up_the_others() {
    let mock = MockController::start().expect("mock");
    // Node 3 ACKs every frame but never reports anything.
    mock.control(json!({"cmd": "mute", "node": 3}))
        .await
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut cfg = config(&mock);
    cfg.report_timeout = Duration::from_secs(6);
    cfg.offline_ping_interval = None;
    let driver = ZwaveDriver::connect(cfg, tx).await.unwrap();
    let id2 = default_device_id(HOME_ID, 2);
    let id4 = default_device_id(HOME_ID, 4);
    let mut found = Vec::new();
    while found.len() < 2 {
        match expect_event(&mut rx, "Discovered", |e| {
            matches!(e, LockEvent::Discovered(_))
        })
        .await
        {
            LockEvent::Discovered(d) => found.push(d.device_id),
            _ => unreachable!(),
        }
    }
    found.sort();
    let mut want = vec![id2.clone(), id4.clone()];
    want.sort();
    assert_eq!(found, want);
    // Not a stopwatch: node 3's interview is still waiting for its answer.
    assert!(
        !driver.wait_interviews(Duration::ZERO).await,
        "the two answering locks were interviewed while node 3 was awaited"
    );
    assert!(driver.wait_interviews(Duration::from_secs(20)).await);
    assert_eq!(driver.devices().await.len(), 2);

    // Unmuted, node 3 is interviewed when next asked for; meanwhile a
    // transient answer (it sent no node information, so: offline), never a
    // final error.
    mock.control(json!({"cmd": "mute", "node": 3, "on": false}))
        .await
        .unwrap();
    let r = driver.apply("front-door", &[set(1, "1234")]).await;
    assert!(r[0].as_ref().is_err_and(DriverError::is_transient), "{r:?}");
    assert!(driver.wait_interviews(Duration::from_secs(20)).await);
    assert_eq!(driver.devices().await.len(), 3);

    // Mute node 3 again: its reads time out while node 2 is served.
    mock.control(json!({"cmd": "mute", "node": 3}))
        .await
        .unwrap();
    let d3 = driver.clone();
    let slow = tokio::spawn(async move { d3.read_slots("front-door").await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let ops: Vec<SlotOp> = (1..=5).map(|s| set(s, &format!("{}", 5000 + s))).collect();
    assert_eq!(driver.apply(&id2, &ops).await, vec![Ok(()); 5]);
    assert!(
        !slow.is_finished(),
        "node 2 served while node 3's read still waits for its answer"
    );
    assert_eq!(slow.await.unwrap(), Err(DriverError::Timeout));
}

/// A loopback TCP proxy to the mock whose connections the test can cut.
async fn cuttable_proxy(upstream: u16) -> (u16, std::sync::Arc<tokio::sync::Notify>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let cut = std::sync::Arc::new(tokio::sync::Notify::new());
    let c = cut.clone();
    tokio::spawn(async move {
        while let Ok((mut down, _)) = listener.accept().await {
            let mut up = tokio::net::TcpStream::connect(("127.0.0.1", upstream))
                .await
                .unwrap();
            let _ = up.set_nodelay(true);
            let _ = down.set_nodelay(true);
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut down, &mut up) => {}
                _ = c.notified() => {}
            }
        }
    });
    (port, cut)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_when_the_controller_link_drops() {
    let mock = MockController::start().expect("mock");
    let (port, cut) = cuttable_proxy(mock.port).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut cfg = config(&mock);
    cfg.port = format!("tcp://127.0.0.1:{port}");
    let driver = ZwaveDriver::connect(cfg, tx).await.unwrap();
    assert!(driver.wait_interviews(Duration::from_secs(30)).await);
    let id2 = default_device_id(HOME_ID, 2);
    // Cut while the line is quiet (the mock itself cannot survive a host
    // that vanishes in the middle of its own transmission).
    tokio::time::sleep(Duration::from_millis(500)).await;
    cut.notify_one();
    expect_event(
        &mut rx,
        "Offline",
        |e| matches!(e, LockEvent::Offline { device_id } if *device_id == id2),
    )
    .await;
    // Back through a new connection: the pinger finds the locks again.
    expect_event(
        &mut rx,
        "Online",
        |e| matches!(e, LockEvent::Online { device_id } if *device_id == id2),
    )
    .await;
    assert_eq!(driver.apply(&id2, &[set(3, "3333")]).await, vec![Ok(())]);
    assert_eq!(
        mock.codes(2).await.unwrap().get(&3).map(String::as_str),
        Some("3333")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervised_report_from_the_lock_is_opened() {
    let (mock, _driver, mut rx) = start().await;
    let id3 = "front-door";
    // Supervision Get (session 5) wrapping a keypad unlock by user 2.
    mock.control(
        json!({"cmd": "send", "node": 3, "hex": "6c01 05 0a 7105 0000 00 ff 06 06 01 02"}),
    )
    .await
    .unwrap();
    let e = expect_event(&mut rx, "keypad unlock", |e| {
        matches!(e, LockEvent::Operated { .. })
    })
    .await;
    assert_eq!(
        e,
        LockEvent::Operated {
            device_id: id3.into(),
            locked: false,
            method: LockMethod::Keycode,
            slot: Some(2)
        }
    );
}

#[tokio::test(flavor = "current_thread")]
async fn no_pin_in_any_log_line() {
    let log = support::realtime::Capture::global();
    let (mock, driver, mut rx) = start().await;
    let id2 = default_device_id(HOME_ID, 2);
    let r = driver
        .apply(&id2, &[set(1, "918273"), set(2, "918273"), set(3, "55")])
        .await;
    assert_eq!(r[0], Ok(()));
    assert!(r[1].is_err() && r[2].is_err());
    assert_eq!(driver.read_slots(&id2).await.unwrap().len(), 1);
    mock.control(json!({"cmd": "send", "node": 2, "hex": "6303 08 01 3634353231"}))
        .await
        .unwrap();
    expect_event(&mut rx, "SlotChanged", |e| {
        matches!(e, LockEvent::SlotChanged { .. })
    })
    .await;
    let log = log.text();
    assert!(log.contains("slot written"), "the log was captured: {log}");
    for pin in ["918273", "64521"] {
        for l in log.lines().filter(|l| l.contains(pin)) {
            eprintln!("LEAK {l}");
        }
        assert!(!log.contains(pin), "PIN in the log");
    }
}
