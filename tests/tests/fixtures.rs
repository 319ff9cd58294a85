//! Packet fixtures run through BPF_PROG_TEST_RUN, in the spirit of Katran's: an input
//! frame, the expected verdict and the exact expected output frame (built independently
//! from the RFCs in `frames`). Needs root (loads the XDP program).

use std::net::{IpAddr, Ipv4Addr};

use lb_common::{hash, Counter};
use lb_daemon::dataplane::{
    spec::{encode_addr, ServiceGroup},
    ForwardMode, HashMode, Protocol, ServiceId, ServiceSpec,
};
use lb_tests::{
    family::{announce, Family, Family::*},
    frames::{self, Flow},
    harness::*,
};

const VIP4: &str = "198.18.1.100";
const VIP6: &str = "2001:db8:1::100";
const CLIENT4: &str = "203.0.113.7";
const CLIENT6: &str = "2001:db8:ff::7";
const BACKENDS4: [&str; 3] = ["198.18.0.21", "198.18.0.22", "198.18.0.23"];
const BACKENDS6: [&str; 3] = ["2001:db8::21", "2001:db8::22", "2001:db8::23"];
const PAYLOAD: &[u8] = b"hello, backend";

/// The fixture addresses of one family.
struct Addrs {
    vip: &'static str,
    client: &'static str,
    backends: [&'static str; 3],
}

impl Addrs {
    fn of(family: Family) -> Addrs {
        family.pick(
            Addrs {
                vip: VIP4,
                client: CLIENT4,
                backends: BACKENDS4,
            },
            Addrs {
                vip: VIP6,
                client: CLIENT6,
                backends: BACKENDS6,
            },
        )
    }
}

fn weights<'a>(addrs: &[&'a str]) -> Vec<(&'a str, u32)> {
    addrs.iter().map(|a| (*a, 1)).collect()
}

/// The backend the Maglev table picks for a flow, computed from the programmed table and
/// the shared hash (what every node computes).
fn maglev_pick(t: &TestDataplane, spec: &ServiceSpec, flow: &Flow) -> IpAddr {
    let ring = t.dp.ring_backends(&spec.id).expect("service programmed");
    let (src, _) = encode_addr(flow.src);
    let (dst, _) = encode_addr(flow.dst);
    let h = match spec.hash {
        HashMode::FiveTuple => hash::flow_hash(
            &src,
            &dst,
            flow.sport.to_be(),
            flow.dport.to_be(),
            flow.proto,
        ),
        HashMode::Source => hash::src_hash(&src),
    };
    ring[(h % spec.table_size) as usize]
        .expect("slot has a backend")
        .0
}

/// The backend a DR output frame was sent to, from its destination MAC.
fn dr_target(out: &[u8], candidates: &[&str]) -> IpAddr {
    candidates
        .iter()
        .map(|a| a.parse::<IpAddr>().unwrap())
        .find(|a| backend_mac(*a) == out[0..6])
        .expect("destination MAC is one of the backends'")
}

fn dr_expected(input: &[u8], backend: IpAddr) -> Vec<u8> {
    let mut want = input.to_vec();
    want[0..6].copy_from_slice(&backend_mac(backend));
    want[6..12].copy_from_slice(&LB_MAC);
    want
}

/// A frame from the client's router to the LB carrying `flow`.
fn frame_of(flow: &Flow) -> Vec<u8> {
    frames::frame(LB_MAC, CLIENT_MAC, None, flow, PAYLOAD)
}

/// The usual fixture service: IPv4 VIP port 80, DR, three backends of weight 1.
fn dr_v4_service() -> ServiceSpec {
    service(
        VIP4,
        80,
        Protocol::Tcp,
        ForwardMode::Dr,
        &weights(&BACKENDS4),
    )
}

fn setup(spec: &ServiceSpec) -> TestDataplane {
    let mut t = TestDataplane::new();
    t.dp.apply_service(spec).expect("apply service");
    t
}

fn check_dr(spec: &ServiceSpec, flow: Flow, vlan: Option<u16>, candidates: &[&str]) {
    let mut t = setup(spec);
    let input = frames::frame(LB_MAC, CLIENT_MAC, vlan, &flow, PAYLOAD);
    let out = t.run(&input);
    assert_eq!(out.action, XDP_TX, "DR verdict");
    let backend = maglev_pick(&t, spec, &flow);
    assert_eq!(dr_target(&out.frame, candidates), backend);
    assert_eq!(
        out.frame,
        dr_expected(&input, backend),
        "only the MACs change"
    );
    assert_eq!(t.counter(Counter::ConntrackMiss), 1);
    // The same flow again: a connection-table hit, same backend.
    let again = t.run(&input);
    assert_eq!(again.frame, out.frame);
    assert_eq!(t.counter(Counter::ConntrackHit), 1);
}

