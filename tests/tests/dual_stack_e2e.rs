//! A dual-stack service end to end: one VRRP instance holds an IPv4 VIP (advertised)
//! and an IPv6 VIP (`virtual_ipaddress_excluded`, as keepalived writes dual-stack
//! instances), each with a virtual server (DR) over backends of its family. Both
//! families are served through the master, and both VIPs fail over together.
//! Needs root.

use std::time::Duration;

use lb_daemon::{
    dataplane::{ForwardMode, HelperProgram},
    lab::{requests_to, start_backend_in, Addressing, BackendHost, CLIENT_ADDR},
};
use lb_tests::vrrp_lab::{daemon_bin, Segment};

const VIP4: &str = "198.18.0.100";
const VIP6: &str = "2001:db8:1::100";

fn config(name: &str, priority: u8, dir: &std::path::Path, pin: &str) -> String {
    let mut s = format!(
        r#"[global]
router_id = "{name}"
control_socket = "{dir}/lb.sock"
bpf_pin_path = "{pin}"
dataplane = "xdp"

[[vrrp_instance]]
name = "VI_1"
interface = "eth0"
state = "BACKUP"
virtual_router_id = 51
priority = {priority}
advert_int = 1
virtual_ipaddress = ["{VIP4}/32"]
virtual_ipaddress_excluded = ["{VIP6}/128"]
"#,
        dir = dir.display()
    );
    for (vip, addrs) in [(VIP4, Addressing::v4()), (VIP6, Addressing::v6())] {
        s.push_str(&format!(
            "\n[[virtual_server]]\naddress = \"{vip}\"\nport = 80\nlb_kind = \"DR\"\ndelay_loop = \"500ms\"\n"
        ));
        for i in 0..3 {
            s.push_str(&format!(
                "\n[[virtual_server.real_server]]\naddress = \"{}\"\nport = 80\ntcp_check = {{ connect_timeout = \"500ms\", retry = 0, warmup = \"0s\" }}\n",
                addrs.backend(i)
            ));
        }
    }
    s
}

fn has(seg: &Segment, node: usize, vip: &str) -> bool {
    seg.nodes[node].ns.has_address("eth0", vip)
}

fn serves(seg: &Segment, addrs: Addressing) -> bool {
    (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        requests_to(&seg.nodes[2].ns, addrs, 30).is_ok_and(|r| {
            let mut seen: Vec<&str> = r.iter().map(|r| r.backend.as_str()).collect();
            seen.sort();
            seen.dedup();
            seen.len() == 3 && r.iter().all(|r| r.client_seen == addrs.client)
        })
    })
}

#[test]
fn one_instance_serves_and_fails_over_both_families() {
    let _ = daemon_bin();
    let mut seg = Segment::new(3).expect("segment");
    for i in 0..2 {
        seg.nodes[i]
            .ns
            .ip(&[
                "addr",
                "add",
                &format!("2001:db8:1::{}/64", 11 + i),
                "dev",
                "eth0",
                "nodad",
            ])
            .expect("LB IPv6 address");
    }
    let client = &seg.nodes[2].ns;
    client
        .ip(&["addr", "del", "198.18.0.13/24", "dev", "eth0"])
        .expect("segment address");
    client
        .ip(&["addr", "add", &format!("{CLIENT_ADDR}/24"), "dev", "eth0"])
        .expect("client address");
    client
        .ip(&["addr", "add", "2001:db8:1::10/64", "dev", "eth0", "nodad"])
        .expect("client IPv6 address");
    client
        .sh("ethtool -K eth0 tx off tso off gso off >/dev/null")
        .expect("ethtool");
    let _passes: Vec<HelperProgram> = (0..2)
        .map(|i| {
            let p = seg.nodes[i].port.clone();
            seg.switch
                .ns()
                .run(move || HelperProgram::pass(&p))
                .expect("lb_pass")
        })
        .collect();
    let _backends: Vec<BackendHost> = [Addressing::v4(), Addressing::v6()]
        .iter()
        .flat_map(|a| (0..3).map(move |i| (i, *a)))
        .map(|(i, a)| start_backend_in(&seg.switch, i, ForwardMode::Dr, &a).expect("backend"))
        .collect();

    let pins: Vec<String> = (0..2)
        .map(|i| {
            format!("/sys/fs/bpf/lb-ds-{}", lb_daemon::netns::unique_name("n")) + &i.to_string()
        })
        .collect();
    let c1 = config("lb1", 150, seg.nodes[0].dir(), &pins[0]);
    let c2 = config("lb2", 100, seg.nodes[1].dir(), &pins[1]);
    seg.nodes[0].start_ours(&c1).expect("lb1");
    seg.nodes[1].start_ours(&c2).expect("lb2");
    seg.wait_holder(VIP4, 0, Duration::from_secs(10))
        .expect("lb1 master");
    assert!(
        has(&seg, 0, VIP6),
        "the excluded IPv6 VIP comes with the instance"
    );
    assert!(
        serves(&seg, Addressing::v4()),
        "IPv4 through lb1\n{}",
        seg.logs()
    );
    assert!(
        serves(&seg, Addressing::v6()),
        "IPv6 through lb1\n{}",
        seg.logs()
    );

    seg.cut(0).expect("cut lb1");
    seg.wait_holder(VIP4, 1, Duration::from_secs(8))
        .expect("lb2 takes over");
    assert!(
        has(&seg, 1, VIP6) && !has(&seg, 0, VIP6),
        "the IPv6 VIP moves too"
    );
    assert!(
        serves(&seg, Addressing::v4()),
        "IPv4 through lb2\n{}",
        seg.logs()
    );
    assert!(
        serves(&seg, Addressing::v6()),
        "IPv6 through lb2\n{}",
        seg.logs()
    );
}
