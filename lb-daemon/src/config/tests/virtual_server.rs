//! `[[virtual_server]]`, its real servers and their checkers: values, defaults passed
//! down, and every kind of diagnostic with its position.

use std::time::Duration;

use super::{at, error, ip, load, rejected, BASE};
use crate::config::check::{
    BodyMatch, CheckKind, CheckSpec, Common, DnsCheck, DnsType, FileCheck, HttpCheck, MiscCheck,
    SmtpCheck, StatusMatch, TlsOptions, UdpCheck, Url,
};
use crate::config::*;

/// The example of the issue (no vrrp_instance holds its address).
const EXAMPLE: &str = r#"[[virtual_server]]
address = "198.18.0.100"
port = 443
protocol = "TCP"
delay_loop = "2s"
inhibit_on_failure = true
quorum = 2
sorry_server = { address = "198.18.0.60", port = 443 }

[[virtual_server.real_server]]
address = "198.18.0.21"
port = 443
weight = 3
notify_down = "/etc/lb/alert.sh down"
[virtual_server.real_server.ssl_get]
connect_timeout = "2s"
retry = 2
delay_before_retry = "1s"
url = [{ path = "/healthz", status_code = [200, 204], digest = "9b3a0c85a887a256d6939da88aabd8cd" }]

[[virtual_server.real_server]]
address = "198.18.0.22"
port = 443
misc_check = { misc_path = "/usr/local/bin/check.sh 198.18.0.22", misc_timeout = "3s", misc_dynamic = true }
"#;

/// Key path of the virtual server of [`with_server`].
const VS: &str = "virtual_server \"198.18.0.100:443\"";
/// Key path of its real server.
const REAL: &str = "virtual_server \"198.18.0.100:443\".real_server \"198.18.0.21\"";

/// [`BASE`] (lines 1–5, holding the VIP), a virtual server (lines 6–8) followed by the
/// lines `server`, then one real server (header and address) followed by the lines
/// `real`. With one line of `server`, the real server's own lines start at 12.
fn with_server(server: &str, real: &str) -> String {
    format!(
        "{BASE}[[virtual_server]]\naddress = \"198.18.0.100\"\nport = 443\n{server}\
         [[virtual_server.real_server]]\naddress = \"198.18.0.21\"\n{real}"
    )
}

/// A real server with `real` after its address (line 11), in a plain virtual server.
fn with_real(real: &str) -> String {
    with_server("", real)
}

/// The one virtual server of `text`.
fn server(text: &str) -> VirtualServer {
    let Loaded {
        mut config,
        warnings,
    } = load(text);
    assert!(warnings.is_empty(), "{warnings:#?}");
    assert_eq!(config.virtual_servers.len(), 1);
    config.virtual_servers.remove(0)
}

/// The checks of the first real server of `text`.
fn checks(text: &str) -> Vec<CheckSpec> {
    server(text).real_servers.remove(0).checks
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// The common settings when nothing is written: keepalived's defaults for TCP_CHECK.
fn default_common() -> Common {
    Common {
        connect_ip: None,
        connect_port: None,
        bind_to: None,
        connect_timeout: secs(5),
        retry: 1,
        delay_before_retry: secs(1),
        delay_loop: secs(60),
        warmup: secs(60),
        rise: 1,
        fall: 1,
    }
}

/// Key, position and message of every finding in `found`.
fn summary(found: &[Diagnostic]) -> Vec<(String, (usize, usize), String)> {
    found
        .iter()
        .map(|d| (d.key.clone(), at(d), d.message.clone()))
        .collect()
}

#[test]
fn issue_example_loads_with_its_values() {
    let Loaded { config, warnings } = load(EXAMPLE);
    // Without a vrrp_instance holding 198.18.0.100, the address is only served while local.
    assert_eq!(
        summary(&warnings),
        vec![(
            "virtual_server \"198.18.0.100:443\".address".into(),
            (2, 11),
            "198.18.0.100 is in no vrrp_instance's virtual_ipaddress".into()
        )]
    );
    assert_eq!(warnings[0].severity, Severity::Warning);

    let vs = config
        .virtual_server(ip("198.18.0.100"), 443, Protocol::Tcp)
        .expect("virtual server");
    assert_eq!((vs.address, vs.port), (ip("198.18.0.100"), 443));
    assert_eq!(vs.protocol, Protocol::Tcp);
    assert_eq!((vs.lb_algo, vs.lb_kind), (LbAlgo::Maglev, LbKind::Dr));
    assert_eq!(vs.delay_loop, secs(2));
    assert_eq!(vs.persistence_timeout, None);
    assert_eq!(vs.table_size, 65537);
    assert!(vs.inhibit_on_failure);
    assert_eq!((vs.quorum, vs.hysteresis), (2, 0));
    assert_eq!(
        (vs.quorum_up.as_deref(), vs.quorum_down.as_deref()),
        (None, None)
    );
    assert_eq!(vs.sorry_server, Some((ip("198.18.0.60"), 443)));
    assert_eq!(vs.virtualhost, None);
    assert!(!vs.alpha);
    assert!(vs.interfaces.is_empty());
    assert_eq!(vs.real_servers.len(), 2);

    let web = &vs.real_servers[0];
    assert_eq!(
        (web.address, web.port, web.weight),
        (ip("198.18.0.21"), 443, 3)
    );
    assert!(web.inhibit_on_failure, "inherited from the virtual server");
    assert_eq!(web.notify_up, None);
    assert_eq!(web.notify_down.as_deref(), Some("/etc/lb/alert.sh down"));
    assert_eq!(
        web.checks,
        vec![CheckSpec {
            kind: CheckKind::Ssl(HttpCheck {
                urls: vec![Url {
                    path: "/healthz".into(),
                    status: StatusMatch::Codes(vec![200, 204]),
                    digest: Some("9b3a0c85a887a256d6939da88aabd8cd".into()),
                    body: None,
                    virtualhost: None,
                }],
                virtualhost: None,
                tls: Some(TlsOptions {
                    verify: false,
                    ca: None,
                    sni: None,
                }),
            }),
            common: Common {
                connect_timeout: secs(2),
                retry: 2,
                delay_before_retry: secs(1),
                delay_loop: secs(2),
                warmup: secs(2),
                ..default_common()
            },
        }]
    );

    let script = &vs.real_servers[1];
    assert_eq!(
        (script.address, script.port, script.weight),
        (ip("198.18.0.22"), 443, 1)
    );
    assert!(script.inhibit_on_failure);
    assert_eq!(
        script.checks,
        vec![CheckSpec {
            kind: CheckKind::Misc(MiscCheck {
                path: "/usr/local/bin/check.sh 198.18.0.22".into(),
                timeout: secs(3),
                dynamic: true,
                user: None,
            }),
            // MISC_CHECK: no retry by default.
            common: Common {
                retry: 0,
                delay_loop: secs(2),
                warmup: secs(2),
                ..default_common()
            },
        }]
    );
}

#[test]
fn defaults_follow_keepalived() {
    let text = format!(
        "{BASE}[[virtual_server]]\naddress = \"198.18.0.100\"\nport = 80\n\
         [[virtual_server.real_server]]\naddress = \"198.18.0.21\"\n"
    );
    let vs = server(&text);
    assert_eq!(vs.protocol, Protocol::Tcp);
    assert_eq!(vs.lb_algo, LbAlgo::Maglev);
    assert_eq!(vs.lb_kind, LbKind::Dr, "DR, where keepalived says NAT");
    assert_eq!(vs.delay_loop, secs(60));
    assert_eq!(vs.persistence_timeout, None);
    assert_eq!(vs.table_size, 65537);
    assert!(!vs.inhibit_on_failure);
    assert_eq!((vs.quorum, vs.hysteresis), (1, 0));
    assert_eq!(vs.sorry_server, None);
    assert!(!vs.alpha);
    let real = &vs.real_servers[0];
    assert_eq!(
        (real.port, real.weight),
        (80, 1),
        "the port of the virtual server"
    );
    assert!(!real.inhibit_on_failure);
    assert!(real.checks.is_empty());

    // Each checker kind with nothing but what it requires.
    let found = checks(&with_real(
        "tcp_check = {}\nhttp_get = { url = { path = \"/\" } }\nssl_get = { url = { path = \"/\" } }\n\
         misc_check = { misc_path = \"/bin/true\" }\nsmtp_check = {}\ndns_check = {}\nudp_check = {}\n",
    ));
    let kinds: Vec<(&str, u32, Duration)> = found
        .iter()
        .map(|c| (c.kind.name(), c.common.retry, c.common.delay_before_retry))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("TCP_CHECK", 1, secs(1)),
            ("HTTP_GET", 1, secs(3)),
            ("SSL_GET", 1, secs(3)),
            ("MISC_CHECK", 0, secs(1)),
            ("SMTP_CHECK", 1, secs(1)),
            // DNS_CHECK retries 3 times, after its delay_loop.
            ("DNS_CHECK", 3, secs(60)),
            ("UDP_CHECK", 1, secs(1)),
        ]
    );
    assert_eq!(found[0].common, default_common());
    assert!(found.iter().all(|c| c.common.connect_timeout == secs(5)
        && c.common.delay_loop == secs(60)
        && c.common.warmup == secs(60)
        && (c.common.rise, c.common.fall) == (1, 1)));
    let http = HttpCheck {
        urls: vec![Url {
            path: "/".into(),
            status: StatusMatch::Default2xx,
            digest: None,
            body: None,
            virtualhost: None,
        }],
        virtualhost: None,
        tls: None,
    };
    assert_eq!(found[1].kind, CheckKind::Http(http.clone()));
    assert_eq!(
        found[2].kind,
        CheckKind::Ssl(HttpCheck {
            tls: Some(TlsOptions {
                verify: false,
                ca: None,
                sni: None
            }),
            ..http
        })
    );
    assert_eq!(
        found[3].kind,
        CheckKind::Misc(MiscCheck {
            path: "/bin/true".into(),
            timeout: secs(60),
            dynamic: false,
            user: None
        }),
        "misc_timeout: the virtual server's delay_loop"
    );
    assert_eq!(
        found[4].kind,
        CheckKind::Smtp(SmtpCheck {
            helo_name: "smtpchecker.keepalived.org".into()
        })
    );
    assert_eq!(
        found[5].kind,
        CheckKind::Dns(DnsCheck {
            name: ".".into(),
            qtype: DnsType::Soa
        })
    );
    assert_eq!(
        found[6].kind,
        CheckKind::Udp(UdpCheck {
            payload: Vec::new(),
            require_reply: false
        })
    );
}

