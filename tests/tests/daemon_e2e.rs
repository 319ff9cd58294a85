//! The daemon end to end in network namespaces: two LB nodes running `lb-daemon run` in
//! one VRRP group with the same virtual server, three backends (DR), one client. The
//! master forwards through XDP; when its link is cut the backup takes over and a
//! long-lived TCP connection opened before the cut keeps working (same Maglev table on
//! both nodes); a `--keep-dataplane` restart of the master loses no request and causes
//! no failover; a SIGKILLed master keeps forwarding through its pinned XDP link and its
//! restart adopts the link. Needs root.

use std::time::Duration;

use lb_daemon::{
    dataplane::{ForwardMode, HelperProgram},
    lab::{
        backend_addr, open_from, request_from, requests_from, start_backend, BackendHost,
        CLIENT_ADDR,
    },
    netns::Netns,
};
use lb_tests::vrrp_lab::{daemon_bin, Segment};

const VIP: &str = "198.18.0.100";

fn config(name: &str, priority: u8, dir: &std::path::Path) -> String {
    config_with(name, priority, dir, "/sys/fs/bpf/lb", ForwardMode::Dr)
}

fn config_pinned(name: &str, priority: u8, dir: &std::path::Path, pin: &str) -> String {
    config_with(name, priority, dir, pin, ForwardMode::Dr)
}

/// The lab's node configuration (the one `cargo xtask run` uses), three backends.
fn config_with(
    name: &str,
    priority: u8,
    dir: &std::path::Path,
    pin: &str,
    mode: ForwardMode,
) -> String {
    lb_daemon::lab::daemon_config(name, priority, dir, std::path::Path::new(pin), mode, 3)
}

fn status_json(sock: &std::path::Path) -> serde_json::Value {
    let out = std::process::Command::new(daemon_bin())
        .args(["status", "--json", "--socket"])
        .arg(sock)
        .output()
        .expect("lb-daemon status");
    serde_json::from_slice(&out.stdout).unwrap_or_default()
}

/// Nodes 0 and 1 are the LBs (198.18.0.11/.12), node 2 the client (the lab's client
/// address), three backends; `lb_pass` on the LBs' switch ports.
fn topology(mode: ForwardMode) -> (Segment, Vec<HelperProgram>, Vec<BackendHost>) {
    let _ = daemon_bin();
    let seg = Segment::new(3).expect("segment");
    let client: &Netns = &seg.nodes[2].ns;
    // The lab's client address only (deleting a primary address drops its secondaries).
    client
        .ip(&["addr", "del", "198.18.0.13/24", "dev", "eth0"])
        .expect("segment address");
    client
        .ip(&["addr", "add", &format!("{CLIENT_ADDR}/24"), "dev", "eth0"])
        .expect("client address");
    client
        .sh("ethtool -K eth0 tx off tso off gso off >/dev/null")
        .expect("ethtool");
    // Native XDP_TX out of the LBs' veths needs XDP on the switch-side peers.
    let ports = [seg.nodes[0].port.clone(), seg.nodes[1].port.clone()];
    let peers: Vec<HelperProgram> = ports
        .iter()
        .map(|p| {
            let p = p.clone();
            seg.switch
                .ns()
                .run(move || HelperProgram::pass(&p))
                .expect("lb_pass")
        })
        .collect();
    let backends: Vec<_> = (0..3)
        .map(|i| start_backend(&seg.switch, i, mode).expect("backend"))
        .collect();
    (seg, peers, backends)
}

