//! VRRP in network namespaces: our daemons with each other, and with keepalived 2.2.7 in
//! the same virtual router. Needs root and keepalived (installed by `cargo xtask setup`).

use std::time::Duration;

use lb_tests::{
    family::{announce, Family::*},
    vrrp_lab::{keepalived_conf, Ours, Segment},
};

const VIP: &str = "198.18.0.100";

fn node<'a>(
    name: &'a str,
    priority: u8,
    version: u8,
    advert_int: &'a str,
    password: Option<&'a str>,
) -> Ours<'a> {
    Ours {
        name,
        state: "BACKUP",
        priority,
        version,
        advert_int,
        password,
        ah: false,
        vip: "198.18.0.100/24",
        unicast: None,
        nopreempt: false,
        bfd_peer: None,
    }
}

/// Master-down bound for a backup at `prio`, plus slack for process start and polling.
fn bound(advert_s: f64, prio: u8, slack_s: f64) -> Duration {
    Duration::from_secs_f64(3.0 * advert_s + (256.0 - prio as f64) / 256.0 * advert_s + slack_s)
}

#[test]
fn ours_elect_fail_over_and_preempt_back() {
    let mut seg = Segment::new(2).expect("segment");
    let n1 = node("n1", 150, 2, "1", Some("s3cret"));
    let n2 = node("n2", 100, 2, "1", Some("s3cret"));
    let t1 = n1.toml(seg.nodes[0].dir());
    let t2 = n2.toml(seg.nodes[1].dir());
    seg.nodes[0].start_ours(&t1).expect("start n1");
    seg.nodes[1].start_ours(&t2).expect("start n2");
    // One master in steady state: the higher priority.
    seg.wait_holder(VIP, 0, Duration::from_secs(8))
        .expect("n1 master");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(seg.holders(VIP), vec![0], "steady state");
    // The master's link is cut: the backup takes over within the VRRP bound.
    seg.cut(0).expect("cut");
    let took = seg
        .wait_holder(VIP, 1, Duration::from_secs(8))
        .expect("n2 takes over");
    assert!(took <= bound(1.0, 100, 1.0), "took {took:?}");
    // n1 saw its link go down (a link event, vrrp::runtime's tracking): FAULT, VIP gone.
    assert!(
        seg.nodes[0].log().contains("to=FAULT"),
        "n1 did not go FAULT:\n{}",
        seg.nodes[0].log()
    );
    // Back: preemption (default on) returns the VIP to the higher priority.
    seg.restore(0).expect("restore");
    seg.wait_holder(VIP, 0, Duration::from_secs(10))
        .expect("n1 preempts back");
    // Graceful stop: priority 0 hands over after the skew time only.
    seg.nodes[0].stop().expect("stop n1");
    let took = seg
        .wait_holder(VIP, 1, Duration::from_secs(5))
        .expect("n2 after graceful stop");
    assert!(
        took < Duration::from_millis(1500),
        "graceful handover took {took:?}"
    );
}

#[test]
fn nopreempt_keeps_the_new_master() {
    let mut seg = Segment::new(2).expect("segment");
    let mut n1 = node("n1", 150, 2, "1", None);
    n1.nopreempt = true;
    let mut n2 = node("n2", 100, 2, "1", None);
    n2.nopreempt = true;
    let (t1, t2) = (n1.toml(seg.nodes[0].dir()), n2.toml(seg.nodes[1].dir()));
    seg.nodes[0].start_ours(&t1).expect("start n1");
    seg.wait_holder(VIP, 0, Duration::from_secs(8))
        .expect("n1 alone is master");
    seg.nodes[1].start_ours(&t2).expect("start n2");
    std::thread::sleep(Duration::from_secs(1));
    seg.cut(0).expect("cut");
    seg.wait_holder(VIP, 1, Duration::from_secs(8))
        .expect("n2 takes over");
    seg.restore(0).expect("restore");
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(
        seg.holders(VIP),
        vec![1],
        "no preemption: n2 stays master\n{}",
        seg.logs()
    );
}

