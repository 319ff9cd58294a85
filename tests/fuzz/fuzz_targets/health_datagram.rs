#![no_main]
//! Properties: see `lb_daemon::fuzzing::health_datagram`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| lb_daemon::fuzzing::health_datagram(data));
