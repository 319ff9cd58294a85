//! Map definitions. Capacities here are defaults; user space resizes them at load time.
//! Names match `lb_common::map_names` (the pinned file names).

use aya_ebpf::{
    bindings::{BPF_F_MMAPABLE, BPF_F_NO_COMMON_LRU},
    btf_maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf},
    macros::btf_map,
};
use lb_common::{
    capacity, flags_index, Backend, Conn, Counter, FloodWindow, FlowKey, LearnedFlow, LocalMacs,
    NatEntry, NatReal, NeighMiss, ServiceInfo, ServiceKey, StrictVip, Traffic, SYNC_EVENTS_BYTES,
};

use crate::types::{Packet, Tuple};

#[btf_map(name = "lb_services")]
pub static SERVICES: HashMap<ServiceKey, ServiceInfo, { capacity::SERVICES as usize }> =
    HashMap::new();

/// What the services on destination addresses hashing to each slot need
/// ([`lb_common::vip_filter`]): read before anything else, so that a packet not for a VIP
/// costs one array read, and a DR/TUN flow's connection-table entry is looked up first.
#[btf_map(name = "lb_vip_filter")]
pub static VIP_FILTER: Array<u8, { capacity::VIP_FILTER_SLOTS as usize }> = Array::new();

/// VIPs in no-accept mode (keepalived's `vrrp_strict` / `no_accept`) while their instance
/// is MASTER: a frame to one that no service takes is dropped ([`crate::strict`]). Their
/// `lb_vip_filter` slots carry [`lb_common::vip_filter::STRICT`].
#[btf_map(name = "lb_strict_vips")]
pub static STRICT_VIPS: HashMap<StrictVip, u8, { capacity::STRICT_VIPS as usize }> = HashMap::new();

/// The MACs each attached interface answers to, by `ifindex % LOCAL_MAC_SLOTS`
/// ([`crate::other_host`]). Not pinned: every daemon writes it for its own program
/// before attaching or adopting.
#[btf_map(name = "lb_local_macs")]
pub static LOCAL_MACS: Array<LocalMacs, { capacity::LOCAL_MAC_SLOTS as usize }> = Array::new();

/// `lb_services`' values by service id: what an established flow found in the connection
/// table needs of its service (reached through its backend's `service`).
#[btf_map(name = "lb_service_info")]
pub static SERVICE_INFO: Array<ServiceInfo, { capacity::SERVICES as usize }> = Array::new();

#[btf_map(name = "lb_backends")]
pub static BACKENDS: Array<Backend, { capacity::BACKENDS as usize }> = Array::new();

/// All services' Maglev tables, back to back: slot `ring_offset + hash % ring_size`.
/// Mappable (`BPF_F_MMAPABLE`): the daemon writes tables with plain stores.
#[btf_map(name = "lb_maglev")]
pub static MAGLEV: Array<u32, { capacity::MAGLEV_SLOTS as usize }, { BPF_F_MMAPABLE as usize }> =
    Array::new();

/// The connection table: an LRU hash with per-CPU LRU lists (`BPF_F_NO_COMMON_LRU`), so
/// inserts on one CPU never contend with another's, while every CPU still sees every flow
/// (a flow that RSS moves to another CPU keeps its backend).
#[btf_map(name = "lb_conntrack")]
pub static CONNTRACK: LruHashMap<
    FlowKey,
    Conn,
    { capacity::CONNTRACK as usize },
    { BPF_F_NO_COMMON_LRU as usize },
> = LruHashMap::new();

/// The bitmap of the connection table's keys ([`crate::conn_filter`]). Mappable: the
/// daemon rebuilds it with plain and atomic stores. Not pinned (each daemon builds its own
/// from the table before trusting it).
#[btf_map(name = "lb_conn_filter")]
pub static CONN_FILTER: Array<
    u64,
    { capacity::CONN_FILTER as usize },
    { BPF_F_MMAPABLE as usize },
> = Array::new();

#[btf_map(name = "lb_stats")]
pub static STATS: PerCpuArray<u64, { Counter::COUNT as usize }> = PerCpuArray::new();

#[btf_map(name = "lb_service_stats")]
pub static SERVICE_STATS: PerCpuArray<Traffic, { capacity::SERVICES as usize }> =
    PerCpuArray::new();

#[btf_map(name = "lb_backend_stats")]
pub static BACKEND_STATS: PerCpuArray<Traffic, { capacity::BACKENDS as usize }> =
    PerCpuArray::new();

/// NAT translations, two per connection (one per direction). A plain hash, not an LRU:
/// a full table must never evict an established connection; user space expires
/// entries by connection state (`lvs_timeouts`).
#[btf_map(name = "lb_nat")]
pub static NAT: HashMap<FlowKey, NatEntry, { capacity::NAT as usize }> = HashMap::new();

/// Reals of NAT services (without SNAT) whose replies can be translated without an
/// entry: key = the real's (address, port, protocol, family).
#[btf_map(name = "lb_nat_reals")]
pub static NAT_REALS: HashMap<ServiceKey, NatReal, { capacity::NAT_REALS as usize }> =
    HashMap::new();

/// Next hops found without a neighbour entry (value: when), resolved by user space.
#[btf_map(name = "lb_neigh_miss")]
pub static NEIGH_MISS: LruHashMap<NeighMiss, u64, { capacity::NEIGH_MISS as usize }, 0> =
    LruHashMap::new();

/// Global switches ([`lb_common::global_flags`]): one entry, written by user space.
#[btf_map(name = "lb_flags")]
pub static FLAGS: Array<u32, { flags_index::COUNT as usize }> = Array::new();

/// New flows for flow-state sync (`crate::learn`), drained by the daemon. Not pinned:
/// a restarted daemon has nothing to read of the old one's.
#[btf_map(name = "lb_sync_events")]
pub static SYNC_EVENTS: RingBuf<LearnedFlow, { SYNC_EVENTS_BYTES as usize }> = RingBuf::new();

/// The flood guard's per-CPU window. Not pinned: a restart merely opens a new window.
#[btf_map(name = "lb_flood")]
pub static FLOOD: PerCpuArray<FloodWindow, 1> = PerCpuArray::new();

/// Per-CPU working memory for one packet: the parsed headers and the matched service
/// live here instead of on the stack, whose 512 bytes the verifier counts over the
/// deepest chain of BPF function calls. Not pinned: nothing outlives a packet.
pub struct Scratch {
    pub pkt: Packet,
    pub key: ServiceKey,
    pub svc: ServiceInfo,
    /// Where a translated ICMP error goes.
    pub route: Tuple,
    /// A new NAT flow's two translation entries, while they are built.
    pub fwd: NatEntry,
    pub rev: NatEntry,
}

#[btf_map(name = "lb_scratch")]
pub static SCRATCH: PerCpuArray<Scratch, 1> = PerCpuArray::new();
