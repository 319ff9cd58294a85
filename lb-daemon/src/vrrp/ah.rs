//! VRRPv2 `auth_type AH`: keepalived 2.2.7's IPsec-AH wrapper (RFC 2402 header, HMAC-MD5-96
//! over the packet, RFC 2085/2104), byte-compatible with `keepalived/vrrp/vrrp_ipsecah.c` and
//! the AH parts of `vrrp.c` (`vrrp_build_ipsecah`, `vrrp_update_pkt`, `vrrp_in_chk_ipsecah`,
//! `vrrp_state_master_rx`, `vrrp_state_goto_master`). Pure: the socket calls [`seal`] and
//! [`open`]; the instance keeps one [`SeqCounter`].
//!
//! The packet is `IPv4 header (protocol 51) | AH (24 bytes) | VRRP message`, where the VRRP
//! message says auth type 2 and leaves its 8 auth bytes zero. The AH header:
//!
//! ```text
//! next header 112 | payload len 4 | reserved 0 | SPI = IP source | sequence | ICV (12 bytes)
//! ```
//!
//! The ICV is the first 12 bytes of HMAC-MD5, keyed with the 8-byte zero-padded `auth_pass`,
//! over the IPv4 header with the mutable fields zeroed (TOS, flags/fragment offset, header
//! checksum; the TTL too when the instance is unicast, as keepalived), then the AH header
//! with a zero ICV, then the VRRP message. The IP ID is covered: it is sent as written
//! (keepalived and we number adverts 1, 2, …, never 0, so the kernel keeps it).

use md5::{Digest, Md5};

use crate::net::proto::IPPROTO_VRRP;

/// IP protocol number of the Authentication Header.
pub const IPPROTO_AH: u8 = 51;
/// Size of keepalived's `ipsec_ah_t`.
pub const AH_LEN: usize = 24;
/// keepalived's `IPSEC_AH_PLEN`: the AH length in 32-bit words minus 2.
const AH_PAYLOAD_LEN: u8 = 4;
/// HMAC-MD5-96: the ICV is the digest truncated to 12 bytes.
const ICV_LEN: usize = 12;
const ICV_OFFSET: usize = AH_LEN - ICV_LEN;
const BLOCK: usize = 64;
/// keepalived stops counting here ("cycled", 136 years of 1 s adverts).
const SEQ_LIMIT: u32 = 0xFFFF_FFFD;

/// Why an AH-wrapped advert is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AhError {
    /// Shorter than an IPv4 header plus the AH header, or a bad IPv4 header.
    #[error("too short for the IPsec AH header")]
    TooShort,
    /// The AH protects another protocol: keepalived ignores the packet silently.
    #[error("AH header for another protocol than VRRP")]
    NotVrrp,
    /// The ICV does not match: another key, or a changed packet.
    #[error("IPsec AH HMAC-MD5 mismatch (wrong auth_pass or altered packet)")]
    BadIcv,
    /// The SPI is not the packet's source address.
    #[error("IPsec AH SPI is not the source address")]
    BadSpi,
    /// Sequence number not above the last one seen: a replay.
    #[error("IPsec AH sequence number already seen (replay)")]
    Replay,
}

/// HMAC-MD5 (RFC 2104) of the concatenation of `parts`, as keepalived's `hmac_md5`.
pub fn hmac_md5(key: &[u8], parts: &[&[u8]]) -> [u8; 16] {
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..16].copy_from_slice(&Md5::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Md5::new();
    inner.update(k.map(|b| b ^ 0x36));
    for p in parts {
        inner.update(p);
    }
    let mut outer = Md5::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// The IPv4 header as the ICV covers it: TOS, flags/fragment offset and checksum zeroed,
/// and the TTL when unicast.
fn immutable_header(ip_header: &[u8], unicast: bool) -> Vec<u8> {
    let mut h = ip_header.to_vec();
    h[1] = 0; // TOS
    h[6] = 0; // flags, fragment offset
    h[7] = 0;
    h[10] = 0; // header checksum
    h[11] = 0;
    if unicast {
        h[8] = 0;
    }
    h
}

fn icv(key: &[u8; 8], ip_header: &[u8], ah: &[u8; AH_LEN], msg: &[u8], unicast: bool) -> [u8; 12] {
    let mut zeroed = *ah;
    zeroed[ICV_OFFSET..].fill(0);
    let digest = hmac_md5(key, &[&immutable_header(ip_header, unicast), &zeroed, msg]);
    let mut out = [0u8; ICV_LEN];
    out.copy_from_slice(&digest[..ICV_LEN]);
    out
}

/// The AH header to send between `ip_header` (final: protocol 51, total length counting
/// the AH, ID set; its checksum is ignored) and the VRRP message `msg`.
pub fn seal(
    ip_header: &[u8; 20],
    msg: &[u8],
    seq: u32,
    key: &[u8; 8],
    unicast: bool,
) -> [u8; AH_LEN] {
    let mut ah = [0u8; AH_LEN];
    ah[0] = IPPROTO_VRRP;
    ah[1] = AH_PAYLOAD_LEN;
    ah[4..8].copy_from_slice(&ip_header[12..16]); // SPI: the source address
    ah[8..12].copy_from_slice(&seq.to_be_bytes());
    let icv = icv(key, ip_header, &ah, msg, unicast);
    ah[ICV_OFFSET..].copy_from_slice(&icv);
    ah
}

/// A verified AH advert: its sequence number and the VRRP message it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened<'a> {
    pub seq: u32,
    pub msg: &'a [u8],
}

