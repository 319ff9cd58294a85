//! A TUN destination's tunnel (keepalived's `lvs_method TUN type ipip|gue|gre [port N]
//! [nocsum|csum|remcsum]`) as `tunnel_type`, `tunnel_port` and `tunnel_checksum`, in a
//! virtual server (its real servers' default), a real server or the sorry server, with
//! keepalived's checks: GUE needs a port and only GUE has one, IP-in-IP takes no
//! checksum option, GRE no remote checksum. Only IP-in-IP runs on XDP.

use super::xdp_may_run;
use crate::config::reader::{Decoder, Table};
use crate::config::schema::{Dataplane, LbKind, Tunnel, TunnelChecksum, TunnelKind};

const KINDS: &[(&str, TunnelKind)] = &[
    ("ipip", TunnelKind::Ipip),
    ("gue", TunnelKind::Gue),
    ("gre", TunnelKind::Gre),
];

const CHECKSUMS: &[(&str, TunnelChecksum)] = &[
    ("nocsum", TunnelChecksum::NoCsum),
    ("csum", TunnelChecksum::Csum),
    ("remcsum", TunnelChecksum::RemCsum),
];

/// The tunnel `t` sets for a destination reached by `kind`, else `inherited` (the
/// virtual server's; IP-in-IP for the virtual server itself). `what` names the holder
/// in messages ("virtual server", "real server", "sorry server").
pub(super) fn own_tunnel(
    d: &mut Decoder<'_>,
    t: &mut Table<'_, '_>,
    what: &str,
    kind: LbKind,
    inherited: Tunnel,
    dataplane: Dataplane,
) -> Tunnel {
    let type_f = t.get(d, "tunnel_type");
    let port_f = t.get(d, "tunnel_port");
    let csum_f = t.get(d, "tunnel_checksum");
    let fields: Vec<_> = [&type_f, &port_f, &csum_f].into_iter().flatten().collect();
    if kind != LbKind::Tun {
        for f in &fields {
            f.error(
                d,
                format!("a tunnel setting for a {what} reached by {}", kind.name()),
            )
            .hint("tunnel_type, tunnel_port and tunnel_checksum apply to lb_kind = \"TUN\": remove it or set lb_kind = \"TUN\"");
        }
        return Tunnel::default();
    }
    let Some(&at) = fields.first() else {
        return inherited;
    };
    let errors = d.error_count();
    let mut tunnel = Tunnel::default();
    if let Some(f) = &type_f {
        tunnel.kind = f.keyword(d, KINDS).unwrap_or_default();
    }
    if let Some(f) = &port_f {
        tunnel.port = f.int::<u16>(d, 1..=65_535).unwrap_or_default();
    }
    if let Some(f) = &csum_f {
        tunnel.checksum = f.keyword(d, CHECKSUMS).unwrap_or_default();
    }
    if d.error_count() != errors {
        return tunnel;
    }
    // keepalived's own checks, word for word where it has them.
    if (tunnel.kind == TunnelKind::Gue) != (tunnel.port != 0) {
        at.error(
            d,
            "gue tunnels require port, otherwise cannot have port",
        )
        .hint("tunnel_port = N (the GUE receiver's UDP port) with tunnel_type = \"gue\", and only then");
    } else if tunnel.kind == TunnelKind::Ipip && tunnel.checksum != TunnelChecksum::NoCsum {
        at.error(d, "ipip tunnels do not support checksum option")
            .hint("remove tunnel_checksum, or use tunnel_type = \"gue\" or \"gre\"");
    } else if tunnel.kind == TunnelKind::Gre && tunnel.checksum == TunnelChecksum::RemCsum {
        at.error(d, "gre tunnels do not support remote checksum option")
            .hint("tunnel_checksum = \"csum\" or \"nocsum\"");
    } else if tunnel.kind != TunnelKind::Ipip && dataplane != Dataplane::Ipvs {
        let plane = xdp_may_run(dataplane);
        at.error(
            d,
            format!(
                "a {} tunnel needs the IPVS data plane: {plane} the XDP program encapsulates IP-in-IP (IPv6-in-IPv6) only",
                tunnel.kind.name()
            ),
        )
        .hint("set dataplane = \"ipvs\" in [global], or tunnel_type = \"ipip\" (IP-in-IP, which the reals must then decapsulate)");
    }
    tunnel
}