#[test]
fn every_key_is_read() {
    let text = format!(
        r#"{BASE}[global]
dataplane = "ipvs"

[[virtual_server]]
address = "198.18.0.100"
port = 0
protocol = "udp"
lb_algo = "wlc"
lb_kind = "tun"
persistence_timeout = 300
hysteresis = 1
quorum_up = "/etc/lb/q.sh up"
quorum_down = "/etc/lb/q.sh down"
sorry_server = {{ address = "2001:db8::60" }}
virtualhost = "www.example.com"
alpha = true
interfaces = ["eth0", "eth1"]

[[virtual_server.real_server]]
address = "2001:db8::21"
port = 53
weight = 0
inhibit_on_failure = true
notify_up = "/etc/lb/alert.sh up"
dns_check = {{ name = "example.com", type = "aaaa", connect_ip = "2001:db8::53", connect_port = 5353, bindto = "2001:db8::1", rise = 2, fall = 3 }}
udp_check = {{ payload_hex = "0a 1B ff", require_reply = true, connect_port = 53 }}
ssl_get = {{ url = [{{ path = "/a", regex = "^ok", virtualhost = "a.example.com" }}, {{ path = "/b", body = "ok" }}, {{ path = "/c", regex = "maint", regex_no_match = true }}], verify = true, ca = "/etc/ssl/ca.pem", sni_name = "sni.example.com", connect_port = 443 }}
smtp_check = {{ helo_name = "lb.example.com", connect_port = 25 }}
misc_check = {{ misc_path = "/bin/check", user = "nobody" }}
"#
    );
    let Loaded { config, warnings } = load(&text);
    assert!(warnings.is_empty(), "{warnings:#?}");
    let vs = &config.virtual_servers[0];
    assert_eq!((vs.port, vs.protocol), (0, Protocol::Udp));
    assert_eq!(vs.lb_algo, LbAlgo::Ipvs("wlc"));
    assert_eq!(vs.lb_algo.ipvs_scheduler(), "wlc");
    assert_eq!(vs.lb_kind, LbKind::Tun);
    assert_eq!(vs.persistence_timeout, Some(secs(300)));
    assert_eq!((vs.table_size, vs.hysteresis), (65537, 1));
    assert_eq!(vs.quorum_up.as_deref(), Some("/etc/lb/q.sh up"));
    assert_eq!(vs.quorum_down.as_deref(), Some("/etc/lb/q.sh down"));
    // TUN: an IPv4 virtual server may tunnel to IPv6; the port is the virtual server's.
    assert_eq!(vs.sorry_server, Some((ip("2001:db8::60"), 0)));
    assert_eq!(vs.virtualhost.as_deref(), Some("www.example.com"));
    assert!(vs.alpha);
    assert_eq!(vs.interfaces, vec!["eth0".to_owned(), "eth1".to_owned()]);

    let real = &vs.real_servers[0];
    assert_eq!(
        (real.address, real.port, real.weight),
        (ip("2001:db8::21"), 53, 0)
    );
    assert!(real.inhibit_on_failure);
    assert_eq!(real.notify_up.as_deref(), Some("/etc/lb/alert.sh up"));
    let [dns, udp, ssl, smtp, misc] = &real.checks[..] else {
        panic!("five checks: {:#?}", real.checks);
    };
    assert_eq!(
        dns.kind,
        CheckKind::Dns(DnsCheck {
            name: "example.com".into(),
            qtype: DnsType::Aaaa
        })
    );
    assert_eq!(
        (
            dns.common.connect_ip,
            dns.common.connect_port,
            dns.common.bind_to
        ),
        (
            Some(ip("2001:db8::53")),
            Some(5353),
            Some(ip("2001:db8::1"))
        )
    );
    assert_eq!((dns.common.rise, dns.common.fall), (2, 3));
    assert_eq!(
        udp.kind,
        CheckKind::Udp(UdpCheck {
            payload: vec![0x0a, 0x1b, 0xff],
            require_reply: true
        })
    );
    assert_eq!(
        ssl.kind,
        CheckKind::Ssl(HttpCheck {
            urls: vec![
                Url {
                    path: "/a".into(),
                    status: StatusMatch::Default2xx,
                    digest: None,
                    body: Some(BodyMatch::Regex("^ok".into())),
                    virtualhost: Some("a.example.com".into()),
                },
                Url {
                    path: "/b".into(),
                    status: StatusMatch::Default2xx,
                    digest: None,
                    body: Some(BodyMatch::Contains("ok".into())),
                    virtualhost: None,
                },
                Url {
                    path: "/c".into(),
                    status: StatusMatch::Default2xx,
                    digest: None,
                    body: Some(BodyMatch::RegexAbsent("maint".into())),
                    virtualhost: None,
                },
            ],
            virtualhost: Some("www.example.com".into()),
            tls: Some(TlsOptions {
                verify: true,
                ca: Some("/etc/ssl/ca.pem".into()),
                sni: Some("sni.example.com".into()),
            }),
        })
    );
    assert_eq!(
        smtp.kind,
        CheckKind::Smtp(SmtpCheck {
            helo_name: "lb.example.com".into()
        })
    );
    assert_eq!(
        misc.kind,
        CheckKind::Misc(MiscCheck {
            path: "/bin/check".into(),
            timeout: secs(60),
            dynamic: false,
            user: Some("nobody".into())
        })
    );

    // Maglev on the IPVS data plane stands for IPVS's mh and sh.
    assert_eq!(LbAlgo::Maglev.ipvs_scheduler(), "mh");
    assert_eq!(LbAlgo::MaglevSrc.ipvs_scheduler(), "sh");
}

