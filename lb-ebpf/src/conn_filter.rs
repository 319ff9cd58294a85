//! The program's side of `lb_conn_filter` ([`lb_common::conn_filter`]): a clear bit
//! proves the connection table holds nothing under a flow, so under a flood a new flow's
//! miss lookup and a SYN's delete are skipped (each one cold access to a large hash
//! table). Bits are set after every insert, flood or not.

use core::intrinsics::{atomic_or, AtomicOrdering};

use lb_common::conn_filter::{position, word_index, CONTROL, SECOND_ACTIVE, TRUSTED, WORDS_MASK};

use crate::{maps::CONN_FILTER, types::Packet};

/// The packet's bit's hash ([`lb_common::conn_filter::tuple_hash`] of its 5-tuple).
#[inline(always)]
pub fn hash_of(pkt: &Packet) -> u32 {
    lb_common::conn_filter::tuple_hash(&pkt.src, &pkt.dst, pkt.sport, pkt.dport, pkt.proto)
}

/// A packet's [`hash_of`], computed on first use only. Initialised fields rather than
/// an `Option`: LLVM spills an `Option`'s undefined payload, which the verifier rejects
/// as a read of an uninitialised register.
pub struct OnceHash {
    hash: u32,
    known: bool,
}

impl OnceHash {
    #[inline(always)]
    pub const fn new() -> Self {
        OnceHash {
            hash: 0,
            known: false,
        }
    }

    #[inline(always)]
    pub fn of(&mut self, pkt: &Packet) -> u32 {
        if !self.known {
            self.hash = hash_of(pkt);
            self.known = true;
        }
        self.hash
    }
}

/// False only when the table certainly holds no entry under the flow of hash `h`:
/// the daemon trusts the active bitmap and the flow's bit in it is clear.
#[inline(always)]
pub fn may_hold(h: u32) -> bool {
    let control = match CONN_FILTER.get(CONTROL) {
        Some(&c) => c as u32,
        None => return true,
    };
    if control & TRUSTED == 0 {
        return true;
    }
    let words = control & WORDS_MASK;
    let (w, bit) = position(h, words);
    let index = word_index(control & SECOND_ACTIVE != 0, w);
    CONN_FILTER.get(index).is_none_or(|&word| word & bit != 0)
}

/// Sets the bit of hash `h` in both bitmaps: called after every insert into the table,
/// so that a rebuild (which zeroes a bitmap, then walks the table) never misses it.
#[inline(always)]
pub fn remember(h: u32) {
    let words = match CONN_FILTER.get(CONTROL) {
        Some(&c) => c as u32 & WORDS_MASK,
        None => return,
    };
    if words == 0 {
        return;
    }
    let (w, bit) = position(h, words);
    set(word_index(false, w), bit);
    set(word_index(true, w), bit);
}

#[inline(always)]
fn set(index: u32, bit: u64) {
    let Some(p) = CONN_FILTER.get_ptr_mut(index) else {
        return;
    };
    // SAFETY: a live array element, 8-byte aligned; other CPUs and the daemon (through
    // its mapping) update it only with atomic operations or whole stores. The BPF
    // target has no compare-and-swap, so `AtomicU64::fetch_or` does not exist for it:
    // the intrinsic compiles to the instruction (`lock ... |=`, BPF_ATOMIC | BPF_OR).
    unsafe {
        // Read first: a set bit (most of an established table's) costs no locked write.
        if core::ptr::read_volatile(p) & bit == 0 {
            atomic_or::<u64, u64, { AtomicOrdering::Relaxed }>(p, bit);
        }
    }
}
