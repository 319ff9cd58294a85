//! `cargo xtask bench health`: 5,000 real servers checked every second by `lb-daemon`.
//! Reports the daemon's CPU (% of one core), RSS, and how late checks arrive (p50/p99 of
//! the interval between two checks of one real, minus `delay_loop`), measured on the
//! servers' side.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

use super::report::{self, cpu_ticks};
use crate::vrrp_lab::daemon_bin;

const REALS: usize = 5000;
const PORT: u16 = 8000;
const PER_SERVICE: usize = 100;
const WARMUP: Duration = Duration::from_secs(4);
const MEASURE: Duration = Duration::from_secs(20);

/// The i-th real server: 127.1.x.y:8000 (every 127/8 address is local).
fn real_addr(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 1, (i / 250) as u8, (i % 250 + 1) as u8)
}

type Arrivals = Arc<Mutex<HashMap<IpAddr, Vec<Instant>>>>;

/// Starts `reals` listeners; HTTP ones answer one request with 200 and a small body.
async fn serve(reals: usize, http_from: usize, arrivals: Arrivals) -> Result<()> {
    for i in 0..reals {
        let addr = SocketAddr::new(IpAddr::V4(real_addr(i)), PORT);
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("bind {addr}"))?;
        let http = i >= http_from;
        let arrivals = Arc::clone(&arrivals);
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    continue;
                };
                if let Ok(mut a) = arrivals.lock() {
                    a.entry(addr.ip()).or_default().push(Instant::now());
                }
                if http {
                    tokio::spawn(async move {
                        let mut buf = [0u8; 1024];
                        let _ = stream.read(&mut buf).await;
                        let _ = stream
                            .write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
                            .await;
                    });
                }
            }
        });
    }
    Ok(())
}

fn config(reals: usize, http_from: usize) -> String {
    let mut s = String::from(
        "[global]\nrouter_id = \"bench\"\ncontrol_socket = \"/tmp/lb-bench-health.sock\"\n",
    );
    for (svc, chunk) in (0..reals)
        .collect::<Vec<_>>()
        .chunks(PER_SERVICE)
        .enumerate()
    {
        s.push_str(&format!(
            "\n[[virtual_server]]\naddress = \"198.18.{}.{}\"\nport = 80\ndelay_loop = \"1s\"\n",
            100 + svc / 250,
            1 + svc % 250
        ));
        for &i in chunk {
            s.push_str(&format!(
                "\n[[virtual_server.real_server]]\naddress = \"{}\"\nport = {PORT}\n",
                real_addr(i)
            ));
            if i >= http_from {
                s.push_str("http_get = { connect_timeout = \"1s\", url = [{ path = \"/\" }] }\n");
            } else {
                s.push_str("tcp_check = { connect_timeout = \"1s\" }\n");
            }
        }
    }
    s
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

struct Row {
    mix: String,
    cpu: f64,
    sys: f64,
    rss_mib: f64,
    p50_ms: f64,
    p99_ms: f64,
    checks_per_s: f64,
}

fn raise_fd_limit() {
    let _ =
        nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, 65536, 65536);
}

/// Whose health checker is measured.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Checker {
    LbDaemon,
    /// keepalived 2.2.7's checker process (`keepalived --check`), TCP_CHECKs only.
    Keepalived,
}

/// How long a measurement runs, and over how many reals.
#[derive(Clone, Copy)]
struct Load {
    reals: usize,
    warmup: Duration,
    measure: Duration,
}

const FULL: Load = Load {
    reals: REALS,
    warmup: WARMUP,
    measure: MEASURE,
};

fn measure(mix: &str, http_from: usize) -> Result<Row> {
    measure_with(Checker::LbDaemon, FULL, mix, http_from)
}