#[test]
fn a_new_syn_on_a_remembered_tuple_is_scheduled_afresh() {
    // A client reusing a source port starts a new connection: it goes where Maglev
    // says now (as on every other node), not where the old connection went.
    let spec = dr_v4_service();
    let mut t = setup(&spec);
    let flow = Flow::tcp(CLIENT4, 40123, VIP4, 80);
    let old = dr_target(&t.run(&frame_of(&flow)).frame, &BACKENDS4);
    // The old connection's backend is drained: established packets still reach it...
    let mut drained = spec.clone();
    for b in &mut drained.backends {
        if b.addr == old {
            b.weight = 0;
        }
    }
    t.dp.apply_service(&drained).expect("drain");
    assert_eq!(dr_target(&t.run(&frame_of(&flow)).frame, &BACKENDS4), old);
    // ...a new SYN on the same tuple goes to the current Maglev choice.
    let syn = flow.with_flags(frames::TCP_SYN);
    let new = dr_target(&t.run(&frame_of(&syn)).frame, &BACKENDS4);
    assert_ne!(new, old);
    assert_eq!(new, maglev_pick(&t, &drained, &syn));
    // Retransmitted SYNs and the connection's next packets stay there.
    assert_eq!(dr_target(&t.run(&frame_of(&syn)).frame, &BACKENDS4), new);
    assert_eq!(dr_target(&t.run(&frame_of(&flow)).frame, &BACKENDS4), new);
}

#[test]
fn dr_rewrites_only_the_macs_in_both_families() {
    // (family, protocol, service port, client port)
    let cases = [
        (V4, Protocol::Tcp, 80, 40000),
        (V4, Protocol::Udp, 53, 40001),
        (V6, Protocol::Tcp, 443, 40002),
        (V6, Protocol::Udp, 53, 40003),
    ];
    for case in cases {
        announce(&case);
        let (family, proto, port, sport) = case;
        let addrs = Addrs::of(family);
        let spec = service(
            addrs.vip,
            port,
            proto,
            ForwardMode::Dr,
            &weights(&addrs.backends),
        );
        let flow = service_flow(proto, addrs.client, sport, addrs.vip, port);
        check_dr(&spec, flow, None, &addrs.backends);
    }
}

#[test]
fn dr_vlan_tag_is_kept() {
    let spec = dr_v4_service();
    check_dr(
        &spec,
        Flow::tcp(CLIENT4, 40004, VIP4, 80),
        Some(0x0064),
        &BACKENDS4,
    );
}

/// Builds the expected tunnel frame from scratch: new Ethernet header (VLAN kept), outer
/// header with a from-scratch checksum, then the untouched inner datagram.
fn tun_expected(input: &[u8], vlan: Option<u16>, backend: IpAddr, inner_is_v4: bool) -> Vec<u8> {
    let l2 = if vlan.is_some() { 18 } else { 14 };
    let inner = &input[l2..];
    let mut want = frames::eth(
        backend_mac(backend),
        LB_MAC,
        vlan,
        frames::ethertype_of(backend),
    );
    match backend {
        IpAddr::V4(b) => want.extend_from_slice(&frames::outer_ipv4(
            LB_V4.parse().unwrap(),
            b,
            inner.len(),
            0,
        )),
        IpAddr::V6(b) => {
            let next = if inner_is_v4 { 4 } else { 41 };
            want.extend_from_slice(&frames::outer_ipv6(
                LB_V6.parse().unwrap(),
                b,
                inner.len(),
                next,
            ))
        }
    }
    want.extend_from_slice(inner);
    want
}

fn check_tun(spec: &ServiceSpec, flow: Flow, vlan: Option<u16>) {
    let mut t = setup(spec);
    let input = frames::frame(LB_MAC, CLIENT_MAC, vlan, &flow, PAYLOAD);
    let out = t.run(&input);
    assert_eq!(out.action, XDP_TX, "TUN verdict");
    let backend = maglev_pick(&t, spec, &flow);
    let want = tun_expected(&input, vlan, backend, flow.dst.is_ipv4());
    assert_eq!(out.frame, want, "encapsulated frame");
    if backend.is_ipv4() {
        let l2 = if vlan.is_some() { 18 } else { 14 };
        assert_eq!(
            frames::checksum(&out.frame[l2..l2 + 20], 0),
            0,
            "outer IPv4 checksum verifies"
        );
    }
}

#[test]
fn tun_encapsulates_every_family_pair() {
    // (VIP family, backend family, protocol, service port, client port, VLAN)
    let cases = [
        (V4, V4, Protocol::Tcp, 80, 41000, None),
        (V4, V4, Protocol::Udp, 53, 41001, Some(0x0123)),
        (V6, V6, Protocol::Tcp, 80, 41002, None),
        (V4, V6, Protocol::Tcp, 80, 41003, None),
    ];
    for case in cases {
        announce(&case);
        let (inner, outer, proto, port, sport, vlan) = case;
        let (vip, client) = (Addrs::of(inner).vip, Addrs::of(inner).client);
        let spec = service(
            vip,
            port,
            proto,
            ForwardMode::Tun,
            &weights(&Addrs::of(outer).backends),
        );
        check_tun(&spec, service_flow(proto, client, sport, vip, port), vlan);
    }
}

