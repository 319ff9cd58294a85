//! One health checker of a real server (`tcp_check = { … }`, or an array of them): the
//! keys every checker has, then its kind's own. Defaults are keepalived's
//! (`check_api.c`, `check_data.c`): retry 1 (MISC_CHECK 0, DNS_CHECK 3);
//! delay_before_retry 1 s (HTTP_GET and SSL_GET 3 s, DNS_CHECK the delay_loop);
//! connect_timeout 5 s; warmup the delay_loop; misc_timeout the virtual server's
//! delay_loop.

use std::net::IpAddr;
use std::time::Duration;

use super::http;
use super::ip;
use crate::config::address::AddressFamily;
use crate::config::check::{
    BfdCheck, CheckKind, CheckSpec, Common, DnsCheck, DnsType, FileCheck, MiscCheck, SmtpCheck,
    UdpCheck,
};
use crate::config::reader::{Decoder, Field, Table};
use crate::config::schema::{DEFAULT_CONNECT_TIMEOUT, DEFAULT_DELAY_LOOP, DEFAULT_SMTP_HELO};

const RETRY_RANGE: std::ops::RangeInclusive<i64> = 0..=u32::MAX as i64;

/// keepalived's retry default for most checkers.
const DEFAULT_RETRY: u32 = 1;
/// keepalived's delay_before_retry default for most checkers.
const DEFAULT_DELAY_BEFORE_RETRY: Duration = Duration::from_secs(1);
const HTTP_DELAY_BEFORE_RETRY: Duration = Duration::from_secs(3);
const DNS_RETRY: u32 = 3;
/// keepalived's DNS_CHECK defaults: the root and SOA.
const DNS_DEFAULT_NAME: &str = ".";

const DNS_TYPES: &[(&str, DnsType)] = &[
    ("A", DnsType::A),
    ("NS", DnsType::Ns),
    ("CNAME", DnsType::Cname),
    ("SOA", DnsType::Soa),
    ("MX", DnsType::Mx),
    ("TXT", DnsType::Txt),
    ("AAAA", DnsType::Aaaa),
];

const ALPHA: (&str, &str) = ("alpha", "alpha is set on the virtual_server");
const TLS_KEY: &str = "TLS settings belong to ssl_get";
const URL_KEY: &str = "write it in the url table: url = [{ path = \"/\", … }]";

const TCP_RENAMES: &[(&str, &str)] = &[ALPHA];
const HTTP_RENAMES: &[(&str, &str)] = &[
    ALPHA,
    ("verify", TLS_KEY),
    ("ca", TLS_KEY),
    ("sni_name", TLS_KEY),
    ("path", URL_KEY),
    ("status_code", URL_KEY),
    ("digest", URL_KEY),
];
const SSL_RENAMES: &[(&str, &str)] = &[
    ALPHA,
    (
        "enable_sni",
        "SNI is sent by default, with the virtualhost; set `sni_name` to send another name",
    ),
    ("path", URL_KEY),
    ("status_code", URL_KEY),
    ("digest", URL_KEY),
];
const MISC_RENAMES: &[(&str, &str)] = &[
    ALPHA,
    (
        "connect_timeout",
        "misc_check runs a command: its time limit is `misc_timeout`",
    ),
    (
        "connect_ip",
        "misc_check runs a command and connects nowhere; pass the address to it",
    ),
    (
        "connect_port",
        "misc_check runs a command and connects nowhere; pass the port to it",
    ),
    ("bindto", "misc_check runs a command and connects nowhere"),
];
const SMTP_RENAMES: &[(&str, &str)] = &[
    ALPHA,
    (
        "host",
        "write one smtp_check per host, with connect_ip and connect_port",
    ),
];

const PING_RENAMES: &[(&str, &str)] = &[
    ALPHA,
    (
        "connect_port",
        "ping_check sends ICMP echo requests, which have no port",
    ),
];

const FILE_WATCHED: &str =
    "file_check has no schedule: the file is watched and re-read when it changes";
const FILE_RENAMES: &[(&str, &str)] = &[
    ("track_file", "write the file's path: file = \"/PATH\""),
    ("name", "write the file's path: file = \"/PATH\""),
    ("path", "write the file's path: file = \"/PATH\""),
    ("delay_loop", FILE_WATCHED),
    ("retry", FILE_WATCHED),
    ("delay_before_retry", FILE_WATCHED),
    ("warmup", FILE_WATCHED),
    (
        "connect_timeout",
        "file_check reads a file and connects nowhere",
    ),
    ("connect_ip", "file_check reads a file and connects nowhere"),
    (
        "connect_port",
        "file_check reads a file and connects nowhere",
    ),
];

