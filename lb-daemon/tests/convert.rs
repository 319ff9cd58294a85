//! `lb-daemon convert`: the keepalived.conf fixtures (transcribed from the articles in
//! shared/seeds and in keepalived's own sample styles) convert, and what they convert to
//! loads; malformed ones fail with file:line and what to do; `check-config` and `convert`
//! on the command line.

use std::path::{Path, PathBuf};
use std::process::Command;

use lb_daemon::config::{AuthType, Config, Diagnostic, LbAlgo, LbKind};
use lb_daemon::convert::convert_file;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/keepalived")
}

fn lb_daemon() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lb-daemon"))
}

/// Converts and loads a fixture; panics with every diagnostic when either fails.
fn load(path: &Path, config_id: &str) -> Config {
    let converted = convert_file(path, config_id)
        .unwrap_or_else(|e| panic!("{} does not convert:\n{e}", path.display()));
    match Config::from_str(&converted.toml, path) {
        Ok(loaded) => loaded.config,
        Err(e) => panic!(
            "{} converted to TOML the loader refuses:\n{e}\n---\n{}",
            path.display(),
            converted.toml
        ),
    }
}

/// The errors a malformed fixture gives.
fn errors(name: &str) -> (PathBuf, Vec<Diagnostic>) {
    let path = fixtures().join("bad").join(name);
    match convert_file(&path, "lb1") {
        Ok(c) => panic!("{name} converted:\n{}", c.toml),
        Err(e) => (path, e.errors),
    }
}

/// 1-based number of the first line of `path` (comments aside) containing `needle`.
fn line_of(path: &Path, needle: &str) -> usize {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .position(|l| !l.trim_start().starts_with(['#', '!']) && l.contains(needle))
        .unwrap_or_else(|| panic!("`{needle}` is not in {}", path.display()))
        + 1
}

#[test]
fn every_fixture_converts_and_loads() {
    let mut count = 0;
    for entry in std::fs::read_dir(fixtures().join("ok")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "conf") {
            load(&path, "lb1");
            count += 1;
        }
    }
    assert!(count >= 15, "only {count} fixtures");
}

#[test]
fn seed_lvs_dr_keeps_its_instance_and_service() {
    let config = load(&fixtures().join("ok/seed000_lvs_dr.conf"), "lb1");
    let vi = config.vrrp_instance("VI_1").unwrap();
    assert_eq!((vi.virtual_router_id, vi.priority), (51, 100));
    assert_eq!(vi.authentication.as_ref().unwrap().auth_pass, "abc123");
    let vs = &config.virtual_servers[0];
    assert_eq!(
        (vs.port, vs.lb_kind, vs.lb_algo),
        (80, LbKind::Dr, LbAlgo::Maglev)
    );
    assert_eq!(vs.persistence_timeout, None);
    let check = &vs.real_servers[0].checks[0].common;
    assert_eq!((check.retry, check.connect_port), (3, Some(80)));
}

#[test]
fn seed_group_becomes_one_virtual_server_per_address_and_smtp_hosts_split() {
    let config = load(&fixtures().join("ok/seed001_checkers.conf"), "lb1");
    let addresses: Vec<String> = config
        .virtual_servers
        .iter()
        .map(|v| v.address.to_string())
        .collect();
    assert_eq!(addresses, ["192.168.2.188", "192.168.2.189"]);
    let checks = &config.virtual_servers[1].real_servers[1].checks;
    assert_eq!(checks.len(), 2, "SMTP_CHECK and MISC_CHECK");
    assert_eq!(checks[0].common.connect_port, Some(25));
}

#[test]
fn includes_definitions_and_config_ids() {
    let main = fixtures().join("ok/include/main.conf");
    let lb1 = load(&main, "lb1");
    let lb2 = load(&main, "lb2");
    assert_eq!(lb1.vrrp_instance("VI_60").unwrap().priority, 150);
    assert_eq!(lb2.vrrp_instance("VI_60").unwrap().priority, 100);
    assert_eq!(lb1.global.router_id.as_deref(), Some("eth0-router"));
    assert_eq!(lb1.virtual_servers[0].lb_algo, LbAlgo::MaglevSrc);
}

