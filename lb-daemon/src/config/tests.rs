//! Loading whole files: values and defaults, every kind of diagnostic with its position.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::*;

mod bfd;
mod bgp;
mod split_brain;
mod sync;
mod virtual_server;

const FULL: &str = r#"[global]
router_id = "lb1"
control_socket = "/run/lb-daemon/lb.sock"
dataplane = "xdp"
metrics_listen = "127.0.0.1:9100"
script_user = "keepalived_script"
vrrp_garp_master_refresh = "60s"

[[vrrp_script]]
name = "chk_haproxy"
script = "pgrep -x haproxy"
interval = "2s"
timeout = "1s"
weight = -20
rise = 2
fall = 2
user = "nobody"

[[vrrp_script]]
name = "chk_dns"
script = "/usr/local/bin/chk_dns"

[[vrrp_instance]]
name = "VI_1"
interface = "eth0"
state = "BACKUP"
virtual_router_id = 51
priority = 100
advert_int = 1
version = 2
nopreempt = false
preempt_delay = "0s"
authentication = { auth_type = "PASS", auth_pass = "s3cret" }
unicast_src_ip = "198.18.0.11"
unicast_peers = ["198.18.0.12"]
virtual_ipaddress = ["198.18.0.100/24", "198.18.0.101 dev eth1 label eth1:vip"]
track_interface = ["eth1", { name = "eth2", weight = -10 }]
track_script = ["chk_haproxy", { name = "chk_dns", weight = -30 }]
track_file = [{ name = "/etc/lb/prio", weight = 2, reverse = true }, "/etc/lb/other"]
notify_master = "/etc/lb/notify.sh master"
notify_backup = "/etc/lb/notify.sh backup"
notify_fault = "/etc/lb/notify.sh fault"
notify_stop = "/etc/lb/notify.sh stop"
notify = "/etc/lb/notify.sh"
garp_master_delay = "3s"
garp_master_repeat = 2

[[vrrp_instance]]
name = "VI_2"
interface = "eth0"
virtual_router_id = 51
virtual_ipaddress = ["2001:db8::100/64"]
advert_int = "100ms"

[[vrrp_sync_group]]
name = "G1"
group = ["VI_1", "VI_2"]
notify_master = "/etc/lb/group.sh master"
notify = "/etc/lb/group.sh"
"#;

/// An instance with every required key, to extend in tests (lines 1–5).
const BASE: &str = r#"[[vrrp_instance]]
name = "VI_1"
interface = "eth0"
virtual_router_id = 51
virtual_ipaddress = ["198.18.0.100"]
"#;

fn load(text: &str) -> Loaded {
    Config::from_str(text, "lb.toml").unwrap_or_else(|e| panic!("should load:\n{e}"))
}

fn rejected(text: &str) -> ConfigErrors {
    match Config::from_str(text, "lb.toml") {
        Ok(loaded) => panic!("should be rejected: {:#?}", loaded.config),
        Err(e) => e,
    }
}

/// The only error of a file.
fn error(text: &str) -> Diagnostic {
    let errors = rejected(text).errors;
    assert_eq!(errors.len(), 1, "expected one error, got:\n{errors:#?}");
    errors.into_iter().next().unwrap_or_else(|| unreachable!())
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("test address")
}

fn at(d: &Diagnostic) -> (usize, usize) {
    (d.line, d.column)
}

#[test]
fn full_example_loads_with_its_values() {
    let Loaded { config, warnings } = load(FULL);
    assert!(warnings.is_empty(), "{warnings:#?}");

    let g = &config.global;
    assert_eq!(g.router_id.as_deref(), Some("lb1"));
    assert_eq!(g.control_socket, PathBuf::from("/run/lb-daemon/lb.sock"));
    assert_eq!(g.dataplane, Dataplane::Xdp);
    assert_eq!(
        g.metrics_listen,
        Some("127.0.0.1:9100".parse().expect("addr"))
    );
    assert_eq!(g.script_user.as_deref(), Some("keepalived_script"));
    assert_eq!(g.vrrp_garp_master_refresh, Some(Duration::from_secs(60)));

    let chk = config.vrrp_script("chk_haproxy").expect("script");
    assert_eq!(chk.script, "pgrep -x haproxy");
    assert_eq!(
        (chk.interval, chk.timeout),
        (Duration::from_secs(2), Duration::from_secs(1))
    );
    assert_eq!((chk.weight, chk.rise, chk.fall), (-20, 2, 2));
    assert_eq!(chk.user.as_deref(), Some("nobody"));

    let vi1 = config.vrrp_instance("VI_1").expect("VI_1");
    assert_eq!(vi1.interface, "eth0");
    assert_eq!(vi1.state, InitialState::Backup);
    assert_eq!((vi1.virtual_router_id, vi1.priority), (51, 100));
    assert_eq!(vi1.advert_int, Duration::from_secs(1));
    assert_eq!(
        (vi1.version, vi1.family),
        (VrrpVersion::V2, AddressFamily::V4)
    );
    assert!(!vi1.nopreempt);
    assert_eq!(
        vi1.authentication,
        Some(Authentication {
            auth_type: AuthType::Pass,
            auth_pass: "s3cret".into()
        })
    );
    assert_eq!(vi1.unicast_src_ip, Some(ip("198.18.0.11")));
    assert_eq!(vi1.unicast_peers, vec![ip("198.18.0.12")]);
    assert!(vi1.is_unicast());
    assert_eq!(
        vi1.virtual_ipaddress,
        vec![
            VirtualAddress {
                address: ip("198.18.0.100"),
                prefix_len: 24,
                dev: None,
                label: None,
                track_group: None,
            },
            VirtualAddress {
                address: ip("198.18.0.101"),
                prefix_len: 32,
                dev: Some("eth1".into()),
                label: Some("eth1:vip".into()),
                track_group: None,
            },
        ]
    );
    assert_eq!(
        vi1.track_interface,
        vec![
            TrackInterface {
                name: "eth1".into(),
                weight: 0,
                reverse: false
            },
            TrackInterface {
                name: "eth2".into(),
                weight: -10,
                reverse: false
            },
        ]
    );
    // The script's own weight, then the entry's override.
    assert_eq!(
        vi1.track_script,
        vec![
            TrackScript {
                name: "chk_haproxy".into(),
                weight: -20,
                reverse: false
            },
            TrackScript {
                name: "chk_dns".into(),
                weight: -30,
                reverse: false
            },
        ]
    );
    assert_eq!(
        vi1.track_file,
        vec![
            TrackFile {
                path: "/etc/lb/prio".into(),
                weight: 2,
                reverse: true,
            },
            TrackFile {
                path: "/etc/lb/other".into(),
                weight: 1,
                reverse: false,
            },
        ]
    );
    assert_eq!(
        vi1.notify.master.as_deref(),
        Some("/etc/lb/notify.sh master")
    );
    assert_eq!(
        vi1.notify.backup.as_deref(),
        Some("/etc/lb/notify.sh backup")
    );
    assert_eq!(vi1.notify.fault.as_deref(), Some("/etc/lb/notify.sh fault"));
    assert_eq!(vi1.notify.stop.as_deref(), Some("/etc/lb/notify.sh stop"));
    assert_eq!(vi1.notify.any.as_deref(), Some("/etc/lb/notify.sh"));
    assert_eq!(vi1.garp_master_delay, Duration::from_secs(3));
    assert_eq!(vi1.garp_master_repeat, 2);
    // Not set on the instance: the global's.
    assert_eq!(vi1.garp_master_refresh, Some(Duration::from_secs(60)));

    // Same VRID on the same link is fine across families.
    let vi2 = config.vrrp_instance("VI_2").expect("VI_2");
    assert_eq!(
        (vi2.family, vi2.version),
        (AddressFamily::V6, VrrpVersion::V3)
    );
    assert_eq!(vi2.advert_int, Duration::from_millis(100));
    assert_eq!(vi2.mcast_group, ip("ff02::12"));

    let g1 = &config.vrrp_sync_groups[0];
    assert_eq!(g1.name, "G1");
    assert_eq!(g1.group, vec!["VI_1".to_string(), "VI_2".to_string()]);
    assert_eq!(g1.notify.master.as_deref(), Some("/etc/lb/group.sh master"));
    assert_eq!(
        config.sync_group_of("VI_2").map(|g| g.name.as_str()),
        Some("G1")
    );
}

