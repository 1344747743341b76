//! What a Nuki says, over the real btleplug path (a fake BlueZ on a private
//! D-Bus bus relaying to the fake lock): a keypad entry in its activity log
//! becomes `lock.unlocked` with the guest's access_code_id, and
//! `locks/lock_door` runs a Lock Action. btleplug's radio has no change
//! signal yet, so the test asks the driver to read (as a signal would).
//! Needs scripts/test-deps-ble.sh.

mod support;

use lockhub::drivers::ble::btle::BtleRadio;
use lockhub::drivers::ble::fake_lock::FakeNuki;
use std::sync::{Arc, Mutex};
use support::ble::{BACK, SECURITY_PIN};
use support::fake_bluez::{FakeBluez, Reply};

const ADDRESS: &str = "54:D2:72:AA:BB:CC";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keypad_use_through_btleplug() {
    let nuki = Arc::new(Mutex::new(FakeNuki::new(true, SECURITY_PIN, 20)));
    let relay = nuki.clone();
    let _bluez = FakeBluez::start(ADDRESS, move |channel, bytes| Reply {
        messages: relay.lock().unwrap().on_write(channel, bytes),
        disconnect: false,
    })
    .expect("fake BlueZ (run scripts/test-deps-ble.sh)");
    let radio = BtleRadio::open(None).await.expect("adapter");
    support::ble::lock_activity_on_nuki(Arc::new(radio), ADDRESS, nuki, async |ble| {
        ble.refresh(BACK).await.expect("read the lock");
    })
    .await;
}