#[test]
fn sample_styles_keep_their_meaning() {
    let nat = load(&fixtures().join("ok/sample_nat.conf"), "lb1");
    let vs = &nat.virtual_servers[0];
    assert_eq!(vs.lb_kind, LbKind::Nat);
    assert_eq!(vs.quorum, 2);
    assert_eq!(vs.sorry_server.unwrap().1, 1358);
    assert_eq!(vs.persistence_timeout.unwrap().as_secs(), 50);
    let sync = load(&fixtures().join("ok/sample_sync_group.conf"), "lb1");
    assert_eq!(sync.vrrp_sync_groups[0].group, ["VI_1", "VI_2"]);
    let vi2 = sync.vrrp_instance("VI_2").unwrap();
    assert_eq!(
        (
            vi2.virtual_ipaddress.len(),
            vi2.virtual_ipaddress_excluded.len()
        ),
        (1, 1)
    );
    let scripts = load(&fixtures().join("ok/sample_scripts.conf"), "lb1");
    let vi = scripts.vrrp_instance("VI_1").unwrap();
    assert!(vi.nopreempt);
    assert_eq!(vi.track_script[1].weight, -30);
    assert_eq!(vi.track_file[0].weight, -10);
    assert_eq!(vi.track_interface[0].weight, -20);
    let ah = load(&fixtures().join("ok/sample_ah.conf"), "lb1");
    for (name, pass) in [("VI_AH_OWNER", "ah-key-1"), ("VI_AH", "longer-t")] {
        let auth = ah
            .vrrp_instance(name)
            .unwrap()
            .authentication
            .clone()
            .unwrap();
        assert_eq!(auth.auth_type, AuthType::Ah);
        assert_eq!(auth.auth_pass, pass);
    }
    let routes = load(&fixtures().join("ok/sample_routes.conf"), "lb1");
    let vi = routes.vrrp_instance("VI_ROUTES").unwrap();
    assert_eq!(vi.virtual_ipaddress_excluded.len(), 2);
    assert_eq!((vi.virtual_routes.len(), vi.virtual_rules.len()), (5, 3));
    // Multipath, written with `nexthop` and with keepalived's deprecated `or`.
    let hops: Vec<usize> = vi.virtual_routes.iter().map(|r| r.nexthops.len()).collect();
    assert_eq!(hops, [0, 0, 0, 2, 2]);
    assert_eq!(vi.virtual_routes[3].nexthops[0].weight, Some(2));
    let statics = &routes.static_network;
    assert_eq!(
        (
            statics.ipaddress.len(),
            statics.routes.len(),
            statics.rules.len()
        ),
        (2, 5, 3)
    );
    // The static track group: VI_ROUTES tracks eth1 (address, route) and eth2 (rule).
    assert_eq!(statics.track_groups[0].name, "GROUP_UPLINK");
    let tracked: Vec<(&str, i32)> = vi
        .track_interface
        .iter()
        .map(|t| (t.name.as_str(), t.weight))
        .collect();
    assert_eq!(tracked, [("eth1", 0), ("eth2", 0)]);
    assert_eq!(
        statics.routes[1].track_group.as_deref(),
        Some("GROUP_UPLINK")
    );
    // keepalived's per-route TCP metrics, realms and rule selectors pass through.
    let tuned = &statics.routes[3];
    assert_eq!(tuned.realms.map(|r| (r.from, r.to)), Some((2, 3)));
    assert!(tuned
        .metrics
        .contains(&lb_daemon::config::route::Metric::Congctl("cubic".into())));
    assert_eq!(statics.routes[4].pref, Some(1));
    let selective = &statics.rules[1];
    assert_eq!(
        (selective.ipproto, selective.dport, selective.uidrange),
        (Some(6), Some((80, 443)), Some((0, 999)))
    );
    let group = load(&fixtures().join("ok/sample_fwmark_group.conf"), "lb1");
    let servers: Vec<(String, Option<u32>, usize)> = group
        .virtual_servers
        .iter()
        .map(|vs| (vs.address.to_string(), vs.fwmark, vs.matches.len()))
        .collect();
    assert_eq!(
        servers,
        [
            ("192.168.201.10".to_string(), None, 0),
            ("192.168.201.11".to_string(), None, 0),
            ("0.0.0.5".to_string(), Some(5), 2),
            ("0.0.0.6".to_string(), Some(6), 1),
        ]
    );
    assert!(group
        .virtual_servers
        .iter()
        .all(|vs| vs.real_servers.len() == 1 && vs.persistence_timeout.is_some()));
    let unicast = load(&fixtures().join("ok/sample_unicast.conf"), "lb1");
    assert_eq!(
        unicast.vrrp_instance("VI_UNICAST").unwrap().unicast_peers[0].to_string(),
        "192.168.200.12"
    );
}

