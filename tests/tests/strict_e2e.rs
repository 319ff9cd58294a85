//! keepalived's no-accept mode in namespaces: one daemon with two VRRP instances alone
//! on a segment, both MASTER; the one in strict mode (`vrrp_strict`, no-accept by
//! default) has its VIPs' traffic dropped by the XDP program, the one that accepts
//! answers. Needs root and iproute2.

use std::time::Duration;

use lb_tests::vrrp_lab::{daemon_bin, Segment};

const STRICT4: &str = "198.18.0.100";
const STRICT6: &str = "2001:db8:7::100";
const OPEN4: &str = "198.18.0.101";
const OPEN6: &str = "2001:db8:7::101";

fn config(dir: &std::path::Path, pin: &str) -> String {
    format!(
        r#"[global]
router_id = "lb1"
control_socket = "{dir}/lb.sock"
bpf_pin_path = "{pin}"
dataplane = "xdp"
vrrp_strict = true

[[vrrp_instance]]
name = "VI_STRICT"
interface = "eth0"
virtual_router_id = 51
priority = 100
advert_int = 1
virtual_ipaddress = ["{STRICT4}/24"]
virtual_ipaddress_excluded = ["{STRICT6}/64"]

[[vrrp_instance]]
name = "VI_OPEN"
interface = "eth0"
virtual_router_id = 52
priority = 100
advert_int = 1
strict_mode = false
virtual_ipaddress = ["{OPEN4}/24"]
virtual_ipaddress_excluded = ["{OPEN6}/64"]
"#,
        dir = dir.display()
    )
}

/// Whether one echo request from node 1 to `addr` is answered within a second.
fn pings(seg: &Segment, addr: &str) -> bool {
    seg.nodes[1]
        .ns
        .sh(&format!("ping -c 1 -W 1 {addr}"))
        .is_ok()
}

/// `vip_strict_drop` as `lb-daemon counters` reads it in the daemon's mount namespace
/// (`ip netns exec` gives each command its own, and the daemon mounted its bpffs there).
fn strict_drops(seg: &Segment, pin: &str) -> u64 {
    let pid = seg.nodes[0].pid().expect("the daemon runs");
    let out = std::process::Command::new("nsenter")
        .args(["--target", &pid.to_string(), "--mount", "--net", "--"])
        .arg(daemon_bin())
        .args(["counters", "--pin-dir", pin])
        .output()
        .expect("nsenter (util-linux)");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("vip_strict_drop"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "no vip_strict_drop in:\n{text}\n{}\n{}",
                String::from_utf8_lossy(&out.stderr),
                seg.logs()
            )
        })
}

#[test]
fn a_strict_masters_vips_do_not_answer_an_accepting_ones_do() {
    let mut seg = Segment::new(2).expect("segment");
    for (i, addr) in ["2001:db8:7::11/64", "2001:db8:7::12/64"]
        .iter()
        .enumerate()
    {
        seg.nodes[i]
            .ns
            .ip(&["-6", "addr", "add", addr, "dev", "eth0", "nodad"])
            .expect("IPv6 address");
    }
    // The daemon mounts a bpffs of its own (in the mount namespace `ip netns exec`
    // gives it), gone with it.
    let pin = format!(
        "/sys/fs/bpf/lb-strict-{}",
        lb_daemon::netns::unique_name("n")
    );
    let c = config(seg.nodes[0].dir(), &pin);
    seg.nodes[0].start_ours(&c).expect("lb1");
    for vip in [STRICT4, OPEN4] {
        seg.wait_holder(vip, 0, Duration::from_secs(15))
            .expect("lb1 master of both instances");
    }
    // The accepting instance's VIPs answer once usable (neighbour entries, IPv6 DAD).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !(pings(&seg, OPEN4) && pings(&seg, OPEN6)) {
        assert!(
            std::time::Instant::now() < deadline,
            "the accepting instance's VIPs answer ping\n{}",
            seg.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        !pings(&seg, STRICT4),
        "the strict VIP does not answer (IPv4)\n{}",
        seg.logs()
    );
    assert!(
        !pings(&seg, STRICT6),
        "the strict VIP does not answer (IPv6)"
    );
    assert!(
        strict_drops(&seg, &pin) >= 2,
        "the echo requests were dropped by XDP, counted"
    );
    // The host's own addresses still answer.
    assert!(pings(&seg, &seg.nodes[0].addr.clone()));
}