#[test]
fn keepalived_master_ours_backup_v2_pass() {
    let mut seg = Segment::new(2).expect("segment");
    let k = node("k1", 150, 2, "1", Some("s3cret"));
    let o = node("n2", 100, 2, "1", Some("s3cret"));
    seg.nodes[0]
        .start_keepalived(&keepalived_conf(&k))
        .expect("keepalived");
    let t = o.toml(seg.nodes[1].dir());
    seg.nodes[1].start_ours(&t).expect("ours");
    seg.wait_holder(VIP, 0, Duration::from_secs(10))
        .expect("keepalived master");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        seg.holders(VIP),
        vec![0],
        "ours stays backup\n{}",
        seg.logs()
    );
    seg.cut(0).expect("cut");
    seg.wait_holder(VIP, 1, Duration::from_secs(8))
        .expect("ours takes over");
    seg.restore(0).expect("restore");
    seg.wait_holder(VIP, 0, Duration::from_secs(12))
        .expect("keepalived preempts back");
}

#[test]
fn ours_master_keepalived_backup_v2_pass_graceful_stop() {
    let mut seg = Segment::new(2).expect("segment");
    let o = node("n1", 150, 2, "1", Some("s3cret"));
    let k = node("k2", 100, 2, "1", Some("s3cret"));
    let t = o.toml(seg.nodes[0].dir());
    seg.nodes[0].start_ours(&t).expect("ours");
    seg.nodes[1]
        .start_keepalived(&keepalived_conf(&k))
        .expect("keepalived");
    seg.wait_holder(VIP, 0, Duration::from_secs(10))
        .expect("ours master");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        seg.holders(VIP),
        vec![0],
        "keepalived stays backup\n{}",
        seg.logs()
    );
    seg.nodes[0].stop().expect("stop ours");
    let took = seg
        .wait_holder(VIP, 1, Duration::from_secs(5))
        .expect("keepalived takes over");
    assert!(
        took < Duration::from_millis(1500),
        "graceful handover took {took:?}"
    );
}

#[test]
fn v3_at_100ms_with_keepalived_in_both_families() {
    for family in [V4, V6] {
        announce(&family);
        let vip_cidr = family.pick("198.18.0.100/24", "2001:db8:f::100/64");
        let vip = vip_cidr.split('/').next().expect("address");
        let mut seg = Segment::new(2).expect("segment");
        let mut o = node("n1", 150, 3, "0.1", None);
        o.vip = vip_cidr;
        let mut k = node("k2", 100, 3, "0.1", None);
        k.vip = vip_cidr;
        let t = o.toml(seg.nodes[0].dir());
        seg.nodes[0].start_ours(&t).expect("ours");
        seg.nodes[1]
            .start_keepalived(&keepalived_conf(&k))
            .expect("keepalived");
        seg.wait_holder(vip, 0, Duration::from_secs(10))
            .expect("ours master");
        std::thread::sleep(Duration::from_secs(1));
        assert_eq!(
            seg.holders(vip),
            vec![0],
            "keepalived stays backup\n{}",
            seg.logs()
        );
        seg.cut(0).expect("cut");
        let took = seg
            .wait_holder(vip, 1, Duration::from_secs(5))
            .expect("keepalived takes over");
        assert!(
            took < Duration::from_millis(1500),
            "v3 100 ms failover took {took:?}"
        );
        seg.restore(0).expect("restore");
        seg.wait_holder(vip, 0, Duration::from_secs(5))
            .expect("ours preempts back");
    }
}

#[test]
fn unicast_with_keepalived() {
    let mut seg = Segment::new(2).expect("segment");
    let peers1 = ["198.18.0.12"];
    let peers2 = ["198.18.0.11"];
    let mut k = node("k1", 150, 2, "1", Some("s3cret"));
    k.unicast = Some(("198.18.0.11", &peers1));
    let mut o = node("n2", 100, 2, "1", Some("s3cret"));
    o.unicast = Some(("198.18.0.12", &peers2));
    seg.nodes[0]
        .start_keepalived(&keepalived_conf(&k))
        .expect("keepalived");
    let t = o.toml(seg.nodes[1].dir());
    seg.nodes[1].start_ours(&t).expect("ours");
    seg.wait_holder(VIP, 0, Duration::from_secs(10))
        .expect("keepalived master");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(seg.holders(VIP), vec![0], "{}", seg.logs());
    seg.nodes[0].stop().expect("stop keepalived");
    seg.wait_holder(VIP, 1, Duration::from_secs(5))
        .expect("ours takes over");
}

