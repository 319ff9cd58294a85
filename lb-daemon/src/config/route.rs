//! `virtual_routes` / `static_routes` and `virtual_rules` / `static_rules` lines in
//! keepalived 2.2.7's syntax (`vrrp_iproute.c` `alloc_route`, `vrrp_iprule.c`
//! `alloc_rule`, which follow `ip route` / `ip rule`), as plain data.
//!
//! Routes: `[to] [TYPE] DEST|default [src ADDR] [via|gw [inet|inet6] ADDR] [from PREFIX]
//! [dev|oif IF] [table N] [metric|priority|preference N] [scope S] [protocol P] [tos N]
//! [onlink] [mtu [lock] N] [advmss [lock] N] [hoplimit N] [initcwnd N] [initrwnd N]
//! [rtt [lock] T] [rttvar [lock] T] [rto_min [lock] T] [reordering [lock] N] [window N]
//! [cwnd [lock] N] [ssthresh [lock] N] [features ecn] [quickack 0|1] [congctl [lock] NAME]
//! [fastopen_no_cookie 0|1] [realms [FROM/]TO] [expires N] [pref low|medium|high|N]
//! [inet|inet6] [add|prepend] [no_track] [track_group G] [nexthop NH [nexthop NH ...]]`,
//! where `NH` is
//! `[via [inet|inet6] ADDR] [dev IF] [weight 1-256] [onlink] [realms [FROM/]TO]` (a
//! multipath route; the deprecated `via A or B` is two next hops, as keepalived reads it).
//! Times `T` are keepalived's (`get_time_rtt`): a bare number is in the kernel's unit
//! (1/8 ms for rtt, 1/4 ms for rttvar, ms for rto_min), `N ms`/`N s` (`1.5s`) are
//! converted, and the result is clamped to 200 ms .. 120 s as keepalived does.
//!
//! Rules: `[from PREFIX|all] [to PREFIX|all] [not] [preference|priority|order N] [tos N]
//! [fwmark N[/MASK]] [dev|iif IF] [oif IF] [suppress_prefixlength N]
//! [suppress_ifgroup N] [protocol P] [realms [FROM/]TO] [tunnel-id N] [uidrange A-B]
//! [ipproto P] [sport N[-M]] [dport N[-M]] [inet|inet6] [no_track] [track_group G]` and
//! one action:
//! `table|lookup N`, `goto N`, `nop`, `blackhole`, `unreachable`, `prohibit` (with or
//! without `type`) or `l3mdev`.
//!
//! As keepalived, what is not marked `no_track` gets protocol 18 (`keepalived`), and a rule
//! without a preference gets one counting down from 16384 (the decoder assigns it, with a
//! keepalived-like warning). The family is the addresses' (IPv4 when there is none).
//! `track_group G` is read on every line; the decoder accepts it on static ones only, as
//! keepalived does.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// keepalived's `RTPROT_KEEPALIVED`.
pub const RTPROT_KEEPALIVED: u8 = 18;
/// keepalived's `RULE_START_PRIORITY`: rules without a preference count down from here.
pub const RULE_START_PRIORITY: u32 = 16_384;

/// An address with its prefix length (`10.0.0.0/8`; a bare address is a host prefix).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Prefix {
    pub addr: IpAddr,
    pub len: u8,
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// Route metrics (RTAX_*) keepalived accepts, in the kernel's units.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Metric {
    Mtu(u32),
    Advmss(u32),
    Hoplimit(u32),
    Initcwnd(u32),
    Initrwnd(u32),
    /// 1/8 ms.
    Rtt(u32),
    /// 1/4 ms.
    Rttvar(u32),
    /// ms.
    RtoMin(u32),
    Reordering(u32),
    Window(u32),
    Cwnd(u32),
    Ssthresh(u32),
    /// RTAX_FEATURE_* bits (keepalived accepts `ecn`, bit 0).
    Features(u32),
    Quickack(u32),
    FastopenNoCookie(u32),
    /// `congctl`: the TCP congestion control algorithm's name.
    Congctl(String),
}

/// `realms [FROM/]TO`: routing realms (0-255, keepalived's range), sent as one RTA_FLOW /
/// FRA_FLOW word, FROM in the high 16 bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Realms {
    pub from: u16,
    pub to: u16,
}

/// One route line.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IpRoute {
    /// As written (logs, status).
    pub text: String,
    pub v6: bool,
    /// RTN_* (1 unicast, 2 local, 3 broadcast, 4 anycast, 5 multicast, 6 blackhole,
    /// 7 unreachable, 8 prohibit, 9 throw, 10 nat).
    pub kind: u8,
    pub dst: Prefix,
    /// `src`: the preferred source address.
    pub src: Option<IpAddr>,
    pub via: Option<IpAddr>,
    /// `from`: IPv6 source prefix.
    pub from: Option<Prefix>,
    pub dev: Option<String>,
    pub table: Option<u32>,
    pub metric: Option<u32>,
    /// RT_SCOPE_*: 0 universe (global), 200 site, 253 link, 254 host, 255 nowhere.
    pub scope: Option<u8>,
    pub protocol: u8,
    pub tos: Option<u8>,
    pub onlink: bool,
    /// Locked metrics are the `lock` flag bits (1 << RTAX).
    pub metrics: Vec<Metric>,
    pub locks: u32,
    pub realms: Option<Realms>,
    /// `expires` (IPv6 only): seconds until the kernel removes the route.
    pub expires: Option<u32>,
    /// `pref` (IPv6 only): the router preference, ICMPV6_ROUTER_PREF_* (low 3, medium 0,
    /// high 1).
    pub pref: Option<u8>,
    /// `nexthop ...` (or `via A or B`): a multipath route; empty for a single path.
    pub nexthops: Vec<NextHop>,
    /// `no_track`: keepalived neither watches nor restores the route.
    pub no_track: bool,
    /// `track_group G` (static routes): G's instances track `dev`.
    pub track_group: Option<String>,
}

/// One path of a multipath route.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct NextHop {
    pub via: Option<IpAddr>,
    pub dev: Option<String>,
    /// `weight` as written (1-256); the kernel's `rtnh_hops` is one less.
    pub weight: Option<u16>,
    pub onlink: bool,
    pub realms: Option<Realms>,
}

