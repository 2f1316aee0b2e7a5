//! `jobs_json`: see docs/FUZZING.md. The harness is `amanuensis::server::fuzzing::jobs_json` (shared
//! with the crate's regression tests).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| amanuensis::server::fuzzing::jobs_json(data));
