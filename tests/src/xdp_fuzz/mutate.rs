//! The frame mutator: byte-level (bit flips, truncation, extension, splicing) and
//! field-aware (Ethernet type, VLAN tags, IP version/IHL/length, protocol, ports,
//! addresses, TCP flags, IPv6 extension headers, fragments, IPv4 options), followed
//! most of the time by a fix-up of lengths and checksums so that the mutated frame
//! still reaches the paths past the parser.

use std::net::IpAddr;

use super::rng::Rng;
use crate::frames::{
    checksum, pseudo_header_sum, ETH_P_8021Q, ETH_P_ARP, ETH_P_IP, ETH_P_IPV6, ICMP, ICMPV6, TCP,
    UDP,
};

/// BPF_PROG_TEST_RUN takes frames from an Ethernet header up to about a page.
pub const MIN_LEN: usize = 14;
pub const MAX_LEN: usize = 1500;

/// Addresses the field mutations choose from (VIPs, reals, the LB, clients).
pub struct Dict {
    pub v4: Vec<[u8; 4]>,
    pub v6: Vec<[u8; 16]>,
    pub ports: Vec<u16>,
}

impl Dict {
    pub fn new(addrs: &[IpAddr], ports: &[u16]) -> Dict {
        let mut d = Dict {
            v4: Vec::new(),
            v6: Vec::new(),
            ports: ports.to_vec(),
        };
        for a in addrs {
            match a {
                IpAddr::V4(a) => d.v4.push(a.octets()),
                IpAddr::V6(a) => d.v6.push(a.octets()),
            }
        }
        d
    }
}

/// A frame of random bytes (half the time with an IP Ethernet type).
pub fn random_frame(rng: &mut Rng) -> Vec<u8> {
    let len = MIN_LEN + rng.below(200);
    let mut f = rng.bytes(len);
    if rng.chance(1, 2) {
        let t = *rng.pick(&[ETH_P_IP, ETH_P_IPV6, ETH_P_8021Q]);
        f[12..14].copy_from_slice(&t.to_be_bytes());
        if rng.chance(1, 2) && f.len() > 14 {
            f[14] = if t == ETH_P_IPV6 { 0x60 } else { 0x45 };
        }
    }
    f
}

/// Applies 1 to 4 mutations to a copy of `seed`; `other` is a second frame to splice.
pub fn mutate(rng: &mut Rng, seed: &[u8], other: &[u8], dict: &Dict) -> Vec<u8> {
    let mut f = seed.to_vec();
    let n = 1 + rng.below(4);
    let mut field_aware = false;
    for _ in 0..n {
        field_aware |= one(rng, &mut f, other, dict);
    }
    if field_aware && rng.chance(2, 3) {
        fix_up(&mut f);
    }
    f.truncate(MAX_LEN);
    while f.len() < MIN_LEN {
        f.push(0);
    }
    f
}

/// Where the IP header starts and which family it is, when the frame has one.
fn l3(f: &[u8]) -> Option<(usize, u16)> {
    if f.len() < 14 {
        return None;
    }
    let t = u16::from_be_bytes([f[12], f[13]]);
    if t == ETH_P_8021Q {
        if f.len() < 18 {
            return None;
        }
        return Some((18, u16::from_be_bytes([f[16], f[17]])));
    }
    Some((14, t))
}

/// The L4 offset and protocol of an IPv4/IPv6 frame (IPv6: the first next header).
fn l4(f: &[u8]) -> Option<(usize, usize, u8, bool)> {
    let (l3, t) = l3(f)?;
    match t {
        ETH_P_IP if f.len() >= l3 + 20 => {
            let ihl = (f[l3] & 0x0f) as usize * 4;
            Some((l3, l3 + ihl.max(20), f[l3 + 9], true))
        }
        ETH_P_IPV6 if f.len() >= l3 + 40 => Some((l3, l3 + 40, f[l3 + 6], false)),
        _ => None,
    }
}

/// One mutation; true when it was field-aware.
fn one(rng: &mut Rng, f: &mut Vec<u8>, other: &[u8], dict: &Dict) -> bool {
    match rng.below(16) {
        0 => {
            for _ in 0..1 + rng.below(4) {
                if !f.is_empty() {
                    let i = rng.below(f.len());
                    f[i] ^= 1 << rng.below(8);
                }
            }
            false
        }
        1 => {
            if !f.is_empty() {
                let i = rng.below(f.len());
                f[i] = rng.byte();
            }
            false
        }
        2 => {
            let len = rng.below(f.len() + 1);
            f.truncate(len);
            false
        }
        3 => {
            let n = 1 + rng.below(64);
            let extra = if rng.chance(1, 2) {
                vec![0; n]
            } else {
                rng.bytes(n)
            };
            f.extend(extra);
            false
        }
        4 => {
            // Splice: this frame's head, the other's tail.
            let a = rng.below(f.len() + 1);
            let b = rng.below(other.len() + 1);
            f.truncate(a);
            f.extend_from_slice(&other[b..]);
            false
        }
        5 => ethertype(rng, f),
        6 => vlan(rng, f),
        7 => version_ihl(rng, f),
        8 => ip_length(rng, f),
        9 => protocol(rng, f),
        10 => ports(rng, f, dict),
        11 => addresses(rng, f, dict),
        12 => tcp_flags(rng, f),
        13 => ipv6_extension(rng, f),
        14 => fragment(rng, f),
        _ => ipv4_options(rng, f),
    }
}

