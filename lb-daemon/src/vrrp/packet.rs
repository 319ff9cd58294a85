//! VRRP advertisement codec (RFC 3768 v2, RFC 5798 v3), byte-compatible with keepalived 2.2.7.
//!
//! Only the VRRP message (the IP payload) is handled here; IP headers, TTL and sockets belong
//! to the IO layer. The rules follow keepalived 2.2.7: `keepalived/vrrp/vrrp.c`
//! (`vrrp_build_vrrp_v2`, `vrrp_build_vrrp_v3`, `vrrp_check_packet`, `vrrp_complete_instance`),
//! `vrrp_scheduler.c` (`vrrp_dispatcher_read`) and `vrrp_parser.c` (`vrrp_auth_pass_handler`).
//! Comments below name the function each rule comes from.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::types::{Advert, Auth, Version};
use crate::net::checksum::{checksum, partial_sum, pseudo_header_v4, pseudo_header_v6};
use crate::net::proto::{IPPROTO_VRRP, VRRP_GROUP_V4, VRRP_TTL};
/// Most virtual addresses one advert carries (the count field is 8 bits).
pub const MAX_ADDRESSES: usize = 255;
/// Largest v3 Max Adver Int: 12 bits of centiseconds.
pub const MAX_V3_INTERVAL_CS: u16 = 0x0fff;
/// Largest v2 Adver Int: 8 bits of seconds, here in centiseconds.
pub const MAX_V2_INTERVAL_CS: u16 = 255 * CS_PER_SECOND;

const HEADER_LEN: usize = 8;
const AUTH_LEN: usize = 8;
const CHECKSUM_OFFSET: usize = 6;
const TYPE_ADVERTISEMENT: u8 = 1;
const AUTH_NONE: u8 = 0;
const AUTH_PASS: u8 = 1;
const AUTH_AH: u8 = 2;
const CS_PER_SECOND: u16 = 100;

/// Why a received advert is not accepted. `label()` gives the metric/log label (snake_case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum DropReason {
    /// Shorter than the 8-byte fixed header.
    #[error("shorter than the VRRP header")]
    TooShort,
    /// Not the version the instance runs, or not 2/3, or v2 over IPv6.
    #[error("wrong or unsupported VRRP version")]
    BadVersion,
    /// Type is not ADVERTISEMENT (1).
    #[error("not a VRRP advertisement")]
    BadType,
    /// Length disagrees with the address count.
    #[error("length does not match the address count")]
    BadLength,
    #[error("bad VRRP checksum")]
    BadChecksum,
    /// Multicast advert whose TTL / hop limit is not 255.
    #[error("TTL/hop limit is not 255")]
    BadTtl,
    #[error("virtual router id of another instance")]
    WrongVrid,
    /// v2 auth type or password differs, or the auth type is unknown, or an AH packet
    /// reached an instance without AH (or the reverse).
    #[error("authentication type or password mismatch")]
    AuthMismatch,
    /// `auth_type AH`: the HMAC-MD5-96 or the SPI is wrong (another key, an altered packet).
    #[error("IPsec AH authentication failed (wrong auth_pass or altered packet)")]
    AhAuthFailure,
    /// `auth_type AH`: a sequence number not above the last one seen (a replay).
    #[error("IPsec AH sequence number already seen (replayed advert)")]
    AhReplay,
    /// v2 advert interval differs from ours.
    #[error("advertisement interval mismatch")]
    IntervalMismatch,
    /// Addresses (or source/destination) not of the instance's family.
    #[error("address family differs from the instance's")]
    FamilyMismatch,
    /// Unicast advert from an address that is not a configured peer (checked by the IO layer).
    #[error("source is not a configured unicast peer")]
    NotAPeer,
    /// The advert's address list differs from ours: keepalived 2.2.7 drops these unless
    /// `skip_check_adv_addr` (the caller applies it from `Validated::address_mismatch`).
    #[error("virtual address list differs from ours")]
    AddressMismatch,
}

impl DropReason {
    pub const ALL: [DropReason; 14] = [
        DropReason::TooShort,
        DropReason::BadVersion,
        DropReason::BadType,
        DropReason::BadLength,
        DropReason::BadChecksum,
        DropReason::BadTtl,
        DropReason::WrongVrid,
        DropReason::AuthMismatch,
        DropReason::AhAuthFailure,
        DropReason::AhReplay,
        DropReason::IntervalMismatch,
        DropReason::FamilyMismatch,
        DropReason::NotAPeer,
        DropReason::AddressMismatch,
    ];

    pub fn label(self) -> &'static str {
        match self {
            DropReason::TooShort => "too_short",
            DropReason::BadVersion => "bad_version",
            DropReason::BadType => "bad_type",
            DropReason::BadLength => "bad_length",
            DropReason::BadChecksum => "bad_checksum",
            DropReason::BadTtl => "bad_ttl",
            DropReason::WrongVrid => "wrong_vrid",
            DropReason::AuthMismatch => "auth_mismatch",
            DropReason::AhAuthFailure => "ah_auth_failure",
            DropReason::AhReplay => "ah_replay",
            DropReason::IntervalMismatch => "interval_mismatch",
            DropReason::FamilyMismatch => "family_mismatch",
            DropReason::NotAPeer => "not_a_peer",
            DropReason::AddressMismatch => "address_mismatch",
        }
    }
}

/// Why an advert cannot be encoded. Each case is a configuration keepalived also refuses
/// (`vrrp_complete_instance`), so it points at a bug or a missed config check upstream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("VRRPv2 carries IPv4 addresses only")]
    V2Ipv6,
    #[error("virtual addresses mix IPv4 and IPv6")]
    MixedFamilies,
    #[error("source/destination {0} is not of the virtual addresses' family")]
    EndpointFamily(IpAddr),
    #[error("{0} virtual addresses; an advert carries at most 255")]
    TooManyAddresses(usize),
    #[error("a VRRPv3 advert needs at least one virtual address")]
    NoAddresses,
    #[error("advert interval of {0} cs is out of range for this VRRP version")]
    IntervalOutOfRange(u16),
    #[error("VRRPv2 advert interval of {0} cs is not a whole number of seconds")]
    IntervalNotWholeSeconds(u16),
    #[error("VRRPv3 has no authentication")]
    V3Auth,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

impl Family {
    fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    fn addr_len(self) -> usize {
        match self {
            Family::V4 => 4,
            Family::V6 => 16,
        }
    }
}

/// Source and destination of one packet, of one family (what the pseudo-header needs).
#[derive(Debug, Clone, Copy)]
enum Endpoints {
    V4(Ipv4Addr, Ipv4Addr),
    V6(Ipv6Addr, Ipv6Addr),
}

