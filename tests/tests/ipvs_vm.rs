//! The IPVS data plane on a real IPVS kernel. This machine's kernel may have no IPVS, so
//! these tests are ignored in a plain `cargo test`; `cargo xtask test --vm` boots a
//! Debian kernel that has it (virtme-ng, see docs/ipvs.md) and runs them there with
//! `--ignored`. Each test programs IPVS inside its own network namespace (IPVS tables are
//! per namespace), deleted on drop.

use std::{
    io::{Read, Write},
    net::{IpAddr, TcpStream},
    process::Command,
    sync::Once,
    time::Duration,
};

use lb_daemon::{
    config::{Config, LbAlgo},
    daemon::{
        dataplane_owner::{self, Msg, Owner, Plane},
        plane_choice,
    },
    dataplane::{Protocol, ServiceId},
    health::{runner::Update, verdict::DesiredBackend},
    ipvs::{self, DesiredService, DestEntry, Forward, Ipvs, IpvsError, ServiceEntry},
    netns::{veth, Netns},
    vrrp::instance::GateRequest,
};
use lb_tests::ipvsadm::{normalise_ipvsadm, normalise_table};
use tokio::sync::oneshot;

/// Runs first (tests run in name order, one at a time, in the VM): the daemon loads
/// `ip_vs` itself when the family is missing.
#[test]
#[ignore = "needs a kernel with IPVS: cargo xtask test --vm"]
fn a_first_open_loads_ip_vs() {
    let loaded = |m: &str| {
        std::fs::read_to_string("/proc/modules")
            .unwrap()
            .lines()
            .any(|l| l.split_whitespace().next() == Some(m))
    };
    let was_loaded = loaded("ip_vs");
    let ns = Netns::new("ipvs").unwrap();
    let mut ipvs = open_in(&ns);
    assert!(ipvs.table().unwrap().is_empty());
    assert!(loaded("ip_vs"), "ip_vs was loaded before: {was_loaded}");
}

/// Loads ip_vs and every scheduler module the kernel has (a missing one is tested).
fn modules() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let st = Command::new("modprobe").arg("ip_vs").status().unwrap();
        assert!(
            st.success(),
            "modprobe ip_vs failed: this kernel has no IPVS"
        );
        for s in LbAlgo::IPVS_SCHEDULERS {
            let _ = Command::new("modprobe")
                .arg(format!("ip_vs_{s}"))
                .stderr(std::process::Stdio::null())
                .status();
        }
    });
}

/// Whether the kernel has the scheduler's module (or has it built in).
fn has_scheduler(s: &str) -> bool {
    std::fs::read_to_string("/proc/modules")
        .unwrap()
        .lines()
        .any(|l| l.split_whitespace().next() == Some(&format!("ip_vs_{s}")))
}

fn director() -> Netns {
    modules();
    Netns::new("ipvs").unwrap()
}

/// An IPVS manager whose socket lives in `ns` (a socket keeps the namespace it was
/// opened in, whichever thread uses it).
fn open_in(ns: &Netns) -> Ipvs {
    ns.run(|| ipvs::open().expect("opening IPVS in the namespace"))
}

fn ipvsadm(ns: &Netns) -> Vec<String> {
    normalise_ipvsadm(&ns.sh("ipvsadm -Ln").unwrap())
}

