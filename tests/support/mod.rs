pub mod blackbox;
pub mod ble;
pub mod core;
pub mod fake_bluez;
pub mod realtime;
pub mod trust;