#[test]
fn tun_keeps_dscp_in_outer_header() {
    let spec = service(
        VIP4,
        80,
        Protocol::Tcp,
        ForwardMode::Tun,
        &[(BACKENDS4[0], 1)],
    );
    let mut t = setup(&spec);
    let flow = Flow::tcp(CLIENT4, 41004, VIP4, 80);
    let mut input = frame_of(&flow);
    // Set TOS 0xb8 (EF) in the inner header and fix its checksum.
    input[15] = 0xb8;
    input[24..26].copy_from_slice(&[0, 0]);
    let c = frames::checksum(&input[14..34], 0);
    input[24..26].copy_from_slice(&c.to_be_bytes());
    let out = t.run(&input);
    assert_eq!(out.action, XDP_TX);
    let b: Ipv4Addr = BACKENDS4[0].parse().unwrap();
    let mut want = frames::eth(backend_mac(b.into()), LB_MAC, None, frames::ETH_P_IP);
    want.extend_from_slice(&frames::outer_ipv4(
        LB_V4.parse().unwrap(),
        b,
        input.len() - 14,
        0xb8,
    ));
    want.extend_from_slice(&input[14..]);
    assert_eq!(out.frame, want);
}

#[test]
fn wildcard_port_and_exact_match_wins() {
    let mut t = TestDataplane::new();
    let exact = service(
        VIP4,
        80,
        Protocol::Tcp,
        ForwardMode::Dr,
        &[(BACKENDS4[0], 1)],
    );
    let wildcard = service(
        VIP4,
        0,
        Protocol::Tcp,
        ForwardMode::Dr,
        &[(BACKENDS4[1], 1)],
    );
    t.dp.apply_service(&exact).unwrap();
    t.dp.apply_service(&wildcard).unwrap();
    let to80 = frame_of(&Flow::tcp(CLIENT4, 42000, VIP4, 80));
    let to8080 = frame_of(&Flow::tcp(CLIENT4, 42000, VIP4, 8080));
    let out = t.run(&to80);
    assert_eq!(out.action, XDP_TX);
    assert_eq!(
        dr_target(&out.frame, &BACKENDS4),
        BACKENDS4[0].parse::<IpAddr>().unwrap()
    );
    let out = t.run(&to8080);
    assert_eq!(out.action, XDP_TX);
    assert_eq!(
        dr_target(&out.frame, &BACKENDS4),
        BACKENDS4[1].parse::<IpAddr>().unwrap()
    );
    // UDP to the same VIP has no service: passes untouched.
    let udp = frame_of(&Flow::udp(CLIENT4, 42000, VIP4, 80));
    let out = t.run(&udp);
    assert_eq!((out.action, out.frame), (XDP_PASS, udp));
}

fn assert_passes_untouched(t: &mut TestDataplane, input: &[u8]) {
    let out = t.run(input);
    assert_eq!(out.action, XDP_PASS);
    assert_eq!(out.frame, input, "frame untouched");
}

#[test]
fn non_vip_vrrp_arp_and_icmp_pass_untouched() {
    let spec = dr_v4_service();
    let mut t = setup(&spec);
    // TCP to another address, and to the VIP on another port.
    assert_passes_untouched(&mut t, &frame_of(&Flow::tcp(CLIENT4, 1, "198.18.1.1", 22)));
    assert_passes_untouched(&mut t, &frame_of(&Flow::tcp(CLIENT4, 1, VIP4, 22)));
    // VRRP advert (IP protocol 112) to 224.0.0.18, and one addressed to the VIP itself.
    for dst in ["224.0.0.18", VIP4] {
        let mut f = frames::eth(
            [0x01, 0x00, 0x5e, 0, 0, 0x12],
            CLIENT_MAC,
            None,
            frames::ETH_P_IP,
        );
        let vrrp = [0x21, 51, 100, 1, 0, 1, 0, 0, 198, 18, 1, 100, 0, 0, 0, 0];
        f.extend_from_slice(&frames::ipv4_header(
            CLIENT4.parse().unwrap(),
            dst.parse().unwrap(),
            frames::VRRP,
            vrrp.len(),
            &[],
            0,
            255,
        ));
        f.extend_from_slice(&vrrp);
        assert_passes_untouched(&mut t, &f);
    }
    // ARP for the VIP.
    assert_passes_untouched(
        &mut t,
        &frames::arp_request(CLIENT_MAC, CLIENT4.parse().unwrap(), VIP4.parse().unwrap()),
    );
    // ICMP echo to the VIP.
    let mut f = frames::eth(LB_MAC, CLIENT_MAC, None, frames::ETH_P_IP);
    let icmp = [8, 0, 0xf7, 0xff, 0, 0, 0, 0];
    f.extend_from_slice(&frames::ipv4_header(
        CLIENT4.parse().unwrap(),
        VIP4.parse().unwrap(),
        frames::ICMP,
        icmp.len(),
        &[],
        0,
        64,
    ));
    f.extend_from_slice(&icmp);
    assert_passes_untouched(&mut t, &f);
    // ICMPv6 (neighbour solicitation-like) passes too.
    let mut f = frames::eth(LB_MAC, CLIENT_MAC, None, frames::ETH_P_IPV6);
    f.extend_from_slice(&frames::ipv6_header(
        CLIENT6.parse().unwrap(),
        VIP6.parse().unwrap(),
        58,
        8,
        255,
    ));
    f.extend_from_slice(&[135, 0, 0, 0, 0, 0, 0, 0]);
    assert_passes_untouched(&mut t, &f);
    assert_eq!(t.counter(Counter::VipPackets), 0);
    assert_eq!(t.counter(Counter::VerdictPass), 7);
}

