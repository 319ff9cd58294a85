//! A self-contained load-balancer lab in network namespaces: a client, the LB node (XDP on
//! its veth), and backends running a small TCP service, all on one L2 segment.
//! `lb-daemon lab` demonstrates the data plane with it; the end-to-end tests drive it.
//!
//! DR backends hold the VIP on `lo` with `arp_ignore=1`/`arp_announce=2` (the classic
//! LVS-DR set-up); TUN backends run `lb_decap` on their interface (this kernel has no
//! ipip device) and hold the VIP on `lo` too. Backends answer each line a client sends
//! with `<backend name> <client address as seen>`.

use std::{
    io::{BufRead, BufReader, Write},
    net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    os::fd::{AsRawFd, FromRawFd, IntoRawFd},
    path::PathBuf,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread::JoinHandle,
    time::Duration,
};

use anyhow::{anyhow, bail, Context, Result};

pub mod bgp_tier;

use crate::{
    dataplane::{
        self, bpffs, Capacity, Dataplane, ForwardMode, HashMode, HelperProgram, LoadOptions,
        Protocol, ServiceId, ServiceSpec,
    },
    net::neigh::Neighbours,
    netns::{Netns, Switch},
};

pub const CLIENT_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
pub const LB_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
pub const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
pub const VIP_PORT: u16 = 80;
/// The port NAT reals listen on (the VIP's port 80 is translated).
pub const NAT_REAL_PORT: u16 = 8080;

pub fn backend_addr(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 0, 21 + i as u8)
}

/// The lab's addresses, IPv4 (198.18.0.0/24) or IPv6 (2001:db8:1::/64).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addressing {
    pub client: IpAddr,
    pub lb: IpAddr,
    pub vip: IpAddr,
}

impl Addressing {
    pub fn v4() -> Self {
        Self {
            client: IpAddr::V4(CLIENT_ADDR),
            lb: IpAddr::V4(LB_ADDR),
            vip: IpAddr::V4(VIP),
        }
    }

    pub fn v6() -> Self {
        let a = |last: u16| IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, last));
        Self {
            client: a(0x10),
            lb: a(0x2),
            vip: a(0x100),
        }
    }

    fn v6_family(&self) -> bool {
        self.vip.is_ipv6()
    }

    /// The LB's address on the reals' network (NAT): their gateway, or the SNAT source.
    pub fn lb_internal(&self) -> IpAddr {
        match self.vip {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::new(10, 0, 1, 1)),
            IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 1)),
        }
    }

    /// Real server `i` of a NAT lab: on its own network, behind the LB.
    pub fn nat_real(&self, i: usize) -> IpAddr {
        match self.vip {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::new(10, 0, 1, 21 + i as u8)),
            IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::new(
                0x2001,
                0xdb8,
                2,
                0,
                0,
                0,
                0,
                0x21 + i as u16,
            )),
        }
    }

    pub fn backend(&self, i: usize) -> IpAddr {
        match self.vip {
            IpAddr::V4(_) => IpAddr::V4(backend_addr(i)),
            IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::new(
                0x2001,
                0xdb8,
                1,
                0,
                0,
                0,
                0,
                0x21 + i as u16,
            )),
        }
    }

    fn prefix(&self) -> u8 {
        if self.v6_family() {
            64
        } else {
            24
        }
    }

    fn host_len(&self) -> u8 {
        if self.v6_family() {
            128
        } else {
            32
        }
    }

    /// `ip addr add` arguments for `addr/len` on `dev` (IPv6 without DAD, usable at once).
    fn add_args(&self, addr: IpAddr, len: u8, dev: &str) -> Vec<String> {
        let mut v = vec![
            "addr".into(),
            "add".into(),
            format!("{addr}/{len}"),
            "dev".into(),
            dev.into(),
        ];
        if self.v6_family() {
            v.push("nodad".into());
        }
        v
    }
}

pub fn backend_name(i: usize) -> String {
    format!("backend{}", i + 1)
}

