//! `lb-daemon status` for humans: the [`Snapshot`] as aligned tables.
//!
//! ```text
//! router lb1, data plane xdp
//!
//! INSTANCE  STATE   PRIORITY  MASTER    LAST TRANSITION
//! VI_1      MASTER  90/100    10.0.0.1  3m12s ago (higher priority advert)
//!
//! 10.0.0.10:80/TCP  DR  quorum up  packets 1000  bytes 64000
//!   BACKEND        WEIGHT  HEALTHY  LAST CHECK  PACKETS  BYTES
//!   10.0.1.1:8080       3  yes      connected       600  40000
//! ```

use std::time::{SystemTime, UNIX_EPOCH};

use super::metrics::host_port;
use super::snapshot::{BgpSnapshot, InstanceSnapshot, ServiceSnapshot, Snapshot};

/// Renders `s` as of now (transition ages depend on the clock).
pub fn render(s: &Snapshot) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    render_at(s, now)
}

/// Renders `s` as of `now_unix` (seconds): deterministic, for tests.
pub fn render_at(s: &Snapshot, now_unix: u64) -> String {
    let mut out = format!("router {}, data plane {}\n", s.router_id, s.dataplane);
    out.push('\n');
    if s.instances.is_empty() {
        out.push_str("no VRRP instances\n");
    } else {
        out.push_str(&instances(&s.instances, now_unix));
    }
    if s.services.is_empty() {
        out.push_str("\nno virtual servers\n");
    }
    if let Some(b) = &s.bgp {
        out.push('\n');
        out.push_str(&bgp(b));
    }
    if let Some(y) = &s.sync {
        out.push('\n');
        out.push_str(&sync(y));
    }
    if !s.bfd.is_empty() {
        out.push('\n');
        out.push_str(&bfd(s));
    }
    for v in &s.services {
        out.push('\n');
        out.push_str(&service(v));
    }
    out
}

/// ```text
/// BFD       NEIGHBOR  STATE  REMOTE DISCR  TX      RX      DETECT  LAST DOWN
/// peer      10.0.0.2  Up     0x1a2b3c4d    10 ms   10 ms   30 ms   detection_time_expired
///   dropped: bad_ttl 2
/// ```
fn bfd(s: &Snapshot) -> String {
    let ms = |us: u64| {
        if us.is_multiple_of(1000) {
            format!("{} ms", us / 1000)
        } else {
            format!("{:.3} ms", us as f64 / 1000.0)
        }
    };
    let mut rows = vec![row([
        "BFD",
        "NEIGHBOR",
        "STATE",
        "REMOTE DISCR",
        "TX",
        "RX",
        "DETECT",
        "LAST DOWN",
    ])];
    rows.extend(s.bfd.iter().map(|b| {
        vec![
            b.name.clone(),
            b.neighbor.clone(),
            b.state.clone(),
            format!("{:#010x}", b.remote_discriminator),
            b.tx_interval_us.map_or("-".into(), |us| ms(us.into())),
            ms(b.rx_interval_us.into()),
            b.detection_time_us.map_or("-".into(), ms),
            if b.last_down.is_empty() {
                "-".into()
            } else {
                b.last_down.clone()
            },
        ]
    }));
    let mut out = table(&rows, &[Align::Left; 8], "");
    let dropped: Vec<String> = s
        .bfd_drops
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    if !dropped.is_empty() {
        out.push_str(&format!("  dropped: {}\n", dropped.join(", ")));
    }
    out
}

