//! The flow hash that picks a Maglev slot. Shared so that tests (and any LB node) compute
//! exactly what the XDP program computes: a fixed seed, no per-node randomness, so every
//! node given the same backend set sends a flow to the same backend.
//!
//! MurmurHash3's 32-bit block mix and finaliser over the words of the flow, taken in
//! network byte order as loaded from the packet.

use crate::Addr;

/// Fixed seed: changing it moves every flow, on every node at once.
pub const SEED: u32 = 0x1b5e_ed01;

#[inline(always)]
fn mix(h: u32, k: u32) -> u32 {
    let k = k
        .wrapping_mul(0xcc9e_2d51)
        .rotate_left(15)
        .wrapping_mul(0x1b87_3593);
    (h ^ k)
        .rotate_left(13)
        .wrapping_mul(5)
        .wrapping_add(0xe654_6b64)
}

#[inline(always)]
fn finish(h: u32, len: u32) -> u32 {
    let mut h = h ^ len;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

#[inline(always)]
fn mix_addr(h: u32, a: &Addr) -> u32 {
    mix(mix(mix(mix(h, a[0]), a[1]), a[2]), a[3])
}

/// Hash of the 5-tuple. `sport`/`dport` are the raw (network-order) header fields.
#[inline(always)]
pub fn flow_hash(src: &Addr, dst: &Addr, sport: u16, dport: u16, proto: u8) -> u32 {
    let h = mix_addr(SEED, src);
    let h = mix_addr(h, dst);
    let h = mix(h, ((sport as u32) << 16) | dport as u32);
    finish(mix(h, proto as u32), 40)
}

/// Hash of the source address only (`maglev_src`).
#[inline(always)]
pub fn src_hash(src: &Addr) -> u32 {
    finish(mix_addr(SEED, src), 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_sensitive_to_every_field() {
        let a = [0x0100_000a, 0, 0, 0];
        let b = [0x0200_000a, 0, 0, 0];
        let base = flow_hash(&a, &b, 1000, 80, 6);
        assert_eq!(base, flow_hash(&a, &b, 1000, 80, 6));
        assert_ne!(base, flow_hash(&b, &a, 1000, 80, 6));
        assert_ne!(base, flow_hash(&a, &b, 1001, 80, 6));
        assert_ne!(base, flow_hash(&a, &b, 1000, 81, 6));
        assert_ne!(base, flow_hash(&a, &b, 1000, 80, 17));
        assert_ne!(src_hash(&a), src_hash(&b));
    }

    #[test]
    fn spreads_source_ports_evenly() {
        let a = [0x0100_000a, 0, 0, 0];
        let b = [0x0200_000a, 0, 0, 0];
        let mut buckets = [0u32; 7];
        for port in 0..7000u16 {
            buckets[(flow_hash(&a, &b, port, 80, 6) % 7) as usize] += 1;
        }
        for n in buckets {
            assert!((850..1150).contains(&n), "{buckets:?}");
        }
    }
}
