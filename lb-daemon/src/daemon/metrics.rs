//! Prometheus metrics: the [`Snapshot`] in the text exposition format (0.0.4), and a
//! small HTTP/1.1 server answering `GET /metrics`.
//!
//! The server is hand-rolled on tokio: one request per connection, no keep-alive, no
//! compression; a scrape every few seconds needs nothing more, and it keeps an HTTP
//! stack out of a daemon that runs as root.

use std::fmt::{Display, Write as _};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, warn};

use super::admission::{Admission, Admitted};
use super::snapshot::{
    BackendSnapshot, InstanceSnapshot, ServiceSnapshot, Snapshot, TableSnapshot,
};

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A request head larger than this is not a scraper's.
const MAX_REQUEST_HEAD: usize = 8 * 1024;
/// A client that has not sent its request by then is dropped (slowloris).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once (file descriptors held); see [`Admission`].
const MAX_CONNECTIONS: usize = 64;

/// Renders every metric of `s`.
pub fn render(s: &Snapshot) -> String {
    let mut out = Exposition::default();
    vrrp(&mut out, s);
    services(&mut out, s);
    dataplane(&mut out, s);
    health(&mut out, s);
    bgp(&mut out, s);
    email(&mut out, s);
    sync(&mut out, s);
    bfd(&mut out, s);
    out.text
}

/// The BFD sessions (`[[bfd_instance]]`): state, transitions, packets, drops.
fn bfd(out: &mut Exposition, s: &Snapshot) {
    let mut f = out.family(
        "lb_bfd_session_state",
        "gauge",
        "BFD session state (RFC 5880): 0 AdminDown, 1 Down, 2 Init, 3 Up.",
    );
    for b in &s.bfd {
        let labels = [
            ("bfd_instance", b.name.as_str()),
            ("neighbor", b.neighbor.as_str()),
        ];
        f.sample("lb_bfd_session_state", &labels, b.state_code);
    }
    f.finish();
    type Value = fn(&crate::daemon::snapshot::BfdSessionSnapshot) -> u64;
    let counters: [(&str, &str, Value); 3] = [
        (
            "lb_bfd_transitions_total",
            "BFD session state changes.",
            |b| b.transitions,
        ),
        (
            "lb_bfd_packets_received_total",
            "BFD control packets accepted by the session.",
            |b| b.packets_in,
        ),
        (
            "lb_bfd_packets_sent_total",
            "BFD control packets sent by the session.",
            |b| b.packets_out,
        ),
    ];
    for (name, help, value) in counters {
        let mut f = out.family(name, "counter", help);
        for b in &s.bfd {
            f.sample(name, &[("bfd_instance", b.name.as_str())], value(b));
        }
        f.finish();
    }
    let mut f = out.family(
        "lb_bfd_detection_time_seconds",
        "gauge",
        "BFD detection time negotiated with the neighbor (absent until it is heard).",
    );
    for b in &s.bfd {
        if let Some(us) = b.detection_time_us {
            let secs = us as f64 / 1e6;
            f.sample(
                "lb_bfd_detection_time_seconds",
                &[("bfd_instance", b.name.as_str())],
                secs,
            );
        }
    }
    f.finish();
    let mut f = out.family(
        "lb_bfd_drops_total",
        "counter",
        "BFD packets dropped, by reason (malformed, bad_ttl, no_session, ...).",
    );
    for (reason, n) in &s.bfd_drops {
        f.sample("lb_bfd_drops_total", &[("reason", reason.as_str())], n);
    }
    f.finish();
}

fn email(out: &mut Exposition, s: &Snapshot) {
    let (e, n) = (&s.email, &s.notify_fifo);
    by_result(
        out,
        "lb_email_alerts_total",
        "E-mail alerts (smtp_alert) by result: sent, failed (SMTP error or unreachable), dropped (queue full).",
        &[("sent", e.sent), ("failed", e.failed), ("dropped", e.dropped)],
    );
    by_result(
        out,
        "lb_notify_fifo_lines_total",
        "Lines for the notify FIFOs by result: written, dropped (the FIFO was full: no reader, or a slow one).",
        &[("written", n.written), ("dropped", n.dropped)],
    );
}

/// A counter family with one sample per `result` label.
fn by_result(out: &mut Exposition, name: &str, help: &str, results: &[(&str, u64)]) {
    let mut f = out.family(name, "counter", help);
    for (result, n) in results {
        f.sample(name, &[("result", result)], n);
    }
    f.finish();
}

