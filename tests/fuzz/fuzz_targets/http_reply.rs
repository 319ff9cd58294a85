#![no_main]
//! Properties: see `lb_daemon::fuzzing::http_reply`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| lb_daemon::fuzzing::http_reply(data));
