//! ICMP errors about NAT'ed flows ("fragmentation needed", "packet too big",
//! unreachable, time exceeded): the quoted packet and the outer addresses are
//! translated like the flow itself, so path-MTU discovery works through the balancer.
//! Every other ICMP message passes to the kernel untouched.

use aya_ebpf::{bindings::xdp_action, programs::XdpContext};
use lb_common::{nat_dir, Addr, Counter, FlowKey, FAMILY_V4, IPPROTO_TCP, IPPROTO_UDP};

use crate::{
    csum, forward,
    maps::NAT,
    packet::{read, write},
    select::active_backend,
    stats,
    types::{
        l4_check_offset, Ports, Tuple, ICMP_CHECK_OFFSET, ICMP_LEN, ICMP_TYPE_CODE_OFFSET,
        IPV4_CHECK_OFFSET, IPV4_DST_OFFSET, IPV4_LEN, IPV4_SRC_OFFSET, IPV4_TTL_PROTO_OFFSET,
        IPV6_DST_OFFSET, IPV6_LEN, IPV6_NEXT_HDR_OFFSET, IPV6_SRC_OFFSET, L4_PORTS_OFFSET,
    },
};

/// ICMPv4: destination unreachable, time exceeded, parameter problem.
const ICMP_ERRORS: [u8; 3] = [3, 11, 12];
/// ICMPv6: destination unreachable, packet too big, time exceeded, parameter problem.
const ICMPV6_ERROR_MAX: u8 = 4;

/// Returned by [`process`] for an error translated towards a client: route it to
/// `to.dst` ([`crate::route::lookup`], then [`crate::route::send`]). The caller does
/// that so the lookup's stack does not add to this function's.
pub const ROUTE: u32 = u32::MAX;

/// A separate BPF function: its stack does not add to the TCP/UDP path's.
#[inline(never)]
pub fn process(ctx: &XdpContext, l3: usize, l4: usize, family: u8, to: &mut Tuple) -> u32 {
    translate(ctx, l3, l4, family, to).unwrap_or(xdp_action::XDP_PASS)
}

