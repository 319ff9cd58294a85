//! Flow-state sync in the active-active tier (issue 14): 3 LB nodes announcing the VIP by
//! BGP, the router spreading flows by ECMP, every node syncing its new flows to the other
//! two (`[sync]` without a VRRP instance). At the same moment a backend is removed, a new
//! one comes up and an LB node is cut off: the flows of the lost node land on the others
//! (and the router's rehash moves some between the survivors too) while the backend set
//! changes, so their Maglev choice there is often the new backend. With sync every
//! long-lived connection to the remaining backends survives; without, the test reports
//! how many break (and checks that some do: sync is what saves them).
//!
//! Needs root, BIRD 2, the eBPF object (`LB_EBPF_OBJECT`) and `cargo build -p lb-daemon`.

use std::time::Duration;

use lb_daemon::dataplane::ForwardMode;
use lb_daemon::lab::bgp_tier::{check_tracked, DaemonSettings, Tier, TierService, VIP_V4};
use lb_tests::{daemon_lab::status_json, vrrp_lab::daemon_bin};

const FAST: Duration = Duration::from_secs(1);
const SLOW: Duration = Duration::from_secs(20);
const LONG_LIVED: usize = 60;

/// 3 nodes; backends 1-3 serving, backend 4 configured but down.
fn tier(sync: bool) -> Tier {
    let mut tier = Tier::new(3, 4).expect("tier");
    tier.serve(&[VIP_V4], false).expect("backends");
    tier.backends[3].stop_server();
    let service = TierService::new(VIP_V4, ForwardMode::Dr).expect("service");
    let settings = DaemonSettings {
        sync,
        ..DaemonSettings::default()
    };
    tier.start_daemons(&daemon_bin(), &[service], &settings)
        .expect("daemons");
    tier.wait_serving(VIP_V4, SLOW).unwrap();
    tier
}

/// Whether node `i`'s data plane sends new connections to `backend` (an address): health
/// checking found it up and the map owner has programmed it.
fn forwarding(tier: &Tier, i: usize, backend: &str) -> bool {
    status_json(&tier.socket(i))["services"][0]["backends"]
        .as_array()
        .is_some_and(|b| {
            b.iter().any(|b| {
                b["address"] == backend && b["forwarding_weight"].as_u64().is_some_and(|w| w > 0)
            })
        })
}

/// Flows the nodes installed from their peers, in all.
fn installed(tier: &Tier) -> u64 {
    (0..tier.nodes.len())
        .map(|i| {
            status_json(&tier.socket(i))["sync"]["installed"]
                .as_u64()
                .unwrap_or(0)
        })
        .sum()
}

/// Returns (connections to the remaining backends, how many of them broke, details).
fn node_loss_during_a_backend_change(sync: bool) -> (usize, Vec<String>, Tier) {
    let mut tier = tier(sync);
    let names = tier.node_names();
    let mut conns = tier.open_tracked(VIP_V4, LONG_LIVED).expect("long-lived");
    assert!(conns.iter().any(|c| c.node == 2), "no connection via lb3");
    if sync {
        // Each tracked flow is installed on the two nodes that did not schedule it.
        let synced = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(100));
            installed(&tier) >= 2 * LONG_LIVED as u64
        });
        assert!(
            synced,
            "flows synced: {} installed\n{}",
            installed(&tier),
            tier.logs()
        );
    }
    // At the same moment: backend 2 goes away, backend 4 comes up, lb3 is cut off.
    let failed = tier.backends[1].name();
    let (gone, new) = (tier.backends[1].v4.clone(), tier.backends[3].v4.clone());
    tier.backends[1].stop_server();
    tier.backends[3].start_server().expect("backend 4");
    tier.cut(2).unwrap();
    tier.wait_nexthops(VIP_V4, &[0, 1], FAST).unwrap();
    // Both remaining nodes forward to the new backend set.
    let changed = (0..150).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        (0..2).all(|i| forwarding(&tier, i, &new) && !forwarding(&tier, i, &gone))
    });
    assert!(
        changed,
        "backend set changed on lb1 and lb2\n{}",
        tier.logs()
    );
    let remaining = conns.iter().filter(|c| c.backend != failed).count();
    let s = check_tracked(&mut conns, &names);
    let broken: Vec<String> = s
        .lost
        .into_iter()
        .filter(|l| !l.contains(&format!(", {failed})")))
        .collect();
    (remaining, broken, tier)
}

#[test]
fn with_sync_connections_to_the_remaining_backends_all_survive() {
    let (remaining, broken, tier) = node_loss_during_a_backend_change(true);
    assert!(remaining > 0);
    assert!(
        broken.is_empty(),
        "{} of {remaining} connections to the remaining backends broke despite sync: {broken:?}\n{}",
        broken.len(),
        tier.logs()
    );
}

#[test]
fn without_sync_the_tier_reports_how_many_break() {
    let (remaining, broken, _tier) = node_loss_during_a_backend_change(false);
    eprintln!(
        "without sync: {} of {remaining} connections to the remaining backends broke: {broken:?}",
        broken.len()
    );
    assert!(
        !broken.is_empty(),
        "none broke: the scenario did not move any flow to another backend"
    );
}
