//! The soak's network: two LB nodes (one VRRP sync group: VI_EXT on the client side with
//! the DR and NAT VIPs, VI_INT on the reals' side with their gateway; unicast with
//! authentication), three DR backends on the client segment, three NAT reals behind the
//! LBs, the client, and a third host that forges adverts. Pins live on a bpffs mounted in
//! the host's mount namespace, so a restarted daemon finds its predecessor's maps. Flow
//! sync (`[sync]`, keepalived's `lvs_sync_daemon`) runs between the LBs, as it would on
//! an LVS pair that must keep connections through a failover.

use std::{
    net::{IpAddr, Ipv4Addr},
    path::{Path, PathBuf},
    process::Output,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use lb_daemon::{
    dataplane::{ForwardMode, HelperProgram},
    lab::{start_backend, start_nat_real, Addressing, BackendHost, CLIENT_ADDR, NAT_REAL_PORT},
    netns::Switch,
};

use super::schedule::Service;
use crate::vrrp_lab::{daemon_bin, Segment};

pub const DR_VIP: &str = "198.18.0.100";
pub const NAT_VIP: &str = "198.18.0.110";
pub const GATEWAY: &str = "10.0.1.1";
pub const METRICS: &str = "127.0.0.1:9469";
/// The forging host's address (not a VRRP peer).
pub const FORGER: usize = 3;
pub const CLIENT: usize = 2;
pub const BACKENDS: usize = 3;

/// The addressing of a service's VIP as the lab's client reaches it.
pub fn addressing(service: Service) -> Addressing {
    let vip = match service {
        Service::Dr => DR_VIP,
        Service::Nat => NAT_VIP,
    };
    Addressing {
        vip: vip.parse().expect("VIP"),
        ..Addressing::v4()
    }
}

/// A bpffs mounted in the host's mount namespace: `ip netns exec` gives each daemon its
/// own /sys, but mounts elsewhere are shared, so pins survive from one daemon to the next.
pub struct SharedBpffs(pub PathBuf);

impl SharedBpffs {
    pub fn new() -> Result<SharedBpffs> {
        let dir = PathBuf::from(format!("/run/lb-soak-bpffs-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let ok = std::process::Command::new("mount")
            .args(["-t", "bpf", "bpf"])
            .arg(&dir)
            .status()?
            .success();
        if !ok {
            bail!("mounting a bpffs at {}", dir.display());
        }
        Ok(SharedBpffs(dir))
    }

    /// Every pinned object under it.
    pub fn pins(&self) -> usize {
        fn count(dir: &Path) -> usize {
            std::fs::read_dir(dir)
                .map(|rd| {
                    rd.flatten()
                        .map(|e| {
                            let p = e.path();
                            if p.is_dir() {
                                count(&p)
                            } else {
                                1
                            }
                        })
                        .sum()
                })
                .unwrap_or(0)
        }
        count(&self.0)
    }
}

impl Drop for SharedBpffs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

pub struct SoakLab {
    pub seg: Segment,
    pub internal: Switch,
    pub dr: Vec<BackendHost>,
    pub nat: Vec<BackendHost>,
    pub bpffs: SharedBpffs,
    /// Each LB's priority offset (a valid reload toggles it).
    pub bump: [u8; 2],
    _passes: Vec<HelperProgram>,
}

impl SoakLab {
    pub fn new() -> Result<SoakLab> {
        let _ = daemon_bin();
        let bpffs = SharedBpffs::new()?;
        let seg = Segment::new(4)?;
        let client = &seg.nodes[CLIENT].ns;
        client.ip(&["addr", "del", "198.18.0.13/24", "dev", "eth0"])?;
        client.ip(&["addr", "add", &format!("{CLIENT_ADDR}/24"), "dev", "eth0"])?;
        client.sh("ethtool -K eth0 tx off tso off gso off >/dev/null")?;
        let internal = Switch::new("soak-in")?;
        let mut passes = Vec::new();
        for i in 0..2 {
            let ns = &seg.nodes[i].ns;
            let port = internal.plug(ns, "eth1")?;
            ns.ip(&[
                "addr",
                "add",
                &format!("10.0.1.{}/24", 2 + i),
                "dev",
                "eth1",
            ])?;
            ns.sh("sysctl -qw net.ipv4.ip_forward=1")?;
            // Native XDP_TX/redirect into a veth needs XDP on its peer.
            for (sw, p) in [(&seg.switch, seg.nodes[i].port.clone()), (&internal, port)] {
                passes.push(sw.ns().run(move || HelperProgram::pass(&p))?);
            }
        }
        let dr = (0..BACKENDS)
            .map(|i| start_backend(&seg.switch, i, ForwardMode::Dr))
            .collect::<Result<_>>()?;
        let nat_addr = addressing(Service::Nat);
        let nat = (0..BACKENDS)
            .map(|i| start_nat_real(&internal, i, &nat_addr, false))
            .collect::<Result<_>>()?;
        Ok(SoakLab {
            seg,
            internal,
            dr,
            nat,
            bpffs,
            bump: [0, 0],
            _passes: passes,
        })
    }

    /// Sets backend `i`'s switch port `up` or `down` (a link flap seen by the backend as
    /// carrier loss, its addresses and routes kept).
    pub fn set_switch_port(&self, service: Service, i: usize, state: &str) -> Result<()> {
        let (switch, host) = match service {
            Service::Dr => (&self.seg.switch, &self.dr[i]),
            Service::Nat => (&self.internal, &self.nat[i]),
        };
        switch
            .ns()
            .ip(&["link", "set", host.switch_port(), state])?;
        Ok(())
    }

    pub fn backend(&mut self, service: Service, i: usize) -> &mut BackendHost {
        match service {
            Service::Dr => &mut self.dr[i],
            Service::Nat => &mut self.nat[i],
        }
    }

    /// LB `i`'s configuration (lb1 priority 150, lb2 100, plus its bump).
    pub fn config(&self, i: usize) -> String {
        let name = ["lb1", "lb2"][i];
        let priority = [150u8, 100][i] + self.bump[i];
        let dir = self.seg.nodes[i].dir();
        let pin = self.bpffs.0.join(name);
        let (me, peer) = (11 + i, 12 - i);
        let (me_in, peer_in) = (2 + i, 3 - i);
        let mut s = format!(
            r#"[global]
router_id = "{name}"
control_socket = "{dir}/lb.sock"
bpf_pin_path = "{pin}"
dataplane = "xdp"
metrics_listen = "{METRICS}"

[global.lvs_timeouts]
tcp = "10m"

# keepalived's lvs_sync_daemon: without it a DR flow scheduled while the backend set
# differed (a replacement opened during a backend fault) reaches another real after a
# failover, because the backup only has its Maglev table.
[sync]
interface = "eth0"
vrrp_instance = "VI_EXT"
peers = ["198.18.0.{peer}"]
key = "soak-flow-sync-key-0123456789"

[[vrrp_sync_group]]
name = "SOAK"
group = ["VI_EXT", "VI_INT"]

[[vrrp_instance]]
name = "VI_EXT"
interface = "eth0"
state = "BACKUP"
virtual_router_id = 51
priority = {priority}
advert_int = 1
authentication = {{ auth_type = "PASS", auth_pass = "soak" }}
unicast_src_ip = "198.18.0.{me}"
unicast_peers = ["198.18.0.{peer}"]
virtual_ipaddress = ["{DR_VIP}/32", "{NAT_VIP}/32"]

[[vrrp_instance]]
name = "VI_INT"
interface = "eth1"
state = "BACKUP"
virtual_router_id = 52
priority = {priority}
advert_int = 1
authentication = {{ auth_type = "PASS", auth_pass = "soak" }}
unicast_src_ip = "10.0.1.{me_in}"
unicast_peers = ["10.0.1.{peer_in}"]
virtual_ipaddress = ["{GATEWAY}/24"]
"#,
            dir = dir.display(),
            pin = pin.display()
        );
        for (vip, kind, port, reals) in [
            (DR_VIP, "DR", 80, addresses(Service::Dr)),
            (NAT_VIP, "NAT", NAT_REAL_PORT, addresses(Service::Nat)),
        ] {
            s.push_str(&format!(
                "\n[[virtual_server]]\naddress = \"{vip}\"\nport = 80\nprotocol = \"TCP\"\nlb_kind = \"{kind}\"\ndelay_loop = \"500ms\"\n"
            ));
            for r in reals {
                s.push_str(&format!(
                    "\n[[virtual_server.real_server]]\naddress = \"{r}\"\nport = {port}\ntcp_check = {{ connect_timeout = \"500ms\", retry = 0, warmup = \"0s\" }}\n"
                ));
            }
        }
        s
    }

    pub fn start(&mut self, i: usize) -> Result<()> {
        let conf = self.config(i);
        self.seg.nodes[i].start_ours(&conf)
    }

    pub fn sock(&self, i: usize) -> PathBuf {
        self.seg.nodes[i].dir().join("lb.sock")
    }

    /// `lb-daemon ARGS --socket` against LB `i`.
    pub fn cli(&self, i: usize, args: &[&str]) -> Result<Output> {
        Ok(std::process::Command::new(daemon_bin())
            .args(args)
            .arg("--socket")
            .arg(self.sock(i))
            .output()?)
    }

    /// The LBs holding the DR VIP.
    pub fn holders(&self) -> Vec<usize> {
        self.seg
            .holders(DR_VIP)
            .into_iter()
            .filter(|i| *i < 2)
            .collect()
    }

    /// The one LB holding the VIP and running, waiting up to `timeout` for it.
    pub fn master(&self, timeout: Duration) -> Result<usize> {
        let deadline = Instant::now() + timeout;
        loop {
            let running: Vec<usize> = self
                .holders()
                .into_iter()
                .filter(|i| self.seg.nodes[*i].pid().is_some())
                .collect();
            if let [m] = running[..] {
                return Ok(m);
            }
            if Instant::now() > deadline {
                bail!(
                    "no single master (holders {running:?})\n{}",
                    self.seg.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The daemon's socket answers `status` (the daemon is up and serving its socket).
    pub fn wait_socket(&self, i: usize, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.cli(i, &["status"]).is_ok_and(|o| o.status.success()) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!(
            "lb{} does not answer on its socket\n{}",
            i + 1,
            self.seg.logs()
        )
    }

    /// Writes LB `i`'s configuration file (what `reload` reads).
    pub fn write_config(&self, i: usize, text: &str) -> Result<()> {
        std::fs::write(self.seg.nodes[i].dir().join("lb.toml"), text).context("lb.toml")
    }
}

fn addresses(service: Service) -> Vec<IpAddr> {
    let a = addressing(service);
    (0..BACKENDS)
        .map(|i| match service {
            Service::Dr => a.backend(i),
            Service::Nat => a.nat_real(i),
        })
        .collect()
}

/// The forger's address (node [`FORGER`] of the segment).
pub fn forger_addr() -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 0, 11 + FORGER as u8)
}
