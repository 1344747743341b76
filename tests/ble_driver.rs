//! The BLE driver against in-process fake Nukis (MemoryRadio): pairing and
//! its errors, slots <-> code ids across restarts, lost replies, injected
//! radio faults (property-tested), busy and out-of-range locks, the
//! per-adapter connection limit, and no secret in any log line.

mod support;

use chrono::{Duration as Cd, SubsecRound, Utc};
use lockhub::drivers::ble::fake_lock::{FakeCode, FakeNuki};
use lockhub::drivers::ble::keys::{FileKeyStore, KeyStore};
use lockhub::drivers::ble::memory::{Faults, MemoryRadio};
use lockhub::drivers::ble::nuki::keypad::SecurityPin;
use lockhub::drivers::ble::pair::{pair, PairError, PairOptions};
use lockhub::drivers::ble::slot_map::SlotMap;
use lockhub::drivers::ble::{BleConfig, BleDriver, BleLockConfig};
use lockhub::drivers::{DriverError, LockDriver, LockEvent, SlotCode, SlotOp};
use lockhub::model::{Pin, TimeWindow};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const SECURITY_PIN: u16 = 4711;

fn opts(pin: u16) -> PairOptions {
    PairOptions {
        name: "lockhub".into(),
        security_pin: SecurityPin(pin),
        timeout: Duration::from_millis(500),
    }
}

fn address(i: usize) -> String {
    format!("54:D2:72:AA:BB:{i:02X}")
}

/// `n` paired fake Nukis on one radio, and a driver for them.
struct Rig {
    radio: MemoryRadio,
    keys: Arc<FileKeyStore>,
    dir: tempfile::TempDir,
    events: tokio::sync::mpsc::UnboundedReceiver<LockEvent>,
    driver: Arc<BleDriver>,
}

fn config(n: usize, capacity: u32) -> BleConfig {
    BleConfig {
        locks: (0..n)
            .map(|i| BleLockConfig {
                address: address(i),
                device_id: Some(format!("nuki-{i}")),
                name: None,
            })
            .collect(),
        max_connections: 2,
        connect_timeout: Duration::from_millis(500),
        reply_timeout: Duration::from_millis(30),
        keypad_capacity: capacity,
        linger: Duration::from_millis(200),
    }
}

impl Rig {
    async fn new(n: usize, capacity: u32, seed: u64) -> Rig {
        let radio = MemoryRadio::new(seed);
        let dir = tempfile::tempdir().unwrap();
        let keys = Arc::new(FileKeyStore::new(dir.path().join("keys.json")));
        for i in 0..n {
            radio.add_lock(
                &address(i),
                FakeNuki::new(true, SECURITY_PIN, capacity as usize),
            );
            pair(&radio, &address(i), keys.as_ref(), &opts(SECURITY_PIN))
                .await
                .expect("pairing");
        }
        let (driver, events) = Self::driver(&radio, &keys, dir.path(), n, capacity);
        Rig {
            radio,
            keys,
            dir,
            events,
            driver,
        }
    }

    fn driver(
        radio: &MemoryRadio,
        keys: &Arc<FileKeyStore>,
        dir: &Path,
        n: usize,
        capacity: u32,
    ) -> (
        Arc<BleDriver>,
        tokio::sync::mpsc::UnboundedReceiver<LockEvent>,
    ) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let driver = Arc::new(BleDriver::new(
            config(n, capacity),
            Arc::new(radio.clone()),
            keys.clone(),
            SlotMap::open(dir.join("ble-slots.json")).unwrap(),
            Some(tx),
        ));
        driver.watch_advertisements();
        (driver, rx)
    }

    /// A new driver on the same files, as after a restart.
    fn restart(&mut self, n: usize, capacity: u32) {
        (self.driver, self.events) =
            Self::driver(&self.radio, &self.keys, self.dir.path(), n, capacity);
    }

    fn codes_on(&self, i: usize) -> BTreeMap<u32, String> {
        let lock = self.radio.lock(&address(i)).unwrap();
        let lock = lock.lock().unwrap();
        lock.keypad
            .codes
            .iter()
            .map(|e| (e.code, e.name.clone()))
            .collect()
    }
}