fn ethertype(rng: &mut Rng, f: &mut [u8]) -> bool {
    let Some((l3, _)) = l3(f) else { return false };
    let t = {
        let r = rng.u16();
        *rng.pick(&[ETH_P_IP, ETH_P_IPV6, ETH_P_8021Q, ETH_P_ARP, 0x88a8, r])
    };
    f[l3 - 2..l3].copy_from_slice(&t.to_be_bytes());
    true
}

fn vlan(rng: &mut Rng, f: &mut Vec<u8>) -> bool {
    let Some((l3, _)) = l3(f) else { return false };
    if l3 == 18 {
        f.drain(12..16);
    } else {
        let tci = rng.u16();
        let tag = [0x81, 0x00, (tci >> 8) as u8, tci as u8];
        f.splice(12..12, tag);
    }
    true
}

fn version_ihl(rng: &mut Rng, f: &mut [u8]) -> bool {
    let Some((l3, _)) = l3(f) else { return false };
    if f.len() <= l3 {
        return false;
    }
    f[l3] = match rng.below(3) {
        0 => (f[l3] & 0x0f) | (rng.below(16) as u8) << 4,
        1 => (f[l3] & 0xf0) | rng.below(16) as u8,
        _ => *rng.pick(&[0x45, 0x46, 0x4f, 0x44, 0x60, 0x65]),
    };
    true
}

fn ip_length(rng: &mut Rng, f: &mut [u8]) -> bool {
    let Some((l3, _, _, v4)) = l4(f) else {
        return false;
    };
    let at = if v4 { l3 + 2 } else { l3 + 4 };
    let cur = u16::from_be_bytes([f[at], f[at + 1]]);
    let new = match rng.below(4) {
        0 => rng.u16(),
        1 => cur.wrapping_add(1 + rng.below(8) as u16),
        2 => cur.wrapping_sub(1 + rng.below(8) as u16),
        _ => *rng.pick(&[0, 20, 28, 40, 0xffff]),
    };
    f[at..at + 2].copy_from_slice(&new.to_be_bytes());
    // Keep the header checksum right half the time: the length is what is under test.
    if v4 && rng.chance(1, 2) {
        fix_ipv4_header(f, l3);
    }
    true
}

fn protocol(rng: &mut Rng, f: &mut [u8]) -> bool {
    let Some((l3, _, _, v4)) = l4(f) else {
        return false;
    };
    let p = {
        let r = rng.byte();
        *rng.pick(&[TCP, UDP, ICMP, ICMPV6, 112, 4, 41, 0, 43, 44, 60, r])
    };
    f[if v4 { l3 + 9 } else { l3 + 6 }] = p;
    true
}

fn ports(rng: &mut Rng, f: &mut [u8], dict: &Dict) -> bool {
    let Some((_, l4, _, _)) = l4(f) else {
        return false;
    };
    if f.len() < l4 + 4 {
        return false;
    }
    let at = l4 + 2 * rng.below(2);
    let p = if rng.chance(2, 3) {
        *rng.pick(&dict.ports)
    } else {
        rng.u16()
    };
    f[at..at + 2].copy_from_slice(&p.to_be_bytes());
    true
}

fn addresses(rng: &mut Rng, f: &mut [u8], dict: &Dict) -> bool {
    let Some((l3, _, _, v4)) = l4(f) else {
        return false;
    };
    let dst = rng.chance(2, 3);
    if v4 {
        let at = l3 + if dst { 16 } else { 12 };
        let a = if rng.chance(3, 4) {
            *rng.pick(&dict.v4)
        } else {
            [rng.byte(), rng.byte(), rng.byte(), rng.byte()]
        };
        f[at..at + 4].copy_from_slice(&a);
    } else {
        let at = l3 + if dst { 24 } else { 8 };
        let a = if rng.chance(3, 4) {
            *rng.pick(&dict.v6)
        } else {
            let mut a = [0u8; 16];
            a.iter_mut().for_each(|b| *b = rng.byte());
            a
        };
        f[at..at + 16].copy_from_slice(&a);
    }
    true
}

fn tcp_flags(rng: &mut Rng, f: &mut [u8]) -> bool {
    let Some((_, l4, _, _)) = l4(f) else {
        return false;
    };
    if f.len() < l4 + 14 {
        return false;
    }
    f[l4 + 13] = {
        let r = rng.byte();
        *rng.pick(&[0x02, 0x10, 0x12, 0x11, 0x04, 0x14, 0x01, 0x00, r])
    };
    true
}