fn addr(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// One service per scheduler: families, protocols (TCP, UDP, SCTP), kinds and
/// persistence rotate.
fn every_kind() -> Vec<DesiredService> {
    LbAlgo::IPVS_SCHEDULERS
        .iter()
        .enumerate()
        .map(|(i, sched)| {
            let v6 = i % 2 == 1;
            let vip = if v6 { "fd00:200::1" } else { "10.200.0.1" };
            // SCTP too: IPVS balances it (the XDP program does not).
            let protocol = [Protocol::Tcp, Protocol::Udp, Protocol::Sctp][(i / 2) % 3];
            let id = ServiceId {
                vip: addr(vip),
                port: 1000 + i as u16,
                protocol,
            };
            let forward = [Forward::Masq, Forward::Route, Forward::Tunnel][i % 3];
            let persistence = (i % 4 == 0).then_some(60 + i as u32);
            let dests = (1..=3)
                .map(|n| {
                    let a = if v6 {
                        format!("fd00:201::{n}")
                    } else {
                        format!("10.201.0.{n}")
                    };
                    let port = if forward == Forward::Masq {
                        8000 + i as u16
                    } else {
                        id.port
                    };
                    DestEntry::new(addr(&a), port, forward, n)
                })
                .collect();
            DesiredService {
                service: ServiceEntry::new(id, sched, persistence),
                dests,
            }
        })
        .collect()
}

#[test]
#[ignore = "needs a kernel with IPVS: cargo xtask test --vm"]
fn every_kind_reads_back_the_same_through_our_code_and_ipvsadm() {
    let ns = director();
    let all = every_kind();
    let (available, missing): (Vec<_>, Vec<_>) = all
        .into_iter()
        .partition(|d| has_scheduler(&d.service.scheduler));
    assert!(available.len() >= 13, "schedulers loaded: {available:?}");
    let want: Vec<DesiredService> = available.clone();
    let mut ipvs = open_in(&ns);
    for d in available {
        ipvs.apply(d).unwrap();
    }
    // A scheduler this kernel lacks (twos before 6.2): the error names the module.
    for d in missing {
        let e = ipvs.apply(d.clone()).unwrap_err();
        assert!(matches!(e, IpvsError::SchedulerMissing { .. }), "{e:?}");
        assert!(e.to_string().contains("modprobe ip_vs_"), "{e}");
        ipvs.remove(&d.service.id).unwrap();
    }
    let table = ipvs.table().unwrap();
    let ours = normalise_table(&table);
    let theirs = ipvsadm(&ns);
    assert_eq!(ours, theirs);
    // And both are what we asked for.
    let wanted: Vec<_> = want
        .iter()
        .map(|d| (d.service.clone(), d.dests.clone()))
        .collect();
    assert_eq!(normalise_table(&wanted), ours);
    assert_eq!(ours.len(), want.len() * 4, "{ours:#?}");
    // Cleanup removes them all.
    assert_eq!(ipvs.cleanup().unwrap(), want.len());
    assert!(ipvsadm(&ns).is_empty());
}

fn web(weights: &[(&str, u32)]) -> DesiredService {
    let id = ServiceId {
        vip: addr("10.210.0.1"),
        port: 80,
        protocol: Protocol::Tcp,
    };
    DesiredService {
        service: ServiceEntry::new(id, "wlc", None),
        dests: weights
            .iter()
            .map(|(a, w)| DestEntry::new(addr(a), 80, Forward::Route, *w))
            .collect(),
    }
}

#[test]
#[ignore = "needs a kernel with IPVS: cargo xtask test --vm"]
fn manual_ipvsadm_changes_are_corrected_and_foreign_services_kept() {
    let ns = director();
    let mut ipvs = open_in(&ns);
    ipvs.apply(web(&[("10.211.0.1", 1), ("10.211.0.2", 1)]))
        .unwrap();
    // By hand: a weight changed, a real added, the scheduler changed, a foreign service.
    ns.sh("ipvsadm -e -t 10.210.0.1:80 -r 10.211.0.1:80 -g -w 9 && \
           ipvsadm -a -t 10.210.0.1:80 -r 10.211.0.77:80 -g -w 1 && \
           ipvsadm -E -t 10.210.0.1:80 -s rr && \
           ipvsadm -A -u 10.212.0.1:53 -s rr")
        .unwrap();
    let report = ipvs.reconcile().unwrap();
    assert_eq!(report.applied.len(), 3, "{:?}", report.applied);
    assert_eq!(report.new_foreign.len(), 1);
    assert_eq!(
        ipvsadm(&ns),
        vec![
            "TCP 10.210.0.1:80 -> 10.211.0.1:80 Route 1",
            "TCP 10.210.0.1:80 -> 10.211.0.2:80 Route 1",
            "TCP 10.210.0.1:80 wlc",
            "UDP 10.212.0.1:53 rr",
        ]
    );
    // Our service deleted by hand comes back; stopping removes ours only.
    ns.sh("ipvsadm -D -t 10.210.0.1:80").unwrap();
    ipvs.reconcile().unwrap();
    assert_eq!(ipvs.table().unwrap().len(), 2);
    ipvs.cleanup().unwrap();
    assert_eq!(ipvsadm(&ns), vec!["UDP 10.212.0.1:53 rr"]);
}

/// keepalived's `lvs_method` inside `real_server` and `sorry_server_lvs_method`: one
/// service whose destinations are forwarded three ways.
const MIXED_CONFIG: &str = r#"
[global]
dataplane = "ipvs"

[[virtual_server]]
address = "10.230.0.1"
port = 80
lb_algo = "rr"
lb_kind = "DR"
sorry_server = { address = "10.231.0.9", port = 8081, lb_kind = "NAT" }
[[virtual_server.real_server]]
address = "10.231.0.1"
[[virtual_server.real_server]]
address = "10.231.0.2"
port = 8080
lb_kind = "NAT"
[[virtual_server.real_server]]
address = "10.231.0.3"
lb_kind = "TUN"
"#;

#[test]
#[ignore = "needs a kernel with IPVS: cargo xtask test --vm"]
fn each_real_keeps_its_own_forwarding_method() {
    let ns = director();
    let config = Config::from_str(MIXED_CONFIG, "lb.toml").unwrap().config;
    let vs = &config.virtual_servers[0];
    let backend = |a: &str, port, sorry| DesiredBackend {
        addr: addr(a),
        port,
        weight: 1,
        sorry,
    };
    let reals = [
        backend("10.231.0.1", 80, false),
        backend("10.231.0.2", 8080, false),
        backend("10.231.0.3", 80, false),
    ];
    let mut ipvs = open_in(&ns);
    ipvs.apply(ipvs::from_config::desired_service(vs, &reals))
        .unwrap();
    let want = [
        "TCP 10.230.0.1:80 -> 10.231.0.1:80 Route 1",
        "TCP 10.230.0.1:80 -> 10.231.0.2:8080 Masq 1",
        "TCP 10.230.0.1:80 -> 10.231.0.3:80 Tunnel 1",
        "TCP 10.230.0.1:80 rr",
    ];
    assert_eq!(ipvsadm(&ns), want);
    // A method changed by hand is put back.
    ns.sh("ipvsadm -e -t 10.230.0.1:80 -r 10.231.0.3:80 -g -w 1")
        .unwrap();
    assert!(ipvsadm(&ns).contains(&"TCP 10.230.0.1:80 -> 10.231.0.3:80 Route 1".to_string()));
    let report = ipvs.reconcile().unwrap();
    assert_eq!(report.applied.len(), 1, "{:?}", report.applied);
    assert_eq!(ipvsadm(&ns), want);
    // The sorry server (quorum lost) is reached by its own method.
    ipvs.apply(ipvs::from_config::desired_service(
        vs,
        &[backend("10.231.0.9", 8081, true)],
    ))
    .unwrap();
    assert_eq!(
        ipvsadm(&ns),
        vec![
            "TCP 10.230.0.1:80 -> 10.231.0.9:8081 Masq 1",
            "TCP 10.230.0.1:80 rr",
        ]
    );
    ipvs.cleanup().unwrap();
    assert!(ipvsadm(&ns).is_empty());
}

/// keepalived's `lvs_method TUN type gue port 6080 csum` and per-real connection
/// thresholds (`uthreshold`, `lthreshold`).
const TUNNEL_CONFIG: &str = r#"
[global]
dataplane = "ipvs"

[[virtual_server]]
address = "10.232.0.1"
port = 80
lb_algo = "rr"
lb_kind = "TUN"
tunnel_type = "gue"
tunnel_port = 6080
tunnel_checksum = "csum"
[[virtual_server.real_server]]
address = "10.233.0.1"
uthreshold = 200
lthreshold = 150
[[virtual_server.real_server]]
address = "10.233.0.2"
tunnel_type = "gre"
"#;

/// The `ipvsadm -Ln OPTION` line of the destination `addr`.
fn ipvsadm_dest_line(ns: &Netns, option: &str, addr: &str) -> String {
    let out = ns.sh(&format!("ipvsadm -Ln {option}")).unwrap();
    out.lines()
        .find(|l| l.contains(&format!("{addr}:")))
        .unwrap_or_else(|| panic!("no {addr} in ipvsadm -Ln {option}:\n{out}"))
        .to_string()
}

#[test]
#[ignore = "needs a kernel with IPVS: cargo xtask test --vm"]
fn gue_and_gre_tunnels_and_thresholds_reach_ipvs() {
    let ns = director();
    let config = Config::from_str(TUNNEL_CONFIG, "lb.toml").unwrap().config;
    let vs = &config.virtual_servers[0];
    let reals: Vec<DesiredBackend> = ["10.233.0.1", "10.233.0.2"]
        .iter()
        .map(|a| DesiredBackend {
            addr: addr(a),
            port: 80,
            weight: 1,
            sorry: false,
        })
        .collect();
    let mut ipvs = open_in(&ns);
    ipvs.apply(ipvs::from_config::desired_service(vs, &reals))
        .unwrap();
    // ipvsadm shows what the kernel holds.
    let gue = ipvsadm_dest_line(&ns, "--tun-info", "10.233.0.1");
    assert!(
        gue.contains("gue") && gue.contains("6080"),
        "GUE on port 6080: {gue}"
    );
    let gre = ipvsadm_dest_line(&ns, "--tun-info", "10.233.0.2");
    assert!(gre.contains("gre"), "GRE: {gre}");
    let limits = ipvsadm_dest_line(&ns, "--thresholds", "10.233.0.1");
    assert!(
        limits.contains("200") && limits.contains("150"),
        "thresholds 200/150: {limits}"
    );
    // Our read-back sees the same, so nothing drifts.
    assert!(ipvs.reconcile().unwrap().applied.is_empty());
    // A tunnel changed by hand is put back.
    ns.sh("ipvsadm -e -t 10.232.0.1:80 -r 10.233.0.2:80 -i -w 1 --tun-type ipip")
        .unwrap();
    assert!(!ipvsadm_dest_line(&ns, "--tun-info", "10.233.0.2").contains("gre"));
    let report = ipvs.reconcile().unwrap();
    assert_eq!(report.applied.len(), 1, "{:?}", report.applied);
    assert!(ipvsadm_dest_line(&ns, "--tun-info", "10.233.0.2").contains("gre"));
    ipvs.cleanup().unwrap();
    assert!(ipvsadm(&ns).is_empty());
}

const OWNER_CONFIG: &str = r#"
[global]
dataplane = "ipvs"
lvs_timeouts = { tcp = "15m", tcpfin = "90s", udp = "45s" }

[[vrrp_instance]]
name = "VI_1"
interface = "lo"
virtual_router_id = 51
priority = 100
virtual_ipaddress = ["10.220.0.1/32"]

[[virtual_server]]
address = "10.220.0.1"
port = 80
lb_kind = "DR"
lb_algo = "wrr"
inhibit_on_failure = true
[[virtual_server.real_server]]
address = "10.221.0.1"
[[virtual_server.real_server]]
address = "10.221.0.2"

[[virtual_server]]
address = "10.220.0.9"
port = 443
lb_kind = "TUN"
persistence_timeout = "120s"
[[virtual_server.real_server]]
address = "10.221.0.9"
"#;

fn update(addr_: &str, port: u16, backends: &[(&str, u32)]) -> Update {
    Update {
        service: ServiceId {
            vip: addr(addr_),
            port,
            protocol: lb_daemon::config::Protocol::Tcp,
        },
        backends: backends
            .iter()
            .map(|(a, w)| DesiredBackend {
                addr: addr(a),
                port,
                weight: *w,
                sorry: false,
            })
            .collect(),
        quorum_up: true,
    }
}

/// The data-plane owner on IPVS: services no instance holds are served at once; the
/// instance's service only while MASTER; health updates change weights; stop cleans up.
#[test]
#[ignore = "needs a kernel with IPVS: cargo xtask test --vm"]
fn owner_gates_services_on_vrrp_and_follows_health() {
    let ns = director();
    let config = Config::from_str(OWNER_CONFIG, "lb.toml").unwrap().config;
    let (tx, inbox) = dataplane_owner::channels();
    let ns_name = ns.name().to_string();
    let timeouts_ns = ns_name.clone();
    let check = move |want: &[&str]| {
        let out = Command::new("ip")
            .args(["netns", "exec", &ns_name, "ipvsadm", "-Ln"])
            .output()
            .unwrap();
        let got = normalise_ipvsadm(&String::from_utf8_lossy(&out.stdout));
        assert_eq!(got, want);
    };
    let driver = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let send = |m| tx.msgs.send(m).unwrap();
            let health = |u| tx.health.send(u).unwrap();
            let settle = || tokio::time::sleep(Duration::from_millis(300));
            health(update("10.220.0.9", 443, &[("10.221.0.9", 1)]));
            health(update(
                "10.220.0.1",
                80,
                &[("10.221.0.1", 1), ("10.221.0.2", 1)],
            ));
            settle().await;
            // lvs_timeouts are IPVS's connection timeouts.
            let out = Command::new("ip")
                .args(["netns", "exec", &timeouts_ns, "ipvsadm", "-L", "--timeout"])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(text.contains("900 90 45"), "{text}");
            // BACKUP: only the service no instance holds.
            check(&[
                "TCP 10.220.0.9:443 -> 10.221.0.9:443 Tunnel 1",
                "TCP 10.220.0.9:443 mh persistent 120",
            ]);
            let (r, w) = oneshot::channel();
            tx.gate
                .send(GateRequest::BecomeMaster {
                    instance: "VI_1".into(),
                    reply: r,
                })
                .unwrap();
            w.await.unwrap().unwrap();
            check(&[
                "TCP 10.220.0.1:80 -> 10.221.0.1:80 Route 1",
                "TCP 10.220.0.1:80 -> 10.221.0.2:80 Route 1",
                "TCP 10.220.0.1:80 wrr",
                "TCP 10.220.0.9:443 -> 10.221.0.9:443 Tunnel 1",
                "TCP 10.220.0.9:443 mh persistent 120",
            ]);
            // A health failure with inhibit_on_failure: weight 0.
            health(update(
                "10.220.0.1",
                80,
                &[("10.221.0.1", 1), ("10.221.0.2", 0)],
            ));
            settle().await;
            check(&[
                "TCP 10.220.0.1:80 -> 10.221.0.1:80 Route 1",
                "TCP 10.220.0.1:80 -> 10.221.0.2:80 Route 0",
                "TCP 10.220.0.1:80 wrr",
                "TCP 10.220.0.9:443 -> 10.221.0.9:443 Tunnel 1",
                "TCP 10.220.0.9:443 mh persistent 120",
            ]);
            // Without it: removed.
            health(update("10.220.0.1", 80, &[("10.221.0.1", 1)]));
            settle().await;
            check(&[
                "TCP 10.220.0.1:80 -> 10.221.0.1:80 Route 1",
                "TCP 10.220.0.1:80 wrr",
                "TCP 10.220.0.9:443 -> 10.221.0.9:443 Tunnel 1",
                "TCP 10.220.0.9:443 mh persistent 120",
            ]);
            // Status reads the kernel's table.
            let (r, w) = oneshot::channel();
            send(Msg::Status { reply: r });
            let status = w.await.unwrap();
            assert_eq!(status.len(), 2);
            // BACKUP again: the instance's service goes.
            tx.gate
                .send(GateRequest::LeftMaster {
                    instance: "VI_1".into(),
                })
                .unwrap();
            settle().await;
            check(&[
                "TCP 10.220.0.9:443 -> 10.221.0.9:443 Tunnel 1",
                "TCP 10.220.0.9:443 mh persistent 120",
            ]);
            let (r, w) = oneshot::channel();
            send(Msg::Shutdown { reply: r });
            w.await.unwrap();
            check(&[]);
        });
    });
    ns.run(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let plane = Plane::Ipvs(Box::new(ipvs::open().unwrap()));
            Owner::new(&config, plane).unwrap().run(inbox).await;
        });
    });
    driver.join().unwrap();
}

