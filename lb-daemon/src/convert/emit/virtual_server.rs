//! `virtual_server IP PORT { … }` and `virtual_server group NAME { … }` →
//! `[[virtual_server]]` (one per address and port of the group, and one per fwmark
//! entry), with their `[[virtual_server.real_server]]` entries; `virtual_server fwmark
//! N { … }` → `[[virtual_server]] fwmark = N` (on XDP with the `match` list its
//! `lb_match` gives, [`fwmark`]).

use super::fwmark::{self, Mark};
use super::server_group::GroupEntry;
use super::{checker, Ctx, Rule};

use crate::config::{suggest, LbAlgo, REAL_WEIGHT_MAX};
use crate::convert::lexer::Pos;
use crate::convert::parser::{describe, Stmt};
use crate::convert::toml_out::{Section, Value};
use crate::convert::value::{int_word, ip_word, Args};

/// Keys a virtual server and a real server both take, passed down to the checkers.
const INHERITED_SECONDS: &[&str] = &[
    "delay_loop",
    "connect_timeout",
    "delay_before_retry",
    "warmup",
];

const KNOWN: &[&str] = &[
    "delay_loop",
    "connect_timeout",
    "delay_before_retry",
    "warmup",
    "retry",
    "nb_get_retry",
    "lb_algo",
    "lvs_sched",
    "lb_kind",
    "lvs_method",
    "persistence_timeout",
    "persistence_granularity",
    "protocol",
    "sorry_server",
    "sorry_server_lvs_method",
    "virtualhost",
    "alpha",
    "quorum",
    "hysteresis",
    "quorum_up",
    "quorum_down",
    "inhibit_on_failure",
    "smtp_alert",
    "real_server",
];

const RULES: &[(&str, Rule)] = &[
    (
        "ha_suspend",
        Rule::Note(
            "lb-daemon forwards a service only while the instance holding its address is MASTER",
        ),
    ),
    (
        "ip_family",
        Rule::Note("the family follows the addresses: ignored"),
    ),
    (
        "omega",
        Rule::Approx("quorum_down and notify_down scripts do not run when lb-daemon stops"),
    ),
    (
        "ops",
        Rule::Approx(
            "UDP datagrams of one flow keep going to one real server (no one-packet scheduling)",
        ),
    ),
    (
        "sorry_server_inhibit",
        Rule::Approx("the sorry server is removed, not set to weight 0, when the quorum is back"),
    ),
    (
        "hashed",
        Rule::Approx("an IPVS scheduler flag; Maglev needs none"),
    ),
    (
        "flag-1",
        Rule::Approx("an IPVS scheduler flag; Maglev needs none"),
    ),
    (
        "flag-2",
        Rule::Approx("an IPVS scheduler flag; Maglev needs none"),
    ),
    (
        "flag-3",
        Rule::Approx("an IPVS scheduler flag; Maglev needs none"),
    ),
    (
        "sh-port",
        Rule::Approx("an IPVS scheduler flag: maglev_src hashes the client address only"),
    ),
    (
        "sh-fallback",
        Rule::Approx("an IPVS scheduler flag: Maglev skips unhealthy real servers anyway"),
    ),
    (
        "mh-port",
        Rule::Approx("an IPVS scheduler flag: maglev hashes the whole 5-tuple"),
    ),
    (
        "mh-fallback",
        Rule::Approx("an IPVS scheduler flag: Maglev skips unhealthy real servers anyway"),
    ),
];

const REAL_KNOWN: &[&str] = &[
    "weight",
    "uthreshold",
    "lthreshold",
    "lb_kind",
    "lvs_method",
    "inhibit_on_failure",
    "smtp_alert",
    "notify_up",
    "notify_down",
    "delay_loop",
    "connect_timeout",
    "delay_before_retry",
    "warmup",
    "retry",
    "nb_get_retry",
    "virtualhost",
    "TCP_CHECK",
    "HTTP_GET",
    "SSL_GET",
    "MISC_CHECK",
    "SMTP_CHECK",
    "DNS_CHECK",
    "UDP_CHECK",
    "PING_CHECK",
    "FILE_CHECK",
    "BFD_CHECK",
];

