//! Routing a rewritten packet by the kernel's FIB (`bpf_fib_lookup`): the egress
//! interface and both MAC addresses, as the kernel would forward it.

use aya_ebpf::{
    bindings::{
        bpf_fib_lookup as FibParams, xdp_action, BPF_FIB_LKUP_RET_FWD_DISABLED,
        BPF_FIB_LKUP_RET_NOT_FWDED, BPF_FIB_LKUP_RET_NO_NEIGH, BPF_FIB_LKUP_RET_SUCCESS,
    },
    helpers::bpf_fib_lookup,
    programs::XdpContext,
};
use lb_common::{Counter, NeighMiss, FAMILY_V4};

use crate::{
    forward,
    maps::NEIGH_MISS,
    packet::write,
    stats,
    types::{Tuple, ETH_DST_OFFSET, ETH_SRC_OFFSET},
};

const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

/// Where a packet goes: out of `ifindex`, from `smac` to `dmac`.
#[derive(Clone, Copy)]
pub struct Hop {
    pub ifindex: u32,
    pub smac: [u8; 6],
    pub dmac: [u8; 6],
}

// [`lookup`] results.
/// Forward along the [`Hop`].
pub const OUT: u32 = 0;
/// For this host, or forwarding is disabled on the ingress interface.
pub const NOT_FORWARDED: u32 = 1;
/// The next hop has no neighbour entry (queued for user space to resolve).
pub const NO_NEIGH: u32 = 2;
/// Unreachable, blackhole, prohibited, ...
pub const FAILED: u32 = 3;

/// Where the kernel would send a `proto` packet of `family` shaped like `t` that
/// arrived here; fills `hop` when the result is [`OUT`]. Its own BPF function:
/// the 64-byte lookup structure stays off its callers' stacks.
#[inline(never)]
pub fn lookup(ctx: &XdpContext, family: u8, proto: u8, t: &Tuple, hop: &mut Hop) -> u32 {
    // All-zero is its "unset" state.
    let mut slot = core::mem::MaybeUninit::<FibParams>::uninit();
    // SAFETY: bpf_fib_lookup's parameters are plain data (integers, addresses, unions
    // of them).
    let p = unsafe { crate::zero::init(&mut slot) };
    p.l4_protocol = proto;
    p.sport = t.sport;
    p.dport = t.dport;
    p.ifindex = ctx.ingress_ifindex() as u32;
    if family == FAMILY_V4 {
        p.family = AF_INET;
        p.__bindgen_anon_3.ipv4_src = t.src[0];
        p.__bindgen_anon_4.ipv4_dst = t.dst[0];
    } else {
        p.family = AF_INET6;
        p.__bindgen_anon_3.ipv6_src = t.src;
        p.__bindgen_anon_4.ipv6_dst = t.dst;
    }
    // SAFETY: `p` is a valid, writable bpf_fib_lookup of the size passed.
    let rc = unsafe {
        bpf_fib_lookup(
            ctx.ctx as *mut _,
            &mut *p,
            core::mem::size_of::<FibParams>() as i32,
            0,
        )
    } as u32;
    match rc {
        BPF_FIB_LKUP_RET_SUCCESS => {
            hop.ifindex = p.ifindex;
            hop.smac = p.smac;
            hop.dmac = p.dmac;
            OUT
        }
        BPF_FIB_LKUP_RET_NOT_FWDED | BPF_FIB_LKUP_RET_FWD_DISABLED => NOT_FORWARDED,
        BPF_FIB_LKUP_RET_NO_NEIGH => {
            // The helper left the next hop (gateway or destination) and the egress
            // interface in `p`.
            // SAFETY: reading the union as the family we wrote.
            let addr = if family == FAMILY_V4 {
                [unsafe { p.__bindgen_anon_4.ipv4_dst }, 0, 0, 0]
            } else {
                unsafe { p.__bindgen_anon_4.ipv6_dst }
            };
            let mut slot = core::mem::MaybeUninit::<NeighMiss>::uninit();
            // SAFETY: a NeighMiss is plain data (an address, an index, a family).
            let miss = unsafe { crate::zero::init(&mut slot) };
            miss.addr = addr;
            miss.ifindex = p.ifindex;
            miss.family = family;
            let _ = NEIGH_MISS.insert(&*miss, &0u64, 0);
            NO_NEIGH
        }
        _ => FAILED,
    }
}

/// Sends the (already rewritten) frame as [`lookup`] said.
#[inline(always)]
pub fn send(ctx: &XdpContext, result: u32, hop: &Hop) -> u32 {
    match result {
        OUT => {
            if write(ctx, ETH_DST_OFFSET, hop.dmac).is_none()
                || write(ctx, ETH_SRC_OFFSET, hop.smac).is_none()
            {
                return xdp_action::XDP_DROP;
            }
            forward::transmit_via(ctx, hop.ifindex)
        }
        NOT_FORWARDED => xdp_action::XDP_PASS,
        NO_NEIGH => {
            stats::count(Counter::FibNoNeigh);
            xdp_action::XDP_DROP
        }
        _ => {
            stats::count(Counter::FibFailed);
            xdp_action::XDP_DROP
        }
    }
}
