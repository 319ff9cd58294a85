//! `vrrp_instance NAME { … }` → `[[vrrp_instance]]`.

use super::routes;
use super::script::block_name;
use super::server_group::addresses;
use super::{Ctx, Rule};
use crate::config::{suggest, VirtualAddress, WEIGHT_RANGE};
use crate::convert::lexer::Word;
use crate::convert::parser::{describe, Stmt};
use crate::convert::toml_out::{Section, Value};
use crate::convert::value::{int_word, ip_word, Args};

const KNOWN: &[&str] = &[
    "lvs_sync_daemon_interface",
    "state",
    "interface",
    "virtual_router_id",
    "priority",
    "advert_int",
    "version",
    "nopreempt",
    "preempt_delay",
    "authentication",
    "unicast_src_ip",
    "mcast_src_ip",
    "unicast_peer",
    "mcast_dst_ip",
    "virtual_ipaddress",
    "virtual_ipaddress_excluded",
    "virtual_routes",
    "virtual_rules",
    "track_interface",
    "track_script",
    "track_file",
    "track_process",
    "track_bfd",
    "notify_master",
    "notify_backup",
    "notify_fault",
    "notify_stop",
    "notify",
    "notify_master_rx_lower_pri",
    "garp_master_delay",
    "garp_master_repeat",
    "garp_master_refresh",
    "smtp_alert",
    "strict_mode",
    "accept",
    "no_accept",
    "use_vmac",
    "vmac_xmit_base",
];

const VMAC: Rule = Rule::Refuse(
    "not supported: use `use_vmac` (a macvlan with the virtual router MAC) or remove it",
);

const RULES: &[(&str, Rule)] = &[
    ("preempt", Rule::Note("preemption is the default")),
    (
        "debug",
        Rule::Note("ignored (RUST_LOG=debug shows lb-daemon's detail)"),
    ),
    (
        "skip_check_adv_addr",
        Rule::Note("an optimisation of keepalived's advert checks: ignored"),
    ),
    (
        "native_ipv6",
        Rule::Note("the family follows the virtual addresses: ignored"),
    ),
    (
        "kernel_rx_buf_size",
        Rule::Note("keepalived socket tuning: ignored"),
    ),
    (
        "linkbeat_use_polling",
        Rule::Note("lb-daemon watches links through netlink: ignored"),
    ),
    (
        "check_unicast_src",
        Rule::Approx("lb-daemon accepts unicast adverts from any source"),
    ),
    (
        "dont_track_primary",
        Rule::Approx("the instance's interface going down still means FAULT"),
    ),
    (
        "promote_secondaries",
        Rule::Approx("the kernel's promote_secondaries setting is left as it is"),
    ),
    (
        "unicast_ttl",
        Rule::Approx("unicast adverts are sent with TTL 255"),
    ),
    (
        "unicast_fault_no_peer",
        Rule::Approx("an instance with no unicast peer is not put in FAULT"),
    ),
    (
        "old_unicast_checksum",
        Rule::Approx("adverts use the RFC checksum (keepalived ≥ 2.2's)"),
    ),
    (
        "track_src_ip",
        Rule::Approx("the source address is not tracked"),
    ),
    (
        "garp_master_refresh_repeat",
        Rule::Approx("each refresh sends one gratuitous ARP"),
    ),
    (
        "garp_lower_prio_delay",
        Rule::Approx("no gratuitous ARP burst after a lower-priority advert"),
    ),
    (
        "garp_lower_prio_repeat",
        Rule::Approx("no gratuitous ARP burst after a lower-priority advert"),
    ),
    (
        "garp_extra_if",
        Rule::Approx("gratuitous ARPs are sent on the VIP's own interface only"),
    ),
    (
        "vmac_garp_intvl",
        Rule::Note("no VMAC interfaces in lb-daemon: ignored"),
    ),
    (
        "down_timer_adverts",
        Rule::Approx("the master-down timer is RFC 5798's (3 adverts plus skew)"),
    ),
    (
        "lower_prio_no_advert",
        Rule::Approx("the master always answers a lower-priority advert with its own"),
    ),
    (
        "higher_prio_send_advert",
        Rule::Approx("no extra advert before yielding to a higher priority"),
    ),
    (
        "notify_priority_changes",
        Rule::Approx("notify scripts run on state changes only"),
    ),
    (
        "notify_deleted",
        Rule::Approx("not run: notify_stop runs when the instance stops"),
    ),
    ("use_vmac_addr", VMAC),
    ("use_ipvlan", VMAC),
    (
        "vrf",
        Rule::Refuse("VRFs are not supported: run lb-daemon in the VRF's context and remove vrf"),
    ),
];