#[test]
fn truncated_frames_are_dropped_and_counted() {
    let spec = dr_v4_service();
    let mut t = setup(&spec);
    let v4 = frames::frame(
        LB_MAC,
        CLIENT_MAC,
        None,
        &Flow::tcp(CLIENT4, 43000, VIP4, 80),
        b"",
    );
    let v6 = frames::frame(
        LB_MAC,
        CLIENT_MAC,
        None,
        &Flow::tcp(CLIENT6, 43000, VIP6, 80),
        b"",
    );
    let vlan = frames::frame(
        LB_MAC,
        CLIENT_MAC,
        Some(5),
        &Flow::tcp(CLIENT4, 43000, VIP4, 80),
        b"",
    );
    // (BPF_PROG_TEST_RUN refuses frames shorter than an Ethernet header, so a cut VLAN
    // tag is the shortest truncation it can show.)
    let cases: [(&[u8], Counter); 4] = [
        (&vlan[..16], Counter::TruncatedEth),
        (&v4[..14 + 19], Counter::TruncatedIpv4),
        (&v6[..14 + 39], Counter::TruncatedIpv6),
        (&v4[..14 + 20 + 19], Counter::TruncatedL4),
    ];
    for (frame, counter) in cases {
        let before = t.counter(counter);
        let out = t.run(frame);
        assert_eq!(out.action, XDP_DROP, "{counter:?}");
        assert_eq!(t.counter(counter), before + 1, "{counter:?} counted");
    }
    // IHL below 5 is malformed.
    let mut bad = v4.clone();
    bad[14] = 0x44;
    assert_eq!(t.run(&bad).action, XDP_DROP);
    assert_eq!(t.counter(Counter::MalformedIpv4), 1);
    assert_eq!(t.counter(Counter::VerdictDrop), 5);
}

#[test]
fn ipv4_options_are_forwarded_and_counted() {
    let spec = dr_v4_service();
    let mut t = setup(&spec);
    let flow = Flow::tcp(CLIENT4, 44000, VIP4, 80);
    let seg = frames::l4(&flow, PAYLOAD);
    // Router alert (4 bytes).
    let opts = [0x94, 0x04, 0x00, 0x00];
    let mut input = frames::eth(LB_MAC, CLIENT_MAC, None, frames::ETH_P_IP);
    input.extend_from_slice(&frames::ipv4_header(
        CLIENT4.parse().unwrap(),
        VIP4.parse().unwrap(),
        frames::TCP,
        seg.len(),
        &opts,
        0,
        64,
    ));
    input.extend_from_slice(&seg);
    let out = t.run(&input);
    assert_eq!(out.action, XDP_TX);
    let backend = maglev_pick(&t, &spec, &flow);
    assert_eq!(out.frame, dr_expected(&input, backend));
    assert_eq!(t.counter(Counter::Ipv4Options), 1);
}

#[test]
fn fragments_pass_to_the_kernel_and_are_counted() {
    let spec = dr_v4_service();
    let mut t = setup(&spec);
    let flow = Flow::tcp(CLIENT4, 45000, VIP4, 80);
    let seg = frames::l4(&flow, PAYLOAD);
    for frag_off in [0x2000u16, 0x0010] {
        // First fragment (MF) and a later one (offset 16 * 8).
        let mut f = frames::eth(LB_MAC, CLIENT_MAC, None, frames::ETH_P_IP);
        f.extend_from_slice(&frames::ipv4_header(
            CLIENT4.parse().unwrap(),
            VIP4.parse().unwrap(),
            frames::TCP,
            seg.len(),
            &[],
            frag_off,
            64,
        ));
        f.extend_from_slice(&seg);
        assert_passes_untouched(&mut t, &f);
    }
    assert_eq!(t.counter(Counter::Ipv4Fragment), 2);
    // IPv6 fragment header (44) and hop-by-hop options (0).
    for (next, counter) in [(44u8, Counter::Ipv6Fragment), (0u8, Counter::Ipv6ExtHeader)] {
        let mut f = frames::eth(LB_MAC, CLIENT_MAC, None, frames::ETH_P_IPV6);
        f.extend_from_slice(&frames::ipv6_header(
            CLIENT6.parse().unwrap(),
            VIP6.parse().unwrap(),
            next,
            8,
            64,
        ));
        f.extend_from_slice(&[6, 0, 0, 0, 0, 0, 0, 0]);
        assert_passes_untouched(&mut t, &f);
        assert_eq!(t.counter(counter), 1);
    }
}