#[test]
fn defaults_follow_keepalived() {
    let Loaded { config, warnings } = load(BASE);
    assert!(warnings.is_empty(), "{warnings:#?}");
    assert_eq!(config.global, Global::default());
    let g = &config.global;
    assert_eq!(g.router_id, None);
    assert_eq!(g.control_socket, PathBuf::from("/run/lb-daemon/lb.sock"));
    assert_eq!(g.bpf_pin_path, PathBuf::from("/sys/fs/bpf/lb"));
    assert_eq!(g.dataplane, Dataplane::Auto);
    assert_eq!(g.metrics_listen, None);
    assert_eq!(g.script_user, None);
    assert_eq!(g.script_timeout, Duration::from_secs(10));
    assert_eq!(g.vrrp_version, VrrpVersion::V2);
    assert_eq!(g.vrrp_garp_master_delay, Duration::from_secs(5));
    assert_eq!(g.vrrp_garp_master_repeat, 5);
    assert_eq!(g.vrrp_garp_master_refresh, None);
    assert_eq!(g.vrrp_garp_interval, Duration::ZERO);
    assert_eq!(g.vrrp_gna_interval, Duration::ZERO);

    let vi = &config.vrrp_instances[0];
    assert_eq!(vi.state, InitialState::Backup);
    assert_eq!(vi.priority, 100);
    assert_eq!(vi.advert_int, Duration::from_secs(1));
    assert_eq!(vi.version, VrrpVersion::V2);
    assert!(!vi.nopreempt);
    assert_eq!(vi.preempt_delay, Duration::ZERO);
    assert_eq!(vi.authentication, None);
    assert_eq!(vi.mcast_group, ip("224.0.0.18"));
    assert!(!vi.is_unicast());
    assert_eq!(vi.garp_master_delay, Duration::from_secs(5));
    assert_eq!(vi.garp_master_repeat, 5);
    assert_eq!(vi.garp_master_refresh, None);
    assert_eq!(vi.notify, Notify::default());

    let script = load("[[vrrp_script]]\nname = \"s\"\nscript = \"true\"\ninterval = \"3s\"\n")
        .config
        .vrrp_scripts
        .remove(0);
    assert_eq!(script.interval, Duration::from_secs(3));
    assert_eq!(
        script.timeout,
        Duration::from_secs(3),
        "timeout defaults to the interval"
    );
    assert_eq!((script.weight, script.rise, script.fall), (0, 1, 1));
}

#[test]
fn state_and_priority_derive_from_each_other() {
    let loaded = load(&format!("{BASE}state = \"MASTER\"\n"));
    let vi = &loaded.config.vrrp_instances[0];
    assert_eq!((vi.state, vi.priority), (InitialState::Master, 255));
    assert_eq!(loaded.warnings.len(), 1);
    assert_eq!(loaded.warnings[0].key, "vrrp_instance \"VI_1\".state");
    assert_eq!(at(&loaded.warnings[0]), (6, 9));

    let vi = load(&format!("{BASE}priority = 255\n"))
        .config
        .vrrp_instances
        .remove(0);
    assert_eq!(vi.state, InitialState::Master);

    let vi = load(&format!("{BASE}state = \"master\"\npriority = 150\n"))
        .config
        .vrrp_instances
        .remove(0);
    assert_eq!((vi.state, vi.priority), (InitialState::Master, 150));
}

#[test]
fn global_overrides_reach_the_instances() {
    let text = format!(
        "[global]\nvrrp_version = 3\nvrrp_mcast_group4 = \"224.0.0.19\"\nvrrp_garp_master_delay = 1\nvrrp_garp_master_repeat = 3\n{BASE}"
    );
    let vi = load(&text).config.vrrp_instances.remove(0);
    assert_eq!(vi.version, VrrpVersion::V3);
    assert_eq!(vi.mcast_group, ip("224.0.0.19"));
    assert_eq!(vi.garp_master_delay, Duration::from_secs(1));
    assert_eq!(vi.garp_master_repeat, 3);

    let vi = load(&format!("{BASE}mcast_group = \"239.1.1.1\"\n"))
        .config
        .vrrp_instances
        .remove(0);
    assert_eq!(vi.mcast_group, ip("239.1.1.1"));
}

#[test]
fn durations_in_every_form() {
    for (written, expected) in [
        ("\"100ms\"", Duration::from_millis(100)),
        ("\"1.5s\"", Duration::from_millis(1500)),
        ("\"2m\"", Duration::from_secs(120)),
        ("\"1h\"", Duration::from_secs(3600)),
        ("\"1m30s\"", Duration::from_secs(90)),
        ("2", Duration::from_secs(2)),
        ("0.25", Duration::from_millis(250)),
    ] {
        let text =
            format!("[[vrrp_script]]\nname = \"s\"\nscript = \"true\"\ninterval = {written}\n");
        assert_eq!(
            load(&text).config.vrrp_scripts[0].interval,
            expected,
            "{written}"
        );
    }
    // advert_int: a float number of seconds in v3, exactly.
    let vi = load(&format!("{BASE}version = 3\nadvert_int = 0.1\n"))
        .config
        .vrrp_instances
        .remove(0);
    assert_eq!(vi.advert_int, Duration::from_millis(100));
}

#[test]
fn bad_durations_name_the_key() {
    let e = error("[global]\nscript_timeout = \"10 sec\"\n");
    assert_eq!(e.key, "global.script_timeout");
    assert_eq!(at(&e), (2, 18));
    assert_eq!(e.message, "unknown unit `sec`");
    assert!(e.hint.as_deref().is_some_and(|h| h.contains("\"100ms\"")));

    let e = error("[global]\nvrrp_garp_interval = -1\n");
    assert_eq!(e.key, "global.vrrp_garp_interval");
    assert_eq!(e.message, "a duration cannot be negative");

    let e = error("[[vrrp_script]]\nname = \"s\"\nscript = \"true\"\ninterval = \"0s\"\n");
    assert_eq!(e.key, "vrrp_script \"s\".interval");
    assert_eq!(e.message, "must be longer than zero");
}

#[test]
fn typo_gets_did_you_mean_with_position() {
    let e = error(&format!("{BASE}priorty = 100\n"));
    assert_eq!(e.key, "vrrp_instance \"VI_1\".priorty");
    assert_eq!(at(&e), (6, 1));
    assert_eq!(e.message, "unknown key");
    assert_eq!(e.hint.as_deref(), Some("did you mean `priority`?"));
    assert_eq!(
        e.to_string(),
        "lb.toml:6:1: error: vrrp_instance \"VI_1\".priorty: unknown key (did you mean `priority`?)"
    );
}

