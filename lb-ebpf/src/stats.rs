//! Per-CPU counters: no atomics needed, user space sums the CPUs.

use aya_ebpf::bindings::xdp_action;
use lb_common::{Counter, Traffic};

use crate::maps::{BACKEND_STATS, SERVICE_STATS, STATS};

#[inline(always)]
pub fn count(counter: Counter) {
    if let Some(slot) = STATS.get_ptr_mut(counter as u32) {
        // SAFETY: a per-CPU slot is only touched by this CPU while the program runs.
        unsafe { *slot += 1 };
    }
}

#[inline(always)]
pub fn count_verdict(action: u32) {
    count(match action {
        xdp_action::XDP_PASS => Counter::VerdictPass,
        xdp_action::XDP_TX | xdp_action::XDP_REDIRECT => Counter::VerdictTx,
        xdp_action::XDP_DROP => Counter::VerdictDrop,
        _ => Counter::VerdictAborted,
    });
}

#[inline(always)]
fn add(slot: Option<*mut Traffic>, bytes: u64) {
    if let Some(t) = slot {
        // SAFETY: as in `count`.
        unsafe {
            (*t).packets += 1;
            (*t).bytes += bytes;
        }
    }
}

#[inline(always)]
pub fn count_service(id: u32, bytes: u64) {
    add(SERVICE_STATS.get_ptr_mut(id), bytes);
}

#[inline(always)]
pub fn count_backend(id: u32, bytes: u64) {
    add(BACKEND_STATS.get_ptr_mut(id), bytes);
}
