//! Firewall-mark virtual servers in keepalived.conf: `virtual_server fwmark N { … }` and
//! the `fwmark N [inet|inet6]` entries of a `virtual_server_group` used by `virtual_server
//! group NAME { … }`. Each becomes `[[virtual_server]] fwmark = N`: an IPVS firewall-mark
//! service as keepalived makes it; on XDP (which runs before netfilter and sees no mark)
//! a group service over the (address, port)s the mark selects, which the block lists with
//! lb-daemon's own `lb_match [fwmark N] ADDR:PORT …` lines (written as `match`).

use std::net::SocketAddr;

use super::Ctx;
use crate::config::FWMARK_MAX;
use crate::convert::lexer::Pos;
use crate::convert::parser::Stmt;
use crate::convert::toml_out::{Section, Value};
use crate::convert::value::{int_word, Args};

/// A mark, with the family a group entry gives it (`inet` / `inet6`).
#[derive(Clone, Debug)]
pub(crate) struct Mark {
    pub mark: u32,
    /// `Some(true)`: `inet6`; `Some(false)`: `inet`; `None`: not written.
    pub ipv6: Option<bool>,
    pub pos: Pos,
}

/// One `lb_match` line: the mark it names (`lb_match fwmark N …`), and its entries.
struct MatchLine {
    mark: Option<u32>,
    pos: Pos,
    addrs: Vec<SocketAddr>,
}

fn mark_word(ctx: &mut Ctx<'_>, a: &Args<'_>, word: &crate::convert::lexer::Word) -> Option<u32> {
    int_word(a, ctx.d, word, 1..=i64::from(FWMARK_MAX)).map(|m| m as u32)
}

/// The mark of `virtual_server fwmark N`.
pub(super) fn of_block(ctx: &mut Ctx<'_>, stmt: &Stmt, context: &str) -> Option<Mark> {
    let a = Args::new(stmt, context);
    let word = stmt.args().get(1)?;
    Some(Mark {
        mark: mark_word(ctx, &a, word)?,
        ipv6: None,
        pos: stmt.pos().clone(),
    })
}

/// A group's `fwmark N [inet|inet6]` line.
pub(super) fn group_entry(
    ctx: &mut Ctx<'_>,
    line: &Stmt,
    a: &Args<'_>,
    context: &str,
) -> Option<Mark> {
    let (mark, family) = match line.args() {
        [mark] => (mark, None),
        [mark, family] => (mark, Some(family)),
        _ => {
            ctx.d.error(
                line.pos(),
                context,
                "a group's fwmark entry is `fwmark N [inet|inet6]`",
                Some("write e.g. `fwmark 5`".into()),
            );
            return None;
        }
    };
    let ipv6 = match family.map(|w| w.text.as_str()) {
        None => None,
        Some("inet") => Some(false),
        Some("inet6") => Some(true),
        Some(other) => {
            let at = family.map_or(line.pos(), |w| &w.pos);
            ctx.d.error(
                at,
                context,
                format!("`{other}` is not an address family"),
                Some("write inet or inet6 (or nothing)".into()),
            );
            return None;
        }
    };
    Some(Mark {
        mark: mark_word(ctx, a, mark)?,
        ipv6,
        pos: line.pos().clone(),
    })
}

/// The block's `lb_match [fwmark N] ADDR:PORT …` lines.
fn match_lines(ctx: &mut Ctx<'_>, stmt: &Stmt, context: &str) -> Vec<MatchLine> {
    let mut lines = Vec::new();
    for entry in stmt.body().iter().filter(|e| e.keyword() == "lb_match") {
        let a = Args::new(entry, context);
        let (mark, rest) = match entry.args() {
            [kw, mark, rest @ ..] if kw.text == "fwmark" => match mark_word(ctx, &a, mark) {
                Some(m) => (Some(m), rest),
                None => continue,
            },
            rest => (None, rest),
        };
        let mut addrs = Vec::new();
        for w in rest {
            match w.text.parse::<SocketAddr>() {
                Ok(sa) => addrs.push(sa),
                Err(_) => ctx.d.error(
                    &w.pos,
                    context,
                    format!("`{}` is not ADDRESS:PORT", w.text),
                    Some("write e.g. `lb_match 192.168.1.100:80 192.168.1.100:443`".into()),
                ),
            }
        }
        lines.push(MatchLine {
            mark,
            pos: entry.pos().clone(),
            addrs,
        });
    }
    lines
}

