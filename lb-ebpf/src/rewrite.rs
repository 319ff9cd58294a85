//! Rewriting a TCP/UDP packet's addresses and ports, with incremental checksum updates
//! of the IPv4 header and of the TCP/UDP checksum (whose pseudo-header holds the
//! addresses).

use lb_common::{FAMILY_V4, IPPROTO_UDP};

use crate::{
    csum,
    packet::{read, write},
    types::{
        l4_check_offset, Packet, Ports, Tuple, IPV4_CHECK_OFFSET, IPV4_DST_OFFSET, IPV4_SRC_OFFSET,
        IPV6_DST_OFFSET, IPV6_SRC_OFFSET, L4_PORTS_OFFSET,
    },
};

/// Rewrites `pkt` in place to `to`.
#[inline(always)]
pub fn rewrite(ctx: &aya_ebpf::programs::XdpContext, pkt: &Packet, to: &Tuple) -> Option<()> {
    let l3 = pkt.l3();
    let mut sum = 0u64;
    if pkt.family == FAMILY_V4 {
        sum = csum::diff32(sum, pkt.src[0], to.src[0]);
        sum = csum::diff32(sum, pkt.dst[0], to.dst[0]);
        let check: u16 = read(ctx, l3 + IPV4_CHECK_OFFSET)?;
        write(ctx, l3 + IPV4_CHECK_OFFSET, csum::apply(check, sum))?;
        write(ctx, l3 + IPV4_SRC_OFFSET, to.src[0])?;
        write(ctx, l3 + IPV4_DST_OFFSET, to.dst[0])?;
    } else {
        sum = csum::diff_addr(sum, &pkt.src, &to.src, 4);
        sum = csum::diff_addr(sum, &pkt.dst, &to.dst, 4);
        write(ctx, l3 + IPV6_SRC_OFFSET, to.src)?;
        write(ctx, l3 + IPV6_DST_OFFSET, to.dst)?;
    }
    sum = csum::diff16(sum, pkt.sport, to.sport);
    sum = csum::diff16(sum, pkt.dport, to.dport);
    write(
        ctx,
        pkt.l4() + L4_PORTS_OFFSET,
        Ports {
            src: to.sport,
            dst: to.dport,
        },
    )?;
    l4_checksum(ctx, pkt.l4(), pkt.proto, pkt.family, sum)
}

/// Applies `sum` to the TCP or UDP checksum of the header at `l4`.
#[inline(always)]
pub fn l4_checksum(
    ctx: &aya_ebpf::programs::XdpContext,
    l4: usize,
    proto: u8,
    family: u8,
    sum: u64,
) -> Option<()> {
    let at = l4 + l4_check_offset(proto);
    let check: u16 = read(ctx, at)?;
    // IPv4 UDP may go without a checksum (0); it stays without one.
    if proto == IPPROTO_UDP && check == 0 && family == FAMILY_V4 {
        return Some(());
    }
    let mut new = csum::apply(check, sum);
    // A computed UDP checksum of 0 is sent as all ones (0 means "none").
    if proto == IPPROTO_UDP && new == 0 {
        new = 0xffff;
    }
    write(ctx, at, new)
}
