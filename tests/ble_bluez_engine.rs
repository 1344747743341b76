//! The scenario over the real btleplug path: pair, the seed's group on
//! a Nuki (behind a fake BlueZ on a private D-Bus bus, relaying to the fake
//! lock) and a Z-Wave-like lock with `create_random_code`, then late
//! checkout. Needs scripts/test-deps-ble.sh.

mod support;

use lockhub::drivers::ble::btle::BtleRadio;
use lockhub::drivers::ble::fake_lock::FakeNuki;
use std::sync::{Arc, Mutex};
use support::ble::SECURITY_PIN;
use support::fake_bluez::{FakeBluez, Reply};

const ADDRESS: &str = "54:D2:72:AA:BB:CC";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_group_and_late_checkout_through_btleplug() {
    let nuki = Arc::new(Mutex::new(FakeNuki::new(true, SECURITY_PIN, 20)));
    let relay = nuki.clone();
    let _bluez = FakeBluez::start(ADDRESS, move |channel, bytes| Reply {
        messages: relay.lock().unwrap().on_write(channel, bytes),
        disconnect: false,
    })
    .expect("fake BlueZ (run scripts/test-deps-ble.sh)");
    let radio = BtleRadio::open(None).await.expect("adapter");
    support::ble::seed_group_on_nuki_and_zwave_like(Arc::new(radio), ADDRESS, nuki).await;
}
