//! The invariants checked on every run, from the input frame, the model's reading of
//! it ([`super::classify`]) and the program's verdict and output frame. Checksums are
//! verified from scratch (RFC 1071 sums over the headers as they are), never by
//! repeating the program's incremental updates.

use std::net::IpAddr;

use lb_daemon::dataplane::{ForwardMode, ServiceSpec};

use super::{
    classify::{classify, Class, Ip},
    lab,
};
use crate::{
    frames::{checksum, pseudo_header_sum, ETH_P_8021Q, ETH_P_IP, ETH_P_IPV6, ICMP, UDP},
    harness::{LB_MAC, XDP_DROP, XDP_PASS, XDP_REDIRECT, XDP_TX},
};

/// What the model expects of one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Malformed: XDP_DROP, frame untouched.
    Drop,
    /// Not for a VIP: XDP_PASS, frame untouched.
    Pass,
    /// What would pass, addressed to a VIP in no-accept mode: XDP_DROP (counted).
    StrictDrop,
    /// For a service (index into the service list).
    Vip(usize),
    /// May be a NAT reply or an ICMP error about a NAT'ed flow: translated and sent,
    /// dropped when unroutable, or passed untouched.
    MaybeNat,
}

pub fn is_valid_verdict(action: u32) -> bool {
    matches!(action, XDP_DROP | XDP_PASS | XDP_TX | XDP_REDIRECT)
}

/// The IPv4 header checksum verifies (IPv6 has none).
pub fn ip_checksum_ok(f: &[u8], ip: &Ip) -> bool {
    !ip.v4 || checksum(&f[ip.l3..ip.l3 + ip.header_len], 0) == 0
}

