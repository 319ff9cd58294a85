//! Fixtures of `lb_conn_filter`, the bitmap of the connection table's keys in front of
//! the table: once the daemon has rebuilt it (and so trusts it), a flow whose bit is
//! clear skips the table while the flood guard holds new flows back (a new flow's miss,
//! a SYN's delete), while no entry, the program's or one the daemon installs for
//! flow-state sync, is ever without its bit — across rebuilds too. Table-driven over
//! IPv4 and IPv6. Needs root.

use std::net::IpAddr;

use aya::maps::{HashMap as BpfHashMap, Map, MapData};
use lb_common::{conn_filter, map_names, Conn, Counter, FlowKey};
use lb_daemon::dataplane::{spec::encode_addr, ForwardMode, Protocol, ServiceSpec};
use lb_tests::{
    frames::{self, Flow, TCP_ACK, TCP_SYN},
    harness::*,
};

const PAYLOAD: &[u8] = b"hello, backend";

struct Family {
    name: &'static str,
    vip: &'static str,
    client: &'static str,
    backends: [&'static str; 3],
}

const FAMILIES: [Family; 2] = [
    Family {
        name: "IPv4",
        vip: "198.18.1.100",
        client: "203.0.113.7",
        backends: ["198.18.0.21", "198.18.0.22", "198.18.0.23"],
    },
    Family {
        name: "IPv6",
        vip: "2001:db8:1::100",
        client: "2001:db8:c::7",
        backends: ["2001:db8::21", "2001:db8::22", "2001:db8::23"],
    },
];

impl Family {
    fn spec(&self) -> ServiceSpec {
        self.spec_of(3)
    }

    /// The service with its first `n` backends.
    fn spec_of(&self, n: usize) -> ServiceSpec {
        let backends: Vec<(&str, u32)> = self.backends[..n].iter().map(|a| (*a, 1)).collect();
        service(self.vip, 80, Protocol::Tcp, ForwardMode::Dr, &backends)
    }

    fn flow(&self, port: u16) -> Flow {
        Flow::tcp(self.client, port, self.vip, 80)
    }

    /// The backend a DR frame went to, from its destination MAC.
    fn target(&self, out: &[u8]) -> IpAddr {
        self.backends
            .iter()
            .map(|a| a.parse::<IpAddr>().unwrap())
            .find(|a| backend_mac(*a) == out[0..6])
            .expect("destination MAC is one of the backends'")
    }
}

fn frame_of(flow: &Flow) -> Vec<u8> {
    frames::frame(LB_MAC, CLIENT_MAC, None, flow, PAYLOAD)
}

fn setup(f: &Family) -> TestDataplane {
    let mut t = TestDataplane::new();
    t.dp.apply_service(&f.spec()).expect("apply service");
    t
}

fn key_of(flow: &Flow) -> FlowKey {
    let (src, family) = encode_addr(flow.src);
    let (dst, _) = encode_addr(flow.dst);
    FlowKey {
        src,
        dst,
        sport: flow.sport.to_be(),
        dport: flow.dport.to_be(),
        proto: flow.proto,
        family,
        pad: 0,
    }
}

fn conntrack(t: &TestDataplane) -> BpfHashMap<MapData, FlowKey, Conn> {
    let path = t.dp.pin_dir().join(map_names::CONNTRACK);
    MapData::from_pin(&path)
        .and_then(Map::from_map_data)
        .and_then(BpfHashMap::try_from)
        .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()))
}

fn rebuild(t: &TestDataplane) -> u64 {
    let (walked, _) =
        t.dp.rebuild_conn_filter()
            .expect("rebuild the filter")
            .expect("the filter is mapped");
    walked
}

/// Bit position of a flow in the filter of `TestDataplane`'s table.
fn bit_of(flow: &Flow) -> (u32, u64) {
    conn_filter::position(
        conn_filter::key_hash(&key_of(flow)),
        conn_filter::words_for(4096),
    )
}

