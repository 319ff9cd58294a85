//! The sync tasks (IO): a sender that batches the owner's new flows into authenticated
//! messages, bounded in size (`maxlen`) and rate (`max_rate`), and sends them to the
//! peers (unicast) or the group (multicast); a receiver that checks every datagram
//! (source, length, tag, sync id, replay) and hands the records to the owner, the only
//! writer of the tables. Counters for status and /metrics live in [`SyncStats`].

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use socket2::{Domain, Protocol as SockProtocol, Socket, Type};
use tokio::{net::UdpSocket, sync::mpsc};
use tracing::{debug, info, warn};

use super::{
    replay::{ReplayGuard, DEFAULT_MAX_SKEW_MS},
    wire::{self, Drop, Header, Key},
};
use crate::{config, dataplane::flow_sync::FlowRecord};

/// What status and /metrics show of sync.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncSnapshot {
    pub node_id: u32,
    /// "unicast" or "multicast".
    pub transport: String,
    /// The VRRP instance whose MASTER sends (empty: all-to-all).
    pub vrrp_instance: String,
    /// Sending now (MASTER of the instance, or all-to-all).
    pub sending: bool,
    pub sent_messages: u64,
    pub sent_records: u64,
    pub received_messages: u64,
    pub received_records: u64,
    pub installed: u64,
    /// Records received for services not programmed here, kept until they are.
    pub pending: u64,
    /// Received messages dropped, by reason ([`Drop::name`]).
    pub drops: BTreeMap<String, u64>,
    /// New flows not sent, by reason (queue_full, rate_limited, send_error).
    pub not_sent: BTreeMap<String, u64>,
    /// Received records not installed, by reason (local_newer, no_backend, ...).
    pub skipped: BTreeMap<String, u64>,
    pub peers: Vec<PeerSnapshot>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerSnapshot {
    pub address: String,
    pub node_id: u32,
    pub messages: u64,
    pub records: u64,
    /// Our clock minus the sender's stamp on its last message (ms; clock skew included).
    pub lag_ms: i64,
    /// Unix ms of its last accepted message.
    pub last_ms: u64,
}

/// Shared counters (the tasks and the owner write, the view reads).
#[derive(Debug, Default)]
pub struct SyncStats(Mutex<SyncSnapshot>);

impl SyncStats {
    pub fn new(node_id: u32, transport: &str, instance: Option<&str>) -> Arc<SyncStats> {
        Arc::new(SyncStats(Mutex::new(SyncSnapshot {
            node_id,
            transport: transport.into(),
            vrrp_instance: instance.unwrap_or_default().into(),
            sending: instance.is_none(),
            ..SyncSnapshot::default()
        })))
    }

    pub fn update(&self, f: impl FnOnce(&mut SyncSnapshot)) {
        if let Ok(mut s) = self.0.lock() {
            f(&mut s);
        }
    }

