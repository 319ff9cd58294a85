//! Flow-state sync end to end: the NAT pair of `nat_failover_e2e` (two nodes running
//! `lb-daemon run`, VI_EXT and VI_INT in one sync group, the reals routed through the
//! VRRP-held gateway), with 50 long-lived connections begun through the master before a
//! backend-set change (a fourth real comes up). Then the master loses its internal link.
//!
//! - With `[sync]` every connection continues through the backup: it received the
//!   master's NAT entries and wrote them before it added the VIPs; the same with
//!   full-NAT (`snat_address` = the gateway address, the source ports travel too).
//! - Without, exactly the connections whose real is no longer the backup's Maglev
//!   choice break (computed here from the same Maglev table and flow hash): so sync is
//!   what saves them.
//! - A master restarted with empty tables gets them back from the backup (bulk sync)
//!   and keeps every connection when it takes the VIP back by preemption.
//!
//! Needs root.

use std::time::Duration;

use lb_common::{hash, IPPROTO_TCP, IPPROTO_UDP};
use lb_daemon::{
    dataplane::{
        maglev::{self, MaglevBackend},
        spec::encode_addr,
        HelperProgram,
    },
    lab::{
        open_from, requests_from, start_nat_real, Addressing, BackendHost, LabConn, CLIENT_ADDR,
        NAT_REAL_PORT,
    },
    netns::Switch,
};
use lb_tests::{
    daemon_lab::status_json,
    vrrp_lab::{daemon_bin, Segment},
};

const VIP: &str = "198.18.0.100";
const GATEWAY: &str = "10.0.1.1";
const TABLE_SIZE: u32 = 251;
const CONNECTIONS: usize = 50;
const REALS: usize = 4;
const KEY: &str = "sync-e2e-shared-key-0123456789";

fn real(i: usize) -> String {
    format!("10.0.1.{}", 21 + i)
}

fn config(
    name: &str,
    priority: u8,
    dir: &std::path::Path,
    sync_peer: Option<&str>,
    full_nat: bool,
) -> String {
    let sync = sync_peer
        .map(|peer| {
            format!(
                "[sync]\ninterface = \"eth0\"\nvrrp_instance = \"VI_EXT\"\npeers = [\"{peer}\"]\nkey = \"{KEY}\"\n\n"
            )
        })
        .unwrap_or_default();
    let mut s = format!(
        r#"[global]
router_id = "{name}"
control_socket = "{dir}/lb.sock"
bpf_pin_path = "/sys/fs/bpf/lb"
dataplane = "xdp"

[global.lvs_timeouts]
tcp = "10m"

{sync}[[vrrp_sync_group]]
name = "NAT"
group = ["VI_EXT", "VI_INT"]

[[vrrp_instance]]
name = "VI_EXT"
interface = "eth0"
state = "BACKUP"
virtual_router_id = 51
priority = {priority}
advert_int = 1
virtual_ipaddress = ["{VIP}/32"]

[[vrrp_instance]]
name = "VI_INT"
interface = "eth1"
state = "BACKUP"
virtual_router_id = 52
priority = {priority}
advert_int = 1
virtual_ipaddress = ["{GATEWAY}/24"]

[[virtual_server]]
address = "{VIP}"
port = 80
protocol = "TCP"
lb_kind = "NAT"
delay_loop = "500ms"
table_size = {TABLE_SIZE}
{snat}"#,
        dir = dir.display(),
        // Full-NAT from the gateway address, which moves with the instances.
        snat = if full_nat {
            format!("snat_address = \"{GATEWAY}\"\n")
        } else {
            String::new()
        },
    );
    let reals = |s: &mut String| {
        for i in 0..REALS {
            s.push_str(&format!(
                "\n[[virtual_server.real_server]]\naddress = \"{}\"\nport = {NAT_REAL_PORT}\ntcp_check = {{ connect_timeout = \"500ms\", retry = 0, warmup = \"0s\", connect_port = {NAT_REAL_PORT} }}\n",
                real(i)
            ));
        }
    };
    reals(&mut s);
    // UDP flows through the same reals (checked over TCP on the same port).
    s.push_str(&format!(
        "\n[[virtual_server]]\naddress = \"{VIP}\"\nport = 80\nprotocol = \"UDP\"\nlb_kind = \"NAT\"\n\
         delay_loop = \"500ms\"\ntable_size = {TABLE_SIZE}\n{}",
        if full_nat {
            format!("snat_address = \"{GATEWAY}\"\n")
        } else {
            String::new()
        }
    ));
    reals(&mut s);
    s
}

