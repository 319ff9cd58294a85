//! NAT packet fixtures through BPF_PROG_TEST_RUN: every translation in both directions
//! and both families, port translation, full-NAT, ICMP errors, connection states and a
//! full table. Expected frames are built from scratch (`frames`), so comparing them
//! byte for byte checks the incremental checksums against from-scratch ones; every
//! output is also checked with `frames::assert_checksums`.
//!
//! Replies are routed by the kernel's FIB (`bpf_fib_lookup`), so each test runs in its
//! own network namespace where the fixture clients sit behind interface `out0`.
//! Needs root.

use std::net::IpAddr;

use lb_common::{hash, nat_state, Counter};
use lb_daemon::{
    dataplane::{spec::encode_addr, Capacity, ForwardMode, NatTimeouts, Protocol, ServiceSpec},
    netns::Netns,
};
use lb_tests::{
    family::{announce, Family, Family::*},
    frames::{self, Flow, Icmp, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN},
    harness::*,
};

const VIP4: &str = "198.18.1.100";
const VIP6: &str = "2001:db8:1::100";
const CLIENT4: &str = "203.0.113.7";
const CLIENT6: &str = "2001:db8:ff::7";
const REALS4: [&str; 3] = ["198.18.0.21", "198.18.0.22", "198.18.0.23"];
const REALS6: [&str; 3] = ["2001:db8::21", "2001:db8::22", "2001:db8::23"];
const SNAT4: &str = "198.18.0.1";
const SNAT6: &str = "2001:db8::1";
/// A router on the reals' side, and one on the client's side.
const ROUTER_IN4: &str = "198.18.0.254";
const ROUTER_OUT4: &str = "203.0.113.254";
const ROUTER_IN6: &str = "2001:db8::fe";
const REAL_PORT: u16 = 8080;
const CLIENT_PORT: u16 = 40000;
/// MAC of `out0`, the interface towards the clients.
const OUT_MAC: [u8; 6] = [0x02, 0x0f, 0x00, 0x00, 0x00, 0x01];
const PAYLOAD: &[u8] = b"hello, real server";

/// The fixture addresses of one family.
#[derive(Clone, Copy)]
struct Addrs {
    vip: &'static str,
    client: &'static str,
    reals: [&'static str; 3],
    /// The LB's own address on the reals' side (full-NAT's source).
    snat: &'static str,
    /// A router on the reals' side.
    router_in: &'static str,
}

impl Addrs {
    fn of(family: Family) -> Addrs {
        family.pick(
            Addrs {
                vip: VIP4,
                client: CLIENT4,
                reals: REALS4,
                snat: SNAT4,
                router_in: ROUTER_IN4,
            },
            Addrs {
                vip: VIP6,
                client: CLIENT6,
                reals: REALS6,
                snat: SNAT6,
                router_in: ROUTER_IN6,
            },
        )
    }

    /// The SNAT address for a full-NAT service, none for plain NAT.
    fn snat_if(self, full_nat: bool) -> Option<&'static str> {
        full_nat.then_some(self.snat)
    }
}

/// Runs `f` in a fresh namespace whose FIB sends the fixture clients out of `out0`
/// (static neighbour entries), with forwarding on and the LB's own addresses local.
fn in_fib_ns(f: impl FnOnce() + Send + 'static) {
    let ns = Netns::new("fx-nat").expect("netns");
    ns.sh(&format!(
        "ip link add out0 address 02:0f:00:00:00:01 type veth peer name out1 \
         && ip link set out0 up && ip link set out1 up \
         && ip addr add 203.0.113.1/24 dev out0 && ip addr add 2001:db8:ff::1/64 dev out0 nodad \
         && ip addr add {SNAT4}/24 dev out1 && ip addr add {SNAT6}/64 dev out1 nodad \
         && ip neigh add {CLIENT4} lladdr 02:c1:00:00:00:01 dev out0 nud permanent \
         && ip -6 neigh add {CLIENT6} lladdr 02:c1:00:00:00:01 dev out0 nud permanent \
         && sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1"
    ))
    .expect("FIB namespace set-up");
    ns.run(f);
}

