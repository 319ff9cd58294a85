//! NAT (`lb_kind = "NAT"`): client -> VIP:vport becomes client -> real:rport (with
//! `snat_address`: snat:port -> real:rport), and the real's replies become
//! VIP:vport -> client again. Each direction has an entry in `lb_nat`, keyed by the
//! packet as it arrives, saying what it becomes.

use aya_ebpf::{
    bindings::{xdp_action, BPF_ANY, BPF_NOEXIST},
    helpers::bpf_ktime_get_coarse_ns,
    programs::XdpContext,
};
use lb_common::{
    hash, nat_dir, nat_state, service_flags, snat_ports, Backend, Counter, FlowKey, NatEntry,
    ServiceInfo, ServiceKey, IPPROTO_TCP, NAT_HOP_TTL_NS,
};

use crate::{
    forward, learn,
    maps::{NAT, NAT_REALS, SCRATCH},
    rewrite::rewrite,
    route::{self, Hop},
    select::{active_backend, choose_backend, pick},
    stats,
    types::{is_new_syn, Packet, Tuple, TCP_FIN, TCP_RST, TCP_SYN},
};

/// `-EEXIST`: the key is taken (another flow holds that source port).
const EEXIST: i32 = -17;

/// Returned by [`to_real`] when the packet starts a flow: call [`new_flow`].
pub const NEW_FLOW: u32 = u32::MAX;

/// A client packet for a NAT service with a translation entry: rewritten and sent.
/// [`NEW_FLOW`] when there is none (or it is stale). Separate BPF functions, like
/// [`to_client`]: the verifier counts 512 bytes of stack over the deepest call chain.
#[inline(never)]
pub fn to_real(ctx: &XdpContext, pkt: &Packet, bytes: u64) -> u32 {
    let flow = pkt.flow();
    let flags = pkt.tcp_flags;
    // SAFETY: bpf_ktime_get_coarse_ns has no preconditions.
    let now = unsafe { bpf_ktime_get_coarse_ns() };
    if let Some(entry) = NAT.get_ptr_mut(&flow) {
        // SAFETY: the entry stays valid until it is deleted; racing writers can at worst
        // leave a stale timestamp or state, which the next packet corrects.
        let e = unsafe { &mut *entry };
        if e.direction != nat_dir::TO_REAL {
            // A reply entry: this "client" claims to be the VIP itself. Translating it
            // would send the real a frame addressed to the VIP (found by the XDP fuzzer).
            stats::count(Counter::NatMisdirected);
            return xdp_action::XDP_DROP;
        }
        // A new SYN on a closed connection's tuple starts a new connection.
        let reused = is_new_syn(flags) && e.state >= nat_state::FIN;
        if !reused {
            if let Some(b) = active_backend(e.backend).filter(|b| b.generation == e.generation) {
                touch(e, pkt.proto, flags, now);
                let to = tuple(e);
                return send_to_real(ctx, pkt, &to, e.backend, b, bytes);
            }
        }
        // The backend is gone (or the tuple reused): forget both directions.
        let old = *e;
        let _ = NAT.remove(&reverse_key(&old, pkt));
    }
    NEW_FLOW
}

