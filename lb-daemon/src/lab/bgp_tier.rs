//! An active-active tier in network namespaces: a router running BIRD 2 with BGP + BFD
//! sessions to N load-balancer nodes, each running its own BIRD that announces the addresses
//! of its VIP interface; the router installs the VIPs as ECMP (multipath) routes.
//!
//! ```text
//!  client ── router ── uplink switch ── lb1, lb2, lb3 ── backend switch ── backends
//!              └───────────────────────────────────────────┘ (DR replies)
//! ```
//!
//! Addresses: uplink 10.90.0.0/24 + fd00:90::/64 (router .1, node i .11+i, link-local
//! fe80::11+i); clients 10.91.0.0/24 + fd00:91::/64; backends 10.92.0.0/24 + fd00:92::/64
//! (router .1, node i .11+i, backend j .21+j). Backends hold the VIPs on `lo` and answer
//! clients directly through the router, as DR wants.
//!
//! The BIRD configurations come from [`router_config`] and [`node_config`]; `docs/bgp.md`
//! shows their output. Each address family has its own BGP session (IPv4 over IPv4, IPv6
//! over IPv6): an IPv6 channel on an IPv4 session needs an IPv6 next hop that BIRD does not
//! derive from an IPv4 session (extended next hop, RFC 8950, would be needed), and separate
//! sessions fail and recover independently, each watched by its own BFD session.
//!
//! With [`Tier::serve`] the backends run the lab's TCP service (DR, or TUN with `lb_decap`)
//! and [`Tier::start_daemons`] runs `lb-daemon run` on every node with a generated
//! configuration that announces the VIPs by BGP (`announce = "bgp"`, health-checked
//! backends); without them the VIPs can be put on the nodes by hand ([`LbNode::add_vip`]).
//!
//! Everything is torn down on drop, even on panic: daemons, BIRD processes, namespaces,
//! pinned maps, files.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use crate::bgp::bird::{BgpSession, BirdClient, SessionState};
use crate::dataplane::{bpffs, ForwardMode, HelperProgram};
use crate::lab::{open_to, requests_to, start_server, Addressing, LabConn, Reply, VIP_PORT};
use crate::netns::{unique_name, Netns, NsChild, Switch};

pub const BIRD: &str = "/usr/sbin/bird";
pub const ROUTER_AS: u32 = 65000;
pub const NODE_AS: u32 = 65001;
/// The interface whose addresses a node announces.
pub const VIP_INTERFACE: &str = "lb-vip0";
/// The ranges VIPs are taken from: nothing else is announced or accepted.
pub const VIP_RANGE_V4: &str = "198.51.100.0/24";
pub const VIP_RANGE_V6: &str = "2001:db8:100::/64";
/// Router's uplink interface (towards the LB nodes) and a node's.
pub const ROUTER_UPLINK: &str = "up0";
pub const NODE_UPLINK: &str = "eth0";
/// The client behind the router.
pub const CLIENT_V4: &str = "10.91.0.2";
pub const CLIENT_V6: &str = "fd00:91::2";
/// The VIPs the tier's tests, lab and benchmark use.
pub const VIP_V4: &str = "198.51.100.10";
pub const VIP_V6: &str = "2001:db8:100::10";

/// One BGP neighbour as a configuration names it.
#[derive(Debug, Clone)]
pub struct Peer {
    /// Protocol name in bird.conf, e.g. `lb1_v4`.
    pub name: String,
    pub local: IpAddr,
    pub neighbor: IpAddr,
    pub neighbor_as: u32,
}

/// BFD timers: 100 ms x 3, a dead link is noticed in about 300 ms.
const BFD_BLOCK: &str = "\
# BFD notices a dead neighbour in 3 x 100 ms, long before BGP's hold timer (90 s or more).
protocol bfd {
  interface \"*\" {
    min rx interval 100 ms;
    min tx interval 100 ms;
    multiplier 3;
  };
}
";

fn channel(neighbor: IpAddr) -> &'static str {
    match neighbor {
        IpAddr::V4(_) => "ipv4",
        IpAddr::V6(_) => "ipv6",
    }
}

fn family_name<'a>(p: &Peer, v4: &'a str, v6: &'a str) -> &'a str {
    if p.neighbor.is_ipv4() {
        v4
    } else {
        v6
    }
}

/// Appends one `protocol bgp` of `template` to `c`, with its channel block.
fn session(c: &mut String, p: &Peer, template: &str, channel: &str) {
    let _ = write!(
        c,
        "
protocol bgp {name} from {template} {{
  neighbor {neighbor} as {asn};
  source address {local};
  {channel}
}}
",
        name = p.name,
        neighbor = p.neighbor,
        asn = p.neighbor_as,
        local = p.local,
    );
}

/// The prefix set matching host routes in `range`: `[ 198.51.100.0/24{32,32} ]`.
fn host_routes_in(range: &str) -> String {
    let len = if range.contains(':') { 128 } else { 32 };
    format!("[ {range}{{{len},{len}}} ]")
}

