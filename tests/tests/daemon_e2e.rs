//! The daemon end to end in network namespaces: two LB nodes running `lb-daemon run` in
//! one VRRP group with the same virtual server, three backends (DR), one client. The
//! master forwards through XDP; when its link is cut the backup takes over and a
//! long-lived TCP connection opened before the cut keeps working (same Maglev table on
//! both nodes). Needs root.

use std::time::Duration;

use lb_daemon::{
    dataplane::{ForwardMode, HelperProgram},
    lab::{backend_addr, open_from, request_from, requests_from, start_backend, CLIENT_ADDR},
    netns::Netns,
};
use lb_tests::vrrp_lab::{daemon_bin, Segment};

const VIP: &str = "198.18.0.100";

fn config(name: &str, priority: u8, dir: &std::path::Path) -> String {
    let mut s = format!(
        r#"[global]
router_id = "{name}"
control_socket = "{dir}/lb.sock"
bpf_pin_path = "/sys/fs/bpf/lb"
dataplane = "xdp"

[[vrrp_instance]]
name = "VI_1"
interface = "eth0"
state = "BACKUP"
virtual_router_id = 51
priority = {priority}
advert_int = 1
virtual_ipaddress = ["{VIP}/32"]

[[virtual_server]]
address = "{VIP}"
port = 80
protocol = "TCP"
lb_kind = "DR"
delay_loop = "500ms"
"#,
        dir = dir.display()
    );
    for i in 0..3 {
        s.push_str(&format!(
            "\n[[virtual_server.real_server]]\naddress = \"{}\"\nport = 80\ntcp_check = {{ connect_timeout = \"500ms\", warmup = \"0s\" }}\n",
            backend_addr(i)
        ));
    }
    s
}

#[test]
fn two_daemons_fail_over_and_keep_a_long_lived_connection() {
    let _ = daemon_bin();
    // Nodes 0 and 1 are the LBs (198.18.0.11/.12), node 2 the client (198.18.0.13, plus
    // the lab's client address).
    let mut seg = Segment::new(3).expect("segment");
    let client: &Netns = &seg.nodes[2].ns;
    // The lab's client address only (deleting a primary address drops its secondaries).
    client
        .ip(&["addr", "del", "198.18.0.13/24", "dev", "eth0"])
        .expect("segment address");
    client
        .ip(&["addr", "add", &format!("{CLIENT_ADDR}/24"), "dev", "eth0"])
        .expect("client address");
    client
        .sh("ethtool -K eth0 tx off tso off gso off >/dev/null")
        .expect("ethtool");
    // Native XDP_TX out of the LBs' veths needs XDP on the switch-side peers.
    let ports = [seg.nodes[0].port.clone(), seg.nodes[1].port.clone()];
    let _peers: Vec<HelperProgram> = ports
        .iter()
        .map(|p| {
            let p = p.clone();
            seg.switch
                .ns()
                .run(move || HelperProgram::pass(&p))
                .expect("lb_pass")
        })
        .collect();
    let _backends: Vec<_> = (0..3)
        .map(|i| start_backend(&seg.switch, i, ForwardMode::Dr).expect("backend"))
        .collect();

    let c1 = config("lb1", 150, seg.nodes[0].dir());
    let c2 = config("lb2", 100, seg.nodes[1].dir());
    seg.nodes[0].start_ours(&c1).expect("lb1");
    seg.nodes[1].start_ours(&c2).expect("lb2");
    seg.wait_holder(VIP, 0, Duration::from_secs(10))
        .expect("lb1 master");

    // Traffic spreads over the backends through lb1's XDP program.
    let client = &seg.nodes[2].ns;
    let mut replies = Err(anyhow::anyhow!("not tried"));
    for _ in 0..50 {
        replies = requests_from(client, 60);
        if replies.is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let replies =
        replies.unwrap_or_else(|e| panic!("no traffic through the VIP: {e:#}\n{}", seg.logs()));
    let mut seen: Vec<String> = replies.iter().map(|r| r.backend.clone()).collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 3, "every backend serves: {seen:?}");
    assert!(replies
        .iter()
        .all(|r| r.client_seen.to_string() == CLIENT_ADDR.to_string()));

    // A long-lived connection, then the master's link is cut.
    let mut conn = open_from(client).expect("long-lived connection");
    let first = conn.ask().expect("ask").backend;
    seg.cut(0).expect("cut lb1");
    seg.wait_holder(VIP, 1, Duration::from_secs(8))
        .expect("lb2 takes over");
    let mut after = None;
    for _ in 0..40 {
        if let Ok(r) = conn.ask() {
            after = Some(r.backend);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        after.as_deref(),
        Some(first.as_str()),
        "the connection survives the failover on the same backend\n{}",
        seg.logs()
    );
    // New connections go through lb2.
    request_from(client, None).expect("request through lb2");
}
