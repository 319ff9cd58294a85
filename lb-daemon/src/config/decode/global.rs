//! `[global]`: keepalived's `global_defs`, plus the daemon's own settings.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::config::reader::{Decoder, Field, Table};
use crate::config::schema::{
    Dataplane, Email, Global, NotifyFifo, SmtpServer, VrrpVersion, DEFAULT_SMTP_PORT,
};
use crate::config::NatTimeouts;

const RENAMES: &[(&str, &str)] = &[
    ("notify_user", "keepalived calls it `script_user`"),
    (
        "vrrp_mcast_group",
        "write `vrrp_mcast_group4` or `vrrp_mcast_group6`",
    ),
];

const DATAPLANES: &[(&str, Dataplane)] = &[
    ("auto", Dataplane::Auto),
    ("xdp", Dataplane::Xdp),
    ("ipvs", Dataplane::Ipvs),
];

pub(super) fn decode(d: &mut Decoder<'_>, t: Table<'_, '_>) -> Global {
    let mut t = t.with_renames(RENAMES);
    let defaults = Global::default();
    let global = Global {
        router_id: t.get(d, "router_id").and_then(|f| f.string(d)),
        control_socket: t
            .get(d, "control_socket")
            .and_then(|f| f.absolute_path(d))
            .unwrap_or(defaults.control_socket),
        dataplane: t
            .get(d, "dataplane")
            .and_then(|f| f.keyword(d, DATAPLANES))
            .unwrap_or(defaults.dataplane),
        bpf_pin_path: t
            .get(d, "bpf_pin_path")
            .and_then(|f| f.absolute_path(d))
            .unwrap_or(defaults.bpf_pin_path),
        metrics_listen: t
            .get(d, "metrics_listen")
            .and_then(|f| metrics_listen(d, &f)),
        script_user: t.get(d, "script_user").and_then(|f| f.string(d)),
        script_timeout: t
            .get(d, "script_timeout")
            .and_then(|f| f.nonzero_duration(d))
            .unwrap_or(defaults.script_timeout),
        vrrp_version: t
            .get(d, "vrrp_version")
            .and_then(|f| version(d, &f))
            .unwrap_or(defaults.vrrp_version),
        vrrp_mcast_group4: t
            .get(d, "vrrp_mcast_group4")
            .and_then(|f| multicast::<Ipv4Addr>(d, &f, "an IPv4 address", Ipv4Addr::is_multicast))
            .unwrap_or(defaults.vrrp_mcast_group4),
        vrrp_mcast_group6: t
            .get(d, "vrrp_mcast_group6")
            .and_then(|f| multicast::<Ipv6Addr>(d, &f, "an IPv6 address", Ipv6Addr::is_multicast))
            .unwrap_or(defaults.vrrp_mcast_group6),
        vrrp_garp_master_delay: t
            .get(d, "vrrp_garp_master_delay")
            .and_then(|f| f.duration(d))
            .unwrap_or(defaults.vrrp_garp_master_delay),
        vrrp_garp_master_repeat: t
            .get(d, "vrrp_garp_master_repeat")
            .and_then(|f| f.int(d, 0..=i64::MAX))
            .unwrap_or(defaults.vrrp_garp_master_repeat),
        vrrp_garp_master_refresh: t
            .get(d, "vrrp_garp_master_refresh")
            .and_then(|f| f.duration(d))
            .filter(|refresh| !refresh.is_zero()),
        vrrp_garp_interval: t
            .get(d, "vrrp_garp_interval")
            .and_then(|f| f.duration(d))
            .unwrap_or(defaults.vrrp_garp_interval),
        vrrp_gna_interval: t
            .get(d, "vrrp_gna_interval")
            .and_then(|f| f.duration(d))
            .unwrap_or(defaults.vrrp_gna_interval),
        lvs_timeouts: t
            .get(d, "lvs_timeouts")
            .and_then(|f| lvs_timeouts(d, &f, defaults.lvs_timeouts))
            .unwrap_or(defaults.lvs_timeouts),
        conntrack_size: t
            .get(d, "conntrack_size")
            .and_then(|f| f.int(d, TABLE_SIZES))
            .unwrap_or(defaults.conntrack_size),
        nat_table_size: t
            .get(d, "nat_table_size")
            .and_then(|f| f.int(d, TABLE_SIZES))
            .unwrap_or(defaults.nat_table_size),
        new_flow_limit: t
            .get(d, "new_flow_limit")
            .and_then(|f| f.int(d, 0..=u32::MAX as i64))
            .unwrap_or(defaults.new_flow_limit),
        email: email(d, &mut t),
        vrrp_strict: t
            .get(d, "vrrp_strict")
            .and_then(|f| f.bool(d))
            .unwrap_or(false),
        notify_fifo: notify_fifo(d, &mut t, "notify_fifo", "notify_fifo_script"),
        vrrp_notify_fifo: notify_fifo(d, &mut t, "vrrp_notify_fifo", "vrrp_notify_fifo_script"),
        lvs_notify_fifo: notify_fifo(d, &mut t, "lvs_notify_fifo", "lvs_notify_fifo_script"),
    };
    let fifos = [
        ("notify_fifo", &global.notify_fifo),
        ("vrrp_notify_fifo", &global.vrrp_notify_fifo),
        ("lvs_notify_fifo", &global.lvs_notify_fifo),
    ];
    for (i, (key, fifo)) in fifos.iter().enumerate() {
        let Some(fifo) = fifo else { continue };
        if let Some((earlier, _)) = fifos[..i]
            .iter()
            .find(|(_, f)| f.as_ref().is_some_and(|f| f.path == fifo.path))
        {
            if let Some(span) = t.span_of(key) {
                let path = t.path().key(key);
                d.error(
                    &path,
                    span,
                    format!("{} is already the {earlier}", fifo.path.display()),
                )
                .hint("give each FIFO its own path (a line would be written twice)");
            }
        }
    }
    t.finish(d);
    global
}

