//! Flow-state sync, the XDP plane's half: the new flows the program reported in
//! `lb_sync_events` named portably ([`FlowRecord`]: service and real by address, never
//! this node's backend ids), and a peer's records written into the connection and NAT
//! tables under this node's ids.
//!
//! Installing never replaces a valid local entry (its backend still active, same
//! generation): the local data plane saw that flow itself, later. NAT entries go in with
//! `BPF_NOEXIST` into a plain hash, so a full table refuses them (counted) and evicts
//! nothing; the connection table is an LRU, so records are refused once it is
//! [`CONNTRACK_FILL_LIMIT`] full rather than let them evict established local flows.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
};

use aya::maps::{HashMap as BpfHashMap, MapData, RingBuf};
use lb_common::{
    global_flags, learned_kind, map_names, nat_dir, nat_state, service_flags, Conn, FlowKey,
    LearnedFlow, NatEntry, IPPROTO_TCP,
};

use super::{
    map_err,
    nat::{monotonic_ns, reply_key},
    spec::{decode_addr, encode_addr},
    Dataplane, DataplaneError, ServiceId,
};

/// What a record re-creates on the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlowKind {
    /// A connection-table entry (DR/TUN, or a persistence template).
    Conntrack,
    /// A NAT connection: both translation entries.
    Nat,
}

/// One flow, as sync sends it: everything named by address, so any node can map it to
/// its own backend ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowRecord {
    pub kind: FlowKind,
    pub service: ServiceId,
    /// The table key's source (port 0: a persistence template).
    pub client: SocketAddr,
    /// The table key's destination (the VIP and the port the client used).
    pub dst: SocketAddr,
    /// The real server (its configured port; 0 on a wildcard-port service).
    pub real: SocketAddr,
    /// NAT: the source the real sees (`snat_address` and the allocated port, or the
    /// client); a conntrack record repeats `client`.
    pub xsrc: SocketAddr,
    /// NAT: the connection's state (`lb_common::nat_state`) when it is known (a table
    /// dump); 0 = a new flow (written as established, or UDP).
    pub state: u8,
    /// How long the flow had been idle when the record was made, so its timeout keeps
    /// running on the peer (0 for a new flow).
    pub idle_ms: u32,
}

/// Why a peer's record was not written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Skip {
    /// This node has a valid entry of its own for the flow.
    LocalNewer,
    /// The service is not programmed here (yet).
    NoService,
    /// The real is not among the service's backends here.
    NoBackend,
    /// The table has no room (or the connection table is nearly full).
    TableFull,
    /// The record's families or kind do not fit the service.
    Mismatch,
}

impl Skip {
    pub fn name(self) -> &'static str {
        match self {
            Skip::LocalNewer => "local_newer",
            Skip::NoService => "no_service",
            Skip::NoBackend => "no_backend",
            Skip::TableFull => "table_full",
            Skip::Mismatch => "mismatch",
        }
    }
}

/// What [`Dataplane::install_flows`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstallReport {
    pub installed: u64,
    pub skipped: HashMap<&'static str, u64>,
}

impl InstallReport {
    fn skip(&mut self, why: Skip) {
        *self.skipped.entry(why.name()).or_default() += 1;
    }
}

/// Above this share of its capacity, the connection table takes no peer records.
pub const CONNTRACK_FILL_LIMIT: f64 = 0.9;
/// How long a count of the connection table's entries is trusted.
const CONNTRACK_RECOUNT: std::time::Duration = std::time::Duration::from_secs(1);

fn sock(addr: &lb_common::Addr, family: u8, port_be: u16) -> Option<SocketAddr> {
    Some(SocketAddr::new(
        decode_addr(addr, family)?,
        u16::from_be(port_be),
    ))
}

/// The last-seen stamp of a flow idle for `idle_ms` at `now` (monotonic ns).
fn seen(now: u64, idle_ms: u32) -> u64 {
    now.saturating_sub(u64::from(idle_ms) * 1_000_000)
}

/// Milliseconds from `last_seen_ns` to `now`, saturated.
fn idle_since(now: u64, last_seen_ns: u64) -> u32 {
    u32::try_from(now.saturating_sub(last_seen_ns) / 1_000_000).unwrap_or(u32::MAX)
}

