//! `use_vmac` against keepalived using `use_vmac` too, in both roles: each node holds the
//! VIP on its macvlan `vrrp.51` with the virtual router MAC 00:00:5e:00:01:33, and the
//! master's adverts leave it with that MAC as source (the switch learns the MAC behind
//! whichever node is master); the client reaches the VIP throughout; the daemon removes
//! its macvlan when it stops. Needs root, keepalived.

use std::time::{Duration, Instant};

use lb_tests::vrrp_lab::{keepalived_conf, Ours, Segment};

const VIP: &str = "198.18.0.100";
const VMAC: &str = "vrrp.51";
const MAC: &str = "00:00:5e:00:01:33";

fn node(name: &str, priority: u8) -> Ours<'_> {
    Ours::backup(name, priority)
}

fn holds(seg: &Segment, i: usize) -> bool {
    seg.nodes[i].ns.has_address(VMAC, VIP)
}

fn wait(seg: &Segment, what: &str, ok: impl Fn(&Segment) -> bool) {
    let end = Instant::now() + Duration::from_secs(15);
    while !ok(seg) {
        assert!(Instant::now() < end, "{what}; logs:\n{}", seg.logs());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The client reaches the VIP.
fn client_pings(seg: &Segment) {
    let pinged = seg.nodes[2].ns.sh(&format!("ping -c 2 -W 1 -i 0.2 {VIP}"));
    assert!(
        pinged.is_ok(),
        "VIP unreachable: {pinged:?}\n{}",
        seg.logs()
    );
}

/// The switch port behind which the bridge learned the virtual router MAC (the
/// master's adverts and gratuitous ARPs leave its VMAC with that source).
fn vmac_port(seg: &Segment) -> Option<String> {
    let fdb = seg.switch.ns().sh("bridge fdb show").unwrap_or_default();
    fdb.lines()
        .find(|l| l.starts_with(MAC))
        .and_then(|l| l.split_whitespace().skip_while(|w| *w != "dev").nth(1))
        .map(String::from)
}

fn learned_on(seg: &Segment, i: usize) -> bool {
    vmac_port(seg).as_deref() == Some(seg.nodes[i].port.as_str())
}

fn link_mac(seg: &Segment, i: usize) -> String {
    let out = seg.nodes[i]
        .ns
        .ip(&["link", "show", VMAC])
        .unwrap_or_default();
    out.split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .unwrap_or("")
        .to_string()
}

#[test]
fn the_vip_keeps_its_virtual_mac_across_keepalived_and_ours() {
    let mut seg = Segment::new(3).expect("segment");
    let dir = seg.nodes[0].dir.clone();
    let ours = node("n1", 100).toml(&dir).replace(
        "virtual_router_id = 51\n",
        "virtual_router_id = 51\nuse_vmac = true\n",
    );
    let keepalived = keepalived_conf(&node("n2", 150)).replace(
        "  virtual_router_id 51\n",
        "  virtual_router_id 51\n  use_vmac\n",
    );

    // keepalived MASTER, ours BACKUP (it hears keepalived's adverts on its VMAC).
    seg.nodes[1]
        .start_keepalived(&keepalived)
        .expect("keepalived");
    wait(&seg, "keepalived takes the VIP on its VMAC", |s| {
        holds(s, 1)
    });
    seg.nodes[0].start_ours(&ours).expect("ours");
    wait(&seg, "ours creates its VMAC", |s| link_mac(s, 0) == MAC);
    std::thread::sleep(Duration::from_secs(4));
    assert!(!holds(&seg, 0), "ours stays BACKUP\n{}", seg.logs());
    client_pings(&seg);
    wait(&seg, "the switch learns the VMAC behind keepalived", |s| {
        learned_on(s, 1)
    });

    // keepalived stops: ours takes over, the VIP keeps its MAC.
    seg.nodes[1].stop().expect("stop keepalived");
    wait(&seg, "ours takes the VIP on its VMAC", |s| holds(s, 0));
    client_pings(&seg);
    // Our adverts leave the VMAC with its MAC: the switch moves it to our port.
    wait(&seg, "the switch learns the VMAC behind ours", |s| {
        learned_on(s, 0)
    });

    // keepalived is back with the higher priority: it preempts ours (our adverts reach
    // its VMAC, its adverts ours).
    seg.nodes[1]
        .start_keepalived(&keepalived)
        .expect("keepalived again");
    wait(&seg, "keepalived preempts", |s| holds(s, 1) && !holds(s, 0));
    client_pings(&seg);
    wait(&seg, "the VMAC back behind keepalived", |s| {
        learned_on(s, 1)
    });

    // Ours stops: its VMAC goes with it.
    seg.nodes[0].stop().expect("stop ours");
    wait(&seg, "ours removes its VMAC", |s| link_mac(s, 0).is_empty());
}