const REAL_RULES: &[(&str, Rule)] = &[];

pub(super) fn convert(ctx: &mut Ctx<'_>, stmt: &Stmt) -> Vec<Section> {
    let context = describe(stmt);
    if !ctx.needs_block(stmt, &context) {
        return Vec::new();
    }
    let (targets, marks): (Vec<(String, u16, Pos)>, Vec<Mark>) = match stmt.args() {
        [kind, _] if kind.text == "fwmark" => match fwmark::of_block(ctx, stmt, &context) {
            Some(mark) => (Vec::new(), vec![mark]),
            None => return Vec::new(),
        },
        [kind, name] if kind.text == "group" => match ctx.server_groups.get(&name.text) {
            Some(entries) => {
                let mut targets = Vec::new();
                let mut marks = Vec::new();
                for e in entries {
                    match e {
                        GroupEntry::Address { address, port, pos } => {
                            targets.push((address.to_string(), *port, pos.clone()))
                        }
                        GroupEntry::Fwmark(mark) => marks.push(mark.clone()),
                    }
                }
                (targets, marks)
            }
            None => {
                let known: Vec<&str> = ctx.server_groups.keys().map(String::as_str).collect();
                let hint = suggest::closest(&name.text, known.iter().copied())
                    .map(|k| format!("did you mean `{k}`?"))
                    .unwrap_or_else(|| {
                        "define it: `virtual_server_group NAME { ADDR PORT … }`".into()
                    });
                ctx.d.error(
                    &name.pos,
                    &context,
                    format!("no virtual_server_group is named `{}`", name.text),
                    Some(hint),
                );
                return Vec::new();
            }
        },
        [address, port] => {
            let a = Args::new(stmt, &context);
            let ip = ip_word(&a, ctx.d, address);
            let port = int_word(&a, ctx.d, port, 0..=65_535);
            match (ip, port) {
                (Some(ip), Some(port)) => (
                    vec![(ip.to_string(), port as u16, stmt.pos().clone())],
                    Vec::new(),
                ),
                _ => return Vec::new(),
            }
        }
        _ => {
            ctx.d.error(
                stmt.pos(),
                &context,
                "a virtual_server is `virtual_server ADDR PORT`, `virtual_server group NAME` or `virtual_server fwmark N`",
                Some("write e.g. `virtual_server 192.168.1.100 80 {`".into()),
            );
            return Vec::new();
        }
    };
    let matches = if takes_lb_match(stmt) {
        fwmark::check(ctx, stmt, &context, &marks)
    } else {
        Vec::new()
    };
    // A lone mark refused: its body would only add diagnostics.
    let refused = !ctx.ipvs && matches.iter().any(Option::is_none);
    if refused && targets.is_empty() {
        return Vec::new();
    }
    let body = body(ctx, stmt, &context);
    let total = targets.len() + marks.len();
    if total > 1 {
        ctx.d.warning(
            stmt.pos(),
            &context,
            format!(
                "the group is written as {total} virtual servers, one per address and port (and per fwmark entry)"
            ),
            None,
        );
    }
    let from = targets_from_group(stmt).then(|| describe(stmt));
    let mut sections: Vec<Section> = targets
        .into_iter()
        .map(|(address, port, pos)| {
            let mut s = Section::new("[[virtual_server]]", Some(&pos));
            if let Some(from) = &from {
                s.comment(format!("from {from}"), Some(&pos));
            }
            s.set("address", Value::Str(address), &pos);
            s.set("port", Value::Int(i64::from(port)), &pos);
            s.append(body.clone());
            s
        })
        .collect();
    for (mark, found) in marks.iter().zip(&matches) {
        if found.is_some() || ctx.ipvs {
            sections.push(fwmark::section(
                mark,
                found.as_deref(),
                &body,
                from.as_deref(),
            ));
        }
    }
    sections
}

