//! `lb-daemon explain` against a programmed data plane: for many flows, what it reads
//! from the pinned maps is what the XDP program does with the flow's packet
//! (BPF_PROG_TEST_RUN): the Maglev backend before the flow is known, the connection
//! table's after, with a SYN's Maglev choice when they differ; no service, no answer
//! (or, for a VIP in no-accept mode, a drop).
//! Needs root and the eBPF object.

use std::net::{IpAddr, SocketAddr};

use lb_daemon::dataplane::{
    explain::{explain, Explanation, Miss, PinnedMaps, Query},
    ForwardMode, Protocol,
};
use lb_tests::{
    frames::{self, Flow},
    harness::*,
};

const VIP: &str = "198.18.1.100";
const CLIENT: &str = "203.0.113.7";
const BACKENDS: [&str; 3] = ["198.18.0.21", "198.18.0.22", "198.18.0.23"];

/// Where the program sent `flow`'s packet (DR: the backend's MAC).
fn forwarded(t: &mut TestDataplane, flow: &Flow) -> IpAddr {
    let out = t.run(&frames::frame(LB_MAC, CLIENT_MAC, None, flow, b"x"));
    assert_eq!(out.action, XDP_TX, "forwarded");
    BACKENDS
        .iter()
        .map(|a| a.parse::<IpAddr>().unwrap())
        .find(|a| backend_mac(*a) == out.frame[0..6])
        .expect("a backend's MAC")
}

fn query(sport: u16, dport: u16) -> Query {
    Query {
        client: SocketAddr::new(CLIENT.parse().unwrap(), sport),
        vip: SocketAddr::new(VIP.parse().unwrap(), dport),
        protocol: Protocol::Tcp,
    }
}

#[test]
fn explain_reads_what_the_program_does() {
    let backends: Vec<(&str, u32)> = BACKENDS.iter().map(|b| (*b, 1)).collect();
    let spec = service(VIP, 80, Protocol::Tcp, ForwardMode::Dr, &backends);
    let mut t = TestDataplane::new();
    t.dp.apply_service(&spec).expect("apply service");
    let maps = PinnedMaps::open(t.dp.pin_dir()).expect("pinned maps");
    let now = u64::MAX / 2;
    let mut seen = std::collections::BTreeSet::new();
    for sport in 40000..40060 {
        let q = query(sport, 80);
        let before = explain(&maps, &q, 0);
        let Explanation::Maglev {
            miss: Miss::NoEntry,
            ref backend,
            slot,
            ..
        } = before
        else {
            panic!("a new flow is Maglev's: {before:?}");
        };
        assert!(slot < spec.table_size, "slot {slot} in the service's table");
        let sent = forwarded(&mut t, &Flow::tcp(CLIENT, sport, VIP, 80));
        assert_eq!(backend.addr, Some(SocketAddr::new(sent, 80)), "{before}");
        seen.insert(sent);
        // Now the connection table has it (asked as of time 0: never idle).
        let after = explain(&maps, &q, 0);
        match after {
            Explanation::Connection { ref backend, .. } => {
                assert_eq!(backend.addr, Some(SocketAddr::new(sent, 80)))
            }
            other => panic!("the connection table remembers the flow: {other:?}"),
        }
        // Long after, the entry has expired and Maglev decides again.
        assert!(matches!(
            explain(&maps, &q, now),
            Explanation::Maglev {
                miss: Miss::Expired { .. },
                ..
            }
        ));
    }
    assert_eq!(seen.len(), 3, "the flows spread over the backends");
    assert_eq!(explain(&maps, &query(40000, 81), 0), Explanation::NoService);
    // A VIP in no-accept mode: what no service takes is dropped, as the program does.
    let strict: std::collections::BTreeSet<IpAddr> = [VIP.parse().unwrap()].into();
    t.dp.set_strict_vips(&strict).expect("set strict VIPs");
    assert_eq!(
        explain(&maps, &query(40000, 81), 0),
        Explanation::StrictDrop
    );
    let out = t.run(&frames::frame(
        LB_MAC,
        CLIENT_MAC,
        None,
        &Flow::tcp(CLIENT, 40000, VIP, 81),
        b"x",
    ));
    assert_eq!(out.action, XDP_DROP, "dropped, as explained");
    t.dp.set_strict_vips(&Default::default()).expect("clear");
    assert_eq!(explain(&maps, &query(40000, 81), 0), Explanation::NoService);

    // The CLI prints the same answer.
    let out = std::process::Command::new(lb_tests::vrrp_lab::daemon_bin())
        .args(["explain", &format!("{CLIENT}:40000"), &format!("{VIP}:80")])
        .arg("--pin-dir")
        .arg(t.dp.pin_dir())
        .output()
        .expect("lb-daemon explain");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want = explain(&maps, &query(40000, 80), 0)
        .backend()
        .expect("a backend");
    assert!(text.contains(&format!("backend: {want}")), "{text}");
    assert!(text.contains("connection table"), "{text}");
}
