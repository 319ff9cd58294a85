//! VRRPv2 `auth_type AH` (keepalived's IPsec-AH HMAC-MD5-96) with keepalived 2.2.7 in both
//! roles, a wrong key on either side, and a replayed advert injected on the segment. Needs
//! root and keepalived (installed by `cargo xtask setup`).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use lb_tests::vrrp_lab::{daemon_bin, keepalived_conf, Ours, Segment};

const VIP: &str = "198.18.0.100";

fn node(name: &'static str, priority: u8, password: &'static str) -> Ours<'static> {
    Ours {
        password: Some(password),
        ah: true,
        ..Ours::backup(name, priority)
    }
}

/// Our instance's dropped-advert counter for `reason`, from `lb-daemon status --json`.
fn dropped(seg: &Segment, i: usize, reason: &str) -> u64 {
    let sock = seg.nodes[i].dir().join("lb.sock");
    let out = std::process::Command::new(daemon_bin())
        .args(["status", "--json", "--socket"])
        .arg(&sock)
        .output()
        .expect("lb-daemon status");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    find(&json, "adverts_dropped")
        .and_then(|d| d.get(reason))
        .and_then(|n| n.as_u64())
        .unwrap_or(0)
}

fn find<'a>(v: &'a serde_json::Value, key: &str) -> Option<&'a serde_json::Value> {
    match v {
        serde_json::Value::Object(m) => {
            m.get(key).or_else(|| m.values().find_map(|x| find(x, key)))
        }
        serde_json::Value::Array(a) => a.iter().find_map(|x| find(x, key)),
        _ => None,
    }
}

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn ah_keepalived_master_ours_backup_then_failover_and_preempt_back() {
    let mut seg = Segment::new(2).expect("segment");
    let k = node("k1", 150, "s3cret");
    let o = node("n2", 100, "s3cret");
    seg.nodes[0]
        .start_keepalived(&keepalived_conf(&k))
        .expect("keepalived");
    let t = o.toml(seg.nodes[1].dir());
    seg.nodes[1].start_ours(&t).expect("ours");
    seg.wait_holder(VIP, 0, Duration::from_secs(10))
        .expect("keepalived master");
    std::thread::sleep(Duration::from_secs(3));
    // Ours accepts keepalived's AH adverts: it stays backup, nothing dropped.
    assert_eq!(
        seg.holders(VIP),
        vec![0],
        "ours stays backup\n{}",
        seg.logs()
    );
    assert_eq!(dropped(&seg, 1, "ah_auth_failure"), 0, "{}", seg.logs());
    seg.cut(0).expect("cut");
    seg.wait_holder(VIP, 1, Duration::from_secs(8))
        .expect("ours takes over");
    // keepalived comes back as BACKUP, accepts our AH adverts (sequence numbers above
    // the ones it sent), then preempts with numbers above ours, which we accept.
    seg.restore(0).expect("restore");
    seg.wait_holder(VIP, 0, Duration::from_secs(12))
        .expect("keepalived preempts back");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(seg.holders(VIP), vec![0], "{}", seg.logs());
    let theirs = seg.nodes[0].log();
    assert!(
        !theirs.contains("IPSEC-AH : invalid"),
        "keepalived accepted our adverts:\n{theirs}"
    );
}

#[test]
fn ah_ours_master_keepalived_backup_graceful_stop() {
    let mut seg = Segment::new(2).expect("segment");
    let o = node("n1", 150, "s3cret");
    let k = node("k2", 100, "s3cret");
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
        "keepalived stays backup (it accepts our AH adverts)\n{}",
        seg.logs()
    );
    // The priority-0 advert is AH-authenticated too: keepalived takes over at once.
    seg.nodes[0].stop().expect("stop ours");
    seg.wait_holder(VIP, 1, Duration::from_secs(3))
        .expect("keepalived takes over after our priority-0 advert");
}

#[test]
fn ah_wrong_key_is_dropped_and_counted_on_both_sides() {
    let mut seg = Segment::new(2).expect("segment");
    let o = node("n1", 150, "right");
    let k = node("k2", 100, "wrong");
    let t = o.toml(seg.nodes[0].dir());
    seg.nodes[0].start_ours(&t).expect("ours");
    seg.nodes[1]
        .start_keepalived(&keepalived_conf(&k))
        .expect("keepalived");
    // Neither accepts the other's adverts: both end up master.
    wait_for("both masters", Duration::from_secs(10), || {
        seg.holders(VIP) == vec![0, 1]
    });
    wait_for(
        "our ah_auth_failure counter",
        Duration::from_secs(5),
        || dropped(&seg, 0, "ah_auth_failure") > 0,
    );
    let ours = seg.nodes[0].log();
    assert!(ours.contains("IPsec AH"), "our log names it:\n{ours}");
    let theirs = seg.nodes[1].log();
    assert!(
        theirs.contains("IPSEC-AH : invalid IPSEC HMAC-MD5"),
        "keepalived's log names it:\n{theirs}"
    );
}

