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

/// keepalived's static track group: the instance tracks the interface of the static
/// lines naming the group (FAULT while it is down), and a static address or route whose
/// link comes back up is added again (the kernel dropped them with the link), as is a
/// static route deleted by hand.
#[test]
fn static_track_group_puts_the_instance_in_fault_and_restores_the_static_lines() {
    let mut seg = Segment::new(1).expect("segment");
    let ns = &seg.nodes[0].ns;
    ns.ip(&["link", "add", "tg0", "type", "veth", "peer", "name", "tg0p"])
        .expect("veth");
    ns.ip(&["link", "set", "tg0p", "up"]).expect("peer up");
    ns.ip(&["link", "set", "tg0", "up"]).expect("tg0 up");
    ns.ip(&["addr", "add", "192.0.2.1/24", "dev", "tg0"])
        .expect("address");
    let o = node("n1", 100);
    let t = format!(
        "{}\n[[track_group]]\nname = \"UPLINK\"\ngroup = [\"VI_1\"]\n\n[static]\nipaddress = [\"2001:db8:202::1/64 dev tg0 track_group UPLINK\"]\nroutes = [\"10.220.0.0/16 via 192.0.2.254 dev tg0 track_group UPLINK\"]\n",
        o.toml(seg.nodes[0].dir())
    );
    seg.nodes[0].start_ours(&t).expect("ours");
    seg.wait_holder(VIP, 0, Duration::from_secs(10))
        .expect("master");
    let statics_present = |seg: &Segment| {
        let route = ip(seg, 0, &["route", "show", "10.220.0.0/16"]);
        let addrs = ip(seg, 0, &["-6", "addr", "show", "dev", "tg0"]);
        (
            route.contains("via 192.0.2.254 dev tg0"),
            addrs.contains("2001:db8:202::1/64"),
        )
    };
    let wait_statics = |seg: &Segment, want: (bool, bool), what: &str| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while statics_present(seg) != want {
            assert!(
                Instant::now() < deadline,
                "{what}: route, address = {:?}, want {want:?}\n{}",
                statics_present(seg),
                seg.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait_statics(&seg, (true, true), "at start");
    // Deleted by hand while its link is up: restored at once (keepalived too).
    seg.nodes[0]
        .ns
        .ip(&["route", "del", "10.220.0.0/16"])
        .expect("delete the static route");
    wait_statics(&seg, (true, true), "route deleted by hand");
    assert!(
        seg.nodes[0]
            .log()
            .contains("a static route was deleted: restoring it"),
        "{}",
        seg.nodes[0].log()
    );
    // The tracked link goes down: the kernel drops the route and the IPv6 address, the
    // instance goes to FAULT and gives up the VIP.
    seg.nodes[0]
        .ns
        .ip(&["link", "set", "tg0", "down"])
        .expect("tg0 down");
    seg.wait_holders(VIP, &[], Duration::from_secs(10))
        .expect("FAULT releases the VIP");
    wait_statics(&seg, (false, false), "link down");
    assert!(
        seg.nodes[0].log().contains("FAULT"),
        "{}",
        seg.nodes[0].log()
    );
    // Back up: both are restored and the instance is MASTER again.
    seg.nodes[0]
        .ns
        .ip(&["link", "set", "tg0", "up"])
        .expect("tg0 up");
    wait_statics(&seg, (true, true), "link up again");
    seg.wait_holder(VIP, 0, Duration::from_secs(10))
        .expect("master again");
    assert!(
        seg.nodes[0]
            .log()
            .contains("link up: static address restored"),
        "{}",
        seg.nodes[0].log()
    );
}