/// BIRD configuration of a router that spreads the VIPs over the LB nodes by ECMP.
pub fn router_config(router_id: &str, local_as: u32, peers: &[Peer], v4: &str, v6: &str) -> String {
    let mut c = String::new();
    let _ = write!(
        c,
        "\
router id {router_id};

# Learns interfaces and their state; every other protocol needs it.
protocol device {{
}}

{BFD_BLOCK}
# Routes learnt from several LB nodes for the same VIP become one multipath route
# (ECMP) in the kernel. Pair with sysctl net.ipv4.fib_multipath_hash_policy=1 (and
# net.ipv6.fib_multipath_hash_policy=1) so the kernel hashes on ports too (L4).
protocol kernel kernel4 {{
  ipv4 {{ import none; export all; }};
  merge paths on;
}}
protocol kernel kernel6 {{
  ipv6 {{ import none; export all; }};
  merge paths on;
}}

# Only host routes inside the VIP ranges are accepted from LB nodes (RFC 8212: eBGP
# needs explicit filters).
filter lb_vips4 {{ if net ~ {in4} then accept; reject; }}
filter lb_vips6 {{ if net ~ {in6} then accept; reject; }}

template bgp lb_node {{
  local as {local_as};
  # BFD takes the session down at once when a node's link or host dies.
  bfd on;
  # A session that failed is retried after 1 s, backing off to 10 s at most.
  error wait time 1, 10;
  connect retry time 5;
}}
",
        in4 = host_routes_in(v4),
        in6 = host_routes_in(v6),
    );
    for p in peers {
        let filter = family_name(p, "lb_vips4", "lb_vips6");
        let channel = format!(
            "{} {{ import filter {filter}; export none; }};",
            channel(p.neighbor)
        );
        session(&mut c, p, "lb_node", &channel);
    }
    c
}

