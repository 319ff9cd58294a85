//! What an alert says: keepalived 2.2.7's subjects and bodies (core/smtp.c, vrrp_notify.c,
//! the checkers), and the message text sent after DATA. Pure.

use std::fmt;
use std::net::IpAddr;

use crate::config::Protocol;

/// A VRRP state an alert reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VrrpState {
    Master,
    Backup,
    Fault,
    Stop,
}

/// A virtual or real server as keepalived prints it: `[ADDR]:PROTO:PORT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    pub address: IpAddr,
    pub protocol: Protocol,
    pub port: u16,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let proto = match self.protocol {
            Protocol::Tcp => "tcp",
            Protocol::Sctp => "sctp",
            Protocol::Udp => "udp",
        };
        write!(f, "[{}]:{}:{}", self.address, proto, self.port)
    }
}

/// Something worth an e-mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Alert {
    /// A VRRP instance changed state.
    Instance { name: String, state: VrrpState },
    /// A sync group changed state.
    Group { name: String, state: VrrpState },
    /// A real server went up or down; `body` names the checker (see [`check_body`]).
    RealServer {
        real: Endpoint,
        service: Endpoint,
        up: bool,
        body: String,
    },
    /// A split brain was detected on an instance (`began`) or is over; `detail` names
    /// the other node (keepalived has no such mail: the words are ours).
    SplitBrain {
        name: String,
        began: bool,
        detail: String,
    },
    /// A virtual server gained or lost its quorum.
    VirtualServer {
        service: Endpoint,
        up: bool,
        body: String,
    },
}

/// Subject and body, before the headers are added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Composed {
    pub subject: String,
    pub body: String,
}

/// keepalived's subject and body for `alert` (smtp_alert()).
pub fn compose(router_id: &str, alert: &Alert) -> Composed {
    let (subject, body) = match alert {
        Alert::Instance { name, state } => {
            let (what, body) = instance_words(*state);
            (format!("[{router_id}] VRRP Instance {name} - {what}"), body)
        }
        Alert::Group { name, state } => {
            let (what, body) = group_words(*state);
            (format!("[{router_id}] VRRP Group {name} - {what}"), body)
        }
        Alert::RealServer {
            real,
            service,
            up,
            body,
        } => (
            format!(
                "[{router_id}] Realserver {real} of virtual server {service} - {}",
                up_down(*up)
            ),
            body.as_str(),
        ),
        Alert::SplitBrain {
            name,
            began,
            detail,
        } => {
            let (what, body) = if *began {
                (
                    "Split brain detected",
                    format!("=> Another node holds this instance's VIPs: {detail} <="),
                )
            } else {
                (
                    "Split brain over",
                    format!("=> Split brain over: {detail} <="),
                )
            };
            return Composed {
                subject: format!("[{router_id}] VRRP Instance {name} - {what}"),
                body,
            };
        }
        Alert::VirtualServer { service, up, body } => (
            format!("[{router_id}] Virtualserver {service} - {}", up_down(*up)),
            body.as_str(),
        ),
    };
    Composed {
        subject,
        body: body.to_string(),
    }
}

fn up_down(up: bool) -> &'static str {
    if up {
        "UP"
    } else {
        "DOWN"
    }
}

fn instance_words(state: VrrpState) -> (&'static str, &'static str) {
    match state {
        VrrpState::Master => (
            "Entering MASTER state",
            "=> VRRP Instance is now owning VRRP VIPs <=",
        ),
        VrrpState::Backup => (
            "Entering BACKUP state",
            "=> VRRP Instance is no longer owning VRRP VIPs <=",
        ),
        VrrpState::Fault => (
            "Entering FAULT state",
            "=> VRRP Instance is no longer owning VRRP VIPs <=",
        ),
        VrrpState::Stop => ("Stopping", "=> VRRP Instance stopping <="),
    }
}