/// What a rule does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RuleAction {
    Table(u32),
    Goto(u32),
    Nop,
    Blackhole,
    Unreachable,
    Prohibit,
}

/// One rule line.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IpRule {
    pub text: String,
    pub v6: bool,
    pub from: Option<Prefix>,
    pub to: Option<Prefix>,
    pub invert: bool,
    /// `None` until the decoder assigns keepalived's automatic preference.
    pub priority: Option<u32>,
    pub tos: Option<u8>,
    pub fwmark: Option<(u32, Option<u32>)>,
    pub iif: Option<String>,
    pub oif: Option<String>,
    pub suppress_prefixlength: Option<u32>,
    pub suppress_ifgroup: Option<u32>,
    pub protocol: u8,
    pub action: RuleAction,
    /// `realms` (IPv4 only, with a `table` action).
    pub realms: Option<Realms>,
    pub tunnel_id: Option<u64>,
    pub uidrange: Option<(u32, u32)>,
    /// `l3mdev`: look up the table of the packet's L3 master device (VRF); the action is
    /// then "to table" without a table number.
    pub l3mdev: bool,
    pub ipproto: Option<u8>,
    pub sport: Option<(u16, u16)>,
    pub dport: Option<(u16, u16)>,
    /// `no_track`: keepalived neither watches nor restores the rule.
    pub no_track: bool,
    /// `track_group G` (static rules): G's instances track `iif`.
    pub track_group: Option<String>,
}

/// Why a line is refused; the message says what was expected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("`{0}` needs a value")]
    Missing(String),
    #[error("`{value}` is not a valid {what}")]
    Bad { what: &'static str, value: String },
    #[error("unknown keyword `{0}`")]
    Unknown(String),
    #[error("`{0}` is not supported by lb-daemon: {why}", why = why_unsupported(.0))]
    Unsupported(String),
    #[error("`{0}` is IPv4 only")]
    V4Only(&'static str),
    #[error("`realms` needs a `table` action")]
    RealmsWithoutTable,
    #[error("`l3mdev` is the rule's action: it cannot go with `table`, `goto`, `nop` or a type")]
    L3mdevWithAction,
    #[error("`{what} {start}-{end}`: the range's start is above its end")]
    BackwardRange {
        what: &'static str,
        start: u64,
        end: u64,
    },
    #[error("IPv4 and IPv6 addresses mixed")]
    MixedFamilies,
    #[error("no destination")]
    NoDestination,
    #[error("no action (table, goto, nop, blackhole, unreachable or prohibit)")]
    NoAction,
    #[error("more than one action")]
    TwoActions,
    #[error("track_group written twice")]
    TwoTrackGroups,
    #[error("goto {target} needs a preference below it")]
    BadGoto { target: u32 },
    #[error("`{0}` is IPv6 only")]
    V6Only(&'static str),
    #[error("`or` needs a `via` gateway before it")]
    OrWithoutVia,
    #[error("next hops given twice (`or` and `nexthop`, or `or` twice)")]
    TwoMultipaths,
    #[error("next hop {0} has neither `via` nor `dev`")]
    EmptyNextHop(usize),
}

struct Words<'a> {
    words: Vec<&'a str>,
    i: usize,
}

impl<'a> Words<'a> {
    fn new(s: &'a str) -> Self {
        Words {
            words: s.split_whitespace().collect(),
            i: 0,
        }
    }

    fn next(&mut self) -> Option<&'a str> {
        let w = self.words.get(self.i).copied();
        self.i += 1;
        w
    }

    fn value(&mut self, key: &str) -> Result<&'a str, RouteError> {
        self.next()
            .ok_or_else(|| RouteError::Missing(key.to_owned()))
    }
}

fn bad(what: &'static str, value: &str) -> RouteError {
    RouteError::Bad {
        what,
        value: value.to_owned(),
    }
}

fn number<T: FromStr>(what: &'static str, s: &str) -> Result<T, RouteError> {
    let parsed = if let Some(hex) = s.strip_prefix("0x") {
        u64::from_str_radix(hex, 16)
            .ok()
            .and_then(|v| v.to_string().parse().ok())
    } else {
        s.parse().ok()
    };
    parsed.ok_or_else(|| bad(what, s))
}

/// `ADDR[/LEN]`; `default`/`all` when `any` is allowed (prefix length 0, family unknown).
fn prefix(s: &str, any: bool) -> Result<Option<Prefix>, RouteError> {
    if any && matches!(s, "default" | "all" | "any") {
        return Ok(None);
    }
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let addr: IpAddr = addr.parse().map_err(|_| bad("address or prefix", s))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len = match len {
        Some(l) => l
            .parse::<u8>()
            .ok()
            .filter(|l| *l <= max)
            .ok_or_else(|| bad("prefix length", l))?,
        None => max,
    };
    Ok(Some(Prefix { addr, len }))
}

/// The family seen so far: `None` until an address or `inet`/`inet6` says.
#[derive(Default)]
struct Family(Option<bool>);

impl Family {
    fn see(&mut self, v6: bool) -> Result<(), RouteError> {
        match self.0 {
            Some(f) if f != v6 => Err(RouteError::MixedFamilies),
            _ => {
                self.0 = Some(v6);
                Ok(())
            }
        }
    }

    fn addr(&mut self, a: IpAddr) -> Result<(), RouteError> {
        self.see(a.is_ipv6())
    }
}

const ROUTE_TYPES: &[(&str, u8)] = &[
    ("unicast", 1),
    ("local", 2),
    ("broadcast", 3),
    ("anycast", 4),
    ("multicast", 5),
    ("blackhole", 6),
    ("unreachable", 7),
    ("prohibit", 8),
    ("throw", 9),
    ("nat", 10),
];

fn table_id(s: &str) -> Result<u32, RouteError> {
    match s {
        "default" => Ok(253),
        "main" => Ok(254),
        "local" => Ok(255),
        _ => number("routing table (a number, main, local or default)", s),
    }
}

fn scope(s: &str) -> Result<u8, RouteError> {
    match s {
        "global" | "universe" => Ok(0),
        "site" => Ok(200),
        "link" => Ok(253),
        "host" => Ok(254),
        "nowhere" => Ok(255),
        _ => number("scope (global, site, link, host, nowhere or a number)", s),
    }
}

