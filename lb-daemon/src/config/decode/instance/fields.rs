//! Readers for the instance keys with a structure of their own.

use crate::config::address::{AddressError, VirtualAddress};
use crate::config::reader::{Decoder, Field};
use crate::config::schema::{AuthType, Authentication, AUTH_PASS_MAX_LEN};

/// `None`: known to keepalived but refused here.
const AUTH_TYPES: &[(&str, AuthType)] = &[("PASS", AuthType::Pass), ("AH", AuthType::Ah)];

/// One `virtual_ipaddress` string, in keepalived's syntax.
pub(super) fn virtual_address(d: &mut Decoder<'_>, f: &Field<'_, '_>) -> Option<VirtualAddress> {
    let text = f.str(d)?;
    let error = match text.parse::<VirtualAddress>() {
        Ok(vip) => return Some(vip),
        Err(e) => e,
    };
    let hint = match error {
        AddressError::UnsupportedOption(_) => {
            "only `dev IFACE` and `label LABEL` may follow the address"
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
