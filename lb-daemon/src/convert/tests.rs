//! The converter on small inputs: keepalived's lexical rules, each mapping decision, and
//! errors with their positions.

use std::path::Path;

use super::{convert_str, is_keepalived};
use crate::config::{Config, Diagnostic};

fn convert(text: &str) -> String {
    convert_id(text, "lb1")
}

fn convert_id(text: &str, id: &str) -> String {
    match convert_str(text, Path::new("k.conf"), id) {
        Ok(c) => c.toml,
        Err(e) => panic!("{e}"),
    }
}

fn errors(text: &str) -> Vec<Diagnostic> {
    match convert_str(text, Path::new("k.conf"), "lb1") {
        Ok(c) => panic!("converted:\n{}", c.toml),
        Err(e) => e.errors,
    }
}

fn vi(body: &str) -> String {
    format!("vrrp_instance VI_1 {{\n interface lo\n virtual_router_id 9\n{body}\n}}\n")
}

#[test]
fn auth_type_ah_converts() {
    let toml = convert(&vi(
        " virtual_ipaddress {\n  10.0.0.1\n }\n authentication {\n  auth_type ah\n  auth_pass s3cret\n }",
    ));
    assert!(
        toml.contains("authentication = { auth_type = \"AH\", auth_pass = \"s3cret\" }"),
        "{toml}"
    );
    let bad = errors(&vi(" authentication {\n  auth_type ESP\n  auth_pass x\n }"));
    assert_eq!((bad[0].line, bad[0].column), (5, 13));
    assert!(bad[0].hint.as_deref().unwrap().contains("auth_type AH"));
}

#[test]
fn comments_quotes_and_attached_braces() {
    let toml = convert(
        "! bang\nvrrp_script s{ script \"echo # not a comment\" # comment\n interval 2 }\n",
    );
    assert!(toml.contains("script = \"echo # not a comment\""), "{toml}");
    assert!(toml.contains("interval = \"2s\""), "{toml}");
    let escaped = convert("vrrp_script s {\n script echo\\#1\n}\n");
    assert!(escaped.contains("script = \"echo#1\""), "{escaped}");
}

#[test]
fn definitions_expand_including_multi_line_ones() {
    let toml = convert(&format!(
        "$PEERS=10.0.0.2 \\\n10.0.0.3\n{}",
        vi(" unicast_peer {\n  $PEERS\n }\n virtual_ipaddress {\n  10.0.0.9\n }")
    ));
    assert!(
        toml.contains("unicast_peers = [\"10.0.0.2\", \"10.0.0.3\"]"),
        "{toml}"
    );
}

#[test]
fn conditional_lines_follow_the_config_id() {
    let text = vi("@lb1 priority 150\n@^lb1 priority 50\n@lb9 nopreempt");
    assert!(convert_id(&text, "lb1").contains("priority = 150"));
    let other = convert_id(&text, "lb2");
    assert!(other.contains("priority = 50") && !other.contains("nopreempt"));
}

#[test]
fn schedulers_map_to_maglev_unless_the_dataplane_is_ipvs() {
    let vs =
        |algo: &str| format!("virtual_server 10.0.0.1 80 {{\n lb_algo {algo}\n lb_kind DR\n}}\n");
    assert!(convert(&vs("sh")).contains("lb_algo = \"maglev_src\""));
    assert!(convert(&vs("mh")).contains("lb_algo = \"maglev\""));
    let wlc = convert(&vs("wlc"));
    assert!(wlc.contains("# approximated: lb_algo wlc") && wlc.contains("lb_algo = \"maglev\""));
    let ipvs = convert(&format!(
        "global_defs {{\n dataplane ipvs\n}}\n{}",
        vs("wlc")
    ));
    assert!(ipvs.contains("lb_algo = \"wlc\""), "{ipvs}");
    let e = errors(&vs("rrr"));
    assert_eq!(e[0].hint.as_deref(), Some("did you mean `rr`?"));
}

#[test]
fn keepalived_defaults_are_written_out() {
    let toml =
        convert("virtual_server 10.0.0.1 80 {\n real_server 10.0.0.2 80 {\n  weight 3\n }\n}\n");
    assert!(toml.contains("lb_kind = \"NAT\""), "{toml}");
    assert!(
        toml.contains("# approximated: no lb_algo written"),
        "{toml}"
    );
}

#[test]
fn refused_constructs_say_where_and_what_to_do() {
    let fwmark = errors("virtual_server fwmark 1 {\n lb_kind DR\n}\n");
    assert_eq!(fwmark[0].line, 1);
    assert!(fwmark[0].message.contains("XDP"), "{fwmark:?}");
    let hint = fwmark[0].hint.as_deref().unwrap();
    assert!(hint.contains("add `lb_match ADDR:PORT ...`"), "{hint}");
    assert!(
        hint.contains("`fwmark = 1` with `match = [\"192.168.1.100:80\", \"192.168.1.100:443\"]`"),
        "{hint}"
    );
    let vmac = errors(&vi(" use_ipvlan"));
    assert!(vmac[0].message.contains("cannot be expressed"), "{vmac:?}");
}

#[test]
fn bad_values_are_errors_at_the_word() {
    let e = errors(&vi(
        " priority high\n virtual_ipaddress {\n  10.0.0.300/24\n  10.0.0.4 dve lo\n }",
    ));
    let lines: Vec<(usize, usize)> = e.iter().map(|d| (d.line, d.column)).collect();
    assert_eq!(lines, [(4, 11), (6, 3), (7, 12)], "{e:?}");
    assert_eq!(e[2].hint.as_deref(), Some("did you mean `dev`?"));
    let extra = errors("}\n");
    assert_eq!(extra[0].message, "`}` closes no block");
}