fn targets_from_group(stmt: &Stmt) -> bool {
    stmt.args().first().is_some_and(|w| w.text == "group")
}

/// `virtual_server fwmark N` and `virtual_server group NAME` take `lb_match` lines.
fn takes_lb_match(stmt: &Stmt) -> bool {
    stmt.args()
        .first()
        .is_some_and(|w| w.text == "fwmark" || w.text == "group")
}

/// Everything but the address and port.
fn body(ctx: &mut Ctx<'_>, stmt: &Stmt, context: &str) -> Section {
    let mut s = Section::new("", None);
    for entry in stmt.body() {
        let a = Args::new(entry, context);
        let pos = entry.pos();
        let kw = entry.keyword();
        match kw {
            _ if INHERITED_SECONDS.contains(&kw) => {
                if let Some(v) = a.seconds(ctx.d) {
                    s.set(kw, v, pos);
                }
            }
            "retry" | "nb_get_retry" => {
                if let Some(n) = a.int(ctx.d, 0..=i64::from(u32::MAX)) {
                    s.set("retry", Value::Int(n), pos);
                }
            }
            "lb_algo" | "lvs_sched" => lb_algo(ctx, &mut s, entry, context),
            "lb_kind" | "lvs_method" => set_lb_kind(ctx, &mut s, "", entry, context),
            "sorry_server_lvs_method" => sorry_server_lb_kind(ctx, &mut s, entry, context),
            "persistence_timeout" => persistence(ctx, &mut s, entry, context),
            // A netmask (IPv4) or a prefix length; checked when the TOML is loaded.
            "persistence_granularity" => {
                if let Some(w) = a.one(ctx.d) {
                    let value = match w.text.parse::<i64>() {
                        Ok(n) => Value::Int(n),
                        Err(_) => Value::str(&w.text),
                    };
                    s.set("persistence_granularity", value, pos);
                }
            }
            "protocol" => {
                if let Some(w) = a.one(ctx.d) {
                    match w.text.to_ascii_uppercase().as_str() {
                        // SCTP runs on IPVS only: the loader says so at this line on XDP.
                        p @ ("TCP" | "UDP" | "SCTP") => s.set("protocol", Value::str(p), pos),
                        _ => ctx.d.error(
                            &w.pos,
                            context,
                            format!("`{}` is not a protocol", w.text),
                            Some("write TCP, UDP or SCTP".into()),
                        ),
                    }
                }
            }
            "sorry_server" => sorry_server(ctx, &mut s, entry, context),
            "virtualhost" => {
                if let Some(v) = a.string(ctx.d) {
                    s.set(kw, v, pos);
                }
            }
            "alpha" | "inhibit_on_failure" | "smtp_alert" => {
                if let Some(b) = a.flag(ctx.d) {
                    s.set(kw, Value::Bool(b), pos);
                }
            }
            "quorum" => {
                if let Some(n) = a.int(ctx.d, 1..=i64::from(u32::MAX)) {
                    s.set(kw, Value::Int(n), pos);
                }
            }
            "hysteresis" => {
                if let Some(n) = a.int(ctx.d, 0..=i64::from(u32::MAX)) {
                    s.set(kw, Value::Int(n), pos);
                }
            }
            "quorum_up" | "quorum_down" => {
                if let Some(v) = a.command(ctx.d) {
                    s.set(kw, v, pos);
                }
            }
            "real_server" => {
                if let Some(real) = real_server(ctx, entry, context) {
                    s.child(real);
                }
            }
            // Read by `fwmark` (elsewhere the dispatch below refuses it as unknown).
            "lb_match" if takes_lb_match(stmt) => {}
            _ => {
                if !ctx.rule(&mut s, entry, context, RULES) {
                    ctx.unknown(entry, context, KNOWN, RULES);
                }
            }
        }
    }
    defaults(ctx, &mut s, stmt, context);
    s
}

