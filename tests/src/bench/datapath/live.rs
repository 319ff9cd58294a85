//! Live-frames rows of `cargo xtask bench datapath`: BPF_PROG_TEST_RUN with
//! `BPF_F_TEST_XDP_LIVE_FRAMES`, `repeat` packets per run in batches of 64, received on a
//! veth whose peer drops them (`lb_drop`), so `XDP_TX` is a real transmit and the timed
//! loop is the driver's. Every program, the baselines too, runs behind the wrapper
//! `lb_bench_wrap`, which restores the headers (live mode does not) and varies the
//! client, then tail-calls it. Rows are measured in runs alternating with their baseline.

use std::os::fd::{AsFd, OwnedFd};

use anyhow::{Context, Result};
use lb_common::{program_names, BenchFrame, BENCH_HEAD_WORDS};
use lb_daemon::{
    dataplane::{live::live_test_run, Capacity, ForwardMode, HelperProgram, Protocol},
    netns::Netns,
};

use super::{dataplane, median, spec_with, tcp_frame, udp_frame, Row, VIP4, VIP6};
use crate::{
    frames::{self, Flow},
    harness::{CLIENT_MAC, LB_MAC},
};

const BATCH: u32 = 64;
const FLOWS: u32 = 1024;
/// Client addresses of new flows start here (above every other row's clients).
const NEW_BASE4: u32 = u32::from_be_bytes([100, 64, 0, 0]) + 3_000_000;

/// Targets of the issue (ratios to the MAC-swap baseline; ns above XDP_PASS).
const EST_TARGET: f64 = 1.75;
const NEW_TARGET: f64 = 5.2;
const NON_VIP_NS_TARGET: f64 = 16.0;
const FLOOD_TARGET: f64 = 1.7;
/// Katran's default flood threshold.
const FLOOD_LIMIT: u32 = 125_000;

/// Runs `work` while another thread rebuilds the connection-table filter of `dp` as
/// the daemon's rebuild thread does (every `conn_filter::EVERY`, paced by the walk's
/// length): the filter's fill in a long new-flow run is then what it would be in
/// production, not the bits of every flow since the start.
fn with_filter_rebuilds(
    dp: &lb_daemon::dataplane::Dataplane,
    work: impl FnOnce() -> Result<()>,
) -> Result<()> {
    use lb_daemon::dataplane::conn_filter::next_rebuild;
    use std::time::{Duration, Instant};
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let rebuilder = s.spawn(|| -> Result<()> {
            // The daemon's CPU is not the one measured.
            pin_to(1);
            let mut not_before = next_rebuild(Instant::now(), Duration::ZERO);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
                if Instant::now() >= not_before {
                    let started = Instant::now();
                    dp.rebuild_conn_filter()?;
                    not_before = next_rebuild(started, started.elapsed());
                }
            }
            Ok(())
        });
        let result = work();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let rebuilt = rebuilder.join().expect("filter rebuild thread");
        result.and(rebuilt)
    })
}

struct Live {
    repeat: u32,
    ifindex: u32,
}

