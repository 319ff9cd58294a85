//! A real server's checkers: `TCP_CHECK { … }` → `[[virtual_server.real_server.tcp_check]]`,
//! and likewise HTTP_GET (with its `url` blocks), SSL_GET, MISC_CHECK, SMTP_CHECK (one
//! smtp_check per `host` block), DNS_CHECK, UDP_CHECK and PING_CHECK; FILE_CHECK names a
//! `track_file` block, whose path it takes.

use super::global::script_user;
use super::{Ctx, Rule};
use crate::convert::lexer::Word;
use crate::convert::parser::Stmt;
use crate::convert::toml_out::{Section, Value};
use crate::convert::value::{int_word, Args};

/// keepalived's checker keywords and this project's keys.
const KINDS: &[(&str, &str)] = &[
    ("TCP_CHECK", "tcp_check"),
    ("HTTP_GET", "http_get"),
    ("SSL_GET", "ssl_get"),
    ("MISC_CHECK", "misc_check"),
    ("SMTP_CHECK", "smtp_check"),
    ("DNS_CHECK", "dns_check"),
    ("UDP_CHECK", "udp_check"),
    ("PING_CHECK", "ping_check"),
];

const COMMON: &[&str] = &[
    "connect_ip",
    "connect_port",
    "bindto",
    "connect_timeout",
    "retry",
    "nb_get_retry",
    "delay_before_retry",
    "warmup",
    "delay_loop",
];

const COMMON_RULES: &[(&str, Rule)] = &[
    (
        "bind_port",
        Rule::Approx("the checker's source port is chosen by the kernel"),
    ),
    (
        "bind_if",
        Rule::Approx("the checker's interface follows the routing table"),
    ),
    (
        "fwmark",
        Rule::Approx("the checker's packets carry no firewall mark"),
    ),
    (
        "alpha",
        Rule::Approx("alpha is set per virtual server here (its real servers start down)"),
    ),
    (
        "log_all_failures",
        Rule::Note("lb-daemon logs every verdict change: ignored"),
    ),
    ("dont_use_ipv4_mapped", Rule::Note("ignored")),
];

const HTTP: &[&str] = &["url", "virtualhost"];
const HTTP_RULES: &[(&str, Rule)] = &[
    (
        "http_protocol",
        Rule::Approx("requests are HTTP/1.1 with `Connection: close`"),
    ),
    (
        "fast_recovery",
        Rule::Approx("a failed real server comes back after one successful check"),
    ),
    (
        "enable_sni",
        Rule::Note("SNI is sent (the virtualhost, else the address), as here by default"),
    ),
    (
        "tls_compliant",
        Rule::Note("the TLS session is closed cleanly: ignored"),
    ),
];

const URL: &[&str] = &[
    "path",
    "digest",
    "status_code",
    "virtualhost",
    "regex",
    "regex_no_match",
];
const URL_RULES: &[(&str, Rule)] = &[
    (
        "regex_options",
        Rule::Approx("the regex is matched with Rust regex syntax, without PCRE options"),
    ),
    ("regex_stop", Rule::Approx("the whole body is read")),
    (
        "regex_min_offset",
        Rule::Approx("the regex is matched anywhere in the body"),
    ),
    (
        "regex_max_offset",
        Rule::Approx("the regex is matched anywhere in the body"),
    ),
];

const MISC: &[&str] = &[
    "misc_path",
    "misc_timeout",
    "misc_dynamic",
    "user",
    "retry",
    "nb_get_retry",
    "delay_before_retry",
    "warmup",
    "delay_loop",
];

const UDP_RULES: &[(&str, Rule)] = &[
    (
        "min_reply_length",
        Rule::Approx("any reply length is accepted"),
    ),
    (
        "max_reply_length",
        Rule::Approx("any reply length is accepted"),
    ),
];

const PING_RULES: &[(&str, Rule)] = &[(
    "connect_port",
    Rule::Note("ICMP echo has no port (keepalived ignores it too): dropped"),
)];

