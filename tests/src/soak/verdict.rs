//! Judging a soak run: failed requests against the fault windows, broken long-lived
//! connections against the backends the faults touched, resources against their early
//! values. Pure over the recorded run, except for the samplers of /proc.

use crate::daemon_lab::http_get;
use std::{
    collections::BTreeMap,
    fmt::Write,
    time::{Duration, Instant},
};

use super::{
    lab::{SoakLab, METRICS},
    load::Outcomes,
    schedule::{Fault, Service},
};

/// A fault as it happened.
pub struct Injected {
    pub fault: Fault,
    pub started: Instant,
    pub undone: Instant,
    /// What went wrong beyond the fault itself (a check that failed).
    pub problems: Vec<String>,
}

impl Injected {
    pub fn new(fault: Fault) -> Self {
        let now = Instant::now();
        Self {
            fault,
            started: now,
            undone: now,
            problems: Vec::new(),
        }
    }

    /// When requests of `service` started that may fail because of this fault: from one
    /// request's longest life before it (a request in flight when a backend is killed is
    /// reset by it, though it started first) to the grace after it is undone.
    fn window(&self, service: Service) -> Option<(Instant, Instant)> {
        let from = self
            .started
            .checked_sub(super::load::REQUEST_MAX)
            .unwrap_or(self.started);
        self.fault
            .disrupts()
            .contains(&service)
            .then(|| (from, self.undone + self.fault.grace()))
    }
}

/// One LB daemon's resources at one time.
#[derive(Debug, Clone)]
pub struct Proc {
    pub lb: usize,
    pub pid: u32,
    pub fds: usize,
    pub rss_kb: u64,
    pub threads: u64,
    /// `lb_sync_pending`: the peer's flows kept for a takeover (a bounded store that
    /// fills for its 15-minute keep time under a steady stream of new flows).
    pub pending: u64,
}

/// Memory a kept flow record may take in the daemon: what the pending store's growth is
/// allowed on top of the RSS margin. A record and its key take about 250 bytes in a hash
/// map that doubles as it grows (so it runs 44 to 88 % full), and the allocator keeps
/// the pages of the table it outgrew: the 30-minute run measured 855 bytes of RSS per
/// kept flow at the end (15,028 KiB for 17,579 flows), flat once the store was full.
pub const PENDING_RECORD_BYTES: u64 = 1024;

/// A long-lived daemon's RSS and kept flows are also listed at this interval, to show
/// their shape (the store fills for its 15-minute keep time, then stays level).
const SERIES_EVERY: Duration = Duration::from_secs(300);

/// `lb_sync_pending` from LB `lb`'s metrics (0 when it does not answer).
fn pending_flows(lab: &SoakLab, lb: usize) -> u64 {
    http_get(&lab.seg.nodes[lb].ns, METRICS, "/metrics")
        .ok()
        .and_then(|body| {
            body.lines()
                .find_map(|l| l.strip_prefix("lb_sync_pending "))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

pub struct Sample {
    pub at: Duration,
    pub procs: Vec<Proc>,
    pub pins: usize,
}

impl Sample {
    pub fn take(lab: &SoakLab, start: Instant) -> Sample {
        let procs = (0..2)
            .filter_map(|lb| {
                let pid = lab.seg.nodes[lb].pid()?;
                let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count();
                let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
                let field = |name: &str| {
                    status
                        .lines()
                        .find_map(|l| l.strip_prefix(name))
                        .and_then(|v| v.split_whitespace().next())
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0)
                };
                Some(Proc {
                    lb,
                    pid,
                    fds,
                    rss_kb: field("VmRSS:"),
                    threads: field("Threads:"),
                    pending: pending_flows(lab, lb),
                })
            })
            .collect();
        Sample {
            at: start.elapsed(),
            procs,
            pins: lab.bpffs.pins(),
        }
    }
}

/// Network namespaces this process made (`netns::unique_name` puts the pid in every
/// name): other tests running beside the soak do not count.
pub fn netns_count() -> usize {
    let mine = format!("-{}-", std::process::id());
    std::fs::read_dir("/run/netns").map_or(0, |d| {
        d.filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().contains(&mine))
            .count()
    })
}

pub fn mark(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "**not met**"
    }
}