pub(super) fn convert(ctx: &mut Ctx<'_>, stmt: &Stmt) -> Option<Section> {
    let name = block_name(ctx, stmt)?;
    let context = format!("vrrp_instance {name}");
    let mut s = Section::new("[[vrrp_instance]]", Some(stmt.pos()));
    s.set("name", Value::str(&name), stmt.pos());
    let mut vips: Vec<Value> = Vec::new();
    for entry in stmt.body() {
        let a = Args::new(entry, &context);
        let pos = entry.pos();
        let kw = entry.keyword();
        match kw {
            "state" => {
                if let Some(w) = a.one(ctx.d) {
                    match w.text.to_ascii_uppercase().as_str() {
                        state @ ("MASTER" | "BACKUP") => s.set("state", Value::str(state), pos),
                        _ => ctx.d.error(
                            &w.pos,
                            &context,
                            format!("`{}` is not a state", w.text),
                            Some("write `state MASTER` or `state BACKUP`".into()),
                        ),
                    }
                }
            }
            "interface" => {
                if let Some(v) = a.string(ctx.d) {
                    s.set("interface", v, pos);
                }
            }
            "lvs_sync_daemon_interface" => super::sync::instance(ctx, entry, &name, &context),
            "virtual_router_id" | "priority" => {
                if let Some(n) = a.int(ctx.d, 1..=255) {
                    s.set(kw, Value::Int(n), pos);
                }
            }
            "advert_int" | "preempt_delay" | "garp_master_delay" | "garp_master_refresh" => {
                if let Some(v) = a.seconds(ctx.d) {
                    s.set(kw, v, pos);
                }
            }
            "garp_master_repeat" => {
                if let Some(n) = a.int(ctx.d, 0..=i64::from(u32::MAX)) {
                    s.set(kw, Value::Int(n), pos);
                }
            }
            "version" => {
                if let Some(n) = a.int(ctx.d, 2..=3) {
                    s.set(kw, Value::Int(n), pos);
                }
            }
            "smtp_alert" => {
                if let Some(b) = a.flag(ctx.d) {
                    s.set(kw, Value::Bool(b), pos);
                }
            }
            "use_vmac" => match entry.args() {
                [] => s.set(kw, Value::Bool(true), pos),
                [name] => s.set(kw, Value::str(&name.text), pos),
                _ => {
                    a.one(ctx.d);
                }
            },
            "vmac_xmit_base" => {
                if a.none(ctx.d) {
                    s.set(kw, Value::Bool(true), pos);
                }
            }
            "strict_mode" => {
                if let Some(b) = a.flag(ctx.d) {
                    s.set(kw, Value::Bool(b), pos);
                    if b {
                        ctx.approx(&mut s, entry, &context, super::global::NO_ACCEPT);
                    }
                }
            }
            "accept" => {
                if a.none(ctx.d) {
                    s.set("accept", Value::Bool(true), pos);
                }
            }
            "no_accept" => {
                if a.none(ctx.d) {
                    s.set("accept", Value::Bool(false), pos);
                    ctx.approx(&mut s, entry, &context, super::global::NO_ACCEPT);
                }
            }
            "nopreempt" => {
                if a.none(ctx.d) {
                    s.set("nopreempt", Value::Bool(true), pos);
                }
            }
            "authentication" => authentication(ctx, &mut s, entry, &context),
            "unicast_src_ip" | "mcast_src_ip" => {
                if let Some(ip) = a.ip(ctx.d) {
                    s.set("unicast_src_ip", Value::Str(ip.to_string()), pos);
                }
            }
            "mcast_dst_ip" => {
                if let Some(ip) = a.ip(ctx.d) {
                    s.set("mcast_group", Value::Str(ip.to_string()), pos);
                }
            }
            "unicast_peer" => unicast_peers(ctx, &mut s, entry, &context),
            "virtual_ipaddress" => {
                if ctx.needs_block(entry, &context) {
                    for line in entry.body() {
                        vips.extend(virtual_address(ctx, &mut s, line, &context));
                    }
                    s.set("virtual_ipaddress", Value::Array(vips.clone()), pos);
                }
            }
            "virtual_ipaddress_excluded" => {
                if ctx.needs_block(entry, &context) {
                    let mut excluded = Vec::new();
                    for line in entry.body() {
                        excluded.extend(virtual_address(ctx, &mut s, line, &context));
                    }
                    s.set("virtual_ipaddress_excluded", Value::Array(excluded), pos);
                }
            }
            "virtual_routes" | "virtual_rules" => {
                if ctx.needs_block(entry, &context) {
                    let items = routes::lines(ctx, entry, &context, kw == "virtual_rules");
                    s.set(kw, Value::Array(items), pos);
                }
            }
            "track_interface" | "track_script" | "track_file" | "track_process" | "track_bfd" => {
                if ctx.needs_block(entry, &context) {
                    let items = tracked(ctx, entry, &context);
                    s.set(kw, Value::Array(items), pos);
                }
            }
            "notify_master"
            | "notify_backup"
            | "notify_fault"
            | "notify_stop"
            | "notify"
            | "notify_master_rx_lower_pri" => {
                if let Some(v) = a.command(ctx.d) {
                    s.set(kw, v, pos);
                }
            }
            _ => {
                if !ctx.rule(&mut s, entry, &context, RULES) {
                    ctx.unknown(entry, &context, KNOWN, RULES);
                }
            }
        }
    }
    if !s.has("interface") {
        match ctx.default_interface.clone() {
            Some((dev, pos)) => s.set("interface", Value::Str(dev), &pos),
            None => ctx.d.error(
                stmt.pos(),
                &context,
                "the instance names no interface",
                Some("add `interface IFACE` (or `default_interface IFACE` in global_defs)".into()),
            ),
        }
    }
    if !s.has("virtual_router_id") {
        ctx.d.error(
            stmt.pos(),
            &context,
            "the instance has no virtual_router_id",
            Some(
                "add `virtual_router_id N` (1 to 255, the same on every router of the group)"
                    .into(),
            ),
        );
    }
    Some(s)
}

