//! `bfd_instance NAME { … }` → `[[bfd_instance]]` (keepalived 2.2.7's bfd_parser.c):
//! timers in milliseconds become durations (`"10ms"`), `neighbour_ip` is `neighbor_ip`,
//! `hoplimit` is `ttl`.

use super::script::block_name;
use super::Ctx;
use crate::convert::parser::Stmt;
use crate::convert::toml_out::{Section, Value};
use crate::convert::value::{int_word, millis_word, Args};

const KNOWN: &[&str] = &[
    "neighbor_ip",
    "neighbour_ip",
    "source_ip",
    "min_rx",
    "min_tx",
    "idle_tx",
    "multiplier",
    "passive",
    "ttl",
    "hoplimit",
    "max_hops",
    "weight",
    "vrrp",
    "checker",
];

/// keepalived's `weight` range of a bfd_instance and a track_bfd entry.
pub(super) const BFD_WEIGHT_RANGE: std::ops::RangeInclusive<i64> = -253..=253;

/// A number of milliseconds (3 decimals), as a duration string.
fn millis(ctx: &mut Ctx<'_>, a: &Args<'_>) -> Option<Value> {
    let word = a.one(ctx.d)?;
    millis_word(a, ctx.d, word)
}

pub(super) fn convert(ctx: &mut Ctx<'_>, stmt: &Stmt) -> Option<Section> {
    let name = block_name(ctx, stmt)?;
    let context = format!("bfd_instance {name}");
    let mut s = Section::new("[[bfd_instance]]", Some(stmt.pos()));
    s.set("name", Value::str(&name), stmt.pos());
    for entry in stmt.body() {
        let a = Args::new(entry, &context);
        let pos = entry.pos();
        let kw = entry.keyword();
        match kw {
            "neighbor_ip" | "neighbour_ip" | "source_ip" => {
                if let Some(ip) = a.ip(ctx.d) {
                    let key = if kw == "source_ip" { kw } else { "neighbor_ip" };
                    s.set(key, Value::str(ip.to_string()), pos);
                }
            }
            "min_rx" | "min_tx" | "idle_tx" => {
                if let Some(v) = millis(ctx, &a) {
                    s.set(kw, v, pos);
                }
            }
            "multiplier" => {
                if let Some(n) = a.int(ctx.d, 1..=255) {
                    s.set(kw, Value::Int(n), pos);
                }
            }
            "ttl" | "hoplimit" => {
                if let Some(n) = a.int(ctx.d, 1..=255) {
                    s.set("ttl", Value::Int(n), pos);
                }
            }
            "max_hops" => {
                if let Some(n) = a.int(ctx.d, -1..=255) {
                    s.set(kw, Value::Int(n), pos);
                }
            }
            "passive" | "vrrp" | "checker" => {
                if a.none(ctx.d) {
                    s.set(kw, Value::Bool(true), pos);
                }
            }
            "weight" => match entry.args() {
                [w] => {
                    if let Some(n) = int_word(&a, ctx.d, w, BFD_WEIGHT_RANGE) {
                        s.set(kw, Value::Int(n), pos);
                    }
                }
                [w, r] if matches!(r.text.as_str(), "reverse" | "noreverse") => {
                    if let Some(n) = int_word(&a, ctx.d, w, BFD_WEIGHT_RANGE) {
                        s.set(kw, Value::Int(n), pos);
                        if r.text == "reverse" {
                            s.set("reverse", Value::Bool(true), pos);
                        }
                    }
                }
                _ => {
                    a.one(ctx.d);
                }
            },
            _ => ctx.unknown(entry, &context, KNOWN, &[]),
        }
    }
    // keepalived: `vrrp` or `checker` alone means only that one uses the instance.
    let (vrrp, checker) = (s.has("vrrp"), s.has("checker"));
    if vrrp != checker {
        s.set("vrrp", Value::Bool(vrrp), stmt.pos());
        s.set("checker", Value::Bool(checker), stmt.pos());
    }
    if !s.has("neighbor_ip") {
        ctx.d.error(
            stmt.pos(),
            &context,
            "a bfd_instance needs `neighbor_ip`",
            Some("add `neighbor_ip ADDRESS` to the block".into()),
        );
    }
    Some(s)
}

/// `BFD_CHECK { name NAME }` → `[[virtual_server.real_server.bfd_check]]`.
pub(super) fn check(ctx: &mut Ctx<'_>, stmt: &Stmt, rs_context: &str) -> Option<Section> {
    let context = format!("{rs_context}: BFD_CHECK");
    if !ctx.needs_block(stmt, &context) {
        return None;
    }
    let mut s = Section::new("[[virtual_server.real_server.bfd_check]]", Some(stmt.pos()));
    for entry in stmt.body() {
        let a = Args::new(entry, &context);
        match entry.keyword() {
            "name" => {
                if let Some(v) = a.string(ctx.d) {
                    s.set("name", v, entry.pos());
                }
            }
            _ => ctx.unknown(entry, &context, &["name"], &[]),
        }
    }
    if !s.has("name") {
        ctx.d.error(
            stmt.pos(),
            &context,
            "BFD_CHECK has no name",
            Some("add `name NAME`, naming a `bfd_instance NAME { … }` block".into()),
        );
        return None;
    }
    Some(s)
}
