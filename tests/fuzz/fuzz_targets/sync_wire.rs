#![no_main]
//! Properties: see `lb_daemon::fuzzing::sync_wire`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| lb_daemon::fuzzing::sync_wire(data));
