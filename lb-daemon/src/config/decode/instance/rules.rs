//! The rules between an instance's fields, as keepalived applies them when it completes
//! an instance: what is impossible is an error, what keepalived quietly fixes is fixed
//! the same way with a warning.

use std::collections::HashSet;
use std::net::IpAddr;
use std::time::Duration;

use super::{At, Fields};
use crate::config::address::{AddressFamily, VirtualAddress};
use crate::config::reader::{Decoder, Field};
use crate::config::schema::{
    AuthType, Authentication, Global, InitialState, VrrpVersion, DEFAULT_PRIORITY, PRIORITY_OWNER,
};
use crate::config::source::{KeyPath, Span};

const V2_ADVERT_MAX: Duration = Duration::from_secs(255);
const V3_ADVERT_STEP: Duration = Duration::from_millis(10);
/// The 12-bit centisecond field of a VRRPv3 advert.
const V3_ADVERT_MAX: Duration = Duration::from_millis(40_950);

/// The family of the first address (VIPs, else unicast ones), IPv4 when there is none.
pub(super) fn family(f: &Fields<'_, '_>) -> AddressFamily {
    f.vips
        .first()
        .map(|v| v.value.family())
        .or(f
            .unicast_src_ip
            .as_ref()
            .map(|a| AddressFamily::of(&a.value)))
        .or(f.unicast_peers.first().map(|a| AddressFamily::of(&a.value)))
        .unwrap_or(AddressFamily::V4)
}

/// One family per instance (keepalived's rule), no address twice.
pub(super) fn check_vips(
    d: &mut Decoder<'_>,
    vips: &[At<'_, '_, VirtualAddress>],
    family: AddressFamily,
) {
    let mut seen = HashSet::new();
    for vip in vips {
        let vip_family = vip.value.family();
        if vip_family != family {
            vip.field
                .error(d, format!("{vip_family} address in an {family} instance"))
                .hint("keepalived allows one family per instance: put these addresses in an instance of their own");
        } else if !seen.insert(vip.value.address) {
            vip.field
                .error(d, format!("{} is listed twice", vip.value.address));
        }
    }
}

/// `virtual_ipaddress_excluded`: any family (that is what it is for: a dual-stack
/// instance), but no address twice, nor one that is also a VRRP address.
pub(super) fn check_excluded(
    d: &mut Decoder<'_>,
    vips: &[At<'_, '_, VirtualAddress>],
    excluded: &[At<'_, '_, VirtualAddress>],
) {
    let mut seen: HashSet<IpAddr> = vips.iter().map(|v| v.value.address).collect();
    for vip in excluded {
        if !seen.insert(vip.value.address) {
            vip.field
                .error(d, format!("{} is listed twice", vip.value.address))
                .hint("an address is either advertised (virtual_ipaddress) or excluded, once");
        }
    }
}

/// The written version, else 3 for IPv6 (as keepalived), else the global default.
pub(super) fn version(
    d: &mut Decoder<'_>,
    written: Option<&At<'_, '_, VrrpVersion>>,
    family: AddressFamily,
    global: &Global,
) -> VrrpVersion {
    match (written, family) {
        (Some(v), AddressFamily::V6) if v.value == VrrpVersion::V2 => {
            v.field
                .error(
                    d,
                    "version 2 is IPv4 only, but the virtual addresses are IPv6",
                )
                .hint("set version = 3 (RFC 5798), or leave version out");
            VrrpVersion::V2
        }
        (Some(v), _) => v.value,
        (None, AddressFamily::V6) => VrrpVersion::V3,
        (None, AddressFamily::V4) => global.vrrp_version,
    }
}

/// v2: whole seconds, 1–255 s; v3: 10 ms steps, 10 ms–40.95 s (the packet fields' units).
pub(super) fn check_advert_int(
    d: &mut Decoder<'_>,
    f: &Field<'_, '_>,
    advert: Duration,
    version: VrrpVersion,
) {
    match version {
        VrrpVersion::V2 => {
            if advert.subsec_nanos() != 0 {
                f.error(
                    d,
                    format!("VRRPv2 advertises in whole seconds, got {advert:?}"),
                )
                .hint("use a whole number of seconds, or version = 3 for sub-second adverts");
            } else if advert.is_zero() || advert > V2_ADVERT_MAX {
                f.error(
                    d,
                    format!("must be between 1s and 255s for VRRPv2, got {advert:?}"),
                );
            }
        }
        VrrpVersion::V3 => {
            if !advert.as_nanos().is_multiple_of(V3_ADVERT_STEP.as_nanos()) {
                f.error(
                    d,
                    format!("VRRPv3 advertises in steps of 10ms, got {advert:?}"),
                )
                .hint("round to a multiple of 10ms");
            } else if advert.is_zero() || advert > V3_ADVERT_MAX {
                f.error(
                    d,
                    format!("must be between 10ms and 40.95s for VRRPv3, got {advert:?}"),
                );
            }
        }
    }
}

/// keepalived: no VIP is an error in v3 and only odd in v2.
pub(super) fn no_vips(d: &mut Decoder<'_>, path: &KeyPath, at: Span, version: VrrpVersion) {
    if version == VrrpVersion::V3 {
        d.error(path, at, "VRRPv3 needs at least one virtual address")
            .hint("add virtual_ipaddress = [\"ADDR/LEN\"]");
    } else {
        d.warning(path, at, "no virtual address: this instance moves nothing");
    }
}

