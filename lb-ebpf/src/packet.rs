//! Bounds-checked packet access and header parsing.
//!
//! Every read and write of packet memory goes through [`ptr_at`], whose check the verifier
//! understands. Header fields are read and written unaligned: IP headers sit at offset 14
//! or 18, not on a 4-byte boundary.

use aya_ebpf::programs::XdpContext;
use lb_common::{
    Addr, Counter, ETH_P_8021Q, ETH_P_IP, ETH_P_IPV6, FAMILY_V4, FAMILY_V6, IPPROTO_ICMP,
    IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP,
};

pub const ETH_LEN: usize = 14;
pub const VLAN_LEN: usize = 4;
pub const IPV4_LEN: usize = 20;
pub const IPV6_LEN: usize = 40;
pub const TCP_LEN: usize = 20;
pub const UDP_LEN: usize = 8;
/// ICMP / ICMPv6 header: type, code, checksum, 4 bytes of "rest of header".
pub const ICMP_LEN: usize = 8;

/// IPv6 extension headers we recognise (and pass to the kernel).
const IPV6_HOPOPTS: u8 = 0;
const IPV6_ROUTING: u8 = 43;
const IPV6_FRAGMENT: u8 = 44;
const IPV6_DSTOPTS: u8 = 60;

/// A pointer to `T` at `offset` from the start of the frame, if the whole `T` is inside it.
/// `T` must be at least 2 bytes: for 1 byte LLVM rewrites the check as `p >= end`,
/// which the verifier does not take as a bound.
#[inline(always)]
pub fn ptr_at<T>(ctx: &XdpContext, offset: usize) -> Option<*mut T> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + offset + core::mem::size_of::<T>() > end {
        return None;
    }
    Some((start + offset) as *mut T)
}

#[inline(always)]
pub fn read<T: Copy>(ctx: &XdpContext, offset: usize) -> Option<T> {
    // SAFETY: ptr_at checked that the value lies inside the frame.
    ptr_at::<T>(ctx, offset).map(|p| unsafe { p.read_unaligned() })
}

