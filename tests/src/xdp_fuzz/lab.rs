//! The programmed service set the XDP fuzzer runs against, the namespace whose FIB
//! routes NAT replies, and the seed frames (fixture-style frames of every service).

use std::net::IpAddr;

use lb_daemon::{
    dataplane::{BackendSpec, Capacity, ForwardMode, Protocol, ServiceSpec},
    netns::Netns,
};

use crate::{
    frames::{self, Flow, Icmp, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN},
    harness::{service, TestDataplane, CLIENT_MAC, LB_MAC, LB_V4, LB_V6},
};

pub const CLIENT4: &str = "203.0.113.7";
pub const CLIENT6: &str = "2001:db8:ff::7";
/// Addresses no service uses (the LB's own, a neighbour's).
pub const OTHERS: [&str; 4] = [LB_V4, LB_V6, "198.18.0.200", "2001:db8::200"];
/// VIPs in no-accept mode without a service (`lb_strict_vips`); [`strict_vips`] adds
/// the first service's VIP.
pub const STRICT: [&str; 2] = ["198.18.7.1", "2001:db8:7::1"];
pub const REAL_PORT: u16 = 8080;
pub const SNAT4: &str = LB_V4;
/// A router on the reals' side (the source of ICMP errors about NAT'ed flows).
const ROUTER_IN4: &str = "198.18.0.254";
const ROUTER_IN6: &str = "2001:db8::fe";
const PAYLOAD: &[u8] = b"fuzz me, backend";

/// The services: DR, TUN (both outer families) and NAT (plain and full-NAT) on IPv4
/// and IPv6 VIPs, three backends each, one wildcard-port service.
pub fn services() -> Vec<ServiceSpec> {
    let ws = |addrs: &[&'static str]| -> Vec<(&'static str, u32)> {
        addrs
            .iter()
            .enumerate()
            .map(|(i, a)| (*a, 1 + i as u32))
            .collect()
    };
    let nat = |vip, proto, reals: &[&'static str], snat: Option<&str>| {
        let mut s = service(
            vip,
            80,
            proto,
            ForwardMode::Nat {
                snat: snat.map(|a| a.parse().expect("address")),
            },
            &ws(reals),
        );
        for b in &mut s.backends {
            b.port = REAL_PORT;
        }
        s
    };
    let dr4 = ["198.18.0.21", "198.18.0.22", "198.18.0.23"];
    let dr6 = ["2001:db8::21", "2001:db8::22", "2001:db8::23"];
    vec![
        service(
            "198.18.1.100",
            80,
            Protocol::Tcp,
            ForwardMode::Dr,
            &ws(&dr4),
        ),
        service(
            "198.18.1.100",
            53,
            Protocol::Udp,
            ForwardMode::Dr,
            &ws(&dr4),
        ),
        service(
            "2001:db8:1::100",
            80,
            Protocol::Tcp,
            ForwardMode::Dr,
            &ws(&dr6),
        ),
        // Wildcard port: every UDP port of this VIP.
        service(
            "2001:db8:1::100",
            0,
            Protocol::Udp,
            ForwardMode::Dr,
            &ws(&dr6),
        ),
        service(
            "198.18.1.101",
            443,
            Protocol::Tcp,
            ForwardMode::Tun,
            &ws(&["198.18.0.31", "198.18.0.32", "198.18.0.33"]),
        ),
        // IPv4 in IPv6.
        service(
            "198.18.1.101",
            53,
            Protocol::Udp,
            ForwardMode::Tun,
            &ws(&["2001:db8::31", "2001:db8::32", "2001:db8::33"]),
        ),
        service(
            "2001:db8:1::101",
            443,
            Protocol::Tcp,
            ForwardMode::Tun,
            &ws(&["2001:db8::34", "2001:db8::35", "2001:db8::36"]),
        ),
        nat(
            "198.18.1.102",
            Protocol::Tcp,
            &["198.18.0.41", "198.18.0.42", "198.18.0.43"],
            None,
        ),
        nat(
            "198.18.1.102",
            Protocol::Udp,
            &["198.18.0.51", "198.18.0.52", "198.18.0.53"],
            Some(SNAT4),
        ),
        nat(
            "2001:db8:1::102",
            Protocol::Tcp,
            &["2001:db8::41", "2001:db8::42", "2001:db8::43"],
            None,
        ),
    ]
}

/// The service a TCP/UDP packet to `dst`:`dport` is for: the exact port, else the
/// wildcard one (as documented for `lb_services`).
pub fn find(specs: &[ServiceSpec], dst: IpAddr, proto: u8, dport: u16) -> Option<&ServiceSpec> {
    let matches = |s: &&ServiceSpec, port| {
        s.id.vip == dst && s.id.port == port && proto_number(s.id.protocol) == proto
    };
    specs
        .iter()
        .find(|s| matches(s, dport))
        .or_else(|| specs.iter().find(|s| matches(s, 0)))
}

pub fn proto_number(p: Protocol) -> u8 {
    p.number()
}

