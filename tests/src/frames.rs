//! Frame builders for packet fixtures. Written from the RFCs, independently of the XDP
//! program, so that a fixture's expected output is a second opinion, not a copy.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86DD;
pub const ETH_P_ARP: u16 = 0x0806;
pub const ETH_P_8021Q: u16 = 0x8100;

pub const TCP: u8 = 6;
pub const UDP: u8 = 17;
pub const ICMP: u8 = 1;
pub const VRRP: u8 = 112;
pub const ICMPV6: u8 = 58;

pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_ACK: u8 = 0x10;

/// One's-complement sum of 16-bit big-endian words (RFC 1071), not yet inverted.
pub fn ones_complement_sum(data: &[u8], initial: u32) -> u32 {
    let mut sum = initial;
    for chunk in data.chunks(2) {
        let word = if chunk.len() == 2 {
            u16::from_be_bytes([chunk[0], chunk[1]])
        } else {
            u16::from_be_bytes([chunk[0], 0])
        };
        sum += word as u32;
    }
    sum
}

pub fn checksum(data: &[u8], initial: u32) -> u16 {
    let mut sum = ones_complement_sum(data, initial);
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An Ethernet header, with an optional 802.1Q tag.
pub fn eth(dst: [u8; 6], src: [u8; 6], vlan: Option<u16>, ethertype: u16) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    if let Some(tci) = vlan {
        f.extend_from_slice(&ETH_P_8021Q.to_be_bytes());
        f.extend_from_slice(&tci.to_be_bytes());
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

/// The flow of a fixture packet.
#[derive(Debug, Clone, Copy)]
pub struct Flow {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
    /// TCP flags (ACK, a packet of an established connection, unless changed).
    pub tcp_flags: u8,
}

impl Flow {
    pub fn tcp(src: &str, sport: u16, dst: &str, dport: u16) -> Flow {
        Flow {
            src: src.parse().expect("address"),
            dst: dst.parse().expect("address"),
            sport,
            dport,
            proto: TCP,
            tcp_flags: TCP_ACK,
        }
    }

    pub fn udp(src: &str, sport: u16, dst: &str, dport: u16) -> Flow {
        Flow {
            proto: UDP,
            ..Flow::tcp(src, sport, dst, dport)
        }
    }

    pub fn with_sport(self, sport: u16) -> Flow {
        Flow { sport, ..self }
    }

    pub fn with_flags(self, tcp_flags: u8) -> Flow {
        Flow { tcp_flags, ..self }
    }

    /// The same packet's addresses and ports after a translation.
    pub fn rewritten(self, src: &str, sport: u16, dst: &str, dport: u16) -> Flow {
        Flow {
            src: src.parse().expect("address"),
            dst: dst.parse().expect("address"),
            sport,
            dport,
            ..self
        }
    }
}

/// The one's-complement sum of the TCP/UDP/ICMPv6 pseudo-header (RFC 793, RFC 8200 8.1).
pub fn pseudo_header_sum(src: IpAddr, dst: IpAddr, proto: u8, len: usize) -> u32 {
    let mut p = Vec::new();
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
            p.extend_from_slice(&[0, proto]);
            p.extend_from_slice(&(len as u16).to_be_bytes());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
            p.extend_from_slice(&(len as u32).to_be_bytes());
            p.extend_from_slice(&[0, 0, 0, proto]);
        }
        _ => panic!("mixed families"),
    }
    ones_complement_sum(&p, 0)
}

