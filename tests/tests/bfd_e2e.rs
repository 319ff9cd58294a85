//! BFD in the daemon (docs/bfd.md), in network namespaces on one switch:
//!
//! - two of our daemons, one VRRP group at advert_int 1 s, a BFD session (10 ms x 3)
//!   between them tracked with a weight: cutting the master's link takes the session
//!   Down on the backup, which takes over at once (the fast-takeover extension) — the
//!   log shows the takeover follows the BFD event, not the master-down timer;
//! - `BFD_CHECK`: a real server whose BFD peer is keepalived 2.2.7: healthy while the
//!   session is Up, taken out when its link is cut, back when it returns.
//!
//! Needs root; runs `target/debug/lb-daemon` (build it first, or use `cargo xtask test`).

use std::time::{Duration, Instant};

use lb_tests::{daemon_lab::status_json, vrrp_lab::Segment};

const VIP: &str = "198.18.0.100";

fn wait_for(
    what: &str,
    timeout: Duration,
    mut ok: impl FnMut() -> bool,
    logs: impl Fn() -> String,
) {
    let start = Instant::now();
    while !ok() {
        assert!(
            start.elapsed() < timeout,
            "{what} not within {timeout:?}\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One of the two VRRP nodes: the BFD session to the other node, tracked with a weight
/// (weight 0 would put the backup itself in FAULT, keepalived's meaning).
fn vrrp_node(seg: &Segment, i: usize, priority: u8) -> String {
    let dir = seg.nodes[i].dir().display().to_string();
    let other = &seg.nodes[1 - i].addr;
    format!(
        r#"[global]
router_id = "lb{n}"
control_socket = "{dir}/lb.sock"

[[bfd_instance]]
name = "peer"
neighbor_ip = "{other}"
min_rx = 10
min_tx = 10
multiplier = 3

[[vrrp_instance]]
name = "VI_1"
interface = "eth0"
state = "BACKUP"
virtual_router_id = 51
priority = {priority}
advert_int = 1
virtual_ipaddress = ["{VIP}/24"]
track_bfd = [{{ name = "peer", weight = -10 }}]
"#,
        n = i + 1
    )
}

fn session<'a>(status: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    status["bfd"].as_array()?.iter().find(|s| s["name"] == name)
}

fn session_state(seg: &Segment, i: usize, name: &str) -> String {
    let status = status_json(&seg.nodes[i].dir().join("lb.sock"));
    session(&status, name)
        .and_then(|s| s["state"].as_str())
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_cut_link_takes_the_bfd_session_down_and_the_backup_over_at_once() {
    let mut seg = Segment::new(2).unwrap();
    for (i, priority) in [(0, 150), (1, 100)] {
        let conf = vrrp_node(&seg, i, priority);
        seg.nodes[i].start_ours(&conf).unwrap();
    }
    seg.wait_holder(VIP, 0, Duration::from_secs(15)).unwrap();
    for i in 0..2 {
        wait_for(
            "the BFD session Up on both nodes",
            Duration::from_secs(15),
            || session_state(&seg, i, "peer") == "Up",
            || seg.logs(),
        );
    }
    // Up first runs at the slow rate (1 s): the 10 ms intervals follow once the poll
    // sequence completes, and on a loaded machine a session may go down and up again
    // before that. Wait for the negotiated detection time.
    wait_for(
        "the negotiated 30 ms detection time on the backup",
        Duration::from_secs(15),
        || {
            let status = status_json(&seg.nodes[1].dir().join("lb.sock"));
            session(&status, "peer")
                .is_some_and(|p| p["state"] == "Up" && p["detection_time_us"] == 30_000)
        },
        || seg.logs(),
    );
    let status = status_json(&seg.nodes[1].dir().join("lb.sock"));
    let peer = session(&status, "peer").unwrap();
    assert_eq!(peer["tx_interval_us"], 10_000, "{peer}");
    assert_eq!(peer["detection_time_us"], 30_000, "{peer}");
    assert_ne!(peer["remote_discriminator"], 0, "{peer}");
    assert_eq!(status["instances"][0]["state"], "BACKUP", "{status}");

    seg.cut(0).unwrap();
    seg.wait_holder(VIP, 1, Duration::from_secs(10)).unwrap();

    // The order of events on the backup: the session went down (detection time), the
    // instance acted on it, and only then became MASTER.
    let log = seg.nodes[1].log();
    let at = |needle: &str| {
        log.find(needle)
            .unwrap_or_else(|| panic!("`{needle}` not in the backup's log:\n{log}"))
    };
    let bfd_down = at("detection_time_expired");
    let acted = at("BFD session to the master went down");
    let master = log
        .match_indices("VRRP transition")
        .map(|(i, _)| i)
        .find(|&i| {
            log[i..]
                .lines()
                .next()
                .is_some_and(|l| l.contains("to=MASTER"))
        })
        .unwrap_or_else(|| panic!("no transition to MASTER in the backup's log:\n{log}"));
    assert!(bfd_down < acted && acted < master, "{log}");
    let status = status_json(&seg.nodes[1].dir().join("lb.sock"));
    assert_eq!(status["instances"][0]["state"], "MASTER", "{status}");
    let peer = session(&status, "peer").unwrap();
    assert_eq!(peer["state"], "Down", "{peer}");
    assert_eq!(peer["last_down"], "detection_time_expired", "{peer}");

    // The link back: the session comes Up again and lb1 (150) takes its VIP back.
    seg.restore(0).unwrap();
    seg.wait_holder(VIP, 0, Duration::from_secs(15)).unwrap();
    wait_for(
        "the session Up again",
        Duration::from_secs(15),
        || session_state(&seg, 1, "peer") == "Up",
        || seg.logs(),
    );
}

/// keepalived 2.2.7 as a real server's BFD speaker (its BFD process only).
fn start_keepalived_bfd(seg: &mut Segment, i: usize, neighbor: &str) {
    let node = &mut seg.nodes[i];
    let conf = format!(
        "global_defs {{\n  router_id rs\n}}\nbfd_instance lb {{\n  neighbor_ip {neighbor}\n  \
         min_rx 10\n  min_tx 10\n  multiplier 3\n}}\n"
    );
    node.start_keepalived_bfd(&conf).unwrap();
}

#[test]
fn bfd_check_takes_a_real_server_out_when_its_session_drops() {
    let mut seg = Segment::new(2).unwrap();
    let pin = lb_tests::harness::unique_pin_dir("bfd");
    let rs = seg.nodes[1].addr.clone();
    let lb = seg.nodes[0].addr.clone();
    let dir = seg.nodes[0].dir().display().to_string();
    let conf = format!(
        r#"[global]
router_id = "lb1"
control_socket = "{dir}/lb.sock"
bpf_pin_path = "{pin}"
dataplane = "xdp"

[[bfd_instance]]
name = "rs"
neighbor_ip = "{rs}"
checker = true

[[vrrp_instance]]
name = "VI_1"
interface = "eth0"
state = "MASTER"
virtual_router_id = 52
priority = 200
advert_int = 1
virtual_ipaddress = ["{VIP}/32"]

[[virtual_server]]
address = "{VIP}"
port = 80
protocol = "TCP"
lb_kind = "DR"

[[virtual_server.real_server]]
address = "{rs}"
port = 80
bfd_check = {{ name = "rs" }}
"#,
        pin = pin.display()
    );
    start_keepalived_bfd(&mut seg, 1, &lb);
    seg.nodes[0].start_ours(&conf).unwrap();
    let sock = seg.nodes[0].dir().join("lb.sock");
    let healthy = |sock: &std::path::Path| {
        status_json(sock)["services"][0]["backends"][0]["healthy"].as_bool()
    };
    wait_for(
        "the real server healthy (session Up)",
        Duration::from_secs(20),
        || healthy(&sock) == Some(true),
        || format!("{}\n{}", status_json(&sock), seg.logs()),
    );
    seg.cut(1).unwrap();
    wait_for(
        "the real server out (session Down)",
        Duration::from_secs(10),
        || healthy(&sock) == Some(false),
        || seg.logs(),
    );
    let status = status_json(&sock);
    let last = status["services"][0]["backends"][0]["last_check"]
        .as_str()
        .unwrap_or("");
    assert!(last.contains("BFD session rs is Down"), "{status}");
    seg.restore(1).unwrap();
    wait_for(
        "the real server back (session Up)",
        Duration::from_secs(20),
        || healthy(&sock) == Some(true),
        || seg.logs(),
    );
}
