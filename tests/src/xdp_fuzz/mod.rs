//! `cargo xtask fuzz xdp`: the XDP program fuzzed through BPF_PROG_TEST_RUN.
//!
//! A seeded, coverage-less mutator (libFuzzer cannot see inside a BPF program): random
//! frames and frames mutated from fixture-style seeds ([`lab::seeds`]) run one at a time
//! (repeat = 1) against a programmed DR/TUN/NAT service set on IPv4 and IPv6
//! ([`lab::services`]), and every run is checked ([`check`]): verdict, output frame,
//! checksums from scratch, and the verdict counters. A failure prints the seed, the run
//! number and the frame, writes the frame to a file, and the command replays it (same
//! seed, same number of runs: the program's state is rebuilt exactly).

pub mod check;
pub mod classify;
pub mod lab;
pub mod mutate;
pub mod rng;

use std::{
    fmt,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use aya::maps::{HashMap as BpfHashMap, Map, MapData, PerCpuArray};
use lb_common::{map_names, Counter, FlowKey, NatEntry};
use lb_daemon::dataplane::{spec::encode_addr, ForwardMode, ServiceSpec};

use self::{
    check::Expect,
    classify::{classify, Class, Ip},
    mutate::Dict,
    rng::Rng,
};
use crate::{
    frames::{ICMP, ICMPV6},
    harness::{TestDataplane, XDP_DROP, XDP_PASS, XDP_REDIRECT, XDP_TX},
};

pub struct Options {
    pub seed: u64,
    /// Stop after this long ...
    pub time: Duration,
    /// ... or after this many runs.
    pub runs: Option<u64>,
    /// Where a failing frame is written.
    pub out_dir: PathBuf,
}

/// What a fuzzing session did.
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub seed: u64,
    pub runs: u64,
    pub elapsed: Duration,
    pub pass: u64,
    pub tx: u64,
    pub redirect: u64,
    pub drop: u64,
    pub malformed: u64,
    pub other: u64,
    pub icmp: u64,
    pub not_for_vip: u64,
    pub maybe_nat: u64,
    pub dr: u64,
    pub tun: u64,
    pub nat: u64,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let per_s = self.runs as f64 / self.elapsed.as_secs_f64().max(1e-9);
        let pct = |n: u64| 100.0 * n as f64 / self.runs.max(1) as f64;
        write!(
            f,
            "seed {}: {} runs in {:.1} s ({:.0} execs/s); verdicts PASS {} ({:.1}%), TX {} ({:.1}%), \
             REDIRECT {} ({:.1}%), DROP {} ({:.1}%); frames: malformed {}, not IP/TCP/UDP/ICMP {}, \
             ICMP {}, TCP/UDP for no VIP {}, NAT reply candidates {}, DR {}, TUN {}, NAT {}",
            self.seed,
            self.runs,
            self.elapsed.as_secs_f64(),
            per_s,
            self.pass,
            pct(self.pass),
            self.tx,
            pct(self.tx),
            self.redirect,
            pct(self.redirect),
            self.drop,
            pct(self.drop),
            self.malformed,
            self.other,
            self.icmp,
            self.not_for_vip,
            self.maybe_nat,
            self.dr,
            self.tun,
            self.nat,
        )
    }
}

/// Runs the fuzzer in its own network namespace (NAT replies are routed by its FIB).
pub fn run(opts: Options) -> Result<Report> {
    let ns = lab::fib_namespace().context("creating the fuzzer's network namespace")?;
    ns.run(move || fuzz(&opts))
}

/// Reads single global counters from the pinned `lb_stats` (summed over CPUs): a
/// handful of lookups per run instead of the whole table.
struct Stats(PerCpuArray<MapData, u64>);

impl Stats {
    fn open(pin_dir: &Path) -> Result<Stats> {
        let path = pin_dir.join(map_names::STATS);
        let map = MapData::from_pin(&path)
            .and_then(Map::from_map_data)
            .and_then(PerCpuArray::try_from)
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(Stats(map))
    }

    fn get(&self, c: Counter) -> Result<u64> {
        Ok(self.0.get(&(c as u32), 0)?.iter().sum())
    }

    fn sum(&self, cs: &[Counter]) -> Result<u64> {
        cs.iter().map(|&c| self.get(c)).sum()
    }
}