/// "backend1 98, backend2 103, ..." for a set of replies.
pub fn spread_summary(replies: &[Reply]) -> String {
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for r in replies {
        *counts.entry(r.backend.as_str()).or_default() += 1;
    }
    counts
        .iter()
        .map(|(b, n)| format!("{b} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `lb-daemon run` configuration of an LB node of the two-node lab: instance VI_1
/// (VRID 51, the VIP) and the VIP's virtual server over `backends` lab backends.
pub fn daemon_config(
    name: &str,
    priority: u8,
    dir: &std::path::Path,
    pin_path: &std::path::Path,
    mode: ForwardMode,
    backends: usize,
) -> String {
    let kind = match mode {
        ForwardMode::Dr => "DR",
        ForwardMode::Tun => "TUN",
        ForwardMode::Nat { .. } => "NAT",
    };
    let mut s = format!(
        "[global]\nrouter_id = \"{name}\"\ncontrol_socket = \"{dir}/lb.sock\"\nbpf_pin_path = \"{pin}\"\ndataplane = \"xdp\"\nmetrics_listen = \"127.0.0.1:9469\"\n\n\
         [[vrrp_instance]]\nname = \"VI_1\"\ninterface = \"eth0\"\nstate = \"BACKUP\"\nvirtual_router_id = 51\npriority = {priority}\nadvert_int = 1\nvirtual_ipaddress = [\"{VIP}/32\"]\n\n\
         [[virtual_server]]\naddress = \"{VIP}\"\nport = {VIP_PORT}\nprotocol = \"TCP\"\nlb_kind = \"{kind}\"\ndelay_loop = \"500ms\"\n",
        dir = dir.display(),
        pin = pin_path.display()
    );
    for i in 0..backends {
        s.push_str(&format!(
            "\n[[virtual_server.real_server]]\naddress = \"{}\"\nport = {VIP_PORT}\ntcp_check = {{ connect_timeout = \"500ms\", retry = 0, warmup = \"0s\" }}\n",
            backend_addr(i)
        ));
    }
    s
}

/// Where a NAT lab's reals sit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topology {
    /// One segment: the reals' network shares the client's link (LB on `eth0` only).
    OneArm,
    /// keepalived's classic NAT set-up: the reals on their own segment behind the LB's
    /// second interface `eth1`.
    TwoArm,
}

#[derive(Debug, Clone)]
pub struct LabOptions {
    pub mode: ForwardMode,
    pub backends: usize,
    /// bpffs directory for the LB's maps (removed when the lab stops).
    pub pin_dir: PathBuf,
    pub addrs: Addressing,
    /// NAT labs only.
    pub topology: Topology,
}

impl LabOptions {
    pub fn new(mode: ForwardMode, backends: usize) -> Self {
        Self {
            mode,
            backends,
            pin_dir: PathBuf::from(format!(
                "/sys/fs/bpf/lb-lab-{}",
                crate::netns::unique_name("dp")
            )),
            addrs: Addressing::v4(),
            topology: Topology::OneArm,
        }
    }

    /// A NAT lab: reals on `10.0.1.0/24` (`2001:db8:2::/64`) listening on
    /// [`NAT_REAL_PORT`], their default route via the LB, TCP and UDP services.
    /// `full_nat`: the LB's internal address is the `snat_address` and the reals need
    /// no route back through it.
    pub fn nat(backends: usize, topology: Topology, full_nat: bool) -> Self {
        // The SNAT address is filled in with the lab's addressing when it starts.
        let snat = full_nat.then_some(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        Self {
            topology,
            ..Self::new(ForwardMode::Nat { snat }, backends)
        }
    }

    /// The same lab over IPv6.
    pub fn ipv6(mut self) -> Self {
        self.addrs = Addressing::v6();
        self
    }
}

/// One reply: which backend answered, and what client address it saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub backend: String,
    pub client_seen: IpAddr,
}

impl Reply {
    fn parse(line: &str) -> Result<Reply> {
        let mut parts = line.split_whitespace();
        let backend = parts
            .next()
            .ok_or_else(|| anyhow!("empty reply"))?
            .to_string();
        let client_seen = parts
            .next()
            .ok_or_else(|| anyhow!("reply {line:?} lacks the client address"))?
            .parse()?;
        Ok(Reply {
            backend,
            client_seen,
        })
    }
}

/// A backend host: namespace, VIP on `lo`, a TCP service answering with its name.
pub struct BackendHost {
    /// Keeps the backend's namespace (and host) alive.
    _ns: Netns,
    addr: IpAddr,
    /// The port its services listen on.
    port: u16,
    stop: Arc<AtomicBool>,
    server: Option<JoinHandle<()>>,
    /// NAT reals also answer UDP datagrams the same way.
    udp: Option<JoinHandle<()>>,
    _decap: Option<HelperProgram>,
    /// Its port on the switch (the bridge side of its `eth0`).
    switch_port: String,
}

impl BackendHost {
    /// Stops the service (the host stays up: connections are refused).
    pub fn stop_server(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.server.take() {
            let _ = h.join();
        }
        if let Some(h) = self.udp.take() {
            let _ = h.join();
        }
    }

    /// Starts the service again after [`stop_server`](Self::stop_server).
    pub fn start_server(&mut self, i: usize) -> Result<()> {
        self.stop_server();
        let (stop, server) = start_server(&self._ns, i, unspecified_like(self.addr), self.port)?;
        self.stop = stop;
        self.server = Some(server);
        Ok(())
    }

    /// The backend's namespace (its link is `eth0`).
    pub fn netns(&self) -> &Netns {
        &self._ns
    }

    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// Its port on the switch it was started on (in the switch's namespace): setting it
    /// down cuts the backend's link while the backend keeps its addresses and routes.
    pub fn switch_port(&self) -> &str {
        &self.switch_port
    }
}

/// The wildcard address of `addr`'s family (a server of that family only).
fn unspecified_like(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
    }
}

/// The backend's TCP service on `port` (of the family of `any`; `::` also takes IPv4 where
/// `bindv6only` is off), on its own thread.
pub(crate) fn start_server(
    ns: &Netns,
    i: usize,
    any: IpAddr,
    port: u16,
) -> Result<(Arc<AtomicBool>, JoinHandle<()>)> {
    let listener = ns.run(move || TcpListener::bind((any, port)))?;
    listener.set_nonblocking(true)?;
    let stop = Arc::new(AtomicBool::new(false));
    let name = backend_name(i);
    let flag = Arc::clone(&stop);
    let server = std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || serve(listener, name, flag))?;
    Ok((stop, server))
}

