//! The RFC 1071 Internet checksum (IPv4 headers, VRRP, ICMPv6) and the pseudo-headers that
//! upper-layer checksums start from.

use std::net::{Ipv4Addr, Ipv6Addr};

/// RFC 1071 Internet checksum of `data`, continuing from `initial`: a running sum of
/// big-endian 16-bit words of earlier data (e.g. a pseudo-header), folded or not.
/// An odd trailing byte is padded with zero. Over a message whose checksum field is
/// filled in, a correct checksum gives 0.
pub fn checksum(data: &[u8], initial: u32) -> u16 {
    !fold(sum_words(data, u64::from(initial)))
}

/// The folded, uncomplemented sum of `data`: an `initial` for [`checksum`].
pub fn partial_sum(data: &[u8]) -> u32 {
    u32::from(fold(sum_words(data, 0)))
}

/// The IPv4 pseudo-header (as for UDP) of an upper-layer message of `len` bytes.
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, len: u16) -> [u8; 12] {
    let mut h = [0u8; 12];
    h[0..4].copy_from_slice(&src.octets());
    h[4..8].copy_from_slice(&dst.octets());
    h[9] = protocol;
    h[10..12].copy_from_slice(&len.to_be_bytes());
    h
}

/// The IPv6 pseudo-header (RFC 8200 §8.1) of an upper-layer message of `len` bytes.
pub fn pseudo_header_v6(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, len: u32) -> [u8; 40] {
    let mut h = [0u8; 40];
    h[0..16].copy_from_slice(&src.octets());
    h[16..32].copy_from_slice(&dst.octets());
    h[32..36].copy_from_slice(&len.to_be_bytes());
    h[39] = next_header;
    h
}

fn sum_words(data: &[u8], initial: u64) -> u64 {
    let (words, rest) = data.as_chunks::<2>();
    let sum = words
        .iter()
        .fold(initial, |acc, w| acc + u64::from(u16::from_be_bytes(*w)));
    match rest {
        [last] => sum + u64::from(u16::from_be_bytes([*last, 0])),
        _ => sum,
    }
}

fn fold(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    // The loop leaves at most 16 bits.
    u16::try_from(sum).unwrap_or(u16::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_matches_rfc1071() {
        // RFC 1071 section 3 example: the sum is 0xddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(checksum(&data, 0), !0xddf2);
        // Odd length pads with a zero byte.
        assert_eq!(checksum(&[0x12], 0), !0x1200);
        // `initial` continues a sum, folded or not.
        assert_eq!(checksum(&data[4..], 0x0001 + 0xf203), !0xddf2);
        assert_eq!(checksum(&data[4..], 0x1_f204), checksum(&data[4..], 0xf205));
        assert_eq!(checksum(&[], 0), 0xffff);
    }

    #[test]
    fn partial_sum_continues_like_the_data_itself() {
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(checksum(&data[4..], partial_sum(&data[..4])), !0xddf2);
    }
}
