//! Program entry points.

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};

use crate::{baseline, bench, decap, lb, stats};

/// The load balancer: steers packets for configured virtual services to a backend and
/// passes everything else to the kernel untouched.
#[xdp]
pub fn lb_xdp(ctx: XdpContext) -> u32 {
    let action = lb::process(&ctx);
    stats::count_verdict(action);
    action
}

/// Always `XDP_PASS`: the benchmark baseline, and the program a veth peer needs so
/// that native-mode `XDP_TX` frames sent to it are not dropped.
#[xdp]
pub fn lb_pass(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

/// Swaps the Ethernet addresses and bounces the frame: the benchmark baseline for the
/// cheapest possible forwarding program.
#[xdp]
pub fn lb_mac_swap(ctx: XdpContext) -> u32 {
    baseline::mac_swap(&ctx)
}

/// Always `XDP_DROP`: the veth peer of the live-frames benchmark, so that transmitted
/// frames go no further.
#[xdp]
pub fn lb_drop(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_DROP
}

/// The live-frames benchmark wrapper ([`bench::wrap`]).
#[xdp]
pub fn lb_bench_wrap(ctx: XdpContext) -> u32 {
    bench::wrap(&ctx)
}

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // Unreachable: the verifier rejects programs that could panic at run time.
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";

/// For backends of TUN services: strips the tunnel header and passes the inner packet.
#[xdp]
pub fn lb_decap(ctx: XdpContext) -> u32 {
    decap::process(&ctx)
}