#[test]
fn established_flows_keep_their_backend_across_rebuilds() {
    for f in &FAMILIES {
        let mut t = TestDataplane::new();
        t.dp.apply_service(&f.spec_of(2)).expect("apply service");
        let flows: Vec<Flow> = (41000..41032).map(|p| f.flow(p)).collect();
        let backends: Vec<IpAddr> = flows
            .iter()
            .map(|fl| f.target(&t.run(&frame_of(fl)).frame))
            .collect();
        // A flow inserted after the first rebuild: its bit comes from the program.
        rebuild(&t);
        let late = f.flow(41100);
        let late_backend = f.target(&t.run(&frame_of(&late)).frame);
        let mut flows = flows;
        flows.push(late);
        let mut backends = backends;
        backends.push(late_backend);
        for round in 0..3 {
            if round > 0 {
                assert!(rebuild(&t) >= flows.len() as u64, "{}: keys walked", f.name);
            }
            if round == 1 {
                // A backend added: Maglev now sends some of these flows to it, their
                // entries (found through the filter) keep them where they were.
                t.dp.apply_service(&f.spec_of(3)).expect("add a backend");
            }
            // The filter stands in front of the table while the guard holds flows back.
            flood(&mut t, f);
            let hits = t.counter(Counter::ConntrackHit);
            for (fl, b) in flows.iter().zip(&backends) {
                let out = t.run(&frame_of(fl));
                assert_eq!(out.action, XDP_TX, "{}", f.name);
                assert_eq!(f.target(&out.frame), *b, "{} round {round}: {fl:?}", f.name);
            }
            assert_eq!(
                t.counter(Counter::ConntrackHit),
                hits + flows.len() as u64,
                "{} round {round}: every packet a hit",
                f.name
            );
        }
    }
}

/// Trips the flood guard (a limit of one new flow per second): new flows until one is
/// held back. Each call uses client ports of its own.
fn flood(t: &mut TestDataplane, f: &Family) {
    static NEXT_PORT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(50000);
    t.dp.set_new_flow_limit(1).expect("flood guard");
    let before = t.counter(Counter::FloodGuard);
    for _ in 0..8 {
        let port = NEXT_PORT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        t.run(&frame_of(&f.flow(port)));
        if t.counter(Counter::FloodGuard) > before {
            return;
        }
    }
    panic!("{}: the flood guard did not trip", f.name);
}

#[test]
fn under_a_flood_a_trusted_filter_skips_the_table_for_a_flow_without_its_bit() {
    // An entry written behind the filter's back (no bit) stands for "the table holds
    // something the filter proves absent": once trusted, and while the flood guard
    // holds new flows back, the program does not look; otherwise it does (a flow that
    // will be inserted needs the bucket anyway).
    for f in &FAMILIES {
        let real = f.flow(42000);
        let (ghost, moved_to) = (42001..43000)
            .map(|p| f.flow(p))
            .filter(|g| bit_of(g) != bit_of(&real))
            .find_map(|g| {
                let mut probe = setup(f);
                let real_backend = f.target(&probe.run(&frame_of(&real)).frame);
                let own = f.target(&probe.run(&frame_of(&g)).frame);
                (own != real_backend).then_some((g, own))
            })
            .expect("a flow Maglev sends elsewhere");
        for (trusted, flooded) in [(false, true), (true, false), (true, true)] {
            let mut t = setup(f);
            let real_backend = f.target(&t.run(&frame_of(&real)).frame);
            if trusted {
                rebuild(&t);
            }
            if flooded {
                flood(&mut t, f);
            }
            let mut table = conntrack(&t);
            let entry = table.get(&key_of(&real), 0).expect("the real flow's entry");
            table
                .insert(key_of(&ghost), entry, 0)
                .expect("write the ghost entry");
            let out = t.run(&frame_of(&ghost));
            let expected = if trusted && flooded {
                moved_to
            } else {
                real_backend
            };
            assert_eq!(
                f.target(&out.frame),
                expected,
                "{} (filter trusted: {trusted}, flood: {flooded})",
                f.name
            );
        }
    }
}

