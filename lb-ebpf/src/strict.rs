//! keepalived's no-accept mode (`vrrp_strict`, `no_accept`): while an instance in that
//! mode is MASTER, the host must not answer its VIPs (keepalived drops their traffic with
//! an nftables/iptables rule on the input hook). Here a frame to such a VIP that no
//! service took is dropped and counted (`vip_strict_drop`); VRRP and IPv6 neighbour
//! discovery (keepalived's rule lets both through) pass, and so does every frame to
//! another address. Only the exits that would pass a frame to the kernel come here, so
//! what a service forwards is never touched.

use aya_ebpf::{bindings::xdp_action, programs::XdpContext};
use lb_common::{
    global_flags, vip_filter, vip_slot, Counter, StrictVip, ETH_P_8021Q, ETH_P_IP, ETH_P_IPV6,
    FAMILY_V4, FAMILY_V6, IPPROTO_ICMPV6, IPPROTO_VRRP,
};

use crate::{
    maps::{FLAGS, STRICT_VIPS, VIP_FILTER},
    stats,
    types::{Ipv4Hdr, Ipv6Hdr, ETH_LEN, ETH_PROTO_OFFSET, IPV6_LEN, VLAN_LEN, VLAN_PROTO_OFFSET},
};

/// ICMPv6 neighbour solicitation and advertisement (keepalived's `neighbor-discovery`
/// set): a MASTER must still resolve and be resolved on its VIPs.
const ND_SOLICIT: u8 = 135;
const ND_ADVERT: u8 = 136;

/// `XDP_PASS` for a frame no service took, or `XDP_DROP` (counted) when it is addressed
/// to a VIP in no-accept mode. Its own BPF function: its reads do not add to the
/// stack of the paths that call it.
#[inline(never)]
pub fn pass(ctx: &XdpContext) -> u32 {
    // No VIP in no-accept mode: one bit test.
    if FLAGS.get(0).is_none_or(|f| f & global_flags::STRICT == 0) {
        return xdp_action::XDP_PASS;
    }
    if to_strict_vip(ctx) {
        stats::count(Counter::VipStrictDrop);
        return xdp_action::XDP_DROP;
    }
    xdp_action::XDP_PASS
}

/// The frame's bounds, read with volatile loads: otherwise LLVM may pass this BPF
/// function the frame's start and end as plain integers instead of `ctx` (it did while
/// no helper call came before the reads), and the verifier rejects arithmetic on those.
struct Frame {
    data: usize,
    end: usize,
}

impl Frame {
    #[inline(always)]
    fn of(ctx: &XdpContext) -> Frame {
        // SAFETY: `ctx.ctx` is the program's context, valid for the whole run.
        let (data, end) = unsafe {
            (
                core::ptr::read_volatile(&(*ctx.ctx).data),
                core::ptr::read_volatile(&(*ctx.ctx).data_end),
            )
        };
        Frame {
            data: data as usize,
            end: end as usize,
        }
    }

    /// The `T` at `offset`, if the whole `T` is inside the frame (`T` of 2 bytes or
    /// more, as `packet::ptr_at`).
    #[inline(always)]
    fn read<T: Copy>(&self, offset: usize) -> Option<T> {
        if self.data + offset + core::mem::size_of::<T>() > self.end {
            return None;
        }
        // SAFETY: checked to lie inside the frame just above.
        Some(unsafe { ((self.data + offset) as *const T).read_unaligned() })
    }
}

/// Whether the frame is IPv4/IPv6 (neither VRRP nor neighbour discovery) to an address
/// of `lb_strict_vips`: one array read, and one hash lookup only when the filter slot
/// says a strict VIP hashes there.
#[inline(always)]
fn to_strict_vip(ctx: &XdpContext) -> bool {
    let frame = Frame::of(ctx);
    let Some(mut ethertype) = frame.read::<u16>(ETH_PROTO_OFFSET) else {
        return false;
    };
    let mut l3 = ETH_LEN;
    if ethertype == ETH_P_8021Q.to_be() {
        let Some(inner) = frame.read::<u16>(VLAN_PROTO_OFFSET) else {
            return false;
        };
        ethertype = inner;
        l3 += VLAN_LEN;
    }
    let (addr, family) = if ethertype == ETH_P_IP.to_be() {
        let Some(ip) = frame.read::<Ipv4Hdr>(l3) else {
            return false;
        };
        if ip.proto == IPPROTO_VRRP {
            return false;
        }
        ([ip.dst, 0, 0, 0], FAMILY_V4)
    } else if ethertype == ETH_P_IPV6.to_be() {
        let Some(ip) = frame.read::<Ipv6Hdr>(l3) else {
            return false;
        };
        if ip.next_hdr == IPPROTO_VRRP {
            return false;
        }
        // Type and code: a read of a single byte defeats the verifier's bounds tracking.
        if ip.next_hdr == IPPROTO_ICMPV6
            && frame
                .read::<[u8; 2]>(l3 + IPV6_LEN)
                .is_some_and(|[kind, _]| kind == ND_SOLICIT || kind == ND_ADVERT)
        {
            return false;
        }
        (ip.dst, FAMILY_V6)
    } else {
        // ARP and anything else that is not IP.
        return false;
    };
    let filter = VIP_FILTER.get(vip_slot(&addr)).copied().unwrap_or(0);
    if filter & vip_filter::STRICT == 0 {
        return false;
    }
    let key = StrictVip {
        addr,
        family,
        pad: [0; 3],
    };
    // SAFETY: only whether the entry exists is read.
    unsafe { STRICT_VIPS.get(&key) }.is_some()
}
