//! lb-daemon announcing VIPs by BGP (issue 12, the daemon side): real `lb-daemon run`
//! processes on the 3 LB nodes of `lab::bgp_tier`'s tier, each beside its BIRD. The daemon, not
//! the test, puts the VIP on lb-vip0 once the service is programmed; the router's ECMP
//! route follows health (quorum), `drain` / `undrain`, `stop`; a BIRD that stops is
//! reported and survived; a foreign link named like the [bgp] interface stops the start.
//!
//! Needs root, iproute2, BIRD 2 and `target/debug/lb-daemon` (`cargo build -p lb-daemon`).
//! Sends no traffic (the traffic tests are elsewhere).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use lb_daemon::lab::bgp_tier::{Tier, VIP_INTERFACE};
use lb_daemon::netns::{unique_name, Netns, NsChild};
use lb_tests::vrrp_lab::daemon_bin;
use serde_json::Value;

const VIP: &str = "198.51.100.10";
const SETTLE: Duration = Duration::from_secs(20);

/// One node's daemon: its files and process.
struct Daemon {
    dir: PathBuf,
    socket: PathBuf,
    /// Its bpffs directory, removed on drop (a failed test leaves no pins).
    pin: PathBuf,
    child: Option<NsChild>,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        drop(self.child.take());
        let _ = std::fs::remove_dir_all(&self.pin);
    }
}

impl Daemon {
    /// Starts `lb-daemon run` in `ns` on [`config`] for node `name`.
    fn start(
        ns: &Netns,
        dir: &Path,
        name: &str,
        bird_socket: &Path,
        backend: &str,
    ) -> Result<Daemon> {
        let dir = dir.join(name);
        std::fs::create_dir_all(&dir)?;
        let socket = dir.join("lb.sock");
        let pin = PathBuf::from(unique_name("/sys/fs/bpf/lbbgp"));
        std::fs::write(dir.join("up"), "")?;
        let text = config(&dir, name, bird_socket, backend, &pin);
        std::fs::write(dir.join("lb.toml"), text)?;
        let mut daemon = Daemon {
            dir,
            socket,
            pin,
            child: None,
        };
        daemon.run(ns)?;
        Ok(daemon)
    }