#[test]
fn unknown_keys_are_caught_at_every_level() {
    let text = format!(
        r#"[global]
routerid = "x"
notify_user = "nobody"

[[vrrp_script]]
name = "chk"
script = "true"
intervall = 1

{BASE}authentication = {{ auth_type = "PASS", auth_pas = "x" }}
track_script = [{{ name = "chk", wieght = 2 }}]
track_interface = [{{ nmae = "eth1" }}]

[[vrrp_sync_group]]
name = "G"
group = ["VI_1"]
notify_mastr = "x"

[virtual_servers]
"#
    );
    let errors = rejected(&text).errors;
    let found: Vec<(&str, (usize, usize), Option<&str>)> = errors
        .iter()
        .map(|e| (e.key.as_str(), at(e), e.hint.as_deref()))
        .collect();
    assert_eq!(
        found,
        vec![
            ("global.routerid", (2, 1), Some("did you mean `router_id`?")),
            (
                "global.notify_user",
                (3, 1),
                Some("keepalived calls it `script_user`")
            ),
            (
                "vrrp_script \"chk\".intervall",
                (8, 1),
                Some("did you mean `interval`?")
            ),
            ("vrrp_instance \"VI_1\".authentication", (15, 18), None),
            (
                "vrrp_instance \"VI_1\".authentication.auth_pas",
                (15, 40),
                Some("did you mean `auth_pass`?")
            ),
            (
                "vrrp_instance \"VI_1\".track_script[0].wieght",
                (16, 33),
                Some("did you mean `weight`?")
            ),
            ("vrrp_instance \"VI_1\".track_interface[0]", (17, 20), None),
            (
                "vrrp_instance \"VI_1\".track_interface[0].nmae",
                (17, 22),
                Some("did you mean `name`?")
            ),
            (
                "vrrp_sync_group \"G\".notify_mastr",
                (22, 1),
                Some("did you mean `notify_master`?")
            ),
            (
                "virtual_servers",
                (24, 2),
                Some("write each virtual server as [[virtual_server]]")
            ),
        ]
    );
    // The missing keys the typos left behind are reported too.
    assert!(errors
        .iter()
        .any(|e| e.message == "missing required key `auth_pass`"));
    assert!(errors
        .iter()
        .any(|e| e.message == "missing required key `name`"));
}

#[test]
fn ranges_are_enforced() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "priority = 0",
            "priority",
            "must be between 1 and 255, got 0",
        ),
        (
            "priority = 256",
            "priority",
            "must be between 1 and 255, got 256",
        ),
        (
            "preempt_delay = \"1001s\"",
            "preempt_delay",
            "must be between 1000s and",
        ),
        (
            "advert_int = 0",
            "advert_int",
            "must be between 1s and 255s for VRRPv2, got 0ns",
        ),
        (
            "advert_int = 256",
            "advert_int",
            "must be between 1s and 255s for VRRPv2, got 256s",
        ),
        (
            "advert_int = \"1.5s\"",
            "advert_int",
            "VRRPv2 advertises in whole seconds, got 1.5s",
        ),
        (
            "version = 3\nadvert_int = \"15ms\"",
            "advert_int",
            "VRRPv3 advertises in steps of 10ms, got 15ms",
        ),
        (
            "version = 3\nadvert_int = 41",
            "advert_int",
            "must be between 10ms and 40.95s for VRRPv3, got 41s",
        ),
        ("version = 4", "version", "must be between 2 and 3, got 4"),
        (
            "track_interface = [{ name = \"eth1\", weight = -255 }]",
            "track_interface[0].weight",
            "must be between -254 and 254, got -255",
        ),
        (
            "garp_master_repeat = -1",
            "garp_master_repeat",
            "must be at least 0, got -1",
        ),
    ];
    for (line, key, message) in cases {
        let e = error(&format!("{BASE}{line}\n"));
        assert_eq!(e.key, format!("vrrp_instance \"VI_1\".{key}"), "{line}");
        // The value after the last `=` of the last line.
        let value_column = line
            .lines()
            .last()
            .map_or(0, |l| l.rfind('=').unwrap_or(0) + 3);
        assert_eq!(at(&e), (5 + line.lines().count(), value_column), "{line}");
        if *key == "preempt_delay" {
            assert_eq!(e.message, "must be between 0ns and 1000s, got 1001s");
        } else {
            assert_eq!(e.message, *message, "{line}");
        }
    }
    let without_vrid = BASE.replace("virtual_router_id = 51\n", "");
    let e = error(&format!("{without_vrid}virtual_router_id = 0\n"));
    assert_eq!(e.key, "vrrp_instance \"VI_1\".virtual_router_id");
    assert_eq!(
        (at(&e), e.message.as_str()),
        ((5, 21), "must be between 1 and 255, got 0")
    );
    let e = error(&format!("{without_vrid}virtual_router_id = 256\n"));
    assert_eq!(e.message, "must be between 1 and 255, got 256");

    // The edges are valid.
    load(&format!("{without_vrid}virtual_router_id = 255\n"));
    load(&format!("{BASE}advert_int = 255\n"));
    load(&format!("{BASE}version = 3\nadvert_int = 40.95\n"));
    load(&format!("{BASE}version = 3\nadvert_int = \"10ms\"\n"));
    load(&format!("{BASE}preempt_delay = 1000\n"));

    let script = |line: &str| format!("[[vrrp_script]]\nname = \"s\"\nscript = \"true\"\n{line}\n");
    let e = error(&script("weight = 255"));
    assert_eq!(
        (e.key.as_str(), e.message.as_str()),
        (
            "vrrp_script \"s\".weight",
            "must be between -254 and 254, got 255"
        )
    );
    let e = error(&script("rise = 0"));
    assert_eq!(
        (e.key.as_str(), e.message.as_str()),
        ("vrrp_script \"s\".rise", "must be at least 1, got 0")
    );
    let e = error(&script("fall = 0"));
    assert_eq!(e.message, "must be at least 1, got 0");
    load(&script("weight = -254"));
}

#[test]
fn wrong_types_say_what_was_expected() {
    let e = error(&format!("{BASE}priority = \"100\"\n"));
    assert_eq!(e.message, "expected an integer, found string");
    assert_eq!(at(&e), (6, 12));

    let e = error(&format!("{BASE}nopreempt = \"yes\"\n"));
    assert_eq!(e.message, "expected true or false, found string");

    let e = error("[vrrp_instance]\nname = \"VI_1\"\n");
    assert_eq!(e.key, "vrrp_instance");
    assert_eq!(e.message, "expected an array of tables, found table");
    assert_eq!(
        e.hint.as_deref(),
        Some("write each entry as [[vrrp_instance]]")
    );

    let e = error(&BASE.replace("[\"198.18.0.100\"]", "\"198.18.0.100\""));
    assert_eq!(e.key, "vrrp_instance \"VI_1\".virtual_ipaddress");
    assert_eq!(e.message, "expected an array, found string");
}

#[test]
fn missing_required_keys_point_at_the_table() {
    let errors = rejected("[[vrrp_instance]]\ninterface = \"eth0\"\n").errors;
    let messages: Vec<(&str, &str, (usize, usize))> = errors
        .iter()
        .map(|e| (e.key.as_str(), e.message.as_str(), at(e)))
        .collect();
    assert_eq!(
        messages,
        vec![
            ("vrrp_instance[0]", "missing required key `name`", (1, 1)),
            (
                "vrrp_instance[0]",
                "missing required key `virtual_router_id`",
                (1, 1)
            ),
        ]
    );
}

