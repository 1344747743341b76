#![no_main]
//! `lockhub::fuzzing::zwave_s2` (see src/fuzzing.rs).

libfuzzer_sys::fuzz_target!(|data: &[u8]| lockhub::fuzzing::zwave_s2(data));