/// Sizes of the connection and NAT tables (their memory is allocated up front).
const TABLE_SIZES: std::ops::RangeInclusive<i64> = 1024..=(1 << 26);

/// `lvs_timeouts = { tcp = "900s", tcpfin = "120s", udp = "300s" }` (keepalived's
/// `lvs_timeouts tcp 900 tcpfin 120 udp 300`); unset ones keep IPVS's defaults.
fn lvs_timeouts(
    d: &mut Decoder<'_>,
    f: &Field<'_, '_>,
    defaults: NatTimeouts,
) -> Option<NatTimeouts> {
    let mut t = f.table(d)?;
    let mut get = |key| t.get(d, key).and_then(|f| f.nonzero_duration(d));
    let timeouts = NatTimeouts {
        tcp: get("tcp").unwrap_or(defaults.tcp),
        tcpfin: get("tcpfin").unwrap_or(defaults.tcpfin),
        udp: get("udp").unwrap_or(defaults.udp),
    };
    t.finish(d);
    Some(timeouts)
}

/// `2` or `3`, as keepalived's `version` / `vrrp_version`.
pub(super) fn version(d: &mut Decoder<'_>, f: &Field<'_, '_>) -> Option<VrrpVersion> {
    match f.int::<u8>(d, 2..=3)? {
        2 => Some(VrrpVersion::V2),
        _ => Some(VrrpVersion::V3),
    }
}

fn metrics_listen(d: &mut Decoder<'_>, f: &Field<'_, '_>) -> Option<SocketAddr> {
    let text = f.str(d)?;
    let addr: Option<SocketAddr> = text.trim().parse().ok();
    match addr {
        None => {
            f.error(d, format!("`{text}` is not a socket address"))
                .hint("write ADDRESS:PORT, e.g. \"127.0.0.1:9100\" or \"[::1]:9100\"");
        }
        // The endpoint has no authentication: say so when it leaves the host.
        Some(a) if !a.ip().is_loopback() => {
            f.warning(
                d,
                format!("metrics on {a} are reachable from other hosts, without authentication"),
            )
            .hint("listen on 127.0.0.1 or ::1 and scrape through a proxy, or firewall the port");
        }
        Some(_) => {}
    }
    addr
}

fn multicast<A>(
    d: &mut Decoder<'_>,
    f: &Field<'_, '_>,
    what: &str,
    is_multicast: fn(&A) -> bool,
) -> Option<A>
where
    A: std::str::FromStr + std::fmt::Display,
    A::Err: std::fmt::Display,
{
    let addr = f.parse::<A>(d, what)?;
    if !is_multicast(&addr) {
        f.error(d, format!("{addr} is not a multicast address"));
        return None;
    }
    Some(addr)
}

