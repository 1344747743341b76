//! What real Z-Wave locks do, against the zwave-js mock: a User Credential
//! lock (mocks/user-credential.cjs), a lock that masks codes on read-back
//! (mocks/masked.cjs), a lossy mesh (mocks/lossy.cjs), per-lock
//! Supervision and code lengths. Needs scripts/test-deps-zwave.sh.

mod support;

use lockhub::drivers::zwave::testing::{MockController, SECURE_MOCK_KEYS};
use lockhub::drivers::zwave::{default_device_id, GetRetry, LockQuirks};
use lockhub::drivers::{DriverError, LockDriver, SlotOp};
use serde_json::json;
use std::time::Duration;
use support::zwave::{connect, set};

const HOME_ID: u32 = 0xC0FFEE01;

fn codes(slots: Vec<lockhub::drivers::SlotCode>) -> Vec<(u32, String)> {
    let mut v: Vec<(u32, String)> = slots
        .into_iter()
        .map(|s| (s.slot, s.code.expose().to_owned()))
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_credential_lock_holds_pins_as_slots() {
    let mock = MockController::start_with("mocks/user-credential.cjs").expect("mock");
    let (driver, _rx) = connect(&mock, |_| {}).await;
    let id2 = default_device_id(HOME_ID, 2);
    let id4 = default_device_id(HOME_ID, 4);
    let devices = driver.devices().await;
    let caps = |id: &str| {
        devices
            .iter()
            .find(|d| d.device_id == id)
            .unwrap()
            .capabilities
            .clone()
    };
    // From the lock's Credential Capabilities Report: 20 PIN slots of 6 to 8.
    assert_eq!(caps(&id2).supported_code_lengths, vec![6, 7, 8]);
    assert_eq!(caps(&id2).max_active_codes_supported, 20);
    assert!(!caps(&id2).supports_native_scheduling);
    // Node 4 has only User Code: as before.
    assert_eq!(
        caps(&id4).supported_code_lengths,
        vec![4, 5, 6, 7, 8, 9, 10]
    );
    assert_eq!(caps(&id4).max_active_codes_supported, 30);

    let r = driver
        .apply(
            &id2,
            &[set(1, "123456"), set(2, "7654321"), set(3, "24681357")],
        )
        .await;
    assert_eq!(r, vec![Ok(()), Ok(()), Ok(())]);
    assert_eq!(
        driver.apply(&id2, &[set(2, "765432")]).await,
        vec![Ok(())],
        "modify"
    );
    assert_eq!(
        driver.apply(&id2, &[SlotOp::Clear { slot: 3 }]).await,
        vec![Ok(())]
    );
    // The mock's own state: user N owns PIN slot N.
    let held = mock.credentials(2).await.unwrap();
    assert_eq!(
        held.into_iter().collect::<Vec<_>>(),
        vec![(1, (1, "123456".into())), (2, (2, "765432".into()))]
    );
    let users = mock
        .control(json!({"cmd": "state", "node": 2, "prefix": "UserCredential_user_"}))
        .await
        .unwrap();
    assert!(
        users.contains("UserCredential_user_1") && !users.contains("UserCredential_user_3"),
        "{users}"
    );

    // A read walks the occupied PIN slots only (two Gets, not 20); then the
    // checksum matches what lockhub knows, and a re-read costs one frame.
    let expect = vec![(1, "123456".into()), (2, "765432".into())];
    let before = driver.frames_sent();
    assert_eq!(codes(driver.read_slots(&id2).await.unwrap()), expect);
    assert_eq!(driver.frames_sent() - before, 2, "occupied slots only");
    let before = driver.frames_sent();
    assert_eq!(codes(driver.read_slots(&id2).await.unwrap()), expect);
    assert_eq!(
        driver.frames_sent() - before,
        1,
        "credential checksum get only"
    );

    // A fresh driver finds them too.
    drop(driver);
    tokio::time::sleep(Duration::from_millis(300)).await; // the mock takes one host at a time
    let (driver, _rx) = connect(&mock, |_| {}).await;
    assert_eq!(codes(driver.read_slots(&id2).await.unwrap()), expect);

    // The lock's lengths and duplicates are enforced; nothing is lost.
    let r = driver
        .apply(&id2, &[set(4, "1234"), set(5, "123456")])
        .await;
    assert!(matches!(r[0], Err(DriverError::CodeRejected(_))), "{r:?}");
    assert_eq!(r[1], Err(DriverError::DuplicateCode));
    assert_eq!(mock.credentials(2).await.unwrap().len(), 2);
}

/// A User Credential lock that keeps only hashes of its PINs
/// (mocks/user-credential-hashed.cjs: no read-back): a PIN lockhub set reads
/// as what it wrote; after a restart the PINs the engine's store remembers
/// are taken as the lock's once its PIN credential checksum agrees, so
/// nothing is set again; a remembered PIN the checksum refutes stays unknown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hashed_user_credential_pins_are_recalled_after_a_restart() {
    let mock = MockController::start_with("mocks/user-credential-hashed.cjs").expect("mock");
    let id2 = default_device_id(HOME_ID, 2);
    let sets = || mock.log_lines("MOCK_UCRED_SET node=2").len();
    let (driver, _rx) = connect(&mock, |_| {}).await;
    let r = driver
        .apply(&id2, &[set(1, "123456"), set(2, "7654321")])
        .await;
    assert_eq!(r, vec![Ok(()), Ok(())]);
    let expect = vec![(1, "123456".into()), (2, "7654321".into())];
    assert_eq!(codes(driver.read_slots(&id2).await.unwrap()), expect);
    // The lock's own state: the PINs are there (as data the mock sums).
    assert_eq!(mock.credentials(2).await.unwrap().len(), 2);
    let before = mock
        .wait_log("MOCK_UCRED_SET node=2", 2, Duration::from_secs(2))
        .await;
    assert_eq!(before.len(), 2, "{before:?}");

    // A restart with a wrong memory of slot 2: refused by the checksum.
    drop(driver);
    tokio::time::sleep(Duration::from_millis(300)).await; // the mock takes one host at a time
    let (driver, _rx) = connect(&mock, |_| {}).await;
    driver.remember(&id2, &[slot_code(1, "123456"), slot_code(2, "1111111")]);
    assert_eq!(
        codes(driver.read_slots(&id2).await.unwrap()),
        vec![(1, "****".into()), (2, "****".into())],
        "not confirmed: unknown"
    );

    // A restart with the store's true memory: confirmed, nothing to set.
    drop(driver);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (driver, _rx) = connect(&mock, |_| {}).await;
    driver.remember(&id2, &[slot_code(1, "123456"), slot_code(2, "7654321")]);
    assert_eq!(codes(driver.read_slots(&id2).await.unwrap()), expect);
    // Confirmed and cached: the next read is the checksum alone.
    let frames = driver.frames_sent();
    assert_eq!(codes(driver.read_slots(&id2).await.unwrap()), expect);
    assert_eq!(driver.frames_sent() - frames, 1, "checksum get only");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sets(), 2, "no Credential Set after the restarts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masked_lock_is_verified_by_status_and_read_as_written() {
    let mock = MockController::start_with("mocks/masked.cjs").expect("mock");
    let id2 = default_device_id(HOME_ID, 2);
    let (driver, _rx) = connect(&mock, |_| {}).await;
    // No Supervision on node 2: the Set is checked by reading back "****".
    assert_eq!(driver.apply(&id2, &[set(4, "4321")]).await, vec![Ok(())]);
    assert_eq!(
        mock.codes(2).await.unwrap().get(&4).map(String::as_str),
        Some("4321")
    );
    assert_eq!(mock.log_lines("MOCK_UC_SET node=2 user=4").len(), 1);
    // Read back: what lockhub wrote, not the stars (so nothing to set again).
    assert_eq!(
        codes(driver.read_slots(&id2).await.unwrap()),
        vec![(4, "4321".into())]
    );
    // A code lockhub did not write reads as occupied, code unknown.
    drop(driver);
    tokio::time::sleep(Duration::from_millis(300)).await; // the mock takes one host at a time
    let (driver, _rx) = connect(&mock, |c| {
        c.quirks.insert(
            2,
            LockQuirks {
                masked_pins: Some(true),
                ..Default::default()
            },
        );
    })
    .await;
    // A remembered code the lock's checksum does not confirm is not believed.
    driver.remember(&id2, &[slot_code(4, "9999")]);
    assert_eq!(
        codes(driver.read_slots(&id2).await.unwrap()),
        vec![(4, "****".into())]
    );
    // Setting it again is verified by status too, once.
    assert_eq!(driver.apply(&id2, &[set(4, "4321")]).await, vec![Ok(())]);
    assert_eq!(
        codes(driver.read_slots(&id2).await.unwrap()),
        vec![(4, "4321".into())]
    );
    assert_eq!(mock.log_lines("MOCK_UC_SET node=2 user=4").len(), 2);

    // A restart: what the engine's store remembers, confirmed by the lock's
    // checksum, is what the slot holds; nothing is set again.
    drop(driver);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (driver, _rx) = connect(&mock, |_| {}).await;
    driver.remember(&id2, &[slot_code(4, "4321")]);
    assert_eq!(
        codes(driver.read_slots(&id2).await.unwrap()),
        vec![(4, "4321".into())]
    );
    assert_eq!(mock.log_lines("MOCK_UC_SET node=2 user=4").len(), 2);
}