struct Topology {
    seg: Segment,
    internal: Switch,
    internal_ports: Vec<String>,
    _passes: Vec<HelperProgram>,
    reals: Vec<BackendHost>,
    full_nat: bool,
}

/// As in `nat_failover_e2e`: nodes 0 and 1 the LBs (eth0 198.18.0.11/.12, eth1
/// 10.0.1.2/.3), node 2 the client; three of the four reals up.
fn topology(full_nat: bool) -> Topology {
    let _ = daemon_bin();
    let seg = Segment::new(3).expect("segment");
    let client = &seg.nodes[2].ns;
    client
        .ip(&["addr", "del", "198.18.0.13/24", "dev", "eth0"])
        .expect("segment address");
    client
        .ip(&["addr", "add", &format!("{CLIENT_ADDR}/24"), "dev", "eth0"])
        .expect("client address");
    client
        .sh("ethtool -K eth0 tx off tso off gso off >/dev/null")
        .expect("ethtool");
    let internal = Switch::new("sync-in").expect("internal switch");
    let mut passes = Vec::new();
    let mut internal_ports = Vec::new();
    for i in 0..2 {
        let ns = &seg.nodes[i].ns;
        let port = internal.plug(ns, "eth1").expect("internal link");
        ns.ip(&[
            "addr",
            "add",
            &format!("10.0.1.{}/24", 2 + i),
            "dev",
            "eth1",
        ])
        .expect("internal address");
        ns.sh("sysctl -qw net.ipv4.ip_forward=1")
            .expect("forwarding");
        for (sw, p) in [
            (&seg.switch, seg.nodes[i].port.clone()),
            (&internal, port.clone()),
        ] {
            passes.push(
                sw.ns()
                    .run(move || HelperProgram::pass(&p))
                    .expect("lb_pass"),
            );
        }
        internal_ports.push(port);
    }
    let reals = (0..REALS - 1)
        .map(|i| start_nat_real(&internal, i, &Addressing::v4(), full_nat).expect("real"))
        .collect();
    Topology {
        seg,
        internal,
        internal_ports,
        _passes: passes,
        reals,
        full_nat,
    }
}

fn holds_gateway(t: &Topology, node: usize) -> bool {
    t.seg.nodes[node].ns.has_address("eth1", GATEWAY)
}

/// Polls `f` every 100 ms for up to `limit`.
fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

fn status(t: &Topology, node: usize) -> serde_json::Value {
    status_json(&t.seg.nodes[node].dir().join("lb.sock"))
}

/// Whether every service of `node` has its backend `addr` in a state `is`.
fn every_service(
    t: &Topology,
    node: usize,
    addr: &str,
    is: impl Fn(&serde_json::Value) -> bool,
) -> bool {
    status(t, node)["services"]
        .as_array()
        .is_some_and(|services| {
            !services.is_empty()
                && services.iter().all(|s| {
                    s["backends"]
                        .as_array()
                        .is_some_and(|b| b.iter().any(|b| b["address"] == addr && is(b)))
                })
        })
}

/// Health checking found the backend up.
fn healthy(b: &serde_json::Value) -> bool {
    b["healthy"] == true
}

/// The data plane sends it new connections: found up and programmed by the map owner
/// (a MASTER's services only: a BACKUP programs them when it takes over).
fn forwarding(b: &serde_json::Value) -> bool {
    b["forwarding_weight"].as_u64().is_some_and(|w| w > 0)
}

/// A UDP flow of the client: its socket (bound in the client's namespace) and port.
struct UdpFlow {
    socket: std::net::UdpSocket,
    port: u16,
}