/// Source ports of flows whose Maglev slot belongs to `owner` in the current table.
fn flows_owned_by(t: &TestDataplane, spec: &ServiceSpec, owner: &str, count: usize) -> Vec<Flow> {
    let owner: IpAddr = owner.parse().unwrap();
    (1024..u16::MAX)
        .map(|p| Flow::tcp(CLIENT4, p, VIP4, 80))
        .filter(|f| maglev_pick(t, spec, f) == owner)
        .take(count)
        .collect()
}

#[test]
fn connection_table_keeps_a_flow_whose_slot_moved() {
    let mut spec = service(
        VIP4,
        80,
        Protocol::Tcp,
        ForwardMode::Dr,
        &weights(&BACKENDS4[..2]),
    );
    let mut t = setup(&spec);
    let before: Vec<(Flow, IpAddr)> = (2000..2400)
        .map(|p| Flow::tcp(CLIENT4, p, VIP4, 80))
        .map(|f| (f, maglev_pick(&t, &spec, &f)))
        .collect();
    for (f, _) in &before {
        assert_eq!(t.run(&frame_of(f)).action, XDP_TX);
    }
    // A third backend takes over a share of the slots.
    spec.backends.push(backend(BACKENDS4[2], 1));
    t.dp.apply_service(&spec).unwrap();
    let moved: Vec<&(Flow, IpAddr)> = before
        .iter()
        .filter(|(f, old)| maglev_pick(&t, &spec, f) != *old)
        .collect();
    assert!(!moved.is_empty(), "adding a backend moves some slots");
    for (f, old) in moved {
        let input = frame_of(f);
        let out = t.run(&input);
        assert_eq!(
            out.frame,
            dr_expected(&input, *old),
            "established flow keeps its backend"
        );
    }
    // A new flow whose slot is the new backend's goes there.
    let fresh = flows_owned_by(&t, &spec, BACKENDS4[2], 1)[0].with_sport(60001);
    let target = maglev_pick(&t, &spec, &fresh);
    let input = frame_of(&fresh);
    assert_eq!(t.run(&input).frame, dr_expected(&input, target));
}

#[test]
fn flow_of_a_removed_backend_is_rehashed() {
    let mut spec = dr_v4_service();
    let mut t = setup(&spec);
    let flow = flows_owned_by(&t, &spec, BACKENDS4[0], 1)[0];
    let input = frame_of(&flow);
    assert_eq!(
        t.run(&input).frame,
        dr_expected(&input, BACKENDS4[0].parse().unwrap())
    );
    spec.backends.remove(0);
    t.dp.apply_service(&spec).unwrap();
    let now = maglev_pick(&t, &spec, &flow);
    assert_ne!(now, BACKENDS4[0].parse::<IpAddr>().unwrap());
    let out = t.run(&input);
    assert_eq!(out.action, XDP_TX);
    assert_eq!(
        out.frame,
        dr_expected(&input, now),
        "re-hashed onto a live backend"
    );
    assert_eq!(t.counter(Counter::ConntrackStale), 1);
    // Re-adding the backend gives it a new generation: the old entry stays dead, the flow
    // stays on its new backend.
    spec.backends.push(backend(BACKENDS4[0], 1));
    t.dp.apply_service(&spec).unwrap();
    assert_eq!(t.run(&input).frame, dr_expected(&input, now));
}

#[test]
fn weight_zero_drains_new_flows_but_keeps_established_ones() {
    let mut spec = dr_v4_service();
    let mut t = setup(&spec);
    let established = flows_owned_by(&t, &spec, BACKENDS4[1], 1)[0];
    let input = frame_of(&established);
    assert_eq!(
        t.run(&input).frame,
        dr_expected(&input, BACKENDS4[1].parse().unwrap())
    );
    spec.backends[1].weight = 0;
    t.dp.apply_service(&spec).unwrap();
    assert_eq!(
        t.run(&input).frame,
        dr_expected(&input, BACKENDS4[1].parse().unwrap()),
        "established flow continues"
    );
    for p in 3000..3200 {
        let f = Flow::tcp(CLIENT4, p, VIP4, 80);
        let out = t.run(&frame_of(&f));
        assert_ne!(
            dr_target(&out.frame, &BACKENDS4),
            BACKENDS4[1].parse::<IpAddr>().unwrap(),
            "no new flow to a weight-0 backend"
        );
    }
}

#[test]
fn no_backend_drops_and_counts() {
    let spec = service(
        VIP4,
        80,
        Protocol::Tcp,
        ForwardMode::Dr,
        &[(BACKENDS4[0], 0)],
    );
    let mut t = setup(&spec);
    let input = frame_of(&Flow::tcp(CLIENT4, 46000, VIP4, 80));
    assert_eq!(t.run(&input).action, XDP_DROP);
    assert_eq!(t.counter(Counter::NoBackend), 1);
}

