//! `use_vmac = true` or `use_vmac = "NAME"` (keepalived's `use_vmac [NAME]`), and
//! `vmac_xmit_base`.

use super::At;
use crate::config::address::valid_ifname;
use crate::config::reader::{Decoder, Field};

/// keepalived's default VMAC name prefix (`vmac_prefix`).
const PREFIX: &str = "vrrp";

/// `true` → `Some(None)` (the default name), a name → `Some(Some(name))`, `false` → `None`.
pub(super) fn name(d: &mut Decoder<'_>, f: &Field<'_, '_>) -> Option<Option<String>> {
    if let Some(b) = f.peek_bool() {
        return b.then_some(None);
    }
    let name = f.str(d)?;
    if !valid_ifname(name) {
        f.error(d, format!("`{name}` is not a valid interface name"))
            .hint("at most 15 characters, no `/` or spaces, e.g. \"vrrp.51\"; or use_vmac = true");
        return None;
    }
    Some(Some(name.to_string()))
}

/// The VMAC interface's name, or `None` when not used.
pub(super) fn resolve(
    written: Option<&At<'_, '_, Option<String>>>,
    vrid: Option<u8>,
) -> Option<String> {
    let written = written?;
    match &written.value {
        Some(name) => Some(name.clone()),
        // keepalived: vmac_prefix.VRID ("vrrp.51").
        None => vrid.map(|v| format!("{PREFIX}.{v}")),
    }
}
