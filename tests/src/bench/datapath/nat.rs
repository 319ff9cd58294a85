//! NAT and IPv6 rows of `cargo xtask bench datapath`, each against the IPv4 DR
//! established-flow cost measured in alternating runs (target: within 1.3x).
//!
//! Replies are routed by `bpf_fib_lookup`, so these rows run in a network namespace
//! whose FIB sends the generated clients to a gateway behind `out0`.

use std::net::IpAddr;

use anyhow::{Context, Result};
use lb_common::program_names;
use lb_daemon::{
    dataplane::{Capacity, ForwardMode, Protocol},
    netns::Netns,
};

use super::{interleaved, spec_with, tcp_frame, Bench, Flows, Row, Workload, VIP4, VIP6};
use crate::{
    frames::{self, Flow},
    harness::{backend_mac, pin_to_cpu0, LB_MAC, XDP_REDIRECT},
};

const REAL_PORT: u16 = 8080;
const SNAT4: &str = "198.18.0.1";
const SNAT6: &str = "2001:db8::1";
/// Target of every row here: the IPv4 DR established-flow cost times this.
const TARGET: f64 = 1.3;
const FLOWS: usize = 1000;

/// The rows, measured in a namespace of their own.
pub(super) fn rows(calls: usize, runs: usize, big: Capacity) -> Result<Vec<Row>> {
    let ns = Netns::new("bench-nat")?;
    ns.sh(&format!(
        "ip link add out0 type veth peer name out1 && ip link set out0 up && ip link set out1 up \
         && ip addr add 203.0.113.1/24 dev out0 && ip addr add 2001:db8:ff::1/64 dev out0 nodad \
         && ip addr add {SNAT4}/24 dev out1 && ip addr add {SNAT6}/64 dev out1 nodad \
         && ip neigh add 203.0.113.254 lladdr 02:c1:00:00:00:fe dev out0 nud permanent \
         && ip -6 neigh add 2001:db8:ff::fe lladdr 02:c1:00:00:00:fe dev out0 nud permanent \
         && ip route add 100.64.0.0/10 via 203.0.113.254 \
         && ip -6 route add 2001:db8:cc00::/40 via 2001:db8:ff::fe \
         && sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1"
    ))
    .context("the NAT bench namespace")?;
    ns.run(move || measure(calls, runs, big))
}