/// Checks a received IPv4 packet `ip_header | rest` (rest = AH + VRRP) in keepalived's order:
/// next header, ICV, SPI, then the sequence number against `counter` (which moves forward
/// on success, as keepalived's does before its later checks).
pub fn open<'a>(
    ip_header: &[u8],
    rest: &'a [u8],
    key: &[u8; 8],
    unicast: bool,
    counter: &mut SeqCounter,
) -> Result<Opened<'a>, AhError> {
    if ip_header.len() < 20 || rest.len() < AH_LEN {
        return Err(AhError::TooShort);
    }
    let (ah, msg) = rest.split_at(AH_LEN);
    let ah: &[u8; AH_LEN] = ah.try_into().map_err(|_| AhError::TooShort)?;
    if ah[0] != IPPROTO_VRRP {
        return Err(AhError::NotVrrp);
    }
    let want = icv(key, ip_header, ah, msg, unicast);
    let got = &ah[ICV_OFFSET..];
    if want.iter().zip(got).fold(0u8, |d, (a, b)| d | (a ^ b)) != 0 {
        return Err(AhError::BadIcv);
    }
    if ah[4..8] != ip_header[12..16] {
        return Err(AhError::BadSpi);
    }
    let seq = u32::from_be_bytes([ah[8], ah[9], ah[10], ah[11]]);
    if !counter.accept(seq) {
        return Err(AhError::Replay);
    }
    Ok(Opened { seq, msg })
}

/// keepalived's `ipsecah_counter`: ONE number per instance, for sending and receiving. A
/// backup follows the master's numbers, so when it takes over its own continue above them
/// and the old master, now backup, accepts them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeqCounter {
    pub seq: u32,
    /// The counter reached its limit: adverts repeat the last number until reset.
    pub cycle: bool,
}

impl SeqCounter {
    /// The number of the next advert (`vrrp_update_pkt`).
    pub fn next_to_send(&mut self) -> u32 {
        if self.seq > SEQ_LIMIT {
            self.cycle = true;
        } else {
            self.seq += 1;
        }
        self.seq
    }

    /// Anti-replay (`vrrp_in_chk_ipsecah`): only a number above the last one is accepted.
    pub fn accept(&mut self, seq: u32) -> bool {
        if seq > self.seq {
            self.seq = seq;
            // `vrrp_check_packet`: an accepted number is never below the counter.
            self.cycle = false;
            true
        } else {
            false
        }
    }

    /// Becoming MASTER (`vrrp_state_goto_master`): a cycled counter starts again at 0.
    pub fn on_become_master(&mut self) {
        if self.cycle {
            *self = SeqCounter::default();
        }
    }

    /// A MASTER hears a lower-priority advert (`vrrp_state_master_rx`): "Syncing seq_num".
    pub fn on_lower_priority(&mut self, their_seq: u32) {
        self.seq = their_seq.wrapping_add(1);
        self.cycle = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 2202 test case 2 (HMAC-MD5).
    #[test]
    fn hmac_md5_rfc2202() {
        let d = hmac_md5(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "750c783e6ab0b503eaa86e310a5db738");
        // Case 6: a key longer than the block is hashed first.
        let d = hmac_md5(
            &[0xaa; 80],
            &[b"Test Using Larger Than Block-Size Key - Hash Key First"],
        );
        let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "6b1ab7fe4bd7bf8f0b62e6ce61b9d0cd");
    }