/// Inserts an IPv6 extension header (hop-by-hop, routing, destination options or
/// fragment) in front of the transport header.
fn ipv6_extension(rng: &mut Rng, f: &mut Vec<u8>) -> bool {
    let Some((l3, l4, next, v4)) = l4(f) else {
        return false;
    };
    if v4 {
        return false;
    }
    let kind = *rng.pick(&[0u8, 43, 44, 60]);
    let mut ext = vec![next, 0, 0, 0, 0, 0, 0, 0];
    if kind == 44 {
        // Fragment offset and M flag, an identification.
        let off = (rng.below(4) as u16) << 3 | rng.below(2) as u16;
        ext[2..4].copy_from_slice(&off.to_be_bytes());
        ext[4..8].copy_from_slice(&rng.bytes(4));
    } else if kind == 0 || kind == 60 {
        // PadN filling the 6 option bytes.
        ext[2..4].copy_from_slice(&[1, 4]);
    }
    f.splice(l4..l4, ext);
    f[l3 + 6] = kind;
    true
}

fn fragment(rng: &mut Rng, f: &mut Vec<u8>) -> bool {
    let Some((l3, _, _, v4)) = l4(f) else {
        return false;
    };
    if !v4 {
        return ipv6_extension(rng, f);
    }
    let v = {
        let r = rng.u16();
        *rng.pick(&[0x2000u16, 0x0001, 0x2001, 0x4000, 0x8000, r])
    };
    f[l3 + 6..l3 + 8].copy_from_slice(&v.to_be_bytes());
    true
}

fn ipv4_options(rng: &mut Rng, f: &mut Vec<u8>) -> bool {
    let Some((l3, l4, _, v4)) = l4(f) else {
        return false;
    };
    if !v4 || f.len() < l4 {
        return false;
    }
    let words = 1 + rng.below(4);
    let opts: Vec<u8> = (0..words * 4)
        .map(|_| {
            let r = rng.byte();
            *rng.pick(&[1u8, 1, 0, r])
        })
        .collect();
    f.splice(l4..l4, opts);
    let ihl = ((l4 - l3) / 4 + words).min(15) as u8;
    f[l3] = (f[l3] & 0xf0) | ihl;
    true
}

fn fix_ipv4_header(f: &mut [u8], l3: usize) {
    let ihl = (f[l3] & 0x0f) as usize * 4;
    if ihl < 20 || f.len() < l3 + ihl {
        return;
    }
    f[l3 + 10..l3 + 12].copy_from_slice(&[0, 0]);
    let c = checksum(&f[l3..l3 + ihl], 0);
    f[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
}

/// Makes lengths and checksums consistent with the frame's bytes again, as far as its
/// headers allow (the IP datagram runs to the end of the frame).
pub fn fix_up(f: &mut [u8]) {
    let Some((l3, l4, proto, v4)) = l4(f) else {
        return;
    };
    if f.len() < l4 {
        return;
    }
    let (src, dst) = if v4 {
        if f[l3] >> 4 != 4 || (f[l3] & 0x0f) < 5 {
            return;
        }
        let len = (f.len() - l3).min(0xffff) as u16;
        f[l3 + 2..l3 + 4].copy_from_slice(&len.to_be_bytes());
        fix_ipv4_header(f, l3);
        let a: [u8; 4] = f[l3 + 12..l3 + 16].try_into().expect("4 bytes");
        let b: [u8; 4] = f[l3 + 16..l3 + 20].try_into().expect("4 bytes");
        (IpAddr::from(a), IpAddr::from(b))
    } else {
        let len = (f.len() - l4).min(0xffff) as u16;
        f[l3 + 4..l3 + 6].copy_from_slice(&len.to_be_bytes());
        let a: [u8; 16] = f[l3 + 8..l3 + 24].try_into().expect("16 bytes");
        let b: [u8; 16] = f[l3 + 24..l3 + 40].try_into().expect("16 bytes");
        (IpAddr::from(a), IpAddr::from(b))
    };
    let seg_len = f.len() - l4;
    let at = match proto {
        TCP if seg_len >= 20 => 16,
        UDP if seg_len >= 8 => {
            f[l4 + 4..l4 + 6].copy_from_slice(&(seg_len.min(0xffff) as u16).to_be_bytes());
            6
        }
        ICMP if v4 && seg_len >= 4 => 2,
        ICMPV6 if !v4 && seg_len >= 4 => 2,
        _ => return,
    };
    f[l4 + at..l4 + at + 2].copy_from_slice(&[0, 0]);
    let initial = if proto == ICMP {
        0
    } else {
        pseudo_header_sum(src, dst, proto, seg_len)
    };
    let mut c = checksum(&f[l4..], initial);
    if proto == UDP && c == 0 {
        c = 0xffff;
    }
    f[l4 + at..l4 + at + 2].copy_from_slice(&c.to_be_bytes());
}
