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
//! Everything is torn down on drop, even on panic: BIRD processes, namespaces, files.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use lb_daemon::bgp::bird::{BgpSession, BirdClient, SessionState};
use lb_daemon::netns::{unique_name, Netns, NsChild, Switch};

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
    pub bird: Bird,
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
}

impl Backend {
    pub fn hold_vip(&self, vip: &str) -> Result<()> {
        let len = if vip.contains(':') { 128 } else { 32 };
        self.ns
            .ip(&["addr", "add", &format!("{vip}/{len}"), "dev", "lo"])?;
        Ok(())
    }
}

pub struct Tier {
    pub router: Netns,
    pub router_bird: Bird,
    pub nodes: Vec<LbNode>,
    pub client: Netns,
    pub backends: Vec<Backend>,
    pub uplink: Switch,
    pub backend_net: Switch,
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
        lb_daemon::netns::veth(&router, "cl0", &client, "eth0")?;
        addresses(&router, "cl0", "10.91.0.1/24", "fd00:91::1/64")?;
        addresses(&client, "eth0", "10.91.0.2/24", "fd00:91::2/64")?;
        default_routes(&client, "10.91.0.1", "fd00:91::1")?;

        let mut router_peers = Vec::new();
        let mut pending = Vec::new();
        for i in 0..n_nodes {
            let host = 11 + i;
            let ns = Netns::new("bgp-n")?;
            // Only the link-local address set below: the router's IPv6 next hop is known.
            ns.sh("sysctl -qw net.ipv6.conf.default.addr_gen_mode=1")?;
            let port = uplink.plug(&ns, NODE_UPLINK)?;
            let (v4, v6) = (format!("10.90.0.{host}"), format!("fd00:90::{host}"));
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
            backend_net.plug(&ns, "be0")?;
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
            pending.push((name, ns, v4, v6, link_local, port, config));
        }

        let config = router_config(
            "10.90.0.1",
            ROUTER_AS,
            &router_peers,
            VIP_RANGE_V4,
            VIP_RANGE_V6,
        );
        let router_bird = Bird::start(&router, dir, "router", &config)?;
        let mut nodes = Vec::new();
        for (name, ns, v4, v6, link_local, port, config) in pending {
            let bird = Bird::start(&ns, dir, &name, &config)?;
            nodes.push(LbNode {
                name,
                ns,
                v4,
                v6,
                link_local,
                port,
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
            backends.push(Backend { ns, v4, v6 });
        }

        let tier = Tier {
            router,
            router_bird,
            nodes,
            client,
            backends,
            uplink,
            backend_net,
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

    /// Every BIRD's log and the router's routes, for failure messages.
    pub fn logs(&self) -> String {
        let mut s = format!("--- router BIRD:\n{}", self.router_bird.log());
        for n in &self.nodes {
            let _ = write!(s, "--- {} BIRD:\n{}", n.name, n.bird.log());
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
        // The nodes' BIRDs and namespaces go first, the router's with the fields; the
        // files are ours to remove.
        self.nodes.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
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