#[test]
fn address_families() {
    // v2 is IPv4 only.
    let e = error(&format!("{BASE}version = 2\n").replace("198.18.0.100", "2001:db8::1"));
    assert_eq!(e.key, "vrrp_instance \"VI_1\".version");
    assert_eq!(at(&e), (6, 11));
    assert_eq!(
        e.message,
        "version 2 is IPv4 only, but the virtual addresses are IPv6"
    );

    // One family per instance.
    let e = error(&BASE.replace("[\"198.18.0.100\"]", "[\"198.18.0.100\", \"2001:db8::1\"]"));
    assert_eq!(e.key, "vrrp_instance \"VI_1\".virtual_ipaddress[1]");
    assert_eq!(at(&e), (5, 38));
    assert_eq!(e.message, "IPv6 address in an IPv4 instance");

    // Unicast addresses follow the VIPs' family.
    let errors = rejected(&format!(
        "{BASE}unicast_src_ip = \"2001:db8::11\"\nunicast_peers = [\"198.18.0.12\", \"2001:db8::12\"]\n"
    ))
    .errors;
    let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        vec![
            "vrrp_instance \"VI_1\".unicast_src_ip",
            "vrrp_instance \"VI_1\".unicast_peers[1]"
        ]
    );
    assert!(errors
        .iter()
        .all(|e| e.message == "IPv6 address in an IPv4 instance"));

    // A multicast group of the instance's family.
    let e = error(&format!("{BASE}mcast_group = \"198.18.0.1\"\n"));
    assert_eq!(e.message, "198.18.0.1 is not a multicast address");
    let e = error(&format!("{BASE}mcast_group = \"ff02::12\"\n"));
    assert_eq!(e.message, "IPv6 group for an IPv4 instance");
    let e = error("[global]\nvrrp_mcast_group4 = \"10.0.0.1\"\n");
    assert_eq!(e.key, "global.vrrp_mcast_group4");
    assert_eq!(e.message, "10.0.0.1 is not a multicast address");
}

#[test]
fn excluded_addresses_make_a_dual_stack_instance() {
    let loaded = load(&format!(
        "{BASE}virtual_ipaddress_excluded = [\"2001:db8:1::100/128\", \"198.18.0.101\"]\n"
    ));
    let inst = &loaded.config.vrrp_instances[0];
    assert_eq!(inst.family, AddressFamily::V4, "adverts stay IPv4");
    let held: Vec<IpAddr> = inst.all_addresses().map(|v| v.address).collect();
    assert_eq!(
        held,
        vec![
            ip("198.18.0.100"),
            ip("2001:db8:1::100"),
            ip("198.18.0.101")
        ]
    );
    let e = error(&format!(
        "{BASE}virtual_ipaddress_excluded = [\"198.18.0.100\"]\n"
    ));
    assert_eq!(
        e.key,
        "vrrp_instance \"VI_1\".virtual_ipaddress_excluded[0]"
    );
    assert_eq!(e.message, "198.18.0.100 is listed twice");
}

#[test]
fn virtual_address_syntax() {
    let e = error(&BASE.replace("198.18.0.100", "198.18.0.100/24 brd 198.18.0.255"));
    assert_eq!(e.message, "unsupported option `brd`");
    assert_eq!(
        e.hint.as_deref(),
        Some("only `dev IFACE`, `label LABEL` and (static addresses) `track_group NAME` may follow the address")
    );
    let e = error(&BASE.replace("198.18.0.100", "198.18.0.100/33"));
    assert_eq!(
        e.message,
        "prefix length /33 is too long for an IPv4 address (at most /32)"
    );
    let e = error(&BASE.replace(
        "[\"198.18.0.100\"]",
        "[\"198.18.0.100\", \"198.18.0.100/24\"]",
    ));
    assert_eq!(e.message, "198.18.0.100 is listed twice");
}

#[test]
fn duplicates_and_vrids() {
    let text = format!("{BASE}\n{}", BASE.replace("198.18.0.100", "198.18.0.101"));
    let errors = rejected(&text).errors;
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert_eq!(errors[0].key, "vrrp_instance \"VI_1\".name");
    assert_eq!(at(&errors[0]), (8, 8));
    assert_eq!(errors[0].message, "duplicate vrrp_instance name `VI_1`");
    assert_eq!(errors[0].hint.as_deref(), Some("first defined at line 2"));
    assert_eq!(errors[1].key, "vrrp_instance \"VI_1\".virtual_router_id");
    assert_eq!(at(&errors[1]), (10, 21));
    assert_eq!(
        errors[1].message,
        "virtual_router_id 51 is already used on eth0 by `VI_1` (line 4)"
    );

    // Another interface, or another family, may reuse the VRID.
    load(&format!(
        "{BASE}\n{}",
        BASE.replace("VI_1", "VI_2").replace("eth0", "eth1")
    ));
    load(&format!(
        "{BASE}\n{}",
        BASE.replace("VI_1", "VI_2")
            .replace("198.18.0.100", "2001:db8::1")
    ));

    let script = "[[vrrp_script]]\nname = \"s\"\nscript = \"true\"\n";
    let e = error(&format!("{script}{script}"));
    assert_eq!((e.key.as_str(), at(&e)), ("vrrp_script \"s\".name", (5, 8)));
    assert_eq!(e.message, "duplicate vrrp_script name `s`");
}

#[test]
fn references_between_sections() {
    let script = "[[vrrp_script]]\nname = \"chk_haproxy\"\nscript = \"true\"\n";
    let e = error(&format!("{script}{BASE}track_script = [\"chk_haproxi\"]\n"));
    assert_eq!(e.key, "vrrp_instance \"VI_1\".track_script[0]");
    assert_eq!(at(&e), (9, 17));
    assert_eq!(e.message, "no vrrp_script is named `chk_haproxi`");
    assert_eq!(e.hint.as_deref(), Some("did you mean `chk_haproxy`?"));

    let vi2 = BASE.replace("VI_1", "VI_2").replace("eth0", "eth1");
    let groups = "[[vrrp_sync_group]]\nname = \"G1\"\ngroup = [\"VI_1\", \"VI_3\"]\n\n[[vrrp_sync_group]]\nname = \"G2\"\ngroup = [\"VI_2\", \"VI_1\"]\n";
    let errors = rejected(&format!("{BASE}\n{vi2}\n{groups}")).errors;
    let found: Vec<(&str, (usize, usize), &str)> = errors
        .iter()
        .map(|e| (e.key.as_str(), at(e), e.message.as_str()))
        .collect();
    assert_eq!(
        found,
        vec![
            (
                "vrrp_sync_group \"G1\".group[1]",
                (15, 18),
                "no vrrp_instance is named `VI_3`"
            ),
            (
                "vrrp_sync_group \"G2\".group[1]",
                (19, 18),
                "`VI_1` is already in vrrp_sync_group `G1` (line 15)"
            ),
        ]
    );
    assert_eq!(errors[0].hint.as_deref(), Some("did you mean `VI_1`?"));
}