const BFD_EVENTS: &str = "bfd_check has no schedule: the session's state changes are its verdicts";
const BFD_RENAMES: &[(&str, &str)] = &[
    ("delay_loop", BFD_EVENTS),
    ("retry", BFD_EVENTS),
    ("delay_before_retry", BFD_EVENTS),
    ("warmup", BFD_EVENTS),
    (
        "connect_timeout",
        "bfd_check connects nowhere: its bfd_instance has the timers",
    ),
    (
        "connect_ip",
        "the address is the bfd_instance's neighbor_ip",
    ),
    (
        "connect_port",
        "the address is the bfd_instance's neighbor_ip",
    ),
];

/// keepalived's checkers, by their key here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Tcp,
    Http,
    Ssl,
    Misc,
    Smtp,
    Dns,
    Udp,
    Ping,
    File,
    Bfd,
}

impl Kind {
    pub(super) const ALL: [Kind; 10] = [
        Kind::Tcp,
        Kind::Http,
        Kind::Ssl,
        Kind::Misc,
        Kind::Smtp,
        Kind::Dns,
        Kind::Udp,
        Kind::Ping,
        Kind::File,
        Kind::Bfd,
    ];

    /// keepalived's keyword in lower case.
    pub(super) fn key(self) -> &'static str {
        match self {
            Kind::Tcp => "tcp_check",
            Kind::Http => "http_get",
            Kind::Ssl => "ssl_get",
            Kind::Misc => "misc_check",
            Kind::Smtp => "smtp_check",
            Kind::Dns => "dns_check",
            Kind::Udp => "udp_check",
            Kind::Ping => "ping_check",
            Kind::File => "file_check",
            Kind::Bfd => "bfd_check",
        }
    }

    fn default_retry(self) -> u32 {
        match self {
            Kind::Misc => 0,
            Kind::Dns => DNS_RETRY,
            _ => DEFAULT_RETRY,
        }
    }

    /// `None`: the checker's delay_loop.
    fn default_delay_before_retry(self) -> Option<Duration> {
        match self {
            Kind::Http | Kind::Ssl => Some(HTTP_DELAY_BEFORE_RETRY),
            Kind::Dns => None,
            _ => Some(DEFAULT_DELAY_BEFORE_RETRY),
        }
    }

    /// MISC_CHECK runs a command instead of connecting.
    fn connects(self) -> bool {
        !matches!(self, Kind::Misc | Kind::File | Kind::Bfd)
    }

    /// PING_CHECK has no port.
    fn needs_port(self) -> bool {
        !matches!(self, Kind::Misc | Kind::Ping | Kind::File | Kind::Bfd)
    }

    fn renames(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Kind::Http => HTTP_RENAMES,
            Kind::Ssl => SSL_RENAMES,
            Kind::Misc => MISC_RENAMES,
            Kind::Smtp => SMTP_RENAMES,
            Kind::Ping => PING_RENAMES,
            Kind::File => FILE_RENAMES,
            Kind::Bfd => BFD_RENAMES,
            Kind::Tcp | Kind::Dns | Kind::Udp => TCP_RENAMES,
        }
    }
}

/// Checker settings a virtual server, then a real server, may set for all their checkers
/// (keepalived allows both); `None`: left to the next level down.
#[derive(Clone, Debug)]
pub(super) struct Inherited {
    pub delay_loop: Duration,
    pub connect_timeout: Option<Duration>,
    pub retry: Option<u32>,
    pub delay_before_retry: Option<Duration>,
    pub warmup: Option<Duration>,
    /// Host header of the HTTP and SSL checkers.
    pub virtualhost: Option<String>,
}

