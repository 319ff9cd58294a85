//! Flow-state sync fixtures through BPF_PROG_TEST_RUN: the program reports new flows in
//! `lb_sync_events` only while sync is on and only on the new-flow path; a peer data
//! plane that installs the reports sends the flow's next packets to the same real, even
//! when its own Maglev choice differs (a backend-set change since the flow began); a
//! valid local entry is never replaced. Needs root.

use std::net::IpAddr;

use lb_common::{hash, Counter};
use lb_daemon::dataplane::{
    flow_sync::{FlowKind, FlowRecord},
    spec::encode_addr,
    ForwardMode, Protocol, ServiceSpec,
};
use lb_tests::{
    frames::{self, Flow, TCP_ACK},
    harness::*,
};

const VIP4: &str = "198.18.1.100";
const CLIENT4: &str = "203.0.113.7";
const REALS: [&str; 4] = ["198.18.0.21", "198.18.0.22", "198.18.0.23", "198.18.0.24"];
const SNAT4: &str = "198.18.0.1";
const REAL_PORT: u16 = 8080;
const PAYLOAD: &[u8] = b"hello, real server";

fn frame_of(flow: &Flow) -> Vec<u8> {
    frames::frame(LB_MAC, CLIENT_MAC, None, flow, PAYLOAD)
}

/// The service with the first `n` reals.
fn spec(mode: ForwardMode, n: usize) -> ServiceSpec {
    let reals: Vec<(&str, u32)> = REALS[..n].iter().map(|a| (*a, 1)).collect();
    let mut s = service(VIP4, 80, Protocol::Tcp, mode, &reals);
    if matches!(mode, ForwardMode::Nat { .. }) {
        for b in &mut s.backends {
            b.port = REAL_PORT;
        }
    }
    s
}

fn full_nat() -> ForwardMode {
    ForwardMode::Nat {
        snat: Some(SNAT4.parse().expect("address")),
    }
}

fn node(spec: &ServiceSpec) -> TestDataplane {
    let mut t = TestDataplane::new();
    t.dp.apply_service(spec).expect("apply service");
    t
}

/// The real this node's Maglev table picks for `flow`.
fn pick(t: &TestDataplane, spec: &ServiceSpec, flow: &Flow) -> IpAddr {
    let ring = t.dp.ring_backends(&spec.id).expect("service programmed");
    let (src, _) = encode_addr(flow.src);
    let (dst, _) = encode_addr(flow.dst);
    let h = hash::flow_hash(
        &src,
        &dst,
        flow.sport.to_be(),
        flow.dport.to_be(),
        flow.proto,
    );
    ring[(h % spec.table_size) as usize].expect("slot").0
}

/// The real a frame went to, from its destination MAC.
fn target(out: &[u8]) -> IpAddr {
    REALS
        .iter()
        .map(|a| a.parse::<IpAddr>().unwrap())
        .find(|a| backend_mac(*a) == out[0..6])
        .expect("destination MAC is one of the reals'")
}

/// A client port whose flow the 3-real and 4-real tables send to different reals.
fn moved_flow(before: &TestDataplane, after: &TestDataplane, s3: &ServiceSpec) -> Flow {
    (41000..42000)
        .map(|p| Flow::tcp(CLIENT4, p, VIP4, 80))
        .find(|f| pick(before, s3, f) != pick(after, s3, f))
        .expect("a flow the new backend set moves")
}

#[test]
fn nothing_is_reported_while_sync_is_off() {
    let s = spec(ForwardMode::Dr, 3);
    let mut t = node(&s);
    let out = t.run(&frame_of(&Flow::tcp(CLIENT4, 40000, VIP4, 80)));
    assert_eq!(out.action, XDP_TX);
    assert!(t.dp.drain_learned(16).is_empty());
    assert_eq!(t.counter(Counter::SyncLost), 0);
}

#[test]
fn a_new_flow_is_reported_once_and_established_packets_are_not() {
    let s = spec(ForwardMode::Dr, 3);
    let mut t = node(&s);
    t.dp.set_sync_learning(true).expect("sync on");
    let flow = Flow::tcp(CLIENT4, 40001, VIP4, 80);
    let real = target(&t.run(&frame_of(&flow)).frame);
    for _ in 0..3 {
        t.run(&frame_of(&flow.with_flags(TCP_ACK)));
    }
    let learned = t.dp.drain_learned(16);
    assert_eq!(
        learned,
        vec![FlowRecord {
            kind: FlowKind::Conntrack,
            service: s.id,
            client: format!("{CLIENT4}:40001").parse().unwrap(),
            dst: format!("{VIP4}:80").parse().unwrap(),
            real: (real, 0).into(),
            xsrc: format!("{CLIENT4}:40001").parse().unwrap(),
            state: 0,
            idle_ms: 0,
        }]
    );
    assert!(t.dp.drain_learned(16).is_empty(), "drained");
    // Off again: new flows are no longer reported.
    t.dp.set_sync_learning(false).expect("sync off");
    t.run(&frame_of(&Flow::tcp(CLIENT4, 40002, VIP4, 80)));
    assert!(t.dp.drain_learned(16).is_empty());
}

