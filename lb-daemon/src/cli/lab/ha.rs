//! `lb-daemon lab` (the main job of `cargo xtask run`): two LB nodes running
//! `lb-daemon run` in one VRRP group, three backends, one client, in network namespaces,
//! narrated: the election, the traffic spread, a backend failing and coming back, the
//! master's link cut while a long-lived connection keeps working, the link back.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{anyhow, bail, Context, Result};

use crate::cli::signals;
use crate::{
    daemon::control,
    dataplane::{ForwardMode, HelperProgram},
    lab::{
        backend_addr, backend_name, daemon_config, open_from, requests_from, spread_summary,
        start_backend, BackendHost, CLIENT_ADDR, VIP, VIP_PORT,
    },
    netns::{Netns, NsChild, Switch},
};

fn say(msg: impl AsRef<str>) {
    println!("lab: {}", msg.as_ref());
}

struct Node {
    name: &'static str,
    ns: Netns,
    port: String,
    dir: PathBuf,
    _daemon: Option<NsChild>,
}

impl Node {
    fn holds_vip(&self) -> bool {
        self.ns.has_address("eth0", &VIP.to_string())
    }

    fn status(&self) -> Result<serde_json::Value> {
        let line = control::request(&self.dir.join("lb.sock"), "status", Duration::from_secs(2))?;
        Ok(serde_json::from_str(&line)?)
    }
}