impl Inherited {
    /// The settings of `t` over those of `parent` (none: a virtual server).
    pub(super) fn read(
        d: &mut Decoder<'_>,
        t: &mut Table<'_, '_>,
        parent: Option<&Inherited>,
    ) -> Inherited {
        let parent = parent.cloned().unwrap_or(Inherited {
            delay_loop: DEFAULT_DELAY_LOOP,
            connect_timeout: None,
            retry: None,
            delay_before_retry: None,
            warmup: None,
            virtualhost: None,
        });
        Inherited {
            delay_loop: t
                .get(d, "delay_loop")
                .and_then(|f| f.nonzero_duration(d))
                .unwrap_or(parent.delay_loop),
            connect_timeout: t
                .get(d, "connect_timeout")
                .and_then(|f| f.nonzero_duration(d))
                .or(parent.connect_timeout),
            retry: t
                .get(d, "retry")
                .and_then(|f| f.int(d, RETRY_RANGE))
                .or(parent.retry),
            delay_before_retry: t
                .get(d, "delay_before_retry")
                .and_then(|f| f.duration(d))
                .or(parent.delay_before_retry),
            warmup: t
                .get(d, "warmup")
                .and_then(|f| f.duration(d))
                .or(parent.warmup),
            virtualhost: t
                .get(d, "virtualhost")
                .and_then(|f| f.string(d))
                .or(parent.virtualhost),
        }
    }
}

/// The real server a checker belongs to.
pub(super) struct Target<'c> {
    /// `None`: invalid, already reported.
    pub address: Option<IpAddr>,
    /// 0 when the virtual server takes every port and the real server names none.
    pub port: u16,
    /// The real server's settings over its virtual server's.
    pub inherited: &'c Inherited,
    /// keepalived's misc_timeout default.
    pub vs_delay_loop: Duration,
    /// The bfd_instances BFD_CHECK may name.
    pub known: &'c crate::config::decode::instance::Known<'c>,
}

pub(super) fn decode(
    d: &mut Decoder<'_>,
    kind: Kind,
    t: Table<'_, '_>,
    target: &Target<'_>,
) -> Option<CheckSpec> {
    let errors_before = d.error_count();
    let mut t = t.with_renames(kind.renames());
    let common = if matches!(kind, Kind::File | Kind::Bfd) {
        file_common(target)
    } else {
        common(d, &mut t, kind, target)
    };
    let vhost = target.inherited.virtualhost.as_deref();
    let check = match kind {
        Kind::Tcp => Some(CheckKind::Tcp),
        Kind::Http => http::decode(d, &mut t, false, vhost).map(CheckKind::Http),
        Kind::Ssl => http::decode(d, &mut t, true, vhost).map(CheckKind::Ssl),
        Kind::Misc => misc(d, &mut t, target.vs_delay_loop).map(CheckKind::Misc),
        Kind::Smtp => Some(CheckKind::Smtp(SmtpCheck {
            helo_name: t
                .get(d, "helo_name")
                .and_then(|f| f.string(d))
                .unwrap_or_else(|| DEFAULT_SMTP_HELO.to_owned()),
        })),
        Kind::Dns => Some(CheckKind::Dns(dns(d, &mut t))),
        Kind::Udp => udp(d, &mut t).map(CheckKind::Udp),
        Kind::Ping => Some(CheckKind::Ping),
        Kind::File => file(d, &mut t).map(CheckKind::File),
        Kind::Bfd => bfd(d, &mut t, target.known).map(CheckKind::Bfd),
    };
    t.finish(d);
    let check = check.filter(|_| d.error_count() == errors_before)?;
    Some(CheckSpec {
        kind: check,
        common,
    })
}

/// A MISC_CHECK with `misc_dynamic`, whose exit code sets the weight.
pub(super) fn is_dynamic(check: &CheckSpec) -> bool {
    matches!(&check.kind, CheckKind::Misc(m) if m.dynamic)
}

fn common(d: &mut Decoder<'_>, t: &mut Table<'_, '_>, kind: Kind, target: &Target<'_>) -> Common {
    let from = target.inherited;
    let mut connect_ip = None;
    let mut connect_port = None;
    let mut bind_to = None;
    let mut connect_timeout = None;
    if kind.connects() {
        connect_ip = t.get(d, "connect_ip").and_then(|f| ip(d, &f));
        if kind.needs_port() {
            connect_port = t
                .get(d, "connect_port")
                .and_then(|f| f.int::<u16>(d, 1..=65_535));
        }
        if kind.needs_port() && target.port == 0 && t.span_of("connect_port").is_none() {
            d.error(
                t.path(),
                t.span(),
                "the real server's port is 0 (every port): this checker needs a port",
            )
            .hint("set connect_port, or the real server's port");
        }
        let connects_to = connect_ip.or(target.address);
        bind_to = t.get(d, "bindto").and_then(|f| {
            let source = ip(d, &f)?;
            check_source(d, &f, source, connects_to);
            Some(source)
        });
        connect_timeout = t
            .get(d, "connect_timeout")
            .and_then(|f| f.nonzero_duration(d));
    }
    let retry = retry(d, t).or(from.retry).unwrap_or(kind.default_retry());
    let delay_loop = t
        .get(d, "delay_loop")
        .and_then(|f| f.nonzero_duration(d))
        .unwrap_or(from.delay_loop);
    let delay_before_retry = t
        .get(d, "delay_before_retry")
        .and_then(|f| f.duration(d))
        .or(from.delay_before_retry)
        .or(kind.default_delay_before_retry())
        .unwrap_or(delay_loop);
    let warmup = t
        .get(d, "warmup")
        .and_then(|f| f.duration(d))
        .or(from.warmup)
        .unwrap_or(delay_loop);
    let mut count = |key| {
        t.get(d, key)
            .and_then(|f| f.int(d, 1..=i64::from(u32::MAX)))
            .unwrap_or(1)
    };
    let rise = count("rise");
    let fall = count("fall");
    Common {
        connect_ip,
        connect_port,
        bind_to,
        connect_timeout: connect_timeout
            .or(from.connect_timeout)
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT),
        retry,
        delay_before_retry,
        delay_loop,
        warmup,
        rise,
        fall,
    }
}

