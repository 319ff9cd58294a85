//! `[[virtual_server]]`: the service's own keys here, its `[[virtual_server.real_server]]`
//! entries in [`real`], their health checkers in [`check`] (URLs in [`http`]).
//!
//! As in keepalived's check parser, checker settings pass down: a checker's own
//! `delay_loop`, `connect_timeout`, `retry`, `delay_before_retry`, `warmup` (and the HTTP
//! checkers' `virtualhost`), else its real server's, else its virtual server's, else the
//! checker kind's default.

mod check;
mod http;
mod real;
mod tunnel;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use toml::de::DeTable;

use crate::config::address::{valid_ifname, AddressFamily};
use crate::config::reader::{peek_int, peek_str, Decoder, Field, Table};
use crate::config::schema::{
    Announce, Dataplane, Global, LbAlgo, LbKind, Protocol, Tunnel, VirtualServer, FWMARK_MAX,
    PERSISTENCE_TIMEOUT_MAX,
};
use crate::config::source::{KeyPath, Span};
use lb_common::maglev::{DEFAULT_TABLE_SIZE, TABLE_SIZES};

use check::Inherited;
use real::{RealContext, RealFacts};

const RENAMES: &[(&str, &str)] = &[
    ("lvs_sched", "keepalived's `lvs_sched` is `lb_algo` here"),
    ("lvs_method", "keepalived's `lvs_method` is `lb_kind` here"),
    (
        "group",
        "virtual_server_group is not supported: write one [[virtual_server]] per address and port",
    ),
    (
        "real_servers",
        "write each real server as [[virtual_server.real_server]]",
    ),
];

/// `None`: known to keepalived but refused here.
const PROTOCOLS: &[(&str, Protocol)] = &[
    ("TCP", Protocol::Tcp),
    ("UDP", Protocol::Udp),
    ("SCTP", Protocol::Sctp),
];

const LB_KINDS: &[(&str, LbKind)] = &[
    ("DR", LbKind::Dr),
    ("TUN", LbKind::Tun),
    ("NAT", LbKind::Nat),
];

const ANNOUNCES: &[(&str, Announce)] = &[("vrrp", Announce::Vrrp), ("bgp", Announce::Bgp)];

const MAGLEV_HINT: &str =
    "use lb_algo = \"maglev\" or \"maglev_src\", or set dataplane = \"ipvs\" in [global]";

/// What the cross-server checks need, available even when the server has errors.
pub(crate) struct ServerFacts {
    /// The address as written, with where.
    pub address: Option<(IpAddr, KeyPath, Span)>,
    /// Address, port and protocol, when all three are valid.
    pub service: Option<Service>,
    /// `announce = "bgp"`, with where it was written.
    pub announce_bgp: Option<(KeyPath, Span)>,
    /// The server names its own `interfaces`.
    pub has_interfaces: bool,
    /// A `fwmark` server's `match` entries (with `protocol`), and where the list is.
    pub matches: Option<(Vec<Service>, KeyPath, Span)>,
}

/// Address, port and protocol.
pub(crate) type Service = (IpAddr, u16, Protocol);

/// `ADDR:PORT` (`[ADDR]:PORT` for IPv6), as the servers are shown in diagnostics.
pub(crate) fn endpoint(address: &str, port: impl std::fmt::Display) -> String {
    if address.contains(':') {
        format!("[{address}]:{port}")
    } else {
        format!("{address}:{port}")
    }
}

/// How an entry is shown in key paths: its address and port as written (`fwmark N`).
pub(super) fn label(entries: &DeTable<'_>) -> Option<String> {
    if let Some(mark) = peek_int(entries, "fwmark") {
        return Some(format!("fwmark {mark}"));
    }
    let address = peek_str(entries, "address")?.trim();
    Some(match peek_int(entries, "port") {
        Some(port) => endpoint(address, port),
        None => address.to_owned(),
    })
}