/// Flow-state sync (`[sync]`): what was sent and received, and why anything was not.
fn sync(out: &mut Exposition, s: &Snapshot) {
    let Some(y) = &s.sync else { return };
    let mut f = out.family(
        "lb_sync_sending",
        "gauge",
        "Whether this node sends its new flows to its sync peers (MASTER of the sync instance, or all-to-all).",
    );
    f.sample("lb_sync_sending", &[], u8::from(y.sending));
    f.finish();
    let mut f = out.family(
        "lb_sync_pending",
        "gauge",
        "Peers' flows kept for services this node does not serve yet (installed when it takes over).",
    );
    f.sample("lb_sync_pending", &[], y.pending);
    f.finish();
    let totals: [(&str, &str, u64); 5] = [
        (
            "lb_sync_messages_sent_total",
            "Sync messages sent.",
            y.sent_messages,
        ),
        (
            "lb_sync_flows_sent_total",
            "Flows sent to sync peers.",
            y.sent_records,
        ),
        (
            "lb_sync_messages_received_total",
            "Sync messages received and accepted.",
            y.received_messages,
        ),
        (
            "lb_sync_flows_received_total",
            "Flows received from sync peers.",
            y.received_records,
        ),
        (
            "lb_sync_flows_installed_total",
            "Peers' flows written into this node's tables.",
            y.installed,
        ),
    ];
    for (name, help, value) in totals {
        let mut f = out.family(name, "counter", help);
        f.sample(name, &[], value);
        f.finish();
    }
    // Every drop reason, zeros included: an alert on a rate needs the series to exist.
    let mut f = out.family(
        "lb_sync_drops_total",
        "counter",
        "Sync messages dropped, by reason (truncated, oversized, malformed, version, other_sync_id, bad_tag, unknown_source, replayed).",
    );
    for reason in crate::sync::wire::Drop::ALL {
        let n = y.drops.get(reason.name()).copied().unwrap_or(0);
        f.sample("lb_sync_drops_total", &[("reason", reason.name())], n);
    }
    f.finish();
    let mut f = out.family(
        "lb_sync_flows_not_sent_total",
        "counter",
        "New flows not sent to the peers, by reason (queue_full, rate_limited, send_error).",
    );
    for (reason, n) in &y.not_sent {
        f.sample("lb_sync_flows_not_sent_total", &[("reason", reason)], n);
    }
    f.finish();
    let mut f = out.family(
        "lb_sync_flows_skipped_total",
        "counter",
        "Peers' flows not installed, by reason (local_newer, no_backend, table_full, ...).",
    );
    for (reason, n) in &y.skipped {
        f.sample("lb_sync_flows_skipped_total", &[("reason", reason)], n);
    }
    f.finish();
    let mut f = out.family(
        "lb_sync_peer_messages_total",
        "counter",
        "Sync messages accepted, by peer address.",
    );
    for p in &y.peers {
        f.sample(
            "lb_sync_peer_messages_total",
            &[("peer", &p.address)],
            p.messages,
        );
    }
    f.finish();
    let mut f = out.family(
        "lb_sync_peer_lag_seconds",
        "gauge",
        "Our clock minus the peer's stamp on its last sync message (network delay plus clock skew).",
    );
    for p in &y.peers {
        f.sample(
            "lb_sync_peer_lag_seconds",
            &[("peer", &p.address)],
            p.lag_ms as f64 / 1000.0,
        );
    }
    f.finish();
}

