//! Link facts and next-hop MAC resolution through rtnetlink.
//!
//! The XDP program rewrites destination MACs (direct routing) and builds tunnel headers, so
//! user space must tell it an interface's index, MAC and addresses, and the MAC of the next
//! hop toward a backend: the backend itself when it is on-link, else its gateway. The MAC
//! comes from the kernel's neighbour table; when the entry is missing the kernel is asked to
//! resolve it (ARP / neighbour solicitation) and the table is polled until it answers.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::time::Duration;

use futures::StreamExt;
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload, NLM_F_REQUEST};
use rtnetlink::packet_route::link::LinkMessage;
use rtnetlink::packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteType, RouteVia,
};
use rtnetlink::packet_route::RouteNetlinkMessage;
use tokio::time::Instant;

use super::address::{self, family};
use super::link::{self, mac_from, LinkFacts};
use super::proto::IFNAME_MAX;
use super::rtnl::{self, errno, first};

/// First and longest pause between two looks at the neighbour table while resolving.
const POLL_MIN: Duration = Duration::from_millis(5);
const POLL_MAX: Duration = Duration::from_millis(100);

/// Port of the datagram used as a fallback resolution trigger (discard: harmless if it lands).
const DISCARD_PORT: u16 = 9;

#[derive(Debug, thiserror::Error)]
pub enum NeighError {
    #[error("no tokio runtime: Neighbours::new must be called inside a tokio runtime")]
    NoRuntime,
    #[error("cannot open a netlink route socket: {0}")]
    Socket(#[source] std::io::Error),
    #[error("interface {0} does not exist")]
    LinkNotFound(String),
    #[error("interface index {0} does not exist")]
    LinkIndexNotFound(u32),
    #[error(
        "interface {0} has no Ethernet MAC address: XDP next-hop rewriting needs an Ethernet device"
    )]
    NotEthernet(String),
    #[error("no route to {0}")]
    NoRoute(IpAddr),
    #[error("route to {dst} is of type {kind}: packets to it are not forwarded to a next hop")]
    Unroutable { dst: IpAddr, kind: String },
    #[error("{0} is an address of this host, not a remote backend")]
    LocalAddress(IpAddr),
    #[error("{}", unresolved_message(*.target, *.dst, .ifname, *.timeout))]
    Unresolved {
        /// The address whose MAC was looked for: `dst` or its gateway.
        target: IpAddr,
        dst: IpAddr,
        ifname: String,
        timeout: Duration,
    },
    #[error("netlink {what} failed: {source}")]
    Netlink {
        what: String,
        #[source]
        source: rtnetlink::Error,
    },
}

fn unresolved_message(target: IpAddr, dst: IpAddr, ifname: &str, timeout: Duration) -> String {
    let proto = match target {
        IpAddr::V4(_) => "ARP",
        IpAddr::V6(_) => "neighbour solicitation",
    };
    if target == dst {
        format!(
            "{dst} did not answer {proto} on {ifname} within {timeout:?}: \
             is the backend up and on this segment?"
        )
    } else {
        format!(
            "gateway {target} (next hop toward {dst}) did not answer {proto} on {ifname} \
             within {timeout:?}: is the gateway up and on this segment?"
        )
    }
}

/// Where to send a frame toward some destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextHop {
    /// Egress interface.
    pub ifindex: u32,
    /// The gateway, when the destination is not on-link.
    pub gateway: Option<IpAddr>,
    /// MAC of the gateway, or of the destination when on-link.
    pub mac: [u8; 6],
}

/// Result of a route lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Route {
    ifindex: u32,
    gateway: Option<IpAddr>,
}

/// A neighbour-table entry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    state: NeighbourState,
    lladdr: Option<Vec<u8>>,
}

impl Entry {
    /// The kernel itself would send to this MAC (STALE/DELAY/PROBE get re-confirmed as used).
    fn usable(&self) -> bool {
        matches!(
            self.state,
            NeighbourState::Reachable
                | NeighbourState::Stale
                | NeighbourState::Delay
                | NeighbourState::Probe
                | NeighbourState::Permanent
                | NeighbourState::Noarp
        )
    }

