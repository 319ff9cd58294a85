//! systemd's watchdog: a daemon started with `WATCHDOG_USEC` pings `WATCHDOG=1` on
//! `NOTIFY_SOCKET` from its main loop; while the loop is wedged (the debug build's
//! `debug-block-loop` control request) the pings stop, and they resume after, so
//! systemd would have restarted a daemon wedged for longer than `WatchdogSec=`. Also
//! the log style: plain text in a file, `<N>` priorities under journald.
//! Runs `target/debug/lb-daemon` (`cargo build -p lb-daemon`) in a namespace of its own.
//! Needs root.

use std::{
    os::unix::net::UnixDatagram,
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use lb_daemon::{
    daemon::control,
    netns::{unique_name, Netns, NsChild},
};
use lb_tests::vrrp_lab::daemon_bin;

/// WATCHDOG_USEC: pings every 200 ms.
const WATCHDOG_USEC: &str = "400000";

/// A daemon in its own namespace, with one VRRP instance on a veth link (a daemon
/// needs something to run), killed on drop.
struct Daemon {
    _child: NsChild,
    _ns: Netns,
    dir: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start(dir: &Path, notify: &Path, watchdog_pid: Option<&str>, extra_env: &[&str]) -> Daemon {
    let ns = Netns::new("lb-wd").unwrap();
    ns.ip(&["link", "add", "d0", "type", "veth", "peer", "name", "d1"])
        .unwrap();
    ns.ip(&["link", "set", "d1", "up"]).unwrap();
    ns.ip(&["addr", "add", "192.0.2.1/24", "dev", "d0"])
        .unwrap();
    ns.ip(&["link", "set", "d0", "up"]).unwrap();
    let config = dir.join("lb.toml");
    std::fs::write(
        &config,
        format!(
            r#"[global]
router_id = "wd"
control_socket = "{}/lb.sock"

[[vrrp_instance]]
name = "VI_1"
interface = "d0"
state = "BACKUP"
virtual_router_id = 51
priority = 100
advert_int = 1
virtual_ipaddress = ["192.0.2.100/32"]
"#,
            dir.display()
        ),
    )
    .unwrap();
    let notify_env = format!("NOTIFY_SOCKET={}", notify.display());
    let watchdog_env = format!("WATCHDOG_USEC={WATCHDOG_USEC}");
    let pid_env = watchdog_pid.map(|pid| format!("WATCHDOG_PID={pid}"));
    let daemon = daemon_bin();
    // env's options (-u) must come before its assignments.
    let mut argv = vec!["env", "-u", "WATCHDOG_PID"];
    argv.extend(extra_env);
    argv.extend([notify_env.as_str(), watchdog_env.as_str()]);
    argv.extend(pid_env.as_deref());
    argv.extend([daemon.to_str().unwrap(), "run", "--config"]);
    argv.push(config.to_str().unwrap());
    let log = std::fs::File::create(dir.join("daemon.log")).unwrap();
    let child = ns
        .spawn_with(&argv, Stdio::null(), Stdio::from(log))
        .expect("starting lb-daemon");
    Daemon {
        _child: child,
        _ns: ns,
        dir: dir.to_path_buf(),
    }
}

/// The notifications received within `window`.
fn collect(sock: &UnixDatagram, window: Duration) -> Vec<String> {
    let end = Instant::now() + window;
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        sock.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        match sock.recv(&mut buf) {
            Ok(n) => got.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(_) => break,
        }
    }
    got
}

fn pings(messages: &[String]) -> usize {
    messages.iter().filter(|m| *m == "WATCHDOG=1").count()
}

fn setup(prefix: &str) -> (PathBuf, UnixDatagram, PathBuf) {
    let dir = std::env::temp_dir().join(unique_name(prefix));
    std::fs::create_dir_all(&dir).unwrap();
    let notify = dir.join("notify");
    let sock = UnixDatagram::bind(&notify).unwrap();
    (dir, sock, notify)
}

fn wait_ready(sock: &UnixDatagram) {
    let got = collect_until(sock, Duration::from_secs(20), |m| m.contains("READY=1"));
    assert!(got, "the daemon never sent READY=1");
}

fn collect_until(sock: &UnixDatagram, limit: Duration, want: impl Fn(&str) -> bool) -> bool {
    let end = Instant::now() + limit;
    let mut buf = [0u8; 512];
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        sock.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        match sock.recv(&mut buf) {
            Ok(n) if want(&String::from_utf8_lossy(&buf[..n])) => return true,
            Ok(_) => {}
            Err(_) => return false,
        }
    }
    false
}

