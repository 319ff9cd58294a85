//! Protocol numbers and well-known addresses used by more than one module.

use std::net::{Ipv4Addr, Ipv6Addr};

/// IP protocol number of VRRP.
pub const IPPROTO_VRRP: u8 = 112;
/// IP protocol (next header) number of ICMPv6.
pub const IPPROTO_ICMPV6: u8 = 58;

/// TTL / hop limit VRRP adverts are sent with and, when multicast, must arrive with:
/// receivers drop multicast adverts that crossed a router.
pub const VRRP_TTL: u8 = 255;
/// The IPv4 VRRP group, 224.0.0.18.
pub const VRRP_GROUP_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// The IPv6 VRRP group, ff02::12.
pub const VRRP_GROUP_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);
/// The IPv6 all-nodes group, ff02::1.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// Length of an Ethernet (MAC) address.
pub const ETH_ALEN: usize = 6;
pub const ETH_HEADER_LEN: usize = 14;
pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_ARP: u16 = 0x0806;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// ARPHRD_ETHER: the hardware type of Ethernet interfaces.
pub const HW_ETHER: u16 = 1;
pub const BROADCAST_MAC: [u8; ETH_ALEN] = [0xff; ETH_ALEN];
/// Ethernet address of ff02::1 (RFC 2464 §7).
pub const ALL_NODES_MAC: [u8; ETH_ALEN] = [0x33, 0x33, 0, 0, 0, 1];

pub const ICMPV6_NEIGHBOUR_ADVERT: u8 = 136;
/// Neighbour discovery messages must arrive with hop limit 255 (RFC 4861 §7.1.2).
pub const ND_HOP_LIMIT: u8 = 255;

/// Longest interface name (or address label) the kernel keeps: IFNAMSIZ - 1.
pub const IFNAME_MAX: usize = 15;
