//! Backend selection: the service a packet is for, and its backend, from the connection
//! table while the flow's backend stays valid, else by Maglev.

use aya_ebpf::helpers::bpf_ktime_get_coarse_ns;
use lb_common::{
    backend_flags, flags_index, group_template_addr, hash, mode, persistence_client, service_flags,
    Backend, Conn, Counter, FlowKey, ServiceInfo, ServiceKey, IPPROTO_TCP, NO_BACKEND,
};

use crate::{
    conn_filter, learn,
    maps::{BACKENDS, CONNTRACK, FLAGS, FLOOD, MAGLEV, SERVICES, SERVICE_INFO},
    stats,
    types::{is_new_syn, Packet},
};

/// The exact (address, port, protocol) service, else the wildcard-port one: fills
/// `key` and `svc` (a copy: user space may rewrite the entry under us).
#[inline(always)]
pub fn find_service(pkt: &Packet, key: &mut ServiceKey, svc: &mut ServiceInfo) -> bool {
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
    dst.group = src.group;
    dst.snat[0] = src.snat[0];
    dst.snat[1] = src.snat[1];
    dst.snat[2] = src.snat[2];
    dst.snat[3] = src.snat[3];
}

/// The fast path: an established flow of a DR/TUN service without persistence, found
/// with one hash lookup (the connection table, keyed by the full 5-tuple) and array reads
/// (its backend, and through the backend's `service` its service). `None`: no valid entry
/// (a stale or expired one is counted), and the caller schedules the packet.
#[inline(always)]
pub fn established(pkt: &Packet) -> Option<(&'static ServiceInfo, u32, &'static Backend)> {
    // Under a flood, a flow the filter proves new does not touch the table (see
    // `guard_tripped`).
    if guard_tripped() && !conn_filter::may_hold(conn_filter::hash_of(pkt)) {
        return None;
    }
    let conn = CONNTRACK.get_ptr_mut(&pkt.flow())?;
    // SAFETY: as in `choose_backend`.
    let c = unsafe { &mut *conn };
    let Some(b) = active_backend(c.backend).filter(|b| b.generation == c.generation) else {
        stats::count(Counter::ConntrackStale);
        return None;
    };
    let svc = SERVICE_INFO.get(b.service)?;
    // A service turned NAT or persistent since: its flows are kept elsewhere.
    if svc.flags & mode::MASK == mode::NAT || svc.flags & service_flags::PERSISTENT != 0 {
        return None;
    }
    // SAFETY: bpf_ktime_get_coarse_ns has no preconditions.
    let now = unsafe { bpf_ktime_get_coarse_ns() };
    if now.saturating_sub(c.last_seen_ns) > svc.timeout_s as u64 * 1_000_000_000 {
        stats::count(Counter::ConntrackExpired);
        return None;
    }
    c.last_seen_ns = now;
    stats::count(Counter::ConntrackHit);
    Some((svc, c.backend, b))
}

/// The backend for this flow: the connection table's if it is still valid, else a fresh
/// Maglev pick (remembered in the table). `None` = drop (counted). `looked_up`: the
/// fast path ([`established`]) already found no valid entry under this flow's 5-tuple.
#[inline(always)]
pub fn choose_backend(
    pkt: &Packet,
    svc_key: &ServiceKey,
    svc: &ServiceInfo,
    looked_up: bool,
) -> Option<(u32, &'static Backend)> {
    let persistent = svc.flags & service_flags::PERSISTENT != 0;
    // A persistent service remembers the client, whatever its ports (IPVS templates);
    // a group's members share one template per client, named by the group's mark.
    let (dst, dport) = if !persistent {
        (pkt.dst, pkt.dport)
    } else if svc.group != 0 {
        (group_template_addr(svc.group), 0)
    } else {
        (pkt.dst, svc_key.port)
    };
    let flow = FlowKey {
        // The client, or its network with `persistence_granularity`.
        src: if persistent {
            persistence_client(
                &pkt.src,
                pkt.family,
                service_flags::persist_host_bits(svc.flags),
            )
        } else {
            pkt.src
        },
        dst,
        sport: if persistent { 0 } else { pkt.sport },
        dport,
        proto: pkt.proto,
        family: pkt.family,
        pad: 0,
    };
    // SAFETY: bpf_ktime_get_coarse_ns has no preconditions.
    let now = unsafe { bpf_ktime_get_coarse_ns() };

    // A new connection on a tuple the table remembers (a client reusing a source port)
    // is scheduled afresh, like IPVS's connection reuse: its backend is then the Maglev
    // choice every node makes, which is what lets it survive a failover.
    let reused = !persistent && pkt.proto == IPPROTO_TCP && is_new_syn(pkt.tcp_flags);
    // Without persistence the key is the packet's 5-tuple, whose bit in the filter can
    // prove there is no entry (consulted under a flood only, see `guard_tripped`).
    // The filter's hash of the 5-tuple, computed at most once (a SYN under a flood asks
    // for it twice: to skip the lookup, and to decide on the delete).
    let mut hash = conn_filter::OnceHash::new();
    let proven_new =
        !persistent && (looked_up || (guard_tripped() && !conn_filter::may_hold(hash.of(pkt))));
    let existing = if reused || proven_new {
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
    if flooded(now) {
        // Above the rate, a new flow goes where Maglev says without an entry, so a flood
        // never evicts established flows' entries. A new connection on a remembered
        // tuple must not leave the old connection's entry behind for its next packets.
        stats::count(Counter::FloodGuard);
        if reused && conn_filter::may_hold(hash.of(pkt)) {
            let _ = CONNTRACK.remove(&flow);
        }
        return Some((id, b));
    }
    let conn = Conn {
        backend: id,
        generation: b.generation,
        last_seen_ns: now,
    };
    // A full table evicts the least recently used flow; nothing to do on error.
    if CONNTRACK.insert(&flow, &conn, 0).is_ok() {
        // After the insert, never before: see `lb_common::conn_filter`. A persistence
        // template's key is not the packet's tuple, and the filter is not asked for it.
        if !persistent {
            conn_filter::remember(hash.of(pkt));
        }
        learn::conntrack(&flow, id);
    }
    Some((id, b))
}

/// The flood guard (Katran's spirit): true when this CPU has recorded more than
/// `lb_flags[NEW_FLOW_LIMIT]` new flows in the current one-second window.
#[inline(always)]
fn flooded(now: u64) -> bool {
    let limit = match FLAGS.get(flags_index::NEW_FLOW_LIMIT) {
        Some(&l) if l != 0 => l as u64,
        _ => return false,
    };
    let Some(w) = FLOOD.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: this CPU's slot, used by this program run only.
    let w = unsafe { &mut *w };
    if now.wrapping_sub(w.start_ns) >= 1_000_000_000 {
        w.start_ns = now;
        w.count = 0;
    }
    w.count += 1;
    w.count > limit
}

/// Whether this CPU's flood guard has held a new flow back in its current (or last)
/// window: only then does the connection-table filter stand in front of the table. A
/// flow that will be inserted gains nothing from skipping its miss lookup (the insert
/// needs the same cold bucket), and an established flow then pays neither the filter's
/// hash nor its read; under a flood, where new flows get no entry, the filter spares
/// each of them the table. Two array reads and no clock: a window that ended only
/// keeps the filter in use until the next new flow opens another.
#[inline(always)]
fn guard_tripped() -> bool {
    let limit = match FLAGS.get(flags_index::NEW_FLOW_LIMIT) {
        Some(&l) if l != 0 => l as u64,
        _ => return false,
    };
    FLOOD.get(0).is_some_and(|w| w.count > limit)
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
