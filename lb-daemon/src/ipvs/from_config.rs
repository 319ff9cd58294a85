//! A virtual server and its desired backends (from the health checks) as an IPVS
//! service: `lb_kind` NAT/DR/TUN as masquerading/direct routing/IP-in-IP, per
//! destination (a real or sorry server's own `lb_kind`, else the virtual server's, as
//! keepalived's `lvs_method` inside `real_server`), `lb_algo` as
//! its IPVS scheduler (`maglev` → `mh`, `maglev_src` → `sh`), `persistence_timeout` in
//! whole seconds, weights as given (0: inhibited, keeps its connections).

use super::{
    model::{DestEntry, Forward, ServiceEntry, TunnelAttrs},
    plan::DesiredService,
};
use crate::{
    config::{self, LbKind},
    dataplane::from_config::service_id,
    health::verdict::DesiredBackend,
};

pub fn forward(kind: LbKind) -> Forward {
    match kind {
        LbKind::Nat => Forward::Masq,
        LbKind::Dr => Forward::Route,
        LbKind::Tun => Forward::Tunnel,
    }
}

/// How `backend` is reached: the sorry server's or the real server's own method, else
/// the virtual server's.
pub fn backend_kind(vs: &config::VirtualServer, backend: &DesiredBackend) -> LbKind {
    if backend.sorry {
        return vs.sorry_server_lb_kind;
    }
    real_of(vs, backend).map_or(vs.lb_kind, |r| r.lb_kind)
}

fn real_of<'v>(
    vs: &'v config::VirtualServer,
    backend: &DesiredBackend,
) -> Option<&'v config::RealServer> {
    vs.real_servers
        .iter()
        .find(|r| r.address == backend.addr && r.port == backend.port)
}

/// `backend`'s tunnel (TUN): its own, else the virtual server's.
fn backend_tunnel(vs: &config::VirtualServer, backend: &DesiredBackend) -> TunnelAttrs {
    let t = if backend.sorry {
        vs.sorry_server_tunnel
    } else {
        real_of(vs, backend).map_or(vs.tunnel, |r| r.tunnel)
    };
    TunnelAttrs {
        kind: t.kind.ipvs(),
        port: t.port,
        flags: t.checksum.ipvs(),
    }
}

/// `backend`'s connection limits (a real server's `uthreshold`, `lthreshold`).
fn backend_thresholds(vs: &config::VirtualServer, backend: &DesiredBackend) -> (u32, u32) {
    match real_of(vs, backend).filter(|_| !backend.sorry) {
        Some(r) => (r.uthreshold, r.lthreshold),
        None => (0, 0),
    }
}

pub fn desired_service(vs: &config::VirtualServer, backends: &[DesiredBackend]) -> DesiredService {
    let persistence = vs
        .persistence_timeout
        .map(|t| u32::try_from(t.as_secs()).unwrap_or(u32::MAX));
    DesiredService {
        service: {
            let entry = ServiceEntry::new(service_id(vs), vs.lb_algo.ipvs_scheduler(), persistence);
            match vs.persistence_prefix {
                Some(p) => entry.with_persistence_prefix(p),
                None => entry,
            }
        },
        dests: backends
            .iter()
            .map(|b| {
                let fwd = forward(backend_kind(vs, b));
                // DR and TUN do not rewrite ports: the real serves the virtual port.
                let port = if fwd == Forward::Masq {
                    b.port
                } else {
                    vs.port
                };
                let (upper, lower) = backend_thresholds(vs, b);
                DestEntry::new(b.addr, port, fwd, b.weight)
                    .with_tunnel(backend_tunnel(vs, b))
                    .with_thresholds(upper, lower)
            })
            .collect(),
    }
}

/// What of the virtual server IPVS cannot do (said once when it is programmed).
pub fn unsupported(vs: &config::VirtualServer) -> Option<String> {
    vs.snat_address.map(|a| {
        format!(
            "snat_address {a} (full-NAT) is not available on IPVS: the service runs as plain NAT, so the reals must route their replies through this node"
        )
    })
}
