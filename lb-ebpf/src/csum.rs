//! Internet checksums.

use crate::packet::Ipv4Hdr;

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
