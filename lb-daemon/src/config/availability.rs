//! What this version of the daemon cannot run yet, reported by `check-config` with the
//! position of the key, like every other error: NAT forwarding and the IPVS data plane.

use super::decode::endpoint;
use super::diagnostic::{Diagnostic, Severity};
use super::schema::{Config, Dataplane, LbKind};
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
    for (i, vs) in config.virtual_servers.iter().enumerate() {
        if vs.lb_kind == LbKind::Nat {
            let label = endpoint(&vs.address.to_string(), vs.port);
            out.push(
                config.source.diagnostic(
                    Severity::Error,
                    &KeyPath::root()
                        .key("virtual_server")
                        .entry(i, Some(&label))
                        .key("lb_kind"),
                    "NAT forwarding is not available in this version",
                    Some("use lb_kind = \"DR\" or \"TUN\"".into()),
                ),
            );
        }
    }
    out
}