fn set(slot: u32, pin: &str, window: Option<TimeWindow>) -> SlotOp {
    SlotOp::Set(SlotCode {
        recurring: None,
        slot,
        code: Pin::new(pin),
        name: Some(format!("Guest {slot}")),
        window,
    })
}

fn read_map(slots: &[SlotCode]) -> BTreeMap<u32, String> {
    slots
        .iter()
        .map(|s| (s.slot, s.code.expose().to_owned()))
        .collect()
}

#[tokio::test]
async fn pairing_stores_keys_0600_and_refuses_bad_cases() {
    use std::os::unix::fs::PermissionsExt;
    let rig = Rig::new(1, 10, 1).await;
    let path = rig.dir.path().join("keys.json");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let creds = rig.keys.get(&address(0)).unwrap().unwrap();
    assert_eq!(creds.security_pin, Some(SecurityPin(SECURITY_PIN)));
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!format!("{creds:?}").contains(&SECURITY_PIN.to_string()));
    assert!(text.contains("shared_key"));

    // Wrong security PIN: paired at the lock, which will not let lockhub
    // remove that authorization without the PIN; it is kept, unusable, and
    // removed by the next pairing with the right PIN.
    let radio = MemoryRadio::new(2);
    let lock = radio.add_lock("AA:00:00:00:00:01", FakeNuki::new(true, SECURITY_PIN, 10));
    let dir = tempfile::tempdir().unwrap();
    let keys = FileKeyStore::new(dir.path().join("k.json"));
    let e = pair(&radio, "AA:00:00:00:00:01", &keys, &opts(1111))
        .await
        .unwrap_err();
    assert!(matches!(e, PairError::WrongSecurityPin(_)), "{e}");
    assert!(!e.to_string().contains("1111"));
    let kept = keys.get("AA:00:00:00:00:01").unwrap().unwrap();
    assert_eq!(kept.security_pin, None, "never usable");
    assert_eq!(lock.lock().unwrap().pairing.users.len(), 1);
    let again = pair(&radio, "AA:00:00:00:00:01", &keys, &opts(SECURITY_PIN))
        .await
        .unwrap();
    let users: Vec<u32> = lock
        .lock()
        .unwrap()
        .pairing
        .users
        .iter()
        .map(|u| u.0)
        .collect();
    assert_eq!(
        users,
        vec![again],
        "the stray authorization went with the second pairing"
    );
    let stored = keys.get("AA:00:00:00:00:01").unwrap().unwrap();
    assert_eq!((stored.auth_id, stored.leftover.len()), (again, 0));

    // Not in pairing mode; no such lock.
    radio.add_lock("AA:00:00:00:00:02", FakeNuki::new(false, SECURITY_PIN, 10));
    let e = pair(&radio, "AA:00:00:00:00:02", &keys, &opts(SECURITY_PIN))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("pairing mode"), "{e}");
    let e = pair(&radio, "AA:00:00:00:00:09", &keys, &opts(SECURITY_PIN))
        .await
        .unwrap_err();
    assert!(matches!(e, PairError::Link(_)), "{e}");
}