/// The checker sections of `stmt`; `None` when `stmt` is no checker.
pub(super) fn convert(ctx: &mut Ctx<'_>, stmt: &Stmt, rs_context: &str) -> Option<Vec<Section>> {
    if stmt.keyword() == "BFD_CHECK" {
        return Some(
            super::bfd::check(ctx, stmt, rs_context)
                .into_iter()
                .collect(),
        );
    }
    if stmt.keyword() == "FILE_CHECK" {
        return Some(file_check(ctx, stmt, rs_context).into_iter().collect());
    }
    let (_, key) = KINDS.iter().find(|(k, _)| *k == stmt.keyword())?;
    let context = format!("{rs_context}: {}", stmt.keyword());
    if !ctx.needs_block(stmt, &context) {
        return Some(Vec::new());
    }
    let header = format!("[[virtual_server.real_server.{key}]]");
    let mut s = Section::new(header.clone(), Some(stmt.pos()));
    let mut hosts = Vec::new();
    for entry in stmt.body() {
        let handled = match *key {
            "misc_check" => misc(ctx, &mut s, entry, &context),
            "ping_check" if entry.keyword() == "connect_port" => {
                ctx.rule(&mut s, entry, &context, PING_RULES)
            }
            _ => {
                common(ctx, &mut s, entry, &context)
                    || match *key {
                        "http_get" | "ssl_get" => http(ctx, &mut s, entry, &context),
                        "smtp_check" if entry.keyword() == "host" => {
                            hosts.push(entry);
                            true
                        }
                        "smtp_check" => smtp(ctx, &mut s, entry, &context),
                        "dns_check" => dns(ctx, &mut s, entry, &context),
                        "udp_check" => udp(ctx, &mut s, entry, &context),
                        _ => false,
                    }
            }
        };
        if handled {
            continue;
        }
        let mut rules: Vec<(&str, Rule)> = COMMON_RULES.to_vec();
        rules.extend(HTTP_RULES.iter().copied().filter(|_| key.ends_with("_get")));
        rules.extend(UDP_RULES.iter().copied().filter(|_| *key == "udp_check"));
        if !ctx.rule(&mut s, entry, &context, &rules) {
            ctx.unknown(entry, &context, &known(key), &rules);
        }
    }
    if hosts.is_empty() {
        return Some(vec![s]);
    }
    // One smtp_check per host, each with the settings written outside the hosts.
    let mut checks = Vec::new();
    for host in hosts {
        let host_context = format!("{context}: host");
        if !ctx.needs_block(host, &host_context) {
            continue;
        }
        let mut check = Section::new(header.clone(), Some(host.pos()));
        check.append(s.clone());
        for entry in host.body() {
            if !common(ctx, &mut check, entry, &host_context)
                && !ctx.rule(&mut check, entry, &host_context, COMMON_RULES)
            {
                ctx.unknown(entry, &host_context, COMMON, COMMON_RULES);
            }
        }
        checks.push(check);
    }
    Some(checks)
}

/// `FILE_CHECK { track_file NAME  weight W [reverse] }` → `file_check = { file, weight,
/// reverse }`. keepalived: without `weight`, the track_file's weight and reverse; with
/// it, `reverse` only if written (`check_file.c`).
fn file_check(ctx: &mut Ctx<'_>, stmt: &Stmt, rs_context: &str) -> Option<Section> {
    let context = format!("{rs_context}: FILE_CHECK");
    if !ctx.needs_block(stmt, &context) {
        return None;
    }
    let mut s = Section::new(
        "[[virtual_server.real_server.file_check]]",
        Some(stmt.pos()),
    );
    let mut file = None;
    let mut weight = None;
    for entry in stmt.body() {
        let a = Args::new(entry, &context);
        match entry.keyword() {
            "track_file" => {
                let Some(name) = a.one(ctx.d) else { continue };
                match ctx.track_files.get(&name.text) {
                    Some(f) => file = Some(f.clone()),
                    None => {
                        let known: Vec<&str> = ctx.track_files.keys().map(String::as_str).collect();
                        let hint =
                            crate::config::suggest::closest(&name.text, known.iter().copied())
                                .map(|k| format!("did you mean `{k}`?"))
                                .unwrap_or_else(|| {
                                    "define it: `track_file NAME { file /PATH }`".into()
                                });
                        ctx.d.error(
                            &name.pos,
                            &context,
                            format!("no track_file is named `{}`", name.text),
                            Some(hint),
                        );
                    }
                }
            }
            "weight" => match entry.args() {
                [w, option] if matches!(option.text.as_str(), "reverse" | "noreverse") => {
                    weight = int_word(&a, ctx.d, w, FILE_WEIGHT_RANGE)
                        .map(|w| (w, option.text == "reverse"));
                }
                _ => weight = a.int(ctx.d, FILE_WEIGHT_RANGE).map(|w| (w, false)),
            },
            _ => ctx.unknown(entry, &context, &["track_file", "weight"], &[]),
        }
    }
    let Some(file) = file else {
        if !stmt.body().iter().any(|e| e.keyword() == "track_file") {
            ctx.d.error(
                stmt.pos(),
                &context,
                "FILE_CHECK has no track_file",
                Some(
                    "add `track_file NAME`, naming a `track_file NAME { file /PATH }` block".into(),
                ),
            );
        }
        return None;
    };
    let (weight, reverse) = weight.unwrap_or((file.weight.unwrap_or(1), file.reverse));
    s.set("file", Value::Str(file.path), stmt.pos());
    s.set("weight", Value::Int(weight), stmt.pos());
    if reverse {
        s.set("reverse", Value::Bool(true), stmt.pos());
    }
    Some(s)
}