/// `authentication { auth_type PASS  auth_pass SECRET }`.
fn authentication(ctx: &mut Ctx<'_>, s: &mut Section, stmt: &Stmt, context: &str) {
    if !ctx.needs_block(stmt, context) {
        return;
    }
    let mut auth_type = None;
    let mut type_written = false;
    let mut auth_pass = None;
    for entry in stmt.body() {
        let a = Args::new(entry, context);
        match entry.keyword() {
            "auth_type" => {
                type_written = true;
                let Some(w) = a.one(ctx.d) else { continue };
                match w.text.to_ascii_uppercase().as_str() {
                    "PASS" => auth_type = Some("PASS"),
                    "AH" => auth_type = Some("AH"),
                    _ => ctx.d.error(
                        &w.pos,
                        context,
                        format!("`{}` is not an auth_type", w.text),
                        Some("write `auth_type PASS` or `auth_type AH`".into()),
                    ),
                }
            }
            "auth_pass" => auth_pass = a.one(ctx.d).map(|w| w.text.clone()),
            _ => ctx.unknown(entry, context, &["auth_type", "auth_pass"], &[]),
        }
    }
    match (auth_type, auth_pass) {
        (Some(kind), Some(pass)) => s.set(
            "authentication",
            Value::Table(vec![
                ("auth_type".into(), Value::str(kind)),
                ("auth_pass".into(), Value::Str(pass)),
            ]),
            stmt.pos(),
        ),
        (Some(_), None) => ctx.d.error(
            stmt.pos(),
            context,
            "authentication without auth_pass",
            Some("add `auth_pass SECRET` (at most 8 characters count)".into()),
        ),
        (None, Some(_)) if !type_written => ctx.d.error(
            stmt.pos(),
            context,
            "authentication without auth_type",
            Some("add `auth_type PASS`".into()),
        ),
        _ => {}
    }
}

