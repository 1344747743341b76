pub mod blackbox;
pub mod ble;
pub mod core;
pub mod fake_bluez;
pub mod http;
pub mod realtime;
pub mod trust;
pub mod webdriver;