/// `bindto` must be of the family of the address the checker connects to.
fn check_source(d: &mut Decoder<'_>, f: &Field<'_, '_>, source: IpAddr, to: Option<IpAddr>) {
    let Some(to) = to else { return };
    let (from_family, to_family) = (AddressFamily::of(&source), AddressFamily::of(&to));
    if from_family != to_family {
        f.error(
            d,
            format!("{from_family} source address for a check of {to_family} address {to}"),
        );
    }
}

/// `retry`, or its legacy name `nb_get_retry` (with a warning, as keepalived gives).
fn retry(d: &mut Decoder<'_>, t: &mut Table<'_, '_>) -> Option<u32> {
    let retry = t.get(d, "retry").and_then(|f| f.int(d, RETRY_RANGE));
    let Some(legacy) = t.get(d, "nb_get_retry") else {
        return retry;
    };
    if t.span_of("retry").is_some() {
        legacy
            .error(d, "`retry` is set too: nb_get_retry is its legacy name")
            .hint("remove nb_get_retry");
        return retry;
    }
    let value = legacy.int(d, RETRY_RANGE)?;
    legacy
        .warning(d, "deprecated: use `retry`")
        .hint(format!("write retry = {value}"));
    Some(value)
}

/// FILE_CHECK has no schedule, retries or hysteresis: the file's value is its state.
fn file_common(target: &Target<'_>) -> Common {
    let delay_loop = target.inherited.delay_loop;
    Common {
        connect_ip: None,
        connect_port: None,
        bind_to: None,
        connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        retry: 0,
        delay_before_retry: Duration::ZERO,
        delay_loop,
        warmup: Duration::ZERO,
        rise: 1,
        fall: 1,
    }
}

/// keepalived's FILE_CHECK weight range (`-IPVS_WEIGHT_LIMIT ..= IPVS_WEIGHT_LIMIT`).
const FILE_WEIGHT_RANGE: std::ops::RangeInclusive<i64> = -(i32::MAX as i64)..=i32::MAX as i64;

fn file(d: &mut Decoder<'_>, t: &mut Table<'_, '_>) -> Option<FileCheck> {
    let file = t.required(d, "file").and_then(|f| {
        let path = std::path::PathBuf::from(f.string(d)?);
        if !path.is_absolute() {
            f.error(d, format!("`{}` is not an absolute path", path.display()))
                .hint("write the file's full path, e.g. \"/etc/lb/weight\"");
            return None;
        }
        Some(path)
    });
    // keepalived: a tracked file's weight defaults to 1 (the file's value counts as is).
    let weight = t
        .get(d, "weight")
        .and_then(|f| f.int(d, FILE_WEIGHT_RANGE))
        .unwrap_or(1);
    let reverse = t.get(d, "reverse").and_then(|f| f.bool(d)).unwrap_or(false);
    Some(FileCheck {
        file: file?,
        weight,
        reverse,
    })
}

fn misc(d: &mut Decoder<'_>, t: &mut Table<'_, '_>, vs_delay_loop: Duration) -> Option<MiscCheck> {
    let path = t.required(d, "misc_path").and_then(|f| f.string(d));
    // keepalived: without misc_timeout a script may run for its virtual server's delay_loop.
    let timeout = t
        .get(d, "misc_timeout")
        .and_then(|f| f.nonzero_duration(d))
        .unwrap_or(vs_delay_loop);
    let dynamic = t
        .get(d, "misc_dynamic")
        .and_then(|f| f.bool(d))
        .unwrap_or(false);
    let user = t.get(d, "user").and_then(|f| f.string(d));
    Some(MiscCheck {
        path: path?,
        timeout,
        dynamic,
        user,
    })
}