#[inline(always)]
pub fn write<T: Copy>(ctx: &XdpContext, offset: usize, value: T) -> Option<()> {
    // SAFETY: as in `read`.
    ptr_at::<T>(ctx, offset).map(|p| unsafe { p.write_unaligned(value) })
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct EthHdr {
    pub dst: [u8; 6],
    pub src: [u8; 6],
    /// Network byte order.
    pub proto: u16,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct Ipv4Hdr {
    pub ver_ihl: u8,
    pub tos: u8,
    pub tot_len: u16,
    pub id: u16,
    pub frag_off: u16,
    pub ttl: u8,
    pub proto: u8,
    pub check: u16,
    pub src: u32,
    pub dst: u32,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct Ipv6Hdr {
    pub vtc_flow: u32,
    pub payload_len: u16,
    pub next_hdr: u8,
    pub hop_limit: u8,
    pub src: Addr,
    pub dst: Addr,
}

/// The first bytes of a TCP or UDP header.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Ports {
    pub src: u16,
    pub dst: u16,
}

/// What the fast path needs to know about a TCP/UDP packet.
pub struct Packet {
    /// Length of the Ethernet header including a VLAN tag (14 or 18).
    pub l2_len: usize,
    /// Offset of the TCP/UDP header.
    pub l4: usize,
    pub family: u8,
    pub proto: u8,
    pub src: Addr,
    pub dst: Addr,
    /// Raw header fields (network byte order).
    pub sport: u16,
    pub dport: u16,
    /// Length of the IP datagram (header included), from the IP header.
    pub ip_len: u16,
    /// IPv4 TOS / IPv6 traffic class, copied into tunnel headers.
    pub tos: u8,
    /// TCP flags (0 for UDP).
    pub tcp_flags: u8,
}

pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_ACK: u8 = 0x10;

/// A connection's first packet: SYN without ACK, RST or FIN.
#[inline(always)]
pub fn is_new_syn(flags: u8) -> bool {
    flags & (TCP_SYN | TCP_ACK | TCP_RST | TCP_FIN) == TCP_SYN
}

impl Packet {
    /// Offset of the IP header. Header offsets pass through the per-CPU scratch
    /// memory, which the verifier knows nothing about: the mask gives it a bound
    /// (both are below 256 by construction).
    #[inline(always)]
    pub fn l3(&self) -> usize {
        self.l2_len & 0xff
    }

    /// Offset of the TCP/UDP header (bounded like [`Packet::l3`]).
    #[inline(always)]
    pub fn l4(&self) -> usize {
        self.l4 & 0xff
    }
}

/// Why a frame is not load-balanced.
pub enum Skip {
    /// Not ours to handle: give it to the kernel (counted when the counter is `Some`).
    Pass(Option<Counter>),
    /// Malformed: drop it, counted.
    Drop(Counter),
    /// ICMP or ICMPv6: an error about a NAT'ed flow is translated, the rest passes.
    Icmp { l3: usize, l4: usize, family: u8 },
}

const fn be16(x: u16) -> u16 {
    x.to_be()
}

/// [`parse`] as its own BPF function: it fills `out` and returns what to do, so its
/// temporaries never sit on the stack of the paths that follow (the verifier allows
/// 512 bytes for the deepest chain of calls). Decode the result with [`outcome`].
#[inline(never)]
pub fn parse_into(ctx: &XdpContext, out: &mut Packet) -> u32 {
    match parse(ctx) {
        Ok(pkt) => {
            *out = pkt;
            PARSED
        }
        Err(Skip::Pass(None)) => PASS,
        Err(Skip::Pass(Some(c))) => PASS | ((c as u32 + 1) << 8),
        Err(Skip::Drop(c)) => DROP | ((c as u32 + 1) << 8),
        Err(Skip::Icmp { l3, l4, family }) => {
            out.l2_len = l3;
            out.l4 = l4;
            out.family = family;
            ICMP
        }
    }
}

const PARSED: u32 = 0;
const PASS: u32 = 1;
const DROP: u32 = 2;
const ICMP: u32 = 3;

/// What [`parse_into`] returned: `Ok` = `out` holds a TCP/UDP packet.
#[inline(always)]
pub fn outcome(code: u32, out: &Packet) -> Result<(), Skip> {
    let counter = match code >> 8 {
        0 => None,
        n => Counter::from_index(n - 1),
    };
    match code & 0xff {
        PARSED => Ok(()),
        PASS => Err(Skip::Pass(counter)),
        DROP => Err(Skip::Drop(counter.unwrap_or(Counter::TruncatedEth))),
        _ => Err(Skip::Icmp {
            l3: out.l2_len,
            l4: out.l4,
            family: out.family,
        }),
    }
}

/// Parses Ethernet (one optional 802.1Q tag), IPv4/IPv6 and the TCP/UDP ports.
#[inline(always)]
fn parse(ctx: &XdpContext) -> Result<Packet, Skip> {
    let eth: EthHdr = read(ctx, 0).ok_or(Skip::Drop(Counter::TruncatedEth))?;
    let (l2_len, proto) = if eth.proto == be16(ETH_P_8021Q) {
        let inner: u16 = read(ctx, ETH_LEN + 2).ok_or(Skip::Drop(Counter::TruncatedEth))?;
        (ETH_LEN + VLAN_LEN, inner)
    } else {
        (ETH_LEN, eth.proto)
    };
    if proto == be16(ETH_P_IP) {
        parse_ipv4(ctx, l2_len)
    } else if proto == be16(ETH_P_IPV6) {
        parse_ipv6(ctx, l2_len)
    } else {
        // ARP, LLDP, anything else: the kernel's business.
        Err(Skip::Pass(None))
    }
}

#[inline(always)]
fn parse_ipv4(ctx: &XdpContext, l3: usize) -> Result<Packet, Skip> {
    let ip: Ipv4Hdr = read(ctx, l3).ok_or(Skip::Drop(Counter::TruncatedIpv4))?;
    let ihl = (ip.ver_ihl & 0x0f) as usize;
    let tot_len = u16::from_be(ip.tot_len);
    if ip.ver_ihl >> 4 != 4 || ihl < 5 || (tot_len as usize) < ihl * 4 {
        return Err(Skip::Drop(Counter::MalformedIpv4));
    }
    let is_l4 = ip.proto == IPPROTO_TCP || ip.proto == IPPROTO_UDP;
    if !is_l4 && ip.proto != IPPROTO_ICMP {
        // VRRP (112), IPIP, ...: not load-balanced.
        return Err(Skip::Pass(None));
    }
    // MF set or a non-zero offset: no ports to hash on in most fragments.
    if u16::from_be(ip.frag_off) & 0x3fff != 0 {
        return Err(Skip::Pass(Some(Counter::Ipv4Fragment)));
    }
    if !is_l4 {
        return Err(Skip::Icmp {
            l3,
            l4: l3 + ihl * 4,
            family: FAMILY_V4,
        });
    }
    if ihl > 5 {
        crate::stats::count(Counter::Ipv4Options);
    }
    let ports = read_ports(ctx, l3 + ihl * 4, ip.proto)?;
    Ok(Packet {
        l2_len: l3,
        l4: l3 + ihl * 4,
        family: FAMILY_V4,
        proto: ip.proto,
        src: [ip.src, 0, 0, 0],
        dst: [ip.dst, 0, 0, 0],
        sport: ports.src,
        dport: ports.dst,
        ip_len: tot_len,
        tos: ip.tos,
        tcp_flags: ports.tcp_flags,
    })
}

#[inline(always)]
fn parse_ipv6(ctx: &XdpContext, l3: usize) -> Result<Packet, Skip> {
    let ip: Ipv6Hdr = read(ctx, l3).ok_or(Skip::Drop(Counter::TruncatedIpv6))?;
    match ip.next_hdr {
        IPPROTO_TCP | IPPROTO_UDP => {}
        IPV6_FRAGMENT => return Err(Skip::Pass(Some(Counter::Ipv6Fragment))),
        IPV6_HOPOPTS | IPV6_ROUTING | IPV6_DSTOPTS => {
            return Err(Skip::Pass(Some(Counter::Ipv6ExtHeader)))
        }
        IPPROTO_ICMPV6 => {
            return Err(Skip::Icmp {
                l3,
                l4: l3 + IPV6_LEN,
                family: FAMILY_V6,
            })
        }
        // VRRPv3 (112), ...
        _ => return Err(Skip::Pass(None)),
    }
    let ports = read_ports(ctx, l3 + IPV6_LEN, ip.next_hdr)?;
    let vtc = u32::from_be(ip.vtc_flow);
    Ok(Packet {
        l2_len: l3,
        l4: l3 + IPV6_LEN,
        family: FAMILY_V6,
        proto: ip.next_hdr,
        src: ip.src,
        dst: ip.dst,
        sport: ports.src,
        dport: ports.dst,
        ip_len: u16::from_be(ip.payload_len).saturating_add(IPV6_LEN as u16),
        tos: (vtc >> 20) as u8,
        tcp_flags: ports.tcp_flags,
    })
}

#[inline(always)]
pub fn read_ports(ctx: &XdpContext, l4: usize, proto: u8) -> Result<L4Info, Skip> {
    // Require the whole fixed header, not just the ports: a cut header is malformed.
    if proto == IPPROTO_TCP {
        let tcp: [u8; TCP_LEN] = read(ctx, l4).ok_or(Skip::Drop(Counter::TruncatedL4))?;
        Ok(L4Info {
            src: u16::from_ne_bytes([tcp[0], tcp[1]]),
            dst: u16::from_ne_bytes([tcp[2], tcp[3]]),
            tcp_flags: tcp[13],
        })
    } else {
        let udp: [u8; UDP_LEN] = read(ctx, l4).ok_or(Skip::Drop(Counter::TruncatedL4))?;
        Ok(L4Info {
            src: u16::from_ne_bytes([udp[0], udp[1]]),
            dst: u16::from_ne_bytes([udp[2], udp[3]]),
            tcp_flags: 0,
        })
    }
}

/// Ports (network byte order, as on the wire) and TCP flags.
pub struct L4Info {
    pub src: u16,
    pub dst: u16,
    pub tcp_flags: u8,
}