impl Endpoints {
    fn new(src: IpAddr, dst: IpAddr) -> Option<Self> {
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => Some(Endpoints::V4(s, d)),
            (IpAddr::V6(s), IpAddr::V6(d)) => Some(Endpoints::V6(s, d)),
            _ => None,
        }
    }

    fn family(self) -> Family {
        match self {
            Endpoints::V4(..) => Family::V4,
            Endpoints::V6(..) => Family::V6,
        }
    }
}

/// Sum of the RFC 5798 5.2.8 pseudo-header (IPv4 as for UDP, IPv6 per RFC 8200 8.1).
fn pseudo_header_sum(ends: Endpoints, vrrp_len: usize) -> u32 {
    // The length is bounded by 8 + 255 * 16, well inside 16 bits.
    match ends {
        Endpoints::V4(src, dst) => {
            partial_sum(&pseudo_header_v4(src, dst, IPPROTO_VRRP, vrrp_len as u16))
        }
        Endpoints::V6(src, dst) => {
            partial_sum(&pseudo_header_v6(src, dst, IPPROTO_VRRP, vrrp_len as u32))
        }
    }
}

/// v2 sums the message alone; v3 starts from the pseudo-header (RFC 5798 5.2.8).
fn message_checksum(msg: &[u8], version: Version, ends: Endpoints) -> u16 {
    let initial = match version {
        Version::V2 => 0,
        Version::V3 => pseudo_header_sum(ends, msg.len()),
    };
    checksum(msg, initial)
}

/// Password as keepalived stores it (`vrrp_auth_pass_handler`): the first 8 bytes, zero
/// padded; `truncated` is true when it was longer than 8 (the caller warns, as keepalived
/// does). Note keepalived turns authentication off when the password is empty
/// (`vrrp_complete_instance`: "Authentication specified but no password given").
pub fn auth_field(password: &str) -> ([u8; 8], bool) {
    let mut field = [0u8; AUTH_LEN];
    for (slot, byte) in field.iter_mut().zip(password.as_bytes()) {
        *slot = *byte;
    }
    (field, password.len() > AUTH_LEN)
}

/// Encodes the VRRP message (no IP header), checksum filled. `src`/`dst` are the IP addresses
/// the packet is sent from/to: v3 sums them in its pseudo-header.
///
/// - v3 unicast: like keepalived 2.2.7 (`vrrp_build_vrrp_v3`), the pseudo-header holds the
///   real unicast destination. keepalived's `old_unicast_checksum` mode (and keepalived
///   up to 1.3.6) uses 224.0.0.18 instead: get it by passing [`VRRP_GROUP_V4`] as `dst`.
/// - v3 IPv6: keepalived leaves the checksum to the kernel (IPV6_CHECKSUM at offset 6);
///   we compute the same value so the bytes are complete either way.
/// - Addresses: v2 may carry none (keepalived sends `count_ip` 0 for a v2 instance without
///   VIPs when not in strict mode); v3 needs at least one (keepalived refuses the config).
pub fn encode(advert: &Advert, src: IpAddr, dst: IpAddr) -> Result<Vec<u8>, EncodeError> {
    let family = check_addresses(advert)?;
    let ends = check_endpoints(family, src, dst)?;
    let count = u8::try_from(advert.addresses.len())
        .map_err(|_| EncodeError::TooManyAddresses(advert.addresses.len()))?;

    let mut msg = Vec::with_capacity(message_len(advert.version, family, advert.addresses.len()));
    msg.extend_from_slice(&[
        advert.version.number() << 4 | TYPE_ADVERTISEMENT,
        advert.vrid,
        advert.priority,
        count,
    ]);
    msg.extend_from_slice(&version_fields(advert)?);
    msg.extend_from_slice(&[0, 0]); // checksum, filled below
    for address in &advert.addresses {
        push_address(&mut msg, *address);
    }
    if advert.version == Version::V2 {
        // keepalived leaves the auth data zeroed for auth type 0 (`vrrp_build_vrrp_v2`).
        // AH leaves them zeroed too: its HMAC is in the AH header.
        match advert.auth {
            Auth::Pass(pass) => msg.extend_from_slice(&pass),
            Auth::None | Auth::Ah => msg.extend_from_slice(&[0; AUTH_LEN]),
        }
    }

    let sum = message_checksum(&msg, advert.version, ends);
    msg[CHECKSUM_OFFSET..CHECKSUM_OFFSET + 2].copy_from_slice(&sum.to_be_bytes());
    Ok(msg)
}

/// The family of the addresses, checked against the version and the count limits.
fn check_addresses(advert: &Advert) -> Result<Family, EncodeError> {
    let family = advert
        .addresses
        .first()
        .map_or(Family::V4, |first| Family::of(*first));
    if advert.addresses.iter().any(|a| Family::of(*a) != family) {
        return Err(EncodeError::MixedFamilies);
    }
    if advert.version == Version::V2 && family == Family::V6 {
        // keepalived would send a non-standard "v2 over IPv6" when not strict; RFC 3768
        // has no such thing and we never send it.
        return Err(EncodeError::V2Ipv6);
    }
    if advert.addresses.len() > MAX_ADDRESSES {
        return Err(EncodeError::TooManyAddresses(advert.addresses.len()));
    }
    if advert.version == Version::V3 && advert.addresses.is_empty() {
        return Err(EncodeError::NoAddresses);
    }
    Ok(family)
}

fn check_endpoints(family: Family, src: IpAddr, dst: IpAddr) -> Result<Endpoints, EncodeError> {
    for end in [src, dst] {
        if Family::of(end) != family {
            return Err(EncodeError::EndpointFamily(end));
        }
    }
    Endpoints::new(src, dst).ok_or(EncodeError::EndpointFamily(dst))
}

/// Bytes 4 and 5: v2 auth type and whole seconds; v3 reserved nibble and centiseconds.
fn version_fields(advert: &Advert) -> Result<[u8; 2], EncodeError> {
    let cs = advert.interval_cs;
    match advert.version {
        Version::V2 => {
            let auth_type = match advert.auth {
                Auth::None => AUTH_NONE,
                Auth::Pass(_) => AUTH_PASS,
                Auth::Ah => AUTH_AH,
            };
            Ok([auth_type, v2_interval_secs(cs)?])
        }
        Version::V3 => {
            if advert.auth != Auth::None {
                return Err(EncodeError::V3Auth);
            }
            if cs == 0 || cs > MAX_V3_INTERVAL_CS {
                return Err(EncodeError::IntervalOutOfRange(cs));
            }
            Ok(cs.to_be_bytes())
        }
    }
}

