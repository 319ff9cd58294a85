//! A NAT pair end to end: two LB nodes running `lb-daemon run`, each with an external
//! interface (eth0: the client and the VIP) and an internal one (eth1: the reals, whose
//! default gateway is the VRRP-managed address 10.0.1.1), keepalived's classic NAT
//! set-up: instances VI_EXT and VI_INT in one `vrrp_sync_group`. When the master loses
//! its internal link, the sync group moves both addresses to the backup, which serves
//! new connections and picks up an established one (same Maglev choice, the real's
//! replies translated from the new node). Needs root.

use std::time::Duration;

use lb_daemon::{
    dataplane::HelperProgram,
    lab::{
        open_from, requests_from, start_nat_real, Addressing, BackendHost, CLIENT_ADDR,
        NAT_REAL_PORT,
    },
    netns::Switch,
};
use lb_tests::vrrp_lab::{daemon_bin, Segment};

const VIP: &str = "198.18.0.100";
const GATEWAY: &str = "10.0.1.1";

fn config(name: &str, priority: u8, dir: &std::path::Path) -> String {
    let mut s = format!(
        r#"[global]
router_id = "{name}"
control_socket = "{dir}/lb.sock"
bpf_pin_path = "/sys/fs/bpf/lb"
dataplane = "xdp"

[global.lvs_timeouts]
tcp = "10m"

[[vrrp_sync_group]]
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
"#,
        dir = dir.display()
    );
    for i in 0..3 {
        s.push_str(&format!(
            "\n[[virtual_server.real_server]]\naddress = \"10.0.1.{}\"\nport = {NAT_REAL_PORT}\ntcp_check = {{ connect_timeout = \"500ms\", retry = 0, warmup = \"0s\" }}\n",
            21 + i
        ));
    }
    s
}

struct Topology {
    seg: Segment,
    internal: Switch,
    /// The LBs' ports on the internal switch.
    internal_ports: Vec<String>,
    _passes: Vec<HelperProgram>,
    _reals: Vec<BackendHost>,
}

/// Nodes 0 and 1 are the LBs (eth0 198.18.0.11/.12, eth1 10.0.1.2/.3), node 2 the
/// client; three reals on the internal switch routed through 10.0.1.1.
fn topology() -> Topology {
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
    let internal = Switch::new("nat-in").expect("internal switch");
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
        // Native XDP_TX/redirect into a veth needs XDP on its peer.
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
    let reals = (0..3)
        .map(|i| start_nat_real(&internal, i, &Addressing::v4(), false).expect("real"))
        .collect();
    Topology {
        seg,
        internal,
        internal_ports,
        _passes: passes,
        _reals: reals,
    }
}

fn holds_gateway(t: &Topology, node: usize) -> bool {
    t.seg.nodes[node].ns.has_address("eth1", GATEWAY)
}

#[test]
fn a_nat_pair_fails_over_with_its_sync_group() {
    let mut t = topology();
    let c1 = config("lb1", 150, t.seg.nodes[0].dir());
    let c2 = config("lb2", 100, t.seg.nodes[1].dir());
    t.seg.nodes[0].start_ours(&c1).expect("lb1");
    t.seg.nodes[1].start_ours(&c2).expect("lb2");
    t.seg
        .wait_holder(VIP, 0, Duration::from_secs(10))
        .expect("lb1 master");
    assert!(holds_gateway(&t, 0), "lb1 holds the reals' gateway too");

    let client = &t.seg.nodes[2].ns;
    let mut replies = Err(anyhow::anyhow!("not tried"));
    for _ in 0..50 {
        replies = requests_from(client, 60);
        if replies.is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let replies = replies
        .unwrap_or_else(|e| panic!("no traffic through the NAT VIP: {e:#}\n{}", t.seg.logs()));
    let mut seen: Vec<String> = replies.iter().map(|r| r.backend.clone()).collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 3, "every real serves: {seen:?}");
    assert!(
        replies
            .iter()
            .all(|r| r.client_seen.to_string() == CLIENT_ADDR.to_string()),
        "NAT keeps the client's address"
    );

    // A long-lived connection, then lb1 loses its internal link: VI_INT faults and the
    // sync group takes VI_EXT down with it.
    let mut conn = open_from(client).expect("long-lived connection");
    let first = conn.ask().expect("ask").backend;
    let port = t.internal_ports[0].clone();
    t.internal
        .ns()
        .ip(&["link", "set", &port, "down"])
        .expect("cut lb1's internal link");
    t.seg
        .wait_holder(VIP, 1, Duration::from_secs(8))
        .expect("lb2 takes the VIP over");
    let moved = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        holds_gateway(&t, 1) && !holds_gateway(&t, 0)
    });
    assert!(
        moved,
        "the gateway address moves with the VIP\n{}",
        t.seg.logs()
    );

    // New connections go through lb2.
    let after = (0..50).find_map(|_| {
        std::thread::sleep(Duration::from_millis(100));
        requests_from(client, 30).ok()
    });
    assert!(after.is_some(), "requests through lb2\n{}", t.seg.logs());
    // The established connection continues on the same real.
    let mut again = None;
    let mut errors = Vec::new();
    for _ in 0..40 {
        match conn.ask() {
            Ok(r) => {
                again = Some(r.backend);
                break;
            }
            Err(e) => errors.push(format!("{e:#}")),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        again.as_deref(),
        Some(first.as_str()),
        "the connection survives the NAT failover; errors: {errors:?}\n{}",
        t.seg.logs()
    );
}
