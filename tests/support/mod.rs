pub mod blackbox;
pub mod ble;
pub mod core;