#[test]
fn wrong_password_is_rejected_on_both_sides() {
    let mut seg = Segment::new(2).expect("segment");
    let o = node("n1", 150, 2, "1", Some("right"));
    let k = node("k2", 100, 2, "1", Some("wrong"));
    let t = o.toml(seg.nodes[0].dir());
    seg.nodes[0].start_ours(&t).expect("ours");
    seg.nodes[1]
        .start_keepalived(&keepalived_conf(&k))
        .expect("keepalived");
    // Neither accepts the other's adverts: both end up master.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while seg.holders(VIP) != vec![0, 1] && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(seg.holders(VIP), vec![0, 1], "{}", seg.logs());
    // The last of the two to become MASTER adds its VIP as it sends its first advert:
    // give that advert time to reach the other side (and its log) before looking.
    let logged = |i: usize, words: &[&str]| {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let log = seg.nodes[i].log();
            let lower = log.to_lowercase();
            if words.iter().any(|w| lower.contains(w)) || std::time::Instant::now() >= deadline {
                break log;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let ours = logged(0, &["auth"]);
    assert!(
        ours.contains("auth"),
        "our log names the authentication mismatch:\n{ours}"
    );
    let theirs = logged(1, &["passwd", "password"]).to_lowercase();
    assert!(
        theirs.contains("passwd") || theirs.contains("password"),
        "keepalived's log names it:\n{theirs}"
    );
}

#[test]
fn failing_track_script_lowers_priority_and_notify_scripts_run() {
    let mut seg = Segment::new(2).expect("segment");
    let flag = seg.nodes[0].dir().join("healthy");
    std::fs::write(&flag, "").expect("flag");
    let notes = seg.nodes[0].dir().join("notes");
    let n1 = node("n1", 150, 2, "1", None);
    let extra = format!(
        "track_script = [\"chk_proxy\"]\nnotify = \"echo >> {notes}\"\nnotify_master = \"touch {notes}.master\"\n\n[[vrrp_script]]\nname = \"chk_proxy\"\nscript = \"test -f {flag}\"\ninterval = \"200ms\"\nweight = -60\nfall = 2\nrise = 2\n",
        notes = notes.display(),
        flag = flag.display()
    );
    let t1 = n1.toml(seg.nodes[0].dir()) + &extra;
    let t2 = node("n2", 100, 2, "1", None).toml(seg.nodes[1].dir());
    seg.nodes[0].start_ours(&t1).expect("n1");
    seg.nodes[1].start_ours(&t2).expect("n2");
    seg.wait_holder(VIP, 0, Duration::from_secs(8))
        .expect("n1 master");
    let master_note = notes.with_extension("master");
    let ran = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        master_note.exists()
    });
    assert!(ran, "notify_master ran");
    // The proxy dies: 150 - 60 = 90 < 100, the backup preempts.
    std::fs::remove_file(&flag).expect("remove flag");
    seg.wait_holder(VIP, 1, Duration::from_secs(8))
        .expect("n2 preempts");
    // It comes back: 150 again, n1 preempts back.
    std::fs::write(&flag, "").expect("flag");
    seg.wait_holder(VIP, 0, Duration::from_secs(8))
        .expect("n1 back");
    let log = std::fs::read_to_string(&notes).unwrap_or_default();
    assert!(
        log.contains("INSTANCE VI_1 MASTER 150"),
        "generic notify: {log:?}"
    );
    assert!(
        log.contains("INSTANCE VI_1 BACKUP 90"),
        "generic notify on losing mastership: {log:?}"
    );
}

#[test]
fn a_vip_left_by_a_crashed_run_is_removed_at_start() {
    let mut seg = Segment::new(2).expect("segment");
    // As if a previous lb-daemon on n2 had died while master.
    seg.nodes[1]
        .ns
        .ip(&["addr", "add", "198.18.0.100/24", "dev", "eth0"])
        .expect("stale VIP");
    let t1 = node("n1", 150, 2, "1", None).toml(seg.nodes[0].dir());
    let t2 = node("n2", 100, 2, "1", None).toml(seg.nodes[1].dir());
    seg.nodes[1].start_ours(&t2).expect("n2");
    seg.nodes[0].start_ours(&t1).expect("n1");
    seg.wait_holder(VIP, 0, Duration::from_secs(8))
        .expect("only the master holds the VIP");
}

