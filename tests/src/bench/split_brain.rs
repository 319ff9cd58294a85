//! The split-brain rows of `cargo xtask bench failover`: the heartbeat between the two
//! nodes is cut (the switch drops IP protocol 112, everything else passes).
//!
//! - one path, `split_brain_resolution = "step_down"`: from the cut to the backup's
//!   takeover (the master-down interval), to the split brain detected (its log line),
//!   and to a single MASTER again;
//! - a second heartbeat path (a direct link): how many nodes held the VIP at once
//!   during the cut (sampled every 5 ms), and the client's longest ping gap.

use std::{
    io::{BufRead, BufReader},
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};

use crate::vrrp_lab::{Ours, Segment};

const VIP: &str = "198.18.0.100";

fn node(name: &'static str, priority: u8) -> Ours<'static> {
    Ours::backup(name, priority)
}

fn wait(timeout: Duration, mut ok: impl FnMut() -> bool) -> Result<Duration> {
    let start = Instant::now();
    while !ok() {
        if start.elapsed() > timeout {
            bail!("not after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(start.elapsed())
}

struct StepDown {
    takeover: Duration,
    detected: Duration,
    single: Duration,
}

fn step_down() -> Result<StepDown> {
    let mut seg = Segment::new(2)?;
    for (i, (name, prio)) in [("n1", 150), ("n2", 100)].into_iter().enumerate() {
        let t = node(name, prio).toml(seg.nodes[i].dir())
            + "split_brain_check = true\nsplit_brain_check_interval = \"1s\"\n\
               split_brain_resolution = \"step_down\"\n";
        seg.nodes[i].start_ours(&t)?;
        if i == 0 {
            seg.wait_holder(VIP, 0, Duration::from_secs(10))?;
        }
    }
    std::thread::sleep(Duration::from_secs(2));
    seg.wait_holder(VIP, 0, Duration::from_secs(5))?;
    seg.cut_heartbeat()?;
    let cut = Instant::now();
    wait(Duration::from_secs(10), || {
        seg.nodes[1].log().contains("to=MASTER")
    })
    .context("n2 never took over")?;
    let takeover = cut.elapsed();
    wait(Duration::from_secs(5), || {
        seg.nodes[1]
            .log()
            .contains("split brain: another node holds our VIPs")
    })
    .with_context(|| format!("no detection\n{}", seg.logs()))?;
    let detected = cut.elapsed();
    seg.wait_holder(VIP, 0, Duration::from_secs(5))?;
    let single = cut.elapsed();
    Ok(StepDown {
        takeover,
        detected,
        single,
    })
}

struct TwoPaths {
    max_holders: usize,
    gap: Duration,
}

fn second_path() -> Result<TwoPaths> {
    let mut seg = Segment::new(3)?; // n3: the client
    lb_daemon::netns::veth(&seg.nodes[0].ns, "hb1", &seg.nodes[1].ns, "hb1")?;
    for (i, addr) in ["10.99.0.1/24", "10.99.0.2/24"].iter().enumerate() {
        seg.nodes[i].ns.ip(&["addr", "add", addr, "dev", "hb1"])?;
    }
    for (i, (name, prio, peer)) in [("n1", 150, "10.99.0.2"), ("n2", 100, "10.99.0.1")]
        .into_iter()
        .enumerate()
    {
        let t = node(name, prio).toml(seg.nodes[i].dir())
            + &format!(
                "heartbeat_paths = [{{ interface = \"hb1\", unicast_peers = [\"{peer}\"] }}]\n"
            );
        seg.nodes[i].start_ours(&t)?;
        if i == 0 {
            seg.wait_holder(VIP, 0, Duration::from_secs(10))?;
        }
    }
    std::thread::sleep(Duration::from_secs(2));
    seg.wait_holder(VIP, 0, Duration::from_secs(5))?;
    let mut ping = std::process::Command::new("ip")
        .args(["netns", "exec", seg.nodes[2].ns.name(), "ping", "-n", "-D"])
        .args(["-i", "0.005", "-W", "1", VIP])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting ping")?;
    let stdout = ping.stdout.take().context("ping stdout")?;
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .filter(|l| l.contains("bytes from"))
            .filter_map(|l| l.strip_prefix('[')?.split(']').next()?.parse::<f64>().ok())
            .collect::<Vec<f64>>()
    });
    std::thread::sleep(Duration::from_secs(1));
    seg.cut_heartbeat()?;
    // Well past the backup's master-down interval (3.6 s).
    let end = Instant::now() + Duration::from_secs(8);
    let mut max_holders = 0;
    while Instant::now() < end {
        max_holders = max_holders.max(seg.holders(VIP).len());
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = ping.kill();
    let _ = ping.wait();
    let times = reader
        .join()
        .map_err(|_| anyhow::anyhow!("ping reader panicked"))?;
    let gap = times
        .windows(2)
        .map(|w| w[1] - w[0])
        .reduce(f64::max)
        .context("no ping replies")?;
    Ok(TwoPaths {
        max_holders,
        gap: Duration::from_secs_f64((gap - 0.005).max(0.0)),
    })
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1e3)
}

/// The section's split-brain part (markdown).
pub fn rows() -> Result<String> {
    let mut s = String::from(
        "\nSplit brain: the switch drops only VRRP (IP protocol 112) between the two nodes \
         (v2, advert 1 s, priorities 150 and 100, `split_brain_check_interval` 1 s). One \
         path with `split_brain_resolution = \"step_down\"`: the backup takes over after its \
         master-down interval, detects the other holder with its first probe and steps \
         down. Targets: detected within 2 probe intervals of the takeover, one MASTER again \
         within 2 probe intervals of it.\n\n",
    );
    let r = step_down()?;
    println!(
        "split brain: takeover {:?}, detected {:?}, single master {:?}",
        r.takeover, r.detected, r.single
    );
    let detect = r.detected.saturating_sub(r.takeover);
    let single = r.single.saturating_sub(r.takeover);
    let met = |d: Duration| {
        if d <= Duration::from_secs(2) {
            "yes"
        } else {
            "**no**"
        }
    };
    s.push_str(
        "| from the heartbeat cut to | time | after the takeover | met |\n|---|---:|---:|---|\n",
    );
    s.push_str(&format!(
        "| the backup's takeover (split brain begins) | {} | - | - |\n",
        ms(r.takeover)
    ));
    s.push_str(&format!(
        "| split brain detected | {} | {} | {} |\n",
        ms(r.detected),
        ms(detect),
        met(detect)
    ));
    s.push_str(&format!(
        "| one MASTER again | {} | {} | {} |\n",
        ms(r.single),
        ms(single),
        met(single)
    ));
    let p = second_path()?;
    println!(
        "second path: max holders {}, longest ping gap {:?}",
        p.max_holders, p.gap
    );
    s.push_str(&format!(
        "\nWith a second heartbeat path (a direct link, unicast adverts) and the same cut, \
         sampled every 5 ms for 8 s: at most {} node(s) held the VIP (target 1: {}); the \
         client's longest gap between pings of the VIP (every 5 ms) was {}.\n",
        p.max_holders,
        if p.max_holders == 1 {
            "met"
        } else {
            "**not met**"
        },
        ms(p.gap)
    ));
    Ok(s)
}
