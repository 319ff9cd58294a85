//! Debian's Prometheus scrapes a running daemon: one LB node (and its backup) in the
//! namespace lab, traffic through the VIP, then a Prometheus started in the master's
//! namespace (its own config, storage in the node's temp dir) is asked over its HTTP API
//! for the VRRP state, the per-backend packets and the health series; `promtool check
//! metrics` has nothing to say about the raw `/metrics` text. Needs root and the
//! `prometheus` package (`cargo xtask setup`).

use std::{path::Path, process::Stdio, time::Duration};

use lb_daemon::{dataplane::ForwardMode, netns::NsChild};
use lb_tests::{
    daemon_lab::{http_get, running_pair, METRICS_ADDR},
    prometheus::dashboard_exprs,
};

/// Prometheus in `ns`, scraping the daemon every second; killed on drop ([`NsChild`]).
fn start_prometheus(
    ns: &lb_daemon::netns::Netns,
    dir: &Path,
    listen: &str,
) -> anyhow::Result<NsChild> {
    let conf = dir.join("prometheus.yml");
    std::fs::write(
        &conf,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: lb\n    static_configs:\n      - targets: ['{METRICS_ADDR}']\n"
        ),
    )?;
    let log = std::fs::File::create(dir.join("prometheus.log"))?;
    ns.spawn_with(
        &[
            "prometheus",
            &format!("--config.file={}", conf.display()),
            &format!("--storage.tsdb.path={}", dir.join("tsdb").display()),
            &format!("--web.listen-address={listen}"),
        ],
        Stdio::null(),
        log.into(),
    )
}

/// `/api/v1/query` results: (labels, value) per series.
fn query(
    ns: &lb_daemon::netns::Netns,
    listen: &str,
    expr: &str,
) -> anyhow::Result<Vec<(serde_json::Value, f64)>> {
    let body = http_get(ns, listen, &format!("/api/v1/query?query={}", encode(expr)))?;
    let v: serde_json::Value = serde_json::from_str(&body)?;
    anyhow::ensure!(v["status"] == "success", "{expr}: {body}");
    Ok(v["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|r| {
            let value = r["value"][1].as_str().and_then(|s| s.parse().ok());
            (r["metric"].clone(), value.unwrap_or(f64::NAN))
        })
        .collect())
}

/// Percent-encoding of a query parameter.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn prometheus_scrapes_the_daemon() {
    assert!(
        std::process::Command::new("prometheus")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success()),
        "prometheus is missing: run `cargo xtask setup` (Debian package prometheus)"
    );
    let lab = running_pair(ForwardMode::Dr, 3).expect("lab");
    let seg = &lab.seg;

    let ns = &seg.nodes[0].ns;
    // The node's namespace is ours alone: any port is free there.
    let listen = format!("127.0.0.1:{}", 19090 + std::process::id() % 1000);
    let _prometheus = start_prometheus(ns, seg.nodes[0].dir(), &listen).expect("prometheus");
    let prom_log =
        || std::fs::read_to_string(seg.nodes[0].dir().join("prometheus.log")).unwrap_or_default();
    // A scrape has landed once `up` is 1 and the daemon's series are there.
    let scraped = (0..60).any(|_| {
        std::thread::sleep(Duration::from_millis(500));
        query(ns, &listen, "up{job=\"lb\"} == 1").is_ok_and(|r| r.len() == 1)
            && query(ns, &listen, "lb_backend_packets_total").is_ok_and(|r| r.len() == 3)
    });
    assert!(scraped, "no scrape within 30 s\n{}", prom_log());

    let state = query(ns, &listen, "lb_vrrp_state{vrrp_instance=\"VI_1\"}").expect("state");
    assert_eq!(state.len(), 1, "{state:?}");
    assert_eq!(state[0].1, 2.0, "MASTER: {state:?}");
    let packets = query(ns, &listen, "sum(lb_backend_packets_total)").expect("packets");
    assert!(
        packets[0].1 > 0.0,
        "per-backend packets counted: {packets:?}"
    );
    let up = query(ns, &listen, "lb_backend_up").expect("health");
    assert_eq!(up.len(), 3, "{up:?}");
    assert!(up.iter().all(|(_, v)| *v == 1.0), "{up:?}");
    assert!(
        up.iter()
            .all(|(l, _)| l["service"] == "198.18.0.100:80/TCP" && l["backend"].is_string()),
        "{up:?}"
    );
    let checks = query(ns, &listen, "lb_healthcheck_total").expect("checks");
    assert!(checks[0].1 > 0.0, "{checks:?}");

    let attached = query(ns, &listen, "lb_xdp_attached_info").expect("attachments");
    assert!(
        attached
            .iter()
            .any(|(l, _)| l["interface"] == "eth0" && l["mode"] == "native"),
        "{attached:?}"
    );
    let capacity = query(
        ns,
        &listen,
        "lb_dataplane_table_capacity{table=\"conntrack\"}",
    )
    .expect("table capacity");
    assert_eq!(capacity.len(), 1, "{capacity:?}");
    assert!(capacity[0].1 > 0.0, "{capacity:?}");
    // The connection-table filter, trusted from its first rebuild (1 s after start),
    // holds the bits of the flows above.
    let mut fill = Vec::new();
    for _ in 0..20 {
        fill = query(ns, &listen, "lb_conn_filter_fill_ratio").expect("filter fill");
        if !fill.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(fill.len(), 1, "no lb_conn_filter_fill_ratio within 10 s");
    assert!(fill[0].1 > 0.0 && fill[0].1 < 1.0, "{fill:?}");
    // Every dashboard query is valid PromQL, and finds data where the lab has some.
    for expr in dashboard_exprs().expect("dashboard") {
        query(ns, &listen, &expr).unwrap_or_else(|e| panic!("dashboard query {expr}: {e:#}"));
    }

    // promtool's lint of the raw exposition.
    let raw = http_get(ns, METRICS_ADDR, "/metrics").expect("/metrics");
    let mut promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    {
        use std::io::Write;
        let mut stdin = promtool.stdin.take().expect("stdin");
        stdin.write_all(raw.as_bytes()).expect("write to promtool");
    }
    let out = promtool.wait_with_output().expect("promtool");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics:\n{said}\non:\n{raw}"
    );
}
