//! NAT end to end in network namespaces: a client, the LB (XDP on its interfaces) and
//! three reals listening on port 8080 behind it, real TCP and UDP through the VIP's
//! port 80. One-arm (one segment) and two-arm (keepalived's classic set-up: the reals on
//! their own segment behind the LB's second interface), plain NAT (the reals route
//! through the LB) and full-NAT (`snat_address`), IPv4 and IPv6. Needs root.

use std::collections::HashMap;

use lb_common::Counter;
use lb_daemon::{
    dataplane::ForwardMode,
    lab::{backend_name, Lab, LabOptions, Topology},
};

fn check_nat(opts: LabOptions) {
    let full_nat = matches!(opts.mode, ForwardMode::Nat { snat: Some(_) });
    let addrs = opts.addrs;
    let mut lab = Lab::start(opts).expect("start the NAT lab (root, bpffs, eBPF object)");
    // TCP: every real gets connections; it sees the client (NAT) or the LB (full-NAT).
    let seen = if full_nat {
        addrs.lb_internal()
    } else {
        addrs.client
    };
    let mut counts: HashMap<String, usize> = HashMap::new();
    for reply in lab.requests(240).expect("TCP requests through the VIP") {
        assert_eq!(reply.client_seen, seen, "address the real sees");
        *counts.entry(reply.backend).or_default() += 1;
    }
    for i in 0..3 {
        let n = counts.get(&backend_name(i)).copied().unwrap_or(0);
        assert!(n >= 40, "{} got {n} of 240: {counts:?}", backend_name(i));
    }
    // UDP: the replies come from the VIP's port (checked by udp_request), from several
    // reals.
    let mut udp: HashMap<String, usize> = HashMap::new();
    for _ in 0..30 {
        let reply = lab.udp_request().expect("UDP request through the VIP");
        assert_eq!(reply.client_seen, seen);
        *udp.entry(reply.backend).or_default() += 1;
    }
    assert!(udp.len() >= 2, "UDP spread over the reals: {udp:?}");
    // A long-lived connection keeps its real and its translation.
    let mut conn = lab.open().expect("long-lived connection");
    let first = conn.ask().expect("ask").backend;
    for _ in 0..5 {
        assert_eq!(conn.ask().expect("ask again").backend, first);
    }
    let dp = lab.dataplane();
    assert!(dp.counter(Counter::NatToReal).expect("counters") > 240);
    assert!(dp.counter(Counter::NatToClient).expect("counters") > 240);
    assert_eq!(dp.counter(Counter::FibFailed).expect("counters"), 0);
    let conns = dp.nat_connections().expect("NAT table");
    assert!(
        conns.iter().any(|c| c.client.0 == addrs.client
            && c.vip == (addrs.vip, 80)
            && c.real.1 == lb_daemon::lab::NAT_REAL_PORT),
        "the NAT table lists the connections: {conns:?}"
    );
}

#[test]
fn nat_one_arm_serves_tcp_and_udp() {
    check_nat(LabOptions::nat(3, Topology::OneArm, false));
}

#[test]
fn nat_two_arm_serves_tcp_and_udp() {
    check_nat(LabOptions::nat(3, Topology::TwoArm, false));
}

#[test]
fn full_nat_one_arm_serves_tcp_and_udp() {
    check_nat(LabOptions::nat(3, Topology::OneArm, true));
}

#[test]
fn ipv6_nat_two_arm_serves_tcp_and_udp() {
    check_nat(LabOptions::nat(3, Topology::TwoArm, false).ipv6());
}

#[test]
fn ipv6_full_nat_two_arm_serves_tcp_and_udp() {
    check_nat(LabOptions::nat(3, Topology::TwoArm, true).ipv6());
}
