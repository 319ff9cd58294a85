//! The VRRP advert filter (`lb-vrrp-filter`): a socket filter on each VRRP instance's
//! receive socket, so that an idle backup's receive thread does not wake for every advert
//! of a steady master (issue 13: an idle backup at or below keepalived's CPU).
//!
//! While the instance's slot ([`lb_common::VrrpQuiet`]) is armed, an advert identical to
//! the slot's template is dropped here, its arrival time recorded and counted; the thread
//! wakes once per master-down interval to read the slot instead of once per advert. The
//! first datagram that differs disarms the slot and is received, and so is everything
//! after it, in order, until the daemon arms the slot again. A socket without a slot, and
//! anything the filter cannot read, is received as before.
//!
//! A separate object from the XDP program, because loading that one creates the
//! connection table and every other data-plane map, and a VRRP-only daemon needs none.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

#[cfg(target_arch = "bpf")]
mod filter {
    use core::{
        ffi::c_void,
        ptr::{addr_of, addr_of_mut, read_volatile, write_volatile},
    };

    use aya_ebpf::{
        bindings::{bpf_hdr_start_off::BPF_HDR_START_NET, BPF_F_MMAPABLE},
        btf_maps::{Array, HashMap},
        helpers::{
            bpf_ktime_get_ns,
            generated::{bpf_get_socket_cookie, bpf_skb_load_bytes_relative},
        },
        macros::{btf_map, socket_filter},
        programs::SkBuffContext,
    };
    use lb_common::{vrrp_quiet, VrrpQuiet};

    const IPPROTO_VRRP: u8 = 112;
    const WORDS: usize = vrrp_quiet::PAYLOAD_MAX / 8;

    #[btf_map(name = "lb_vrrp_cookies")]
    static COOKIES: HashMap<u64, u32, { vrrp_quiet::CAPACITY as usize }> = HashMap::new();

    #[btf_map(name = "lb_vrrp_slots")]
    static SLOTS: Array<VrrpQuiet, { vrrp_quiet::CAPACITY as usize }, { BPF_F_MMAPABLE as usize }> =
        Array::new();

    /// Returns how many bytes of the datagram to keep: 0 drops it, its length keeps it.
    #[socket_filter]
    pub fn lb_vrrp_quiet(ctx: SkBuffContext) -> i64 {
        if quiet(&ctx) {
            0
        } else {
            i64::from(ctx.len())
        }
    }

    /// `true`: an advert identical to the armed template, taken here.
    #[inline(always)]
    fn quiet(ctx: &SkBuffContext) -> bool {
        // The socket the filter runs for: the kernel points the skb at it meanwhile.
        // SAFETY: the helper only reads the context it is given.
        let cookie = unsafe { bpf_get_socket_cookie(ctx.skb.skb.cast::<c_void>()) };
        // SAFETY: the value is a plain u32, copied out at once.
        let Some(&index) = (unsafe { COOKIES.get(&cookie) }) else {
            return false;
        };
        let Some(slot) = SLOTS.get_ptr_mut(index) else {
            return false;
        };
        // SAFETY: a map value pointer, valid for the whole program run; the daemon writes
        // the same memory through its mapping, so every access is volatile or atomic.
        unsafe {
            if read_volatile(addr_of!((*slot).armed)) == 0 {
                return false;
            }
            if !identical(ctx, slot) {
                write_volatile(addr_of_mut!((*slot).armed), 0);
                return false;
            }
            write_volatile(addr_of_mut!((*slot).last_ns), bpf_ktime_get_ns());
            // Not atomic (core has no atomic add for BPF): one advert per interval reaches
            // a socket, never two at once.
            let taken = addr_of_mut!((*slot).taken);
            write_volatile(taken, read_volatile(taken).wrapping_add(1));
        }
        true
    }