fn reload(seg: &Segment, i: usize) -> std::process::Output {
    std::process::Command::new(lb_tests::vrrp_lab::daemon_bin())
        .args(["reload", "--socket"])
        .arg(seg.nodes[i].dir().join("lb.sock"))
        .output()
        .expect("lb-daemon reload")
}

#[test]
fn reload_keeps_unchanged_instances_and_restarts_changed_ones() {
    let mut seg = Segment::new(2).expect("segment");
    let t1 = node("n1", 150, 2, "1", None).toml(seg.nodes[0].dir());
    let t2 = node("n2", 100, 2, "1", None).toml(seg.nodes[1].dir());
    seg.nodes[0].start_ours(&t1).expect("n1");
    seg.nodes[1].start_ours(&t2).expect("n2");
    seg.wait_holder(VIP, 0, Duration::from_secs(8))
        .expect("n1 master");
    let conf = seg.nodes[0].dir().join("lb.toml");
    // Add a second instance: VI_1 must not move.
    let vi2 = "\n[[vrrp_instance]]\nname = \"VI_2\"\ninterface = \"eth0\"\nstate = \"BACKUP\"\nvirtual_router_id = 52\npriority = 120\nadvert_int = 1\nvirtual_ipaddress = [\"198.18.0.101/24\"]\n";
    std::fs::write(&conf, format!("{t1}{vi2}")).expect("write");
    let out = reload(&seg, 0);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(6);
    while std::time::Instant::now() < deadline {
        assert_eq!(
            seg.holders(VIP),
            vec![0],
            "VI_1 kept its state through the reload\n{}",
            seg.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    seg.wait_holder("198.18.0.101", 0, Duration::from_secs(8))
        .expect("VI_2 started");
    // Change VI_2 only: it restarts; VI_1 still does not move.
    std::fs::write(
        &conf,
        format!("{t1}{}", vi2.replace("priority = 120", "priority = 130")),
    )
    .expect("write");
    let out = reload(&seg, 0);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("VI_2"));
    for _ in 0..40 {
        assert_eq!(seg.holders(VIP), vec![0], "VI_1 untouched\n{}", seg.logs());
        std::thread::sleep(Duration::from_millis(50));
    }
    seg.wait_holder("198.18.0.101", 0, Duration::from_secs(8))
        .expect("VI_2 back");
    // A broken file changes nothing.
    std::fs::write(&conf, "[[vrrp_instance]]\nname = 3\n").expect("write");
    let out = reload(&seg, 0);
    assert!(!out.status.success(), "a broken file is refused");
    assert_eq!(seg.holders(VIP), vec![0]);
    // Issue 16: the client gets the diagnostics, as check-config prints them.
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("lb.toml:2:"), "{err}");
    assert!(
        err.lines()
            .last()
            .unwrap()
            .contains("the configuration is invalid"),
        "{err}"
    );
    std::fs::remove_file(&conf).expect("remove");
    let out = reload(&seg, 0);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("No such file"),
        "{err}"
    );
    assert_eq!(seg.holders(VIP), vec![0]);
}