#[test]
fn each_toml_line_leads_back_to_its_keepalived_line() {
    let text = vi(" priority 100\n version 3\n authentication {\n  auth_type PASS\n  auth_pass x\n }\n virtual_ipaddress {\n  2001:db8::1\n }\n version 2");
    let converted = convert_str(&text, Path::new("k.conf"), "lb1").unwrap();
    let errors = Config::from_str(&converted.toml, "k.conf")
        .unwrap_err()
        .errors;
    let mapped = converted.remap(errors[0].clone());
    // `version 2` is written twice: the last one counts, as in keepalived.
    assert_eq!((mapped.line, mapped.column), (13, 2), "{mapped}");
}

#[test]
fn detection_by_the_first_significant_line() {
    assert!(is_keepalived("! c\n# c\n\nglobal_defs {\n}\n"));
    assert!(is_keepalived("include /etc/keepalived/*.conf\n"));
    assert!(is_keepalived("$X=1\n"));
    assert!(!is_keepalived("# c\n[global]\nrouter_id = \"a\"\n"));
    assert!(!is_keepalived("router_id = \"a\"\n"));
    assert!(!is_keepalived(""));
}

#[test]
fn includes_are_relative_to_the_including_file() {
    let dir = std::env::temp_dir().join(format!("lb-conv-inc-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("d")).unwrap();
    std::fs::write(dir.join("d/a.conf"), "include ../b.conf\n").unwrap();
    std::fs::write(dir.join("b.conf"), "vrrp_script s {\n script true\n}\n").unwrap();
    let main = dir.join("main.conf");
    let toml = convert_str("include d/*.conf\n", &main, "x").unwrap().toml;
    assert!(toml.contains("name = \"s\""), "{toml}");
    std::fs::write(dir.join("b.conf"), "include d/a.conf\n").unwrap();
    let e = convert_str("include b.conf\n", &main, "x").unwrap_err();
    assert!(e.errors[0].message.contains("includes itself"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn lvs_timeouts_become_a_table_of_durations() {
    let toml = convert("global_defs {\n lvs_timeouts tcp 900 tcpfin 30 udp 300\n}\n");
    assert!(
        toml.contains("lvs_timeouts = { tcp = \"900s\", tcpfin = \"30s\", udp = \"300s\" }"),
        "{toml}"
    );
    let e = errors("global_defs {\n lvs_timeouts tcp 900 sctp 5\n}\n");
    assert_eq!((e[0].line, e[0].column), (2, 23));
}

/// The errors of `text`, checked to come within 2 s.
fn errors_in_time(text: &str) -> Vec<Diagnostic> {
    let started = std::time::Instant::now();
    let e = errors(text);
    let took = started.elapsed();
    assert!(took < std::time::Duration::from_secs(2), "{took:?}");
    e
}

#[test]
fn doubling_definitions_are_bounded_in_time_and_errors() {
    // Issue 16: 40 definitions each twice the one before took 8 s and gave 65,538 errors.
    // Over lines (multi-line definitions), then on one line.
    let mut lines = String::from("$D0=x \\\ny\n");
    let mut one_line = format!("$E0={}\n", "x".repeat(100));
    for i in 1..40 {
        let p = i - 1;
        lines.push_str(&format!("$D{i}=$D{p} \\\n$D{p}\n"));
        one_line.push_str(&format!("$E{i}=$E{p}$E{p}\n"));
    }
    let e = errors_in_time(&(lines + "$D39\n"));
    assert!(
        e.len() <= crate::config::MAX_ERRORS + 1,
        "{} errors",
        e.len()
    );
    let e = errors_in_time(&(one_line + "$E39\n"));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].message.contains("expand to more than 1024 KiB"),
        "{}",
        e[0]
    );
}

#[test]
fn errors_per_file_are_capped_with_a_count_of_the_rest() {
    // Past the cap nothing is worked out (no suggestion per unknown keyword).
    let e = errors_in_time(&"bogus_keyword\n".repeat(20_000));
    assert_eq!(e.len(), crate::config::MAX_ERRORS + 1);
    assert!(
        e.last()
            .unwrap()
            .to_string()
            .contains("and 19960 more errors not shown"),
        "{}",
        e.last().unwrap()
    );
}

#[test]
fn control_characters_are_escaped_in_diagnostics() {
    let e = errors("\x1b[2J\n");
    let shown = e[0].to_string();
    assert!(!shown.chars().any(char::is_control), "{shown:?}");
    assert!(shown.contains(r"\u{1b}[2J"), "{shown}");
}

#[test]
fn include_of_a_device_or_a_bad_file_says_what_it_is() {
    let e = errors("include /dev/zero\n");
    assert!(
        e[0].message
            .contains("`/dev/zero` is a character device, not a regular file"),
        "{}",
        e[0]
    );
    let dir = std::env::temp_dir().join(crate::netns::unique_name("lb-conv-utf8"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("bad.conf"),
        b"global_defs {\n  router_id l\xffb\n}\n",
    )
    .unwrap();
    let e = convert_str("include bad.conf\n", &dir.join("main.conf"), "x").unwrap_err();
    assert!(
        e.errors[0]
            .message
            .contains("bad.conf` at 2:14: invalid UTF-8 (byte 0xff)"),
        "{}",
        e.errors[0]
    );
    let e = super::convert_file(&dir.join("bad.conf"), "x").unwrap_err();
    assert_eq!((e.errors[0].line, e.errors[0].column), (2, 14));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn routes_rules_and_static_blocks_convert_and_errors_point_at_the_line() {
    let toml = convert(&format!(
        "static_routes {{\n 10.9.0.0/16 dev lo\n}}\n{}",
        vi(" virtual_ipaddress {\n  10.0.0.1\n }\n virtual_ipaddress_excluded {\n  10.0.0.2\n }\n virtual_rules {\n  from 10.0.0.1 table 7 preference 3\n }")
    ));
    assert!(
        toml.contains("[static]\nroutes = [\"10.9.0.0/16 dev lo\"]"),
        "{toml}"
    );
    assert!(
        toml.contains("virtual_ipaddress_excluded = [\"10.0.0.2\"]"),
        "{toml}"
    );
    assert!(
        toml.contains("virtual_rules = [\"from 10.0.0.1 table 7 preference 3\"]"),
        "{toml}"
    );
    let bad = errors(&vi(
        " virtual_routes {\n  10.1.0.0/16 via 10.0.0.1\n  10.2.0.0/16 frob\n }",
    ));
    assert_eq!((bad[0].line, bad[0].column), (6, 3));
    assert!(bad[0].message.contains("unknown keyword `frob`"), "{bad:?}");
    let bad = errors("static_ipaddress {\n 192.0.2.1/24\n}\n");
    assert_eq!(bad[0].line, 2);
    assert!(bad[0].hint.as_deref().unwrap().contains("dev IFACE"));
}

#[test]
fn static_track_groups_convert_and_are_refused_on_an_instance_s_routes() {
    let toml = convert(&format!(
        "track_group G1 {{\n group {{\n  VI_1\n }}\n}}\nstatic_routes {{\n 10.9.0.0/16 dev eth1 track_group G1\n}}\nstatic_ipaddress {{\n 192.0.2.5/24 dev eth1 track_group G1\n}}\n{}",
        vi(" virtual_ipaddress {\n  10.0.0.1\n }")
    ));
    assert!(
        toml.contains("[[track_group]]\nname = \"G1\"\ngroup = [\"VI_1\"]"),
        "{toml}"
    );
    assert!(
        toml.contains("routes = [\"10.9.0.0/16 dev eth1 track_group G1\"]")
            && toml.contains("ipaddress = [\"192.0.2.5/24 dev eth1 track_group G1\"]"),
        "{toml}"
    );
    // keepalived: "unknown route keyword track_group" on an instance's route.
    let bad = errors(&vi(
        " virtual_routes {\n  10.1.0.0/16 dev eth1 track_group G1\n }",
    ));
    assert_eq!(bad[0].line, 5, "{bad:?}");
    assert!(
        bad[0]
            .message
            .contains("static_routes and static_rules only"),
        "{bad:?}"
    );
    let bad = errors("track_group G1 {\n}\n");
    assert!(bad[0].message.contains("lists no instance"), "{bad:?}");
}

#[test]
fn ping_check_converts_and_drops_its_port() {
    let text = "virtual_server 10.0.0.1 80 {\n lb_kind DR\n real_server 10.0.0.2 80 {\n  \
                PING_CHECK {\n   connect_ip 10.0.0.3\n   connect_port 80\n   retry 2\n   \
                delay_before_retry 2\n  }\n }\n}\n";
    let toml = convert(text);
    assert!(
        toml.contains("[[virtual_server.real_server.ping_check]]"),
        "{toml}"
    );
    assert!(toml.contains("connect_ip = \"10.0.0.3\""), "{toml}");
    assert!(!toml.contains("connect_port = 80"), "{toml}");
    assert!(
        toml.contains("# connect_port 80: ICMP echo has no port"),
        "{toml}"
    );
    let config = match Config::from_str(&toml, "k.toml") {
        Ok(l) => l.config,
        Err(e) => panic!("{e}\n{toml}"),
    };
    let check = &config.virtual_servers[0].real_servers[0].checks[0];
    assert_eq!(check.kind, crate::config::check::CheckKind::Ping);
    assert_eq!(check.common.retry, 2);
}

#[test]
fn file_check_and_track_file_take_the_tracked_files_path_weight_and_reverse() {
    let text = "track_file weight_file {\n file /run/lb/w1\n weight 3 reverse\n}\n\
                vrrp_track_file prio {\n file /run/lb/prio\n}\n\
                virtual_server 10.0.0.1 80 {\n lb_kind DR\n \
                real_server 10.0.0.2 80 {\n  FILE_CHECK {\n   track_file weight_file\n  }\n }\n \
                real_server 10.0.0.3 80 {\n  FILE_CHECK {\n   track_file prio\n   weight 0 reverse\n  }\n }\n \
                real_server 10.0.0.4 80 {\n  FILE_CHECK {\n   track_file weight_file\n   weight 2\n  }\n }\n}\n";
    let vi_text = vi(" track_file {\n  weight_file\n  prio weight -2 reverse\n }");
    let toml = convert(&format!("{text}{vi_text}"));
    let config = match Config::from_str(&toml, "k.toml") {
        Ok(l) => l.config,
        Err(e) => panic!("{e}\n{toml}"),
    };
    use crate::config::check::{CheckKind, FileCheck};
    let files: Vec<FileCheck> = config.virtual_servers[0]
        .real_servers
        .iter()
        .map(|r| match &r.checks[0].kind {
            CheckKind::File(f) => f.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    let file = |path: &str, weight, reverse| FileCheck {
        file: path.into(),
        weight,
        reverse,
    };
    assert_eq!(
        files,
        [
            file("/run/lb/w1", 3, true),
            file("/run/lb/prio", 0, true),
            // A weight on the FILE_CHECK drops the file's `reverse` (check_file.c).
            file("/run/lb/w1", 2, false),
        ]
    );
    let tracked: Vec<(String, i32, bool)> = config.vrrp_instances[0]
        .track_file
        .iter()
        .map(|t| (t.path.display().to_string(), t.weight, t.reverse))
        .collect();
    assert_eq!(
        tracked,
        [
            ("/run/lb/w1".to_owned(), 3, true),
            ("/run/lb/prio".to_owned(), -2, true)
        ]
    );
    let missing = errors(
        "virtual_server 10.0.0.1 80 {\n real_server 10.0.0.2 80 {\n  FILE_CHECK {\n   track_file nope\n  }\n }\n}\n",
    );
    assert_eq!((missing[0].line, missing[0].column), (4, 15));
    assert_eq!(missing[0].message, "no track_file is named `nope`");
}

#[test]
fn email_alerts_convert_from_global_defs_instances_groups_and_servers() {
    let text = "global_defs {\n notification_email {\n  ops@example.com\n  noc@example.com\n }\n \
                notification_email_from lb@example.com\n smtp_server 192.0.2.25 587\n \
                smtp_helo_name lb1.example.com\n smtp_connect_timeout 10\n smtp_alert\n \
                no_email_faults\n}\n";
    let vs = "virtual_server 10.0.0.1 80 {\n lb_kind DR\n smtp_alert off\n \
              real_server 10.0.0.2 80 {\n  smtp_alert\n  TCP_CHECK {\n  }\n }\n}\n";
    let group = "vrrp_sync_group G {\n group {\n  VI_1\n }\n smtp_alert no\n}\n";
    let toml = convert(&format!(
        "{text}{vs}{group}{}",
        vi(" virtual_ipaddress {\n  10.0.0.1\n }\n smtp_alert")
    ));
    let config = match Config::from_str(&toml, "k.toml") {
        Ok(l) => l.config,
        Err(e) => panic!("{e}\n{toml}"),
    };
    let email = &config.global.email;
    assert_eq!(email.to, ["ops@example.com", "noc@example.com"], "{toml}");
    assert_eq!(email.from.as_deref(), Some("lb@example.com"));
    assert_eq!(email.smtp_server.as_ref().map(|s| s.port), Some(587));
    assert_eq!(email.helo_name.as_deref(), Some("lb1.example.com"));
    assert_eq!(email.connect_timeout, std::time::Duration::from_secs(10));
    assert_eq!(email.smtp_alert, Some(true));
    assert!(email.no_email_faults);
    assert_eq!(config.vrrp_instances[0].notify.smtp_alert, Some(true));
    assert_eq!(config.vrrp_sync_groups[0].notify.smtp_alert, Some(false));
    assert_eq!(config.virtual_servers[0].smtp_alert, Some(false));
    assert_eq!(
        config.virtual_servers[0].real_servers[0].smtp_alert,
        Some(true)
    );
    let bad = errors("global_defs {\n smtp_server 192.0.2.25 25 extra\n}\n");
    assert_eq!(bad[0].line, 2);
    assert!(bad[0].message.contains("smtp_server"), "{bad:?}");
}

#[test]
fn notify_fifos_convert_and_their_owners_are_approximated() {
    let text = "global_defs {\n notify_fifo /run/k.fifo\n notify_fifo_script /usr/local/bin/r\n \
                vrrp_notify_fifo /run/v.fifo lb lb\n}\n";
    let c = match convert_str(
        &format!("{text}{}", vi(" virtual_ipaddress {\n  10.0.0.1\n }")),
        Path::new("k.conf"),
        "lb1",
    ) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    let config = match Config::from_str(&c.toml, "k.toml") {
        Ok(l) => l.config,
        Err(e) => panic!("{e}\n{}", c.toml),
    };
    let g = &config.global;
    assert_eq!(
        g.notify_fifo.as_ref().map(|f| f.path.display().to_string()),
        Some("/run/k.fifo".into())
    );
    assert_eq!(
        g.notify_fifo.as_ref().and_then(|f| f.script.clone()),
        Some("/usr/local/bin/r".into())
    );
    assert_eq!(
        g.vrrp_notify_fifo
            .as_ref()
            .map(|f| f.path.display().to_string()),
        Some("/run/v.fifo".into())
    );
    assert!(
        c.toml.contains("approximated: vrrp_notify_fifo"),
        "{}",
        c.toml
    );
}

#[test]
fn track_process_converts_with_its_options_and_reverse() {
    let text = "vrrp_track_process proxy {\n process /usr/sbin/haproxy -f /etc/haproxy/haproxy.cfg\n \
                param_match initial\n weight -20 reverse\n quorum 2\n quorum_max 4\n delay 1.5\n}\n";
    let toml = convert(&format!(
        "{text}{}",
        vi(" virtual_ipaddress {\n  10.0.0.1\n }\n track_process {\n  proxy weight 10 reverse\n }")
    ));
    let config = match Config::from_str(&toml, "k.toml") {
        Ok(l) => l.config,
        Err(e) => panic!("{e}\n{toml}"),
    };
    let p = &config.vrrp_track_processes[0];
    assert_eq!(p.process, "/usr/sbin/haproxy");
    assert_eq!(p.parameters, ["-f", "/etc/haproxy/haproxy.cfg"]);
    assert_eq!(p.param_match, crate::config::ParamMatch::Initial);
    assert!(p.full_command && p.reverse);
    assert_eq!((p.weight, p.quorum, p.quorum_max), (-20, 2, 4));
    assert_eq!(p.fork_delay, std::time::Duration::from_millis(1500));
    let t = &config.vrrp_instances[0].track_process[0];
    assert_eq!((t.name.as_str(), t.weight, t.reverse), ("proxy", 10, true));
    let bad = errors("vrrp_track_process p {\n weight 1\n}\n");
    assert!(bad[0].message.contains("needs `process`"), "{bad:?}");
}

#[test]
fn weight_reverse_converts_for_scripts_and_interfaces() {
    let text = "vrrp_script chk {\n script \"true\"\n weight 10 reverse\n}\n";
    let toml = convert(&format!(
        "{text}{}",
        vi(
            " virtual_ipaddress {\n  10.0.0.1\n }\n track_script {\n  chk\n }\n \
            track_interface {\n  lo weight -5 reverse\n }"
        )
    ));
    let config = match Config::from_str(&toml, "k.toml") {
        Ok(l) => l.config,
        Err(e) => panic!("{e}\n{toml}"),
    };
    assert!(config.vrrp_scripts[0].reverse, "{toml}");
    let vi = &config.vrrp_instances[0];
    assert_eq!(
        (vi.track_script[0].weight, vi.track_script[0].reverse),
        (10, true)
    );
    assert_eq!(
        (vi.track_interface[0].weight, vi.track_interface[0].reverse),
        (-5, true)
    );
}

#[test]
fn vrrp_strict_converts_with_a_note_on_the_firewall() {
    let c = match convert_str(
        &format!(
            "global_defs {{\n vrrp_strict\n}}\n{}",
            vi(" virtual_ipaddress {\n  10.0.0.1\n }\n strict_mode off")
        ),
        Path::new("k.conf"),
        "lb1",
    ) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    assert!(c.toml.contains("vrrp_strict = true"), "{}", c.toml);
    assert!(c.toml.contains("strict_mode = false"), "{}", c.toml);
    assert!(
        c.toml
            .contains("drops traffic to the VIPs that no virtual server takes"),
        "{}",
        c.toml
    );
    let config = match Config::from_str(&c.toml, "k.toml") {
        Ok(l) => l.config,
        Err(e) => panic!("{e}\n{}", c.toml),
    };
    assert!(config.global.vrrp_strict && !config.vrrp_instances[0].strict_mode);
}

#[test]
fn accept_and_no_accept_convert_to_accept() {
    for (line, accept) in [(" accept", true), (" no_accept", false)] {
        let text = vi(&format!(" virtual_ipaddress {{\n  10.0.0.1\n }}\n{line}"));
        let c = match convert_str(&text, Path::new("k.conf"), "lb1") {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        assert!(c.toml.contains(&format!("accept = {accept}")), "{}", c.toml);
        let config = match Config::from_str(&c.toml, "k.toml") {
            Ok(l) => l.config,
            Err(e) => panic!("{e}\n{}", c.toml),
        };
        assert_eq!(config.vrrp_instances[0].drops_vip_traffic(), !accept);
    }
}

#[test]
fn use_vmac_converts() {
    let toml = convert(&vi(
        " virtual_ipaddress {\n  10.0.0.1\n }\n use_vmac vrrp.9\n vmac_xmit_base",
    ));
    assert!(toml.contains("use_vmac = \"vrrp.9\""), "{toml}");
    assert!(toml.contains("vmac_xmit_base = true"), "{toml}");
    let toml = convert(&vi(" virtual_ipaddress {\n  10.0.0.1\n }\n use_vmac"));
    assert!(toml.contains("use_vmac = true"), "{toml}");
}

#[test]
fn lvs_sync_daemon_becomes_the_sync_section() {
    let text = format!(
        "global_defs {{\n lvs_sync_daemon eth1 VI_1 id 7 maxlen 1400 port 9000 ttl 2 group 224.0.0.99\n}}\n{}",
        vi(" virtual_ipaddress {\n  10.0.0.9\n }")
    );
    let c = convert_str(&text, Path::new("k.conf"), "lb1").expect("converts");
    let toml = &c.toml;
    for line in [
        "[sync]",
        "key_file = \"/etc/lb/sync.key\"",
        "interface = \"eth1\"",
        "vrrp_instance = \"VI_1\"",
        "id = 7",
        "maxlen = 1400",
        "port = 9000",
        "ttl = 2",
        "group = \"224.0.0.99\"",
    ] {
        assert!(toml.contains(line), "{line} missing:\n{toml}");
    }
    assert!(
        c.warnings.iter().any(|w| w.message.contains("shared key")),
        "{:?}",
        c.warnings
    );
    // The loader reads it back (the key file is what check-config then asks for).
    let e = Config::from_str(toml, "lb.toml").expect_err("no key file here");
    assert!(
        e.errors
            .iter()
            .any(|d| d.message.contains("/etc/lb/sync.key")),
        "{e}"
    );
    let bad = errors(&format!(
        "global_defs {{\n lvs_sync_daemon eth1 VI_1 speed 7\n}}\n{}",
        vi(" virtual_ipaddress {\n  10.0.0.9\n }")
    ));
    assert!(
        bad[0].message.contains("not an lvs_sync_daemon option"),
        "{bad:?}"
    );
    assert_eq!((bad[0].line, bad[0].column), (2, 28));
}

#[test]
fn lvs_sync_daemon_interface_in_an_instance_names_it() {
    let toml = convert(&vi(
        " lvs_sync_daemon_interface eth1\n virtual_ipaddress {\n  10.0.0.9\n }",
    ));
    assert!(toml.contains("[sync]"), "{toml}");
    assert!(toml.contains("interface = \"eth1\""), "{toml}");
    assert!(toml.contains("vrrp_instance = \"VI_1\""), "{toml}");
}

/// Found by the `keepalived_conf` fuzz target: a NUL quoted from the file into a
/// comment made the emitted TOML invalid.
#[test]
fn control_characters_quoted_in_comments_keep_the_toml_valid() {
    let path = std::path::Path::new("/nonexistent/keepalived.conf");
    if let Ok(c) = super::convert_str("SSL  \0", path, "") {
        c.toml.parse::<toml::Table>().unwrap();
    }
}

#[test]
fn bfd_instance_track_bfd_and_bfd_check_convert_and_load() {
    let text = "bfd_instance peer {\n neighbour_ip 10.0.0.2\n min_rx 20\n min_tx 2.5\n idle_tx 2000\n \
                multiplier 3\n hoplimit 255\n weight -10 reverse\n vrrp\n}\n\
                bfd_instance rs {\n neighbor_ip 10.1.0.2\n checker\n}\n\
                vrrp_sync_group G {\n group {\n  VI_1\n }\n track_bfd {\n  peer weight 5\n }\n}\n\
                virtual_server 10.1.0.1 80 {\n lb_kind DR\n real_server 10.1.0.2 80 {\n  BFD_CHECK {\n   name rs\n  }\n }\n}\n";
    let toml = convert(&format!(
        "{text}{}",
        vi(" virtual_ipaddress {\n  10.0.0.9\n }\n track_bfd {\n  peer\n }")
    ));
    assert!(toml.contains("[[bfd_instance]]"), "{toml}");
    assert!(toml.contains("min_tx = \"2.5ms\""), "{toml}");
    assert!(toml.contains("neighbor_ip = \"10.0.0.2\""), "{toml}");
    assert!(toml.contains("track_bfd = [\"peer\"]"), "{toml}");
    let config = match Config::from_str(&toml, "k.toml") {
        Ok(l) => l.config,
        Err(e) => panic!("{e}\n{toml}"),
    };
    let peer = config.bfd_instance("peer").expect("peer");
    assert_eq!(peer.min_rx, std::time::Duration::from_millis(20));
    assert_eq!(peer.min_tx, std::time::Duration::from_micros(2500));
    assert_eq!((peer.weight, peer.reverse), (-10, true));
    assert!(peer.vrrp && !peer.checker);
    let rs = config.bfd_instance("rs").expect("rs");
    assert!(!rs.vrrp && rs.checker);
    let t = &config.vrrp_instances[0].track_bfd;
    assert_eq!((t[0].weight, t[0].reverse), (-10, true), "{t:?}");
    assert_eq!(config.vrrp_sync_groups[0].track_bfd[0].weight, 5);
    assert!(matches!(
        &config.virtual_servers[0].real_servers[0].checks[0].kind,
        crate::config::check::CheckKind::Bfd(b) if b.name == "rs"
    ));
    let bad = errors("bfd_instance p {\n neighbor_ip 10.0.0.2\n min_rx fast\n}\n");
    assert_eq!((bad[0].line, bad[0].column), (3, 9), "{bad:?}");
}

/// keepalived's `doc/samples/keepalived.conf.conditional_conf` without a config id: a
/// vrrp_script whose `script` lines all belong to other ids. keepalived removes it and
/// ignores the tracking entry, with warnings; so does convert.
#[test]
fn a_vrrp_script_without_script_is_left_out_with_its_tracking() {
    let text = format!(
        "{}vrrp_script chk_other {{\n@high script /bin/true\n interval 1\n}}\n\
         vrrp_script chk {{\n script /bin/true\n}}\n",
        vi(" virtual_ipaddress {\n  10.0.0.1\n }\n track_script {\n  chk_other\n  chk\n }")
    );
    let c = convert_str(&text, Path::new("k.conf"), "low").unwrap_or_else(|e| panic!("{e}"));
    let config = match Config::from_str(&c.toml, "k.toml") {
        Ok(l) => l.config,
        Err(e) => panic!("{e}\n{}", c.toml),
    };
    let names: Vec<&str> = config
        .vrrp_scripts
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(names, ["chk"], "{}", c.toml);
    let tracked: Vec<&str> = config.vrrp_instances[0]
        .track_script
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    assert_eq!(tracked, ["chk"], "{}", c.toml);
    let said = |needle: &str| c.warnings.iter().any(|w| w.message.contains(needle));
    assert!(said("no `script` line"), "{:?}", c.warnings);
    assert!(said("track_script `chk_other`"), "{:?}", c.warnings);
    // With the id that has the script, it stays.
    let high = convert_id(&text, "high");
    assert!(high.contains("chk_other"), "{high}");
}

/// keepalived's `regex_no_match`: the url's check passes while the body does not match.
#[test]
fn regex_no_match_converts() {
    let text = "virtual_server 10.0.0.1 80 {\n lb_kind DR\n real_server 10.0.0.2 80 {\n  \
                HTTP_GET {\n   url {\n    path /health\n    regex \"maintenance\"\n    \
                regex_no_match\n   }\n  }\n }\n}\n";
    let toml = convert(text);
    let config = match Config::from_str(&toml, "k.toml") {
        Ok(l) => l.config,
        Err(e) => panic!("{e}\n{toml}"),
    };
    let crate::config::check::CheckKind::Http(http) =
        &config.virtual_servers[0].real_servers[0].checks[0].kind
    else {
        panic!("not an HTTP check:\n{toml}")
    };
    assert_eq!(
        http.urls[0].body,
        Some(crate::config::check::BodyMatch::RegexAbsent(
            "maintenance".into()
        ))
    );
}

/// keepalived's `notify_master_rx_lower_pri` keeps its name and meaning.
#[test]
fn notify_master_rx_lower_pri_converts() {
    let toml = convert(&vi(
        " virtual_ipaddress {\n  10.0.0.1\n }\n notify_master_rx_lower_pri \"/etc/lb/reclaim.sh\"",
    ));
    let config = match Config::from_str(&toml, "k.toml") {
        Ok(l) => l.config,
        Err(e) => panic!("{e}\n{toml}"),
    };
    assert_eq!(
        config.vrrp_instances[0]
            .notify_master_rx_lower_pri
            .as_deref(),
        Some("/etc/lb/reclaim.sh")
    );
}

/// keepalived's sequence and list blocks (keepalived.conf(5)) generate the lines they
/// stand for, nested and with tuples; a bad block is an error at its line.
#[test]
fn sequence_and_list_blocks_generate_their_lines() {
    let text = format!(
        "{}virtual_server 10.0.0.1 80 {{\n lb_kind DR\n \
         ~LST({{N, W}}, {{2, 10}}, {{3, 20}}) real_server 10.0.0.${{N}} 80 {{ weight ${{W}} }}\n}}\n",
        vi(" virtual_ipaddress {\n  ~SEQ(A, 1, 2) ~SEQx(B, 0x9, 0xa) 2001:db8::${A}:${B}\n }\n version 3")
    );
    let toml = convert(&text);
    let config = match Config::from_str(&toml, "k.toml") {
        Ok(l) => l.config,
        Err(e) => panic!("{e}\n{toml}"),
    };
    let vips: Vec<String> = config.vrrp_instances[0]
        .virtual_ipaddress
        .iter()
        .map(|v| v.address.to_string())
        .collect();
    assert_eq!(
        vips,
        [
            "2001:db8::1:9",
            "2001:db8::1:a",
            "2001:db8::2:9",
            "2001:db8::2:a"
        ]
    );
    let reals: Vec<(String, u32)> = config.virtual_servers[0]
        .real_servers
        .iter()
        .map(|r| (r.address.to_string(), r.weight))
        .collect();
    assert_eq!(
        reals,
        [("10.0.0.2".to_string(), 10), ("10.0.0.3".to_string(), 20)]
    );
    let bad = errors("~SEQ(A, 1, 0, 3) vrrp_instance X {\n}\n");
    assert!(bad[0].message.contains("a step of 0 never ends"), "{bad:?}");
    assert_eq!(bad[0].line, 1);
}

/// keepalived's `persistence_granularity`: a netmask (or prefix length) kept as written,
/// read as a prefix length; it needs `persistence_timeout`, as in IPVS.
#[test]
fn persistence_granularity_converts_to_a_prefix() {
    let vs = |extra: &str| {
        format!(
            "virtual_server 10.0.0.1 443 {{\n lb_kind DR\n persistence_timeout 300\n {extra}\n \
             real_server 10.0.0.2 443 {{\n }}\n}}\n"
        )
    };
    for (written, want) in [("255.255.255.0", 24), ("16", 16)] {
        let toml = convert(&vs(&format!("persistence_granularity {written}")));
        let config = match Config::from_str(&toml, "k.toml") {
            Ok(l) => l.config,
            Err(e) => panic!("{e}\n{toml}"),
        };
        assert_eq!(config.virtual_servers[0].persistence_prefix, Some(want));
    }
    // A non-contiguous mask converts as written and is refused when loaded.
    let toml = convert(&vs("persistence_granularity 255.0.255.0"));
    let e = Config::from_str(&toml, "k.toml").expect_err("refused");
    assert!(
        e.errors[0]
            .message
            .contains("`255.0.255.0` is not a persistence granularity"),
        "{:?}",
        e.errors
    );
}

const FWMARK_REAL: &str = " real_server 10.0.0.2 80 {\n  TCP_CHECK {\n  }\n }\n";

#[test]
fn fwmark_virtual_servers_stay_fwmark_on_ipvs() {
    let toml = convert(&format!(
        "global_defs {{\n dataplane ipvs\n}}\nvirtual_server fwmark 7 {{\n lb_kind DR\n lb_algo rr\n persistence_timeout 300\n{FWMARK_REAL}}}\n"
    ));
    assert!(toml.contains("[[virtual_server]]\nfwmark = 7\n"), "{toml}");
    assert!(!toml.contains("match"), "{toml}");
    assert!(toml.contains("persistence_timeout = "), "{toml}");
}

#[test]
fn fwmark_virtual_servers_on_xdp_take_their_match_list_from_lb_match() {
    let toml = convert(&format!(
        "virtual_server fwmark 1 {{\n lb_kind DR\n lb_match 192.168.1.100:80 192.168.1.100:443\n{FWMARK_REAL}}}\n"
    ));
    assert!(
        toml.contains("fwmark = 1\nmatch = [\"192.168.1.100:80\", \"192.168.1.100:443\"]"),
        "{toml}"
    );
    let bad = errors(&format!(
        "virtual_server fwmark 1 {{\n lb_match 192.168.1.100\n{FWMARK_REAL}}}\n"
    ));
    assert_eq!(bad[0].message, "`192.168.1.100` is not ADDRESS:PORT");
    // lb_match belongs to fwmark virtual servers only.
    let stray = errors(&format!(
        "virtual_server 10.0.0.1 80 {{\n lb_match 10.0.0.1:80\n{FWMARK_REAL}}}\n"
    ));
    assert_eq!(stray[0].line, 2, "{stray:?}");
}

const GROUP_VS: &str = "virtual_server group web {\n lb_kind DR\n persistence_timeout 300\n";

#[test]
fn a_groups_fwmark_entries_become_fwmark_virtual_servers_on_ipvs() {
    let toml = convert(&format!(
        "global_defs {{\n dataplane ipvs\n}}\nvirtual_server_group web {{\n 10.0.0.1 80\n fwmark 5\n fwmark 6 inet\n}}\n{GROUP_VS}{FWMARK_REAL}}}\n"
    ));
    let config = match Config::from_str(&toml, "k.toml") {
        Ok(l) => l.config,
        Err(e) => panic!("{e}\n{toml}"),
    };
    let marks: Vec<(Option<u32>, u16)> = config
        .virtual_servers
        .iter()
        .map(|vs| (vs.fwmark, vs.port))
        .collect();
    assert_eq!(marks, [(None, 80), (Some(5), 0), (Some(6), 0)], "{toml}");
    assert!(config
        .virtual_servers
        .iter()
        .all(|vs| vs.real_servers.len() == 1 && vs.persistence_timeout.is_some()));
    assert!(toml.contains("# from virtual_server group web"), "{toml}");
}

#[test]
fn a_groups_fwmark_entries_on_xdp_take_lb_match_lines() {
    // One mark: a plain lb_match line is its.
    let toml = convert(&format!(
        "virtual_server_group web {{\n fwmark 5\n}}\n{GROUP_VS} lb_match 10.0.0.1:80 10.0.0.1:443\n{FWMARK_REAL}}}\n"
    ));
    assert!(
        toml.contains("fwmark = 5\nmatch = [\"10.0.0.1:80\", \"10.0.0.1:443\"]"),
        "{toml}"
    );
    // Several marks: each line names its own.
    let toml = convert(&format!(
        "virtual_server_group web {{\n 10.0.0.9 25\n fwmark 5\n fwmark 6 inet\n}}\n{GROUP_VS} lb_match fwmark 5 10.0.0.1:80 10.0.0.1:443\n lb_match fwmark 6 10.0.0.1:8080\n{FWMARK_REAL}}}\n"
    ));
    let config = match Config::from_str(&toml, "k.toml") {
        Ok(l) => l.config,
        Err(e) => panic!("{e}\n{toml}"),
    };
    let vs: Vec<(Option<u32>, usize)> = config
        .virtual_servers
        .iter()
        .map(|vs| (vs.fwmark, vs.matches.len()))
        .collect();
    assert_eq!(vs, [(None, 0), (Some(5), 2), (Some(6), 1)], "{toml}");
    // inet6: IPv6 entries.
    let toml = convert(&format!(
        "virtual_server_group web {{\n fwmark 6 inet6\n}}\n{GROUP_VS} lb_match [2001:db8::1]:80\n real_server 2001:db8::2 80 {{\n }}\n}}\n"
    ));
    assert!(
        toml.contains("fwmark = 6\nmatch = [\"[2001:db8::1]:80\"]"),
        "{toml}"
    );
}

#[test]
fn a_groups_fwmark_entries_refused_on_xdp_say_what_to_write() {
    // No lb_match on XDP.
    let e = errors(&format!(
        "virtual_server_group web {{\n fwmark 5\n}}\n{GROUP_VS}{FWMARK_REAL}}}\n"
    ));
    assert_eq!(e[0].line, 2, "{e:?}");
    assert!(e[0].message.contains("fwmark 5 cannot be matched"), "{e:?}");
    assert!(
        e[0].hint
            .as_deref()
            .unwrap()
            .contains("`lb_match fwmark 5 ...`"),
        "{e:?}"
    );
    // Several marks and a line that names none, or one the group lacks.
    let e = errors(&format!(
        "virtual_server_group web {{\n fwmark 5\n fwmark 6\n}}\n{GROUP_VS} lb_match 10.0.0.1:80\n lb_match fwmark 7 10.0.0.1:81\n lb_match fwmark 5 10.0.0.1:82\n lb_match fwmark 6 10.0.0.1:83\n{FWMARK_REAL}}}\n"
    ));
    let messages: Vec<(usize, &str)> = e.iter().map(|d| (d.line, d.message.as_str())).collect();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(messages[0].1.contains("say which mark"), "{messages:?}");
    assert_eq!(messages[0].0, 8);
    assert!(messages[1].1.contains("names fwmark 7"), "{messages:?}");
    // inet6 without IPv6 entries; a bad family word; lb_match without a mark to go to.
    let e = errors(&format!(
        "virtual_server_group web {{\n fwmark 5 inet6\n fwmark 6 ipx\n}}\n{GROUP_VS} lb_match 10.0.0.1:80\n{FWMARK_REAL}}}\n"
    ));
    let messages: Vec<&str> = e.iter().map(|d| d.message.as_str()).collect();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("`ipx` is not an address family")),
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| m.contains("fwmark 5 is inet6")),
        "{messages:?}"
    );
    let e = errors(&format!(
        "virtual_server_group web {{\n 10.0.0.1 80\n}}\n{GROUP_VS} lb_match 10.0.0.1:80\n{FWMARK_REAL}}}\n"
    ));
    assert!(e[0].message.contains("lb_match applies to fwmark"), "{e:?}");
}
