pub mod blackbox;
pub mod core;