pub(super) fn decode(
    d: &mut Decoder<'_>,
    t: Table<'_, '_>,
    global: &Global,
    known: &super::instance::Known<'_>,
) -> (Option<VirtualServer>, ServerFacts) {
    let errors_before = d.error_count();
    let mut t = t.with_renames(RENAMES);

    // keepalived's `virtual_server fwmark N`: no address or port; on XDP a `match` list.
    let fwmark_field = t.get(d, "fwmark");
    let fwmark = fwmark_field
        .as_ref()
        .and_then(|f| f.int::<u32>(d, 1..=i64::from(FWMARK_MAX)));
    let match_field = t.get(d, "match");
    let matches = match_field
        .as_ref()
        .map(|f| match_list(d, f))
        .unwrap_or_default();
    if let (Some(f), None) = (&match_field, &fwmark_field) {
        f.error(d, "match applies to fwmark virtual servers only")
            .hint("add fwmark = N, or write address and port instead of match");
    }
    if let Some(f) = &fwmark_field {
        if match_field.is_none() && global.dataplane != Dataplane::Ipvs {
            f.error(
                d,
                "on the XDP data plane a fwmark virtual server needs the addresses and ports the mark selects (XDP runs before netfilter and sees no mark)",
            )
            .hint("list them with protocol, e.g. match = [\"198.18.0.100:80\", \"198.18.0.100:443\"], or set dataplane = \"ipvs\" in [global]");
        }
    }
    let address = match &fwmark_field {
        Some(_) => {
            for key in ["address", "port"] {
                if let Some(f) = t.get(d, key) {
                    f.error(d, format!("a fwmark virtual server has no {key}: the mark selects its packets"))
                        .hint("remove it; on XDP list the addresses and ports in match = [\"ADDR:PORT\", ...]");
                }
            }
            None
        }
        None => t.required(d, "address"),
    }
    .and_then(|f| ip(d, &f).map(|a| (a, f)));
    let port = match &fwmark_field {
        Some(_) => fwmark.map(|_| 0),
        None => t
            .required(d, "port")
            .and_then(|f| f.int::<u16>(d, 0..=65_535)),
    };
    let protocol_field = t.get(d, "protocol");
    let protocol = match &protocol_field {
        Some(f) => f.keyword(d, PROTOCOLS),
        None => Some(Protocol::Tcp),
    };
    let lb_algo = match t.get(d, "lb_algo") {
        Some(f) => f
            .keyword(d, &algorithms())
            .inspect(|algo| check_dataplane(d, &f, *algo, global.dataplane)),
        None => Some(LbAlgo::Maglev),
    };
    // keepalived defaults to NAT; the XDP data plane's own mode is direct routing.
    let lb_kind = t
        .get(d, "lb_kind")
        .and_then(|f| f.keyword(d, LB_KINDS))
        .unwrap_or(LbKind::Dr);
    // The plane per-destination methods meet: "auto" runs IPVS for an IPVS scheduler.
    let plane = match (global.dataplane, lb_algo) {
        (Dataplane::Auto, Some(algo)) if !algo.is_maglev() => Dataplane::Ipvs,
        (dataplane, _) => dataplane,
    };
    if let (Some(f), Some(Protocol::Sctp)) = (&protocol_field, protocol) {
        if plane != Dataplane::Ipvs {
            let plane = xdp_may_run(plane);
            f.error(d, format!("an SCTP virtual server needs the IPVS data plane: {plane} the XDP program parses TCP and UDP only"))
                .hint("set dataplane = \"ipvs\" in [global] (IPVS balances SCTP), or use protocol = \"TCP\" or \"UDP\"");
        }
    }
    let tunnel = tunnel::own_tunnel(
        d,
        &mut t,
        "virtual server",
        lb_kind,
        Tunnel::default(),
        plane,
    );
    let inherited = Inherited::read(d, &mut t, None);
    let persistence_timeout = t
        .get(d, "persistence_timeout")
        .and_then(|f| persistence_timeout(d, &f));
    let persistence_prefix = t.get(d, "persistence_granularity").and_then(|f| {
        if persistence_timeout.is_none() {
            f.error(d, "`persistence_granularity` needs `persistence_timeout`")
                .hint("set persistence_timeout (e.g. 300): the granularity says which clients share a persistence entry");
            return None;
        }
        let v6 = address.as_ref().is_some_and(|(a, _)| a.is_ipv6());
        persistence_granularity(d, &f, v6)
    });
    let table_size_field = t.get(d, "table_size");
    let table_size = table_size_field
        .as_ref()
        .and_then(|f| table_size(d, f))
        .unwrap_or(DEFAULT_TABLE_SIZE);
    let inhibit_on_failure = t
        .get(d, "inhibit_on_failure")
        .and_then(|f| f.bool(d))
        .unwrap_or(false);
    let quorum_field = t.get(d, "quorum");
    let quorum = quorum_field
        .as_ref()
        .and_then(|f| f.int(d, 1..=i64::from(u32::MAX)))
        .unwrap_or(1);
    let hysteresis = t
        .get(d, "hysteresis")
        .and_then(|f| f.int(d, 0..=i64::from(u32::MAX)))
        .unwrap_or(0);
    let quorum_up = t.get(d, "quorum_up").and_then(|f| f.string(d));
    let quorum_down = t.get(d, "quorum_down").and_then(|f| f.string(d));
    let vip = match fwmark {
        Some(mark) => Some(fwmark_address(
            mark,
            matches.first().is_some_and(SocketAddr::is_ipv6),
        )),
        None => address.as_ref().map(|(a, _)| *a),
    };
    let (sorry_server, sorry_server_lb_kind, sorry_server_tunnel) = t
        .get(d, "sorry_server")
        .and_then(|f| sorry_server(d, &f, vip, port, (lb_kind, tunnel), plane))
        .map_or((None, lb_kind, tunnel), |(addr, port, kind, tunnel)| {
            (Some((addr, port)), kind, tunnel)
        });
    let alpha = t.get(d, "alpha").and_then(|f| f.bool(d)).unwrap_or(false);
    let smtp_alert = t.get(d, "smtp_alert").and_then(|f| f.bool(d));
    let interfaces = t
        .get(d, "interfaces")
        .map(|f| interfaces(d, &f))
        .unwrap_or_default();
    let snat_address = t.get(d, "snat_address").and_then(|f| {
        let addr = ip(d, &f)?;
        if lb_kind != LbKind::Nat {
            f.error(d, "snat_address applies to NAT only")
                .hint("set lb_kind = \"NAT\", or remove snat_address");
            return None;
        }
        if let Some(vip) = vip {
            check_family(d, &f, "snat_address", vip, addr, lb_kind);
        }
        Some(addr)
    });

    let announce_field = t.get(d, "announce");
    let announce = announce_field
        .as_ref()
        .and_then(|f| f.keyword(d, ANNOUNCES))
        .unwrap_or_default();
    if let Some(f) = &announce_field {
        if announce == Announce::Bgp && lb_kind == LbKind::Nat && snat_address.is_none() {
            f.error(d, "a plain NAT service cannot be announced by BGP")
                .hint("in a BGP tier replies must return through the node that translated them: use full-NAT (snat_address = this node's address) or DR/TUN");
        }
    }

    let context = RealContext {
        address: vip,
        port,
        lb_kind,
        tunnel,
        dataplane: plane,
        inhibit_on_failure,
        inherited: &inherited,
        known,
    };
    let mut reals = Vec::new();
    let mut real_facts = Vec::new();
    let entries = t
        .get(d, "real_server")
        .map(|f| f.labelled_tables(d, "virtual_server.real_server", label));
    for table in entries.unwrap_or_default() {
        let (real, facts) = real::decode(d, table, &context);
        reals.extend(real);
        real_facts.push(facts);
    }
    real::unique(d, &real_facts);
    if let Some(f) = &announce_field {
        let nat_real = reals.iter().any(|r| r.lb_kind == LbKind::Nat)
            || (sorry_server.is_some() && sorry_server_lb_kind == LbKind::Nat);
        if announce == Announce::Bgp && lb_kind != LbKind::Nat && nat_real {
            f.error(d, "a service with a real or sorry server reached by plain NAT cannot be announced by BGP")
                .hint("in a BGP tier replies must return through the node that translated them: reach every real server by DR or TUN, or make the virtual server full-NAT (lb_kind = \"NAT\", snat_address = this node's address)");
        }
    }
    if real_facts.is_empty() {
        d.warning(t.path(), t.span(), "no real_server: nothing to balance to")
            .hint("add [[virtual_server.real_server]] entries");
    }
    if lb_algo.is_some_and(LbAlgo::is_maglev) {
        check_table_size(d, &t, table_size_field.as_ref(), table_size, &real_facts);
    } else if let Some(f) = &table_size_field {
        f.warning(d, "ignored: only maglev and maglev_src use a Maglev table");
    }
    if let Some(f) = &quorum_field {
        check_quorum(d, f, quorum, &real_facts);
    }
    t.finish(d);

    let facts = ServerFacts {
        address: address
            .as_ref()
            .map(|(a, f)| (*a, f.path().clone(), f.span())),
        service: match (vip, port, protocol) {
            (Some(a), Some(p), Some(proto)) => Some((a, p, proto)),
            _ => None,
        },
        announce_bgp: announce_field
            .as_ref()
            .filter(|_| announce == Announce::Bgp)
            .map(|f| (f.path().clone(), f.span())),
        has_interfaces: !interfaces.is_empty(),
        matches: match (&match_field, protocol) {
            (Some(f), Some(proto)) => Some((
                matches.iter().map(|m| (m.ip(), m.port(), proto)).collect(),
                f.path().clone(),
                f.span(),
            )),
            _ => None,
        },
    };
    let (Some(address), Some(port), Some(protocol), Some(lb_algo)) = (vip, port, protocol, lb_algo)
    else {
        return (None, facts);
    };
    if d.error_count() != errors_before {
        return (None, facts);
    }
    let server = VirtualServer {
        address,
        port,
        fwmark,
        matches,
        protocol,
        lb_algo,
        lb_kind,
        delay_loop: inherited.delay_loop,
        persistence_timeout,
        persistence_prefix,
        table_size,
        inhibit_on_failure,
        quorum,
        hysteresis,
        quorum_up,
        quorum_down,
        sorry_server,
        sorry_server_lb_kind,
        tunnel,
        sorry_server_tunnel,
        virtualhost: inherited.virtualhost,
        alpha,
        interfaces,
        snat_address,
        announce,
        smtp_alert,
        real_servers: reals,
    };
    (Some(server), facts)
}