pub struct Lab {
    pub opts: LabOptions,
    dp: Option<Dataplane>,
    spec: ServiceSpec,
    /// NAT labs also serve UDP on the VIP's port.
    udp_spec: Option<ServiceSpec>,
    backends: Vec<BackendHost>,
    client: Netns,
    lb: Netns,
    /// `lb_pass` on the LB's switch ports (native XDP_TX/redirect into a veth needs an
    /// XDP program on its peer).
    _peer_passes: Vec<HelperProgram>,
    switch: Switch,
    /// The reals' segment of a two-arm NAT lab.
    _internal: Option<Switch>,
}

impl Lab {
    pub fn start(mut opts: LabOptions) -> Result<Lab> {
        let addrs = opts.addrs;
        let nat = opts.mode.is_nat();
        let full_nat = matches!(opts.mode, ForwardMode::Nat { snat: Some(_) });
        if full_nat {
            opts.mode = ForwardMode::Nat {
                snat: Some(addrs.lb_internal()),
            };
        }
        let switch = Switch::new("lab-sw")?;
        let client = Netns::new("lab-cl")?;
        let lb = Netns::new("lab-lb")?;
        plug(&switch, &client, &addrs, addrs.client)?;
        // The client computes its own checksums and sends MTU-sized segments, so frames
        // stay whole through XDP, and tunnel headers fit the 1500-byte segment.
        client
            .sh("ethtool -K eth0 tx off tso off gso off >/dev/null && ip link set eth0 mtu 1400")?;
        let lb_port = plug(&switch, &lb, &addrs, addrs.lb)?;
        let vip_args = addrs.add_args(addrs.vip, addrs.host_len(), "eth0");
        lb.ip(&vip_args.iter().map(String::as_str).collect::<Vec<_>>())?;
        let mut peer_passes = vec![pass_on(&switch, lb_port)?];

        let two_arm = nat && opts.topology == Topology::TwoArm;
        let internal = if two_arm {
            Some(Switch::new("lab-in")?)
        } else {
            None
        };
        let mut lb_ifaces = vec!["eth0"];
        if nat {
            let dev = match &internal {
                Some(sw) => {
                    let port = sw.plug(&lb, "eth1")?;
                    peer_passes.push(pass_on(sw, port)?);
                    lb_ifaces.push("eth1");
                    "eth1"
                }
                None => "eth0",
            };
            let args = addrs.add_args(addrs.lb_internal(), addrs.prefix(), dev);
            lb.ip(&args.iter().map(String::as_str).collect::<Vec<_>>())?;
            // bpf_fib_lookup forwards only where the kernel would.
            lb.sh("sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1")?;
        }

        let mut backends = Vec::new();
        for i in 0..opts.backends {
            backends.push(if nat {
                start_nat_real(internal.as_ref().unwrap_or(&switch), i, &addrs, full_nat)?
            } else {
                start_backend_in(&switch, i, opts.mode, &addrs)?
            });
        }

        let spec_backends: Vec<IpAddr> = backends.iter().map(|b| b.addr).collect();
        let pin_dir = opts.pin_dir.clone();
        let mode = opts.mode;
        let ifaces: Vec<String> = lb_ifaces.iter().map(|s| s.to_string()).collect();
        let (dp, spec, udp_spec) = lb
            .run(
                move || -> Result<(Dataplane, ServiceSpec, Option<ServiceSpec>)> {
                    let mut dp = Dataplane::load(&LoadOptions {
                        pin_dir,
                        capacity: Capacity {
                            maglev_slots: 4 * 65537,
                            ..Capacity::default()
                        },
                    })?;
                    for ifname in &ifaces {
                        dp.attach(ifname)?;
                    }
                    let spec = resolve_spec(mode, &spec_backends, addrs.vip, Protocol::Tcp)?;
                    dp.apply_service(&spec)?;
                    let udp_spec = if mode.is_nat() {
                        let udp = resolve_spec(mode, &spec_backends, addrs.vip, Protocol::Udp)?;
                        dp.apply_service(&udp)?;
                        Some(udp)
                    } else {
                        None
                    };
                    Ok((dp, spec, udp_spec))
                },
            )
            .context("starting the LB node")?;

        let lab = Lab {
            opts,
            dp: Some(dp),
            spec,
            udp_spec,
            backends,
            client,
            lb,
            _peer_passes: peer_passes,
            switch,
            _internal: internal,
        };
        lab.wait_ready()?;
        Ok(lab)
    }