    fn header(ttl: u8, id: u16) -> [u8; 20] {
        let mut h = [0u8; 20];
        h[0] = 0x45;
        h[1] = 0xc0;
        h[2..4].copy_from_slice(&(20u16 + 24 + 20).to_be_bytes());
        h[4..6].copy_from_slice(&id.to_be_bytes());
        h[8] = ttl;
        h[9] = IPPROTO_AH;
        h[12..16].copy_from_slice(&[198, 18, 0, 1]);
        h[16..20].copy_from_slice(&[224, 0, 0, 18]);
        h
    }

    const KEY: [u8; 8] = *b"secret\0\0";
    const MSG: [u8; 20] = [
        0x21, 51, 100, 1, 2, 1, 0, 0, 198, 18, 0, 100, 0, 0, 0, 0, 0, 0, 0, 0,
    ];

    #[test]
    fn sealed_packets_open_and_mutable_fields_do_not_count() {
        let h = header(255, 7);
        let ah = seal(&h, &MSG, 1, &KEY, false);
        assert_eq!(&ah[..12], &[112, 4, 0, 0, 198, 18, 0, 1, 0, 0, 0, 1]);
        let mut rest = ah.to_vec();
        rest.extend_from_slice(&MSG);
        // Routers may rewrite TOS and the checksum; the kernel fills the checksum.
        let mut seen = h;
        seen[1] = 0;
        seen[10] = 0xab;
        seen[11] = 0xcd;
        let mut c = SeqCounter::default();
        let opened = open(&seen, &rest, &KEY, false, &mut c).unwrap();
        assert_eq!((opened.seq, opened.msg), (1, &MSG[..]));
        assert_eq!(c.seq, 1);
    }

    #[test]
    fn ttl_counts_for_multicast_only() {
        let ah = seal(&header(255, 7), &MSG, 1, &KEY, false);
        let mut rest = ah.to_vec();
        rest.extend_from_slice(&MSG);
        let mut c = SeqCounter::default();
        assert_eq!(
            open(&header(254, 7), &rest, &KEY, false, &mut c),
            Err(AhError::BadIcv)
        );
        let ah = seal(&header(255, 7), &MSG, 1, &KEY, true);
        let mut rest = ah.to_vec();
        rest.extend_from_slice(&MSG);
        assert!(open(&header(64, 7), &rest, &KEY, true, &mut c).is_ok());
    }

    #[test]
    fn every_refusal() {
        let h = header(255, 9);
        let packet = |seq: u32, key: &[u8; 8]| {
            let mut rest = seal(&h, &MSG, seq, key, false).to_vec();
            rest.extend_from_slice(&MSG);
            rest
        };
        let mut c = SeqCounter::default();
        assert_eq!(
            open(&h, &packet(1, b"other\0\0\0"), &KEY, false, &mut c),
            Err(AhError::BadIcv)
        );
        assert_eq!(c.seq, 0, "a forged packet does not move the counter");
        assert!(open(&h, &packet(5, &KEY), &KEY, false, &mut c).is_ok());
        assert_eq!(
            open(&h, &packet(5, &KEY), &KEY, false, &mut c),
            Err(AhError::Replay)
        );
        assert_eq!(
            open(&h, &packet(4, &KEY), &KEY, false, &mut c),
            Err(AhError::Replay)
        );
        let mut altered = packet(6, &KEY);
        *altered.last_mut().unwrap() = 1;
        assert_eq!(
            open(&h, &altered, &KEY, false, &mut c),
            Err(AhError::BadIcv)
        );
        let mut other = packet(6, &KEY);
        other[0] = 6;
        assert_eq!(open(&h, &other, &KEY, false, &mut c), Err(AhError::NotVrrp));
        // SPI of another address, with a valid ICV over it.
        let mut spoofed = h;
        spoofed[12..16].copy_from_slice(&[198, 18, 0, 9]);
        let mut rest = seal(&spoofed, &MSG, 7, &KEY, false).to_vec();
        rest.extend_from_slice(&MSG);
        rest[..AH_LEN].copy_from_slice(&{
            let mut ah = seal(&h, &MSG, 7, &KEY, false);
            ah[4..8].copy_from_slice(&[198, 18, 0, 9]);
            let icv = icv(&KEY, &h, &ah, &MSG, false);
            ah[ICV_OFFSET..].copy_from_slice(&icv);
            ah
        });
        assert_eq!(open(&h, &rest, &KEY, false, &mut c), Err(AhError::BadSpi));
        assert_eq!(
            open(&h, &rest[..10], &KEY, false, &mut c),
            Err(AhError::TooShort)
        );
    }

