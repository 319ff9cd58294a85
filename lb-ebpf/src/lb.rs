//! Service lookup, connection table and Maglev backend choice.

use aya_ebpf::{bindings::xdp_action, helpers::bpf_ktime_get_coarse_ns, programs::XdpContext};
use lb_common::{
    backend_flags, global_flags, hash, mode, service_flags, Backend, Conn, Counter, FlowKey,
    ServiceInfo, ServiceKey, IPPROTO_ICMP, IPPROTO_TCP, NO_BACKEND,
};

use crate::{
    forward, icmp,
    maps::{Scratch, BACKENDS, CONNTRACK, FLAGS, MAGLEV, SCRATCH, SERVICES},
    nat,
    packet::{self, Packet, Skip},
    route::{self, Hop},
    stats,
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
            let hop = crate::zero::init(&mut hop_slot);
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

/// The exact (address, port, protocol) service, else the wildcard-port one: fills
/// `key` and `svc` (a copy: user space may rewrite the entry under us).
#[inline(always)]
fn find_service(pkt: &Packet, key: &mut ServiceKey, svc: &mut ServiceInfo) -> bool {
    *key = ServiceKey {
        addr: pkt.dst,
        port: pkt.dport,
        proto: pkt.proto,
        family: pkt.family,
    };
    // SAFETY: copied out at once; the entry may change under us, never be freed mid-read.
    if let Some(found) = unsafe { SERVICES.get(&*key) } {
        copy_service(svc, found);
        return true;
    }
    key.port = 0;
    if let Some(found) = unsafe { SERVICES.get(&*key) } {
        copy_service(svc, found);
        return true;
    }
    false
}

/// Field by field: a whole-struct copy between two map values compiles to a call to
/// `memmove`, a byte loop on BPF (~70 ns here).
#[inline(always)]
fn copy_service(dst: &mut ServiceInfo, src: &ServiceInfo) {
    dst.id = src.id;
    dst.flags = src.flags;
    dst.ring_offset = src.ring_offset;
    dst.ring_size = src.ring_size;
    dst.timeout_s = src.timeout_s;
    dst.pad = 0;
    dst.snat[0] = src.snat[0];
    dst.snat[1] = src.snat[1];
    dst.snat[2] = src.snat[2];
    dst.snat[3] = src.snat[3];
}

/// The backend for this flow: the connection table's if it is still valid, else a fresh
/// Maglev pick (remembered in the table). `None` = drop (counted).
#[inline(always)]
pub fn choose_backend(
    pkt: &Packet,
    svc_key: &ServiceKey,
    svc: &ServiceInfo,
) -> Option<(u32, &'static Backend)> {
    let persistent = svc.flags & service_flags::PERSISTENT != 0;
    let flow = FlowKey {
        src: pkt.src,
        dst: pkt.dst,
        // A persistent service remembers the client, whatever its ports (IPVS templates).
        sport: if persistent { 0 } else { pkt.sport },
        dport: if persistent { svc_key.port } else { pkt.dport },
        proto: pkt.proto,
        family: pkt.family,
        pad: 0,
    };
    // SAFETY: bpf_ktime_get_coarse_ns has no preconditions.
    let now = unsafe { bpf_ktime_get_coarse_ns() };

    // A new connection on a tuple the table remembers (a client reusing a source port)
    // is scheduled afresh, like IPVS's connection reuse: its backend is then the Maglev
    // choice every node makes, which is what lets it survive a failover.
    let reused = !persistent && pkt.proto == IPPROTO_TCP && packet::is_new_syn(pkt.tcp_flags);
    let existing = if reused {
        None
    } else {
        CONNTRACK.get_ptr_mut(&flow)
    };
    if let Some(conn) = existing {
        // SAFETY: the entry stays valid until the next update of this map; a racing
        // update from another CPU can at worst write a stale last-seen time.
        let c = unsafe { &mut *conn };
        if now.saturating_sub(c.last_seen_ns) > svc.timeout_s as u64 * 1_000_000_000 {
            stats::count(Counter::ConntrackExpired);
        } else if let Some(b) = active_backend(c.backend) {
            if b.generation == c.generation {
                c.last_seen_ns = now;
                stats::count(Counter::ConntrackHit);
                return Some((c.backend, b));
            }
            stats::count(Counter::ConntrackStale);
        } else {
            stats::count(Counter::ConntrackStale);
        }
    }
    stats::count(Counter::ConntrackMiss);
    let (id, b) = pick(pkt, svc)?;
    let conn = Conn {
        backend: id,
        generation: b.generation,
        last_seen_ns: now,
    };
    // A full table evicts the least recently used flow; nothing to do on error.
    let _ = CONNTRACK.insert(&flow, &conn, 0);
    Some((id, b))
}

/// The Maglev choice for this packet (no connection table). `None` = drop (counted).
#[inline(always)]
pub fn pick(pkt: &Packet, svc: &ServiceInfo) -> Option<(u32, &'static Backend)> {
    let h = if svc.flags & service_flags::HASH_SRC != 0 {
        hash::src_hash(&pkt.src)
    } else {
        hash::flow_hash(&pkt.src, &pkt.dst, pkt.sport, pkt.dport, pkt.proto)
    };
    if svc.ring_size == 0 {
        stats::count(Counter::NoBackend);
        return None;
    }
    let slot = svc.ring_offset.wrapping_add(h % svc.ring_size);
    let id = match MAGLEV.get(slot) {
        Some(&id) if id != NO_BACKEND => id,
        _ => {
            stats::count(Counter::NoBackend);
            return None;
        }
    };
    let Some(b) = active_backend(id) else {
        stats::count(Counter::BadBackend);
        return None;
    };
    Some((id, b))
}

#[inline(always)]
pub fn active_backend(id: u32) -> Option<&'static Backend> {
    // Array entries are never freed: the reference stays valid (its contents may be
    // rewritten by user space, which only ever writes whole, consistent entries).
    BACKENDS
        .get(id)
        .filter(|b| b.flags & backend_flags::ACTIVE != 0)
}