#[test]
fn two_daemons_fail_over_and_keep_a_long_lived_connection() {
    let (mut seg, _peers, mut backends) = topology(ForwardMode::Dr);
    let c1 = config("lb1", 150, seg.nodes[0].dir());
    let c2 = config("lb2", 100, seg.nodes[1].dir());
    seg.nodes[0].start_ours(&c1).expect("lb1");
    seg.nodes[1].start_ours(&c2).expect("lb2");
    seg.wait_holder(VIP, 0, Duration::from_secs(10))
        .expect("lb1 master");

    // Traffic spreads over the backends through lb1's XDP program.
    let client = &seg.nodes[2].ns;
    let mut replies = Err(anyhow::anyhow!("not tried"));
    for _ in 0..50 {
        replies = requests_from(client, 60);
        if replies.is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let replies =
        replies.unwrap_or_else(|e| panic!("no traffic through the VIP: {e:#}\n{}", seg.logs()));
    let mut seen: Vec<String> = replies.iter().map(|r| r.backend.clone()).collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 3, "every backend serves: {seen:?}");
    assert!(replies
        .iter()
        .all(|r| r.client_seen.to_string() == CLIENT_ADDR.to_string()));

    // 3,000 short connections: every backend within 10% of a third.
    let many = requests_from(client, 3000).expect("3000 requests");
    for i in 0..3 {
        let name = lb_daemon::lab::backend_name(i);
        let n = many.iter().filter(|r| r.backend == name).count();
        assert!((900..=1100).contains(&n), "{name} got {n} of 3000");
    }
    // A backend stops: once its check marks it down and the data plane has taken it out
    // (the status shows both: health first, the programmed weight within a second), no
    // connection reaches it and none fails.
    backends[1].stop_server();
    let backend2 = |b: &serde_json::Value| b["address"] == backend_addr(1).to_string();
    let mut last = serde_json::Value::Null;
    let down = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        last = status_json(&seg.nodes[0].dir().join("lb.sock"))["services"][0]["backends"].clone();
        last.as_array().is_some_and(|b| {
            b.iter()
                .any(|b| backend2(b) && b["healthy"] == false && b["forwarding_weight"] == 0)
        })
    });
    assert!(
        down,
        "backend2 marked down and out of the data plane: {last}"
    );
    let during = requests_from(client, 300).expect("no failed request once it is marked down");
    assert!(during
        .iter()
        .all(|r| r.backend != lb_daemon::lab::backend_name(1)));
    backends[1].start_server(1).expect("restart backend2");
    let back = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        requests_from(client, 60).is_ok_and(|r| {
            r.iter()
                .any(|r| r.backend == lb_daemon::lab::backend_name(1))
        })
    });
    assert!(back, "backend2 returns after its checks pass");

    // Status and metrics report what we saw.
    let sock = seg.nodes[0].dir().join("lb.sock");
    let status = std::process::Command::new(daemon_bin())
        .args(["status", "--json", "--socket"])
        .arg(&sock)
        .output()
        .expect("lb-daemon status");
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let snap: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status JSON");
    assert_eq!(snap["instances"][0]["state"], "MASTER", "{snap}");
    let backends = snap["services"][0]["backends"]
        .as_array()
        .expect("backends")
        .clone();
    assert_eq!(backends.len(), 3);
    assert!(backends.iter().all(|b| b["healthy"] == true));
    let human = std::process::Command::new(daemon_bin())
        .args(["status", "--socket"])
        .arg(&sock)
        .output()
        .expect("lb-daemon status");
    assert!(String::from_utf8_lossy(&human.stdout).contains("VI_1"));
    let scrape = |node: usize| {
        seg.nodes[node].ns.run(|| {
            use std::io::{Read, Write};
            let mut s = std::net::TcpStream::connect("127.0.0.1:9469").expect("metrics port");
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
                .expect("write");
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            out
        })
    };
    let metrics = scrape(0);
    assert!(
        metrics.contains("lb_vrrp_state{vrrp_instance=\"VI_1\"} 2"),
        "{metrics}"
    );
    assert!(metrics.contains("lb_backend_up{"), "{metrics}");
    // The BACKUP's kernel advert filter takes the steady master's adverts; they are
    // counted when its receive thread next wakes (within a master-down interval).
    let filtered = |m: &str| {
        m.lines()
            .find_map(|l| l.strip_prefix("lb_vrrp_adverts_filtered_total{vrrp_instance=\"VI_1\"} "))
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    let mut backup = String::new();
    let taken = (0..60).any(|_| {
        backup = scrape(1);
        std::thread::sleep(Duration::from_millis(250));
        filtered(&backup).is_some_and(|v| v > 0.0)
    });
    assert!(taken, "no advert filtered on the BACKUP:\n{backup}");
    // A reload that adds a backend and changes a weight, under traffic: no request fails.
    let _backend4 = start_backend(&seg.switch, 3, ForwardMode::Dr).expect("backend4");
    // Both nodes get the same change (identical Maglev tables keep failovers seamless).
    let change = |text: String| {
        text.replacen("port = 80\ntcp_check", "port = 80\nweight = 2\ntcp_check", 1)
            + &format!(
                "\n[[virtual_server.real_server]]\naddress = \"{}\"\nport = 80\ntcp_check = {{ connect_timeout = \"500ms\", warmup = \"0s\" }}\n",
                backend_addr(3)
            )
    };
    let conf1 = seg.nodes[0].dir().join("lb.toml");
    let conf2 = seg.nodes[1].dir().join("lb.toml");
    for conf in [&conf1, &conf2] {
        let text = std::fs::read_to_string(conf).expect("config");
        std::fs::write(conf, change(text)).expect("write");
    }
    let probe = Prober::start(&seg.nodes[2].ns);
    std::thread::sleep(Duration::from_millis(300));
    for node in [0, 1] {
        let reload = std::process::Command::new(daemon_bin())
            .args(["reload", "--socket"])
            .arg(seg.nodes[node].dir().join("lb.sock"))
            .output()
            .expect("lb-daemon reload");
        assert!(
            reload.status.success(),
            "{}",
            String::from_utf8_lossy(&reload.stderr)
        );
    }
    std::thread::sleep(Duration::from_millis(1500));
    let (sent, failed) = probe.stop();
    assert!(sent > 50, "only {sent} probes");
    assert_eq!(
        failed, 0,
        "{failed} of {sent} requests failed during the reload"
    );
    let new_backend = lb_daemon::lab::backend_name(3);
    let reached = (0..30).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        requests_from(client, 60).is_ok_and(|r| r.iter().any(|r| r.backend == new_backend))
    });
    assert!(reached, "the added backend receives connections");
    // A broken file is refused and changes nothing.
    std::fs::write(&conf1, "this is not toml [").expect("write");
    let broken = std::process::Command::new(daemon_bin())
        .args(["reload", "--socket"])
        .arg(&sock)
        .output()
        .expect("lb-daemon reload");
    assert!(!broken.status.success(), "a broken file is refused");
    requests_from(client, 10).expect("still serving after the refused reload");
    assert_eq!(seg.holders(VIP), vec![0], "no failover during the reloads");

    // A long-lived connection, then the master's link is cut.
    let mut conn = open_from(client).expect("long-lived connection");
    let first = conn.ask().expect("ask").backend;
    seg.cut(0).expect("cut lb1");
    seg.wait_holder(VIP, 1, Duration::from_secs(8))
        .expect("lb2 takes over");
    let mut after = None;
    let mut errors = Vec::new();
    for _ in 0..40 {
        match conn.ask() {
            Ok(r) => {
                after = Some(r.backend);
                break;
            }
            Err(e) => errors.push(format!("{e:#}")),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        after.as_deref(),
        Some(first.as_str()),
        "the connection survives the failover on the same backend; errors: {errors:?}\n{}",
        seg.logs()
    );
    // New connections go through lb2.
    request_from(client, None).expect("request through lb2");
}