fn nat_service(vip: &str, protocol: Protocol, reals: &[&str], snat: Option<&str>) -> ServiceSpec {
    let weights: Vec<(&str, u32)> = reals.iter().map(|r| (*r, 1)).collect();
    let mut spec = service(
        vip,
        80,
        protocol,
        ForwardMode::Nat {
            snat: snat.map(|a| a.parse().expect("address")),
        },
        &weights,
    );
    for b in &mut spec.backends {
        b.port = REAL_PORT;
    }
    spec
}

fn setup(specs: &[&ServiceSpec]) -> TestDataplane {
    setup_with(specs, Capacity::default().nat)
}

fn setup_with(specs: &[&ServiceSpec], nat: u32) -> TestDataplane {
    let mut t = TestDataplane::with_capacity(Capacity {
        maglev_slots: 8 * 65537,
        conntrack: 4096,
        nat,
        ..Capacity::default()
    });
    for s in specs {
        t.dp.apply_service(s).expect("apply service");
    }
    t
}

/// The real Maglev picks for `flow`.
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

fn from_client(flow: &Flow) -> Vec<u8> {
    frames::frame(LB_MAC, CLIENT_MAC, None, flow, PAYLOAD)
}

fn from_real(flow: &Flow) -> Vec<u8> {
    frames::frame(LB_MAC, backend_mac(flow.src), None, flow, PAYLOAD)
}

/// Sends `flow` from the client and checks it leaves for its real, rewritten to
/// `source` (the client itself, or the SNAT address and a port): returns the real and
/// the source port the real sees.
fn forward(
    t: &mut TestDataplane,
    spec: &ServiceSpec,
    flow: &Flow,
    snat: Option<&str>,
) -> (IpAddr, u16) {
    let out = t.run(&from_client(flow));
    assert_eq!(out.action, XDP_TX, "towards the real");
    frames::assert_checksums(&out.frame);
    let real = pick(t, spec, flow);
    let sport = match snat {
        None => flow.sport,
        Some(_) => {
            let at = if real.is_ipv4() { 34 } else { 54 };
            let p = u16::from_be_bytes([out.frame[at], out.frame[at + 1]]);
            assert!((1024..32768).contains(&p), "SNAT port {p}");
            p
        }
    };
    let src = snat.map(str::to_string).unwrap_or(flow.src.to_string());
    let want = frames::frame(
        backend_mac(real),
        LB_MAC,
        None,
        &flow.rewritten(&src, sport, &real.to_string(), REAL_PORT),
        PAYLOAD,
    );
    assert_eq!(
        out.frame, want,
        "client -> VIP rewritten to -> real:{REAL_PORT}"
    );
    (real, sport)
}

/// The real's reply to (`to`, `to_port`) leaves for the client from the VIP.
fn reply(t: &mut TestDataplane, flow: &Flow, real: IpAddr, to: &str, to_port: u16) {
    let r = flow
        .rewritten(&real.to_string(), REAL_PORT, to, to_port)
        .with_flags(TCP_SYN | TCP_ACK);
    let out = t.run(&from_real(&r));
    assert_eq!(out.action, XDP_REDIRECT, "routed out of out0 by the FIB");
    frames::assert_checksums(&out.frame);
    let want = frames::frame(
        CLIENT_MAC,
        OUT_MAC,
        None,
        &r.rewritten(
            &flow.dst.to_string(),
            flow.dport,
            &flow.src.to_string(),
            flow.sport,
        ),
        PAYLOAD,
    );
    assert_eq!(out.frame, want, "real -> client rewritten to VIP -> client");
}