fn protocol(s: &str) -> Result<u8, RouteError> {
    match s {
        "redirect" => Ok(1),
        "kernel" => Ok(2),
        "boot" => Ok(3),
        "static" => Ok(4),
        "keepalived" => Ok(RTPROT_KEEPALIVED),
        "bird" => Ok(12),
        _ => number(
            "protocol (kernel, boot, static, keepalived, … or a number)",
            s,
        ),
    }
}

const UNSUPPORTED_ROUTE: &[&str] = &["encap", "ttl-propagate", "append", "vrf", "as"];

/// Why a keepalived keyword is refused, in one sentence a user can act on.
fn why_unsupported(keyword: &str) -> &'static str {
    match keyword {
        "encap" => "lightweight tunnel encapsulation (MPLS, seg6, BPF, ip6) is a router's job; a load balancer's VIP routes forward plain IP, so write the route without it",
        "ttl-propagate" => "it sets MPLS TTL propagation, and MPLS routes (`encap mpls`) are not supported; remove it",
        "as" => "`as [to]` is the NAT route type removed from Linux in 2.6 (keepalived refuses it too); use nftables NAT",
        "vrf" => "a route in a VRF is a route in the VRF's table: write `table N` with the VRF's table (`ip -d link show type vrf` shows it)",
        "append" => "`append` adds a second route with the same key, which the daemon could not tell apart to remove; use the default `prepend` (or `add`)",
        _ => "remove it",
    }
}

/// The RTAX_* number of a metric keepalived lets be written `KEY lock VALUE`.
fn lock_bit(key: &str) -> Option<u32> {
    Some(match key {
        "mtu" => 2,
        "rtt" => 4,
        "rttvar" => 5,
        "ssthresh" => 6,
        "cwnd" => 7,
        "advmss" => 8,
        "reordering" => 9,
        "rto_min" => 13,
        "congctl" => 16,
        _ => return None,
    })
}

/// `0` or `1` (keepalived's `get_u32(.., 1, ..)`).
fn flag(what: &'static str, s: &str) -> Result<u32, RouteError> {
    number::<u32>(what, s)
        .ok()
        .filter(|n| *n <= 1)
        .ok_or_else(|| bad(what, s))
}

/// A route metric; `key` consumed, its `lock` sets the metric's bit in `locks`.
fn metric(key: &str, w: &mut Words<'_>, locks: &mut u32) -> Result<Metric, RouteError> {
    let mut value = w.value(key)?;
    if let Some(rtax) = lock_bit(key) {
        if value == "lock" {
            *locks |= 1 << rtax;
            value = w.value(key)?;
        }
    }
    let n = || number::<u32>("number", value);
    Ok(match key {
        "mtu" => Metric::Mtu(n()?),
        "advmss" => Metric::Advmss(n()?),
        "hoplimit" => Metric::Hoplimit(n()?.min(255)),
        "initcwnd" => Metric::Initcwnd(n()?),
        "initrwnd" => Metric::Initrwnd(n()?),
        "rtt" => Metric::Rtt(rtt_time("rtt (N, N ms or N s)", value, 8)?),
        "rttvar" => Metric::Rttvar(rtt_time("rttvar (N, N ms or N s)", value, 4)?),
        "rto_min" => Metric::RtoMin(rtt_time("rto_min (N, N ms or N s)", value, 1)?),
        "reordering" => Metric::Reordering(n()?),
        "window" => Metric::Window(n()?),
        "cwnd" => Metric::Cwnd(n()?),
        "ssthresh" => Metric::Ssthresh(n()?),
        "quickack" => Metric::Quickack(flag("quickack (0 or 1)", value)?),
        "fastopen_no_cookie" => {
            Metric::FastopenNoCookie(flag("fastopen_no_cookie (0 or 1)", value)?)
        }
        // RTAX_FEATURE_ECN; the kernel sets the other feature bits itself.
        "features" if value == "ecn" => Metric::Features(1),
        "features" => return Err(bad("feature (only `ecn` can be set)", value)),
        _ => Metric::Congctl(value.to_owned()),
    })
}

/// keepalived's RTT_MIN_MS / RTT_MAX_MS: the kernel's TCP_RTO_MIN and TCP_RTO_MAX.
const RTT_MIN_MS: u64 = 200;
const RTT_MAX_MS: u64 = 120_000;

/// keepalived's `get_time_rtt`: a bare number is in the kernel's unit (1/`unit` ms), `N ms`
/// and `N s` (up to 3 decimals, `1.5s`) are converted; the result is clamped to
/// 200 ms .. 120 s (keepalived logs and clamps too).
fn rtt_time(what: &'static str, s: &str, unit: u64) -> Result<u32, RouteError> {
    let lower = s.to_ascii_lowercase();
    // (digits, decimals allowed and ms per unit written; None: raw kernel units)
    let (num, shift, raw) = match lower.find('s') {
        Some(p) => {
            if !matches!(&lower[p..], "s" | "sec" | "secs") {
                return Err(bad(what, s));
            }
            match lower[..p].strip_suffix('m') {
                Some(ms) => (ms, 0, false),
                None => (&lower[..p], 3, false),
            }
        }
        None => (lower.as_str(), 0, true),
    };
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    let digits = |d: &str| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) || (!frac.is_empty() && !digits(frac)) || frac.len() > shift {
        return Err(bad(what, s));
    }
    let padded = format!("{int}{frac:0<shift$}");
    let value: u64 = padded.parse().map_err(|_| bad(what, s))?;
    if value > RTT_MAX_MS * unit {
        return Err(bad(what, s));
    }
    let value = if raw { value } else { value * unit };
    let clamped = value.clamp(RTT_MIN_MS * unit, RTT_MAX_MS * unit);
    u32::try_from(clamped).map_err(|_| bad(what, s))
}

/// One realm: a number 0-255 (keepalived's range) or iproute2's default name `cosmos` (0).
fn realm(s: &str, whole: &str) -> Result<u16, RouteError> {
    const WHAT: &str = "realms ([FROM/]TO, realms 0 to 255)";
    if s == "cosmos" {
        return Ok(0);
    }
    number::<u16>(WHAT, s)
        .ok()
        .filter(|r| *r <= 255)
        .ok_or_else(|| bad(WHAT, whole))
}

