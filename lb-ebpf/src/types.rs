//! The plain structs and constants the other modules share (Katran's
//! `balancer_structs.h`): wire headers with their lengths and field offsets, the parsed
//! packet, and the tuple a packet is rewritten to. Depends on nothing in this crate, so
//! every other module can use it without forming a cycle.

use core::mem::{offset_of, size_of};

use lb_common::{Addr, FlowKey, IPPROTO_TCP};

pub const ETH_LEN: usize = 14;
pub const VLAN_LEN: usize = 4;
pub const IPV4_LEN: usize = 20;
pub const IPV6_LEN: usize = 40;
pub const TCP_LEN: usize = 20;
pub const UDP_LEN: usize = 8;
/// ICMP / ICMPv6 header: type, code, checksum, 4 bytes of "rest of header". The quoted
/// packet of an error message starts right after it.
pub const ICMP_LEN: usize = 8;

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

// The header structs are read and written whole: their sizes are the wire lengths.
const _: () = assert!(size_of::<EthHdr>() == ETH_LEN);
const _: () = assert!(size_of::<Ipv4Hdr>() == IPV4_LEN);
const _: () = assert!(size_of::<Ipv6Hdr>() == IPV6_LEN);

// Field offsets within a header, for reading or writing single fields in place.
pub const ETH_DST_OFFSET: usize = offset_of!(EthHdr, dst);
pub const ETH_SRC_OFFSET: usize = offset_of!(EthHdr, src);
pub const ETH_PROTO_OFFSET: usize = offset_of!(EthHdr, proto);
/// An 802.1Q tag follows the MAC addresses: its TCI, then the encapsulated EtherType
/// (the tagged frame's [`EthHdr::proto`] is 0x8100).
pub const VLAN_TCI_OFFSET: usize = ETH_LEN;
pub const VLAN_PROTO_OFFSET: usize = ETH_LEN + 2;
/// TTL and protocol, read together (single-byte reads defeat the verifier's bounds).
pub const IPV4_TTL_PROTO_OFFSET: usize = offset_of!(Ipv4Hdr, ttl);
pub const IPV4_CHECK_OFFSET: usize = offset_of!(Ipv4Hdr, check);
pub const IPV4_SRC_OFFSET: usize = offset_of!(Ipv4Hdr, src);
pub const IPV4_DST_OFFSET: usize = offset_of!(Ipv4Hdr, dst);
/// Next header and hop limit, read together (as [`IPV4_TTL_PROTO_OFFSET`]).
pub const IPV6_NEXT_HDR_OFFSET: usize = offset_of!(Ipv6Hdr, next_hdr);
pub const IPV6_SRC_OFFSET: usize = offset_of!(Ipv6Hdr, src);
pub const IPV6_DST_OFFSET: usize = offset_of!(Ipv6Hdr, dst);
/// Source and destination port lead both TCP and UDP headers.
pub const L4_PORTS_OFFSET: usize = 0;
pub const TCP_CHECK_OFFSET: usize = 16;
pub const UDP_CHECK_OFFSET: usize = 6;
/// Type and code, read together.
pub const ICMP_TYPE_CODE_OFFSET: usize = 0;
pub const ICMP_CHECK_OFFSET: usize = 2;

/// Where the checksum sits in a TCP or UDP header.
#[inline(always)]
pub const fn l4_check_offset(proto: u8) -> usize {
    if proto == IPPROTO_TCP {
        TCP_CHECK_OFFSET
    } else {
        UDP_CHECK_OFFSET
    }
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

    /// The packet's 5-tuple as a table key (connection table, NAT table).
    #[inline(always)]
    pub fn flow(&self) -> FlowKey {
        FlowKey {
            src: self.src,
            dst: self.dst,
            sport: self.sport,
            dport: self.dport,
            proto: self.proto,
            family: self.family,
            pad: 0,
        }
    }
}

/// Addresses and ports (network byte order) a packet is rewritten to.
pub struct Tuple {
    pub src: Addr,
    pub dst: Addr,
    pub sport: u16,
    pub dport: u16,
}
