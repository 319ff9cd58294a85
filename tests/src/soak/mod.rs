//! `cargo xtask soak --minutes N [--seed S]`: the fault-injection soak (issue 16). Two LB
//! nodes with DR and NAT services ([`lab`]), a client load ([`load`]), and a seeded
//! schedule of faults ([`schedule`], [`faults`]). Afterwards every failed request is
//! judged against the fault windows, long-lived connections against the backends the
//! faults touched, and the daemons' file descriptors, memory, threads and pins against
//! their early values. The report is markdown; the run fails when a target is missed.

pub mod faults;
pub mod lab;
pub mod load;
pub mod schedule;
pub mod verdict;

use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use lab::SoakLab;
use load::Load;
use schedule::{Fault, Planned};
use verdict::{Injected, Sample};

pub struct Options {
    pub length: Duration,
    pub seed: u64,
    /// Only faults of this kind (`Fault::kind_name`), repeated.
    pub only: Option<String>,
}

/// Runs the soak; the report and whether every target was met.
pub fn run(opts: &Options) -> Result<(String, bool)> {
    let netns_before = verdict::netns_count();
    let plan = match &opts.only {
        None => schedule::schedule(opts.seed, opts.length),
        Some(kind) => schedule::schedule_only(opts.seed, opts.length, kind).with_context(|| {
            format!(
                "--only {kind}: no such kind of fault; the kinds are {}",
                Fault::kind_names().join(", ")
            )
        })?,
    };
    eprintln!(
        "soak: {} s, seed {}, {} faults planned",
        opts.length.as_secs(),
        opts.seed,
        plan.len()
    );
    let (report, ok) = {
        let mut lab = SoakLab::new().context("building the soak lab")?;
        let result = soak(&mut lab, &plan, opts);
        match &result {
            Err(_) => eprintln!("{}", lab.seg.logs()),
            // A missed target is chased in the daemons' logs (their times are UTC; the
            // run printed when its clock started).
            Ok((_, false)) => {
                let path = std::env::temp_dir().join(format!("lb-soak-{}.log", opts.seed));
                match std::fs::write(&path, lab.seg.logs()) {
                    Ok(()) => eprintln!("soak: the daemons' logs are in {}", path.display()),
                    Err(e) => eprintln!("soak: writing {}: {e}", path.display()),
                }
            }
            Ok(_) => {}
        }
        result?
    };
    // Everything the lab made is gone once it is dropped.
    let netns_after = verdict::netns_count();
    let leaked = netns_after.saturating_sub(netns_before);
    let report = format!(
        "{report}\n| namespaces left after the run | {leaked} ({netns_before} before, {netns_after} after) | {} |\n",
        verdict::mark(leaked == 0)
    );
    Ok((report, ok && leaked == 0))
}

/// HH:MM:SS.mmm of now, UTC: to line the report's offsets up with the daemons' logs.
fn time_of_day_utc() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
        % 86_400_000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

fn soak(lab: &mut SoakLab, plan: &[Planned], opts: &Options) -> Result<(String, bool)> {
    lab.start(0)?;
    lab.start(1)?;
    lab.seg
        .wait_holder(lab::DR_VIP, 0, Duration::from_secs(15))
        .with_context(|| format!("lb1 master\n{}", lab.seg.logs()))?;
    for i in 0..2 {
        lab.wait_socket(i, Duration::from_secs(10))?;
    }
    // Traffic flows on both services before the clock starts.
    let deadline = Instant::now() + Duration::from_secs(20);
    for service in schedule::Service::ALL {
        let a = lab::addressing(service);
        while lb_daemon::lab::requests_to(&lab.seg.nodes[lab::CLIENT].ns, a, 5).is_err() {
            anyhow::ensure!(
                Instant::now() < deadline,
                "no traffic through the {} VIP\n{}",
                service.label(),
                lab.seg.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let pins_at_start = lab.bpffs.pins();
    let load = Load::start(lab.seg.nodes[lab::CLIENT].ns.path());
    let start = Instant::now();
    eprintln!("soak: the clock starts at {} UTC", time_of_day_utc());
    let mut samples: Vec<Sample> = Vec::new();
    let mut injected: Vec<Injected> = Vec::new();
    let mut two_masters = Duration::ZERO;
    let mut next = plan.iter().peekable();
    let mut last_sample = Instant::now() - Duration::from_secs(10);
    let tick = Duration::from_millis(100);
    let mut pending: Option<(Injected, faults::Undo, Instant)> = None;
    while start.elapsed() < opts.length {
        let now = Instant::now();
        // Both running daemons holding the VIP at once.
        let holders = lab.holders();
        if holders.len() == 2 && holders.iter().all(|i| lab.seg.nodes[*i].pid().is_some()) {
            two_masters += tick;
        }
        if now.duration_since(last_sample) >= Duration::from_secs(2) {
            samples.push(Sample::take(lab, start));
            last_sample = now;
        }
        if let Some((mut inj, undo, until)) = pending.take() {
            if now >= until {
                faults::undo(lab, undo, &mut inj.problems)
                    .with_context(|| format!("undoing: {}", inj.fault.describe()))?;
                inj.undone = Instant::now();
                eprintln!("soak: {:>6.1} s  undone", start.elapsed().as_secs_f64());
                injected.push(inj);
            } else {
                pending = Some((inj, undo, until));
            }
        } else if let Some(p) = next.next_if(|p| start.elapsed() >= p.at) {
            eprintln!(
                "soak: {:>6.1} s  {}",
                start.elapsed().as_secs_f64(),
                p.fault.describe()
            );
            let mut inj = Injected::new(p.fault);
            let undo = faults::inject(lab, p.fault, &mut inj.problems)
                .with_context(|| format!("injecting: {}", p.fault.describe()))?;
            pending = Some((inj, undo, Instant::now() + p.fault.hold()));
        }
        std::thread::sleep(tick.saturating_sub(now.elapsed()));
    }
    if let Some((mut inj, undo, _)) = pending.take() {
        faults::undo(lab, undo, &mut inj.problems)?;
        inj.undone = Instant::now();
        injected.push(inj);
    }
    let (sent, failed) = load.counts();
    eprintln!("soak: load done, {sent} requests, {failed} failed");
    let outcomes = load.finish();
    samples.push(Sample::take(lab, start));
    let pins_at_end = lab.bpffs.pins();
    let judged = verdict::judge(verdict::Run {
        length: opts.length,
        seed: opts.seed,
        start,
        outcomes: &outcomes,
        injected: &injected,
        samples: &samples,
        two_masters,
        pins: (pins_at_start, pins_at_end),
        planned: plan.iter().map(|p| p.fault).collect::<Vec<Fault>>(),
    });
    Ok(judged)
}
