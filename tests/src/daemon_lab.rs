//! The daemon lab of the end-to-end tests: two LB nodes running `lb-daemon run` in one
//! VRRP group, one client, `n` backends behind the VIP; plus readers of a node's status
//! and metrics.

use std::{path::Path, time::Duration};

use anyhow::{Context, Result};
use lb_daemon::{
    dataplane::{ForwardMode, HelperProgram},
    lab::{requests_from, start_backend, BackendHost, CLIENT_ADDR},
    netns::Netns,
};

use crate::vrrp_lab::{daemon_bin, Segment};

/// The lab's VIP (the lab configuration's `virtual_ipaddress`).
pub const VIP: &str = "198.18.0.100";
/// Where the lab configuration's daemons serve metrics (inside their namespace).
pub const METRICS_ADDR: &str = "127.0.0.1:9469";

/// The lab's node configuration (the one `cargo xtask run` uses).
pub fn config(name: &str, priority: u8, dir: &Path, mode: ForwardMode, backends: usize) -> String {
    lb_daemon::lab::daemon_config(
        name,
        priority,
        dir,
        Path::new("/sys/fs/bpf/lb"),
        mode,
        backends,
    )
}

/// The lab running: keep every part alive for as long as the test uses it.
pub struct Lab {
    pub seg: Segment,
    pub peers: Vec<HelperProgram>,
    pub backends: Vec<BackendHost>,
}

/// Nodes 0 and 1 are the LBs (198.18.0.11/.12), node 2 the client (the lab's client
/// address), `backends` backends; `lb_pass` on the LBs' switch ports.
pub fn topology(mode: ForwardMode, backends: usize) -> Result<Lab> {
    let _ = daemon_bin();
    let seg = Segment::new(3)?;
    let client: &Netns = &seg.nodes[2].ns;
    // The lab's client address only (deleting a primary address drops its secondaries).
    client.ip(&["addr", "del", "198.18.0.13/24", "dev", "eth0"])?;
    client.ip(&["addr", "add", &format!("{CLIENT_ADDR}/24"), "dev", "eth0"])?;
    client.sh("ethtool -K eth0 tx off tso off gso off >/dev/null")?;
    // Native XDP_TX out of the LBs' veths needs XDP on the switch-side peers.
    let mut peers = Vec::new();
    for node in &seg.nodes[..2] {
        let port = node.port.clone();
        peers.push(seg.switch.ns().run(move || HelperProgram::pass(&port))?);
    }
    let backends = (0..backends)
        .map(|i| start_backend(&seg.switch, i, mode))
        .collect::<Result<_>>()?;
    Ok(Lab {
        seg,
        peers,
        backends,
    })
}

/// [`topology`] with both daemons running (lb1 priority 150 is MASTER) and traffic
/// flowing through the VIP.
pub fn running_pair(mode: ForwardMode, backends: usize) -> Result<Lab> {
    let mut lab = topology(mode, backends)?;
    let seg = &mut lab.seg;
    for (i, (name, priority)) in [("lb1", 150), ("lb2", 100)].into_iter().enumerate() {
        let conf = config(name, priority, seg.nodes[i].dir(), mode, backends);
        seg.nodes[i].start_ours(&conf)?;
    }
    seg.wait_holder(VIP, 0, Duration::from_secs(10))
        .with_context(|| format!("lb1 master\n{}", seg.logs()))?;
    let flowing = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(200));
        requests_from(&seg.nodes[2].ns, 30).is_ok()
    });
    anyhow::ensure!(flowing, "no traffic through the VIP\n{}", seg.logs());
    Ok(lab)
}

/// `lb-daemon status --json` of the daemon behind `sock` (Null when it does not answer).
pub fn status_json(sock: &Path) -> serde_json::Value {
    std::process::Command::new(daemon_bin())
        .args(["status", "--json", "--socket"])
        .arg(sock)
        .output()
        .ok()
        .and_then(|out| serde_json::from_slice(&out.stdout).ok())
        .unwrap_or_default()
}

/// An HTTP GET from inside `ns`; the response body.
pub fn http_get(ns: &Netns, addr: &str, target: &str) -> Result<String> {
    let addr = addr.to_string();
    let target = target.to_string();
    ns.run(move || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(&addr).with_context(|| addr.clone())?;
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
        write!(
            s,
            "GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )?;
        let mut out = Vec::new();
        s.read_to_end(&mut out)?;
        let out = String::from_utf8_lossy(&out).into_owned();
        let (head, body) = out
            .split_once("\r\n\r\n")
            .with_context(|| format!("no HTTP response from {addr}: {out:?}"))?;
        anyhow::ensure!(
            head.starts_with("HTTP/1.1 200"),
            "GET {target} from {addr}: {head}"
        );
        // Chunked bodies (Prometheus' API) are decoded; others are returned as they are.
        if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            return dechunk(body);
        }
        Ok(body.to_string())
    })
}

fn dechunk(mut body: &str) -> Result<String> {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").context("chunk size")?;
        let size = usize::from_str_radix(size.trim(), 16).context("chunk size")?;
        if size == 0 {
            return Ok(out);
        }
        out.push_str(rest.get(..size).context("short chunk")?);
        body = rest.get(size + 2..).context("short chunk")?;
    }
}