/// Short requests to the VIP every 10 ms from the client's namespace, counting failures.
struct Prober {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<(usize, usize)>,
}

impl Prober {
    fn start(ns: &Netns) -> Prober {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = std::sync::Arc::clone(&stop);
        let path = ns.path();
        let thread = std::thread::spawn(move || {
            let f = std::fs::File::open(&path).expect("netns file");
            nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            let (mut sent, mut failed) = (0, 0);
            while !flag.load(Ordering::Relaxed) {
                let addr = format!("{VIP}:80").parse().expect("address");
                let ok = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500))
                    .and_then(|mut s| {
                        use std::io::{BufRead, Write};
                        s.set_read_timeout(Some(Duration::from_millis(500)))?;
                        s.write_all(b"hi\n")?;
                        let mut line = String::new();
                        std::io::BufReader::new(s).read_line(&mut line)?;
                        Ok(line)
                    })
                    .is_ok_and(|l| !l.is_empty());
                sent += 1;
                if !ok {
                    failed += 1;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            (sent, failed)
        });
        Prober { stop, thread }
    }

    /// (requests sent, requests failed).
    fn stop(self) -> (usize, usize) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().expect("prober")
    }
}

/// A bpffs mounted in the host's mount namespace: `ip netns exec` gives each daemon its
/// own /sys, but mounts elsewhere are shared, so pins survive from one daemon to the next.
struct SharedBpffs(std::path::PathBuf);

