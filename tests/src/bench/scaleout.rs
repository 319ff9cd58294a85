//! `cargo xtask bench scaleout`: the active-active tier (issue 12). A router running
//! BIRD 2 spreads a VIP over 3 LB nodes (lb-daemon + BIRD, BGP + BFD 3 x 100 ms) by ECMP
//! with an L4 hash; 3 DR backends. Measured: new flows per node for 300 connections (the
//! nodes' data-plane counters), the time from a node's link cut to the last failed
//! request, the share of long-lived connections that keep their backend through a node's
//! loss, its return and a drain (backend set unchanged), and through a node's loss while a
//! backend fails at the same moment (no flow state is shared between nodes yet).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use lb_daemon::dataplane::ForwardMode;
use lb_daemon::lab::bgp_tier::{
    check_tracked, Announce, DaemonSettings, Survival, Tier, TierService, VIP_V4,
};

use super::report;
use crate::vrrp_lab::daemon_bin;

const FLOWS: usize = 300;
const SPREAD_ROUNDS: usize = 5;
const CUTS: usize = 3;
const LONG_LIVED: usize = 150;
/// A probe not answered within this counts as failed.
const PROBE_TIMEOUT: Duration = Duration::from_millis(200);
const PROBERS: usize = 4;
const SLOW: Duration = Duration::from_secs(30);

pub fn run() -> Result<String> {
    run_with(Announce::Bgp)
}

/// Measures and returns the markdown section. `Announce::ByHand` measures the traffic side
/// alone (VIPs put on the nodes by the bench; no drain).
pub fn run_with(announce: Announce) -> Result<String> {
    let mut tier = Tier::new(3, 3)?;
    tier.serve(&[VIP_V4], false)?;
    let settings = DaemonSettings {
        announce,
        ..DaemonSettings::default()
    };
    let service = TierService::new(VIP_V4, ForwardMode::Dr)?;
    tier.start_daemons(&daemon_bin(), &[service], &settings)?;
    tier.wait_serving(VIP_V4, SLOW)?;
    let names = tier.node_names();

    let mut spreads = Vec::new();
    for _ in 0..SPREAD_ROUNDS {
        let before = tier.flows_per_node()?;
        tier.requests(VIP_V4, FLOWS)?;
        let after = tier.flows_per_node()?;
        let flows: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
        eprintln!("scaleout: flows per node {flows:?}");
        spreads.push(flows);
    }

    let mut recoveries = Vec::new();
    for _ in 0..CUTS {
        recoveries.push(recovery(&tier)?);
        tier.restore(2)?;
        tier.wait_nexthops(VIP_V4, &[0, 1, 2], SLOW)?;
        if let Some(r) = recoveries.last() {
            eprintln!(
                "scaleout: route gone {:?}, last failure {:?}, {} failed",
                r.route, r.last_failure, r.failures
            );
        }
    }

    let mut conns = tier.open_tracked(VIP_V4, LONG_LIVED)?;
    let via_lost = conns.iter().filter(|c| c.node == 2).count();
    tier.cut(2)?;
    tier.wait_nexthops(VIP_V4, &[0, 1], SLOW)?;
    let loss = check_tracked(&mut conns, &names);
    tier.restore(2)?;
    tier.wait_nexthops(VIP_V4, &[0, 1, 2], SLOW)?;
    let back = check_tracked(&mut conns, &names);
    let drained = if announce == Announce::Bgp {
        let mut drain = tier.drain_command(&daemon_bin(), 0, "drain")?;
        tier.wait_nexthops(VIP_V4, &[1, 2], SLOW)?;
        let s = check_tracked(&mut conns, &names);
        tier.drain_command(&daemon_bin(), 0, "undrain")?.wait()?;
        tier.wait_nexthops(VIP_V4, &[0, 1, 2], SLOW)?;
        let _ = drain.kill();
        let _ = drain.wait();
        Some(s)
    } else {
        None
    };
    drop(conns);

    let hard = backend_and_node_lost(&mut tier, &names)?;
    Ok(section(
        announce,
        &spreads,
        &recoveries,
        via_lost,
        &loss,
        &back,
        drained.as_ref(),
        &hard,
    ))
}

/// What a cut of lb3's link cost.
struct Recovery {
    /// Until the router dropped lb3's next hop.
    route: Duration,
    /// From the cut to the start of the last failed probe.
    last_failure: Option<Duration>,
    failures: usize,
}

