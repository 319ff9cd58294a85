//! Frames a switch floods to every port for another host (right after a failover, those
//! still addressed to the old MASTER's MAC): the program leaves a frame to a VIP whose
//! destination MAC is none of the receiving interface's (`lb_local_macs`) to the kernel,
//! unchanged, and counts it (`vip_other_host`). Packet fixtures through
//! BPF_PROG_TEST_RUN on the loopback interface's index (where a test run without a
//! context is received too), table-driven over IPv4/IPv6 and
//! DR/TUN. Needs root.

use lb_common::Counter;
use lb_daemon::dataplane::{ForwardMode, Protocol, TestRunOutput};
use lb_tests::{
    family::{announce, Family, Family::*},
    frames::{self, Flow},
    harness::*,
};

/// The old MASTER's MAC, and keepalived's VMAC for VRID 10.
const OTHER_MAC: [u8; 6] = [0x02, 0x1b, 0x00, 0x00, 0x00, 0x02];
const VMAC: [u8; 6] = [0x00, 0x00, 0x5e, 0x00, 0x01, 0x0a];
/// `lo`: every network namespace has it, and a test run may name it as the receiver.
const LO: u32 = 1;

struct Case {
    family: Family,
    mode: ForwardMode,
}

fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    for family in [V4, V6] {
        for mode in [ForwardMode::Dr, ForwardMode::Tun] {
            v.push(Case { family, mode });
        }
    }
    v
}

fn vip(family: Family) -> &'static str {
    family.pick("198.18.9.1", "2001:db8:9::1")
}

fn client(family: Family) -> &'static str {
    family.pick("203.0.113.9", "2001:db8:ff::9")
}

fn backend(family: Family) -> &'static str {
    family.pick("198.18.0.41", "2001:db8::41")
}

fn setup(c: &Case) -> TestDataplane {
    let mut t = TestDataplane::new();
    let spec = service(
        vip(c.family),
        80,
        Protocol::Tcp,
        c.mode,
        &[(backend(c.family), 1)],
    );
    t.dp.apply_service(&spec).expect("apply");
    t.dp.set_local_macs(LO, &[LB_MAC]).expect("lb_local_macs");
    t
}

fn tcp(family: Family, dst_mac: [u8; 6], dst: &str, sport: u16) -> Vec<u8> {
    frames::frame(
        dst_mac,
        CLIENT_MAC,
        None,
        &Flow::tcp(client(family), sport, dst, 80),
        b"payload",
    )
}

/// A forwarded frame: DR keeps the frame but for its MACs (the backend's, then ours);
/// TUN adds an outer header behind new MACs. Either way it leaves for the backend.
fn assert_forwarded(out: &TestRunOutput, input: &[u8], c: &Case, what: &str) {
    assert_eq!(out.action, XDP_TX, "{what}");
    let backend_mac = backend_mac(backend(c.family).parse().unwrap());
    assert_eq!(out.frame[0..6], backend_mac, "{what}: to the backend");
    if c.mode == ForwardMode::Dr {
        let mut expected = input.to_vec();
        expected[0..6].copy_from_slice(&backend_mac);
        expected[6..12].copy_from_slice(&LB_MAC);
        assert_eq!(out.frame, expected, "{what}: only the MACs change");
    }
}

fn assert_passed(out: &TestRunOutput, input: &[u8], what: &str) {
    assert_eq!(out.action, XDP_PASS, "{what}");
    assert_eq!(out.frame, input, "{what}: untouched");
}

#[test]
fn a_vip_frame_for_another_hosts_mac_passes_untouched() {
    for c in cases() {
        announce(&(c.family, c.mode));
        let mut t = setup(&c);
        let ours = tcp(c.family, LB_MAC, vip(c.family), 40000);
        let out = t.run_on(&ours, LO);
        assert_forwarded(&out, &ours, &c, "addressed to this interface");

        // The same established flow, flooded for the old MASTER: not forwarded, even
        // though the connection table knows it.
        let flooded = tcp(c.family, OTHER_MAC, vip(c.family), 40000);
        assert_passed(
            &t.run_on(&flooded, LO),
            &flooded,
            "flooded, established flow",
        );
        // A new flow flooded likewise.
        let new = tcp(c.family, OTHER_MAC, vip(c.family), 40001);
        assert_passed(&t.run_on(&new, LO), &new, "flooded, new flow");
        assert_eq!(t.counter(Counter::VipOtherHost), 2);
        assert_eq!(t.counter(Counter::VipPackets), 1);

        // Not for a VIP: passed as always, not counted.
        let other = tcp(c.family, OTHER_MAC, client(c.family), 40000);
        assert_passed(&t.run_on(&other, LO), &other, "not for a VIP");
        assert_eq!(t.counter(Counter::VipOtherHost), 2);

        // An interface with no Ethernet address to check (count 0): no check.
        t.dp.set_local_macs(LO, &[]).expect("lb_local_macs");
        let out = t.run_on(&flooded, LO);
        assert_forwarded(&out, &flooded, &c, "no address for the interface");
    }
}

#[test]
fn every_address_of_the_interface_is_its_own() {
    for c in cases() {
        announce(&(c.family, c.mode));
        let mut t = setup(&c);
        // A VMAC on the interface (an upper device): frames to it are this host's.
        t.dp.set_local_macs(LO, &[LB_MAC, VMAC])
            .expect("lb_local_macs");
        let to_vmac = tcp(c.family, VMAC, vip(c.family), 40000);
        let out = t.run_on(&to_vmac, LO);
        assert_eq!(out.action, XDP_TX, "addressed to the VMAC");
        let to_other = tcp(c.family, OTHER_MAC, vip(c.family), 40000);
        assert_passed(&t.run_on(&to_other, LO), &to_other, "another host's");
        // Another interface sharing lo's slot does not take it over.
        t.dp.set_local_macs(LO + lb_common::capacity::LOCAL_MAC_SLOTS, &[OTHER_MAC])
            .expect("lb_local_macs");
        assert_passed(&t.run_on(&to_other, LO), &to_other, "slot kept by lo");
        // More addresses than an entry holds: no check rather than a wrong one.
        let many: Vec<[u8; 6]> = (1..=5).map(|i| [2, 0, 0, 0, 9, i]).collect();
        t.dp.set_local_macs(LO, &many).expect("lb_local_macs");
        assert_eq!(t.run_on(&to_other, LO).action, XDP_TX, "no check");
        assert_eq!(t.counter(Counter::VipOtherHost), 2);
    }
}