impl SharedBpffs {
    /// `tag` tells the tests of one process apart (they run in parallel).
    fn new(tag: &str) -> SharedBpffs {
        let dir = std::path::PathBuf::from(format!("/run/lbt-bpffs-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let ok = std::process::Command::new("mount")
            .args(["-t", "bpf", "bpf"])
            .arg(&dir)
            .status()
            .expect("mount")
            .success();
        assert!(ok, "mount bpffs at {}", dir.display());
        SharedBpffs(dir)
    }
}

impl Drop for SharedBpffs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Two daemons (DR) with their maps pinned under a bpffs of the test's own, lb1 MASTER
/// and traffic flowing.
struct PinnedPair {
    bpffs: SharedBpffs,
    seg: Segment,
    lab: (Vec<HelperProgram>, Vec<BackendHost>),
    /// lb1's pin directory.
    pin1: std::path::PathBuf,
    /// lb1's configuration (to restart it).
    c1: String,
}

fn pinned_pair(tag: &str) -> PinnedPair {
    let bpffs = SharedBpffs::new(tag);
    let (mut seg, peers, backends) = topology(ForwardMode::Dr);
    let pin1 = bpffs.0.join("lb1");
    let c1 = config_pinned("lb1", 150, seg.nodes[0].dir(), &pin1.to_string_lossy());
    let c2 = config_pinned(
        "lb2",
        100,
        seg.nodes[1].dir(),
        &bpffs.0.join("lb2").to_string_lossy(),
    );
    seg.nodes[0].start_ours(&c1).expect("lb1");
    seg.nodes[1].start_ours(&c2).expect("lb2");
    seg.wait_holder(VIP, 0, Duration::from_secs(10))
        .expect("lb1 master");
    let ok = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(200));
        requests_from(&seg.nodes[2].ns, 5).is_ok()
    });
    assert!(ok, "traffic flows\n{}", seg.logs());
    PinnedPair {
        bpffs,
        seg,
        lab: (peers, backends),
        pin1,
        c1,
    }
}

