#![no_main]
//! `lockhub::fuzzing::command_payload` (see src/fuzzing.rs).

libfuzzer_sys::fuzz_target!(|data: &[u8]| lockhub::fuzzing::command_payload(data));