#[test]
fn a_peer_that_installed_a_dr_flow_keeps_its_real_across_a_backend_set_change() {
    let s3 = spec(ForwardMode::Dr, 3);
    let s4 = spec(ForwardMode::Dr, 4);
    let mut master = node(&s3);
    master.dp.set_sync_learning(true).expect("sync on");
    let mut peer = node(&s4);
    let mut unsynced = node(&s4);
    let flow = moved_flow(&master, &peer, &s3);
    let real = target(&master.run(&frame_of(&flow)).frame);
    let learned = master.dp.drain_learned(16);
    assert_eq!(learned.len(), 1);
    let report = peer.dp.install_flows(&learned);
    assert_eq!(report.installed, 1, "{report:?}");
    let ack = frame_of(&flow.with_flags(TCP_ACK));
    assert_eq!(target(&peer.run(&ack).frame), real, "synced: same real");
    assert_ne!(
        target(&unsynced.run(&ack).frame),
        real,
        "without sync the flow moves"
    );
}

#[test]
fn a_peer_that_installed_a_full_nat_flow_translates_it_like_the_master() {
    let s3 = spec(full_nat(), 3);
    let s4 = spec(full_nat(), 4);
    let mut master = node(&s3);
    master.dp.set_sync_learning(true).expect("sync on");
    let mut peer = node(&s4);
    let mut unsynced = node(&s4);
    let flow = moved_flow(&master, &peer, &s3);
    let first = master.run(&frame_of(&flow));
    assert_eq!(first.action, XDP_TX);
    let learned = master.dp.drain_learned(16);
    assert_eq!(learned.len(), 1);
    let r = learned[0];
    assert_eq!(r.kind, FlowKind::Nat);
    assert_eq!(r.xsrc.ip(), SNAT4.parse::<IpAddr>().unwrap());
    assert_eq!(r.real.port(), REAL_PORT);
    // The backend set changes on the master too; its NAT entry holds the flow.
    master.dp.apply_service(&s4).expect("add a real");
    let ack = frame_of(&flow.with_flags(TCP_ACK));
    let on_master = master.run(&ack);
    let report = peer.dp.install_flows(&learned);
    assert_eq!(report.installed, 1, "{report:?}");
    let on_peer = peer.run(&ack);
    assert_eq!(on_peer.action, XDP_TX);
    assert_eq!(
        on_peer.frame, on_master.frame,
        "same real, same SNAT port: byte for byte what the master sends"
    );
    // Both directions are there: the reply key the master made exists on the peer.
    let keys = |t: &TestDataplane| {
        let mut k: Vec<_> =
            t.dp.nat_entries()
                .unwrap()
                .into_iter()
                .map(|(k, e)| (k, e.src, e.dst, e.sport, e.dport, e.direction))
                .collect();
        k.sort_by_key(|x| format!("{x:?}"));
        k
    };
    assert_eq!(keys(&peer), keys(&master));
    assert_ne!(
        unsynced.run(&ack).frame,
        on_master.frame,
        "without sync the flow goes elsewhere"
    );
    // Installing again changes nothing: the peer's entries are valid.
    let again = peer.dp.install_flows(&learned);
    assert_eq!(again.installed, 0);
    assert_eq!(again.skipped.get("local_newer"), Some(&1));
}

#[test]
fn records_for_unknown_services_or_reals_are_skipped() {
    let s3 = spec(ForwardMode::Dr, 3);
    let mut master = node(&s3);
    master.dp.set_sync_learning(true).expect("sync on");
    master.run(&frame_of(&Flow::tcp(CLIENT4, 40100, VIP4, 80)));
    let learned = master.dp.drain_learned(16);
    let mut other = learned[0];
    other.real = "198.18.0.99:0".parse().unwrap();
    let mut none = TestDataplane::new();
    let report = none.dp.install_flows(&learned);
    assert_eq!(report.skipped.get("no_service"), Some(&1));
    let mut peer = node(&s3);
    let report = peer.dp.install_flows(&[other]);
    assert_eq!(report.skipped.get("no_backend"), Some(&1));
}

#[test]
fn a_dump_of_the_tables_names_every_flow_as_its_reports_did() {
    // Bulk sync: what a starting peer gets is what the reports said, flow for flow.
    let dr = spec(ForwardMode::Dr, 3);
    let mut t = node(&dr);
    let mut nat = spec(full_nat(), 3);
    nat.id.port = 8080;
    nat.id.protocol = Protocol::Udp;
    t.dp.apply_service(&nat).expect("NAT service");
    t.dp.set_sync_learning(true).expect("sync on");
    for p in 0..5 {
        t.run(&frame_of(&Flow::tcp(CLIENT4, 43000 + p, VIP4, 80)));
        t.run(&frame_of(&Flow::udp(CLIENT4, 45000 + p, VIP4, 8080)));
    }
    let mut learned = t.dp.drain_learned(64);
    let mut dumped = t.dp.dump_flows().expect("dump");
    // A dump also says each NAT connection's state (UDP here) and idle time.
    for r in &mut dumped {
        assert!(r.idle_ms < 60_000, "{r:?}");
        if r.kind == FlowKind::Nat {
            assert_eq!(r.state, lb_common::nat_state::UDP);
        }
        r.state = 0;
        r.idle_ms = 0;
    }
    let order = |r: &FlowRecord| format!("{r:?}");
    learned.sort_by_key(order);
    dumped.sort_by_key(order);
    assert_eq!(learned.len(), 10);
    assert_eq!(
        learned.iter().filter(|r| r.kind == FlowKind::Nat).count(),
        5,
        "the UDP NAT flows"
    );
    assert_eq!(dumped, learned);
}