/// A wrapper template for `frame`: its headers, and its client address's last word varied
/// over `flows` values from `base` (0 = never repeated).
fn template(frame: &[u8], flows: u32, base: Option<u32>) -> BenchFrame {
    let v6 = frame[12..14] == frames::ETH_P_IPV6.to_be_bytes();
    let off = if v6 { 34 } else { 26 };
    let mut head = [0u64; BENCH_HEAD_WORDS];
    let words = (frame.len() / 8).min(BENCH_HEAD_WORDS);
    for (i, w) in head.iter_mut().enumerate().take(words) {
        *w = u64::from_ne_bytes(frame[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
    }
    let word = u32::from_be_bytes(frame[off..off + 4].try_into().expect("4 bytes"));
    BenchFrame {
        head,
        words: words as u32,
        vary_offset: off as u32,
        vary_base: base.unwrap_or(word),
        flows,
    }
}

fn pin_to(cpu: usize) {
    let mut set = nix::sched::CpuSet::new();
    if set.set(cpu).is_ok() {
        let _ = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set);
    }
}

impl Live {
    /// ns per packet of one run on CPU 0.
    fn run(&self, fd: &OwnedFd, frame: &[u8]) -> Result<f64> {
        pin_to(0);
        let d = live_test_run(fd.as_fd(), frame, self.ifindex, self.repeat, BATCH)
            .context("BPF_PROG_TEST_RUN (live frames)")?;
        Ok(d.as_nanos() as f64)
    }

    /// Aggregate Mpps of one run on each of CPUs 0 and 1 at once.
    fn run_two_cpus(&self, fd: &OwnedFd, frame: &[u8]) -> Result<f64> {
        let per_cpu: Vec<Result<f64>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..2)
                .map(|cpu| {
                    s.spawn(move || {
                        pin_to(cpu);
                        live_test_run(fd.as_fd(), frame, self.ifindex, self.repeat, BATCH)
                            .map(|d| 1e3 / d.as_nanos().max(1) as f64)
                            .context("BPF_PROG_TEST_RUN (live frames, two CPUs)")
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("bench thread"))
                .collect()
        });
        per_cpu.into_iter().sum()
    }
}

struct Case {
    name: String,
    frame: Vec<u8>,
    /// Established flows cycled (warmed first), or 0: a new flow every packet.
    flows: u32,
    two_cpus: bool,
    /// vs the MAC swap (ratio target) or vs XDP_PASS (ns above it).
    check: Check,
    /// The flood guard's limit (new flows per CPU per second; 0: none).
    flood_limit: u32,
}

#[derive(Clone, Copy)]
enum Check {
    Swap(Option<f64>),
    PassPlusNs(f64),
}

pub(super) fn rows(live: &super::Live<'_>, runs: usize, big: Capacity) -> Result<Vec<Row>> {
    let (repeat, profile) = (live.repeat, live.profile);
    let ns = Netns::new("bench-live")?;
    ns.sh("ip link add v0 type veth peer name v1 && ip link set v0 up && ip link set v1 up")
        .context("the live-frames bench namespace")?;
    let only: Vec<String> = live.only.iter().map(|c| c.to_string()).collect();
    ns.run(move || measure(repeat, &only, profile, runs, big))
}

fn measure(
    repeat: u32,
    only: &[String],
    profile: bool,
    runs: usize,
    big: Capacity,
) -> Result<Vec<Row>> {
    let _peer = HelperProgram::attach(program_names::DROP, "v1")?;
    let ifindex = nix::net::if_::if_nametoindex("v0").context("v0")?;
    let live = Live { repeat, ifindex };
    let small = Capacity::default();
    let swap_frame = tcp_frame(VIP4, "100.64.0.1");
    let mut swap_dp = dataplane(&[], small);
    let swap_fd = swap_dp
        .dp
        .live_wrap(program_names::MAC_SWAP, &template(&swap_frame, FLOWS, None))?;
    let mut pass_dp = dataplane(&[], small);
    let pass_fd = pass_dp
        .dp
        .live_wrap(program_names::PASS, &template(&swap_frame, FLOWS, None))?;

    let mut rows = Vec::new();
    // The baselines, alternating with each other.
    let (mut pass, mut swap) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        pass.push(live.run(&pass_fd, &swap_frame)?);
        swap.push(live.run(&swap_fd, &swap_frame)?);
    }
    let (pass, swap) = (median(&mut pass), median(&mut swap));
    for (name, ns) in [
        ("live: baseline XDP_PASS only", pass),
        ("live: baseline MAC swap + XDP_TX", swap),
    ] {
        rows.push(Row {
            name: format!("{name} ({:.1} Mpps)", 1e3 / ns),
            ns,
            check: None,
        });
    }

    let (mut all_names, mut matched) = (Vec::new(), 0);
    let three: Vec<(String, u32)> = (1..=3).map(|i| (format!("198.18.8.{i}"), 1)).collect();
    let three6: Vec<(String, u32)> = (1..=3).map(|i| (format!("2001:db8::{i}"), 1)).collect();
    for (mode, label) in [(ForwardMode::Dr, "DR"), (ForwardMode::Tun, "TUN")] {
        let v4 = spec_with(VIP4, Protocol::Tcp, mode, &three, 65537);
        let udp = spec_with(VIP4, Protocol::Udp, mode, &three, 65537);
        let v6 = spec_with(VIP6, Protocol::Tcp, mode, &three6, 65537);
        let mut t = dataplane(&[v4, udp, v6], big);
        // As the daemon writes it for an attached interface: every VIP frame pays for
        // the check of its destination MAC (`vip_other_host`).
        t.dp.set_local_macs(ifindex, &[LB_MAC])?;
        let tcp4 = tcp_frame(VIP4, "100.64.0.0");
        let tcp6 = tcp_frame(VIP6, "2001:db8:cc::");
        let mut cases = vec![
            Case {
                name: format!("live {label}: established TCP flow"),
                frame: tcp4.clone(),
                flows: FLOWS,
                two_cpus: false,
                check: Check::Swap(Some(EST_TARGET)),
                flood_limit: 0,
            },
            Case {
                name: format!("live {label}: UDP (established)"),
                frame: udp_frame(VIP4, "100.64.0.0"),
                flows: FLOWS,
                two_cpus: false,
                check: Check::Swap(Some(EST_TARGET)),
                flood_limit: 0,
            },
            Case {
                name: format!("live {label}: IPv6 established TCP flow"),
                frame: tcp6,
                flows: FLOWS,
                two_cpus: false,
                check: Check::Swap(Some(EST_TARGET)),
                flood_limit: 0,
            },
            Case {
                name: format!("live {label}: new TCP flow every packet (insert)"),
                frame: tcp4.clone(),
                flows: 0,
                two_cpus: false,
                check: Check::Swap(Some(NEW_TARGET)),
                flood_limit: 0,
            },
            Case {
                name: format!(
                    "live {label}: new-flow flood, flood guard at {FLOOD_LIMIT} new flows/s per CPU"
                ),
                frame: tcp4.clone(),
                flows: 0,
                two_cpus: false,
                check: Check::Swap(Some(FLOOD_TARGET)),
                flood_limit: FLOOD_LIMIT,
            },
            Case {
                name: format!(
                    "live {label}: SYN flood (new flow every packet), flood guard at {FLOOD_LIMIT}/s per CPU"
                ),
                frame: frames::frame(
                    LB_MAC,
                    CLIENT_MAC,
                    None,
                    &Flow::tcp("100.64.0.0", 40000, VIP4, 80).with_flags(frames::TCP_SYN),
                    b"0123456789abcdef",
                ),
                flows: 0,
                two_cpus: false,
                check: Check::Swap(Some(FLOOD_TARGET)),
                flood_limit: FLOOD_LIMIT,
            },
            Case {
                name: format!("live {label}: non-VIP packet (pass)"),
                frame: tcp_frame("198.18.200.1", "100.64.0.0"),
                flows: FLOWS,
                two_cpus: false,
                check: Check::PassPlusNs(NON_VIP_NS_TARGET),
                flood_limit: 0,
            },
        ];
        if mode == ForwardMode::Dr {
            cases.push(Case {
                name: "live DR: established TCP flow, 1,500-byte frame".into(),
                frame: frames::frame(
                    LB_MAC,
                    CLIENT_MAC,
                    None,
                    &Flow::tcp("100.64.0.0", 40000, VIP4, 80),
                    &[0x5a; 1500 - 54],
                ),
                flows: FLOWS,
                two_cpus: false,
                check: Check::Swap(Some(EST_TARGET)),
                flood_limit: 0,
            });
            cases.push(Case {
                name: "live DR: established TCP flow, two CPUs sending".into(),
                frame: tcp4,
                flows: FLOWS,
                two_cpus: true,
                check: Check::Swap(None),
                flood_limit: 0,
            });
        }
        if !only.is_empty() {
            all_names.extend(cases.iter().map(|c| c.name.clone()));
            cases.retain(|c| only.iter().any(|o| c.name.contains(o.as_str())));
            matched += cases.len();
        }
        for c in cases {
            t.dp.set_new_flow_limit(c.flood_limit)?;
            let base = (c.flows == 0).then_some(NEW_BASE4);
            let fd =
                t.dp.live_wrap(program_names::LB, &template(&c.frame, c.flows, base))?;
            if c.flows > 0 {
                // Warm: every flow of the cycle into the connection table.
                pin_to(0);
                live_test_run(fd.as_fd(), &c.frame, ifindex, c.flows * 4, BATCH)?;
            }
            let (mut case, mut reference) = (Vec::new(), Vec::new());
            // The connection-table filter as the daemon keeps it: rebuilt (and trusted)
            // before the runs, then every CONN_FILTER_EVERY while they go on.
            t.dp.rebuild_conn_filter()?;
            let mut timed = || {
                with_filter_rebuilds(&t.dp, || {
                    for _ in 0..runs {
                        if c.two_cpus {
                            reference.push(live.run_two_cpus(&swap_fd, &swap_frame)?);
                            case.push(live.run_two_cpus(&fd, &c.frame)?);
                            continue;
                        }
                        reference.push(match c.check {
                            Check::Swap(_) => live.run(&swap_fd, &swap_frame)?,
                            Check::PassPlusNs(_) => live.run(&pass_fd, &swap_frame)?,
                        });
                        case.push(live.run(&fd, &c.frame)?);
                    }
                    Ok(())
                })
            };
            if profile {
                // Every timed run is on CPU 0 (the two-CPU case's second CPU is not
                // sampled); the MAC-swap runs between them are another program.
                let prog = t.dp.program_fd(program_names::LB)?;
                let ((), text) = super::profile::profile(&c.name, prog, 0, timed)?;
                println!("{text}");
            } else {
                timed()?;
            }
            let (ns, reference) = (median(&mut case), median(&mut reference));
            rows.push(if c.two_cpus {
                // Mpps, both CPUs together, against the MAC swap on both CPUs.
                Row {
                    name: format!(
                        "{} ({ns:.1} Mpps total; MAC swap on two CPUs: {reference:.1} Mpps)",
                        c.name
                    ),
                    ns: 1e3 / ns * 2.0,
                    check: None,
                }
            } else {
                Row {
                    name: format!("{} ({:.1} Mpps)", c.name, 1e3 / ns),
                    ns,
                    check: match c.check {
                        Check::Swap(target) => {
                            target.map(|x| ("live MAC swap".to_string(), reference, x))
                        }
                        Check::PassPlusNs(above) => Some((
                            format!("live XDP_PASS + {above} ns"),
                            reference,
                            (reference + above) / reference,
                        )),
                    },
                }
            });
        }
    }
    if !only.is_empty() && matched == 0 {
        anyhow::bail!(
            "--only {:?} names no live-frames case; the cases are:\n  {}",
            only.join("|"),
            all_names.join("\n  ")
        );
    }
    Ok(rows)
}