const VERDICTS: [Counter; 5] = [
    Counter::VerdictPass,
    Counter::VerdictTx,
    Counter::VerdictDrop,
    Counter::VerdictAborted,
    Counter::VerdictRedirect,
];
/// Why a VIP (NAT) frame may be dropped (`nat_misdirected`: its tuple is a reply
/// entry's key, left by a client that spoofed the VIP as its source).
const NAT_DROPS: [Counter; 3] = [
    Counter::NatTableFull,
    Counter::SnatPortsExhausted,
    Counter::NatMisdirected,
];
/// Why a NAT reply may be dropped (passed to the kernel instead, a frame to a VIP in
/// no-accept mode is dropped).
const ROUTE_DROPS: [Counter; 3] = [
    Counter::FibNoNeigh,
    Counter::FibFailed,
    Counter::VipStrictDrop,
];
const STRICT_DROPS: [Counter; 1] = [Counter::VipStrictDrop];

fn nat_map(pin_dir: &Path) -> Result<BpfHashMap<MapData, FlowKey, NatEntry>> {
    let path = pin_dir.join(map_names::NAT);
    MapData::from_pin(&path)
        .and_then(Map::from_map_data)
        .and_then(BpfHashMap::try_from)
        .with_context(|| format!("opening {}", path.display()))
}

fn fuzz(opts: &Options) -> Result<Report> {
    let specs = lab::services();
    let mut t = lab::dataplane(&specs)?;
    let pin_dir = t.dp.pin_dir().to_path_buf();
    let stats = Stats::open(&pin_dir)?;
    let nat = nat_map(&pin_dir)?;
    let seeds = lab::seeds(&specs);
    let dict = dictionary(&specs);
    let mut rng = Rng::new(opts.seed);
    let mut report = Report {
        seed: opts.seed,
        ..Report::default()
    };
    let start = Instant::now();
    let mut verdicts = read_all(&stats, &VERDICTS)?;
    loop {
        let n = report.runs;
        if opts.runs.is_some_and(|max| n >= max)
            || (opts.runs.is_none() && start.elapsed() >= opts.time)
        {
            break;
        }
        let frame = if (n as usize) < seeds.len() {
            seeds[n as usize].clone()
        } else {
            generate(&mut rng, &seeds, &dict)
        };
        let result = run_one(
            &mut t,
            &specs,
            &stats,
            &nat,
            &frame,
            &mut verdicts,
            &mut report,
        );
        report.runs += 1;
        if let Err(reason) = result {
            let file = write_failure(&opts.out_dir, opts.seed, n, &frame, &reason)?;
            eprintln!(
                "xdp fuzz: FAILED at run {n} (seed {}): {reason}\n  frame: {}\n  written to {}\n  \
                 replay: cargo xtask fuzz xdp --seed {} --runs {}",
                opts.seed,
                hex(&frame),
                file.display(),
                opts.seed,
                n + 1
            );
            bail!("run {n} of seed {} broke an invariant: {reason}", opts.seed);
        }
    }
    report.elapsed = start.elapsed();
    totals(&t, &report)?;
    Ok(report)
}

fn read_all(stats: &Stats, cs: &[Counter]) -> Result<Vec<u64>> {
    cs.iter().map(|&c| stats.get(c)).collect()
}

/// Every VIP, real, LB and client address, and the service ports, for field mutations.
fn dictionary(specs: &[ServiceSpec]) -> Dict {
    let mut addrs = Vec::new();
    let mut ports = vec![0, 22, 5353, lab::REAL_PORT, 40000];
    for s in specs {
        addrs.push(s.id.vip);
        ports.push(s.id.port);
        if let ForwardMode::Nat { snat: Some(a) } = s.mode {
            addrs.push(a);
        }
        addrs.extend(s.backends.iter().map(|b| b.addr));
    }
    for a in lab::OTHERS
        .iter()
        .chain(&lab::STRICT)
        .chain(&[lab::CLIENT4, lab::CLIENT6])
    {
        addrs.push(a.parse().expect("address"));
    }
    Dict::new(&addrs, &ports)
}

fn generate(rng: &mut Rng, seeds: &[Vec<u8>], dict: &Dict) -> Vec<u8> {
    match rng.below(100) {
        0..8 => mutate::random_frame(rng),
        8..18 => rng.pick(seeds).clone(),
        _ => {
            let seed = rng.pick(seeds);
            let other = rng.pick(seeds);
            mutate::mutate(rng, seed, other, dict)
        }
    }
}

fn nat_enabled(specs: &[ServiceSpec]) -> bool {
    specs.iter().any(|s| s.mode.is_nat())
}

