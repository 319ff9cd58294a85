//! `arbiter = { address = "…", check = "icmp" | "tcp", port = …, interval = …,
//! timeout = …, rise = …, fall = … }` of a `[[vrrp_instance]]`.

use std::net::IpAddr;
use std::time::Duration;

use crate::config::reader::{Decoder, Field};
use crate::config::schema::{Arbiter, ArbiterCheck};

#[derive(Clone, Copy)]
enum Kind {
    Icmp,
    Tcp,
}

const KINDS: &[(&str, Kind)] = &[("icmp", Kind::Icmp), ("tcp", Kind::Tcp)];

const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
const INTERVAL_MIN: Duration = Duration::from_millis(100);
const INTERVAL_MAX: Duration = Duration::from_secs(3600);

pub(in crate::config::decode) fn decode(
    d: &mut Decoder<'_>,
    field: &Field<'_, '_>,
) -> Option<Arbiter> {
    let mut t = field.table(d)?;
    let errors_before = d.error_count();
    let address = t
        .required(d, "address")
        .and_then(|f| f.parse::<IpAddr>(d, "an IP address"));
    let kind = t.get(d, "check").and_then(|f| f.keyword(d, KINDS));
    let port_field = t.get(d, "port");
    let port: Option<u16> = port_field.as_ref().and_then(|f| f.int(d, 1..=65535));
    let interval = t
        .get(d, "interval")
        .and_then(|f| f.duration_in(d, INTERVAL_MIN..=INTERVAL_MAX))
        .unwrap_or(DEFAULT_INTERVAL);
    let timeout = t
        .get(d, "timeout")
        .and_then(|f| f.nonzero_duration(d))
        .unwrap_or(DEFAULT_TIMEOUT);
    let rise = t
        .get(d, "rise")
        .and_then(|f| f.int(d, 1..=1000))
        .unwrap_or(1);
    let fall = t
        .get(d, "fall")
        .and_then(|f| f.int(d, 1..=1000))
        .unwrap_or(1);
    let check = match (kind.unwrap_or(Kind::Icmp), port, &port_field) {
        (Kind::Icmp, _, Some(f)) => {
            f.error(d, "a port needs `check = \"tcp\"`")
                .hint("ICMP echo has no port: remove it, or write `check = \"tcp\"`");
            None
        }
        (Kind::Icmp, _, None) => Some(ArbiterCheck::Icmp),
        (Kind::Tcp, Some(port), _) => Some(ArbiterCheck::Tcp { port }),
        (Kind::Tcp, None, None) => {
            d.error(t.path(), t.span(), "missing required key `port`")
                .hint("`check = \"tcp\"` connects to the arbiter's `port`");
            None
        }
        (Kind::Tcp, None, Some(_)) => None,
    };
    t.finish(d);
    if d.error_count() != errors_before {
        return None;
    }
    Some(Arbiter {
        address: address?,
        check: check?,
        interval,
        timeout,
        rise,
        fall,
    })
}
