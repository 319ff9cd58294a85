#![no_main]
//! Properties: see `lb_daemon::fuzzing::vrrp_packet`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| lb_daemon::fuzzing::vrrp_packet(data));
