//! Counters that behave as counters, end to end: a service's packets on the node that
//! forwarded them stay in `status` after its VRRP instance left MASTER, and carry on
//! (not from 0) when it takes MASTER again. Needs root.

use std::time::Duration;

use lb_daemon::{dataplane::ForwardMode, lab::requests_from};
use lb_tests::daemon_lab::{running_pair, status_json, VIP};

/// The service's packets in `status` of node `i`, once the view has refreshed.
fn packets(lab: &lb_tests::daemon_lab::Lab, i: usize) -> u64 {
    // The view reads the plane's counters once a second.
    std::thread::sleep(Duration::from_millis(1500));
    let status = status_json(&lab.seg.nodes[i].dir().join("lb.sock"));
    status["services"][0]["packets"]
        .as_u64()
        .unwrap_or_else(|| panic!("no packets in the status of node {i}: {status}"))
}

#[test]
fn packets_survive_a_failover_and_back() {
    let lab = running_pair(ForwardMode::Dr, 2).expect("lab");
    let seg = &lab.seg;
    let client = &seg.nodes[2].ns;
    requests_from(client, 20).expect("traffic through lb1");
    let lb1_before = packets(&lab, 0);
    assert!(lb1_before > 0, "lb1 forwarded\n{}", seg.logs());

    seg.cut(0).expect("cut lb1");
    seg.wait_holder(VIP, 1, Duration::from_secs(8))
        .expect("lb2 takes over");
    let through_lb2 = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(200));
        requests_from(client, 20).is_ok()
    });
    assert!(through_lb2, "traffic through lb2\n{}", seg.logs());
    seg.restore(0).expect("restore lb1");
    seg.wait_holder(VIP, 0, Duration::from_secs(10))
        .expect("lb1 takes MASTER back");

    // lb2 is BACKUP again, and still shows what it forwarded.
    let lb2 = packets(&lab, 1);
    assert!(
        lb2 > 0,
        "lb2's packets after it left MASTER\n{}",
        seg.logs()
    );
    // lb1 goes on from where it was, not from 0.
    let back = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(200));
        requests_from(client, 20).is_ok()
    });
    assert!(back, "traffic through lb1 again\n{}", seg.logs());
    let lb1_after = packets(&lab, 0);
    assert!(
        lb1_after > lb1_before,
        "lb1 counted on: {lb1_before} then {lb1_after}\n{}",
        seg.logs()
    );
}