fn dns(d: &mut Decoder<'_>, t: &mut Table<'_, '_>) -> DnsCheck {
    let name = t
        .get(d, "name")
        .and_then(|f| dns_name(d, &f))
        .unwrap_or_else(|| DNS_DEFAULT_NAME.to_owned());
    let qtype = t
        .get(d, "type")
        .and_then(|f| f.keyword(d, DNS_TYPES))
        .unwrap_or(DnsType::Soa);
    DnsCheck { name, qtype }
}

/// A domain name: labels of 1 to 63 characters, 253 in all.
fn dns_name(d: &mut Decoder<'_>, f: &Field<'_, '_>) -> Option<String> {
    let name = f.string(d)?;
    let trimmed = name.trim();
    let labels = trimmed.strip_suffix('.').unwrap_or(trimmed);
    let valid = trimmed == "."
        || (trimmed.len() <= 253
            && !trimmed.contains(char::is_whitespace)
            && labels.split('.').all(|l| (1..=63).contains(&l.len())));
    if !valid {
        f.error(d, format!("`{name}` is not a domain name"))
            .hint("labels of 1 to 63 characters separated by dots, e.g. \"example.com\"");
        return None;
    }
    Some(trimmed.to_owned())
}

fn udp(d: &mut Decoder<'_>, t: &mut Table<'_, '_>) -> Option<UdpCheck> {
    let text = t
        .get(d, "payload")
        .and_then(|f| f.str(d).map(|s| s.as_bytes().to_vec()));
    let hex = t.get(d, "payload_hex").and_then(|f| {
        if t.span_of("payload").is_some() {
            f.error(d, "`payload` is set too")
                .hint("write the payload once: as text in `payload`, or as hex in `payload_hex`");
            return None;
        }
        hex(d, &f)
    });
    let require_reply = t
        .get(d, "require_reply")
        .and_then(|f| f.bool(d))
        .unwrap_or(false);
    Some(UdpCheck {
        // keepalived sends a random payload when none is set; here: an empty datagram.
        payload: text.or(hex).unwrap_or_default(),
        require_reply,
    })
}

/// Hexadecimal bytes, spaces allowed between them (`"0a 1b 2c"`, `"0a1b2c"`).
fn hex(d: &mut Decoder<'_>, f: &Field<'_, '_>) -> Option<Vec<u8>> {
    let text = f.string(d)?;
    let digits: Vec<char> = text.chars().filter(|c| !c.is_whitespace()).collect();
    let bad = digits.iter().find(|c| !c.is_ascii_hexdigit());
    if let Some(bad) = bad {
        f.error(d, format!("`{bad}` is not a hexadecimal digit"));
        return None;
    }
    if !digits.len().is_multiple_of(2) {
        f.error(d, "an odd number of hexadecimal digits")
            .hint("two digits per byte, e.g. \"0a1b2c\"");
        return None;
    }
    let bytes = digits
        .chunks(2)
        .map(|pair| {
            let byte: String = pair.iter().collect();
            u8::from_str_radix(&byte, 16).unwrap_or_default()
        })
        .collect();
    Some(bytes)
}

/// `bfd_check = { name = "NAME" }` (keepalived's `BFD_CHECK { name NAME }`).
fn bfd(
    d: &mut Decoder<'_>,
    t: &mut Table<'_, '_>,
    known: &crate::config::decode::instance::Known<'_>,
) -> Option<BfdCheck> {
    let field = t.required(d, "name")?;
    let name = field.string(d)?;
    if !known.bfd.contains(&name.as_str()) {
        let hint = crate::config::suggest::closest(&name, known.bfd.iter().copied())
            .map(|s| format!("did you mean `{s}`?"));
        field
            .error(d, format!("no bfd_instance is named `{name}`"))
            .maybe_hint(hint);
        return None;
    }
    if known.bfd_defs.iter().any(|b| b.name == name && !b.checker) {
        field
            .error(
                d,
                format!("bfd_instance `{name}` is for VRRP only (checker = false)"),
            )
            .hint("set checker = true in the bfd_instance, or remove both vrrp and checker");
        return None;
    }
    Some(BfdCheck { name })
}
