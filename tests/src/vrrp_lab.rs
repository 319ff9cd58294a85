//! VRRP nodes on one L2 segment in network namespaces: our daemon (`lb-daemon run`) and
//! keepalived 2.2.7 side by side, with helpers to cut links and watch the VIP.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use lb_daemon::netns::{Netns, NsChild, Switch};

/// The daemon binary built by `cargo test` (override with `LB_DAEMON_BIN`).
pub fn daemon_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("LB_DAEMON_BIN") {
        return PathBuf::from(p);
    }
    let p = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../target/debug/lb-daemon"
    ));
    assert!(
        p.exists(),
        "{} is missing: run `cargo build -p lb-daemon` first",
        p.display()
    );
    p
}

/// A node: a namespace plugged into the segment, running one VRRP implementation.
pub struct Node {
    pub name: String,
    pub ns: Netns,
    pub addr: String,
    /// The node's port on the switch (cut it to cut the node's link).
    pub port: String,
    pub dir: PathBuf,
    child: Option<NsChild>,
}

pub struct Segment {
    pub switch: Switch,
    pub nodes: Vec<Node>,
    dir: PathBuf,
}

impl Segment {
    /// `n` nodes 198.18.0.11, .12, ... on one bridge.
    pub fn new(n: usize) -> Result<Segment> {
        let dir = std::env::temp_dir().join(lb_daemon::netns::unique_name("lb-vrrp"));
        std::fs::create_dir_all(&dir)?;
        let switch = Switch::new("vr-sw")?;
        let mut nodes = Vec::new();
        for i in 0..n {
            let ns = Netns::new("vr-n")?;
            let port = switch.plug(&ns, "eth0")?;
            let addr = format!("198.18.0.{}", 11 + i);
            ns.ip(&["addr", "add", &format!("{addr}/24"), "dev", "eth0"])?;
            ns.ip(&[
                "-6",
                "addr",
                "add",
                &format!("fe80::{}/64", 11 + i),
                "dev",
                "eth0",
                "nodad",
            ])?;
            let name = format!("n{}", i + 1);
            let node_dir = dir.join(&name);
            std::fs::create_dir_all(&node_dir)?;
            nodes.push(Node {
                name,
                ns,
                addr,
                port,
                dir: node_dir,
                child: None,
            });
        }
        Ok(Segment { switch, nodes, dir })
    }

    /// Takes the node's switch port down (the link as the node sees it goes down too).
    pub fn cut(&self, i: usize) -> Result<()> {
        self.switch
            .ns()
            .ip(&["link", "set", &self.nodes[i].port, "down"])?;
        Ok(())
    }

    pub fn restore(&self, i: usize) -> Result<()> {
        self.switch
            .ns()
            .ip(&["link", "set", &self.nodes[i].port, "up"])?;
        Ok(())
    }

    /// Cuts only the heartbeat: the switch drops IP protocol 112 (VRRP) between its ports
    /// (an nftables bridge-family rule in the switch's namespace); ARP, ICMP and every
    /// other protocol still pass, so clients reach every node.
    pub fn cut_heartbeat(&self) -> Result<()> {
        self.switch
            .ns()
            .sh("nft 'add table bridge heartbeat; \
                 add chain bridge heartbeat cut { type filter hook forward priority 0; }; \
                 add rule bridge heartbeat cut ip protocol 112 drop; \
                 add rule bridge heartbeat cut ip6 nexthdr 112 drop'")
            .context("nft (Debian package nftables, `cargo xtask setup`)")?;
        Ok(())
    }

    /// Cuts the heartbeat one way only: VRRP from node `from` is dropped, the other
    /// way passes (a one-way link, a half-broken firewall).
    pub fn cut_heartbeat_from(&self, from: usize) -> Result<()> {
        let addr = &self.nodes[from].addr;
        self.switch
            .ns()
            .sh(&format!(
                "nft 'add table bridge heartbeat; \
                 add chain bridge heartbeat cut {{ type filter hook forward priority 0; }}; \
                 add rule bridge heartbeat cut ip saddr {addr} ip protocol 112 drop'"
            ))
            .context("nft (Debian package nftables, `cargo xtask setup`)")?;
        Ok(())
    }

    pub fn restore_heartbeat(&self) -> Result<()> {
        self.switch.ns().sh("nft delete table bridge heartbeat")?;
        Ok(())
    }