/// BIRD configuration of an LB node: announces the /32 and /128 addresses of `interface`
/// (inside the VIP ranges) to the routers, and nothing else.
pub fn node_config(
    router_id: &str,
    local_as: u32,
    interface: &str,
    routers: &[Peer],
    v4: &str,
    v6: &str,
) -> String {
    let mut c = String::new();
    let _ = write!(
        c,
        "\
router id {router_id};

# Learns interfaces and their addresses; `protocol direct` depends on it.
protocol device {{
}}

# Each address on the VIP interface becomes a route: adding a VIP announces it,
# removing it withdraws it. No other interface is looked at.
protocol direct vips {{
  ipv4;
  ipv6;
  interface \"{interface}\";
}}

{BFD_BLOCK}
# Only the VIP interface's host routes, inside the VIP ranges, go out.
filter vips4 {{ if proto = \"vips\" && net ~ {in4} then accept; reject; }}
filter vips6 {{ if proto = \"vips\" && net ~ {in6} then accept; reject; }}

template bgp to_router {{
  local as {local_as};
  bfd on;
  # Restarting BIRD (or the host) keeps the routes on the routers meanwhile.
  graceful restart on;
  error wait time 1, 10;
  connect retry time 5;
}}
",
        in4 = host_routes_in(v4),
        in6 = host_routes_in(v6),
    );
    for p in routers {
        let filter = family_name(p, "vips4", "vips6");
        let channel = format!(
            "# Nothing is learnt from the routers: a node forwards only to its backends.\n  \
             {} {{ import none; export filter {filter}; }};",
            channel(p.neighbor)
        );
        session(&mut c, p, "to_router", &channel);
    }
    c
}

/// A BIRD process in a namespace (`bird -f`), killed when dropped.
pub struct Bird {
    pub socket: PathBuf,
    pub config: PathBuf,
    log: PathBuf,
    _child: NsChild,
}

impl Bird {
    /// Writes `config` (with logging to stderr added) and starts BIRD on it; returns once
    /// its control socket answers.
    pub fn start(ns: &Netns, dir: &Path, name: &str, config: &str) -> Result<Bird> {
        let conf = dir.join(format!("{name}.conf"));
        let socket = dir.join(format!("{name}.ctl"));
        let log = dir.join(format!("{name}.log"));
        std::fs::write(&conf, format!("log stderr all;\n{config}"))?;
        let err = std::fs::File::create(&log)?;
        let pid = dir.join(format!("{name}.pid"));
        let child = ns.spawn_with(
            &[
                BIRD,
                "-f",
                "-c",
                path_str(&conf)?,
                "-s",
                path_str(&socket)?,
                "-P",
                path_str(&pid)?,
            ],
            Stdio::null(),
            Stdio::from(err),
        )?;
        let bird = Bird {
            socket,
            config: conf,
            log,
            _child: child,
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while block_on(BirdClient::new(&bird.socket).connect()).is_err() {
            if Instant::now() > deadline {
                bail!(
                    "BIRD {name} did not open {}: {}",
                    bird.socket.display(),
                    bird.log()
                );
            }
            if let Ok(Some(status)) = bird._child.try_wait() {
                bail!("BIRD {name} exited ({status}): {}", bird.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(bird)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The BGP sessions, read through lb-daemon's client of the control socket.
    pub fn sessions(&self) -> Result<Vec<BgpSession>> {
        Ok(block_on(BirdClient::new(&self.socket).bgp_sessions())?)
    }
}

fn path_str(p: &Path) -> Result<&str> {
    p.to_str().context("non-UTF-8 path")
}

/// Runs a future on a throwaway current-thread runtime (the harness is synchronous).
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(f)
}

/// An LB node: its namespace, its BIRD and its port on the uplink switch.
pub struct LbNode {
    pub name: String,
    pub ns: Netns,
    pub v4: String,
    pub v6: String,
    pub link_local: String,
    /// The node's port on the uplink switch: down = the node's link is cut.
    pub port: String,
    /// The node's port on the backends' switch.
    pub backend_port: String,
    pub bird: Bird,
    /// Files of this node's daemon (configuration, control socket, log).
    pub dir: PathBuf,
    /// bpffs directory of this node's data plane.
    pub pin_dir: PathBuf,
    daemon: Option<NsChild>,
}

impl LbNode {
    /// Announces: puts `vip` on the VIP interface as a host address.
    pub fn add_vip(&self, vip: &str) -> Result<()> {
        let len = if vip.contains(':') { 128 } else { 32 };
        self.ns.ip(&[
            "addr",
            "add",
            &format!("{vip}/{len}"),
            "dev",
            VIP_INTERFACE,
            "nodad",
        ])?;
        Ok(())
    }

    /// Withdraws: takes `vip` off the VIP interface.
    pub fn remove_vip(&self, vip: &str) -> Result<()> {
        let len = if vip.contains(':') { 128 } else { 32 };
        self.ns
            .ip(&["addr", "del", &format!("{vip}/{len}"), "dev", VIP_INTERFACE])?;
        Ok(())
    }
}

/// A DR backend: holds VIPs on `lo` and routes replies through the router.
pub struct Backend {
    pub ns: Netns,
    pub v4: String,
    pub v6: String,
    index: usize,
    server: Option<(Arc<AtomicBool>, JoinHandle<()>)>,
    _decap: Option<HelperProgram>,
}

impl Backend {
    pub fn hold_vip(&self, vip: &str) -> Result<()> {
        let len = if vip.contains(':') { 128 } else { 32 };
        self.ns
            .ip(&["addr", "add", &format!("{vip}/{len}"), "dev", "lo"])?;
        Ok(())
    }

    /// Starts the lab's TCP service on port 80, IPv4 and IPv6 (answers `<name> <client>`).
    pub fn start_server(&mut self) -> Result<()> {
        self.stop_server();
        let any = IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED);
        self.server = Some(start_server(&self.ns, self.index, any, VIP_PORT)?);
        Ok(())
    }

    /// Stops the service (the host stays up: connections and health checks are refused).
    pub fn stop_server(&mut self) {
        if let Some((stop, handle)) = self.server.take() {
            stop.store(true, Ordering::Relaxed);
            let _ = handle.join();
        }
    }

    /// The backend's name in replies (`backend1`, ...).
    pub fn name(&self) -> String {
        crate::lab::backend_name(self.index)
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop_server();
    }
}

/// A virtual service of the tier: a VIP on port 80/TCP over every backend, announced by BGP.
#[derive(Debug, Clone, Copy)]
pub struct TierService {
    pub vip: IpAddr,
    pub mode: ForwardMode,
}

impl TierService {
    pub fn new(vip: &str, mode: ForwardMode) -> Result<TierService> {
        Ok(TierService {
            vip: vip.parse().with_context(|| format!("VIP {vip:?}"))?,
            mode,
        })
    }
}

/// Who puts the VIPs on the nodes' VIP interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Announce {
    /// The daemon (`announce = "bgp"`, a `[bgp]` section).
    Bgp,
    /// The caller ([`LbNode::add_vip`]); the daemon serves the VIPs always (no `announce`),
    /// with XDP on the uplink by each virtual server's `interfaces`.
    ByHand,
}

/// Settings of the nodes' daemons that the scenarios vary.
#[derive(Debug, Clone, Copy)]
pub struct DaemonSettings {
    pub announce: Announce,
    /// `[bgp] hold_down`.
    pub hold_down: Duration,
    /// `[bgp] drain_timeout` and `drain_idle`.
    pub drain_timeout: Duration,
    pub drain_idle: Duration,
    /// Health-check period of the backends (`delay_loop`).
    pub delay_loop: Duration,
    /// Flow-state sync between the nodes (`[sync]`, all-to-all over the uplink).
    pub sync: bool,
}

impl Default for DaemonSettings {
    fn default() -> Self {
        DaemonSettings {
            announce: Announce::Bgp,
            hold_down: Duration::from_secs(1),
            drain_timeout: Duration::from_secs(30),
            drain_idle: Duration::from_secs(3),
            delay_loop: Duration::from_millis(500),
            sync: false,
        }
    }
}

/// The shared key of the tier's `[sync]` sections.
pub const SYNC_KEY: &str = "bgp-tier-sync-key-0123456789";

/// Node `i`'s uplink IPv4 address (nodes are 10.90.0.11, .12, ...).
fn node_uplink_v4(i: usize) -> String {
    format!("10.90.0.{}", 11 + i)
}

/// `[sync]` for node `i` of `n`: every other node a unicast peer (all-to-all, no VRRP
/// instance: every node sends and receives).
pub fn sync_section(i: usize, n: usize) -> String {
    let peers: Vec<String> = (0..n)
        .filter(|&j| j != i)
        .map(|j| format!("\"{}\"", node_uplink_v4(j)))
        .collect();
    format!(
        "\n[sync]\ninterface = \"{NODE_UPLINK}\"\npeers = [{}]\nkey = \"{SYNC_KEY}\"\n",
        peers.join(", ")
    )
}

fn millis(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

/// The `lb-daemon run` configuration of LB node `name`: XDP on its uplink, the VIPs
/// announced by BGP through `bird_socket`, each service over `backends` with TCP checks.
pub fn daemon_config(
    name: &str,
    dir: &Path,
    pin_dir: &Path,
    bird_socket: &Path,
    services: &[TierService],
    backends: &[(IpAddr, IpAddr)],
    settings: &DaemonSettings,
) -> String {
    let mut c = format!(
        "[global]\nrouter_id = \"{name}\"\ncontrol_socket = \"{dir}/lb.sock\"\n\
         bpf_pin_path = \"{pin}\"\ndataplane = \"xdp\"\nmetrics_listen = \"127.0.0.1:9469\"\n",
        dir = dir.display(),
        pin = pin_dir.display(),
    );
    let per_service = match settings.announce {
        Announce::Bgp => {
            bgp_section(&mut c, bird_socket, settings);
            "announce = \"bgp\"\n".to_owned()
        }
        Announce::ByHand => format!("interfaces = [\"{NODE_UPLINK}\"]\n"),
    };
    for service in services {
        let kind = match service.mode {
            ForwardMode::Dr => "DR",
            ForwardMode::Tun => "TUN",
            ForwardMode::Nat { .. } => "NAT",
        };
        let _ = write!(
            c,
            "\n[[virtual_server]]\naddress = \"{vip}\"\nport = {VIP_PORT}\nprotocol = \"TCP\"\n\
             lb_kind = \"{kind}\"\ndelay_loop = \"{delay}\"\n{per_service}",
            vip = service.vip,
            delay = millis(settings.delay_loop),
        );
        for &(v4, v6) in backends {
            let addr = if service.vip.is_ipv4() { v4 } else { v6 };
            let _ = write!(
                c,
                "\n[[virtual_server.real_server]]\naddress = \"{addr}\"\nport = {VIP_PORT}\n\
                 tcp_check = {{ connect_timeout = \"500ms\", retry = 0, warmup = \"0s\" }}\n"
            );
        }
    }
    c
}

/// The `[bgp]` section: the tier's VIP interface, the node's BIRD, XDP on the uplink.
fn bgp_section(c: &mut String, bird_socket: &Path, settings: &DaemonSettings) {
    let _ = write!(
        c,
        "\n[bgp]\ninterface = \"{VIP_INTERFACE}\"\nbird_socket = \"{socket}\"\n\
         hold_down = \"{hold}\"\ndrain_timeout = \"{timeout}\"\ndrain_idle = \"{idle}\"\n\
         interfaces = [\"{NODE_UPLINK}\"]\n",
        socket = bird_socket.display(),
        hold = millis(settings.hold_down),
        timeout = millis(settings.drain_timeout),
        idle = millis(settings.drain_idle),
    );
}

/// A long-lived connection of the client, with the node and backend it started on.
pub struct Tracked {
    pub conn: LabConn,
    pub port: u16,
    pub node: usize,
    pub backend: String,
}

/// What asking once more on every tracked connection found.
#[derive(Debug, Default)]
pub struct Survival {
    pub total: usize,
    /// Answered by the backend it started on.
    pub kept: usize,
    /// "port 40123 (via lb2, backend1): ..." for every connection that failed or moved.
    pub lost: Vec<String>,
}

impl Survival {
    pub fn all_kept(&self) -> bool {
        self.kept == self.total
    }
}

/// Asks once on every connection; the ones that fail or reach another backend are lost.
pub fn check_tracked(conns: &mut [Tracked], names: &[String]) -> Survival {
    let mut s = Survival {
        total: conns.len(),
        ..Survival::default()
    };
    for t in conns.iter_mut() {
        let what = format!(
            "port {} (via {}, {})",
            t.port,
            names.get(t.node).map_or("?", String::as_str),
            t.backend
        );
        match t.conn.ask() {
            Ok(r) if r.backend == t.backend => s.kept += 1,
            Ok(r) => s
                .lost
                .push(format!("{what}: now answered by {}", r.backend)),
            Err(e) => s.lost.push(format!("{what}: {e:#}")),
        }
    }
    s
}

pub struct Tier {
    pub router: Netns,
    pub router_bird: Bird,
    pub nodes: Vec<LbNode>,
    pub client: Netns,
    pub backends: Vec<Backend>,
    pub uplink: Switch,
    pub backend_net: Switch,
    /// `lb_pass` on the nodes' switch ports once daemons run (native XDP redirect into a
    /// veth needs an XDP program on its peer).
    passes: Vec<HelperProgram>,
    dir: PathBuf,
}

impl Tier {
    /// Builds the topology with `nodes` LB nodes and `backends` backends, starts every
    /// BIRD and waits until all BGP sessions are established.
    pub fn new(nodes: usize, backends: usize) -> Result<Tier> {
        let dir = std::env::temp_dir().join(unique_name("lb-bgp"));
        std::fs::create_dir_all(&dir)?;
        let result = Self::build(&dir, nodes, backends);
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        result
    }

    fn build(dir: &Path, n_nodes: usize, n_backends: usize) -> Result<Tier> {
        let uplink = Switch::new("bgp-up")?;
        let backend_net = Switch::new("bgp-be")?;
        let router = Netns::new("bgp-r")?;
        router.sh(
            "sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 \
             net.ipv4.fib_multipath_hash_policy=1 net.ipv6.fib_multipath_hash_policy=1",
        )?;
        uplink.plug(&router, ROUTER_UPLINK)?;
        addresses(&router, ROUTER_UPLINK, "10.90.0.1/24", "fd00:90::1/64")?;
        backend_net.plug(&router, "be0")?;
        addresses(&router, "be0", "10.92.0.1/24", "fd00:92::1/64")?;

        let client = Netns::new("bgp-c")?;
        crate::netns::veth(&router, "cl0", &client, "eth0")?;
        addresses(&router, "cl0", "10.91.0.1/24", "fd00:91::1/64")?;
        addresses(&client, "eth0", "10.91.0.2/24", "fd00:91::2/64")?;
        default_routes(&client, "10.91.0.1", "fd00:91::1")?;
        // The client computes its own checksums and sends segments that still fit once
        // a TUN node adds its tunnel header.
        client
            .sh("ethtool -K eth0 tx off tso off gso off >/dev/null && ip link set eth0 mtu 1400")?;
        // DR replies come from the VIP through be0 while the VIP's route points up0.
        router.sh("sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0")?;

        let mut router_peers = Vec::new();
        let mut pending = Vec::new();
        for i in 0..n_nodes {
            let host = 11 + i;
            let ns = Netns::new("bgp-n")?;
            // Only the link-local address set below: the router's IPv6 next hop is known.
            ns.sh("sysctl -qw net.ipv6.conf.default.addr_gen_mode=1")?;
            let port = uplink.plug(&ns, NODE_UPLINK)?;
            // A cut port loses its learnt MAC and the bridge would flood the node's frames
            // to the other nodes, whose XDP forwards them: a cut must blackhole them, as
            // on a router's point-to-point link.
            uplink.ns().ip(&[
                "link",
                "set",
                "dev",
                &port,
                "type",
                "bridge_slave",
                "flood",
                "off",
            ])?;
            let (v4, v6) = (node_uplink_v4(i), format!("fd00:90::{host}"));
            addresses(&ns, NODE_UPLINK, &format!("{v4}/24"), &format!("{v6}/64"))?;
            let link_local = format!("fe80::{host}");
            ns.ip(&[
                "addr",
                "add",
                &format!("{link_local}/64"),
                "dev",
                NODE_UPLINK,
                "nodad",
            ])?;
            let backend_port = backend_net.plug(&ns, "be0")?;
            addresses(
                &ns,
                "be0",
                &format!("10.92.0.{host}/24"),
                &format!("fd00:92::{host}/64"),
            )?;
            // This kernel may lack the dummy driver; ifb serves the same purpose here.
            if ns
                .ip(&["link", "add", VIP_INTERFACE, "type", "dummy"])
                .is_err()
            {
                ns.ip(&["link", "add", VIP_INTERFACE, "type", "ifb"])?;
            }
            ns.ip(&["link", "set", VIP_INTERFACE, "up"])?;
            let name = format!("lb{}", i + 1);
            for (suffix, local, neighbor) in [
                ("v4", "10.90.0.1", v4.as_str()),
                ("v6", "fd00:90::1", v6.as_str()),
            ] {
                router_peers.push(Peer {
                    name: format!("{name}_{suffix}"),
                    local: local.parse()?,
                    neighbor: neighbor.parse()?,
                    neighbor_as: NODE_AS,
                });
            }
            let routers = [
                Peer {
                    name: "router_v4".into(),
                    local: v4.parse()?,
                    neighbor: "10.90.0.1".parse()?,
                    neighbor_as: ROUTER_AS,
                },
                Peer {
                    name: "router_v6".into(),
                    local: v6.parse()?,
                    neighbor: "fd00:90::1".parse()?,
                    neighbor_as: ROUTER_AS,
                },
            ];
            let config = node_config(
                &v4,
                NODE_AS,
                VIP_INTERFACE,
                &routers,
                VIP_RANGE_V4,
                VIP_RANGE_V6,
            );
            pending.push((name, ns, v4, v6, link_local, port, backend_port, config));
        }

        let config = router_config(
            "10.90.0.1",
            ROUTER_AS,
            &router_peers,
            VIP_RANGE_V4,
            VIP_RANGE_V6,
        );
        let router_bird = Bird::start(&router, dir, "router", &config)?;
        let bpf = bpffs_for_daemons(dir)?;
        let mut nodes = Vec::new();
        for (name, ns, v4, v6, link_local, port, backend_port, config) in pending {
            let bird = Bird::start(&ns, dir, &name, &config)?;
            let node_dir = dir.join(&name);
            std::fs::create_dir_all(&node_dir)?;
            nodes.push(LbNode {
                pin_dir: bpf.join(&name),
                dir: node_dir,
                daemon: None,
                name,
                ns,
                v4,
                v6,
                link_local,
                port,
                backend_port,
                bird,
            });
        }

        let mut backends = Vec::new();
        for j in 0..n_backends {
            let host = 21 + j;
            let ns = Netns::new("bgp-b")?;
            backend_net.plug(&ns, "eth0")?;
            let (v4, v6) = (format!("10.92.0.{host}"), format!("fd00:92::{host}"));
            addresses(&ns, "eth0", &format!("{v4}/24"), &format!("{v6}/64"))?;
            default_routes(&ns, "10.92.0.1", "fd00:92::1")?;
            // DR: the VIPs on lo must not be answered for on the segment.
            ns.sh("sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2")?;
            backends.push(Backend {
                ns,
                v4,
                v6,
                index: j,
                server: None,
                _decap: None,
            });
        }

        let tier = Tier {
            router,
            router_bird,
            nodes,
            client,
            backends,
            uplink,
            backend_net,
            passes: Vec::new(),
            dir: dir.to_owned(),
        };
        tier.wait_sessions_up(Duration::from_secs(20))?;
        Ok(tier)
    }

    /// Cuts node `i`'s link: its switch port goes down, the router's own link stays up, so
    /// only BFD can tell.
    pub fn cut(&self, i: usize) -> Result<()> {
        self.uplink
            .ns()
            .ip(&["link", "set", &self.nodes[i].port, "down"])?;
        Ok(())
    }

    pub fn restore(&self, i: usize) -> Result<()> {
        self.uplink
            .ns()
            .ip(&["link", "set", &self.nodes[i].port, "up"])?;
        Ok(())
    }

    /// The nodes the router's route to `vip` goes through (sorted indexes), from
    /// `ip -j route show VIP`.
    pub fn nexthops(&self, vip: &str) -> Result<Vec<usize>> {
        let family = if vip.contains(':') { "-6" } else { "-4" };
        let out = self.router.ip(&[family, "-j", "route", "show", vip])?;
        let routes: serde_json::Value =
            serde_json::from_str(&out).with_context(|| format!("ip -j route: {out}"))?;
        let mut gateways = Vec::new();
        for route in routes.as_array().into_iter().flatten() {
            match route.get("nexthops").and_then(|n| n.as_array()) {
                Some(hops) => gateways.extend(hops.iter().filter_map(|h| h.get("gateway"))),
                None => gateways.extend(route.get("gateway")),
            }
        }
        let mut nodes = Vec::new();
        for gw in gateways {
            let gw = gw.as_str().unwrap_or_default();
            let Some(i) = self
                .nodes
                .iter()
                .position(|n| gw == n.v4 || gw == n.v6 || gw == n.link_local)
            else {
                bail!("route to {vip} via {gw}, which is no LB node: {out}");
            };
            nodes.push(i);
        }
        nodes.sort_unstable();
        Ok(nodes)
    }

    /// Waits until the route to `vip` goes through exactly `want`; returns how long it took.
    pub fn wait_nexthops(&self, vip: &str, want: &[usize], timeout: Duration) -> Result<Duration> {
        let start = Instant::now();
        loop {
            let got = self.nexthops(vip)?;
            if got == want {
                return Ok(start.elapsed());
            }
            if start.elapsed() > timeout {
                bail!(
                    "after {timeout:?} the route to {vip} goes through nodes {got:?}, not \
                     {want:?}\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits until every node's sessions (as its BIRD reports them) are established.
    pub fn wait_sessions_up(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let mut down = Vec::new();
            for node in &self.nodes {
                for s in node.bird.sessions()? {
                    if s.state != SessionState::Up {
                        down.push(format!("{}/{}: {}", node.name, s.name, s.info));
                    }
                }
            }
            if down.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "BGP sessions still down after {timeout:?}: {down:?}\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Makes the backends serve: each holds every VIP on `lo` and runs the lab's TCP
    /// service; with `tun`, `lb_decap` strips the nodes' tunnel headers.
    pub fn serve(&mut self, vips: &[&str], tun: bool) -> Result<()> {
        for b in &mut self.backends {
            for vip in vips {
                b.hold_vip(vip)?;
            }
            if tun && b._decap.is_none() {
                let decap = b.ns.run(|| HelperProgram::decap("eth0"));
                b._decap = Some(decap.with_context(|| format!("lb_decap on {}", b.name()))?);
            }
            b.start_server()?;
        }
        Ok(())
    }

    /// Runs `lb-daemon run` (binary `exe`) on every node with [`daemon_config`] over all
    /// backends; returns at once (wait with [`Tier::wait_nexthops`]).
    pub fn start_daemons(
        &mut self,
        exe: &Path,
        services: &[TierService],
        settings: &DaemonSettings,
    ) -> Result<()> {
        if self.passes.is_empty() {
            for node in &self.nodes {
                for (switch, port) in [
                    (&self.uplink, &node.port),
                    (&self.backend_net, &node.backend_port),
                ] {
                    let port = port.clone();
                    let pass = switch.ns().run(move || HelperProgram::pass(&port));
                    self.passes
                        .push(pass.context("lb_pass on a node's switch port")?);
                }
            }
        }
        let backends = self
            .backends
            .iter()
            .map(|b| Ok((b.v4.parse::<IpAddr>()?, b.v6.parse::<IpAddr>()?)))
            .collect::<Result<Vec<_>>>()?;
        // The daemon leaves out a backend whose next hop does not resolve within its
        // lookup timeout until the backend set next changes, and nodes with different
        // backend sets send moved flows elsewhere: start with the neighbours known.
        let targets: Vec<String> = backends
            .iter()
            .flat_map(|(v4, v6)| [v4.to_string(), v6.to_string()])
            .collect();
        for node in &self.nodes {
            for t in &targets {
                node.ns.sh(&format!("ping -c1 -W2 {t} >/dev/null"))?;
            }
        }
        for i in 0..self.nodes.len() {
            let node = &self.nodes[i];
            let mut config = daemon_config(
                &node.name,
                &node.dir,
                &node.pin_dir,
                &node.bird.socket,
                services,
                &backends,
                settings,
            );
            if settings.sync {
                config.push_str(&sync_section(i, self.nodes.len()));
            }
            self.start_daemon(i, exe, &config)?;
        }
        if settings.announce == Announce::ByHand {
            for node in &self.nodes {
                for service in services {
                    node.add_vip(&service.vip.to_string())?;
                }
            }
        }
        Ok(())
    }

    /// Waits until `vip` is routed through every node and the client's connections are
    /// answered by every serving backend (the data planes programmed, the checks passed).
    pub fn wait_serving(&self, vip: &str, timeout: Duration) -> Result<()> {
        let all: Vec<usize> = (0..self.nodes.len()).collect();
        let start = Instant::now();
        self.wait_nexthops(vip, &all, timeout)?;
        let mut last = anyhow!("not tried");
        let serving = self.backends.iter().filter(|b| b.server.is_some()).count();
        while start.elapsed() < timeout {
            match self.requests(vip, 60) {
                Ok(replies) => {
                    let mut seen: Vec<&str> = replies.iter().map(|r| r.backend.as_str()).collect();
                    seen.sort_unstable();
                    seen.dedup();
                    if seen.len() == serving {
                        return Ok(());
                    }
                    last = anyhow!("only {seen:?} answer");
                }
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(last.context(format!(
            "{vip} not served within {timeout:?}\n{}",
            self.logs()
        )))
    }

    /// Starts (or restarts) node `i`'s daemon on `config`.
    pub fn start_daemon(&mut self, i: usize, exe: &Path, config: &str) -> Result<()> {
        let node = &mut self.nodes[i];
        node.daemon.take();
        let conf = node.dir.join("lb.toml");
        std::fs::write(&conf, config)?;
        let log = std::fs::File::create(node.dir.join("log"))?;
        let exe = exe.to_str().context("non-UTF-8 daemon path")?;
        let child = node.ns.spawn_with(
            &[exe, "run", "--config", path_str(&conf)?],
            Stdio::from(log.try_clone()?),
            Stdio::from(log),
        )?;
        node.daemon = Some(child);
        Ok(())
    }

    /// The client's addressing towards `vip` (for the lab's request helpers).
    pub fn addressing(&self, vip: &str) -> Result<Addressing> {
        let vip: IpAddr = vip.parse().with_context(|| format!("VIP {vip:?}"))?;
        let client = if vip.is_ipv4() { CLIENT_V4 } else { CLIENT_V6 };
        let client = client.parse()?;
        Ok(Addressing {
            client,
            lb: client,
            vip,
        })
    }

    /// `n` short connections from the client to `vip`; the replies.
    pub fn requests(&self, vip: &str, n: usize) -> Result<Vec<Reply>> {
        requests_to(&self.client, self.addressing(vip)?, n)
    }

    /// `n` long-lived connections to `vip`, opened one by one, each asked once (its
    /// backend recorded) and placed on the node whose data plane counted its new flow.
    /// (The router's choice cannot be asked of `ip route get`: a forwarded packet keeps
    /// the hash the client's socket gave it, and the router's L4 multipath uses that.)
    pub fn open_tracked(&self, vip: &str, n: usize) -> Result<Vec<Tracked>> {
        let a = self.addressing(vip)?;
        (0..n)
            .map(|_| {
                let before = self.flows_per_node()?;
                let mut conn = open_to(&self.client, a)?;
                let backend = conn.ask()?.backend;
                let after = self.flows_per_node()?;
                let node = after
                    .iter()
                    .zip(&before)
                    .position(|(a, b)| a > b)
                    .ok_or_else(|| anyhow!("no node counted the new flow to {vip}"))?;
                Ok(Tracked {
                    port: conn.local_port()?,
                    conn,
                    node,
                    backend,
                })
            })
            .collect()
    }

    pub fn node_names(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.name.clone()).collect()
    }

    /// Node `i`'s data-plane counters (summed over CPUs), by name.
    pub fn counters(&self, i: usize) -> Result<BTreeMap<&'static str, u64>> {
        Ok(crate::cli::counters::read(&self.nodes[i].pin_dir)?
            .into_iter()
            .collect())
    }

    /// New flows each node's data plane has seen so far (connection-table misses).
    pub fn flows_per_node(&self) -> Result<Vec<u64>> {
        (0..self.nodes.len())
            .map(|i| {
                Ok(self
                    .counters(i)?
                    .get("conntrack_miss")
                    .copied()
                    .unwrap_or(0))
            })
            .collect()
    }

    /// Node `i`'s control socket.
    pub fn socket(&self, i: usize) -> PathBuf {
        self.nodes[i].dir.join("lb.sock")
    }

    /// Starts `lb-daemon drain` (or `undrain`) against node `i`; the command may wait for
    /// the drain to complete, so the caller decides whether to wait for it.
    pub fn drain_command(&self, exe: &Path, i: usize, verb: &str) -> Result<std::process::Child> {
        std::process::Command::new(exe)
            .arg(verb)
            .arg("--socket")
            .arg(self.socket(i))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {} {verb}", exe.display()))
    }

    /// Node `i`'s `/metrics` page.
    pub fn metrics(&self, i: usize) -> Result<String> {
        self.nodes[i].ns.run(|| -> Result<String> {
            use std::io::{Read, Write};
            let mut s = std::net::TcpStream::connect("127.0.0.1:9469")?;
            s.set_read_timeout(Some(Duration::from_secs(2)))?;
            s.write_all(b"GET /metrics HTTP/1.0\r\nHost: lb\r\n\r\n")?;
            let mut out = String::new();
            s.read_to_string(&mut out)?;
            Ok(out)
        })
    }

    /// Every daemon's and BIRD's log and the router's routes, for failure messages.
    pub fn logs(&self) -> String {
        let mut s = format!("--- router BIRD:\n{}", self.router_bird.log());
        for n in &self.nodes {
            let _ = write!(s, "--- {} BIRD:\n{}", n.name, n.bird.log());
            if n.daemon.is_some() {
                let log = std::fs::read_to_string(n.dir.join("log")).unwrap_or_default();
                let _ = write!(s, "--- {} lb-daemon:\n{log}", n.name);
                let counters = crate::cli::counters::read(&n.pin_dir).unwrap_or_default();
                let nonzero: Vec<String> = counters
                    .iter()
                    .filter(|(_, v)| *v > 0)
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                let _ = writeln!(s, "--- {} counters: {}", n.name, nonzero.join(" "));
            }
        }
        for family in ["-4", "-6"] {
            let routes = self.router.ip(&[family, "route"]).unwrap_or_default();
            let _ = write!(s, "--- router routes {family}:\n{routes}");
        }
        s
    }
}

impl Drop for Tier {
    fn drop(&mut self) {
        // The daemons first (their maps stay pinned), then the nodes' BIRDs and namespaces;
        // the router's go with the fields. The pins and files are ours to remove.
        for node in &mut self.nodes {
            node.daemon.take();
        }
        let pins: Vec<PathBuf> = self.nodes.iter().map(|n| n.pin_dir.clone()).collect();
        self.nodes.clear();
        self.backends.clear();
        self.passes.clear();
        for pin in pins {
            bpffs::remove_pins(&pin);
        }
        let _ = nix::mount::umount2(&self.dir.join("bpf"), nix::mount::MntFlags::MNT_DETACH);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A bpffs of the tier's own for the daemons' pins: `ip netns exec` mounts a fresh /sys,
/// which hides /sys/fs/bpf, while a mount made here is seen by the daemons and by us.
fn bpffs_for_daemons(dir: &Path) -> Result<PathBuf> {
    let bpf = dir.join("bpf");
    std::fs::create_dir_all(&bpf)?;
    nix::mount::mount(
        Some("bpf"),
        &bpf,
        Some("bpf"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .with_context(|| format!("mounting a bpffs on {}", bpf.display()))?;
    Ok(bpf)
}

fn addresses(ns: &Netns, dev: &str, v4: &str, v6: &str) -> Result<()> {
    ns.ip(&["addr", "add", v4, "dev", dev])?;
    ns.ip(&["addr", "add", v6, "dev", dev, "nodad"])?;
    Ok(())
}

fn default_routes(ns: &Netns, v4: &str, v6: &str) -> Result<()> {
    ns.ip(&["route", "add", "default", "via", v4])?;
    ns.ip(&["-6", "route", "add", "default", "via", v6])?;
    Ok(())
}

/// The example in docs/bgp.md: an LB node (10.90.0.11) with one router (10.90.0.1), and
/// that router with two LB nodes. A test keeps the document equal to these.
pub fn documented_configs() -> (String, String) {
    let peer = |name: &str, local: &str, neighbor: &str, asn| Peer {
        name: name.into(),
        local: local.parse().expect("an address"),
        neighbor: neighbor.parse().expect("an address"),
        neighbor_as: asn,
    };
    let node = node_config(
        "10.90.0.11",
        NODE_AS,
        VIP_INTERFACE,
        &[
            peer("router_v4", "10.90.0.11", "10.90.0.1", ROUTER_AS),
            peer("router_v6", "fd00:90::11", "fd00:90::1", ROUTER_AS),
        ],
        VIP_RANGE_V4,
        VIP_RANGE_V6,
    );
    let router = router_config(
        "10.90.0.1",
        ROUTER_AS,
        &[
            peer("lb1_v4", "10.90.0.1", "10.90.0.11", NODE_AS),
            peer("lb1_v6", "fd00:90::1", "fd00:90::11", NODE_AS),
            peer("lb2_v4", "10.90.0.1", "10.90.0.12", NODE_AS),
            peer("lb2_v6", "fd00:90::1", "fd00:90::12", NODE_AS),
        ],
        VIP_RANGE_V4,
        VIP_RANGE_V6,
    );
    (node, router)
}
