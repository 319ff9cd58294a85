//! `use_vmac` against keepalived using `use_vmac` too, in both roles, for IPv4 (VRRPv2)
//! and IPv6 (VRRPv3): each node holds the VIP on its macvlan `vrrp.51` with the virtual
//! router MAC (00:00:5e:00:01:33, IPv6 00:00:5e:00:02:33), and the master's adverts leave
//! it with that MAC as source (the switch learns the MAC behind whichever node is
//! master); the client reaches the VIP throughout; the daemon removes its macvlan when it
//! stops. Needs root, keepalived.

use std::time::{Duration, Instant};

use lb_tests::vrrp_lab::{keepalived_conf, Ours, Segment};

const VMAC: &str = "vrrp.51";

/// One family's case.
struct Case {
    version: u8,
    /// The VIP with its prefix, as configured.
    vip: &'static str,
    mac: &'static str,
    /// The client's own address in the VIP's subnet (IPv6: added for the test).
    client: Option<&'static str>,
}

const V4: Case = Case {
    version: 2,
    vip: "198.18.0.100/24",
    mac: "00:00:5e:00:01:33",
    client: None,
};

const V6: Case = Case {
    version: 3,
    vip: "2001:db8:51::100/64",
    mac: "00:00:5e:00:02:33",
    client: Some("2001:db8:51::3/64"),
};

impl Case {
    fn addr(&self) -> &'static str {
        self.vip.split('/').next().unwrap_or(self.vip)
    }

    fn node<'a>(&self, name: &'a str, priority: u8) -> Ours<'a> {
        Ours {
            version: self.version,
            vip: self.vip,
            ..Ours::backup(name, priority)
        }
    }
}

fn holds(seg: &Segment, i: usize, case: &Case) -> bool {
    seg.nodes[i].ns.has_address(VMAC, case.addr())
}

fn wait(seg: &Segment, what: &str, ok: impl Fn(&Segment) -> bool) {
    let end = Instant::now() + Duration::from_secs(15);
    while !ok(seg) {
        assert!(Instant::now() < end, "{what}; logs:\n{}", seg.logs());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The client reaches the VIP (within a few seconds of a takeover: the switch learns the
/// virtual MAC's new port from the new master's frames; a frame the old master sends from
/// its VMAC just after, such as an IPv6 stack's MLD report, can point it back until the
/// new master's next advert).
fn client_pings(seg: &Segment, case: &Case) {
    let vip = case.addr();
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        let pinged = seg.nodes[2].ns.sh(&format!("ping -c 1 -W 1 {vip}"));
        if pinged.is_ok() {
            return;
        }
        assert!(
            Instant::now() < end,
            "VIP unreachable: {pinged:?}\n{}",
            seg.logs()
        );
    }
}

/// The switch port behind which the bridge learned the virtual router MAC (the
/// master's adverts and gratuitous ARPs leave its VMAC with that source).
fn vmac_port(seg: &Segment, mac: &str) -> Option<String> {
    let fdb = seg.switch.ns().sh("bridge fdb show").unwrap_or_default();
    fdb.lines()
        .find(|l| l.starts_with(mac))
        .and_then(|l| l.split_whitespace().skip_while(|w| *w != "dev").nth(1))
        .map(String::from)
}

fn learned_on(seg: &Segment, i: usize, case: &Case) -> bool {
    vmac_port(seg, case.mac).as_deref() == Some(seg.nodes[i].port.as_str())
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
    keeps_its_virtual_mac(&V4);
}

#[test]
fn an_ipv6_vip_keeps_its_virtual_mac_across_keepalived_and_ours() {
    keeps_its_virtual_mac(&V6);
}

fn keeps_its_virtual_mac(case: &Case) {
    let mut seg = Segment::new(3).expect("segment");
    if let Some(client) = case.client {
        seg.nodes[2]
            .ns
            .ip(&["-6", "addr", "add", client, "dev", "eth0", "nodad"])
            .expect("client address");
    }
    let dir = seg.nodes[0].dir.clone();
    let ours = case.node("n1", 100).toml(&dir).replace(
        "virtual_router_id = 51\n",
        "virtual_router_id = 51\nuse_vmac = true\n",
    );
    let keepalived = keepalived_conf(&case.node("n2", 150)).replace(
        "  virtual_router_id 51\n",
        "  virtual_router_id 51\n  use_vmac\n",
    );

    // keepalived MASTER, ours BACKUP (it hears keepalived's adverts on its VMAC).
    seg.nodes[1]
        .start_keepalived(&keepalived)
        .expect("keepalived");
    wait(&seg, "keepalived takes the VIP on its VMAC", |s| {
        holds(s, 1, case)
    });
    seg.nodes[0].start_ours(&ours).expect("ours");
    wait(&seg, "ours creates its VMAC", |s| {
        link_mac(s, 0) == case.mac
    });
    std::thread::sleep(Duration::from_secs(4));
    assert!(!holds(&seg, 0, case), "ours stays BACKUP\n{}", seg.logs());
    client_pings(&seg, case);
    wait(&seg, "the switch learns the VMAC behind keepalived", |s| {
        learned_on(s, 1, case)
    });

    // keepalived stops: ours takes over, the VIP keeps its MAC.
    seg.nodes[1].stop().expect("stop keepalived");
    wait(&seg, "ours takes the VIP on its VMAC", |s| {
        holds(s, 0, case)
    });
    client_pings(&seg, case);
    // Our adverts leave the VMAC with its MAC: the switch moves it to our port.
    wait(&seg, "the switch learns the VMAC behind ours", |s| {
        learned_on(s, 0, case)
    });

    // keepalived is back with the higher priority: it preempts ours (our adverts reach
    // its VMAC, its adverts ours).
    seg.nodes[1]
        .start_keepalived(&keepalived)
        .expect("keepalived again");
    wait(&seg, "keepalived preempts", |s| {
        holds(s, 1, case) && !holds(s, 0, case)
    });
    client_pings(&seg, case);
    wait(&seg, "the VMAC back behind keepalived", |s| {
        learned_on(s, 1, case)
    });

    // Ours stops: its VMAC goes with it.
    seg.nodes[0].stop().expect("stop ours");
    wait(&seg, "ours removes its VMAC", |s| link_mac(s, 0).is_empty());
}
