//! `[[bfd_instance]]`, `track_bfd` (instances and sync groups), `bfd_check`.

use super::*;
use crate::config::check::{BfdCheck, CheckKind};

const VI: &str = r#"
[[vrrp_instance]]
name = "VI_1"
interface = "eth0"
virtual_router_id = 51
virtual_ipaddress = ["198.18.0.100"]
"#;

#[test]
fn bfd_instance_defaults_are_keepalived_s() {
    let c = load(&format!(
        "[[bfd_instance]]\nname = \"peer\"\nneighbor_ip = \"10.0.0.2\"\n{VI}"
    ))
    .config;
    let b = &c.bfd_instances[0];
    assert_eq!(b.neighbor_ip, ip("10.0.0.2"));
    assert_eq!(b.min_rx, Duration::from_millis(10));
    assert_eq!(b.min_tx, Duration::from_millis(10));
    assert_eq!(b.idle_tx, Duration::from_secs(1));
    assert_eq!(b.multiplier, 5);
    assert_eq!(b.ttl, 255);
    assert!(b.vrrp && b.checker && !b.passive);
    let v6 = load(&format!(
        "[[bfd_instance]]\nname = \"p6\"\nneighbor_ip = \"fe80::2\"\n{VI}"
    ))
    .config;
    assert_eq!(v6.bfd_instances[0].ttl, 64, "keepalived's IPv6 default");
}

#[test]
fn bfd_timers_are_milliseconds_or_durations() {
    let c = load(&format!(
        "[[bfd_instance]]\nname = \"p\"\nneighbor_ip = \"10.0.0.2\"\nmin_rx = 2.5\nmin_tx = \"20ms\"\nidle_tx = 2000\nmultiplier = 3\nvrrp = true\n{VI}"
    ))
    .config;
    let b = &c.bfd_instances[0];
    assert_eq!(b.min_rx, Duration::from_micros(2500));
    assert_eq!(b.min_tx, Duration::from_millis(20));
    assert_eq!(b.idle_tx, Duration::from_secs(2));
    assert_eq!(b.multiplier, 3);
    assert!(b.vrrp && !b.checker, "`vrrp` alone: VRRP only");
}

#[test]
fn bad_bfd_values_are_errors_at_the_key() {
    let e = error(&format!(
        "[[bfd_instance]]\nname = \"p\"\nneighbor_ip = \"10.0.0.2\"\nidle_tx = 500\n{VI}"
    ));
    assert_eq!(at(&e), (4, 11), "{e:?}");
    assert!(e.message.contains("between"), "{e:?}");
    let e = error(&format!(
        "[[bfd_instance]]\nname = \"p\"\nneighbor_ip = \"10.0.0.2\"\nmultiplier = 0\n{VI}"
    ));
    assert_eq!(e.line, 4);
    let e = error(&format!(
        "[[bfd_instance]]\nname = \"p\"\nneighbor_ip = \"10.0.0.2\"\nttl = 10\nmax_hops = 20\n{VI}"
    ));
    assert!(e.message.contains("above ttl"), "{e:?}");
    let e = error(&format!(
        "[[bfd_instance]]\nname = \"p\"\nneighbor_ip = \"10.0.0.2\"\nsource_ip = \"fe80::1\"\n{VI}"
    ));
    assert!(e.message.contains("family"), "{e:?}");
    let e = error(&format!("[[bfd_instance]]\nname = \"p\"\n{VI}"));
    assert!(e.message.contains("neighbor_ip"), "{e:?}");
}

#[test]
fn duplicate_neighbor_and_name_are_errors() {
    let e = error(&format!(
        "[[bfd_instance]]\nname = \"a\"\nneighbor_ip = \"10.0.0.2\"\n\n[[bfd_instance]]\nname = \"b\"\nneighbor_ip = \"10.0.0.2\"\n{VI}"
    ));
    assert_eq!(e.line, 6, "{e:?}");
    assert!(
        e.message
            .contains("neighbor_ip 10.0.0.2 of bfd_instance `a`"),
        "{e:?}"
    );
    let e = error(&format!(
        "[[bfd_instance]]\nname = \"a\"\nneighbor_ip = \"10.0.0.2\"\n\n[[bfd_instance]]\nname = \"a\"\nneighbor_ip = \"10.0.0.3\"\n{VI}"
    ));
    assert!(e.message.contains("a"), "{e:?}");
}

#[test]
fn track_bfd_takes_the_instance_weight_and_sync_groups_apply_to_members() {
    let c = load(&format!(
        "[[bfd_instance]]\nname = \"peer\"\nneighbor_ip = \"10.0.0.2\"\nweight = -20\n\n\
         [[bfd_instance]]\nname = \"gw\"\nneighbor_ip = \"10.0.0.1\"\n\
         {VI}track_bfd = [\"peer\"]\n\n\
         [[vrrp_sync_group]]\nname = \"G\"\ngroup = [\"VI_1\"]\ntrack_bfd = [{{ name = \"gw\", weight = 5, reverse = true }}]\n"
    ))
    .config;
    let t = &c.vrrp_instances[0].track_bfd;
    assert_eq!(t.len(), 2, "{t:?}");
    assert_eq!(
        (t[0].name.as_str(), t[0].weight, t[0].reverse),
        ("peer", -20, false)
    );
    assert_eq!(
        (t[1].name.as_str(), t[1].weight, t[1].reverse),
        ("gw", 5, true)
    );
}

#[test]
fn unknown_bfd_names_are_errors_with_a_suggestion() {
    let e = error(&format!(
        "[[bfd_instance]]\nname = \"peer\"\nneighbor_ip = \"10.0.0.2\"\n{VI}track_bfd = [\"pear\"]\n"
    ));
    assert!(
        e.message.contains("no bfd_instance is named `pear`"),
        "{e:?}"
    );
    assert_eq!(e.hint.as_deref(), Some("did you mean `peer`?"));
    let vs = "[[virtual_server]]\naddress = \"10.1.0.1\"\nport = 80\n\
              [[virtual_server.real_server]]\naddress = \"10.1.0.2\"\nbfd_check = { name = \"rs\" }\n";
    let c = load(&format!(
        "[[bfd_instance]]\nname = \"rs\"\nneighbor_ip = \"10.1.0.2\"\nchecker = true\n{vs}"
    ))
    .config;
    assert_eq!(
        c.virtual_servers[0].real_servers[0].checks[0].kind,
        CheckKind::Bfd(BfdCheck { name: "rs".into() })
    );
    let e = error(vs);
    assert!(e.message.contains("no bfd_instance is named `rs`"), "{e:?}");
    let e = error(&format!(
        "[[bfd_instance]]\nname = \"rs\"\nneighbor_ip = \"10.1.0.2\"\nvrrp = true\n{vs}"
    ));
    assert!(e.message.contains("VRRP only"), "{e:?}");
}