/// keepalived never sends 0 (it substitutes the 1 s default) nor more than 255 s.
fn v2_interval_secs(cs: u16) -> Result<u8, EncodeError> {
    if !cs.is_multiple_of(CS_PER_SECOND) {
        return Err(EncodeError::IntervalNotWholeSeconds(cs));
    }
    match u8::try_from(cs / CS_PER_SECOND) {
        Ok(secs) if secs > 0 => Ok(secs),
        _ => Err(EncodeError::IntervalOutOfRange(cs)),
    }
}

fn push_address(msg: &mut Vec<u8>, address: IpAddr) {
    match address {
        IpAddr::V4(a) => msg.extend_from_slice(&a.octets()),
        IpAddr::V6(a) => msg.extend_from_slice(&a.octets()),
    }
}

/// Message length as keepalived expects it (`expected_vrrp_pkt_len`): the v2 auth data is
/// always there over IPv4, whatever the auth type.
fn message_len(version: Version, family: Family, count: usize) -> usize {
    let auth = if family == Family::V4 && version == Version::V2 {
        AUTH_LEN
    } else {
        0
    };
    HEADER_LEN + auth + count * family.addr_len()
}

/// A decoded advert and how its checksum was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub advert: Advert,
    /// A v3 IPv4 unicast advert whose pseudo-header used 224.0.0.18 instead of the real
    /// destination (keepalived's `old_unicast_checksum`, and keepalived up to 1.3.6).
    /// keepalived 2.2.7 accepts it and, unless configured `old_unicast_checksum never`,
    /// switches its own unicast adverts to that form (`vrrp_check_packet`): the caller
    /// does likewise by encoding with [`VRRP_GROUP_V4`] as `dst`, or drops the advert.
    pub legacy_unicast_checksum: bool,
}

/// Decodes a VRRP message (the IP payload) received from `src` to `dst`; checks length,
/// version, type, count/length consistency and the checksum; does not check instance settings.
///
/// Order as keepalived (`vrrp_check_packet`), leaving out the per-instance checks that
/// [`validate`] does, except that the version comes first: version, length, v2 auth type,
/// type, checksum. Length must match the
/// count exactly (keepalived logs "packet too long/short"). A v3 IPv4 unicast advert with the
/// legacy checksum is accepted, as keepalived does; see [`decode_detailed`] to tell.
pub fn decode(bytes: &[u8], src: IpAddr, dst: IpAddr) -> Result<Advert, DropReason> {
    decode_detailed(bytes, src, dst).map(|decoded| decoded.advert)
}

/// [`decode`], also telling whether the legacy v3 unicast checksum was used.
pub fn decode_detailed(bytes: &[u8], src: IpAddr, dst: IpAddr) -> Result<Decoded, DropReason> {
    let ends = Endpoints::new(src, dst).ok_or(DropReason::FamilyMismatch)?;
    let family = ends.family();
    let &[vers_type, vrid, priority, count, field4, field5, _, _, ..] = bytes else {
        return Err(DropReason::TooShort);
    };
    let count = usize::from(count);
    // The version before the length: a length computed for a version nobody speaks, or
    // a v2 advert relabelled v3 (its auth data left), is a version error, not a length one.
    let version = parse_version(vers_type >> 4, family)?;
    if bytes.len() != message_len(version, family, count) {
        let other = match version {
            Version::V2 => Version::V3,
            Version::V3 => Version::V2,
        };
        if bytes.len() == message_len(other, family, count) {
            return Err(DropReason::BadVersion);
        }
        return Err(DropReason::BadLength);
    }
    let auth = match version {
        Version::V2 => parse_auth(field4, bytes)?,
        Version::V3 => Auth::None,
    };
    if vers_type & 0x0f != TYPE_ADVERTISEMENT {
        return Err(DropReason::BadType);
    }
    let legacy_unicast_checksum = verify_checksum(bytes, version, ends)?;
    let body = bytes
        .get(HEADER_LEN..HEADER_LEN + count * family.addr_len())
        .ok_or(DropReason::BadLength)?;
    let advert = Advert {
        version,
        vrid,
        priority,
        interval_cs: interval_cs(version, field4, field5),
        addresses: parse_addresses(body, family),
        auth,
    };
    Ok(Decoded {
        advert,
        legacy_unicast_checksum,
    })
}

/// v2 is IPv4 only (RFC 3768); keepalived's non-strict "v2 over IPv6" is not supported.
fn parse_version(nibble: u8, family: Family) -> Result<Version, DropReason> {
    match (nibble, family) {
        (2, Family::V4) => Ok(Version::V2),
        (3, _) => Ok(Version::V3),
        _ => Err(DropReason::BadVersion),
    }
}

/// Auth type 0: the auth data is ignored, whatever it holds (keepalived never reads it).
/// Type 1: the password is the last 8 bytes (keepalived reads it at the end of the packet).
/// Type 2 (IP AH): the auth data is ignored; the AH header was checked before (see
/// [`super::ah`]). keepalived drops other values as "Invalid auth type".
fn parse_auth(auth_type: u8, msg: &[u8]) -> Result<Auth, DropReason> {
    match auth_type {
        AUTH_NONE => Ok(Auth::None),
        AUTH_PASS => msg
            .split_last_chunk::<AUTH_LEN>()
            .map(|(_, pass)| Auth::Pass(*pass))
            .ok_or(DropReason::BadLength),
        AUTH_AH => Ok(Auth::Ah),
        _ => Err(DropReason::AuthMismatch),
    }
}

/// v3's top 4 bits are reserved: ignored on receipt (RFC 5798 5.2.6; keepalived masks 0x0fff).
fn interval_cs(version: Version, field4: u8, field5: u8) -> u16 {
    match version {
        Version::V2 => u16::from(field5) * CS_PER_SECOND,
        Version::V3 => u16::from_be_bytes([field4, field5]) & MAX_V3_INTERVAL_CS,
    }
}

/// Ok(true) when only the legacy v3 unicast form (pseudo-header destination 224.0.0.18)
/// matches; keepalived 2.2.7 tries it when the real one fails on a unicast instance.
fn verify_checksum(msg: &[u8], version: Version, ends: Endpoints) -> Result<bool, DropReason> {
    if message_checksum(msg, version, ends) == 0 {
        return Ok(false);
    }
    match (version, ends) {
        (Version::V3, Endpoints::V4(src, dst)) if !dst.is_multicast() => {
            let legacy = Endpoints::V4(src, VRRP_GROUP_V4);
            if message_checksum(msg, version, legacy) == 0 {
                Ok(true)
            } else {
                Err(DropReason::BadChecksum)
            }
        }
        _ => Err(DropReason::BadChecksum),
    }
}

fn parse_addresses(body: &[u8], family: Family) -> Vec<IpAddr> {
    match family {
        Family::V4 => body
            .as_chunks::<4>()
            .0
            .iter()
            .map(|o| IpAddr::from(*o))
            .collect(),
        Family::V6 => body
            .as_chunks::<16>()
            .0
            .iter()
            .map(|o| IpAddr::from(*o))
            .collect(),
    }
}