fn bgp(out: &mut Exposition, s: &Snapshot) {
    let Some(b) = &s.bgp else { return };
    type Samples<'a> = Vec<(Vec<(&'static str, &'a str)>, bool)>;
    let families: [(&str, &str, Samples<'_>); 3] = [
        (
            "lb_bgp_session_up",
            "Whether BIRD's BGP session (by protocol name) is established (none while BIRD is unreachable).",
            b.sessions
                .iter()
                .map(|x| (vec![("peer", x.name.as_str())], x.up))
                .collect(),
        ),
        (
            "lb_vip_announced",
            "Whether this node announces the VIP by BGP (its address is on the VIP interface).",
            b.vips
                .iter()
                .map(|v| (vec![("vip", v.vip.as_str())], v.announced))
                .collect(),
        ),
        (
            "lb_bgp_drained",
            "Whether the node is drained (lb-daemon drain).",
            vec![(Vec::new(), b.drained)],
        ),
    ];
    for (name, help, samples) in families {
        let mut f = out.family(name, "gauge", help);
        for (labels, value) in samples {
            f.sample(name, &labels, u8::from(value));
        }
        f.finish();
    }
}

/// The VRRP instance's label is `vrrp_instance`: Prometheus gives every scraped series
/// an `instance` label (the target), and would rename ours to `exported_instance`.
fn vrrp(out: &mut Exposition, s: &Snapshot) {
    type Value = fn(&InstanceSnapshot) -> u64;
    let per_instance: [(&str, &str, &str, Value); 10] = [
        (
            "lb_vrrp_state",
            "gauge",
            "VRRP state: 0 init, 1 backup, 2 master, 3 fault.",
            |i| i.state_code.into(),
        ),
        (
            "lb_vrrp_priority",
            "gauge",
            "Effective VRRP priority (the configured one adjusted by tracking).",
            |i| i.priority_effective.into(),
        ),
        (
            "lb_vrrp_priority_configured",
            "gauge",
            "Configured VRRP priority.",
            |i| i.priority_configured.into(),
        ),
        (
            "lb_vrrp_transitions_total",
            "counter",
            "VRRP state transitions.",
            |i| i.transitions,
        ),
        (
            "lb_vrrp_adverts_received_total",
            "counter",
            "VRRP advertisements received and accepted.",
            |i| i.adverts_received,
        ),
        (
            "lb_vrrp_adverts_filtered_total",
            "counter",
            "Of the adverts received, those the kernel's advert filter took (a steady master's, while BACKUP).",
            |i| i.adverts_filtered,
        ),
        (
            "lb_vrrp_adverts_sent_total",
            "counter",
            "VRRP advertisements sent.",
            |i| i.adverts_sent,
        ),
        (
            "lb_vrrp_split_brain",
            "gauge",
            "1 while another node holds this instance's VIPs too (split brain).",
            |i| i.split_brain.is_some().into(),
        ),
        (
            "lb_vrrp_split_brain_total",
            "counter",
            "Split-brain episodes detected.",
            |i| i.split_brain_total,
        ),
        (
            "lb_vrrp_foreign_master_adverts_total",
            "counter",
            "Adverts from another MASTER received while MASTER (it does not hear us).",
            |i| i.foreign_master_adverts,
        ),
    ];
    for (name, kind, help, value) in per_instance {
        let mut f = out.family(name, kind, help);
        for inst in &s.instances {
            f.sample(name, &[("vrrp_instance", &inst.name)], value(inst));
        }
        f.finish();
    }
    let name = "lb_vrrp_heartbeat_path_up";
    let mut f = out.family(
        name,
        "gauge",
        "1 while the heartbeat path delivers adverts (instances with heartbeat_paths).",
    );
    for inst in &s.instances {
        for p in &inst.heartbeat_paths {
            let labels = [
                ("vrrp_instance", inst.name.as_str()),
                ("path", p.path.as_str()),
            ];
            f.sample(name, &labels, u8::from(p.up));
        }
    }
    f.finish();
    let name = "lb_vrrp_heartbeat_path_lost_total";
    let mut f = out.family(name, "counter", "Times the heartbeat path was lost.");
    for inst in &s.instances {
        for p in &inst.heartbeat_paths {
            let labels = [
                ("vrrp_instance", inst.name.as_str()),
                ("path", p.path.as_str()),
            ];
            f.sample(name, &labels, p.lost);
        }
    }
    f.finish();
    let name = "lb_vrrp_adverts_dropped_total";
    let mut f = out.family(name, "counter", "VRRP advertisements dropped, by reason.");
    for inst in &s.instances {
        for (reason, n) in &inst.adverts_dropped {
            f.sample(
                name,
                &[("vrrp_instance", &inst.name), ("reason", reason)],
                *n,
            );
        }
    }
    f.finish();
}

fn services(out: &mut Exposition, s: &Snapshot) {
    type Value = fn(&ServiceSnapshot) -> u64;
    let per_service: [(&str, &str, &str, Value); 3] = [
        (
            "lb_service_quorum_up",
            "gauge",
            "1 when the virtual server has its quorum of healthy backends.",
            |v| v.quorum_up.into(),
        ),
        (
            "lb_service_packets_total",
            "counter",
            "Packets forwarded for the virtual server.",
            |v| v.packets,
        ),
        (
            "lb_service_bytes_total",
            "counter",
            "Bytes forwarded for the virtual server.",
            |v| v.bytes,
        ),
    ];
    for (name, kind, help, value) in per_service {
        let mut f = out.family(name, kind, help);
        for v in &s.services {
            f.sample(name, &[("service", &service_label(v))], value(v));
        }
        f.finish();
    }
    let name = "lb_nat_connections";
    let mut f = out.family(
        name,
        "gauge",
        "Connections in the NAT translation table (NAT virtual servers).",
    );
    for v in &s.services {
        if let Some(n) = v.nat_connections {
            f.sample(name, &[("service", &service_label(v))], n);
        }
    }
    f.finish();
    type BackendValue = fn(&BackendSnapshot) -> u64;
    let per_backend: [(&str, &str, &str, BackendValue); 4] = [
        (
            "lb_backend_up",
            "gauge",
            "1 when the backend passes its health checks.",
            |b| b.healthy.into(),
        ),
        (
            "lb_backend_weight",
            "gauge",
            "Weight of the backend in its virtual server.",
            |b| b.weight.into(),
        ),
        (
            "lb_backend_packets_total",
            "counter",
            "Packets forwarded to the backend.",
            |b| b.packets,
        ),
        (
            "lb_backend_bytes_total",
            "counter",
            "Bytes forwarded to the backend.",
            |b| b.bytes,
        ),
    ];
    for (name, kind, help, value) in per_backend {
        let mut f = out.family(name, kind, help);
        for v in &s.services {
            let service = service_label(v);
            for b in &v.backends {
                let backend = host_port(&b.address, b.port);
                f.sample(
                    name,
                    &[("service", &service), ("backend", &backend)],
                    value(b),
                );
            }
        }
        f.finish();
    }
    let name = "lb_backend_connections";
    let mut f = out.family(
        name,
        "gauge",
        "Connections the backend serves now (NAT translations, DR/TUN connection-table entries seen within the service's timeout, IPVS ActiveConn).",
    );
    for v in &s.services {
        let service = service_label(v);
        for b in &v.backends {
            if let Some(n) = b.connections {
                let backend = host_port(&b.address, b.port);
                f.sample(name, &[("service", &service), ("backend", &backend)], n);
            }
        }
    }
    f.finish();
}

fn dataplane(out: &mut Exposition, s: &Snapshot) {
    let name = "lb_dataplane_info";
    let mut f = out.family(
        name,
        "gauge",
        "The active data plane (xdp, ipvs, or none: VRRP and health checks only), as a label.",
    );
    f.sample(name, &[("dataplane", &s.dataplane)], 1);
    f.finish();
    let name = "lb_xdp_attached_info";
    let help =
        "Interfaces the XDP program is attached to; mode native, or generic (the slow SKB path).";
    let mut f = out.family(name, "gauge", help);
    for a in &s.xdp_attachments {
        f.sample(name, &[("interface", &a.interface), ("mode", &a.mode)], 1);
    }
    f.finish();
    type TableValue = fn(&TableSnapshot) -> u64;
    let per_table: [(&str, &str, TableValue); 2] = [
        (
            "lb_dataplane_table_entries",
            "Entries in the data plane's flow table (conntrack, nat).",
            |t| t.entries,
        ),
        (
            "lb_dataplane_table_capacity",
            "Capacity of the data plane's flow table (conntrack, nat).",
            |t| t.capacity,
        ),
    ];
    for (name, help, value) in per_table {
        let mut f = out.family(name, "gauge", help);
        for t in &s.tables {
            f.sample(name, &[("table", &t.table)], value(t));
        }
        f.finish();
    }
    let name = "lb_conn_filter_fill_ratio";
    let mut f = out.family(
        name,
        "gauge",
        "Fraction of the connection-table filter's bits set: the share of never-seen flows that still look the connection table up under a flood.",
    );
    if let Some(c) = s.conn_filter.as_ref().filter(|c| c.bits > 0) {
        f.sample(name, &[], float(c.bits_set as f64 / c.bits as f64));
    }
    f.finish();
    let name = "lb_dataplane_drops_total";
    let mut f = out.family(
        name,
        "counter",
        "Packets dropped by the data plane, by reason.",
    );
    for (reason, n) in &s.dataplane_drops {
        f.sample(name, &[("reason", reason)], *n);
    }
    f.finish();
}

fn health(out: &mut Exposition, s: &Snapshot) {
    let h = &s.health;
    let name = "lb_healthcheck_duration_seconds";
    let mut f = out.family(name, "histogram", "Duration of health checks.");
    // Finite bounds in order with counts never decreasing, whatever the producer did:
    // Prometheus rejects a histogram whose buckets shrink.
    let mut buckets: Vec<(f64, u64)> = h
        .duration_buckets
        .iter()
        .copied()
        .filter(|(le, _)| le.is_finite())
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut cumulative = 0;
    let bucket = format!("{name}_bucket");
    for (le, n) in buckets {
        cumulative = cumulative.max(n);
        f.sample(&bucket, &[("le", &float(le))], cumulative);
    }
    // The snapshot keeps finite bounds only (JSON has no infinity): +Inf is every check.
    let count = h
        .duration_buckets
        .iter()
        .map(|(_, n)| *n)
        .fold(h.checks, u64::max);
    f.sample(&bucket, &[("le", "+Inf")], count);
    f.sample(&format!("{name}_sum"), &[], float(h.duration_sum_seconds));
    f.sample(&format!("{name}_count"), &[], count);
    f.finish();
    for (name, help, value) in [
        ("lb_healthcheck_total", "Health checks run.", h.checks),
        (
            "lb_healthcheck_failures_total",
            "Health checks that failed.",
            h.failures,
        ),
        (
            "lb_healthcheck_verdict_changes_total",
            "Backends that went up or down.",
            h.verdict_changes,
        ),
    ] {
        let mut f = out.family(name, "counter", help);
        f.sample(name, &[], value);
        f.finish();
    }
}

/// "ADDR:PORT/PROTO", IPv6 in brackets so the port stays unambiguous.
fn service_label(v: &ServiceSnapshot) -> String {
    format!("{}/{}", host_port(&v.address, v.port), v.protocol)
}

/// "ADDR:PORT", or "[ADDR]:PORT" for IPv6.
pub(crate) fn host_port(address: &str, port: u16) -> String {
    if address.contains(':') {
        format!("[{address}]:{port}")
    } else {
        format!("{address}:{port}")
    }
}

/// Go's float syntax, which Prometheus parses: "+Inf", "-Inf", "NaN", else shortest form.
fn float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        v.to_string()
    }
}