fn group_words(state: VrrpState) -> (&'static str, &'static str) {
    match state {
        VrrpState::Master => (
            "Entering MASTER state",
            "=> All VRRP group instances are now in MASTER state <=",
        ),
        VrrpState::Backup => (
            "Entering BACKUP state",
            "=> All VRRP group instances are now in BACKUP state <=",
        ),
        VrrpState::Fault => (
            "Entering FAULT state",
            "=> All VRRP group instances are now in FAULT state <=",
        ),
        VrrpState::Stop => (
            "Stopping",
            "=> All VRRP group instances are now stopping <=",
        ),
    }
}

/// Which checker family decided a real server's state (keepalived words each differently).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckFamily {
    Tcp,
    /// HTTP_GET and SSL_GET.
    Http,
    Smtp,
    Dns,
    Udp,
    Ping,
    Misc,
    File,
    Bfd,
}

/// The body keepalived's checker sends when a real server goes up or down.
pub fn check_body(family: CheckFamily, up: bool) -> String {
    let text = match (family, up) {
        (CheckFamily::Tcp, true) => "=> TCP CHECK succeed on service <=",
        (CheckFamily::Tcp, false) => "=> TCP CHECK failed on service <=",
        (CheckFamily::Http | CheckFamily::Smtp | CheckFamily::File, true) => {
            "=> CHECK succeed on service <="
        }
        (CheckFamily::Http, false) => "=> CHECK failed on service : HTTP request failed <=",
        (CheckFamily::Smtp | CheckFamily::File, false) => "=> CHECK failed on service <=",
        (CheckFamily::Dns, true) => "=> DNS_CHECK: succeed on service <=",
        (CheckFamily::Dns, false) => "=> DNS_CHECK: failed on service <=",
        (CheckFamily::Udp, true) => "=> UDP CHECK succeed on service <=",
        (CheckFamily::Udp, false) => "=> UDP CHECK failed on service <=",
        (CheckFamily::Ping, true) => "=> ICMP CHECK succeed on service <=",
        (CheckFamily::Ping, false) => "=> ICMP CHECK failed on service <=",
        (CheckFamily::Misc, true) => "=> MISC CHECK succeeded on service <=",
        (CheckFamily::Misc, false) => "=> MISC CHECK failed on service <=",
        (CheckFamily::Bfd, true) => "=> BFD CHECK succeed on service <=",
        (CheckFamily::Bfd, false) => "=> BFD CHECK failed on service <=",
    };
    text.to_string()
}

/// keepalived's quorum body: `=> Gained quorum 1+0=1 <= 2 <=`.
pub fn quorum_body(up: bool, quorum: u32, hysteresis: u32, alive_weight: u64) -> String {
    let threshold = if up {
        i64::from(quorum) + i64::from(hysteresis)
    } else {
        i64::from(quorum) - i64::from(hysteresis)
    };
    let what = if up { "Gained quorum" } else { "Lost quorum" };
    format!("=> {what} {quorum}+{hysteresis}={threshold} <= {alive_weight} <=")
}

/// The text after DATA: keepalived's headers, the body, and the terminating dot.
/// Lines of the body that start with a dot are doubled (RFC 5321 4.5.2).
pub fn data(date: &str, from: &str, to: &[String], m: &Composed) -> String {
    let mut body = String::new();
    for (i, line) in m.body.split('\n').enumerate() {
        if i > 0 {
            body.push_str("\r\n");
        }
        let line = line.trim_end_matches('\r');
        if line.starts_with('.') {
            body.push('.');
        }
        body.push_str(line);
    }
    format!(
        "Date: {date}\r\nFrom: {from}\r\nSubject: {}\r\nX-Mailer: lb-daemon\r\nTo: {}\r\n\r\n{body}\r\n\r\n.\r\n",
        one_line(&m.subject),
        to.join(", ")
    )
}

/// A header value never carries a line break (that would start a header of its own).
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// RFC 5322 date of `unix_secs` in the local time zone, as keepalived's
/// `%a, %d %b %Y %H:%M:%S %z`.
pub fn rfc5322_date(unix_secs: i64) -> String {
    // SAFETY: localtime_r writes only into `tm`.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let t: libc::time_t = unix_secs;
    if unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
        return "Thu, 01 Jan 1970 00:00:00 +0000".into();
    }
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let offset_min = tm.tm_gmtoff / 60;
    let sign = if offset_min < 0 { '-' } else { '+' };
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} {sign}{:02}{:02}",
        DAYS[tm.tm_wday.clamp(0, 6) as usize],
        tm.tm_mday,
        MONTHS[tm.tm_mon.clamp(0, 11) as usize],
        tm.tm_year + 1900,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        offset_min.abs() / 60,
        offset_min.abs() % 60
    )
}