/// The `match` entries of each of `marks`, from the block's `lb_match` lines (a line
/// without a mark belongs to the only one); `None` where none were given.
fn matches_by_mark(
    ctx: &mut Ctx<'_>,
    stmt: &Stmt,
    context: &str,
    marks: &[Mark],
) -> Vec<Option<Vec<SocketAddr>>> {
    let mut out: Vec<Option<Vec<SocketAddr>>> = vec![None; marks.len()];
    let listed = || {
        marks
            .iter()
            .map(|m| m.mark.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    for line in match_lines(ctx, stmt, context) {
        let index = match line.mark {
            Some(m) => marks.iter().position(|x| x.mark == m).or_else(|| {
                ctx.d.error(
                    &line.pos,
                    context,
                    format!("lb_match names fwmark {m}, which this virtual server does not have"),
                    Some(if marks.is_empty() {
                        "lb_match applies to fwmark virtual servers (and groups with fwmark entries) only: remove it".into()
                    } else {
                        format!("its marks: {}", listed())
                    }),
                );
                None
            }),
            None if marks.len() == 1 => Some(0),
            None if marks.is_empty() => {
                ctx.d.error(
                    &line.pos,
                    context,
                    "lb_match applies to fwmark virtual servers (and groups with fwmark entries) only",
                    Some("remove it, or add a `fwmark N` entry to the group".into()),
                );
                None
            }
            None => {
                ctx.d.error(
                    &line.pos,
                    context,
                    format!("the group has several fwmark entries ({}): say which mark this lb_match line is for", listed()),
                    Some("write `lb_match fwmark N ADDR:PORT ...`".into()),
                );
                None
            }
        };
        if let Some(i) = index {
            out[i].get_or_insert_with(Vec::new).extend(line.addrs);
        }
    }
    out
}

/// Whether the marks can be written (each has its matches on XDP, families agree);
/// reports what cannot. Call before the body is converted.
pub(super) fn check(
    ctx: &mut Ctx<'_>,
    stmt: &Stmt,
    context: &str,
    marks: &[Mark],
) -> Vec<Option<Vec<SocketAddr>>> {
    let matches = matches_by_mark(ctx, stmt, context, marks);
    for (m, found) in marks.iter().zip(&matches) {
        let mark = m.mark;
        match found {
            None if !ctx.ipvs => ctx.d.error(
                &m.pos,
                context,
                format!("fwmark {mark} cannot be matched on the XDP data plane without the addresses and ports the mark selects (XDP runs before netfilter and sees no mark)"),
                Some(format!(
                    "add `lb_match ADDR:PORT ...` to the virtual_server block (what your firewall marks {mark}, e.g. `lb_match 192.168.1.100:80 192.168.1.100:443`; in a group with several marks `lb_match fwmark {mark} ...`), or write in the TOML `fwmark = {mark}` with `match = [\"192.168.1.100:80\", \"192.168.1.100:443\"]`, or set `dataplane ipvs` in global_defs"
                )),
            ),
            _ => {
                let v6 = found
                    .as_ref()
                    .and_then(|l| l.first())
                    .is_some_and(SocketAddr::is_ipv6);
                if let Some(want) = m.ipv6 {
                    if want != v6 {
                        let family = if want { "inet6" } else { "inet" };
                        ctx.d.error(
                            &m.pos,
                            context,
                            format!("fwmark {mark} is {family}, but its lb_match entries are not (or there are none to say so)"),
                            Some(format!("list {} addresses with `lb_match fwmark {mark} ADDR:PORT ...`", if want { "IPv6 ([ADDR]:PORT)" } else { "IPv4" })),
                        );
                    }
                }
            }
        }
    }
    matches
}

/// The `[[virtual_server]]` of `mark` with `matches` and the block's `body`.
pub(super) fn section(
    mark: &Mark,
    matches: Option<&[SocketAddr]>,
    body: &Section,
    from: Option<&str>,
) -> Section {
    let mut s = Section::new("[[virtual_server]]", Some(&mark.pos));
    if let Some(from) = from {
        s.comment(format!("from {from}"), Some(&mark.pos));
    }
    s.set("fwmark", Value::Int(i64::from(mark.mark)), &mark.pos);
    if let Some(list) = matches.filter(|l| !l.is_empty()) {
        let values = list.iter().map(|sa| Value::Str(sa.to_string())).collect();
        s.set("match", Value::Array(values), &mark.pos);
    }
    s.append(body.clone());
    s
}