/// A lock someone already uses: the owner's untimed code and a cleaner's
/// timed weekday code, as the Nuki app leaves them. Pairing works, the codes
/// are listed as strangers (top slots), lockhub's own code is applied, and
/// after a restart listed again and deleted; the others are never touched.
#[tokio::test]
async fn pairing_and_restarts_on_a_lock_with_others_codes() {
    let dt = |s: &str| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap();
    let radio = MemoryRadio::new(21);
    let mut fake = FakeNuki::new(true, SECURITY_PIN, 10);
    fake.keypad.seed(FakeCode::untimed(1, 345678, "Owner"));
    fake.keypad.seed(FakeCode::timed(
        4,
        456789,
        "Cleaner",
        (dt("2026-01-01 00:00"), dt("2030-01-01 00:00")),
        (0x7C, [8, 0], [12, 0]),
    ));
    let others = fake.keypad.codes.clone();
    let lock = radio.add_lock(&address(0), fake);
    let dir = tempfile::tempdir().unwrap();
    let keys = Arc::new(FileKeyStore::new(dir.path().join("keys.json")));
    pair(&radio, &address(0), keys.as_ref(), &opts(SECURITY_PIN))
        .await
        .expect("pairing with codes of others on the lock");
    assert_eq!(lock.lock().unwrap().pairing.users.len(), 1);
    let strangers = BTreeMap::from([(10, "345678".to_owned()), (9, "456789".to_owned())]);
    let (driver, _events) = Rig::driver(&radio, &keys, dir.path(), 1, 10);
    assert_eq!(
        read_map(&driver.read_slots("nuki-0").await.unwrap()),
        strangers
    );
    let start = Utc::now() + Cd::hours(1);
    let window = TimeWindow {
        starts_at: start,
        ends_at: start + Cd::hours(48),
    };
    assert_eq!(
        driver
            .apply("nuki-0", &[set(1, "567891", Some(window))])
            .await,
        vec![Ok(())]
    );
    drop(driver);
    // A restart: a new driver on the same files lists everything again.
    let (driver, _events) = Rig::driver(&radio, &keys, dir.path(), 1, 10);
    let mut want = strangers.clone();
    want.insert(1, "567891".into());
    let read = driver.read_slots("nuki-0").await.unwrap();
    assert_eq!(read_map(&read), want);
    assert_eq!(
        read.iter().find(|s| s.slot == 1).unwrap().window,
        Some(window)
    );
    assert_eq!(
        driver.apply("nuki-0", &[SlotOp::Clear { slot: 1 }]).await,
        vec![Ok(())]
    );
    assert_eq!(
        lock.lock().unwrap().keypad.codes,
        others,
        "the others' codes as they were"
    );
    assert_eq!(
        read_map(&driver.read_slots("nuki-0").await.unwrap()),
        strangers
    );
}

/// A pairing whose check cannot read the lock's reply takes its new
/// authorization off the lock again and stores nothing.
#[tokio::test]
async fn a_failed_pairing_leaves_no_authorization_behind() {
    let radio = MemoryRadio::new(22);
    let mut fake = FakeNuki::new(true, SECURITY_PIN, 10);
    fake.garble_replies.push(0x0043);
    let lock = radio.add_lock(&address(0), fake);
    let dir = tempfile::tempdir().unwrap();
    let keys = FileKeyStore::new(dir.path().join("keys.json"));
    let e = pair(&radio, &address(0), &keys, &opts(SECURITY_PIN))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("too short"), "{e}");
    assert!(
        lock.lock().unwrap().pairing.users.is_empty(),
        "no stray authorization"
    );
    assert_eq!(keys.get(&address(0)).unwrap(), None);
    // Fixed firmware: pairing again works, the first pairing's keys stay
    // usable, and a re-pairing replaces them on the lock too.
    lock.lock().unwrap().garble_replies.clear();
    let first = pair(&radio, &address(0), &keys, &opts(SECURITY_PIN))
        .await
        .unwrap();
    let second = pair(&radio, &address(0), &keys, &opts(SECURITY_PIN))
        .await
        .unwrap();
    let users: Vec<u32> = lock
        .lock()
        .unwrap()
        .pairing
        .users
        .iter()
        .map(|u| u.0)
        .collect();
    assert_ne!(first, second);
    assert_eq!(users, vec![second]);
}