    /// Waits until the VIP answers (ARP for the VIP, servers listening).
    fn wait_ready(&self) -> Result<()> {
        let mut last = None;
        for _ in 0..50 {
            match self.request(None) {
                Ok(_) => return Ok(()),
                Err(e) => last = Some(e),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // Say what the data plane saw: it is the first thing to look at.
        let counters: Vec<String> = self
            .dp
            .as_ref()
            .and_then(|dp| dp.counters().ok())
            .unwrap_or_default()
            .into_iter()
            .filter(|(_, _, v)| *v > 0)
            .map(|(_, name, v)| format!("{name}={v}"))
            .collect();
        Err(last.unwrap_or_else(|| anyhow!("no reply")).context(format!(
            "the lab's VIP never answered (data-plane counters: {})",
            counters.join(" ")
        )))
    }

    pub fn dataplane(&mut self) -> &mut Dataplane {
        self.dp.as_mut().expect("dataplane present until drop")
    }

    pub fn service(&self) -> &ServiceSpec {
        &self.spec
    }

    pub fn service_id(&self) -> ServiceId {
        self.spec.id
    }

    /// Applies a changed service (weights, backends) to the running data plane.
    pub fn update_service(&mut self, f: impl FnOnce(&mut ServiceSpec)) -> Result<()> {
        let mut spec = self.spec.clone();
        f(&mut spec);
        self.dataplane().apply_service(&spec)?;
        self.spec = spec;
        Ok(())
    }

    pub fn set_hash(&mut self, hash: HashMode) -> Result<()> {
        self.update_service(|s| s.hash = hash)
    }

    /// Stops backend `i`'s server (its host stays up: connections are refused).
    pub fn stop_backend_server(&mut self, i: usize) {
        if let Some(b) = self.backends.get_mut(i) {
            b.stop_server();
        }
    }

    /// One short connection from the client (from `src_port` if given); the reply.
    pub fn request(&self, src_port: Option<u16>) -> Result<Reply> {
        let a = self.opts.addrs;
        self.client.run(move || -> Result<Reply> {
            let mut s = connect(a.client, a.vip, src_port)
                .with_context(|| format!("connecting to {}:{VIP_PORT}", a.vip))?;
            exchange(&mut s)
        })
    }

    /// One UDP request to the VIP's port (NAT labs); the reply. Retried a few times:
    /// the first datagram may wait for neighbour resolution.
    pub fn udp_request(&self) -> Result<Reply> {
        let a = self.opts.addrs;
        self.client.run(move || -> Result<Reply> {
            let socket = std::net::UdpSocket::bind((a.client, 0))?;
            socket.set_read_timeout(Some(Duration::from_millis(500)))?;
            let mut buf = [0u8; 256];
            let mut last = None;
            for _ in 0..6 {
                socket.send_to(b"hello\n", (a.vip, VIP_PORT))?;
                match socket.recv_from(&mut buf) {
                    Ok((n, from)) => {
                        if from != SocketAddr::new(a.vip, VIP_PORT) {
                            bail!("the UDP reply came from {from}, not from the VIP");
                        }
                        return Reply::parse(std::str::from_utf8(&buf[..n])?);
                    }
                    Err(e) => last = Some(e),
                }
            }
            Err(anyhow!("no UDP reply from {}:{VIP_PORT}: {last:?}", a.vip))
        })
    }

    /// The UDP service of a NAT lab.
    pub fn udp_service(&self) -> Option<&ServiceSpec> {
        self.udp_spec.as_ref()
    }

    /// `n` short connections; the replies.
    pub fn requests(&self, n: usize) -> Result<Vec<Reply>> {
        requests_to(&self.client, self.opts.addrs, n)
    }

    /// A long-lived connection from the client: `LabConn::ask` sends a line and reads the
    /// reply on the same TCP connection (one flow).
    pub fn open(&self) -> Result<LabConn> {
        open_to(&self.client, self.opts.addrs)
    }

    pub fn lb_ns(&self) -> &Netns {
        &self.lb
    }

    pub fn client_ns(&self) -> &Netns {
        &self.client
    }

    pub fn switch(&self) -> &Switch {
        &self.switch
    }
}

/// One short connection to the (IPv4) VIP from a namespace holding [`CLIENT_ADDR`].
pub fn request_from(client: &Netns, src_port: Option<u16>) -> Result<Reply> {
    let a = Addressing::v4();
    client.run(move || -> Result<Reply> {
        let mut s = connect(a.client, a.vip, src_port)
            .with_context(|| format!("connecting to {VIP}:{VIP_PORT}"))?;
        exchange(&mut s)
    })
}

/// `n` short connections to the (IPv4) VIP; the replies.
pub fn requests_from(client: &Netns, n: usize) -> Result<Vec<Reply>> {
    requests_to(client, Addressing::v4(), n)
}

/// `n` short connections to `a.vip` from `a.client` in `client`; the replies.
pub fn requests_to(client: &Netns, a: Addressing, n: usize) -> Result<Vec<Reply>> {
    client.run(move || -> Result<Vec<Reply>> {
        (0..n)
            .map(|_| {
                let mut s = connect(a.client, a.vip, None)?;
                exchange(&mut s)
            })
            .collect()
    })
}

/// A long-lived connection to the (IPv4) VIP.
pub fn open_from(client: &Netns) -> Result<LabConn> {
    open_to(client, Addressing::v4())
}

/// A long-lived connection to `a.vip` from `a.client` in `client`.
pub fn open_to(client: &Netns, a: Addressing) -> Result<LabConn> {
    let stream = client.run(move || connect(a.client, a.vip, None))?;
    Ok(LabConn { stream })
}

impl Drop for Lab {
    fn drop(&mut self) {
        for b in &mut self.backends {
            b.stop_server();
        }
        if let Some(dp) = self.dp.take() {
            let pin_dir = dp.pin_dir().to_path_buf();
            drop(dp);
            bpffs::remove_pins(&pin_dir);
        }
    }
}

pub struct LabConn {
    stream: TcpStream,
}

impl LabConn {
    pub fn ask(&mut self) -> Result<Reply> {
        exchange(&mut self.stream)
    }

    /// The client's port: with the addresses, what a router's L4 ECMP hash sees.
    pub fn local_port(&self) -> Result<u16> {
        Ok(self.stream.local_addr()?.port())
    }
}

fn plug(switch: &Switch, host: &Netns, addrs: &Addressing, addr: IpAddr) -> Result<String> {
    let port = switch.plug(host, "eth0")?;
    let args = addrs.add_args(addr, addrs.prefix(), "eth0");
    host.ip(&args.iter().map(String::as_str).collect::<Vec<_>>())?;
    Ok(port)
}

/// Starts backend `i` (198.18.0.21 + i) on the switch.
pub fn start_backend(switch: &Switch, i: usize, mode: ForwardMode) -> Result<BackendHost> {
    start_backend_in(switch, i, mode, &Addressing::v4())
}

/// Starts backend `i` with the given addressing (IPv4 or IPv6).
pub fn start_backend_in(
    switch: &Switch,
    i: usize,
    mode: ForwardMode,
    addrs: &Addressing,
) -> Result<BackendHost> {
    let ns = Netns::new("lab-be")?;
    let addr = addrs.backend(i);
    let switch_port = plug(switch, &ns, addrs, addr)?;
    // LVS-DR: accept the VIP locally, never answer ARP for it (IPv6 answers neighbour
    // solicitations only for addresses of the receiving interface: lo is enough).
    let vip_args = addrs.add_args(addrs.vip, addrs.host_len(), "lo");
    ns.ip(&vip_args.iter().map(String::as_str).collect::<Vec<_>>())?;
    ns.sh(
        "sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 \
         net.ipv4.conf.eth0.arp_ignore=1 net.ipv4.conf.eth0.arp_announce=2 \
         net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.eth0.rp_filter=0",
    )?;
    let decap = match mode {
        ForwardMode::Tun => Some(
            ns.run(|| HelperProgram::decap("eth0"))
                .with_context(|| format!("attaching lb_decap on {}", backend_name(i)))?,
        ),
        ForwardMode::Dr | ForwardMode::Nat { .. } => None,
    };
    let (stop, server) = start_server(&ns, i, unspecified_like(addr), VIP_PORT)?;
    Ok(BackendHost {
        _ns: ns,
        addr,
        port: VIP_PORT,
        stop,
        server: Some(server),
        udp: None,
        _decap: decap,
        switch_port,
    })
}

/// Starts NAT real `i` on `switch`: its own network, TCP and UDP services on
/// [`NAT_REAL_PORT`], and (unless `full_nat`) its default route via the LB.
pub fn start_nat_real(
    switch: &Switch,
    i: usize,
    addrs: &Addressing,
    full_nat: bool,
) -> Result<BackendHost> {
    let ns = Netns::new("lab-rs")?;
    let addr = addrs.nat_real(i);
    let switch_port = plug(switch, &ns, addrs, addr)?;
    // Full checksums on the wire: the LB rewrites them incrementally in XDP.
    ns.sh("ethtool -K eth0 tx off tso off gso off >/dev/null")?;
    if !full_nat {
        ns.ip(&[
            "route",
            "add",
            "default",
            "via",
            &addrs.lb_internal().to_string(),
        ])?;
    }
    let any = unspecified_like(addr);
    let (stop, server) = start_server(&ns, i, any, NAT_REAL_PORT)?;
    let socket = ns.run(move || std::net::UdpSocket::bind((any, NAT_REAL_PORT)))?;
    socket.set_read_timeout(Some(Duration::from_millis(200)))?;
    let name = backend_name(i);
    let flag = Arc::clone(&stop);
    let udp = std::thread::Builder::new()
        .name(format!("{name}-udp"))
        .spawn(move || serve_udp(socket, name, flag))?;
    Ok(BackendHost {
        _ns: ns,
        addr,
        port: NAT_REAL_PORT,
        stop,
        server: Some(server),
        udp: Some(udp),
        _decap: None,
        switch_port,
    })
}

/// Answers every datagram with `<name> <peer>` until `stop`.
fn serve_udp(socket: std::net::UdpSocket, name: String, stop: Arc<AtomicBool>) {
    let mut buf = [0u8; 1500];
    while !stop.load(Ordering::Relaxed) {
        if let Ok((_, peer)) = socket.recv_from(&mut buf) {
            let _ = socket.send_to(format!("{name} {}\n", peer.ip()).as_bytes(), peer);
        }
    }
}

/// Accepts until `stop`; each connection answers every line with `<name> <peer>`.
fn serve(listener: TcpListener, name: String, stop: Arc<AtomicBool>) {
    let mut workers = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, peer)) => {
                let name = name.clone();
                let stop = Arc::clone(&stop);
                workers.push(std::thread::spawn(move || {
                    answer(stream, &name, peer, &stop)
                }));
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
        workers.retain(|w| !w.is_finished());
    }
    drop(listener);
    for w in workers {
        let _ = w.join();
    }
}

