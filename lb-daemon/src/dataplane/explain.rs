//! `lb-daemon explain`: where the data plane sends a flow, and why, read from its maps
//! the way `lb_xdp` reads them (lb-ebpf's `select.rs`): the service (exact port, else
//! the wildcard), the connection table while its entry is fresh and its backend
//! unchanged, else the Maglev slot of lb-common's flow hash.
//!
//! [`explain`] is pure over [`FlowMaps`]; [`PinnedMaps`] reads a running data plane's
//! pinned maps, read-only (like bpftool): nothing is written, no connection is created.

use std::{fmt, net::SocketAddr, path::Path};

use aya::maps::{Array, HashMap as BpfHashMap, Map, MapData};
use lb_common::{
    backend_flags, hash, map_names, mode, service_flags, Backend, Conn, FlowKey, ServiceInfo,
    ServiceKey, StrictVip, IPPROTO_TCP, NO_BACKEND,
};

use super::{
    spec::{decode_addr, encode_addr},
    Protocol,
};

/// The maps `lb_xdp` chooses a backend from.
pub trait FlowMaps {
    fn service(&self, key: &ServiceKey) -> Option<ServiceInfo>;
    fn conn(&self, key: &FlowKey) -> Option<Conn>;
    fn maglev(&self, slot: u32) -> Option<u32>;
    fn backend(&self, id: u32) -> Option<Backend>;
    /// Whether `key` is in `lb_strict_vips` (a VIP in no-accept mode).
    fn strict_vip(&self, key: &StrictVip) -> bool;
}

/// The flow asked about.
#[derive(Debug, Clone, Copy)]
pub struct Query {
    pub client: SocketAddr,
    pub vip: SocketAddr,
    pub protocol: Protocol,
}

/// The service a flow matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matched {
    /// The service's port: the VIP's, or 0 for an all-ports service.
    pub port: u16,
    pub mode: &'static str,
    pub persistent: bool,
    pub hash_src: bool,
    pub info: ServiceInfo,
}

/// A backend as the maps hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chosen {
    pub id: u32,
    pub addr: Option<SocketAddr>,
}

/// Why the connection table did not decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Miss {
    NoEntry,
    Expired {
        idle_s: u64,
    },
    /// The remembered backend left or was replaced (its generation changed).
    Stale,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Explanation {
    /// No service for the VIP's address, port and protocol: the packet goes to the kernel.
    NoService,
    /// No service, and the address is a VIP in no-accept mode (`lb_strict_vips`): the
    /// packet is dropped.
    StrictDrop,
    /// The connection table remembers the flow's backend. A new TCP connection (SYN) on
    /// the same tuple would go to `maglev` instead.
    Connection {
        service: Matched,
        backend: Chosen,
        idle_s: u64,
        maglev: Option<(u32, Chosen)>,
    },
    /// Maglev decides: `slot` (absolute index in the shared table) of the flow hash.
    Maglev {
        service: Matched,
        miss: Miss,
        hash: u32,
        slot: u32,
        backend: Chosen,
    },
    /// Dropped: the service has no backend at that slot (empty table or unhealthy set).
    NoBackend { service: Matched, hash: u32 },
    /// Dropped: the slot names a backend that is not active (being replaced).
    InactiveBackend {
        service: Matched,
        slot: u32,
        id: u32,
    },
}

impl Explanation {
    /// The backend the flow goes to now, if any.
    pub fn backend(&self) -> Option<SocketAddr> {
        match self {
            Explanation::Connection { backend, .. } | Explanation::Maglev { backend, .. } => {
                backend.addr
            }
            _ => None,
        }
    }
}