fn wait(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) -> Result<Duration> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if signals::stop_requested() {
            bail!("stopped");
        }
        if cond() {
            return Ok(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(anyhow!("{what}: not within {timeout:?}"))
}

fn spread(client: &Netns, n: usize) -> Result<String> {
    Ok(spread_summary(&requests_from(client, n)?))
}

pub fn run(mode: ForwardMode, backends: usize, pause: bool) -> Result<()> {
    signals::install()?;
    let exe = std::env::current_exe().context("locating lb-daemon")?;
    let dir = std::env::temp_dir().join(crate::netns::unique_name("lb-lab"));
    std::fs::create_dir_all(&dir)?;
    let result = lab(&exe, &dir, mode, backends, pause);
    let _ = std::fs::remove_dir_all(&dir);
    say("done: every namespace and process removed");
    result
}

fn lab(exe: &Path, dir: &Path, mode: ForwardMode, n_backends: usize, pause: bool) -> Result<()> {
    say(format!(
        "starting: client {CLIENT_ADDR}, LB nodes lb1 198.18.0.11 (priority 150) and lb2 198.18.0.12 (priority 100), {n_backends} backends, VIP {VIP}:{VIP_PORT}"
    ));
    let switch = Switch::new("lab-sw")?;
    let client = Netns::new("lab-cl")?;
    switch.plug(&client, "eth0")?;
    client.ip(&["addr", "add", &format!("{CLIENT_ADDR}/24"), "dev", "eth0"])?;
    client.sh("ethtool -K eth0 tx off tso off gso off >/dev/null && ip link set eth0 mtu 1400")?;
    let mut backends: Vec<BackendHost> = (0..n_backends)
        .map(|i| start_backend(&switch, i, mode))
        .collect::<Result<_>>()?;
    let mut nodes = Vec::new();
    let mut peers = Vec::new();
    for (i, (name, prio)) in [("lb1", 150u8), ("lb2", 100u8)].into_iter().enumerate() {
        let ns = Netns::new("lab-lb")?;
        let port = switch.plug(&ns, "eth0")?;
        ns.ip(&[
            "addr",
            "add",
            &format!("198.18.0.{}/24", 11 + i),
            "dev",
            "eth0",
        ])?;
        let p = port.clone();
        peers.push(switch.ns().run(move || HelperProgram::pass(&p))?);
        let node_dir = dir.join(name);
        std::fs::create_dir_all(&node_dir)?;
        let conf = node_dir.join("lb.toml");
        let pin = Path::new("/sys/fs/bpf/lb");
        std::fs::write(
            &conf,
            daemon_config(name, prio, &node_dir, pin, mode, n_backends),
        )?;
        let log = std::fs::File::create(node_dir.join("log"))?;
        let daemon = ns.spawn_with(
            &[
                &exe.to_string_lossy(),
                "run",
                "--config",
                &conf.to_string_lossy(),
            ],
            Stdio::from(log.try_clone()?),
            Stdio::from(log),
        )?;
        nodes.push(Node {
            name,
            ns,
            port,
            dir: node_dir,
            _daemon: Some(daemon),
        });
    }
    say(format!(
        "daemon logs: {}/lb1/log, {}/lb2/log",
        dir.display(),
        dir.display()
    ));

    let took = wait("election", Duration::from_secs(15), || {
        nodes[0].holds_vip() && !nodes[1].holds_vip()
    })?;
    say(format!(
        "lb1 is MASTER after {:.1} s: it holds the VIP and forwards with XDP; lb2 is BACKUP",
        took.as_secs_f64()
    ));
    wait("first reply", Duration::from_secs(10), || {
        requests_from(&client, 1).is_ok()
    })?;
    say(format!("300 short connections: {}", spread(&client, 300)?));

    let victim = n_backends.saturating_sub(2).min(1);
    say(format!("stopping the service on {}", backend_name(victim)));
    backends[victim].stop_server();
    let addr = backend_addr(victim).to_string();
    wait("backend marked down", Duration::from_secs(10), || {
        nodes[0].status().is_ok_and(|s| {
            s["services"][0]["backends"].as_array().is_some_and(|b| {
                b.iter()
                    .any(|b| b["address"] == addr && b["healthy"] == false)
            })
        })
    })?;
    say(format!(
        "{} marked down by its TCP_CHECK: 300 connections: {}",
        backend_name(victim),
        spread(&client, 300)?
    ));
    backends[victim].start_server(victim)?;
    wait("backend back", Duration::from_secs(10), || {
        nodes[0].status().is_ok_and(|s| {
            s["services"][0]["backends"]
                .as_array()
                .is_some_and(|b| b.iter().all(|b| b["healthy"] == true))
        })
    })?;
    say(format!(
        "{} is back: 300 connections: {}",
        backend_name(victim),
        spread(&client, 300)?
    ));

    let mut conn = open_from(&client)?;
    let held = conn.ask()?.backend;
    say(format!(
        "a long-lived connection is served by {held}; cutting lb1's link"
    ));
    switch.ns().ip(&["link", "set", &nodes[0].port, "down"])?;
    let took = wait("failover", Duration::from_secs(10), || nodes[1].holds_vip())?;
    say(format!(
        "lb2 took over the VIP after {:.2} s (bound 3 x 1 s + skew 0.61 s)",
        took.as_secs_f64()
    ));
    let after = (0..50).find_map(|_| {
        let r = conn.ask().ok();
        if r.is_none() {
            std::thread::sleep(Duration::from_millis(100));
        }
        r
    });
    match after {
        Some(r) => say(format!("the long-lived connection still works, served by {} (identical Maglev tables on both nodes)", r.backend)),
        None => say("the long-lived connection did not survive"),
    }
    say(format!(
        "300 short connections through lb2: {}",
        spread(&client, 300)?
    ));
    say("restoring lb1's link");
    switch.ns().ip(&["link", "set", &nodes[0].port, "up"])?;
    let took = wait("preemption", Duration::from_secs(15), || {
        nodes[0].holds_vip() && !nodes[1].holds_vip()
    })?;
    say(format!(
        "lb1 preempted back after {:.1} s; the connection: {}",
        took.as_secs_f64(),
        conn.ask()
            .map(|r| format!("still served by {}", r.backend))
            .unwrap_or_else(|e| format!("lost ({e})"))
    ));
    for node in &nodes {
        if let Ok(s) = node.status() {
            let inst = &s["instances"][0];
            let svc = &s["services"][0];
            say(format!(
                "{}: {} priority {}, {} transitions; service packets {}",
                node.name,
                inst["state"],
                inst["priority_effective"],
                inst["transitions"],
                svc["packets"]
            ));
        }
    }
    if pause {
        say(format!(
            "paused; namespaces: client {}, lb1 {}, lb2 {}; `lb-daemon status --socket {}/lb1/lb.sock`; Ctrl-C to stop",
            client.name(),
            nodes[0].ns.name(),
            nodes[1].ns.name(),
            dir.display()
        ));
        while signals::sleep(Duration::from_secs(3600)) {}
    }
    say("stopping the daemons (priority-0 adverts, VIPs removed, XDP detached)");
    for node in &mut nodes {
        if let Some(d) = node._daemon.take() {
            if let Some(pid) = d.pid() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
            let _ = wait("daemon exit", Duration::from_secs(5), || {
                matches!(d.try_wait(), Ok(Some(_)))
            });
        }
    }
    drop(peers);
    Ok(())
}