/// An AF_PACKET socket on `dev` in the calling thread's namespace.
fn packet_socket(dev: &str) -> OwnedFd {
    let all = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: plain syscalls on a descriptor we own; sockaddr_ll is plain data.
    unsafe {
        let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, libc::c_int::from(all));
        assert!(fd >= 0, "AF_PACKET: {}", std::io::Error::last_os_error());
        let fd = OwnedFd::from_raw_fd(fd);
        let mut sll: libc::sockaddr_ll = std::mem::zeroed();
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = all;
        sll.sll_ifindex = nix::net::if_::if_nametoindex(dev).expect("ifindex") as i32;
        let len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        let rc = libc::bind(
            fd.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            len,
        );
        assert_eq!(rc, 0, "bind: {}", std::io::Error::last_os_error());
        let tv = libc::timeval {
            tv_sec: 1,
            tv_usec: 0,
        };
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        );
        fd
    }
}

#[test]
fn ah_replayed_advert_is_dropped_and_counted() {
    let mut seg = Segment::new(3).expect("segment");
    let k = node("k1", 150, "s3cret");
    let o = node("n2", 100, "s3cret");
    seg.nodes[0]
        .start_keepalived(&keepalived_conf(&k))
        .expect("keepalived");
    let t = o.toml(seg.nodes[1].dir());
    seg.nodes[1].start_ours(&t).expect("ours");
    seg.wait_holder(VIP, 0, Duration::from_secs(10))
        .expect("keepalived master");
    // A third node records one of keepalived's AH adverts (IPv4, protocol 51) and sends
    // the very same frame again, twice.
    let replays = seg.nodes[2].ns.run(|| {
        let fd = packet_socket("eth0");
        let deadline = Instant::now() + Duration::from_secs(10);
        let frame = loop {
            assert!(Instant::now() < deadline, "no AH advert seen");
            let mut buf = [0u8; 2048];
            // SAFETY: recv into a buffer we own.
            let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n > 34 && buf[12..14] == [0x08, 0x00] && buf[23] == 51 {
                break buf[..n as usize].to_vec();
            }
        };
        std::thread::sleep(Duration::from_millis(1500));
        let mut sent = 0;
        for _ in 0..2 {
            // SAFETY: send from a buffer we own on a bound AF_PACKET socket.
            let n = unsafe { libc::send(fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
            if n == frame.len() as isize {
                sent += 1;
            }
        }
        sent
    });
    assert_eq!(replays, 2, "the replayed frames went out");
    wait_for("our ah_replay counter", Duration::from_secs(5), || {
        dropped(&seg, 1, "ah_replay") >= 2
    });
    assert_eq!(dropped(&seg, 1, "ah_auth_failure"), 0, "{}", seg.logs());
    assert_eq!(seg.holders(VIP), vec![0], "{}", seg.logs());
}

#[test]
fn ah_unicast_with_keepalived_both_ways() {
    let mut seg = Segment::new(2).expect("segment");
    let mut o = node("n1", 150, "s3cret");
    o.unicast = Some(("198.18.0.11", &["198.18.0.12"]));
    let mut k = node("k2", 100, "s3cret");
    k.unicast = Some(("198.18.0.12", &["198.18.0.11"]));
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
        "keepalived accepts our unicast AH adverts (TTL out of the ICV)\n{}",
        seg.logs()
    );
    seg.nodes[0].stop().expect("stop ours");
    seg.wait_holder(VIP, 1, Duration::from_secs(5))
        .expect("keepalived takes over");
    // Ours again, as BACKUP with the higher priority: it accepts keepalived's adverts,
    // then preempts with sequence numbers keepalived accepts.
    seg.nodes[0].start_ours(&t).expect("ours again");
    seg.wait_holder(VIP, 0, Duration::from_secs(12))
        .expect("ours preempts back");
    assert_eq!(dropped(&seg, 0, "ah_auth_failure"), 0, "{}", seg.logs());
}