#[test]
fn nat_and_full_nat_translate_both_directions() {
    // (family, protocol, full-NAT); NAT without SNAT keeps the client's address and port.
    let cases = [
        (V4, Protocol::Tcp, false),
        (V4, Protocol::Udp, false),
        (V6, Protocol::Tcp, false),
        (V6, Protocol::Udp, false),
        (V4, Protocol::Tcp, true),
        (V6, Protocol::Udp, true),
    ];
    for case in cases {
        announce(&case);
        let (family, proto, full_nat) = case;
        in_fib_ns(move || {
            let addrs = Addrs::of(family);
            let snat = addrs.snat_if(full_nat);
            let spec = nat_service(addrs.vip, proto, &addrs.reals, snat);
            let mut t = setup(&[&spec]);
            let flow = service_flow(proto, addrs.client, CLIENT_PORT, addrs.vip, 80);
            let (real, sport) = forward(&mut t, &spec, &flow, snat);
            reply(&mut t, &flow, real, snat.unwrap_or(addrs.client), sport);
            // The next packet of the flow uses the entry: same real, same port.
            assert_eq!(forward(&mut t, &spec, &flow, snat), (real, sport));
            assert_eq!(t.counter(Counter::NatToReal), 2);
            assert_eq!(t.counter(Counter::NatToClient), 1);
            let entries = t.dp.nat_entries().expect("NAT table");
            assert_eq!(entries.len(), 2, "one entry per direction");
        });
    }
}

/// An upgrade restart (`stop --keep-dataplane`) or a crash leaves the program forwarding
/// on its pinned maps; the new daemon adopts them and programs its services only when
/// its instances are MASTER again. Until then, and whatever it writes first (flow-sync
/// learning, another service), the replies of the NAT flows the maps hold must still be
/// translated. (The soak found them switched off: `lb_flags`' NAT bit was recomputed
/// from the programmed services only.)
#[test]
fn an_adopting_restart_keeps_translating_nat_replies() {
    for family in [V4, V6] {
        announce(&family);
        in_fib_ns(move || {
            let addrs = Addrs::of(family);
            let nat = nat_service(addrs.vip, Protocol::Tcp, &addrs.reals, None);
            let dr_vip = family.pick("198.18.1.101", "2001:db8:1::101");
            let dr = service(
                dr_vip,
                80,
                Protocol::Tcp,
                ForwardMode::Dr,
                &[(addrs.reals[0], 1)],
            );
            let mut t = setup(&[&nat, &dr]);
            let flow = service_flow(Protocol::Tcp, addrs.client, CLIENT_PORT, addrs.vip, 80);
            let (real, sport) = forward(&mut t, &nat, &flow, None);
            reply(&mut t, &flow, real, addrs.client, sport);

            t.restart();
            reply(&mut t, &flow, real, addrs.client, sport);
            t.dp.set_sync_learning(true).expect("sync learning on");
            reply(&mut t, &flow, real, addrs.client, sport);
            t.dp.apply_service(&dr).expect("the DR service again");
            reply(&mut t, &flow, real, addrs.client, sport);
            t.dp.apply_service(&nat).expect("the NAT service again");
            reply(&mut t, &flow, real, addrs.client, sport);
            assert_eq!(forward(&mut t, &nat, &flow, None), (real, sport));
            // Without any NAT service left, the reply path is off again.
            t.dp.remove_service(&nat.id).expect("remove NAT");
            let r = flow
                .rewritten(&real.to_string(), REAL_PORT, addrs.client, sport)
                .with_flags(TCP_SYN | TCP_ACK);
            assert_eq!(t.run(&from_real(&r)).action, XDP_PASS);
        });
    }
}

#[test]
fn udp_without_checksum_stays_without() {
    in_fib_ns(|| {
        let spec = nat_service(VIP4, Protocol::Udp, &REALS4, None);
        let mut t = setup(&[&spec]);
        let flow = Flow::udp(CLIENT4, CLIENT_PORT, VIP4, 80);
        let mut input = from_client(&flow);
        input[14 + 20 + 6..14 + 20 + 8].copy_from_slice(&[0, 0]);
        let out = t.run(&input);
        assert_eq!(out.action, XDP_TX);
        assert_eq!(&out.frame[40..42], &[0, 0], "still no UDP checksum");
        frames::assert_checksums(&out.frame);
    });
}

