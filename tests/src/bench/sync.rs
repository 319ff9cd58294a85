//! `cargo xtask bench sync`: flow-state sync's sender and receiver (`lb_daemon::sync`)
//! between two network namespaces on a veth switch, at 10,000 and 100,000 new flows per
//! second: messages and flows per second sent and received, the CPU of each side, and the
//! time from the owner handing a new flow to the sender until the peer's receiver hands it
//! to its owner (p50, p99). The data-plane side (the new-flow report in `lb_xdp`) is
//! measured by `cargo xtask bench datapath` (its "sync on" rows).

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use lb_common::Protocol;
use lb_daemon::{
    config,
    dataplane::{
        flow_sync::{FlowKind, FlowRecord},
        ServiceId,
    },
    sync::task::{self, Outgoing, Synced},
};
use tokio::sync::mpsc;

use super::report;
use crate::vrrp_lab::Segment;

/// How long each rate is offered.
const DURATION: Duration = Duration::from_secs(3);
/// The owner drains the data plane's reports this often (`daemon/dataplane_owner.rs`).
const TICK: Duration = Duration::from_millis(10);
const KEY: &[u8] = b"bench-sync-shared-key-0123456789";
/// Messages per second allowed in the bench: room for 100,000 flows/s and more.
const MAX_RATE: u32 = 10_000;

fn settings(node_id: u32, peer: &str) -> Result<config::Sync> {
    Ok(config::Sync {
        interface: "eth0".into(),
        vrrp_instance: None,
        id: 0,
        port: 8848,
        group: config::DEFAULT_SYNC_GROUP.into(),
        ttl: 1,
        maxlen: config::SYNC_DEFAULT_MAXLEN,
        peers: vec![peer.parse()?],
        key: KEY.to_vec(),
        node_id,
        max_rate: MAX_RATE,
    })
}

/// The i-th new flow: a client address and port no other flow of the run has.
fn record(i: u32) -> FlowRecord {
    let b = i.to_be_bytes();
    let client = SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(100, 64 | b[0] & 0x3f, b[1], b[2])),
        1024 + u16::from(b[3]),
    );
    FlowRecord {
        kind: FlowKind::Nat,
        service: ServiceId {
            vip: "198.18.1.100".parse().expect("address"),
            port: 80,
            protocol: Protocol::Tcp,
        },
        client,
        dst: "198.18.1.100:80".parse().expect("address"),
        real: "10.0.1.21:8080".parse().expect("address"),
        xsrc: client,
        state: 0,
        idle_ms: 0,
    }
}

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec to a valid pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

struct Measured {
    rate: u32,
    offered: u64,
    sent_messages: u64,
    sent_flows: u64,
    not_sent: u64,
    received_flows: u64,
    sender_cpu: f64,
    receiver_cpu: f64,
    p50_ms: f64,
    p99_ms: f64,
}

type Stamps = Arc<Mutex<HashMap<SocketAddr, Instant>>>;

fn sender(
    rate: u32,
    stamps: Stamps,
    done: Arc<AtomicBool>,
) -> Result<(u64, task::SyncSnapshot, f64)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let (owner_tx, _owner_rx) = mpsc::channel(1024);
        let sync = task::start(&settings(1, "198.18.0.12")?, owner_tx).await?;
        // Let the bulk-sync requests of the start go by.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let per_tick = (u64::from(rate) * TICK.as_millis() as u64 / 1000) as u32;
        let start = Instant::now();
        let cpu0 = thread_cpu();
        let mut tick = tokio::time::interval(TICK);
        let mut next = 0u32;
        while start.elapsed() < DURATION {
            tick.tick().await;
            let records: Vec<FlowRecord> = (next..next + per_tick).map(record).collect();
            next += per_tick;
            let now = Instant::now();
            {
                let mut s = stamps.lock().expect("stamps");
                for r in &records {
                    s.insert(r.client, now);
                }
            }
            let _ = sync.to_peers.try_send(Outgoing {
                records,
                bulk: false,
            });
        }
        // What is queued still goes out.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let cpu = (thread_cpu() - cpu0).as_secs_f64() / start.elapsed().as_secs_f64();
        done.store(true, Ordering::Relaxed);
        Ok((u64::from(next), sync.stats.snapshot(), cpu))
    })
}

