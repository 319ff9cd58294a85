//! keepalived's no-accept mode (`vrrp_strict`, `accept = false`) in the XDP program:
//! packet fixtures through BPF_PROG_TEST_RUN, table-driven over IPv4 and IPv6. A frame to
//! a VIP in `lb_strict_vips` that no service takes is dropped and counted
//! (`vip_strict_drop`); a served port is forwarded as before; VRRP, ARP, neighbour
//! discovery and traffic to other VIPs pass untouched. Needs root.

use std::{
    collections::BTreeSet,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use lb_common::Counter;
use lb_daemon::dataplane::{ForwardMode, Protocol, ServiceSpec};
use lb_tests::{
    family::{announce, Family, Family::*},
    frames::{self, Flow},
    harness::*,
};

/// A VIP in no-accept mode with a DR service on port 80.
const STRICT4: &str = "198.18.7.1";
const STRICT6: &str = "2001:db8:7::1";
/// A VIP in no-accept mode without any service.
const BARE4: &str = "198.18.7.2";
const BARE6: &str = "2001:db8:7::2";
/// A VIP that accepts (not in the set), with a DR service on port 80.
const OPEN4: &str = "198.18.7.3";
const OPEN6: &str = "2001:db8:7::3";
const CLIENT4: &str = "203.0.113.9";
const CLIENT6: &str = "2001:db8:ff::9";
const BACKEND4: &str = "198.18.0.31";
const BACKEND6: &str = "2001:db8::31";

#[derive(Debug, Clone, Copy)]
struct Addrs {
    strict: &'static str,
    bare: &'static str,
    open: &'static str,
    client: &'static str,
    backend: &'static str,
}

fn addrs(family: Family) -> Addrs {
    family.pick(
        Addrs {
            strict: STRICT4,
            bare: BARE4,
            open: OPEN4,
            client: CLIENT4,
            backend: BACKEND4,
        },
        Addrs {
            strict: STRICT6,
            bare: BARE6,
            open: OPEN6,
            client: CLIENT6,
            backend: BACKEND6,
        },
    )
}

fn dr(vip: &str, backend: &str) -> ServiceSpec {
    service(vip, 80, Protocol::Tcp, ForwardMode::Dr, &[(backend, 1)])
}

/// The data plane with both services and `strict` + `bare` in no-accept mode.
fn setup(a: Addrs) -> TestDataplane {
    let mut t = TestDataplane::new();
    t.dp.apply_service(&dr(a.strict, a.backend)).expect("apply");
    t.dp.apply_service(&dr(a.open, a.backend)).expect("apply");
    let vips: BTreeSet<IpAddr> = [a.strict, a.bare]
        .iter()
        .map(|v| v.parse().unwrap())
        .collect();
    t.dp.set_strict_vips(&vips).expect("set strict VIPs");
    t
}

/// An IP packet of protocol `proto` carrying `payload`, from `src` to `dst`.
fn ip_frame(src: &str, dst: &str, proto: u8, payload: &[u8], vlan: Option<u16>) -> Vec<u8> {
    let (src, dst): (IpAddr, IpAddr) = (src.parse().unwrap(), dst.parse().unwrap());
    let mut f = frames::eth(LB_MAC, CLIENT_MAC, vlan, frames::ethertype_of(dst));
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            f.extend_from_slice(&frames::ipv4_header(s, d, proto, payload.len(), &[], 0, 64))
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            f.extend_from_slice(&frames::ipv6_header(s, d, proto, payload.len(), 255))
        }
        _ => panic!("mixed families"),
    }
    f.extend_from_slice(payload);
    f
}

/// An ICMP / ICMPv6 echo request (checksum left 0: the program does not check it).
fn echo(family: Family, src: &str, dst: &str) -> Vec<u8> {
    let (proto, kind) = family.pick((frames::ICMP, 8), (frames::ICMPV6, 128));
    ip_frame(src, dst, proto, &[kind, 0, 0, 0, 0, 1, 0, 1], None)
}

fn assert_verdict(t: &mut TestDataplane, what: &str, frame: &[u8], action: u32) {
    let out = t.run(frame);
    assert_eq!(out.action, action, "{what}");
    if action == XDP_PASS {
        assert_eq!(out.frame, frame, "{what}: frame untouched");
    }
}