/// A TCP (SYN|ACK flags as given) or UDP segment with a correct checksum.
pub fn l4(flow: &Flow, payload: &[u8]) -> Vec<u8> {
    let mut seg = Vec::new();
    seg.extend_from_slice(&flow.sport.to_be_bytes());
    seg.extend_from_slice(&flow.dport.to_be_bytes());
    let csum_at;
    if flow.proto == TCP {
        seg.extend_from_slice(&1000u32.to_be_bytes()); // seq
        seg.extend_from_slice(&0u32.to_be_bytes()); // ack
        seg.extend_from_slice(&[0x50, flow.tcp_flags]); // 20-byte header, flags
        seg.extend_from_slice(&65535u16.to_be_bytes());
        csum_at = 16;
        seg.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent
    } else {
        seg.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        csum_at = 6;
        seg.extend_from_slice(&[0, 0]);
    }
    seg.extend_from_slice(payload);
    let c = checksum(
        &seg,
        pseudo_header_sum(flow.src, flow.dst, flow.proto, seg.len()),
    );
    seg[csum_at..csum_at + 2].copy_from_slice(&c.to_be_bytes());
    seg
}

/// An IPv4 header (with `options`, a multiple of 4 bytes) and a correct checksum.
pub fn ipv4_header(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: u8,
    payload_len: usize,
    options: &[u8],
    frag_off: u16,
    ttl: u8,
) -> Vec<u8> {
    assert_eq!(options.len() % 4, 0);
    let hlen = 20 + options.len();
    let mut h = vec![(4 << 4) | (hlen / 4) as u8, 0];
    h.extend_from_slice(&((hlen + payload_len) as u16).to_be_bytes());
    h.extend_from_slice(&0x1234u16.to_be_bytes());
    h.extend_from_slice(&frag_off.to_be_bytes());
    h.extend_from_slice(&[ttl, proto, 0, 0]);
    h.extend_from_slice(&src.octets());
    h.extend_from_slice(&dst.octets());
    h.extend_from_slice(options);
    let c = checksum(&h, 0);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h
}

pub fn ipv6_header(src: Ipv6Addr, dst: Ipv6Addr, next: u8, payload_len: usize, hop: u8) -> Vec<u8> {
    let mut h = vec![0x60, 0, 0, 0];
    h.extend_from_slice(&(payload_len as u16).to_be_bytes());
    h.extend_from_slice(&[next, hop]);
    h.extend_from_slice(&src.octets());
    h.extend_from_slice(&dst.octets());
    h
}

/// The IP datagram (header + TCP/UDP segment) of a flow.
pub fn datagram(flow: &Flow, payload: &[u8]) -> Vec<u8> {
    let seg = l4(flow, payload);
    let mut d = match (flow.src, flow.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => ipv4_header(s, d, flow.proto, seg.len(), &[], 0, 64),
        (IpAddr::V6(s), IpAddr::V6(d)) => ipv6_header(s, d, flow.proto, seg.len(), 64),
        _ => panic!("mixed families"),
    };
    d.extend_from_slice(&seg);
    d
}

pub fn ethertype_of(a: IpAddr) -> u16 {
    if a.is_ipv4() {
        ETH_P_IP
    } else {
        ETH_P_IPV6
    }
}

/// A whole frame for a flow.
pub fn frame(
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    vlan: Option<u16>,
    flow: &Flow,
    payload: &[u8],
) -> Vec<u8> {
    let mut f = eth(dst_mac, src_mac, vlan, ethertype_of(flow.dst));
    f.extend_from_slice(&datagram(flow, payload));
    f
}

/// The outer IPv4 header a tunnel must carry: DSCP copied, TTL 64, protocol IPIP,
/// id 0, no fragmentation flags.
pub fn outer_ipv4(src: Ipv4Addr, dst: Ipv4Addr, inner_len: usize, tos: u8) -> Vec<u8> {
    let mut h = vec![0x45, tos];
    h.extend_from_slice(&((20 + inner_len) as u16).to_be_bytes());
    h.extend_from_slice(&[0, 0, 0, 0, 64, 4, 0, 0]);
    h.extend_from_slice(&src.octets());
    h.extend_from_slice(&dst.octets());
    let c = checksum(&h, 0);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h
}