pub struct Run<'a> {
    pub length: Duration,
    pub seed: u64,
    pub start: Instant,
    pub outcomes: &'a Outcomes,
    pub injected: &'a [Injected],
    pub samples: &'a [Sample],
    pub two_masters: Duration,
    pub pins: (usize, usize),
    pub planned: Vec<Fault>,
}

/// A process must live this long before its resources are compared (start-up allocates).
const WARMUP: Duration = Duration::from_secs(60);
/// Samples on each side of the comparison.
const EDGE: usize = 5;

/// The report (markdown) and whether every target was met.
pub fn judge(run: Run<'_>) -> (String, bool) {
    let secs = |t: Instant| t.duration_since(run.start).as_secs_f64();
    let in_window = |service: Service, t: Instant| {
        run.injected
            .iter()
            .filter_map(|i| i.window(service))
            .any(|(a, b)| a <= t && t <= b)
    };
    let reqs = &run.outcomes.requests;
    let failed: Vec<_> = reqs.iter().filter(|r| !r.ok).collect();
    let outside: Vec<_> = failed
        .iter()
        .filter(|r| !in_window(r.service, r.at))
        .collect();
    let mut ok = true;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Run of {} s, seed {}, {} faults injected.\n",
        run.length.as_secs(),
        run.seed,
        run.injected.len()
    );
    let _ = writeln!(
        out,
        "| fault | at (s) | requests failed in its window | service back after | checks |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|");
    for inj in run.injected {
        let mine: Vec<_> = failed
            .iter()
            .filter(|r| {
                inj.window(r.service)
                    .is_some_and(|(a, b)| a <= r.at && r.at <= b)
            })
            .collect();
        let back = match mine.iter().map(|r| r.at).max() {
            Some(last) => format!("{:.2} s", last.duration_since(inj.started).as_secs_f64()),
            None => "no failure".into(),
        };
        let checks = if inj.problems.is_empty() {
            "ok".to_string()
        } else {
            ok = false;
            format!("**{}**", inj.problems.join("; "))
        };
        let _ = writeln!(
            out,
            "| {} | {:.1} | {} | {back} | {checks} |",
            inj.fault.describe(),
            secs(inj.started),
            mine.len()
        );
    }
    let _ = writeln!(out, "\n| measure | value | target |\n|---|---|---|");
    for service in Service::ALL {
        let n = reqs.iter().filter(|r| r.service == service).count();
        let f = failed.iter().filter(|r| r.service == service).count();
        let o = outside.iter().filter(|r| r.service == service).count();
        let _ = writeln!(
            out,
            "| {} requests sent / failed / failed outside the fault windows | {n} / {f} / {o} | {} |",
            service.label(),
            mark(o == 0 && n > 0)
        );
        ok &= o == 0 && n > 0;
    }
    for r in outside.iter().take(5) {
        let _ = writeln!(
            out,
            "| failed outside a window | {} at {:.2} s: {} | |",
            r.service.label(),
            secs(r.at),
            r.error.as_deref().unwrap_or("")
        );
    }
    // A long-lived connection may break only on a backend a fault killed or cut.
    let expected = |b: &super::load::Broken| {
        run.injected.iter().any(|i| match i.fault {
            Fault::BackendKilled { service, backend }
            | Fault::BackendLinkFlap { service, backend } => {
                service == b.service
                    && lb_daemon::lab::backend_name(backend) == b.backend
                    && i.started <= b.at
                    && b.opened <= i.undone + i.fault.grace()
            }
            _ => false,
        })
    };
    for service in Service::ALL {
        let broken: Vec<_> = run
            .outcomes
            .broken
            .iter()
            .filter(|b| b.service == service)
            .collect();
        let unexpected: Vec<_> = broken.iter().filter(|b| !expected(b)).collect();
        // The target covers DR; NAT connections are reported.
        let met = service != Service::Dr || unexpected.is_empty();
        ok &= met;
        let _ = writeln!(
            out,
            "| {} long-lived connections broken / on a backend a fault hit / others | {} / {} / {} | {} |",
            service.label(),
            broken.len(),
            broken.len() - unexpected.len(),
            unexpected.len(),
            if service == Service::Dr { mark(met) } else { "reported" }
        );
        for b in unexpected.iter().take(3) {
            let _ = writeln!(
                out,
                "| broken | {} on {} at {:.2} s: {} | |",
                service.label(),
                b.backend,
                secs(b.at),
                b.error
            );
        }
    }
    let _ = writeln!(
        out,
        "| long-lived connections opened (with replacements) | {} | |",
        run.outcomes.opened
    );
    let _ = writeln!(
        out,
        "| time with two running masters (100 ms sampling) | {:.1} s | reported |",
        run.two_masters.as_secs_f64()
    );
    let (rows, grew) = resources(run.samples);
    out.push_str(&rows);
    ok &= !grew;
    let pins_ok = run.pins.1 <= run.pins.0;
    ok &= pins_ok;
    let _ = writeln!(
        out,
        "| pinned objects at start / end | {} / {} | {} |",
        run.pins.0,
        run.pins.1,
        mark(pins_ok)
    );
    let kinds = run
        .planned
        .iter()
        .map(std::mem::discriminant)
        .collect::<std::collections::HashSet<_>>()
        .len();
    let _ = writeln!(out, "| kinds of fault injected | {kinds} of 10 | |");
    (out, ok)
}