#[test]
fn source_hash_sends_every_flow_of_a_client_to_one_backend() {
    let mut spec = service(
        VIP4,
        0,
        Protocol::Tcp,
        ForwardMode::Dr,
        &weights(&BACKENDS4),
    );
    spec.hash = HashMode::Source;
    let mut t = setup(&spec);
    for client in ["203.0.113.1", "203.0.113.2", "203.0.113.3", "203.0.113.4"] {
        let (src, _) = encode_addr(client.parse().unwrap());
        let ring = t.dp.ring_backends(&spec.id).unwrap();
        let want = ring[(hash::src_hash(&src) % spec.table_size) as usize]
            .unwrap()
            .0;
        for (sport, dport) in [(1000, 80), (2000, 443), (3000, 8080)] {
            let input = frame_of(&Flow::tcp(client, sport, VIP4, dport));
            assert_eq!(
                t.run(&input).frame,
                dr_expected(&input, want),
                "{client}:{sport} -> {dport}"
            );
        }
    }
}

#[test]
fn persistence_keeps_a_client_on_its_backend_across_ports() {
    let mut spec = dr_v4_service();
    spec.persistence_timeout = Some(seconds(300));
    let mut t = setup(&spec);
    let first = Flow::tcp(CLIENT4, 47000, VIP4, 80);
    let input = frame_of(&first);
    let out = t.run(&input);
    let chosen = dr_target(&out.frame, &BACKENDS4);
    // Find source ports that Maglev alone would send elsewhere: persistence overrides.
    let others: Vec<Flow> = (47001..48000)
        .map(|p| first.with_sport(p))
        .filter(|f| maglev_pick(&t, &spec, f) != chosen)
        .take(20)
        .collect();
    assert!(!others.is_empty());
    for f in others {
        let input = frame_of(&f);
        assert_eq!(t.run(&input).frame, dr_expected(&input, chosen));
    }
}

/// keepalived's `persistence_granularity`: clients of the first client's network (/24,
/// IPv6 /64) share its persistence entry, whatever Maglev alone would pick for them; a
/// client outside it is scheduled on its own.
/// The Maglev tables are written in memory (`BPF_F_MMAPABLE`), not a system call per
/// slot, and what the program reads is what was written.
#[test]
fn maglev_tables_are_written_in_memory() {
    let spec = dr_v4_service();
    let t = setup(&spec);
    assert!(t.dp.maglev_in_memory());
    let ring = t.dp.ring_backends(&spec.id).expect("service programmed");
    assert_eq!(ring.len(), spec.table_size as usize);
    assert!(
        ring.iter().all(Option::is_some),
        "every slot holds a backend"
    );
}

#[test]
fn persistence_granularity_keeps_a_network_on_one_backend() {
    for family in [Family::V4, Family::V6] {
        let a = Addrs::of(family);
        let mut spec = service(
            a.vip,
            80,
            Protocol::Tcp,
            ForwardMode::Dr,
            &weights(&a.backends),
        );
        spec.persistence_timeout = Some(seconds(300));
        spec.persistence_prefix = Some(family.pick(24, 64));
        let mut t = setup(&spec);
        let first = Flow::tcp(a.client, 47000, a.vip, 80);
        let input = frame_of(&first);
        let chosen = dr_target(&t.run(&input).frame, &a.backends);
        // Neighbours of the client (same network, other host bits) that Maglev alone
        // would send elsewhere.
        let neighbour = |i: u16| -> Flow {
            let src: IpAddr = match first.src {
                IpAddr::V4(v) => {
                    let o = v.octets();
                    IpAddr::from([o[0], o[1], o[2], (i % 250) as u8 + 1])
                }
                IpAddr::V6(v) => {
                    let mut s = v.segments();
                    s[7] = i;
                    IpAddr::from(s)
                }
            };
            Flow { src, ..first }.with_sport(47000 + i)
        };
        let moved: Vec<Flow> = (1..200)
            .map(neighbour)
            .filter(|f| f.src != first.src && maglev_pick(&t, &spec, f) != chosen)
            .take(10)
            .collect();
        assert!(!moved.is_empty(), "{family:?}");
        for f in moved {
            let input = frame_of(&f);
            assert_eq!(
                t.run(&input).frame,
                dr_expected(&input, chosen),
                "{family:?} {}",
                f.src
            );
        }
        // Outside the network: Maglev's own pick.
        let far: IpAddr = family
            .pick("198.51.100.9", "2001:db8:fe::9")
            .parse()
            .unwrap();
        let f = Flow { src: far, ..first };
        let input = frame_of(&f);
        let want = maglev_pick(&t, &spec, &f);
        assert_eq!(t.run(&input).frame, dr_expected(&input, want), "{family:?}");
    }
}

