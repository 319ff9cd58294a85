#![no_main]
//! Properties: see `lb_daemon::fuzzing::metrics_request`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| lb_daemon::fuzzing::metrics_request(data));
