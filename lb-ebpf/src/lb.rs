//! One frame through the load balancer: parse it, find its service, and hand it to the
//! path for its forwarding mode (DR/TUN here, NAT in [`crate::nat`]) or, for ICMP, to
//! [`crate::icmp`].

use aya_ebpf::{bindings::xdp_action, programs::XdpContext};
use lb_common::{global_flags, mode, Counter, ServiceInfo, ServiceKey, IPPROTO_ICMP};

use crate::{
    forward, icmp,
    maps::{Scratch, FLAGS, SCRATCH},
    nat,
    packet::{self, Skip},
    route::{self, Hop},
    select::{choose_backend, find_service},
    stats,
    types::Packet,
};

/// Returns the XDP action for one frame.
#[inline(always)]
pub fn process(ctx: &XdpContext) -> u32 {
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
            return xdp_action::XDP_PASS;
        }
        Err(Skip::Drop(counter)) => {
            stats::count(counter);
            return xdp_action::XDP_DROP;
        }
        Err(Skip::Icmp { l3, l4, family }) => {
            let action = icmp::process(ctx, l3 & 0xff, l4 & 0xff, family, to);
            if action != icmp::ROUTE {
                return action;
            }
            let mut hop_slot = core::mem::MaybeUninit::<Hop>::uninit();
            // SAFETY: a Hop is plain data (an index and two MAC addresses).
            let hop = unsafe { crate::zero::init(&mut hop_slot) };
            let result = route::lookup(ctx, family, IPPROTO_ICMP, to, hop);
            return route::send(ctx, result, hop);
        }
    }
    if !find_service(pkt, key, svc) {
        // Not for a VIP: a NAT'ed reply, else management traffic or the host's own.
        // Without NAT services, no table lookup is spent on it.
        if FLAGS.get(0).is_some_and(|f| f & global_flags::NAT != 0) {
            return nat::to_client(ctx, pkt);
        }
        return xdp_action::XDP_PASS;
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
    balance(ctx, pkt, key, svc, bytes)
}

/// DR and TUN. Each path is its own BPF function so that their stacks do not add up
/// (the verifier allows 512 bytes for the deepest chain of calls).
#[inline(never)]
fn balance(ctx: &XdpContext, pkt: &Packet, key: &ServiceKey, svc: &ServiceInfo, bytes: u64) -> u32 {
    let Some((backend_id, backend)) = choose_backend(pkt, key, svc) else {
        return xdp_action::XDP_DROP;
    };
    stats::count_backend(backend_id, bytes);
    forward::forward(ctx, pkt, svc.flags & mode::MASK, backend)
}
