//! Internet checksums.

use crate::types::Ipv4Hdr;

/// The IPv4 header checksum of `ip` (whose `check` field must be 0).
///
/// Summing the header as native-endian 16-bit words and storing the result natively gives
/// the right bytes on the wire whatever the host byte order (RFC 1071, 2(B)).
#[inline(always)]
pub fn ipv4_header(ip: &Ipv4Hdr) -> u16 {
    // SAFETY: Ipv4Hdr is 20 bytes of plain data.
    let words: [u16; 10] = unsafe { core::mem::transmute(*ip) };
    let mut sum: u32 = 0;
    for w in words {
        sum += w as u32;
    }
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    !(sum as u16)
}

/// Incremental checksum updates (RFC 1624, eqn. 3): accumulate `~old + new` for every
/// changed word, then [`apply`] the sum to the old checksum. Words are summed as they
/// sit in memory (network byte order read natively), which RFC 1071 shows is correct
/// whatever the host byte order.
#[inline(always)]
pub fn diff32(sum: u64, old: u32, new: u32) -> u64 {
    sum + (!old) as u64 + new as u64
}

#[inline(always)]
pub fn diff16(sum: u64, old: u16, new: u16) -> u64 {
    sum + (!old) as u64 + new as u64
}

#[inline(always)]
pub fn diff_addr(mut sum: u64, old: &[u32; 4], new: &[u32; 4], words: usize) -> u64 {
    let mut i = 0;
    while i < words && i < 4 {
        sum = diff32(sum, old[i], new[i]);
        i += 1;
    }
    sum
}

#[inline(always)]
fn fold(mut sum: u64) -> u16 {
    sum = (sum & 0xffff_ffff) + (sum >> 32);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum as u16
}

/// The checksum `check` becomes once the words accumulated in `sum` changed.
#[inline(always)]
pub fn apply(check: u16, sum: u64) -> u16 {
    !fold((!check) as u64 + sum)
}
