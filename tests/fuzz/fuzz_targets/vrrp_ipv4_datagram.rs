#![no_main]
//! Properties: see `lb_daemon::fuzzing::vrrp_ipv4_datagram`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| lb_daemon::fuzzing::vrrp_ipv4_datagram(data));
