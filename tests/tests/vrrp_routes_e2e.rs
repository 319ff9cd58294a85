//! `virtual_ipaddress_excluded`, `virtual_routes`, `virtual_rules` follow the instance's
//! state, and `[static]` addresses, routes and rules live as long as the daemon, over
//! rtnetlink (keepalived's syntax). Needs root, iproute2 and keepalived.

use std::time::{Duration, Instant};

use lb_tests::vrrp_lab::{keepalived_conf, Ours, Segment};

const VIP: &str = "198.18.0.100";

fn node(name: &'static str, priority: u8) -> Ours<'static> {
    Ours::backup(name, priority)
}

const EXTRA: &str = r#"virtual_ipaddress_excluded = ["198.18.0.101/24", "2001:db8:77::1/64"]
virtual_routes = [
  "10.81.0.0/16 via 198.18.0.254 dev eth0 metric 10",
  "default via 198.18.0.254 table 100 src 198.18.0.100",
  "blackhole 10.99.0.0/16",
  "10.82.0.0/16 nexthop via 198.18.0.253 dev eth0 weight 2 nexthop via 198.18.0.252 dev eth0",
  "10.83.0.0/16 via 198.18.0.251 or 198.18.0.250",
]
virtual_rules = [
  "from 198.18.0.100 table 100 preference 100",
  "fwmark 0x51/0xff lookup 100 preference 101",
]

[static]
ipaddress = ["192.0.2.5/24 dev eth0 label eth0:st"]
routes = ["10.200.0.0/16 via 192.0.2.254 dev eth0 table 200"]
rules = ["to 10.200.0.0/16 table 200 preference 200"]
"#;

fn ip(seg: &Segment, i: usize, args: &[&str]) -> String {
    seg.nodes[i].ns.ip(args).unwrap_or_default()
}

/// What node `i` has of the instance's and the static state, one flag each.
fn state(seg: &Segment, i: usize) -> [bool; 10] {
    let addrs = ip(seg, i, &["addr", "show", "dev", "eth0"]);
    let main = ip(seg, i, &["route", "show"]);
    let t100 = ip(seg, i, &["route", "show", "table", "100"]);
    let rules = ip(seg, i, &["rule", "show"]);
    let t200 = ip(seg, i, &["route", "show", "table", "200"]);
    [
        addrs.contains("198.18.0.101/24") && addrs.contains("2001:db8:77::1/64"),
        main.contains("10.81.0.0/16 via 198.18.0.254 dev eth0 proto 18 metric 10")
            || main.contains("10.81.0.0/16 via 198.18.0.254 dev eth0 proto keepalived metric 10"),
        t100.contains("default via 198.18.0.254 dev eth0") && t100.contains("src 198.18.0.100"),
        main.contains("blackhole 10.99.0.0/16"),
        rules.contains("100:\tfrom 198.18.0.100 lookup 100"),
        rules.contains("101:\tfrom all fwmark 0x51/0xff lookup 100"),
        addrs.contains("192.0.2.5/24") && addrs.contains("eth0:st"),
        t200.contains("10.200.0.0/16 via 192.0.2.254 dev eth0"),
        rules.contains("200:\tfrom all to 10.200.0.0/16 lookup 200"),
        // Multipath: `nexthop ...` with weights, and keepalived's deprecated `or`.
        main.contains("10.82.0.0/16")
            && main.contains("nexthop via 198.18.0.253 dev eth0 weight 2")
            && main.contains("nexthop via 198.18.0.252 dev eth0 weight 1")
            && main.contains("10.83.0.0/16")
            && main.contains("nexthop via 198.18.0.251 dev eth0 weight 1")
            && main.contains("nexthop via 198.18.0.250 dev eth0 weight 1"),
    ]
}

const MASTER: [bool; 10] = [true; 10];
const BACKUP: [bool; 10] = [
    false, false, false, false, false, false, true, true, true, false,
];
const STOPPED: [bool; 10] = [false; 10];

fn wait_state(seg: &Segment, i: usize, want: [bool; 10], what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = state(seg, i);
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: got {got:?}, want {want:?}\naddr: {}\nroutes: {}\ntable 100: {}\nrules: {}\n{}",
            ip(seg, i, &["addr"]),
            ip(seg, i, &["route"]),
            ip(seg, i, &["route", "show", "table", "100"]),
            ip(seg, i, &["rule"]),
            seg.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn routes_rules_and_excluded_addresses_follow_the_state_and_static_ones_the_daemon() {
    let mut seg = Segment::new(2).expect("segment");
    for i in 0..2 {
        seg.nodes[i]
            .ns
            .ip(&[
                "-6",
                "addr",
                "add",
                "2001:db8:77::fe/64",
                "dev",
                "eth0",
                "nodad",
            ])
            .ok();
    }
    let o = node("n1", 100);
    let t = format!("{}{EXTRA}", o.toml(seg.nodes[0].dir()));
    seg.nodes[0].start_ours(&t).expect("ours");
    // Static state at once, the instance's with mastership.
    seg.wait_holder(VIP, 0, Duration::from_secs(10))
        .expect("ours master");
    wait_state(&seg, 0, MASTER, "master");
    // A higher priority (keepalived) takes over: the instance's state goes, the static stays.
    let k = node("k2", 150);
    seg.nodes[1]
        .start_keepalived(&keepalived_conf(&k))
        .expect("keepalived");
    seg.wait_holder(VIP, 1, Duration::from_secs(10))
        .expect("keepalived master");
    wait_state(&seg, 0, BACKUP, "backup");
    // keepalived gone: master again, everything back.
    seg.nodes[1].stop().expect("stop keepalived");
    seg.wait_holder(VIP, 0, Duration::from_secs(10))
        .expect("ours master again");
    wait_state(&seg, 0, MASTER, "master again");
    // A graceful stop removes all of it.
    seg.nodes[0].stop().expect("stop ours");
    wait_state(&seg, 0, STOPPED, "stopped");
}