/// `realms [FROM/]TO` (keepalived's `get_realms`).
fn realms(s: &str) -> Result<Realms, RouteError> {
    Ok(match s.split_once('/') {
        Some((from, to)) => Realms {
            from: realm(from, s)?,
            to: realm(to, s)?,
        },
        None => Realms {
            from: 0,
            to: realm(s, s)?,
        },
    })
}

/// `realms` makes the route or rule IPv4 (keepalived).
fn realms_v4(fam: &mut Family) -> Result<(), RouteError> {
    fam.see(false).map_err(|_| RouteError::V4Only("realms"))
}

/// `expires` and `pref` make the route IPv6 (keepalived).
fn v6_only(fam: &mut Family, key: &'static str) -> Result<(), RouteError> {
    fam.see(true).map_err(|_| RouteError::V6Only(key))
}

/// `pref low|medium|high|N`: ICMPV6_ROUTER_PREF_*.
fn router_pref(s: &str) -> Result<u8, RouteError> {
    match s {
        "low" => Ok(3),
        "medium" => Ok(0),
        "high" => Ok(1),
        _ => number("pref (low, medium, high or 0 to 255)", s),
    }
}

/// `N` or `N-M` (a port or uid range); `what` names it in errors.
fn range<T>(what: &'static str, s: &str, single: bool) -> Result<(T, T), RouteError>
where
    T: FromStr + Copy + PartialOrd + Into<u64>,
{
    let (a, b) = match s.split_once('-') {
        Some((a, b)) => (number::<T>(what, a)?, number::<T>(what, b)?),
        None if single => {
            let a = number::<T>(what, s)?;
            (a, a)
        }
        None => return Err(bad(what, s)),
    };
    if a > b {
        return Err(RouteError::BackwardRange {
            what,
            start: a.into(),
            end: b.into(),
        });
    }
    Ok((a, b))
}

/// `ipproto`: a number or a name of /etc/protocols that a rule would match on.
fn ip_protocol(s: &str) -> Result<u8, RouteError> {
    const NAMES: &[(&str, u8)] = &[
        ("icmp", 1),
        ("igmp", 2),
        ("ipencap", 4),
        ("tcp", 6),
        ("udp", 17),
        ("ipv6", 41),
        ("gre", 47),
        ("esp", 50),
        ("ah", 51),
        ("ipv6-icmp", 58),
        ("icmpv6", 58),
        ("ospf", 89),
        ("vrrp", 112),
        ("l2tp", 115),
        ("sctp", 132),
        ("udplite", 136),
    ];
    match NAMES.iter().find(|(n, _)| n.eq_ignore_ascii_case(s)) {
        Some((_, p)) => Ok(*p),
        None => number("ipproto (tcp, udp, icmp, … or 0 to 255)", s),
    }
}

/// `via [inet|inet6] ADDR`'s address (`key` consumed).
fn gateway(w: &mut Words<'_>, key: &str, fam: &mut Family) -> Result<IpAddr, RouteError> {
    let mut v = w.value(key)?;
    if matches!(v, "inet" | "inet6") {
        fam.see(v == "inet6")?;
        v = w.value(key)?;
    }
    let a: IpAddr = v.parse().map_err(|_| bad("gateway address", v))?;
    fam.addr(a)?;
    Ok(a)
}

/// The next hops after a route's first `nexthop` (already consumed), to the end of the
/// line: keepalived's `parse_nexthops`.
fn nexthops(w: &mut Words<'_>, fam: &mut Family) -> Result<Vec<NextHop>, RouteError> {
    let mut hops = vec![NextHop::default()];
    while let Some(key) = w.next() {
        let Some(nh) = hops.last_mut() else { break };
        match key {
            "nexthop" => hops.push(NextHop::default()),
            "via" => nh.via = Some(gateway(w, key, fam)?),
            "dev" => nh.dev = Some(w.value(key)?.to_owned()),
            "weight" => {
                let v = w.value(key)?;
                let n: u16 = number("weight (1 to 256)", v)?;
                if !(1..=256).contains(&n) {
                    return Err(bad("weight (1 to 256)", v));
                }
                nh.weight = Some(n);
            }
            "onlink" => nh.onlink = true,
            "realms" => {
                nh.realms = Some(realms(w.value(key)?)?);
                realms_v4(fam)?;
            }
            "encap" | "as" => return Err(RouteError::Unsupported(key.to_owned())),
            k => return Err(RouteError::Unknown(k.to_owned())),
        }
    }
    if let Some(i) = hops.iter().position(|h| h.via.is_none() && h.dev.is_none()) {
        return Err(RouteError::EmptyNextHop(i + 1));
    }
    Ok(hops)
}

impl FromStr for IpRoute {
    type Err = RouteError;

    fn from_str(s: &str) -> Result<Self, RouteError> {
        let mut w = Words::new(s);
        let mut fam = Family::default();
        let mut r = IpRoute {
            text: s.split_whitespace().collect::<Vec<_>>().join(" "),
            v6: false,
            kind: 1,
            dst: Prefix {
                addr: IpAddr::from([0, 0, 0, 0]),
                len: 0,
            },
            src: None,
            via: None,
            from: None,
            dev: None,
            table: None,
            metric: None,
            scope: None,
            protocol: RTPROT_KEEPALIVED,
            tos: None,
            onlink: false,
            metrics: Vec::new(),
            locks: 0,
            nexthops: Vec::new(),
            realms: None,
            expires: None,
            pref: None,
            no_track: false,
            track_group: None,
        };
        let mut dst: Option<Option<Prefix>> = None;
        let mut protocol = None;
        let mut no_track = false;
        while let Some(key) = w.next() {
            match key {
                "inet" => fam.see(false)?,
                "inet6" => fam.see(true)?,
                "src" => {
                    let v = w.value(key)?;
                    let a: IpAddr = v.parse().map_err(|_| bad("source address", v))?;
                    fam.addr(a)?;
                    r.src = Some(a);
                }
                "via" | "gw" => r.via = Some(gateway(&mut w, key, &mut fam)?),
                "from" => {
                    let v = w.value(key)?;
                    let p = prefix(v, false)?.ok_or_else(|| bad("source prefix", v))?;
                    if p.addr.is_ipv4() {
                        return Err(RouteError::V6Only("from"));
                    }
                    fam.addr(p.addr)?;
                    r.from = Some(p);
                }
                "tos" | "dsfield" => r.tos = Some(number("TOS", w.value(key)?)?),
                "table" => r.table = Some(table_id(w.value(key)?)?),
                "protocol" => protocol = Some(self::protocol(w.value(key)?)?),
                "scope" => r.scope = Some(scope(w.value(key)?)?),
                "metric" | "priority" | "preference" => {
                    r.metric = Some(number("metric", w.value(key)?)?)
                }
                "dev" | "oif" => r.dev = Some(w.value(key)?.to_owned()),
                "onlink" => r.onlink = true,
                "mtu" | "advmss" | "hoplimit" | "initcwnd" | "initrwnd" | "rtt" | "rttvar"
                | "rto_min" | "reordering" | "window" | "cwnd" | "ssthresh" | "features"
                | "quickack" | "congctl" | "fastopen_no_cookie" => {
                    r.metrics.push(metric(key, &mut w, &mut r.locks)?)
                }
                "realms" => {
                    r.realms = Some(realms(w.value(key)?)?);
                    realms_v4(&mut fam)?;
                }
                "expires" => {
                    r.expires = Some(number("expires (seconds)", w.value(key)?)?);
                    v6_only(&mut fam, "expires")?;
                }
                "pref" => {
                    r.pref = Some(router_pref(w.value(key)?)?);
                    v6_only(&mut fam, "pref")?;
                }
                "add" | "prepend" => {}
                "no_track" => no_track = true,
                "track_group" => track_group(&mut r.track_group, w.value(key)?)?,
                // keepalived's deprecated alternative gateway: the written `via` and this
                // address become the route's two next hops.
                "or" => {
                    let v = w.value(key)?;
                    if !r.nexthops.is_empty() {
                        return Err(RouteError::TwoMultipaths);
                    }
                    let second: IpAddr = v.parse().map_err(|_| bad("gateway address", v))?;
                    fam.addr(second)?;
                    let first = r.via.take().ok_or(RouteError::OrWithoutVia)?;
                    r.nexthops = [first, second]
                        .into_iter()
                        .map(|a| NextHop {
                            via: Some(a),
                            ..NextHop::default()
                        })
                        .collect();
                }
                // Next hops take the rest of the line, as in `ip route`.
                "nexthop" => {
                    if !r.nexthops.is_empty() {
                        return Err(RouteError::TwoMultipaths);
                    }
                    r.nexthops = nexthops(&mut w, &mut fam)?;
                }
                k if UNSUPPORTED_ROUTE.contains(&k) => {
                    return Err(RouteError::Unsupported(k.to_owned()))
                }
                mut k => {
                    if k == "to" {
                        k = w.value(key)?;
                    }
                    if let Some((_, t)) = ROUTE_TYPES.iter().find(|(n, _)| *n == k) {
                        r.kind = *t;
                        k = w.value(k)?;
                    }
                    let is_addr = k.contains(['.', ':'])
                        || k.starts_with(|c: char| c.is_ascii_digit())
                        || matches!(k, "default" | "all" | "any");
                    if !is_addr {
                        return Err(RouteError::Unknown(k.to_owned()));
                    }
                    let p = prefix(k, true)?;
                    if let Some(p) = p {
                        fam.addr(p.addr)?;
                    }
                    dst = Some(p);
                }
            }
        }
        let dst = dst.ok_or(RouteError::NoDestination)?;
        r.v6 = fam.0.unwrap_or(false);
        r.dst = dst.unwrap_or(Prefix {
            addr: if r.v6 {
                IpAddr::from([0u16; 8])
            } else {
                IpAddr::from([0u8; 4])
            },
            len: 0,
        });
        r.no_track = no_track;
        // keepalived (`netlink_route`): the written protocol only with no_track, else 18.
        r.protocol = match (no_track, protocol) {
            (true, Some(p)) => p,
            _ => RTPROT_KEEPALIVED,
        };
        Ok(r)
    }
}

impl FromStr for IpRule {
    type Err = RouteError;

    fn from_str(s: &str) -> Result<Self, RouteError> {
        let mut w = Words::new(s);
        let mut fam = Family::default();
        let mut r = IpRule {
            text: s.split_whitespace().collect::<Vec<_>>().join(" "),
            v6: false,
            from: None,
            to: None,
            invert: false,
            priority: None,
            tos: None,
            fwmark: None,
            iif: None,
            oif: None,
            suppress_prefixlength: None,
            suppress_ifgroup: None,
            protocol: RTPROT_KEEPALIVED,
            action: RuleAction::Nop,
            realms: None,
            tunnel_id: None,
            uidrange: None,
            l3mdev: false,
            ipproto: None,
            sport: None,
            dport: None,
            no_track: false,
            track_group: None,
        };
        let mut action = None;
        let mut protocol = None;
        let mut no_track = false;
        let mut set_action = |a: RuleAction| match action.replace(a) {
            Some(_) => Err(RouteError::TwoActions),
            None => Ok(()),
        };
        while let Some(key) = w.next() {
            match key {
                "inet" => fam.see(false)?,
                "inet6" => fam.see(true)?,
                "from" | "to" => {
                    let p = prefix(w.value(key)?, true)?;
                    if let Some(p) = p {
                        fam.addr(p.addr)?;
                    }
                    if key == "from" {
                        r.from = p;
                    } else {
                        r.to = p;
                    }
                }
                "table" | "lookup" => set_action(RuleAction::Table(table_id(w.value(key)?)?))?,
                "not" => r.invert = true,
                "preference" | "order" | "priority" | "pref" => {
                    r.priority = Some(number("preference", w.value(key)?)?)
                }
                "tos" | "dsfield" => r.tos = Some(number("TOS", w.value(key)?)?),
                "fwmark" => {
                    let v = w.value(key)?;
                    r.fwmark = Some(match v.split_once('/') {
                        Some((m, mask)) => (number("fwmark", m)?, Some(number("mask", mask)?)),
                        None => (number("fwmark", v)?, None),
                    });
                }
                "suppress_prefixlength" | "sup_pl" => {
                    r.suppress_prefixlength = Some(number("prefix length", w.value(key)?)?)
                }
                "suppress_ifgroup" | "sup_group" => {
                    r.suppress_ifgroup = Some(number("interface group", w.value(key)?)?)
                }
                "dev" | "iif" => r.iif = Some(w.value(key)?.to_owned()),
                "oif" => r.oif = Some(w.value(key)?.to_owned()),
                "protocol" => protocol = Some(self::protocol(w.value(key)?)?),
                "no_track" => no_track = true,
                "track_group" => track_group(&mut r.track_group, w.value(key)?)?,
                "type" => {
                    let v = w.value(key)?;
                    set_action(rule_type(v).ok_or_else(|| bad("rule type", v))?)?;
                }
                "goto" => set_action(RuleAction::Goto(number("goto target", w.value(key)?)?))?,
                "nop" => set_action(RuleAction::Nop)?,
                "realms" => {
                    r.realms = Some(realms(w.value(key)?)?);
                    realms_v4(&mut fam)?;
                }
                "tunnel-id" => r.tunnel_id = Some(number("tunnel-id", w.value(key)?)?),
                "uidrange" => r.uidrange = Some(range("uidrange (A-B)", w.value(key)?, false)?),
                // keepalived: the "to table" action, without a table.
                "l3mdev" => {
                    r.l3mdev = true;
                    set_action(RuleAction::Table(0)).map_err(|_| RouteError::L3mdevWithAction)?;
                }
                "ipproto" => r.ipproto = Some(ip_protocol(w.value(key)?)?),
                // keepalived 2.2.7 refuses a single port (its sscanf check); `ip rule` and
                // the kernel take `N` as `N-N`, and so does this.
                "sport" => r.sport = Some(range("sport (N or N-M)", w.value(key)?, true)?),
                "dport" => r.dport = Some(range("dport (N or N-M)", w.value(key)?, true)?),
                k => match rule_type(k) {
                    Some(a) => set_action(a)?,
                    None => return Err(RouteError::Unknown(k.to_owned())),
                },
            }
        }
        r.action = action.ok_or(RouteError::NoAction)?;
        if r.l3mdev && r.action != RuleAction::Table(0) {
            return Err(RouteError::L3mdevWithAction);
        }
        if r.realms.is_some() && !matches!(r.action, RuleAction::Table(_)) {
            return Err(RouteError::RealmsWithoutTable);
        }
        if let RuleAction::Goto(target) = r.action {
            if r.priority.is_none_or(|p| p >= target) {
                return Err(RouteError::BadGoto { target });
            }
        }
        r.v6 = fam.0.unwrap_or(false);
        r.no_track = no_track;
        r.protocol = match (no_track, protocol) {
            (true, Some(p)) => p,
            (true, None) => 0,
            (false, _) => RTPROT_KEEPALIVED,
        };
        Ok(r)
    }
}

/// `track_group G`, written once (keepalived: "track_group G is a duplicate").
fn track_group(slot: &mut Option<String>, name: &str) -> Result<(), RouteError> {
    match slot.replace(name.to_owned()) {
        Some(_) => Err(RouteError::TwoTrackGroups),
        None => Ok(()),
    }
}

fn rule_type(s: &str) -> Option<RuleAction> {
    match s {
        "blackhole" => Some(RuleAction::Blackhole),
        "unreachable" => Some(RuleAction::Unreachable),
        "prohibit" => Some(RuleAction::Prohibit),
        _ => None,
    }
}

impl fmt::Display for IpRoute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Display for IpRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(s: &str) -> IpRoute {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn rule(s: &str) -> IpRule {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn routes_in_keepalived_syntax() {
        let r = route("10.1.0.0/16 via 192.168.1.1 dev eth0 table 100 metric 5 src 192.168.1.10");
        assert_eq!(r.dst.to_string(), "10.1.0.0/16");
        assert_eq!(r.via, Some("192.168.1.1".parse().unwrap()));
        assert_eq!(
            (r.dev.as_deref(), r.table, r.metric, r.v6, r.kind),
            (Some("eth0"), Some(100), Some(5), false, 1)
        );
        assert_eq!(r.src, Some("192.168.1.10".parse().unwrap()));
        assert_eq!(r.protocol, RTPROT_KEEPALIVED);
        let d = route("default via 2001:db8::1 dev eth0");
        assert!(d.v6);
        assert_eq!(d.dst.to_string(), "::/0");
        let b = route("blackhole 10.9.0.0/16 table main no_track");
        assert_eq!(
            (b.kind, b.table, b.protocol),
            (6, Some(254), RTPROT_KEEPALIVED)
        );
        let h = route("to 10.2.0.1 dev eth1 scope link mtu lock 1400 onlink gw 10.0.0.1");
        assert_eq!(h.dst.len, 32);
        assert_eq!((h.scope, h.onlink), (Some(253), true));
        assert_eq!(h.metrics, vec![Metric::Mtu(1400)]);
        assert_eq!(h.locks, 1 << 2);
        let p = route("unreachable default inet6");
        assert_eq!((p.kind, p.v6, p.dst.len), (7, true, 0));
    }

    #[test]
    fn multipath_routes_as_keepalived_reads_them() {
        let m = route(
            "10.3.0.0/16 table 10 nexthop via 192.0.2.1 dev eth0 weight 2 nexthop via 192.0.2.2 onlink",
        );
        assert_eq!((m.via, m.table), (None, Some(10)));
        assert_eq!(
            m.nexthops,
            vec![
                NextHop {
                    via: Some("192.0.2.1".parse().unwrap()),
                    dev: Some("eth0".into()),
                    weight: Some(2),
                    onlink: false,
                    realms: None,
                },
                NextHop {
                    via: Some("192.0.2.2".parse().unwrap()),
                    dev: None,
                    weight: None,
                    onlink: true,
                    realms: None,
                },
            ]
        );
        // keepalived's deprecated `or`: the written gateway and the alternative.
        let o = route("192.168.113.0/24 via 192.168.100.252 or 192.168.100.253");
        assert_eq!(o.via, None);
        let vias: Vec<_> = o.nexthops.iter().map(|h| h.via.unwrap()).collect();
        assert_eq!(
            vias,
            ["192.168.100.252", "192.168.100.253"].map(|a| a.parse::<IpAddr>().unwrap())
        );
        let v6 = route("2001:db8:5::/48 nexthop via inet6 fe80::1 dev eth0 nexthop dev eth1");
        assert!(v6.v6);
        assert_eq!(v6.nexthops[1].dev.as_deref(), Some("eth1"));
    }

    #[test]
    fn bad_routes_say_why() {
        for (line, want) in [
            ("via 10.0.0.1", RouteError::NoDestination),
            ("10.0.0.0/8 via 2001:db8::1", RouteError::MixedFamilies),
            ("10.0.0.0/40", bad("prefix length", "40")),
            ("10.0.0.0/8 metric x", bad("metric", "x")),
            ("10.0.0.0/8 dev", RouteError::Missing("dev".into())),
            (
                "10.0.0.0/8 frobnicate",
                RouteError::Unknown("frobnicate".into()),
            ),
            (
                "10.0.0.0/8 nexthop via 1.1.1.1 encap ip id 1",
                RouteError::Unsupported("encap".into()),
            ),
            (
                "10.0.0.0/8 nexthop via 1.1.1.1 nexthop weight 2",
                RouteError::EmptyNextHop(2),
            ),
            (
                "10.0.0.0/8 nexthop via 1.1.1.1 weight 0",
                bad("weight (1 to 256)", "0"),
            ),
            (
                "10.0.0.0/8 nexthop via 1.1.1.1 metric 5",
                RouteError::Unknown("metric".into()),
            ),
            (
                "10.0.0.0/8 nexthop via 1.1.1.1 nexthop via 2001:db8::1",
                RouteError::MixedFamilies,
            ),
            ("10.0.0.0/8 or 1.1.1.2", RouteError::OrWithoutVia),
            (
                "10.0.0.0/8 via 1.1.1.1 or 1.1.1.2 or 1.1.1.3",
                RouteError::TwoMultipaths,
            ),
            ("10.0.0.0/8 from 10.0.0.0/8", RouteError::V6Only("from")),
        ] {
            assert_eq!(line.parse::<IpRoute>(), Err(want), "{line}");
        }
    }

    #[test]
    fn route_metrics_in_keepalived_units() {
        // (line, metric wanted, lock bits)
        for (line, want, locks) in [
            ("10.0.0.0/8 rtt 300ms", Metric::Rtt(2400), 0),
            ("10.0.0.0/8 rtt lock 1.5s", Metric::Rtt(12_000), 1 << 4),
            ("10.0.0.0/8 rtt 2000", Metric::Rtt(2000), 0),
            // Below 200 ms and above 120 s: clamped, as keepalived does.
            ("10.0.0.0/8 rtt 10ms", Metric::Rtt(1600), 0),
            ("10.0.0.0/8 rttvar lock 100ms", Metric::Rttvar(800), 1 << 5),
            ("10.0.0.0/8 rttvar 130s", Metric::Rttvar(480_000), 0),
            ("10.0.0.0/8 rto_min 250ms", Metric::RtoMin(250), 0),
            (
                "10.0.0.0/8 rto_min lock 1secs",
                Metric::RtoMin(1000),
                1 << 13,
            ),
            (
                "10.0.0.0/8 reordering lock 5",
                Metric::Reordering(5),
                1 << 9,
            ),
            ("10.0.0.0/8 window 65535", Metric::Window(65535), 0),
            ("10.0.0.0/8 cwnd lock 10", Metric::Cwnd(10), 1 << 7),
            ("10.0.0.0/8 ssthresh lock 20", Metric::Ssthresh(20), 1 << 6),
            ("10.0.0.0/8 features ecn", Metric::Features(1), 0),
            ("10.0.0.0/8 quickack 1", Metric::Quickack(1), 0),
            (
                "10.0.0.0/8 fastopen_no_cookie 0",
                Metric::FastopenNoCookie(0),
                0,
            ),
            ("10.0.0.0/8 congctl bbr", Metric::Congctl("bbr".into()), 0),
            (
                "10.0.0.0/8 congctl lock cubic",
                Metric::Congctl("cubic".into()),
                1 << 16,
            ),
        ] {
            let r = route(line);
            assert_eq!((r.metrics, r.locks), (vec![want], locks), "{line}");
        }
    }

    #[test]
    fn route_realms_expires_and_pref() {
        let r = route("10.0.0.0/8 via 192.0.2.1 realms 3/4");
        assert_eq!(r.realms, Some(Realms { from: 3, to: 4 }));
        assert!(!r.v6);
        assert_eq!(
            route("default realms cosmos").realms,
            Some(Realms { from: 0, to: 0 })
        );
        let n = route("10.0.0.0/8 nexthop via 192.0.2.1 realms 7 nexthop via 192.0.2.2");
        assert_eq!(n.nexthops[0].realms, Some(Realms { from: 0, to: 7 }));
        assert_eq!(n.nexthops[1].realms, None);
        // `expires` and `pref` make the route IPv6, as in keepalived.
        let e = route("default expires 300 pref high");
        assert_eq!((e.v6, e.expires, e.pref), (true, Some(300), Some(1)));
        assert_eq!(route("2001:db8::/32 pref low").pref, Some(3));
        assert_eq!(route("2001:db8::/32 pref medium").pref, Some(0));
    }

    #[test]
    fn bad_route_options_say_why() {
        for (line, want) in [
            ("10.0.0.0/8 rtt fast", bad("rtt (N, N ms or N s)", "fast")),
            ("10.0.0.0/8 rtt 1.5", bad("rtt (N, N ms or N s)", "1.5")),
            (
                "10.0.0.0/8 rtt 1.2345s",
                bad("rtt (N, N ms or N s)", "1.2345s"),
            ),
            ("10.0.0.0/8 rtt 1e3", bad("rtt (N, N ms or N s)", "1e3")),
            ("10.0.0.0/8 rtt 5min", bad("rtt (N, N ms or N s)", "5min")),
            (
                "10.0.0.0/8 rto_min 200000",
                bad("rto_min (N, N ms or N s)", "200000"),
            ),
            ("10.0.0.0/8 rtt lock", RouteError::Missing("rtt".into())),
            ("10.0.0.0/8 window lock 5", bad("number", "lock")),
            (
                "10.0.0.0/8 features sack",
                bad("feature (only `ecn` can be set)", "sack"),
            ),
            ("10.0.0.0/8 quickack 2", bad("quickack (0 or 1)", "2")),
            (
                "10.0.0.0/8 fastopen_no_cookie yes",
                bad("fastopen_no_cookie (0 or 1)", "yes"),
            ),
            ("10.0.0.0/8 congctl", RouteError::Missing("congctl".into())),
            (
                "10.0.0.0/8 realms 3/256",
                bad("realms ([FROM/]TO, realms 0 to 255)", "3/256"),
            ),
            ("2001:db8::/32 realms 3", RouteError::V4Only("realms")),
            (
                "2001:db8::/32 nexthop dev eth0 realms 3",
                RouteError::V4Only("realms"),
            ),
            ("10.0.0.0/8 expires 30", RouteError::V6Only("expires")),
            ("10.0.0.0/8 pref high", RouteError::V6Only("pref")),
            (
                "2001:db8::/32 pref highest",
                bad("pref (low, medium, high or 0 to 255)", "highest"),
            ),
            (
                "2001:db8::/32 expires soon",
                bad("expires (seconds)", "soon"),
            ),
        ] {
            assert_eq!(line.parse::<IpRoute>(), Err(want), "{line}");
        }
    }

    #[test]
    fn track_group_and_no_track_are_kept() {
        let r = route("192.0.2.0/24 via 198.18.0.1 dev eth1 track_group G1");
        assert_eq!((r.track_group.as_deref(), r.no_track), (Some("G1"), false));
        let r = route("192.0.2.0/24 dev eth1 no_track protocol static");
        assert_eq!((r.track_group, r.no_track, r.protocol), (None, true, 4));
        assert_eq!(
            "10.0.0.0/8 track_group a track_group b".parse::<IpRoute>(),
            Err(RouteError::TwoTrackGroups)
        );
        let r = rule("from 10.0.0.0/8 iif eth1 table 1 preference 5 track_group G1");
        assert_eq!(
            (r.track_group.as_deref(), r.iif.as_deref()),
            (Some("G1"), Some("eth1"))
        );
        assert!(rule("from 10.0.0.0/8 table 1 no_track").no_track);
    }

    #[test]
    fn refused_route_keywords_say_why_and_what_to_do() {
        for (line, keyword, hint) in [
            ("10.0.0.0/8 encap mpls 100 dev eth0", "encap", "plain IP"),
            ("10.0.0.0/8 ttl-propagate enabled", "ttl-propagate", "MPLS"),
            ("10.0.0.0/8 as to 1.2.3.4", "as", "nftables"),
            ("10.0.0.0/8 vrf red", "vrf", "table N"),
            ("10.0.0.0/8 append", "append", "prepend"),
        ] {
            let e = line.parse::<IpRoute>().unwrap_err();
            assert_eq!(e, RouteError::Unsupported(keyword.into()), "{line}");
            assert!(e.to_string().contains(hint), "{line}: {e}");
        }
    }

    #[test]
    fn rule_selectors_keepalived_added_for_linux_4() {
        let r = rule(
            "from 10.0.0.0/8 table 100 realms 1/2 tunnel-id 0x10 uidrange 1000-2000 ipproto tcp sport 1024 dport 80-90",
        );
        assert_eq!(r.realms, Some(Realms { from: 1, to: 2 }));
        assert_eq!(
            (r.tunnel_id, r.uidrange, r.ipproto, r.sport, r.dport),
            (
                Some(16),
                Some((1000, 2000)),
                Some(6),
                Some((1024, 1024)),
                Some((80, 90))
            )
        );
        assert_eq!(rule("ipproto 17 nop").ipproto, Some(17));
        assert_eq!(rule("ipproto ipv6-icmp nop inet6").ipproto, Some(58));
        let l = rule("l3mdev pref 1000");
        assert_eq!((l.l3mdev, l.action), (true, RuleAction::Table(0)));
    }

    #[test]
    fn bad_rule_selectors_say_why() {
        for (line, want) in [
            ("uidrange 5 table 1", bad("uidrange (A-B)", "5")),
            (
                "uidrange 9-1 table 1",
                RouteError::BackwardRange {
                    what: "uidrange (A-B)",
                    start: 9,
                    end: 1,
                },
            ),
            ("dport 70000 table 1", bad("dport (N or N-M)", "70000")),
            ("sport http table 1", bad("sport (N or N-M)", "http")),
            (
                "ipproto bogus table 1",
                bad("ipproto (tcp, udp, icmp, … or 0 to 255)", "bogus"),
            ),
            ("tunnel-id x table 1", bad("tunnel-id", "x")),
            ("realms 3 goto 9 pref 1", RouteError::RealmsWithoutTable),
            (
                "to 2001:db8::/32 realms 3 table 1",
                RouteError::V4Only("realms"),
            ),
            ("l3mdev table 5", RouteError::TwoActions),
            ("nop l3mdev", RouteError::L3mdevWithAction),
        ] {
            assert_eq!(line.parse::<IpRule>(), Err(want), "{line}");
        }
    }

    #[test]
    fn rules_in_keepalived_syntax() {
        let r = rule("from 192.168.1.0/24 table 100 priority 100");
        assert_eq!(r.from.unwrap().to_string(), "192.168.1.0/24");
        assert_eq!(
            (r.action, r.priority, r.v6),
            (RuleAction::Table(100), Some(100), false)
        );
        let m = rule("fwmark 0x10/0xff lookup main iif eth0 not");
        assert_eq!(m.fwmark, Some((16, Some(255))));
        assert_eq!(
            (m.action, m.invert, m.priority),
            (RuleAction::Table(254), true, None)
        );
        let g = rule("to 2001:db8::/32 preference 10 goto 20");
        assert!(g.v6);
        assert_eq!(g.action, RuleAction::Goto(20));
        let b = rule("from all type blackhole pref 5 no_track");
        assert_eq!((b.action, b.protocol), (RuleAction::Blackhole, 0));
        assert_eq!(rule("to 10.0.0.1 prohibit").action, RuleAction::Prohibit);
    }

    #[test]
    fn bad_rules_say_why() {
        for (line, want) in [
            ("from 10.0.0.0/8", RouteError::NoAction),
            ("table 1 table 2", RouteError::TwoActions),
            ("goto 5", RouteError::BadGoto { target: 5 }),
            ("pref 9 goto 5", RouteError::BadGoto { target: 5 }),
            (
                "from 10.0.0.1 to 2001:db8::1 table 1",
                RouteError::MixedFamilies,
            ),
            (
                "track_group g table 1 track_group h",
                RouteError::TwoTrackGroups,
            ),
            ("frob table 1", RouteError::Unknown("frob".into())),
        ] {
            assert_eq!(line.parse::<IpRule>(), Err(want), "{line}");
        }
    }
}