/// A TCP endpoint from text (tests).
#[cfg(test)]
pub(crate) fn ep(a: &str, port: u16) -> Endpoint {
    Endpoint {
        address: a.parse().unwrap(),
        protocol: Protocol::Tcp,
        port,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_and_bodies_are_keepalived_s() {
        let c = compose(
            "lb1",
            &Alert::Instance {
                name: "VI_1".into(),
                state: VrrpState::Master,
            },
        );
        assert_eq!(
            c.subject,
            "[lb1] VRRP Instance VI_1 - Entering MASTER state"
        );
        assert_eq!(c.body, "=> VRRP Instance is now owning VRRP VIPs <=");
        let c = compose(
            "lb1",
            &Alert::Group {
                name: "G".into(),
                state: VrrpState::Fault,
            },
        );
        assert_eq!(c.subject, "[lb1] VRRP Group G - Entering FAULT state");
        assert_eq!(
            c.body,
            "=> All VRRP group instances are now in FAULT state <="
        );
        let c = compose(
            "lb1",
            &Alert::RealServer {
                real: ep("10.0.0.2", 80),
                service: ep("2001:db8::1", 80),
                up: false,
                body: check_body(CheckFamily::Tcp, false),
            },
        );
        assert_eq!(
            c.subject,
            "[lb1] Realserver [10.0.0.2]:tcp:80 of virtual server [2001:db8::1]:tcp:80 - DOWN"
        );
        assert_eq!(c.body, "=> TCP CHECK failed on service <=");
        let c = compose(
            "lb1",
            &Alert::VirtualServer {
                service: ep("10.0.0.1", 443),
                up: true,
                body: quorum_body(true, 2, 1, 3),
            },
        );
        assert_eq!(c.subject, "[lb1] Virtualserver [10.0.0.1]:tcp:443 - UP");
        assert_eq!(c.body, "=> Gained quorum 2+1=3 <= 3 <=");
        assert_eq!(quorum_body(false, 2, 1, 0), "=> Lost quorum 2+1=1 <= 0 <=");
        let c = compose(
            "lb1",
            &Alert::SplitBrain {
                name: "VI_1".into(),
                began: true,
                detail: "02:00:00:00:00:02 (192.0.2.2)".into(),
            },
        );
        assert_eq!(c.subject, "[lb1] VRRP Instance VI_1 - Split brain detected");
        assert_eq!(
            c.body,
            "=> Another node holds this instance's VIPs: 02:00:00:00:00:02 (192.0.2.2) <="
        );
    }

    #[test]
    fn data_has_keepalived_s_headers_and_is_dot_safe() {
        let m = Composed {
            subject: "[lb1] x\r\nBcc: evil@example.com".into(),
            body: "line\n.dot".into(),
        };
        let text = data(
            "Sat, 05 Dec 2026 07:00:00 +0000",
            "lb@example.com",
            &["a@example.com".into(), "b@example.com".into()],
            &m,
        );
        assert_eq!(
            text,
            "Date: Sat, 05 Dec 2026 07:00:00 +0000\r\nFrom: lb@example.com\r\n\
             Subject: [lb1] x  Bcc: evil@example.com\r\nX-Mailer: lb-daemon\r\n\
             To: a@example.com, b@example.com\r\n\r\nline\r\n..dot\r\n\r\n.\r\n"
        );
    }

    #[test]
    fn dates_are_rfc5322() {
        let d = rfc5322_date(0);
        // "Thu, 01 Jan 1970 00:00:00 +0000" in UTC; other zones shift the hour.
        assert_eq!(d.len(), "Thu, 01 Jan 1970 00:00:00 +0000".len(), "{d}");
        assert!(d.contains("1970") || d.contains("1969"), "{d}");
    }
}