pub(super) fn check_unicast(
    d: &mut Decoder<'_>,
    src: Option<&At<'_, '_, IpAddr>>,
    peers: &[At<'_, '_, IpAddr>],
    family: AddressFamily,
) {
    let wrong_family = |addr: &IpAddr| {
        let f = AddressFamily::of(addr);
        (f != family).then(|| format!("{f} address in an {family} instance"))
    };
    if let Some(src) = src {
        if let Some(message) = wrong_family(&src.value) {
            src.field.error(d, message);
        }
        if peers.is_empty() {
            // keepalived uses unicast_src_ip as the multicast source too.
            src.field
                .warning(
                    d,
                    "without unicast_peers, adverts are multicast and this is only their source address",
                )
                .hint("add unicast_peers for unicast VRRP");
        }
    }
    let mut seen = HashSet::new();
    for peer in peers {
        if let Some(message) = wrong_family(&peer.value) {
            peer.field.error(d, message);
        } else if src.is_some_and(|s| s.value == peer.value) {
            peer.field.error(
                d,
                format!("{} is this router's own unicast_src_ip", peer.value),
            );
        } else if !seen.insert(peer.value) {
            peer.field
                .error(d, format!("{} is listed twice", peer.value));
        }
    }
}

pub(super) fn check_mcast_group(
    d: &mut Decoder<'_>,
    group: &At<'_, '_, IpAddr>,
    family: AddressFamily,
    unicast: bool,
) {
    let group_family = AddressFamily::of(&group.value);
    if !group.value.is_multicast() {
        group
            .field
            .error(d, format!("{} is not a multicast address", group.value));
    } else if group_family != family {
        group
            .field
            .error(d, format!("{group_family} group for an {family} instance"));
    } else if unicast {
        group
            .field
            .warning(d, "ignored: adverts go to unicast_peers");
    }
}

/// keepalived: a missing state follows the priority (255 is MASTER), a missing priority
/// the state (MASTER is 255, the address owner; otherwise 100).
pub(super) fn state_and_priority(d: &mut Decoder<'_>, f: &Fields<'_, '_>) -> (InitialState, u8) {
    let written = f.priority.as_ref().map(|p| p.value);
    let state = f.state.as_ref().map_or(
        if written == Some(PRIORITY_OWNER) {
            InitialState::Master
        } else {
            InitialState::Backup
        },
        |s| s.value,
    );
    let priority = match (written, f.priority_written) {
        (Some(p), _) => p,
        // Written but invalid (already reported): derive nothing from it.
        (None, true) => DEFAULT_PRIORITY,
        (None, false) if state == InitialState::Master => PRIORITY_OWNER,
        (None, false) => DEFAULT_PRIORITY,
    };
    if let (false, Some(s)) = (f.priority_written, &f.state) {
        if s.value == InitialState::Master {
            s.field
                .warning(
                    d,
                    "without `priority`, MASTER means priority 255 (the address owner), as in keepalived",
                )
                .hint("set priority (e.g. 150) unless this router owns the virtual addresses");
        }
    }
    (state, priority)
}

/// keepalived's preemption rules: what cannot work is cleared, with a warning.
pub(super) fn preemption(
    d: &mut Decoder<'_>,
    nopreempt: Option<&At<'_, '_, bool>>,
    preempt_delay: Option<&At<'_, '_, Duration>>,
    state: InitialState,
    priority: u8,
) -> (bool, Duration) {
    let mut nopreempt_value = nopreempt.is_some_and(|n| n.value);
    if let Some(n) = nopreempt.filter(|n| n.value) {
        if priority == PRIORITY_OWNER {
            n.field.warning(
                d,
                "ignored: the address owner (priority 255) always preempts",
            );
            nopreempt_value = false;
        } else if state == InitialState::Master {
            n.field
                .warning(d, "ignored with state = \"MASTER\"")
                .hint("nopreempt works only when every router starts as BACKUP");
            nopreempt_value = false;
        }
    }
    let mut delay = preempt_delay.map_or(Duration::ZERO, |p| p.value);
    if let Some(p) = preempt_delay.filter(|p| !p.value.is_zero()) {
        if state == InitialState::Master {
            p.field.warning(d, "ignored with state = \"MASTER\"");
            delay = Duration::ZERO;
        } else if nopreempt_value {
            p.field.warning(d, "ignored: nopreempt is set");
            delay = Duration::ZERO;
        }
    }
    (nopreempt_value, delay)
}

/// keepalived's authentication rules (`vrrp_complete_instance`): VRRPv3 has none, AH is
/// IPv4 only (each ignored, with a warning, as keepalived; an empty password is an error);
/// and an AH instance that is not the address owner starts as BACKUP, to learn the
/// master's sequence number before it may take over (the returned state).
pub(super) fn authentication(
    d: &mut Decoder<'_>,
    written: Option<At<'_, '_, Authentication>>,
    version: VrrpVersion,
    family: AddressFamily,
    state: InitialState,
    priority: u8,
) -> (Option<Authentication>, InitialState) {
    let Some(auth) = written else {
        return (None, state);
    };
    if version == VrrpVersion::V3 {
        auth.field
            .warning(
                d,
                "ignored: VRRPv3 has no authentication (keepalived ignores it too)",
            )
            .hint("remove it, or set version = 2");
        return (None, state);
    }
    if auth.value.auth_type != AuthType::Ah {
        return (Some(auth.value), state);
    }
    if family == AddressFamily::V6 {
        auth.field
            .warning(
                d,
                "ignored: IPsec AH authentication is IPv4 only (keepalived ignores it too)",
            )
            .hint("remove authentication from this IPv6 instance");
        return (None, state);
    }
    if state == InitialState::Master && priority != PRIORITY_OWNER {
        auth.field
            .warning(
                d,
                "with auth_type AH, state MASTER becomes BACKUP (keepalived: an AH router learns the master's sequence number before it takes over)",
            )
            .hint("write state = \"BACKUP\", or priority = 255 for the address owner");
        return (Some(auth.value), InitialState::Backup);
    }
    (Some(auth.value), state)
}