fn flow_key(
    src: std::net::IpAddr,
    dst: std::net::IpAddr,
    sport: u16,
    dport: u16,
    proto: u8,
) -> FlowKey {
    let (s, family) = encode_addr(src);
    let (d, _) = encode_addr(dst);
    FlowKey {
        src: s,
        dst: d,
        sport: sport.to_be(),
        dport: dport.to_be(),
        proto,
        family,
        pad: 0,
    }
}

/// The model's expectation for a frame (reading the NAT table for replies and ICMP
/// errors: whether a translation exists is state, not something the frame says). What
/// would pass to the kernel is dropped when it is addressed to a VIP in no-accept mode.
fn expect(
    specs: &[ServiceSpec],
    nat: &BpfHashMap<MapData, FlowKey, NatEntry>,
    frame: &[u8],
    class: &Class,
) -> Expect {
    match base_expect(specs, nat, frame, class) {
        Expect::Pass
            if classify::strict_target(frame).is_some_and(|a| lab::is_strict(specs, a)) =>
        {
            Expect::StrictDrop
        }
        e => e,
    }
}

fn base_expect(
    specs: &[ServiceSpec],
    nat: &BpfHashMap<MapData, FlowKey, NatEntry>,
    frame: &[u8],
    class: &Class,
) -> Expect {
    match class {
        Class::Malformed(_) => Expect::Drop,
        Class::Other(_) => Expect::Pass,
        Class::L4(ip) => {
            if let Some(i) = lab::find(specs, ip.dst, ip.proto, ip.dport)
                .and_then(|s| specs.iter().position(|x| x.id == s.id))
            {
                return Expect::Vip(i);
            }
            let key = flow_key(ip.src, ip.dst, ip.sport, ip.dport, ip.proto);
            if nat_enabled(specs)
                && (lab::is_nat_real(specs, ip.src, ip.sport, ip.proto) || nat.get(&key, 0).is_ok())
            {
                Expect::MaybeNat
            } else {
                Expect::Pass
            }
        }
        Class::Icmp(ip) => {
            if quoted_nat_flow(nat, frame, ip) {
                Expect::MaybeNat
            } else {
                Expect::Pass
            }
        }
    }
}

/// Whether an ICMP error quotes a packet whose reverse is in the NAT table.
fn quoted_nat_flow(nat: &BpfHashMap<MapData, FlowKey, NatEntry>, f: &[u8], ip: &Ip) -> bool {
    let l4 = ip.l4();
    let Some(&kind) = f.get(l4) else { return false };
    let is_error = if ip.v4 {
        [3, 11, 12].contains(&kind)
    } else {
        (1..=4).contains(&kind)
    };
    let inner = l4 + 8;
    if !is_error {
        return false;
    }
    let (src, dst, proto, il4): (std::net::IpAddr, std::net::IpAddr, u8, usize) = if ip.v4 {
        if f.len() < inner + 20 || f[inner] != 0x45 {
            return false;
        }
        let a: [u8; 4] = f[inner + 12..inner + 16].try_into().expect("4");
        let b: [u8; 4] = f[inner + 16..inner + 20].try_into().expect("4");
        (a.into(), b.into(), f[inner + 9], inner + 20)
    } else {
        if f.len() < inner + 40 {
            return false;
        }
        let a: [u8; 16] = f[inner + 8..inner + 24].try_into().expect("16");
        let b: [u8; 16] = f[inner + 24..inner + 40].try_into().expect("16");
        (a.into(), b.into(), f[inner + 6], inner + 40)
    };
    if f.len() < il4 + 4 || (proto != crate::frames::TCP && proto != crate::frames::UDP) {
        return false;
    }
    let sport = u16::from_be_bytes([f[il4], f[il4 + 1]]);
    let dport = u16::from_be_bytes([f[il4 + 2], f[il4 + 3]]);
    let _ = (ICMP, ICMPV6);
    nat.get(&flow_key(dst, src, dport, sport, proto), 0).is_ok()
}

