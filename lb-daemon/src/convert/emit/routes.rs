//! `virtual_routes` / `virtual_rules` blocks of an instance and the top-level
//! `static_ipaddress` / `static_routes` / `static_rules` blocks: each line is kept as
//! written (the loader reads keepalived's syntax), checked here so an error points at
//! its own line.

use super::Ctx;
use crate::config::{IpRoute, IpRule};
use crate::convert::parser::Stmt;
use crate::convert::toml_out::Value;

const ROUTE_HINT: &str = "write `[TYPE] DEST|default [via ADDR] [dev IF] [src ADDR] [table N] [metric N] [scope S] [protocol P] [onlink] [mtu N] [rtt T] [congctl NAME] [realms [FROM/]TO] [no_track]` (docs/vrrp.md lists every option)";
const RULE_HINT: &str = "write `[from PREFIX] [to PREFIX] [fwmark N[/M]] [iif IF] [oif IF] [ipproto P] [dport N[-M]] [uidrange A-B] [preference N]` and one of `table N`, `goto N`, `nop`, `blackhole`, `unreachable`, `prohibit`, `l3mdev`";

/// The block's lines as strings; `rules`: `ip rule` lines, else `ip route` ones.
pub(super) fn lines(ctx: &mut Ctx<'_>, block: &Stmt, context: &str, rules: bool) -> Vec<Value> {
    let mut out = Vec::new();
    for line in block.body() {
        let text: Vec<&str> = line.words.iter().map(|w| w.text.as_str()).collect();
        let text = text.join(" ");
        let checked = if rules {
            text.parse::<IpRule>()
                .map(|r| r.track_group)
                .map_err(|e| (e, RULE_HINT))
        } else {
            text.parse::<IpRoute>()
                .map(|r| r.track_group)
                .map_err(|e| (e, ROUTE_HINT))
        };
        match checked {
            // keepalived reads `track_group` on static lines only ("unknown route keyword").
            Ok(Some(_)) if !context.starts_with("static_") => ctx.d.error(
                line.pos(),
                context,
                format!("`{text}`: track_group is for static_routes and static_rules only"),
                Some(
                    "move the line to static_routes / static_rules, or remove `track_group NAME`"
                        .into(),
                ),
            ),
            Ok(_) => out.push(Value::Str(text)),
            Err((e, hint)) => {
                let what = if rules { "rule" } else { "route" };
                ctx.d.error(
                    line.pos(),
                    context,
                    format!("{what} `{text}`: {e}"),
                    Some(hint.to_owned()),
                );
            }
        }
    }
    out
}
