//! `vrrp_script NAME { … }` → `[[vrrp_script]]`; `vrrp_track_file NAME { … }` is read
//! for the instances' `track_file` (the TOML names the file itself).

use super::global::script_user;
use super::{Ctx, Rule};
use crate::config::WEIGHT_RANGE;
use crate::convert::parser::{describe, Stmt};
use crate::convert::toml_out::{Section, Value};
use crate::convert::value::{int_word, Args};

const KNOWN: &[&str] = &[
    "script", "interval", "timeout", "weight", "rise", "fall", "user",
];

const RULES: &[(&str, Rule)] = &[(
    "init_fail",
    Rule::Approx("the script starts as succeeding until its first run says otherwise"),
)];

/// The block's name (`vrrp_script NAME`), or an error.
pub(super) fn block_name(ctx: &mut Ctx<'_>, stmt: &Stmt) -> Option<String> {
    if !ctx.needs_block(stmt, &describe(stmt)) {
        return None;
    }
    match stmt.args() {
        [name] => Some(name.text.clone()),
        _ => {
            ctx.d.error(
                stmt.pos(),
                &describe(stmt),
                format!("`{}` takes one name", stmt.keyword()),
                Some(format!("write `{} NAME {{`", stmt.keyword())),
            );
            None
        }
    }
}

pub(super) fn convert(ctx: &mut Ctx<'_>, stmt: &Stmt) -> Option<Section> {
    let name = block_name(ctx, stmt)?;
    let context = format!("vrrp_script {name}");
    let mut s = Section::new("[[vrrp_script]]", Some(stmt.pos()));
    s.set("name", Value::str(&name), stmt.pos());
    for entry in stmt.body() {
        let a = Args::new(entry, &context);
        let pos = entry.pos();
        match entry.keyword() {
            "script" => {
                if let Some(v) = a.command(ctx.d) {
                    s.set("script", v, pos);
                }
            }
            "interval" | "timeout" => {
                if let Some(v) = a.seconds(ctx.d) {
                    s.set(entry.keyword(), v, pos);
                }
            }
            "weight" => weight(ctx, &mut s, entry, &context),
            "rise" | "fall" => {
                if let Some(n) = a.int(ctx.d, 1..=i64::from(u32::MAX)) {
                    s.set(entry.keyword(), Value::Int(n), pos);
                }
            }
            "user" => script_user(ctx, &mut s, entry, &context, "user"),
            _ => {
                if !ctx.rule(&mut s, entry, &context, RULES) {
                    ctx.unknown(entry, &context, KNOWN, RULES);
                }
            }
        }
    }
    if !s.has("script") {
        // keepalived: "No script set for vrrp_script NAME - removing" (a warning); the
        // instances tracking it ignore the entry (`instance::tracked`).
        ctx.d.warning(
            stmt.pos(),
            &context,
            "no `script` line: the vrrp_script is left out, and dropped from the instances tracking it, as keepalived does",
            Some("add `script \"COMMAND\"` to the block to track it".into()),
        );
        return None;
    }
    Some(s)
}

/// Pre-pass: remembers a `vrrp_script NAME` block without a `script` line, wherever the
/// instances tracking it are written.
pub(super) fn note_scriptless(ctx: &mut Ctx<'_>, stmt: &Stmt) {
    let has_script = stmt.body().iter().any(|e| e.keyword() == "script");
    if let ([name], false) = (stmt.args(), has_script) {
        ctx.scriptless.insert(name.text.clone());
    }
}

/// `weight N [reverse]`.
fn weight(ctx: &mut Ctx<'_>, s: &mut Section, entry: &Stmt, context: &str) {
    let a = Args::new(entry, context);
    match entry.args() {
        [w] => {
            if let Some(n) = int_word(&a, ctx.d, w, WEIGHT_RANGE) {
                s.set("weight", Value::Int(n), entry.pos());
            }
        }
        [w, r] if r.text == "reverse" => {
            if let Some(n) = int_word(&a, ctx.d, w, WEIGHT_RANGE) {
                s.set("weight", Value::Int(n), entry.pos());
                s.set("reverse", Value::Bool(true), entry.pos());
            }
        }
        _ => {
            a.one(ctx.d);
        }
    }
}

const PROCESS_KNOWN: &[&str] = &[
    "process",
    "param_match",
    "weight",
    "quorum",
    "quorum_max",
    "fork_delay",
    "terminate_delay",
    "delay",
    "full_command",
];

