//! The engine drives the BLE driver over the in-process radio: the issue's
//! scenario (pair, the seed's group on a Nuki and a Z-Wave-like lock with
//! `create_random_code`, late checkout) in real time, with no D-Bus.

mod support;

use lockhub::drivers::ble::fake_lock::FakeNuki;
use lockhub::drivers::ble::memory::MemoryRadio;
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_group_and_late_checkout_on_a_nuki() {
    let radio = MemoryRadio::new(11);
    let address = "54:D2:72:AA:BB:CC";
    let nuki = radio.add_lock(address, FakeNuki::new(true, support::ble::SECURITY_PIN, 20));
    support::ble::seed_group_on_nuki_and_zwave_like(Arc::new(radio), address, nuki).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keypad_use_on_a_nuki_is_reported_with_its_access_code() {
    let radio = MemoryRadio::new(12);
    let address = "54:D2:72:AA:BB:CD";
    let nuki = radio.add_lock(address, FakeNuki::new(true, support::ble::SECURITY_PIN, 20));
    let signals = radio.clone();
    support::ble::lock_activity_on_nuki(Arc::new(radio), address, nuki, async |_| {
        signals.signal_change(address)
    })
    .await;
}
