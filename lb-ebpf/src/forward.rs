//! Forwarding: DR (MAC rewrite) and TUN (IP-in-IP / IPv6 encapsulation), then out of the
//! backend's interface.

use aya_ebpf::{
    bindings::xdp_action,
    helpers::{bpf_redirect, bpf_xdp_adjust_head},
    programs::XdpContext,
};
use lb_common::{
    mode, Backend, Counter, ETH_P_8021Q, ETH_P_IP, ETH_P_IPV6, FAMILY_V4, FAMILY_V6, IPPROTO_IPIP,
    IPPROTO_IPV6, TUNNEL_TTL,
};

use crate::{
    csum,
    packet::{read, write},
    stats,
    types::{
        EthHdr, Ipv4Hdr, Ipv6Hdr, Packet, ETH_DST_OFFSET, ETH_LEN, ETH_SRC_OFFSET, IPV4_LEN,
        IPV6_LEN, VLAN_LEN, VLAN_PROTO_OFFSET, VLAN_TCI_OFFSET,
    },
};

#[inline(always)]
pub fn forward(ctx: &XdpContext, pkt: &Packet, mode: u32, backend: &Backend) -> u32 {
    let ok = if mode == mode::TUN {
        encapsulate(ctx, pkt, backend)
    } else {
        // DR: the frame is unchanged but for its Ethernet addresses.
        set_macs(ctx, backend)
    };
    if ok.is_none() {
        stats::count(Counter::EncapFailed);
        return xdp_action::XDP_DROP;
    }
    transmit(ctx, backend)
}

#[inline(always)]
pub fn set_macs(ctx: &XdpContext, backend: &Backend) -> Option<()> {
    write(ctx, ETH_DST_OFFSET, backend.mac)?;
    write(ctx, ETH_SRC_OFFSET, backend.src_mac)
}

/// Out of the backend's interface.
#[inline(always)]
pub fn transmit(ctx: &XdpContext, backend: &Backend) -> u32 {
    transmit_via(ctx, backend.ifindex)
}

/// Same interface (or 0, "the same"): bounce the frame; another one: redirect to it.
#[inline(always)]
pub fn transmit_via(ctx: &XdpContext, ifindex: u32) -> u32 {
    if ifindex == 0 || ifindex as usize == ctx.ingress_ifindex() {
        return xdp_action::XDP_TX;
    }
    stats::count(Counter::VerdictRedirect);
    // SAFETY: bpf_redirect has no memory preconditions.
    unsafe { bpf_redirect(ifindex, 0) as u32 }
}

/// Prepends an outer IPv4 or IPv6 header to the IP datagram, keeping any VLAN tag.
///
/// The tagged and untagged frames take separate branches with constant offsets: when the
/// tag was an `Option` tested twice, LLVM re-compared the header offset for the second
/// test, and Linux 6.1's verifier, which cannot decide `const > reg`, explored the
/// impossible combination with a register holding something else and rejected it.
#[inline(always)]
fn encapsulate(ctx: &XdpContext, pkt: &Packet, backend: &Backend) -> Option<()> {
    let outer_len = match backend.family {
        FAMILY_V4 if pkt.family == FAMILY_V4 => IPV4_LEN,
        FAMILY_V6 => IPV6_LEN,
        // IPv6 in IPv4 is not offered (rejected by configuration).
        _ => return None,
    };
    let outer_proto = if backend.family == FAMILY_V4 {
        ETH_P_IP
    } else {
        ETH_P_IPV6
    }
    .to_be();
    if pkt.l3() > ETH_LEN {
        // The VLAN tag travels with the new Ethernet header.
        let tci: u16 = read(ctx, VLAN_TCI_OFFSET)?;
        grow(ctx, outer_len)?;
        write(ctx, 0, eth_to(backend, ETH_P_8021Q.to_be()))?;
        write(ctx, VLAN_TCI_OFFSET, tci)?;
        write(ctx, VLAN_PROTO_OFFSET, outer_proto)?;
        write_outer(ctx, ETH_LEN + VLAN_LEN, pkt, backend)
    } else {
        grow(ctx, outer_len)?;
        write(ctx, 0, eth_to(backend, outer_proto))?;
        write_outer(ctx, ETH_LEN, pkt, backend)
    }
}

/// Room for `len` more bytes in front of the frame.
#[inline(always)]
fn grow(ctx: &XdpContext, len: usize) -> Option<()> {
    // SAFETY: the helper validates the adjustment against the frame's headroom.
    (unsafe { bpf_xdp_adjust_head(ctx.ctx, -(len as i32)) } == 0).then_some(())
}

#[inline(always)]
fn eth_to(backend: &Backend, proto: u16) -> EthHdr {
    EthHdr {
        dst: backend.mac,
        src: backend.src_mac,
        proto,
    }
}

/// The outer IP header at `l3`.
#[inline(always)]
fn write_outer(ctx: &XdpContext, l3: usize, pkt: &Packet, backend: &Backend) -> Option<()> {
    if backend.family == FAMILY_V4 {
        write(ctx, l3, outer_ipv4(pkt, backend))
    } else {
        let inner_proto = if pkt.family == FAMILY_V4 {
            IPPROTO_IPIP
        } else {
            IPPROTO_IPV6
        };
        write(ctx, l3, outer_ipv6(pkt, backend, inner_proto))
    }
}

#[inline(always)]
fn outer_ipv4(pkt: &Packet, backend: &Backend) -> Ipv4Hdr {
    let mut ip = Ipv4Hdr {
        ver_ihl: 0x45,
        tos: pkt.tos,
        tot_len: pkt.ip_len.wrapping_add(IPV4_LEN as u16).to_be(),
        id: 0,
        frag_off: 0,
        ttl: TUNNEL_TTL,
        proto: IPPROTO_IPIP,
        check: 0,
        src: backend.tun_src[0],
        dst: backend.addr[0],
    };
    ip.check = csum::ipv4_header(&ip);
    ip
}

#[inline(always)]
fn outer_ipv6(pkt: &Packet, backend: &Backend, next_hdr: u8) -> Ipv6Hdr {
    Ipv6Hdr {
        vtc_flow: ((6u32 << 28) | ((pkt.tos as u32) << 20)).to_be(),
        payload_len: pkt.ip_len.to_be(),
        next_hdr,
        hop_limit: TUNNEL_TTL,
        src: backend.tun_src,
        dst: backend.addr,
    }
}
