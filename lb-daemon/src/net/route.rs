//! Routes and policy rules over rtnetlink, as keepalived 2.2.7 sends them
//! (`vrrp_iproute.c` `netlink_route`, `vrrp_iprule.c` `netlink_rule`): the message builders
//! are pure ([`route_message`], [`rule_message`]); [`add_route`] & co. send them.
//!
//! Routes are added with NLM_F_CREATE and without NLM_F_EXCL (keepalived's "prepend"), so an
//! identical route already there is no error; deleting one that is gone is none either
//! (ESRCH / ENOENT are success: the state wanted is reached).

use futures::StreamExt;
use rtnetlink::packet_core::{
    NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_REQUEST,
};
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteMetric, RouteNextHop,
    RouteNextHopFlags, RoutePreference, RouteProtocol, RouteRealm, RouteScope, RouteType,
};
use rtnetlink::packet_route::rule::{
    RuleAction as NlRuleAction, RuleAttribute, RuleFlags, RuleMessage, RulePortRange, RuleUidRange,
};
use rtnetlink::packet_route::{AddressFamily, IpProtocol, RouteNetlinkMessage};

use crate::config::route::{IpRoute, IpRule, Metric, Realms, RuleAction};
use crate::net::link;
use crate::net::rtnl::errno;

#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error("interface {0} does not exist (named by `{1}`): check the name (`ip link`)")]
    NoInterface(String, String),
    #[error("cannot {op} `{what}`: {source}")]
    Netlink {
        op: &'static str,
        what: String,
        #[source]
        source: rtnetlink::Error,
    },
}

fn family(v6: bool) -> AddressFamily {
    if v6 {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    }
}

fn realm(r: Realms) -> RouteRealm {
    RouteRealm {
        source: r.from,
        destination: r.to,
    }
}

fn route_metric(m: &Metric) -> RouteMetric {
    match m {
        Metric::Mtu(n) => RouteMetric::Mtu(*n),
        Metric::Advmss(n) => RouteMetric::Advmss(*n),
        Metric::Hoplimit(n) => RouteMetric::Hoplimit(*n),
        Metric::Initcwnd(n) => RouteMetric::InitCwnd(*n),
        Metric::Initrwnd(n) => RouteMetric::InitRwnd(*n),
        Metric::Rtt(n) => RouteMetric::Rtt(*n),
        Metric::Rttvar(n) => RouteMetric::RttVar(*n),
        Metric::RtoMin(n) => RouteMetric::RtoMin(*n),
        Metric::Reordering(n) => RouteMetric::Reordering(*n),
        Metric::Window(n) => RouteMetric::Window(*n),
        Metric::Cwnd(n) => RouteMetric::Cwnd(*n),
        Metric::Ssthresh(n) => RouteMetric::SsThresh(*n),
        Metric::Features(n) => RouteMetric::Features(*n),
        Metric::Quickack(n) => RouteMetric::QuickAck(*n),
        Metric::FastopenNoCookie(n) => RouteMetric::FastopenNoCookie(*n),
        Metric::Congctl(name) => RouteMetric::CcAlgo(name.clone()),
    }
}

/// Whether the kernel's route `m` is the configured route `r` (pure), by what tells
/// routes apart in the kernel as keepalived compares them (`route_is_ours`): family,
/// table, destination, TOS, metric, and the protocol the daemon wrote.
pub fn is_route(r: &IpRoute, m: &RouteMessage) -> bool {
    let h = &m.header;
    // The kernel's metric when none is written: 0 for IPv4, 1024 for IPv6.
    let (mut table, mut dst, mut metric) = (u32::from(h.table), None, 0);
    for a in &m.attributes {
        match a {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Destination(d) => dst = Some(d),
            RouteAttribute::Priority(p) => metric = *p,
            _ => {}
        }
    }
    let default_metric = if r.v6 { 1024 } else { 0 };
    h.address_family == family(r.v6)
        && h.destination_prefix_length == r.dst.len
        && u8::from(h.protocol) == r.protocol
        && h.tos == r.tos.unwrap_or(0)
        && table == r.table.unwrap_or(u32::from(RouteHeader::RT_TABLE_MAIN))
        && metric == r.metric.unwrap_or(default_metric)
        && (r.dst.len == 0 || dst == Some(&RouteAddress::from(r.dst.addr)))
}