#[test]
fn keep_dataplane_restart_drops_nothing() {
    let PinnedPair {
        bpffs: _bpffs,
        mut seg,
        lab: _lab,
        pin1: _,
        c1,
    } = pinned_pair("keep");
    let mut conn = open_from(&seg.nodes[2].ns).expect("long-lived connection");
    let first = conn.ask().expect("ask").backend;

    // Traffic keeps flowing during the upgrade: count failures.
    let probe = Prober::start(&seg.nodes[2].ns);
    std::thread::sleep(Duration::from_millis(500));
    let sock = seg.nodes[0].dir().join("lb.sock");
    let out = std::process::Command::new(daemon_bin())
        .args(["stop", "--keep-dataplane", "--socket"])
        .arg(&sock)
        .output()
        .expect("lb-daemon stop");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        seg.nodes[0].has_vip(VIP),
        "the VIP stays with the stopped daemon"
    );
    seg.nodes[0].start_ours(&c1).expect("new lb1");
    // Through the master-down interval of lb2 and beyond: lb2 never takes over.
    for _ in 0..60 {
        assert_eq!(
            seg.holders(VIP),
            vec![0],
            "no failover during the upgrade\n{}",
            seg.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (sent, failed) = probe.stop();
    assert!(sent > 100, "only {sent} probes");
    assert_eq!(
        failed,
        0,
        "{failed} of {sent} requests failed during the upgrade\n{}",
        seg.logs()
    );
    let answer = conn.ask().unwrap_or_else(|e| {
        panic!(
            "long-lived connection after the upgrade: {e:#}\n{}",
            seg.logs()
        )
    });
    assert_eq!(answer.backend, first);
}

/// The `link_<interface>` pins in `dir` (the pinned XDP links).
fn link_pins(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| lb_daemon::dataplane::link_pin_interface(n).is_some())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn sigkilled_master_keeps_forwarding_and_its_restart_adopts_the_link() {
    let PinnedPair {
        bpffs: _bpffs,
        mut seg,
        lab: _lab,
        pin1,
        c1,
    } = pinned_pair("sigkill");
    let pinned = link_pins(&pin1);
    assert!(
        !pinned.is_empty(),
        "the master's XDP link is pinned at attach\n{}",
        seg.logs()
    );
    let mut conn = open_from(&seg.nodes[2].ns).expect("long-lived connection");
    let first = conn.ask().expect("ask").backend;

    // A crash: nothing cleaned up. The pinned link keeps the program attached, so the
    // VIP still on lb1's interface is served by XDP, not answered with RSTs.
    seg.nodes[0].kill();
    assert_eq!(
        link_pins(&pin1),
        pinned,
        "the link pins outlive the process"
    );
    for _ in 0..10 {
        let answer = conn.ask().unwrap_or_else(|e| {
            panic!(
                "long-lived connection after the SIGKILL: {e:#}\n{}",
                seg.logs()
            )
        });
        assert_eq!(answer.backend, first);
        std::thread::sleep(Duration::from_millis(100));
    }

    // The restarted daemon adopts the pinned link (no double attach, no failure) and,
    // with the higher priority, becomes master again.
    seg.nodes[0].start_ours(&c1).expect("restarted lb1");
    let adopted = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        seg.nodes[0]
            .log()
            .contains("adopted the pinned XDP link of the previous daemon")
    });
    assert!(adopted, "the restarted lb1 adopts the link\n{}", seg.logs());
    assert!(
        !seg.nodes[0].log().contains("attaching XDP to"),
        "no second attach fails\n{}",
        seg.logs()
    );
    seg.wait_holder(VIP, 0, Duration::from_secs(15))
        .expect("lb1 master again");
    let answer = conn.ask().unwrap_or_else(|e| {
        panic!(
            "long-lived connection after the restart: {e:#}\n{}",
            seg.logs()
        )
    });
    assert_eq!(answer.backend, first);
    assert!(
        requests_from(&seg.nodes[2].ns, 20).is_ok(),
        "{}",
        seg.logs()
    );

    // A clean stop removes the pins: nothing stays attached.
    seg.nodes[0].stop().expect("stop lb1");
    assert_eq!(
        link_pins(&pin1),
        Vec::<String>::new(),
        "a clean stop unpins the links\n{}",
        seg.logs()
    );
}

