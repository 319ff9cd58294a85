//! docs/observability.md's `xdpdump` recipe, once, in the namespace lab: xdpdump on the
//! client's interface (no XDP program there: `--load-xdp-program` loads its capture
//! program) sees the VIP's answers arrive. Watching lb_xdp itself (`--rx-capture
//! entry,exit`: fentry/fexit on the program) is not tested: the test machine refuses
//! tracing programs (EPERM loading xdpdump_bpf.o, as root). Needs root and `xdp-tools`.

use std::time::Duration;

use lb_daemon::{dataplane::ForwardMode, lab::requests_from};
use lb_tests::daemon_lab::running_pair;

#[test]
fn xdpdump_sees_packets_in_the_lab() {
    assert!(
        std::process::Command::new("xdpdump")
            .arg("--version")
            .output()
            // It exits 1 after printing its version.
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("xdpdump version")),
        "xdpdump is missing: run `cargo xtask setup` (Debian package xdp-tools)"
    );
    let lab = running_pair(ForwardMode::Dr, 2).expect("lab");
    let seg = &lab.seg;
    let out_path = seg.nodes[0].dir().join("xdpdump.out");
    let err_path = seg.nodes[0].dir().join("xdpdump.err");
    let dump = seg.nodes[2]
        .ns
        .spawn_with(
            &["xdpdump", "-i", "eth0", "--load-xdp-program"],
            std::fs::File::create(&out_path).expect("out").into(),
            std::fs::File::create(&err_path).expect("err").into(),
        )
        .expect("xdpdump");
    // It reports "listening on ..." once its fentry/fexit probes are in place.
    let listening = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        std::fs::read_to_string(&out_path).is_ok_and(|s| s.contains("listening"))
            || std::fs::read_to_string(&err_path).is_ok_and(|s| s.contains("listening"))
    });
    requests_from(&seg.nodes[2].ns, 5).expect("traffic through the VIP");
    // SIGINT: xdpdump flushes its output and detaches (SIGKILL would lose the buffer).
    let pid = dump.pid().expect("pid") as i32;
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(pid, libc::SIGINT) };
    let exited = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        dump.try_wait().is_ok_and(|s| s.is_some())
    });
    let out = std::fs::read_to_string(&out_path).unwrap_or_default();
    let err = std::fs::read_to_string(&err_path).unwrap_or_default();
    assert!(listening, "xdpdump did not start:\n{out}\n{err}");
    assert!(exited, "xdpdump ends on SIGINT");
    // One line per packet: "<time>: xdpdump()@entry: packet size N bytes on if_index ...".
    assert!(
        out.lines().any(|l| l.contains("@entry: packet size")),
        "packets seen:\n{out}\n{err}"
    );
}