/// What a receiving instance expects; `validate` applies RFC 3768 7.1 / RFC 5798 7.1 and
/// keepalived's rules for one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expect {
    pub version: Version,
    pub vrid: u8,
    /// v2 only: the auth type (and password, see [`auth_field`]) the instance uses.
    pub auth: Auth,
    /// Our configured interval; only v2 compares it.
    pub interval_cs: u16,
    /// The instance multicasts (no unicast peers).
    pub multicast: bool,
    /// The instance's virtual addresses; their family is the instance's (IPv4 when empty,
    /// as keepalived defaults).
    pub addresses: Vec<IpAddr>,
}

/// An accepted advert, with what is worth a warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Validated {
    /// The advert's address list differs from ours (count, or one of ours missing).
    /// keepalived 2.2.7 *drops* such adverts (`addr_list_err`) unless `skip_check_adv_addr`
    /// is set, and then still checks them when the master's address changes; callers that
    /// want keepalived's default treat this as a drop.
    pub address_mismatch: bool,
}

/// Checks a decoded advert against one instance. `ttl` is the IPv4 TTL / IPv6 hop limit of
/// the received packet.
///
/// Order as keepalived: family (its sockets are per family), vrid (`vrrp_dispatcher_read`
/// looks the instance up by vrid), then `vrrp_check_packet`'s: TTL 255 only when multicast
/// (unicast is not checked), version, v2 auth type then password (constant time), v2
/// interval (v3's is not checked: the backup adopts the master's), addresses (a warning).
/// Unicast source checks (`NotAPeer`) and multicast/unicast destination checks need the
/// socket addresses and are the IO layer's.
pub fn validate(advert: &Advert, ttl: u8, expect: &Expect) -> Result<Validated, DropReason> {
    check_family(advert, expect)?;
    if advert.vrid != expect.vrid {
        return Err(DropReason::WrongVrid);
    }
    if expect.multicast && ttl != VRRP_TTL {
        return Err(DropReason::BadTtl);
    }
    if advert.version != expect.version {
        return Err(DropReason::BadVersion);
    }
    if expect.version == Version::V2 {
        check_auth(advert.auth, expect.auth)?;
        if advert.interval_cs != expect.interval_cs {
            return Err(DropReason::IntervalMismatch);
        }
    }
    Ok(Validated {
        address_mismatch: addresses_differ(&advert.addresses, &expect.addresses),
    })
}

fn check_family(advert: &Advert, expect: &Expect) -> Result<(), DropReason> {
    let ours = expect
        .addresses
        .first()
        .map_or(Family::V4, |first| Family::of(*first));
    if advert.addresses.iter().all(|a| Family::of(*a) == ours) {
        Ok(())
    } else {
        Err(DropReason::FamilyMismatch)
    }
}

fn check_auth(got: Auth, want: Auth) -> Result<(), DropReason> {
    match (got, want) {
        (Auth::None, Auth::None) | (Auth::Ah, Auth::Ah) => Ok(()),
        (Auth::Pass(got), Auth::Pass(want)) if constant_time_eq(&got, &want) => Ok(()),
        _ => Err(DropReason::AuthMismatch),
    }
}

