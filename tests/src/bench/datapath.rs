//! `cargo xtask bench datapath`: the kernel-reported cost per packet of the XDP program,
//! from BPF_PROG_TEST_RUN.
//!
//! Every row is measured the same way: `calls` separate repeat=1 runs (the kernel does not
//! restore the frame between repeats, so an encapsulating path would otherwise time
//! itself on its own output), the median of their durations per run, and the median of
//! `runs` runs. Two baselines are measured alike: a program that only returns XDP_PASS
//! and one that swaps MACs and returns XDP_TX.

use std::{net::IpAddr, time::Instant};

use anyhow::Result;
use lb_common::program_names;
use lb_daemon::dataplane::{maglev, Capacity, ForwardMode, Protocol, ServiceSpec};

use super::report;
use crate::{
    frames::{self, Flow},
    harness::{pin_to_cpu0, service, TestDataplane, CLIENT_MAC, LB_MAC},
};

const VIP4: &str = "198.18.1.100";
const VIP6: &str = "2001:db8:1::100";

struct Row {
    name: String,
    ns: f64,
    /// (reference row name, reference ns, target ratio)
    check: Option<(String, f64, f64)>,
}

impl Row {
    fn ok(&self) -> Option<bool> {
        self.check
            .as_ref()
            .map(|(_, reference, target)| self.ns <= reference * target)
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n == 0 {
        return 0.0;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// How the frames of a row vary from call to call.
#[derive(Clone, Copy)]
enum Flows {
    /// The same `n` flows over and over (warmed first): connection-table hits.
    Established(usize),
    /// A flow never seen before on every call: connection-table misses and inserts.
    New,
}

struct Bench {
    calls: usize,
    runs: usize,
    /// Advances across rows so that "new" flows are never repeated.
    next_client: u32,
}

impl Bench {
    /// The client address of the i-th generated flow, in a range no service uses.
    fn client(&self, family_v6: bool, i: u32) -> IpAddr {
        if family_v6 {
            let mut o = [0u8; 16];
            o[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
            o[4] = 0xcc;
            o[12..].copy_from_slice(&i.to_be_bytes());
            IpAddr::from(o)
        } else {
            // 100.64.0.0/10 style: 64 + high bits keep it out of the VIP ranges.
            let b = i.to_be_bytes();
            IpAddr::from([100, 64 | (b[1] & 0x3f), b[2], b[3]])
        }
    }

    /// Patches the client (source) address of a frame in place.
    fn set_client(frame: &mut [u8], client: IpAddr) {
        match client {
            IpAddr::V4(a) => frame[26..30].copy_from_slice(&a.octets()),
            IpAddr::V6(a) => frame[22..38].copy_from_slice(&a.octets()),
        }
    }

    fn measure(
        &mut self,
        t: &mut TestDataplane,
        program: &'static str,
        template: &[u8],
        flows: Flows,
    ) -> f64 {
        pin_to_cpu0();
        let v6 = template[12..14] == frames::ETH_P_IPV6.to_be_bytes();
        let mut frame = template.to_vec();
        if let Flows::Established(n) = flows {
            for i in 0..n as u32 {
                Self::set_client(&mut frame, self.client(v6, i));
                t.run_program(program, &frame, 1);
            }
        }
        let mut run_medians = Vec::with_capacity(self.runs);
        for _ in 0..self.runs {
            let mut samples = Vec::with_capacity(self.calls);
            for c in 0..self.calls {
                let i = match flows {
                    Flows::Established(n) => (c % n) as u32,
                    Flows::New => {
                        self.next_client += 1;
                        1_000_000 + self.next_client
                    }
                };
                Self::set_client(&mut frame, self.client(v6, i));
                let out = t.run_program(program, &frame, 1);
                samples.push(out.duration.as_nanos() as f64);
            }
            run_medians.push(median(&mut samples));
        }
        median(&mut run_medians)
    }
}

fn dataplane(services: &[ServiceSpec], capacity: Capacity) -> TestDataplane {
    let mut t = TestDataplane::with_capacity(capacity);
    for s in services {
        t.dp.apply_service(s).expect("apply bench service");
    }
    t
}

fn backends_v4(n: usize) -> Vec<(String, u32)> {
    (0..n)
        .map(|i| (format!("198.18.{}.{}", 8 + i / 250, 1 + i % 250), 1))
        .collect()
}

/// A service on the port the frames use (80 TCP, 53 UDP): an exact-match hit.
fn spec_with(
    vip: &str,
    proto: Protocol,
    mode: ForwardMode,
    backends: &[(String, u32)],
    m: u32,
) -> ServiceSpec {
    let list: Vec<(&str, u32)> = backends.iter().map(|(a, w)| (a.as_str(), *w)).collect();
    let port = if proto == Protocol::Tcp { 80 } else { 53 };
    let mut s = service(vip, port, proto, mode, &list);
    s.table_size = m;
    s
}

fn tcp_frame(vip: &str, client: &str) -> Vec<u8> {
    frames::frame(
        LB_MAC,
        CLIENT_MAC,
        None,
        &Flow::tcp(client, 40000, vip, 80),
        b"0123456789abcdef",
    )
}

fn udp_frame(vip: &str, client: &str) -> Vec<u8> {
    frames::frame(
        LB_MAC,
        CLIENT_MAC,
        None,
        &Flow::udp(client, 40000, vip, 53),
        b"0123456789abcdef",
    )
}

pub fn run(calls: usize, runs: usize) -> Result<String> {
    let mut b = Bench {
        calls,
        runs,
        next_client: 0,
    };
    let big = Capacity {
        maglev_slots: 4 * 65537,
        conntrack: 1 << 21,
        ..Capacity::default()
    };
    let three = backends_v4(3);
    let three6: Vec<(String, u32)> = (1..=3).map(|i| (format!("2001:db8::{i}"), 1)).collect();
    let mut rows: Vec<Row> = Vec::new();
    let lb = program_names::LB;

    // Baselines.
    let mut t = dataplane(&[], big);
    let base_frame = tcp_frame(VIP4, "100.64.0.1");
    let pass = b.measure(
        &mut t,
        program_names::PASS,
        &base_frame,
        Flows::Established(1),
    );
    let swap = b.measure(
        &mut t,
        program_names::MAC_SWAP,
        &base_frame,
        Flows::Established(1),
    );
    rows.push(Row {
        name: "baseline: XDP_PASS only".into(),
        ns: pass,
        check: None,
    });
    rows.push(Row {
        name: "baseline: MAC swap + XDP_TX".into(),
        ns: swap,
        check: None,
    });
    let vs_swap = |target: f64| Some(("MAC swap".to_string(), swap, target));

    for (mode, label, est_target) in [(ForwardMode::Dr, "DR", 1.5), (ForwardMode::Tun, "TUN", 2.0)]
    {
        let v4 = spec_with(VIP4, Protocol::Tcp, mode, &three, 65537);
        let udp = spec_with(VIP4, Protocol::Udp, mode, &three, 65537);
        let v6 = spec_with(VIP6, Protocol::Tcp, mode, &three6, 65537);
        let mut t = dataplane(&[v4, udp, v6], big);
        let tcp4 = tcp_frame(VIP4, "100.64.0.1");
        let new = b.measure(&mut t, lb, &tcp4, Flows::New);
        rows.push(Row {
            name: format!("{label}: new TCP flow (miss, Maglev pick, insert)"),
            ns: new,
            check: vs_swap(3.0),
        });
        let est = b.measure(&mut t, lb, &tcp4, Flows::Established(1000));
        rows.push(Row {
            name: format!("{label}: established TCP flow (hit)"),
            ns: est,
            check: vs_swap(est_target),
        });
        let u = b.measure(
            &mut t,
            lb,
            &udp_frame(VIP4, "100.64.0.1"),
            Flows::Established(1000),
        );
        rows.push(Row {
            name: format!("{label}: UDP (established)"),
            ns: u,
            check: vs_swap(est_target),
        });
        let tcp6 = tcp_frame(VIP6, "2001:db8:cc::1");
        let e6 = b.measure(&mut t, lb, &tcp6, Flows::Established(1000));
        rows.push(Row {
            name: format!("{label}: IPv6 TCP (established)"),
            ns: e6,
            check: vs_swap(est_target),
        });
        let n6 = b.measure(&mut t, lb, &tcp6, Flows::New);
        rows.push(Row {
            name: format!("{label}: IPv6 new TCP flow"),
            ns: n6,
            check: vs_swap(3.0),
        });
        let other = tcp_frame("198.18.200.1", "100.64.0.1");
        let p = b.measure(&mut t, lb, &other, Flows::Established(1000));
        rows.push(Row {
            name: format!("{label}: non-VIP packet (pass)"),
            ns: p,
            check: None,
        });
    }

    scale_rows(&mut b, &mut rows, big)?;

    // Maglev table build: 1,000 backends, M = 65537.
    let ids: Vec<String> = (0..1000)
        .map(|i| format!("10.{}.{}.1:80", i / 256, i % 256))
        .collect();
    let members: Vec<maglev::MaglevBackend<'_>> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| maglev::MaglevBackend {
            identity: id.as_bytes(),
            value: i as u32,
            weight: 1,
        })
        .collect();
    let mut builds = Vec::new();
    for _ in 0..runs.max(5) {
        let start = Instant::now();
        maglev::build(&members, 65537)?;
        builds.push(start.elapsed().as_secs_f64() * 1e3);
    }
    let build_ms = median(&mut builds);

    Ok(render(&rows, build_ms, calls, runs))
}

fn scale_rows(b: &mut Bench, rows: &mut Vec<Row>, big: Capacity) -> Result<()> {
    let lb = program_names::LB;
    let three = backends_v4(3);

    // 1 vs 1,000 services: established flows cycling over 1,000 clients; with 1,000
    // services every client talks to another VIP.
    let one = dataplane(
        &[spec_with(VIP4, Protocol::Tcp, ForwardMode::Dr, &three, 251)],
        big,
    );
    let mut one = one;
    let frame = tcp_frame(VIP4, "100.64.0.1");
    let small = b.measure(&mut one, lb, &frame, Flows::Established(1000));
    drop(one);
    let many_specs: Vec<ServiceSpec> = (0..1000)
        .map(|i| {
            spec_with(
                &format!("198.19.{}.{}", i / 250, 1 + i % 250),
                Protocol::Tcp,
                ForwardMode::Dr,
                &three,
                251,
            )
        })
        .collect();
    let mut many = dataplane(
        &many_specs,
        Capacity {
            services: 1024,
            ..big
        },
    );
    // Each client gets its own VIP: patch the destination with the client index.
    let frames_by_client: Vec<Vec<u8>> = (0..1000)
        .map(|i| {
            tcp_frame(
                &format!("198.19.{}.{}", i / 250, 1 + i % 250),
                &format!("100.64.{}.{}", i / 256, i % 256),
            )
        })
        .collect();
    let large = measure_set(b, &mut many, &frames_by_client);
    rows.push(Row {
        name: "scale: 1 service (DR, established)".into(),
        ns: small,
        check: None,
    });
    rows.push(Row {
        name: "scale: 1,000 services (DR, established)".into(),
        ns: large,
        check: Some(("1 service".into(), small, 1.2)),
    });
    drop(many);

    // 3 vs 1,000 backends.
    let mut t = dataplane(
        &[spec_with(
            VIP4,
            Protocol::Tcp,
            ForwardMode::Dr,
            &three,
            65537,
        )],
        big,
    );
    let small = b.measure(&mut t, lb, &frame, Flows::Established(10_000));
    drop(t);
    let mut t = dataplane(
        &[spec_with(
            VIP4,
            Protocol::Tcp,
            ForwardMode::Dr,
            &backends_v4(1000),
            65537,
        )],
        big,
    );
    let large = b.measure(&mut t, lb, &frame, Flows::Established(10_000));
    rows.push(Row {
        name: "scale: 3 backends (DR, established)".into(),
        ns: small,
        check: None,
    });
    rows.push(Row {
        name: "scale: 1,000 backends (DR, established)".into(),
        ns: large,
        check: Some(("3 backends".into(), small, 1.2)),
    });
    drop(t);

    // Empty vs 1,000,000-entry connection table.
    let spec = spec_with(VIP4, Protocol::Tcp, ForwardMode::Dr, &three, 65537);
    let mut t = dataplane(std::slice::from_ref(&spec), big);
    let small = b.measure(&mut t, lb, &frame, Flows::Established(1000));
    drop(t);
    let mut t = dataplane(std::slice::from_ref(&spec), big);
    fill_conntrack(b, &mut t, &frame, 1_000_000);
    let large = b.measure(&mut t, lb, &frame, Flows::Established(1000));
    rows.push(Row {
        name: "scale: empty connection table (DR, established)".into(),
        ns: small,
        check: None,
    });
    rows.push(Row {
        name: "scale: 1,000,000-entry connection table (DR, established)".into(),
        ns: large,
        check: Some(("empty table".into(), small, 1.2)),
    });
    Ok(())
}

/// Like `Bench::measure` for a fixed set of distinct frames (warmed first).
fn measure_set(b: &Bench, t: &mut TestDataplane, set: &[Vec<u8>]) -> f64 {
    pin_to_cpu0();
    for f in set {
        t.run_program(program_names::LB, f, 1);
    }
    let mut run_medians = Vec::new();
    for _ in 0..b.runs {
        let mut samples: Vec<f64> = (0..b.calls)
            .map(|c| {
                t.run_program(program_names::LB, &set[c % set.len()], 1)
                    .duration
                    .as_nanos() as f64
            })
            .collect();
        run_medians.push(median(&mut samples));
    }
    median(&mut run_medians)
}

/// Fills the connection table with `n` flows from clients the measured rows do not use.
fn fill_conntrack(b: &mut Bench, t: &mut TestDataplane, template: &[u8], n: u32) {
    pin_to_cpu0();
    let mut frame = template.to_vec();
    for i in 0..n {
        Bench::set_client(&mut frame, b.client(false, 2_000_000 + i));
        t.run_program(program_names::LB, &frame, 1);
    }
}

fn render(rows: &[Row], build_ms: f64, calls: usize, runs: usize) -> String {
    let mut s = String::new();
    s.push_str("## Data path (`cargo xtask bench datapath`)\n\n");
    s.push_str(&format!("Machine: {}.\n\n", report::machine()));
    s.push_str(&format!(
        "Kernel-reported ns per packet from BPF_PROG_TEST_RUN: {calls} separate repeat=1 calls per run, \
         median per run, median of {runs} runs. Established rows cycle over 1,000 flows \
         (10,000 for the backend-scale rows) already in the connection table; new-flow rows use a \
         never-seen client on every call. Note that at this scale a repeat=1 call's duration \
         includes the kernel's timer reads around a single program run, which dominates the \
         cheapest programs.\n\n"
    ));
    s.push_str("| case | ns/packet | reference | target | met |\n|---|---:|---|---|---|\n");
    for r in rows {
        let (reference, target) = match &r.check {
            Some((name, ns, t)) => (
                format!("{:.2}x {name} ({ns:.0} ns)", r.ns / ns),
                format!("<= {t}x"),
            ),
            None => ("".into(), "".into()),
        };
        let met = match r.ok() {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "",
        };
        s.push_str(&format!(
            "| {} | {:.0} | {reference} | {target} | {met} |\n",
            r.name, r.ns
        ));
    }
    let build_ok = if build_ms < 2.0 { "yes" } else { "**no**" };
    s.push_str(&format!(
        "\nMaglev table build, 1,000 backends, M = 65537: **{build_ms:.2} ms** (median of 5; target < 2 ms: {build_ok}).\n"
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
    }

    #[test]
    fn generated_clients_do_not_collide() {
        let b = Bench {
            calls: 0,
            runs: 0,
            next_client: 0,
        };
        let a: std::collections::HashSet<IpAddr> =
            (0..100_000).map(|i| b.client(false, i)).collect();
        assert_eq!(a.len(), 100_000);
        let a6: std::collections::HashSet<IpAddr> = (0..1000).map(|i| b.client(true, i)).collect();
        assert_eq!(a6.len(), 1000);
    }
}