/// A connection's first packet (or one whose entry is gone): choose the real, make
/// both entries, rewrite. Its own BPF function, off the established path's stack.
#[inline(never)]
pub fn new_flow(
    ctx: &XdpContext,
    pkt: &Packet,
    key: &ServiceKey,
    svc: &ServiceInfo,
    bytes: u64,
) -> u32 {
    let flow = pkt.flow();
    let flags = pkt.tcp_flags;
    // SAFETY: no preconditions.
    let now = unsafe { bpf_ktime_get_coarse_ns() };
    let persistent = svc.flags & service_flags::PERSISTENT != 0;
    let chosen = if persistent {
        choose_backend(pkt, key, svc, false)
    } else {
        pick(pkt, svc)
    };
    let Some((id, b)) = chosen else {
        return xdp_action::XDP_DROP;
    };
    let snat = svc.flags & service_flags::SNAT != 0;
    let state = initial_state(pkt.proto, flags);
    // Both entries are built in the per-CPU scratch area (this function's stack is
    // tight), field by field on cleared memory (zeroed arrays in a struct literal
    // compile to `memset` calls, see `zero`).
    let Some(scratch) = SCRATCH.get_ptr_mut(0) else {
        return xdp_action::XDP_DROP;
    };
    // SAFETY: this CPU's scratch entry; only its `fwd` and `rev` fields are borrowed
    // here (`pkt`, `key` and `svc` point to other fields).
    let (fwd, rev) = unsafe {
        (
            &mut *core::ptr::addr_of_mut!((*scratch).fwd),
            &mut *core::ptr::addr_of_mut!((*scratch).rev),
        )
    };
    // SAFETY: a NatEntry is plain data (addresses, integers, MAC addresses).
    unsafe {
        crate::zero::clear(fwd);
        crate::zero::clear(rev);
    }
    crate::zero::copy_addr(&mut fwd.src, if snat { &svc.snat } else { &pkt.src });
    crate::zero::copy_addr(&mut fwd.dst, &b.addr);
    fwd.sport = pkt.sport;
    // A wildcard-port service keeps the client's destination port.
    fwd.dport = if b.port == 0 { pkt.dport } else { b.port };
    fwd.backend = id;
    fwd.generation = b.generation;
    fwd.direction = nat_dir::TO_REAL;
    fwd.state = state;
    fwd.last_seen_ns = now;
    crate::zero::copy_addr(&mut rev.src, &pkt.dst);
    crate::zero::copy_addr(&mut rev.dst, &pkt.src);
    rev.sport = pkt.dport;
    rev.dport = pkt.sport;
    rev.backend = id;
    rev.generation = b.generation;
    rev.direction = nat_dir::TO_CLIENT;
    rev.state = state;
    rev.last_seen_ns = now;
    let mut tracked = if snat {
        match allocate_port(pkt, fwd, rev) {
            Ok(()) => true,
            Err(Full::Table) => false,
            Err(Full::Ports) => {
                stats::count(Counter::SnatPortsExhausted);
                return xdp_action::XDP_DROP;
            }
        }
    } else {
        NAT.insert(&reverse_key(fwd, pkt), &*rev, BPF_ANY as u64)
            .is_ok()
    };
    if tracked && NAT.insert(&flow, &*fwd, BPF_ANY as u64).is_err() {
        let _ = NAT.remove(&reverse_key(fwd, pkt));
        tracked = false;
    }
    if tracked {
        learn::nat(&flow, fwd);
    } else {
        stats::count(Counter::NatTableFull);
        // Full-NAT replies cannot be translated without the entry.
        if snat {
            return xdp_action::XDP_DROP;
        }
    }
    let to = tuple(fwd);
    send_to_real(ctx, pkt, &to, id, b, bytes)
}

/// A packet not for a VIP: if it is a real's reply to a NAT'ed client, rewrites it to
/// come from the VIP and routes it; else `XDP_PASS`, untouched.
#[inline(never)]
pub fn to_client(ctx: &XdpContext, pkt: &Packet) -> u32 {
    reply_or_none(ctx, pkt).unwrap_or(xdp_action::XDP_PASS)
}

#[inline(always)]
fn reply_or_none(ctx: &XdpContext, pkt: &Packet) -> Option<u32> {
    let flow = pkt.flow();
    if let Some(entry) = NAT.get_ptr_mut(&flow) {
        // SAFETY: as in `to_real`.
        let e = unsafe { &mut *entry };
        if e.direction != nat_dir::TO_CLIENT {
            return None;
        }
        let flags = pkt.tcp_flags;
        // SAFETY: no preconditions.
        let now = unsafe { bpf_ktime_get_coarse_ns() };
        touch(e, pkt.proto, flags, now);
        let to = tuple(e);
        // Starts as the cached route (initialising it from the entry, not with zeros,
        // spares a `memset` call, a byte loop on BPF, on every reply).
        let mut hop = Hop {
            ifindex: e.hop_ifindex,
            smac: e.hop_smac,
            dmac: e.hop_dmac,
        };
        let result = if e.hop_ifindex != 0 && now.wrapping_sub(e.hop_checked_ns) < NAT_HOP_TTL_NS {
            route::OUT
        } else {
            let result = route::lookup(ctx, pkt.family, pkt.proto, &to, &mut hop);
            if result == route::OUT {
                e.hop_ifindex = hop.ifindex;
                e.hop_smac = hop.smac;
                e.hop_dmac = hop.dmac;
                e.hop_checked_ns = now;
            }
            result
        };
        // A client the FIB does not forward to (no route, a local address, forwarding
        // off): the kernel gets the reply untouched, as on the stateless path below,
        // never half-translated (found by the XDP fuzzer).
        if result == route::NOT_FORWARDED {
            return None;
        }
        rewrite(ctx, pkt, &to)?;
        stats::count(Counter::NatToClient);
        return Some(route::send(ctx, result, &hop));
    }
    // No entry (table full, or flows taken over after a failover): a real that serves
    // exactly one NAT service answers for its VIP.
    let real_key = ServiceKey {
        addr: pkt.src,
        port: pkt.sport,
        proto: pkt.proto,
        family: pkt.family,
    };
    // SAFETY: copied out at once.
    let real = *unsafe { NAT_REALS.get(&real_key) }?;
    let to = Tuple {
        src: real.vip,
        dst: pkt.dst,
        sport: real.vport,
        dport: pkt.dport,
    };
    let mut hop_slot = core::mem::MaybeUninit::<Hop>::uninit();
    // SAFETY: a Hop is plain data (an index and two MAC addresses).
    let hop = unsafe { crate::zero::init(&mut hop_slot) };
    let result = route::lookup(ctx, pkt.family, pkt.proto, &to, hop);
    // For this host (e.g. a health check's answer): not a client's reply.
    if result == route::NOT_FORWARDED {
        return None;
    }
    rewrite(ctx, pkt, &to)?;
    stats::count(Counter::NatStatelessReply);
    stats::count(Counter::NatToClient);
    Some(route::send(ctx, result, hop))
}

