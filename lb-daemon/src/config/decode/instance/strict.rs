//! keepalived's `vrrp_strict` / `strict_mode` (vrrp_complete_instance): what strict mode
//! refuses (no VIP, unicast peers) is an error; what keepalived corrects with a complaint
//! (authentication, a MASTER state without owner priority, `preempt_delay`) is a
//! warning, and corrected the same way. Accept mode (`accept`) defaults as keepalived's
//! vrrp_complete_instance sets it.

use std::time::Duration;

use super::{At, Fields};
use crate::config::reader::Decoder;
use crate::config::schema::{Authentication, InitialState, VrrpVersion, PRIORITY_OWNER};

/// Whether the instance runs in strict mode: its own `strict_mode`, else `vrrp_strict`.
pub(super) fn enabled(f: &Fields<'_, '_>, global_strict: bool) -> bool {
    f.strict_mode.as_ref().map_or(global_strict, |s| s.value)
}

/// The refusals: strict mode needs a VIP and multicast.
pub(super) fn check(d: &mut Decoder<'_>, f: &Fields<'_, '_>) {
    if f.vips.is_empty() {
        let at = f.vips_span.clone().unwrap_or(f.span.clone());
        d.error(
            &f.path.key("virtual_ipaddress"),
            at,
            "strict mode (vrrp_strict) needs at least one virtual_ipaddress",
        )
        .hint("add a VIP, or turn strict mode off (strict_mode = false)");
    }
    if let Some(peer) = f.unicast_peers.first() {
        peer.field
            .error(d, "unicast peers are not allowed in strict mode (vrrp_strict)")
            .hint("use multicast (remove unicast_peers), or turn strict mode off (strict_mode = false)");
    }
}

/// Strict mode ignores authentication, with a warning (keepalived's correction);
/// returns what is left to decode.
pub(super) fn authentication<'a, 'i>(
    d: &mut Decoder<'_>,
    written: Option<At<'a, 'i, Authentication>>,
) -> Option<At<'a, 'i, Authentication>> {
    if let Some(w) = &written {
        w.field
            .warning(
                d,
                "ignored: strict mode does not allow authentication (keepalived ignores it too)",
            )
            .hint("remove authentication, or turn strict mode off");
    }
    None
}

/// The state derived from the priority, with a warning when the written one differs.
pub(super) fn state(
    d: &mut Decoder<'_>,
    written: Option<&At<'_, '_, InitialState>>,
    state: InitialState,
    priority: u8,
) -> InitialState {
    let owner = priority == PRIORITY_OWNER;
    let derived = if owner {
        InitialState::Master
    } else {
        InitialState::Backup
    };
    match written {
        Some(At { value, field }) if *value != derived => {
            let word = |s: InitialState| {
                if s == InitialState::Master {
                    "MASTER"
                } else {
                    "BACKUP"
                }
            };
            field
                .warning(
                    d,
                    format!(
                        "strict mode: state {} must match being the address owner (priority 255); {} is used (as keepalived)",
                        word(*value),
                        word(derived)
                    ),
                )
                .hint("write the state that matches the priority");
            derived
        }
        _ => state,
    }
}

/// `preempt_delay` reset, with a warning.
pub(super) fn preempt_delay(
    d: &mut Decoder<'_>,
    written: Option<&At<'_, '_, Duration>>,
    delay: Duration,
) -> Duration {
    match written {
        Some(w) if !delay.is_zero() => {
            w.field
                .warning(
                    d,
                    "ignored: preempt_delay is incompatible with strict mode (keepalived resets it too)",
                )
                .hint("remove preempt_delay, or turn strict mode off");
            Duration::ZERO
        }
        _ => delay,
    }
}

/// keepalived's accept mode: as written, else on for the address owner or outside strict
/// mode. Strict VRRPv2 turns a written `accept = true` off with a warning (RFC 3768 has
/// no accept mode), as keepalived does.
pub(super) fn accept(
    d: &mut Decoder<'_>,
    written: Option<&At<'_, '_, bool>>,
    strict: bool,
    version: VrrpVersion,
    priority: u8,
) -> bool {
    let owner = priority == PRIORITY_OWNER;
    match written {
        Some(w) if w.value && strict && !owner && version == VrrpVersion::V2 => {
            w.field
                .warning(
                    d,
                    "ignored: accept mode with VRRP version 2 does not comply with RFC 3768 in strict mode; accept = false is used (as keepalived)",
                )
                .hint("use version = 3, or turn strict mode off (strict_mode = false)");
            false
        }
        Some(w) => w.value,
        None => owner || !strict,
    }
}
