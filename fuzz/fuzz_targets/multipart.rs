//! `multipart`: see docs/FUZZING.md. The harness is `amanuensis::server::fuzzing::multipart` (shared
//! with the crate's regression tests).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| amanuensis::server::fuzzing::multipart(data));