fn receiver(stamps: Stamps, done: Arc<AtomicBool>) -> Result<(u64, Vec<f64>, f64)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let (owner_tx, mut owner_rx) = mpsc::channel(1024);
        let _sync = task::start(&settings(2, "198.18.0.11")?, owner_tx).await?;
        let cpu0 = thread_cpu();
        let start = Instant::now();
        let mut latencies = Vec::new();
        let mut received = 0u64;
        loop {
            match tokio::time::timeout(Duration::from_millis(500), owner_rx.recv()).await {
                Ok(Some(Synced::Flows(records))) => {
                    let now = Instant::now();
                    let s = stamps.lock().expect("stamps");
                    for r in &records {
                        if let Some(at) = s.get(&r.client) {
                            latencies.push(now.duration_since(*at).as_secs_f64() * 1e3);
                        }
                    }
                    received += records.len() as u64;
                }
                Ok(Some(Synced::BulkRequest)) => {}
                Ok(None) => break,
                Err(_) if done.load(Ordering::Relaxed) => break,
                Err(_) => {}
            }
        }
        let cpu = (thread_cpu() - cpu0).as_secs_f64() / start.elapsed().as_secs_f64();
        Ok((received, latencies, cpu))
    })
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn one(seg: &Segment, rate: u32) -> Result<Measured> {
    let stamps: Stamps = Arc::default();
    let done = Arc::new(AtomicBool::new(false));
    let (tx, rx) = std::thread::scope(|s| {
        let (st, dn) = (Arc::clone(&stamps), Arc::clone(&done));
        let rx = s.spawn(|| seg.nodes[1].ns.run(move || receiver(st, dn)));
        // The receiver's socket first.
        std::thread::sleep(Duration::from_millis(200));
        let (st, dn) = (Arc::clone(&stamps), Arc::clone(&done));
        let tx = s.spawn(move || seg.nodes[0].ns.run(move || sender(rate, st, dn)));
        (tx.join(), rx.join())
    });
    let (offered, stats, sender_cpu) = tx.map_err(|_| anyhow::anyhow!("sender panicked"))??;
    let (received, mut latencies, receiver_cpu) =
        rx.map_err(|_| anyhow::anyhow!("receiver panicked"))??;
    latencies.sort_by(f64::total_cmp);
    Ok(Measured {
        rate,
        offered,
        sent_messages: stats.sent_messages,
        sent_flows: stats.sent_records,
        not_sent: stats.not_sent.values().sum(),
        received_flows: received,
        sender_cpu,
        receiver_cpu,
        p50_ms: percentile(&latencies, 0.5),
        p99_ms: percentile(&latencies, 0.99),
    })
}

pub fn run() -> Result<String> {
    let seg = Segment::new(2).context("two namespaces on a switch")?;
    let rows = [10_000, 100_000]
        .into_iter()
        .map(|rate| one(&seg, rate))
        .collect::<Result<Vec<_>>>()?;
    let secs = DURATION.as_secs_f64();
    let mut out = format!(
        "## Flow-state sync (`cargo xtask bench sync`)\n\nMachine: {}.\n\n\
         Two network namespaces on a veth bridge, `lb_daemon::sync`'s sender in one and its \
         receiver in the other (unicast, maxlen 1472, max_rate {MAX_RATE} messages/s), each on \
         a tokio current-thread runtime of its own as in the daemon. New flows are handed to \
         the sender every 10 ms (the owner's drain period) for {secs} s. Propagation: from \
         handing a flow to the sender until the peer's receiver hands it to its owner; add up \
         to 10 ms for the drain period and the install itself for \"exists on the peer\". CPU: \
         the thread's CPU time over the run, in % of one core.\n\n\
         | new flows/s | flows offered | messages/s sent | flows/s sent | flows/s received | not sent | sender CPU | receiver CPU | propagation p50 | propagation p99 | targets |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
        report::machine()
    );
    for m in &rows {
        let targets = if m.rate == 10_000 {
            format!(
                "p99 < 50 ms: {}",
                if m.p99_ms < 50.0 {
                    "met"
                } else {
                    "**not met**"
                }
            )
        } else {
            format!(
                "CPU < 25%: {}",
                if m.sender_cpu.max(m.receiver_cpu) < 0.25 {
                    "met"
                } else {
                    "**not met**"
                }
            )
        };
        out.push_str(&format!(
            "| {} | {} | {:.0} | {:.0} | {:.0} | {} | {:.1}% | {:.1}% | {:.2} ms | {:.2} ms | {targets} |\n",
            m.rate,
            m.offered,
            m.sent_messages as f64 / secs,
            m.sent_flows as f64 / secs,
            m.received_flows as f64 / secs,
            m.not_sent,
            m.sender_cpu * 100.0,
            m.receiver_cpu * 100.0,
            m.p50_ms,
            m.p99_ms,
        ));
    }
    out.push_str(
        "\nNew-flow cost in the data plane with sync on vs off: the \"sync on\" rows of the \
         data-path section (target <= 1.15x).\n",
    );
    Ok(out)
}