fn recovery(tier: &Tier) -> Result<Recovery> {
    let stop = Arc::new(AtomicBool::new(false));
    let failures: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let vip: SocketAddr = (VIP_V4.parse::<std::net::IpAddr>()?, 80).into();
    let cut = Instant::now() + Duration::from_millis(500);
    let route = std::thread::scope(|scope| {
        for _ in 0..PROBERS {
            let (stop, failures) = (Arc::clone(&stop), Arc::clone(&failures));
            let client = &tier.client;
            scope.spawn(move || client.run(move || probe_loop(vip, &stop, &failures)));
        }
        std::thread::sleep(cut.saturating_duration_since(Instant::now()));
        let route = tier
            .cut(2)
            .and_then(|()| tier.wait_nexthops(VIP_V4, &[0, 1], SLOW));
        std::thread::sleep(Duration::from_millis(1500));
        stop.store(true, Ordering::Relaxed);
        route
    })?;
    let failures = failures
        .lock()
        .map_err(|_| anyhow::anyhow!("a prober panicked"))?;
    let after: Vec<Duration> = failures
        .iter()
        .filter(|&&t| t >= cut)
        .map(|&t| t - cut)
        .collect();
    Ok(Recovery {
        route,
        last_failure: after.iter().max().copied(),
        failures: after.len(),
    })
}

/// Opens short connections back to back until `stop`; the start time of each one not
/// answered within [`PROBE_TIMEOUT`] goes to `failures`.
fn probe_loop(vip: SocketAddr, stop: &AtomicBool, failures: &Mutex<Vec<Instant>>) {
    while !stop.load(Ordering::Relaxed) {
        let start = Instant::now();
        if probe(vip).is_err() {
            if let Ok(mut f) = failures.lock() {
                f.push(start);
            }
        }
    }
}

