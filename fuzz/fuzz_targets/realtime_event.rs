//! `realtime_event`: see docs/FUZZING.md. The harness is `amanuensis::server::fuzzing::realtime_event` (shared
//! with the crate's regression tests).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| amanuensis::server::fuzzing::realtime_event(data));