/// The text being built.
#[derive(Default)]
struct Exposition {
    text: String,
}

impl Exposition {
    /// A metric family; its HELP/TYPE header is written only if it gets samples.
    fn family<'a>(&'a mut self, name: &str, kind: &str, help: &str) -> Family<'a> {
        let header = format!(
            "# HELP {name} {}\n# TYPE {name} {kind}\n",
            help.replace('\\', "\\\\").replace('\n', "\\n")
        );
        Family {
            out: self,
            header,
            samples: String::new(),
        }
    }
}

struct Family<'a> {
    out: &'a mut Exposition,
    header: String,
    samples: String,
}

impl Family<'_> {
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        self.samples.push_str(name);
        if !labels.is_empty() {
            self.samples.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.samples.push(',');
                }
                let _ = write!(self.samples, "{k}=\"{}\"", escape_label(v));
            }
            self.samples.push('}');
        }
        let _ = writeln!(self.samples, " {value}");
    }

    /// Writes the family now (dropping does the same), ending the borrow of the output.
    fn finish(self) {}
}

impl Drop for Family<'_> {
    fn drop(&mut self) {
        if !self.samples.is_empty() {
            self.out.text.push_str(&self.header);
            self.out.text.push_str(&self.samples);
        }
    }
}

fn escape_label(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// Serves `GET /metrics` on `addr` until the returned task is aborted.
pub async fn serve_metrics(
    addr: SocketAddr,
    source: Arc<dyn Fn() -> Snapshot + Send + Sync>,
) -> Result<tokio::task::JoinHandle<()>> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening for metrics on {addr}"))?;
    Ok(serve_metrics_on(listener, source))
}

/// Serves `GET /metrics` on a bound listener (port 0 in tests, an inherited socket).
pub fn serve_metrics_on(
    listener: TcpListener,
    source: Arc<dyn Fn() -> Snapshot + Send + Sync>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(accept_loop(listener, source))
}