#[test]
fn under_a_flood_established_flows_are_found_through_the_filter() {
    for f in &FAMILIES {
        let mut t = setup(f);
        let flows: Vec<Flow> = (46000..46016).map(|p| f.flow(p)).collect();
        let backends: Vec<IpAddr> = flows
            .iter()
            .map(|fl| f.target(&t.run(&frame_of(fl)).frame))
            .collect();
        rebuild(&t);
        flood(&mut t, f);
        let hits = t.counter(Counter::ConntrackHit);
        for (fl, b) in flows.iter().zip(&backends) {
            assert_eq!(f.target(&t.run(&frame_of(fl)).frame), *b, "{}", f.name);
        }
        assert_eq!(
            t.counter(Counter::ConntrackHit),
            hits + flows.len() as u64,
            "{}",
            f.name
        );
    }
}

#[test]
fn a_flow_installed_by_the_daemon_is_found_through_a_trusted_filter() {
    // Flow-state sync's installs set the bits before the entry exists.
    for f in &FAMILIES {
        let mut t = setup(f);
        rebuild(&t);
        t.dp.set_sync_learning(true).expect("sync on");
        let fl = f.flow(43000);
        let backend = f.target(&t.run(&frame_of(&fl)).frame);
        let learned = t.dp.drain_learned(4);
        assert_eq!(learned.len(), 1, "{}", f.name);

        let mut peer = setup(f);
        rebuild(&peer);
        flood(&mut peer, f);
        let report = peer.dp.install_flows(&learned);
        assert_eq!(report.installed, 1, "{}: {report:?}", f.name);
        let hits = peer.counter(Counter::ConntrackHit);
        let out = peer.run(&frame_of(&fl.with_flags(TCP_ACK)));
        assert_eq!(f.target(&out.frame), backend, "{}", f.name);
        assert_eq!(
            peer.counter(Counter::ConntrackHit),
            hits + 1,
            "{}: found",
            f.name
        );
        // And it survives the next rebuild (the walk finds it).
        rebuild(&peer);
        let hits = peer.counter(Counter::ConntrackHit);
        peer.run(&frame_of(&fl.with_flags(TCP_ACK)));
        assert_eq!(peer.counter(Counter::ConntrackHit), hits + 1, "{}", f.name);
    }
}

#[test]
fn a_syn_flood_on_a_remembered_tuple_still_drops_its_old_entry() {
    // Above the flood guard's limit a new connection gets no entry; on a tuple the table
    // remembers, the old entry must go (its bit is set, so the delete is not skipped),
    // while new tuples (bits clear) skip the table entirely.
    for f in &FAMILIES {
        let mut t = setup(f);
        let remembered = f.flow(44000);
        t.run(&frame_of(&remembered));
        rebuild(&t);
        t.dp.set_new_flow_limit(1).expect("flood guard");
        for p in 44001..44005 {
            let out = t.run(&frame_of(&f.flow(p).with_flags(TCP_SYN)));
            assert_eq!(out.action, XDP_TX, "{}", f.name);
        }
        let guarded = t.counter(Counter::FloodGuard);
        assert!(guarded >= 3, "{}: the guard holds back new flows", f.name);
        let table = conntrack(&t);
        for p in 44001..44005 {
            assert!(
                table.get(&key_of(&f.flow(p)), 0).is_err() || p == 44001,
                "{}: a guarded flow has no entry",
                f.name
            );
        }
        assert!(table.get(&key_of(&remembered), 0).is_ok(), "{}", f.name);
        t.run(&frame_of(&remembered.with_flags(TCP_SYN)));
        assert_eq!(t.counter(Counter::FloodGuard), guarded + 1, "{}", f.name);
        assert!(
            table.get(&key_of(&remembered), 0).is_err(),
            "{}: the reused tuple's old entry is gone",
            f.name
        );
    }
}
