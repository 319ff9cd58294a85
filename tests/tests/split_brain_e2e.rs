//! Split brain in network namespaces: two nodes on one bridge whose switch drops only
//! VRRP (IP protocol 112) between them, while everything else (ARP, clients) still
//! passes. keepalived on both nodes: both hold the VIP (the problem is real). Ours with
//! split-brain detection: detected, the metric and the hook fire, and with
//! `split_brain_resolution = "step_down"` one MASTER again, for as long as the cut lasts.
//! Needs root, keepalived and nft (`cargo xtask setup`).

use std::time::{Duration, Instant};

use lb_tests::{
    daemon_lab::{http_get, status_json},
    vrrp_lab::{keepalived_conf, Ours, Segment},
};

const VIP: &str = "198.18.0.100";
const METRICS: &str = "127.0.0.1:9469";
/// The probe interval of the tests (`split_brain_check_interval`).
const PROBE: Duration = Duration::from_secs(1);

fn node(name: &str, priority: u8) -> Ours<'_> {
    Ours::backup(name, priority)
}

/// Our configuration with split-brain detection, metrics and a hook writing its
/// arguments to `notes`.
fn ours(seg: &Segment, i: usize, priority: u8, resolution: &str) -> String {
    let dir = seg.nodes[i].dir();
    let notes = dir.join("split_brain");
    node(&seg.nodes[i].name, priority).toml(dir).replace(
        "[global]\n",
        &format!("[global]\nmetrics_listen = \"{METRICS}\"\n"),
    ) + &format!(
        "split_brain_check = true\nsplit_brain_check_interval = \"1s\"\n\
             split_brain_resolution = \"{resolution}\"\n\
             notify_split_brain = \"echo \\\"$@\\\" >> {}; true\"\n",
        notes.display()
    )
}

fn notes(seg: &Segment, i: usize) -> String {
    std::fs::read_to_string(seg.nodes[i].dir().join("split_brain")).unwrap_or_default()
}

/// One metric's value on node `i` (its only sample for VI_1).
fn metric(seg: &Segment, i: usize, name: &str) -> f64 {
    let body = http_get(&seg.nodes[i].ns, METRICS, "/metrics").expect("/metrics");
    let prefix = format!("{name}{{vrrp_instance=\"VI_1\"}} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in:\n{body}"))
}