/// keepalived's defaults where this project's differ: NAT, and the `wlc` scheduler.
fn defaults(ctx: &mut Ctx<'_>, s: &mut Section, stmt: &Stmt, context: &str) {
    if !s.has("lb_kind") {
        s.comment(
            "lb_kind: none written, keepalived's default is NAT",
            Some(stmt.pos()),
        );
        s.set("lb_kind", Value::str("NAT"), stmt.pos());
    }
    if !s.has("lb_algo") {
        if ctx.ipvs {
            s.comment(
                "lb_algo: none written, keepalived's default is wlc",
                Some(stmt.pos()),
            );
            s.set("lb_algo", Value::str("wlc"), stmt.pos());
        } else {
            let how = "no lb_algo written (keepalived's default is wlc): the XDP data plane balances with Maglev consistent hashing";
            s.comment(format!("approximated: {how}"), Some(stmt.pos()));
            ctx.d.warning(stmt.pos(), context, how, None);
        }
    }
}

/// `lb_algo NAME`: the IPVS name on the IPVS data plane, else Maglev.
fn lb_algo(ctx: &mut Ctx<'_>, s: &mut Section, entry: &Stmt, context: &str) {
    let Some(w) = Args::new(entry, context).one(ctx.d) else {
        return;
    };
    let name = w.text.to_ascii_lowercase();
    let ipvs_name = LbAlgo::IPVS_SCHEDULERS.iter().find(|n| **n == name);
    let pos = entry.pos();
    match (ipvs_name, name.as_str()) {
        (_, "maglev" | "maglev_src") => s.set("lb_algo", Value::Str(name.clone()), pos),
        (Some(n), _) if ctx.ipvs => s.set("lb_algo", Value::str(*n), pos),
        (Some(_), "sh") => {
            s.comment(
                format!(
                    "{}: source hashing is Maglev over the client address here",
                    describe(entry)
                ),
                Some(pos),
            );
            s.set("lb_algo", Value::str("maglev_src"), pos);
        }
        (Some(_), "mh") => {
            s.comment(
                format!("{}: Maglev hashing, as here", describe(entry)),
                Some(pos),
            );
            s.set("lb_algo", Value::str("maglev"), pos);
        }
        (Some(_), _) => {
            ctx.approx(
                s,
                entry,
                context,
                "the XDP data plane balances with Maglev consistent hashing (weights count, connection counts do not); set `dataplane ipvs` in global_defs to keep IPVS schedulers",
            );
            s.set("lb_algo", Value::str("maglev"), pos);
        }
        (None, _) => {
            let mut known: Vec<&str> = LbAlgo::IPVS_SCHEDULERS.to_vec();
            known.extend(["maglev", "maglev_src"]);
            let hint = suggest::closest(&name, known.iter().copied())
                .map(|k| format!("did you mean `{k}`?"))
                .unwrap_or_else(|| format!("expected one of {}", known.join(", ")));
            ctx.d.error(
                &w.pos,
                context,
                format!("`{}` is not a scheduler", w.text),
                Some(hint),
            );
        }
    }
}

/// `persistence_timeout [SECONDS]` (keepalived: 6 minutes when no value; 0: none).
fn persistence(ctx: &mut Ctx<'_>, s: &mut Section, entry: &Stmt, context: &str) {
    let a = Args::new(entry, context);
    let seconds = match entry.args() {
        [] => 360,
        _ => match a.int(ctx.d, 0..=31 * 86_400) {
            Some(n) => n,
            None => return,
        },
    };
    if seconds == 0 {
        s.comment(
            format!("{}: no persistence (the default)", describe(entry)),
            Some(entry.pos()),
        );
        s.remove("persistence_timeout");
    } else {
        s.set(
            "persistence_timeout",
            Value::Str(format!("{seconds}s")),
            entry.pos(),
        );
    }
}