#[tokio::test]
async fn set_read_update_clear_and_capabilities() {
    let rig = Rig::new(1, 10, 3).await;
    let d = &rig.driver;
    let devices = d.devices().await;
    assert_eq!(devices.len(), 1);
    let caps = &devices[0].capabilities;
    assert_eq!(caps.supported_code_lengths, vec![6]);
    assert_eq!(caps.max_active_codes_supported, 10);
    assert!(caps.supports_native_scheduling);
    assert_eq!(caps.name_max_length(), Some(20));

    let start = Utc::now() + Cd::milliseconds(1500);
    let window = TimeWindow {
        starts_at: start,
        ends_at: start + Cd::hours(72),
    };
    let r = d
        .apply(
            "nuki-0",
            &[set(1, "345678", Some(window)), set(2, "456789", None)],
        )
        .await;
    assert_eq!(r, vec![Ok(()), Ok(())]);
    let read = d.read_slots("nuki-0").await.unwrap();
    assert_eq!(
        read_map(&read),
        BTreeMap::from([(1, "345678".into()), (2, "456789".into())])
    );
    // The window comes back exactly as asked (the lock keeps seconds).
    assert_eq!(
        read.iter().find(|s| s.slot == 1).unwrap().window,
        Some(window)
    );
    {
        let lock = rig.radio.lock(&address(0)).unwrap();
        let lock = lock.lock().unwrap();
        let w = lock.keypad.codes[0].window().unwrap();
        assert_eq!(w.0, start.trunc_subsecs(0).naive_utc());
    }

    // A new PIN in slot 1 updates the same lock entry.
    assert_eq!(
        d.apply("nuki-0", &[set(1, "567891", None)]).await,
        vec![Ok(())]
    );
    assert_eq!(rig.codes_on(0).len(), 2);
    assert!(rig.codes_on(0).contains_key(&567891));
    // Rules checked before any traffic; lock refusals typed.
    let r = d
        .apply(
            "nuki-0",
            &[
                set(3, "123456", None),
                set(3, "3456", None),
                set(3, "456789", None),
            ],
        )
        .await;
    assert!(matches!(r[0], Err(DriverError::CodeRejected(_))));
    assert!(matches!(r[1], Err(DriverError::CodeRejected(_))));
    assert_eq!(r[2], Err(DriverError::DuplicateCode));
    assert_eq!(
        d.apply(
            "nuki-0",
            &[SlotOp::Clear { slot: 2 }, SlotOp::Clear { slot: 2 }]
        )
        .await,
        vec![Ok(()), Ok(())]
    );
    assert_eq!(
        rig.codes_on(0).keys().copied().collect::<Vec<_>>(),
        vec![567891]
    );
    assert_eq!(
        d.apply("nobody", &[SlotOp::Clear { slot: 1 }]).await,
        vec![Err(DriverError::UnknownDevice)]
    );
}

#[tokio::test]
async fn slots_survive_restart_and_strangers_get_top_slots() {
    let mut rig = Rig::new(1, 10, 4).await;
    rig.driver
        .apply("nuki-0", &[set(2, "345678", None), set(5, "456789", None)])
        .await;
    // Someone adds a code in the Nuki app.
    {
        let lock = rig.radio.lock(&address(0)).unwrap();
        let mut lock = lock.lock().unwrap();
        let id = 999;
        lock.keypad.seed(FakeCode::untimed(id, 678912, "Cleaner"));
    }
    let want = BTreeMap::from([
        (2, "345678".to_owned()),
        (5, "456789".to_owned()),
        (10, "678912".to_owned()),
    ]);
    assert_eq!(
        read_map(&rig.driver.read_slots("nuki-0").await.unwrap()),
        want
    );
    rig.restart(1, 10);
    assert_eq!(
        read_map(&rig.driver.read_slots("nuki-0").await.unwrap()),
        want
    );
    assert!(rig
        .driver
        .apply("nuki-0", &[SlotOp::Clear { slot: 5 }])
        .await[0]
        .is_ok());
    assert!(!rig.codes_on(0).contains_key(&456789));
    assert!(
        rig.codes_on(0).contains_key(&678912),
        "the stranger's code stays"
    );
}

#[tokio::test]
async fn a_lost_reply_is_adopted_not_duplicated() {
    let mut rig = Rig::new(1, 10, 5).await;
    let lock = rig.radio.lock(&address(0)).unwrap();
    // The add lands but its reply is lost: the driver reconnects, retries,
    // and finds its own code.
    lock.lock().unwrap().lose_reply.push(0x0041);
    assert_eq!(
        rig.driver.apply("nuki-0", &[set(3, "345678", None)]).await,
        vec![Ok(())]
    );
    assert_eq!(rig.codes_on(0).len(), 1);
    // Both the add's reply and the retry's are lost, then lockhub "dies".
    lock.lock().unwrap().lose_reply.extend([0x0041, 0x0041]);
    let r = rig.driver.apply("nuki-0", &[set(4, "456789", None)]).await;
    assert!(r[0].as_ref().unwrap_err().is_transient());
    rig.restart(1, 10);
    let read = read_map(&rig.driver.read_slots("nuki-0").await.unwrap());
    assert_eq!(
        read,
        BTreeMap::from([(3, "345678".into()), (4, "456789".into())]),
        "the landed add is found in its own slot after restart"
    );
    // A lost remove reply: retried, already gone, fine.
    lock.lock().unwrap().lose_reply.push(0x0047);
    assert_eq!(
        rig.driver
            .apply("nuki-0", &[SlotOp::Clear { slot: 4 }])
            .await,
        vec![Ok(())]
    );
    assert_eq!(rig.codes_on(0).len(), 1);
}