/// `unicast_peer { IP [min_ttl N] [max_ttl N] … }`.
fn unicast_peers(ctx: &mut Ctx<'_>, s: &mut Section, stmt: &Stmt, context: &str) {
    if !ctx.needs_block(stmt, context) {
        return;
    }
    let mut peers = Vec::new();
    for line in stmt.body() {
        let a = Args::new(line, context);
        if let Some(ip) = ip_word(&a, ctx.d, &line.words[0]) {
            peers.push(Value::Str(ip.to_string()));
        }
        if !line.args().is_empty() {
            ctx.approx(
                s,
                line,
                context,
                "lb-daemon does not check the adverts' TTL",
            );
        }
    }
    s.set("unicast_peers", Value::Array(peers), stmt.pos());
}

/// One `virtual_ipaddress` line: `ADDR[/LEN] [dev IF] [label L] [brd B] [scope S] …`;
/// an IPv4 range (`192.168.1.10-20/24`) is one address per line here.
pub(super) fn virtual_address(
    ctx: &mut Ctx<'_>,
    s: &mut Section,
    line: &Stmt,
    context: &str,
) -> Vec<Value> {
    let first = &line.words[0];
    let (addr, prefix) = match first.text.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (first.text.as_str(), None),
    };
    let mut kept: Vec<String> = Vec::new();
    let mut approximated: Vec<&str> = Vec::new();
    let mut words = line.args().iter();
    while let Some(option) = words.next() {
        match option.text.as_str() {
            "dev" | "label" => match words.next() {
                Some(value) => kept.push(format!("{} {}", option.text, value.text)),
                None => missing_value(ctx, option, context),
            },
            // keepalived reads it on static addresses only (elsewhere: ignored, logged).
            "track_group" if context == "static_ipaddress" => match words.next() {
                Some(value) => kept.push(format!("{} {}", option.text, value.text)),
                None => missing_value(ctx, option, context),
            },
            "brd" | "broadcast" | "scope" | "preferred_lft" | "metric" | "track_group" => {
                if words.next().is_none() {
                    missing_value(ctx, option, context);
                }
                approximated.push(&option.text);
            }
            "no_track" | "home" | "-nodad" | "nodad" | "noprefixroute" | "autojoin" => {
                approximated.push(&option.text);
            }
            other => {
                let known = [
                    "dev",
                    "label",
                    "brd",
                    "broadcast",
                    "scope",
                    "preferred_lft",
                    "no_track",
                    "home",
                    "nodad",
                    "noprefixroute",
                    "autojoin",
                ];
                let hint = suggest::closest(other, known)
                    .map(|k| format!("did you mean `{k}`?"))
                    .unwrap_or_else(|| "write ADDR[/LEN] [dev IFACE] [label LABEL]".into());
                ctx.d.error(
                    &option.pos,
                    context,
                    format!("unknown virtual_ipaddress option `{other}`"),
                    Some(hint),
                );
                // What follows is the unknown option's value, most likely.
                break;
            }
        }
    }
    if !approximated.is_empty() {
        ctx.approx(
            s,
            line,
            context,
            &format!(
                "{} not applied: the address is added with its prefix, dev and label only",
                approximated.join(", ")
            ),
        );
    }
    let Some(list) = addresses(ctx, first, addr, context) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for ip in list {
        let mut text = match prefix {
            Some(p) => format!("{ip}/{p}"),
            None => ip.to_string(),
        };
        for option in &kept {
            text.push(' ');
            text.push_str(option);
        }
        match text.parse::<VirtualAddress>() {
            Ok(_) => out.push(Value::Str(text)),
            Err(e) => {
                ctx.d.error(
                    &first.pos,
                    context,
                    format!("virtual address `{}`: {e}", describe(line)),
                    Some("write ADDR[/LEN] [dev IFACE] [label LABEL], e.g. 192.168.1.100/24 dev eth0".into()),
                );
                return Vec::new();
            }
        }
    }
    out
}

