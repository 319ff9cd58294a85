//! `virtual_server_group NAME { ADDR[-END] PORT … fwmark N [inet|inet6] … }`: read here,
//! used by `virtual_server group NAME`, which becomes one `[[virtual_server]]` per
//! address and port, and one `fwmark = N` virtual server per `fwmark` entry
//! ([`super::fwmark`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::fwmark::Mark;
use super::script::block_name;
use super::Ctx;
use crate::convert::lexer::{Pos, Word};
use crate::convert::parser::Stmt;
use crate::convert::value::{int_word, Args};

/// Longest address range expanded (`192.168.1.1-254` is fine, a /16 is a mistake).
const MAX_RANGE: u32 = 256;

/// One entry of a group, ranges expanded.
#[derive(Clone, Debug)]
pub(crate) enum GroupEntry {
    Address {
        address: IpAddr,
        port: u16,
        pos: Pos,
    },
    Fwmark(Mark),
}

pub(super) fn read(ctx: &mut Ctx<'_>, stmt: &Stmt) {
    let Some(name) = block_name(ctx, stmt) else {
        return;
    };
    let context = format!("virtual_server_group {name}");
    let mut entries = Vec::new();
    for line in stmt.body() {
        let a = Args::new(line, &context);
        let first = &line.words[0];
        if first.text == "fwmark" {
            if let Some(mark) = super::fwmark::group_entry(ctx, line, &a, &context) {
                entries.push(GroupEntry::Fwmark(mark));
            }
            continue;
        }
        let port = match line.args() {
            [] => 0,
            [port] => match int_word(&a, ctx.d, port, 0..=65_535) {
                Some(p) => p as u16,
                None => continue,
            },
            [_, extra, ..] => {
                ctx.d.error(
                    &extra.pos,
                    &context,
                    format!("unexpected `{}`", extra.text),
                    Some("write one `ADDR[-END] PORT` per line".into()),
                );
                continue;
            }
        };
        let Some(list) = addresses(ctx, first, &first.text, &context) else {
            continue;
        };
        entries.extend(list.into_iter().map(|address| GroupEntry::Address {
            address,
            port,
            pos: first.pos.clone(),
        }));
    }
    ctx.server_groups.insert(name, entries);
}

/// `ADDR`, or keepalived's range `192.168.1.10-20` / `2001:db8::10-1f` (the last byte or
/// hextet runs to END).
pub(super) fn addresses(
    ctx: &mut Ctx<'_>,
    word: &Word,
    text: &str,
    context: &str,
) -> Option<Vec<IpAddr>> {
    let bad = |ctx: &mut Ctx<'_>, message: String| {
        ctx.d.error(
            &word.pos,
            context,
            message,
            Some("write an IPv4 or IPv6 address, or a range such as 192.168.1.10-20".into()),
        );
        None
    };
    let Some((start, end)) = text.split_once('-') else {
        return match text.parse::<IpAddr>() {
            Ok(ip) => Some(vec![ip]),
            Err(_) => bad(ctx, format!("`{text}` is not an IP address")),
        };
    };
    let range: Option<Vec<IpAddr>> = match start.parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) => end.parse::<u8>().ok().and_then(|last| {
            let [x, y, z, first] = a.octets();
            (first <= last).then(|| {
                (first..=last)
                    .map(|o| IpAddr::V4(Ipv4Addr::new(x, y, z, o)))
                    .collect()
            })
        }),
        Ok(IpAddr::V6(a)) => u16::from_str_radix(end, 16).ok().and_then(|last| {
            let mut segments = a.segments();
            let first = segments[7];
            (first <= last).then(|| {
                (first..=last)
                    .map(|h| {
                        segments[7] = h;
                        IpAddr::V6(Ipv6Addr::from(segments))
                    })
                    .collect()
            })
        }),
        Err(_) => None,
    };
    match range {
        Some(list) if list.len() as u32 <= MAX_RANGE => Some(list),
        Some(list) => bad(
            ctx,
            format!(
                "`{text}` is {} addresses; at most {MAX_RANGE} are expanded",
                list.len()
            ),
        ),
        None => bad(ctx, format!("`{text}` is not an address range")),
    }
}
