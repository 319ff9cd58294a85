#![no_main]
//! Properties: see `lb_daemon::fuzzing::ipvs_netlink`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| lb_daemon::fuzzing::ipvs_netlink(data));