/// `sorry_server IP [PORT]` → `sorry_server.address` and `sorry_server.port`.
fn sorry_server(ctx: &mut Ctx<'_>, s: &mut Section, entry: &Stmt, context: &str) {
    let a = Args::new(entry, context);
    let (address, port) = match entry.args() {
        [address] => (ip_word(&a, ctx.d, address), None),
        [address, port] => (
            ip_word(&a, ctx.d, address),
            int_word(&a, ctx.d, port, 1..=65_535),
        ),
        _ => {
            ctx.d
                .error(entry.pos(), context, "write `sorry_server ADDR PORT`", None);
            return;
        }
    };
    let Some(address) = address else { return };
    // A later sorry_server replaces the earlier one, its method included.
    for key in SORRY_KEYS {
        s.remove(key);
    }
    s.set(SORRY_KEYS[0], Value::Str(address.to_string()), entry.pos());
    if let Some(port) = port {
        s.set(SORRY_KEYS[1], Value::Int(port), entry.pos());
    }
}

/// The sorry server's keys, as dotted keys so that each keeps its keepalived line.
const SORRY_KEYS: [&str; 6] = [
    "sorry_server.address",
    "sorry_server.port",
    "sorry_server.lb_kind",
    "sorry_server.tunnel_type",
    "sorry_server.tunnel_port",
    "sorry_server.tunnel_checksum",
];

/// The tunnel keys a TUN method's words set.
const TUNNEL_KEYS: [&str; 3] = ["tunnel_type", "tunnel_port", "tunnel_checksum"];