fn probe(vip: SocketAddr) -> std::io::Result<()> {
    use std::io::{BufRead, Write};
    let s = std::net::TcpStream::connect_timeout(&vip, PROBE_TIMEOUT)?;
    s.set_read_timeout(Some(PROBE_TIMEOUT))?;
    (&s).write_all(b"hello\n")?;
    let mut line = String::new();
    std::io::BufReader::new(&s).read_line(&mut line)?;
    // Closed with RST: no TIME_WAIT piling up on the client's ports.
    nix::sys::socket::setsockopt(
        &s,
        nix::sys::socket::sockopt::Linger,
        &libc::linger {
            l_onoff: 1,
            l_linger: 0,
        },
    )?;
    if line.is_empty() {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

/// The hard case: lb3's link cut while backend2 fails at the same moment. Connections of
/// the surviving backends that ECMP moves land on nodes that never saw them and whose
/// table has changed.
struct Hard {
    /// Connections on the surviving backends, and those of them that went through lb3.
    survivors: Survival,
    moved: usize,
    moved_kept: usize,
}

fn backend_and_node_lost(tier: &mut Tier, names: &[String]) -> Result<Hard> {
    let failed = tier.backends[1].name();
    let conns = tier.open_tracked(VIP_V4, LONG_LIVED)?;
    let (mut on_failed, mut others): (Vec<_>, Vec<_>) =
        conns.into_iter().partition(|c| c.backend == failed);
    on_failed.clear();
    tier.backends[1].stop_server();
    tier.cut(2)?;
    tier.wait_nexthops(VIP_V4, &[0, 1], SLOW)?;
    // Until every node has marked the backend down, new flows may still be sent to it.
    let deadline = Instant::now() + SLOW;
    while tier
        .requests(VIP_V4, 30)
        .map_or(true, |r| r.iter().any(|r| r.backend == failed))
    {
        if Instant::now() > deadline {
            anyhow::bail!("{failed} never left the nodes' tables\n{}", tier.logs());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let moved: Vec<bool> = others.iter().map(|c| c.node == 2).collect();
    let survivors = check_tracked(&mut others, names);
    // A lost connection is listed with its port: count the moved ones among them.
    let lost_ports: Vec<String> = survivors
        .lost
        .iter()
        .filter_map(|l| l.split_whitespace().nth(1).map(str::to_owned))
        .collect();
    let moved_total = moved.iter().filter(|&&m| m).count();
    let moved_lost = others
        .iter()
        .zip(&moved)
        .filter(|(c, &m)| m && lost_ports.contains(&c.port.to_string()))
        .count();
    tier.restore(2)?;
    tier.backends[1].start_server()?;
    tier.wait_nexthops(VIP_V4, &[0, 1, 2], SLOW)
        .context("lb3 back")?;
    Ok(Hard {
        survivors,
        moved: moved_total,
        moved_kept: moved_total - moved_lost,
    })
}

fn met(ok: bool) -> &'static str {
    if ok {
        "yes"
    } else {
        "**no**"
    }
}

fn share(s: &Survival) -> String {
    format!(
        "{}/{} ({:.1}%)",
        s.kept,
        s.total,
        100.0 * s.kept as f64 / s.total.max(1) as f64
    )
}

#[allow(clippy::too_many_arguments)]
fn section(
    announce: Announce,
    spreads: &[Vec<u64>],
    recoveries: &[Recovery],
    via_lost: usize,
    loss: &Survival,
    back: &Survival,
    drained: Option<&Survival>,
    hard: &Hard,
) -> String {
    let even = FLOWS as f64 / 3.0;
    let deviation = |f: &Vec<u64>| {
        f.iter()
            .map(|&n| (n as f64 - even).abs() / even)
            .fold(0.0, f64::max)
    };
    let ratio = |f: &Vec<u64>| {
        let max = f.iter().copied().max().unwrap_or(0) as f64;
        let min = f.iter().copied().min().unwrap_or(0).max(1) as f64;
        max / min
    };
    let mut devs: Vec<f64> = spreads.iter().map(deviation).collect();
    devs.sort_by(f64::total_cmp);
    let median_dev = devs[devs.len() / 2];
    let rounds: Vec<String> = spreads
        .iter()
        .map(|f| {
            format!(
                "{} (max/min {:.2})",
                f.iter().map(u64::to_string).collect::<Vec<_>>().join("/"),
                ratio(f)
            )
        })
        .collect();
    let worst_failure = recoveries.iter().filter_map(|r| r.last_failure).max();
    let routes: Vec<String> = recoveries
        .iter()
        .map(|r| r.route.as_millis().to_string())
        .collect();
    let lasts: Vec<String> = recoveries
        .iter()
        .map(|r| {
            let last = r
                .last_failure
                .map_or("none".into(), |d| format!("{} ms", d.as_millis()));
            format!("{last} ({} failed)", r.failures)
        })
        .collect();
    let recovery_ok = worst_failure.is_none_or(|d| d < Duration::from_millis(500));
    let mut s = format!(
        "### Scale-out: 3 LB nodes behind an ECMP router (BGP)\n\n\
         Measured on {machine}; BIRD {bird}; {profile} lb-daemon, DR, 3 backends, {how}. A \
         router (BIRD 2, kernel multipath with `fib_multipath_hash_policy = 1`) and 3 LB nodes \
         (lb-daemon + BIRD, BGP + BFD 100 ms x 3) in network namespaces on veths.\n\n\
         | Measure | Result | Target | Met |\n|---|---|---|---|\n",
        machine = report::machine(),
        bird = bird_version(),
        profile = if daemon_bin()
            .components()
            .any(|c| c.as_os_str() == "release")
        {
            "release"
        } else {
            "debug"
        },
        how = match announce {
            Announce::Bgp => "VIPs announced by the daemons (`announce = \"bgp\"`)",
            Announce::ByHand =>
                "VIPs put on the nodes' VIP interface by the benchmark (the \
                                 daemons serve them; no drain)",
        },
    );
    s += &format!(
        "| New flows per node, {FLOWS} connections, {SPREAD_ROUNDS} rounds (data-plane counters) | {} ; median worst deviation from even {:.0}% | within 15% of even | {} |\n",
        rounds.join(", "),
        100.0 * median_dev,
        met(median_dev <= 0.15)
    );
    s += &format!(
        "| Link cut to last failed request ({CUTS} cuts, {PROBERS} probers, a request fails when not answered in {} ms) | {} (route gone from the router after {} ms) | < 500 ms | {} |\n",
        PROBE_TIMEOUT.as_millis(),
        lasts.join(", "),
        routes.join(", "),
        met(recovery_ok)
    );
    s += &format!(
        "| Long-lived connections kept through a node's loss ({via_lost} went through it) | {} | 100% | {} |\n",
        share(loss),
        met(loss.all_kept())
    );
    s += &format!(
        "| ... through the node's return | {} | 100% | {} |\n",
        share(back),
        met(back.all_kept())
    );
    match drained {
        Some(d) => {
            s += &format!(
                "| ... through a drain of another node | {} | 100% | {} |\n",
                share(d),
                met(d.all_kept())
            )
        }
        None => s += "| ... through a drain of another node | not measured (VIPs announced by hand) | 100% | - |\n",
    }
    s += &format!(
        "| Node lost while a backend fails at the same moment: connections of the surviving backends kept | {} ; of those that went through the lost node {}/{} | reported (flow sync fixes it) | - |\n",
        share(&hard.survivors),
        hard.moved_kept,
        hard.moved
    );
    s += "\nA flow's node is the one whose data plane counted it. Flows per node follow the \
          router's hash of each connection (binomial over 300 flows: one standard deviation \
          is about 8% of an even share), not the LB nodes. A request fails while its SYN goes \
          to the lost node before BFD removes the route. In the hard case a moved connection \
          reaches a node with no state for it whose Maglev table has just changed: it keeps \
          its backend unless its slot is one of the few that changed owner besides the failed \
          backend's.\n";
    s
}

fn bird_version() -> String {
    std::process::Command::new(lb_daemon::lab::bgp_tier::BIRD)
        .arg("--version")
        .output()
        .map(|o| {
            let text = String::from_utf8_lossy(&o.stderr).to_string()
                + &String::from_utf8_lossy(&o.stdout);
            text.split_whitespace()
                .last()
                .unwrap_or("unknown")
                .to_owned()
        })
        .unwrap_or_else(|_| "unknown".into())
}