/// The backend of `spec` whose next-hop MAC is `mac`.
pub fn backend_by_mac<'a>(spec: &'a ServiceSpec, mac: &[u8]) -> Option<&'a BackendSpec> {
    spec.backends.iter().find(|b| b.egress.next_hop_mac == mac)
}

/// Whether `(src, sport, proto)` is a real of a NAT service without SNAT: its replies
/// are translated even without a translation entry (`lb_nat_reals`).
pub fn is_nat_real(specs: &[ServiceSpec], src: IpAddr, sport: u16, proto: u8) -> bool {
    specs.iter().any(|s| {
        matches!(s.mode, ForwardMode::Nat { .. })
            && proto_number(s.id.protocol) == proto
            && s.backends.iter().any(|b| b.addr == src && b.port == sport)
    })
}

/// A namespace whose FIB sends the fixture clients out of `out0` (static neighbours),
/// forwarding on, the LB's own addresses local: NAT replies are routed there.
pub fn fib_namespace() -> anyhow::Result<Netns> {
    let ns = Netns::new("xdpfz")?;
    ns.sh(&format!(
        "ip link add out0 address 02:0f:00:00:00:01 type veth peer name out1 \
         && ip link set out0 up && ip link set out1 up \
         && ip addr add 203.0.113.1/24 dev out0 && ip addr add 2001:db8:ff::1/64 dev out0 nodad \
         && ip addr add {LB_V4}/24 dev out1 && ip addr add {LB_V6}/64 dev out1 nodad \
         && ip neigh add {CLIENT4} lladdr 02:c1:00:00:00:01 dev out0 nud permanent \
         && ip -6 neigh add {CLIENT6} lladdr 02:c1:00:00:00:01 dev out0 nud permanent \
         && sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1"
    ))?;
    Ok(ns)
}

/// Loads the program and programs [`services`] (call inside [`fib_namespace`]).
pub fn dataplane(specs: &[ServiceSpec]) -> anyhow::Result<TestDataplane> {
    let mut t = TestDataplane::with_capacity(Capacity {
        maglev_slots: 8 * 65537,
        conntrack: 4096,
        nat: 4096,
        ..Capacity::default()
    });
    for s in specs {
        t.dp.apply_service(s)
            .map_err(|e| anyhow::anyhow!("programming {:?}: {e}", s.id))?;
    }
    t.dp.set_strict_vips(&strict_vips(specs))
        .map_err(|e| anyhow::anyhow!("writing lb_strict_vips: {e}"))?;
    Ok(t)
}

/// The VIPs in no-accept mode: [`STRICT`] and the first service's VIP (whose other
/// ports, ICMP and other protocols are then dropped, its served port forwarded).
pub fn strict_vips(specs: &[ServiceSpec]) -> std::collections::BTreeSet<IpAddr> {
    STRICT
        .iter()
        .map(|a| a.parse().expect("address"))
        .chain(specs.first().map(|s| s.id.vip))
        .collect()
}

/// Whether `addr` is one of [`strict_vips`].
pub fn is_strict(specs: &[ServiceSpec], addr: IpAddr) -> bool {
    specs.first().is_some_and(|s| s.id.vip == addr) || STRICT.iter().any(|a| a.parse() == Ok(addr))
}

fn client_of(vip: IpAddr) -> &'static str {
    if vip.is_ipv4() {
        CLIENT4
    } else {
        CLIENT6
    }
}

fn flow_of(proto: Protocol, src: &str, sport: u16, dst: &str, dport: u16) -> Flow {
    crate::harness::service_flow(proto, src, sport, dst, dport)
}