#[test]
fn an_unclosed_instance_is_reported_where_it_opens() {
    let (path, errors) = errors("seed000_lvs_dr_unclosed.conf");
    let line = line_of(&path, "vrrp_instance VI_1 {");
    let e = errors
        .iter()
        .find(|e| e.message.contains("never closed"))
        .expect("an unclosed-block error");
    assert_eq!((e.file.as_path(), e.line), (path.as_path(), line));
    assert!(e.hint.as_deref().unwrap().contains("add the `}`"));
    // The virtual_server read as part of the instance says why.
    let inside = errors
        .iter()
        .find(|e| e.message.contains("cannot be inside"))
        .expect("a misplaced virtual_server");
    assert_eq!(
        inside.line,
        line_of(&path, "virtual_server 192.168.67.35 80")
    );
}

#[test]
fn an_unclosed_virtual_server_is_reported() {
    let (path, errors) = errors("seed000_lvs_master_unclosed.conf");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(
        errors[0].line,
        line_of(&path, "virtual_server 192.168.91.188 80")
    );
}

#[test]
fn misspelt_keywords_get_the_right_one() {
    for (name, wrong, right) in [
        (
            "seed001_smtp_typo.conf",
            "connect_timeoust",
            "connect_timeout",
        ),
        ("seed002_use_mac.conf", "use_mac", "use_vmac"),
        ("seed003_g1obal_defs.conf", "g1obal_defs", "global_defs"),
    ] {
        let (path, errors) = errors(name);
        let e = errors
            .iter()
            .find(|e| e.message.contains(&format!("unknown keyword `{wrong}`")))
            .unwrap_or_else(|| panic!("{name}: {errors:?}"));
        assert_eq!(e.line, line_of(&path, wrong), "{name}");
        assert_eq!(
            e.hint.as_deref(),
            Some(format!("did you mean `{right}`?").as_str())
        );
    }
}

