//! What a frame is, read independently of the XDP program (the fuzzer's model): which
//! frames are malformed (dropped whatever their address), which are TCP/UDP or ICMP
//! packets (and so may be for a VIP), and which are none of the program's business.
//!
//! The rules follow `lb-ebpf/src/packet.rs`'s documented behaviour (docs/reliability.md,
//! "What a frame for a VIP is"), written again here from the header formats.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use lb_common::Counter;

use crate::frames::{ETH_P_8021Q, ETH_P_IP, ETH_P_IPV6, ICMP, ICMPV6, TCP, UDP};

/// The IP and transport headers of a packet.
#[derive(Debug, Clone, Copy)]
pub struct Ip {
    /// Offset of the IP header (14, or 18 behind a VLAN tag).
    pub l3: usize,
    pub vlan: Option<u16>,
    pub v4: bool,
    /// IPv4 header length with options; 40 for IPv6.
    pub header_len: usize,
    /// The datagram's length as its header claims it (IPv4 total length, IPv6 payload
    /// length + 40).
    pub claimed_len: usize,
    pub proto: u8,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// Transport ports (host order) and TCP flags, for TCP and UDP.
    pub sport: u16,
    pub dport: u16,
    pub tcp_flags: u8,
}

impl Ip {
    pub fn l4(&self) -> usize {
        self.l3 + self.header_len
    }

    /// Where the datagram ends in the frame (bytes after it are Ethernet padding).
    pub fn end(&self) -> usize {
        self.l3 + self.claimed_len
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Class {
    /// Dropped whatever its addresses, and counted by this counter.
    Malformed(Counter),
    /// Not TCP, UDP or ICMP, or a fragment, or IPv6 with extension headers: the
    /// kernel's. Passed untouched (counted by the counter, if any).
    Other(Option<Counter>),
    /// ICMP or ICMPv6: passed untouched unless it is an error quoting a NAT'ed flow.
    Icmp(Ip),
    /// A TCP or UDP packet with its whole header: for a VIP when its destination,
    /// protocol and port are a service's.
    L4(Ip),
}

fn be16(f: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([f[at], f[at + 1]])
}

pub fn classify(f: &[u8]) -> Class {
    if f.len() < 14 {
        return Class::Malformed(Counter::TruncatedEth);
    }
    let (l3, vlan, ethertype) = if be16(f, 12) == ETH_P_8021Q {
        if f.len() < 18 {
            return Class::Malformed(Counter::TruncatedEth);
        }
        (18, Some(be16(f, 14)), be16(f, 16))
    } else {
        (14, None, be16(f, 12))
    };
    match ethertype {
        ETH_P_IP => ipv4(f, l3, vlan),
        ETH_P_IPV6 => ipv6(f, l3, vlan),
        _ => Class::Other(None),
    }
}

fn ipv4(f: &[u8], l3: usize, vlan: Option<u16>) -> Class {
    if f.len() < l3 + 20 {
        return Class::Malformed(Counter::TruncatedIpv4);
    }
    let h = &f[l3..];
    let ihl = (h[0] & 0x0f) as usize * 4;
    let tot_len = be16(h, 2) as usize;
    if h[0] >> 4 != 4 || ihl < 20 || tot_len < ihl {
        return Class::Malformed(Counter::MalformedIpv4);
    }
    let proto = h[9];
    if proto != TCP && proto != UDP && proto != ICMP {
        return Class::Other(None);
    }
    if be16(h, 6) & 0x3fff != 0 {
        return Class::Other(Some(Counter::Ipv4Fragment));
    }
    let src = IpAddr::V4(Ipv4Addr::new(h[12], h[13], h[14], h[15]));
    let dst = IpAddr::V4(Ipv4Addr::new(h[16], h[17], h[18], h[19]));
    let ip = Ip {
        l3,
        vlan,
        v4: true,
        header_len: ihl,
        claimed_len: tot_len,
        proto,
        src,
        dst,
        sport: 0,
        dport: 0,
        tcp_flags: 0,
    };
    transport(f, ip)
}

fn ipv6(f: &[u8], l3: usize, vlan: Option<u16>) -> Class {
    if f.len() < l3 + 40 {
        return Class::Malformed(Counter::TruncatedIpv6);
    }
    let h = &f[l3..];
    let next = h[6];
    match next {
        TCP | UDP | ICMPV6 => {}
        44 => return Class::Other(Some(Counter::Ipv6Fragment)),
        0 | 43 | 60 => return Class::Other(Some(Counter::Ipv6ExtHeader)),
        _ => return Class::Other(None),
    }
    let addr = |at: usize| {
        let o: [u8; 16] = h[at..at + 16].try_into().expect("16 bytes");
        IpAddr::V6(Ipv6Addr::from(o))
    };
    let ip = Ip {
        l3,
        vlan,
        v4: false,
        header_len: 40,
        claimed_len: be16(h, 4) as usize + 40,
        proto: next,
        src: addr(8),
        dst: addr(24),
        sport: 0,
        dport: 0,
        tcp_flags: 0,
    };
    transport(f, ip)
}

fn transport(f: &[u8], mut ip: Ip) -> Class {
    if ip.proto == ICMP || ip.proto == ICMPV6 {
        return Class::Icmp(ip);
    }
    let hlen = if ip.proto == TCP { 20 } else { 8 };
    let l4 = ip.l4();
    if f.len() < l4 + hlen {
        return Class::Malformed(Counter::TruncatedL4);
    }
    // The datagram must hold the transport header, and the frame the whole datagram
    // (what the kernel's ip_rcv/ipv6_rcv and tcp/udp_rcv check before any protocol
    // looks at a port).
    if ip.claimed_len < ip.header_len + hlen {
        return Class::Malformed(Counter::TruncatedL4);
    }
    if ip.end() > f.len() {
        return Class::Malformed(if ip.v4 {
            Counter::TruncatedIpv4
        } else {
            Counter::TruncatedIpv6
        });
    }
    ip.sport = be16(f, l4);
    ip.dport = be16(f, l4 + 2);
    ip.tcp_flags = if ip.proto == TCP { f[l4 + 13] } else { 0 };
    Class::L4(ip)
}

/// The destination of an IPv4/IPv6 frame as the no-accept check reads it
/// (`lb-ebpf/src/strict.rs`): none for non-IP frames, VRRP (protocol 112) and ICMPv6
/// neighbour solicitations/advertisements (types 135, 136), or a frame too short for
/// its IP header.
pub fn strict_target(f: &[u8]) -> Option<IpAddr> {
    let (l3, ethertype) = match f.get(12..14).map(|_| be16(f, 12))? {
        ETH_P_8021Q => (18, f.get(16..18).map(|_| be16(f, 16))?),
        e => (14, e),
    };
    match ethertype {
        ETH_P_IP => {
            let h = f.get(l3..l3 + 20)?;
            (h[9] != 112).then(|| IpAddr::V4(Ipv4Addr::new(h[16], h[17], h[18], h[19])))
        }
        ETH_P_IPV6 => {
            let h = f.get(l3..l3 + 40)?;
            let nd = h[6] == ICMPV6
                && f.get(l3 + 40..l3 + 42)
                    .is_some_and(|t| t[0] == 135 || t[0] == 136);
            if h[6] == 112 || nd {
                return None;
            }
            let o: [u8; 16] = h[24..40].try_into().expect("16 bytes");
            Some(IpAddr::V6(Ipv6Addr::from(o)))
        }
        _ => None,
    }
}
