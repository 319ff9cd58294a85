//! What docs/prometheus ships is checked against the daemon: the alert rules pass their
//! `promtool test rules` unit tests, and every metric the dashboard and the rules query
//! is one the daemon exports (from a render of a snapshot with every part present).
//! Needs `promtool` (Debian `prometheus`, `cargo xtask setup`); no root.

use std::{
    collections::{BTreeMap, BTreeSet},
    process::Command,
};

use lb_daemon::daemon::{
    metrics::render,
    snapshot::{
        AttachmentSnapshot, BackendSnapshot, BgpSessionSnapshot, BgpSnapshot, ConnFilterSnapshot,
        HealthCounters, HeartbeatPathSnapshot, InstanceSnapshot, ServiceSnapshot, Snapshot,
        SyncPeerSnapshot, SyncSnapshot, TableSnapshot, VipSnapshot,
    },
};
use lb_tests::prometheus::{dashboard_exprs, docs_dir};

fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(docs_dir())
        .output()
        .expect("promtool is missing: run `cargo xtask setup` (Debian package prometheus)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?}:\n{said}");
    said
}

#[test]
fn alert_rules_pass_their_unit_tests() {
    promtool(&["check", "rules", "alerts.yml"]);
    let said = promtool(&["test", "rules", "alerts_test.yml"]);
    assert!(said.contains("SUCCESS"), "{said}");
}

/// Every part of a snapshot present, so every family is rendered.
fn full_snapshot() -> Snapshot {
    Snapshot {
        router_id: "lb1".into(),
        dataplane: "xdp".into(),
        instances: vec![InstanceSnapshot {
            name: "VI_1".into(),
            state: "MASTER".into(),
            state_code: 2,
            adverts_dropped: BTreeMap::from([("auth".to_string(), 1)]),
            heartbeat_paths: vec![HeartbeatPathSnapshot {
                path: "eth1".into(),
                up: true,
                lost: 1,
            }],
            ..Default::default()
        }],
        services: vec![ServiceSnapshot {
            address: "10.0.0.10".into(),
            port: 80,
            protocol: "TCP".into(),
            lb_kind: "NAT".into(),
            nat_connections: Some(1),
            backends: vec![BackendSnapshot {
                address: "10.0.1.1".into(),
                port: 80,
                connections: Some(1),
                ..Default::default()
            }],
            ..Default::default()
        }],
        dataplane_drops: BTreeMap::from([("no_backend".to_string(), 1)]),
        health: HealthCounters {
            duration_buckets: vec![(0.1, 1)],
            ..Default::default()
        },
        tables: vec![TableSnapshot {
            table: "nat".into(),
            entries: 1,
            capacity: 2,
        }],
        xdp_attachments: vec![AttachmentSnapshot {
            interface: "eth0".into(),
            mode: "native".into(),
        }],
        conn_filter: Some(ConnFilterSnapshot {
            bits_set: 1,
            bits: 64,
        }),
        sync: Some(SyncSnapshot {
            node_id: 7,
            transport: "unicast".into(),
            vrrp_instance: "VI_1".into(),
            sending: true,
            not_sent: BTreeMap::from([("rate_limited".to_string(), 1)]),
            skipped: BTreeMap::from([("local_newer".to_string(), 1)]),
            peers: vec![SyncPeerSnapshot {
                address: "10.0.0.2".into(),
                node_id: 9,
                ..Default::default()
            }],
            ..Default::default()
        }),
        bgp: Some(BgpSnapshot {
            interface: "lb-vip0".into(),
            bird: "ok".into(),
            sessions: vec![BgpSessionSnapshot {
                name: "router_v4".into(),
                up: true,
                info: "Established".into(),
            }],
            vips: vec![VipSnapshot {
                vip: "198.51.100.10".into(),
                announced: true,
                state: "announced".into(),
            }],
            ..Default::default()
        }),
        email: Default::default(),
        notify_fifo: Default::default(),
        bfd: vec![lb_daemon::daemon::snapshot::BfdSessionSnapshot {
            name: "peer".into(),
            neighbor: "10.0.0.2".into(),
            detection_time_us: Some(30_000),
            ..Default::default()
        }],
        bfd_drops: BTreeMap::from([("bad_ttl".to_string(), 1)]),
    }
}

/// The sample names of the exposition (a histogram's `_bucket`, `_sum`, `_count`).
fn exported() -> BTreeSet<String> {
    render(&full_snapshot())
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect()
}

/// The `lb_` identifiers of a PromQL expression (quoted label values skipped).
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut word = String::new();
    let mut quoted = false;
    for c in expr.chars().chain([' ']) {
        if c == '"' {
            quoted = !quoted;
        } else if !quoted && (c.is_ascii_alphanumeric() || c == '_' || c == ':') {
            word.push(c);
            continue;
        }
        if word.starts_with("lb_") {
            names.insert(word.clone());
        }
        word.clear();
    }
    names
}

#[test]
fn the_dashboard_queries_only_exported_metrics() {
    let all = dashboard_exprs().expect("docs/prometheus/dashboard.json");
    assert!(all.len() >= 15, "only {} queries", all.len());
    let exported = exported();
    let mut used = BTreeSet::new();
    for expr in &all {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "a query without a metric: {expr}");
        for name in names {
            assert!(
                exported.contains(&name),
                "dashboard query `{expr}` names {name}, which the daemon does not export; it exports {exported:?}"
            );
            used.insert(name);
        }
    }
    // And the other way: each exported family is on the dashboard.
    let families: BTreeSet<String> = render(&full_snapshot())
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(str::to_string)
        .collect();
    for family in families {
        assert!(
            used.iter().any(|u| u.starts_with(&family)),
            "{family} is on no dashboard panel"
        );
    }
}

#[test]
fn the_alert_rules_query_only_exported_metrics() {
    let text = std::fs::read_to_string(docs_dir().join("alerts.yml")).expect("alerts.yml");
    let exported = exported();
    let exprs: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("expr:"))
        .collect();
    let rules = text
        .lines()
        .filter(|l| l.trim().starts_with("- alert:"))
        .count();
    assert!(rules >= 9, "only {rules} rules");
    assert_eq!(exprs.len(), rules, "one expression per rule");
    for expr in exprs {
        for name in metric_names(expr) {
            assert!(
                exported.contains(&name),
                "alert `{expr}` names {name}, which the daemon does not export"
            );
        }
    }
}

#[test]
fn metric_names_skip_functions_labels_and_values() {
    assert_eq!(
        metric_names(r#"sum by (le) (rate(lb_a_bucket{mode="lb_x"}[5m])) / lb_b"#),
        BTreeSet::from(["lb_a_bucket".to_string(), "lb_b".to_string()])
    );
}