/// IPVS's name for mark `mark` (the address of its persistence templates): `0.0.0.N`,
/// or `0:N::` for an IPv6 service.
pub fn fwmark_address(mark: u32, ipv6: bool) -> IpAddr {
    if ipv6 {
        let mut b = [0u8; 16];
        b[..4].copy_from_slice(&mark.to_be_bytes());
        IpAddr::from(b)
    } else {
        IpAddr::from(std::net::Ipv4Addr::from(mark))
    }
}

/// `match = ["ADDR:PORT", ...]`: one family, each once.
fn match_list(d: &mut Decoder<'_>, f: &Field<'_, '_>) -> Vec<SocketAddr> {
    let mut list: Vec<SocketAddr> = Vec::new();
    let Some(items) = f.array(d) else {
        return list;
    };
    if items.is_empty() {
        f.error(d, "match lists no address")
            .hint("e.g. match = [\"198.18.0.100:80\", \"198.18.0.100:443\"]");
    }
    for item in items {
        let Some(text) = item.str(d) else { continue };
        let Ok(sa) = text.trim().parse::<SocketAddr>() else {
            item.error(d, format!("`{text}` is not ADDRESS:PORT"))
                .hint("e.g. \"198.18.0.100:443\" or \"[2001:db8::100]:443\"");
            continue;
        };
        if list.contains(&sa) {
            item.error(d, format!("`{text}` is listed twice"));
        } else if list.first().is_some_and(|a| a.is_ipv4() != sa.is_ipv4()) {
            item.error(
                d,
                format!("`{text}` is not of the family of the first entry"),
            )
            .hint("one fwmark virtual server matches one family: write another for the other");
        } else {
            list.push(sa);
        }
    }
    list
}