/// The interface indexes a route names: its `dev`, and each next hop's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Oifs {
    pub route: Option<u32>,
    pub nexthops: Vec<Option<u32>>,
}

/// RTM_NEWROUTE / RTM_DELROUTE body for `r`; `oifs` are the indexes of its `dev`s.
/// `delete`: keepalived's deletion form (scope nowhere, type only when written).
pub fn route_message(r: &IpRoute, oifs: &Oifs, delete: bool) -> RouteMessage {
    let oif = oifs.route;
    let mut m = RouteMessage::default();
    let h = &mut m.header;
    h.address_family = family(r.v6);
    h.destination_prefix_length = r.dst.len;
    h.tos = r.tos.unwrap_or(0);
    h.protocol = RouteProtocol::from(r.protocol);
    h.kind = RouteType::from(r.kind);
    h.scope = match (r.scope, delete) {
        (Some(s), _) => RouteScope::from(s),
        (None, true) => RouteScope::NoWhere,
        // `ip route` picks link scope for a direct (no gateway) unicast route, host for
        // local ones; keepalived leaves universe unless written. keepalived's rule.
        (None, false) => RouteScope::Universe,
    };
    let table = r.table.unwrap_or(u32::from(RouteHeader::RT_TABLE_MAIN));
    match u8::try_from(table) {
        Ok(t) => h.table = t,
        Err(_) => {
            h.table = RouteHeader::RT_TABLE_UNSPEC;
            m.attributes.push(RouteAttribute::Table(table));
        }
    }
    if r.onlink {
        m.header.flags |= RouteFlags::Onlink;
    }
    if r.dst.len > 0 {
        m.attributes
            .push(RouteAttribute::Destination(RouteAddress::from(r.dst.addr)));
    }
    if let Some(from) = r.from {
        m.header.source_prefix_length = from.len;
        m.attributes
            .push(RouteAttribute::Source(RouteAddress::from(from.addr)));
    }
    if let Some(src) = r.src {
        m.attributes
            .push(RouteAttribute::PrefSource(RouteAddress::from(src)));
    }
    if let Some(via) = r.via {
        m.attributes
            .push(RouteAttribute::Gateway(RouteAddress::from(via)));
    }
    if let Some(oif) = oif {
        m.attributes.push(RouteAttribute::Oif(oif));
    }
    if !r.nexthops.is_empty() {
        let hops = r
            .nexthops
            .iter()
            .enumerate()
            .map(|(i, nh)| {
                let mut hop = RouteNextHop::default();
                if nh.onlink {
                    hop.flags |= RouteNextHopFlags::Onlink;
                }
                // `weight N` is sent as N - 1 (`ip route`'s and keepalived's encoding).
                hop.hops = nh.weight.map_or(0, |w| (w - 1).min(255) as u8);
                hop.interface_index = oifs.nexthops.get(i).copied().flatten().unwrap_or(0);
                if let Some(via) = nh.via {
                    hop.attributes
                        .push(RouteAttribute::Gateway(RouteAddress::from(via)));
                }
                if let Some(r) = nh.realms {
                    hop.attributes.push(RouteAttribute::Realm(realm(r)));
                }
                hop
            })
            .collect();
        m.attributes.push(RouteAttribute::MultiPath(hops));
    }
    if let Some(metric) = r.metric {
        m.attributes.push(RouteAttribute::Priority(metric));
    }
    if let Some(r) = r.realms {
        m.attributes.push(RouteAttribute::Realm(realm(r)));
    }
    if let Some(secs) = r.expires {
        m.attributes.push(RouteAttribute::Expires(secs));
    }
    if let Some(p) = r.pref {
        m.attributes
            .push(RouteAttribute::Preference(RoutePreference::from(p)));
    }
    let mut metrics: Vec<RouteMetric> = r.metrics.iter().map(route_metric).collect();
    if r.locks != 0 {
        metrics.push(RouteMetric::Lock(r.locks));
    }
    if !metrics.is_empty() {
        m.attributes.push(RouteAttribute::Metrics(metrics));
    }
    m
}