/// The next Online / Offline event (what the lock says of its bolt and door,
/// read on each new connection, is passed over).
async fn presence(
    events: &mut tokio::sync::mpsc::UnboundedReceiver<LockEvent>,
) -> Option<LockEvent> {
    loop {
        match events.recv().await {
            Some(LockEvent::DoorLock { .. } | LockEvent::Door { .. }) => continue,
            other => return other,
        }
    }
}

#[tokio::test]
async fn busy_full_and_out_of_range() {
    let mut rig = Rig::new(1, 2, 6).await;
    let lock = rig.radio.lock(&address(0)).unwrap();
    lock.lock().unwrap().busy = 1;
    assert_eq!(
        rig.driver.apply("nuki-0", &[set(1, "345678", None)]).await,
        vec![Err(DriverError::Busy)]
    );
    let r = rig
        .driver
        .apply(
            "nuki-0",
            &[
                set(1, "345678", None),
                set(2, "456789", None),
                set(1, "567891", None),
            ],
        )
        .await;
    assert_eq!(r, vec![Ok(()), Ok(()), Ok(())]);
    lock.lock().unwrap().keypad.capacity = 2;
    let r = rig.driver.apply("nuki-0", &[set(3, "678912", None)]).await;
    assert_eq!(r, vec![Err(DriverError::NoSpace)]);

    rig.radio.set_in_range(&address(0), false);
    let r = rig
        .driver
        .apply("nuki-0", &[SlotOp::Clear { slot: 1 }])
        .await;
    assert_eq!(r, vec![Err(DriverError::Offline)]);
    // The first connect made the lock known to be online (it was unknown).
    // (Lock and door states read on fresh connections are not what this is about.)
    assert_eq!(
        presence(&mut rig.events).await,
        Some(LockEvent::Online {
            device_id: "nuki-0".into()
        })
    );
    assert_eq!(
        presence(&mut rig.events).await,
        Some(LockEvent::Offline {
            device_id: "nuki-0".into()
        })
    );
    rig.radio.set_in_range(&address(0), true);
    let back = tokio::time::timeout(Duration::from_secs(2), presence(&mut rig.events)).await;
    assert_eq!(
        back.unwrap(),
        Some(LockEvent::Online {
            device_id: "nuki-0".into()
        }),
        "its advertisement brings it back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_max_connections_at_once() {
    let rig = Rig::new(6, 10, 7).await;
    let jobs: Vec<_> = (0..6)
        .map(|i| {
            let d = rig.driver.clone();
            tokio::spawn(async move {
                d.apply(
                    &format!("nuki-{i}"),
                    &[set(1, "345678", None), set(2, "456789", None)],
                )
                .await
            })
        })
        .collect();
    for j in jobs {
        assert!(j.await.unwrap().iter().all(|r| r.is_ok()));
    }
    assert!(
        rig.radio.max_concurrent() <= 2,
        "{}",
        rig.radio.max_concurrent()
    );
}

#[derive(Debug, Clone)]
enum Op {
    Set(u32, usize),
    Clear(u32),
}

fn valid_pins() -> Vec<String> {
    [
        "345678", "456789", "567891", "678912", "789123", "891234", "913456", "234567",
    ]
    .map(String::from)
    .to_vec()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    /// Whatever the radio does (lost, doubled or corrupted pieces, links
    /// dropping before or after a write), retrying each batch until it
    /// succeeds, as the engine does, leaves exactly the wanted codes on the
    /// lock, each in its slot, and no stray code behind.
    #[test]
    fn faults_never_leave_the_lock_wrong(
        ops in proptest::collection::vec(
            prop_oneof![(1u32..5, 0usize..8).prop_map(|(s, p)| Op::Set(s, p)), (1u32..5).prop_map(Op::Clear)],
            1..10),
        seed in any::<u64>(),
        restart_at in 0usize..10,
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let mut rig = Rig::new(1, 10, seed).await;
            rig.radio.set_faults(Faults {
                drop_piece: 0.01,
                duplicate_piece: 0.01,
                corrupt_piece: 0.01,
                disconnect_before_write: 0.03,
                disconnect_after_write: 0.03,
            });
            let pins = valid_pins();
            let mut model: BTreeMap<u32, String> = BTreeMap::new();
            for (n, op) in ops.iter().enumerate() {
                if n == restart_at {
                    rig.restart(1, 10);
                }
                let slot_op = match op {
                    Op::Set(slot, p) => {
                        let pin = &pins[*p];
                        // The engine never puts one PIN in two slots.
                        if model.iter().any(|(s, c)| c == pin && s != slot) {
                            continue;
                        }
                        model.insert(*slot, pin.clone());
                        set(*slot, pin, None)
                    }
                    Op::Clear(slot) => {
                        model.remove(slot);
                        SlotOp::Clear { slot: *slot }
                    }
                };
                let mut tries = 0;
                loop {
                    let r = rig.driver.apply("nuki-0", std::slice::from_ref(&slot_op)).await;
                    match &r[0] {
                        Ok(()) => break,
                        Err(e) if e.is_transient() && tries < 500 => tries += 1,
                        Err(e) => panic!("{op:?} failed for good: {e}"),
                    }
                }
            }
            rig.radio.set_faults(Faults::default());
            let read = read_map(&rig.driver.read_slots("nuki-0").await.unwrap());
            assert_eq!(read, model);
            assert_eq!(rig.codes_on(0).len(), model.len(), "no stray code on the lock");
        });
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, .. ProptestConfig::default() })]

    /// Pairing over a faulty radio either ends with keys that work or with
    /// an error and no usable keys; never with keys the lock does not know,
    /// nor with an authorization on the lock that lockhub forgot.
    #[test]
    fn pairing_under_faults_stores_good_keys_or_nothing(seed in any::<u64>()) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let radio = MemoryRadio::new(seed);
            let lock = radio.add_lock(&address(0), FakeNuki::new(true, SECURITY_PIN, 10));
            let dir = tempfile::tempdir().unwrap();
            let keys = Arc::new(FileKeyStore::new(dir.path().join("keys.json")));
            radio.set_faults(Faults {
                drop_piece: 0.02,
                duplicate_piece: 0.02,
                corrupt_piece: 0.02,
                disconnect_before_write: 0.05,
                disconnect_after_write: 0.05,
            });
            let mut o = opts(SECURITY_PIN);
            o.timeout = Duration::from_millis(30);
            let paired = pair(&radio, &address(0), keys.as_ref(), &o).await;
            radio.set_faults(Faults::default());
            match paired {
                Ok(auth_id) => {
                    let creds = keys.get(&address(0)).unwrap().expect("stored");
                    assert_eq!(creds.auth_id, auth_id);
                    let known = lock.lock().unwrap().pairing.users.clone();
                    assert!(known.iter().any(|(id, k)| *id == auth_id && *k == creds.shared_key));
                    let driver = BleDriver::new(config(1, 10), Arc::new(radio.clone()), keys, SlotMap::in_memory(), None);
                    assert_eq!(driver.apply("nuki-0", &[set(1, "345678", None)]).await, vec![Ok(())]);
                }
                Err(_) => {
                    // Whatever the lock still holds of lockhub's is on file,
                    // never usable, for the next pairing to remove.
                    let kept = keys.get(&address(0)).unwrap();
                    let known: Vec<u32> = kept.iter().flat_map(|c| std::iter::once(c.auth_id).chain(c.leftover.clone())).collect();
                    for (id, _) in lock.lock().unwrap().pairing.users.iter() {
                        assert!(known.contains(id), "stray authorization {id}");
                    }
                    assert!(kept.is_none_or(|c| c.security_pin.is_none()));
                }
            }
        });
    }
}