impl UdpFlow {
    fn open(t: &Topology) -> UdpFlow {
        let socket = t.seg.nodes[2]
            .ns
            .run(|| std::net::UdpSocket::bind((CLIENT_ADDR, 0)))
            .expect("UDP socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(300)))
            .expect("timeout");
        let port = socket.local_addr().expect("address").port();
        UdpFlow { socket, port }
    }

    /// The real that answers a datagram (a few tries: datagrams may be lost in a
    /// takeover).
    fn ask(&self) -> Result<String, String> {
        let mut buf = [0u8; 256];
        let mut last = String::new();
        for _ in 0..10 {
            if let Err(e) = self.socket.send_to(b"hello\n", (VIP, 80)) {
                last = e.to_string();
                continue;
            }
            match self.socket.recv_from(&mut buf) {
                Ok((n, _)) => {
                    let text = String::from_utf8_lossy(&buf[..n]);
                    return Ok(text.split_whitespace().next().unwrap_or("").to_string());
                }
                Err(e) => last = e.to_string(),
            }
        }
        Err(format!("no UDP answer: {last}"))
    }
}

/// The name real `i` answers with (the lab's `backend1`, ...).
fn name(i: usize) -> String {
    format!("backend{}", i + 1)
}

/// The real the four-real Maglev table gives the flow from `sport` (what the backup
/// picks for a flow it has no entry for), by the name it answers with.
fn maglev_choice(sport: u16, proto: u8) -> String {
    let identities: Vec<String> = (0..REALS)
        .map(|i| format!("{}:{NAT_REAL_PORT}", real(i)))
        .collect();
    let backends: Vec<MaglevBackend<'_>> = identities
        .iter()
        .enumerate()
        .map(|(i, id)| MaglevBackend {
            identity: id.as_bytes(),
            value: i as u32,
            weight: 1,
        })
        .collect();
    let table = maglev::build(&backends, TABLE_SIZE).expect("maglev");
    let (src, _) = encode_addr(CLIENT_ADDR.into());
    let (dst, _) = encode_addr(VIP.parse().unwrap());
    let h = hash::flow_hash(&src, &dst, sport.to_be(), 80u16.to_be(), proto);
    name(table[(h % TABLE_SIZE) as usize] as usize)
}

struct Outcome {
    /// Per connection: (client port, real before, real after or the error).
    conns: Vec<(u16, String, Result<String, String>)>,
    /// Per UDP flow, the same.
    udp: Vec<(u16, String, Result<String, String>)>,
}

type Conns = Vec<(LabConn, u16, String)>;
type Udps = Vec<(UdpFlow, String)>;

/// UDP flows begun like the connections (before the backend change).
const UDP_FLOWS: usize = 20;

fn ask_udp(udp: &Udps) -> Vec<(u16, String, Result<String, String>)> {
    udp.iter()
        .map(|(f, first)| (f.port, first.clone(), f.ask()))
        .collect()
}

/// Both nodes running (lb1 MASTER), 50 connections through lb1 begun before the fourth
/// real came up on both nodes; with `sync`, lb2 holds lb1's flows.
fn begin(sync: bool, full_nat: bool) -> (Topology, Conns, Udps) {
    let mut t = topology(full_nat);
    let peer = |i: usize| sync.then(|| format!("198.18.0.{}", 12 - i));
    let c1 = config(
        "lb1",
        150,
        t.seg.nodes[0].dir(),
        peer(0).as_deref(),
        full_nat,
    );
    let c2 = config(
        "lb2",
        100,
        t.seg.nodes[1].dir(),
        peer(1).as_deref(),
        full_nat,
    );
    t.seg.nodes[0].start_ours(&c1).expect("lb1");
    t.seg.nodes[1].start_ours(&c2).expect("lb2");
    t.seg
        .wait_holder(VIP, 0, Duration::from_secs(10))
        .expect("lb1 master");
    let client = &t.seg.nodes[2].ns;
    assert!(
        eventually(Duration::from_secs(10), || requests_from(client, 10)
            .is_ok()),
        "no traffic through the NAT VIP\n{}",
        t.seg.logs()
    );

    // Long-lived connections through lb1, on the three reals.
    let mut conns: Conns = (0..CONNECTIONS)
        .map(|_| {
            let mut c = open_from(client).expect("connection");
            let port = c.local_port().expect("port");
            let first = c.ask().expect("first exchange").backend;
            (c, port, first)
        })
        .collect();

    let udp: Udps = (0..UDP_FLOWS)
        .map(|_| {
            let f = UdpFlow::open(&t);
            let first = f.ask().expect("first UDP answer");
            (f, first)
        })
        .collect();

    // The backend set changes: the fourth real comes up, on both nodes.
    t.reals.push(
        start_nat_real(&t.internal, REALS - 1, &Addressing::v4(), t.full_nat).expect("real 4"),
    );
    let fourth = real(REALS - 1);
    assert!(
        eventually(Duration::from_secs(15), || every_service(
            &t, 0, &fourth, forwarding
        ) && every_service(
            &t, 1, &fourth, healthy
        )),
        "the fourth real is forwarded to on lb1 and up on lb2\n{}",
        t.seg.logs()
    );
    // The connections carry on through lb1 (its NAT entries hold them).
    for (c, _, first) in &mut conns {
        assert_eq!(&c.ask().expect("exchange through lb1").backend, first);
    }
    if sync {
        let received = || {
            status(&t, 1)["sync"]["pending"]
                .as_u64()
                .is_some_and(|n| n >= (CONNECTIONS + UDP_FLOWS) as u64)
        };
        assert!(
            eventually(Duration::from_secs(10), received),
            "lb2 keeps lb1's flows: {}\n{}",
            status(&t, 1)["sync"],
            t.seg.logs()
        );
    }
    // The UDP flows too.
    for (f, first) in &udp {
        assert_eq!(&f.ask().expect("UDP through lb1"), first);
    }
    (t, conns, udp)
}

/// Asks on every connection once; (client port, real before, real after or the error).
fn ask_all(conns: &mut Conns) -> Vec<(u16, String, Result<String, String>)> {
    conns
        .iter_mut()
        .map(|(c, port, first)| {
            let after = c.ask().map(|r| r.backend).map_err(|e| format!("{e:#}"));
            (*port, first.clone(), after)
        })
        .collect()
}

/// Runs the scenario; with `sync`, the nodes sync flows.
fn failover(sync: bool, full_nat: bool) -> Outcome {
    let (t, mut conns, udp) = begin(sync, full_nat);
    let client = &t.seg.nodes[2].ns;

    // lb1 loses its internal link: the sync group moves both addresses to lb2.
    let port = t.internal_ports[0].clone();
    t.internal
        .ns()
        .ip(&["link", "set", &port, "down"])
        .expect("cut lb1's internal link");
    t.seg
        .wait_holder(VIP, 1, Duration::from_secs(8))
        .expect("lb2 takes the VIP over");
    assert!(
        eventually(Duration::from_secs(5), || holds_gateway(&t, 1)
            && !holds_gateway(&t, 0)),
        "the gateway moves with the VIP\n{}",
        t.seg.logs()
    );
    // One new connection per try: in full-NAT each takes a source port, and one that
    // takes the port an old connection's hash gives it would break that connection
    // (first come, first served; a CI run saw it with ten per try while lb2 was slow).
    assert!(
        eventually(Duration::from_secs(10), || requests_from(client, 1).is_ok()),
        "new connections through lb2\n{}",
        t.seg.logs()
    );
    if sync {
        let s = status(&t, 1);
        assert!(
            s["sync"]["installed"].as_u64() >= Some(CONNECTIONS as u64),
            "lb2 installed lb1's flows: {}",
            s["sync"]
        );
    }
    Outcome {
        conns: ask_all(&mut conns),
        udp: ask_udp(&udp),
    }
}

type Results = [(u16, String, Result<String, String>)];

/// The flows not answered by the real they began on.
fn broken(results: &Results) -> Vec<&(u16, String, Result<String, String>)> {
    results
        .iter()
        .filter(|(_, first, after)| after.as_ref() != Ok(first))
        .collect()
}

#[test]
fn with_sync_every_nat_connection_survives_failover_after_a_backend_change() {
    let out = failover(true, false);
    let (tcp, udp) = (broken(&out.conns), broken(&out.udp));
    assert!(
        tcp.is_empty() && udp.is_empty(),
        "despite sync, {} of {CONNECTIONS} connections broke: {tcp:?}; {} of {UDP_FLOWS} UDP flows moved: {udp:?}",
        tcp.len(),
        udp.len()
    );
}

#[test]
fn with_sync_every_full_nat_connection_survives_failover_after_a_backend_change() {
    // The SNAT address (the gateway) and each flow's allocated port move with it.
    let out = failover(true, true);
    let (tcp, udp) = (broken(&out.conns), broken(&out.udp));
    assert!(
        tcp.is_empty() && udp.is_empty(),
        "despite sync, {} of {CONNECTIONS} full-NAT connections broke: {tcp:?}; {} of {UDP_FLOWS} UDP flows moved: {udp:?}",
        tcp.len(),
        udp.len()
    );
}

/// Asserts that exactly the connections whose Maglev choice moved broke; their count.
fn only_maglev_moved_break(conns: &Results) -> usize {
    let mut moved = 0;
    for (port, first, after) in conns {
        let choice = maglev_choice(*port, IPPROTO_TCP);
        if &choice == first {
            assert_eq!(
                after.as_ref(),
                Ok(first),
                "port {port}: still the Maglev choice, it survives"
            );
        } else {
            moved += 1;
            assert!(
                after.as_ref() != Ok(first),
                "port {port}: Maglev now says {choice}, not {first}: without sync it cannot survive"
            );
        }
    }
    moved
}

#[test]
fn without_sync_the_connections_maglev_moved_break() {
    let out = failover(false, false);
    let moved = only_maglev_moved_break(&out.conns);
    // A UDP flow is answered by the backup's Maglev choice.
    let mut udp_moved = 0;
    for (port, first, after) in &out.udp {
        let choice = maglev_choice(*port, IPPROTO_UDP);
        assert_eq!(after.as_ref(), Ok(&choice), "UDP port {port}");
        udp_moved += usize::from(&choice != first);
    }
    eprintln!(
        "without sync: {moved} of {CONNECTIONS} connections broke, {udp_moved} of {UDP_FLOWS} UDP flows moved to another real at failover"
    );
    assert!(moved > 0, "the backend change moved some flows");
}

#[test]
fn without_sync_the_full_nat_connections_maglev_moved_break() {
    // The backup allocates a flow's SNAT port the same way the master did, so a
    // full-NAT connection whose real is still the Maglev choice survives without sync
    // too; the ones the backend change moved break, as with plain NAT.
    let out = failover(false, true);
    let moved = only_maglev_moved_break(&out.conns);
    eprintln!("without sync: {moved} of {CONNECTIONS} full-NAT connections broke at failover");
    assert!(moved > 0, "the backend change moved some flows");
}

#[test]
fn a_restarted_master_gets_its_flows_back_by_bulk_sync_before_it_preempts() {
    let (mut t, mut conns, udp) = begin(true, false);
    // lb1 stops: lb2 takes over with lb1's flows.
    t.seg.nodes[0].stop().expect("stop lb1");
    t.seg
        .wait_holder(VIP, 1, Duration::from_secs(8))
        .expect("lb2 takes the VIP over");
    assert!(
        eventually(Duration::from_secs(5), || holds_gateway(&t, 1)),
        "the gateway moves to lb2\n{}",
        t.seg.logs()
    );
    let client = &t.seg.nodes[2].ns;
    assert!(
        eventually(Duration::from_secs(10), || requests_from(client, 10)
            .is_ok()),
        "new connections through lb2\n{}",
        t.seg.logs()
    );
    let through_lb2 = ask_all(&mut conns);
    let broken: Vec<_> = through_lb2
        .iter()
        .filter(|(_, first, after)| after.as_ref() != Ok(first))
        .collect();
    assert!(broken.is_empty(), "through lb2: {broken:?}");
    let udp_broken: Vec<_> = ask_udp(&udp)
        .into_iter()
        .filter(|(_, first, after)| after.as_ref() != Ok(first))
        .collect();
    assert!(udp_broken.is_empty(), "UDP through lb2: {udp_broken:?}");

    // lb1 restarts with empty tables, asks lb2 for its flows, and preempts (priority 150).
    let c1 = config("lb1", 150, t.seg.nodes[0].dir(), Some("198.18.0.12"), false);
    t.seg.nodes[0].start_ours(&c1).expect("lb1 again");
    t.seg
        .wait_holder(VIP, 0, Duration::from_secs(15))
        .expect("lb1 takes the VIP back");
    assert!(
        eventually(Duration::from_secs(5), || holds_gateway(&t, 0)
            && !holds_gateway(&t, 1)),
        "the gateway moves back to lb1\n{}",
        t.seg.logs()
    );
    let installed = status(&t, 0)["sync"]["installed"].as_u64().unwrap_or(0);
    assert!(
        installed >= CONNECTIONS as u64,
        "lb1 installed the flows lb2 sent it: {}\n{}",
        status(&t, 0)["sync"],
        t.seg.logs()
    );
    let client = &t.seg.nodes[2].ns;
    assert!(
        eventually(Duration::from_secs(10), || requests_from(client, 10)
            .is_ok()),
        "new connections through lb1\n{}",
        t.seg.logs()
    );
    let back = ask_all(&mut conns);
    let broken: Vec<_> = back
        .iter()
        .filter(|(_, first, after)| after.as_ref() != Ok(first))
        .collect();
    assert!(
        broken.is_empty(),
        "{} of {CONNECTIONS} connections broke when lb1 took the VIP back: {broken:?}\n{}",
        broken.len(),
        t.seg.logs()
    );
    let udp_broken: Vec<_> = ask_udp(&udp)
        .into_iter()
        .filter(|(_, first, after)| after.as_ref() != Ok(first))
        .collect();
    assert!(
        udp_broken.is_empty(),
        "UDP through lb1 again: {udp_broken:?}"
    );
}