/// RTM_NEWRULE / RTM_DELRULE body for `r`.
pub fn rule_message(r: &IpRule) -> RuleMessage {
    let mut m = RuleMessage::default();
    let h = &mut m.header;
    h.family = family(r.v6);
    h.tos = r.tos.unwrap_or(0);
    if r.invert {
        h.flags |= RuleFlags::Invert;
    }
    h.action = match r.action {
        RuleAction::Table(_) => NlRuleAction::ToTable,
        RuleAction::Goto(_) => NlRuleAction::Goto,
        RuleAction::Nop => NlRuleAction::Nop,
        RuleAction::Blackhole => NlRuleAction::Blackhole,
        RuleAction::Unreachable => NlRuleAction::Unreachable,
        RuleAction::Prohibit => NlRuleAction::Prohibit,
    };
    match r.action {
        RuleAction::Table(t) => match u8::try_from(t) {
            Ok(t) => m.header.table = t,
            Err(_) => m.attributes.push(RuleAttribute::Table(t)),
        },
        RuleAction::Goto(target) => m.attributes.push(RuleAttribute::Goto(target)),
        _ => {}
    }
    if let Some(from) = r.from {
        m.header.src_len = from.len;
        m.attributes.push(RuleAttribute::Source(from.addr));
    }
    if let Some(to) = r.to {
        m.header.dst_len = to.len;
        m.attributes.push(RuleAttribute::Destination(to.addr));
    }
    if let Some(p) = r.priority {
        m.attributes.push(RuleAttribute::Priority(p));
    }
    if let Some((mark, mask)) = r.fwmark {
        m.attributes.push(RuleAttribute::FwMark(mark));
        if let Some(mask) = mask {
            m.attributes.push(RuleAttribute::FwMask(mask));
        }
    }
    if let Some(n) = r.suppress_prefixlength {
        m.attributes.push(RuleAttribute::SuppressPrefixLen(n));
    }
    if let Some(n) = r.suppress_ifgroup {
        m.attributes.push(RuleAttribute::SuppressIfGroup(n));
    }
    if let Some(iif) = &r.iif {
        m.attributes.push(RuleAttribute::Iifname(iif.clone()));
    }
    if let Some(oif) = &r.oif {
        m.attributes.push(RuleAttribute::Oifname(oif.clone()));
    }
    if r.protocol != 0 {
        m.attributes
            .push(RuleAttribute::Protocol(RouteProtocol::from(r.protocol)));
    }
    if let Some(r) = r.realms {
        m.attributes.push(RuleAttribute::Realm(realm(r)));
    }
    if let Some(id) = r.tunnel_id {
        m.attributes.push(RuleAttribute::TunId(id));
    }
    if let Some((start, end)) = r.uidrange {
        m.attributes
            .push(RuleAttribute::UidRange(RuleUidRange { start, end }));
    }
    if r.l3mdev {
        m.attributes.push(RuleAttribute::L3MDev(true));
    }
    if let Some(p) = r.ipproto {
        m.attributes
            .push(RuleAttribute::IpProtocol(IpProtocol::from(p)));
    }
    if let Some((start, end)) = r.sport {
        m.attributes
            .push(RuleAttribute::SourcePortRange(RulePortRange { start, end }));
    }
    if let Some((start, end)) = r.dport {
        m.attributes
            .push(RuleAttribute::DestinationPortRange(RulePortRange {
                start,
                end,
            }));
    }
    m
}

async fn index_of(
    handle: &rtnetlink::Handle,
    r: &IpRoute,
    dev: Option<&String>,
) -> Result<Option<u32>, RouteError> {
    let Some(dev) = dev else { return Ok(None) };
    let netlink = |source| RouteError::Netlink {
        op: "look up the interface of",
        what: r.text.clone(),
        source,
    };
    match link::find(handle, dev).await.map_err(netlink)? {
        Some(l) => Ok(Some(l.header.index)),
        None => Err(RouteError::NoInterface(dev.clone(), r.text.clone())),
    }
}