fn missing_value(ctx: &mut Ctx<'_>, option: &Word, context: &str) {
    ctx.d.error(
        &option.pos,
        context,
        format!("`{}` needs a value", option.text),
        None,
    );
}

/// `track_interface`, `track_script`, `track_file` lines: `NAME [weight W]`.
pub(super) fn tracked(ctx: &mut Ctx<'_>, stmt: &Stmt, context: &str) -> Vec<Value> {
    let mut items = Vec::new();
    for line in stmt.body() {
        let a = Args::new(line, context);
        let name = &line.words[0];
        let mut reverse = None;
        let weight = match line.args() {
            [] => None,
            [w, value, r]
                if w.text == "weight" && matches!(r.text.as_str(), "reverse" | "noreverse") =>
            {
                reverse = Some(r.text == "reverse");
                match int_word(&a, ctx.d, value, WEIGHT_RANGE) {
                    Some(n) => Some(n),
                    None => continue,
                }
            }
            [w, value] if w.text == "weight" => match int_word(&a, ctx.d, value, WEIGHT_RANGE) {
                Some(n) => Some(n),
                None => continue,
            },
            [other, ..] => {
                ctx.d.error(
                    &other.pos,
                    context,
                    format!("unexpected `{}` after `{}`", other.text, name.text),
                    Some(format!("write `{} [weight W]`", name.text)),
                );
                continue;
            }
        };
        if stmt.keyword() == "track_script" && ctx.scriptless.contains(&name.text) {
            ctx.d.warning(
                &name.pos,
                context,
                format!(
                    "track_script `{}`: that vrrp_script has no `script` line and is left out, so this entry is ignored (keepalived: \"track script not found, ignoring\")",
                    name.text
                ),
                None,
            );
            continue;
        }
        let target = if stmt.keyword() == "track_file" {
            match ctx.track_files.get(&name.text) {
                Some(file) => {
                    // keepalived: the line's weight replaces the file's; `reverse` is the
                    // file's unless the line says (`vrrp_alloc_track_file`).
                    let (weight, reverse) = match weight {
                        Some(w) => (Some(w), reverse.unwrap_or(file.reverse)),
                        None => (file.weight, file.reverse),
                    };
                    file_entry(file.path.clone(), weight, reverse)
                }
                None => {
                    let known: Vec<&str> = ctx.track_files.keys().map(String::as_str).collect();
                    let hint = suggest::closest(&name.text, known.iter().copied())
                        .map(|k| format!("did you mean `{k}`?"))
                        .unwrap_or_else(|| "define it: `track_file NAME { file /PATH }`".into());
                    ctx.d.error(
                        &name.pos,
                        context,
                        format!("no track_file is named `{}`", name.text),
                        Some(hint),
                    );
                    continue;
                }
            }
        } else if reverse == Some(true) {
            file_entry(name.text.clone(), weight, true)
        } else {
            entry(name.text.clone(), weight)
        };
        items.push(target);
    }
    items
}

fn file_entry(path: String, weight: Option<i64>, reverse: bool) -> Value {
    if !reverse {
        return entry(path, weight);
    }
    Value::Table(vec![
        ("name".into(), Value::Str(path)),
        ("weight".into(), Value::Int(weight.unwrap_or(1))),
        ("reverse".into(), Value::Bool(true)),
    ])
}

fn entry(name: String, weight: Option<i64>) -> Value {
    match weight {
        None => Value::Str(name),
        Some(w) => Value::Table(vec![
            ("name".into(), Value::Str(name)),
            ("weight".into(), Value::Int(w)),
        ]),
    }
}