    /// Resolution is under way: wait rather than restart it.
    fn pending(&self) -> bool {
        self.state == NeighbourState::Incomplete
    }
}

/// Queries links, routes and neighbours of the network namespace it was created in.
#[derive(Debug, Clone)]
pub struct Neighbours {
    handle: rtnetlink::Handle,
    /// The kernel runs one dump at a time per netlink socket and answers a concurrent
    /// one EBUSY; lookups run concurrently (next hops), so their dumps take turns.
    dumps: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl Neighbours {
    /// Opens a netlink socket (in the calling thread's network namespace) and spawns its
    /// connection task. Must be called inside a tokio runtime with timers enabled.
    pub fn new() -> Result<Self, NeighError> {
        let handle = rtnl::connect().map_err(|e| match e {
            rtnl::ConnectError::NoRuntime => NeighError::NoRuntime,
            rtnl::ConnectError::Socket(e) => NeighError::Socket(e),
        })?;
        Ok(Neighbours {
            handle,
            dumps: Default::default(),
        })
    }

    /// Facts about the interface called `name`.
    pub async fn link(&self, name: &str) -> Result<LinkFacts, NeighError> {
        if name.is_empty() || name.len() > IFNAME_MAX {
            // The kernel rejects such names with EINVAL; the honest answer is "no such link".
            return Err(NeighError::LinkNotFound(name.to_owned()));
        }
        let msg = link::by_name(&self.handle, name)
            .await
            .map_err(|e| link_error(e, NeighError::LinkNotFound(name.to_owned()), name))?
            .ok_or_else(|| NeighError::LinkNotFound(name.to_owned()))?;
        self.facts(msg).await
    }

    /// Facts about the interface with index `ifindex`.
    pub async fn link_by_index(&self, ifindex: u32) -> Result<LinkFacts, NeighError> {
        let msg = self.link_message(ifindex).await?;
        self.facts(msg).await
    }

    /// The next hop toward `dst`: egress interface, gateway if any, and its MAC.
    ///
    /// Looks the route up (RTM_GETROUTE), then the neighbour entry of the gateway (or of `dst`
    /// when on-link). A missing or failed entry makes the kernel resolve it (RTM_NEWNEIGH with
    /// NTF_USE, or a datagram to the discard port if that is refused); the table is then
    /// polled until the entry is usable or `timeout` has passed.
    pub async fn resolve(&self, dst: IpAddr, timeout: Duration) -> Result<NextHop, NeighError> {
        let deadline = Instant::now() + timeout;
        let route = self.route(dst).await?;
        let target = route.gateway.unwrap_or(dst);
        let mut pause = POLL_MIN;
        let mut probed = false;
        loop {
            let entry = self.neighbour(route.ifindex, target).await?;
            tracing::trace!(%dst, %target, ifindex = route.ifindex, ?entry, "neighbour entry");
            match entry {
                Some(e) if e.usable() => {
                    if e.state == NeighbourState::Stale {
                        // Still usable, but ask the kernel to re-confirm it.
                        self.probe(route.ifindex, target).await;
                    }
                    let mac = self.ethernet(route.ifindex, e.lladdr.as_deref()).await?;
                    return Ok(NextHop {
                        ifindex: route.ifindex,
                        gateway: route.gateway,
                        mac,
                    });
                }
                Some(e) if e.pending() && probed => {}
                // Missing, FAILED (probes exhausted) or someone else's INCOMPLETE: (re)start.
                _ => {
                    self.probe(route.ifindex, target).await;
                    probed = true;
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(NeighError::Unresolved {
                    target,
                    dst,
                    ifname: self.link_name(route.ifindex).await,
                    timeout,
                });
            }
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(POLL_MAX);
        }
    }

    async fn link_message(&self, ifindex: u32) -> Result<LinkMessage, NeighError> {
        let what = format!("#{ifindex}");
        link::by_index(&self.handle, ifindex)
            .await
            .map_err(|e| link_error(e, NeighError::LinkIndexNotFound(ifindex), &what))?
            .ok_or(NeighError::LinkIndexNotFound(ifindex))
    }

    /// The interface's name for messages; its index when it cannot be had.
    async fn link_name(&self, ifindex: u32) -> String {
        match self.link_message(ifindex).await {
            Ok(msg) => link::name(&msg).unwrap_or_else(|| format!("#{ifindex}")),
            Err(_) => format!("#{ifindex}"),
        }
    }

    async fn facts(&self, msg: LinkMessage) -> Result<LinkFacts, NeighError> {
        let ifindex = msg.header.index;
        let name = link::name(&msg).unwrap_or_else(|| format!("#{ifindex}"));
        let mac = link::mac(&msg).ok_or_else(|| NeighError::NotEthernet(name.clone()))?;
        let turn = self.dumps.lock().await;
        let addresses = address::list(&self.handle, ifindex).await;
        drop(turn);
        let (ipv4, ipv6) = addresses.map_err(|source| NeighError::Netlink {
            what: format!("address dump of interface #{ifindex}"),
            source,
        })?;
        Ok(LinkFacts {
            ifindex,
            name,
            mac,
            ipv4,
            ipv6,
        })
    }

    /// RTM_GETROUTE for `dst`: the kernel's own forwarding decision.
    async fn route(&self, dst: IpAddr) -> Result<Route, NeighError> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = family(dst);
        msg.header.destination_prefix_length = match dst {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        msg.attributes
            .push(RouteAttribute::Destination(RouteAddress::from(dst)));
        let reply = first(self.handle.route().get(msg).execute())
            .await
            .map_err(|source| match errno(&source) {
                Some(libc::ENETUNREACH | libc::EHOSTUNREACH | libc::ESRCH) => {
                    NeighError::NoRoute(dst)
                }
                Some(libc::EACCES) => NeighError::Unroutable {
                    dst,
                    kind: "prohibit".into(),
                },
                // IPv4 reports blackhole routes as EINVAL (our request itself is well-formed).
                Some(libc::EINVAL) => NeighError::Unroutable {
                    dst,
                    kind: "blackhole".into(),
                },
                _ => NeighError::Netlink {
                    what: format!("route lookup for {dst}"),
                    source,
                },
            })?
            .ok_or(NeighError::NoRoute(dst))?;
        route_from(dst, &reply)
    }

    /// The neighbour entry for `addr` on `ifindex` (a single-entry RTM_GETNEIGH).
    async fn neighbour(&self, ifindex: u32, addr: IpAddr) -> Result<Option<Entry>, NeighError> {
        let mut msg = NeighbourMessage::default();
        msg.header.family = family(addr);
        msg.header.ifindex = ifindex;
        msg.attributes
            .push(NeighbourAttribute::Destination(neighbour_address(addr)));
        let mut req = NetlinkMessage::from(RouteNetlinkMessage::GetNeighbour(msg));
        req.header.flags = NLM_F_REQUEST;
        let failed = |source| NeighError::Netlink {
            what: format!("neighbour lookup of {addr} on interface #{ifindex}"),
            source,
        };
        let mut handle = self.handle.clone();
        let mut replies = handle.request(req).map_err(failed)?;
        while let Some(reply) = replies.next().await {
            match reply.payload {
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewNeighbour(m)) => {
                    return Ok(Some(entry_from(m)));
                }
                NetlinkPayload::Error(e) if e.code.map(|c| c.get().abs()) == Some(libc::ENOENT) => {
                    return Ok(None);
                }
                NetlinkPayload::Error(e) => return Err(failed(rtnetlink::Error::NetlinkError(e))),
                _ => {}
            }
        }
        Ok(None)
    }

    /// Makes the kernel (re)start resolving `addr` on `ifindex`; failures are only logged
    /// since polling reports the outcome.
    async fn probe(&self, ifindex: u32, addr: IpAddr) {
        // NTF_USE: "as if a packet were sent to it", creating the entry if needed.
        let request = self
            .handle
            .neighbours()
            .add(ifindex, addr)
            .state(NeighbourState::None)
            .flags(NeighbourFlags::Use)
            .replace();
        match request.execute().await {
            Ok(()) => tracing::debug!(%addr, ifindex, "neighbour resolution triggered"),
            Err(e) => {
                tracing::debug!(%addr, ifindex, "NTF_USE refused ({e}); probing with a datagram");
                let ifname = self.link_name(ifindex).await;
                if let Err(e) = datagram_probe(&ifname, ifindex, addr) {
                    tracing::warn!(%addr, %ifname, "cannot trigger neighbour resolution: {e}");
                }
            }
        }
    }

    /// The entry's MAC, which must be an Ethernet one.
    async fn ethernet(&self, ifindex: u32, lladdr: Option<&[u8]>) -> Result<[u8; 6], NeighError> {
        match lladdr.and_then(mac_from) {
            Some(mac) => Ok(mac),
            None => Err(NeighError::NotEthernet(self.link_name(ifindex).await)),
        }
    }
}

/// ENODEV becomes `missing`; anything else a netlink error about interface `what`.
fn link_error(e: rtnetlink::Error, missing: NeighError, what: &str) -> NeighError {
    match errno(&e) {
        Some(libc::ENODEV) => missing,
        _ => NeighError::Netlink {
            what: format!("link lookup of {what}"),
            source: e,
        },
    }
}

fn neighbour_address(addr: IpAddr) -> NeighbourAddress {
    match addr {
        IpAddr::V4(a) => NeighbourAddress::Inet(a),
        IpAddr::V6(a) => NeighbourAddress::Inet6(a),
    }
}

/// Egress interface and gateway out of an RTM_NEWROUTE reply.
fn route_from(dst: IpAddr, msg: &RouteMessage) -> Result<Route, NeighError> {
    match msg.header.kind {
        RouteType::Unicast => {}
        RouteType::Local => return Err(NeighError::LocalAddress(dst)),
        kind => {
            return Err(NeighError::Unroutable {
                dst,
                kind: format!("{kind:?}").to_lowercase(),
            })
        }
    }
    let oif = msg.attributes.iter().find_map(|a| match a {
        RouteAttribute::Oif(i) => Some(*i),
        _ => None,
    });
    if let Some(ifindex) = oif {
        let gateway = gateway_of(&msg.attributes);
        return Ok(Route { ifindex, gateway });
    }
    // Multipath replies carry the chosen path as a nexthop list.
    msg.attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::MultiPath(hops) => hops.first(),
            _ => None,
        })
        .map(|hop| Route {
            ifindex: hop.interface_index,
            gateway: gateway_of(&hop.attributes),
        })
        .ok_or(NeighError::NoRoute(dst))
}