fn measure(calls: usize, runs: usize, big: Capacity) -> Result<Vec<Row>> {
    let b = Bench {
        calls,
        runs,
        next_client: 0,
        drain: false,
    };
    let reals4: Vec<(String, u32)> = (1..=3).map(|i| (format!("198.18.8.{i}"), 1)).collect();
    let reals6: Vec<(String, u32)> = (1..=3).map(|i| (format!("2001:db8::{i}"), 1)).collect();
    let nat = |vip: &str, reals: &[(String, u32)], snat: Option<&str>| {
        let mut s = spec_with(
            vip,
            Protocol::Tcp,
            ForwardMode::Nat {
                snat: snat.map(|a| a.parse().expect("address")),
            },
            reals,
            65537,
        );
        for r in &mut s.backends {
            r.port = REAL_PORT;
        }
        s
    };
    let dr4 = spec_with(VIP4, Protocol::Tcp, ForwardMode::Dr, &reals4, 65537);
    let mut reference = Workload::new(
        std::slice::from_ref(&dr4),
        big,
        frames_from(&b, FLOWS, VIP4, false),
    );

    let mut rows = Vec::new();
    let mut row = |name: &str, case: &mut Workload| {
        let (dr, ns) = interleaved(&b, &mut reference, case);
        rows.push(Row {
            name: name.to_string(),
            ns,
            check: Some(("IPv4 DR established".to_string(), dr, TARGET)),
        });
    };

    // IPv6 in DR and TUN (IPv6-in-IPv6).
    for (mode, label) in [(ForwardMode::Dr, "DR"), (ForwardMode::Tun, "TUN 6in6")] {
        let spec = spec_with(VIP6, Protocol::Tcp, mode, &reals6, 65537);
        let mut w = Workload::new(&[spec], big, frames_from(&b, FLOWS, VIP6, true));
        row(&format!("{label}: IPv6 established TCP flow"), &mut w);
    }

    // NAT, full-NAT: both directions, both families.
    for (label, vip, reals, v6, snat) in [
        ("NAT", VIP4, &reals4, false, None),
        ("NAT", VIP6, &reals6, true, None),
        ("full-NAT", VIP4, &reals4, false, Some(SNAT4)),
        ("full-NAT", VIP6, &reals6, true, Some(SNAT6)),
    ] {
        let family = if v6 { "IPv6" } else { "IPv4" };
        let spec = nat(vip, reals, snat);
        let mut to_real = Workload::new(
            std::slice::from_ref(&spec),
            big,
            frames_from(&b, FLOWS, vip, v6),
        );
        let replies = replies_of(&mut to_real, v6)?;
        row(
            &format!("{label}: {family} established TCP flow, client to real"),
            &mut to_real,
        );
        let mut to_client = Workload {
            t: to_real.t,
            frames: replies,
        };
        row(
            &format!("{label}: {family} reply, real to client (FIB route, cached 1 s)"),
            &mut to_client,
        );
    }

    // A new NAT'ed flow: Maglev pick and two table entries (no target).
    let mut b = b;
    // Room for every new flow of every run (two entries each).
    let roomy = Capacity {
        nat: (2 * calls * (runs + 1)).next_power_of_two() as u32,
        ..big
    };
    let mut t = super::dataplane(&[nat(VIP4, &reals4, None)], roomy);
    let ns = b.measure(
        &mut t,
        program_names::LB,
        &tcp_frame(VIP4, "100.64.0.1"),
        Flows::New,
    );
    rows.push(Row {
        name: "NAT: IPv4 new TCP flow (Maglev pick, two entries)".into(),
        ns,
        check: None,
    });
    Ok(rows)
}

/// `n` frames to `vip` from distinct generated clients.
fn frames_from(b: &Bench, n: usize, vip: &str, v6: bool) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| tcp_frame(vip, &b.client(v6, i as u32).to_string()))
        .collect()
}

/// Each client frame's reply: what the real sends back to the address and port it saw.
fn replies_of(w: &mut Workload, v6: bool) -> Result<Vec<Vec<u8>>> {
    pin_to_cpu0();
    let mut replies = Vec::new();
    for f in &w.frames {
        let out = w.t.run_program(program_names::LB, f, 1).frame;
        let (src, dst, l4) = if v6 {
            let s: [u8; 16] = out[22..38].try_into()?;
            let d: [u8; 16] = out[38..54].try_into()?;
            (IpAddr::from(s), IpAddr::from(d), 54)
        } else {
            let s: [u8; 4] = out[26..30].try_into()?;
            let d: [u8; 4] = out[30..34].try_into()?;
            (IpAddr::from(s), IpAddr::from(d), 34)
        };
        let sport = u16::from_be_bytes([out[l4], out[l4 + 1]]);
        let flow = Flow::tcp(&dst.to_string(), REAL_PORT, &src.to_string(), sport);
        replies.push(frames::frame(
            LB_MAC,
            backend_mac(dst),
            None,
            &flow,
            b"0123456789abcdef",
        ));
    }
    // Measure forwarding, not a drop: the replies must leave by the FIB's route.
    for r in replies.iter().take(3) {
        let out = w.t.run_program(program_names::LB, r, 1);
        anyhow::ensure!(
            out.action == XDP_REDIRECT,
            "a NAT reply got verdict {} instead of XDP_REDIRECT (check the bench namespace's routes)",
            out.action
        );
    }
    Ok(replies)
}