/// An IP address, with a hint when the port was written along with it.
pub(super) fn ip(d: &mut Decoder<'_>, f: &Field<'_, '_>) -> Option<IpAddr> {
    let text = f.str(d)?;
    if let Ok(addr) = text.trim().parse() {
        return Some(addr);
    }
    let with_port =
        text.trim().parse::<SocketAddr>().is_ok() || text.split_whitespace().count() == 2;
    let hint = if with_port {
        "write the port separately, e.g. address = \"198.18.0.100\" and port = 443"
    } else {
        "e.g. \"198.18.0.100\" or \"2001:db8::100\""
    };
    f.error(d, format!("`{text}` is not an IP address"))
        .hint(hint);
    None
}

/// Whether `lb_kind` can carry traffic for a virtual server at `vip` to `real`: DR and
/// NAT stay within one family; a tunnel may carry IPv4 over IPv6, not the reverse.
pub(super) fn check_family(
    d: &mut Decoder<'_>,
    f: &Field<'_, '_>,
    what: &str,
    vip: IpAddr,
    real: IpAddr,
    lb_kind: LbKind,
) {
    let (vs_family, real_family) = (AddressFamily::of(&vip), AddressFamily::of(&real));
    if vs_family == real_family {
        return;
    }
    let message = format!("{real_family} {what} in an {vs_family} virtual server");
    match lb_kind {
        LbKind::Tun if vs_family == AddressFamily::V4 => {}
        LbKind::Tun => {
            f.error(d, message)
                .hint("IPv6 traffic cannot be tunnelled to an IPv4 address; use an IPv6 address");
        }
        LbKind::Dr | LbKind::Nat => {
            let kind = if lb_kind == LbKind::Dr { "DR" } else { "NAT" };
            f.error(d, message).hint(format!(
                "{kind} keeps the packet's family: use an {vs_family} address, or lb_kind = \"TUN\" (which may tunnel IPv4 to IPv6)"
            ));
        }
    }
}

