//! Flow-state sync's data-plane half: a flow just given a connection-table or NAT entry
//! is reported in `lb_sync_events` for the daemon to send to its peers. Only the
//! new-flow path reports, and only while sync is on (`global_flags::SYNC`): an
//! established flow never reaches this module, and with sync off a new flow pays one
//! array read and a bit test.

use lb_common::{flags_index, global_flags, learned_kind, Addr, Counter, FlowKey, NatEntry};

use crate::{
    maps::{FLAGS, SYNC_EVENTS},
    stats,
};

#[inline(always)]
fn on() -> bool {
    FLAGS
        .get(flags_index::FLAGS)
        .is_some_and(|f| f & global_flags::SYNC != 0)
}

/// A new `lb_conntrack` entry: `flow` -> `backend`.
#[inline(always)]
pub fn conntrack(flow: &FlowKey, backend: u32) {
    if on() {
        report(
            flow,
            backend,
            learned_kind::CONNTRACK,
            &flow.src,
            flow.sport,
        );
    }
}

/// A new NAT connection: `flow` is the client's packet, `fwd` its translation.
#[inline(always)]
pub fn nat(flow: &FlowKey, fwd: &NatEntry) {
    if on() {
        report(flow, fwd.backend, learned_kind::NAT, &fwd.src, fwd.sport);
    }
}

/// Writes one record in place (field by field: a struct copy would be a `memmove`).
/// A full ring (the daemon is behind) loses the report, counted; the flow is forwarded
/// all the same.
#[inline(always)]
fn report(flow: &FlowKey, backend: u32, kind: u8, xsrc: &Addr, xsport: u16) {
    let Some(mut slot) = SYNC_EVENTS.reserve(0) else {
        stats::count(Counter::SyncLost);
        return;
    };
    let r = slot.as_mut_ptr();
    // SAFETY: `r` points to the reserved record (64 bytes, 8-byte aligned by the
    // kernel); every field is written before it is submitted.
    unsafe {
        crate::zero::copy_addr(&mut (*r).flow.src, &flow.src);
        crate::zero::copy_addr(&mut (*r).flow.dst, &flow.dst);
        (*r).flow.sport = flow.sport;
        (*r).flow.dport = flow.dport;
        (*r).flow.proto = flow.proto;
        (*r).flow.family = flow.family;
        (*r).flow.pad = 0;
        crate::zero::copy_addr(&mut (*r).xsrc, xsrc);
        (*r).backend = backend;
        (*r).xsport = xsport;
        (*r).kind = kind;
        (*r).pad = 0;
    }
    slot.submit(0);
}
