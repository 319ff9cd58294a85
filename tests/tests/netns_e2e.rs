//! End to end in network namespaces: a client, the LB node (XDP on a veth) and three
//! backends on one L2 segment, serving real TCP, in DR and in TUN mode, over IPv4 and
//! IPv6 (IPv6-in-IPv6). Needs root.

use std::{collections::HashMap, net::IpAddr};

use lb_daemon::{
    dataplane::ForwardMode,
    lab::{backend_name, Lab, LabOptions},
};

fn lab(opts: LabOptions) -> Lab {
    Lab::start(opts).expect("start the lab (root, bpffs, built eBPF object)")
}

fn spread(lab: &Lab, n: usize) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for reply in lab.requests(n).expect("requests through the VIP") {
        assert_eq!(
            reply.client_seen, lab.opts.addrs.client,
            "backend sees the client's real address"
        );
        *counts.entry(reply.backend).or_insert(0) += 1;
    }
    counts
}

fn check_mode(opts: LabOptions) {
    let mode = opts.mode;
    let addrs = opts.addrs;
    let mut lab = lab(opts);
    // Every backend gets connections (each holds a third of the Maglev table).
    let counts = spread(&lab, 300);
    for i in 0..3 {
        let n = counts.get(&backend_name(i)).copied().unwrap_or(0);
        assert!(
            n >= 50,
            "{mode:?}: {} got {n} of 300: {counts:?}",
            backend_name(i)
        );
    }
    // A given flow always reaches the same backend: the same 5-tuple, reconnected.
    for port in [40001u16, 40002, 40003] {
        let first = lab.request(Some(port)).expect("request").backend;
        for _ in 0..5 {
            assert_eq!(
                lab.request(Some(port)).expect("request").backend,
                first,
                "port {port}"
            );
        }
    }
    // A long-lived connection keeps its backend while the backend set changes.
    let mut conn = lab.open().expect("long-lived connection");
    let first = conn.ask().expect("ask").backend;
    lab.update_service(|s| {
        for b in &mut s.backends {
            b.weight = if backend_name_of(&addrs, b.addr) == first {
                0
            } else {
                1
            };
        }
    })
    .expect("drain the connection's backend");
    for _ in 0..5 {
        assert_eq!(
            conn.ask().expect("ask after drain").backend,
            first,
            "established flow continues"
        );
    }
    // New connections avoid the drained backend.
    let counts = spread(&lab, 60);
    assert!(
        !counts.contains_key(&first),
        "{first} drained but got {counts:?}"
    );
    let status = lab.dataplane().status().expect("status");
    assert!(
        status[0].traffic.packets > 300,
        "service counters: {:?}",
        status[0].traffic
    );
}

fn backend_name_of(addrs: &lb_daemon::lab::Addressing, addr: IpAddr) -> String {
    let i = (0..3)
        .find(|&i| addrs.backend(i) == addr)
        .expect("lab backend");
    backend_name(i)
}

#[test]
fn direct_routing_serves_real_tcp() {
    check_mode(LabOptions::new(ForwardMode::Dr, 3));
}

#[test]
fn ip_in_ip_tunnel_serves_real_tcp() {
    check_mode(LabOptions::new(ForwardMode::Tun, 3));
}

#[test]
fn ipv6_direct_routing_serves_real_tcp() {
    check_mode(LabOptions::new(ForwardMode::Dr, 3).ipv6());
}

#[test]
fn ipv6_in_ipv6_tunnel_serves_real_tcp() {
    check_mode(LabOptions::new(ForwardMode::Tun, 3).ipv6());
}

#[test]
fn attach_generic_detach_and_unknown_interface() {
    use lb_daemon::{
        dataplane::{AttachMode, Dataplane, DataplaneError, LoadOptions},
        netns::{veth, Netns},
    };
    let a = Netns::new("lbt-att").expect("netns");
    let b = Netns::new("lbt-att").expect("netns");
    veth(&a, "v0", &b, "v1").expect("veth");
    let pin_dir = lb_tests::harness::unique_pin_dir("att");
    let opts = LoadOptions {
        pin_dir: pin_dir.clone(),
        ..LoadOptions::default()
    };
    let link_pin = lb_daemon::dataplane::link_pin_path(&pin_dir, "v0");
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        a.run(move || {
            let mut dp = Dataplane::load(&opts).expect("load");
            let missing = dp.attach("nosuch0").expect_err("unknown interface");
            assert!(
                matches!(missing, DataplaneError::NoInterface(_)),
                "{missing}"
            );
            assert!(missing.to_string().contains("nosuch0"));
            assert_eq!(
                dp.attach_mode("v0", AttachMode::Generic)
                    .expect("generic attach"),
                AttachMode::Generic
            );
            let shown = std::process::Command::new("ip")
                .args(["link", "show", "v0"])
                .output()
                .expect("ip");
            let shown = String::from_utf8_lossy(&shown.stdout).to_string();
            assert!(shown.contains("xdpgeneric"), "{shown}");
            assert_eq!(dp.attached(), vec![("v0".to_string(), AttachMode::Generic)]);
            assert!(link_pin.exists(), "the link is pinned at attach");
            dp.detach("v0").expect("detach");
            assert!(!link_pin.exists(), "detach removes the link pin");
            let shown = std::process::Command::new("ip")
                .args(["link", "show", "v0"])
                .output()
                .expect("ip");
            let shown = String::from_utf8_lossy(&shown.stdout).to_string();
            assert!(!shown.contains("xdp"), "{shown}");
            assert!(dp.attached().is_empty());
            // Native mode works on veth too.
            assert_eq!(dp.attach("v0").expect("attach"), AttachMode::Native);
        })
    }));
    lb_daemon::dataplane::bpffs::remove_pins(&pin_dir);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}