    pub fn snapshot(&self) -> SyncSnapshot {
        self.0.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

fn bump(map: &mut BTreeMap<String, u64>, reason: &str, n: u64) {
    *map.entry(reason.to_string()).or_default() += n;
}

/// Counts `n` new flows not sent for `reason`.
pub fn not_sent(stats: &SyncStats, reason: &str, n: u64) {
    stats.update(|s| bump(&mut s.not_sent, reason, n));
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// What the receiver hands the owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Synced {
    /// A peer's flows.
    Flows(Vec<FlowRecord>),
    /// A peer that just started asks for this node's table (bulk sync).
    BulkRequest,
}

/// What the owner hands the sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub records: Vec<FlowRecord>,
    /// A whole table for a peer that asked (bulk sync): sent at `max_rate` however long
    /// it takes, rather than cut.
    pub bulk: bool,
}

/// The running sync: its channel from the owner, and its counters.
pub struct SyncHandle {
    /// New flows to send (the owner `try_send`s: a full queue loses them, counted).
    pub to_peers: mpsc::Sender<Outgoing>,
    pub stats: Arc<SyncStats>,
}

/// Receive and send buffer of the sync socket.
const SOCKET_BUFFER: usize = 4 << 20;

/// [`SOCKET_BUFFER`] for both directions: `SO_RCVBUFFORCE` / `SO_SNDBUFFORCE` (root,
/// past `net.core.rmem_max`), else as much as the sysctls allow.
fn force_buffers(s: &Socket) {
    use std::os::fd::AsRawFd;
    let size = SOCKET_BUFFER as libc::c_int;
    for (force, plain) in [
        (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
        (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
    ] {
        let set = |opt| {
            // SAFETY: an int option of a socket we own, from a valid pointer and length.
            unsafe {
                libc::setsockopt(
                    s.as_raw_fd(),
                    libc::SOL_SOCKET,
                    opt,
                    (&size as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            }
        };
        if set(force) != 0 && set(plain) != 0 {
            debug!("sync socket buffer left at the default");
        }
    }
}

/// Bulk-sync requests a starting node sends, and the pause between them.
const BULK_REQUESTS: u32 = 3;
const BULK_REQUEST_EVERY: Duration = Duration::from_secs(1);

/// Batches waiting for the sender, at most.
const QUEUE: usize = 256;
/// How long the sender waits to fill a message before sending it anyway.
const BATCH_WAIT: Duration = Duration::from_millis(5);

/// Opens the socket and starts the sender and receiver; records received go to
/// `to_owner`.
pub async fn start(cfg: &config::Sync, to_owner: mpsc::Sender<Synced>) -> Result<SyncHandle> {
    let socket = Arc::new(open(cfg).with_context(|| {
        format!(
            "[sync] opening UDP port {} on {} (is another lb-daemon using it?)",
            cfg.port, cfg.interface
        )
    })?);
    let transport = if cfg.peers.is_empty() {
        "multicast"
    } else {
        "unicast"
    };
    let stats = SyncStats::new(cfg.node_id, transport, cfg.vrrp_instance.as_deref());
    let (to_peers, from_owner) = mpsc::channel(QUEUE);
    let destinations: Vec<SocketAddr> = if cfg.peers.is_empty() {
        vec![SocketAddr::new(cfg.group, cfg.port)]
    } else {
        cfg.peers
            .iter()
            .map(|p| SocketAddr::new(*p, cfg.port))
            .collect()
    };
    info!(node_id = cfg.node_id, transport, destinations = ?destinations, "flow-state sync started");
    let sender = Sender {
        key: Key::new(&cfg.key),
        sync_id: cfg.id,
        node_id: cfg.node_id,
        maxlen: cfg.maxlen,
        max_rate: cfg.max_rate,
        destinations,
    };
    tokio::spawn(send_loop(
        Arc::clone(&socket),
        sender,
        from_owner,
        Arc::clone(&stats),
    ));
    tokio::spawn(receive_loop(
        socket,
        Receiver {
            key: Key::new(&cfg.key),
            sync_id: cfg.id,
            node_id: cfg.node_id,
            maxlen: cfg.maxlen,
            peers: cfg.peers.clone(),
            guard: ReplayGuard::new(DEFAULT_MAX_SKEW_MS),
        },
        to_owner,
        Arc::clone(&stats),
    ));
    Ok(SyncHandle { to_peers, stats })
}

fn open(cfg: &config::Sync) -> Result<UdpSocket> {
    let v6 = cfg.group.is_ipv6() && cfg.peers.is_empty()
        || cfg.peers.first().is_some_and(IpAddr::is_ipv6);
    let domain = if v6 { Domain::IPV6 } else { Domain::IPV4 };
    let s = Socket::new(domain, Type::DGRAM, Some(SockProtocol::UDP))?;
    s.set_reuse_address(true)?;
    s.set_nonblocking(true)?;
    // Bursts of a bulk sync or 100,000 new flows/s: room for ~3,000 full messages.
    force_buffers(&s);
    let ifindex = nix::net::if_::if_nametoindex(cfg.interface.as_str())
        .with_context(|| format!("interface {} does not exist", cfg.interface))?;
    let any: IpAddr = if v6 {
        Ipv6Addr::UNSPECIFIED.into()
    } else {
        Ipv4Addr::UNSPECIFIED.into()
    };
    s.bind(&SocketAddr::new(any, cfg.port).into())?;
    if cfg.peers.is_empty() {
        match cfg.group {
            IpAddr::V4(g) => {
                s.join_multicast_v4_n(&g, &socket2::InterfaceIndexOrAddress::Index(ifindex))?;
                // Out of the sync interface (SO_BINDTODEVICE: multicast only).
                s.bind_device(Some(cfg.interface.as_bytes()))?;
                s.set_multicast_ttl_v4(cfg.ttl)?;
                s.set_multicast_loop_v4(false)?;
            }
            IpAddr::V6(g) => {
                s.join_multicast_v6(&g, ifindex)?;
                s.set_multicast_if_v6(ifindex)?;
                s.set_multicast_hops_v6(cfg.ttl)?;
                s.set_multicast_loop_v6(false)?;
            }
        }
    } else if v6 {
        s.set_unicast_hops_v6(cfg.ttl.max(1))?;
    } else {
        s.set_ttl_v4(cfg.ttl.max(1))?;
    }
    Ok(UdpSocket::from_std(s.into())?)
}

struct Sender {
    key: Key,
    sync_id: u8,
    node_id: u32,
    maxlen: usize,
    max_rate: u32,
    destinations: Vec<SocketAddr>,
}

/// A token bucket of messages: `rate` per second, bursts of one second's worth.
struct Bucket {
    rate: f64,
    tokens: f64,
    at: tokio::time::Instant,
}

impl Bucket {
    fn take(&mut self, now: tokio::time::Instant) -> bool {
        let elapsed = now.duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The first sequence number of a sender: microseconds since the epoch, so a restarted
/// sender starts above its old numbers.
fn first_sequence() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(1)
}

async fn ask_for_tables(socket: Arc<UdpSocket>, s: Arc<Sender>, sequence: Arc<AtomicU64>) {
    for attempt in 0..BULK_REQUESTS {
        if attempt > 0 {
            tokio::time::sleep(BULK_REQUEST_EVERY).await;
        }
        let header = Header {
            sync_id: s.sync_id,
            sender: s.node_id,
            sequence: sequence.fetch_add(1, Ordering::Relaxed),
            time_ms: now_ms(),
        };
        let request = wire::encode_bulk_request(&header, &s.key);
        for dst in &s.destinations {
            if let Err(e) = socket.send_to(&request, dst).await {
                debug!(peer = %dst, error = %e, "bulk-sync request not sent");
            }
        }
    }
}

async fn send_loop(
    socket: Arc<UdpSocket>,
    s: Sender,
    mut from_owner: mpsc::Receiver<Outgoing>,
    stats: Arc<SyncStats>,
) {
    let s = Arc::new(s);
    // Shared with the bulk-sync requests: a sender's numbers only go up.
    let sequence = Arc::new(AtomicU64::new(first_sequence()));
    let mut bucket = Bucket {
        rate: f64::from(s.max_rate),
        tokens: f64::from(s.max_rate),
        at: tokio::time::Instant::now(),
    };
    // Bulk sync: ask the peers for their tables (a node that just started has none).
    tokio::spawn(ask_for_tables(
        Arc::clone(&socket),
        Arc::clone(&s),
        Arc::clone(&sequence),
    ));
    let per_message = (s.maxlen - wire::HEADER_LEN - wire::TAG_LEN) / wire::RECORD_V4;
    while let Some(Outgoing { records, bulk }) = from_owner.recv().await {
        let mut batch = records;
        // A little more time to fill the message, unless it is full already.
        let deadline = tokio::time::Instant::now() + BATCH_WAIT;
        while !bulk && batch.len() < per_message {
            match tokio::time::timeout_at(deadline, from_owner.recv()).await {
                Ok(Some(more)) => batch.extend(more.records),
                _ => break,
            }
        }
        // Reserve as many numbers as messages (one per `maxlen` bytes at most).
        let most = batch.len() as u64 + 1;
        let header = Header {
            sync_id: s.sync_id,
            sender: s.node_id,
            sequence: sequence.fetch_add(most, Ordering::Relaxed),
            time_ms: now_ms(),
        };
        let messages = wire::encode(&header, &batch, s.maxlen, &s.key);
        for (i, msg) in messages.iter().enumerate() {
            if bulk {
                while !bucket.take(tokio::time::Instant::now()) {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            } else if !bucket.take(tokio::time::Instant::now()) {
                let left: u64 = messages[i..]
                    .iter()
                    .map(|m| u64::from(u16::from_be_bytes([m[6], m[7]])))
                    .sum();
                not_sent(&stats, "rate_limited", left);
                break;
            }
            let mut ok = false;
            for dst in &s.destinations {
                match socket.send_to(msg, dst).await {
                    Ok(_) => ok = true,
                    Err(e) => {
                        debug!(peer = %dst, error = %e, "sync send failed");
                        not_sent(&stats, "send_error", 1);
                    }
                }
            }
            if ok {
                let records = u64::from(u16::from_be_bytes([msg[6], msg[7]]));
                stats.update(|st| {
                    st.sent_messages += 1;
                    st.sent_records += records;
                });
            }
        }
    }
}

struct Receiver {
    key: Key,
    sync_id: u8,
    node_id: u32,
    maxlen: usize,
    peers: Vec<IpAddr>,
    guard: ReplayGuard,
}

impl Receiver {
    /// Checks one datagram; `Ok(None)`: our own (multicast loop), ignored.
    fn accept(
        &mut self,
        buf: &[u8],
        from: SocketAddr,
        now: u64,
    ) -> Result<Option<wire::Message>, Drop> {
        let source = from.ip().to_canonical();
        if !self.peers.is_empty() && !self.peers.contains(&source) {
            return Err(Drop::UnknownSource);
        }
        let msg = wire::decode(buf, self.maxlen, self.sync_id, &self.key)?;
        if msg.header.sender == self.node_id {
            return Ok(None);
        }
        self.guard.check(&msg.header, now)?;
        Ok(Some(msg))
    }
}

async fn receive_loop(
    socket: Arc<UdpSocket>,
    mut r: Receiver,
    to_owner: mpsc::Sender<Synced>,
    stats: Arc<SyncStats>,
) {
    let mut buf = vec![0u8; 65_536];
    let mut warned: std::collections::HashSet<(IpAddr, Drop)> = Default::default();
    loop {
        let (n, from) = match socket.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                warn!(error = %e, "sync receive failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let now = now_ms();
        match r.accept(&buf[..n], from, now) {
            Ok(None) => {}
            Ok(Some(msg)) if msg.bulk_request => {
                info!(peer = %from, node = msg.header.sender, "a peer asks for this node's flows (bulk sync)");
                let _ = to_owner.try_send(Synced::BulkRequest);
            }
            Ok(Some(msg)) => {
                let count = msg.records.len() as u64;
                let h = msg.header;
                stats.update(|s| {
                    s.received_messages += 1;
                    s.received_records += count;
                    let address = from.ip().to_canonical().to_string();
                    let peer = match s.peers.iter_mut().position(|p| p.address == address) {
                        Some(i) => &mut s.peers[i],
                        None => {
                            s.peers.push(PeerSnapshot {
                                address,
                                ..PeerSnapshot::default()
                            });
                            s.peers.last_mut().expect("just pushed")
                        }
                    };
                    peer.node_id = h.sender;
                    peer.messages += 1;
                    peer.records += count;
                    peer.last_ms = now;
                    peer.lag_ms = now as i64 - h.time_ms as i64;
                });
                if to_owner.try_send(Synced::Flows(msg.records)).is_err() {
                    stats.update(|s| bump(&mut s.skipped, "owner_busy", count));
                }
            }
            Err(why) => {
                stats.update(|s| bump(&mut s.drops, why.name(), 1));
                // Once per source and reason: a flood of bad messages is not a flood of logs.
                if warned.len() < 1024 && warned.insert((from.ip(), why)) {
                    warn!(source = %from, reason = why.name(), "sync message dropped: {why}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::{flow_sync::FlowKind, ServiceId};
    use lb_common::Protocol;

    fn receiver(peers: Vec<IpAddr>) -> Receiver {
        Receiver {
            key: Key::new(b"0123456789abcdef"),
            sync_id: 0,
            node_id: 1,
            maxlen: 1472,
            peers,
            guard: ReplayGuard::new(DEFAULT_MAX_SKEW_MS),
        }
    }

    fn message(sender: u32, sequence: u64, now: u64) -> Vec<u8> {
        let r = FlowRecord {
            kind: FlowKind::Conntrack,
            service: ServiceId {
                vip: "192.0.2.10".parse().unwrap(),
                port: 80,
                protocol: Protocol::Tcp,
            },
            client: "203.0.113.7:40000".parse().unwrap(),
            dst: "192.0.2.10:80".parse().unwrap(),
            real: "10.0.0.21:0".parse().unwrap(),
            xsrc: "203.0.113.7:40000".parse().unwrap(),
            state: 0,
            idle_ms: 0,
        };
        let h = Header {
            sync_id: 0,
            sender,
            sequence,
            time_ms: now,
        };
        wire::encode(&h, &[r], 1472, &Key::new(b"0123456789abcdef")).remove(0)
    }

    #[test]
    fn unknown_sources_replays_and_own_messages() {
        let now = 1_700_000_000_000;
        let peer: SocketAddr = "10.0.0.2:8848".parse().unwrap();
        let mut r = receiver(vec!["10.0.0.2".parse().unwrap()]);
        let m = message(2, 5, now);
        assert_eq!(
            r.accept(&m, "10.0.0.9:8848".parse().unwrap(), now).err(),
            Some(Drop::UnknownSource)
        );
        assert!(r.accept(&m, peer, now).unwrap().is_some());
        assert_eq!(r.accept(&m, peer, now).err(), Some(Drop::Replayed));
        assert!(r.accept(&message(1, 9, now), peer, now).unwrap().is_none());
        // Multicast without a peer list: any source, the key decides.
        let mut any = receiver(Vec::new());
        assert!(any
            .accept(&message(3, 1, now), "10.9.9.9:1".parse().unwrap(), now)
            .unwrap()
            .is_some());
    }

    #[test]
    fn the_bucket_allows_the_rate_and_no_more() {
        let t0 = tokio::time::Instant::now();
        let mut b = Bucket {
            rate: 10.0,
            tokens: 10.0,
            at: t0,
        };
        assert_eq!((0..20).filter(|_| b.take(t0)).count(), 10);
        assert!(b.take(t0 + Duration::from_millis(100)));
        assert!(!b.take(t0 + Duration::from_millis(100)));
    }
}