/// Per daemon process that lived past the warm-up: fds, memory and threads of its first
/// samples after the warm-up against its last ones. Growth = the least of the last
/// [`EDGE`] samples above the most of the first [`EDGE`] (robust to the health checks'
/// sockets coming and going).
/// "t: RSS / kept" at every [`SERIES_EVERY`] of a process's life (empty below two marks).
fn over_time(series: &[(Duration, &Proc)]) -> String {
    let born = series[0].0;
    let mut marks = Vec::new();
    let mut next = born;
    for (at, p) in series {
        if *at >= next {
            marks.push(format!(
                "{:.0} min: {:.1} / {}",
                (*at - born).as_secs_f64() / 60.0,
                p.rss_kb as f64 / 1024.0,
                p.pending
            ));
            next += SERIES_EVERY;
        }
    }
    if marks.len() < 3 {
        return String::new();
    }
    marks.join(", ")
}

fn resources(samples: &[Sample]) -> (String, bool) {
    let mut by_proc: BTreeMap<(usize, u32), Vec<(Duration, &Proc)>> = BTreeMap::new();
    for s in samples {
        for p in &s.procs {
            by_proc.entry((p.lb, p.pid)).or_default().push((s.at, p));
        }
    }
    let mut out = String::new();
    let mut grew = false;
    let mut measured = 0;
    for ((lb, pid), series) in &by_proc {
        let born = series[0].0;
        let after: Vec<&Proc> = series
            .iter()
            .filter(|(at, _)| *at >= born + WARMUP)
            .map(|(_, p)| *p)
            .collect();
        if after.len() < 2 * EDGE {
            continue;
        }
        measured += 1;
        let first = &after[..EDGE];
        let last = &after[after.len() - EDGE..];
        let max = |v: &[&Proc], f: fn(&Proc) -> u64| v.iter().map(|p| f(p)).max().unwrap_or(0);
        let min = |v: &[&Proc], f: fn(&Proc) -> u64| v.iter().map(|p| f(p)).min().unwrap_or(0);
        let fds = (max(first, |p| p.fds as u64), min(last, |p| p.fds as u64));
        let rss = (max(first, |p| p.rss_kb), min(last, |p| p.rss_kb));
        let thr = (max(first, |p| p.threads), min(last, |p| p.threads));
        let pending = (min(first, |p| p.pending), max(last, |p| p.pending));
        let fds_ok = fds.1 <= fds.0 + 2;
        // 10 % or 1 MiB, whichever is more: allocator noise, not a leak; plus what the
        // bounded store of kept flows grew by (measured, not assumed).
        let kept_kb = pending.1.saturating_sub(pending.0) * PENDING_RECORD_BYTES / 1024;
        let rss_ok = rss.1 <= rss.0 + (rss.0 / 10).max(1024) + kept_kb;
        let thr_ok = thr.1 <= thr.0 + 2;
        grew |= !(fds_ok && rss_ok && thr_ok);
        let _ = writeln!(
            out,
            "| lb{} (pid {pid}, {:.0} s observed) fds / RSS / threads / kept peer flows: after warm-up → at the end | {} → {} / {} → {} KiB / {} → {} / {} → {} | {} |",
            lb + 1,
            (series[series.len() - 1].0 - born).as_secs_f64(),
            fds.0,
            fds.1,
            rss.0,
            rss.1,
            thr.0,
            thr.1,
            pending.0,
            pending.1,
            mark(fds_ok && rss_ok && thr_ok)
        );
        let series_row = over_time(series);
        if !series_row.is_empty() {
            let _ = writeln!(
                out,
                "| lb{} (pid {pid}) RSS MiB / kept peer flows every {} min | {series_row} | |",
                lb + 1,
                SERIES_EVERY.as_secs() / 60
            );
        }
    }
    if measured == 0 {
        let _ = writeln!(
            out,
            "| fds / memory growth | no daemon lived {} s past its start | not measured |",
            WARMUP.as_secs() + 2 * EDGE as u64 * 2
        );
    }
    (out, grew)
}