    /// Waits until `want` (indexes) hold the VIP, exactly; returns how long it took.
    pub fn wait_holders(&self, vip: &str, want: &[usize], timeout: Duration) -> Result<Duration> {
        let start = Instant::now();
        loop {
            if self.holders(vip) == want {
                return Ok(start.elapsed());
            }
            if start.elapsed() > timeout {
                anyhow::bail!(
                    "after {timeout:?} the VIP {vip} is held by {:?}, not {want:?}; logs:\n{}",
                    self.holders(vip),
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Indexes of the nodes that hold `vip` right now.
    pub fn holders(&self, vip: &str) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].has_vip(vip))
            .collect()
    }

    /// Waits until exactly `want` holds the VIP; returns how long it took.
    pub fn wait_holder(&self, vip: &str, want: usize, timeout: Duration) -> Result<Duration> {
        let start = Instant::now();
        loop {
            let h = self.holders(vip);
            if h == vec![want] {
                return Ok(start.elapsed());
            }
            if start.elapsed() > timeout {
                anyhow::bail!(
                    "after {timeout:?} the VIP {vip} is held by {:?}, not only by {}; logs:\n{}",
                    h.iter()
                        .map(|&i| self.nodes[i].name.clone())
                        .collect::<Vec<_>>(),
                    self.nodes[want].name,
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("--- {} ---\n{}", n.name, n.log()))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            n.child.take();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Node {
    fn log_path(&self) -> PathBuf {
        self.dir.join("log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn has_vip(&self, vip: &str) -> bool {
        self.ns.has_address("eth0", vip)
    }

    /// Appends: a node restarted (the soak's SIGKILL and upgrade faults) keeps the log
    /// of its previous daemon above the new one's.
    fn spawn_logged(&mut self, argv: &[&str]) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        let err = log.try_clone()?;
        let child = self.ns.spawn_with(argv, log.into(), err.into())?;
        self.child = Some(child);
        Ok(())
    }

    /// Starts `lb-daemon run` with this TOML configuration.
    pub fn start_ours(&mut self, toml: &str) -> Result<()> {
        let conf = self.dir.join("lb.toml");
        std::fs::write(&conf, toml)?;
        let bin = daemon_bin();
        let argv = [
            bin.to_str().context("path")?,
            "run",
            "--config",
            conf.to_str().context("path")?,
        ];
        self.spawn_logged(&argv)
    }

    /// Starts `lb-daemon run` directly on a keepalived.conf (converted in memory), with
    /// `config_id` for its `@id` lines.
    pub fn start_ours_keepalived(&mut self, conf_text: &str, config_id: &str) -> Result<()> {
        let conf = self.dir.join("keepalived.conf");
        std::fs::write(&conf, conf_text)?;
        let bin = daemon_bin();
        let argv = [
            bin.to_str().context("path")?,
            "run",
            "--config",
            conf.to_str().context("path")?,
            "--config-id",
            config_id,
        ];
        self.spawn_logged(&argv)
    }

    /// Starts keepalived 2.2.7 (VRRP only, foreground, logging to the console).
    pub fn start_keepalived(&mut self, conf_text: &str) -> Result<()> {
        let conf = self.dir.join("keepalived.conf");
        std::fs::write(&conf, conf_text)?;
        let p = |f: &str| self.dir.join(f).to_string_lossy().to_string();
        let (pid, vpid, cpid) = (p("k.pid"), p("v.pid"), p("c.pid"));
        let argv = [
            "keepalived",
            "--dont-fork",
            "--log-console",
            "--log-detail",
            "--vrrp",
            "--use-file",
            conf.to_str().context("path")?,
            "--pid",
            &pid,
            "--vrrp_pid",
            &vpid,
            "--checkers_pid",
            &cpid,
        ];
        self.spawn_logged(&argv)
    }

    /// Starts keepalived 2.2.7's BFD process only (`bfd_instance` blocks; foreground,
    /// logging to the console).
    pub fn start_keepalived_bfd(&mut self, conf_text: &str) -> Result<()> {
        let conf = self.dir.join("keepalived.conf");
        std::fs::write(&conf, conf_text)?;
        let p = |f: &str| self.dir.join(f).to_string_lossy().to_string();
        let (pid, vpid, cpid, bpid) = (p("k.pid"), p("v.pid"), p("c.pid"), p("b.pid"));
        let argv = [
            "keepalived",
            "--dont-fork",
            "--log-console",
            "--log-detail",
            "--use-file",
            conf.to_str().context("path")?,
            "--pid",
            &pid,
            "--vrrp_pid",
            &vpid,
            "--checkers_pid",
            &cpid,
            "--bfd_pid",
            &bpid,
        ];
        self.spawn_logged(&argv)
    }

    /// SIGTERM, then wait for the process to exit (a graceful stop).
    pub fn stop(&mut self) -> Result<()> {
        if let Some(child) = self.child.take() {
            if let Some(pid) = child.pid() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if child.try_wait()?.is_some() {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The running process's pid, if one was started and not stopped.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(NsChild::pid)
    }

    /// SIGKILL (a crash: nothing is cleaned up), and reap it.
    pub fn kill(&mut self) {
        // Dropping the guard kills and waits.
        self.child.take();
    }
}

/// Our configuration for one node.
pub struct Ours<'a> {
    pub name: &'a str,
    pub state: &'a str,
    pub priority: u8,
    pub version: u8,
    pub advert_int: &'a str,
    pub password: Option<&'a str>,
    /// With a password: IPsec AH (`auth_type AH`) instead of the simple password.
    pub ah: bool,
    pub vip: &'a str,
    pub unicast: Option<(&'a str, &'a [&'a str])>,
    pub nopreempt: bool,
    /// A BFD session (10 ms x 3) to this address, tracked by the instance with weight
    /// -10 (`track_bfd`).
    pub bfd_peer: Option<&'a str>,
}

impl<'a> Ours<'a> {
    /// A BACKUP with `priority`: VRRPv2, 1 s adverts, no authentication, multicast, the
    /// lab's VIP 198.18.0.100/24 (change the fields a test needs).
    pub fn backup(name: &'a str, priority: u8) -> Ours<'a> {
        Ours {
            name,
            state: "BACKUP",
            priority,
            version: 2,
            advert_int: "1",
            password: None,
            ah: false,
            vip: "198.18.0.100/24",
            unicast: None,
            nopreempt: false,
            bfd_peer: None,
        }
    }
}

impl Ours<'_> {
    pub fn toml(&self, dir: &Path) -> String {
        let mut s = format!(
            "[global]\nrouter_id = \"{}\"\ncontrol_socket = \"{}/lb.sock\"\n\n[[vrrp_instance]]\nname = \"VI_1\"\ninterface = \"eth0\"\nstate = \"{}\"\nvirtual_router_id = 51\npriority = {}\nadvert_int = {}\nversion = {}\nvirtual_ipaddress = [\"{}\"]\n",
            self.name,
            dir.display(),
            self.state,
            self.priority,
            self.advert_int,
            self.version,
            self.vip
        );
        if let Some(p) = self.password {
            let kind = if self.ah { "AH" } else { "PASS" };
            s.push_str(&format!(
                "authentication = {{ auth_type = \"{kind}\", auth_pass = \"{p}\" }}\n"
            ));
        }
        if let Some((src, peers)) = self.unicast {
            let peers: Vec<String> = peers.iter().map(|p| format!("\"{p}\"")).collect();
            s.push_str(&format!(
                "unicast_src_ip = \"{src}\"\nunicast_peers = [{}]\n",
                peers.join(", ")
            ));
        }
        if self.nopreempt {
            s.push_str("nopreempt = true\n");
        }
        if let Some(peer) = self.bfd_peer {
            s.push_str(&format!(
                "track_bfd = [{{ name = \"peer\", weight = -10 }}]\n\n[[bfd_instance]]\nname = \"peer\"\nneighbor_ip = \"{peer}\"\nmin_rx = 10\nmin_tx = 10\nmultiplier = 3\n"
            ));
        }
        s
    }
}

/// A keepalived.conf with the same settings.
pub fn keepalived_conf(o: &Ours<'_>) -> String {
    let mut s = format!(
        "global_defs {{\n  router_id {}\n}}\nvrrp_instance VI_1 {{\n  state {}\n  interface eth0\n  virtual_router_id 51\n  priority {}\n  advert_int {}\n  version {}\n",
        o.name, o.state, o.priority, o.advert_int.trim_matches('"'), o.version
    );
    if let Some(p) = o.password {
        let kind = if o.ah { "AH" } else { "PASS" };
        s.push_str(&format!(
            "  authentication {{\n    auth_type {kind}\n    auth_pass {p}\n  }}\n"
        ));
    }
    if let Some((src, peers)) = o.unicast {
        s.push_str(&format!("  unicast_src_ip {src}\n  unicast_peer {{\n"));
        for p in peers {
            s.push_str(&format!("    {p}\n"));
        }
        s.push_str("  }\n");
    }
    if o.nopreempt {
        s.push_str("  nopreempt\n");
    }
    if o.bfd_peer.is_some() {
        s.push_str("  track_bfd {\n    peer weight -10\n  }\n");
    }
    s.push_str(&format!(
        "  virtual_ipaddress {{\n    {}\n  }}\n}}\n",
        o.vip
    ));
    if let Some(peer) = o.bfd_peer {
        s.push_str(&format!(
            "bfd_instance peer {{\n  neighbor_ip {peer}\n  min_rx 10\n  min_tx 10\n  multiplier 3\n}}\n"
        ));
    }
    s
}