/// An ICMP message header: type, code, and the 4 "rest of header" bytes (e.g. the MTU).
fn icmp(kind: u8, code: u8, rest: [u8; 4]) -> Icmp {
    Icmp { kind, code, rest }
}

/// The first bytes of the IP datagram of `flow` (what an ICMP error quotes).
fn quote(flow: &Flow, len: usize) -> Vec<u8> {
    let mut d = frames::datagram(flow, PAYLOAD);
    d.truncate(len);
    d
}

#[test]
fn icmp_errors_from_the_reals_side_reach_the_client_translated() {
    // (family, full-NAT, the router's error, bytes of the datagram it quotes)
    let cases = [
        // "Fragmentation needed" (MTU 1400), quoting the whole TCP header.
        (V4, false, icmp(3, 4, [0, 0, 0x05, 0x78]), 40),
        // "Packet too big" (MTU 1280) to the SNAT address.
        (V6, true, icmp(2, 0, 1280u32.to_be_bytes()), 60),
    ];
    for case in cases {
        announce(&case);
        let (family, full_nat, error, quoted) = case;
        in_fib_ns(move || {
            let addrs = Addrs::of(family);
            let snat = addrs.snat_if(full_nat);
            let spec = nat_service(addrs.vip, Protocol::Tcp, &addrs.reals, snat);
            let mut t = setup(&[&spec]);
            let flow = Flow::tcp(addrs.client, CLIENT_PORT, addrs.vip, 80);
            let (real, sport) = forward(&mut t, &spec, &flow, snat);
            // From a router between the LB and the real, quoting the translated packet
            // (client or SNAT address -> real:8080).
            let source = snat.unwrap_or(addrs.client);
            let sent = flow.rewritten(source, sport, &real.to_string(), REAL_PORT);
            let input = frames::icmp_error_frame(
                LB_MAC,
                [0x02, 0xee, 0, 0, 0, 1],
                addrs.router_in.parse().unwrap(),
                source.parse().unwrap(),
                error,
                &quote(&sent, quoted),
            );
            let out = t.run(&input);
            assert_eq!(out.action, XDP_REDIRECT);
            frames::assert_checksums(&out.frame);
            // The client gets it from the VIP, about the packet it sent (client -> VIP:80).
            let want = frames::icmp_error_frame(
                CLIENT_MAC,
                OUT_MAC,
                addrs.vip.parse().unwrap(),
                addrs.client.parse().unwrap(),
                error,
                &quote(&flow, quoted),
            );
            assert_eq!(out.frame, want);
            assert_eq!(t.counter(Counter::IcmpTranslated), 1);
        });
    }
}

#[test]
fn icmp_errors_from_the_clients_side_reach_the_real_translated() {
    in_fib_ns(|| {
        let spec = nat_service(VIP4, Protocol::Tcp, &REALS4, None);
        let mut t = setup(&[&spec]);
        let flow = Flow::tcp(CLIENT4, CLIENT_PORT, VIP4, 80);
        let (real, _) = forward(&mut t, &spec, &flow, None);
        // A router near the client cannot forward our (VIP:80 -> client) reply.
        let our_reply = flow.rewritten(VIP4, 80, CLIENT4, CLIENT_PORT);
        let mtu = [0, 0, 0x05, 0x00];
        let input = frames::icmp_error_frame(
            LB_MAC,
            CLIENT_MAC,
            ROUTER_OUT4.parse().unwrap(),
            VIP4.parse().unwrap(),
            icmp(3, 4, mtu),
            &quote(&our_reply, 28),
        );
        let out = t.run(&input);
        assert_eq!(out.action, XDP_TX, "to the real");
        frames::assert_checksums(&out.frame);
        // The real gets it about the packet it sent (real:8080 -> client).
        let real_sent = flow.rewritten(&real.to_string(), REAL_PORT, CLIENT4, CLIENT_PORT);
        let want = frames::icmp_error_frame(
            backend_mac(real),
            LB_MAC,
            ROUTER_OUT4.parse().unwrap(),
            real,
            icmp(3, 4, mtu),
            &quote(&real_sent, 28),
        );
        assert_eq!(out.frame, want);
    });
}

