//! The split-brain keys of `[[vrrp_instance]]`: values, defaults and diagnostics.

use std::time::Duration;

use super::{at, error, load, rejected, BASE};
use crate::config::*;

#[test]
fn off_by_default_on_with_every_key() {
    let config = load(BASE).config;
    assert_eq!(config.vrrp_instances[0].split_brain, None);
    let text = format!(
        "{BASE}advert_int = 2\nsplit_brain_check = true\nsplit_brain_check_interval = \"500ms\"\n\
         split_brain_resolution = \"step_down\"\nnotify_split_brain = \"/etc/lb/fence.sh\"\n"
    );
    let config = load(&text).config;
    assert_eq!(
        config.vrrp_instances[0].split_brain,
        Some(SplitBrainCheck {
            interval: Duration::from_millis(500),
            resolution: SplitBrainResolution::StepDown,
            notify: Some("/etc/lb/fence.sh".into()),
        })
    );
    // Defaults: the advert interval, alert only.
    let text = format!("{BASE}advert_int = 2\nsplit_brain_check = true\n");
    assert_eq!(
        load(&text).config.vrrp_instances[0].split_brain,
        Some(SplitBrainCheck {
            interval: Duration::from_secs(2),
            resolution: SplitBrainResolution::Alert,
            notify: None,
        })
    );
}

#[test]
fn settings_without_the_check_and_bad_values_are_errors() {
    let e = error(&format!("{BASE}split_brain_resolution = \"step_down\"\n"));
    assert_eq!(at(&e), (6, 26));
    assert_eq!(e.key, "vrrp_instance \"VI_1\".split_brain_resolution");
    assert_eq!(e.message, "has no effect: split-brain detection is off");
    assert_eq!(
        e.hint.as_deref(),
        Some("add `split_brain_check = true` to this instance, or remove the key")
    );
    let e = error(&format!(
        "{BASE}split_brain_check = true\nsplit_brain_resolution = \"stepdown\"\n"
    ));
    assert_eq!(at(&e), (7, 26));
    assert_eq!(e.message, "unknown value `stepdown`");
    assert_eq!(e.hint.as_deref(), Some("did you mean `step_down`?"));
    let e = error(&format!(
        "{BASE}split_brain_check = true\nsplit_brain_check_interval = \"10ms\"\n"
    ));
    assert_eq!(at(&e), (7, 30));
    assert!(
        e.message.starts_with("must be between 100ms and"),
        "{}",
        e.message
    );
    let errors = rejected(&format!("{BASE}split_brain_chek = true\n")).errors;
    assert_eq!(
        errors[0].hint.as_deref(),
        Some("did you mean `split_brain_check`?")
    );
}

#[test]
fn arbiter_values_defaults_and_errors() {
    let text = format!("{BASE}arbiter = {{ address = \"198.18.0.1\" }}\n");
    assert_eq!(
        load(&text).config.vrrp_instances[0].arbiter,
        Some(Arbiter {
            address: "198.18.0.1".parse().unwrap(),
            check: ArbiterCheck::Icmp,
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            rise: 1,
            fall: 1,
        })
    );
    let text = format!(
        "{BASE}arbiter = {{ address = \"2001:db8::1\", check = \"tcp\", port = 443, \
         interval = \"500ms\", timeout = \"200ms\", rise = 2, fall = 3 }}\n"
    );
    let a = load(&text).config.vrrp_instances[0]
        .arbiter
        .clone()
        .unwrap();
    assert_eq!(a.check, ArbiterCheck::Tcp { port: 443 });
    assert_eq!(
        (a.interval, a.timeout, a.rise, a.fall),
        (Duration::from_millis(500), Duration::from_millis(200), 2, 3)
    );
    let e = error(&format!(
        "{BASE}arbiter = {{ address = \"198.18.0.1\", check = \"tcp\" }}\n"
    ));
    assert_eq!(e.message, "missing required key `port`");
    assert_eq!(e.key, "vrrp_instance \"VI_1\".arbiter");
    assert_eq!(at(&e), (6, 11));
    let e = error(&format!(
        "{BASE}arbiter = {{ address = \"198.18.0.1\", port = 80 }}\n"
    ));
    assert_eq!(e.message, "a port needs `check = \"tcp\"`");
    let errors = rejected(&format!("{BASE}arbiter = {{ adress = \"198.18.0.1\" }}\n")).errors;
    assert_eq!(errors[0].message, "missing required key `address`");
    assert_eq!(errors[1].hint.as_deref(), Some("did you mean `address`?"));
    let errors = rejected(&format!(
        "{BASE}arbiter = {{ address = \"x\", chek = \"icmp\" }}\n"
    ))
    .errors;
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert_eq!(errors[1].hint.as_deref(), Some("did you mean `check`?"));
}

#[test]
fn heartbeat_paths_values_and_errors() {
    let text = format!(
        "{BASE}heartbeat_paths = [{{ interface = \"eth1\" }}, \
         {{ interface = \"eth2\", unicast_src_ip = \"10.99.0.1\", unicast_peers = [\"10.99.0.2\"] }}]\n"
    );
    let paths = load(&text).config.vrrp_instances[0].heartbeat_paths.clone();
    assert_eq!(
        paths,
        vec![
            HeartbeatPath {
                interface: "eth1".into(),
                unicast_src_ip: None,
                unicast_peers: Vec::new(),
            },
            HeartbeatPath {
                interface: "eth2".into(),
                unicast_src_ip: Some("10.99.0.1".parse().unwrap()),
                unicast_peers: vec!["10.99.0.2".parse().unwrap()],
            },
        ]
    );
    let e = error(&format!(
        "{BASE}heartbeat_paths = [{{ interface = \"eth1\", unicast_peers = [\"2001:db8::2\"] }}]\n"
    ));
    assert_eq!(
        e.message,
        "address 2001:db8::2 is not of the instance's family"
    );
    assert_eq!(at(&e), (6, 20));
    let e = error(&format!(
        "{BASE}heartbeat_paths = [{{ interface = \"eth0\" }}]\n"
    ));
    assert_eq!(e.message, "the instance already multicasts on eth0");
}

#[test]
fn a_sync_groups_arbiter_serves_members_without_their_own() {
    let text = format!(
        "{BASE}\n[[vrrp_instance]]\nname = \"VI_2\"\ninterface = \"eth0\"\nvirtual_router_id = 52\n\
         virtual_ipaddress = [\"198.18.0.101\"]\narbiter = {{ address = \"198.18.0.2\" }}\n\n\
         [[vrrp_sync_group]]\nname = \"G\"\ngroup = [\"VI_1\", \"VI_2\"]\n\
         arbiter = {{ address = \"198.18.0.1\", check = \"tcp\", port = 443 }}\n"
    );
    let config = load(&text).config;
    let of = |i: usize| {
        config
            .arbiter_of(&config.vrrp_instances[i])
            .map(|a| a.address)
    };
    assert_eq!(of(0), Some("198.18.0.1".parse().unwrap()), "the group's");
    assert_eq!(of(1), Some("198.18.0.2".parse().unwrap()), "its own");
    let e = error(&format!(
        "{BASE}\n[[vrrp_sync_group]]\nname = \"G\"\ngroup = [\"VI_1\"]\narbiter = {{ address = \"x\" }}\n"
    ));
    assert_eq!(e.key, "vrrp_sync_group \"G\".arbiter.address");
}