    /// `lb-daemon run` on the node's lb.toml (again, after a stop).
    fn run(&mut self, ns: &Netns) -> Result<()> {
        let conf = self.dir.join("lb.toml");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("log"))?;
        let bin = daemon_bin();
        let argv = [
            bin.to_str().context("path")?,
            "run",
            "--config",
            conf.to_str().context("path")?,
        ];
        self.child = Some(ns.spawn_with(&argv, log.try_clone()?.into(), log.into())?);
        Ok(())
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    /// Runs `lb-daemon ARGS --socket S` (from the host: the socket is a file).
    fn cli(&self, args: &[&str]) -> Result<String> {
        let out = Command::new(daemon_bin())
            .args(args)
            .arg("--socket")
            .arg(&self.socket)
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        if !out.status.success() {
            bail!(
                "lb-daemon {args:?}: {}{}",
                text,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(text)
    }

    fn status(&self) -> Result<Value> {
        Ok(serde_json::from_str(&self.cli(&["status", "--json"])?)?)
    }

    /// The VIP's announce state in `status`.
    fn vip_state(&self) -> Result<String> {
        let s = self.status()?;
        let vips = s["bgp"]["vips"].as_array().context("bgp.vips")?;
        let vip = vips.iter().find(|v| v["vip"] == VIP).context("the VIP")?;
        Ok(vip["state"].as_str().unwrap_or_default().to_owned())
    }

    fn wait_status(&self, what: &str, ok: impl Fn(&Value) -> bool) -> Result<Value> {
        let deadline = Instant::now() + SETTLE;
        loop {
            let s = self.status();
            if let Ok(s) = &s {
                if ok(s) {
                    return Ok(s.clone());
                }
            }
            if Instant::now() > deadline {
                bail!("status never showed {what}: {s:?}\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn running(&self) -> bool {
        self.child
            .as_ref()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// Waits for the process to exit.
    fn wait_exit(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while self.running() {
            if Instant::now() > deadline {
                bail!("the daemon did not exit within {timeout:?}\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child = None;
        Ok(())
    }
}

/// One virtual server announced by BGP, with a check this node alone can fail (the file
/// `up` in its directory).
fn config(dir: &Path, name: &str, bird_socket: &Path, backend: &str, pin: &Path) -> String {
    let (d, pin) = (dir.display(), pin.display());
    format!(
        r#"[global]
router_id = "{name}"
control_socket = "{d}/lb.sock"
bpf_pin_path = "{pin}"

[bgp]
bird_socket = "{bird}"
hold_down = "1s"
drain_timeout = "5s"
drain_idle = "1s"
interfaces = ["eth0"]

[[virtual_server]]
address = "{VIP}"
port = 80
announce = "bgp"
delay_loop = "200ms"

[[virtual_server.real_server]]
address = "{backend}"
misc_check = {{ misc_path = "test -e {d}/up", misc_timeout = "1s", retry = 0 }}
"#,
        bird = bird_socket.display()
    )
}

fn has_vip(ns: &Netns) -> bool {
    ns.has_address(VIP_INTERFACE, VIP)
}

#[test]
fn the_daemon_announces_follows_health_drains_and_withdraws_on_stop() -> Result<()> {
    let tier = Tier::new(3, 1)?;
    let dir = std::env::temp_dir().join(unique_name("lb-bgpd"));
    std::fs::create_dir_all(&dir)?;
    let backend = tier.backends[0].v4.clone();
    let mut daemons = Vec::new();
    for node in &tier.nodes {
        daemons.push(Daemon::start(
            &node.ns,
            &dir,
            &node.name,
            &node.bird.socket,
            &backend,
        )?);
    }
    let result = scenario(&tier, &mut daemons);
    if result.is_err() {
        for d in &daemons {
            eprintln!("--- {}\n{}", d.dir.display(), d.log());
        }
    }
    drop(daemons);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn scenario(tier: &Tier, d: &mut [Daemon]) -> Result<()> {
    // The daemons announce: every node on the router.
    tier.wait_nexthops(VIP, &[0, 1, 2], SETTLE)?;
    for node in &tier.nodes {
        assert!(
            has_vip(&node.ns),
            "{}: no VIP on {VIP_INTERFACE}",
            node.name
        );
    }
    let s = d[0].wait_status("BIRD's sessions", |s| {
        s["bgp"]["bird"] == "ok"
            && s["bgp"]["sessions"]
                .as_array()
                .is_some_and(|a| a.len() == 2)
    })?;
    assert_eq!(s["bgp"]["interface"], VIP_INTERFACE);
    assert_eq!(s["bgp"]["drained"], false);
    assert!(
        s["bgp"]["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["up"] == true),
        "{s}"
    );
    assert_eq!(d[0].vip_state()?, "announced");
    let table = d[0].cli(&["status"])?;
    assert!(
        table.contains("bgp on lb-vip0, bird ok, not drained"),
        "{table}"
    );
    assert!(table.contains("router_v4  up"), "{table}");

    // Node 3's backend fails its check: node 3 withdraws, and comes back after the
    // hold-down once the check passes again.
    std::fs::remove_file(d[2].dir.join("up"))?;
    tier.wait_nexthops(VIP, &[0, 1], SETTLE)?;
    assert!(!has_vip(&tier.nodes[2].ns));
    assert_eq!(d[2].vip_state()?, "withdrawn: below quorum");
    std::fs::write(d[2].dir.join("up"), "")?;
    tier.wait_nexthops(VIP, &[0, 1, 2], SETTLE)?;

    // Drain and undrain node 2.
    let said = d[1].cli(&["drain"])?;
    assert!(said.starts_with("drained: 1 VIPs withdrawn"), "{said}");
    tier.wait_nexthops(VIP, &[0, 2], SETTLE)?;
    let s = d[1].status()?;
    assert_eq!(s["bgp"]["drained"], true, "{s}");
    assert_eq!(d[1].vip_state()?, "withdrawn: drained");
    d[1].wait_status("the drain's end", |s| {
        s["bgp"]["drain"]
            .as_str()
            .is_some_and(|p| p.starts_with("drained: no packet"))
    })?;
    assert!(d[1].running());
    d[1].cli(&["undrain"])?;
    tier.wait_nexthops(VIP, &[0, 1, 2], SETTLE)?;
    assert_eq!(d[1].status()?["bgp"]["drained"], false);

    // BIRD stops on node 1: reported, the daemon goes on (the address stays; the router
    // drops the node with the session).
    let bird = &tier.nodes[0].bird.socket;
    tier.nodes[0]
        .ns
        .sh(&format!("birdc -s {} down", bird.display()))?;
    tier.wait_nexthops(VIP, &[1, 2], SETTLE)?;
    let s = d[0].wait_status("BIRD unreachable", |s| {
        s["bgp"]["bird"]
            .as_str()
            .is_some_and(|b| b.starts_with("unreachable: "))
    })?;
    assert!(s["bgp"]["sessions"].as_array().unwrap().is_empty(), "{s}");
    assert!(d[0].running());
    assert!(has_vip(&tier.nodes[0].ns));
    let metrics_free = d[0].cli(&["status"])?;
    assert!(
        metrics_free.contains("bird unreachable: "),
        "{metrics_free}"
    );

    // `stop` drains, withdraws, then exits: the route is gone once it has returned.
    let started = Instant::now();
    let said = d[1].cli(&["stop"])?;
    assert!(said.contains("draining"), "{said}");
    d[1].wait_exit(Duration::from_secs(10))?;
    assert!(!has_vip(&tier.nodes[1].ns));
    tier.wait_nexthops(VIP, &[2], Duration::from_secs(2))?;
    // drain_idle (1s) without traffic, not drain_timeout (5s).
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let log = d[1].log();
    assert!(log.contains("every VIP withdrawn"), "{log}");

    // `stop --no-drain`: at once.
    d[2].cli(&["stop", "--no-drain"])?;
    d[2].wait_exit(Duration::from_secs(10))?;
    assert!(!has_vip(&tier.nodes[2].ns));
    assert!(!d[2].log().contains("draining"), "{}", d[2].log());

    // `stop --keep-dataplane` leaves the address; the next daemon keeps it (it is never
    // withdrawn while the service is ready) and announces it as its own.
    d[0].cli(&["stop", "--keep-dataplane"])?;
    d[0].wait_exit(Duration::from_secs(10))?;
    assert!(has_vip(&tier.nodes[0].ns));
    d[0].run(&tier.nodes[0].ns)?;
    d[0].wait_status("the VIP announced by the new daemon", |s| {
        s["bgp"]["vips"][0]["state"] == "announced"
    })?;
    assert!(has_vip(&tier.nodes[0].ns));
    assert!(!d[0].log().contains("VIP withdrawn"), "{}", d[0].log());
    d[0].cli(&["stop", "--no-drain"])?;
    d[0].wait_exit(Duration::from_secs(10))?;
    assert!(!has_vip(&tier.nodes[0].ns));
    Ok(())
}

#[test]
fn a_foreign_link_named_like_the_bgp_interface_stops_the_start() -> Result<()> {
    let ns = Netns::new("bgpd-w")?;
    ns.ip(&[
        "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p",
    ])?;
    ns.ip(&["link", "set", "eth0", "up"])?;
    ns.ip(&[
        "link",
        "add",
        VIP_INTERFACE,
        "type",
        "veth",
        "peer",
        "name",
        "lb-peer0",
    ])?;
    let dir = std::env::temp_dir().join(unique_name("lb-bgpd-w"));
    std::fs::create_dir_all(&dir)?;
    let conf = dir.join("lb.toml");
    std::fs::write(
        &conf,
        config(
            &dir,
            "lbw",
            &dir.join("bird.ctl"),
            "10.0.0.2",
            &dir.join("pin"),
        ),
    )?;
    let out = Command::new("ip")
        .args(["netns", "exec", ns.name()])
        .arg(daemon_bin())
        .args(["run", "--config"])
        .arg(&conf)
        .output()?;
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started: {stderr}");
    assert!(
        stderr.contains(
            "interface lb-vip0 exists and is a veth, not a dummy/ifb: choose another [bgp] interface"
        ),
        "{stderr}"
    );
    // Left as it was, and nothing attached.
    assert!(ns
        .ip(&["link", "show", VIP_INTERFACE])?
        .contains("lb-vip0@lb-peer0"));
    assert!(!ns.ip(&["link", "show", "eth0"])?.contains("xdp"));
    Ok(())
}