/// keepalived's configuration for the same reals (TCP_CHECK only): IPVS services in DR
/// mode, which the VM's kernel programs.
fn keepalived_config(reals: usize) -> String {
    let mut s = String::from("global_defs {\n    router_id bench\n}\n");
    for (svc, chunk) in (0..reals)
        .collect::<Vec<_>>()
        .chunks(PER_SERVICE)
        .enumerate()
    {
        s.push_str(&format!(
            "virtual_server 198.18.{}.{} 80 {{\n    delay_loop 1\n    lb_algo rr\n    lb_kind DR\n    protocol TCP\n",
            100 + svc / 250,
            1 + svc % 250
        ));
        for &i in chunk {
            s.push_str(&format!(
                "    real_server {} {PORT} {{\n        TCP_CHECK {{\n            connect_timeout 1\n        }}\n    }}\n",
                real_addr(i)
            ));
        }
        s.push_str("}\n");
    }
    s
}

/// Starts the checker; returns its process and the pid whose CPU is measured.
fn start_checker(
    checker: Checker,
    dir: &std::path::Path,
    reals: usize,
    http_from: usize,
) -> Result<(std::process::Child, u32)> {
    match checker {
        Checker::LbDaemon => {
            let conf = dir.join("health.toml");
            std::fs::write(&conf, config(reals, http_from))?;
            let child = std::process::Command::new(daemon_bin())
                .args(["run", "--config"])
                .arg(&conf)
                .env("RUST_LOG", "warn")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .context("starting lb-daemon")?;
            let pid = child.id();
            Ok((child, pid))
        }
        Checker::Keepalived => {
            let conf = dir.join("keepalived.conf");
            std::fs::write(&conf, keepalived_config(reals))?;
            let checkers_pid = dir.join("checkers.pid");
            let child = std::process::Command::new("keepalived")
                .args(["--dont-fork", "--check", "--use-file"])
                .arg(&conf)
                .arg("--pid")
                .arg(dir.join("keepalived.pid"))
                .arg("--checkers_pid")
                .arg(&checkers_pid)
                .stdout(std::process::Stdio::null())
                .stderr(std::fs::File::create(dir.join("keepalived.log"))?)
                .spawn()
                .context("starting keepalived (apt-get install keepalived)")?;
            // The checker is keepalived's child; it writes its pid once running.
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Some(pid) = std::fs::read_to_string(&checkers_pid)
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                {
                    return Ok((child, pid));
                }
                if Instant::now() > deadline {
                    let log =
                        std::fs::read_to_string(dir.join("keepalived.log")).unwrap_or_default();
                    bail!("keepalived's checker did not start:\n{log}");
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

fn measure_with(checker: Checker, load: Load, mix: &str, http_from: usize) -> Result<Row> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let arrivals: Arrivals = Arc::default();
    rt.block_on(serve(load.reals, http_from, Arc::clone(&arrivals)))?;
    let dir = std::env::temp_dir().join(format!("lb-bench-health-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let (mut child, pid) = start_checker(checker, &dir, load.reals, http_from)?;
    std::thread::sleep(load.warmup);
    if let Ok(Some(status)) = child.try_wait() {
        bail!("the checker exited early: {status}");
    }
    if let Ok(mut a) = arrivals.lock() {
        a.clear();
    }
    let (t0, c0) = (Instant::now(), cpu_ticks(pid));
    std::thread::sleep(load.measure);
    let (t1, c1) = (Instant::now(), cpu_ticks(pid));
    let rss = rss_kib(pid);
    stop(&mut child);
    let elapsed = (t1 - t0).as_secs_f64();
    let pct = |ticks: u64| ticks as f64 / 100.0 / elapsed * 100.0;
    let (user, sys) = (pct(c1.0 - c0.0), pct(c1.1 - c0.1));
    let arrivals = arrivals
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .clone();
    let total: usize = arrivals.values().map(Vec::len).sum();
    let mut lateness: Vec<f64> = arrivals
        .values()
        .flat_map(|times| {
            times
                .windows(2)
                .map(|w| ((w[1] - w[0]).as_secs_f64() - 1.0).max(0.0) * 1e3)
                .collect::<Vec<_>>()
        })
        .collect();
    lateness.sort_by(|a, b| a.total_cmp(b));
    drop(rt);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Row {
        mix: mix.to_string(),
        cpu: user + sys,
        sys,
        rss_mib: rss as f64 / 1024.0,
        p50_ms: percentile(&lateness, 0.5),
        p99_ms: percentile(&lateness, 0.99),
        checks_per_s: total as f64 / elapsed,
    })
}

/// SIGTERM (keepalived removes its IPVS services and its checker), then wait.
fn stop(child: &mut std::process::Child) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The reference load in the VM: emulated without KVM, so fewer reals.
const REFERENCE: Load = Load {
    reals: 500,
    warmup: Duration::from_secs(5),
    measure: Duration::from_secs(15),
};

/// Rounds of the VM comparison, alternating the two checkers (the emulated machine's
/// speed drifts between runs by as much as the difference measured).
const REFERENCE_ROUNDS: usize = 3;

/// CPU (% of one core) per 100 checks a second: keepalived falls behind its schedule at
/// this load under emulation, so the two do not perform the same number of checks.
fn cpu_per_100(r: &Row) -> f64 {
    r.cpu / r.checks_per_s.max(1.0) * 100.0
}

/// The median of `values` (NaN when empty).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    percentile(&values, 0.5)
}

/// One row of medians over rounds (each field on its own).
fn median_row(rounds: &[Row]) -> Row {
    let m = |f: fn(&Row) -> f64| median(rounds.iter().map(f).collect());
    Row {
        mix: rounds.first().map(|r| r.mix.clone()).unwrap_or_default(),
        cpu: m(|r| r.cpu),
        sys: m(|r| r.sys),
        rss_mib: m(|r| r.rss_mib),
        p50_ms: m(|r| r.p50_ms),
        p99_ms: m(|r| r.p99_ms),
        checks_per_s: m(|r| r.checks_per_s),
    }
}

/// `lb-bench health-reference`, run in the IPVS kernel's VM (`cargo xtask bench health`
/// boots it): keepalived's checker and ours on the same 500 TCP_CHECKs per second (a load
/// both nearly keep up with under emulation), in alternating rounds.
pub fn run_reference() -> Result<String> {
    raise_fd_limit();
    let keepalived = "keepalived 2.2.7 (`keepalived --check`)";
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..REFERENCE_ROUNDS {
        ours.push(measure_with(
            Checker::LbDaemon,
            REFERENCE,
            "lb-daemon",
            REFERENCE.reals,
        )?);
        theirs.push(measure_with(
            Checker::Keepalived,
            REFERENCE,
            keepalived,
            REFERENCE.reals,
        )?);
    }
    // Each round's pair ran back to back: their ratios are the comparison.
    let ratios: Vec<f64> = ours
        .iter()
        .zip(&theirs)
        .map(|(o, t)| cpu_per_100(o) / cpu_per_100(t))
        .collect();
    // The rounds' spread says how far the median can be trusted on a shared machine.
    let (lowest, highest) = ratios
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), &r| (lo.min(r), hi.max(r)));
    let per_check = median(ratios);
    let raw = median(
        ours.iter()
            .zip(&theirs)
            .map(|(o, t)| o.cpu / t.cpu)
            .collect(),
    );
    let (ours, theirs) = (median_row(&ours), median_row(&theirs));
    let mut s = String::from(
        "## Health checks against keepalived (`cargo xtask bench health`, in the IPVS VM)\n\n",
    );
    s.push_str(&format!("Machine: {}.\n\n", report::machine()));
    s.push_str(&format!(
        "keepalived's checker needs IPVS, so this comparison runs in Debian's 6.1 kernel \
         booted with virtme-ng on this machine, emulated without KVM: absolute figures are \
         several times the host's; the two checkers are compared under the same conditions. \
         {} TCP_CHECK real servers (listeners on 127.1.x.y:8000 in the benchmark process), \
         `delay_loop` 1 s, CPU and RSS of the checking process over {} s after {} s of \
         warm-up; {} rounds alternating the two checkers, each figure the median over the \
         rounds. keepalived falls behind its schedule at this load (fewer checks/s seen), so \
         the comparison is CPU per check performed: \"CPU per 100 checks/s\". Target: lower \
         CPU than keepalived at the same load.\n\n",
        REFERENCE.reals,
        REFERENCE.measure.as_secs(),
        REFERENCE.warmup.as_secs(),
        REFERENCE_ROUNDS,
    ));
    s.push_str("| checker | checks/s seen | CPU (% of one core) | of which kernel | CPU per 100 checks/s | RSS | lateness p50 | lateness p99 |\n|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in [&ours, &theirs] {
        s.push_str(&format!(
            "| {} | {:.0} | {:.1} | {:.1} | {:.2} | {:.1} MiB | {:.1} ms | {:.1} ms |\n",
            r.mix,
            r.checks_per_s,
            r.cpu,
            r.sys,
            cpu_per_100(r),
            r.rss_mib,
            r.p50_ms,
            r.p99_ms
        ));
    }
    let met = if per_check < 1.0 { "yes" } else { "**no**" };
    s.push_str(&format!(
        "\nPer check performed, lb-daemon uses {per_check:.2}x keepalived's CPU (median of \
         the rounds' ratios, which ranged from {lowest:.2}x to {highest:.2}x; {raw:.2}x in CPU \
         alone, keepalived performing fewer checks): target met: {met}.\n",
    ));
    Ok(s)
}

pub fn run() -> Result<String> {
    raise_fd_limit();
    let rows = [
        measure("5,000 TCP_CHECK", REALS)?,
        measure("2,500 TCP_CHECK + 2,500 HTTP_GET", REALS / 2)?,
    ];
    let mut s = String::from("## Health checks (`cargo xtask bench health`)\n\n");
    s.push_str(&format!("Machine: {}.\n\n", report::machine()));
    s.push_str(&format!(
        "5,000 real servers (listeners on 127.1.x.y:8000 in the benchmark process), 50 virtual \
         servers of 100 reals, `delay_loop` 1 s, checks spread by the default warmup. CPU and RSS \
         of `lb-daemon` over {} s after {} s of warm-up; lateness = interval between two \
         consecutive checks of one real, as its listener saw them, minus 1 s. Targets: < 25% \
         of one core and p99 lateness < 50 ms at 5,000 TCP checks/s.\n\n",
        MEASURE.as_secs(),
        WARMUP.as_secs()
    ));
    s.push_str("| checks | checks/s seen | CPU (% of one core) | of which kernel | RSS | lateness p50 | lateness p99 | met |\n|---|---:|---:|---:|---:|---:|---:|---|\n");
    for r in &rows {
        let met = if r.cpu < 25.0 && r.p99_ms < 50.0 {
            "yes"
        } else {
            "**no**"
        };
        s.push_str(&format!(
            "| {} | {:.0} | {:.1} | {:.1} | {:.1} MiB | {:.1} ms | {:.1} ms | {met} |\n",
            r.mix, r.checks_per_s, r.cpu, r.sys, r.rss_mib, r.p50_ms, r.p99_ms
        ));
    }
    s.push_str(
        "\nkeepalived's checker (`keepalived -C`) cannot run on this kernel (no IPVS: it exits \
         at start), so the same command compares it with ours in the IPVS kernel's VM: see the \
         next section.\n",
    );
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_distinct_and_config_lists_every_real() {
        let set: std::collections::HashSet<_> = (0..REALS).map(real_addr).collect();
        assert_eq!(set.len(), REALS);
        let k = keepalived_config(REFERENCE.reals);
        assert_eq!(k.matches("real_server 127.1.").count(), REFERENCE.reals);
        assert_eq!(
            k.matches("virtual_server ").count(),
            REFERENCE.reals / PER_SERVICE
        );
        assert_eq!(k.matches('{').count(), k.matches('}').count());
        let c = config(REALS, REALS / 2);
        assert_eq!(c.matches("[[virtual_server.real_server]]").count(), REALS);
        assert_eq!(c.matches("http_get").count(), REALS / 2);
        assert_eq!(percentile(&[1.0, 2.0, 3.0], 0.5), 2.0);
    }
}
