//! The active-active tier with traffic (issue 12): a router running BIRD 2 spreads the VIPs
//! over 3 LB nodes by ECMP (L4 hash), each node runs `lb-daemon run` announcing the VIPs
//! by BGP (`announce = "bgp"`) through its own BIRD, 3 health-checked backends answer the
//! client directly (DR, or TUN with `lb_decap`). Checked: the spread of 300 connections
//! over the nodes (their data-plane counters), long-lived connections through a node's
//! link cut (BFD), its return and a drain, quorum with a failed backend, the withdrawal
//! when every backend fails; TUN; an IPv6 VIP over the same sessions.
//!
//! Needs root, BIRD 2, the eBPF object (`LB_EBPF_OBJECT`) and `cargo build -p lb-daemon`.

use std::time::Duration;

use lb_daemon::dataplane::ForwardMode;
use lb_daemon::lab::bgp_tier::{
    check_tracked, Announce, DaemonSettings, Tier, TierService, VIP_V4, VIP_V6,
};
use lb_tests::vrrp_lab::daemon_bin;

/// BFD (3 x 100 ms) and withdrawals act well within this.
const FAST: Duration = Duration::from_secs(1);
/// Daemons started, checks passed, sessions (re)established.
const SLOW: Duration = Duration::from_secs(20);
const LONG_LIVED: usize = 60;

/// 3 nodes, 3 serving backends, daemons announcing `vips` (first one waited for).
fn tier(vips: &[&str], mode: ForwardMode, settings: DaemonSettings) -> Tier {
    let mut tier = Tier::new(3, 3).expect("tier");
    tier.serve(vips, mode == ForwardMode::Tun)
        .expect("backends");
    let services: Vec<TierService> = vips
        .iter()
        .map(|v| TierService::new(v, mode).expect("service"))
        .collect();
    tier.start_daemons(&daemon_bin(), &services, &settings)
        .expect("daemons");
    for vip in vips {
        tier.wait_serving(vip, SLOW).unwrap();
    }
    tier
}

/// 300 connections: each node receives new flows (its counters) and every one is served.
fn spread(tier: &Tier, vip: &str) {
    let before = tier.flows_per_node().expect("counters");
    let replies = tier.requests(vip, 300).expect("300 connections served");
    assert_eq!(replies.len(), 300);
    let after = tier.flows_per_node().expect("counters");
    let flows: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    eprintln!("{vip}: new flows per node {flows:?}");
    assert!(flows.iter().all(|&f| f >= 30), "uneven spread: {flows:?}");
    assert!(flows.iter().sum::<u64>() >= 300, "{flows:?}");
}

/// Long-lived connections through a cut link, the node's return and (optionally) a drain
/// of another node: every connection keeps its backend throughout.
fn node_loss_and_return(tier: &Tier, vip: &str, drain: bool) {
    let names = tier.node_names();
    let mut conns = tier.open_tracked(vip, LONG_LIVED).expect("long-lived");
    let on_lost = conns.iter().filter(|c| c.node == 2).count();
    assert!(on_lost > 0, "no connection went through lb3");

    tier.cut(2).unwrap();
    let took = tier.wait_nexthops(vip, &[0, 1], FAST).unwrap();
    eprintln!("{vip}: lb3's route gone {took:?} after its link was cut");
    let s = check_tracked(&mut conns, &names);
    assert!(
        s.all_kept(),
        "after the cut ({on_lost} via lb3): {:?}\n{}",
        s.lost,
        tier.logs()
    );

    tier.restore(2).unwrap();
    let took = tier.wait_nexthops(vip, &[0, 1, 2], SLOW).unwrap();
    eprintln!("{vip}: lb3 back after {took:?}");
    let s = check_tracked(&mut conns, &names);
    assert!(s.all_kept(), "after the return: {:?}", s.lost);
    tier.requests(vip, 60).expect("served after the return");

    if !drain {
        return;
    }
    let mut drain = tier.drain_command(&daemon_bin(), 0, "drain").unwrap();
    let took = tier.wait_nexthops(vip, &[1, 2], FAST).unwrap();
    eprintln!("{vip}: lb1's route gone {took:?} after drain");
    let s = check_tracked(&mut conns, &names);
    assert!(s.all_kept(), "after the drain: {:?}", s.lost);
    let before = tier.flows_per_node().unwrap();
    tier.requests(vip, 100).expect("served during the drain");
    let after = tier.flows_per_node().unwrap();
    assert_eq!(after[0], before[0], "a drained node got new flows");
    let undrain = tier
        .drain_command(&daemon_bin(), 0, "undrain")
        .unwrap()
        .wait_with_output()
        .unwrap();
    assert!(
        undrain.status.success(),
        "{}",
        String::from_utf8_lossy(&undrain.stderr)
    );
    tier.wait_nexthops(vip, &[0, 1, 2], SLOW).unwrap();
    let s = check_tracked(&mut conns, &names);
    assert!(s.all_kept(), "after undrain: {:?}", s.lost);
    // `drain` may wait for the drain to finish; it must have ended well either way.
    let _ = drain.kill();
    let _ = drain.wait();
}