/// `lvs_method NAT|DR|TUN [type ipip|gue|gre] [port N] [nocsum|csum|remcsum]` (in a
/// virtual server, a real server, or as `sorry_server_lvs_method`), as keepalived 2.2.7
/// reads it: the `lb_kind` value and the tunnel keys its words set. The loader checks
/// the combination (GUE needs a port, ...) at the same line.
fn lb_kind(
    ctx: &mut Ctx<'_>,
    entry: &Stmt,
    context: &str,
) -> Option<(Value, Vec<(&'static str, Value)>)> {
    let Some((w, rest)) = entry.args().split_first() else {
        Args::new(entry, context).one(ctx.d)?;
        return None;
    };
    let kind = match w.text.to_ascii_uppercase().as_str() {
        kind @ ("DR" | "TUN" | "NAT") => Value::str(kind),
        _ => {
            ctx.d.error(
                &w.pos,
                context,
                format!("`{}` is not a forwarding method", w.text),
                Some("write DR, TUN or NAT".into()),
            );
            return None;
        }
    };
    let mut tunnel = Vec::new();
    let mut words = rest.iter();
    while let Some(word) = words.next() {
        match word.text.as_str() {
            "type" | "port" => {
                let Some(v) = words.next() else {
                    ctx.d.error(
                        &word.pos,
                        context,
                        format!("`{}` needs a value", word.text),
                        Some("write `type ipip|gue|gre` or `port N` (GUE)".into()),
                    );
                    return None;
                };
                if word.text == "type" {
                    tunnel.push((TUNNEL_KEYS[0], Value::str(&v.text)));
                } else {
                    let a = Args::new(entry, context);
                    tunnel.push((
                        TUNNEL_KEYS[1],
                        Value::Int(int_word(&a, ctx.d, v, 1..=65_535)?),
                    ));
                }
            }
            "nocsum" | "csum" | "remcsum" => tunnel.push((TUNNEL_KEYS[2], Value::str(&word.text))),
            _ => {
                ctx.d.error(
                    &word.pos,
                    context,
                    format!("Invalid tunnel option {}", word.text),
                    Some("after the method keepalived takes `type ipip|gue|gre`, `port N` and `nocsum|csum|remcsum`".into()),
                );
                return None;
            }
        }
    }
    Some((kind, tunnel))
}

/// Sets `lb_kind` and its tunnel keys (under `prefix`, e.g. `sorry_server.`) in `s`.
fn set_lb_kind(ctx: &mut Ctx<'_>, s: &mut Section, prefix: &str, entry: &Stmt, context: &str) {
    let Some((kind, tunnel)) = lb_kind(ctx, entry, context) else {
        return;
    };
    // A later method replaces the earlier one, its tunnel included.
    for key in TUNNEL_KEYS {
        s.remove(&format!("{prefix}{key}"));
    }
    s.set(&format!("{prefix}lb_kind"), kind, entry.pos());
    for (key, value) in tunnel {
        s.set(&format!("{prefix}{key}"), value, entry.pos());
    }
}

/// `sorry_server_lvs_method KIND` → `lb_kind` in the `sorry_server` table (which, as in
/// keepalived, must come first).
fn sorry_server_lb_kind(ctx: &mut Ctx<'_>, s: &mut Section, entry: &Stmt, context: &str) {
    if !s.has(SORRY_KEYS[0]) {
        ctx.d.error(
            entry.pos(),
            context,
            "sorry_server_lvs_method used without sorry_server",
            Some("write `sorry_server ADDR PORT` before it".into()),
        );
        return;
    }
    set_lb_kind(ctx, s, "sorry_server.", entry, context);
}

/// `real_server IP [PORT] { … }` → `[[virtual_server.real_server]]`.
fn real_server(ctx: &mut Ctx<'_>, stmt: &Stmt, vs_context: &str) -> Option<Section> {
    let context = format!("{vs_context}: {}", describe(stmt));
    let a = Args::new(stmt, &context);
    let (address, port) = match stmt.args() {
        [address] => (ip_word(&a, ctx.d, address), None),
        [address, port] => (
            ip_word(&a, ctx.d, address),
            int_word(&a, ctx.d, port, 0..=65_535),
        ),
        _ => {
            ctx.d.error(
                stmt.pos(),
                &context,
                "a real_server is `real_server ADDR PORT`",
                Some("write e.g. `real_server 192.168.1.21 80 {`".into()),
            );
            return None;
        }
    };
    let mut s = Section::new("[[virtual_server.real_server]]", Some(stmt.pos()));
    s.set("address", Value::Str(address?.to_string()), stmt.pos());
    if let Some(port) = port.filter(|&p| p != 0) {
        s.set("port", Value::Int(port), stmt.pos());
    }
    for entry in stmt.body() {
        let a = Args::new(entry, &context);
        let pos = entry.pos();
        let kw = entry.keyword();
        match kw {
            "weight" => {
                if let Some(n) = a.int(ctx.d, 0..=i64::from(REAL_WEIGHT_MAX)) {
                    s.set(kw, Value::Int(n), pos);
                }
            }
            "inhibit_on_failure" | "smtp_alert" => {
                if let Some(b) = a.flag(ctx.d) {
                    s.set(kw, Value::Bool(b), pos);
                }
            }
            "notify_up" | "notify_down" => {
                if let Some(v) = a.command(ctx.d) {
                    s.set(kw, v, pos);
                }
            }
            _ if INHERITED_SECONDS.contains(&kw) => {
                if let Some(v) = a.seconds(ctx.d) {
                    s.set(kw, v, pos);
                }
            }
            "retry" | "nb_get_retry" => {
                if let Some(n) = a.int(ctx.d, 0..=i64::from(u32::MAX)) {
                    s.set("retry", Value::Int(n), pos);
                }
            }
            "virtualhost" => {
                if let Some(v) = a.string(ctx.d) {
                    s.set(kw, v, pos);
                }
            }
            // The real server's own forwarding method (IPVS only when it differs from
            // the virtual server's: the loader says so at this line on XDP).
            "lb_kind" | "lvs_method" => set_lb_kind(ctx, &mut s, "", entry, &context),
            // IPVS's connection limits (the loader warns that XDP ignores them).
            "uthreshold" | "lthreshold" => {
                if let Some(n) = a.int(ctx.d, 0..=i64::from(u32::MAX)) {
                    s.set(kw, Value::Int(n), pos);
                }
            }
            _ => match checker::convert(ctx, entry, &context) {
                Some(checks) => {
                    for check in checks {
                        s.child(check);
                    }
                }
                None => {
                    if !ctx.rule(&mut s, entry, &context, REAL_RULES) {
                        ctx.unknown(entry, &context, REAL_KNOWN, REAL_RULES);
                    }
                }
            },
        }
    }
    Some(s)
}