/// Where the data plane sends a packet of `q` (not a new TCP connection's SYN: see
/// [`Explanation::Connection`]), `now_ns` on CLOCK_MONOTONIC as `bpf_ktime_get_coarse_ns`.
pub fn explain(maps: &impl FlowMaps, q: &Query, now_ns: u64) -> Explanation {
    let (dst, family) = encode_addr(q.vip.ip());
    let (src, _) = encode_addr(q.client.ip());
    let proto = q.protocol.number();
    let mut key = ServiceKey {
        addr: dst,
        port: q.vip.port().to_be(),
        proto,
        family,
    };
    let info = match maps.service(&key) {
        Some(info) => info,
        None => {
            key.port = 0;
            match maps.service(&key) {
                Some(info) => info,
                None => {
                    let strict = StrictVip {
                        addr: dst,
                        family,
                        pad: [0; 3],
                    };
                    return if maps.strict_vip(&strict) {
                        Explanation::StrictDrop
                    } else {
                        Explanation::NoService
                    };
                }
            }
        }
    };
    let service = Matched {
        port: u16::from_be(key.port),
        mode: match info.flags & mode::MASK {
            mode::DR => "DR",
            mode::TUN => "TUN",
            mode::NAT => "NAT",
            _ => "unknown",
        },
        persistent: info.flags & service_flags::PERSISTENT != 0,
        hash_src: info.flags & service_flags::HASH_SRC != 0,
        info,
    };
    let (sport, dport) = (q.client.port().to_be(), q.vip.port().to_be());
    // As the program keys it: a persistent service's entry is the client's (or its
    // network's, with persistence_granularity).
    let flow = FlowKey {
        src: if service.persistent {
            lb_common::persistence_client(
                &src,
                family,
                service_flags::persist_host_bits(info.flags),
            )
        } else {
            src
        },
        dst,
        sport: if service.persistent { 0 } else { sport },
        dport: if service.persistent { key.port } else { dport },
        proto,
        family,
        pad: 0,
    };
    let h = if service.hash_src {
        hash::src_hash(&src)
    } else {
        hash::flow_hash(&src, &dst, sport, dport, proto)
    };
    let pick = maglev(maps, &info, h, family, q.vip.port());
    let miss = match maps.conn(&flow) {
        None => Miss::NoEntry,
        Some(c) => {
            let idle_s = now_ns.saturating_sub(c.last_seen_ns) / 1_000_000_000;
            if now_ns.saturating_sub(c.last_seen_ns) > u64::from(info.timeout_s) * 1_000_000_000 {
                Miss::Expired { idle_s }
            } else {
                match maps.backend(c.backend) {
                    Some(b) if active(&b) && b.generation == c.generation => {
                        let maglev = match &pick {
                            Pick::Backend { slot, backend } => Some((*slot, backend.clone())),
                            _ => None,
                        };
                        // A SYN is scheduled afresh only for TCP without persistence.
                        let maglev = maglev.filter(|_| !service.persistent && proto == IPPROTO_TCP);
                        return Explanation::Connection {
                            backend: chosen(c.backend, &b, family, q.vip.port()),
                            service,
                            idle_s,
                            maglev,
                        };
                    }
                    _ => Miss::Stale,
                }
            }
        }
    };
    match pick {
        Pick::Backend { slot, backend } => Explanation::Maglev {
            service,
            miss,
            hash: h,
            slot,
            backend,
        },
        Pick::Empty => Explanation::NoBackend { service, hash: h },
        Pick::Inactive { slot, id } => Explanation::InactiveBackend { service, slot, id },
    }
}

enum Pick {
    Backend { slot: u32, backend: Chosen },
    Empty,
    Inactive { slot: u32, id: u32 },
}

fn maglev(maps: &impl FlowMaps, info: &ServiceInfo, h: u32, family: u8, port: u16) -> Pick {
    if info.ring_size == 0 {
        return Pick::Empty;
    }
    let slot = info.ring_offset.wrapping_add(h % info.ring_size);
    match maps.maglev(slot) {
        Some(id) if id != NO_BACKEND => match maps.backend(id) {
            Some(b) if active(&b) => Pick::Backend {
                slot,
                backend: chosen(id, &b, family, port),
            },
            _ => Pick::Inactive { slot, id },
        },
        _ => Pick::Empty,
    }
}

fn active(b: &Backend) -> bool {
    b.flags & backend_flags::ACTIVE != 0
}

/// `port`: the VIP's, which DR and TUN keep (their backends' port is 0 in the map).
fn chosen(id: u32, b: &Backend, family: u8, port: u16) -> Chosen {
    let family = if b.family == 0 { family } else { b.family };
    let port = match u16::from_be(b.port) {
        0 => port,
        p => p,
    };
    Chosen {
        id,
        addr: decode_addr(&b.addr, family).map(|ip| SocketAddr::new(ip, port)),
    }
}

impl fmt::Display for Chosen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.addr {
            Some(a) => write!(f, "{a} (backend id {})", self.id),
            None => write!(f, "backend id {}", self.id),
        }
    }
}

