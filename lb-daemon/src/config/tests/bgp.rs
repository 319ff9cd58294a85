//! `[bgp]` and `announce = "bgp"`: values, defaults and every diagnostic with its position.

use std::path::PathBuf;
use std::time::Duration;

use super::{at, error, ip, load, rejected, BASE};
use crate::config::*;

/// A virtual server announced by BGP (lines 1–6) after `before`, with `extra` keys.
fn announced(before: &str, extra: &str) -> String {
    format!(
        "{before}[[virtual_server]]\naddress = \"198.51.100.10\"\nport = 80\nannounce = \"bgp\"\n{extra}\
         [[virtual_server.real_server]]\naddress = \"10.0.1.1\"\n"
    )
}

const BGP: &str = "[bgp]\ninterfaces = [\"eth0\"]\n";

#[test]
fn every_key_and_the_defaults() {
    let text = announced(
        "[bgp]\ninterface = \"vips0\"\nbird_socket = \"/run/bird/other.ctl\"\nhold_down = \"10s\"\n\
         drain_timeout = 60\ndrain_idle = \"500ms\"\ninterfaces = [\"eth0\", \"eth1\"]\n",
        "",
    );
    let config = load(&text).config;
    assert_eq!(
        config.bgp,
        Bgp {
            interface: "vips0".into(),
            bird_socket: PathBuf::from("/run/bird/other.ctl"),
            hold_down: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(60),
            drain_idle: Duration::from_millis(500),
            interfaces: vec!["eth0".into(), "eth1".into()],
        }
    );
    assert_eq!(config.virtual_servers[0].announce, Announce::Bgp);
    assert_eq!(config.bgp_servers().count(), 1);

    let defaults = load(&announced(BGP, "")).config.bgp;
    assert_eq!(defaults.interface, "lb-vip0");
    assert_eq!(defaults.bird_socket, PathBuf::from("/run/bird/bird.ctl"));
    assert_eq!(
        (
            defaults.hold_down,
            defaults.drain_timeout,
            defaults.drain_idle
        ),
        (
            Duration::from_secs(5),
            Duration::from_secs(30),
            Duration::from_secs(3)
        )
    );
}

#[test]
fn without_announce_nothing_changes() {
    let text = format!(
        "{BASE}[[virtual_server]]\naddress = \"198.18.0.100\"\nport = 80\n\
         [[virtual_server.real_server]]\naddress = \"10.0.1.1\"\n"
    );
    let loaded = load(&text);
    assert_eq!(loaded.config.virtual_servers[0].announce, Announce::Vrrp);
    assert_eq!(loaded.config.bgp, Bgp::default());
    assert!(loaded.warnings.is_empty(), "{:#?}", loaded.warnings);
}

#[test]
fn an_announced_vip_gets_no_vrrp_warning_and_its_own_interfaces_suffice() {
    let loaded = load(&announced("", "interfaces = [\"eth2\"]\n"));
    assert!(loaded.warnings.is_empty(), "{:#?}", loaded.warnings);
    assert_eq!(loaded.config.virtual_servers[0].interfaces, vec!["eth2"]);
}

#[test]
fn interfaces_are_required_somewhere() {
    // No [bgp]: the error points at announce.
    let e = error(&announced("", ""));
    assert_eq!(at(&e), (4, 12), "{e}");
    assert!(e.message.contains("needs the interfaces"), "{e}");
    assert!(
        e.hint
            .as_deref()
            .unwrap()
            .contains("interfaces = [\"eth0\"]"),
        "{e:?}"
    );
    // A [bgp] without them: the error points at the section.
    let e = error(&announced("[bgp]\nhold_down = \"1s\"\n", ""));
    assert_eq!(e.line, 1, "{e}");
}

#[test]
fn a_vip_held_by_vrrp_cannot_be_announced() {
    let text = format!(
        "{BASE}{BGP}[[virtual_server]]\naddress = \"198.18.0.100\"\nport = 80\nannounce = \"bgp\"\n\
         [[virtual_server.real_server]]\naddress = \"10.0.1.1\"\n"
    );
    let e = error(&text);
    assert_eq!(at(&e), (11, 12), "{e}");
    assert_eq!(
        e.message,
        "198.18.0.100 is announced by BGP and also held by vrrp_instance `VI_1`"
    );
}

#[test]
fn plain_nat_is_refused_full_nat_accepted() {
    let e = error(&announced(BGP, "lb_kind = \"NAT\"\n"));
    assert_eq!(at(&e), (6, 12), "{e}");
    assert!(
        e.hint
            .as_deref()
            .unwrap()
            .starts_with("in a BGP tier replies must return through the node that translated them"),
        "{e:?}"
    );
    // A real's own NAT (IPVS) is as plain.
    let text =
        announced(&format!("[global]\ndataplane = \"ipvs\"\n{BGP}"), "") + "lb_kind = \"NAT\"\n";
    let e = error(&text);
    assert_eq!(at(&e), (8, 12), "{e}");
    assert!(e.message.contains("reached by plain NAT"), "{e:?}");
    let full_nat = announced(BGP, "lb_kind = \"NAT\"\nsnat_address = \"10.90.0.11\"\n");
    assert_eq!(
        load(&full_nat).config.virtual_servers[0].snat_address,
        Some(ip("10.90.0.11"))
    );
}

#[test]
fn bad_values() {
    let e = error(&announced(BGP, "").replace("\"bgp\"", "\"bgpp\""));
    assert_eq!((e.line, e.message.as_str()), (6, "unknown value `bgpp`"));
    assert!(e.hint.as_deref().unwrap().contains("bgp"), "{e:?}");

    let e = error(&announced(
        "[bgp]\ninterface = \"a/b\"\ninterfaces = [\"eth0\"]\n",
        "",
    ));
    assert_eq!(at(&e), (2, 13), "{e}");
    assert_eq!(e.message, "`a/b` is not a valid interface name");

    let errors = rejected(&announced(
        "[bgp]\nbird_socket = \"bird.ctl\"\nhold_down = \"soon\"\ninterfaces = [\"eth0\"]\nspeaker = 1\n",
        "",
    ))
    .errors;
    let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
    assert_eq!(lines, vec![2, 3, 5], "{errors:#?}");
}

#[test]
fn bgp_interfaces_must_exist_when_something_is_announced() {
    let config = load(&announced(
        "[bgp]\ninterfaces = [\"eth0\", \"nosuch0\"]\n",
        "",
    ))
    .config;
    let errors = check_interfaces(&config, |name| name == "eth0");
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(at(&errors[0]), (2, 23));
    assert_eq!(errors[0].message, "interface `nosuch0` does not exist");
    // Nothing announced: [bgp].interfaces are not used, so not checked.
    let text = format!(
        "[bgp]\ninterfaces = [\"nosuch0\"]\n{BASE}[[virtual_server]]\naddress = \"198.18.0.100\"\n\
         port = 80\n[[virtual_server.real_server]]\naddress = \"10.0.1.1\"\n"
    );
    assert!(check_interfaces(&load(&text).config, |name| name == "eth0").is_empty());
}