/// `maglev`, `maglev_src` and keepalived's IPVS schedulers.
fn algorithms() -> Vec<(&'static str, LbAlgo)> {
    let mut algos = vec![
        ("maglev", LbAlgo::Maglev),
        ("maglev_src", LbAlgo::MaglevSrc),
    ];
    algos.extend(LbAlgo::IPVS_SCHEDULERS.map(|name| (name, LbAlgo::Ipvs(name))));
    algos
}

/// IPVS schedulers need the IPVS data plane; Maglev maps onto IPVS (`mh`, `sh`).
fn check_dataplane(d: &mut Decoder<'_>, f: &Field<'_, '_>, algo: LbAlgo, dataplane: Dataplane) {
    if algo.is_maglev() {
        return;
    }
    let name = algo.name();
    match dataplane {
        Dataplane::Ipvs => {}
        Dataplane::Xdp => {
            f.error(
                d,
                format!("`{name}` is an IPVS scheduler, and the dataplane is xdp"),
            )
            .hint(MAGLEV_HINT);
        }
        Dataplane::Auto => {
            f.warning(
                d,
                format!(
                    "`{name}` is an IPVS scheduler: with dataplane = \"auto\" the daemon runs on IPVS"
                ),
            )
            .hint(MAGLEV_HINT);
        }
    }
}