/// The TCP/UDP/ICMP/ICMPv6 checksum over the datagram the IP header claims (`None`
/// when the frame does not hold it). IPv4 UDP without a checksum (0) verifies.
pub fn l4_checksum_ok(f: &[u8], ip: &Ip) -> Option<bool> {
    let end = ip.end();
    if end > f.len() || ip.l4() > end {
        return None;
    }
    let seg = &f[ip.l4()..end];
    if ip.proto == UDP && ip.v4 && seg.len() >= 8 && seg[6..8] == [0, 0] {
        return Some(true);
    }
    let initial = if ip.proto == ICMP {
        0
    } else {
        pseudo_header_sum(ip.src, ip.dst, ip.proto, seg.len())
    };
    Some(checksum(seg, initial) == 0)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Checks the output of a forwarded (TX/REDIRECT) or passed frame against `expect`.
pub fn check(
    specs: &[ServiceSpec],
    input: &[u8],
    class: &Class,
    expect: Expect,
    action: u32,
    output: &[u8],
) -> Result<(), String> {
    if !is_valid_verdict(action) {
        return Err(format!("verdict {action} is none of PASS/TX/REDIRECT/DROP"));
    }
    match expect {
        Expect::Drop => {
            if action != XDP_DROP {
                return Err(format!(
                    "malformed frame ({class:?}): verdict {action}, want DROP"
                ));
            }
            Ok(())
        }
        Expect::Pass => unchanged_pass(action, input, output, "not for a VIP"),
        Expect::StrictDrop => {
            if action != XDP_DROP {
                return Err(format!(
                    "a frame no service takes to a VIP in no-accept mode ({class:?}): verdict {action}, want DROP"
                ));
            }
            Ok(())
        }
        Expect::MaybeNat => match action {
            XDP_PASS => unchanged_pass(action, input, output, "a NAT reply candidate passed"),
            XDP_DROP => Ok(()),
            _ => translated_reply(specs, input, class, output),
        },
        Expect::Vip(i) => {
            let spec = &specs[i];
            let Class::L4(ip) = class else {
                return Err("a VIP frame that is not TCP/UDP".into());
            };
            match spec.mode {
                ForwardMode::Dr => {
                    want_tx(action)?;
                    dr(spec, input, output)
                }
                ForwardMode::Tun => {
                    want_tx(action)?;
                    tun(spec, ip, input, output)
                }
                ForwardMode::Nat { snat } => {
                    if action == XDP_DROP {
                        // Allowed only with a full table or no free SNAT port, counted:
                        // the caller checks the counters.
                        return Ok(());
                    }
                    want_tx(action)?;
                    nat_to_real(spec, snat, ip, input, output)
                }
            }
        }
    }
}

fn want_tx(action: u32) -> Result<(), String> {
    if action == XDP_TX || action == XDP_REDIRECT {
        Ok(())
    } else {
        Err(format!("VIP frame: verdict {action}, want TX or REDIRECT"))
    }
}

fn unchanged_pass(action: u32, input: &[u8], output: &[u8], what: &str) -> Result<(), String> {
    if action != XDP_PASS {
        return Err(format!("{what}: verdict {action}, want PASS"));
    }
    if input != output {
        return Err(format!(
            "{what}: passed but changed, output {}",
            hex(output)
        ));
    }
    Ok(())
}

/// DR: the destination MAC is a backend's, the source the LB's, nothing else changed.
fn dr(spec: &ServiceSpec, input: &[u8], output: &[u8]) -> Result<(), String> {
    if output.len() != input.len() {
        return Err(format!(
            "DR output length {} != {}",
            output.len(),
            input.len()
        ));
    }
    if lab::backend_by_mac(spec, &output[0..6]).is_none() {
        return Err(format!(
            "DR destination MAC {} is no backend's",
            hex(&output[0..6])
        ));
    }
    if output[6..12] != LB_MAC {
        return Err("DR source MAC is not the LB's".into());
    }
    if output[12..] != input[12..] {
        return Err(format!("DR changed more than the MACs: {}", hex(output)));
    }
    Ok(())
}

/// TUN: a new Ethernet header (VLAN tag kept) to a backend, an outer header to that
/// backend with a from-scratch valid checksum and the right length, then the unchanged
/// inner datagram.
fn tun(spec: &ServiceSpec, ip: &Ip, input: &[u8], output: &[u8]) -> Result<(), String> {
    let Some(b) = lab::backend_by_mac(spec, &output[0..6.min(output.len())]) else {
        return Err("TUN destination MAC is no backend's".into());
    };
    let outer_v4 = b.addr.is_ipv4();
    let outer_len = if outer_v4 { 20 } else { 40 };
    let l3 = ip.l3;
    if output.len() != input.len() + outer_len {
        return Err(format!(
            "TUN output length {} != {} + {outer_len}",
            output.len(),
            input.len()
        ));
    }
    if output[6..12] != LB_MAC {
        return Err("TUN source MAC is not the LB's".into());
    }
    let outer_type = if outer_v4 { ETH_P_IP } else { ETH_P_IPV6 }.to_be_bytes();
    match ip.vlan {
        Some(tci) => {
            if output[12..14] != ETH_P_8021Q.to_be_bytes()
                || output[14..16] != tci.to_be_bytes()
                || output[16..18] != outer_type
            {
                return Err("TUN lost or changed the VLAN tag".into());
            }
        }
        None => {
            if output[12..14] != outer_type {
                return Err("TUN outer Ethernet type".into());
            }
        }
    }
    let o = &output[l3..l3 + outer_len];
    let inner_tos = if ip.v4 {
        input[l3 + 1]
    } else {
        (u16::from_be_bytes([input[l3], input[l3 + 1]]) >> 4) as u8
    };
    let tsrc = lab::tunnel_src(b.addr);
    if outer_v4 {
        let want_len = 20 + ip.claimed_len;
        let (IpAddr::V4(s), IpAddr::V4(d)) = (tsrc, b.addr) else {
            return Err("family".into());
        };
        if o[0] != 0x45
            || o[1] != inner_tos
            || u16::from_be_bytes([o[2], o[3]]) as usize != want_len
            || o[6..8] != [0, 0]
            || o[8] != 64
            || o[9] != 4
            || o[12..16] != s.octets()
            || o[16..20] != d.octets()
        {
            return Err(format!("TUN outer IPv4 header wrong: {}", hex(o)));
        }
        if checksum(o, 0) != 0 {
            return Err(format!(
                "TUN outer IPv4 checksum does not verify: {}",
                hex(o)
            ));
        }
        if want_len > output.len() - l3 {
            return Err("TUN outer length runs past the frame".into());
        }
    } else {
        let (IpAddr::V6(s), IpAddr::V6(d)) = (tsrc, b.addr) else {
            return Err("family".into());
        };
        let vtc = u32::from_be_bytes([o[0], o[1], o[2], o[3]]);
        let next = if ip.v4 { 4 } else { 41 };
        if vtc != (6 << 28) | (u32::from(inner_tos) << 20)
            || u16::from_be_bytes([o[4], o[5]]) as usize != ip.claimed_len
            || o[6] != next
            || o[7] != 64
            || o[8..24] != s.octets()
            || o[24..40] != d.octets()
        {
            return Err(format!("TUN outer IPv6 header wrong: {}", hex(o)));
        }
        if 40 + ip.claimed_len > output.len() - l3 {
            return Err("TUN outer length runs past the frame".into());
        }
    }
    if output[l3 + outer_len..] != input[l3..] {
        return Err("TUN changed the inner datagram".into());
    }
    Ok(())
}

/// The byte ranges a translation may change: MACs, addresses, IPv4 header checksum,
/// ports and the transport checksum.
fn translation_diff(ip: &Ip, input: &[u8], output: &[u8]) -> Result<(), String> {
    if output.len() != input.len() {
        return Err(format!(
            "NAT output length {} != {}",
            output.len(),
            input.len()
        ));
    }
    let l3 = ip.l3;
    let l4 = ip.l4();
    let mut allowed = vec![false; input.len()];
    let mut allow = |from: usize, to: usize| {
        for a in allowed.iter_mut().take(to).skip(from) {
            *a = true;
        }
    };
    allow(0, 12);
    if ip.v4 {
        allow(l3 + 10, l3 + 20);
    } else {
        allow(l3 + 8, l3 + 40);
    }
    allow(l4, l4 + 4);
    let c = if ip.proto == UDP { 6 } else { 16 };
    allow(l4 + c, l4 + c + 2);
    for (i, ok) in allowed.iter().enumerate() {
        if !ok && input[i] != output[i] {
            return Err(format!("NAT changed byte {i} it must not: {}", hex(output)));
        }
    }
    Ok(())
}

/// Checksums that verified on input verify on output, from scratch.
fn checksums_kept(input: &[u8], ip: &Ip, output: &[u8], out: &Ip) -> Result<(), String> {
    if ip_checksum_ok(input, ip) && !ip_checksum_ok(output, out) {
        return Err(format!(
            "IPv4 header checksum broken by the program: {}",
            hex(output)
        ));
    }
    if l4_checksum_ok(input, ip) == Some(true) && l4_checksum_ok(output, out) != Some(true) {
        return Err(format!(
            "protocol {} checksum broken by the program: {}",
            ip.proto,
            hex(output)
        ));
    }
    Ok(())
}

fn reparse(output: &[u8]) -> Result<Ip, String> {
    match classify(output) {
        Class::L4(o) | Class::Icmp(o) => Ok(o),
        c => Err(format!(
            "forwarded frame is not well-formed ({c:?}): {}",
            hex(output)
        )),
    }
}

fn nat_to_real(
    spec: &ServiceSpec,
    snat: Option<IpAddr>,
    ip: &Ip,
    input: &[u8],
    output: &[u8],
) -> Result<(), String> {
    translation_diff(ip, input, output)?;
    let out = reparse(output)?;
    let Some(b) = spec.backends.iter().find(|b| b.addr == out.dst) else {
        return Err(format!(
            "NAT destination {} is no real of the service",
            out.dst
        ));
    };
    if output[0..6] != b.egress.next_hop_mac || output[6..12] != LB_MAC {
        return Err("NAT MACs are not the real's and the LB's".into());
    }
    let want_port = if b.port == 0 { ip.dport } else { b.port };
    if out.dport != want_port {
        return Err(format!("NAT destination port {} != {want_port}", out.dport));
    }
    match snat {
        None if out.src != ip.src || out.sport != ip.sport => {
            return Err("NAT changed the client's address or port".into())
        }
        Some(a) if out.src != a => return Err(format!("full-NAT source {} != {a}", out.src)),
        _ => {}
    }
    checksums_kept(input, ip, output, &out)
}

/// A reply (or an ICMP error) translated by the NAT: only translatable fields changed
/// (TCP/UDP), checksums still verify, and a TCP/UDP reply leaves from a NAT VIP.
fn translated_reply(
    specs: &[ServiceSpec],
    input: &[u8],
    class: &Class,
    output: &[u8],
) -> Result<(), String> {
    let out = reparse(output)?;
    match class {
        Class::L4(ip) => {
            translation_diff(ip, input, output)?;
            let from_vip = specs.iter().any(|s| {
                matches!(s.mode, ForwardMode::Nat { .. })
                    && s.id.vip == out.src
                    && s.id.port == out.sport
                    && lab::proto_number(s.id.protocol) == out.proto
            });
            if !from_vip {
                return Err(format!(
                    "NAT reply leaves from {}:{}, no NAT VIP",
                    out.src, out.sport
                ));
            }
            checksums_kept(input, ip, output, &out)
        }
        Class::Icmp(ip) => {
            if output.len() != input.len() {
                return Err("ICMP translation changed the length".into());
            }
            checksums_kept(input, ip, output, &out)
        }
        _ => Err(format!("{class:?} was translated")),
    }
}
