//! Frames meant for another host. A switch floods a frame to every port while it has not
//! learnt (or has forgotten) the port of its destination MAC: right after a VRRP
//! failover, frames still addressed to the old MASTER's MAC reach the new one. The kernel
//! discards such frames (`PACKET_OTHERHOST`), and so must the data plane: forwarding one
//! sends a flow the new MASTER has not learnt yet to a backend of its own choosing,
//! which resets the connection. The daemon writes each attached interface's MACs into
//! `lb_local_macs`; a frame to a VIP addressed to none of them passes to the kernel.

use aya_ebpf::programs::XdpContext;
use lb_common::{capacity, LOCAL_MACS_PER_INTERFACE};

use crate::{maps::LOCAL_MACS, packet, types::ETH_DST_OFFSET};

/// Whether the frame's destination MAC is known to be another host's: the receiving
/// interface has an entry and the MAC is none of its addresses. One array read (and a
/// comparison of six bytes per address); no entry, no check.
#[inline(always)]
pub fn addressed_elsewhere(ctx: &XdpContext) -> bool {
    let ifindex = ctx.ingress_ifindex() as u32;
    let Some(local) = LOCAL_MACS.get(ifindex % capacity::LOCAL_MAC_SLOTS) else {
        return false;
    };
    // An interface with more addresses than an entry holds is written with count 0.
    if local.ifindex != ifindex
        || local.count == 0
        || local.count as usize > LOCAL_MACS_PER_INTERFACE
    {
        return false;
    }
    let Some(dst) = packet::read::<[u8; 6]>(ctx, ETH_DST_OFFSET) else {
        return false;
    };
    let dst = word(&dst);
    for (i, mac) in local.macs.iter().enumerate() {
        if i as u32 >= local.count {
            break;
        }
        if word(mac) == dst {
            return false;
        }
    }
    true
}

/// Six bytes as one integer: compared in one instruction, without a `memcmp`.
#[inline(always)]
fn word(mac: &[u8; 6]) -> u64 {
    u64::from(u32::from_ne_bytes([mac[0], mac[1], mac[2], mac[3]]))
        | (u64::from(u16::from_ne_bytes([mac[4], mac[5]])) << 32)
}
