//! `[[bfd_instance]]` (keepalived's `bfd_instance NAME { … }`, bfd_parser.c): names,
//! units, defaults and ranges as keepalived 2.2.7. Timers are durations (`"10ms"`); a
//! bare number is milliseconds, keepalived's unit for these keys.

use std::net::IpAddr;
use std::time::Duration;

use super::{name, Named};
use crate::config::duration::parse_duration;
use crate::config::reader::{Decoder, Field, Table};
use crate::config::schema::{
    BfdInstance, BFD_DEFAULT_IDLE_TX, BFD_DEFAULT_MIN_RX, BFD_DEFAULT_MIN_TX,
    BFD_DEFAULT_MULTIPLIER, BFD_IDLE_TX_RANGE, BFD_NAME_MAX, BFD_TIMER_RANGE, BFD_WEIGHT_RANGE,
};

const RENAMES: &[(&str, &str)] = &[
    (
        "neighbour_ip",
        "write `neighbor_ip` (keepalived accepts both spellings)",
    ),
    (
        "hoplimit",
        "write `ttl` (keepalived's `hoplimit` is its IPv6 name)",
    ),
];

/// A BFD timer: a duration string, or a number of milliseconds (3 decimals).
fn timer(
    d: &mut Decoder<'_>,
    f: &Field<'_, '_>,
    range: std::ops::RangeInclusive<Duration>,
) -> Option<Duration> {
    let value = match f.peek_str() {
        Some(_) => f.duration(d)?,
        None => {
            let text = f.number_text().or_else(|| {
                f.error(
                    d,
                    "expected a duration (\"10ms\") or a number of milliseconds",
                );
                None
            })?;
            match parse_duration(&format!("{text}ms")) {
                Ok(v) => v,
                Err(e) => {
                    f.error(d, e.to_string());
                    return None;
                }
            }
        }
    };
    if value.subsec_nanos() % 1000 != 0 {
        f.error(d, "finer than a microsecond")
            .hint("keepalived keeps 3 decimals of milliseconds");
        return None;
    }
    if !range.contains(&value) {
        f.error(
            d,
            format!(
                "must be between {:?} and {:?}, got {value:?}",
                range.start(),
                range.end()
            ),
        );
        return None;
    }
    Some(value)
}

/// The neighbor and source as written (for the duplicate check).
pub(super) type Endpoints = (IpAddr, Option<IpAddr>);

pub(super) fn decode(
    d: &mut Decoder<'_>,
    t: Table<'_, '_>,
) -> (Option<BfdInstance>, Option<Named>, Option<Endpoints>) {
    let errors_before = d.error_count();
    let mut t = t.with_renames(RENAMES);
    let name = name(d, &mut t);
    if let Some(n) = &name {
        if n.name.chars().count() > BFD_NAME_MAX {
            d.error(
                &n.path,
                n.span.clone(),
                format!(
                    "`{}` is longer than keepalived's {BFD_NAME_MAX} characters",
                    n.name
                ),
            );
        }
    }
    let ip = |d: &mut Decoder<'_>, f: &Field<'_, '_>| f.parse::<IpAddr>(d, "an IP address");
    let neighbor = t.required(d, "neighbor_ip").and_then(|f| ip(d, &f));
    let source = t.get(d, "source_ip").and_then(|f| {
        let s = ip(d, &f)?;
        if neighbor.is_some_and(|n| n.is_ipv4() != s.is_ipv4()) {
            f.error(d, "source_ip is not of the family of neighbor_ip");
            return None;
        }
        Some(s)
    });
    let min_rx = t
        .get(d, "min_rx")
        .and_then(|f| timer(d, &f, BFD_TIMER_RANGE))
        .unwrap_or(BFD_DEFAULT_MIN_RX);
    let min_tx = t
        .get(d, "min_tx")
        .and_then(|f| timer(d, &f, BFD_TIMER_RANGE))
        .unwrap_or(BFD_DEFAULT_MIN_TX);
    let idle_tx = t
        .get(d, "idle_tx")
        .and_then(|f| timer(d, &f, BFD_IDLE_TX_RANGE))
        .unwrap_or(BFD_DEFAULT_IDLE_TX);
    let multiplier = t
        .get(d, "multiplier")
        .and_then(|f| f.int(d, 1..=255))
        .unwrap_or(BFD_DEFAULT_MULTIPLIER);
    let passive = t.get(d, "passive").and_then(|f| f.bool(d)).unwrap_or(false);
    let ttl_field = t.get(d, "ttl");
    let ttl: Option<u8> = ttl_field.as_ref().and_then(|f| f.int(d, 1..=255));
    // keepalived's defaults: 255 for IPv4, 64 for IPv6.
    let ttl = ttl.unwrap_or(if neighbor.is_some_and(|n| n.is_ipv6()) {
        64
    } else {
        255
    });
    let max_hops = t.get(d, "max_hops").and_then(|f| {
        let hops: i16 = f.int(d, -1..=255)?;
        if hops > i16::from(ttl) {
            f.error(d, format!("max_hops {hops} is above ttl {ttl}"))
                .hint("max_hops may be at most ttl (-1: any)");
            return None;
        }
        Some(hops)
    });
    let weight = t
        .get(d, "weight")
        .and_then(|f| f.int(d, BFD_WEIGHT_RANGE))
        .unwrap_or(0);
    let reverse = t.get(d, "reverse").and_then(|f| f.bool(d)).unwrap_or(false);
    let vrrp = t.get(d, "vrrp").and_then(|f| f.bool(d));
    let checker = t.get(d, "checker").and_then(|f| f.bool(d));
    t.finish(d);
    // keepalived: neither written means both use it.
    let (vrrp, checker) = match (vrrp, checker) {
        (None, None) => (true, true),
        (v, c) => (v.unwrap_or(false), c.unwrap_or(false)),
    };
    let written = neighbor.map(|n| (n, source));
    let typed = match (&name, neighbor) {
        (Some(name), Some(neighbor_ip)) if d.error_count() == errors_before => Some(BfdInstance {
            name: name.name.clone(),
            neighbor_ip,
            source_ip: source,
            min_rx,
            min_tx,
            idle_tx,
            multiplier,
            passive,
            ttl,
            max_hops,
            weight,
            reverse,
            vrrp,
            checker,
        }),
        _ => None,
    };
    (typed, name, written)
}