/// A real TCP connection through an IPVS NAT service: client → director (VIP) → real,
/// the reply de-NATed on its way back through the director.
#[test]
#[ignore = "needs a kernel with IPVS: cargo xtask test --vm"]
fn tcp_connection_through_an_ipvs_nat_service() {
    let dir = director();
    let client = Netns::new("ipvsc").unwrap();
    let real = Netns::new("ipvsr").unwrap();
    veth(&client, "c0", &dir, "d0").unwrap();
    veth(&dir, "d1", &real, "r0").unwrap();
    client
        .sh("ip addr add 10.230.1.2/24 dev c0 && ip route add default via 10.230.1.1")
        .unwrap();
    dir.sh(
        "ip addr add 10.230.1.1/24 dev d0 && ip addr add 10.230.1.100/32 dev d0 && \
            ip addr add 10.230.2.1/24 dev d1 && sysctl -qw net.ipv4.ip_forward=1",
    )
    .unwrap();
    real.sh("ip addr add 10.230.2.2/24 dev r0 && ip route add default via 10.230.2.1")
        .unwrap();
    // The real answers with the address the connection came from (the client's: NAT
    // keeps it) and on which local address it arrived.
    let listener = real.run(|| std::net::TcpListener::bind("10.230.2.2:8080").unwrap());
    let server = std::thread::spawn(move || {
        let (mut s, peer) = listener.accept().unwrap();
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).unwrap();
        let local = s.local_addr().unwrap();
        write!(s, "{} {peer} {local}", String::from_utf8_lossy(&buf)).unwrap();
    });
    let mut ipvs = open_in(&dir);
    ipvs.apply(DesiredService {
        service: ServiceEntry::new(
            ServiceId {
                vip: addr("10.230.1.100"),
                port: 80,
                protocol: Protocol::Tcp,
            },
            "rr",
            None,
        ),
        dests: vec![DestEntry::new(addr("10.230.2.2"), 8080, Forward::Masq, 1)],
    })
    .unwrap();
    let reply = client.run(|| {
        let mut s =
            TcpStream::connect_timeout(&"10.230.1.100:80".parse().unwrap(), Duration::from_secs(5))
                .unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"hello").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        (out, s.peer_addr().unwrap())
    });
    server.join().unwrap();
    assert!(reply.0.starts_with("hello 10.230.1.2:"), "{}", reply.0);
    assert!(reply.0.ends_with(" 10.230.2.2:8080"), "{}", reply.0);
    assert_eq!(reply.1.to_string(), "10.230.1.100:80");
    // The connection shows in IPVS's statistics (the kernel sums them every 2 s).
    let deadline = std::time::Instant::now() + Duration::from_secs(6);
    loop {
        let table = ipvs.table().unwrap();
        let (svc, dests) = &table[0];
        if dests[0].stats.conns == 1 && svc.stats.inpkts >= 3 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "statistics never counted the connection: {:?}",
            svc.stats
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn auto_config(pin: &std::path::Path, iface: &str, algo: &str) -> Config {
    let text = format!(
        r#"
[global]
dataplane = "auto"
bpf_pin_path = "{}"

[[virtual_server]]
address = "10.240.0.1"
port = 80
lb_algo = "{algo}"
interfaces = ["{iface}"]
[[virtual_server.real_server]]
address = "10.241.0.1"
"#,
        pin.display()
    );
    Config::from_str(&text, "lb.toml").unwrap().config
}

/// `dataplane = "auto"` on this kernel (6.1): XDP where the program attaches, IPVS where
/// it cannot attach or the scheduler is IPVS-only (or, on a kernel whose verifier rejects
/// the program, everywhere).
#[test]
#[ignore = "needs a kernel with IPVS: cargo xtask test --vm"]
fn auto_picks_xdp_where_it_attaches_and_ipvs_otherwise() {
    let ns = director();
    let peer = Netns::new("ipvsx").unwrap();
    veth(&ns, "x0", &peer, "x1").unwrap();
    let pin = lb_tests::harness::unique_pin_dir("auto");
    let names = ns.run(move || {
        let mut names = Vec::new();
        for (iface, algo) in [("x0", "maglev"), ("nosuch0", "maglev"), ("x0", "rr")] {
            let plane = plane_choice::choose(&auto_config(&pin, iface, algo))
                .unwrap()
                .expect("virtual servers need a data plane");
            names.push(plane.name());
            if let Plane::Xdp(dp) = plane {
                // Probed, then detached: nothing stays attached until a service is served.
                assert!(dp.attached().is_empty());
                dp.unpin();
            }
        }
        names
    });
    assert_eq!(names, ["xdp", "ipvs", "ipvs"]);
}

/// `lb-daemon run --config CONFIG` in `ns`, its log in `dir/daemon.log`.
fn start_daemon(
    ns: &Netns,
    bin: &std::path::Path,
    config: &std::path::Path,
    dir: &std::path::Path,
) -> lb_daemon::netns::NsChild {
    let log = std::fs::File::create(dir.join("daemon.log")).unwrap();
    ns.spawn_with(
        &[
            bin.to_str().unwrap(),
            "run",
            "--config",
            config.to_str().unwrap(),
        ],
        std::process::Stdio::null(),
        log.into(),
    )
    .unwrap()
}

/// `lb-daemon stop` on `sock`, then waits (20 s at most) for `daemon` to exit.
fn stop_daemon(bin: &std::path::Path, sock: &std::path::Path, daemon: &lb_daemon::netns::NsChild) {
    let out = Command::new(bin)
        .args(["stop", "--socket"])
        .arg(sock)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while daemon.try_wait().unwrap().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the daemon did not stop"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `lb-daemon run` with `dataplane = "ipvs"`: programs the service, says "ipvs" in
/// status and metrics, leaves a foreign service alone and removes its own on stop.
#[test]
#[ignore = "needs a kernel with IPVS: cargo xtask test --vm"]
fn daemon_runs_on_ipvs_and_says_so() {
    let ns = director();
    let dir = std::env::temp_dir().join(format!("lb-ipvs-daemon-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("lb.sock");
    let config = dir.join("lb.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[global]
dataplane = "ipvs"
control_socket = "{}"
metrics_listen = "127.0.0.1:9377"

[[virtual_server]]
address = "10.250.0.1"
port = 80
lb_kind = "NAT"
lb_algo = "wrr"
[[virtual_server.real_server]]
address = "10.251.0.1"
port = 8080
weight = 2
[[virtual_server.real_server]]
address = "10.251.0.2"
port = 8080
"#,
            sock.display()
        ),
    )
    .unwrap();
    ns.sh("ipvsadm -A -t 10.252.0.1:22 -s rr").unwrap();
    let bin = lb_tests::vrrp_lab::daemon_bin();
    let daemon = start_daemon(&ns, &bin, &config, &dir);
    let status = || -> serde_json::Value {
        let out = Command::new(&bin)
            .args(["status", "--json", "--socket"])
            .arg(&sock)
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or_default()
    };
    let want = [
        "TCP 10.250.0.1:80 -> 10.251.0.1:8080 Masq 2",
        "TCP 10.250.0.1:80 -> 10.251.0.2:8080 Masq 1",
        "TCP 10.250.0.1:80 wrr",
        "TCP 10.252.0.1:22 rr",
    ];
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !(status()["dataplane"] == "ipvs" && ipvsadm(&ns) == want) {
        assert!(
            std::time::Instant::now() < deadline,
            "the daemon did not program IPVS: status {}, ipvsadm {:?}, log:\n{}",
            status(),
            ipvsadm(&ns),
            std::fs::read_to_string(dir.join("daemon.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let metrics = ns.run(|| {
        let mut s = TcpStream::connect("127.0.0.1:9377").unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    });
    assert!(
        metrics.contains("lb_dataplane_info{dataplane=\"ipvs\"} 1"),
        "{metrics}"
    );
    stop_daemon(&bin, &sock, &daemon);
    assert_eq!(ipvsadm(&ns), ["TCP 10.252.0.1:22 rr"]);
    let log = std::fs::read_to_string(dir.join("daemon.log")).unwrap();
    assert!(log.contains("left alone"), "{log}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// keepalived's firewall-mark services, from a keepalived.conf run directly: a
/// `virtual_server fwmark N` block and the `fwmark` entry of a `virtual_server_group`
/// become IPVS fwmark services (`ipvsadm -Ln`: `FWM  N`) with their reals, beside the
/// group's address entry.
#[test]
#[ignore = "needs a kernel with IPVS: cargo xtask test --vm"]
fn fwmark_virtual_servers_are_ipvs_fwmark_services() {
    let ns = director();
    let dir = std::env::temp_dir().join(format!("lb-ipvs-fwmark-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("lb.sock");
    let config = dir.join("keepalived.conf");
    std::fs::write(
        &config,
        format!(
            r#"global_defs {{
    dataplane ipvs
    control_socket {}
}}

virtual_server_group web {{
    10.250.1.1 80
    fwmark 5
}}

virtual_server group web {{
    lb_algo wrr
    lb_kind DR
    persistence_timeout 300
    real_server 10.251.1.1 80 {{
        weight 2
    }}
}}

virtual_server fwmark 7 {{
    lb_algo rr
    lb_kind DR
    real_server 10.251.1.2 80 {{
        weight 1
    }}
}}
"#,
            sock.display()
        ),
    )
    .unwrap();
    let bin = lb_tests::vrrp_lab::daemon_bin();
    let daemon = start_daemon(&ns, &bin, &config, &dir);
    let want = [
        // A fwmark service's reals take the packet's own port (DR).
        "FWM 5 -> 10.251.1.1:0 Route 2",
        "FWM 5 wrr persistent 300",
        "FWM 7 -> 10.251.1.2:0 Route 1",
        "FWM 7 rr",
        "TCP 10.250.1.1:80 -> 10.251.1.1:80 Route 2",
        "TCP 10.250.1.1:80 wrr persistent 300",
    ];
    // The VM has no KVM: the daemon takes a while to start there.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while ipvsadm(&ns) != want {
        assert!(
            std::time::Instant::now() < deadline,
            "the daemon did not program the fwmark services: ipvsadm {:?}\n{}\nlog:\n{}",
            ipvsadm(&ns),
            ns.sh("ipvsadm -Ln").unwrap_or_default(),
            std::fs::read_to_string(dir.join("daemon.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    // As ipvsadm prints them: `FWM  N scheduler`.
    let raw = ns.sh("ipvsadm -Ln").unwrap();
    assert!(
        raw.lines().any(|l| l.starts_with("FWM  5 wrr"))
            && raw.lines().any(|l| l.starts_with("FWM  7 rr")),
        "{raw}"
    );
    stop_daemon(&bin, &sock, &daemon);
    assert_eq!(ipvsadm(&ns), Vec::<String>::new(), "stop removes them");
    std::fs::remove_dir_all(&dir).unwrap();
}
