//! `lb_conn_filter`: a bitmap of the connection table's keys in front of the table, so
//! that a flow the table cannot hold is known without touching the table (a new flow's
//! miss, a flood's cold lookup or delete: one random access to a multi-megabyte hash
//! table each, ~550 ns here, against one read of a cache-resident bitmap).
//!
//! A flow's bit is picked by [`tuple_hash`] of its 5-tuple, which the daemon computes
//! from the table's keys exactly as the program does from a packet.
//!
//! Layout (an array map of u64 words): word 0 is the control word, then two bitmaps of
//! `words` words each, interleaved (word `w` of the first at `1 + 2w`, of the second at
//! `2 + 2w`). The program sets a key's bit in **both** bitmaps after every insert
//! it makes, and the daemon before and after every insert it makes (flow-state sync); it
//! reads the **active** one only while the control word says it may be trusted (and, in
//! the program, while its CPU's flood guard holds new flows back). The daemon rebuilds
//! the idle bitmap (zero it, then set the bit of every key in the table) and then makes it
//! the active one: bits of expired or evicted entries go away, and no entry is ever
//! without its bit, because every insert after the zeroing sets it and every entry
//! before it is found by the walk. A clear bit proves the flow has no entry; a set bit
//! only means "look".

use crate::{hash, Addr, FlowKey};

/// Bits per connection-table entry: with a full table, about 22% of the bits are set
/// (a flow with no entry still looks in 1 case out of 5).
pub const BITS_PER_ENTRY: u32 = 4;

/// Index of the control word.
pub const CONTROL: u32 = 0;
/// Control word: the words of one bitmap (a power of two; 0 = no filter, the program
/// neither sets nor reads bits).
pub const WORDS_MASK: u32 = (1 << 30) - 1;
/// Control word: the active bitmap may be trusted (set by the daemon after its first
/// rebuild; a clear bit then skips the table).
pub const TRUSTED: u32 = 1 << 30;
/// Control word: which bitmap is active (0: the first, set: the second).
pub const SECOND_ACTIVE: u32 = 1 << 31;

/// Words of one bitmap for a connection table of `entries` (a power of two, at least 1).
pub const fn words_for(entries: u32) -> u32 {
    let bits = entries as u64 * BITS_PER_ENTRY as u64;
    let words = bits.div_ceil(64);
    // The largest power of two the control word's field holds.
    const MAX: u64 = 1 << 29;
    let words = if words > MAX { MAX } else { words };
    let mut w = 1u64;
    while w < words {
        w <<= 1;
    }
    w as u32
}

/// Entries of the array map: the control word and two bitmaps.
pub const fn map_entries(words: u32) -> u32 {
    1 + 2 * words
}

/// The hash a flow's bit is found by ([`tuple_hash`] of its key).
#[inline(always)]
pub fn key_hash(key: &FlowKey) -> u32 {
    tuple_hash(&key.src, &key.dst, key.sport, key.dport, key.proto)
}

/// A short hash of the 5-tuple for the bitmap, computed for every packet to a VIP:
/// the Maglev hash (`hash::flow_hash`, ten dependent MurmurHash3 rounds, ~25 ns here)
/// is kept for the flows that need a pick. The address words are folded into one
/// 64-bit word and the ports and protocol into another, and two 64-bit
/// xorshift-multiply rounds mix them (each bit of the tuple reaches the low 32 bits,
/// whichever byte of a field varies): a dependency chain of about fifteen cycles. Only
/// the filter's false-positive rate depends on its quality (a collision costs a
/// lookup, never a wrong backend).
#[inline(always)]
pub fn tuple_hash(src: &Addr, dst: &Addr, sport: u16, dport: u16, proto: u8) -> u32 {
    let a = (src[0] ^ src[1]) ^ (src[2] ^ src[3]);
    let b = (dst[0] ^ dst[1]) ^ (dst[2] ^ dst[3]);
    let ports = (sport as u64) << 16 | dport as u64 | (proto as u64) << 32;
    let mut v = ((a as u64) << 32 | b as u64) ^ (hash::SEED as u64);
    v ^= v >> 33;
    v = v.wrapping_mul(0xff51_afd7_ed55_8ccd);
    v ^= ports;
    v ^= v >> 29;
    v = v.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    (v ^ (v >> 32)) as u32
}

/// Where the bit of hash `h` is in a bitmap of `words` words (a power of two): the
/// word's index within the bitmap and the bit's mask.
#[inline(always)]
pub fn position(h: u32, words: u32) -> (u32, u64) {
    ((h >> 6) & words.wrapping_sub(1), 1u64 << (h & 63))
}

/// Index in the map of word `w` of bitmap `second` (false: the first). The two
/// bitmaps are interleaved, word by word, so that an insert sets both of its bits in
/// one cache line.
#[inline(always)]
pub fn word_index(second: bool, w: u32) -> u32 {
    1 + 2 * w + second as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sized_in_powers_of_two_at_four_bits_per_entry() {
        assert_eq!(words_for(0), 1);
        assert_eq!(words_for(1), 1);
        assert_eq!(words_for(16), 1);
        assert_eq!(words_for(17), 2);
        assert_eq!(words_for(65536), 4096);
        assert_eq!(words_for(1 << 21), 1 << 17);
        assert_eq!(words_for(100_000), 8192);
        assert_eq!(words_for(u32::MAX), 1 << 28);
        assert_eq!(map_entries(4096), 8193);
    }

    #[test]
    fn the_tuple_hash_spreads_clients_over_the_bitmap() {
        // 40,000 flows into 4,096 words x 64 bits: a uniform hash sets ~14.2% of the
        // bits (1 - e^-(40000/262144)); a poor one far fewer.
        let words = 4096u32;
        let mut bits = [0u64; 4096];
        let mut add = |src: Addr, sport: u16| {
            let h = tuple_hash(
                &src,
                &[0x6401_12c6, 0, 0, 0],
                sport.to_be(),
                80u16.to_be(),
                6,
            );
            let (w, bit) = position(h, words);
            bits[w as usize] |= bit;
        };
        for client in 0..200u32 {
            for port in 0..100u16 {
                add(
                    [0x0a00_0000u32.wrapping_add(client.to_be()), 0, 0, 0],
                    40000 + port,
                );
                add([0x2001_0db8u32.to_be(), 0, 0, client.to_be()], 40000 + port);
            }
        }
        let set: u32 = bits.iter().map(|w| w.count_ones()).sum();
        let fill = f64::from(set) / f64::from(words * 64);
        assert!((0.13..0.155).contains(&fill), "fill {fill}");
    }

    #[test]
    fn positions_stay_inside_the_bitmap() {
        for h in [0u32, 1, 63, 64, 0xdead_beef, u32::MAX] {
            for words in [1u32, 2, 4096] {
                let (w, bit) = position(h, words);
                assert!(w < words);
                assert_eq!(bit.count_ones(), 1);
            }
        }
        assert_eq!(word_index(false, 0), 1);
        assert_eq!(word_index(true, 0), 2);
        assert_eq!(word_index(true, 4095), 8192);
    }
}
