//! One frame through the load balancer: parse it, find its service, and hand it to the
//! path for its forwarding mode (DR/TUN here, NAT in [`crate::nat`]) or, for ICMP, to
//! [`crate::icmp`]. What no service takes passes to the kernel, unless it is addressed to
//! a VIP in no-accept mode ([`crate::strict`]).

use aya_ebpf::{bindings::xdp_action, programs::XdpContext};
use lb_common::{
    global_flags, mode, vip_filter, vip_slot, Counter, ServiceInfo, ServiceKey, ETH_P_IP,
    ETH_P_IPV6, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP,
};

use crate::{
    forward, icmp,
    maps::{Scratch, FLAGS, SCRATCH, VIP_FILTER},
    nat, other_host,
    packet::{self, Skip},
    route::{self, Hop},
    select::{choose_backend, established, find_service},
    stats, strict,
    types::{
        is_new_syn, Ipv4Hdr, Ipv6Hdr, Packet, ETH_LEN, ETH_PROTO_OFFSET, IPV4_LEN, IPV6_LEN,
        TCP_LEN, UDP_LEN,
    },
};

/// [`fast_path`] found no valid connection-table entry.
const MISS: u32 = u32::MAX;

/// Returns the XDP action for one frame.
#[inline(always)]
pub fn process(ctx: &XdpContext) -> u32 {
    if plainly_not_for_a_vip(ctx) {
        return xdp_action::XDP_PASS;
    }
    let Some(scratch) = SCRATCH.get_ptr_mut(0) else {
        return xdp_action::XDP_PASS;
    };
    // SAFETY: this CPU's slot, used by this program run only.
    let Scratch {
        pkt,
        key,
        svc,
        route: to,
        ..
    } = unsafe { &mut *scratch };
    let code = packet::parse_into(ctx, pkt);
    match packet::outcome(code, pkt) {
        Ok(()) => {}
        Err(Skip::Pass(counter)) => {
            if let Some(c) = counter {
                stats::count(c);
            }
            return strict::pass(ctx);
        }
        Err(Skip::Drop(counter)) => {
            stats::count(counter);
            return xdp_action::XDP_DROP;
        }
        Err(Skip::Icmp { l3, l4, family }) => {
            let action = icmp::process(ctx, l3 & 0xff, l4 & 0xff, family, to);
            if action == xdp_action::XDP_PASS {
                return strict::pass(ctx);
            }
            if action != icmp::ROUTE {
                return action;
            }
            let mut hop_slot = core::mem::MaybeUninit::<Hop>::uninit();
            // SAFETY: a Hop is plain data (an index and two MAC addresses).
            let hop = unsafe { crate::zero::init(&mut hop_slot) };
            let result = route::lookup(ctx, family, IPPROTO_ICMP, to, hop);
            // Translated before its route was known: never passed to the kernel
            // half-translated (found by the XDP fuzzer).
            if result == route::NOT_FORWARDED {
                stats::count(Counter::FibFailed);
                return xdp_action::XDP_DROP;
            }
            return route::send(ctx, result, hop);
        }
    }
    // One array read tells a packet for no VIP from the rest.
    let filter = VIP_FILTER.get(vip_slot(&pkt.dst)).copied().unwrap_or(0);
    if filter == 0 {
        return not_for_vip(ctx, pkt);
    }
    // Flooded by a switch to every port, meant for another node (the old MASTER): the
    // kernel discards it; forwarded, it would reach a backend that knows nothing of it.
    if other_host::addressed_elsewhere(ctx) {
        stats::count(Counter::VipOtherHost);
        return xdp_action::XDP_PASS;
    }
    // An established DR/TUN flow: one connection-table lookup and out. A new connection
    // (SYN) is scheduled afresh even on a remembered tuple, so it skips this.
    let fast =
        filter & vip_filter::FAST != 0 && !(pkt.proto == IPPROTO_TCP && is_new_syn(pkt.tcp_flags));
    if fast {
        let action = fast_path(ctx, pkt);
        if action != MISS {
            return action;
        }
    }
    if !find_service(pkt, key, svc) {
        let action = not_for_vip(ctx, pkt);
        // A VIP in no-accept mode hashes here: the kernel must not answer it.
        if action == xdp_action::XDP_PASS && filter & vip_filter::STRICT != 0 {
            return strict::pass(ctx);
        }
        return action;
    }
    stats::count(Counter::VipPackets);
    let bytes = (ctx.data_end() - ctx.data()) as u64;
    stats::count_service(svc.id, bytes);
    if svc.flags & mode::MASK == mode::NAT {
        let action = nat::to_real(ctx, pkt, bytes);
        if action != nat::NEW_FLOW {
            return action;
        }
        return nat::new_flow(ctx, pkt, key, svc, bytes);
    }
    balance(ctx, pkt, key, svc, fast)
}