fn answer(stream: TcpStream, name: &str, peer: SocketAddr, stop: &AtomicBool) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    while !stop.load(Ordering::Relaxed) {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) => return,
            Ok(_) => {
                if writeln!(writer, "{name} {}", peer.ip()).is_err() {
                    return;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
}

/// Connects to the VIP (from `src_port` if given, closing with RST so the port can be
/// reused at once).
fn connect(client: IpAddr, vip: IpAddr, src_port: Option<u16>) -> Result<TcpStream> {
    // Reconnecting from the same port can briefly find the previous 4-tuple still
    // hashed in the kernel (EADDRNOTAVAIL): retry for a moment.
    let mut attempts = 0;
    loop {
        match connect_once(client, vip, src_port) {
            Err(e)
                if attempts < 40
                    && e.downcast_ref::<nix::Error>() == Some(&nix::Error::EADDRNOTAVAIL) =>
            {
                attempts += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

fn connect_once(client: IpAddr, vip: IpAddr, src_port: Option<u16>) -> Result<TcpStream> {
    use nix::sys::socket::{
        bind, connect as nix_connect, setsockopt, socket, sockopt, AddressFamily, SockFlag,
        SockType, SockaddrStorage,
    };
    let fd = socket(
        if vip.is_ipv6() {
            AddressFamily::Inet6
        } else {
            AddressFamily::Inet
        },
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    setsockopt(
        &fd,
        sockopt::Linger,
        &libc::linger {
            l_onoff: 1,
            l_linger: 0,
        },
    )?;
    if let Some(port) = src_port {
        bind(
            fd.as_raw_fd(),
            &SockaddrStorage::from(SocketAddr::new(client, port)),
        )?;
    }
    let raw = fd.into_raw_fd();
    // SAFETY: raw is a fresh socket we own.
    let stream = unsafe { TcpStream::from_raw_fd(raw) };
    nix_connect(raw, &SockaddrStorage::from(SocketAddr::new(vip, VIP_PORT)))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    Ok(stream)
}

fn exchange(stream: &mut TcpStream) -> Result<Reply> {
    stream.write_all(b"hello\n")?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        bail!("the backend closed the connection");
    }
    Reply::parse(&line)
}

/// `lb_pass` on a switch port (the LB's peer).
fn pass_on(switch: &Switch, port: String) -> Result<HelperProgram> {
    switch
        .ns()
        .run(move || HelperProgram::pass(&port))
        .context("attaching lb_pass to the LB's switch port")
}

/// The lab's service with every backend's egress resolved in the LB's namespace.
fn resolve_spec(
    mode: ForwardMode,
    backends: &[IpAddr],
    vip: IpAddr,
    protocol: Protocol,
) -> Result<ServiceSpec> {
    let port = if mode.is_nat() {
        NAT_REAL_PORT
    } else {
        VIP_PORT
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let neigh = Neighbours::new()?;
        let mut specs = Vec::new();
        for &addr in backends {
            let egress = dataplane::resolve_egress(&neigh, addr, Duration::from_secs(3)).await?;
            specs.push(dataplane::BackendSpec {
                addr,
                port,
                weight: 1,
                egress,
            });
        }
        Ok(ServiceSpec {
            id: ServiceId {
                vip,
                port: VIP_PORT,
                protocol,
            },
            mode,
            hash: HashMode::FiveTuple,
            table_size: dataplane::maglev::DEFAULT_TABLE_SIZE,
            persistence_timeout: None,
            persistence_prefix: None,
            group: None,
            idle_timeout: dataplane::default_idle_timeout(protocol),
            backends: specs,
        })
    })
}