#[test]
fn authentication_rules() {
    let auth = |version: u8, kind: &str, pass: &str| {
        format!("{BASE}version = {version}\nauthentication = {{ auth_type = \"{kind}\", auth_pass = \"{pass}\" }}\n")
    };
    // Longer passwords are cut to 8 characters, as keepalived does.
    let loaded = load(&auth(2, "PASS", "0123456789"));
    let vi = &loaded.config.vrrp_instances[0];
    assert_eq!(
        vi.authentication.as_ref().map(|a| a.auth_pass.as_str()),
        Some("01234567")
    );
    assert_eq!(loaded.warnings.len(), 1);
    assert_eq!(
        loaded.warnings[0].key,
        "vrrp_instance \"VI_1\".authentication.auth_pass"
    );
    assert_eq!(loaded.warnings[0].severity, Severity::Warning);

    // VRRPv3 has no authentication: ignored with a warning, like keepalived.
    let loaded = load(&auth(3, "PASS", "secret"));
    assert_eq!(loaded.config.vrrp_instances[0].authentication, None);
    assert_eq!(
        loaded.warnings[0].key,
        "vrrp_instance \"VI_1\".authentication"
    );
    assert!(loaded.warnings[0]
        .message
        .starts_with("ignored: VRRPv3 has no authentication"));

    // IPsec AH: loaded; keepalived's rules: an AH non-owner starts as BACKUP, an
    // IPv6 instance (which is VRRPv3) has none (warnings).
    let loaded = load(&auth(2, "AH", "secret"));
    let vi = &loaded.config.vrrp_instances[0];
    assert_eq!(
        vi.authentication.as_ref().map(|a| a.auth_type),
        Some(AuthType::Ah)
    );
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let master = format!(
        "{}state = \"MASTER\"\npriority = 150\n",
        auth(2, "ah", "secret")
    );
    let loaded = load(&master);
    assert_eq!(loaded.config.vrrp_instances[0].state, InitialState::Backup);
    assert!(loaded.warnings[0]
        .message
        .contains("state MASTER becomes BACKUP"));
    assert_eq!(at(&loaded.warnings[0]), (7, 18));
    let owner = format!(
        "{}state = \"MASTER\"\npriority = 255\n",
        auth(2, "AH", "secret")
    );
    let loaded = load(&owner);
    assert_eq!(loaded.config.vrrp_instances[0].state, InitialState::Master);
    let v6 = auth(2, "AH", "secret").replace("198.18.0.100", "2001:db8::100");
    let loaded = load(&v6.replace("version = 2", "version = 3"));
    assert_eq!(loaded.config.vrrp_instances[0].authentication, None);
    let e = error(&auth(2, "ESP", "secret"));
    assert_eq!(e.key, "vrrp_instance \"VI_1\".authentication.auth_type");
    assert_eq!(e.message, "unknown value `ESP`");
    let e = error(&auth(2, "PSS", "secret"));
    assert_eq!(e.hint.as_deref(), Some("did you mean `PASS`?"));
}

#[test]
fn warnings_keep_the_file_loadable() {
    let text = format!(
        "{BASE}state = \"MASTER\"\npriority = 150\nnopreempt = true\npreempt_delay = 10\nunicast_src_ip = \"198.18.0.11\"\n"
    );
    let loaded = load(&text);
    let found: Vec<(&str, (usize, usize), &str)> = loaded
        .warnings
        .iter()
        .map(|w| (w.key.as_str(), at(w), w.message.as_str()))
        .collect();
    assert_eq!(
        found,
        vec![
            ("vrrp_instance \"VI_1\".nopreempt", (8, 13), "ignored with state = \"MASTER\""),
            ("vrrp_instance \"VI_1\".preempt_delay", (9, 17), "ignored with state = \"MASTER\""),
            (
                "vrrp_instance \"VI_1\".unicast_src_ip",
                (10, 18),
                "without unicast_peers, adverts are multicast and this is only their source address"
            ),
        ]
    );
    let vi = &loaded.config.vrrp_instances[0];
    assert!(!vi.nopreempt);
    assert_eq!(vi.preempt_delay, Duration::ZERO);
    assert!(loaded.warnings[0]
        .to_string()
        .starts_with("lb.toml:8:13: warning: "));

    // preempt_delay means nothing without preemption.
    let loaded = load(&format!("{BASE}nopreempt = true\npreempt_delay = \"5s\"\n"));
    assert_eq!(loaded.warnings.len(), 1);
    assert_eq!(loaded.warnings[0].message, "ignored: nopreempt is set");
    assert!(loaded.config.vrrp_instances[0].nopreempt);

    // No address: a warning in v2, an error in v3 (as keepalived).
    let empty = BASE.replace("[\"198.18.0.100\"]", "[]");
    let loaded = load(&empty);
    assert_eq!(
        loaded.warnings[0].message,
        "no virtual address: this instance moves nothing"
    );
    assert_eq!(at(&loaded.warnings[0]), (5, 21));
    let e = error(&format!("{empty}version = 3\n"));
    assert_eq!(e.message, "VRRPv3 needs at least one virtual address");

    // mcast_group is moot with unicast peers; a group of one syncs nothing.
    let loaded = load(&format!(
        "{BASE}unicast_peers = [\"198.18.0.12\"]\nmcast_group = \"224.0.0.18\"\n[[vrrp_sync_group]]\nname = \"G\"\ngroup = [\"VI_1\"]\n"
    ));
    let messages: Vec<&str> = loaded.warnings.iter().map(|w| w.message.as_str()).collect();
    assert_eq!(
        messages,
        vec![
            "ignored: adverts go to unicast_peers",
            "a sync group of one instance synchronises nothing"
        ]
    );
}

#[test]
fn all_errors_are_collected_in_one_run() {
    let text = r#"[global]
dataplane = "xpd"
metrics_listen = "localhost"

[[vrrp_script]]
name = "chk"
script = "true"
weight = 300

[[vrrp_instance]]
name = "VI_1"
interface = "eth0/1"
virtual_router_id = 300
priorty = 100
advert_int = "fast"
virtual_ipaddress = ["198.18.0.300"]
track_script = ["chk_nope"]
"#;
    let ConfigErrors { errors, warnings } = rejected(text);
    assert!(warnings.is_empty());
    let found: Vec<(&str, usize)> = errors.iter().map(|e| (e.key.as_str(), e.line)).collect();
    assert_eq!(
        found,
        vec![
            ("global.dataplane", 2),
            ("global.metrics_listen", 3),
            ("vrrp_script \"chk\".weight", 8),
            ("vrrp_instance \"VI_1\".interface", 12),
            ("vrrp_instance \"VI_1\".virtual_router_id", 13),
            ("vrrp_instance \"VI_1\".priorty", 14),
            ("vrrp_instance \"VI_1\".advert_int", 15),
            ("vrrp_instance \"VI_1\".virtual_ipaddress[0]", 16),
            ("vrrp_instance \"VI_1\".track_script[0]", 17),
        ]
    );
    let shown = ConfigErrors { errors, warnings }.to_string();
    assert_eq!(shown.lines().count(), 9);
    assert!(shown
        .lines()
        .all(|l| l.starts_with("lb.toml:") && l.contains(": error: ")));
}

#[test]
fn syntax_errors_have_positions() {
    // Where the unterminated string ends.
    let e = error("[global]\nrouter_id = \"lb1\nx = 1\n");
    assert_eq!(at(&e), (2, 17));
    assert!(e.key.is_empty());
    assert_eq!(
        e.to_string(),
        "lb.toml:2:17: error: invalid basic string, expected `\"`"
    );

    let e = error("[global]\nrouter_id = \"a\"\nrouter_id = \"b\"\n");
    assert_eq!(at(&e), (3, 1));
    assert!(e.message.contains("duplicate key"), "{}", e.message);
}

