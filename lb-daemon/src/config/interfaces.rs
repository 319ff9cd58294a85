//! Do the interfaces the configuration names exist? Kept apart from loading because the
//! answer depends on the machine (and on when: a reload may see new links), so the caller
//! supplies the lookup: the daemon a netlink or `if_nametoindex` query, tests a fake.

use super::decode::endpoint;
use super::diagnostic::{Diagnostic, Severity};
use super::schema::Config;
use super::source::KeyPath;

/// An error for every instance interface, tracked interface, VIP `dev`, virtual server
/// interface and interface a static track group tracks for which `exists` says no,
/// positioned where the file names it.
pub fn check_interfaces(config: &Config, exists: impl Fn(&str) -> bool) -> Vec<Diagnostic> {
    let mut diagnostics = Vec::new();
    let mut missing = |path: KeyPath, name: &str| {
        if !exists(name) {
            diagnostics.push(config.source.diagnostic(
                Severity::Error,
                &path,
                format!("interface `{name}` does not exist"),
                Some("see `ip link`; the interface must exist when the daemon starts".into()),
            ));
        }
    };
    for (i, instance) in config.vrrp_instances.iter().enumerate() {
        let base = KeyPath::root()
            .key("vrrp_instance")
            .entry(i, Some(&instance.name));
        missing(base.key("interface"), &instance.interface);
        for (j, tracked) in instance.track_interface.iter().enumerate() {
            let path = base.key("track_interface").index(j);
            // Entries a static track group added are checked at their static line.
            if config.source.written(&path) {
                missing(path, &tracked.name);
            }
        }
        for (key, vips) in [
            ("virtual_ipaddress", &instance.virtual_ipaddress),
            (
                "virtual_ipaddress_excluded",
                &instance.virtual_ipaddress_excluded,
            ),
        ] {
            for (k, vip) in vips.iter().enumerate() {
                if let Some(dev) = &vip.dev {
                    missing(base.key(key).index(k), dev);
                }
            }
        }
    }
    for (i, server) in config.virtual_servers.iter().enumerate() {
        let label = endpoint(&server.address.to_string(), server.port);
        let base = KeyPath::root().key("virtual_server").entry(i, Some(&label));
        for (j, name) in server.interfaces.iter().enumerate() {
            missing(base.key("interfaces").index(j), name);
        }
    }
    // A static line's interface that a track group's instances track (else they would
    // stay in FAULT), reported at the line.
    for (key, i, _, interface) in config.static_network.tracked_lines() {
        missing(KeyPath::root().key("static").key(key).index(i), interface);
    }
    // [bgp].interfaces matter only to announced services.
    if config.bgp_servers().next().is_some() {
        let base = KeyPath::root().key("bgp").key("interfaces");
        for (j, name) in config.bgp.interfaces.iter().enumerate() {
            missing(base.clone().index(j), name);
        }
    }
    diagnostics
}
