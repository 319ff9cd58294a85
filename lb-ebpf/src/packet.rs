//! Bounds-checked packet access and header parsing.
//!
//! Every read and write of packet memory goes through [`ptr_at`], whose check the verifier
//! understands. Header fields are read and written unaligned: IP headers sit at offset 14
//! or 18, not on a 4-byte boundary.

use aya_ebpf::programs::XdpContext;
use lb_common::{
    Counter, ETH_P_8021Q, ETH_P_IP, ETH_P_IPV6, FAMILY_V4, FAMILY_V6, IPPROTO_ICMP, IPPROTO_ICMPV6,
    IPPROTO_TCP, IPPROTO_UDP,
};

use crate::{
    stats,
    types::{
        EthHdr, Ipv4Hdr, Ipv6Hdr, Packet, ETH_LEN, IPV6_LEN, TCP_LEN, UDP_LEN, VLAN_LEN,
        VLAN_PROTO_OFFSET,
    },
};

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

/// The frame's length, as a plain number. A length read from a header is compared with
/// this, never added to the packet pointer: Linux 6.1's verifier loses the bounds of a
/// byte-swapped header field and rejects `data + unbounded` (the 6.1 VM test caught it).
#[inline(always)]
pub fn frame_len(ctx: &XdpContext) -> usize {
    ctx.data_end() - ctx.data()
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
///
/// Parsing counts IPv4 options itself rather than leaving it to the caller: without a
/// helper call inside, LLVM passes this function the frame's start and end as plain
/// integers instead of `ctx`, and the verifier rejects arithmetic on those.
#[inline(never)]
pub fn parse_into(ctx: &XdpContext, out: &mut Packet) -> u32 {
    match parse(ctx) {
        Ok(pkt) => {
            *out = pkt;
            PARSED
        }
        Err(Skip::Pass(None)) => PASS,
        Err(Skip::Pass(Some(c))) => PASS | counter_bits(c),
        Err(Skip::Drop(c)) => DROP | counter_bits(c),
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

/// A counter in the bits above the outcome (0 = none).
#[inline(always)]
fn counter_bits(c: Counter) -> u32 {
    (c as u32 + 1) << 8
}

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
        let inner: u16 = read(ctx, VLAN_PROTO_OFFSET).ok_or(Skip::Drop(Counter::TruncatedEth))?;
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
        // Counted here, not by the caller: see `parse_into`.
        stats::count(Counter::Ipv4Options);
    }
    let ports = read_ports(ctx, l3 + ihl * 4, ip.proto)?;
    datagram_fits(
        ctx,
        l3,
        tot_len as usize,
        ihl * 4,
        ip.proto,
        Counter::TruncatedIpv4,
    )?;
    let pkt = Packet {
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
    };
    Ok(pkt)
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
    let claimed = u16::from_be(ip.payload_len) as usize + IPV6_LEN;
    datagram_fits(
        ctx,
        l3,
        claimed,
        IPV6_LEN,
        ip.next_hdr,
        Counter::TruncatedIpv6,
    )?;
    let vtc = u32::from_be(ip.vtc_flow);
    let pkt = Packet {
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
    };
    Ok(pkt)
}

/// The datagram its IP header claims (`claimed` bytes from `l3`) holds the whole
/// transport header, and the frame holds the whole datagram (Ethernet padding may
/// follow it): what the kernel's ip_rcv/ipv6_rcv and tcp/udp_rcv check before any port
/// is looked at. Otherwise the ports would be read from padding (and NAT would rewrite
/// it), or a tunnel's outer length would run past the frame (found by the XDP fuzzer).
#[inline(always)]
pub fn datagram_fits(
    ctx: &XdpContext,
    l3: usize,
    claimed: usize,
    header_len: usize,
    proto: u8,
    too_long: Counter,
) -> Result<(), Skip> {
    let l4_len = if proto == IPPROTO_TCP {
        TCP_LEN
    } else {
        UDP_LEN
    };
    if claimed < header_len + l4_len {
        return Err(Skip::Drop(Counter::TruncatedL4));
    }
    if l3 + claimed > frame_len(ctx) {
        return Err(Skip::Drop(too_long));
    }
    Ok(())
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