async fn oifs(handle: &rtnetlink::Handle, r: &IpRoute) -> Result<Oifs, RouteError> {
    let mut oifs = Oifs {
        route: index_of(handle, r, r.dev.as_ref()).await?,
        nexthops: Vec::with_capacity(r.nexthops.len()),
    };
    for nh in &r.nexthops {
        oifs.nexthops
            .push(index_of(handle, r, nh.dev.as_ref()).await?);
    }
    Ok(oifs)
}

pub async fn add_route(handle: &rtnetlink::Handle, r: &IpRoute) -> Result<(), RouteError> {
    let oifs = oifs(handle, r).await?;
    let failed = |source| RouteError::Netlink {
        op: "add route",
        what: r.text.clone(),
        source,
    };
    // keepalived's default "prepend": NLM_F_CREATE without NLM_F_EXCL (rtnetlink's request
    // always sets EXCL or REPLACE, so the message is sent here). An identical route already
    // there (EEXIST) is the state wanted.
    let mut req = NetlinkMessage::from(RouteNetlinkMessage::NewRoute(route_message(
        r, &oifs, false,
    )));
    req.header.flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE;
    let mut replies = handle.clone().request(req).map_err(failed)?;
    while let Some(reply) = replies.next().await {
        if let NetlinkPayload::Error(e) = reply.payload {
            match e.code.map(|c| c.get().abs()) {
                None | Some(libc::EEXIST) => {}
                Some(_) => return Err(failed(rtnetlink::Error::NetlinkError(e))),
            }
        }
    }
    Ok(())
}

pub async fn remove_route(handle: &rtnetlink::Handle, r: &IpRoute) -> Result<(), RouteError> {
    let oifs = oifs(handle, r).await.unwrap_or_default();
    match handle
        .route()
        .del(route_message(r, &oifs, true))
        .execute()
        .await
    {
        Err(e) if matches!(errno(&e), Some(libc::ESRCH | libc::ENOENT)) => Ok(()),
        r2 => r2.map_err(|source| RouteError::Netlink {
            op: "remove route",
            what: r.text.clone(),
            source,
        }),
    }
}

pub async fn add_rule(handle: &rtnetlink::Handle, r: &IpRule) -> Result<(), RouteError> {
    let mut req = handle.rule().add();
    *req.message_mut() = rule_message(r);
    match req.execute().await {
        Err(e) if errno(&e) == Some(libc::EEXIST) => Ok(()),
        result => result.map_err(|source| RouteError::Netlink {
            op: "add rule",
            what: r.text.clone(),
            source,
        }),
    }
}