/// The cheap exit for traffic we must not touch: an untagged IPv4 (no options, not a
/// fragment) or IPv6 TCP/UDP packet with its whole L4 header, to an address no service
/// uses (one array read), while no NAT service needs its replies. Exactly the packets the
/// full parse would pass without counting anything; every other packet takes that path.
#[inline(always)]
fn plainly_not_for_a_vip(ctx: &XdpContext) -> bool {
    if FLAGS.get(0).is_none_or(|f| f & global_flags::NAT != 0) {
        return false;
    }
    let Some(ethertype) = packet::read::<u16>(ctx, ETH_PROTO_OFFSET) else {
        return false;
    };
    let (dst, proto, l4, claimed) = if ethertype == ETH_P_IP.to_be() {
        let Some(ip) = packet::read::<Ipv4Hdr>(ctx, ETH_LEN) else {
            return false;
        };
        if ip.ver_ihl != 0x45
            || u16::from_be(ip.tot_len) < IPV4_LEN as u16
            || u16::from_be(ip.frag_off) & 0x3fff != 0
        {
            return false;
        }
        (
            [ip.dst, 0, 0, 0],
            ip.proto,
            ETH_LEN + IPV4_LEN,
            u16::from_be(ip.tot_len) as usize,
        )
    } else if ethertype == ETH_P_IPV6.to_be() {
        let Some(ip) = packet::read::<Ipv6Hdr>(ctx, ETH_LEN) else {
            return false;
        };
        (
            ip.dst,
            ip.next_hdr,
            ETH_LEN + IPV6_LEN,
            u16::from_be(ip.payload_len) as usize + IPV6_LEN,
        )
    } else {
        return false;
    };
    let l4_len = match proto {
        IPPROTO_TCP => TCP_LEN,
        IPPROTO_UDP => UDP_LEN,
        _ => return false,
    };
    if ctx.data() + l4 + l4_len > ctx.data_end() {
        return false;
    }
    // A datagram too short for its transport header, or longer than the frame: the
    // full parse drops it (`packet::datagram_fits`).
    if claimed < l4 - ETH_LEN + l4_len || ETH_LEN + claimed > packet::frame_len(ctx) {
        return false;
    }
    VIP_FILTER.get(vip_slot(&dst)).is_some_and(|&f| f == 0)
}

/// Not for a VIP: a NAT'ed reply, else management traffic or the host's own. Without NAT
/// services, no table lookup is spent on it.
#[inline(always)]
fn not_for_vip(ctx: &XdpContext, pkt: &Packet) -> u32 {
    if FLAGS.get(0).is_some_and(|f| f & global_flags::NAT != 0) {
        return nat::to_client(ctx, pkt);
    }
    xdp_action::XDP_PASS
}

/// An established DR/TUN flow forwarded on its connection-table entry, else [`MISS`].
#[inline(never)]
fn fast_path(ctx: &XdpContext, pkt: &Packet) -> u32 {
    let Some((svc, backend_id, backend)) = established(pkt) else {
        return MISS;
    };
    stats::count(Counter::VipPackets);
    let bytes = (ctx.data_end() - ctx.data()) as u64;
    stats::count_service(svc.id, bytes);
    stats::count_backend(backend_id, bytes);
    forward::forward(ctx, pkt, svc.flags & mode::MASK, backend)
}

/// DR and TUN. Each path is its own BPF function so that their stacks do not add up
/// (the verifier allows 512 bytes for the deepest chain of calls).
#[inline(never)]
fn balance(
    ctx: &XdpContext,
    pkt: &Packet,
    key: &ServiceKey,
    svc: &ServiceInfo,
    looked_up: bool,
) -> u32 {
    // Recomputed rather than passed: a BPF function takes at most five arguments.
    let bytes = (ctx.data_end() - ctx.data()) as u64;
    let Some((backend_id, backend)) = choose_backend(pkt, key, svc, looked_up) else {
        return xdp_action::XDP_DROP;
    };
    stats::count_backend(backend_id, bytes);
    forward::forward(ctx, pkt, svc.flags & mode::MASK, backend)
}
