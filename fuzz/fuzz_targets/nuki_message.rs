#![no_main]
//! `lockhub::fuzzing::nuki_message` (see src/fuzzing.rs).

libfuzzer_sys::fuzz_target!(|data: &[u8]| lockhub::fuzzing::nuki_message(data));