#[inline(always)]
fn send_to_real(
    ctx: &XdpContext,
    pkt: &Packet,
    to: &Tuple,
    id: u32,
    b: &Backend,
    bytes: u64,
) -> u32 {
    if rewrite(ctx, pkt, to).is_none() || forward::set_macs(ctx, b).is_none() {
        return xdp_action::XDP_DROP;
    }
    stats::count_backend(id, bytes);
    stats::count(Counter::NatToReal);
    forward::transmit(ctx, b)
}

enum Full {
    /// The NAT table has no room.
    Table,
    /// Every candidate source port is taken.
    Ports,
}

/// Picks the full-NAT source port: the first of a few flow-hashed candidates whose
/// reply key is free, claimed by inserting the reply entry (atomic across CPUs).
#[inline(always)]
fn allocate_port(pkt: &Packet, fwd: &mut NatEntry, rev: &NatEntry) -> Result<(), Full> {
    let h = hash::flow_hash(&pkt.src, &pkt.dst, pkt.sport, pkt.dport, pkt.proto);
    let mut i = 0;
    while i < snat_ports::TRIES {
        let port = snat_ports::FIRST as u32
            + h.wrapping_add(i.wrapping_mul(7919)) % snat_ports::COUNT as u32;
        fwd.sport = (port as u16).to_be();
        match NAT.insert(&reverse_key(fwd, pkt), rev, BPF_NOEXIST as u64) {
            Ok(()) => return Ok(()),
            Err(EEXIST) => {}
            Err(_) => return Err(Full::Table),
        }
        i += 1;
    }
    Err(Full::Ports)
}

/// The key the real's replies arrive with: the rewritten tuple, reversed.
#[inline(always)]
fn reverse_key(fwd: &NatEntry, pkt: &Packet) -> FlowKey {
    FlowKey {
        src: fwd.dst,
        dst: fwd.src,
        sport: fwd.dport,
        dport: fwd.sport,
        proto: pkt.proto,
        family: pkt.family,
        pad: 0,
    }
}

#[inline(always)]
fn tuple(e: &NatEntry) -> Tuple {
    Tuple {
        src: e.src,
        dst: e.dst,
        sport: e.sport,
        dport: e.dport,
    }
}

#[inline(always)]
fn initial_state(proto: u8, flags: u8) -> u8 {
    if proto != IPPROTO_TCP {
        nat_state::UDP
    } else if is_new_syn(flags) {
        nat_state::SYN
    } else {
        // Picked up mid-connection (after a failover, or a full table freed room).
        next_state(nat_state::ESTABLISHED, flags)
    }
}

/// TCP states only move forward: SYN -> ESTABLISHED -> FIN -> CLOSED.
#[inline(always)]
fn next_state(state: u8, flags: u8) -> u8 {
    if flags & TCP_RST != 0 {
        nat_state::CLOSED
    } else if flags & TCP_FIN != 0 && state < nat_state::FIN {
        nat_state::FIN
    } else if state == nat_state::SYN && flags & TCP_SYN == 0 {
        nat_state::ESTABLISHED
    } else {
        state
    }
}

#[inline(always)]
fn touch(e: &mut NatEntry, proto: u8, flags: u8, now: u64) {
    e.last_seen_ns = now;
    if proto == IPPROTO_TCP {
        let next = next_state(e.state, flags);
        if next != e.state {
            e.state = next;
        }
    }
}