impl fmt::Display for Matched {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let port = if self.port == 0 {
            "all ports".to_string()
        } else {
            format!("port {}", self.port)
        };
        write!(
            f,
            "{port}, {}, hash {}{}, Maglev table of {} slots at {}",
            self.mode,
            if self.hash_src { "source" } else { "5-tuple" },
            if self.persistent { ", persistent" } else { "" },
            self.info.ring_size,
            self.info.ring_offset
        )
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Explanation::NoService => write!(
                f,
                "no service: no entry for the VIP's address, port and protocol (nor an all-ports one); the packet goes to the kernel (XDP_PASS)"
            ),
            Explanation::StrictDrop => write!(
                f,
                "no service: no entry for the VIP's address, port and protocol (nor an all-ports one); the address is a VIP in no-accept mode (vrrp_strict / accept = false, its instance MASTER): the packet is dropped (vip_strict_drop)"
            ),
            Explanation::Connection {
                service,
                backend,
                idle_s,
                maglev,
            } => {
                writeln!(f, "service: {service}")?;
                writeln!(f, "backend: {backend}")?;
                write!(
                    f,
                    "why: the connection table remembers this flow (idle {idle_s} s) and its backend is unchanged"
                )?;
                if let Some((slot, b)) = maglev {
                    write!(f, "\na new connection (SYN) on this tuple: Maglev slot {slot} -> {b}")?;
                }
                Ok(())
            }
            Explanation::Maglev {
                service,
                miss,
                hash,
                slot,
                backend,
            } => {
                writeln!(f, "service: {service}")?;
                writeln!(f, "backend: {backend}")?;
                let miss = match miss {
                    Miss::NoEntry => "the connection table has no entry for this flow".to_string(),
                    Miss::Expired { idle_s } => {
                        format!("the connection table's entry expired (idle {idle_s} s)")
                    }
                    Miss::Stale => {
                        "the connection table's backend left or was replaced".to_string()
                    }
                };
                write!(f, "why: {miss}; Maglev: hash {hash:#010x} -> slot {slot}")
            }
            Explanation::NoBackend { service, hash } => write!(
                f,
                "service: {service}\nbackend: none, the packet is dropped (no_backend)\nwhy: hash {hash:#010x} falls on an empty slot (no healthy backend)"
            ),
            Explanation::InactiveBackend { service, slot, id } => write!(
                f,
                "service: {service}\nbackend: none, the packet is dropped (bad_backend)\nwhy: Maglev slot {slot} names backend id {id}, which is not active"
            ),
        }
    }
}

/// A running data plane's maps, opened read-only from their pins.
pub struct PinnedMaps {
    services: BpfHashMap<MapData, ServiceKey, ServiceInfo>,
    conntrack: BpfHashMap<MapData, FlowKey, Conn>,
    maglev: Array<MapData, u32>,
    backends: Array<MapData, Backend>,
    /// `None`: pinned by a daemon older than no-accept mode.
    strict: Option<BpfHashMap<MapData, StrictVip, u8>>,
}

/// Why the pinned maps cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("opening the pinned map {path}: {source} (is the data plane running with bpf_pin_path {pin_dir}?)")]
pub struct PinError {
    path: String,
    pin_dir: String,
    source: Box<aya::maps::MapError>,
}

impl PinnedMaps {
    pub fn open(pin_dir: &Path) -> Result<PinnedMaps, PinError> {
        Ok(PinnedMaps {
            services: pinned(pin_dir, map_names::SERVICES)?,
            conntrack: pinned(pin_dir, map_names::CONNTRACK)?,
            maglev: pinned(pin_dir, map_names::MAGLEV)?,
            backends: pinned(pin_dir, map_names::BACKENDS)?,
            strict: pinned(pin_dir, map_names::STRICT_VIPS).ok(),
        })
    }
}

fn pinned<T: TryFrom<Map, Error = aya::maps::MapError>>(
    pin_dir: &Path,
    name: &str,
) -> Result<T, PinError> {
    let path = pin_dir.join(name);
    MapData::from_pin(&path)
        .and_then(Map::from_map_data)
        .and_then(T::try_from)
        .map_err(|source| PinError {
            path: path.display().to_string(),
            pin_dir: pin_dir.display().to_string(),
            source: Box::new(source),
        })
}

impl FlowMaps for PinnedMaps {
    fn service(&self, key: &ServiceKey) -> Option<ServiceInfo> {
        self.services.get(key, 0).ok()
    }
    fn conn(&self, key: &FlowKey) -> Option<Conn> {
        self.conntrack.get(key, 0).ok()
    }
    fn maglev(&self, slot: u32) -> Option<u32> {
        self.maglev.get(&slot, 0).ok()
    }
    fn backend(&self, id: u32) -> Option<Backend> {
        self.backends.get(&id, 0).ok()
    }
    fn strict_vip(&self, key: &StrictVip) -> bool {
        self.strict.as_ref().is_some_and(|m| m.get(key, 0).is_ok())
    }
}