#[test]
fn interfaces_are_checked_by_the_caller() {
    let text = format!(
        "{}track_interface = [\"eth1\", {{ name = \"eth9\", weight = -10 }}]\n",
        BASE.replace("198.18.0.100", "198.18.0.100 dev eth7")
    );
    let config = load(&text).config;
    assert!(check_interfaces(&config, |_| true).is_empty());

    let exists = |name: &str| name == "eth0" || name == "eth1";
    let found: Vec<(String, (usize, usize), String)> = check_interfaces(&config, exists)
        .into_iter()
        .map(|d| (d.key.clone(), at(&d), d.message))
        .collect();
    assert_eq!(
        found,
        vec![
            (
                "vrrp_instance \"VI_1\".track_interface[1]".into(),
                (6, 28),
                "interface `eth9` does not exist".into()
            ),
            (
                "vrrp_instance \"VI_1\".virtual_ipaddress[0]".into(),
                (5, 22),
                "interface `eth7` does not exist".into()
            ),
        ]
    );
    let missing_link = check_interfaces(&config, |name| name != "eth0");
    assert_eq!(missing_link.len(), 1);
    assert_eq!(missing_link[0].key, "vrrp_instance \"VI_1\".interface");
    assert_eq!(at(&missing_link[0]), (3, 13));
    assert_eq!(missing_link[0].file, PathBuf::from("lb.toml"));
}

