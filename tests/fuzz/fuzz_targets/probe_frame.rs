#![no_main]
//! Properties: see `lb_daemon::fuzzing::probe_frame`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| lb_daemon::fuzzing::probe_frame(data));