/// keepalived's `persistence_granularity` as a prefix length: an IPv4 netmask
/// (`"255.255.255.0"`) or a prefix length (`24`, `"/24"`; IPv6 only this way).
fn persistence_granularity(d: &mut Decoder<'_>, f: &Field<'_, '_>, v6: bool) -> Option<u8> {
    let max: u8 = if v6 { 128 } else { 32 };
    let hint = if v6 {
        "a prefix length from 1 to 128, e.g. 64"
    } else {
        "a netmask such as \"255.255.255.0\" or a prefix length from 1 to 32, e.g. 24"
    };
    let prefix = match f.number_text() {
        Some(_) => f.int::<u8>(d, 1..=i64::from(max))?,
        None => {
            let text = f.str(d)?;
            let parsed = match text.strip_prefix('/').unwrap_or(text).parse::<u8>() {
                Ok(n) => Some(n),
                Err(_) if !v6 => text
                    .parse::<std::net::Ipv4Addr>()
                    .ok()
                    .map(u32::from)
                    .filter(|m| m.leading_ones() + m.trailing_zeros() == 32)
                    .map(|m| m.leading_ones() as u8),
                Err(_) => None,
            };
            match parsed.filter(|p| (1..=max).contains(p)) {
                Some(p) => p,
                None => {
                    f.error(d, format!("`{text}` is not a persistence granularity"))
                        .hint(hint);
                    return None;
                }
            }
        }
    };
    Some(prefix)
}

/// Whole seconds (IPVS counts persistence in seconds) up to keepalived's 31 days.
fn persistence_timeout(d: &mut Decoder<'_>, f: &Field<'_, '_>) -> Option<Duration> {
    let timeout = f.duration_in(d, Duration::from_secs(1)..=PERSISTENCE_TIMEOUT_MAX)?;
    if timeout.subsec_nanos() != 0 {
        f.error(
            d,
            format!("persistence is kept in whole seconds, got {timeout:?}"),
        );
        return None;
    }
    Some(timeout)
}

fn table_size(d: &mut Decoder<'_>, f: &Field<'_, '_>) -> Option<u32> {
    let size = f.int::<u32>(d, 0..=i64::from(u32::MAX))?;
    if TABLE_SIZES.contains(&size) {
        return Some(size);
    }
    let sizes: Vec<String> = TABLE_SIZES.iter().map(u32::to_string).collect();
    f.error(
        d,
        format!("must be one of {}, got {size}", sizes.join(", ")),
    )
    .hint("a prime Maglev table size, ideally above 100 × the number of real servers");
    None
}

/// The real servers that take traffic must fit the Maglev table, ideally 100 times over.
fn check_table_size(
    d: &mut Decoder<'_>,
    t: &Table<'_, '_>,
    field: Option<&Field<'_, '_>>,
    size: u32,
    reals: &[RealFacts],
) {
    let active = reals.iter().filter(|r| r.weight > 0).count();
    let (path, span) = match field {
        Some(f) => (f.path().clone(), f.span()),
        None => (t.path().clone(), t.span()),
    };
    let fitting = TABLE_SIZES
        .iter()
        .find(|&&s| s as usize >= active.saturating_mul(100));
    let hint = fitting.map(|s| format!("set table_size = {s} or more"));
    if active >= size as usize {
        d.error(
            &path,
            span,
            format!(
                "{active} real servers with weight > 0 do not fit a Maglev table of {size} slots"
            ),
        )
        .maybe_hint(hint.or(Some("use fewer real servers".into())));
    } else if active.saturating_mul(100) > size as usize {
        d.warning(
            &path,
            span,
            format!("a Maglev table of {size} slots balances {active} real servers unevenly"),
        )
        .maybe_hint(hint);
    }
}