#[test]
fn no_secret_in_any_log_line() {
    // Every thread's lines (`Capture::global`): a scoped capture of this
    // thread's came back without the pairing's lines in a CI run.
    let capture = support::realtime::Capture::global();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let key = rt.block_on(async {
        let rig = Rig::new(1, 10, 8).await;
        rig.radio.set_faults(Faults {
            corrupt_piece: 0.2,
            ..Faults::default()
        });
        for _ in 0..5 {
            rig.driver.apply("nuki-0", &[set(1, "345678", None)]).await;
        }
        rig.radio.set_in_range(&address(0), false);
        rig.driver.apply("nuki-0", &[set(1, "345678", None)]).await;
        rig.keys.get(&address(0)).unwrap().unwrap().shared_key
    });
    let logs = capture.text();
    assert!(
        logs.contains("paired with the nuki"),
        "logging works: {logs}"
    );
    let hex: String = key.expose().iter().map(|b| format!("{b:02x}")).collect();
    for secret in [
        "345678",
        &SECURITY_PIN.to_string(),
        &hex,
        &hex.to_uppercase(),
    ] {
        assert!(!logs.contains(secret), "a secret in the logs");
    }
}

#[tokio::test]
async fn a_lingering_connection_serves_the_next_batch() {
    let rig = Rig::new(3, 10, 9).await;
    let before = rig.radio.connects();
    rig.driver.apply("nuki-0", &[set(1, "345678", None)]).await;
    rig.driver.apply("nuki-0", &[set(2, "456789", None)]).await;
    assert_eq!(
        rig.radio.connects(),
        before + 1,
        "one connect for both batches"
    );
    // Two other locks need the adapter (2 links): the idle one gives way.
    rig.driver.apply("nuki-1", &[set(1, "345678", None)]).await;
    rig.driver.apply("nuki-2", &[set(1, "345678", None)]).await;
    assert!(rig.radio.max_concurrent() <= 2);
    // After the linger it is closed; the next batch connects again.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = rig.radio.connects();
    rig.driver
        .apply("nuki-2", &[SlotOp::Clear { slot: 1 }])
        .await;
    assert_eq!(rig.radio.connects(), before + 1);
}

