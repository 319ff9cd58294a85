#![no_main]
//! Properties: see `lb_daemon::fuzzing::keepalived_conf`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| lb_daemon::fuzzing::keepalived_conf(data));