/// A quorum above the total weight can never be reached (unless a MISC_CHECK sets
/// weights dynamically).
fn check_quorum(d: &mut Decoder<'_>, f: &Field<'_, '_>, quorum: u32, reals: &[RealFacts]) {
    if reals.iter().any(|r| r.dynamic_weight) {
        return;
    }
    let total: u64 = reals.iter().map(|r| u64::from(r.weight)).sum();
    if u64::from(quorum) > total {
        f.warning(
            d,
            format!("quorum {quorum} is above the total weight {total} of the real servers: it can never be reached"),
        );
    }
}

/// `sorry_server = { address = …, port = …, lb_kind = … }`: its address, port and
/// forwarding method.
fn sorry_server(
    d: &mut Decoder<'_>,
    f: &Field<'_, '_>,
    vip: Option<IpAddr>,
    vs_port: Option<u16>,
    (vs_kind, vs_tunnel): (LbKind, Tunnel),
    dataplane: Dataplane,
) -> Option<(IpAddr, u16, LbKind, Tunnel)> {
    let mut t = f.table(d)?.with_renames(&[(
        "lvs_method",
        "keepalived's `sorry_server_lvs_method` is `lb_kind` here",
    )]);
    let lb_kind = own_lb_kind(d, &mut t, "sorry server", vs_kind, dataplane);
    let tunnel = tunnel::own_tunnel(d, &mut t, "sorry server", lb_kind, vs_tunnel, dataplane);
    let address = t.required(d, "address").and_then(|f| {
        let addr = ip(d, &f)?;
        if let Some(vip) = vip {
            check_family(d, &f, "sorry server", vip, addr, lb_kind);
        }
        Some(addr)
    });
    let port = match t.get(d, "port") {
        Some(f) => f.int(d, 1..=65_535),
        None => vs_port,
    };
    t.finish(d);
    Some((address?, port?, lb_kind, tunnel))
}

/// A real or sorry server's own `lb_kind` (keepalived's `lvs_method` inside
/// `real_server`, `sorry_server_lvs_method`), else the virtual server's. IPVS keeps a
/// forwarding method per destination; the XDP program forwards every destination of a
/// service the same way, so there one differing from the virtual server's is refused.
pub(super) fn own_lb_kind(
    d: &mut Decoder<'_>,
    t: &mut Table<'_, '_>,
    what: &str,
    vs_kind: LbKind,
    dataplane: Dataplane,
) -> LbKind {
    let Some(f) = t.get(d, "lb_kind") else {
        return vs_kind;
    };
    let Some(kind) = f.keyword(d, LB_KINDS) else {
        return vs_kind;
    };
    if kind != vs_kind && dataplane != Dataplane::Ipvs {
        let (own, vs) = (kind.name(), vs_kind.name());
        let plane = xdp_may_run(dataplane);
        f.error(
            d,
            format!("a {what} reached by {own} in a {vs} virtual server needs the IPVS data plane: {plane} the XDP program forwards every real server of a virtual server the same way"),
        )
        .hint(format!("write one [[virtual_server]] per forwarding method (this {what} in one with lb_kind = \"{own}\"), or set dataplane = \"ipvs\" in [global]"));
    }
    kind
}

/// How a refusal names a data plane other than IPVS: where XDP runs, or may.
pub(super) fn xdp_may_run(dataplane: Dataplane) -> &'static str {
    match dataplane {
        Dataplane::Auto => "dataplane = \"auto\" may run XDP, and",
        _ => "on dataplane = \"xdp\"",
    }
}

pub(super) fn interfaces(d: &mut Decoder<'_>, f: &Field<'_, '_>) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for item in f.array(d).unwrap_or_default() {
        let Some(name) = item.str(d) else { continue };
        if !valid_ifname(name) {
            item.error(d, format!("`{name}` is not a valid interface name"))
                .hint("1 to 15 characters, without `/`, `:` or spaces");
        } else if names.iter().any(|n| n == name) {
            item.error(d, format!("`{name}` is listed twice"));
        } else {
            names.push(name.to_owned());
        }
    }
    names
}
