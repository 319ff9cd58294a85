//! `[static]`: keepalived's top-level `static_ipaddress`, `static_routes` and
//! `static_rules` blocks (`ipaddress`, `routes`, `rules` here), in keepalived's syntax.
//! A line's `track_group NAME` must name a `[[track_group]]`.

use super::instance::fields;
use crate::config::reader::{Decoder, Field, Table};
use crate::config::schema::StaticNetwork;
use crate::config::suggest;

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

/// `groups`: the names of the `[[track_group]]`s.
pub(super) fn decode(d: &mut Decoder<'_>, t: Table<'_, '_>, groups: &[&str]) -> StaticNetwork {
    let mut t = t.with_renames(RENAMES);
    let mut each = |d: &mut Decoder<'_>, key: &'static str| -> Vec<Field<'_, '_>> {
        t.get(d, key).and_then(|f| f.array(d)).unwrap_or_default()
    };
    let ipaddress = each(d, "ipaddress")
        .iter()
        .filter_map(|f| {
            let a = fields::static_address(d, f)?;
            if a.dev.is_none() {
                // No instance to take the interface from (keepalived needs `dev` too).
                f.error(d, format!("static address {} has no interface", a.address))
                    .hint("add `dev IFACE`, e.g. \"192.0.2.5/24 dev eth0\"");
                return None;
            }
            tracked(d, f, &a.track_group, false, a.dev.as_deref(), "dev", groups).then_some(a)
        })
        .collect();
    let routes = each(d, "routes")
        .iter()
        .filter_map(|f| {
            let r = fields::static_route(d, f)?;
            tracked(
                d,
                f,
                &r.track_group,
                r.no_track,
                r.dev.as_deref(),
                "dev",
                groups,
            )
            .then_some(r)
        })
        .collect();
    let rules = each(d, "rules")
        .iter()
        .filter_map(|f| {
            let r = fields::static_rule(d, f)?;
            tracked(
                d,
                f,
                &r.track_group,
                r.no_track,
                r.iif.as_deref(),
                "iif",
                groups,
            )
            .then_some(r)
        })
        .collect();
    t.finish(d);
    StaticNetwork {
        ipaddress,
        routes,
        rules,
        track_groups: Vec::new(),
    }
}

/// Checks a line's `track_group`: it must name a group (error otherwise); a line that
/// cannot be tracked (`no_track`, or no interface) is kept with a warning, as keepalived
/// logs and does not track it.
fn tracked(
    d: &mut Decoder<'_>,
    f: &Field<'_, '_>,
    group: &Option<String>,
    no_track: bool,
    interface: Option<&str>,
    interface_key: &str,
    groups: &[&str],
) -> bool {
    let Some(group) = group else {
        return true;
    };
    if !groups.contains(&group.as_str()) {
        f.error(d, format!("no [[track_group]] is named `{group}`"))
            .hint(match suggest::closest(group, groups.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None => {
                    format!("add [[track_group]] with name = \"{group}\" and group = [\"VI_1\", …]")
                }
            });
        return false;
    }
    if no_track {
        f.warning(
            d,
            format!("track_group `{group}` with no_track: not tracked (keepalived does the same)"),
        )
        .hint("remove one of the two");
    } else if interface.is_none() {
        f.warning(
            d,
            format!("track_group `{group}` has no interface to track: the line has no `{interface_key}`"),
        )
        .hint(format!("add `{interface_key} IFACE`"));
    }
    true
}