#[test]
fn from_file_reads_and_names_the_file() {
    let dir = std::env::temp_dir().join(format!("lb-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("lb.toml");
    std::fs::write(&path, format!("{BASE}priorty = 1\n")).expect("write");
    let e = Config::from_file(&path).expect_err("typo");
    assert_eq!(e.errors[0].file, path);

    std::fs::write(&path, BASE).expect("write");
    assert!(Config::from_file(&path).is_ok());

    let missing = dir.join("missing.toml");
    let e = Config::from_file(&missing).expect_err("missing file");
    assert_eq!((e.errors[0].line, e.errors[0].column), (0, 0));
    assert!(e.to_string().starts_with(&format!(
        "{}: error: cannot read the file",
        missing.display()
    )));
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn errors_are_capped_per_file() {
    // Issue 16: a megabyte of control characters gave 500,000 errors (72 MB of output).
    let garbage = rejected(&"\x01\x1b[2J".repeat(250_000));
    assert_eq!(garbage.errors.len(), super::MAX_ERRORS + 1);
    let shown = garbage.to_string();
    assert!(shown.len() < 10_000, "{} bytes", shown.len());
    assert!(
        !shown.chars().any(|c| c.is_control() && c != '\n'),
        "{shown:?}"
    );
    assert!(
        shown.ends_with("and 499960 more errors not shown (fix these first)"),
        "{shown}"
    );
    let keys: String = (0..500).map(|i| format!("bogus{i} = 1\n")).collect();
    let many = rejected(&format!("{keys}{BASE}"));
    assert_eq!(many.errors.len(), super::MAX_ERRORS + 1);
    assert!(many.errors[super::MAX_ERRORS]
        .message
        .contains("and 460 more errors"));
}

#[test]
fn an_empty_file_loads_with_a_warning() {
    for text in ["", "# only a comment\n", "[global]\nrouter_id = \"lb1\"\n"] {
        let loaded = load(text);
        assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
        assert!(
            loaded.warnings[0].message.contains("nothing is configured"),
            "{}",
            loaded.warnings[0]
        );
    }
    assert!(load(BASE).warnings.is_empty());
}

#[test]
fn non_unicast_virtual_addresses_are_refused_at_their_position() {
    for (vip, what) in [
        ("0.0.0.0/0", "the unspecified address"),
        ("224.0.0.18/32", "a multicast address"),
        ("255.255.255.255", "the broadcast address"),
        ("ff02::1", "a multicast address"),
        ("::", "the unspecified address"),
        ("127.0.0.2", "a loopback address"),
        ("::1", "a loopback address"),
    ] {
        let text = BASE.replace("198.18.0.100", vip);
        let e = error(&text);
        assert_eq!((e.line, e.column), (5, 22), "{e}");
        assert!(
            e.message
                .contains(&format!("is {what}, not a unicast address")),
            "{e}"
        );
    }
    // Link-local stays: VRRPv3 over IPv6 puts one first.
    for vip in ["169.254.0.9", "fe80::9/64"] {
        assert!(vip.parse::<super::VirtualAddress>().is_ok(), "{vip}");
    }
}

#[test]
fn metrics_off_the_loopback_is_a_warning() {
    // Off by default; on a loopback address quietly; elsewhere with a warning.
    assert_eq!(load(BASE).config.global.metrics_listen, None);
    let quiet = load(&format!(
        "[global]\nmetrics_listen = \"[::1]:9100\"\n{BASE}"
    ));
    assert!(quiet.warnings.is_empty(), "{:?}", quiet.warnings);
    let open = load(&format!(
        "[global]\nmetrics_listen = \"0.0.0.0:9100\"\n{BASE}"
    ));
    assert_eq!(open.warnings.len(), 1);
    assert!(
        open.warnings[0]
            .message
            .contains("reachable from other hosts"),
        "{}",
        open.warnings[0]
    );
    assert_eq!((open.warnings[0].line, open.warnings[0].column), (2, 18));
}

#[test]
fn routes_rules_and_static_network() {
    let text = format!(
        "{BASE}virtual_routes = [\"10.1.0.0/16 via 198.18.0.254 dev eth0\"]\nvirtual_rules = [\"from 198.18.0.100 table 100\", \"to 10.0.0.0/8 table 5 preference 7\"]\n\n[static]\nipaddress = [\"192.0.2.5/24 dev eth0\"]\nroutes = [\"blackhole 10.9.0.0/16\"]\nrules = [\"fwmark 1 table 9\"]\n"
    );
    let loaded = load(&text);
    let vi = &loaded.config.vrrp_instances[0];
    assert_eq!(vi.virtual_routes[0].via, Some(ip("198.18.0.254")));
    // keepalived's automatic preferences: static rules first, counting down from 16384.
    assert_eq!(loaded.config.static_network.rules[0].priority, Some(16384));
    assert_eq!(vi.virtual_rules[0].priority, Some(16383));
    assert_eq!(vi.virtual_rules[1].priority, Some(7));
    assert_eq!(loaded.config.static_network.routes[0].kind, 6);
    let mut warned: Vec<(usize, usize)> = loaded.warnings.iter().map(at).collect();
    warned.sort();
    assert_eq!(warned, vec![(7, 18), (12, 10)], "{:#?}", loaded.warnings);

    let e = error(&format!("{BASE}virtual_routes = [\"10.1.0.0/16 via\"]\n"));
    assert_eq!(at(&e), (6, 19));
    assert_eq!(e.message, "route `10.1.0.0/16 via`: `via` needs a value");
    assert!(e
        .hint
        .as_deref()
        .unwrap()
        .contains("10.1.0.0/16 via 192.168.1.1 dev eth0"));
    let e = error(&format!("{BASE}virtual_rules = [\"from 10.0.0.0/8\"]\n"));
    assert!(e.message.contains("no action"), "{e:?}");
    let e = error(&format!(
        "{BASE}\n[static]\nipaddress = [\"192.0.2.5/24\"]\n"
    ));
    assert_eq!(e.message, "static address 192.0.2.5 has no interface");
    let e = error(&format!("{BASE}\n[static]\nstatic_routes = []\n"));
    assert!(e.hint.as_deref().unwrap().contains("`routes`"), "{e:?}");
}

#[test]
fn static_track_groups() {
    let second = "[[vrrp_instance]]\nname = \"VI_2\"\ninterface = \"eth0\"\nvirtual_router_id = 52\nvirtual_ipaddress = [\"198.18.0.101\"]\ntrack_interface = [{ name = \"eth2\", weight = -20 }]\n";
    let statics = "[static]\nipaddress = [\"192.0.2.5/24 dev eth1 track_group G1\", \"192.0.2.6/24 dev eth0 track_group G1\"]\nroutes = [\"10.9.0.0/16 via 192.0.2.1 dev eth2 track_group G1\", \"10.8.0.0/16 dev eth3 no_track track_group G1\", \"10.7.0.0/16 via 192.0.2.1 track_group G1\"]\nrules = [\"from 10.9.0.0/16 iif eth4 table 9 preference 9 track_group G1\"]\n";
    let text = format!(
        "{BASE}{second}\n[[track_group]]\nname = \"G1\"\ngroup = [\"VI_1\", \"VI_2\"]\n\n{statics}"
    );
    let loaded = load(&text);
    let c = &loaded.config;
    assert_eq!(c.static_network.track_groups[0].group, ["VI_1", "VI_2"]);
    assert_eq!(
        c.static_network.routes[0].track_group.as_deref(),
        Some("G1")
    );
    let tracked = |name: &str| -> Vec<(String, i32)> {
        c.vrrp_instance(name)
            .expect("instance")
            .track_interface
            .iter()
            .map(|t| (t.name.clone(), t.weight))
            .collect()
    };
    // eth0 is the instances' own interface; eth3's route is no_track; the route without
    // `dev` tracks nothing; VI_2 keeps its own weight for eth2.
    let zero = |n: &str| (n.to_owned(), 0);
    assert_eq!(tracked("VI_1"), [zero("eth1"), zero("eth2"), zero("eth4")]);
    assert_eq!(
        tracked("VI_2"),
        [("eth2".to_owned(), -20), zero("eth1"), zero("eth4")]
    );
    let mut warned: Vec<String> = loaded.warnings.iter().map(|w| w.message.clone()).collect();
    warned.sort();
    assert_eq!(
        warned,
        [
            "track_group `G1` has no interface to track: the line has no `dev`",
            "track_group `G1` with no_track: not tracked (keepalived does the same)",
        ],
        "{:#?}",
        loaded.warnings
    );

    // A tracked interface that does not exist is reported at the static line that names
    // it (the instances' added entries are not in the file), once per line.
    let found: Vec<(String, usize, String)> = check_interfaces(c, |name| name == "eth0")
        .into_iter()
        .map(|d| (d.key, d.line, d.message))
        .collect();
    let line = |needle: &str| {
        1 + text
            .lines()
            .position(|l| l.starts_with(needle))
            .expect(needle)
    };
    assert_eq!(
        found,
        [
            (
                "vrrp_instance \"VI_2\".track_interface[0]".to_string(),
                line("track_interface"),
                "interface `eth2` does not exist".to_string()
            ),
            (
                "static.ipaddress[0]".to_string(),
                line("ipaddress ="),
                "interface `eth1` does not exist".to_string()
            ),
            (
                "static.routes[0]".to_string(),
                line("routes ="),
                "interface `eth2` does not exist".to_string()
            ),
            (
                "static.rules[0]".to_string(),
                line("rules ="),
                "interface `eth4` does not exist".to_string()
            ),
        ],
    );

    // Errors: an unknown group (with a suggestion), an unknown member, an empty group,
    // a duplicate group, and track_group on an instance's own lines.
    let group = "\n[[track_group]]\nname = \"G1\"\ngroup = [\"VI_1\"]\n";
    let e = error(&format!(
        "{BASE}{group}\n[static]\nroutes = [\"10.9.0.0/16 dev eth1 track_group G2\"]\n"
    ));
    assert_eq!(e.message, "no [[track_group]] is named `G2`");
    assert_eq!(e.hint.as_deref(), Some("did you mean `G1`?"));
    let e = error(&format!(
        "{BASE}\n[[track_group]]\nname = \"G1\"\ngroup = [\"VI_9\"]\n"
    ));
    assert_eq!(e.message, "no vrrp_instance is named `VI_9`");
    let e = error(&format!(
        "{BASE}\n[[track_group]]\nname = \"G1\"\ngroup = []\n"
    ));
    assert_eq!(e.message, "a track group needs at least one vrrp_instance");
    let e = error(&format!("{BASE}{group}{group}"));
    assert_eq!(e.message, "duplicate track_group name `G1`");
    for key in [
        "virtual_routes",
        "virtual_rules",
        "virtual_ipaddress_excluded",
    ] {
        let line = match key {
            "virtual_routes" => "10.9.0.0/16 dev eth1 track_group G1",
            "virtual_rules" => "from 10.9.0.0/16 table 9 preference 9 track_group G1",
            _ => "192.0.2.9/24 dev eth1 track_group G1",
        };
        let e = error(&format!("{BASE}{key} = [\"{line}\"]\n{group}"));
        assert!(
            e.message
                .contains("[static] addresses, routes and rules only"),
            "{key}: {e:?}"
        );
    }
}

#[test]
fn email_settings_load_with_keepalived_defaults_and_errors_point_at_the_value() {
    let loaded = load(
        "[global]\nnotification_email = [\"ops@example.com\"]\nsmtp_server = \"192.0.2.25 587\"\n\
         smtp_alert_vrrp = false\nno_email_faults = true\n\
         [[vrrp_instance]]\nname = \"VI_1\"\ninterface = \"lo\"\nvirtual_router_id = 1\nsmtp_alert = true\n",
    );
    let email = &loaded.config.global.email;
    assert_eq!(email.to, ["ops@example.com"]);
    assert_eq!(
        email.smtp_server,
        Some(SmtpServer {
            host: "192.0.2.25".into(),
            port: 587
        })
    );
    assert_eq!(email.connect_timeout, DEFAULT_SMTP_CONNECT_TIMEOUT);
    assert!(email.no_email_faults);
    // keepalived's precedence: own, then the VRRP/checker default, then smtp_alert;
    // real servers default to yes, the rest to no.
    assert!(email.vrrp_alerts(loaded.config.vrrp_instances[0].notify.smtp_alert));
    assert!(!email.vrrp_alerts(None));
    assert!(email.real_server_alerts(None));
    assert!(!email.virtual_server_alerts(None));
    let e = error("[global]\nsmtp_server = \"mail.example.com 99999\"\n");
    assert_eq!((e.key.as_str(), e.line), ("global.smtp_server", 2));
    assert!(
        e.hint.as_deref().unwrap_or("").contains("ADDRESS PORT"),
        "{e:?}"
    );
    let e =
        error("[global]\nnotification_email = [\"ops@example.com\", \"x\\r\\nRCPT TO:<a@b>\"]\n");
    assert!(e.message.contains("is not an e-mail address"), "{e:?}");
    let e = error("[global]\nsmtp_helo_name = \"a b\"\n");
    assert!(e.message.contains("is not a host name"), "{e:?}");
}

#[test]
fn notify_fifos_load_and_a_script_needs_its_fifo() {
    let loaded = load(
        "[global]\nnotify_fifo = \"/run/lb/notify.fifo\"\nnotify_fifo_script = \"/usr/local/bin/reader\"\n\
         lvs_notify_fifo = \"/run/lb/lvs.fifo\"\n",
    );
    let g = &loaded.config.global;
    assert_eq!(
        g.notify_fifo,
        Some(NotifyFifo {
            path: "/run/lb/notify.fifo".into(),
            script: Some("/usr/local/bin/reader".into())
        })
    );
    assert_eq!(g.vrrp_notify_fifo, None);
    assert_eq!(
        g.lvs_notify_fifo.as_ref().map(|f| f.script.clone()),
        Some(None)
    );
    let e = error("[global]\nvrrp_notify_fifo_script = \"/usr/local/bin/reader\"\n");
    assert_eq!(
        (e.key.as_str(), e.line),
        ("global.vrrp_notify_fifo_script", 2)
    );
    assert!(e.message.contains("without vrrp_notify_fifo"), "{e:?}");
    let e = error("[global]\nnotify_fifo = \"/run/x\"\nlvs_notify_fifo = \"/run/x\"\n");
    assert_eq!((e.key.as_str(), e.line), ("global.lvs_notify_fifo", 3));
    assert!(e.message.contains("is already the notify_fifo"), "{e:?}");
    let e = error("[global]\nnotify_fifo = \"relative.fifo\"\n");
    assert!(e.message.contains("absolute"), "{e:?}");
}

#[test]
fn track_process_loads_with_keepalived_defaults_and_checks_its_names() {
    let text = "[[vrrp_track_process]]\nname = \"proxy\"\nprocess = \"haproxy\"\nweight = -20\n\
                quorum_max = 4\ndelay = \"2s\"\n\
                [[vrrp_track_process]]\nname = \"cfg\"\nprocess = \"/usr/sbin/haproxy\"\n\
                parameters = [\"-f\", \"/etc/haproxy/haproxy.cfg\"]\nparam_match = \"initial\"\n\
                [[vrrp_instance]]\nname = \"VI_1\"\ninterface = \"lo\"\nvirtual_router_id = 1\n\
                track_process = [\"proxy\", { name = \"cfg\", weight = 10, reverse = true }]\n";
    let config = load(text).config;
    let [proxy, cfg] = &config.vrrp_track_processes[..] else {
        panic!("{:?}", config.vrrp_track_processes)
    };
    assert_eq!((proxy.quorum, proxy.quorum_max), (1, 4));
    assert_eq!(proxy.fork_delay, Duration::from_secs(2));
    assert_eq!(proxy.terminate_delay, Duration::from_secs(2));
    assert!(!proxy.full_command);
    assert!(cfg.full_command, "parameters imply the command line");
    assert_eq!(cfg.param_match, ParamMatch::Initial);
    assert_eq!(
        config.vrrp_instances[0].track_process,
        [
            TrackProcess {
                name: "proxy".into(),
                weight: -20,
                reverse: false
            },
            TrackProcess {
                name: "cfg".into(),
                weight: 10,
                reverse: true
            }
        ]
    );
    let e = error(&text.replace("\"proxy\", {", "\"prxy\", {"));
    assert!(
        e.message.contains("no vrrp_track_process is named `prxy`"),
        "{e:?}"
    );
    assert_eq!(e.hint.as_deref(), Some("did you mean `proxy`?"));
    let e = error("[[vrrp_track_process]]\nname = \"x\"\nprocess = \"a-very-long-daemon-name\"\n");
    assert!(e.message.contains("longer than the 15 characters"), "{e:?}");
    assert_eq!(e.line, 3);
    let e = error(
        "[[vrrp_track_process]]\nname = \"x\"\nprocess = \"nginx\"\nquorum = 3\nquorum_max = 2\n",
    );
    assert!(
        e.message.contains("quorum_max 2 is below quorum 3"),
        "{e:?}"
    );
}

#[test]
fn strict_mode_refuses_and_corrects_as_keepalived() {
    let base =
        "[global]\nvrrp_strict = true\n[[vrrp_instance]]\nname = \"VI_1\"\ninterface = \"lo\"\n\
                virtual_router_id = 1\n";
    // keepalived refuses an instance without VIPs, and unicast peers.
    let e = error(base);
    assert!(
        e.message.contains("needs at least one virtual_ipaddress"),
        "{e:?}"
    );
    let e = error(&format!(
        "{base}virtual_ipaddress = [\"192.0.2.1\"]\nunicast_src_ip = \"192.0.2.2\"\nunicast_peers = [\"192.0.2.3\"]\n"
    ));
    assert!(
        e.message
            .contains("unicast peers are not allowed in strict mode"),
        "{e:?}"
    );
    assert_eq!(e.line, 9);
    // What keepalived corrects is corrected, with a warning each.
    let loaded = load(&format!(
        "{base}virtual_ipaddress = [\"192.0.2.1\"]\nstate = \"MASTER\"\npriority = 150\n\
         preempt_delay = \"5s\"\nauthentication = {{ auth_type = \"PASS\", auth_pass = \"x\" }}\n"
    ));
    let vi = &loaded.config.vrrp_instances[0];
    assert!(vi.strict_mode);
    assert_eq!(vi.state, InitialState::Backup);
    assert_eq!(vi.preempt_delay, Duration::ZERO);
    assert_eq!(vi.authentication, None);
    let warnings: Vec<&str> = loaded.warnings.iter().map(|w| w.message.as_str()).collect();
    assert_eq!(warnings.len(), 3, "{warnings:?}");
    assert!(
        warnings[0].contains("must match being the address owner"),
        "{warnings:?}"
    );
    // An instance may opt out.
    let loaded = load(&format!("{base}strict_mode = false\n"));
    assert!(!loaded.config.vrrp_instances[0].strict_mode);
}

#[test]
fn accept_mode_defaults_as_keepalived() {
    let base = "[[vrrp_instance]]\nname = \"VI_1\"\ninterface = \"lo\"\nvirtual_router_id = 1\n\
                virtual_ipaddress = [\"192.0.2.1\"]\n";
    let vi = |extra: &str| {
        let loaded = load(&format!("{base}{extra}"));
        let vi = loaded.config.vrrp_instances[0].clone();
        let warnings: Vec<String> = loaded.warnings.into_iter().map(|w| w.message).collect();
        (vi.accept, vi.drops_vip_traffic(), warnings)
    };
    // Outside strict mode: accept (keepalived's default), unless no_accept is written.
    assert_eq!(vi(""), (true, false, vec![]));
    assert_eq!(vi("accept = false\n"), (false, true, vec![]));
    // Strict mode: no accept, except for the address owner, which always accepts.
    assert_eq!(vi("strict_mode = true\n"), (false, true, vec![]));
    assert!(!vi("strict_mode = true\npriority = 255\n").1);
    assert_eq!(
        vi("accept = false\npriority = 255\n"),
        (false, false, vec![])
    );
    // Strict VRRPv3 may accept; strict VRRPv2 may not (RFC 3768): reset, with a warning.
    assert_eq!(
        vi("strict_mode = true\nversion = 3\naccept = true\n"),
        (true, false, vec![])
    );
    let (accept, drops, warnings) = vi("strict_mode = true\naccept = true\n");
    assert!(!accept && drops);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("RFC 3768"), "{warnings:?}");
}

#[test]
fn use_vmac_names_the_macvlan_as_keepalived() {
    let base = "[[vrrp_instance]]\nname = \"VI_1\"\ninterface = \"lo\"\nvirtual_router_id = 51\n";
    let vi = |extra: &str| load(&format!("{base}{extra}")).config.vrrp_instances[0].clone();
    assert_eq!(vi("use_vmac = true\n").use_vmac.as_deref(), Some("vrrp.51"));
    assert_eq!(
        vi("use_vmac = \"vmac1\"\n").use_vmac.as_deref(),
        Some("vmac1")
    );
    assert_eq!(vi("use_vmac = false\n").use_vmac, None);
    assert!(vi("use_vmac = true\nvmac_xmit_base = true\n").vmac_xmit_base);
    let e = error(&format!("{base}use_vmac = \"a/b\"\n"));
    assert!(e.message.contains("not a valid interface name"), "{e:?}");
    // IPv6 instances too (VRRPv3), with keepalived's name.
    let v6 = vi("use_vmac = true\nversion = 3\nvirtual_ipaddress = [\"2001:db8::1\"]\n");
    assert_eq!(v6.use_vmac.as_deref(), Some("vrrp.51"));
}