/// RTA_GATEWAY, or RTA_VIA (an IPv4 route through an IPv6 next hop, RFC 5549).
fn gateway_of(attributes: &[RouteAttribute]) -> Option<IpAddr> {
    attributes.iter().find_map(|a| match a {
        RouteAttribute::Gateway(RouteAddress::Inet(g)) => Some(IpAddr::V4(*g)),
        RouteAttribute::Gateway(RouteAddress::Inet6(g)) => Some(IpAddr::V6(*g)),
        RouteAttribute::Via(RouteVia::Inet(g)) => Some(IpAddr::V4(*g)),
        RouteAttribute::Via(RouteVia::Inet6(g)) => Some(IpAddr::V6(*g)),
        _ => None,
    })
}

fn entry_from(msg: NeighbourMessage) -> Entry {
    let lladdr = msg.attributes.into_iter().find_map(|a| match a {
        NeighbourAttribute::LinkLayerAddress(l) => Some(l),
        _ => None,
    });
    Entry {
        state: msg.header.state,
        lladdr,
    }
}

/// Sends an empty datagram to `addr`'s discard port out of `ifname`: the kernel resolves the
/// neighbour to transmit it. Used when RTM_NEWNEIGH is refused (no CAP_NET_ADMIN).
fn datagram_probe(ifname: &str, ifindex: u32, addr: IpAddr) -> std::io::Result<()> {
    let (local, remote): (SocketAddr, SocketAddr) = match addr {
        IpAddr::V4(a) => (
            (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddrV4::new(a, DISCARD_PORT).into(),
        ),
        IpAddr::V6(a) => {
            // Link-local next hops (usual for IPv6 gateways) need the interface as scope.
            let scope = if a.is_unicast_link_local() {
                ifindex
            } else {
                0
            };
            (
                (Ipv6Addr::UNSPECIFIED, 0).into(),
                SocketAddrV6::new(a, DISCARD_PORT, 0, scope).into(),
            )
        }
    };
    let socket = UdpSocket::bind(local)?;
    socket2::SockRef::from(&socket).bind_device(Some(ifname.as_bytes()))?;
    socket.send_to(&[], remote)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    //! These tests need root: they build namespaces and veths with [`crate::netns`].

    use super::*;
    use crate::netns::{veth, Netns};

    /// Runs an async test body on a current-thread runtime inside `ns`.
    fn in_ns<R, F>(ns: &Netns, body: impl FnOnce() -> F + Send + 'static) -> R
    where
        R: Send + 'static,
        F: std::future::Future<Output = R>,
    {
        ns.run(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime")
                .block_on(body())
        })
    }

    fn parse_mac(s: &str) -> [u8; 6] {
        let bytes: Vec<u8> = s
            .trim()
            .split(':')
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect();
        bytes.try_into().unwrap()
    }

    /// MAC of `ifname` as `ns` reports it.
    fn mac_of(ns: &Netns, ifname: &str) -> [u8; 6] {
        parse_mac(
            &ns.sh(&format!("cat /sys/class/net/{ifname}/address"))
                .unwrap(),
        )
    }

    /// Two namespaces joined by a veth `n0` (in `a`) <-> `n1` (in `b`).
    fn pair(tag: &str) -> (Netns, Netns) {
        let a = Netns::new(&format!("{tag}a")).unwrap();
        let b = Netns::new(&format!("{tag}b")).unwrap();
        veth(&a, "n0", &b, "n1").unwrap();
        (a, b)
    }

    fn resolve_in(ns: &Netns, dst: &str, timeout: Duration) -> Result<NextHop, NeighError> {
        let dst: IpAddr = dst.parse().unwrap();
        in_ns(ns, move || async move {
            Neighbours::new()?.resolve(dst, timeout).await
        })
    }

    fn ifindex_in(ns: &Netns, ifname: &str) -> u32 {
        let out = ns.sh(&format!("cat /sys/class/net/{ifname}/ifindex"));
        out.unwrap().trim().parse().unwrap()
    }

    #[test]
    fn new_outside_a_runtime_is_an_error() {
        assert!(matches!(Neighbours::new(), Err(NeighError::NoRuntime)));
    }

    #[test]
    fn link_facts_of_a_veth() {
        let (a, _b) = pair("nlf");
        a.ip(&["link", "set", "n0", "address", "02:00:5e:10:00:01"])
            .unwrap();
        for (addr, extra) in [
            ("198.18.20.1/24", None),
            ("198.18.20.9/24", None),
            ("fd00:20::1/64", Some("nodad")),
        ] {
            let mut args = vec!["addr", "add", addr, "dev", "n0"];
            args.extend(extra);
            a.ip(&args).unwrap();
        }
        let ifindex = ifindex_in(&a, "n0");
        let (by_name, by_index, missing) = in_ns(&a, move || async move {
            let n = Neighbours::new().unwrap();
            (
                n.link("n0").await,
                n.link_by_index(ifindex).await,
                n.link("eth9").await,
            )
        });
        let facts = by_name.unwrap();
        assert_eq!(facts.ifindex, ifindex);
        assert_eq!(facts.name, "n0");
        assert_eq!(facts.mac, [0x02, 0x00, 0x5e, 0x10, 0x00, 0x01]);
        assert_eq!(
            facts.ipv4,
            [Ipv4Addr::new(198, 18, 20, 1), Ipv4Addr::new(198, 18, 20, 9)]
        );
        assert_eq!(facts.ipv6.first(), Some(&"fd00:20::1".parse().unwrap()));
        // The link-local address (if already there) comes after the global one.
        assert!(facts.ipv6[1..].iter().all(Ipv6Addr::is_unicast_link_local));
        assert_eq!(by_index.unwrap(), facts);

        let err = missing.unwrap_err();
        assert!(
            matches!(err, NeighError::LinkNotFound(ref n) if n == "eth9"),
            "{err:?}"
        );
        assert_eq!(err.to_string(), "interface eth9 does not exist");
    }

    #[test]
    fn link_errors() {
        let a = Netns::new("nle").unwrap();
        let (long, index, lo) = in_ns(&a, || async {
            let n = Neighbours::new().unwrap();
            (
                n.link("a-name-longer-than-ifnamsiz").await,
                n.link_by_index(4242).await,
                n.link("lo").await,
            )
        });
        assert!(matches!(long, Err(NeighError::LinkNotFound(_))), "{long:?}");
        assert!(
            matches!(index, Err(NeighError::LinkIndexNotFound(4242))),
            "{index:?}"
        );
        assert!(
            matches!(lo, Err(NeighError::NotEthernet(ref n)) if n == "lo"),
            "{lo:?}"
        );
    }

    #[test]
    fn resolves_on_link_ipv4() {
        let (a, b) = pair("nr4");
        a.ip(&["addr", "add", "198.18.21.1/24", "dev", "n0"])
            .unwrap();
        b.ip(&["addr", "add", "198.18.21.2/24", "dev", "n1"])
            .unwrap();
        // A fresh namespace has no entry: resolve must make the kernel ARP.
        assert_eq!(a.ip(&["neigh", "show", "dev", "n0"]).unwrap().trim(), "");
        let hop = resolve_in(&a, "198.18.21.2", Duration::from_secs(3)).unwrap();
        assert_eq!(hop.mac, mac_of(&b, "n1"));
        assert_eq!(hop.ifindex, ifindex_in(&a, "n0"));
        assert_eq!(hop.gateway, None);
        // Once known, a second resolve is immediate.
        let again = resolve_in(&a, "198.18.21.2", Duration::ZERO).unwrap();
        assert_eq!(again, hop);
    }

    #[test]
    fn resolves_on_link_ipv6() {
        let (a, b) = pair("nr6");
        a.ip(&["addr", "add", "fd00:21::1/64", "dev", "n0", "nodad"])
            .unwrap();
        b.ip(&["addr", "add", "fd00:21::2/64", "dev", "n1", "nodad"])
            .unwrap();
        let hop = resolve_in(&a, "fd00:21::2", Duration::from_secs(3)).unwrap();
        assert_eq!(hop.mac, mac_of(&b, "n1"));
        assert_eq!(hop.ifindex, ifindex_in(&a, "n0"));
        assert_eq!(hop.gateway, None);
    }

    #[test]
    fn resolves_through_a_gateway() {
        let (a, b) = pair("nrg");
        a.ip(&["addr", "add", "198.18.22.1/24", "dev", "n0"])
            .unwrap();
        b.ip(&["addr", "add", "198.18.22.2/24", "dev", "n1"])
            .unwrap();
        a.ip(&["addr", "add", "fd00:22::1/64", "dev", "n0", "nodad"])
            .unwrap();
        b.ip(&["addr", "add", "fd00:22::2/64", "dev", "n1", "nodad"])
            .unwrap();
        a.ip(&["route", "add", "10.9.0.0/24", "via", "198.18.22.2"])
            .unwrap();
        a.ip(&["-6", "route", "add", "fd00:99::/64", "via", "fd00:22::2"])
            .unwrap();
        let gw_mac = mac_of(&b, "n1");
        let n0 = ifindex_in(&a, "n0");

        let hop = resolve_in(&a, "10.9.0.7", Duration::from_secs(3)).unwrap();
        let want_gw = Some("198.18.22.2".parse().unwrap());
        assert_eq!((hop.ifindex, hop.gateway, hop.mac), (n0, want_gw, gw_mac));

        let hop = resolve_in(&a, "fd00:99::7", Duration::from_secs(3)).unwrap();
        let want_gw = Some("fd00:22::2".parse().unwrap());
        assert_eq!((hop.ifindex, hop.gateway, hop.mac), (n0, want_gw, gw_mac));
    }

    #[test]
    fn unresolvable_addresses_time_out() {
        let (a, _b) = pair("nru");
        a.ip(&["addr", "add", "198.18.23.1/24", "dev", "n0"])
            .unwrap();
        a.ip(&["addr", "add", "fd00:23::1/64", "dev", "n0", "nodad"])
            .unwrap();
        a.ip(&["route", "add", "10.9.1.0/24", "via", "198.18.23.77"])
            .unwrap();
        let timeout = Duration::from_millis(1500);
        for (dst, target) in [
            ("198.18.23.99", "198.18.23.99"),
            ("fd00:23::99", "fd00:23::99"),
            ("10.9.1.5", "198.18.23.77"),
        ] {
            let started = std::time::Instant::now();
            let err = resolve_in(&a, dst, timeout).unwrap_err();
            let took = started.elapsed();
            assert!(took >= timeout, "{dst}: gave up after {took:?}");
            assert!(
                took < timeout + Duration::from_secs(1),
                "{dst}: took {took:?}"
            );
            match &err {
                NeighError::Unresolved {
                    target: t, ifname, ..
                } => {
                    assert_eq!(t.to_string(), target);
                    assert_eq!(ifname, "n0");
                }
                other => panic!("{dst}: unexpected {other:?}"),
            }
            let msg = err.to_string();
            assert!(
                msg.contains(target) && msg.contains("on n0 within 1.5s"),
                "{msg}"
            );
        }
        let msg = resolve_in(&a, "198.18.23.99", Duration::from_secs(3))
            .unwrap_err()
            .to_string();
        assert_eq!(
            msg,
            "198.18.23.99 did not answer ARP on n0 within 3s: \
             is the backend up and on this segment?"
        );
    }

    #[test]
    fn route_errors() {
        let (a, _b) = pair("nre");
        a.ip(&["addr", "add", "198.18.24.1/24", "dev", "n0"])
            .unwrap();
        a.ip(&["addr", "add", "fd00:24::1/64", "dev", "n0", "nodad"])
            .unwrap();
        a.ip(&["route", "add", "blackhole", "10.66.0.0/16"])
            .unwrap();
        a.ip(&["route", "add", "prohibit", "10.67.0.0/16"]).unwrap();
        a.ip(&["-6", "route", "add", "blackhole", "fd00:66::/64"])
            .unwrap();
        let no_route = resolve_in(&a, "10.200.0.1", Duration::from_secs(1));
        assert!(
            matches!(no_route, Err(NeighError::NoRoute(ip)) if ip.to_string() == "10.200.0.1"),
            "{no_route:?}"
        );
        let no_route6 = resolve_in(&a, "fd00:dead::1", Duration::from_secs(1));
        assert!(
            matches!(no_route6, Err(NeighError::NoRoute(_))),
            "{no_route6:?}"
        );
        for dst in ["198.18.24.1", "fd00:24::1"] {
            let local = resolve_in(&a, dst, Duration::from_secs(1));
            assert!(
                matches!(local, Err(NeighError::LocalAddress(_))),
                "{local:?}"
            );
        }
        for (dst, want) in [
            ("10.66.1.1", "blackhole"),
            ("10.67.1.1", "prohibit"),
            ("fd00:66::1", "blackhole"),
        ] {
            let r = resolve_in(&a, dst, Duration::from_secs(1));
            assert!(
                matches!(r, Err(NeighError::Unroutable { ref kind, .. }) if kind == want),
                "{dst}: {r:?}"
            );
        }
    }
}