/// keepalived compares passwords with `memcmp_constant_time`; so do we.
fn constant_time_eq(a: &[u8; 8], b: &[u8; 8]) -> bool {
    a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// keepalived's rule: same count, and each of ours present (order does not matter).
fn addresses_differ(theirs: &[IpAddr], ours: &[IpAddr]) -> bool {
    theirs.len() != ours.len() || ours.iter().any(|a| !theirs.contains(a))
}

#[cfg(test)]
mod tests {
    //! Golden vectors were captured from keepalived 2.2.7 (Debian 12 package 1:2.2.7-1,
    //! configure options include VRRP_AUTH and OLD_CHKSUM_COMPAT), run as
    //! `keepalived -n -l -D -P -f keepalived.conf -p k.pid -r vrrp.pid -c chk.pid -b bfd.pid`
    //! in a network namespace whose veth `va` has 198.18.0.1/24 and fe80::1/64
    //! (addrgenmode none), captured with tcpdump on the peer end (198.18.0.2, fe80::2).
    //! The bytes are the IP payloads. Every captured advert of an instance was identical
    //! (only the IP id changed); the priority-0 ones were sent on shutdown.
    //!
    //! Capture 1, keepalived.conf:
    //! ```text
    //! global_defs {
    //!     router_id kcap
    //!     vrrp_version 2
    //!     vrrp_garp_master_delay 0
    //!     vrrp_garp_master_repeat 1
    //! }
    //! vrrp_instance V2PASS {
    //!     state MASTER
    //!     interface va
    //!     virtual_router_id 51
    //!     priority 100
    //!     advert_int 1
    //!     authentication {
    //!         auth_type PASS
    //!         auth_pass secret12345
    //!     }
    //!     virtual_ipaddress {
    //!         198.18.0.100
    //!         198.18.0.101
    //!     }
    //! }
    //! vrrp_instance V2NONE {
    //!     state MASTER
    //!     interface va
    //!     virtual_router_id 52
    //!     priority 200
    //!     advert_int 2
    //!     virtual_ipaddress {
    //!         198.18.0.102
    //!     }
    //! }
    //! vrrp_instance V3MC {
    //!     version 3
    //!     state MASTER
    //!     interface va
    //!     virtual_router_id 53
    //!     priority 150
    //!     advert_int 1
    //!     virtual_ipaddress {
    //!         198.18.0.103
    //!         198.18.0.104
    //!     }
    //! }
    //! vrrp_instance V3UC {
    //!     version 3
    //!     state MASTER
    //!     interface va
    //!     virtual_router_id 54
    //!     priority 120
    //!     advert_int 0.5
    //!     unicast_src_ip 198.18.0.1
    //!     unicast_peer {
    //!         198.18.0.2
    //!     }
    //!     virtual_ipaddress {
    //!         198.18.0.105
    //!     }
    //! }
    //! vrrp_instance V3V6 {
    //!     version 3
    //!     state MASTER
    //!     interface va
    //!     virtual_router_id 55
    //!     priority 110
    //!     advert_int 1
    //!     mcast_src_ip fe80::1
    //!     virtual_ipaddress {
    //!         fe80::100/64
    //!         fe80::101/64
    //!     }
    //! }
    //! ```
    //! Capture 2, keepalived2.conf:
    //! ```text
    //! global_defs {
    //!     router_id kcap2
    //! }
    //! vrrp_instance V2EMPTY {
    //!     state MASTER
    //!     interface va
    //!     virtual_router_id 56
    //!     priority 100
    //!     advert_int 1
    //! }
    //! vrrp_instance V3OLD {
    //!     version 3
    //!     state MASTER
    //!     interface va
    //!     virtual_router_id 57
    //!     priority 100
    //!     advert_int 1
    //!     unicast_src_ip 198.18.0.1
    //!     unicast_peer {
    //!         198.18.0.2
    //!     }
    //!     old_unicast_checksum
    //!     virtual_ipaddress {
    //!         198.18.0.106
    //!     }
    //! }
    //! ```

    use super::*;
    use crate::net::proto::VRRP_GROUP_V6;

    /// V2PASS: 198.18.0.1 -> 224.0.0.18; "secret12345" truncated to "secret12".
    const V2_PASS: [u8; 24] = [
        0x21, 0x33, 0x64, 0x02, 0x01, 0x01, 0x7f, 0x5c, 0xc6, 0x12, 0x00, 0x64, 0xc6, 0x12, 0x00,
        0x65, 0x73, 0x65, 0x63, 0x72, 0x65, 0x74, 0x31, 0x32,
    ];
    /// V2PASS's shutdown advert (priority 0).
    const V2_PASS_PRIO0: [u8; 24] = [
        0x21, 0x33, 0x00, 0x02, 0x01, 0x01, 0xe3, 0x5c, 0xc6, 0x12, 0x00, 0x64, 0xc6, 0x12, 0x00,
        0x65, 0x73, 0x65, 0x63, 0x72, 0x65, 0x74, 0x31, 0x32,
    ];
    /// V2NONE: 198.18.0.1 -> 224.0.0.18; auth data zeroed.
    const V2_NONE: [u8; 20] = [
        0x21, 0x34, 0xc8, 0x01, 0x00, 0x02, 0x50, 0x4f, 0xc6, 0x12, 0x00, 0x66, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00,
    ];
    /// V2EMPTY: no VIPs, count 0, still 8 bytes of auth data.
    const V2_EMPTY: [u8; 16] = [
        0x21, 0x38, 0x64, 0x00, 0x00, 0x01, 0x7a, 0xc6, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00,
    ];
    /// V3MC: 198.18.0.1 -> 224.0.0.18.
    const V3_V4_MCAST: [u8; 16] = [
        0x31, 0x35, 0x96, 0x02, 0x00, 0x64, 0x04, 0xc9, 0xc6, 0x12, 0x00, 0x67, 0xc6, 0x12, 0x00,
        0x68,
    ];
    /// V3UC: 198.18.0.1 -> 198.18.0.2; pseudo-header with the unicast destination.
    const V3_V4_UNICAST: [u8; 12] = [
        0x31, 0x36, 0x78, 0x01, 0x00, 0x32, 0x03, 0x76, 0xc6, 0x12, 0x00, 0x69,
    ];
    /// V3OLD: 198.18.0.1 -> 198.18.0.2; pseudo-header with 224.0.0.18 (old_unicast_checksum).
    const V3_V4_UNICAST_OLD: [u8; 12] = [
        0x31, 0x39, 0x64, 0x01, 0x00, 0x64, 0xfd, 0x41, 0xc6, 0x12, 0x00, 0x6a,
    ];
    /// V3V6: fe80::1 -> ff02::12; checksum filled by the kernel (IPV6_CHECKSUM).
    const V3_V6: [u8; 40] = [
        0x31, 0x37, 0x6e, 0x02, 0x00, 0x64, 0x63, 0x30, 0xfe, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0xfe, 0x80, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x01,
    ];

    fn v4(s: &str) -> IpAddr {
        IpAddr::V4(s.parse().expect("IPv4 literal"))
    }

    fn v6(s: &str) -> IpAddr {
        IpAddr::V6(s.parse().expect("IPv6 literal"))
    }

    fn src4() -> IpAddr {
        v4("198.18.0.1")
    }

    fn peer4() -> IpAddr {
        v4("198.18.0.2")
    }

    fn mcast4() -> IpAddr {
        IpAddr::V4(VRRP_GROUP_V4)
    }

    fn advert(
        version: Version,
        vrid: u8,
        priority: u8,
        interval_cs: u16,
        addrs: &[IpAddr],
    ) -> Advert {
        Advert {
            version,
            vrid,
            priority,
            interval_cs,
            addresses: addrs.to_vec(),
            auth: Auth::None,
        }
    }

    fn v2_pass_advert(priority: u8) -> Advert {
        Advert {
            auth: Auth::Pass(*b"secret12"),
            ..advert(
                Version::V2,
                51,
                priority,
                100,
                &[v4("198.18.0.100"), v4("198.18.0.101")],
            )
        }
    }

    struct Golden {
        name: &'static str,
        bytes: &'static [u8],
        src: IpAddr,
        dst: IpAddr,
        advert: Advert,
    }

    fn goldens() -> Vec<Golden> {
        vec![
            Golden {
                name: "v2 pass",
                bytes: &V2_PASS,
                src: src4(),
                dst: mcast4(),
                advert: v2_pass_advert(100),
            },
            Golden {
                name: "v2 pass prio 0",
                bytes: &V2_PASS_PRIO0,
                src: src4(),
                dst: mcast4(),
                advert: v2_pass_advert(0),
            },
            Golden {
                name: "v2 none",
                bytes: &V2_NONE,
                src: src4(),
                dst: mcast4(),
                advert: advert(Version::V2, 52, 200, 200, &[v4("198.18.0.102")]),
            },
            Golden {
                name: "v2 no addresses",
                bytes: &V2_EMPTY,
                src: src4(),
                dst: mcast4(),
                advert: advert(Version::V2, 56, 100, 100, &[]),
            },
            Golden {
                name: "v3 ipv4 multicast",
                bytes: &V3_V4_MCAST,
                src: src4(),
                dst: mcast4(),
                advert: advert(
                    Version::V3,
                    53,
                    150,
                    100,
                    &[v4("198.18.0.103"), v4("198.18.0.104")],
                ),
            },
            Golden {
                name: "v3 ipv4 unicast",
                bytes: &V3_V4_UNICAST,
                src: src4(),
                dst: peer4(),
                advert: advert(Version::V3, 54, 120, 50, &[v4("198.18.0.105")]),
            },
            Golden {
                name: "v3 ipv6",
                bytes: &V3_V6,
                src: v6("fe80::1"),
                dst: IpAddr::V6(VRRP_GROUP_V6),
                advert: advert(
                    Version::V3,
                    55,
                    110,
                    100,
                    &[v6("fe80::100"), v6("fe80::101")],
                ),
            },
        ]
    }

    #[test]
    fn goldens_decode_to_the_expected_advert() {
        for g in goldens() {
            let decoded = decode_detailed(g.bytes, g.src, g.dst);
            assert_eq!(
                decoded,
                Ok(Decoded {
                    advert: g.advert.clone(),
                    legacy_unicast_checksum: false
                }),
                "{}",
                g.name
            );
        }
    }

    #[test]
    fn goldens_encode_to_the_captured_bytes() {
        for g in goldens() {
            assert_eq!(
                encode(&g.advert, g.src, g.dst).as_deref(),
                Ok(g.bytes),
                "{}",
                g.name
            );
        }
    }

    #[test]
    fn v3_unicast_pseudo_header_uses_the_real_destination() {
        // Same bytes checked against the group address: the checksum no longer matches.
        assert_eq!(
            decode(&V3_V4_UNICAST, src4(), mcast4()),
            Err(DropReason::BadChecksum)
        );
        let a = advert(Version::V3, 54, 120, 50, &[v4("198.18.0.105")]);
        assert_ne!(
            encode(&a, src4(), mcast4()).as_deref(),
            Ok(&V3_V4_UNICAST[..])
        );
    }

    #[test]
    fn legacy_unicast_checksum_is_accepted_and_reported() {
        let a = advert(Version::V3, 57, 100, 100, &[v4("198.18.0.106")]);
        assert_eq!(
            decode_detailed(&V3_V4_UNICAST_OLD, src4(), peer4()),
            Ok(Decoded {
                advert: a.clone(),
                legacy_unicast_checksum: true
            })
        );
        assert_eq!(decode(&V3_V4_UNICAST_OLD, src4(), peer4()), Ok(a.clone()));
        // Encoding for the group address reproduces keepalived's old_unicast_checksum bytes.
        assert_eq!(
            encode(&a, src4(), mcast4()).as_deref(),
            Ok(&V3_V4_UNICAST_OLD[..])
        );
        assert_ne!(
            encode(&a, src4(), peer4()).as_deref(),
            Ok(&V3_V4_UNICAST_OLD[..])
        );
    }

    #[test]
    fn legacy_fallback_only_for_v3_ipv4_unicast() {
        // A bad checksum on a multicast advert is not rescued by the fallback.
        let mut bytes = V3_V4_MCAST;
        bytes[7] ^= 0x01;
        assert_eq!(
            decode(&bytes, src4(), mcast4()),
            Err(DropReason::BadChecksum)
        );
    }

    /// Recomputes the checksum after a test mutates a packet, so the check under test is
    /// the one that fails.
    fn reseal(bytes: &mut [u8], version: Version, src: IpAddr, dst: IpAddr) {
        bytes[CHECKSUM_OFFSET] = 0;
        bytes[CHECKSUM_OFFSET + 1] = 0;
        let ends = Endpoints::new(src, dst).expect("same family");
        let sum = message_checksum(bytes, version, ends);
        bytes[CHECKSUM_OFFSET..CHECKSUM_OFFSET + 2].copy_from_slice(&sum.to_be_bytes());
    }

    #[test]
    fn reseal_reproduces_captured_checksums() {
        let mut bytes = V3_V4_MCAST;
        reseal(&mut bytes, Version::V3, src4(), mcast4());
        assert_eq!(bytes, V3_V4_MCAST);
    }

    #[test]
    fn rejects_too_short() {
        assert_eq!(decode(&[], src4(), mcast4()), Err(DropReason::TooShort));
        assert_eq!(
            decode(&V3_V4_MCAST[..7], src4(), mcast4()),
            Err(DropReason::TooShort)
        );
    }

    #[test]
    fn rejects_other_versions() {
        for version in [1u8, 4, 0, 15] {
            let mut bytes = V3_V4_MCAST;
            bytes[0] = version << 4 | TYPE_ADVERTISEMENT;
            reseal(&mut bytes, Version::V3, src4(), mcast4());
            assert_eq!(
                decode(&bytes, src4(), mcast4()),
                Err(DropReason::BadVersion),
                "version {version}"
            );
        }
    }

    #[test]
    fn a_wrong_version_is_bad_version_whatever_the_length() {
        // Issue 16: a v2 advert (with its auth data) under another version number was
        // counted as bad_length.
        for version in [0u8, 1, 3, 4, 15] {
            let mut bytes = V2_PASS;
            bytes[0] = version << 4 | TYPE_ADVERTISEMENT;
            assert_eq!(
                decode(&bytes, src4(), mcast4()),
                Err(DropReason::BadVersion),
                "version {version}"
            );
        }
        let mut bytes = V3_V4_MCAST.to_vec();
        bytes[0] = 0x21;
        assert_eq!(
            decode(&bytes, src4(), mcast4()),
            Err(DropReason::BadVersion)
        );
        // A real length error stays one.
        bytes[0] = 0x31;
        bytes.push(0);
        assert_eq!(decode(&bytes, src4(), mcast4()), Err(DropReason::BadLength));
    }

    #[test]
    fn rejects_v2_over_ipv6() {
        // keepalived's non-strict "v2 over IPv6" has no auth data; we do not take it.
        let mut bytes = V3_V6;
        bytes[0] = 0x21;
        assert_eq!(
            decode(&bytes, v6("fe80::1"), IpAddr::V6(VRRP_GROUP_V6)),
            Err(DropReason::BadVersion)
        );
    }

    #[test]
    fn rejects_other_types() {
        for kind in [0u8, 2, 3, 15] {
            let mut bytes = V2_PASS;
            bytes[0] = 0x20 | kind;
            reseal(&mut bytes, Version::V2, src4(), mcast4());
            assert_eq!(
                decode(&bytes, src4(), mcast4()),
                Err(DropReason::BadType),
                "type {kind}"
            );
        }
    }

    #[test]
    fn rejects_count_disagreeing_with_length() {
        for count in [0u8, 1, 3, 255] {
            let mut bytes = V2_PASS;
            bytes[3] = count;
            reseal(&mut bytes, Version::V2, src4(), mcast4());
            assert_eq!(
                decode(&bytes, src4(), mcast4()),
                Err(DropReason::BadLength),
                "count {count}"
            );
        }
        let mut long = V3_V4_MCAST.to_vec();
        long.extend_from_slice(&[0, 0]);
        assert_eq!(decode(&long, src4(), mcast4()), Err(DropReason::BadLength));
        // A v2 packet without its auth data is short by 8: it has v3's layout, so the
        // version is what is wrong (issue 16).
        assert_eq!(
            decode(&V2_PASS[..16], src4(), mcast4()),
            Err(DropReason::BadVersion)
        );
        assert_eq!(
            decode(&V2_PASS[..20], src4(), mcast4()),
            Err(DropReason::BadLength)
        );
        // v3 over IPv6 counts 16 bytes per address.
        assert_eq!(
            decode(&V3_V6[..24], v6("fe80::1"), IpAddr::V6(VRRP_GROUP_V6)),
            Err(DropReason::BadLength)
        );
    }

    #[test]
    fn rejects_bad_checksums() {
        let cases: [(&[u8], IpAddr, IpAddr); 4] = [
            (&V2_PASS, src4(), mcast4()),
            (&V3_V4_MCAST, src4(), mcast4()),
            (&V3_V4_UNICAST, src4(), peer4()),
            (&V3_V6, v6("fe80::1"), IpAddr::V6(VRRP_GROUP_V6)),
        ];
        for (golden, src, dst) in cases {
            for at in [CHECKSUM_OFFSET, CHECKSUM_OFFSET + 1, 2, golden.len() - 1] {
                let mut bytes = golden.to_vec();
                bytes[at] ^= 0x40;
                assert_eq!(
                    decode(&bytes, src, dst),
                    Err(DropReason::BadChecksum),
                    "byte {at} of {golden:02x?}"
                );
            }
        }
        // v3 sums the source too.
        assert_eq!(
            decode(&V3_V4_MCAST, v4("198.18.0.9"), mcast4()),
            Err(DropReason::BadChecksum)
        );
        assert_eq!(
            decode(&V3_V6, v6("fe80::2"), IpAddr::V6(VRRP_GROUP_V6)),
            Err(DropReason::BadChecksum)
        );
    }

    #[test]
    fn v2_checksum_ignores_the_ip_addresses() {
        assert_eq!(
            decode(&V2_PASS, v4("198.18.0.9"), peer4()),
            Ok(v2_pass_advert(100))
        );
    }

    #[test]
    fn decodes_v2_auth_ah_and_rejects_unknown_types() {
        let mut ah = V2_PASS;
        ah[4] = 2;
        reseal(&mut ah, Version::V2, src4(), mcast4());
        assert_eq!(decode(&ah, src4(), mcast4()).map(|a| a.auth), Ok(Auth::Ah));
        for auth_type in [3u8, 255] {
            let mut bytes = V2_PASS;
            bytes[4] = auth_type;
            reseal(&mut bytes, Version::V2, src4(), mcast4());
            assert_eq!(
                decode(&bytes, src4(), mcast4()),
                Err(DropReason::AuthMismatch),
                "auth type {auth_type}"
            );
        }
    }

    #[test]
    fn v2_auth_none_ignores_the_auth_data() {
        let mut bytes = V2_NONE;
        bytes[12..].copy_from_slice(b"garbage!");
        reseal(&mut bytes, Version::V2, src4(), mcast4());
        let decoded = decode(&bytes, src4(), mcast4()).expect("accepted");
        assert_eq!(decoded.auth, Auth::None);
        assert_eq!(decoded.addresses, vec![v4("198.18.0.102")]);
    }

    #[test]
    fn v3_reserved_bits_are_ignored() {
        let mut bytes = V3_V4_MCAST;
        bytes[4] |= 0xf0;
        reseal(&mut bytes, Version::V3, src4(), mcast4());
        assert_eq!(
            decode(&bytes, src4(), mcast4()).map(|a| a.interval_cs),
            Ok(100)
        );
    }

    #[test]
    fn rejects_mixed_family_endpoints() {
        assert_eq!(
            decode(&V3_V6, v6("fe80::1"), mcast4()),
            Err(DropReason::FamilyMismatch)
        );
    }

    fn encode_err(a: &Advert, src: IpAddr, dst: IpAddr) -> Option<EncodeError> {
        encode(a, src, dst).err()
    }

    #[test]
    fn encode_errors() {
        let (s4, m4) = (src4(), mcast4());
        let (s6, m6) = (v6("fe80::1"), IpAddr::V6(VRRP_GROUP_V6));
        let one4 = [v4("198.18.0.100")];
        let v2 = |cs| advert(Version::V2, 1, 100, cs, &one4);
        let v3 = |cs| advert(Version::V3, 1, 100, cs, &one4);

        let v2_on_v6 = advert(Version::V2, 1, 100, 100, &[v6("fe80::100")]);
        assert_eq!(encode_err(&v2_on_v6, s6, m6), Some(EncodeError::V2Ipv6));
        let mixed = advert(Version::V3, 1, 100, 100, &[one4[0], v6("fe80::100")]);
        assert_eq!(encode_err(&mixed, s4, m4), Some(EncodeError::MixedFamilies));
        let empty = advert(Version::V3, 1, 100, 100, &[]);
        assert_eq!(encode_err(&empty, s4, m4), Some(EncodeError::NoAddresses));

        let out_of_range = |cs| Some(EncodeError::IntervalOutOfRange(cs));
        assert_eq!(encode_err(&v3(4096), s4, m4), out_of_range(4096));
        assert_eq!(encode_err(&v3(0), s4, m4), out_of_range(0));
        assert_eq!(encode_err(&v2(25600), s4, m4), out_of_range(25600));
        assert_eq!(encode_err(&v2(0), s4, m4), out_of_range(0));
        assert_eq!(
            encode_err(&v2(150), s4, m4),
            Some(EncodeError::IntervalNotWholeSeconds(150))
        );

        assert_eq!(
            encode_err(&v3(100), s6, m6),
            Some(EncodeError::EndpointFamily(s6))
        );
        assert_eq!(
            encode_err(&v3(100), s4, m6),
            Some(EncodeError::EndpointFamily(m6))
        );
        assert_eq!(
            encode_err(&v2(100), s6, m6),
            Some(EncodeError::EndpointFamily(s6))
        );

        let v3_auth = Advert {
            auth: Auth::Pass(*b"secret12"),
            ..v3(100)
        };
        assert_eq!(encode_err(&v3_auth, s4, m4), Some(EncodeError::V3Auth));
    }

    #[test]
    fn encode_limits_the_address_count_to_255() {
        let addrs: Vec<IpAddr> = (0..=255u8)
            .map(|i| IpAddr::V4(Ipv4Addr::new(198, 18, 0, i)))
            .collect();
        let too_many = advert(Version::V3, 1, 100, 100, &addrs);
        assert_eq!(
            encode(&too_many, src4(), mcast4()),
            Err(EncodeError::TooManyAddresses(256))
        );
        let max = advert(Version::V3, 1, 100, MAX_V3_INTERVAL_CS, &addrs[..255]);
        let bytes = encode(&max, src4(), mcast4()).expect("255 addresses fit");
        assert_eq!(bytes.len(), HEADER_LEN + 255 * 4);
        assert_eq!(bytes[3], 255);
        assert_eq!(decode(&bytes, src4(), mcast4()), Ok(max));
    }

    #[test]
    fn encode_decode_round_trip_at_the_interval_limits() {
        let one4 = [v4("198.18.0.100")];
        for a in [
            advert(Version::V2, 7, 255, MAX_V2_INTERVAL_CS, &one4),
            advert(Version::V2, 7, 1, 100, &one4),
            advert(Version::V3, 255, 0, 1, &one4),
            advert(Version::V3, 1, 254, MAX_V3_INTERVAL_CS, &[v6("fe80::100")]),
        ] {
            let (src, dst) = match a.addresses[0] {
                IpAddr::V4(_) => (src4(), peer4()),
                IpAddr::V6(_) => (v6("fe80::1"), v6("fe80::2")),
            };
            let bytes = encode(&a, src, dst).expect("encodable");
            assert_eq!(decode(&bytes, src, dst), Ok(a));
        }
    }

    fn expect_v2_pass() -> Expect {
        Expect {
            version: Version::V2,
            vrid: 51,
            auth: Auth::Pass(auth_field("secret12345").0),
            interval_cs: 100,
            multicast: true,
            addresses: vec![v4("198.18.0.100"), v4("198.18.0.101")],
        }
    }

    fn expect_v3_unicast() -> Expect {
        Expect {
            version: Version::V3,
            vrid: 54,
            auth: Auth::None,
            interval_cs: 100,
            multicast: false,
            addresses: vec![v4("198.18.0.105")],
        }
    }

    const OK: Result<Validated, DropReason> = Ok(Validated {
        address_mismatch: false,
    });

    #[test]
    fn validate_accepts_matching_adverts() {
        assert_eq!(validate(&v2_pass_advert(100), 255, &expect_v2_pass()), OK);
        let v3 = decode(&V3_V4_UNICAST, src4(), peer4()).expect("golden");
        assert_eq!(validate(&v3, 255, &expect_v3_unicast()), OK);
    }

    #[test]
    fn validate_ttl_only_for_multicast() {
        assert_eq!(
            validate(&v2_pass_advert(100), 254, &expect_v2_pass()),
            Err(DropReason::BadTtl)
        );
        let v3 = decode(&V3_V4_UNICAST, src4(), peer4()).expect("golden");
        assert_eq!(validate(&v3, 254, &expect_v3_unicast()), OK);
        assert_eq!(validate(&v3, 1, &expect_v3_unicast()), OK);
    }

    #[test]
    fn validate_wrong_vrid() {
        let expect = Expect {
            vrid: 52,
            ..expect_v2_pass()
        };
        assert_eq!(
            validate(&v2_pass_advert(100), 255, &expect),
            Err(DropReason::WrongVrid)
        );
    }

    #[test]
    fn validate_wrong_version() {
        let expect = Expect {
            version: Version::V3,
            auth: Auth::None,
            ..expect_v2_pass()
        };
        assert_eq!(
            validate(&v2_pass_advert(100), 255, &expect),
            Err(DropReason::BadVersion)
        );
    }

    #[test]
    fn validate_wrong_password() {
        let expect = Expect {
            auth: Auth::Pass(auth_field("secret13").0),
            ..expect_v2_pass()
        };
        assert_eq!(
            validate(&v2_pass_advert(100), 255, &expect),
            Err(DropReason::AuthMismatch)
        );
    }

    #[test]
    fn validate_auth_type_mismatch() {
        let no_auth = Expect {
            auth: Auth::None,
            ..expect_v2_pass()
        };
        assert_eq!(
            validate(&v2_pass_advert(100), 255, &no_auth),
            Err(DropReason::AuthMismatch)
        );
        let unauthenticated = Advert {
            auth: Auth::None,
            ..v2_pass_advert(100)
        };
        assert_eq!(
            validate(&unauthenticated, 255, &expect_v2_pass()),
            Err(DropReason::AuthMismatch)
        );
    }

    #[test]
    fn validate_v2_interval_must_match() {
        let expect = Expect {
            interval_cs: 200,
            ..expect_v2_pass()
        };
        assert_eq!(
            validate(&v2_pass_advert(100), 255, &expect),
            Err(DropReason::IntervalMismatch)
        );
    }

    #[test]
    fn validate_v3_interval_may_differ() {
        // V3UC advertises 50 cs; we run 100 cs: the backup adopts the master's.
        let v3 = decode(&V3_V4_UNICAST, src4(), peer4()).expect("golden");
        assert_eq!(v3.interval_cs, 50);
        assert_eq!(validate(&v3, 255, &expect_v3_unicast()), OK);
    }

    #[test]
    fn validate_flags_address_mismatch_without_dropping() {
        let flagged = Ok(Validated {
            address_mismatch: true,
        });
        let mut missing = expect_v2_pass();
        missing.addresses[1] = v4("198.18.0.109");
        assert_eq!(validate(&v2_pass_advert(100), 255, &missing), flagged);
        let mut fewer = expect_v2_pass();
        fewer.addresses.pop();
        assert_eq!(validate(&v2_pass_advert(100), 255, &fewer), flagged);
        // Order does not matter.
        let mut reordered = expect_v2_pass();
        reordered.addresses.reverse();
        assert_eq!(validate(&v2_pass_advert(100), 255, &reordered), OK);
    }

    #[test]
    fn validate_family_mismatch() {
        let v6_advert = decode(&V3_V6, v6("fe80::1"), IpAddr::V6(VRRP_GROUP_V6)).expect("golden");
        let expect = Expect {
            vrid: 55,
            multicast: true,
            ..expect_v3_unicast()
        };
        assert_eq!(
            validate(&v6_advert, 255, &expect),
            Err(DropReason::FamilyMismatch)
        );
        // An instance without addresses is IPv4, as in keepalived.
        let empty = Expect {
            addresses: vec![],
            ..expect
        };
        assert_eq!(
            validate(&v6_advert, 255, &empty),
            Err(DropReason::FamilyMismatch)
        );
    }

    #[test]
    fn auth_field_pads_and_truncates() {
        assert_eq!(auth_field("abc"), (*b"abc\0\0\0\0\0", false));
        assert_eq!(auth_field("secret12"), (*b"secret12", false));
        assert_eq!(auth_field("secret12345"), (*b"secret12", true));
        assert_eq!(auth_field(""), ([0; 8], false));
        // Truncation is by bytes, as keepalived's memcpy.
        assert_eq!(auth_field("pässwörd"), (*b"p\xc3\xa4ssw\xc3\xb6", true));
    }

    #[test]
    fn drop_reason_labels_are_unique_snake_case() {
        let labels: Vec<&str> = DropReason::ALL.iter().map(|r| r.label()).collect();
        for (i, label) in labels.iter().enumerate() {
            assert!(
                label.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{label}"
            );
            assert!(!labels[..i].contains(label), "duplicate {label}");
        }
        assert_eq!(DropReason::BadChecksum.label(), "bad_checksum");
        assert_eq!(DropReason::NotAPeer.label(), "not_a_peer");
    }
}