/// keepalived's `virtual_server fwmark 1` on XDP: VIP4:80, VIP4:443 and a second
/// address's :8443 scheduled as one service.
fn group_service(persistent: bool) -> ServiceSpec {
    let mut spec = dr_v4_service();
    spec.id = ServiceId::fwmark(1, false);
    spec.group = Some(ServiceGroup {
        mark: 1,
        members: [(VIP4, 80), (VIP4, 443), (VIP4_OTHER, 8443)]
            .map(|(vip, port)| ServiceId {
                vip: vip.parse().unwrap(),
                port,
                protocol: Protocol::Tcp,
            })
            .to_vec(),
    });
    if persistent {
        spec.persistence_timeout = Some(seconds(300));
    }
    spec
}

const VIP4_OTHER: &str = "198.18.1.101";

#[test]
fn group_persistence_keeps_a_client_on_its_real_across_members() {
    let spec = group_service(true);
    let mut t = setup(&spec);
    let first = Flow::tcp(CLIENT4, 51000, VIP4, 80);
    let input = frame_of(&first);
    let out = t.run(&input);
    assert_eq!(out.action, XDP_TX);
    let chosen = dr_target(&out.frame, &BACKENDS4);
    assert_eq!(out.frame, dr_expected(&input, chosen));
    // Flows to the other members that Maglev alone would send elsewhere: the group's
    // one template per client overrides, whatever the address and port.
    for (vip, port) in [(VIP4, 443), (VIP4_OTHER, 8443)] {
        let others: Vec<Flow> = (51001..52000)
            .map(|p| Flow::tcp(CLIENT4, p, vip, port))
            .filter(|f| maglev_pick(&t, &spec, f) != chosen)
            .take(10)
            .collect();
        assert!(!others.is_empty(), "{vip}:{port}");
        for f in others {
            let input = frame_of(&f);
            let out = t.run(&input);
            assert_eq!(out.action, XDP_TX, "{vip}:{port}");
            assert_eq!(out.frame, dr_expected(&input, chosen), "{vip}:{port}");
        }
    }
}

#[test]
fn group_members_share_the_service_and_its_table() {
    let spec = group_service(false);
    let mut t = setup(&spec);
    for (vip, port) in [(VIP4, 80), (VIP4, 443), (VIP4_OTHER, 8443)] {
        let flow = Flow::tcp(CLIENT4, 52000, vip, port);
        let input = frame_of(&flow);
        let out = t.run(&input);
        assert_eq!(out.action, XDP_TX, "{vip}:{port}");
        assert_eq!(
            out.frame,
            dr_expected(&input, maglev_pick(&t, &spec, &flow)),
            "{vip}:{port}"
        );
    }
    // Only the listed (address, port)s: VIP4_OTHER:80 is no member.
    let input = frame_of(&Flow::tcp(CLIENT4, 52000, VIP4_OTHER, 80));
    assert_eq!(t.run(&input).action, XDP_PASS);
}

#[test]
fn group_members_stop_matching_when_dropped_or_removed() {
    let mut spec = group_service(false);
    let mut t = setup(&spec);
    let member = frame_of(&Flow::tcp(CLIENT4, 53000, VIP4_OTHER, 8443));
    assert_eq!(t.run(&member).action, XDP_TX);
    spec.group.as_mut().unwrap().members.truncate(2);
    t.dp.apply_service(&spec).expect("apply service");
    assert_eq!(t.run(&member).action, XDP_PASS);
    let still = frame_of(&Flow::tcp(CLIENT4, 53000, VIP4, 443));
    assert_eq!(t.run(&still).action, XDP_TX);
    t.dp.remove_service(&spec.id).expect("remove service");
    assert_eq!(t.run(&still).action, XDP_PASS);
}

#[test]
fn backend_on_another_interface_is_redirected() {
    let mut spec = service(
        VIP4,
        80,
        Protocol::Tcp,
        ForwardMode::Dr,
        &[(BACKENDS4[0], 1)],
    );
    // BPF_PROG_TEST_RUN runs as if received on lo (ifindex 1); egress elsewhere.
    spec.backends[0].egress.ifindex = 4242;
    let mut t = setup(&spec);
    let input = frame_of(&Flow::tcp(CLIENT4, 48000, VIP4, 80));
    let out = t.run(&input);
    assert_eq!(out.action, XDP_REDIRECT);
    assert_eq!(
        out.frame,
        dr_expected(&input, BACKENDS4[0].parse().unwrap())
    );
    assert_eq!(t.counter(Counter::VerdictRedirect), 1);
}