#[test]
fn pings_stop_while_the_loop_is_blocked_and_resume_after() {
    let (dir, sock, notify) = setup("lb-wd");
    let daemon = start(&dir, &notify, None, &["-u", "JOURNAL_STREAM"]);
    wait_ready(&sock);

    // The reply itself waits for the loop (one thread), so ask from another thread
    // after a second of normal pings, and time the pings throughout.
    let socket = dir.join("lb.sock");
    let start = Instant::now();
    let mut asker = None;
    let mut stamps = Vec::new();
    let mut buf = [0u8; 512];
    while start.elapsed() < Duration::from_secs(5) {
        if asker.is_none() && start.elapsed() >= Duration::from_secs(1) {
            let socket = socket.clone();
            asker = Some(std::thread::spawn(move || {
                control::request(&socket, "debug-block-loop 2", Duration::from_secs(10))
            }));
        }
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        if let Ok(n) = sock.recv(&mut buf) {
            if &buf[..n] == b"WATCHDOG=1" {
                stamps.push(start.elapsed());
            }
        }
    }
    let asker = asker.expect("the request was sent");
    let answer = asker.join().unwrap().unwrap();
    assert!(answer.contains("\"ok\":true"), "{answer}");

    let gaps: Vec<Duration> = stamps.windows(2).map(|w| w[1] - w[0]).collect();
    let (at, longest) = gaps
        .iter()
        .copied()
        .enumerate()
        .max_by_key(|(_, gap)| *gap)
        .unwrap_or_default();
    assert!(
        longest >= Duration::from_millis(1800),
        "no pause in the pings while the loop was blocked: {stamps:?}"
    );
    let before = at + 1;
    let resumed = stamps.len() - before;
    let log = std::fs::read_to_string(daemon.dir.join("daemon.log")).unwrap();
    assert!(!log.contains('\x1b'), "colour codes in a log file: {log}");
    assert!(
        !log.starts_with('<'),
        "journal priorities outside journald: {log}"
    );
    assert!(before >= 3, "pings before the block: {stamps:?}");
    assert!(resumed >= 3, "the pings did not resume: {stamps:?}");
}

#[test]
fn another_process_watchdog_gets_no_pings() {
    let (dir, sock, notify) = setup("lb-wd-pid");
    // PID 1 is never the daemon: the watchdog is someone else's.
    // Under journald too: every log line carries its syslog priority.
    let daemon = start(&dir, &notify, Some("1"), &["JOURNAL_STREAM=8:12345"]);
    wait_ready(&sock);
    let messages = collect(&sock, Duration::from_secs(1));
    assert_eq!(pings(&messages), 0, "{messages:?}");

    let log = std::fs::read_to_string(daemon.dir.join("daemon.log")).unwrap();
    assert!(!log.is_empty());
    assert!(!log.contains('\x1b'), "colour codes in the journal: {log}");
    for line in log.lines() {
        let priority = line.strip_prefix('<').and_then(|l| l.chars().next());
        assert!(
            priority.is_some_and(|p| p.is_ascii_digit()) && line.get(2..3) == Some(">"),
            "a line without its <N> priority: {line:?}"
        );
    }
    assert!(log.contains("<6>"), "{log}");
}