async fn accept_loop(listener: TcpListener, source: Arc<dyn Fn() -> Snapshot + Send + Sync>) {
    let admission = Admission::new(MAX_CONNECTIONS);
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let Some(admitted) = admission.admit().await else {
                    debug!(%peer, "metrics connection refused: every slot serves a request");
                    continue;
                };
                let source = source.clone();
                tokio::spawn(async move {
                    if let Err(e) = handle(stream, admitted, source).await {
                        debug!(%peer, "metrics request: {e}");
                    }
                });
            }
            Err(e) => {
                // Out of descriptors, usually: back off instead of spinning.
                warn!("accepting a metrics connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn handle(
    mut stream: TcpStream,
    mut admitted: Admitted,
    source: Arc<dyn Fn() -> Snapshot + Send + Sync>,
) -> std::io::Result<()> {
    let Some(head) = admitted
        .request(REQUEST_TIMEOUT, read_head(&mut stream))
        .await
    else {
        return Ok(());
    };
    let head = head?;
    let response = match route(&head) {
        Route::Metrics { head_only } => {
            let body = render(&source());
            response("200 OK", CONTENT_TYPE, &body, head_only)
        }
        Route::NotFound => response("404 Not Found", "text/plain", "not found\n", false),
        Route::MethodNotAllowed => {
            response("405 Method Not Allowed", "text/plain", "only GET\n", false)
        }
        Route::BadRequest => response("400 Bad Request", "text/plain", "bad request\n", false),
    };
    // A scraper that never reads its answer does not keep the slot either.
    match tokio::time::timeout(REQUEST_TIMEOUT, stream.write_all(response.as_bytes())).await {
        Ok(written) => written?,
        Err(_) => return Ok(()),
    }
    stream.shutdown().await
}

/// Reads up to the blank line ending the request head (a body, if any, is ignored).
pub(crate) async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> std::io::Result<String> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < MAX_REQUEST_HEAD {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Route {
    Metrics { head_only: bool },
    NotFound,
    MethodNotAllowed,
    BadRequest,
}

pub(crate) fn route(head: &str) -> Route {
    let line = head.lines().next().unwrap_or("");
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Route::BadRequest;
    };
    if !version.starts_with("HTTP/1.") {
        return Route::BadRequest;
    }
    let path = target.split('?').next().unwrap_or("");
    if path != "/metrics" {
        return Route::NotFound;
    }
    match method {
        "GET" => Route::Metrics { head_only: false },
        "HEAD" => Route::Metrics { head_only: true },
        _ => Route::MethodNotAllowed,
    }
}

fn response(status: &str, content_type: &str, body: &str, head_only: bool) -> String {
    let mut r = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if status.starts_with("405") {
        r.push_str("Allow: GET, HEAD\r\n");
    }
    r.push_str("\r\n");
    if !head_only {
        r.push_str(body);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::snapshot::{
        AttachmentSnapshot, ConnFilterSnapshot, EmailCounters, FifoCounters, HealthCounters,
        HeartbeatPathSnapshot,
    };
    use std::collections::{BTreeMap, HashMap};

    #[test]
    fn bfd_sessions_and_drops_are_exported() {
        use crate::daemon::snapshot::BfdSessionSnapshot;
        let s = Snapshot {
            bfd: vec![BfdSessionSnapshot {
                name: "peer".into(),
                neighbor: "10.0.0.2".into(),
                state: "Up".into(),
                state_code: 3,
                detection_time_us: Some(30_000),
                transitions: 2,
                packets_in: 40,
                packets_out: 41,
                ..Default::default()
            }],
            bfd_drops: BTreeMap::from([("bad_ttl".to_string(), 2), ("no_session".to_string(), 0)]),
            ..Default::default()
        };
        let text = render(&s);
        for line in [
            "lb_bfd_session_state{bfd_instance=\"peer\",neighbor=\"10.0.0.2\"} 3",
            "lb_bfd_transitions_total{bfd_instance=\"peer\"} 2",
            "lb_bfd_packets_received_total{bfd_instance=\"peer\"} 40",
            "lb_bfd_packets_sent_total{bfd_instance=\"peer\"} 41",
            "lb_bfd_detection_time_seconds{bfd_instance=\"peer\"} 0.03",
            "lb_bfd_drops_total{reason=\"bad_ttl\"} 2",
            "lb_bfd_drops_total{reason=\"no_session\"} 0",
            "# TYPE lb_bfd_drops_total counter",
        ] {
            assert!(text.contains(line), "{line} missing:\n{text}");
        }
        let status = crate::daemon::status_view::render_at(&s, 0);
        assert!(status.contains("peer"), "{status}");
        assert!(status.contains("30 ms"), "{status}");
        assert!(status.contains("dropped: bad_ttl 2"), "{status}");
    }

    #[test]
    fn the_conn_filter_fill_is_exported_only_once_the_filter_is_in_use() {
        let text = render(&Snapshot::default());
        assert!(!text.contains("lb_conn_filter_fill_ratio"), "{text}");
        let text = render(&sample());
        assert!(
            text.contains(
                "# TYPE lb_conn_filter_fill_ratio gauge\nlb_conn_filter_fill_ratio 0.125\n"
            ),
            "{text}"
        );
    }

    fn sample() -> Snapshot {
        Snapshot {
            bgp: None,
            sync: None,
            bfd: Vec::new(),
            bfd_drops: BTreeMap::new(),
            router_id: "lb1".into(),
            dataplane: "xdp".into(),
            instances: vec![
                InstanceSnapshot {
                    name: "VI_1".into(),
                    state: "MASTER".into(),
                    state_code: 2,
                    priority_effective: 90,
                    priority_configured: 100,
                    transitions: 3,
                    adverts_received: 10,
                    adverts_filtered: 6,
                    adverts_sent: 500,
                    adverts_dropped: BTreeMap::from([
                        ("auth".to_string(), 2),
                        ("ttl".to_string(), 1),
                    ]),
                    split_brain: Some("node 10.0.0.2 (priority 150)".into()),
                    split_brain_total: 2,
                    foreign_master_adverts: 7,
                    heartbeat_paths: vec![
                        HeartbeatPathSnapshot {
                            path: "eth0".into(),
                            up: true,
                            lost: 0,
                        },
                        HeartbeatPathSnapshot {
                            path: "eth1".into(),
                            up: false,
                            lost: 3,
                        },
                    ],
                    ..Default::default()
                },
                InstanceSnapshot {
                    // Label values must survive quotes, backslashes and newlines.
                    name: "odd \"name\"\\\nx".into(),
                    state: "BACKUP".into(),
                    state_code: 1,
                    ..Default::default()
                },
            ],
            services: vec![
                ServiceSnapshot {
                    address: "10.0.0.10".into(),
                    port: 80,
                    protocol: "TCP".into(),
                    lb_kind: "NAT".into(),
                    quorum_up: true,
                    packets: 1000,
                    bytes: 64_000,
                    nat_connections: Some(12),
                    backends: vec![
                        BackendSnapshot {
                            address: "10.0.1.1".into(),
                            port: 8080,
                            weight: 3,
                            healthy: true,
                            packets: 600,
                            bytes: 40_000,
                            ..Default::default()
                        },
                        BackendSnapshot {
                            address: "10.0.1.2".into(),
                            port: 8080,
                            weight: 1,
                            healthy: false,
                            ..Default::default()
                        },
                    ],
                },
                ServiceSnapshot {
                    address: "2001:db8::10".into(),
                    port: 53,
                    protocol: "UDP".into(),
                    lb_kind: "TUN".into(),
                    backends: vec![BackendSnapshot {
                        address: "2001:db8::1".into(),
                        port: 53,
                        weight: 1,
                        healthy: true,
                        ..Default::default()
                    }],
                    ..Default::default()
                },
            ],
            dataplane_drops: BTreeMap::from([("no_backend".to_string(), 7)]),
            health: HealthCounters {
                checks: 20,
                failures: 4,
                verdict_changes: 2,
                duration_buckets: vec![(0.01, 5), (0.1, 15), (1.0, 18)],
                duration_sum_seconds: 3.25,
            },
            tables: vec![TableSnapshot {
                table: "conntrack".into(),
                entries: 100,
                capacity: 65536,
            }],
            xdp_attachments: vec![AttachmentSnapshot {
                interface: "eth0".into(),
                mode: "generic".into(),
            }],
            conn_filter: Some(ConnFilterSnapshot {
                bits_set: 1024,
                bits: 8192,
            }),
            email: EmailCounters {
                sent: 3,
                failed: 1,
                dropped: 0,
            },
            notify_fifo: FifoCounters {
                written: 7,
                dropped: 2,
            },
        }
    }

    /// A parsed sample line: name, labels, value.
    type Sample = (String, Vec<(String, String)>, f64);

    /// A strict parser of the text format's sample lines (the subset we write).
    fn parse_sample(line: &str) -> Sample {
        let name_end = line
            .find(['{', ' '])
            .unwrap_or_else(|| panic!("no value: {line:?}"));
        let name = &line[..name_end];
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
                && !name.starts_with(|c: char| c.is_ascii_digit()),
            "bad metric name in {line:?}"
        );
        let mut rest = &line[name_end..];
        let mut labels = Vec::new();
        if let Some(r) = rest.strip_prefix('{') {
            rest = r;
            loop {
                let eq = rest.find('=').unwrap_or_else(|| panic!("label: {line:?}"));
                let key = &rest[..eq];
                assert!(
                    key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                    "bad label name in {line:?}"
                );
                rest = rest[eq + 1..]
                    .strip_prefix('"')
                    .unwrap_or_else(|| panic!("unquoted label: {line:?}"));
                let mut value = String::new();
                let mut chars = rest.char_indices();
                let end = loop {
                    match chars.next() {
                        Some((_, '\\')) => match chars.next() {
                            Some((_, '\\')) => value.push('\\'),
                            Some((_, '"')) => value.push('"'),
                            Some((_, 'n')) => value.push('\n'),
                            other => panic!("bad escape {other:?} in {line:?}"),
                        },
                        Some((i, '"')) => break i,
                        Some((_, '\n')) => panic!("raw newline in {line:?}"),
                        Some((_, c)) => value.push(c),
                        None => panic!("unterminated label in {line:?}"),
                    }
                };
                labels.push((key.to_string(), value));
                rest = &rest[end + 1..];
                if let Some(r) = rest.strip_prefix(',') {
                    rest = r;
                } else {
                    rest = rest
                        .strip_prefix('}')
                        .unwrap_or_else(|| panic!("unclosed labels: {line:?}"));
                    break;
                }
            }
        }
        let value = rest
            .strip_prefix(' ')
            .unwrap_or_else(|| panic!("no space before the value: {line:?}"));
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse::<f64>()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        (name.to_string(), labels, value)
    }

    /// Every line is a HELP, a TYPE or a sample of the family last typed.
    fn parse(text: &str) -> (Vec<Sample>, HashMap<String, String>) {
        assert!(text.ends_with('\n'));
        let mut types = HashMap::new();
        let mut current: Option<String> = None;
        let mut samples = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                assert!(rest.split_once(' ').is_some(), "{line:?}");
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(
                    ["counter", "gauge", "histogram"].contains(&kind),
                    "{line:?}"
                );
                assert!(
                    types.insert(name.to_string(), kind.to_string()).is_none(),
                    "family {name} typed twice"
                );
                current = Some(name.to_string());
            } else {
                let s = parse_sample(line);
                let family = current.as_deref().expect("a sample before any TYPE");
                let ok = s.0 == family
                    || (types[family] == "histogram"
                        && [
                            format!("{family}_bucket"),
                            format!("{family}_sum"),
                            format!("{family}_count"),
                        ]
                        .contains(&s.0));
                assert!(ok, "{} outside its family {family}", s.0);
                samples.push(s);
            }
        }
        (samples, types)
    }

    fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
        let found: Vec<_> = samples
            .iter()
            .filter(|(n, l, _)| {
                n == name
                    && l.len() == labels.len()
                    && labels
                        .iter()
                        .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .collect();
        assert_eq!(found.len(), 1, "{name} {labels:?}: {found:?}");
        found[0].2
    }

    #[test]
    fn the_exposition_parses_and_carries_the_snapshot() {
        let text = render(&sample());
        let (samples, types) = parse(&text);
        assert_eq!(types["lb_vrrp_state"], "gauge");
        assert_eq!(types["lb_backend_bytes_total"], "counter");
        assert_eq!(types["lb_healthcheck_duration_seconds"], "histogram");
        let v = |name, labels: &[(&str, &str)]| value(&samples, name, labels);
        assert_eq!(v("lb_vrrp_state", &[("vrrp_instance", "VI_1")]), 2.0);
        assert_eq!(
            v("lb_vrrp_state", &[("vrrp_instance", "odd \"name\"\\\nx")]),
            1.0
        );
        assert_eq!(v("lb_vrrp_priority", &[("vrrp_instance", "VI_1")]), 90.0);
        assert_eq!(types["lb_vrrp_split_brain"], "gauge");
        let path = |p| [("vrrp_instance", "VI_1"), ("path", p)];
        assert_eq!(v("lb_vrrp_heartbeat_path_up", &path("eth0")), 1.0);
        assert_eq!(v("lb_vrrp_heartbeat_path_up", &path("eth1")), 0.0);
        assert_eq!(v("lb_vrrp_heartbeat_path_lost_total", &path("eth1")), 3.0);
        assert_eq!(v("lb_vrrp_split_brain", &[("vrrp_instance", "VI_1")]), 1.0);
        assert_eq!(
            v(
                "lb_vrrp_split_brain",
                &[("vrrp_instance", "odd \"name\"\\\nx")]
            ),
            0.0
        );
        assert_eq!(
            v("lb_vrrp_split_brain_total", &[("vrrp_instance", "VI_1")]),
            2.0
        );
        assert_eq!(
            v(
                "lb_vrrp_foreign_master_adverts_total",
                &[("vrrp_instance", "VI_1")]
            ),
            7.0
        );
        assert_eq!(
            v("lb_vrrp_transitions_total", &[("vrrp_instance", "VI_1")]),
            3.0
        );
        assert_eq!(
            v(
                "lb_vrrp_adverts_received_total",
                &[("vrrp_instance", "VI_1")]
            ),
            10.0
        );
        assert_eq!(
            v(
                "lb_vrrp_adverts_filtered_total",
                &[("vrrp_instance", "VI_1")]
            ),
            6.0
        );
        assert_eq!(
            v(
                "lb_vrrp_adverts_dropped_total",
                &[("vrrp_instance", "VI_1"), ("reason", "auth")]
            ),
            2.0
        );
        let web = ("service", "10.0.0.10:80/TCP");
        assert_eq!(
            v("lb_backend_up", &[web, ("backend", "10.0.1.1:8080")]),
            1.0
        );
        assert_eq!(
            v("lb_backend_up", &[web, ("backend", "10.0.1.2:8080")]),
            0.0
        );
        assert_eq!(
            v("lb_backend_weight", &[web, ("backend", "10.0.1.1:8080")]),
            3.0
        );
        assert_eq!(
            v(
                "lb_backend_packets_total",
                &[web, ("backend", "10.0.1.1:8080")]
            ),
            600.0
        );
        assert_eq!(
            v(
                "lb_backend_bytes_total",
                &[web, ("backend", "10.0.1.1:8080")]
            ),
            40_000.0
        );
        assert_eq!(v("lb_service_packets_total", &[web]), 1000.0);
        assert_eq!(v("lb_nat_connections", &[web]), 12.0);
        assert_eq!(v("lb_service_bytes_total", &[web]), 64_000.0);
        assert_eq!(
            v(
                "lb_backend_up",
                &[
                    ("service", "[2001:db8::10]:53/UDP"),
                    ("backend", "[2001:db8::1]:53")
                ]
            ),
            1.0
        );
        assert_eq!(
            v("lb_dataplane_drops_total", &[("reason", "no_backend")]),
            7.0
        );
        assert_eq!(v("lb_dataplane_info", &[("dataplane", "xdp")]), 1.0);
        assert_eq!(v("lb_healthcheck_total", &[]), 20.0);
        assert_eq!(
            v(
                "lb_xdp_attached_info",
                &[("interface", "eth0"), ("mode", "generic")]
            ),
            1.0
        );
        assert_eq!(
            v("lb_dataplane_table_entries", &[("table", "conntrack")]),
            100.0
        );
        assert_eq!(
            v("lb_dataplane_table_capacity", &[("table", "conntrack")]),
            65536.0
        );
        assert_eq!(v("lb_conn_filter_fill_ratio", &[]), 0.125);
        assert_eq!(v("lb_healthcheck_failures_total", &[]), 4.0);
        assert_eq!(v("lb_healthcheck_duration_seconds_sum", &[]), 3.25);
        assert_eq!(v("lb_healthcheck_duration_seconds_count", &[]), 20.0);
    }

    fn buckets(samples: &[Sample]) -> Vec<(f64, f64)> {
        samples
            .iter()
            .filter(|(n, _, _)| n == "lb_healthcheck_duration_seconds_bucket")
            .map(|(_, l, v)| {
                let le = &l.iter().find(|(k, _)| k == "le").unwrap().1;
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().unwrap()
                };
                (le, *v)
            })
            .collect()
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_end_at_inf() {
        let (samples, _) = parse(&render(&sample()));
        assert_eq!(
            buckets(&samples),
            vec![(0.01, 5.0), (0.1, 15.0), (1.0, 18.0), (f64::INFINITY, 20.0)]
        );
        // Unordered, shrinking or infinite input still yields a valid histogram.
        let mut s = sample();
        s.health.duration_buckets = vec![(1.0, 9), (0.5, 12), (f64::INFINITY, 30), (0.1, 4)];
        let (samples, _) = parse(&render(&s));
        let b = buckets(&samples);
        assert_eq!(b.last(), Some(&(f64::INFINITY, 30.0)));
        assert!(b.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1));
        assert_eq!(
            value(&samples, "lb_healthcheck_duration_seconds_count", &[]),
            30.0
        );
    }

    #[test]
    fn sync_metrics() {
        let mut s = sample();
        assert!(!render(&s).contains("lb_sync"));
        s.sync = Some(crate::daemon::snapshot::SyncSnapshot {
            node_id: 7,
            transport: "unicast".into(),
            vrrp_instance: "VI_1".into(),
            sending: true,
            sent_messages: 3,
            sent_records: 40,
            drops: BTreeMap::from([("bad_tag".to_string(), 2)]),
            not_sent: BTreeMap::from([("rate_limited".to_string(), 5)]),
            peers: vec![crate::daemon::snapshot::SyncPeerSnapshot {
                address: "10.0.0.2".into(),
                node_id: 9,
                messages: 4,
                records: 50,
                lag_ms: 3,
                last_ms: 0,
            }],
            ..Default::default()
        });
        let text = render(&s);
        for line in [
            "lb_sync_sending 1\n",
            "lb_sync_messages_sent_total 3\n",
            "lb_sync_flows_sent_total 40\n",
            "lb_sync_drops_total{reason=\"bad_tag\"} 2\n",
            "lb_sync_drops_total{reason=\"replayed\"} 0\n",
            "lb_sync_flows_not_sent_total{reason=\"rate_limited\"} 5\n",
            "lb_sync_peer_messages_total{peer=\"10.0.0.2\"} 4\n",
            "lb_sync_peer_lag_seconds{peer=\"10.0.0.2\"} 0.003\n",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
    }

    #[test]
    fn bgp_metrics() {
        use crate::daemon::snapshot::{BgpSessionSnapshot, BgpSnapshot, VipSnapshot};
        let mut s = Snapshot::default();
        assert!(!render(&s).contains("lb_bgp"));
        s.bgp = Some(BgpSnapshot {
            sessions: vec![
                BgpSessionSnapshot {
                    name: "router_v4".into(),
                    up: true,
                    info: "Established".into(),
                },
                BgpSessionSnapshot {
                    name: "router_v6".into(),
                    up: false,
                    info: "Active".into(),
                },
            ],
            drained: true,
            vips: vec![VipSnapshot {
                vip: "198.51.100.10".into(),
                announced: false,
                state: "withdrawn: drained".into(),
            }],
            ..BgpSnapshot::default()
        });
        let (samples, _) = parse(&render(&s));
        assert_eq!(
            value(&samples, "lb_bgp_session_up", &[("peer", "router_v4")]),
            1.0
        );
        assert_eq!(
            value(&samples, "lb_bgp_session_up", &[("peer", "router_v6")]),
            0.0
        );
        assert_eq!(
            value(&samples, "lb_vip_announced", &[("vip", "198.51.100.10")]),
            0.0
        );
        assert_eq!(value(&samples, "lb_bgp_drained", &[]), 1.0);
    }

    #[test]
    fn an_empty_snapshot_still_exposes_health_totals() {
        let text = render(&Snapshot::default());
        let (samples, types) = parse(&text);
        assert!(!types.contains_key("lb_vrrp_state"), "no empty families");
        assert_eq!(buckets(&samples), vec![(f64::INFINITY, 0.0)]);
        assert_eq!(value(&samples, "lb_healthcheck_total", &[]), 0.0);
    }

    #[test]
    fn routes() {
        assert_eq!(
            route("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Route::Metrics { head_only: false }
        );
        assert_eq!(
            route("GET /metrics?x=1 HTTP/1.0\r\n\r\n"),
            Route::Metrics { head_only: false }
        );
        assert_eq!(
            route("HEAD /metrics HTTP/1.1\r\n\r\n"),
            Route::Metrics { head_only: true }
        );
        assert_eq!(route("GET / HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(
            route("POST /metrics HTTP/1.1\r\n\r\n"),
            Route::MethodNotAllowed
        );
        assert_eq!(route("hello\r\n\r\n"), Route::BadRequest);
        assert_eq!(route(""), Route::BadRequest);
    }

    async fn fetch(addr: SocketAddr, request: &str) -> String {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        tokio::time::timeout(
            Duration::from_secs(10),
            stream.read_to_string(&mut response),
        )
        .await
        .unwrap()
        .unwrap();
        response
    }

    #[tokio::test]
    async fn serves_metrics_over_http() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = serve_metrics_on(listener, Arc::new(sample));

        let response = fetch(addr, "GET /metrics HTTP/1.1\r\nHost: lb\r\n\r\n").await;
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        let mut lines = head.split("\r\n");
        assert_eq!(lines.next(), Some("HTTP/1.1 200 OK"));
        let headers: Vec<&str> = lines.collect();
        assert!(headers.contains(&"Content-Type: text/plain; version=0.0.4; charset=utf-8"));
        assert!(headers.contains(&format!("Content-Length: {}", body.len()).as_str()));
        assert_eq!(body, render(&sample()));

        let response = fetch(addr, "GET /other HTTP/1.1\r\n\r\n").await;
        assert!(
            response.starts_with("HTTP/1.1 404 Not Found\r\n"),
            "{response}"
        );
        task.abort();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_connection_flood_neither_exhausts_descriptors_nor_silences_scrapes() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = serve_metrics_on(listener, Arc::new(sample));
        // Established connections whose local end is the server's port: the server's
        // own descriptors (other tests' sockets do not count).
        let held = move || {
            let port = format!(":{:04X} ", addr.port());
            std::fs::read_to_string("/proc/net/tcp")
                .unwrap()
                .lines()
                .filter(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    f.len() > 3 && format!("{} ", f[1]).ends_with(&port) && f[3] == "01"
                })
                .count()
        };
        let flood = tokio::task::spawn_blocking(move || {
            (0..2000)
                .map(|_| std::net::TcpStream::connect(addr).unwrap())
                .collect::<Vec<_>>()
        })
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let held = held();
        assert!(
            held <= MAX_CONNECTIONS,
            "the server holds {held} connections ({} opened)",
            flood.len()
        );
        let response = fetch(addr, "GET /metrics HTTP/1.1\r\n\r\n").await;
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
        task.abort();
    }

    #[tokio::test]
    async fn a_busy_address_is_a_clear_error() {
        let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = taken.local_addr().unwrap();
        let err = serve_metrics(addr, Arc::new(Snapshot::default))
            .await
            .unwrap_err();
        assert!(
            format!("{err:#}").starts_with(&format!("listening for metrics on {addr}: ")),
            "{err:#}"
        );
    }
}