#[test]
fn dr_tier_spreads_survives_node_loss_and_return_and_drains() {
    let tier = tier(&[VIP_V4], ForwardMode::Dr, DaemonSettings::default());
    spread(&tier, VIP_V4);
    node_loss_and_return(&tier, VIP_V4, true);
    let metrics = tier.metrics(0).unwrap();
    assert!(
        metrics.contains(&format!("lb_vip_announced{{vip=\"{VIP_V4}\"}} 1")),
        "{metrics}"
    );
    assert!(metrics.contains("lb_bgp_drained 0"), "{metrics}");
}

#[test]
fn failed_backend_keeps_the_vip_and_all_failed_withdraw_it() {
    let mut tier = tier(&[VIP_V4], ForwardMode::Dr, DaemonSettings::default());
    let names = tier.node_names();
    let mut conns = tier.open_tracked(VIP_V4, LONG_LIVED).unwrap();
    let failed = tier.backends[1].name();
    tier.backends[1].stop_server();
    // Once every node's check marks it down, its new flows are re-hashed elsewhere.
    let rehashed = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        tier.requests(VIP_V4, 60)
            .is_ok_and(|r| r.iter().all(|r| r.backend != failed))
    });
    assert!(rehashed, "{failed} still receives flows\n{}", tier.logs());
    assert_eq!(tier.nexthops(VIP_V4).unwrap(), [0, 1, 2], "quorum kept");
    // Connections on the surviving backends are untouched (consistent hashing).
    let others: Vec<_> = conns.iter().map(|c| c.backend != failed).collect();
    let s = check_tracked(&mut conns, &names);
    let lost_elsewhere: Vec<_> = s
        .lost
        .iter()
        .filter(|l| !l.contains(&format!(", {failed})")))
        .collect();
    assert!(
        lost_elsewhere.is_empty() && others.iter().any(|&o| o),
        "{lost_elsewhere:?}"
    );

    for b in &mut tier.backends {
        b.stop_server();
    }
    tier.wait_nexthops(VIP_V4, &[], Duration::from_secs(10))
        .unwrap();
    for b in &mut tier.backends {
        b.start_server().unwrap();
    }
    tier.wait_serving(VIP_V4, SLOW).unwrap();
}

#[test]
fn tun_tier_spreads_and_survives_node_loss() {
    let tier = tier(&[VIP_V4], ForwardMode::Tun, DaemonSettings::default());
    spread(&tier, VIP_V4);
    node_loss_and_return(&tier, VIP_V4, false);
}

#[test]
fn ipv6_vip_over_the_same_sessions() {
    let tier = tier(
        &[VIP_V4, VIP_V6],
        ForwardMode::Dr,
        DaemonSettings::default(),
    );
    spread(&tier, VIP_V6);
    node_loss_and_return(&tier, VIP_V6, true);
    tier.requests(VIP_V4, 30).expect("IPv4 still served");
}

/// The traffic path alone, as it works before any daemon announces: VIPs put on the
/// nodes' VIP interface by the test, the daemons serving them always.
#[test]
fn hand_announced_tier_carries_traffic_through_a_node_loss() {
    let settings = DaemonSettings {
        announce: Announce::ByHand,
        ..DaemonSettings::default()
    };
    let tier = tier(&[VIP_V4], ForwardMode::Dr, settings);
    spread(&tier, VIP_V4);
    node_loss_and_return(&tier, VIP_V4, false);
}