fn key_of(r: &FlowRecord) -> Option<FlowKey> {
    let (src, fs) = encode_addr(r.client.ip());
    let (dst, fd) = encode_addr(r.dst.ip());
    (fs == fd).then_some(FlowKey {
        src,
        dst,
        sport: r.client.port().to_be(),
        dport: r.dst.port().to_be(),
        proto: r.service.protocol.number(),
        family: fs,
        pad: 0,
    })
}

impl Dataplane {
    /// Turns the program's reporting of new flows on or off (`lb_flags`).
    pub fn set_sync_learning(&mut self, on: bool) -> Result<(), DataplaneError> {
        self.sync_learning = on;
        if on && self.sync_events.is_none() {
            let name = map_names::SYNC_EVENTS;
            let map = self.ebpf.take_map(name).ok_or(DataplaneError::Map {
                map: name,
                source: aya::maps::MapError::InvalidName { name: name.into() },
            })?;
            self.sync_events = Some(RingBuf::try_from(map).map_err(|e| map_err(name, e))?);
        }
        self.write_global_flags()
    }

    pub fn sync_learning(&self) -> bool {
        self.sync_learning
    }

    /// `lb_flags[0]` with the bits this plane's state implies.
    pub(super) fn global_flag_bits(&self, nat_in_use: bool) -> u32 {
        let mut v = 0;
        if nat_in_use {
            v |= global_flags::NAT;
        }
        if self.sync_learning {
            v |= global_flags::SYNC;
        }
        if !self.strict_vips.is_empty() {
            v |= global_flags::STRICT;
        }
        v
    }

    /// Up to `max` new flows the program reported, named portably. Reports of backends
    /// no longer programmed (removed since) are dropped.
    pub fn drain_learned(&mut self, max: usize) -> Vec<FlowRecord> {
        let Some(ring) = self.sync_events.as_mut() else {
            return Vec::new();
        };
        let mut raw = Vec::new();
        while raw.len() < max {
            let Some(item) = ring.next() else { break };
            if item.len() >= std::mem::size_of::<LearnedFlow>() {
                // SAFETY: the record is a LearnedFlow written by the program (plain
                // data, valid for any bit pattern); read unaligned to be safe.
                raw.push(unsafe { std::ptr::read_unaligned(item.as_ptr() as *const LearnedFlow) });
            }
        }
        if raw.is_empty() {
            return Vec::new();
        }
        let by_id: HashMap<u32, (ServiceId, IpAddr, u16)> = self
            .services
            .iter()
            .flat_map(|(sid, s)| {
                s.backends
                    .iter()
                    .map(move |((addr, port), b)| (b.id, (*sid, *addr, *port)))
            })
            .collect();
        raw.iter()
            .filter_map(|l| {
                let (service, addr, port) = *by_id.get(&l.backend)?;
                let f = &l.flow;
                let kind = match l.kind {
                    learned_kind::CONNTRACK => FlowKind::Conntrack,
                    learned_kind::NAT => FlowKind::Nat,
                    _ => return None,
                };
                Some(FlowRecord {
                    kind,
                    service,
                    client: sock(&f.src, f.family, f.sport)?,
                    dst: sock(&f.dst, f.family, f.dport)?,
                    real: SocketAddr::new(addr, port),
                    xsrc: sock(&l.xsrc, f.family, l.xsport)?,
                    state: 0,
                    idle_ms: 0,
                })
            })
            .collect()
    }

    /// Writes a peer's records into this node's tables (see the module doc).
    pub fn install_flows(&mut self, records: &[FlowRecord]) -> InstallReport {
        let mut report = InstallReport::default();
        let now = monotonic_ns();
        let conntrack_room = if records.iter().any(|r| r.kind == FlowKind::Conntrack) {
            self.conntrack_room()
        } else {
            0
        };
        let mut conntrack_added = 0u64;
        for r in records {
            let outcome = match r.kind {
                FlowKind::Conntrack if conntrack_added >= conntrack_room => Err(Skip::TableFull),
                FlowKind::Conntrack => self.install_conn(r, now),
                FlowKind::Nat => self.install_nat(r, now),
            };
            match outcome {
                Ok(()) => {
                    report.installed += 1;
                    if r.kind == FlowKind::Conntrack {
                        conntrack_added += 1;
                    }
                }
                Err(why) => report.skip(why),
            }
        }
        if let Some((_, n)) = &mut self.conntrack_count {
            *n += conntrack_added;
        }
        report
    }