#[test]
fn icmp_errors_about_other_flows_and_echo_pass_untouched() {
    in_fib_ns(|| {
        let spec = nat_service(VIP4, Protocol::Tcp, &REALS4, None);
        let mut t = setup(&[&spec]);
        let unknown = Flow::tcp(CLIENT4, 1234, "198.18.0.21", REAL_PORT);
        let input = frames::icmp_error_frame(
            LB_MAC,
            CLIENT_MAC,
            ROUTER_IN4.parse().unwrap(),
            CLIENT4.parse().unwrap(),
            icmp(3, 4, [0; 4]),
            &quote(&unknown, 28),
        );
        let out = t.run(&input);
        assert_eq!((out.action, out.frame), (XDP_PASS, input));
        let echo = frames::icmp_error_frame(
            LB_MAC,
            CLIENT_MAC,
            CLIENT4.parse().unwrap(),
            VIP4.parse().unwrap(),
            icmp(8, 0, [0, 1, 0, 1]),
            b"ping",
        );
        let out = t.run(&echo);
        assert_eq!((out.action, out.frame), (XDP_PASS, echo));
        assert_eq!(t.counter(Counter::IcmpTranslated), 0);
    });
}

fn state_of(t: &TestDataplane, flow: &Flow) -> Vec<u8> {
    let (src, _) = encode_addr(flow.src);
    t.dp.nat_entries()
        .expect("NAT table")
        .into_iter()
        .filter(|(k, _)| {
            let port = flow.sport.to_be();
            (k.src == src && k.sport == port) || (k.dst == src && k.dport == port)
        })
        .map(|(_, e)| e.state)
        .collect()
}

#[test]
fn tcp_states_follow_fin_and_rst_and_a_new_syn_reuses_the_tuple() {
    in_fib_ns(|| {
        let spec = nat_service(VIP4, Protocol::Tcp, &REALS4, None);
        let mut t = setup(&[&spec]);
        let syn = Flow::tcp(CLIENT4, CLIENT_PORT, VIP4, 80).with_flags(TCP_SYN);
        let (real, _) = forward(&mut t, &spec, &syn, None);
        assert!(state_of(&t, &syn).iter().all(|&s| s == nat_state::SYN));
        let ack = syn.with_flags(TCP_ACK);
        t.run(&from_client(&ack));
        assert!(state_of(&t, &syn).contains(&nat_state::ESTABLISHED));
        t.run(&from_client(&syn.with_flags(TCP_FIN | TCP_ACK)));
        assert!(state_of(&t, &syn).contains(&nat_state::FIN));
        let rst = syn
            .rewritten(&real.to_string(), REAL_PORT, CLIENT4, CLIENT_PORT)
            .with_flags(TCP_RST);
        assert_eq!(t.run(&from_real(&rst)).action, XDP_REDIRECT);
        assert!(state_of(&t, &syn).contains(&nat_state::CLOSED));
        // The client reuses its port for a new connection: a fresh translation.
        forward(&mut t, &spec, &syn, None);
        assert!(state_of(&t, &syn).iter().all(|&s| s == nat_state::SYN));
        // Sweeping: a closed connection goes after 10 s, an established one stays.
        let now = t.dp.nat_entries().unwrap()[0].1.last_seen_ns;
        let other = Flow::tcp(CLIENT4, CLIENT_PORT + 1, VIP4, 80).with_flags(TCP_SYN);
        forward(&mut t, &spec, &other, None);
        t.run(&from_client(&other.with_flags(TCP_ACK)));
        t.run(&from_client(&syn.with_flags(TCP_RST)));
        let sweep =
            t.dp.sweep_nat(&NatTimeouts::default(), now + 11_000_000_000)
                .expect("sweep");
        assert_eq!((sweep.entries, sweep.expired), (4, 2), "{sweep:?}");
        assert!(state_of(&t, &syn).is_empty());
        assert_eq!(state_of(&t, &other).len(), 2);
        let later = now + 901_000_000_000;
        let sweep =
            t.dp.sweep_nat(&NatTimeouts::default(), later)
                .expect("sweep");
        assert_eq!(sweep.expired, 2, "idle established connections expire too");
    });
}

