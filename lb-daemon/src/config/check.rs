//! What to check and how: each real server's health checkers as configured, with
//! keepalived's names and semantics and every default filled in. Plain data: the
//! health runner turns it into running checks (`health::from_config`).

use std::{net::IpAddr, path::PathBuf, time::Duration};

/// Parameters every checker has (keepalived's common checker keywords).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Common {
    /// Connect to this address instead of the real server's (`connect_ip`).
    pub connect_ip: Option<IpAddr>,
    /// Connect to this port instead of the real server's (`connect_port`).
    pub connect_port: Option<u16>,
    /// Source address (`bindto`).
    pub bind_to: Option<IpAddr>,
    /// Time allowed for connecting and for the whole exchange (`connect_timeout`).
    pub connect_timeout: Duration,
    /// Extra attempts after a failure before the check counts as failed (`retry`;
    /// keepalived's legacy `nb_get_retry`).
    pub retry: u32,
    /// Pause between attempts (`delay_before_retry`).
    pub delay_before_retry: Duration,
    /// Interval between checks (`delay_loop`, inherited from the virtual server).
    pub delay_loop: Duration,
    /// Random start spread up to this long (`warmup`; default: `delay_loop`).
    pub warmup: Duration,
    /// Consecutive successes to mark a failed real up (keepalived's `alpha` mode uses
    /// this; default 1).
    pub rise: u32,
    /// Consecutive failures to mark a real down (default 1).
    pub fall: u32,
}

/// HTTP status codes that count as success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusMatch {
    /// keepalived's default: any 2xx.
    Default2xx,
    Codes(Vec<u16>),
    Range(u16, u16),
}

impl StatusMatch {
    pub fn accepts(&self, code: u16) -> bool {
        match self {
            StatusMatch::Default2xx => (200..=299).contains(&code),
            StatusMatch::Codes(c) => c.contains(&code),
            StatusMatch::Range(lo, hi) => (*lo..=*hi).contains(&code),
        }
    }
}

/// A body expectation besides the digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyMatch {
    Contains(String),
    /// A regular expression (Rust `regex` syntax).
    Regex(String),
    /// keepalived's `regex_no_match`: healthy when the expression does NOT match.
    RegexAbsent(String),
}

/// One `url` block of HTTP_GET / SSL_GET.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub path: String,
    pub status: StatusMatch,
    /// MD5 of the body as lower-case hex (what `genhash` prints).
    pub digest: Option<String>,
    pub body: Option<BodyMatch>,
    /// Host header for this URL (else the checker's `virtualhost`, else the address).
    pub virtualhost: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCheck {
    pub urls: Vec<Url>,
    pub virtualhost: Option<String>,
    /// SSL_GET only: TLS settings.
    pub tls: Option<TlsOptions>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    /// Verify the server certificate (against `ca` or the system roots).
    pub verify: bool,
    pub ca: Option<PathBuf>,
    /// SNI name (default: the virtualhost, else none).
    pub sni: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MiscCheck {
    /// Command line (`misc_path`).
    pub path: String,
    pub timeout: Duration,
    /// Exit 2..=255 means up with weight = code - 2.
    pub dynamic: bool,
    pub user: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpCheck {
    pub helo_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsCheck {
    /// Query name (default ".").
    pub name: String,
    /// Record type (default SOA).
    pub qtype: DnsType,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsType {
    A,
    Ns,
    Cname,
    Soa,
    Mx,
    Txt,
    Aaaa,
}

impl DnsType {
    pub fn code(self) -> u16 {
        match self {
            DnsType::A => 1,
            DnsType::Ns => 2,
            DnsType::Cname => 5,
            DnsType::Soa => 6,
            DnsType::Mx => 15,
            DnsType::Txt => 16,
            DnsType::Aaaa => 28,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpCheck {
    pub payload: Vec<u8>,
    /// Require a reply (else: up unless an ICMP error says the port is closed).
    pub require_reply: bool,
}

/// One checker of a real server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckKind {
    Tcp,
    Http(HttpCheck),
    Ssl(HttpCheck),
    Misc(MiscCheck),
    Smtp(SmtpCheck),
    Dns(DnsCheck),
    Udp(UdpCheck),
    /// ICMP / ICMPv6 echo (no port).
    Ping,
    /// A file's value sets the weight or the state (keepalived's FILE_CHECK).
    File(FileCheck),
    /// keepalived's BFD_CHECK: up while the named `[[bfd_instance]]` session is Up.
    Bfd(BfdCheck),
}

/// BFD_CHECK: the real server is down while the session `name` is not Up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BfdCheck {
    pub name: String,
}

/// FILE_CHECK: the integer in `file` × `weight` (× -1 with `reverse`) is added to the
/// real server's weight; with weight 0 a non-zero value (zero with `reverse`) means down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileCheck {
    pub file: PathBuf,
    pub weight: i32,
    pub reverse: bool,
}

impl CheckKind {
    /// keepalived's keyword, for logs and metrics labels.
    pub fn name(&self) -> &'static str {
        match self {
            CheckKind::Tcp => "TCP_CHECK",
            CheckKind::Http(_) => "HTTP_GET",
            CheckKind::Ssl(_) => "SSL_GET",
            CheckKind::Misc(_) => "MISC_CHECK",
            CheckKind::Smtp(_) => "SMTP_CHECK",
            CheckKind::Dns(_) => "DNS_CHECK",
            CheckKind::Udp(_) => "UDP_CHECK",
            CheckKind::Ping => "PING_CHECK",
            CheckKind::File(_) => "FILE_CHECK",
            CheckKind::Bfd(_) => "BFD_CHECK",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckSpec {
    pub kind: CheckKind,
    pub common: Common,
}

/// Where a check connects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    pub addr: IpAddr,
    pub port: u16,
}

impl CheckSpec {
    /// The real server's address and port with `connect_ip`/`connect_port` applied.
    pub fn target(&self, real: Target) -> Target {
        Target {
            addr: self.common.connect_ip.unwrap_or(real.addr),
            port: self.common.connect_port.unwrap_or(real.port),
        }
    }
}