/// keepalived's FILE_CHECK weight range.
const FILE_WEIGHT_RANGE: std::ops::RangeInclusive<i64> = -(i32::MAX as i64)..=i32::MAX as i64;

fn known(key: &str) -> Vec<&'static str> {
    if key == "misc_check" {
        return MISC.to_vec();
    }
    let mut known: Vec<&str> = COMMON.to_vec();
    match key {
        "http_get" | "ssl_get" => known.extend(HTTP),
        "smtp_check" => known.extend(["helo_name", "host"]),
        "dns_check" => known.extend(["type", "name"]),
        "udp_check" => known.extend(["payload", "require_reply"]),
        _ => {}
    }
    known
}

/// The keys every connecting checker takes.
fn common(ctx: &mut Ctx<'_>, s: &mut Section, entry: &Stmt, context: &str) -> bool {
    let a = Args::new(entry, context);
    let pos = entry.pos();
    let kw = entry.keyword();
    match kw {
        "connect_ip" | "bindto" => {
            if let Some(ip) = a.ip(ctx.d) {
                s.set(kw, Value::Str(ip.to_string()), pos);
            }
        }
        "connect_port" => {
            if let Some(n) = a.int(ctx.d, 1..=65_535) {
                s.set(kw, Value::Int(n), pos);
            }
        }
        _ => return timing(ctx, s, entry, context),
    }
    true
}

/// The timing keys every checker takes, MISC_CHECK included.
fn timing(ctx: &mut Ctx<'_>, s: &mut Section, entry: &Stmt, context: &str) -> bool {
    let a = Args::new(entry, context);
    let pos = entry.pos();
    let kw = entry.keyword();
    match kw {
        "connect_timeout" | "delay_before_retry" | "warmup" | "delay_loop" => {
            if let Some(v) = a.seconds(ctx.d) {
                s.set(kw, v, pos);
            }
        }
        "retry" | "nb_get_retry" => {
            if let Some(n) = a.int(ctx.d, 0..=i64::from(u32::MAX)) {
                s.set("retry", Value::Int(n), pos);
            }
        }
        _ => return false,
    }
    true
}

fn http(ctx: &mut Ctx<'_>, s: &mut Section, entry: &Stmt, context: &str) -> bool {
    match entry.keyword() {
        "virtualhost" => {
            if let Some(v) = Args::new(entry, context).string(ctx.d) {
                s.set("virtualhost", v, entry.pos());
            }
        }
        "url" => {
            if ctx.needs_block(entry, context) {
                let header = format!("{}.url]]", header_base(s));
                let url = url(ctx, entry, context, header);
                s.child(url);
            }
        }
        _ => return false,
    }
    true
}

/// `[[virtual_server.real_server.http_get` of `[[virtual_server.real_server.http_get]]`.
fn header_base(s: &Section) -> String {
    s.header().trim_end_matches(']').to_owned()
}

/// `url { path … digest … status_code … }` → `[[….url]]`.
fn url(ctx: &mut Ctx<'_>, stmt: &Stmt, context: &str, header: String) -> Section {
    let context = format!("{context}: url");
    let mut u = Section::new(header, Some(stmt.pos()));
    for entry in stmt.body() {
        let a = Args::new(entry, &context);
        let pos = entry.pos();
        match entry.keyword() {
            kw @ ("path" | "digest" | "virtualhost" | "regex") => {
                if let Some(v) = a.string(ctx.d) {
                    regex_note(ctx, &mut u, entry, &context, kw);
                    u.set(kw, v, pos);
                }
            }
            "status_code" => {
                if let Some(v) = status_codes(ctx, entry, &context) {
                    u.set("status_code", v, pos);
                }
            }
            "regex_no_match" => {
                if a.none(ctx.d) {
                    u.set("regex_no_match", Value::Bool(true), pos);
                }
            }
            _ => {
                if !ctx.rule(&mut u, entry, &context, URL_RULES) {
                    ctx.unknown(entry, &context, URL, URL_RULES);
                }
            }
        }
    }
    if !u.has("path") {
        ctx.d.error(
            stmt.pos(),
            &context,
            "a url needs `path`",
            Some("add `path /HEALTH-CHECK-PATH` to the block".into()),
        );
    }
    u
}