#[test]
fn full_table_translates_new_flows_without_state_and_keeps_established_ones() {
    in_fib_ns(|| {
        let spec = nat_service(VIP4, Protocol::Tcp, &REALS4, None);
        // Room for two connections (two entries each).
        let mut t = setup_with(&[&spec], 4);
        let a = Flow::tcp(CLIENT4, 1001, VIP4, 80);
        let b = Flow::tcp(CLIENT4, 1002, VIP4, 80);
        let c = Flow::tcp(CLIENT4, 1003, VIP4, 80);
        let (real_a, _) = forward(&mut t, &spec, &a, None);
        forward(&mut t, &spec, &b, None);
        // No room for c: still sent to its Maglev real, and its reply still translated
        // (from lb_nat_reals).
        let (real_c, _) = forward(&mut t, &spec, &c, None);
        assert_eq!(t.counter(Counter::NatTableFull), 1);
        reply(&mut t, &c, real_c, CLIENT4, 1003);
        assert_eq!(t.counter(Counter::NatStatelessReply), 1);
        // a and b keep their entries.
        assert_eq!(t.dp.nat_entries().unwrap().len(), 4);
        reply(&mut t, &a, real_a, CLIENT4, 1001);
        assert_eq!(t.counter(Counter::NatStatelessReply), 1, "a used its entry");

        // Full-NAT cannot translate replies without state: new flows are dropped.
        let full = nat_service(VIP6, Protocol::Tcp, &REALS6, Some(SNAT6));
        let mut t = setup_with(&[&full], 4);
        forward(
            &mut t,
            &full,
            &Flow::tcp(CLIENT6, 1001, VIP6, 80),
            Some(SNAT6),
        );
        forward(
            &mut t,
            &full,
            &Flow::tcp(CLIENT6, 1002, VIP6, 80),
            Some(SNAT6),
        );
        let out = t.run(&from_client(&Flow::tcp(CLIENT6, 1003, VIP6, 80)));
        assert_eq!(out.action, XDP_DROP);
        assert_eq!(t.counter(Counter::NatTableFull), 1);
        let again = t.run(&from_client(&Flow::tcp(CLIENT6, 1001, VIP6, 80)));
        assert_eq!(again.action, XDP_TX, "established flows continue");
    });
}

#[test]
fn replies_to_this_host_and_unknown_traffic_pass_untouched() {
    in_fib_ns(|| {
        let spec = nat_service(VIP4, Protocol::Tcp, &REALS4, None);
        let mut t = setup(&[&spec]);
        // A health check's answer: from a real's service port to the LB's own address.
        let check = Flow::tcp(REALS4[0], REAL_PORT, SNAT4, 45678).with_flags(TCP_SYN | TCP_ACK);
        let input = from_real(&check);
        let out = t.run(&input);
        assert_eq!((out.action, out.frame), (XDP_PASS, input));
        // Traffic from elsewhere to elsewhere: not ours.
        let other = Flow::udp(REALS4[1], 53, CLIENT4, 5353);
        let input = from_real(&other);
        let out = t.run(&input);
        assert_eq!(out.action, XDP_PASS);
        assert_eq!(out.frame, input);
        assert_eq!(t.counter(Counter::NatToClient), 0);
    });
}