/// `None`: not an error about a NAT'ed flow.
#[inline(always)]
fn translate(ctx: &XdpContext, l3: usize, l4: usize, family: u8, to: &mut Tuple) -> Option<u32> {
    let v4 = family == FAMILY_V4;
    // Type and code: reads of single bytes defeat the verifier's bounds tracking.
    let [kind, _code]: [u8; 2] = read(ctx, l4 + ICMP_TYPE_CODE_OFFSET)?;
    let is_error = if v4 {
        ICMP_ERRORS.contains(&kind)
    } else {
        (1..=ICMPV6_ERROR_MAX).contains(&kind)
    };
    if !is_error {
        return None;
    }
    // The quoted packet: one we sent, so its reverse is a key of `lb_nat`. Only the
    // fields needed are read: this function's stack is tight.
    let inner = l4 + ICMP_LEN;
    let (isrc, idst, iproto, inner_l4) = if v4 {
        let [ver_ihl, _tos]: [u8; 2] = read(ctx, inner)?;
        if ver_ihl != 0x45 {
            return None;
        }
        let [_ttl, proto]: [u8; 2] = read(ctx, inner + IPV4_TTL_PROTO_OFFSET)?;
        let src: u32 = read(ctx, inner + IPV4_SRC_OFFSET)?;
        let dst: u32 = read(ctx, inner + IPV4_DST_OFFSET)?;
        ([src, 0, 0, 0], [dst, 0, 0, 0], proto, inner + IPV4_LEN)
    } else {
        let [next_hdr, _hop]: [u8; 2] = read(ctx, inner + IPV6_NEXT_HDR_OFFSET)?;
        let src: Addr = read(ctx, inner + IPV6_SRC_OFFSET)?;
        let dst: Addr = read(ctx, inner + IPV6_DST_OFFSET)?;
        (src, dst, next_hdr, inner + IPV6_LEN)
    };
    if iproto != IPPROTO_TCP && iproto != IPPROTO_UDP {
        return None;
    }
    let ports: Ports = read(ctx, inner_l4 + L4_PORTS_OFFSET)?;
    let key = FlowKey {
        src: idst,
        dst: isrc,
        sport: ports.dst,
        dport: ports.src,
        proto: iproto,
        family,
        pad: 0,
    };
    // SAFETY: a map value; the fields used here never change for a key.
    let e = unsafe { NAT.get(&key) }?;
    let to_client = e.direction == nat_dir::TO_CLIENT;

    // Outer addresses: to the real (errors from the client's side), or to the client
    // from the VIP (errors from the real's side, as IPVS sends them).
    let (osrc, odst) = if v4 {
        let src: u32 = read(ctx, l3 + IPV4_SRC_OFFSET)?;
        let dst: u32 = read(ctx, l3 + IPV4_DST_OFFSET)?;
        ([src, 0, 0, 0], [dst, 0, 0, 0])
    } else {
        let src: Addr = read(ctx, l3 + IPV6_SRC_OFFSET)?;
        let dst: Addr = read(ctx, l3 + IPV6_DST_OFFSET)?;
        (src, dst)
    };
    let new_osrc = if to_client { e.src } else { osrc };
    let new_odst = e.dst;
    // The quoted packet becomes the one the peer actually sent (or received).
    let (new_isrc, new_idst, new_sport, new_dport) = (e.dst, e.src, e.dport, e.sport);

    let words = if v4 { 1 } else { 4 };
    let outer_sum = csum::diff_addr(
        csum::diff_addr(0, &osrc, &new_osrc, words),
        &odst,
        &new_odst,
        words,
    );
    let inner_addr_sum = csum::diff_addr(
        csum::diff_addr(0, &isrc, &new_isrc, words),
        &idst,
        &new_idst,
        words,
    );
    let mut port_sum = csum::diff16(csum::diff16(0, ports.src, new_sport), ports.dst, new_dport);
    // The quoted TCP/UDP checksum, when quoted: fixed too, so the quote is exactly the
    // packet the peer knows; its change is part of the ICMP message.
    let l4_check_at = inner_l4 + l4_check_offset(iproto);
    if let Some(old) = read::<u16>(ctx, l4_check_at) {
        if !(iproto == IPPROTO_UDP && old == 0 && v4) {
            let mut new = csum::apply(old, inner_addr_sum + port_sum);
            if iproto == IPPROTO_UDP && new == 0 {
                new = 0xffff;
            }
            write(ctx, l4_check_at, new)?;
            port_sum = csum::diff16(port_sum, old, new);
        }
    }

    if v4 {
        // Outer header.
        let check: u16 = read(ctx, l3 + IPV4_CHECK_OFFSET)?;
        write(ctx, l3 + IPV4_CHECK_OFFSET, csum::apply(check, outer_sum))?;
        write(ctx, l3 + IPV4_SRC_OFFSET, new_osrc[0])?;
        write(ctx, l3 + IPV4_DST_OFFSET, new_odst[0])?;
        // Quoted header: its own checksum absorbs the address change, so the ICMP
        // checksum only sees the ports (and quoted L4 checksum) change.
        let icheck: u16 = read(ctx, inner + IPV4_CHECK_OFFSET)?;
        write(
            ctx,
            inner + IPV4_CHECK_OFFSET,
            csum::apply(icheck, inner_addr_sum),
        )?;
        write(ctx, inner + IPV4_SRC_OFFSET, new_isrc[0])?;
        write(ctx, inner + IPV4_DST_OFFSET, new_idst[0])?;
        write(
            ctx,
            inner_l4 + L4_PORTS_OFFSET,
            Ports {
                src: new_sport,
                dst: new_dport,
            },
        )?;
        let check: u16 = read(ctx, l4 + ICMP_CHECK_OFFSET)?;
        write(ctx, l4 + ICMP_CHECK_OFFSET, csum::apply(check, port_sum))?;
    } else {
        // ICMPv6's checksum covers the outer pseudo-header and the whole quote.
        write(ctx, l3 + IPV6_SRC_OFFSET, new_osrc)?;
        write(ctx, l3 + IPV6_DST_OFFSET, new_odst)?;
        write(ctx, inner + IPV6_SRC_OFFSET, new_isrc)?;
        write(ctx, inner + IPV6_DST_OFFSET, new_idst)?;
        write(
            ctx,
            inner_l4 + L4_PORTS_OFFSET,
            Ports {
                src: new_sport,
                dst: new_dport,
            },
        )?;
        let check: u16 = read(ctx, l4 + ICMP_CHECK_OFFSET)?;
        write(
            ctx,
            l4 + ICMP_CHECK_OFFSET,
            csum::apply(check, outer_sum + inner_addr_sum + port_sum),
        )?;
    }
    stats::count(Counter::IcmpTranslated);
    if to_client {
        to.src = new_osrc;
        to.dst = new_odst;
        to.sport = new_dport;
        to.dport = new_sport;
        return Some(ROUTE);
    }
    let b = active_backend(e.backend)?;
    forward::set_macs(ctx, b)?;
    Some(forward::transmit(ctx, b))
}