#[test]
fn a_strict_vip_drops_what_no_service_takes() {
    for family in [V4, V6] {
        announce(&family);
        let a = addrs(family);
        let mut t = setup(a);
        let tcp = |dst: &str, port| {
            frames::frame(
                LB_MAC,
                CLIENT_MAC,
                None,
                &Flow::tcp(a.client, 40000, dst, port),
                b"x",
            )
        };
        let udp = |dst: &str, port| {
            frames::frame(
                LB_MAC,
                CLIENT_MAC,
                None,
                &Flow::udp(a.client, 40000, dst, port),
                b"x",
            )
        };
        let cases: [(&str, Vec<u8>, u32); 8] = [
            (
                "TCP to an unserved port of the strict VIP",
                tcp(a.strict, 22),
                XDP_DROP,
            ),
            ("UDP to the strict VIP", udp(a.strict, 53), XDP_DROP),
            (
                "echo request to the strict VIP",
                echo(family, a.client, a.strict),
                XDP_DROP,
            ),
            (
                "TCP to the strict VIP without a service",
                tcp(a.bare, 80),
                XDP_DROP,
            ),
            (
                "echo request to the strict VIP without a service",
                echo(family, a.client, a.bare),
                XDP_DROP,
            ),
            (
                "tagged TCP to the strict VIP",
                frames::frame(
                    LB_MAC,
                    CLIENT_MAC,
                    Some(7),
                    &Flow::tcp(a.client, 40000, a.strict, 22),
                    b"x",
                ),
                XDP_DROP,
            ),
            (
                "TCP to an unserved port of a VIP that accepts",
                tcp(a.open, 22),
                XDP_PASS,
            ),
            (
                "echo request to a VIP that accepts",
                echo(family, a.client, a.open),
                XDP_PASS,
            ),
        ];
        for (what, frame, action) in &cases {
            assert_verdict(&mut t, what, frame, *action);
        }
        assert_eq!(t.counter(Counter::VipStrictDrop), 6);
        // The served port is forwarded as before (DR: the backend's MAC).
        let out = t.run(&tcp(a.strict, 80));
        assert_eq!(out.action, XDP_TX, "the served port");
        assert_eq!(out.frame[0..6], backend_mac(a.backend.parse().unwrap()));
        assert_eq!(t.counter(Counter::VipStrictDrop), 6);
        assert_eq!(t.counter(Counter::VipPackets), 1);
    }
}

#[test]
fn vrrp_arp_and_neighbour_discovery_to_a_strict_vip_pass() {
    for family in [V4, V6] {
        announce(&family);
        let a = addrs(family);
        let mut t = setup(a);
        let group = family.pick("224.0.0.18", "ff02::12");
        let advert = [0x31, 51, 100, 1, 0, 1, 0, 0];
        for dst in [group, a.strict] {
            let f = ip_frame(a.client, dst, frames::VRRP, &advert, None);
            assert_verdict(&mut t, &format!("VRRP to {dst}"), &f, XDP_PASS);
        }
        match family {
            V4 => {
                let client: Ipv4Addr = a.client.parse().unwrap();
                let f = frames::arp_request(CLIENT_MAC, client, a.strict.parse().unwrap());
                assert_verdict(&mut t, "ARP for the strict VIP", &f, XDP_PASS);
            }
            V6 => {
                let target: Ipv6Addr = a.strict.parse().unwrap();
                for kind in [135u8, 136] {
                    let mut nd = vec![kind, 0, 0, 0, 0, 0, 0, 0];
                    nd.extend_from_slice(&target.octets());
                    let f = ip_frame(a.client, a.strict, frames::ICMPV6, &nd, None);
                    assert_verdict(
                        &mut t,
                        &format!("ND type {kind} to the strict VIP"),
                        &f,
                        XDP_PASS,
                    );
                }
            }
        }
        // Another address of the host, and a fragment or other protocol to it.
        let other = family.pick(LB_V4, LB_V6);
        assert_verdict(
            &mut t,
            "echo to the host's own address",
            &echo(family, a.client, other),
            XDP_PASS,
        );
        assert_eq!(t.counter(Counter::VipStrictDrop), 0);
    }
}

#[test]
fn a_strict_vip_drops_other_protocols_and_fragments() {
    for family in [V4, V6] {
        announce(&family);
        let a = addrs(family);
        let mut t = setup(a);
        // GRE (47): not load-balanced, not VRRP.
        let gre = ip_frame(a.client, a.strict, 47, &[0, 0, 0x08, 0], None);
        assert_verdict(&mut t, "GRE to the strict VIP", &gre, XDP_DROP);
        let fragment = match family {
            V4 => {
                let mut f = frames::eth(LB_MAC, CLIENT_MAC, None, frames::ETH_P_IP);
                f.extend_from_slice(&frames::ipv4_header(
                    a.client.parse().unwrap(),
                    a.strict.parse().unwrap(),
                    frames::UDP,
                    8,
                    &[],
                    0x2000,
                    64,
                ));
                f.extend_from_slice(&[0; 8]);
                f
            }
            // A fragment header (44) first.
            V6 => ip_frame(a.client, a.strict, 44, &[17, 0, 0, 1, 0, 0, 0, 1], None),
        };
        assert_verdict(&mut t, "a fragment to the strict VIP", &fragment, XDP_DROP);
        assert_eq!(t.counter(Counter::VipStrictDrop), 2);
    }
}

#[test]
fn leaving_no_accept_mode_passes_again() {
    for family in [V4, V6] {
        announce(&family);
        let a = addrs(family);
        let mut t = setup(a);
        let f = echo(family, a.client, a.bare);
        assert_verdict(&mut t, "while strict", &f, XDP_DROP);
        t.dp.set_strict_vips(&BTreeSet::new()).expect("clear");
        assert!(t.dp.strict_vips().is_empty());
        assert_verdict(&mut t, "after leaving MASTER", &f, XDP_PASS);
        let f = frames::frame(
            LB_MAC,
            CLIENT_MAC,
            None,
            &Flow::tcp(a.client, 40000, a.strict, 22),
            b"x",
        );
        assert_verdict(&mut t, "unserved port after leaving MASTER", &f, XDP_PASS);
        assert_eq!(t.counter(Counter::VipStrictDrop), 1);
    }
}