#[test]
fn a_real_serving_two_nat_services_has_no_stateless_fallback() {
    in_fib_ns(|| {
        let a = nat_service(VIP4, Protocol::Tcp, &REALS4[..1], None);
        let mut b = nat_service("198.18.1.101", Protocol::Tcp, &REALS4[..1], None);
        b.backends[0].port = REAL_PORT;
        let mut t = setup_with(&[&a, &b], 4);
        // Fill the table so the next flow has no entry.
        forward(&mut t, &a, &Flow::tcp(CLIENT4, 1, VIP4, 80), None);
        forward(&mut t, &a, &Flow::tcp(CLIENT4, 2, VIP4, 80), None);
        forward(&mut t, &a, &Flow::tcp(CLIENT4, 3, VIP4, 80), None);
        let r = Flow::tcp(REALS4[0], REAL_PORT, CLIENT4, 3);
        let input = from_real(&r);
        let out = t.run(&input);
        assert_eq!(out.action, XDP_PASS, "ambiguous: which VIP?");
        assert_eq!(out.frame, input);
    });
}

#[test]
fn reply_routes_are_cached_then_looked_up_again() {
    in_fib_ns(|| {
        let spec = nat_service(VIP4, Protocol::Tcp, &REALS4, None);
        let mut t = setup(&[&spec]);
        let flow = Flow::tcp(CLIENT4, CLIENT_PORT, VIP4, 80);
        let (real, _) = forward(&mut t, &spec, &flow, None);
        reply(&mut t, &flow, real, CLIENT4, CLIENT_PORT);
        // The client's MAC changes: replies keep the cached route for a while (no FIB
        // lookup per packet), then follow the FIB.
        let moved = [0x02, 0xc1, 0x00, 0x00, 0x00, 0x02];
        let status = std::process::Command::new("ip")
            .args(["neigh", "replace", CLIENT4, "lladdr", "02:c1:00:00:00:02"])
            .args(["dev", "out0", "nud", "permanent"])
            .status()
            .expect("ip neigh");
        assert!(status.success());
        let r = flow
            .rewritten(&real.to_string(), REAL_PORT, CLIENT4, CLIENT_PORT)
            .with_flags(TCP_ACK);
        let cached = t.run(&from_real(&r));
        assert_eq!(cached.frame[0..6], CLIENT_MAC, "cached next hop");
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let fresh = t.run(&from_real(&r));
        assert_eq!(fresh.frame[0..6], moved, "looked up again after its TTL");
        frames::assert_checksums(&fresh.frame);
    });
}

#[test]
fn a_reply_without_a_neighbour_queues_the_next_hop_for_resolution() {
    in_fib_ns(|| {
        // A client on a link where nothing has resolved it yet.
        let status = std::process::Command::new("ip")
            .args(["addr", "add", "203.0.114.1/24", "dev", "out0"])
            .status()
            .expect("ip addr");
        assert!(status.success());
        let spec = nat_service(VIP4, Protocol::Tcp, &REALS4, None);
        let mut t = setup(&[&spec]);
        let client = "203.0.114.9";
        let flow = Flow::tcp(client, CLIENT_PORT, VIP4, 80);
        let (real, _) = forward(&mut t, &spec, &flow, None);
        let r = flow
            .rewritten(&real.to_string(), REAL_PORT, client, CLIENT_PORT)
            .with_flags(TCP_SYN | TCP_ACK);
        let out = t.run(&from_real(&r));
        assert_eq!(out.action, XDP_DROP, "no neighbour yet: dropped");
        assert_eq!(t.counter(Counter::FibNoNeigh), 1);
        let misses = t.dp.take_neigh_misses().expect("lb_neigh_miss");
        assert_eq!(misses.len(), 1, "{misses:?}");
        assert_eq!(misses[0].0, client.parse::<IpAddr>().unwrap());
        assert!(t.dp.take_neigh_misses().expect("cleared").is_empty());
    });
}