/// One frame through the program and every check. `verdicts` holds the verdict
/// counters before the run and is updated.
fn run_one(
    t: &mut TestDataplane,
    specs: &[ServiceSpec],
    stats: &Stats,
    nat: &BpfHashMap<MapData, FlowKey, NatEntry>,
    frame: &[u8],
    verdicts: &mut Vec<u64>,
    report: &mut Report,
) -> Result<(), String> {
    let class = classify(frame);
    let expect = expect(specs, nat, frame, &class);
    let err = |e: anyhow::Error| format!("reading counters: {e:#}");
    let watched: Option<(&[Counter], u64)> = match (&expect, &class) {
        (Expect::Drop, Class::Malformed(c)) => {
            Some((std::slice::from_ref(c), stats.get(*c).map_err(err)?))
        }
        (Expect::Vip(i), _) if specs[*i].mode.is_nat() => {
            Some((&NAT_DROPS, stats.sum(&NAT_DROPS).map_err(err)?))
        }
        (Expect::MaybeNat, _) => Some((&ROUTE_DROPS, stats.sum(&ROUTE_DROPS).map_err(err)?)),
        (Expect::StrictDrop, _) => Some((&STRICT_DROPS, stats.sum(&STRICT_DROPS).map_err(err)?)),
        _ => None,
    };
    tally_class(report, specs, &class, expect);
    let out = t.run(frame);
    match out.action {
        XDP_PASS => report.pass += 1,
        XDP_TX => report.tx += 1,
        XDP_REDIRECT => report.redirect += 1,
        XDP_DROP => report.drop += 1,
        _ => {}
    }
    check::check(specs, frame, &class, expect, out.action, &out.frame)?;
    // The verdict counters moved by exactly this run's verdict.
    let now = read_all(stats, &VERDICTS).map_err(err)?;
    let delta: Vec<u64> = now
        .iter()
        .zip(verdicts.iter())
        .map(|(a, b)| a - b)
        .collect();
    let want: [u64; 5] = match out.action {
        XDP_PASS => [1, 0, 0, 0, 0],
        XDP_TX => [0, 1, 0, 0, 0],
        XDP_REDIRECT => [0, 1, 0, 0, 1],
        XDP_DROP => [0, 0, 1, 0, 0],
        _ => [0, 0, 0, 1, 0],
    };
    if delta != want {
        return Err(format!(
            "verdict counters (pass, tx, drop, aborted, redirect) moved by {delta:?} for verdict {}, want {want:?}",
            out.action
        ));
    }
    *verdicts = now;
    if out.action == XDP_DROP {
        if let Some((cs, before)) = watched {
            let after = stats.sum(cs).map_err(err)?;
            if after <= before {
                return Err(format!("dropped without counting a reason (one of {cs:?})"));
            }
        }
    }
    Ok(())
}

fn tally_class(r: &mut Report, specs: &[ServiceSpec], class: &Class, expect: Expect) {
    match (class, expect) {
        (Class::Malformed(_), _) => r.malformed += 1,
        (Class::Other(_), _) => r.other += 1,
        (_, Expect::MaybeNat) => r.maybe_nat += 1,
        (Class::Icmp(_), _) => r.icmp += 1,
        (_, Expect::Vip(i)) => match specs[i].mode {
            ForwardMode::Dr => r.dr += 1,
            ForwardMode::Tun => r.tun += 1,
            ForwardMode::Nat { .. } => r.nat += 1,
        },
        _ => r.not_for_vip += 1,
    }
}

/// At the end: the verdict counters add up to the frames sent, verdict by verdict.
fn totals(t: &TestDataplane, r: &Report) -> Result<()> {
    let get = |c| t.counter(c);
    let (pass, tx, drop, aborted, redirect) = (
        get(Counter::VerdictPass),
        get(Counter::VerdictTx),
        get(Counter::VerdictDrop),
        get(Counter::VerdictAborted),
        get(Counter::VerdictRedirect),
    );
    if pass + tx + drop + aborted != r.runs
        || pass != r.pass
        || tx != r.tx + r.redirect
        || drop != r.drop
        || aborted != 0
        || redirect != r.redirect
    {
        bail!(
            "counters do not add up to the {} frames sent: pass {pass}, tx {tx} (redirect {redirect}), \
             drop {drop}, aborted {aborted}; seen pass {}, tx {}, redirect {}, drop {}",
            r.runs,
            r.pass,
            r.tx,
            r.redirect,
            r.drop
        );
    }
    Ok(())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn write_failure(dir: &Path, seed: u64, run: u64, frame: &[u8], reason: &str) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let file = dir.join(format!("xdp-failure-seed{seed}-run{run}.bin"));
    std::fs::write(&file, frame).with_context(|| format!("writing {}", file.display()))?;
    std::fs::write(
        file.with_extension("txt"),
        format!("seed {seed}, run {run}\n{reason}\n{}\n", hex(frame)),
    )
    .with_context(|| format!("writing {}", file.display()))?;
    Ok(file)
}
