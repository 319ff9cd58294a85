//! The active-active tier without lb-daemon yet: BIRD 2 on a router and on 3 LB nodes in
//! network namespaces, VIPs put on the nodes' VIP interfaces by hand. Checks that the router
//! spreads each VIP over the nodes (ECMP), that a withdrawn address and a cut link (BFD)
//! drop the node's next hop within a second, and that a returning node is used again.
//!
//! Needs root, iproute2 and BIRD 2 (/usr/sbin/bird); fails (rather than skips) without them.

use std::time::Duration;

use lb_daemon::bgp::bird::SessionState;
use lb_daemon::lab::bgp_tier::Tier;

/// Withdrawals and BFD must act well within this.
const FAST: Duration = Duration::from_secs(1);
/// Getting a session back (BGP reconnect after `error wait time 1`) takes a few seconds.
const RECOVER: Duration = Duration::from_secs(15);

fn failover(vip: &str) {
    let tier = Tier::new(3, 3).unwrap();
    for backend in &tier.backends {
        backend.hold_vip(vip).unwrap();
    }
    for node in &tier.nodes {
        node.add_vip(vip).unwrap();
    }
    tier.wait_nexthops(vip, &[0, 1, 2], Duration::from_secs(5))
        .unwrap();

    // Address removed from one node: withdrawn at once.
    tier.nodes[1].remove_vip(vip).unwrap();
    let took = tier.wait_nexthops(vip, &[0, 2], FAST).unwrap();
    eprintln!("{vip}: withdrawal seen on the router after {took:?}");
    tier.nodes[1].add_vip(vip).unwrap();
    tier.wait_nexthops(vip, &[0, 1, 2], FAST).unwrap();

    // Node 2's link cut: only BFD can tell the router.
    tier.cut(2).unwrap();
    let took = tier.wait_nexthops(vip, &[0, 1], FAST).unwrap();
    eprintln!("{vip}: cut link noticed after {took:?}");
    tier.restore(2).unwrap();
    let took = tier.wait_nexthops(vip, &[0, 1, 2], RECOVER).unwrap();
    eprintln!("{vip}: restored node back after {took:?}");
}

#[test]
fn ipv4_vip_is_spread_and_follows_nodes() {
    failover("198.51.100.10");
}

#[test]
fn ipv6_vip_is_spread_and_follows_nodes() {
    failover("2001:db8:100::10");
}

#[test]
fn sessions_are_read_through_the_bird_client() {
    let tier = Tier::new(2, 0).unwrap();
    let node = &tier.nodes[0];
    let sessions = node.bird.sessions().unwrap();
    let names: Vec<&str> = sessions.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["router_v4", "router_v6"]);
    for s in &sessions {
        assert_eq!(s.state, SessionState::Up, "{s:?}");
        assert_eq!(s.info, "Established");
    }
    let on_router = tier.router_bird.sessions().unwrap();
    assert_eq!(on_router.len(), 4, "{on_router:?}");

    // The router's link to node 0 cut: BFD takes both of node 0's sessions down.
    tier.cut(0).unwrap();
    let deadline = std::time::Instant::now() + FAST;
    loop {
        let sessions = node.bird.sessions().unwrap();
        if sessions.iter().all(|s| s.state == SessionState::Down) {
            assert!(sessions.iter().all(|s| !s.info.starts_with("Established")));
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still up: {sessions:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    tier.restore(0).unwrap();
    tier.wait_sessions_up(RECOVER).unwrap();
}

/// docs/bgp.md shows the configurations the tests run (set LB_PRINT_BIRD_CONF=1 to print
/// them after a change).
#[test]
fn documented_configs_are_the_tested_ones() {
    let (node, router) = lb_daemon::lab::bgp_tier::documented_configs();
    if std::env::var_os("LB_PRINT_BIRD_CONF").is_some() {
        println!("=== node\n{node}=== router\n{router}===");
    }
    let doc = include_str!("../../docs/bgp.md");
    assert!(
        doc.contains(&node),
        "docs/bgp.md lacks the node configuration:\n{node}"
    );
    assert!(
        doc.contains(&router),
        "docs/bgp.md lacks the router configuration:\n{router}"
    );
}