/// keepalived's e-mail settings, flat in `[global]` as in `global_defs`.
fn email(d: &mut Decoder<'_>, t: &mut Table<'_, '_>) -> Email {
    let defaults = Email::default();
    let mut flag = |key| t.get(d, key).and_then(|f| f.bool(d));
    let (smtp_alert, smtp_alert_vrrp, smtp_alert_checker) = (
        flag("smtp_alert"),
        flag("smtp_alert_vrrp"),
        flag("smtp_alert_checker"),
    );
    let no_email_faults = flag("no_email_faults").unwrap_or(false);
    Email {
        to: t
            .get(d, "notification_email")
            .and_then(|f| f.array(d))
            .map(|items| {
                items
                    .iter()
                    .filter_map(|f| {
                        mail_word(d, f, "an e-mail address", "e.g. \"ops@example.com\"")
                    })
                    .collect()
            })
            .unwrap_or_default(),
        from: t
            .get(d, "notification_email_from")
            .and_then(|f| mail_word(d, &f, "an e-mail address", "e.g. \"lb1@example.com\"")),
        smtp_server: t.get(d, "smtp_server").and_then(|f| smtp_server(d, &f)),
        helo_name: t
            .get(d, "smtp_helo_name")
            .and_then(|f| mail_word(d, &f, "a host name", "e.g. \"lb1.example.com\"")),
        connect_timeout: t
            .get(d, "smtp_connect_timeout")
            .and_then(|f| f.nonzero_duration(d))
            .unwrap_or(defaults.connect_timeout),
        smtp_alert,
        smtp_alert_vrrp,
        smtp_alert_checker,
        no_email_faults,
    }
}

/// One word that goes into an SMTP command line: no spaces, no control characters
/// (a CR or LF would inject commands), no angle brackets.
fn mail_word(d: &mut Decoder<'_>, f: &Field<'_, '_>, what: &str, example: &str) -> Option<String> {
    let text = f.string(d)?;
    let word = text.trim();
    let bad = word
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>');
    let not_address = what.contains("e-mail") && !word.contains('@');
    if bad || not_address {
        f.error(d, format!("`{text}` is not {what}")).hint(example);
        return None;
    }
    Some(word.to_owned())
}

/// `smtp_server = "ADDR [PORT]"` (keepalived's syntax): an IP address or a host name.
fn smtp_server(d: &mut Decoder<'_>, f: &Field<'_, '_>) -> Option<SmtpServer> {
    let text = f.string(d)?;
    let words: Vec<&str> = text.split_whitespace().collect();
    let hint =
        "write \"ADDRESS\" or \"ADDRESS PORT\", e.g. \"192.0.2.25\" or \"mail.example.com 587\"";
    let port = match words.get(1).map(|p| p.parse::<u16>()) {
        None => Some(DEFAULT_SMTP_PORT),
        Some(Ok(p)) if p > 0 => Some(p),
        Some(_) => None,
    };
    let host = words.first().copied().unwrap_or_default();
    let host_ok = !host.is_empty()
        && (host.parse::<std::net::IpAddr>().is_ok()
            || host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'));
    match port {
        Some(port) if words.len() <= 2 && host_ok => Some(SmtpServer {
            host: host.to_owned(),
            port,
        }),
        _ => {
            f.error(d, format!("`{text}` is not an SMTP server"))
                .hint(hint);
            None
        }
    }
}

/// `notify_fifo = "/run/lb/notify.fifo"` and its reader `notify_fifo_script` (and the
/// `vrrp_` / `lvs_` ones): a script without its FIFO is an error.
fn notify_fifo(
    d: &mut Decoder<'_>,
    t: &mut Table<'_, '_>,
    key: &'static str,
    script_key: &'static str,
) -> Option<NotifyFifo> {
    let path = t.get(d, key).and_then(|f| f.absolute_path(d));
    let script_field = t.get(d, script_key);
    let script = script_field.as_ref().and_then(|f| f.string(d));
    match (path, script_field) {
        (Some(path), _) => Some(NotifyFifo { path, script }),
        (None, Some(f)) if script.is_some() && t.span_of(key).is_none() => {
            f.error(d, format!("{script_key} without {key}"))
                .hint(format!(
                    "add {key} = \"/run/lb/{key}\" (the FIFO the script reads)"
                ));
            None
        }
        _ => None,
    }
}