    /// Whether the datagram is the template: interface, IP header fields, VRRP message.
    ///
    /// # Safety
    ///
    /// `slot` points to a live map value.
    #[inline(always)]
    unsafe fn identical(ctx: &SkBuffContext, slot: *const VrrpQuiet) -> bool {
        // SAFETY: the kernel's context, read-only.
        let ifindex = unsafe { (*ctx.skb.skb).ifindex };
        // SAFETY: `slot` is live (the caller's promise).
        let (want_if, v6, ttl, len) = unsafe {
            (
                read_volatile(addr_of!((*slot).ifindex)),
                read_volatile(addr_of!((*slot).v6)),
                read_volatile(addr_of!((*slot).ttl)),
                read_volatile(addr_of!((*slot).len)),
            )
        };
        if ifindex != want_if || len == 0 || usize::from(len) > vrrp_quiet::PAYLOAD_MAX {
            return false;
        }
        // Raw IPv6 sockets see the datagram past its header, IPv4 ones at it: read both
        // from the network header.
        let mut header = [0u8; 40];
        let header_len: u32 = if v6 != 0 { 40 } else { 20 };
        if load(ctx, 0, header.as_mut_ptr(), header_len).is_none() {
            return false;
        }
        // (protocol, hop limit, payload length, source at, address length)
        let (proto, hops, payload_len, src_at, addr_len) = if v6 != 0 {
            if header[0] >> 4 != 6 {
                return false;
            }
            (header[6], header[7], be16(header[4], header[5]), 8, 16)
        } else {
            // No IP options: a VRRP advert has none.
            if header[0] != 0x45 {
                return false;
            }
            let total = be16(header[2], header[3]);
            (header[9], header[8], total.wrapping_sub(20), 12, 4)
        };
        if proto != IPPROTO_VRRP || hops != ttl || payload_len != len {
            return false;
        }
        let mut i = 0;
        while i < 16 {
            if i < addr_len {
                // SAFETY: i < 16, inside both address arrays.
                let (src, dst) = unsafe {
                    (
                        read_volatile(addr_of!((*slot).src).cast::<u8>().add(i)),
                        read_volatile(addr_of!((*slot).dst).cast::<u8>().add(i)),
                    )
                };
                let (Some(&got_src), Some(&got_dst)) =
                    (header.get(src_at + i), header.get(src_at + addr_len + i))
                else {
                    return false;
                };
                if got_src != src || got_dst != dst {
                    return false;
                }
            }
            i += 1;
        }
        // The message, zero-padded to whole words like the template.
        let mut words = [0u64; WORDS];
        for w in words.iter_mut() {
            // SAFETY: a stack slot; volatile so the zeroing is not merged into memset.
            unsafe { write_volatile(w, 0) };
        }
        if load(ctx, header_len, words.as_mut_ptr().cast(), u32::from(len)).is_none() {
            return false;
        }
        let mut w = 0;
        while w < WORDS {
            // SAFETY: w < WORDS, inside the template.
            let want = unsafe { read_volatile(addr_of!((*slot).payload).cast::<u64>().add(w)) };
            // SAFETY: w < WORDS, inside `words`.
            if unsafe { read_volatile(words.as_ptr().add(w)) } != want {
                return false;
            }
            w += 1;
        }
        true
    }

    /// Copies `len` (1..=128, the callers' checks) bytes at `offset` from the network
    /// header into `to`.
    #[inline(always)]
    fn load(ctx: &SkBuffContext, offset: u32, to: *mut u8, len: u32) -> Option<()> {
        // The helper's length must be provably 1..=128 on the register it gets. Older
        // verifiers (6.1) do not learn `>= 1` from a `!= 0` test, and LLVM would reuse a
        // check made on another copy of the value: so the length is read afresh
        // (volatile) and brought into range by arithmetic the verifier follows
        // (`(len - 1) & 127` is 0..=127), which leaves any 1..=128 unchanged.
        // SAFETY: a local.
        let len = unsafe { read_volatile(&len) };
        let len = (len.wrapping_sub(1) & (vrrp_quiet::PAYLOAD_MAX as u32 - 1)) + 1;
        // SAFETY: `to` has room for `len` bytes (the callers' buffers are 40 and 128
        // bytes); the helper bounds-checks the packet side.
        let rc = unsafe {
            bpf_skb_load_bytes_relative(
                ctx.skb.skb.cast::<c_void>(),
                offset,
                to.cast::<c_void>(),
                len,
                BPF_HDR_START_NET,
            )
        };
        (rc == 0).then_some(())
    }

    #[inline(always)]
    fn be16(hi: u8, lo: u8) -> u16 {
        u16::from(hi) << 8 | u16::from(lo)
    }

    #[panic_handler]
    fn panic(_info: &core::panic::PanicInfo) -> ! {
        // Unreachable: the verifier rejects programs that could panic at run time.
        loop {}
    }

    #[unsafe(link_section = "license")]
    #[unsafe(no_mangle)]
    static LICENSE: [u8; 4] = *b"GPL\0";
}

#[cfg(not(target_arch = "bpf"))]
fn main() {}