/// keepalived's regexes are PCRE2, this project's Rust `regex`: the common syntax is the
/// same, look-around and backreferences are not.
fn regex_note(ctx: &mut Ctx<'_>, u: &mut Section, entry: &Stmt, context: &str, kw: &str) {
    if kw == "regex" {
        ctx.approx(
            u,
            entry,
            context,
            "matched with Rust regex syntax (no look-around or backreferences, unlike PCRE2)",
        );
    }
}

/// `status_code 200`, `status_code 200-299 401`: a code, a range, or a list of both.
fn status_codes(ctx: &mut Ctx<'_>, entry: &Stmt, context: &str) -> Option<Value> {
    let a = Args::new(entry, context);
    let mut values = Vec::new();
    for word in entry.args() {
        let value = match word.text.split_once('-') {
            Some((low, high)) => {
                let low = int_word(&a, ctx.d, &word_with(word, low), 100..=599)?;
                let high = int_word(&a, ctx.d, &word_with(word, high), 100..=599)?;
                Value::Str(format!("{low}-{high}"))
            }
            None => Value::Int(int_word(&a, ctx.d, word, 100..=599)?),
        };
        values.push(value);
    }
    match values.len() {
        0 => {
            a.one(ctx.d);
            None
        }
        1 => values.pop(),
        _ => Some(Value::Array(values)),
    }
}

fn word_with(word: &Word, text: &str) -> Word {
    Word {
        text: text.to_owned(),
        ..word.clone()
    }
}

fn misc(ctx: &mut Ctx<'_>, s: &mut Section, entry: &Stmt, context: &str) -> bool {
    let a = Args::new(entry, context);
    let pos = entry.pos();
    match entry.keyword() {
        "misc_path" => {
            if let Some(v) = a.command(ctx.d) {
                s.set("misc_path", v, pos);
            }
        }
        "misc_timeout" => {
            if let Some(v) = a.seconds(ctx.d) {
                s.set("misc_timeout", v, pos);
            }
        }
        "misc_dynamic" => {
            if let Some(b) = a.flag(ctx.d) {
                s.set("misc_dynamic", Value::Bool(b), pos);
            }
        }
        "user" => script_user(ctx, s, entry, context, "user"),
        _ => return timing(ctx, s, entry, context),
    }
    true
}

fn smtp(ctx: &mut Ctx<'_>, s: &mut Section, entry: &Stmt, context: &str) -> bool {
    if entry.keyword() != "helo_name" {
        return false;
    }
    if let Some(v) = Args::new(entry, context).string(ctx.d) {
        s.set("helo_name", v, entry.pos());
    }
    true
}

fn dns(ctx: &mut Ctx<'_>, s: &mut Section, entry: &Stmt, context: &str) -> bool {
    let a = Args::new(entry, context);
    match entry.keyword() {
        "type" => {
            if let Some(w) = a.one(ctx.d) {
                s.set("type", Value::Str(w.text.to_ascii_uppercase()), entry.pos());
            }
        }
        "name" => {
            if let Some(v) = a.string(ctx.d) {
                s.set("name", v, entry.pos());
            }
        }
        _ => return false,
    }
    true
}

/// keepalived's UDP_CHECK payload is hexadecimal; `require_reply` may name the expected
/// reply (hexadecimal too), which is not compared here.
fn udp(ctx: &mut Ctx<'_>, s: &mut Section, entry: &Stmt, context: &str) -> bool {
    let a = Args::new(entry, context);
    match entry.keyword() {
        "payload" => {
            if let Some(w) = a.one(ctx.d) {
                s.set("payload_hex", Value::str(&w.text), entry.pos());
            }
        }
        "require_reply" => {
            if !entry.args().is_empty() {
                ctx.approx(
                    s,
                    entry,
                    context,
                    "any reply counts: its content is not compared",
                );
            }
            s.set("require_reply", Value::Bool(true), entry.pos());
        }
        _ => return false,
    }
    true
}