#[test]
fn tunnel_mode_fails_over_with_a_long_lived_connection() {
    let (mut seg, _peers, _backends) = topology(ForwardMode::Tun);
    let pin = "/sys/fs/bpf/lb";
    let c1 = config_with("lb1", 150, seg.nodes[0].dir(), pin, ForwardMode::Tun);
    let c2 = config_with("lb2", 100, seg.nodes[1].dir(), pin, ForwardMode::Tun);
    seg.nodes[0].start_ours(&c1).expect("lb1");
    seg.nodes[1].start_ours(&c2).expect("lb2");
    seg.wait_holder(VIP, 0, Duration::from_secs(10))
        .expect("lb1 master");
    let client = &seg.nodes[2].ns;
    let ok = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(200));
        requests_from(client, 30).is_ok()
    });
    assert!(ok, "traffic through the tunnel\n{}", seg.logs());
    let mut conn = open_from(client).expect("long-lived connection");
    let first = conn.ask().expect("ask").backend;
    seg.cut(0).expect("cut lb1");
    seg.wait_holder(VIP, 1, Duration::from_secs(8))
        .expect("lb2 takes over");
    let after = (0..40).find_map(|_| {
        let r = conn.ask().ok();
        if r.is_none() {
            std::thread::sleep(Duration::from_millis(100));
        }
        r
    });
    assert_eq!(
        after.map(|r| r.backend).as_deref(),
        Some(first.as_str()),
        "{}",
        seg.logs()
    );
}

/// A counter of the data plane as `lb-daemon counters` reads it in node `i`'s mount
/// namespace (`ip netns exec` gave the daemon its own bpffs at `/sys/fs/bpf/lb`).
fn counter(seg: &Segment, i: usize, name: &str) -> u64 {
    let pid = seg.nodes[i].pid().expect("the daemon runs");
    let out = std::process::Command::new("nsenter")
        .args(["--target", &pid.to_string(), "--mount", "--net", "--"])
        .arg(daemon_bin())
        .args(["counters", "--pin-dir", "/sys/fs/bpf/lb"])
        .output()
        .expect("nsenter (util-linux)");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in:\n{text}\n{}", seg.logs()))
}

/// A frame a switch floods to the MASTER for another host's MAC (as right after a
/// failover, for the old MASTER's) is left to the kernel, which discards it: never
/// forwarded to a backend that knows nothing of its connection. Here the client's
/// neighbour entry for the VIP names a MAC no node has, so the switch floods every
/// frame; with the VIP's real MAC the requests go through again.
#[test]
fn a_frame_flooded_for_another_hosts_mac_is_not_forwarded() {
    let (mut seg, _peers, _backends) = topology(ForwardMode::Dr);
    let c1 = config("lb1", 150, seg.nodes[0].dir());
    seg.nodes[0].start_ours(&c1).expect("lb1");
    seg.wait_holder(VIP, 0, Duration::from_secs(10))
        .expect("lb1 master");
    let client = &seg.nodes[2].ns;
    let served = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(200));
        requests_from(client, 5).is_ok()
    });
    assert!(served, "traffic through the VIP\n{}", seg.logs());
    assert_eq!(counter(&seg, 0, "vip_other_host"), 0);

    client
        .ip(&[
            "neigh",
            "replace",
            VIP,
            "lladdr",
            "02:00:5e:99:99:99",
            "dev",
            "eth0",
            "nud",
            "permanent",
        ])
        .expect("neighbour entry");
    let vip: std::net::SocketAddr = format!("{VIP}:{}", lb_daemon::lab::VIP_PORT)
        .parse()
        .unwrap();
    let flooded = client.run(move || {
        std::net::TcpStream::connect_timeout(&vip, Duration::from_secs(2)).map(|_| ())
    });
    assert!(
        flooded.is_err(),
        "a connection through frames flooded for another MAC is not served\n{}",
        seg.logs()
    );
    assert!(
        counter(&seg, 0, "vip_other_host") >= 1,
        "the flooded SYNs are counted\n{}",
        seg.logs()
    );

    client
        .ip(&["neigh", "del", VIP, "dev", "eth0"])
        .expect("neighbour entry");
    assert!(
        requests_from(client, 20).is_ok(),
        "served again through the VIP's own MAC\n{}",
        seg.logs()
    );
}