/// `lb-daemon check-config PATH`, which must fail: its stderr.
fn refused_by_check_config(path: &Path) -> String {
    let out = lb_daemon()
        .args(["check-config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success(), "{} was accepted", path.display());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn temp(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lb-convert-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

const ON_LO: &str = "global_defs {\n  router_id lb1\n}\nvrrp_instance VI_1 {\n  state BACKUP\n  interface lo\n  virtual_router_id 51\n  priority 100\n  virtual_ipaddress {\n    198.18.0.100/24\n  }\n}\n";

#[test]
fn cli_convert_writes_toml_that_check_config_accepts() {
    let conf = temp("lo.conf", ON_LO);
    let out = conf.with_extension("toml");
    let status = lb_daemon()
        .args([
            "convert",
            conf.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let toml = std::fs::read_to_string(&out).unwrap();
    assert!(
        toml.contains("[[vrrp_instance]]\nname = \"VI_1\""),
        "{toml}"
    );
    let check = lb_daemon()
        .args(["check-config", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
}

#[test]
fn cli_check_config_reads_keepalived_conf_directly_and_points_into_it() {
    let conf = temp("direct.conf", ON_LO);
    let ok = lb_daemon()
        .args(["check-config", conf.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    // An error the TOML loader finds (a VRRPv3 instance with authentication is fine, an
    // IPv6 VIP in version 2 is not) is shown at the keepalived line.
    let bad = temp(
        "bad.conf",
        &ON_LO
            .replace("  priority 100\n", "  priority 100\n  version 2\n")
            .replace("198.18.0.100/24", "2001:db8::1"),
    );
    let stderr = refused_by_check_config(&bad);
    let line = line_of(&bad, "version 2");
    assert!(
        stderr.contains(&format!("{}:{line}:", bad.display())),
        "{stderr}"
    );
}

#[test]
fn cli_config_id_selects_conditional_lines() {
    let conf = temp(
        "ids.conf",
        &ON_LO.replace(
            "  priority 100\n",
            "@lb1  priority 150\n@^lb1 priority 90\n",
        ),
    );
    let convert = |id: &str| {
        let out = lb_daemon()
            .args(["convert", conf.to_str().unwrap(), "--config-id", id])
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    assert!(convert("lb1").contains("priority = 150"));
    assert!(convert("lb2").contains("priority = 90"));
    let check = lb_daemon()
        .args(["check-config", "--config-id", "lb1", conf.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(check.status.success());
}

#[test]
fn sample_bfd_keeps_its_sessions_tracking_and_checker() {
    let config = load(&fixtures().join("ok/sample_bfd.conf"), "lb1");
    let peer = config.bfd_instance("peer").unwrap();
    assert_eq!(
        (peer.multiplier, peer.weight, peer.vrrp, peer.checker),
        (3, -20, true, true)
    );
    let gw = config.bfd_instance("gw").unwrap();
    assert!(gw.passive && gw.vrrp && !gw.checker);
    assert_eq!(gw.min_rx, std::time::Duration::from_micros(50_500));
    let vi = config.vrrp_instance("VI_BFD").unwrap();
    let tracked: Vec<(&str, i32, bool)> = vi
        .track_bfd
        .iter()
        .map(|t| (t.name.as_str(), t.weight, t.reverse))
        .collect();
    assert_eq!(tracked, [("peer", -20, false)]);
    for member in ["VI_GW1", "VI_GW2"] {
        let t = &config.vrrp_instance(member).unwrap().track_bfd;
        assert_eq!((t[0].name.as_str(), t[0].weight), ("gw", 0), "{member}");
    }
    let check = &config.virtual_servers[0].real_servers[0].checks[0];
    assert_eq!(check.kind.name(), "BFD_CHECK");
}

#[test]
fn a_real_s_own_lvs_method_and_the_sorry_server_s_become_their_lb_kind() {
    let config = load(&fixtures().join("ok/sample_lvs_method.conf"), "lb1");
    let vs = &config.virtual_servers[0];
    assert_eq!(vs.lb_kind, LbKind::Dr);
    let reals: Vec<_> = vs
        .real_servers
        .iter()
        .map(|r| (r.address.to_string(), r.port, r.lb_kind))
        .collect();
    assert_eq!(
        reals,
        vec![
            ("10.20.31.1".to_string(), 80, LbKind::Dr),
            ("10.20.31.2".to_string(), 8080, LbKind::Nat),
            ("10.20.32.3".to_string(), 80, LbKind::Tun),
        ]
    );
    assert_eq!(
        vs.sorry_server,
        Some(("10.20.31.99".parse().unwrap(), 8080))
    );
    assert_eq!(vs.sorry_server_lb_kind, LbKind::Nat);
}

#[test]
fn a_real_s_own_lvs_method_is_refused_at_its_line_where_xdp_may_run() {
    let ipvs = std::fs::read_to_string(fixtures().join("ok/sample_lvs_method.conf")).unwrap();
    let auto = temp(
        "lvs_method_auto.conf",
        &ipvs.replace("    dataplane ipvs\n", ""),
    );
    let stderr = refused_by_check_config(&auto);
    // The NAT real, the TUN real and the sorry server's method, each at its own line.
    for needle in [
        "lvs_method NAT",
        "lvs_method TUN",
        "sorry_server_lvs_method NAT",
    ] {
        let line = line_of(&auto, needle);
        assert!(
            stderr.contains(&format!("{}:{line}:", auto.display())),
            "{needle} (line {line}):\n{stderr}"
        );
    }
    assert!(
        stderr.contains(
            "the XDP program forwards every real server of a virtual server the same way"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("set dataplane = \"ipvs\""), "{stderr}");
}

#[test]
fn sorry_server_lvs_method_needs_a_sorry_server_first() {
    let conf = temp(
        "sorry_method.conf",
        "virtual_server 10.20.30.40 80 {\n    sorry_server_lvs_method NAT\n    real_server 10.20.31.1 80 {\n    }\n}\n",
    );
    let e = convert_file(&conf, "lb1").expect_err("converted");
    assert_eq!(e.errors.len(), 1, "{:#?}", e.errors);
    assert_eq!(
        e.errors[0].message,
        "sorry_server_lvs_method used without sorry_server"
    );
    assert_eq!(e.errors[0].line, 2);
}

#[test]
fn tunnel_options_after_the_method_become_tunnel_keys() {
    use lb_daemon::config::{Tunnel, TunnelChecksum, TunnelKind};
    let config = load(&fixtures().join("ok/sample_tunnel.conf"), "lb1");
    let vs = &config.virtual_servers[0];
    let gue = Tunnel {
        kind: TunnelKind::Gue,
        port: 6080,
        checksum: TunnelChecksum::Csum,
    };
    assert_eq!((vs.lb_kind, vs.tunnel), (LbKind::Tun, gue));
    let reals: Vec<_> = vs
        .real_servers
        .iter()
        .map(|r| (r.tunnel, r.uthreshold, r.lthreshold))
        .collect();
    assert_eq!(reals, vec![(gue, 200, 150), (Tunnel::default(), 0, 0)]);
    assert_eq!(vs.sorry_server_tunnel.kind, TunnelKind::Gre);
}

#[test]
fn tunnel_options_are_checked_at_their_line() {
    let text = std::fs::read_to_string(fixtures().join("ok/sample_tunnel.conf")).unwrap();
    // GUE without its port: keepalived's own message, at the method's line.
    let no_port = temp(
        "tunnel_no_port.conf",
        &text.replace("type gue port 6080 csum", "type gue csum"),
    );
    let stderr = refused_by_check_config(&no_port);
    let line = line_of(&no_port, "lvs_method TUN type gue");
    assert!(
        stderr.contains(&format!("{}:{line}:", no_port.display()))
            && stderr.contains("gue tunnels require port, otherwise cannot have port"),
        "{stderr}"
    );
    // Where XDP may run, only IP-in-IP.
    let auto = temp(
        "tunnel_auto.conf",
        &text
            .replace("    dataplane ipvs\n", "")
            .replace("lb_algo wlc", "lb_algo mh"),
    );
    let stderr = refused_by_check_config(&auto);
    assert!(
        stderr.contains("a gue tunnel needs the IPVS data plane"),
        "{stderr}"
    );
    // A word keepalived does not take after the method.
    let conf = temp(
        "tunnel_bad_word.conf",
        &text.replace("type gue port 6080 csum", "type gue port 6080 fast"),
    );
    let e = convert_file(&conf, "lb1").expect_err("converted");
    assert_eq!(e.errors[0].message, "Invalid tunnel option fast");
    assert_eq!(e.errors[0].line, line_of(&conf, "lvs_method TUN type gue"));
}
