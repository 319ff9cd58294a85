//! Fixtures of the established-flow fast path: a DR/TUN flow found in the connection
//! table under its full 5-tuple, before any service lookup (one hash lookup plus array
//! reads), and the VIP filter that lets everything else pass after one array read.
//! Stale entries (backend removed, service removed, mode changed) must be detected.

use std::net::{IpAddr, Ipv4Addr};

use lb_common::{vip_slot, Counter};
use lb_daemon::dataplane::{spec::encode_addr, ForwardMode, Protocol, ServiceSpec};
use lb_tests::{
    frames::{self, Flow},
    harness::*,
};

const VIP4: &str = "198.18.1.100";
const CLIENT4: &str = "203.0.113.7";
const BACKENDS4: [&str; 3] = ["198.18.0.21", "198.18.0.22", "198.18.0.23"];
const PAYLOAD: &[u8] = b"hello, backend";

fn frame_of(flow: &Flow) -> Vec<u8> {
    frames::frame(LB_MAC, CLIENT_MAC, None, flow, PAYLOAD)
}

fn spec(mode: ForwardMode) -> ServiceSpec {
    let backends: Vec<(&str, u32)> = BACKENDS4.iter().map(|a| (*a, 1)).collect();
    service(VIP4, 80, Protocol::Tcp, mode, &backends)
}

fn setup(spec: &ServiceSpec) -> TestDataplane {
    let mut t = TestDataplane::new();
    t.dp.apply_service(spec).expect("apply service");
    t
}

/// The backend a DR frame went to, from its destination MAC.
fn dr_target(out: &[u8]) -> IpAddr {
    BACKENDS4
        .iter()
        .map(|a| a.parse::<IpAddr>().unwrap())
        .find(|a| backend_mac(*a) == out[0..6])
        .expect("destination MAC is one of the backends'")
}

#[test]
fn an_established_flow_is_a_connection_table_hit() {
    let mut t = setup(&spec(ForwardMode::Dr));
    let flow = Flow::tcp(CLIENT4, 41000, VIP4, 80);
    let first = t.run(&frame_of(&flow));
    assert_eq!(first.action, XDP_TX);
    let hits = t.counter(Counter::ConntrackHit);
    for _ in 0..3 {
        let out = t.run(&frame_of(&flow));
        assert_eq!(out.action, XDP_TX);
        assert_eq!(dr_target(&out.frame), dr_target(&first.frame));
    }
    assert_eq!(t.counter(Counter::ConntrackHit), hits + 3);
    assert_eq!(t.counter(Counter::VipPackets), 4);
}

#[test]
fn a_flow_whose_backend_was_removed_is_rescheduled() {
    let spec = spec(ForwardMode::Dr);
    let mut t = setup(&spec);
    let flow = Flow::tcp(CLIENT4, 41001, VIP4, 80);
    let old = dr_target(&t.run(&frame_of(&flow)).frame);
    let mut without = spec.clone();
    without.backends.retain(|b| b.addr != old);
    t.dp.apply_service(&without).expect("remove a backend");
    let stale = t.counter(Counter::ConntrackStale);
    let out = t.run(&frame_of(&flow));
    assert_eq!(out.action, XDP_TX);
    assert_ne!(dr_target(&out.frame), old);
    assert_eq!(t.counter(Counter::ConntrackStale), stale + 1);
    // The new entry is hit from then on.
    let hits = t.counter(Counter::ConntrackHit);
    assert_eq!(
        dr_target(&t.run(&frame_of(&flow)).frame),
        dr_target(&out.frame)
    );
    assert_eq!(t.counter(Counter::ConntrackHit), hits + 1);
}

#[test]
fn a_removed_service_stops_matching_despite_its_entries() {
    let spec = spec(ForwardMode::Dr);
    let mut t = setup(&spec);
    let flow = Flow::tcp(CLIENT4, 41002, VIP4, 80);
    assert_eq!(t.run(&frame_of(&flow)).action, XDP_TX);
    t.dp.remove_service(&spec.id).expect("remove the service");
    let input = frame_of(&flow);
    let out = t.run(&input);
    assert_eq!(out.action, XDP_PASS);
    assert_eq!(out.frame, input, "passed untouched");
}

