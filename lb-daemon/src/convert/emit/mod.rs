//! The keepalived statements as this project's TOML, one module per block kind.
//!
//! Each keyword is mapped (written under the TOML name the loader accepts), noted (written
//! as a comment: keepalived tuning with nothing to tune here), approximated (a comment
//! saying what differs, and a warning) or refused (an error saying what to do). Unknown
//! keywords are errors with the closest known one.

mod bfd;
mod checker;
mod fwmark;
mod global;
mod instance;
mod routes;
mod script;
mod server_group;
mod sync;
mod sync_group;
mod track_group;
mod virtual_server;

use std::collections::{HashMap, HashSet};

use super::diag::Diags;
use super::lexer::Pos;
use super::parser::{describe, Stmt, TOP_LEVEL};
use super::toml_out::{Rendered, Section};

pub(crate) use server_group::GroupEntry;

/// What a keepalived keyword with no direct TOML key becomes.
#[derive(Clone, Copy)]
pub(crate) enum Rule {
    /// A comment: nothing to do here (reason).
    Note(&'static str),
    /// A comment and a warning: the behaviour differs (how).
    Approx(&'static str),
    /// An error: it cannot be expressed (what to do).
    Refuse(&'static str),
}

/// What the blocks need from each other.
pub(crate) struct Ctx<'d> {
    pub d: &'d mut Diags,
    /// `dataplane ipvs` in global_defs: IPVS scheduler names are kept.
    pub ipvs: bool,
    /// keepalived's `default_interface`, for instances that name none.
    pub default_interface: Option<(String, Pos)>,
    /// `track_file NAME { file PATH weight W [reverse] }` (or `vrrp_track_file`).
    pub track_files: HashMap<String, TrackedFile>,
    pub server_groups: HashMap<String, Vec<GroupEntry>>,
    /// `vrrp_script`s without a `script` line: keepalived removes them, and the
    /// `track_script` entries naming them, with a warning.
    pub scriptless: HashSet<String>,
    /// `[sync]`, from `lvs_sync_daemon` or `lvs_sync_daemon_interface`.
    pub sync: Option<Section>,
}

impl Ctx<'_> {
    /// Applies `rules` to `stmt`; false when the keyword has none.
    pub(crate) fn rule(
        &mut self,
        section: &mut Section,
        stmt: &Stmt,
        context: &str,
        rules: &[(&str, Rule)],
    ) -> bool {
        let Some((_, rule)) = rules.iter().find(|(k, _)| *k == stmt.keyword()) else {
            return false;
        };
        let written = describe(stmt);
        match *rule {
            Rule::Note(why) => section.comment(format!("{written}: {why}"), Some(stmt.pos())),
            Rule::Approx(how) => self.approx(section, stmt, context, how),
            Rule::Refuse(what) => self.d.error(
                stmt.pos(),
                context,
                format!("`{}` cannot be expressed for lb-daemon", stmt.keyword()),
                Some(what.to_owned()),
            ),
        }
        true
    }

    /// A comment in the TOML and a warning: `stmt` is converted approximately.
    pub(crate) fn approx(&mut self, section: &mut Section, stmt: &Stmt, context: &str, how: &str) {
        section.comment(
            format!("approximated: {}: {how}", describe(stmt)),
            Some(stmt.pos()),
        );
        self.d.warning(
            stmt.pos(),
            context,
            format!("`{}` approximated: {how}", stmt.keyword()),
            None,
        );
    }

    /// An unknown keyword: an error with the closest of `known` and of `rules`.
    pub(crate) fn unknown(
        &mut self,
        stmt: &Stmt,
        context: &str,
        known: &[&str],
        rules: &[(&str, Rule)],
    ) {
        let mut all: Vec<&str> = known.to_vec();
        all.extend(rules.iter().map(|(k, _)| *k));
        self.d.unknown(stmt.pos(), context, stmt.keyword(), &all);
        if context.is_empty() {
            return;
        }
        if TOP_LEVEL.contains(&stmt.keyword()) {
            // The usual cause: the block above lacks its `}`.
            self.d.error(
                stmt.pos(),
                context,
                format!("`{}` cannot be inside {context}", stmt.keyword()),
                Some(format!(
                    "a `}}` that ends {context} is probably missing above this line"
                )),
            );
        }
    }

    /// A block keyword written without its block, or the reverse.
    pub(crate) fn needs_block(&mut self, stmt: &Stmt, context: &str) -> bool {
        if stmt.block.is_some() {
            return true;
        }
        self.d.error(
            stmt.pos(),
            context,
            format!("`{}` needs a block `{{ … }}`", stmt.keyword()),
            Some(format!(
                "write `{} {{` and the block's lines, then `}}`",
                describe(stmt)
            )),
        );
        false
    }
}

/// The whole TOML document for the top-level statements `stmts`.
pub(crate) fn document(stmts: &[Stmt], d: &mut Diags, header: &[String]) -> Rendered {
    let mut ctx = Ctx {
        d,
        ipvs: false,
        default_interface: None,
        track_files: HashMap::new(),
        server_groups: HashMap::new(),
        scriptless: HashSet::new(),
        sync: None,
    };
    // What other blocks refer to, wherever it is written.
    let mut global = global::convert(&mut ctx, stmts);
    for stmt in stmts {
        match stmt.keyword() {
            "vrrp_track_file" | "track_file" => script::track_file(&mut ctx, stmt),
            "virtual_server_group" => server_group::read(&mut ctx, stmt),
            "vrrp_script" => script::note_scriptless(&mut ctx, stmt),
            _ => {}
        }
    }
    let mut sections = Vec::new();
    let mut statics = Section::new("[static]", None);
    for stmt in stmts {
        match stmt.keyword() {
            "global_defs" | "vrrp_track_file" | "track_file" | "virtual_server_group" => {}
            kw @ ("static_ipaddress" | "static_routes" | "static_rules") => {
                static_block(&mut ctx, &mut statics, stmt, kw)
            }
            "vrrp_script" => sections.extend(script::convert(&mut ctx, stmt)),
            "vrrp_track_process" => sections.extend(script::track_process(&mut ctx, stmt)),
            "bfd_instance" => sections.extend(bfd::convert(&mut ctx, stmt)),
            "vrrp_instance" => sections.extend(instance::convert(&mut ctx, stmt)),
            "vrrp_sync_group" => sections.extend(sync_group::convert(&mut ctx, stmt)),
            "track_group" => sections.extend(track_group::convert(&mut ctx, stmt)),
            "virtual_server" => sections.extend(virtual_server::convert(&mut ctx, stmt)),
            _ => top_level_other(&mut ctx, &mut global, stmt),
        }
    }
    let mut out = Rendered::default();
    for line in header {
        out.line(&format!("# {line}"), None);
    }
    out.section(&global);
    if ["ipaddress", "routes", "rules"]
        .iter()
        .any(|k| statics.has(k))
    {
        out.section(&statics);
    }
    if let Some(sync) = &ctx.sync {
        out.section(sync);
    }
    for section in &sections {
        out.section(section);
    }
    out
}

/// `static_ipaddress { }`, `static_routes { }`, `static_rules { }` → `[static]`
/// `ipaddress`, `routes`, `rules` (a block written twice adds to the first, as keepalived).
fn static_block(ctx: &mut Ctx<'_>, statics: &mut Section, stmt: &Stmt, kw: &str) {
    if !ctx.needs_block(stmt, kw) {
        return;
    }
    let (key, mut items) = match kw {
        "static_ipaddress" => {
            let mut items = Vec::new();
            for line in stmt.body() {
                if !line.args().iter().any(|w| w.text == "dev") {
                    ctx.d.error(
                        line.pos(),
                        kw,
                        format!("static address `{}` has no interface", line.keyword()),
                        Some("add `dev IFACE` (keepalived needs it too)".into()),
                    );
                    continue;
                }
                items.extend(instance::virtual_address(ctx, statics, line, kw));
            }
            ("ipaddress", items)
        }
        "static_rules" => ("rules", routes::lines(ctx, stmt, kw, true)),
        _ => ("routes", routes::lines(ctx, stmt, kw, false)),
    };
    if let Some(super::toml_out::Value::Array(before)) = statics.get(key) {
        let mut all = before.clone();
        all.append(&mut items);
        items = all;
    }
    statics.set(key, super::toml_out::Value::Array(items), stmt.pos());
}

/// Top-level keywords other than the blocks converted above.
const TOP_RULES: &[(&str, Rule)] = &[
    (
        "net_namespace",
        Rule::Refuse("run lb-daemon inside the namespace (`ip netns exec NAME lb-daemon run …`) and remove net_namespace"),
    ),
    (
        "net_namespace_ipvs",
        Rule::Refuse("run lb-daemon inside the namespace and remove net_namespace_ipvs"),
    ),
    ("namespace_with_ipsets", Rule::Note("no ipsets here: ignored")),
    ("use_pid_dir", Rule::Note("keepalived's pid files: ignored")),
    ("instance", Rule::Note("keepalived's instance name: ignored")),
    ("child_wait_time", Rule::Note("keepalived's process supervision: ignored")),
    (
        "linkbeat_use_polling",
        Rule::Note("lb-daemon watches links through netlink: ignored"),
    ),
    (
        "SSL",
        Rule::Note("SSL_GET here connects without a client certificate and does not verify the server, as keepalived does by default"),
    ),
];

const TOP_KNOWN: &[&str] = &[
    "global_defs",
    "static_ipaddress",
    "static_routes",
    "static_rules",
    "vrrp_track_file",
    "track_file",
    "virtual_server_group",
    "vrrp_script",
    "vrrp_track_process",
    "bfd_instance",
    "vrrp_instance",
    "vrrp_sync_group",
    "track_group",
    "virtual_server",
];

/// A `track_file` definition, as its users need it.
#[derive(Clone, Debug)]
pub(crate) struct TrackedFile {
    pub path: String,
    /// `None`: keepalived's default, 1.
    pub weight: Option<i64>,
    pub reverse: bool,
}

/// Top-level keywords other than blocks: their comments go to `[global]`.
fn top_level_other(ctx: &mut Ctx<'_>, global: &mut Section, stmt: &Stmt) {
    if !ctx.rule(global, stmt, "", TOP_RULES) {
        ctx.unknown(stmt, "", TOP_KNOWN, TOP_RULES);
    }
}
