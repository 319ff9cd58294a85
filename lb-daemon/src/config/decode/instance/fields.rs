//! Readers for the instance keys with a structure of their own.

use crate::config::address::{AddressError, VirtualAddress};
use crate::config::reader::{Decoder, Field};
use crate::config::route::{IpRoute, IpRule};
use crate::config::schema::{AuthType, Authentication, AUTH_PASS_MAX_LEN};

/// `None`: known to keepalived but refused here.
const AUTH_TYPES: &[(&str, AuthType)] = &[("PASS", AuthType::Pass), ("AH", AuthType::Ah)];

/// One `virtual_ipaddress` string, in keepalived's syntax.
pub(crate) fn virtual_address(d: &mut Decoder<'_>, f: &Field<'_, '_>) -> Option<VirtualAddress> {
    let a = any_address(d, f)?;
    not_static(d, f, &a.track_group).then_some(a)
}

/// One `[static] ipaddress` string: [`virtual_address`] that may name a track group.
pub(crate) fn static_address(d: &mut Decoder<'_>, f: &Field<'_, '_>) -> Option<VirtualAddress> {
    any_address(d, f)
}

/// `track_group` on an instance's line: keepalived reads it on static lines only.
fn not_static(d: &mut Decoder<'_>, f: &Field<'_, '_>, group: &Option<String>) -> bool {
    if group.is_none() {
        return true;
    }
    f.error(
        d,
        "track_group is for [static] addresses, routes and rules only (as in keepalived)",
    )
    .hint("move the line to [static], or remove `track_group NAME`");
    false
}

fn any_address(d: &mut Decoder<'_>, f: &Field<'_, '_>) -> Option<VirtualAddress> {
    let text = f.str(d)?;
    let error = match text.parse::<VirtualAddress>() {
        Ok(vip) => return Some(vip),
        Err(e) => e,
    };
    let hint = match error {
        AddressError::UnsupportedOption(_) => {
            "only `dev IFACE`, `label LABEL` and (static addresses) `track_group NAME` may follow the address"
        }
        AddressError::BadInterface(_) => {
            "interface names have 1 to 15 characters, without `/`, `:` or spaces"
        }
        AddressError::NotUnicast { .. } => {
            "a virtual address is one unicast address of the service"
        }
        _ => "write \"ADDR[/LEN][ dev IFACE][ label LABEL]\", e.g. \"198.18.0.100/24 dev eth0\"",
    };
    f.error(d, error.to_string()).hint(hint);
    None
}

/// `authentication = { auth_type = "PASS" | "AH", auth_pass = "…" }`.
pub(super) fn authentication(d: &mut Decoder<'_>, f: &Field<'_, '_>) -> Option<Authentication> {
    let mut t = f.table(d)?;
    let auth_type = t
        .required(d, "auth_type")
        .and_then(|f| f.keyword(d, AUTH_TYPES));
    let auth_pass = t.required(d, "auth_pass").and_then(|f| {
        let pass = f.string(d)?;
        if pass.len() <= AUTH_PASS_MAX_LEN {
            return Some(pass);
        }
        // The VRRPv2 field holds 8 bytes; keepalived silently uses the first 8.
        f.warning(
            d,
            format!("only the first {AUTH_PASS_MAX_LEN} characters are used, as in keepalived"),
        );
        let cut = (0..=AUTH_PASS_MAX_LEN)
            .rev()
            .find(|&i| pass.is_char_boundary(i))
            .unwrap_or(0);
        Some(pass[..cut].to_owned())
    });
    t.finish(d);
    Some(Authentication {
        auth_type: auth_type?,
        auth_pass: auth_pass?,
    })
}

/// One `virtual_routes` string, in keepalived's (`ip route`) syntax.
pub(crate) fn route(d: &mut Decoder<'_>, f: &Field<'_, '_>) -> Option<IpRoute> {
    let r = static_route(d, f)?;
    not_static(d, f, &r.track_group).then_some(r)
}

/// One `virtual_rules` string, in keepalived's (`ip rule`) syntax.
pub(crate) fn rule(d: &mut Decoder<'_>, f: &Field<'_, '_>) -> Option<IpRule> {
    let r = static_rule(d, f)?;
    not_static(d, f, &r.track_group).then_some(r)
}

/// One `[static] routes` string (may name a track group).
pub(crate) fn static_route(d: &mut Decoder<'_>, f: &Field<'_, '_>) -> Option<IpRoute> {
    let text = f.str(d)?;
    match text.parse::<IpRoute>() {
        Ok(r) => Some(r),
        Err(e) => {
            f.error(d, format!("route `{text}`: {e}")).hint(
                "write \"[TYPE] DEST|default [via ADDR] [dev IF] [src ADDR] [table N] [metric N] [scope S] [protocol P] [onlink] [mtu N] [no_track]\", e.g. \"10.1.0.0/16 via 192.168.1.1 dev eth0\"",
            );
            None
        }
    }
}

/// One `[static] rules` string (may name a track group).
pub(crate) fn static_rule(d: &mut Decoder<'_>, f: &Field<'_, '_>) -> Option<IpRule> {
    let text = f.str(d)?;
    match text.parse::<IpRule>() {
        Ok(r) => {
            if r.priority.is_none() {
                f.warning(
                    d,
                    "rule without a preference: it gets one counting down from 16384, as in keepalived; this is probably not what you want",
                )
                .hint("add `preference N`");
            }
            Some(r)
        }
        Err(e) => {
            f.error(d, format!("rule `{text}`: {e}")).hint(
                "write \"[from PREFIX] [to PREFIX] [fwmark N[/M]] [iif IF] [oif IF] [preference N] ACTION\" with ACTION `table N`, `goto N`, `nop`, `blackhole`, `unreachable` or `prohibit`, e.g. \"from 10.0.0.0/8 table 100 preference 100\"",
            );
            None
        }
    }
}
