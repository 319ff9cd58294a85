//! Map definitions. Capacities here are defaults; user space resizes them at load time.
//! Names match `lb_common::map_names` (the pinned file names).

use aya_ebpf::{
    bindings::BPF_F_NO_COMMON_LRU,
    btf_maps::{Array, HashMap, LruHashMap, PerCpuArray},
    macros::btf_map,
};
use lb_common::{capacity, Backend, Conn, Counter, FlowKey, ServiceInfo, ServiceKey, Traffic};

#[btf_map(name = "lb_services")]
pub static SERVICES: HashMap<ServiceKey, ServiceInfo, { capacity::SERVICES as usize }> =
    HashMap::new();

#[btf_map(name = "lb_backends")]
pub static BACKENDS: Array<Backend, { capacity::BACKENDS as usize }> = Array::new();

/// All services' Maglev tables, back to back: slot `ring_offset + hash % ring_size`.
#[btf_map(name = "lb_maglev")]
pub static MAGLEV: Array<u32, { capacity::MAGLEV_SLOTS as usize }> = Array::new();

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

#[btf_map(name = "lb_stats")]
pub static STATS: PerCpuArray<u64, { Counter::COUNT as usize }> = PerCpuArray::new();

#[btf_map(name = "lb_service_stats")]
pub static SERVICE_STATS: PerCpuArray<Traffic, { capacity::SERVICES as usize }> =
    PerCpuArray::new();

#[btf_map(name = "lb_backend_stats")]
pub static BACKEND_STATS: PerCpuArray<Traffic, { capacity::BACKENDS as usize }> =
    PerCpuArray::new();