#[cfg(test)]
#[allow(clippy::field_reassign_with_default)]
mod tests {
    use super::*;
    use crate::soak::load::{Broken, Request};

    fn run_with<'a>(
        start: Instant,
        outcomes: &'a Outcomes,
        injected: &'a [Injected],
        samples: &'a [Sample],
    ) -> (String, bool) {
        judge(Run {
            length: Duration::from_secs(180),
            seed: 1,
            start,
            outcomes,
            injected,
            samples,
            two_masters: Duration::ZERO,
            pins: (10, 10),
            planned: vec![Fault::MasterLinkCut],
        })
    }

    fn req(start: Instant, at_ms: u64, service: Service, ok: bool) -> Request {
        Request {
            at: start + Duration::from_millis(at_ms),
            service,
            ok,
            error: (!ok).then(|| "connect: timed out".into()),
        }
    }

    fn cut(start: Instant) -> Injected {
        Injected {
            fault: Fault::MasterLinkCut,
            started: start + Duration::from_secs(10),
            undone: start + Duration::from_secs(15),
            problems: Vec::new(),
        }
    }

    #[test]
    fn failures_inside_a_failover_window_pass_and_outside_fail() {
        let start = Instant::now();
        let injected = [cut(start)];
        let mut o = Outcomes::default();
        o.requests = vec![
            req(start, 1_000, Service::Dr, true),
            req(start, 11_000, Service::Dr, false),
            req(start, 22_000, Service::Nat, false),
            req(start, 30_000, Service::Nat, true),
        ];
        // 22 s is inside 15 s + 8 s of grace.
        let (report, ok) = run_with(start, &o, &injected, &[]);
        assert!(ok, "{report}");
        assert!(
            report.contains("| master link cut and restored | 10.0 | 2 | 12.00 s | ok |"),
            "{report}"
        );
        o.requests.push(req(start, 40_000, Service::Dr, false));
        let (report, ok) = run_with(start, &o, &injected, &[]);
        assert!(!ok, "{report}");
        assert!(
            report.contains("failed outside a window | DR at 40.00 s"),
            "{report}"
        );
    }

    #[test]
    fn a_request_in_flight_when_a_fault_starts_is_inside_its_window() {
        let start = Instant::now();
        let injected = [cut(start)];
        let mut o = Outcomes::default();
        // Started 1 s before the cut (10 s), reset by it: inside.
        let nat_ok = req(start, 1_000, Service::Nat, true);
        o.requests = vec![nat_ok.clone(), req(start, 9_000, Service::Dr, false)];
        let (report, ok) = run_with(start, &o, &injected, &[]);
        assert!(ok, "{report}");
        // Started 2 s before: longer ago than a request lives, outside.
        o.requests = vec![nat_ok, req(start, 8_000, Service::Dr, false)];
        let (report, ok) = run_with(start, &o, &injected, &[]);
        assert!(!ok, "{report}");
    }

    #[test]
    fn a_dr_connection_may_break_only_on_a_backend_a_fault_hit() {
        let start = Instant::now();
        let kill = Injected {
            fault: Fault::BackendKilled {
                service: Service::Dr,
                backend: 1,
            },
            started: start + Duration::from_secs(10),
            undone: start + Duration::from_secs(14),
            problems: Vec::new(),
        };
        let broken = |backend: usize, service| Broken {
            at: start + Duration::from_secs(11),
            service,
            backend: lb_daemon::lab::backend_name(backend),
            opened: start,
            error: "read: reset".into(),
        };
        let mut o = Outcomes::default();
        o.requests = vec![
            req(start, 0, Service::Dr, true),
            req(start, 0, Service::Nat, true),
        ];
        o.broken = vec![broken(1, Service::Dr)];
        let injected = [kill];
        assert!(run_with(start, &o, &injected, &[]).1);
        // NAT breaks are reported, not judged; a DR break elsewhere fails the run.
        o.broken.push(broken(2, Service::Nat));
        assert!(run_with(start, &o, &injected, &[]).1);
        o.broken.push(broken(2, Service::Dr));
        assert!(!run_with(start, &o, &injected, &[]).1);
    }

    #[test]
    fn growing_descriptors_fail_and_a_failed_check_fails() {
        let start = Instant::now();
        let mut o = Outcomes::default();
        o.requests = vec![
            req(start, 0, Service::Dr, true),
            req(start, 0, Service::Nat, true),
        ];
        // From sample 50 on: `grow` more fds, `rss` more KiB, `kept` more kept flows.
        let samples = |grow: usize, rss: u64, kept: u64| -> Vec<Sample> {
            (0..60)
                .map(|i| Sample {
                    at: Duration::from_secs(2 * i),
                    procs: vec![Proc {
                        lb: 0,
                        pid: 7,
                        fds: 30 + if i > 50 { grow } else { 0 },
                        rss_kb: 20_000 + if i > 50 { rss } else { 0 },
                        threads: 4,
                        pending: 100 + if i > 50 { kept } else { 0 },
                    }],
                    pins: 10,
                })
                .collect()
        };
        assert!(run_with(start, &o, &[], &samples(0, 0, 0)).1);
        let (report, ok) = run_with(start, &o, &[], &samples(10, 0, 0));
        assert!(!ok && report.contains("30 → 40"), "{report}");
        // 5 MiB more: a leak, unless the store of kept flows explains it.
        assert!(!run_with(start, &o, &[], &samples(0, 5120, 0)).1);
        let (report, ok) = run_with(start, &o, &[], &samples(0, 5120, 10_000));
        assert!(ok && report.contains("100 → 10100"), "{report}");
        assert!(!run_with(start, &o, &[], &samples(0, 5120, 1_000)).1);
        let mut failing = cut(start);
        failing.problems.push("status failed".into());
        assert!(!run_with(start, &o, &[failing], &samples(0, 0, 0)).1);
    }
}