/// ```text
/// sync: node 7, multicast, sending (VI_1 MASTER)
///   sent 12 messages (340 flows), received 0 messages (0 flows), installed 0, pending 0
///   dropped: bad_tag 2
///   PEER      NODE  MESSAGES  FLOWS  LAG
///   10.0.0.2  9     4         120    3 ms
/// ```
fn sync(y: &crate::daemon::snapshot::SyncSnapshot) -> String {
    let role = match (y.vrrp_instance.as_str(), y.sending) {
        ("", _) => "all-to-all".to_string(),
        (i, true) => format!("sending ({i} MASTER)"),
        (i, false) => format!("receiving ({i} not MASTER)"),
    };
    let mut out = format!("sync: node {}, {}, {role}\n", y.node_id, y.transport);
    out.push_str(&format!(
        "  sent {} messages ({} flows), received {} messages ({} flows), installed {}, pending {}\n",
        y.sent_messages, y.sent_records, y.received_messages, y.received_records, y.installed, y.pending
    ));
    let list = |m: &std::collections::BTreeMap<String, u64>| {
        m.iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for (what, m) in [
        ("dropped", &y.drops),
        ("not sent", &y.not_sent),
        ("not installed", &y.skipped),
    ] {
        if !m.is_empty() {
            out.push_str(&format!("  {what}: {}\n", list(m)));
        }
    }
    if !y.peers.is_empty() {
        let mut rows = vec![row(["PEER", "NODE", "MESSAGES", "FLOWS", "LAG"])];
        rows.extend(y.peers.iter().map(|p| {
            vec![
                p.address.clone(),
                p.node_id.to_string(),
                p.messages.to_string(),
                p.records.to_string(),
                format!("{} ms", p.lag_ms),
            ]
        }));
        out.push_str(&table(&rows, &[Align::Left; 5], "  "));
    }
    out
}

/// ```text
/// bgp on lb-vip0, bird ok, not drained
/// VIP            ANNOUNCE
/// 198.51.100.10  announced
///   SESSION    STATE  INFO
///   router_v4  up     Established
/// ```
fn bgp(b: &BgpSnapshot) -> String {
    let drained = match (&b.drain, b.drained) {
        (Some(progress), true) => progress.clone(),
        (None, true) => "drained".into(),
        (_, false) => "not drained".into(),
    };
    let mut out = format!("bgp on {}, bird {}, {drained}\n", b.interface, b.bird);
    let mut rows = vec![row(["VIP", "ANNOUNCE"])];
    rows.extend(b.vips.iter().map(|v| vec![v.vip.clone(), v.state.clone()]));
    out.push_str(&table(&rows, &[Align::Left; 2], ""));
    if !b.sessions.is_empty() {
        let mut rows = vec![row(["SESSION", "STATE", "INFO"])];
        rows.extend(b.sessions.iter().map(|s| {
            let state = if s.up { "up" } else { "down" };
            vec![s.name.clone(), state.into(), s.info.clone()]
        }));
        out.push_str(&table(&rows, &[Align::Left; 3], "  "));
    }
    out
}

fn instances(instances: &[InstanceSnapshot], now_unix: u64) -> String {
    let mut rows = vec![row([
        "INSTANCE",
        "STATE",
        "PRIORITY",
        "MASTER",
        "LAST TRANSITION",
    ])];
    for i in instances {
        let state = if i.held {
            format!("{} (held: split brain)", i.state)
        } else {
            i.state.clone()
        };
        rows.push(vec![
            i.name.clone(),
            state,
            format!("{}/{}", i.priority_effective, i.priority_configured),
            i.master.clone().unwrap_or_else(|| "-".into()),
            transition(i, now_unix),
        ]);
    }
    let mut out = table(&rows, &[Align::Left; 5], "");
    for i in instances {
        if let Some(other) = &i.split_brain {
            out.push_str(&format!("SPLIT BRAIN {}: {other}\n", i.name));
        }
        if !i.heartbeat_paths.is_empty() {
            let paths: Vec<String> = i
                .heartbeat_paths
                .iter()
                .map(|p| {
                    let state = if p.up { "up" } else { "LOST" };
                    format!("{} {state} (lost {})", p.path, p.lost)
                })
                .collect();
            out.push_str(&format!("heartbeat {}: {}\n", i.name, paths.join(", ")));
        }
    }
    out
}

fn transition(i: &InstanceSnapshot, now_unix: u64) -> String {
    let when = i
        .last_transition_unix
        .map(|t| format!("{} ago", age(now_unix.saturating_sub(t))));
    match (when, &i.last_transition_reason) {
        (Some(when), Some(why)) => format!("{when} ({why})"),
        (Some(when), None) => when,
        (None, Some(why)) => why.clone(),
        (None, None) => "-".into(),
    }
}

/// "45s", "3m12s", "2h05m", "3d04h": two units are enough to read at a glance.
fn age(secs: u64) -> String {
    let (m, h, d) = (secs / 60, secs / 3600, secs / 86_400);
    if secs < 60 {
        format!("{secs}s")
    } else if secs < 3600 {
        format!("{m}m{:02}s", secs % 60)
    } else if secs < 86_400 {
        format!("{h}h{:02}m", m % 60)
    } else {
        format!("{d}d{:02}h", h % 24)
    }
}

fn service(v: &ServiceSnapshot) -> String {
    let quorum = if v.quorum_up { "up" } else { "down" };
    let nat = v
        .nat_connections
        .map(|n| format!("  nat connections {n}"))
        .unwrap_or_default();
    let mut out = format!(
        "{}/{}  {}  quorum {quorum}  packets {}  bytes {}{nat}\n",
        host_port(&v.address, v.port),
        v.protocol,
        v.lb_kind,
        v.packets,
        v.bytes
    );
    if v.backends.is_empty() {
        out.push_str("  no backends\n");
        return out;
    }
    let mut rows = vec![row([
        "BACKEND",
        "WEIGHT",
        "FWD",
        "HEALTHY",
        "LAST CHECK",
        "CONNS",
        "PACKETS",
        "BYTES",
    ])];
    for b in &v.backends {
        // A real with its own method (IPVS) says so: `10.0.0.2:80 (NAT)`.
        let own = b
            .lb_kind
            .as_ref()
            .map(|k| format!(" ({k})"))
            .unwrap_or_default();
        rows.push(vec![
            format!("{}{own}", host_port(&b.address, b.port)),
            b.weight.to_string(),
            b.forwarding_weight
                .map_or_else(|| "-".into(), |w| w.to_string()),
            if b.healthy { "yes" } else { "no" }.into(),
            b.last_check.clone().unwrap_or_else(|| "-".into()),
            b.connections.map_or_else(|| "-".into(), |c| c.to_string()),
            b.packets.to_string(),
            b.bytes.to_string(),
        ]);
    }
    use Align::{Left, Right};
    out.push_str(&table(
        &rows,
        &[Left, Right, Right, Left, Left, Right, Right, Right],
        "  ",
    ));
    out
}

fn row<const N: usize>(cells: [&str; N]) -> Vec<String> {
    cells.iter().map(|c| c.to_string()).collect()
}

#[derive(Clone, Copy)]
enum Align {
    Left,
    Right,
}

/// Columns padded to their widest cell, two spaces apart; no trailing blanks.
fn table(rows: &[Vec<String>], align: &[Align], indent: &str) -> String {
    let width = |col: usize| {
        rows.iter()
            .filter_map(|r| r.get(col))
            .map(|c| c.chars().count())
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..align.len()).map(width).collect();
    let mut out = String::new();
    for r in rows {
        let mut line = indent.to_string();
        for (col, cell) in r.iter().enumerate() {
            if col > 0 {
                line.push_str("  ");
            }
            let w = widths.get(col).copied().unwrap_or(0);
            match align.get(col).copied().unwrap_or(Align::Left) {
                Align::Left => line.push_str(&format!("{cell:<w$}")),
                Align::Right => line.push_str(&format!("{cell:>w$}")),
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::snapshot::BackendSnapshot;

    fn snapshot() -> Snapshot {
        Snapshot {
            router_id: "lb1".into(),
            dataplane: "xdp".into(),
            instances: vec![
                InstanceSnapshot {
                    name: "VI_1".into(),
                    state: "MASTER".into(),
                    state_code: 2,
                    priority_effective: 90,
                    priority_configured: 100,
                    master: Some("10.0.0.1".into()),
                    last_transition_unix: Some(1_000_000 - 192),
                    last_transition_reason: Some("master down timer".into()),
                    ..Default::default()
                },
                InstanceSnapshot {
                    name: "VI_BACKUP".into(),
                    state: "BACKUP".into(),
                    state_code: 1,
                    priority_effective: 100,
                    priority_configured: 100,
                    ..Default::default()
                },
            ],
            services: vec![
                ServiceSnapshot {
                    address: "10.0.0.10".into(),
                    port: 80,
                    protocol: "TCP".into(),
                    lb_kind: "DR".into(),
                    quorum_up: true,
                    packets: 1000,
                    bytes: 64_000,
                    nat_connections: None,
                    backends: vec![
                        BackendSnapshot {
                            address: "10.0.1.1".into(),
                            port: 8080,
                            weight: 3,
                            healthy: true,
                            last_check: Some("connected".into()),
                            packets: 600,
                            bytes: 40_000,
                            connections: Some(12),
                            forwarding_weight: Some(3),
                            lb_kind: None,
                        },
                        BackendSnapshot {
                            address: "10.0.1.22".into(),
                            port: 8080,
                            weight: 100,
                            healthy: false,
                            last_check: Some("status 503".into()),
                            packets: 4,
                            bytes: 240,
                            connections: None,
                            forwarding_weight: Some(0),
                            lb_kind: Some("NAT".into()),
                        },
                    ],
                },
                ServiceSnapshot {
                    address: "2001:db8::10".into(),
                    port: 53,
                    protocol: "UDP".into(),
                    lb_kind: "TUN".into(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        }
    }

    #[test]
    fn split_brain_shows_under_the_instances() {
        let mut snap = snapshot();
        snap.instances[0].split_brain =
            Some("node 10.0.0.2 (priority 150), MAC 02:00:00:00:00:02".into());
        snap.instances[1].held = true;
        let text = render_at(&snap, 1_000_000);
        assert!(
            text.contains("VI_BACKUP  BACKUP (held: split brain)  100/100"),
            "{text}"
        );
        assert!(
            text.contains(
                "SPLIT BRAIN VI_1: node 10.0.0.2 (priority 150), MAC 02:00:00:00:00:02\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn renders_instances_and_services() {
        let expected = "\
router lb1, data plane xdp

INSTANCE   STATE   PRIORITY  MASTER    LAST TRANSITION
VI_1       MASTER  90/100    10.0.0.1  3m12s ago (master down timer)
VI_BACKUP  BACKUP  100/100   -         -

10.0.0.10:80/TCP  DR  quorum up  packets 1000  bytes 64000
  BACKEND               WEIGHT  FWD  HEALTHY  LAST CHECK  CONNS  PACKETS  BYTES
  10.0.1.1:8080              3    3  yes      connected      12      600  40000
  10.0.1.22:8080 (NAT)     100    0  no       status 503      -        4    240

[2001:db8::10]:53/UDP  TUN  quorum down  packets 0  bytes 0
  no backends
";
        assert_eq!(render_at(&snapshot(), 1_000_000), expected);
    }

    #[test]
    fn renders_the_bgp_announcements() {
        use crate::daemon::snapshot::{BgpSessionSnapshot, VipSnapshot};
        let mut s = Snapshot {
            router_id: "lb1".into(),
            dataplane: "xdp".into(),
            ..Snapshot::default()
        };
        s.bgp = Some(BgpSnapshot {
            interface: "lb-vip0".into(),
            bird: "ok".into(),
            sessions: vec![BgpSessionSnapshot {
                name: "router_v4".into(),
                up: true,
                info: "Established".into(),
            }],
            drained: false,
            drain: None,
            vips: vec![
                VipSnapshot {
                    vip: "198.51.100.10".into(),
                    announced: true,
                    state: "announced".into(),
                },
                VipSnapshot {
                    vip: "2001:db8:100::10".into(),
                    announced: false,
                    state: "withdrawn: hold-down (3s left)".into(),
                },
            ],
        });
        let text = render_at(&s, 0);
        assert!(
            text.contains(
                "bgp on lb-vip0, bird ok, not drained\n\
                 VIP               ANNOUNCE\n\
                 198.51.100.10     announced\n\
                 2001:db8:100::10  withdrawn: hold-down (3s left)\n\
                 \x20 SESSION    STATE  INFO\n\
                 \x20 router_v4  up     Established\n"
            ),
            "{text}"
        );
        let b = s.bgp.as_mut().unwrap();
        b.drained = true;
        b.bird = "unreachable: no socket".into();
        assert!(render_at(&s, 0).contains("bgp on lb-vip0, bird unreachable: no socket, drained\n"));
    }

    #[test]
    fn renders_an_empty_daemon() {
        let s = Snapshot {
            router_id: "lb2".into(),
            dataplane: "none".into(),
            ..Default::default()
        };
        assert_eq!(
            render_at(&s, 0),
            "router lb2, data plane none\n\nno VRRP instances\n\nno virtual servers\n"
        );
    }

    #[test]
    fn ages_use_two_units() {
        assert_eq!(age(0), "0s");
        assert_eq!(age(59), "59s");
        assert_eq!(age(60), "1m00s");
        assert_eq!(age(3599), "59m59s");
        assert_eq!(age(3600 + 5 * 60 + 7), "1h05m");
        assert_eq!(age(3 * 86_400 + 4 * 3600), "3d04h");
    }

    #[test]
    fn a_transition_in_the_future_reads_as_now() {
        // Clock stepped back since the transition: no underflow, no nonsense.
        let i = InstanceSnapshot {
            last_transition_unix: Some(2_000),
            ..Default::default()
        };
        assert_eq!(transition(&i, 1_000), "0s ago");
    }
}