fn wait_for(what: &str, seg: &Segment, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(
            start.elapsed() < timeout,
            "{what}: not after {timeout:?}\n{}",
            seg.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Samples every 20 ms for `for_` that exactly `want` hold the VIP.
fn assert_holders_for(seg: &Segment, want: &[usize], for_: Duration, what: &str) {
    let end = Instant::now() + for_;
    while Instant::now() < end {
        let h = seg.holders(VIP);
        assert_eq!(h, want, "{what}\n{}", seg.logs());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn heartbeat_cut_keepalived_splits_ours_detects_and_steps_down() {
    // keepalived on both nodes: the cut heartbeat makes two masters, and they stay so.
    let mut seg = Segment::new(2).expect("segment");
    seg.nodes[0]
        .start_keepalived(&keepalived_conf(&node("n1", 150)))
        .expect("keepalived n1");
    seg.nodes[1]
        .start_keepalived(&keepalived_conf(&node("n2", 100)))
        .expect("keepalived n2");
    seg.wait_holder(VIP, 0, Duration::from_secs(10))
        .expect("keepalived n1 master");
    seg.cut_heartbeat().expect("cut heartbeat");
    seg.wait_holders(VIP, &[0, 1], Duration::from_secs(10))
        .expect("keepalived: both hold the VIP");
    // Only VRRP is cut: the nodes still reach each other (and clients reach both).
    seg.nodes[0]
        .ns
        .sh("ping -c 1 -W 2 198.18.0.12")
        .expect("ping through the cut");
    assert_holders_for(&seg, &[0, 1], 3 * PROBE, "keepalived stays split");
    drop(seg);

    // Ours, step-down resolution.
    let mut seg = Segment::new(2).expect("segment");
    let (t1, t2) = (
        ours(&seg, 0, 150, "step_down"),
        ours(&seg, 1, 100, "step_down"),
    );
    seg.nodes[0].start_ours(&t1).expect("start n1");
    seg.nodes[1].start_ours(&t2).expect("start n2");
    seg.wait_holder(VIP, 0, Duration::from_secs(10))
        .expect("n1 master");
    seg.cut_heartbeat().expect("cut heartbeat");
    // n2's master-down timer runs out; it takes the VIP, its first probe finds n1.
    // (Both hold it for milliseconds only: the log tells when n2 became MASTER.)
    wait_for("n2 becomes MASTER", &seg, Duration::from_secs(10), || {
        seg.nodes[1].log().contains("to=MASTER")
    });
    wait_for(
        "n2 detects the split brain (2 probe intervals)",
        &seg,
        2 * PROBE + Duration::from_millis(500),
        || {
            seg.nodes[1]
                .log()
                .contains("split brain: another node holds our VIPs")
        },
    );
    seg.wait_holder(VIP, 0, 2 * PROBE)
        .expect("n2 stepped down: one master");
    let log2 = seg.nodes[1].log();
    assert!(log2.contains("stepping down"), "{log2}");
    assert!(
        log2.contains("198.18.0.11 (priority 150)"),
        "names n1:\n{log2}"
    );
    // The hook ran on n2 with keepalived's arguments and the other node's MAC, address
    // and the VIP.
    wait_for("notify_split_brain on n2", &seg, 2 * PROBE, || {
        notes(&seg, 1).contains("INSTANCE VI_1 SPLIT_BRAIN 100 ")
    });
    let n2_notes = notes(&seg, 1);
    assert!(n2_notes.contains(" 198.18.0.11 198.18.0.100"), "{n2_notes}");
    assert_eq!(metric(&seg, 1, "lb_vrrp_split_brain_total"), 1.0);
    // n1 saw n2's gratuitous ARPs: it alerted too, stayed (it cannot know n2's priority)
    // and the episode ended when n2 let go.
    wait_for("n1's episode ends", &seg, 3 * PROBE, || {
        metric(&seg, 0, "lb_vrrp_split_brain") == 0.0
    });
    assert_eq!(metric(&seg, 0, "lb_vrrp_split_brain_total"), 1.0);
    assert!(notes(&seg, 0).contains("INSTANCE VI_1 SPLIT_BRAIN 150 "));
    assert!(notes(&seg, 0).contains("INSTANCE VI_1 SPLIT_BRAIN_END 150 "));
    // n2 holds BACKUP while n1 answers for the VIP: no flapping, well past its
    // master-down interval, for as long as the heartbeat is cut.
    assert_holders_for(&seg, &[0], 8 * PROBE, "one master throughout the cut");
    let status = status_json(&seg.nodes[1].dir().join("lb.sock"));
    assert_eq!(status["instances"][0]["held"], true, "{status}");
    assert_eq!(
        metric(&seg, 1, "lb_vrrp_split_brain"),
        1.0,
        "still split: n1 answers"
    );
    // The heartbeat comes back: n2 hears n1's adverts, the hold and the episode end.
    seg.restore_heartbeat().expect("restore");
    wait_for(
        "n2's episode ends with the heartbeat",
        &seg,
        3 * PROBE,
        || metric(&seg, 1, "lb_vrrp_split_brain") == 0.0,
    );
    let status = status_json(&seg.nodes[1].dir().join("lb.sock"));
    assert_eq!(status["instances"][0]["held"], false, "{status}");
    assert_eq!(seg.holders(VIP), vec![0]);
    // Cut again, n2 takes over and steps down again; then n1 dies (its priority-0
    // advert is cut too): n2's probe goes unanswered, the hold ends, and its
    // master-down timer takes over.
    seg.cut_heartbeat().expect("cut heartbeat");
    wait_for(
        "a second episode on n2",
        &seg,
        Duration::from_secs(10),
        || metric(&seg, 1, "lb_vrrp_split_brain_total") == 2.0,
    );
    seg.wait_holder(VIP, 0, 2 * PROBE)
        .expect("n2 stepped down again");
    seg.nodes[0].stop().expect("stop n1");
    seg.wait_holder(VIP, 1, Duration::from_secs(10))
        .expect("n2 takes over from a dead n1");
    assert!(notes(&seg, 1).contains("INSTANCE VI_1 SPLIT_BRAIN_END 100 "));
    seg.restore_heartbeat().expect("restore");
}

#[test]
fn alert_resolution_only_alerts() {
    let mut seg = Segment::new(2).expect("segment");
    let (t1, t2) = (ours(&seg, 0, 150, "alert"), ours(&seg, 1, 100, "alert"));
    seg.nodes[0].start_ours(&t1).expect("start n1");
    seg.nodes[1].start_ours(&t2).expect("start n2");
    seg.wait_holder(VIP, 0, Duration::from_secs(10))
        .expect("n1 master");
    seg.cut_heartbeat().expect("cut heartbeat");
    seg.wait_holders(VIP, &[0, 1], Duration::from_secs(10))
        .expect("both hold the VIP");
    wait_for("both alert", &seg, 3 * PROBE, || {
        metric(&seg, 0, "lb_vrrp_split_brain") == 1.0
            && metric(&seg, 1, "lb_vrrp_split_brain") == 1.0
    });
    let status = status_json(&seg.nodes[1].dir().join("lb.sock"));
    let episode = status["instances"][0]["split_brain"]
        .as_str()
        .unwrap_or_default();
    assert!(episode.contains("198.18.0.11 (priority 150)"), "{status}");
    assert_holders_for(&seg, &[0, 1], 2 * PROBE, "alert only: both stay");
    // The heartbeat is back: VRRP elects n1, the episode ends on both.
    seg.restore_heartbeat().expect("restore");
    seg.wait_holder(VIP, 0, Duration::from_secs(5))
        .expect("n1 alone");
    wait_for("the episodes end", &seg, 3 * PROBE, || {
        metric(&seg, 0, "lb_vrrp_split_brain") == 0.0
            && metric(&seg, 1, "lb_vrrp_split_brain") == 0.0
    });
}

/// The third node of the arbiter tests: an address both nodes ping (nothing runs there).
const ARBITER: &str = "198.18.0.13";

fn with_arbiter(seg: &Segment, i: usize, priority: u8) -> String {
    node(&seg.nodes[i].name, priority).toml(seg.nodes[i].dir())
        + &format!(
            "arbiter = {{ address = \"{ARBITER}\", check = \"icmp\", interval = \"500ms\", \
             timeout = \"400ms\" }}\n"
        )
}

/// The arbiter stops answering node `i` (its replies have no route back).
fn cut_uplink(seg: &Segment, i: usize) {
    let to = format!("{}/32", seg.nodes[i].addr);
    seg.nodes[2]
        .ns
        .ip(&["route", "add", "prohibit", &to])
        .expect("cut uplink");
}

fn restore_uplink(seg: &Segment, i: usize) {
    let to = format!("{}/32", seg.nodes[i].addr);
    seg.nodes[2]
        .ns
        .ip(&["route", "del", "prohibit", &to])
        .expect("restore uplink");
}

#[test]
fn arbiter_uplink_cut_moves_the_vip_and_back() {
    let mut seg = Segment::new(3).expect("segment");
    let (t1, t2) = (with_arbiter(&seg, 0, 150), with_arbiter(&seg, 1, 100));
    seg.nodes[0].start_ours(&t1).expect("start n1");
    seg.nodes[1].start_ours(&t2).expect("start n2");
    seg.wait_holder(VIP, 0, Duration::from_secs(10))
        .expect("n1 master");
    // n1 loses the arbiter, the heartbeat still works: n1 advertises priority 1, n2
    // (which reaches the arbiter) preempts it, n1 steps down.
    cut_uplink(&seg, 0);
    seg.wait_holder(VIP, 1, Duration::from_secs(10))
        .expect("n2 takes over");
    assert_holders_for(&seg, &[1], 3 * PROBE, "n1 without its arbiter stays BACKUP");
    assert!(seg.nodes[0].log().contains("arbiter unreachable"));
    // The uplink is back: n1's priority is 150 again, it preempts back.
    restore_uplink(&seg, 0);
    seg.wait_holder(VIP, 0, Duration::from_secs(10))
        .expect("n1 preempts back");
}

#[test]
fn arbiter_heartbeat_cut_no_takeover_arbiter_dead_master_stays_node_dead_takeover() {
    let mut seg = Segment::new(3).expect("segment");
    let (t1, t2) = (with_arbiter(&seg, 0, 150), with_arbiter(&seg, 1, 100));
    seg.nodes[0].start_ours(&t1).expect("start n1");
    seg.nodes[1].start_ours(&t2).expect("start n2");
    seg.wait_holder(VIP, 0, Duration::from_secs(10))
        .expect("n1 master");
    // Heartbeat cut, both reach the arbiter: n2's master is silent but still answers
    // for the VIP: no takeover, well past n2's master-down interval.
    seg.cut_heartbeat().expect("cut heartbeat");
    assert_holders_for(&seg, &[0], 8 * PROBE, "heartbeat cut: no takeover");
    // Heartbeat back; the arbiter dies for both: n1 keeps the VIP (n2 cannot take over
    // without the arbiter either).
    seg.restore_heartbeat().expect("restore heartbeat");
    cut_uplink(&seg, 0);
    cut_uplink(&seg, 1);
    assert_holders_for(&seg, &[0], 8 * PROBE, "arbiter dead: the master stays");
    restore_uplink(&seg, 0);
    restore_uplink(&seg, 1);
    // Heartbeat cut again and n1 dies: nobody answers for the VIP, n2 takes over.
    seg.cut_heartbeat().expect("cut heartbeat");
    std::thread::sleep(2 * PROBE);
    seg.nodes[0].stop().expect("stop n1");
    seg.wait_holder(VIP, 1, Duration::from_secs(10))
        .expect("n2 takes over from a dead n1");
}

/// A second heartbeat path: a direct link `hb1` between the two nodes, 10.99.0.1/.2,
/// adverts unicast over it.
fn second_path(seg: &Segment) {
    lb_daemon::netns::veth(&seg.nodes[0].ns, "hb1", &seg.nodes[1].ns, "hb1").expect("veth");
    for (i, addr) in ["10.99.0.1/24", "10.99.0.2/24"].iter().enumerate() {
        seg.nodes[i]
            .ns
            .ip(&["addr", "add", addr, "dev", "hb1"])
            .expect("address");
    }
}

fn with_second_path(seg: &Segment, i: usize, priority: u8) -> String {
    let peer = if i == 0 { "10.99.0.2" } else { "10.99.0.1" };
    node(&seg.nodes[i].name, priority).toml(seg.nodes[i].dir())
        + &format!("heartbeat_paths = [{{ interface = \"hb1\", unicast_peers = [\"{peer}\"] }}]\n")
}

#[test]
fn second_heartbeat_path_keeps_one_master_through_the_cut() {
    let mut seg = Segment::new(2).expect("segment");
    second_path(&seg);
    let (t1, t2) = (
        with_second_path(&seg, 0, 150),
        with_second_path(&seg, 1, 100),
    );
    seg.nodes[0].start_ours(&t1).expect("start n1");
    seg.nodes[1].start_ours(&t2).expect("start n2");
    seg.wait_holder(VIP, 0, Duration::from_secs(10))
        .expect("n1 master");
    // Path 1 (the bridge) loses VRRP: path 2 still delivers, n2 stays BACKUP.
    seg.cut_heartbeat().expect("cut heartbeat");
    assert_holders_for(&seg, &[0], 8 * PROBE, "one master throughout");
    let log2 = seg.nodes[1].log();
    assert!(log2.contains("heartbeat path lost"), "{log2}");
    let status = status_json(&seg.nodes[1].dir().join("lb.sock"));
    let paths = &status["instances"][0]["heartbeat_paths"];
    assert_eq!(paths[0]["path"], "eth0", "{status}");
    assert_eq!(paths[0]["up"], false, "{status}");
    assert_eq!(paths[0]["lost"], 1, "{status}");
    assert_eq!(paths[1]["up"], true, "{status}");
    // Path 1 back: restored, logged; still one master.
    seg.restore_heartbeat().expect("restore");
    wait_for("path restored", &seg, 3 * PROBE, || {
        seg.nodes[1].log().contains("heartbeat path restored")
    });
    assert_eq!(seg.holders(VIP), vec![0]);
    // Now the second path goes: nothing changes either.
    seg.nodes[1]
        .ns
        .ip(&["link", "set", "hb1", "down"])
        .expect("hb1 down");
    assert_holders_for(&seg, &[0], 6 * PROBE, "one master without path 2");
}

#[test]
fn ipv6_split_brain_is_detected_by_neighbour_discovery_and_resolved() {
    const VIP6: &str = "2001:db8::100";
    let mut seg = Segment::new(2).expect("segment");
    for (i, prio) in [(0, 150), (1, 100)] {
        let dir = seg.nodes[i].dir().to_path_buf();
        let notes = dir.join("split_brain");
        let mut o = node(&seg.nodes[i].name, prio);
        o.version = 3;
        o.vip = "2001:db8::100/64";
        let t = o.toml(&dir)
            + &format!(
                "split_brain_check = true\nsplit_brain_check_interval = \"1s\"\n\
                 split_brain_resolution = \"step_down\"\n\
                 notify_split_brain = \"echo \\\"$@\\\" >> {}; true\"\n",
                notes.display()
            );
        seg.nodes[i].start_ours(&t).expect("start");
    }
    seg.wait_holder(VIP6, 0, Duration::from_secs(10))
        .expect("n1 master");
    seg.cut_heartbeat().expect("cut heartbeat");
    wait_for("n2 becomes MASTER", &seg, Duration::from_secs(10), || {
        seg.nodes[1].log().contains("to=MASTER")
    });
    wait_for(
        "n2 detects the split brain",
        &seg,
        2 * PROBE + Duration::from_millis(500),
        || {
            seg.nodes[1]
                .log()
                .contains("split brain: another node holds our VIPs")
        },
    );
    seg.wait_holder(VIP6, 0, 2 * PROBE)
        .expect("n2 stepped down: one master");
    wait_for("notify_split_brain on n2", &seg, 2 * PROBE, || {
        notes(&seg, 1).contains(" fe80::11 2001:db8::100")
    });
    assert_holders_for_vip(&seg, VIP6, &[0], 6 * PROBE, "one master throughout the cut");
}

fn assert_holders_for_vip(seg: &Segment, vip: &str, want: &[usize], for_: Duration, what: &str) {
    let end = Instant::now() + for_;
    while Instant::now() < end {
        assert_eq!(seg.holders(vip), want, "{what}\n{}", seg.logs());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn one_way_heartbeat_adverts_from_another_master_count() {
    let mut seg = Segment::new(2).expect("segment");
    let (t1, t2) = (
        ours(&seg, 0, 150, "step_down"),
        ours(&seg, 1, 100, "step_down"),
    );
    seg.nodes[0].start_ours(&t1).expect("start n1");
    seg.nodes[1].start_ours(&t2).expect("start n2");
    seg.wait_holder(VIP, 0, Duration::from_secs(10))
        .expect("n1 master");
    // n2 no longer hears n1, n1 still hears n2: n2 takes over and keeps advertising
    // priority 100 to a master that outranks it.
    seg.cut_heartbeat_from(0).expect("one-way cut");
    wait_for(
        "n1 counts adverts from another master",
        &seg,
        Duration::from_secs(10),
        || metric(&seg, 0, "lb_vrrp_foreign_master_adverts_total") >= 1.0,
    );
    // Resolved: n2 knows n1's priority from before and yields; n1 stays.
    seg.wait_holder(VIP, 0, Duration::from_secs(5))
        .expect("one master again");
    assert_holders_for(&seg, &[0], 6 * PROBE, "n2 holds back while n1 answers");
    assert!(metric(&seg, 0, "lb_vrrp_split_brain_total") >= 1.0);
    let log1 = seg.nodes[0].log();
    assert!(
        log1.contains("198.18.0.12 (priority 100)"),
        "n1 names n2 from its adverts:\n{log1}"
    );
}

#[test]
fn reload_turns_split_brain_detection_on_in_place() {
    let mut seg = Segment::new(2).expect("segment");
    let plain = |i: usize, prio| {
        node(&seg.nodes[i].name, prio)
            .toml(seg.nodes[i].dir())
            .replace(
                "[global]\n",
                &format!("[global]\nmetrics_listen = \"{METRICS}\"\n"),
            )
    };
    let (t1, t2) = (plain(0, 150), plain(1, 100));
    seg.nodes[0].start_ours(&t1).expect("start n1");
    seg.nodes[1].start_ours(&t2).expect("start n2");
    seg.wait_holder(VIP, 0, Duration::from_secs(10))
        .expect("n1 master");
    // Both nodes get detection by a reload: no restart (the state is kept), the probe
    // socket opens.
    for (i, prio) in [(0, 150), (1, 100)] {
        let conf = seg.nodes[i].dir().join("lb.toml");
        std::fs::write(&conf, ours(&seg, i, prio, "step_down")).expect("write config");
        let out = std::process::Command::new(lb_tests::vrrp_lab::daemon_bin())
            .args(["reload", "--socket"])
            .arg(seg.nodes[i].dir().join("lb.sock"))
            .output()
            .expect("lb-daemon reload");
        assert!(out.status.success(), "{out:?}");
    }
    assert_holders_for(&seg, &[0], PROBE, "the reload keeps the master");
    seg.cut_heartbeat().expect("cut heartbeat");
    wait_for(
        "n2 detects the split brain",
        &seg,
        Duration::from_secs(10),
        || {
            seg.nodes[1]
                .log()
                .contains("split brain: another node holds our VIPs")
        },
    );
    seg.wait_holder(VIP, 0, 2 * PROBE)
        .expect("n2 stepped down: one master");
    assert_holders_for(&seg, &[0], 6 * PROBE, "held while the cut lasts");
}