#[test]
fn checker_settings_pass_down() {
    let text = with_server(
        "delay_loop = 10\nvirtualhost = \"www.example.com\"\nconnect_timeout = 3\nretry = 4\n",
        "retry = 7\nwarmup = 0\n\
         http_get = { url = { path = \"/\" } }\n\
         ssl_get = { url = { path = \"/\" }, virtualhost = \"own.example.com\", retry = 9, delay_loop = 5, warmup = \"1s\" }\n\
         tcp_check = { delay_loop = 5 }\n",
    );
    let found = checks(&text);
    let [http, ssl, tcp] = &found[..] else {
        panic!("three checks: {found:#?}");
    };
    // The virtual server's virtualhost, timeout and delay_loop; the real's retry and warmup.
    let CheckKind::Http(h) = &http.kind else {
        panic!("{http:?}")
    };
    assert_eq!(h.virtualhost.as_deref(), Some("www.example.com"));
    assert_eq!(
        http.common,
        Common {
            connect_timeout: secs(3),
            retry: 7,
            delay_before_retry: secs(3),
            delay_loop: secs(10),
            warmup: Duration::ZERO,
            ..default_common()
        }
    );
    // The checker's own settings win; SNI follows the checker's virtualhost.
    let CheckKind::Ssl(s) = &ssl.kind else {
        panic!("{ssl:?}")
    };
    assert_eq!(s.virtualhost.as_deref(), Some("own.example.com"));
    assert_eq!(
        s.tls.as_ref().and_then(|t| t.sni.as_deref()),
        Some("own.example.com")
    );
    assert_eq!(
        (ssl.common.retry, ssl.common.delay_loop, ssl.common.warmup),
        (9, secs(5), secs(1))
    );
    assert_eq!(
        (tcp.common.delay_loop, tcp.common.warmup),
        (secs(5), Duration::ZERO)
    );

    // warmup defaults to the checker's own delay_loop.
    let found = checks(&with_real("tcp_check = { delay_loop = \"500ms\" }\n"));
    assert_eq!(found[0].common.warmup, Duration::from_millis(500));
}