/// `vrrp_track_process NAME { process NAME [ARGS…]  param_match [initial|partial]
/// weight W [reverse]  quorum N  quorum_max N  fork_delay S  terminate_delay S  delay S
/// full_command }` → `[[vrrp_track_process]]`.
pub(super) fn track_process(ctx: &mut Ctx<'_>, stmt: &Stmt) -> Option<Section> {
    let name = block_name(ctx, stmt)?;
    let context = format!("vrrp_track_process {name}");
    let mut s = Section::new("[[vrrp_track_process]]", Some(stmt.pos()));
    s.set("name", Value::str(&name), stmt.pos());
    for entry in stmt.body() {
        let a = Args::new(entry, &context);
        let pos = entry.pos();
        let kw = entry.keyword();
        match kw {
            "process" => match entry.args() {
                [] => {
                    a.one(ctx.d);
                }
                [process, params @ ..] => {
                    s.set("process", Value::str(&process.text), pos);
                    if !params.is_empty() {
                        let params = params.iter().map(|w| Value::str(&w.text)).collect();
                        s.set("parameters", Value::Array(params), pos);
                    }
                }
            },
            "param_match" => match entry.args() {
                [] => s.set(kw, Value::str("exact"), pos),
                [m] if matches!(m.text.as_str(), "initial" | "partial") => {
                    s.set(kw, Value::str(&m.text), pos)
                }
                [m, ..] => ctx.d.error(
                    &m.pos,
                    &context,
                    format!("`{}` is not a param_match", m.text),
                    Some(
                        "write `param_match`, `param_match initial` or `param_match partial`"
                            .into(),
                    ),
                ),
            },
            "weight" => match entry.args() {
                [w] => {
                    if let Some(n) = int_word(&a, ctx.d, w, WEIGHT_RANGE) {
                        s.set(kw, Value::Int(n), pos);
                    }
                }
                [w, r] if r.text == "reverse" => {
                    if let Some(n) = int_word(&a, ctx.d, w, WEIGHT_RANGE) {
                        s.set(kw, Value::Int(n), pos);
                        s.set("reverse", Value::Bool(true), pos);
                    }
                }
                _ => {
                    a.one(ctx.d);
                }
            },
            "quorum" | "quorum_max" => {
                let low = if kw == "quorum" { 1 } else { 0 };
                if let Some(n) = a.int(ctx.d, low..=65_535) {
                    s.set(kw, Value::Int(n), pos);
                }
            }
            "fork_delay" | "terminate_delay" | "delay" => {
                if let Some(v) = a.seconds(ctx.d) {
                    s.set(kw, v, pos);
                }
            }
            "full_command" => {
                if a.none(ctx.d) {
                    s.set(kw, Value::Bool(true), pos);
                }
            }
            _ => ctx.unknown(entry, &context, PROCESS_KNOWN, &[]),
        }
    }
    if !s.has("process") {
        ctx.d.error(
            stmt.pos(),
            &context,
            "a vrrp_track_process needs `process`",
            Some("add `process NAME` to the block".into()),
        );
    }
    Some(s)
}

/// `track_file NAME { file PATH  weight W [reverse]  init_file [V] [overwrite] }` (also
/// spelt `vrrp_track_file`).
pub(super) fn track_file(ctx: &mut Ctx<'_>, stmt: &Stmt) {
    let Some(name) = block_name(ctx, stmt) else {
        return;
    };
    let context = format!("{} {name}", stmt.keyword());
    let mut path = None;
    let mut weight = None;
    let mut reverse = false;
    let mut scratch = Section::new("", None);
    for entry in stmt.body() {
        let a = Args::new(entry, &context);
        match entry.keyword() {
            "file" => path = a.one(ctx.d).map(|w| w.text.clone()),
            "weight" => match entry.args() {
                [w, option] if matches!(option.text.as_str(), "reverse" | "noreverse") => {
                    weight = int_word(&a, ctx.d, w, WEIGHT_RANGE);
                    reverse = option.text == "reverse";
                }
                _ => weight = a.int(ctx.d, WEIGHT_RANGE),
            },
            "init_file" => ctx.approx(
                &mut scratch,
                entry,
                &context,
                "the file is not created: it must exist",
            ),
            _ => ctx.unknown(entry, &context, &["file", "weight", "init_file"], &[]),
        }
    }
    match path {
        Some(path) => {
            ctx.track_files.insert(
                name,
                super::TrackedFile {
                    path,
                    weight,
                    reverse,
                },
            );
        }
        None => ctx.d.error(
            stmt.pos(),
            &context,
            format!("a {} needs `file`", stmt.keyword()),
            Some("add `file /PATH` to the block".into()),
        ),
    }
}