#[test]
fn counters_per_service_and_backend() {
    let spec = service(
        VIP4,
        80,
        Protocol::Tcp,
        ForwardMode::Dr,
        &[(BACKENDS4[0], 1)],
    );
    let mut t = setup(&spec);
    let input = frame_of(&Flow::tcp(CLIENT4, 49000, VIP4, 80));
    for _ in 0..3 {
        t.run(&input);
    }
    let status = t.dp.status().unwrap();
    assert_eq!(status.len(), 1);
    assert_eq!(status[0].traffic.packets, 3);
    assert_eq!(status[0].traffic.bytes, 3 * input.len() as u64);
    assert_eq!(status[0].backends[0].traffic.packets, 3);
    assert_eq!(status[0].backends[0].slots, 251);
    assert_eq!(t.counter(Counter::VipPackets), 3);
    assert_eq!(t.counter(Counter::VerdictTx), 3);
}

#[test]
fn removing_a_service_stops_matching() {
    let spec = dr_v4_service();
    let mut t = setup(&spec);
    let input = frame_of(&Flow::tcp(CLIENT4, 50000, VIP4, 80));
    assert_eq!(t.run(&input).action, XDP_TX);
    t.dp.remove_service(&spec.id).unwrap();
    assert_passes_untouched(&mut t, &input);
    assert!(
        t.dp.remove_service(&spec.id).is_err(),
        "second removal reports the missing service"
    );
}

#[test]
fn ipv6_vip_with_ipv4_dr_backend_is_rejected() {
    let mut t = TestDataplane::new();
    let spec = service(
        VIP6,
        80,
        Protocol::Tcp,
        ForwardMode::Dr,
        &[(BACKENDS4[0], 1)],
    );
    let err = t.dp.apply_service(&spec).unwrap_err().to_string();
    assert!(err.contains("DR"), "{err}");
    assert!(t.dp.service_ids().is_empty(), "nothing programmed");
}

#[test]
fn restarted_dataplane_adopts_pinned_maps_and_keeps_flows() {
    let pin_dir = unique_pin_dir("adopt");
    let opts = lb_daemon::dataplane::LoadOptions {
        pin_dir: pin_dir.clone(),
        capacity: lb_daemon::dataplane::Capacity {
            maglev_slots: 4 * 65537,
            conntrack: 4096,
            ..Default::default()
        },
    };
    let mut spec = service(
        VIP4,
        80,
        Protocol::Tcp,
        ForwardMode::Dr,
        &weights(&BACKENDS4[..2]),
    );
    let flow = Flow::tcp(CLIENT4, 51000, VIP4, 80);
    let input = frame_of(&flow);
    let first_target;
    {
        let mut dp = lb_daemon::dataplane::Dataplane::load(&opts).unwrap();
        assert!(!dp.adopted());
        dp.apply_service(&spec).unwrap();
        pin_to_cpu0();
        let out = dp
            .test_run(lb_common::program_names::LB, &input, 1)
            .unwrap();
        first_target = out.frame[0..6].to_vec();
    }
    let mut dp = lb_daemon::dataplane::Dataplane::load(&opts).unwrap();
    assert!(dp.adopted(), "pinned maps re-used");
    assert_eq!(dp.service_ids(), vec![spec.id]);
    // Re-applying the same backends writes no slot; adding one keeps the old flow.
    spec.backends.push(backend(BACKENDS4[2], 1));
    let report = dp.apply_service(&spec).unwrap();
    assert_eq!(report.backends_added, 1);
    assert!(!report.created);
    pin_to_cpu0();
    let out = dp
        .test_run(lb_common::program_names::LB, &input, 1)
        .unwrap();
    assert_eq!(
        out.frame[0..6],
        first_target[..],
        "connection table survived the restart"
    );
    drop(dp);
    lb_daemon::dataplane::bpffs::remove_pins(&pin_dir);
}

#[test]
fn decap_strips_every_tunnel_variant_and_passes_the_rest() {
    let mut t = TestDataplane::new();
    let cases: [(&str, &str, &str); 3] = [
        (CLIENT4, VIP4, BACKENDS4[0]),
        (CLIENT6, VIP6, BACKENDS6[0]),
        (CLIENT4, VIP4, BACKENDS6[0]),
    ];
    for (client, vip, backend) in cases {
        let flow = Flow::tcp(client, 52000, vip, 80);
        let plain = frame_of(&flow);
        let b: IpAddr = backend.parse().unwrap();
        let tunnelled = tun_expected(&plain, None, b, flow.dst.is_ipv4());
        let out = t.run_program(lb_common::program_names::DECAP, &tunnelled, 1);
        assert_eq!(out.action, XDP_PASS);
        let mut want = frames::eth(backend_mac(b), LB_MAC, None, frames::ethertype_of(flow.dst));
        want.extend_from_slice(&plain[14..]);
        assert_eq!(out.frame, want, "{client} -> {vip} via {backend}");
    }
    assert_eq!(t.counter(Counter::Decapsulated), 3);
    // Not tunnelled: untouched.
    let plain = frames::frame(
        LB_MAC,
        CLIENT_MAC,
        Some(7),
        &Flow::udp(CLIENT4, 1, VIP4, 53),
        PAYLOAD,
    );
    let out = t.run_program(lb_common::program_names::DECAP, &plain, 1);
    assert_eq!((out.action, out.frame), (XDP_PASS, plain));
}