#[test]
fn several_checkers_on_one_real_in_written_order() {
    let text = with_real(
        r#"misc_check = { misc_path = "/bin/check" }
http_get = [{ url = { path = "/a" } }, { url = { path = "/b" }, connect_port = 8080 }]
tcp_check = { connect_port = 22 }

[[virtual_server.real_server.dns_check]]
name = "a.example.com"

[[virtual_server.real_server.dns_check]]
name = "b.example.com"
"#,
    );
    let found = checks(&text);
    let shown: Vec<(&str, Option<u16>)> = found
        .iter()
        .map(|c| (c.kind.name(), c.common.connect_port))
        .collect();
    assert_eq!(
        shown,
        vec![
            ("MISC_CHECK", None),
            ("HTTP_GET", None),
            ("HTTP_GET", Some(8080)),
            ("TCP_CHECK", Some(22)),
            ("DNS_CHECK", None),
            ("DNS_CHECK", None),
        ]
    );
    let names: Vec<&str> = found
        .iter()
        .filter_map(|c| match &c.kind {
            CheckKind::Dns(dns) => Some(dns.name.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(names, ["a.example.com", "b.example.com"]);

    // An error in the second of several checkers of a kind names it by index.
    let e = error(&with_real("tcp_check = [{}, { connect_port = 0 }]\n"));
    assert_eq!(e.key, format!("{REAL}.tcp_check[1].connect_port"));
    assert_eq!(
        (at(&e), e.message.as_str()),
        ((11, 35), "must be between 1 and 65535, got 0")
    );

    let e = error(&with_real("tcp_check = true\n"));
    assert_eq!(e.key, format!("{REAL}.tcp_check"));
    assert_eq!(
        e.message,
        "expected a table or an array of tables, found boolean"
    );
}

#[test]
fn status_code_forms() {
    let status = |written: &str| {
        let text = with_real(&format!(
            "http_get = {{ url = {{ path = \"/\", status_code = {written} }} }}\n"
        ));
        match &checks(&text)[0].kind {
            CheckKind::Http(h) => h.urls[0].status.clone(),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(status("200"), StatusMatch::Codes(vec![200]));
    assert_eq!(status("[200, 204]"), StatusMatch::Codes(vec![200, 204]));
    assert_eq!(status("\"200-299\""), StatusMatch::Range(200, 299));
    assert_eq!(status("\" 301 - 302 \""), StatusMatch::Range(301, 302));
    assert_eq!(status("\"204\""), StatusMatch::Codes(vec![204]));
    assert_eq!(status("[\"300-399\"]"), StatusMatch::Range(300, 399));
    // keepalived's `status_code 200-202 404 200`: every code once, in order.
    assert_eq!(
        status("[\"200-202\", 404, 200]"),
        StatusMatch::Codes(vec![200, 201, 202, 404])
    );
    assert!(status("\"200-299\"").accepts(250));

    // The value starts at column 48 of line 11.
    let bad = |written: &str| {
        error(&with_real(&format!(
            "http_get = {{ url = {{ path = \"/\", status_code = {written} }} }}\n"
        )))
    };
    let key = format!("{REAL}.http_get.url.status_code");
    let e = bad("600");
    assert_eq!((e.key.as_str(), at(&e)), (key.as_str(), (11, 48)));
    assert_eq!(e.message, "must be between 100 and 599, got 600");
    let e = bad("\"299-200\"");
    assert_eq!(e.message, "range `299-200` ends before it starts");
    let e = bad("\"2xx\"");
    assert_eq!(e.message, "`2xx` is not a status code or a range");
    assert!(e.hint.as_deref().is_some_and(|h| h.contains("\"200-299\"")));
    let e = bad("[]");
    assert_eq!(e.message, "an empty list accepts no status code");
    let e = bad("[200, \"99\"]");
    assert_eq!(e.key, format!("{key}[1]"));
    assert_eq!(at(&e), (11, 54));
    assert_eq!(e.message, "status codes are between 100 and 599, got `99`");
    let e = bad("true");
    assert_eq!(e.message, "expected an integer, found boolean");
}

#[test]
fn legacy_nb_get_retry_warns() {
    let text = with_real("http_get = { url = { path = \"/\" }, nb_get_retry = 3 }\n");
    let Loaded { config, warnings } = load(&text);
    assert_eq!(
        config.virtual_servers[0].real_servers[0].checks[0]
            .common
            .retry,
        3
    );
    assert_eq!(
        summary(&warnings),
        vec![(
            format!("{REAL}.http_get.nb_get_retry"),
            (11, 51),
            "deprecated: use `retry`".into()
        )]
    );
    assert_eq!(warnings[0].hint.as_deref(), Some("write retry = 3"));

    let e = error(&with_real(
        "http_get = { url = { path = \"/\" }, retry = 1, nb_get_retry = 3 }\n",
    ));
    assert_eq!(e.key, format!("{REAL}.http_get.nb_get_retry"));
    assert_eq!(
        e.message,
        "`retry` is set too: nb_get_retry is its legacy name"
    );
}

#[test]
fn address_families() {
    // DR (and NAT) keep the family.
    let e = error(&with_real("").replace("198.18.0.21", "2001:db8::21"));
    assert_eq!(
        e.key,
        "virtual_server \"198.18.0.100:443\".real_server \"2001:db8::21\".address"
    );
    assert_eq!(at(&e), (10, 11));
    assert_eq!(e.message, "IPv6 real server in an IPv4 virtual server");
    assert!(e
        .hint
        .as_deref()
        .is_some_and(|h| h.contains("lb_kind = \"TUN\"")));
    let e = error(&with_server("lb_kind = \"NAT\"\n", "").replace("198.18.0.21", "2001:db8::21"));
    assert_eq!(e.message, "IPv6 real server in an IPv4 virtual server");

    // TUN carries IPv4 to IPv6 real servers, not IPv6 to IPv4 ones.
    let tun = with_server("lb_kind = \"TUN\"\n", "").replace("198.18.0.21", "2001:db8::21");
    assert_eq!(server(&tun).real_servers[0].address, ip("2001:db8::21"));
    let text = "[[virtual_server]]\naddress = \"2001:db8::100\"\nport = 443\nlb_kind = \"TUN\"\n\
                [[virtual_server.real_server]]\naddress = \"198.18.0.21\"\n";
    let e = error(text);
    assert_eq!(
        e.key,
        "virtual_server \"[2001:db8::100]:443\".real_server \"198.18.0.21\".address"
    );
    assert_eq!(at(&e), (6, 11));
    assert_eq!(e.message, "IPv4 real server in an IPv6 virtual server");

    // The sorry server follows the same rule.
    let e = error(&with_server(
        "sorry_server = { address = \"2001:db8::60\", port = 80 }\n",
        "",
    ));
    assert_eq!(e.key, format!("{VS}.sorry_server.address"));
    assert_eq!(at(&e), (9, 28));
    assert_eq!(e.message, "IPv6 sorry server in an IPv4 virtual server");

    // bindto must be of the family the checker connects to.
    let e = error(&with_real("tcp_check = { bindto = \"2001:db8::1\" }\n"));
    assert_eq!(e.key, format!("{REAL}.tcp_check.bindto"));
    assert_eq!(
        e.message,
        "IPv6 source address for a check of IPv4 address 198.18.0.21"
    );

    // An address with its port gets told where the port goes.
    let e = error(&with_real("").replace("\"198.18.0.21\"", "\"198.18.0.21:80\""));
    assert_eq!(e.message, "`198.18.0.21:80` is not an IP address");
    assert!(e.hint.as_deref().is_some_and(|h| h.contains("port = 443")));
}

#[test]
fn ranges_are_enforced() {
    let real_cases: &[(&str, &str, &str)] = &[
        (
            "weight = 65536",
            "weight",
            "must be between 0 and 65535, got 65536",
        ),
        (
            "weight = -1",
            "weight",
            "must be between 0 and 65535, got -1",
        ),
        (
            "tcp_check = { connect_timeout = 0 }",
            "tcp_check.connect_timeout",
            "must be longer than zero",
        ),
        (
            "http_get = { url = [{ path = \"/\", regex_no_match = true }] }",
            "http_get.url[0].regex_no_match",
            "`regex_no_match` needs a `regex`",
        ),
        (
            "tcp_check = { retry = -1 }",
            "tcp_check.retry",
            "must be between 0 and 4294967295, got -1",
        ),
        (
            "tcp_check = { rise = 0 }",
            "tcp_check.rise",
            "must be between 1 and 4294967295, got 0",
        ),
        (
            "misc_check = { misc_path = \"/bin/true\", misc_timeout = \"0s\" }",
            "misc_check.misc_timeout",
            "must be longer than zero",
        ),
    ];
    for (line, key, message) in real_cases {
        let e = error(&with_real(&format!("{line}\n")));
        assert_eq!(e.key, format!("{REAL}.{key}"), "{line}");
        // The value after the last `=` of the line.
        let value_column = line.rfind('=').unwrap_or(0) + 3;
        assert_eq!(at(&e), (11, value_column), "{line}");
        assert_eq!(e.message, *message, "{line}");
    }

    let server_cases: &[(&str, &str, &str)] = &[
        (
            "quorum = 0",
            "quorum",
            "must be between 1 and 4294967295, got 0",
        ),
        ("hysteresis = -1", "hysteresis", "must be between 0 and 4294967295, got -1"),
        ("delay_loop = 0", "delay_loop", "must be longer than zero"),
        (
            "table_size = 1000",
            "table_size",
            "must be one of 251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65537, 131071, got 1000",
        ),
        (
            "persistence_timeout = 0",
            "persistence_timeout",
            "must be between 1s and 2678400s, got 0ns",
        ),
        (
            "persistence_timeout = \"745h\"",
            "persistence_timeout",
            "must be between 1s and 2678400s, got 2682000s",
        ),
        (
            "persistence_timeout = 1.5",
            "persistence_timeout",
            "persistence is kept in whole seconds, got 1.5s",
        ),
        (
            "persistence_granularity = 24",
            "persistence_granularity",
            "`persistence_granularity` needs `persistence_timeout`",
        ),
    ];
    for (line, key, message) in server_cases {
        let e = error(&with_server(&format!("{line}\n"), ""));
        assert_eq!(e.key, format!("{VS}.{key}"), "{line}");
        let value_column = line.rfind('=').unwrap_or(0) + 3;
        assert_eq!(at(&e), (9, value_column), "{line}");
        assert_eq!(e.message, *message, "{line}");
    }

    // A real server's port is shown with its address.
    for (port, message) in [
        ("0", "must be between 1 and 65535, got 0"),
        ("65536", "must be between 1 and 65535, got 65536"),
    ] {
        let e = error(&with_real(&format!("port = {port}\n")));
        assert_eq!(
            e.key,
            format!("{VS}.real_server \"198.18.0.21:{port}\".port")
        );
        assert_eq!((at(&e), e.message.as_str()), ((11, 8), message));
    }
    let e = error(&with_real("").replace("port = 443", "port = 65536"));
    assert_eq!(e.key, "virtual_server \"198.18.0.100:65536\".port");
    assert_eq!(e.message, "must be between 0 and 65535, got 65536");

    // The edges are valid.
    load(&with_real("weight = 65535\n"));
    load(&with_real("weight = 0\n"));
    load(&with_server("persistence_timeout = \"744h\"\n", ""));
    load(&with_server("table_size = 131071\n", ""));
}

#[test]
fn duplicates() {
    let second = |protocol: &str| {
        format!(
            "{}\n[[virtual_server]]\naddress = \"198.18.0.100\"\nport = 443\n{protocol}\
             [[virtual_server.real_server]]\naddress = \"198.18.0.22\"\n",
            with_real("")
        )
    };
    let e = error(&second(""));
    assert_eq!(e.key, "virtual_server \"198.18.0.100:443\".address");
    assert_eq!(at(&e), (13, 11));
    assert_eq!(
        e.message,
        "virtual server 198.18.0.100:443 TCP is defined twice"
    );
    assert_eq!(e.hint.as_deref(), Some("first defined at line 7"));
    // The same address and port in UDP is another service.
    assert_eq!(
        load(&second("protocol = \"UDP\"\n"))
            .config
            .virtual_servers
            .len(),
        2
    );

    let text = format!(
        "{}[[virtual_server.real_server]]\naddress = \"198.18.0.21\"\nport = 443\n",
        with_real("")
    );
    let e = error(&text);
    assert_eq!(
        e.key,
        "virtual_server \"198.18.0.100:443\".real_server \"198.18.0.21:443\".address"
    );
    assert_eq!(at(&e), (12, 11));
    assert_eq!(e.message, "real server 198.18.0.21:443 is listed twice");
    assert_eq!(e.hint.as_deref(), Some("first defined at line 10"));

    let e = error(&with_server("interfaces = [\"eth0\", \"eth0\"]\n", ""));
    assert_eq!(e.key, format!("{VS}.interfaces[1]"));
    assert_eq!(e.message, "`eth0` is listed twice");
}

#[test]
fn unknown_keys_get_did_you_mean() {
    let cases: &[(&str, &str, (usize, usize), &str)] = &[
        (
            "tcp_check = { conect_timeout = \"1s\" }",
            "tcp_check.conect_timeout",
            (11, 15),
            "did you mean `connect_timeout`?",
        ),
        (
            "tcp_chek = {}",
            "tcp_chek",
            (11, 1),
            "did you mean `tcp_check`?",
        ),
        (
            "TCP_CHECK = {}",
            "TCP_CHECK",
            (11, 1),
            "did you mean `tcp_check`?",
        ),
        ("wieght = 2", "wieght", (11, 1), "did you mean `weight`?"),
        (
            "http_get = { url = { path = \"/\", stauts_code = 200 } }",
            "http_get.url.stauts_code",
            (11, 34),
            "did you mean `status_code`?",
        ),
        (
            "http_get = { url = { path = \"/\" }, verify = true }",
            "http_get.verify",
            (11, 36),
            "TLS settings belong to ssl_get",
        ),
        (
            "misc_check = { misc_path = \"/bin/true\", connect_timeout = 1 }",
            "misc_check.connect_timeout",
            (11, 41),
            "misc_check runs a command: its time limit is `misc_timeout`",
        ),
        (
            "dns_check = { tpye = \"A\" }",
            "dns_check.tpye",
            (11, 15),
            "did you mean `type`?",
        ),
    ];
    for (line, key, position, hint) in cases {
        let e = error(&with_real(&format!("{line}\n")));
        assert_eq!(e.key, format!("{REAL}.{key}"), "{line}");
        assert_eq!(at(&e), *position, "{line}");
        assert_eq!(e.message, "unknown key", "{line}");
        assert_eq!(e.hint.as_deref(), Some(*hint), "{line}");
    }

    let e = error(&with_server("lb_algp = \"rr\"\n", ""));
    assert_eq!(e.key, format!("{VS}.lb_algp"));
    assert_eq!(e.hint.as_deref(), Some("did you mean `lb_algo`?"));
    let e = error(&with_server("lvs_sched = \"rr\"\n", ""));
    assert_eq!(
        e.hint.as_deref(),
        Some("keepalived's `lvs_sched` is `lb_algo` here")
    );
    let e = error(&with_server("lb_algo = \"maglv\"\n", ""));
    assert_eq!(
        (e.message.as_str(), e.hint.as_deref()),
        ("unknown value `maglv`", Some("did you mean `maglev`?"))
    );
    let e = error(&with_server("lb_kind = \"DSR\"\n", ""));
    assert_eq!(e.message, "unknown value `DSR`");
    let e = error(&format!(
        "[global]\ndataplane = \"xdp\"\n{}",
        with_server("protocol = \"SCTP\"\n", "")
    ));
    assert_eq!(e.message, "an SCTP virtual server needs the IPVS data plane: on dataplane = \"xdp\" the XDP program parses TCP and UDP only");
    assert_eq!(
        server(&on_ipvs(&with_server("protocol = \"SCTP\"\n", ""))).protocol,
        Protocol::Sctp
    );
    let e = error(&with_real("dns_check = { type = \"PTR\" }\n"));
    assert_eq!(e.message, "unknown value `PTR`");
}

#[test]
fn lb_kind_is_case_insensitive() {
    for (written, kind) in [
        ("DR", LbKind::Dr),
        ("dr", LbKind::Dr),
        ("Tun", LbKind::Tun),
        ("nat", LbKind::Nat),
    ] {
        let text = with_server(&format!("lb_kind = \"{written}\"\n"), "");
        assert_eq!(server(&text).lb_kind, kind, "{written}");
    }
}

const FWMARK_REAL: &str = "[[virtual_server.real_server]]\naddress = \"198.18.0.21\"\nport = 80\n";

#[test]
fn fwmark_on_xdp_needs_the_match_list_and_says_what_to_write() {
    let text = format!("[[virtual_server]]\nfwmark = 1\n{FWMARK_REAL}");
    let e = error(&text);
    assert_eq!(e.key, "virtual_server \"fwmark 1\".fwmark");
    assert_eq!(at(&e), (2, 10));
    assert!(
        e.message
            .contains("needs the addresses and ports the mark selects"),
        "{}",
        e.message
    );
    assert_eq!(
        e.hint.as_deref(),
        Some("list them with protocol, e.g. match = [\"198.18.0.100:80\", \"198.18.0.100:443\"], or set dataplane = \"ipvs\" in [global]")
    );
}

#[test]
fn fwmark_on_ipvs_is_named_by_its_mark() {
    let text = format!("[global]\ndataplane = \"ipvs\"\n[[virtual_server]]\nfwmark = 7\npersistence_timeout = 60\n{FWMARK_REAL}");
    let vs = server(&text);
    assert_eq!(vs.fwmark, Some(7));
    assert_eq!((vs.address, vs.port), (ip("0.0.0.7"), 0));
    assert!(vs.matches.is_empty());
}

#[test]
fn fwmark_with_a_match_list() {
    let text = "[[virtual_server]]\nfwmark = 1\nmatch = [\"[2001:db8::100]:80\", \"[2001:db8::100]:443\"]\n\
         [[virtual_server.real_server]]\naddress = \"2001:db8::21\"\nport = 80\n";
    let vs = server(text);
    assert_eq!(vs.fwmark, Some(1));
    assert_eq!(vs.address, ip("0:1::"));
    let matches: Vec<String> = vs.matches.iter().map(|m| m.to_string()).collect();
    assert_eq!(matches, ["[2001:db8::100]:80", "[2001:db8::100]:443"]);
}

#[test]
fn a_match_entry_is_a_service_no_other_server_may_define() {
    let text = with_server(
        "",
        &format!("[[virtual_server]]\nfwmark = 1\nmatch = [\"198.18.0.100:443\"]\n{FWMARK_REAL}"),
    );
    let e = error(&text);
    assert_eq!(e.key, "virtual_server \"fwmark 1\".match");
    assert_eq!(
        e.message,
        "virtual server 198.18.0.100:443 TCP is defined twice"
    );
}

#[test]
fn fwmark_mistakes_are_refused_clearly() {
    let fw = |extra: &str| {
        format!(
            "[[virtual_server]]\nfwmark = 1\nmatch = [\"198.18.0.100:80\"]\n{extra}{FWMARK_REAL}"
        )
    };
    let e = error(&fw("address = \"198.18.0.100\"\n"));
    assert_eq!(e.key, "virtual_server \"fwmark 1\".address");
    assert_eq!(
        e.message,
        "a fwmark virtual server has no address: the mark selects its packets"
    );
    let e = error(&fw("port = 80\n"));
    assert_eq!(e.key, "virtual_server \"fwmark 1\".port");
    let e = error(&fw("").replace("fwmark = 1", "fwmark = 16777216"));
    assert_eq!(e.key, "virtual_server \"fwmark 16777216\".fwmark");
    let e = error(&fw("").replace(
        "\"198.18.0.100:80\"",
        "\"198.18.0.100:80\", \"[2001:db8::1]:80\"",
    ));
    assert_eq!(
        e.message,
        "`[2001:db8::1]:80` is not of the family of the first entry"
    );
    let e = error(&fw("").replace("\"198.18.0.100:80\"", "\"198.18.0.100\""));
    assert_eq!(e.message, "`198.18.0.100` is not ADDRESS:PORT");
    let e = error(&fw("").replace("\"198.18.0.100:80\"", ""));
    assert_eq!(e.message, "match lists no address");
    let e = error(&with_server("match = [\"198.18.0.100:80\"]\n", ""));
    assert_eq!(e.message, "match applies to fwmark virtual servers only");
}

#[test]
fn schedulers_and_the_dataplane() {
    let text = |dataplane: &str, algo: &str| {
        format!(
            "[global]\ndataplane = \"{dataplane}\"\n{}",
            with_server(&format!("lb_algo = \"{algo}\"\n"), "")
        )
    };
    // IPVS schedulers: refused on xdp, warned about on auto, fine on ipvs.
    let e = error(&text("xdp", "wlc"));
    assert_eq!(e.key, format!("{VS}.lb_algo"));
    assert_eq!(at(&e), (11, 11));
    assert_eq!(
        e.message,
        "`wlc` is an IPVS scheduler, and the dataplane is xdp"
    );
    assert!(e
        .hint
        .as_deref()
        .is_some_and(|h| h.contains("dataplane = \"ipvs\"")));
    let loaded = load(&text("auto", "rr"));
    assert_eq!(loaded.warnings.len(), 1);
    assert_eq!(
        loaded.warnings[0].message,
        "`rr` is an IPVS scheduler: with dataplane = \"auto\" the daemon runs on IPVS"
    );
    assert_eq!(server(&text("ipvs", "rr")).lb_algo, LbAlgo::Ipvs("rr"));
    // Maglev runs everywhere.
    assert_eq!(
        server(&text("ipvs", "maglev_src")).lb_algo,
        LbAlgo::MaglevSrc
    );
    assert_eq!(server(&text("xdp", "maglev")).lb_algo, LbAlgo::Maglev);
    for name in LbAlgo::IPVS_SCHEDULERS {
        assert_eq!(server(&text("ipvs", name)).lb_algo, LbAlgo::Ipvs(name));
    }

    // table_size belongs to Maglev.
    let loaded = load(&format!(
        "[global]\ndataplane = \"ipvs\"\n{}",
        with_server("lb_algo = \"rr\"\ntable_size = 251\n", "")
    ));
    assert_eq!(
        loaded.warnings[0].message,
        "ignored: only maglev and maglev_src use a Maglev table"
    );
}

#[test]
fn maglev_table_must_fit_the_real_servers() {
    let reals = |n: usize| -> String {
        (0..n)
            .map(|i| {
                format!(
                    "[[virtual_server.real_server]]\naddress = \"10.0.{}.{}\"\n",
                    i / 250,
                    i % 250 + 1
                )
            })
            .collect()
    };
    let text = |n: usize| {
        format!(
            "{BASE}[[virtual_server]]\naddress = \"198.18.0.100\"\nport = 80\ntable_size = 251\n{}",
            reals(n)
        )
    };
    let loaded = load(&text(3));
    assert_eq!(
        summary(&loaded.warnings),
        vec![(
            "virtual_server \"198.18.0.100:80\".table_size".into(),
            (9, 14),
            "a Maglev table of 251 slots balances 3 real servers unevenly".into()
        )]
    );
    assert_eq!(
        loaded.warnings[0].hint.as_deref(),
        Some("set table_size = 509 or more")
    );
    let e = error(&text(251));
    assert_eq!(
        e.message,
        "251 real servers with weight > 0 do not fit a Maglev table of 251 slots"
    );
    assert_eq!(e.hint.as_deref(), Some("set table_size = 32749 or more"));
    load(&text(2));
}

#[test]
fn warnings_keep_the_file_loadable() {
    // No real server.
    let loaded = load(&format!(
        "{BASE}[[virtual_server]]\naddress = \"198.18.0.100\"\nport = 443\n"
    ));
    assert_eq!(
        summary(&loaded.warnings),
        vec![(
            VS.into(),
            (6, 1),
            "no real_server: nothing to balance to".into()
        )]
    );

    // DR cannot move a real server to another port.
    let loaded = load(&with_real("port = 8443\n"));
    assert_eq!(
        summary(&loaded.warnings),
        vec![(
            "virtual_server \"198.18.0.100:443\".real_server \"198.18.0.21:8443\".port".into(),
            (11, 8),
            "DR keeps the destination port: clients reach this real server on port 443, not 8443"
                .into()
        )]
    );
    let nat = with_server("lb_kind = \"NAT\"\n", "port = 8443\n");
    assert_eq!(server(&nat).real_servers[0].port, 8443);

    // A quorum that the weights can never reach.
    let loaded = load(&with_server("quorum = 3\n", "weight = 2\n"));
    assert_eq!(
        summary(&loaded.warnings),
        vec![(
            format!("{VS}.quorum"),
            (9, 10),
            "quorum 3 is above the total weight 2 of the real servers: it can never be reached"
                .into()
        )]
    );
    // … unless a MISC_CHECK sets weights.
    let dynamic = with_server(
        "quorum = 3\n",
        "misc_check = { misc_path = \"/bin/w\", misc_dynamic = true }\n",
    );
    assert_eq!(server(&dynamic).quorum, 3);

    // A CA that nothing uses.
    let loaded = load(&with_real(
        "ssl_get = { url = { path = \"/\" }, ca = \"/etc/ssl/ca.pem\" }\n",
    ));
    assert_eq!(
        loaded.warnings[0].message,
        "ignored: the certificate is not verified"
    );
}

#[test]
fn checker_errors() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "http_get = { url = { path = \"/\", digest = \"9b3a\" } }",
            "http_get.url.digest",
            "`9b3a` is not an MD5 digest: expected 32 hexadecimal digits",
        ),
        (
            "http_get = { url = { path = \"/\", digest = \"zz3a0c85a887a256d6939da88aabd8cd\" } }",
            "http_get.url.digest",
            "`zz3a0c85a887a256d6939da88aabd8cd` is not an MD5 digest: expected 32 hexadecimal digits",
        ),
        (
            "http_get = { url = { path = \"healthz\" } }",
            "http_get.url.path",
            "`healthz` is not an HTTP path",
        ),
        (
            "http_get = { url = [] }",
            "http_get.url",
            "a checker needs at least one url",
        ),
        (
            "http_get = { url = { path = \"/\", regex = \"ok\", body = \"ok\" } }",
            "http_get.url.body",
            "`regex` is set too",
        ),
        (
            "http_get = { url = { path = \"/\", regex = \"(ok\" } }",
            "http_get.url.regex",
            "invalid regular expression: unclosed group",
        ),
        (
            "udp_check = { payload = \"ping\", payload_hex = \"00\" }",
            "udp_check.payload_hex",
            "`payload` is set too",
        ),
        (
            "udp_check = { payload_hex = \"abc\" }",
            "udp_check.payload_hex",
            "an odd number of hexadecimal digits",
        ),
        (
            "udp_check = { payload_hex = \"0g\" }",
            "udp_check.payload_hex",
            "`g` is not a hexadecimal digit",
        ),
        (
            "dns_check = { name = \"a..b\" }",
            "dns_check.name",
            "`a..b` is not a domain name",
        ),
    ];
    for (line, key, message) in cases {
        let e = error(&with_real(&format!("{line}\n")));
        assert_eq!(e.key, format!("{REAL}.{key}"), "{line}");
        assert_eq!(e.message, *message, "{line}");
    }

    let e = error(&with_real("http_get = {}\n"));
    assert_eq!(e.key, format!("{REAL}.http_get"));
    assert_eq!(
        (at(&e), e.message.as_str()),
        ((11, 12), "missing required key `url`")
    );
    let e = error(&with_real("misc_check = { user = \"nobody\" }\n"));
    assert_eq!(e.message, "missing required key `misc_path`");

    // The digest is kept as genhash prints it.
    let text = with_real(
        "http_get = { url = { path = \"/\", digest = \"9B3A0C85A887A256D6939DA88AABD8CD\" } }\n",
    );
    let CheckKind::Http(h) = &checks(&text)[0].kind else {
        panic!("http_get")
    };
    assert_eq!(
        h.urls[0].digest.as_deref(),
        Some("9b3a0c85a887a256d6939da88aabd8cd")
    );
}

#[test]
fn all_ports_need_a_port_to_check() {
    let text = |check: &str| {
        format!(
            "{BASE}[[virtual_server]]\naddress = \"198.18.0.100\"\nport = 0\n\
             [[virtual_server.real_server]]\naddress = \"198.18.0.21\"\n{check}\n"
        )
    };
    let e = error(&text("tcp_check = {}"));
    assert_eq!(
        e.key,
        "virtual_server \"198.18.0.100:0\".real_server \"198.18.0.21\".tcp_check"
    );
    assert_eq!(at(&e), (11, 13));
    assert_eq!(
        e.message,
        "the real server's port is 0 (every port): this checker needs a port"
    );
    let vs = server(&text("tcp_check = { connect_port = 22 }"));
    assert_eq!(vs.real_servers[0].port, 0);
    assert_eq!(vs.real_servers[0].checks[0].common.connect_port, Some(22));
    server(&text("misc_check = { misc_path = \"/bin/true\" }"));
}

#[test]
fn addresses_no_instance_moves_are_warned_about() {
    let loaded = load(&with_real("").replace(
        "address = \"198.18.0.100\"\nport",
        "address = \"198.18.0.101\"\nport",
    ));
    assert_eq!(
        summary(&loaded.warnings),
        vec![(
            "virtual_server \"198.18.0.101:443\".address".into(),
            (7, 11),
            "198.18.0.101 is in no vrrp_instance's virtual_ipaddress".into()
        )]
    );
    assert!(loaded.warnings[0]
        .hint
        .as_deref()
        .is_some_and(|h| h.contains("vrrp_instance")));
    assert!(load(&with_real("")).warnings.is_empty());
}

#[test]
fn errors_elsewhere_are_all_reported() {
    let errors = rejected(&with_server(
        "quorum = 0\n",
        "weight = -1\ntcp_check = { retry = \"x\" }\n",
    ))
    .errors;
    let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        vec![
            "virtual_server \"198.18.0.100:443\".quorum",
            "virtual_server \"198.18.0.100:443\".real_server \"198.18.0.21\".weight",
            "virtual_server \"198.18.0.100:443\".real_server \"198.18.0.21\".tcp_check.retry",
        ]
    );
}

#[test]
fn server_interfaces_are_checked_by_the_caller() {
    let config = load(&with_server("interfaces = [\"eth0\", \"eth5\"]\n", "")).config;
    let missing = check_interfaces(&config, |name| name == "eth0");
    assert_eq!(
        summary(&missing),
        vec![(
            format!("{VS}.interfaces[1]"),
            (9, 23),
            "interface `eth5` does not exist".into()
        )]
    );
    let e = error(&with_server("interfaces = [\"a/b\"]\n", ""));
    assert_eq!(e.message, "`a/b` is not a valid interface name");
}

#[test]
fn ping_check_needs_no_port_and_refuses_one() {
    let text = |check: &str| {
        format!(
            "{BASE}[[virtual_server]]\naddress = \"198.18.0.100\"\nport = 0\n\
             [[virtual_server.real_server]]\naddress = \"198.18.0.21\"\n{check}\n"
        )
    };
    let vs = server(&text(
        "ping_check = { connect_ip = \"198.18.0.31\", connect_timeout = \"2s\", retry = 3 }",
    ));
    let check = &vs.real_servers[0].checks[0];
    assert_eq!(check.kind, CheckKind::Ping);
    assert_eq!(check.kind.name(), "PING_CHECK");
    assert_eq!(
        check.common,
        Common {
            connect_ip: Some(ip("198.18.0.31")),
            connect_timeout: secs(2),
            retry: 3,
            ..default_common()
        }
    );
    let e = error(&text("ping_check = { connect_port = 80 }"));
    assert_eq!(
        e.key,
        "virtual_server \"198.18.0.100:0\".real_server \"198.18.0.21\".ping_check.connect_port"
    );
    assert_eq!(at(&e), (11, 16));
    assert_eq!(e.message, "unknown key");
    assert_eq!(
        e.hint.as_deref(),
        Some("ping_check sends ICMP echo requests, which have no port")
    );
}

#[test]
fn file_check_reads_its_file_weight_and_reverse() {
    let vs = server(&with_real(
        "file_check = [{ file = \"/run/lb/w\" }, { file = \"/run/lb/x\", weight = -3, reverse = true }]\n",
    ));
    let kinds: Vec<CheckKind> = vs.real_servers[0]
        .checks
        .iter()
        .map(|c| c.kind.clone())
        .collect();
    assert_eq!(
        kinds,
        [
            CheckKind::File(FileCheck {
                file: "/run/lb/w".into(),
                weight: 1,
                reverse: false
            }),
            CheckKind::File(FileCheck {
                file: "/run/lb/x".into(),
                weight: -3,
                reverse: true
            }),
        ]
    );
    assert_eq!(vs.real_servers[0].checks[0].kind.name(), "FILE_CHECK");
    let cases: &[(&str, &str, &str, Option<&str>)] = &[
        (
            "file_check = { file = \"w\" }",
            "file_check.file",
            "`w` is not an absolute path",
            Some("write the file's full path, e.g. \"/etc/lb/weight\""),
        ),
        (
            "file_check = { weight = 2 }",
            "file_check",
            "missing required key `file`",
            None,
        ),
        (
            "file_check = { file = \"/w\", delay_loop = \"1s\" }",
            "file_check.delay_loop",
            "unknown key",
            Some("file_check has no schedule: the file is watched and re-read when it changes"),
        ),
        (
            "file_check = { file = \"/w\", track_file = \"w\" }",
            "file_check.track_file",
            "unknown key",
            Some("write the file's path: file = \"/PATH\""),
        ),
    ];
    for (line, key, message, hint) in cases {
        let e = error(&with_real(&format!("{line}\n")));
        assert_eq!(e.key, format!("{REAL}.{key}"), "{line}");
        assert_eq!(e.message, *message, "{line}");
        assert_eq!(e.hint.as_deref(), *hint, "{line}");
    }
}

/// `[global] dataplane = "ipvs"` before [`with_server`]'s text (2 lines more).
fn on_ipvs(text: &str) -> String {
    format!("[global]\ndataplane = \"ipvs\"\n{text}")
}

#[test]
fn a_real_and_the_sorry_server_may_have_their_own_lb_kind_on_ipvs() {
    let text = on_ipvs(&with_server(
        "sorry_server = { address = \"198.18.0.60\", port = 8081, lb_kind = \"NAT\" }\n",
        // NAT may change the port: no warning.
        "port = 8080\nlb_kind = \"nat\"\n\
         [[virtual_server.real_server]]\naddress = \"198.18.0.22\"\n\
         [[virtual_server.real_server]]\naddress = \"2001:db8::23\"\nlb_kind = \"TUN\"\n",
    ));
    let vs = server(&text);
    assert_eq!(vs.lb_kind, LbKind::Dr);
    let kinds: Vec<_> = vs
        .real_servers
        .iter()
        .map(|r| (r.port, r.lb_kind))
        .collect();
    // The second inherits the virtual server's; the third tunnels IPv4 to IPv6.
    assert_eq!(
        kinds,
        vec![(8080, LbKind::Nat), (443, LbKind::Dr), (443, LbKind::Tun)]
    );
    assert_eq!(vs.sorry_server, Some((ip("198.18.0.60"), 8081)));
    assert_eq!(vs.sorry_server_lb_kind, LbKind::Nat);
    assert!(vs.uses_lb_kind(LbKind::Nat) && vs.uses_lb_kind(LbKind::Tun));
    // Without its own, the sorry server is reached as the virtual server says.
    let vs = server(&with_server(
        "lb_kind = \"TUN\"\nsorry_server = { address = \"198.18.0.60\" }\n",
        "",
    ));
    assert_eq!(vs.sorry_server_lb_kind, LbKind::Tun);
    assert_eq!(vs.real_servers[0].lb_kind, LbKind::Tun);
    assert!(!vs.uses_lb_kind(LbKind::Nat));
}

#[test]
fn a_real_s_own_lb_kind_is_checked_as_its_own() {
    // A DR real keeps the destination port even in a NAT virtual server.
    let text = on_ipvs(&with_server(
        "lb_kind = \"NAT\"\n",
        "port = 8080\nlb_kind = \"DR\"\n",
    ));
    let warnings = load(&text).warnings;
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(
        warnings[0]
            .message
            .starts_with("DR keeps the destination port"),
        "{warnings:#?}"
    );
    assert_eq!(
        warnings[0].key,
        format!("{VS}.real_server \"198.18.0.21:8080\".port")
    );
    // A DR real must be in the virtual server's family, whatever the server's kind.
    let text = on_ipvs(&with_server("lb_kind = \"TUN\"\n", "lb_kind = \"DR\"\n"))
        .replace("198.18.0.21", "2001:db8::21");
    let e = error(&text);
    assert_eq!(e.message, "IPv6 real server in an IPv4 virtual server");
    // keepalived's name and a bad value.
    let e = error(&on_ipvs(&with_real("lvs_method = \"NAT\"\n")));
    assert_eq!(
        e.hint.as_deref(),
        Some("keepalived's `lvs_method` is `lb_kind` here")
    );
    let e = error(&on_ipvs(&with_real("lb_kind = \"DSR\"\n")));
    assert_eq!(e.message, "unknown value `DSR`");
    assert_eq!(e.key, format!("{REAL}.lb_kind"));
    let e = error(&on_ipvs(&with_server(
        "sorry_server = { address = \"198.18.0.60\", lvs_method = \"NAT\" }\n",
        "",
    )));
    assert_eq!(
        e.hint.as_deref(),
        Some("keepalived's `sorry_server_lvs_method` is `lb_kind` here")
    );
}

#[test]
fn a_real_s_own_lb_kind_is_refused_where_xdp_may_run() {
    for global in [
        "",
        "[global]\ndataplane = \"xdp\"\n",
        "[global]\ndataplane = \"auto\"\n",
    ] {
        let text = format!("{global}{}", with_real("lb_kind = \"NAT\"\n"));
        let e = error(&text);
        assert_eq!(e.key, format!("{REAL}.lb_kind"), "{global}");
        let line = 11 + global.lines().count();
        assert_eq!(at(&e), (line, 11), "{global}");
        assert!(
            e.message.starts_with(
                "a real server reached by NAT in a DR virtual server needs the IPVS data plane"
            ),
            "{}",
            e.message
        );
        assert!(e
            .message
            .contains("forwards every real server of a virtual server the same way"));
        assert_eq!(
            e.hint.as_deref(),
            Some("write one [[virtual_server]] per forwarding method (this real server in one with lb_kind = \"NAT\"), or set dataplane = \"ipvs\" in [global]")
        );
        // The virtual server's own method, written again, is fine anywhere.
        let same = format!("{global}{}", with_real("lb_kind = \"DR\"\n"));
        assert_eq!(server(&same).real_servers[0].lb_kind, LbKind::Dr);
        let sorry = format!(
            "{global}{}",
            with_server(
                "sorry_server = { address = \"198.18.0.60\", lb_kind = \"TUN\" }\n",
                ""
            )
        );
        let e = error(&sorry);
        assert_eq!(e.key, format!("{VS}.sorry_server.lb_kind"));
        assert!(e
            .message
            .starts_with("a sorry server reached by TUN in a DR virtual server"));
    }
}

/// keepalived's `lvs_method TUN type gue port 6080 csum`: a virtual server's tunnel is
/// its real servers' default, each real and the sorry server may have its own.
#[test]
fn tun_destinations_take_keepalived_s_tunnel_types_on_ipvs() {
    let text = on_ipvs(&with_server(
        "lb_kind = \"TUN\"\ntunnel_type = \"gue\"\ntunnel_port = 6080\ntunnel_checksum = \"csum\"\n\
         sorry_server = { address = \"198.18.0.60\", tunnel_type = \"gre\" }\n",
        "uthreshold = 100\nlthreshold = 50\n\
         [[virtual_server.real_server]]\naddress = \"198.18.0.22\"\ntunnel_type = \"ipip\"\n\
         [[virtual_server.real_server]]\naddress = \"198.18.0.23\"\nlb_kind = \"DR\"\n",
    ));
    let vs = server(&text);
    let gue = Tunnel {
        kind: TunnelKind::Gue,
        port: 6080,
        checksum: TunnelChecksum::Csum,
    };
    assert_eq!(vs.tunnel, gue);
    let reals: Vec<_> = vs
        .real_servers
        .iter()
        .map(|r| (r.tunnel, r.uthreshold, r.lthreshold))
        .collect();
    assert_eq!(
        reals,
        vec![
            (gue, 100, 50),
            (Tunnel::default(), 0, 0),
            // DR: no tunnel at all.
            (Tunnel::default(), 0, 0),
        ]
    );
    assert_eq!(
        vs.sorry_server_tunnel,
        Tunnel {
            kind: TunnelKind::Gre,
            ..Tunnel::default()
        }
    );
    // Nothing written: IP-in-IP, as keepalived.
    let vs = server(&with_server("lb_kind = \"TUN\"\n", ""));
    assert_eq!(vs.real_servers[0].tunnel, Tunnel::default());
}

#[test]
fn tunnel_settings_are_checked_as_keepalived_checks_them() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "tunnel_type = \"gue\"\n",
            "tunnel_type",
            "gue tunnels require port, otherwise cannot have port",
        ),
        (
            "tunnel_port = 6080\n",
            "tunnel_port",
            "gue tunnels require port, otherwise cannot have port",
        ),
        (
            "tunnel_checksum = \"csum\"\n",
            "tunnel_checksum",
            "ipip tunnels do not support checksum option",
        ),
        (
            "tunnel_type = \"gre\"\ntunnel_checksum = \"remcsum\"\n",
            "tunnel_type",
            "gre tunnels do not support remote checksum option",
        ),
    ];
    for (lines, key, message) in cases {
        let e = error(&on_ipvs(&with_server(
            &format!("lb_kind = \"TUN\"\n{lines}"),
            "",
        )));
        assert_eq!(
            (e.key.as_str(), e.message.as_str()),
            (format!("{VS}.{key}").as_str(), *message),
            "{lines}"
        );
    }
    // Only TUN has a tunnel.
    let e = error(&on_ipvs(&with_real("tunnel_type = \"gre\"\n")));
    assert_eq!(e.key, format!("{REAL}.tunnel_type"));
    assert_eq!(
        e.message,
        "a tunnel setting for a real server reached by DR"
    );
    // The XDP program makes IP-in-IP only.
    let e = error(&format!(
        "[global]\ndataplane = \"xdp\"\n{}",
        with_server("lb_kind = \"TUN\"\ntunnel_type = \"gre\"\n", "")
    ));
    assert_eq!(e.key, format!("{VS}.tunnel_type"));
    assert!(
        e.message
            .starts_with("a gre tunnel needs the IPVS data plane: on dataplane = \"xdp\""),
        "{}",
        e.message
    );
    assert!(e.hint.unwrap().contains("dataplane = \"ipvs\""));
}

#[test]
fn connection_thresholds_are_ipvs_s_and_warned_about_on_xdp() {
    let loaded = load(&format!(
        "[global]\ndataplane = \"xdp\"\n{}",
        with_real("uthreshold = 100\n")
    ));
    let messages: Vec<_> = loaded.warnings.iter().map(|w| w.message.as_str()).collect();
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert!(messages[0]
        .starts_with("uthreshold limits a real server's connections on the IPVS data plane only"));
    assert_eq!(
        loaded.config.virtual_servers[0].real_servers[0].uthreshold,
        100
    );
    let vs = server(&on_ipvs(&with_real("uthreshold = 100\nlthreshold = 80\n")));
    assert_eq!(
        (vs.real_servers[0].uthreshold, vs.real_servers[0].lthreshold),
        (100, 80)
    );
}