    /// How many more connection-table entries peers may add before the fill limit.
    /// Counting walks every key, so the count is refreshed at most once a second and
    /// grown by what was installed since in between.
    fn conntrack_room(&mut self) -> u64 {
        let cap = u64::from(self.capacity.conntrack);
        let now = std::time::Instant::now();
        let used = match self.conntrack_count {
            Some((at, n)) if now.duration_since(at) < CONNTRACK_RECOUNT => n,
            _ => {
                let n = self.count_conntrack().unwrap_or(cap);
                self.conntrack_count = Some((now, n));
                n
            }
        };
        ((cap as f64 * CONNTRACK_FILL_LIMIT) as u64).saturating_sub(used)
    }

    fn count_conntrack(&self) -> Result<u64, DataplaneError> {
        let name = map_names::CONNTRACK;
        let map: BpfHashMap<&MapData, FlowKey, Conn> =
            BpfHashMap::try_from(self.map(name)?).map_err(|e| map_err(name, e))?;
        Ok(map.keys().filter(Result::is_ok).count() as u64)
    }

    /// The backend (id, entry) this node programs for the record's real.
    fn local_backend(&self, r: &FlowRecord) -> Result<(u32, lb_common::Backend, u32), Skip> {
        let s = self.services.get(&r.service).ok_or(Skip::NoService)?;
        let b = s
            .backends
            .get(&(r.real.ip(), r.real.port()))
            .ok_or(Skip::NoBackend)?;
        Ok((b.id, b.entry, s.info.flags))
    }

    /// True when `backend`/`generation` name a backend this node still programs.
    fn valid_backend(&self, backend: u32, generation: u32) -> bool {
        self.services.values().any(|s| {
            s.backends
                .values()
                .any(|b| b.id == backend && b.entry.generation == generation)
        })
    }

    fn install_conn(&mut self, r: &FlowRecord, now: u64) -> Result<(), Skip> {
        let (id, entry, _) = self.local_backend(r)?;
        let key = key_of(r).ok_or(Skip::Mismatch)?;
        let name = map_names::CONNTRACK;
        let existing = {
            let map: BpfHashMap<&MapData, FlowKey, Conn> = self
                .ebpf
                .map(name)
                .and_then(|m| BpfHashMap::try_from(m).ok())
                .ok_or(Skip::Mismatch)?;
            map.get(&key, 0).ok()
        };
        if existing.is_some_and(|c| self.valid_backend(c.backend, c.generation)) {
            return Err(Skip::LocalNewer);
        }
        // Before the insert (the program may skip the table for a flow whose bit is
        // clear, the moment the entry exists) and after it (see `remember`).
        if let Some(filter) = &self.conn_filter {
            filter.bitmaps().remember(&key);
        }
        let mut map: BpfHashMap<&mut MapData, FlowKey, Conn> = self
            .ebpf
            .map_mut(name)
            .and_then(|m| BpfHashMap::try_from(m).ok())
            .ok_or(Skip::Mismatch)?;
        let conn = Conn {
            backend: id,
            generation: entry.generation,
            last_seen_ns: seen(now, r.idle_ms),
        };
        map.insert(key, conn, 0).map_err(|_| Skip::TableFull)?;
        if let Some(filter) = &self.conn_filter {
            filter.bitmaps().remember(&key);
        }
        Ok(())
    }