#[tokio::test]
async fn a_changed_code_is_found_after_a_crash() {
    let mut rig = Rig::new(1, 10, 12).await;
    assert_eq!(
        rig.driver.apply("nuki-0", &[set(4, "345678", None)]).await,
        vec![Ok(())]
    );
    assert_eq!(
        rig.driver.apply("nuki-0", &[set(4, "456789", None)]).await,
        vec![Ok(())]
    );
    // "Killed" at once: nothing lingers long enough to write the map.
    rig.restart(1, 10);
    let read = read_map(&rig.driver.read_slots("nuki-0").await.unwrap());
    assert_eq!(read, BTreeMap::from([(4, "456789".into())]));
}

/// Found by `faults_never_leave_the_lock_wrong` in CI: a clear whose removal
/// was only noted in memory came back after a crash as the slot's old add
/// intent, and the next clear of that slot took the same PIN from the slot
/// it had moved to.
#[tokio::test]
async fn a_cleared_slot_stays_cleared_after_a_crash() {
    let mut rig = Rig::new(1, 10, 13).await;
    let apply = |d: &Arc<BleDriver>, op: SlotOp| {
        let d = d.clone();
        async move { d.apply("nuki-0", &[op]).await }
    };
    assert_eq!(
        apply(&rig.driver, set(4, "456789", None)).await,
        vec![Ok(())]
    );
    assert_eq!(
        apply(&rig.driver, SlotOp::Clear { slot: 4 }).await,
        vec![Ok(())]
    );
    // "Killed" at once: nothing lingers long enough to write the map.
    rig.restart(1, 10);
    assert_eq!(
        apply(&rig.driver, set(1, "456789", None)).await,
        vec![Ok(())]
    );
    assert_eq!(
        apply(&rig.driver, SlotOp::Clear { slot: 4 }).await,
        vec![Ok(())]
    );
    assert_eq!(
        rig.codes_on(0).values().cloned().collect::<Vec<_>>(),
        vec!["Guest 1".to_owned()]
    );
    let read = read_map(&rig.driver.read_slots("nuki-0").await.unwrap());
    assert_eq!(read, BTreeMap::from([(1, "456789".into())]));
}