#[test]
fn an_established_flow_follows_its_services_new_mode() {
    // The fast path reads the service through the flow's backend: a service switched from
    // DR to TUN encapsulates its established flows to the same backend.
    let mut t = setup(&spec(ForwardMode::Dr));
    let flow = Flow::tcp(CLIENT4, 41003, VIP4, 80);
    let backend = dr_target(&t.run(&frame_of(&flow)).frame);
    t.dp.apply_service(&spec(ForwardMode::Tun))
        .expect("switch to TUN");
    let out = t.run(&frame_of(&flow));
    assert_eq!(out.action, XDP_TX);
    assert_eq!(out.frame[23], 4, "outer IPv4 header carries IP-in-IP");
    let IpAddr::V4(b) = backend else {
        unreachable!()
    };
    assert_eq!(out.frame[30..34], b.octets(), "outer destination");
}

#[test]
fn a_non_vip_sharing_a_filter_slot_with_a_vip_passes_untouched() {
    let mut t = setup(&spec(ForwardMode::Dr));
    let vip = encode_addr(VIP4.parse().unwrap()).0;
    let neighbour = (0..=u32::MAX)
        .map(|i| Ipv4Addr::from(0xc612_0000u32.wrapping_add(i)))
        .filter(|a| a.to_string() != VIP4)
        .find(|a| vip_slot(&encode_addr(IpAddr::V4(*a)).0) == vip_slot(&vip))
        .expect("a colliding address");
    let input = frame_of(&Flow::tcp(CLIENT4, 41004, &neighbour.to_string(), 80));
    let out = t.run(&input);
    assert_eq!(out.action, XDP_PASS);
    assert_eq!(out.frame, input);
    assert_eq!(t.counter(Counter::VipPackets), 0);
}

#[test]
fn a_persistent_service_keeps_its_template_semantics() {
    // Persistent services skip the fast path: a client's second connection (another
    // source port) goes where its first went.
    let mut s = spec(ForwardMode::Dr);
    s.persistence_timeout = Some(seconds(300));
    let mut t = setup(&s);
    let first = dr_target(&t.run(&frame_of(&Flow::tcp(CLIENT4, 41005, VIP4, 80))).frame);
    for port in 41006..41016 {
        let out = t.run(&frame_of(&Flow::tcp(CLIENT4, port, VIP4, 80)));
        assert_eq!(dr_target(&out.frame), first);
    }
}

#[test]
fn the_flood_guard_forwards_new_flows_above_the_limit_without_an_entry() {
    let s = spec(ForwardMode::Dr);
    let mut t = setup(&s);
    t.dp.set_new_flow_limit(2).expect("flood guard");
    let established = Flow::tcp(CLIENT4, 42000, VIP4, 80);
    let backend = dr_target(&t.run(&frame_of(&established)).frame);
    // The second new flow of the window still gets an entry; the next ones do not,
    // but are forwarded where Maglev says all the same.
    for port in 42001..42011 {
        let out = t.run(&frame_of(&Flow::tcp(CLIENT4, port, VIP4, 80)));
        assert_eq!(out.action, XDP_TX);
    }
    assert_eq!(t.counter(Counter::FloodGuard), 9);
    // The established flow keeps its entry (and its backend) through the flood.
    let hits = t.counter(Counter::ConntrackHit);
    assert_eq!(dr_target(&t.run(&frame_of(&established)).frame), backend);
    assert_eq!(t.counter(Counter::ConntrackHit), hits + 1);
}

#[test]
fn status_counts_each_backends_connections() {
    // Every flow gets a connection-table entry naming its backend: status counts them
    // per backend (what `lb-daemon top` and `lb_backend_connections` show).
    let mut t = setup(&spec(ForwardMode::Dr));
    let mut expected = std::collections::HashMap::<IpAddr, u64>::new();
    for port in 42000..42030 {
        let out = t.run(&frame_of(&Flow::tcp(CLIENT4, port, VIP4, 80)));
        assert_eq!(out.action, XDP_TX);
        *expected.entry(dr_target(&out.frame)).or_default() += 1;
    }
    let status = t.dp.status().expect("status");
    let counted: std::collections::HashMap<IpAddr, u64> = status[0]
        .backends
        .iter()
        .map(|b| (b.addr, b.connections.expect("DR counts connections")))
        .filter(|(_, n)| *n > 0)
        .collect();
    assert_eq!(counted, expected);
    assert_eq!(counted.values().sum::<u64>(), 30);
}
