#![no_main]
//! Properties: see `lb_daemon::fuzzing::config_toml`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| lb_daemon::fuzzing::config_toml(data));