    fn install_nat(&mut self, r: &FlowRecord, now: u64) -> Result<(), Skip> {
        let (id, entry, flags) = self.local_backend(r)?;
        if flags & lb_common::mode::MASK != lb_common::mode::NAT {
            return Err(Skip::Mismatch);
        }
        let snat = flags & service_flags::SNAT != 0;
        if !snat && r.xsrc != r.client {
            return Err(Skip::Mismatch);
        }
        let key = key_of(r).ok_or(Skip::Mismatch)?;
        let (xsrc, fx) = encode_addr(r.xsrc.ip());
        let (real, fr) = encode_addr(r.real.ip());
        if fx != key.family || fr != key.family {
            return Err(Skip::Mismatch);
        }
        let state = match (key.proto == IPPROTO_TCP, r.state) {
            (true, s @ (nat_state::SYN | nat_state::ESTABLISHED)) => s,
            (true, _) => nat_state::ESTABLISHED,
            (false, _) => nat_state::UDP,
        };
        let now = seen(now, r.idle_ms);
        let fwd = NatEntry {
            src: xsrc,
            dst: real,
            sport: r.xsrc.port().to_be(),
            // A wildcard-port service keeps the client's destination port.
            dport: if r.real.port() == 0 {
                key.dport
            } else {
                r.real.port().to_be()
            },
            backend: id,
            generation: entry.generation,
            direction: nat_dir::TO_REAL,
            state,
            last_seen_ns: now,
            ..NatEntry::default()
        };
        let rev = NatEntry {
            src: key.dst,
            dst: key.src,
            sport: key.dport,
            dport: key.sport,
            backend: id,
            generation: entry.generation,
            direction: nat_dir::TO_CLIENT,
            state,
            last_seen_ns: now,
            ..NatEntry::default()
        };
        let rkey = reply_key(&key, &fwd);
        let name = map_names::NAT;
        let existing = {
            let map: BpfHashMap<&MapData, FlowKey, NatEntry> = self
                .ebpf
                .map(name)
                .and_then(|m| BpfHashMap::try_from(m).ok())
                .ok_or(Skip::Mismatch)?;
            (map.get(&key, 0).ok(), map.get(&rkey, 0).ok())
        };
        if existing
            .0
            .is_some_and(|e| self.valid_backend(e.backend, e.generation))
            || existing.1.is_some()
        {
            // The flow is known here, or its reply key (an SNAT port) is taken.
            return Err(Skip::LocalNewer);
        }
        let mut map: BpfHashMap<&mut MapData, FlowKey, NatEntry> = self
            .ebpf
            .map_mut(name)
            .and_then(|m| BpfHashMap::try_from(m).ok())
            .ok_or(Skip::Mismatch)?;
        const BPF_NOEXIST: u64 = 1;
        map.insert(rkey, rev, BPF_NOEXIST)
            .map_err(|_| Skip::TableFull)?;
        // A stale client-side entry (its backend gone) is replaced.
        if map.insert(key, fwd, 0).is_err() {
            let _ = map.remove(&rkey);
            return Err(Skip::TableFull);
        }
        Ok(())
    }
}

impl Dataplane {
    /// Every valid flow of the connection and NAT tables (bulk sync): the connection
    /// table's entries whose backend is still the one they name, and each NAT
    /// connection once, from its client-side entry.
    pub fn dump_flows(&self) -> Result<Vec<FlowRecord>, DataplaneError> {
        let by_id: HashMap<u32, (ServiceId, IpAddr, u16, u32)> = self
            .services
            .iter()
            .flat_map(|(sid, s)| {
                s.backends
                    .iter()
                    .map(move |((addr, port), b)| (b.id, (*sid, *addr, *port, b.entry.generation)))
            })
            .collect();
        let mut out = Vec::new();
        let now = monotonic_ns();
        let name = map_names::CONNTRACK;
        let conntrack: BpfHashMap<&MapData, FlowKey, Conn> =
            BpfHashMap::try_from(self.map(name)?).map_err(|e| map_err(name, e))?;
        for (k, c) in conntrack.iter().flatten() {
            let Some(&(service, addr, port, generation)) = by_id.get(&c.backend) else {
                continue;
            };
            if generation != c.generation {
                continue;
            }
            let (Some(client), Some(dst)) = (
                sock(&k.src, k.family, k.sport),
                sock(&k.dst, k.family, k.dport),
            ) else {
                continue;
            };
            out.push(FlowRecord {
                kind: FlowKind::Conntrack,
                service,
                client,
                dst,
                real: SocketAddr::new(addr, port),
                xsrc: client,
                state: 0,
                idle_ms: idle_since(now, c.last_seen_ns),
            });
        }
        for (k, e) in self.nat_entries()? {
            if e.direction != nat_dir::TO_REAL
                || matches!(e.state, nat_state::FIN | nat_state::CLOSED)
            {
                continue;
            }
            let Some(&(service, addr, port, generation)) = by_id.get(&e.backend) else {
                continue;
            };
            if generation != e.generation {
                continue;
            }
            let (Some(client), Some(dst), Some(xsrc)) = (
                sock(&k.src, k.family, k.sport),
                sock(&k.dst, k.family, k.dport),
                sock(&e.src, k.family, e.sport),
            ) else {
                continue;
            };
            out.push(FlowRecord {
                kind: FlowKind::Nat,
                service,
                client,
                dst,
                real: SocketAddr::new(addr, port),
                xsrc,
                state: e.state,
                idle_ms: idle_since(now, e.last_seen_ns),
            });
        }
        Ok(out)
    }
}
