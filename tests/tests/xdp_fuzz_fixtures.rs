//! Regression fixtures for what the XDP fuzzer (`cargo xtask fuzz xdp`,
//! `lb_tests::xdp_fuzz`) found, Katran style: an input frame, the expected verdict and
//! the expected output frame. Each was written (and failed) before its fix. Needs root.

use lb_common::Counter;
use lb_daemon::dataplane::{ForwardMode, Protocol, ServiceSpec};
use lb_tests::{
    frames::{self, Flow, TCP_ACK, TCP_SYN},
    harness::*,
    xdp_fuzz::lab,
};

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn loaded(specs: &[ServiceSpec]) -> TestDataplane {
    let mut t = TestDataplane::new();
    for s in specs {
        t.dp.apply_service(s).expect("apply service");
    }
    t
}

/// Runs `input` and checks it is dropped untouched and counted by `counter`.
fn assert_dropped(t: &mut TestDataplane, input: &[u8], counter: Counter) {
    let before = t.counter(counter);
    let out = t.run(input);
    assert_eq!(
        out.action, XDP_DROP,
        "verdict (want DROP, counted {counter:?})"
    );
    assert_eq!(out.frame, input, "a dropped frame is not touched");
    assert_eq!(t.counter(counter), before + 1, "{counter:?} counted");
}

fn dr_udp_v4() -> ServiceSpec {
    service(
        "198.18.1.100",
        53,
        Protocol::Udp,
        ForwardMode::Dr,
        &[("198.18.0.21", 1), ("198.18.0.22", 1)],
    )
}

/// The fuzzer's first find (seed 1, run 263): a UDP datagram to a DR VIP whose IPv4
/// total length (44) claims more than the frame holds (36 bytes after Ethernet) was
/// forwarded; a TUN service then wrote an outer header whose length ran past the frame
/// (and for a claimed 65,535 bytes, wrapped to 19). The kernel (ip_rcv) drops such a
/// datagram: so does the balancer now, counted as a truncated IPv4 packet.
#[test]
fn a_datagram_longer_than_its_frame_is_dropped_not_forwarded() {
    let found = unhex(
        "021b0000000102c10000000108004500002c123400004011650fcb007107c61201649c4b\
         003500189da666757a7a206d652c",
    );
    let mut t = loaded(&[dr_udp_v4()]);
    assert_dropped(&mut t, &found, Counter::TruncatedIpv4);

    // TUN: a total length of 65,535 used to wrap the outer length to 19.
    let tun = service(
        "198.18.1.101",
        443,
        Protocol::Tcp,
        ForwardMode::Tun,
        &[("198.18.0.31", 1)],
    );
    let mut t = loaded(&[tun]);
    let mut f = frames::frame(
        LB_MAC,
        CLIENT_MAC,
        None,
        &Flow::tcp("203.0.113.7", 40000, "198.18.1.101", 443),
        b"payload",
    );
    f[16..18].copy_from_slice(&0xffffu16.to_be_bytes());
    fix_ipv4_checksum(&mut f, 14);
    assert_dropped(&mut t, &f, Counter::TruncatedIpv4);

    // IPv6: a payload length past the frame's end.
    let dr6 = service(
        "2001:db8:1::100",
        80,
        Protocol::Tcp,
        ForwardMode::Dr,
        &[("2001:db8::21", 1)],
    );
    let mut t = loaded(&[dr6]);
    let mut f = frames::frame(
        LB_MAC,
        CLIENT_MAC,
        None,
        &Flow::tcp("2001:db8:ff::7", 40000, "2001:db8:1::100", 80),
        b"payload",
    );
    let claimed = (f.len() - 54 + 1) as u16;
    f[18..20].copy_from_slice(&claimed.to_be_bytes());
    assert_dropped(&mut t, &f, Counter::TruncatedIpv6);
}