/// A guest's code with `pin` on the lock: its access_code_id.
fn create(hub: &lockhub::hub::Hub, device_id: &str, pin: &str) -> String {
    let r = support::realtime::cmd(
        hub,
        "access_codes/create",
        json!({"device_id": device_id, "name": "Guest", "code": pin}),
    );
    assert_eq!(r["ok"], true, "{r}");
    r["access_code"]["access_code_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn slot_code(slot: u32, pin: &str) -> lockhub::drivers::SlotCode {
    lockhub::drivers::SlotCode {
        slot,
        code: lockhub::model::Pin::new(pin),
        name: None,
        window: None,
        recurring: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lossy_mesh_get_is_retried_and_a_walk_resumes() {
    let mock = MockController::start_with("mocks/lossy.cjs").expect("mock");
    let id2 = default_device_id(HOME_ID, 2);
    let quick = |retries| {
        move |c: &mut lockhub::drivers::zwave::ZwaveConfig| {
            c.report_timeout = Duration::from_millis(250);
            c.get_retry = GetRetry {
                retries,
                backoff: Duration::from_millis(50),
            };
        }
    };
    let (driver, _rx) = connect(&mock, quick(1)).await;
    let seed = [
        set(3, "3333"),
        set(7, "7777"),
        set(9, "9999"),
        set(12, "1212"),
    ];
    assert_eq!(
        driver.apply(&id2, &seed).await,
        vec![Ok(()); 4],
        "sets are supervised, not gets"
    );
    drop(driver);
    tokio::time::sleep(Duration::from_millis(300)).await; // the mock takes one host at a time

    // A fresh driver reads all 12 slots; every lost Get costs exactly one
    // retry (the mock never drops two in a row, so one is all it takes).
    let (driver, _rx) = connect(&mock, quick(1)).await;
    let (gets0, drops0) = (
        mock.log_lines("MOCK_GET node=2").len(),
        mock.log_lines("MOCK_GET_DROPPED").len(),
    );
    let retries0 = driver.get_retries();
    let t = std::time::Instant::now();
    let got = codes(
        driver
            .read_slots(&id2)
            .await
            .expect("read through a lossy mesh"),
    );
    let dropped = mock.log_lines("MOCK_GET_DROPPED").len() - drops0;
    let answered = mock.log_lines("MOCK_GET node=2").len() - gets0;
    let retried = driver.get_retries() - retries0;
    println!(
        "12 slots: {answered} gets answered, {dropped} dropped, {retried} retried, {:?}",
        t.elapsed()
    );
    assert_eq!(
        got,
        vec![
            (3, "3333".into()),
            (7, "7777".into()),
            (9, "9999".into()),
            (12, "1212".into())
        ]
    );
    assert_eq!(answered, 12, "each slot answered once");
    assert!(dropped >= 5, "one in three lost: {dropped}");
    assert_eq!(retried as usize, dropped, "one retry per lost get, no more");
    drop(driver);
    tokio::time::sleep(Duration::from_millis(300)).await; // the mock takes one host at a time

    // No retries: each read stops at a lost Get, and the next one resumes
    // there: every slot is still asked only until it answers once.
    let (driver, _rx) = connect(&mock, quick(0)).await;
    let gets0 = mock.log_lines("MOCK_GET node=2").len();
    let mut reads = 0;
    let got = loop {
        reads += 1;
        assert!(reads <= 40, "the walk makes no progress");
        match driver.read_slots(&id2).await {
            Ok(s) => break codes(s),
            Err(DriverError::Timeout) => continue,
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(got.len(), 4);
    assert!(reads > 1, "a Get was lost on the way");
    assert_eq!(
        mock.log_lines("MOCK_GET node=2").len() - gets0,
        12,
        "resumed where it stopped, never from slot 1 again ({reads} reads)"
    );
    assert_eq!(driver.get_retries(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervision_and_code_lengths_per_lock() {
    let mock = MockController::start().expect("mock");
    let id2 = default_device_id(HOME_ID, 2);
    let id3 = default_device_id(HOME_ID, 3);
    let (driver, _rx) = connect(&mock, |c| {
        c.quirks.insert(
            3,
            LockQuirks {
                supervision: Some(false),
                code_lengths: Some((4, 6)),
                ..Default::default()
            },
        );
    })
    .await;
    let devices = driver.devices().await;
    let lengths = |id: &str| {
        devices
            .iter()
            .find(|d| d.device_id == id)
            .unwrap()
            .capabilities
            .supported_code_lengths
            .clone()
    };
    assert_eq!(lengths(&id2), vec![4, 5, 6, 7, 8, 9, 10]);
    assert_eq!(
        lengths(&id3),
        vec![4, 5, 6],
        "config's lengths where User Code says none"
    );
    // Supervised: one frame (the lock confirms). Not supervised: the Set and
    // a Get to read it back.
    let before = driver.frames_sent();
    assert_eq!(driver.apply(&id2, &[set(1, "1234")]).await, vec![Ok(())]);
    assert_eq!(driver.frames_sent() - before, 1);
    let before = driver.frames_sent();
    assert_eq!(driver.apply(&id3, &[set(1, "1234")]).await, vec![Ok(())]);
    assert_eq!(driver.frames_sent() - before, 2);
    let r = driver.apply(&id3, &[set(2, "1234567")]).await;
    assert!(matches!(r[0], Err(DriverError::CodeRejected(_))), "{r:?}");
    assert_eq!(
        mock.codes(3).await.unwrap().get(&1).map(String::as_str),
        Some("1234")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_credential_under_s2() {
    use lockhub::drivers::zwave::security::{NetworkKeys, SecurityClass};
    let mock = MockController::start_with("mocks/secure-user-credential.cjs").expect("mock");
    let (driver, _rx) = connect(&mock, |c| {
        c.report_timeout = Duration::from_secs(3);
        c.offline_ping_interval = None;
        c.keys = Some(NetworkKeys::from_json(SECURE_MOCK_KEYS).unwrap());
    })
    .await;
    let id2 = default_device_id(HOME_ID, 2);
    assert_eq!(
        driver.security_class(2),
        Some(SecurityClass::S2AccessControl)
    );
    let caps = driver
        .devices()
        .await
        .into_iter()
        .find(|d| d.device_id == id2)
        .unwrap()
        .capabilities;
    assert_eq!(
        caps.supported_code_lengths,
        vec![6, 7, 8],
        "the capabilities came back encrypted"
    );
    assert_eq!(driver.apply(&id2, &[set(5, "135790")]).await, vec![Ok(())]);
    // The strict lock ignores plaintext User Credential: the PIN got there under S2.
    assert_eq!(
        mock.credentials(2).await.unwrap().get(&5),
        Some(&(5, "135790".into()))
    );
    assert!(
        mock.log_lines("STRICT drop").is_empty(),
        "{:?}",
        mock.log_lines("STRICT drop")
    );
    assert_eq!(
        codes(driver.read_slots(&id2).await.unwrap()),
        vec![(5, "135790".into())]
    );
}

/// No PIN of a User Credential lock or a masked lock in any log line, at
/// TRACE (the PIN credential travels in new frames: Credential Set/Report).
#[tokio::test(flavor = "current_thread")]
async fn no_pin_in_any_log_line() {
    let log = support::realtime::Capture::global();
    let mock = MockController::start_with("mocks/user-credential.cjs").expect("mock");
    let (driver, _rx) = connect(&mock, |_| {}).await;
    let id2 = default_device_id(HOME_ID, 2);
    let r = driver
        .apply(&id2, &[set(1, "918273"), set(2, "918273"), set(3, "5544")])
        .await;
    assert_eq!(r[0], Ok(()));
    assert!(r[1].is_err() && r[2].is_err());
    assert_eq!(driver.read_slots(&id2).await.unwrap().len(), 1);
    let text = log.text();
    assert!(text.contains("slot written"), "the log was captured");
    for l in text
        .lines()
        .filter(|l| l.contains("918273") || l.contains("5544"))
    {
        eprintln!("LEAK {l}");
    }
    assert!(
        !text.contains("918273") && !text.contains("5544"),
        "PIN in the log"
    );
}

/// The hub on a masked lock, restarted on the same store: the code it set
/// is recalled from the store (confirmed by the lock's checksum), not set
/// again after the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masked_codes_are_not_set_again_after_a_restart() {
    set_once_over_a_restart("mocks/masked.cjs", "MOCK_UC_SET node=2", "5927").await;
}

/// The same on a User Credential lock that keeps only hashes of its PINs,
/// confirmed by its PIN credential checksum.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hashed_user_credential_codes_are_not_set_again_after_a_restart() {
    set_once_over_a_restart(
        "mocks/user-credential-hashed.cjs",
        "MOCK_UCRED_SET node=2",
        "592713",
    )
    .await;
}

/// A code set by the hub on `mock`'s node 2 (each Set logged as `set_log`),
/// then the hub restarted on the same store: not set again.
async fn set_once_over_a_restart(mock: &str, set_log: &str, pin: &str) {
    use lockhub::engine::clock::SystemClock;
    use lockhub::hub::Hub;
    use std::sync::Arc;
    use support::realtime::{cmd, until_read, until_status};
    let mock = MockController::start_with(mock).expect("mock");
    let id2 = default_device_id(HOME_ID, 2);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("lockhub.db");
    let start = async || {
        let store = Arc::new(lockhub::store::Store::open(&db).unwrap());
        let shutdown = tokio_util::sync::CancellationToken::new();
        let hub = Hub::start(
            store,
            Arc::new(SystemClock),
            Default::default(),
            shutdown.clone(),
        )
        .unwrap();
        let (driver, mut rx) = connect(&mock, |_| {}).await;
        let sink = hub.event_sink();
        tokio::spawn(async move {
            while let Some(e) = rx.recv().await {
                let _ = sink.send(e);
            }
        });
        let driver = Arc::new(driver);
        hub.add_driver(driver.clone()).await.unwrap();
        until_read(&hub, &[&id2]).await;
        (hub, shutdown, driver)
    };
    let sets = || mock.log_lines(set_log).len();
    let (hub, shutdown, driver) = start().await;
    let id = create(&hub, &id2, pin);
    until_status(&hub, &id, "set").await;
    let first = mock.wait_log(set_log, 1, Duration::from_secs(2)).await;
    assert_eq!(first.len(), 1, "{first:?}");
    shutdown.cancel();
    hub.stopped().await;
    drop((hub, driver));
    tokio::time::sleep(Duration::from_millis(300)).await; // the mock takes one host at a time

    let (hub, shutdown, _driver) = start().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let c = cmd(&hub, "access_codes/get", json!({"access_code_id": id}))["access_code"].clone();
    assert_eq!(c["status"], "set", "{c}");
    assert_eq!(sets(), 1, "nothing set again after the restart");
    shutdown.cancel();
    hub.stopped().await;
}

/// A lossy lock with many slots (mocks/lossy-many.cjs: 60 slots, every
/// third Get lost, no Get retried): its slot walk stops again and again, yet
/// a new code goes on the lock long before the walk ends, into a slot the
/// walk had read (the mock's log shows each Get and Set in order), and all
/// ends right once the walk is done; after a restart, the code deleted is
/// cleared before the new walk ends. Before partial reads, nothing was
/// written to the lock until its whole walk had succeeded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lossy_lock_gets_a_new_code_before_its_walk_ends() {
    use lockhub::engine::clock::SystemClock;
    use lockhub::hub::Hub;
    use std::sync::Arc;
    use support::realtime::{cmd, until, until_read, until_status};
    let mock = MockController::start_with("mocks/lossy-many.cjs").expect("mock");
    let id2 = default_device_id(HOME_ID, 2);
    // Strangers' codes at both ends of the walk (slot 1 is not free).
    let (driver, _rx) = connect(&mock, |_| {}).await;
    let seed = [set(1, "1111"), set(58, "5858")];
    assert_eq!(driver.apply(&id2, &seed).await, vec![Ok(()); 2]);
    drop(driver);
    tokio::time::sleep(Duration::from_millis(300)).await; // the mock takes one host at a time

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("lockhub.db");
    // The hub on the store, the lock read with no Get retried (every third
    // one lost); returns where the mock's log stood when it began.
    let start = async || {
        let store = Arc::new(lockhub::store::Store::open(&db).unwrap());
        let shutdown = tokio_util::sync::CancellationToken::new();
        let settings = lockhub::settings::HubSettings {
            retry_base: Duration::from_millis(100),
            retry_max: Duration::from_millis(400),
            ..Default::default()
        };
        let hub = Hub::start(store, Arc::new(SystemClock), settings, shutdown.clone()).unwrap();
        let (driver, mut rx) = connect(&mock, |c| {
            c.report_timeout = Duration::from_millis(200);
            c.get_retry = GetRetry {
                retries: 0,
                backoff: Duration::from_millis(50),
            };
        })
        .await;
        let sink = hub.event_sink();
        tokio::spawn(async move {
            while let Some(e) = rx.recv().await {
                let _ = sink.send(e);
            }
        });
        let from = mock.log_lines("MOCK_").len();
        hub.add_driver(Arc::new(driver)).await.unwrap();
        until("the hub knows the lock", 20, async || {
            cmd(&hub, "devices/get", json!({"device_id": id2}))["ok"] == true
        })
        .await;
        (hub, shutdown, from)
    };
    let (hub, shutdown, from) = start().await;
    let id = create(&hub, &id2, "5927");
    until_status(&hub, &id, "set").await;
    until_read(&hub, &[&id2]).await;
    tokio::time::sleep(Duration::from_millis(300)).await; // the mock's log catches up

    let slot = hub
        .store
        .read(|tx| Ok(tx.code(&id)?.unwrap().slot))
        .unwrap();
    let log: Vec<String> = mock.log_lines("MOCK_")[from..].to_vec();
    let at = |line: &str| log.iter().position(|l| l.starts_with(line));
    let read = |user: u32| at(&format!("MOCK_GET node=2 user={user} "));
    let sets: Vec<(usize, &String)> = log
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with("MOCK_UC_SET"))
        .collect();
    println!(
        "60 slots: the code's set is line {:?} of {}; the walk's last slot read at line {:?}; {} gets lost",
        sets.first().map(|(i, _)| i),
        log.len(),
        read(60),
        log.iter().filter(|l| l.starts_with("MOCK_GET_DROPPED")).count()
    );
    assert_eq!(
        sets.len(),
        1,
        "the new code, set once, nothing else: {sets:?}"
    );
    let (set_at, line) = sets[0];
    assert_eq!(line, &format!("MOCK_UC_SET node=2 user={slot}"));
    assert!(
        read(slot).is_some_and(|r| r < set_at),
        "slot {slot} was read before it was written"
    );
    assert!(
        read(60).is_some_and(|end| set_at < end),
        "the code went on before the walk ended (set at line {set_at}, slot 60 read at {:?})",
        read(60)
    );
    assert!(
        log.iter().any(|l| l.starts_with("MOCK_GET_DROPPED")),
        "the walk was interrupted"
    );
    // Once the walk is done: the strangers' codes and the guest's, each once.
    let held = mock.codes(2).await.unwrap();
    assert_eq!(held.get(&1).map(String::as_str), Some("1111"));
    assert_eq!(held.get(&58).map(String::as_str), Some("5858"));
    assert_eq!(held.get(&slot).map(String::as_str), Some("5927"));
    assert_eq!(held.values().filter(|c| *c == "5927").count(), 1);
    let c = cmd(&hub, "access_codes/get", json!({"access_code_id": id}))["access_code"].clone();
    assert_eq!(c["status"], "set", "{c}");
    let unmanaged = cmd(
        &hub,
        "access_codes/unmanaged/list",
        json!({"device_id": id2}),
    );
    assert_eq!(
        unmanaged["access_codes"].as_array().map(Vec::len),
        Some(2),
        "{unmanaged}"
    );
    shutdown.cancel();
    hub.stopped().await;
    drop(hub);
    tokio::time::sleep(Duration::from_millis(300)).await; // the mock takes one host at a time

    // A restart, and the code deleted at once: its slot (read early in the
    // new walk) is cleared before the walk ends; the strangers' stay.
    let (hub, shutdown, from) = start().await;
    let r = cmd(&hub, "access_codes/delete", json!({"access_code_id": id}));
    assert_eq!(r["ok"], true, "{r}");
    until_read(&hub, &[&id2]).await;
    until("the code is off the lock", 10, async || {
        !mock.codes(2).await.unwrap().contains_key(&slot)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await; // the mock's log catches up
    let log: Vec<String> = mock.log_lines("MOCK_")[from..].to_vec();
    let at = |line: &str| log.iter().position(|l| l.starts_with(line));
    let read = |user: u32| at(&format!("MOCK_GET node=2 user={user} "));
    let clears: Vec<usize> = log
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with("MOCK_UC_SET"))
        .map(|(i, _)| i)
        .collect();
    println!(
        "after the restart: the clear is line {clears:?} of {}; slot 60 read at {:?}",
        log.len(),
        read(60)
    );
    assert_eq!(clears.len(), 1, "one write, the clear: {log:?}");
    assert_eq!(log[clears[0]], format!("MOCK_UC_SET node=2 user={slot}"));
    assert!(read(slot).is_some_and(|r| r < clears[0]));
    assert!(
        read(60).is_some_and(|end| clears[0] < end),
        "cleared before the walk ended"
    );
    let held = mock.codes(2).await.unwrap();
    assert_eq!(
        held.into_iter().collect::<Vec<_>>(),
        vec![(1, "1111".into()), (58, "5858".into())]
    );
    shutdown.cancel();
    hub.stopped().await;
}
