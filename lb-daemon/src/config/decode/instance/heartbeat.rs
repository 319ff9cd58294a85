//! `heartbeat_paths = [{ interface = "eth1", unicast_src_ip = "…", unicast_peers = […] }]`
//! of a `[[vrrp_instance]]`: more paths for its adverts.

use std::net::IpAddr;

use super::At;
use crate::config::address::AddressFamily;
use crate::config::reader::{Decoder, Field};
use crate::config::schema::HeartbeatPath;

pub(super) fn path(d: &mut Decoder<'_>, field: &Field<'_, '_>) -> Option<HeartbeatPath> {
    let mut t = field.table(d)?;
    let errors_before = d.error_count();
    let interface = t.required(d, "interface").and_then(|f| f.interface(d));
    let ip = |d: &mut Decoder<'_>, f: &Field<'_, '_>| f.parse::<IpAddr>(d, "an IP address");
    let unicast_src_ip = t.get(d, "unicast_src_ip").and_then(|f| ip(d, &f));
    let unicast_peers = match t.get(d, "unicast_peers").and_then(|f| f.array(d)) {
        Some(items) => items.iter().filter_map(|f| ip(d, f)).collect(),
        None => Vec::new(),
    };
    t.finish(d);
    if d.error_count() != errors_before {
        return None;
    }
    Some(HeartbeatPath {
        interface: interface?,
        unicast_src_ip,
        unicast_peers,
    })
}

/// Every address of a path is of the instance's family, and a path is not the
/// instance's own interface without unicast (the same adverts twice on one link).
pub(super) fn check(
    d: &mut Decoder<'_>,
    paths: &[At<'_, '_, HeartbeatPath>],
    interface: Option<&str>,
    family: AddressFamily,
) {
    for p in paths {
        let path = &p.value;
        let wrong = path
            .unicast_src_ip
            .iter()
            .chain(&path.unicast_peers)
            .find(|a| a.is_ipv4() != (family == AddressFamily::V4));
        if let Some(a) = wrong {
            p.field
                .error(d, format!("address {a} is not of the instance's family"))
                .hint("a heartbeat path carries the instance's adverts: use addresses of the virtual addresses' family");
        }
        if Some(path.interface.as_str()) == interface && path.unicast_peers.is_empty() {
            p.field
                .error(
                    d,
                    format!("the instance already multicasts on {}", path.interface),
                )
                .hint("a second path needs another interface, or unicast_peers on another network");
        }
    }
}
