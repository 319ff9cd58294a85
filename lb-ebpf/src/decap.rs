//! `lb_decap`: the backend side of TUN mode, for hosts without ipip/ip6tnl tunnel devices.
//! Strips an outer IPv4 (protocol 4) or IPv6 (next header 4 or 41) header and passes the
//! inner packet to the kernel, as if it had arrived untunnelled.

use aya_ebpf::{bindings::xdp_action, helpers::bpf_xdp_adjust_head, programs::XdpContext};
use lb_common::{Counter, ETH_P_8021Q, ETH_P_IP, ETH_P_IPV6, IPPROTO_IPIP, IPPROTO_IPV6};

use crate::{
    packet::{read, write},
    stats,
    types::{
        EthHdr, Ipv4Hdr, Ipv6Hdr, ETH_LEN, IPV4_LEN, IPV6_LEN, VLAN_LEN, VLAN_PROTO_OFFSET,
        VLAN_TCI_OFFSET,
    },
};

#[inline(always)]
pub fn process(ctx: &XdpContext) -> u32 {
    match decapsulate(ctx) {
        Some(()) => {
            stats::count(Counter::Decapsulated);
            xdp_action::XDP_PASS
        }
        None => xdp_action::XDP_PASS,
    }
}

/// Returns None (leaving the frame untouched) for anything that is not a tunnel packet.
#[inline(always)]
fn decapsulate(ctx: &XdpContext) -> Option<()> {
    let eth: EthHdr = read(ctx, 0)?;
    let vlan = eth.proto == ETH_P_8021Q.to_be();
    let (l2_len, proto) = if vlan {
        (ETH_LEN + VLAN_LEN, read::<u16>(ctx, VLAN_PROTO_OFFSET)?)
    } else {
        (ETH_LEN, eth.proto)
    };
    let tci: u16 = if vlan { read(ctx, VLAN_TCI_OFFSET)? } else { 0 };
    let (outer_len, inner_proto) = if proto == ETH_P_IP.to_be() {
        let ip: Ipv4Hdr = read(ctx, l2_len)?;
        // Only plain headers, unfragmented: anything else is the kernel's to handle.
        if ip.ver_ihl != 0x45 || ip.proto != IPPROTO_IPIP || u16::from_be(ip.frag_off) & 0x3fff != 0
        {
            return None;
        }
        (IPV4_LEN, ETH_P_IP)
    } else if proto == ETH_P_IPV6.to_be() {
        let ip: Ipv6Hdr = read(ctx, l2_len)?;
        match ip.next_hdr {
            IPPROTO_IPIP => (IPV6_LEN, ETH_P_IP),
            IPPROTO_IPV6 => (IPV6_LEN, ETH_P_IPV6),
            _ => return None,
        }
    } else {
        return None;
    };
    // SAFETY: the helper checks the adjustment against the frame.
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, outer_len as i32) } != 0 {
        return None;
    }
    let new_eth = EthHdr {
        dst: eth.dst,
        src: eth.src,
        proto: if vlan {
            ETH_P_8021Q.to_be()
        } else {
            inner_proto.to_be()
        },
    };
    write(ctx, 0, new_eth)?;
    if vlan {
        write(ctx, VLAN_TCI_OFFSET, tci)?;
        write(ctx, VLAN_PROTO_OFFSET, inner_proto.to_be())?;
    }
    Some(())
}
