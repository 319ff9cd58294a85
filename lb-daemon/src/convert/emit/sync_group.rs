//! `vrrp_sync_group NAME { group { … } notify_* … }` → `[[vrrp_sync_group]]`.

use super::script::block_name;
use super::{Ctx, Rule};
use crate::convert::parser::Stmt;
use crate::convert::toml_out::{Section, Value};
use crate::convert::value::Args;

const KNOWN: &[&str] = &[
    "group",
    "notify_master",
    "notify_backup",
    "notify_fault",
    "notify_stop",
    "notify",
    "smtp_alert",
    "track_bfd",
];

const RULES: &[(&str, Rule)] = &[
    (
        "global_tracking",
        Rule::Note("each instance keeps its own tracking here: ignored"),
    ),
    (
        "sync_group_tracking_weight",
        Rule::Approx("a member's tracking weights move only that member's priority"),
    ),
    (
        "notify_priority_changes",
        Rule::Approx("notify scripts run on state changes only"),
    ),
    (
        "track_interface",
        Rule::Refuse("move the track_interface block into each member vrrp_instance"),
    ),
    (
        "track_script",
        Rule::Refuse("move the track_script block into each member vrrp_instance"),
    ),
    (
        "track_file",
        Rule::Refuse("move the track_file block into each member vrrp_instance"),
    ),
    (
        "track_process",
        Rule::Refuse("move the track_process block into each member vrrp_instance"),
    ),
];

/// `group { VI_1 VI_2 }` → `group = ["VI_1", "VI_2"]` (sync and track groups).
pub(super) fn group(ctx: &mut Ctx<'_>, s: &mut Section, entry: &Stmt, context: &str) {
    if ctx.needs_block(entry, context) {
        // keepalived reads the members as words, several per line allowed.
        let members = entry
            .body()
            .iter()
            .flat_map(|line| line.words.iter())
            .map(|w| Value::str(&w.text))
            .collect();
        s.set("group", Value::Array(members), entry.pos());
    }
}

pub(super) fn convert(ctx: &mut Ctx<'_>, stmt: &Stmt) -> Option<Section> {
    let name = block_name(ctx, stmt)?;
    let context = format!("vrrp_sync_group {name}");
    let mut s = Section::new("[[vrrp_sync_group]]", Some(stmt.pos()));
    s.set("name", Value::str(&name), stmt.pos());
    for entry in stmt.body() {
        let kw = entry.keyword();
        match kw {
            "group" => group(ctx, &mut s, entry, &context),
            "notify_master" | "notify_backup" | "notify_fault" | "notify_stop" | "notify" => {
                if let Some(v) = Args::new(entry, &context).command(ctx.d) {
                    s.set(kw, v, entry.pos());
                }
            }
            "track_bfd" => {
                if ctx.needs_block(entry, &context) {
                    let items = super::instance::tracked(ctx, entry, &context);
                    s.set(kw, Value::Array(items), entry.pos());
                }
            }
            "smtp_alert" => {
                if let Some(b) = Args::new(entry, &context).flag(ctx.d) {
                    s.set(kw, Value::Bool(b), entry.pos());
                }
            }
            _ => {
                if !ctx.rule(&mut s, entry, &context, RULES) {
                    ctx.unknown(entry, &context, KNOWN, RULES);
                }
            }
        }
    }
    if !s.has("group") {
        ctx.d.error(
            stmt.pos(),
            &context,
            "the sync group lists no instance",
            Some("add `group { VI_1 VI_2 }`".into()),
        );
    }
    Some(s)
}
