//! `[[virtual_server.real_server]]`.

use std::collections::HashMap;
use std::net::IpAddr;

use super::check::{self, Inherited, Kind, Target};
use super::{check_family, endpoint, ip, own_lb_kind, tunnel::own_tunnel};
use crate::config::reader::{Decoder, Table};
use crate::config::schema::{Dataplane, LbKind, RealServer, Tunnel, REAL_WEIGHT_MAX};
use crate::config::source::{KeyPath, Span};

const RENAMES: &[(&str, &str)] = &[
    ("lvs_method", "keepalived's `lvs_method` is `lb_kind` here"),
    (
        "file_check",
        "FILE_CHECK is not supported; a misc_check can read the file",
    ),
];

/// What a real server inherits from its virtual server.
pub(super) struct RealContext<'c> {
    /// `None`: invalid, already reported.
    pub address: Option<IpAddr>,
    pub port: Option<u16>,
    pub lb_kind: LbKind,
    /// The virtual server's tunnel (for TUN).
    pub tunnel: Tunnel,
    /// A real's own `lb_kind` needs IPVS.
    pub dataplane: Dataplane,
    pub inhibit_on_failure: bool,
    pub inherited: &'c Inherited,
    /// The bfd_instances BFD_CHECK may name.
    pub known: &'c crate::config::decode::instance::Known<'c>,
}

/// What the checks across real servers need, available even when the real has errors.
pub(super) struct RealFacts {
    pub address: Option<(IpAddr, KeyPath, Span)>,
    pub port: u16,
    pub weight: u32,
    /// A MISC_CHECK with `misc_dynamic` may set any weight.
    pub dynamic_weight: bool,
}

pub(super) fn decode(
    d: &mut Decoder<'_>,
    t: Table<'_, '_>,
    vs: &RealContext<'_>,
) -> (Option<RealServer>, RealFacts) {
    let errors_before = d.error_count();
    let mut t = t.with_renames(RENAMES);
    let lb_kind = own_lb_kind(d, &mut t, "real server", vs.lb_kind, vs.dataplane);
    let address = t.required(d, "address").and_then(|f| {
        let addr = ip(d, &f)?;
        if let Some(vip) = vs.address {
            check_family(d, &f, "real server", vip, addr, lb_kind);
        }
        Some((addr, f.path().clone(), f.span()))
    });
    let vs_port = vs.port.unwrap_or(0);
    let port = match t.get(d, "port") {
        Some(f) => {
            let port = f.int::<u16>(d, 1..=65_535);
            if let Some(p) = port.filter(|&p| vs_port != 0 && p != vs_port) {
                if let Some(kind) = kind_keeping_ports(lb_kind) {
                    f.warning(
                        d,
                        format!("{kind} keeps the destination port: clients reach this real server on port {vs_port}, not {p}"),
                    )
                    .hint("use lb_kind = \"NAT\" to change ports, or a checker's connect_port to check another port");
                }
            }
            port.unwrap_or(vs_port)
        }
        None => vs_port,
    };
    let weight = t
        .get(d, "weight")
        .and_then(|f| f.int(d, 0..=i64::from(REAL_WEIGHT_MAX)))
        .unwrap_or(1);
    let inhibit_on_failure = t
        .get(d, "inhibit_on_failure")
        .and_then(|f| f.bool(d))
        .unwrap_or(vs.inhibit_on_failure);
    let tunnel = own_tunnel(d, &mut t, "real server", lb_kind, vs.tunnel, vs.dataplane);
    let [uthreshold, lthreshold] = ["uthreshold", "lthreshold"].map(|key| {
        let f = t.get(d, key)?;
        let v = f.int::<u32>(d, 0..=i64::from(u32::MAX))?;
        if v != 0 && vs.dataplane != Dataplane::Ipvs {
            f.warning(d, format!("{key} limits a real server's connections on the IPVS data plane only: the XDP program keeps no count per real server, so it is ignored there"))
                .hint("set dataplane = \"ipvs\" in [global] for connection limits, or remove it");
        }
        Some(v)
    });
    let notify_up = t.get(d, "notify_up").and_then(|f| f.string(d));
    let notify_down = t.get(d, "notify_down").and_then(|f| f.string(d));
    let smtp_alert = t.get(d, "smtp_alert").and_then(|f| f.bool(d));
    let inherited = Inherited::read(d, &mut t, Some(vs.inherited));
    let target = Target {
        address: address.as_ref().map(|(a, _, _)| *a),
        port,
        inherited: &inherited,
        vs_delay_loop: vs.inherited.delay_loop,
        known: vs.known,
    };
    let mut checks = Vec::new();
    for kind in Kind::ALL {
        let Some(field) = t.get(d, kind.key()) else {
            continue;
        };
        for table in field.one_or_more_tables(d) {
            let at = table.span().start;
            checks.extend(check::decode(d, kind, table, &target).map(|c| (at, c)));
        }
    }
    // In the order written, whatever their kind.
    checks.sort_by_key(|(at, _)| *at);
    let checks: Vec<_> = checks.into_iter().map(|(_, c)| c).collect();
    t.finish(d);

    let facts = RealFacts {
        address: address.clone(),
        port,
        weight,
        dynamic_weight: checks.iter().any(check::is_dynamic),
    };
    let real = match address {
        Some((address, _, _)) if d.error_count() == errors_before => Some(RealServer {
            address,
            port,
            weight,
            inhibit_on_failure,
            lb_kind,
            tunnel,
            uthreshold: uthreshold.unwrap_or(0),
            lthreshold: lthreshold.unwrap_or(0),
            notify_up,
            notify_down,
            smtp_alert,
            checks,
        }),
        _ => None,
    };
    (real, facts)
}

/// Each address and port once per virtual server.
pub(super) fn unique(d: &mut Decoder<'_>, reals: &[RealFacts]) {
    let mut first: HashMap<(IpAddr, u16), &Span> = HashMap::new();
    for real in reals {
        let Some((address, path, span)) = &real.address else {
            continue;
        };
        match first.get(&(*address, real.port)) {
            Some(earlier) => {
                let line = d.position(earlier).line;
                let shown = endpoint(&address.to_string(), real.port);
                d.error(
                    path,
                    span.clone(),
                    format!("real server {shown} is listed twice"),
                )
                .hint(format!("first defined at line {line}"));
            }
            None => {
                first.insert((*address, real.port), span);
            }
        }
    }
}

/// The forwarding methods that cannot change the destination port.
fn kind_keeping_ports(kind: LbKind) -> Option<&'static str> {
    match kind {
        LbKind::Dr => Some("DR"),
        LbKind::Tun => Some("TUN"),
        LbKind::Nat => None,
    }
}