    /// Captured from keepalived 2.2.7 (Debian 12, `auth_type AH`, `auth_pass secret12`,
    /// VRID 51, priority 150, VIP 198.18.0.100, on a veth with 198.18.0.1) with tcpdump on
    /// the peer: its first two multicast adverts and the first unicast one (to 198.18.0.2).
    const K_MCAST_1: [u8; 64] = hex64(
        "45c00040000100 00ff3314a4c6120001e0000012700400 00c612000100000001b81f2e011883f82c071821ae21339601020180 53c6120064 0000000000000000",
    );
    const K_MCAST_2: [u8; 64] = hex64(
        "45c00040000200 00ff3314a3c6120001e0000012700400 00c612000100000002 55d3abef6a2c9c34fd77ee1121339601020180 53c6120064 0000000000000000",
    );
    const K_UNICAST_1: [u8; 64] = hex64(
        "45c00040000100 00ff332ea2c6120001c6120002700400 00c612000100000001 5ded2cb2ec8f5d10430fffee21339601020180 53c6120064 0000000000000000",
    );

    const fn hex64(s: &str) -> [u8; 64] {
        let b = s.as_bytes();
        let mut out = [0u8; 64];
        let (mut i, mut n) = (0, 0);
        while i < b.len() {
            if b[i] == b' ' {
                i += 1;
                continue;
            }
            let nib = match b[i] {
                c @ b'0'..=b'9' => c - b'0',
                c => c - b'a' + 10,
            };
            out[n / 2] |= nib << if n % 2 == 0 { 4 } else { 0 };
            n += 1;
            i += 1;
        }
        assert!(n == 128);
        out
    }

    #[test]
    fn keepalived_adverts_open_and_seal_byte_for_byte() {
        let key = crate::vrrp::packet::auth_field("secret12").0;
        let mut c = SeqCounter::default();
        for (packet, unicast, seq) in [
            (K_MCAST_1, false, 1),
            (K_MCAST_2, false, 2),
            (K_UNICAST_1, true, 1),
        ] {
            let (header, rest) = packet.split_at(20);
            if seq == 1 {
                c = SeqCounter::default();
            }
            let opened = open(header, rest, &key, unicast, &mut c).unwrap();
            assert_eq!(opened.seq, seq);
            assert_eq!(opened.msg, &packet[44..]);
            // Our sealing of the same header and message gives keepalived's AH header.
            let header: [u8; 20] = header.try_into().unwrap();
            assert_eq!(
                seal(&header, &packet[44..], seq, &key, unicast),
                packet[20..44],
                "unicast {unicast}, seq {seq}"
            );
            // ... and our encoding of the advert gives its VRRP message.
            let advert = crate::vrrp::types::Advert {
                version: crate::vrrp::types::Version::V2,
                vrid: 51,
                priority: 150,
                interval_cs: 100,
                addresses: vec!["198.18.0.100".parse().unwrap()],
                auth: crate::vrrp::types::Auth::Ah,
            };
            let src = "198.18.0.1".parse().unwrap();
            let dst = std::net::Ipv4Addr::from(<[u8; 4]>::try_from(&header[16..20]).unwrap());
            assert_eq!(
                crate::vrrp::packet::encode(&advert, src, dst.into()).unwrap(),
                packet[44..]
            );
        }
        // The multicast one checked as unicast (TTL zeroed) fails: the modes differ.
        let (header, rest) = K_MCAST_1.split_at(20);
        assert_eq!(
            open(header, rest, &key, true, &mut SeqCounter::default()),
            Err(AhError::BadIcv)
        );
    }

    #[test]
    fn sequence_counter_as_keepalived() {
        let mut c = SeqCounter::default();
        assert_eq!((c.next_to_send(), c.next_to_send()), (1, 2));
        assert!(c.accept(10));
        assert_eq!(c.next_to_send(), 11);
        c.on_lower_priority(40);
        assert_eq!(c.next_to_send(), 42);
        let mut c = SeqCounter {
            seq: SEQ_LIMIT,
            cycle: false,
        };
        assert_eq!(c.next_to_send(), SEQ_LIMIT + 1);
        assert_eq!(c.next_to_send(), SEQ_LIMIT + 1);
        assert!(c.cycle);
        c.on_become_master();
        assert_eq!(c, SeqCounter::default());
        c.on_become_master();
        assert_eq!(c.next_to_send(), 1);
    }
}
