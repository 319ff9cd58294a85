//! `[static]`: keepalived's top-level `static_ipaddress`, `static_routes` and
//! `static_rules` blocks (`ipaddress`, `routes`, `rules` here), in keepalived's syntax.

use super::instance::fields;
use crate::config::reader::{Decoder, Field, Table};
use crate::config::schema::StaticNetwork;

const RENAMES: &[(&str, &str)] = &[
    (
        "static_ipaddress",
        "in [static], keepalived's static_ipaddress is `ipaddress`",
    ),
    (
        "static_routes",
        "in [static], keepalived's static_routes is `routes`",
    ),
    (
        "static_rules",
        "in [static], keepalived's static_rules is `rules`",
    ),
];

pub(super) fn decode(d: &mut Decoder<'_>, t: Table<'_, '_>) -> StaticNetwork {
    let mut t = t.with_renames(RENAMES);
    let mut each = |d: &mut Decoder<'_>, key: &'static str| -> Vec<Field<'_, '_>> {
        t.get(d, key).and_then(|f| f.array(d)).unwrap_or_default()
    };
    let ipaddress = each(d, "ipaddress")
        .iter()
        .filter_map(|f| {
            let a = fields::virtual_address(d, f)?;
            if a.dev.is_none() {
                // No instance to take the interface from (keepalived needs `dev` too).
                f.error(d, format!("static address {} has no interface", a.address))
                    .hint("add `dev IFACE`, e.g. \"192.0.2.5/24 dev eth0\"");
                return None;
            }
            Some(a)
        })
        .collect();
    let routes = each(d, "routes")
        .iter()
        .filter_map(|f| fields::route(d, f))
        .collect();
    let rules = each(d, "rules")
        .iter()
        .filter_map(|f| fields::rule(d, f))
        .collect();
    t.finish(d);
    StaticNetwork {
        ipaddress,
        routes,
        rules,
    }
}