pub async fn remove_rule(handle: &rtnetlink::Handle, r: &IpRule) -> Result<(), RouteError> {
    match handle.rule().del(rule_message(r)).execute().await {
        Err(e) if matches!(errno(&e), Some(libc::ESRCH | libc::ENOENT)) => Ok(()),
        result => result.map_err(|source| RouteError::Netlink {
            op: "remove rule",
            what: r.text.clone(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kernel_route_is_told_apart_by_table_destination_metric_and_protocol() {
        let r: IpRoute = "10.1.0.0/16 via 192.168.1.1 table 1000 metric 7"
            .parse()
            .unwrap();
        let ours = route_message(&r, &Oifs::default(), false);
        assert!(is_route(&r, &ours));
        let other = |line: &str| {
            let o: IpRoute = line.parse().unwrap();
            route_message(&o, &Oifs::default(), false)
        };
        assert!(is_route(
            &r,
            &other("10.1.0.0/16 via 192.168.9.9 table 1000 metric 7")
        ));
        for line in [
            "10.2.0.0/16 via 192.168.1.1 table 1000 metric 7",
            "10.1.0.0/24 via 192.168.1.1 table 1000 metric 7",
            "10.1.0.0/16 via 192.168.1.1 table 1001 metric 7",
            "10.1.0.0/16 via 192.168.1.1 table 1000 metric 8",
            "10.1.0.0/16 via 192.168.1.1 table 1000 metric 7 protocol static no_track",
        ] {
            assert!(!is_route(&r, &other(line)), "{line}");
        }
        // IPv6 without a metric: the kernel reports its default, 1024.
        let v6: IpRoute = "2001:db8:1::/48 dev eth0".parse().unwrap();
        let mut m = route_message(&v6, &Oifs::default(), false);
        assert!(!is_route(&v6, &m));
        m.attributes.push(RouteAttribute::Priority(1024));
        assert!(is_route(&v6, &m));
        // A default route has no destination attribute.
        let d: IpRoute = "default via 192.168.1.1 table 5".parse().unwrap();
        assert!(is_route(&d, &route_message(&d, &Oifs::default(), false)));
    }

    #[test]
    fn route_messages_carry_every_written_field() {
        let r: IpRoute =
            "10.1.0.0/16 via 192.168.1.1 table 1000 metric 7 src 192.168.1.10 mtu lock 1400 onlink"
                .parse()
                .unwrap();
        let oifs = Oifs {
            route: Some(3),
            nexthops: vec![],
        };
        let m = route_message(&r, &oifs, false);
        assert_eq!(m.header.address_family, AddressFamily::Inet);
        assert_eq!(m.header.destination_prefix_length, 16);
        assert_eq!(m.header.table, 0);
        assert_eq!(m.header.protocol, RouteProtocol::from(18));
        assert_eq!(m.header.scope, RouteScope::Universe);
        assert!(m.header.flags.contains(RouteFlags::Onlink));
        for want in [
            RouteAttribute::Table(1000),
            RouteAttribute::Destination(RouteAddress::Inet("10.1.0.0".parse().unwrap())),
            RouteAttribute::Gateway(RouteAddress::Inet("192.168.1.1".parse().unwrap())),
            RouteAttribute::PrefSource(RouteAddress::Inet("192.168.1.10".parse().unwrap())),
            RouteAttribute::Oif(3),
            RouteAttribute::Priority(7),
            RouteAttribute::Metrics(vec![RouteMetric::Mtu(1400), RouteMetric::Lock(4)]),
        ] {
            assert!(
                m.attributes.contains(&want),
                "{want:?} in {:?}",
                m.attributes
            );
        }
        let del = route_message(
            &"blackhole default inet6".parse().unwrap(),
            &Oifs::default(),
            true,
        );
        assert_eq!(del.header.address_family, AddressFamily::Inet6);
        assert_eq!(del.header.scope, RouteScope::NoWhere);
        assert_eq!(del.header.kind, RouteType::BlackHole);
        assert_eq!(del.header.table, 254);
        assert!(del.attributes.is_empty(), "{:?}", del.attributes);
    }

    #[test]
    fn multipath_routes_carry_one_next_hop_each() {
        let r: IpRoute =
            "10.3.0.0/16 nexthop via 192.0.2.1 dev eth0 weight 3 nexthop via 192.0.2.2 onlink"
                .parse()
                .unwrap();
        let oifs = Oifs {
            route: None,
            nexthops: vec![Some(7), None],
        };
        let m = route_message(&r, &oifs, false);
        let Some(RouteAttribute::MultiPath(hops)) = m
            .attributes
            .iter()
            .find(|a| matches!(a, RouteAttribute::MultiPath(_)))
        else {
            panic!("no RTA_MULTIPATH in {:?}", m.attributes)
        };
        assert_eq!(hops.len(), 2);
        assert_eq!((hops[0].hops, hops[0].interface_index), (2, 7));
        assert!(hops[0].flags.is_empty());
        assert_eq!(
            hops[0].attributes,
            vec![RouteAttribute::Gateway(RouteAddress::Inet(
                "192.0.2.1".parse().unwrap()
            ))]
        );
        assert_eq!((hops[1].hops, hops[1].interface_index), (0, 0));
        assert!(hops[1].flags.contains(RouteNextHopFlags::Onlink));
        assert!(!m
            .attributes
            .iter()
            .any(|a| matches!(a, RouteAttribute::Gateway(_) | RouteAttribute::Oif(_))));
    }

    #[test]
    fn rule_messages_carry_every_written_field() {
        let r: IpRule =
            "from 10.0.0.0/8 to 192.0.2.0/24 not fwmark 1/0xff iif eth0 table 100 preference 50"
                .parse()
                .unwrap();
        let m = rule_message(&r);
        assert_eq!(
            (m.header.src_len, m.header.dst_len, m.header.table),
            (8, 24, 100)
        );
        assert_eq!(m.header.action, NlRuleAction::ToTable);
        assert!(m.header.flags.contains(RuleFlags::Invert));
        for want in [
            RuleAttribute::Source("10.0.0.0".parse().unwrap()),
            RuleAttribute::Destination("192.0.2.0".parse().unwrap()),
            RuleAttribute::Priority(50),
            RuleAttribute::FwMark(1),
            RuleAttribute::FwMask(255),
            RuleAttribute::Iifname("eth0".into()),
            RuleAttribute::Protocol(RouteProtocol::from(18)),
        ] {
            assert!(
                m.attributes.contains(&want),
                "{want:?} in {:?}",
                m.attributes
            );
        }
        let g = rule_message(&"to 2001:db8::/32 pref 10 goto 20 no_track".parse().unwrap());
        assert_eq!(g.header.family, AddressFamily::Inet6);
        assert_eq!(g.header.action, NlRuleAction::Goto);
        assert!(g.attributes.contains(&RuleAttribute::Goto(20)));
        assert!(!g
            .attributes
            .iter()
            .any(|a| matches!(a, RuleAttribute::Protocol(_))));
    }

    #[test]
    fn route_messages_carry_tcp_metrics_realms_and_router_preference() {
        let r: IpRoute = "10.1.0.0/16 via 192.0.2.1 realms 3/4 rtt lock 300ms congctl lock reno features ecn quickack 1 fastopen_no_cookie 1 window 1000 nexthop via 192.0.2.2 realms 9"
            .parse()
            .unwrap();
        let m = route_message(&r, &Oifs::default(), false);
        let realm = |source, destination| {
            RouteAttribute::Realm(RouteRealm {
                source,
                destination,
            })
        };
        assert!(m.attributes.contains(&realm(3, 4)), "{:?}", m.attributes);
        assert!(
            m.attributes.contains(&RouteAttribute::Metrics(vec![
                RouteMetric::Rtt(2400),
                RouteMetric::CcAlgo("reno".into()),
                RouteMetric::Features(1),
                RouteMetric::QuickAck(1),
                RouteMetric::FastopenNoCookie(1),
                RouteMetric::Window(1000),
                RouteMetric::Lock((1 << 4) | (1 << 16)),
            ])),
            "{:?}",
            m.attributes
        );
        let Some(RouteAttribute::MultiPath(hops)) = m
            .attributes
            .iter()
            .find(|a| matches!(a, RouteAttribute::MultiPath(_)))
        else {
            panic!("no RTA_MULTIPATH in {:?}", m.attributes)
        };
        assert!(hops[0].attributes.contains(&realm(0, 9)), "{hops:?}");
        let v6 = route_message(
            &"2001:db8::/32 dev eth0 expires 300 pref high"
                .parse()
                .unwrap(),
            &Oifs::default(),
            false,
        );
        for want in [
            RouteAttribute::Expires(300),
            RouteAttribute::Preference(RoutePreference::High),
        ] {
            assert!(
                v6.attributes.contains(&want),
                "{want:?} in {:?}",
                v6.attributes
            );
        }
    }

    #[test]
    fn rule_messages_carry_the_linux_4_selectors() {
        let m = rule_message(
            &"from 10.0.0.0/8 table 100 realms 1/2 tunnel-id 7 uidrange 1000-2000 ipproto udp sport 1024 dport 80-90"
                .parse()
                .unwrap(),
        );
        for want in [
            RuleAttribute::Realm(RouteRealm {
                source: 1,
                destination: 2,
            }),
            RuleAttribute::TunId(7),
            RuleAttribute::UidRange(RuleUidRange {
                start: 1000,
                end: 2000,
            }),
            RuleAttribute::IpProtocol(IpProtocol::Udp),
            RuleAttribute::SourcePortRange(RulePortRange {
                start: 1024,
                end: 1024,
            }),
            RuleAttribute::DestinationPortRange(RulePortRange { start: 80, end: 90 }),
        ] {
            assert!(
                m.attributes.contains(&want),
                "{want:?} in {:?}",
                m.attributes
            );
        }
        let l = rule_message(&"l3mdev pref 1000".parse().unwrap());
        assert_eq!(
            (l.header.action, l.header.table),
            (NlRuleAction::ToTable, 0)
        );
        assert!(l.attributes.contains(&RuleAttribute::L3MDev(true)));
        assert!(!l
            .attributes
            .iter()
            .any(|a| matches!(a, RuleAttribute::Table(_))));
    }

    /// Needs root: applies a route and a rule with the new options in a namespace and reads
    /// them back with iproute2.
    #[test]
    fn kernel_holds_the_new_route_and_rule_options() {
        use crate::netns::Netns;
        let ns = Netns::new("nrt").unwrap();
        for args in [
            // A veth pair: the test kernel may lack the dummy driver.
            &["link", "add", "d0", "type", "veth", "peer", "name", "d1"][..],
            &["link", "set", "d1", "up"],
            &["link", "set", "d0", "up"],
            &["addr", "add", "192.0.2.1/24", "dev", "d0"],
            &["addr", "add", "2001:db8:1::1/64", "dev", "d0", "nodad"],
        ] {
            ns.ip(args).unwrap();
        }
        let route: IpRoute = "10.77.0.0/16 via 192.0.2.254 dev d0 table 77 realms 3/4 rtt 300ms rttvar lock 400ms rto_min 250ms congctl lock reno features ecn quickack 1 window 1000 cwnd lock 10 ssthresh 20 reordering 5 fastopen_no_cookie 1"
            .parse()
            .unwrap();
        let route6: IpRoute = "2001:db8:77::/48 dev d0 table 77 expires 300 pref high"
            .parse()
            .unwrap();
        let rule: IpRule = "from 10.77.0.0/16 table 77 pref 77 realms 5 uidrange 1000-2000 ipproto tcp sport 1024 dport 80-90"
            .parse()
            .unwrap();
        ns.run(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime")
                .block_on(async move {
                    let h = crate::net::rtnl::connect().unwrap();
                    add_route(&h, &route).await.unwrap();
                    add_route(&h, &route6).await.unwrap();
                    add_rule(&h, &rule).await.unwrap();
                })
        });
        let v4 = ns.ip(&["route", "show", "table", "77"]).unwrap();
        for want in [
            "realms 3/4",
            "rtt 300ms",
            "rttvar lock 400ms",
            "rto_min 250ms",
            "congctl lock reno",
            "features ecn",
            "quickack 1",
            "window 1000",
            "cwnd lock 10",
            "ssthresh 20",
            "reordering 5",
            "fastopen_no_cookie 1",
        ] {
            assert!(v4.contains(want), "`{want}` in {v4}");
        }
        let v6 = ns.ip(&["-6", "route", "show", "table", "77"]).unwrap();
        assert!(
            v6.contains("2001:db8:77::/48") && v6.contains("expires "),
            "{v6}"
        );
        assert!(v6.contains("pref high"), "{v6}");
        let rules = ns.ip(&["rule", "show"]).unwrap();
        let line = rules
            .lines()
            .find(|l| l.starts_with("77:"))
            .unwrap_or_else(|| panic!("no rule 77 in {rules}"));
        for want in [
            "from 10.77.0.0/16",
            "uidrange 1000-2000",
            "ipproto tcp",
            "sport 1024",
            "dport 80-90",
            "realms 5",
            "lookup 77",
        ] {
            assert!(line.contains(want), "`{want}` in {line}");
        }
    }
}