/// Seed frames: for every service, client packets (SYN, ACK, FIN, RST; with and
/// without a VLAN tag; IPv4 with options); NAT replies and ICMP errors quoting NAT'ed
/// flows; and frames for no VIP (the LB's own addresses, ARP, VRRP, ICMP echo).
pub fn seeds(specs: &[ServiceSpec]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for (i, s) in specs.iter().enumerate() {
        let vip = s.id.vip.to_string();
        let client = client_of(s.id.vip);
        let port = if s.id.port == 0 { 5353 } else { s.id.port };
        for (j, flags) in [TCP_SYN, TCP_ACK, TCP_ACK | TCP_FIN, TCP_RST]
            .into_iter()
            .enumerate()
        {
            let sport = 40000 + (i * 10 + j) as u16;
            let flow = flow_of(s.id.protocol, client, sport, &vip, port).with_flags(flags);
            out.push(frames::frame(LB_MAC, CLIENT_MAC, None, &flow, PAYLOAD));
            out.push(frames::frame(LB_MAC, CLIENT_MAC, Some(100), &flow, PAYLOAD));
            if let ForwardMode::Nat { snat } = s.mode {
                let real = s.backends[j % s.backends.len()].addr.to_string();
                // The real's reply to a client.
                let reply = flow_of(s.id.protocol, &real, REAL_PORT, client, sport)
                    .with_flags(TCP_SYN | TCP_ACK);
                out.push(frames::frame(LB_MAC, CLIENT_MAC, None, &reply, PAYLOAD));
                // An ICMP error about the translated packet, from the reals' side.
                let src = snat.map(|a| a.to_string()).unwrap_or(client.to_string());
                let sent = flow_of(s.id.protocol, &src, sport, &real, REAL_PORT);
                let quote = frames::datagram(&sent, PAYLOAD);
                let router = if s.id.vip.is_ipv4() {
                    ROUTER_IN4
                } else {
                    ROUTER_IN6
                };
                let icmp = if s.id.vip.is_ipv4() {
                    Icmp {
                        kind: 3,
                        code: 4,
                        rest: [0, 0, 0x05, 0xdc],
                    }
                } else {
                    Icmp {
                        kind: 2,
                        code: 0,
                        rest: [0, 0, 0x05, 0xdc],
                    }
                };
                out.push(frames::icmp_error_frame(
                    LB_MAC,
                    CLIENT_MAC,
                    router.parse().expect("address"),
                    src.parse().expect("address"),
                    icmp,
                    &quote[..quote.len().min(48)],
                ));
            }
        }
        if s.id.vip.is_ipv4() {
            // IPv4 options (two NOPs, an end of list).
            let flow = flow_of(s.id.protocol, client, 41000 + i as u16, &vip, port);
            let seg = frames::l4(&flow, PAYLOAD);
            let mut f = frames::eth(LB_MAC, CLIENT_MAC, None, frames::ETH_P_IP);
            if let (IpAddr::V4(src), IpAddr::V4(dst)) = (flow.src, flow.dst) {
                f.extend(frames::ipv4_header(
                    src,
                    dst,
                    flow.proto,
                    seg.len(),
                    &[1, 1, 1, 0],
                    0,
                    64,
                ));
            }
            f.extend(seg);
            out.push(f);
        }
    }
    // To VIPs in no-accept mode: TCP, an echo request, a neighbour solicitation.
    for strict in STRICT {
        let v6 = strict.contains(':');
        let client = if v6 { CLIENT6 } else { CLIENT4 };
        out.push(frames::frame(
            LB_MAC,
            CLIENT_MAC,
            None,
            &Flow::tcp(client, 50002, strict, 80),
            PAYLOAD,
        ));
        let (src, dst): (IpAddr, IpAddr) = (
            client.parse().expect("address"),
            strict.parse().expect("address"),
        );
        let kinds: &[u8] = if v6 { &[128, 135] } else { &[8] };
        for &kind in kinds {
            let body = [kind, 0, 0, 0, 0, 1, 0, 1];
            let mut f = frames::eth(LB_MAC, CLIENT_MAC, None, frames::ethertype_of(dst));
            match (src, dst) {
                (IpAddr::V4(s), IpAddr::V4(d)) => f.extend(frames::ipv4_header(
                    s,
                    d,
                    frames::ICMP,
                    body.len(),
                    &[],
                    0,
                    64,
                )),
                (IpAddr::V6(s), IpAddr::V6(d)) => {
                    f.extend(frames::ipv6_header(s, d, frames::ICMPV6, body.len(), 255))
                }
                _ => unreachable!("one family"),
            }
            f.extend(body);
            out.push(f);
        }
    }
    // Not for a VIP.
    for other in OTHERS {
        let client = if other.contains(':') {
            CLIENT6
        } else {
            CLIENT4
        };
        out.push(frames::frame(
            LB_MAC,
            CLIENT_MAC,
            None,
            &Flow::tcp(client, 50000, other, 22),
            PAYLOAD,
        ));
        out.push(frames::frame(
            LB_MAC,
            CLIENT_MAC,
            None,
            &Flow::udp(client, 50001, other, 80),
            PAYLOAD,
        ));
    }
    out.push(frames::arp_request(
        CLIENT_MAC,
        CLIENT4.parse().expect("address"),
        "198.18.1.100".parse().expect("address"),
    ));
    let echo = Icmp {
        kind: 8,
        code: 0,
        rest: [0, 1, 0, 1],
    };
    out.push(frames::icmp_error_frame(
        LB_MAC,
        CLIENT_MAC,
        CLIENT4.parse().expect("address"),
        "198.18.1.100".parse().expect("address"),
        echo,
        b"ping",
    ));
    // VRRP advert (protocol 112) to 224.0.0.18.
    let mut vrrp = frames::eth(
        [0x01, 0x00, 0x5e, 0, 0, 0x12],
        CLIENT_MAC,
        None,
        frames::ETH_P_IP,
    );
    vrrp.extend(frames::ipv4_header(
        "198.18.0.2".parse().expect("address"),
        "224.0.0.18".parse().expect("address"),
        frames::VRRP,
        8,
        &[],
        0,
        255,
    ));
    vrrp.extend([0x31, 51, 100, 1, 0, 100, 0, 0]);
    out.push(vrrp);
    out
}

/// The tunnel source of a backend's family.
pub fn tunnel_src(backend: IpAddr) -> IpAddr {
    if backend.is_ipv4() {
        LB_V4.parse().expect("address")
    } else {
        LB_V6.parse().expect("address")
    }
}
