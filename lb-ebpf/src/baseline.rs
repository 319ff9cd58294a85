//! Benchmark baselines.

use aya_ebpf::{bindings::xdp_action, programs::XdpContext};

use crate::{
    packet::{read, write},
    types::EthHdr,
};

/// Swaps source and destination MAC and bounces the frame.
#[inline(always)]
pub fn mac_swap(ctx: &XdpContext) -> u32 {
    let Some(eth) = read::<EthHdr>(ctx, 0) else {
        return xdp_action::XDP_PASS;
    };
    let swapped = EthHdr {
        dst: eth.src,
        src: eth.dst,
        proto: eth.proto,
    };
    match write(ctx, 0, swapped) {
        Some(()) => xdp_action::XDP_TX,
        None => xdp_action::XDP_PASS,
    }
}
