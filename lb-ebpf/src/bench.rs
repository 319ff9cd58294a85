//! The live-frames benchmark wrapper (`lb_bench_wrap`): in `BPF_F_TEST_XDP_LIVE_FRAMES`
//! mode the kernel recycles its pages without restoring the packet data, so a program
//! that rewrites or encapsulates would read its own previous output. The wrapper writes
//! the template headers back, varies the client address, and tail-calls the program
//! under test. Never attached by the daemon.

use aya_ebpf::{
    bindings::xdp_action,
    btf_maps::{Array, PerCpuArray, ProgramArray},
    macros::btf_map,
    programs::XdpContext,
};
use lb_common::{BenchFrame, BENCH_HEAD_WORDS};

use crate::packet::write;

#[btf_map(name = "lb_bench_frame")]
pub static FRAME: Array<BenchFrame, 1> = Array::new();

#[btf_map(name = "lb_bench_seq")]
pub static SEQ: PerCpuArray<u64, 1> = PerCpuArray::new();

#[btf_map(name = "lb_bench_progs")]
pub static PROGS: ProgramArray<1> = ProgramArray::new();

#[inline(always)]
pub fn wrap(ctx: &XdpContext) -> u32 {
    let (Some(f), Some(seq)) = (FRAME.get(0), SEQ.get_ptr_mut(0)) else {
        return xdp_action::XDP_ABORTED;
    };
    // Unrolled: one bounds-checked 8-byte store per word.
    for i in 0..BENCH_HEAD_WORDS {
        if (i as u32) < f.words && write(ctx, i * 8, f.head[i]).is_none() {
            return xdp_action::XDP_ABORTED;
        }
    }
    // SAFETY: this CPU's slot.
    let n = unsafe {
        let n = *seq;
        *seq = n + 1;
        n as u32
    };
    let i = if f.flows == 0 { n } else { n % f.flows };
    let off = (f.vary_offset & 0x7f) as usize;
    if write(ctx, off, f.vary_base.wrapping_add(i).to_be()).is_none() {
        return xdp_action::XDP_ABORTED;
    }
    // SAFETY: a tail call into a program of the same type; returns only on failure.
    unsafe { PROGS.tail_call(ctx, 0) };
    xdp_action::XDP_ABORTED
}