fn fix_ipv4_checksum(f: &mut [u8], l3: usize) {
    let ihl = (f[l3] & 0x0f) as usize * 4;
    f[l3 + 10..l3 + 12].copy_from_slice(&[0, 0]);
    let c = frames::checksum(&f[l3..l3 + ihl], 0);
    f[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
}

/// An IPv4 header whose total length ends before the TCP header (here: a 20-byte
/// datagram, the "TCP header" in the Ethernet padding after it) was load-balanced on
/// ports read from the padding, and NAT rewrote the padding. Dropped now, counted as a
/// truncated transport header; the same for IPv6 (payload length 4 < 20).
#[test]
fn a_transport_header_outside_the_datagram_is_dropped() {
    let mut nat = service(
        "198.18.1.102",
        80,
        Protocol::Tcp,
        ForwardMode::Nat { snat: None },
        &[("198.18.0.41", 1)],
    );
    nat.backends[0].port = 8080;
    let mut t = loaded(&[nat]);
    let mut f = frames::frame(
        LB_MAC,
        CLIENT_MAC,
        None,
        &Flow::tcp("203.0.113.7", 40000, "198.18.1.102", 80).with_flags(TCP_SYN),
        b"",
    );
    f[16..18].copy_from_slice(&20u16.to_be_bytes());
    fix_ipv4_checksum(&mut f, 14);
    assert_dropped(&mut t, &f, Counter::TruncatedL4);

    let dr6 = service(
        "2001:db8:1::100",
        80,
        Protocol::Tcp,
        ForwardMode::Dr,
        &[("2001:db8::21", 1)],
    );
    let mut t = loaded(&[dr6]);
    let mut f = frames::frame(
        LB_MAC,
        CLIENT_MAC,
        None,
        &Flow::tcp("2001:db8:ff::7", 40000, "2001:db8:1::100", 80),
        b"",
    );
    f[18..20].copy_from_slice(&4u16.to_be_bytes());
    assert_dropped(&mut t, &f, Counter::TruncatedL4);
}

/// A bad length is malformed whatever the address, and the verdict does not depend on
/// whether NAT services exist (with none, a cheaper parse handles frames for no VIP: it
/// must agree with the full one).
#[test]
fn a_bad_length_for_no_vip_is_dropped_with_or_without_nat() {
    let mut nat = service(
        "198.18.1.102",
        80,
        Protocol::Tcp,
        ForwardMode::Nat { snat: None },
        &[("198.18.0.41", 1)],
    );
    nat.backends[0].port = 8080;
    for specs in [vec![dr_udp_v4()], vec![dr_udp_v4(), nat]] {
        let mut t = loaded(&specs);
        let mut long = frames::frame(
            LB_MAC,
            CLIENT_MAC,
            None,
            &Flow::udp("203.0.113.7", 40000, "198.18.0.200", 80),
            b"payload",
        );
        let claimed = (long.len() - 14 + 8) as u16;
        long[16..18].copy_from_slice(&claimed.to_be_bytes());
        fix_ipv4_checksum(&mut long, 14);
        assert_dropped(&mut t, &long, Counter::TruncatedIpv4);
        // A well-formed frame for no VIP, with Ethernet padding after the datagram,
        // still passes untouched.
        let mut padded = frames::frame(
            LB_MAC,
            CLIENT_MAC,
            None,
            &Flow::udp("203.0.113.7", 40000, "198.18.0.200", 80),
            b"",
        );
        padded.resize(60, 0);
        let out = t.run(&padded);
        assert_eq!(out.action, XDP_PASS);
        assert_eq!(out.frame, padded);
    }
}

/// A NAT reply with a translation entry whose client the FIB does not forward to (no
/// route, or a local address) was rewritten to come from the VIP and then passed to
/// the kernel half-translated. It passes untouched now, as the entry-less (stateless)
/// reply path already did.
#[test]
fn a_nat_reply_the_fib_does_not_forward_passes_untouched() {
    let ns = lab::fib_namespace().expect("namespace");
    ns.run(|| {
        let mut nat = service(
            "198.18.1.102",
            80,
            Protocol::Tcp,
            ForwardMode::Nat { snat: None },
            &[("198.18.0.41", 1)],
        );
        nat.backends[0].port = 8080;
        let mut t = loaded(&[nat]);
        // A client with no route in the namespace.
        let client = "192.0.2.9";
        let syn = Flow::tcp(client, 40000, "198.18.1.102", 80).with_flags(TCP_SYN);
        let out = t.run(&frames::frame(LB_MAC, CLIENT_MAC, None, &syn, b""));
        assert_eq!(out.action, XDP_TX, "to the real");
        let reply = Flow::tcp("198.18.0.41", 8080, client, 40000).with_flags(TCP_SYN | TCP_ACK);
        let input = frames::frame(LB_MAC, CLIENT_MAC, None, &reply, b"");
        let out = t.run(&input);
        assert_eq!(
            out.action, XDP_PASS,
            "the FIB does not forward to the client"
        );
        assert_eq!(out.frame, input, "passed untouched, not half-translated");
    });
}

/// The same for an ICMP error about a NAT'ed flow (seeds 1, 2, 3 and 7): translated
/// towards a client the FIB does not forward to, it was passed to the kernel
/// translated. The translation is done before the route is known, so it is dropped
/// now, counted as a failed route (the kernel could not forward it either).
#[test]
fn an_icmp_error_for_a_client_the_fib_does_not_forward_is_dropped() {
    let ns = lab::fib_namespace().expect("namespace");
    ns.run(|| {
        let mut nat = service(
            "198.18.1.102",
            80,
            Protocol::Tcp,
            ForwardMode::Nat { snat: None },
            &[("198.18.0.41", 1)],
        );
        nat.backends[0].port = 8080;
        let mut t = loaded(&[nat]);
        let client = "192.0.2.9";
        let syn = Flow::tcp(client, 40000, "198.18.1.102", 80).with_flags(TCP_SYN);
        assert_eq!(
            t.run(&frames::frame(LB_MAC, CLIENT_MAC, None, &syn, b""))
                .action,
            XDP_TX
        );
        // "Fragmentation needed" from a router on the reals' side about the packet
        // the LB sent to the real.
        let sent = Flow::tcp(client, 40000, "198.18.0.41", 8080).with_flags(TCP_SYN);
        let quote = frames::datagram(&sent, b"");
        let input = frames::icmp_error_frame(
            LB_MAC,
            CLIENT_MAC,
            "198.18.0.254".parse().expect("address"),
            client.parse().expect("address"),
            frames::Icmp {
                kind: 3,
                code: 4,
                rest: [0, 0, 0x05, 0xdc],
            },
            &quote,
        );
        let before = t.counter(Counter::FibFailed);
        let out = t.run(&input);
        assert_eq!(out.action, XDP_DROP, "not passed half-translated");
        assert_eq!(t.counter(Counter::FibFailed), before + 1);
    });
}

/// Seed 20261205, run 5,759,672: a client that spoofs a NAT VIP and port as its source
/// (VIP:80 -> VIP:80) gets a reply-direction entry keyed `real:8080 -> VIP:80`; a later
/// frame from the real to VIP:80 is for the VIP, found that entry, and was sent to the
/// real with the VIP as its destination (`nat::to_real` did not check the entry's
/// direction). Now it is dropped and counted `nat_misdirected`.
#[test]
fn a_reply_entry_does_not_translate_a_frame_to_the_vip() {
    let mut nat = service(
        "198.18.1.102",
        80,
        Protocol::Tcp,
        ForwardMode::Nat { snat: None },
        &[("198.18.0.41", 1)],
    );
    nat.backends[0].port = 8080;
    let mut t = loaded(&[nat]);
    let spoof = Flow::tcp("198.18.1.102", 80, "198.18.1.102", 80).with_flags(TCP_SYN);
    t.run(&frames::frame(LB_MAC, CLIENT_MAC, None, &spoof, b""));
    let from_real = Flow::tcp("198.18.0.41", 8080, "198.18.1.102", 80).with_flags(TCP_ACK);
    let before = t.counter(Counter::NatMisdirected);
    let out = t.run(&frames::frame(LB_MAC, CLIENT_MAC, None, &from_real, b""));
    assert_eq!(out.action, XDP_DROP, "not translated by a reply entry");
    assert_eq!(t.counter(Counter::NatMisdirected), before + 1);
}
