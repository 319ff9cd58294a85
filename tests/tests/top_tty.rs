//! `lb-daemon top` in a pseudo-terminal (a detached tmux session), read back with
//! `tmux capture-pane`: against a fake control socket serving canned status JSON whose
//! counters grow, it shows the VRRP instance, the service and its backends with health,
//! weight and rates; `/` filters, `s` sorts, `q` quits. No root needed; needs tmux.

use std::{
    io::{BufRead, BufReader, Write},
    os::unix::net::UnixListener,
    path::PathBuf,
    process::Command,
    time::Duration,
};

use lb_tests::vrrp_lab::daemon_bin;

/// The canned status of the `n`th request: 100 more packets per second on 10.0.1.1.
fn status(n: u64) -> String {
    let packets = 1000 + 100 * n;
    serde_json::json!({
        "router_id": "lb1", "dataplane": "xdp",
        "instances": [{"name": "VI_1", "state": "MASTER", "state_code": 2,
            "priority_effective": 150, "priority_configured": 150, "master": null,
            "last_transition_unix": null, "last_transition_reason": null,
            "transitions": 1, "adverts_received": 0, "adverts_sent": 9, "adverts_dropped": {}}],
        "services": [{"address": "198.18.0.100", "port": 80, "protocol": "TCP", "lb_kind": "DR",
            "quorum_up": true, "packets": packets, "bytes": packets * 60,
            "backends": [
                {"address": "10.0.1.1", "port": 80, "weight": 3, "healthy": true,
                 "last_check": "connected", "packets": packets, "bytes": packets * 60},
                {"address": "10.0.1.2", "port": 80, "weight": 1, "healthy": false,
                 "last_check": "refused", "packets": 7, "bytes": 420}]}],
        "dataplane_drops": {},
        "health": {"checks": 1, "failures": 0, "verdict_changes": 0,
            "duration_buckets": [], "duration_sum_seconds": 0.0}
    })
    .to_string()
}

/// A control socket answering every `status` with the next canned snapshot.
fn fake_daemon(path: PathBuf) {
    let listener = UnixListener::bind(&path).expect("bind the fake control socket");
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { continue };
            let mut line = String::new();
            let _ = BufReader::new(&stream).read_line(&mut line);
            let _ = writeln!(stream, "{}", status(n as u64));
        }
    });
}

/// A detached tmux session, killed on drop.
struct Tmux(String);

impl Tmux {
    fn keys(&self, keys: &[&str]) {
        let ok = Command::new("tmux")
            .args(["send-keys", "-t", &self.0])
            .args(keys)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "tmux send-keys {keys:?}");
    }

    fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &self.0])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The screen once `want` holds (within 5 s), else a panic showing it.
    fn wait_for(&self, what: &str, want: impl Fn(&str) -> bool) -> String {
        for _ in 0..50 {
            let s = self.screen();
            if want(&s) {
                return s;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("{what}; the screen:\n{}", self.screen());
    }

    fn alive(&self) -> bool {
        Command::new("tmux")
            .args(["has-session", "-t", &self.0])
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.0])
            .status();
    }
}

#[test]
fn top_shows_the_daemon_and_answers_keys() {
    let dir = std::env::temp_dir().join(format!("lb-top-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let sock = dir.join("lb.sock");
    let _ = std::fs::remove_file(&sock);
    fake_daemon(sock.clone());
    let name = format!("lbtop{}", std::process::id());
    let cmd = format!(
        "{} top --socket {}; sleep 30",
        daemon_bin().display(),
        sock.display()
    );
    let ok = Command::new("tmux")
        .args([
            "new-session",
            "-d",
            "-s",
            &name,
            "-x",
            "150",
            "-y",
            "30",
            &cmd,
        ])
        .status()
        .expect("tmux (apt-get install tmux)")
        .success();
    assert!(ok, "tmux new-session");
    let tmux = Tmux(name);

    // After two refreshes: rates (100 packets/s, 6000 bytes/s) on the busy backend.
    let screen = tmux.wait_for("the first screens", |s| {
        s.contains("VI_1") && s.contains("-> 10.0.1.1:80") && s.contains("6.0k")
    });
    assert!(screen.contains("MASTER"), "{screen}");
    assert!(screen.contains("198.18.0.100:80/TCP"), "{screen}");
    assert!(screen.contains("sort: name"), "{screen}");
    let busy = screen
        .lines()
        .find(|l| l.contains("-> 10.0.1.1:80"))
        .expect("busy backend row");
    assert!(
        busy.contains("yes") && busy.contains(" 3 ") && busy.contains("100"),
        "{busy}"
    );
    let down = screen
        .lines()
        .find(|l| l.contains("-> 10.0.1.2:80"))
        .expect("down backend row");
    assert!(down.contains("no"), "{down}");

    // `/` then a filter: only the matching backend under its service.
    tmux.keys(&["/", "10.0.1.2", "Enter"]);
    let filtered = tmux.wait_for("the filter", |s| {
        s.contains("filter: 10.0.1.2") && !s.contains("-> 10.0.1.1:80")
    });
    assert!(filtered.contains("-> 10.0.1.2:80"), "{filtered}");
    // `s` sorts by packets/s next.
    tmux.keys(&["s"]);
    tmux.wait_for("the sort", |s| s.contains("sort: packets/s"));
    // `q` quits and gives the terminal back (the shell's `sleep` then runs).
    tmux.keys(&["q"]);
    tmux.wait_for("quitting", |s| !s.contains("lb-daemon top"));
    assert!(tmux.alive(), "the session outlives top (sleep 30)");
    let _ = std::fs::remove_dir_all(&dir);
}
