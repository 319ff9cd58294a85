//! What this version of the daemon cannot run yet, reported by `check-config` with the
//! position of the key, like every other error: the IPVS data plane.

use super::diagnostic::{Diagnostic, Severity};
use super::schema::{Config, Dataplane};
use super::source::KeyPath;

pub fn check_availability(config: &Config) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    if config.global.dataplane == Dataplane::Ipvs && !config.virtual_servers.is_empty() {
        out.push(config.source.diagnostic(
            Severity::Error,
            &KeyPath::root().key("global").key("dataplane"),
            "the IPVS data plane is not available in this version",
            Some("use dataplane = \"xdp\" or \"auto\"".into()),
        ));
    }
    out
}