/// The outer IPv6 header of a tunnel: next header 41 (IPv6) or 4 (IPv4), hop limit 64.
pub fn outer_ipv6(src: Ipv6Addr, dst: Ipv6Addr, inner_len: usize, next: u8) -> Vec<u8> {
    ipv6_header(src, dst, next, inner_len, 64)
}

pub fn arp_request(src_mac: [u8; 6], sender: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let mut f = eth([0xff; 6], src_mac, None, ETH_P_ARP);
    f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&sender.octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target.octets());
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3 example: 0x0001 f203 f4f5 f6f7 sums to 0xddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(checksum(&data, 0), !0xddf2);
    }

    #[test]
    fn ipv4_header_checksum_verifies_to_zero() {
        let h = ipv4_header(
            "10.0.0.1".parse().unwrap(),
            "10.0.0.2".parse().unwrap(),
            TCP,
            20,
            &[],
            0,
            64,
        );
        assert_eq!(checksum(&h, 0), 0);
    }
}

/// An ICMP (IPv4) or ICMPv6 error from `from` to `to` quoting `quote` (the start of an
/// IP datagram), with correct checksums: a whole frame.
/// An ICMP message's type, code and 4 bytes of "rest of header" (e.g. the MTU).
#[derive(Debug, Clone, Copy)]
pub struct Icmp {
    pub kind: u8,
    pub code: u8,
    pub rest: [u8; 4],
}

pub fn icmp_error_frame(
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    from: IpAddr,
    to: IpAddr,
    icmp: Icmp,
    quote: &[u8],
) -> Vec<u8> {
    let mut msg = vec![icmp.kind, icmp.code, 0, 0];
    msg.extend_from_slice(&icmp.rest);
    msg.extend_from_slice(quote);
    let (ip, c) = match (from, to) {
        (IpAddr::V4(s), IpAddr::V4(d)) => (
            ipv4_header(s, d, ICMP, msg.len(), &[], 0, 64),
            checksum(&msg, 0),
        ),
        (IpAddr::V6(s), IpAddr::V6(d)) => (
            ipv6_header(s, d, ICMPV6, msg.len(), 64),
            checksum(&msg, pseudo_header_sum(from, to, ICMPV6, msg.len())),
        ),
        _ => panic!("mixed families"),
    };
    msg[2..4].copy_from_slice(&c.to_be_bytes());
    let mut f = eth(dst_mac, src_mac, None, ethertype_of(to));
    f.extend_from_slice(&ip);
    f.extend_from_slice(&msg);
    f
}

/// Checks every checksum of an untagged frame from scratch: the IPv4 header, and the
/// TCP, UDP, ICMP or ICMPv6 checksum (with the pseudo-header). Panics naming the bad one.
pub fn assert_checksums(frame: &[u8]) {
    let ethertype = u16::from_be_bytes([frame[12], frame[13]]);
    let (l4, proto, src, dst) = if ethertype == ETH_P_IP {
        let ihl = (frame[14] & 0x0f) as usize * 4;
        assert_eq!(checksum(&frame[14..14 + ihl], 0), 0, "IPv4 header checksum");
        let src: [u8; 4] = frame[26..30].try_into().unwrap();
        let dst: [u8; 4] = frame[30..34].try_into().unwrap();
        (14 + ihl, frame[23], IpAddr::from(src), IpAddr::from(dst))
    } else {
        let src: [u8; 16] = frame[22..38].try_into().unwrap();
        let dst: [u8; 16] = frame[38..54].try_into().unwrap();
        (54, frame[20], IpAddr::from(src), IpAddr::from(dst))
    };
    let seg = &frame[l4..];
    let initial = match proto {
        ICMP => 0,
        UDP if src.is_ipv4() && seg[6..8] == [0, 0] => return,
        _ => pseudo_header_sum(src, dst, proto, seg.len()),
    };
    assert_eq!(checksum(seg, initial), 0, "protocol {proto} checksum");
}