/// Samples every 20 ms for `for_` that node 0 alone holds each of `vips`.
fn assert_only_n1_holds(seg: &Segment, vips: &[&str], for_: Duration, what: &str) {
    let deadline = std::time::Instant::now() + for_;
    while std::time::Instant::now() < deadline {
        for vip in vips {
            assert_eq!(seg.holders(vip), vec![0], "{what}: {vip}\n{}", seg.logs());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn transitions(seg: &Segment, i: usize) -> usize {
    seg.nodes[i].log().matches("VRRP transition").count()
}

/// Issue 16: a reload that changed only the priority restarted the instance (the VIP
/// gone for about a second: MASTER -> INIT -> BACKUP -> MASTER). Priority, VIP list and
/// a lowered priority now apply in place, as keepalived's reload does.
#[test]
fn reload_applies_priority_and_vips_in_place() {
    let mut seg = Segment::new(2).expect("segment");
    let t1 = node("n1", 150, 2, "1", None).toml(seg.nodes[0].dir());
    let t2 = node("n2", 100, 2, "1", None).toml(seg.nodes[1].dir());
    seg.nodes[0].start_ours(&t1).expect("n1");
    seg.nodes[1].start_ours(&t2).expect("n2");
    seg.wait_holder(VIP, 0, Duration::from_secs(8))
        .expect("n1 master");
    let conf = |i: usize| seg.nodes[i].dir().join("lb.toml");
    let ok = |out: std::process::Output| {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let before = transitions(&seg, 0);

    // A higher priority: n1 stays master, the VIP never leaves it.
    let t1 = t1.replace("priority = 150", "priority = 200");
    std::fs::write(conf(0), &t1).expect("write");
    let summary = ok(reload(&seg, 0));
    assert!(summary.contains("in place: [\"VI_1\"]"), "{summary}");
    assert_only_n1_holds(&seg, &[VIP], Duration::from_secs(3), "priority reload");
    assert_eq!(
        transitions(&seg, 0),
        before,
        "no transition\n{}",
        seg.logs()
    );

    // One VIP more (both nodes: the adverts carry the list): the old one stays put.
    let two = "virtual_ipaddress = [\"198.18.0.100/24\", \"198.18.0.102/24\"]";
    let one = "virtual_ipaddress = [\"198.18.0.100/24\"]";
    std::fs::write(conf(1), t2.replace(one, two)).expect("write");
    ok(reload(&seg, 1));
    std::fs::write(conf(0), t1.replace(one, two)).expect("write");
    ok(reload(&seg, 0));
    seg.wait_holder("198.18.0.102", 0, Duration::from_secs(2))
        .expect("the added VIP on n1");
    assert_only_n1_holds(
        &seg,
        &[VIP, "198.18.0.102"],
        Duration::from_secs(4),
        "VIP list reload",
    );
    assert_eq!(
        transitions(&seg, 0),
        before,
        "no transition\n{}",
        seg.logs()
    );

    // Below the peer: n1 yields as VRRP would (n2 preempts), without a restart.
    let low = t1
        .replace(one, two)
        .replace("priority = 200", "priority = 50");
    std::fs::write(conf(0), low).expect("write");
    ok(reload(&seg, 0));
    seg.wait_holder(VIP, 1, bound(1.0, 100, 2.0))
        .expect("n2 takes over");
    // Back above the peer, with a track_script added: n1 preempts, then follows the
    // script's verdict (200 - 180 = 20 < 100) — tracking applied in place too.
    let flag = seg.nodes[0].dir().join("healthy");
    std::fs::write(&flag, "").expect("flag");
    let tracked = format!(
        "{}track_script = [\"chk\"]\n\n[[vrrp_script]]\nname = \"chk\"\nscript = \"test -f {}\"\ninterval = \"200ms\"\nweight = -180\nfall = 1\nrise = 1\n",
        t1.replace(one, two),
        flag.display()
    );
    std::fs::write(conf(0), tracked).expect("write");
    ok(reload(&seg, 0));
    seg.wait_holder(VIP, 0, bound(1.0, 200, 2.0))
        .expect("n1 preempts back");
    std::fs::remove_file(&flag).expect("remove flag");
    seg.wait_holder(VIP, 1, bound(1.0, 100, 2.0))
        .expect("the new track_script lowers n1");
    let log = seg.nodes[0].log();
    assert!(
        !log.contains("stopping the old instance") && log.contains("applying the changes in place"),
        "no restart\n{}",
        seg.logs()
    );
}

/// Issue 16: a reload that adds, changes or removes a `vrrp_sync_group` applies in place.
/// Forming a group around two instances that are both MASTER keeps them MASTER (no
/// transition, the VIPs never leave); a member changed inside the group is reconfigured in
/// place and drags the other along; removing the group lets them move apart again.
#[test]
fn reload_applies_sync_group_changes_in_place() {
    let mut seg = Segment::new(2).expect("segment");
    let vi2 = |priority: u8| {
        format!("\n[[vrrp_instance]]\nname = \"VI_2\"\ninterface = \"eth0\"\nstate = \"BACKUP\"\nvirtual_router_id = 52\npriority = {priority}\nadvert_int = 1\nvirtual_ipaddress = [\"198.18.0.101/24\"]\n")
    };
    let group = "\n[[vrrp_sync_group]]\nname = \"G1\"\ngroup = [\"VI_1\", \"VI_2\"]\n";
    let t1 = node("n1", 150, 2, "1", None).toml(seg.nodes[0].dir());
    let t2 = node("n2", 100, 2, "1", None).toml(seg.nodes[1].dir());
    seg.nodes[0]
        .start_ours(&format!("{t1}{}", vi2(150)))
        .expect("n1");
    seg.nodes[1]
        .start_ours(&format!("{t2}{}", vi2(100)))
        .expect("n2");
    seg.wait_holder(VIP, 0, Duration::from_secs(8))
        .expect("n1 master of VI_1");
    seg.wait_holder("198.18.0.101", 0, Duration::from_secs(8))
        .expect("n1 master of VI_2");
    // The VIP goes up before the transition is logged: let the log catch up.
    std::thread::sleep(Duration::from_secs(1));
    let conf = |i: usize| seg.nodes[i].dir().join("lb.toml");
    let ok = |out: std::process::Output| {
        assert!(
            out.status.success(),
            "{}\n{}",
            String::from_utf8_lossy(&out.stderr),
            seg.logs()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let before = transitions(&seg, 0);

    // The group is formed on both nodes: n2's backups stay BACKUP, n1's masters MASTER.
    std::fs::write(conf(1), format!("{t2}{}{group}", vi2(100))).expect("write");
    ok(reload(&seg, 1));
    std::fs::write(conf(0), format!("{t1}{}{group}", vi2(150))).expect("write");
    let summary = ok(reload(&seg, 0));
    assert!(
        summary.contains("sync groups changed: [\"G1\"]"),
        "{summary}"
    );
    assert_only_n1_holds(
        &seg,
        &[VIP, "198.18.0.101"],
        Duration::from_secs(3),
        "group formed by reload",
    );
    assert_eq!(
        transitions(&seg, 0),
        before,
        "no transition\n{}",
        seg.logs()
    );
    assert!(
        seg.nodes[0].log().contains("sync group formed by reload"),
        "{}",
        seg.logs()
    );

    // A member changed inside the group (refused before): VI_2 on n1 now tracks a
    // failing script (weight 0: FAULT); the group takes VI_1 down with it, and n2 takes
    // both.
    let failing = "track_script = [\"chk\"]\n\n[[vrrp_script]]\nname = \"chk\"\nscript = \"test -f /nonexistent/lb-e2e-flag\"\ninterval = \"200ms\"\nweight = 0\nfall = 1\nrise = 1\n";
    std::fs::write(conf(0), format!("{t1}{}{failing}{group}", vi2(150))).expect("write");
    let summary = ok(reload(&seg, 0));
    assert!(summary.contains("in place: [\"VI_2\"]"), "{summary}");
    seg.wait_holder("198.18.0.101", 1, bound(1.0, 100, 2.0))
        .expect("n2 takes VI_2");
    seg.wait_holder(VIP, 1, bound(1.0, 100, 2.0))
        .expect("the group takes VI_1 to n2 too");

    // The group removed on both: VI_1 (150 on n1) is freed from the group's FAULT and
    // preempts back alone; VI_2, still failing its script on n1, stays on n2.
    std::fs::write(conf(1), format!("{t2}{}", vi2(100))).expect("write");
    ok(reload(&seg, 1));
    std::fs::write(conf(0), format!("{t1}{}{failing}", vi2(150))).expect("write");
    ok(reload(&seg, 0));
    seg.wait_holder(VIP, 0, bound(1.0, 150, 2.0))
        .expect("VI_1 back on n1 without the group");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(seg.holders("198.18.0.101"), vec![1], "{}", seg.logs());
    assert!(
        !seg.nodes[0].log().contains("stopping the old instance"),
        "nothing restarted\n{}",
        seg.logs()
    );
}
