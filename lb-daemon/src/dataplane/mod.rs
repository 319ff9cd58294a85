//! The XDP data plane's control library: loads the program, pins its maps, attaches it to
//! interfaces and programs services and backends. A [`Dataplane`] is the only writer of
//! the maps; the rest of the daemon sends it desired state.

mod adopt;
mod alloc;
pub mod bpffs;
pub mod conn_filter;
mod counters;
mod egress;
pub mod explain;
mod fastpath;
pub mod flow_sync;
pub mod from_config;
mod helper_program;
mod links;
pub mod live;
pub mod local_macs;
pub mod maglev;
mod mapped_ring;
pub mod nat;
mod object;
mod program;
pub mod spec;
mod strict;
mod tables;
#[cfg(feature = "lab")]
mod testrun;

use std::{
    collections::HashMap,
    net::IpAddr,
    path::{Path, PathBuf},
};

use aya::{
    maps::{Array, HashMap as BpfHashMap, Map, MapData, PerCpuArray, PerCpuValues},
    programs::Xdp,
    Ebpf, EbpfLoader,
};
use lb_common::{
    capacity, flags_index, map_names, program_names, Backend, Conn, Counter, FlowKey, NatEntry,
    NatReal, NeighMiss, ServiceInfo, ServiceKey, StrictVip, Traffic,
};
use tracing::{info, warn};

pub use counters::{BackendStatus, ServiceStatus};
pub use egress::resolve_egress;
pub use helper_program::HelperProgram;
pub use links::{link_pin_interface, link_pin_path, AttachMode};
pub use nat::{NatConnection, NatSweep, NatTimeouts};
pub use object::OBJECT_ENV;
pub use program::ApplyReport;
pub use spec::{
    default_idle_timeout, BackendSpec, Egress, ForwardMode, HashMode, Protocol, ServiceId,
    ServiceSpec, SpecError,
};
pub use tables::{PlaneUsage, TableUse};
#[cfg(feature = "lab")]
pub use testrun::TestRunOutput;

use alloc::{IdPool, RingAllocator};
use bpffs::MapShape;

/// Default pin directory (keepalived users: this is where `bpftool map dump pinned` looks).
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/lb";

#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    #[error("eBPF object: {0}")]
    Object(String),
    #[error("bpffs: {0}")]
    Bpffs(String),
    #[error("loading the XDP program failed: {0}; is this root, with BPF and BTF enabled in the kernel?")]
    Load(#[source] aya::EbpfError),
    #[error("map {map}: {source}")]
    Map {
        map: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
    #[error("program {program}: {source}")]
    Program {
        program: &'static str,
        #[source]
        source: aya::programs::ProgramError,
    },
    #[error("interface {0} does not exist; check the name (`ip link`)")]
    NoInterface(String),
    #[error(
        "attaching XDP to {iface} failed in native mode ({native}) and in generic mode ({generic})"
    )]
    Attach {
        iface: String,
        native: String,
        generic: String,
    },
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error("{wanted} VIPs in no-accept mode (vrrp_strict / accept = false) while MASTER, but lb_strict_vips holds {capacity}; turn accept on for some instances")]
    StrictVipsFull { wanted: usize, capacity: usize },
    #[error("{what} is full ({used} of {capacity} in use) while programming {service}; raise the capacity in the configuration or remove services")]
    Full {
        what: &'static str,
        used: u64,
        capacity: u64,
        service: ServiceId,
    },
    #[error("no service {0} is programmed")]
    NoService(ServiceId),
}

/// Map sizes, fixed when the maps are created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    pub services: u32,
    pub backends: u32,
    /// Maglev slots shared by all services (each takes its table size M).
    pub maglev_slots: u32,
    /// Connection-table entries (per CPU).
    pub conntrack: u32,
    /// NAT translation entries (two per NAT'ed connection).
    pub nat: u32,
}

impl Default for Capacity {
    fn default() -> Self {
        Self {
            services: capacity::SERVICES,
            backends: capacity::BACKENDS,
            maglev_slots: capacity::MAGLEV_SLOTS,
            conntrack: capacity::CONNTRACK,
            nat: capacity::NAT,
        }
    }
}

impl Capacity {
    fn shape(&self, name: &str) -> MapShape {
        let u32s = std::mem::size_of::<u32>() as u32;
        let (key_size, value_size, max_entries) = match name {
            map_names::SERVICES => (size::<ServiceKey>(), size::<ServiceInfo>(), self.services),
            map_names::BACKENDS => (u32s, size::<Backend>(), self.backends),
            map_names::MAGLEV => (u32s, u32s, self.maglev_slots),
            map_names::CONNTRACK => (size::<FlowKey>(), size::<Conn>(), self.conntrack),
            map_names::STATS => (u32s, size::<u64>(), Counter::COUNT),
            map_names::SERVICE_STATS => (u32s, size::<Traffic>(), self.services),
            map_names::NAT => (size::<FlowKey>(), size::<NatEntry>(), self.nat),
            map_names::NAT_REALS => (size::<ServiceKey>(), size::<NatReal>(), self.backends),
            map_names::FLAGS => (u32s, u32s, flags_index::COUNT),
            map_names::NEIGH_MISS => (size::<NeighMiss>(), size::<u64>(), capacity::NEIGH_MISS),
            map_names::VIP_FILTER => (u32s, size::<u8>(), capacity::VIP_FILTER_SLOTS),
            map_names::SERVICE_INFO => (u32s, size::<ServiceInfo>(), self.services),
            map_names::STRICT_VIPS => (size::<StrictVip>(), size::<u8>(), capacity::STRICT_VIPS),
            _ => (u32s, size::<Traffic>(), self.backends),
        };
        MapShape {
            key_size,
            value_size,
            max_entries,
        }
    }

    /// The maps whose size is configurable, with their size.
    fn sized_maps(&self) -> [(&'static str, u32); 9] {
        [
            (map_names::SERVICE_INFO, self.services),
            (map_names::NAT, self.nat),
            (map_names::NAT_REALS, self.backends),
            (map_names::SERVICES, self.services),
            (map_names::BACKENDS, self.backends),
            (map_names::MAGLEV, self.maglev_slots),
            (map_names::CONNTRACK, self.conntrack),
            (map_names::SERVICE_STATS, self.services),
            (map_names::BACKEND_STATS, self.backends),
        ]
    }
}

fn size<T>() -> u32 {
    std::mem::size_of::<T>() as u32
}

#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// bpffs directory for the pinned maps (default `/sys/fs/bpf/lb`).
    pub pin_dir: PathBuf,
    pub capacity: Capacity,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            pin_dir: PathBuf::from(DEFAULT_PIN_DIR),
            capacity: Capacity::default(),
        }
    }
}

/// A programmed service, mirrored from the maps.
#[derive(Debug)]
struct ServiceState {
    info: ServiceInfo,
    /// What the ring region holds (empty = unknown, rewrite all of it).
    ring: Vec<u32>,
    backends: HashMap<(IpAddr, u16), BackendState>,
    /// The spec last applied (None right after adopting pinned maps).
    spec: Option<ServiceSpec>,
    /// The `lb_services` keys written for a group besides the service's own.
    member_keys: Vec<ServiceKey>,
}

#[derive(Debug, Clone)]
struct BackendState {
    id: u32,
    entry: Backend,
    weight: u32,
}

pub struct Dataplane {
    ebpf: Ebpf,
    pin_dir: PathBuf,
    capacity: Capacity,
    services: HashMap<ServiceId, ServiceState>,
    service_ids: IdPool,
    backend_ids: IdPool,
    rings: RingAllocator,
    next_generation: u32,
    attachments: HashMap<u32, links::Attachment>,
    adopted: bool,
    /// What `lb_vip_filter` holds.
    vip_filter: Vec<u8>,
    /// What `lb_strict_vips` holds (VIPs in no-accept mode).
    strict_vips: std::collections::BTreeSet<IpAddr>,
    /// Flow-state sync: the program reports new flows (`global_flags::SYNC`).
    sync_learning: bool,
    /// `lb_sync_events`, taken out of the object once sync is turned on.
    sync_events: Option<aya::maps::RingBuf<MapData>>,
    /// The connection table's entry count and when it was taken (installing peers'
    /// flows keeps it under a fill limit).
    conntrack_count: Option<(std::time::Instant, u64)>,
    /// Each backend's DR/TUN connections and when they were counted (status).
    conn_counts: std::sync::Mutex<Option<(std::time::Instant, HashMap<u32, u64>)>>,
    /// `lb_maglev` mapped into memory (None: written with one system call per slot).
    maglev_mapped: Option<mapped_ring::MappedRing>,
    /// What `lb_local_macs` holds.
    local_macs: local_macs::LocalMacTable,
    /// `lb_conn_filter` mapped into memory (None: it cannot be, and the program never
    /// trusts it: every flow looks in the connection table).
    conn_filter: Option<conn_filter::ConnFilter>,
}

impl Dataplane {
    /// Loads the program and creates its maps, pinned under `pin_dir`. Pinned maps left by
    /// a previous run are re-used (with the services, backends and connection table they
    /// hold) when their layout fits this build; otherwise they are replaced.
    pub fn load(opts: &LoadOptions) -> Result<Self, DataplaneError> {
        bpffs::ensure_pin_dir(&opts.pin_dir)?;
        let cap = opts.capacity;
        let mut kept = 0;
        for name in map_names::ALL {
            if bpffs::keep_pin_if_compatible(&opts.pin_dir, name, cap.shape(name))? {
                kept += 1;
            }
        }
        let adopted = kept == map_names::ALL.len();
        if kept > 0 && !adopted {
            warn!(pin_dir = %opts.pin_dir.display(), "incomplete set of pinned maps; starting fresh");
            bpffs::remove_map_pins(&opts.pin_dir);
        }

        let object = object::Object::load()?;
        let pins: Vec<(&'static str, PathBuf)> = map_names::ALL
            .iter()
            .map(|&name| (name, bpffs::pin_path(&opts.pin_dir, name)))
            .collect();
        let mut loader = EbpfLoader::new();
        for (name, entries) in cap.sized_maps() {
            loader.map_max_entries(name, entries);
        }
        loader.map_max_entries(
            map_names::CONN_FILTER,
            lb_common::conn_filter::map_entries(lb_common::conn_filter::words_for(cap.conntrack)),
        );
        for (name, path) in &pins {
            loader.map_pin_path(name, path.as_path());
        }
        let mut ebpf = loader.load(object.bytes()).map_err(DataplaneError::Load)?;
        program_mut(&mut ebpf, program_names::LB)?
            .load()
            .map_err(|source| DataplaneError::Program {
                program: program_names::LB,
                source,
            })?;

        let mut dp = Dataplane {
            ebpf,
            pin_dir: opts.pin_dir.clone(),
            capacity: cap,
            services: HashMap::new(),
            service_ids: IdPool::new(cap.services),
            backend_ids: IdPool::new(cap.backends),
            rings: RingAllocator::new(cap.maglev_slots),
            next_generation: 1,
            attachments: HashMap::new(),
            adopted,
            vip_filter: vec![0; capacity::VIP_FILTER_SLOTS as usize],
            strict_vips: std::collections::BTreeSet::new(),
            sync_learning: false,
            sync_events: None,
            conntrack_count: None,
            conn_counts: std::sync::Mutex::new(None),
            maglev_mapped: None,
            local_macs: local_macs::LocalMacTable::default(),
            conn_filter: None,
        };
        dp.maglev_mapped = dp.map_maglev();
        dp.conn_filter = dp.map_conn_filter();
        if adopted {
            dp.adopt()?;
            dp.read_vip_filter()?;
            dp.read_strict_vips()?;
            info!(services = dp.services.len(), pin_dir = %dp.pin_dir.display(), "re-using pinned maps");
        }
        Ok(dp)
    }

    /// True when `lb_maglev` is written in memory (mapped), not one system call per slot.
    pub fn maglev_in_memory(&self) -> bool {
        self.maglev_mapped.is_some()
    }

    /// True when the maps of a previous run were re-used.
    pub fn adopted(&self) -> bool {
        self.adopted
    }

    pub fn pin_dir(&self) -> &Path {
        &self.pin_dir
    }

    pub fn capacity(&self) -> Capacity {
        self.capacity
    }

    /// Removes the pinned maps and XDP links (clean shutdown): they live on only while
    /// this process holds them.
    pub fn unpin(&self) {
        bpffs::remove_pins(&self.pin_dir);
    }

    fn map_mut(&mut self, name: &'static str) -> Result<&mut Map, DataplaneError> {
        self.ebpf.map_mut(name).ok_or(DataplaneError::Map {
            map: name,
            source: aya::maps::MapError::InvalidName { name: name.into() },
        })
    }

    fn map(&self, name: &'static str) -> Result<&Map, DataplaneError> {
        self.ebpf.map(name).ok_or(DataplaneError::Map {
            map: name,
            source: aya::maps::MapError::InvalidName { name: name.into() },
        })
    }

    fn services_map(
        &mut self,
    ) -> Result<BpfHashMap<&mut MapData, ServiceKey, ServiceInfo>, DataplaneError> {
        let name = map_names::SERVICES;
        BpfHashMap::try_from(self.map_mut(name)?).map_err(|source| map_err(name, source))
    }

    fn backends_map(&mut self) -> Result<Array<&mut MapData, Backend>, DataplaneError> {
        let name = map_names::BACKENDS;
        Array::try_from(self.map_mut(name)?).map_err(|source| map_err(name, source))
    }

    /// `lb_maglev` in memory, when the map allows it (a map pinned by a build before
    /// `BPF_F_MMAPABLE` does not: slots are then written one system call each).
    fn map_maglev(&self) -> Option<mapped_ring::MappedRing> {
        let slots = self.capacity.maglev_slots;
        self.map_array_memory(
            map_names::MAGLEV,
            " (pinned by an older build?): Maglev tables are written slot by slot",
            |fd| mapped_ring::MappedRing::map(fd, slots),
        )
    }

    /// `lb_conn_filter` in memory, its size announced to the program (untrusted until
    /// the first [`Dataplane::rebuild_conn_filter`]).
    fn map_conn_filter(&self) -> Option<conn_filter::ConnFilter> {
        let conntrack = self.capacity.conntrack;
        self.map_array_memory(
            map_names::CONN_FILTER,
            ": every new flow looks in the connection table",
            |fd| conn_filter::ConnFilter::map(fd, conntrack),
        )
    }

    /// The array map `name` mapped into memory by `map`; None (with a warning saying
    /// `without` is what follows) when it is no array or cannot be mapped.
    fn map_array_memory<T>(
        &self,
        name: &'static str,
        without: &str,
        map: impl FnOnce(std::os::fd::BorrowedFd<'_>) -> std::io::Result<T>,
    ) -> Option<T> {
        let Ok(Map::Array(data)) = self.map(name) else {
            return None;
        };
        map(std::os::fd::AsFd::as_fd(data.fd()))
            .inspect_err(|e| warn!(error = %e, "{name} cannot be mapped into memory{without}"))
            .ok()
    }

    /// Rebuilds the connection-table filter from a walk of the table (see
    /// [`conn_filter`]), here and now (tests, benchmarks; the daemon runs
    /// [`Dataplane::conn_filter_rebuilder`]). Returns the keys walked and the fraction
    /// of the bitmap now set; None without a filter.
    pub fn rebuild_conn_filter(&self) -> Result<Option<(u64, f64)>, DataplaneError> {
        let Some(filter) = &self.conn_filter else {
            return Ok(None);
        };
        let name = map_names::CONNTRACK;
        filter
            .rebuild(self.conntrack_fd()?)
            .map(Some)
            .map_err(|e| map_err(name, aya::maps::MapError::IoError(e)))
    }

    /// The thread that keeps the connection-table filter rebuilt, with handles of its
    /// own on the maps; None without a filter.
    pub fn conn_filter_rebuilder(&self) -> Result<Option<conn_filter::Rebuilder>, DataplaneError> {
        let Some(filter) = &self.conn_filter else {
            return Ok(None);
        };
        let name = map_names::CONN_FILTER;
        let Map::Array(data) = self.map(name)? else {
            return Err(map_err(
                name,
                aya::maps::MapError::InvalidName { name: name.into() },
            ));
        };
        let io = |e| map_err(name, aya::maps::MapError::IoError(e));
        let job = conn_filter::RebuildJob::new(
            self.conntrack_fd()?,
            filter,
            std::os::fd::AsFd::as_fd(data.fd()),
        )
        .map_err(io)?;
        conn_filter::Rebuilder::start(job).map(Some).map_err(io)
    }

    fn conntrack_fd(&self) -> Result<std::os::fd::BorrowedFd<'_>, DataplaneError> {
        let name = map_names::CONNTRACK;
        match self.map(name)? {
            Map::LruHashMap(data) | Map::HashMap(data) => Ok(std::os::fd::AsFd::as_fd(data.fd())),
            _ => Err(map_err(
                name,
                aya::maps::MapError::InvalidName { name: name.into() },
            )),
        }
    }

    fn maglev_map(&mut self) -> Result<Array<&mut MapData, u32>, DataplaneError> {
        let name = map_names::MAGLEV;
        Array::try_from(self.map_mut(name)?).map_err(|source| map_err(name, source))
    }

    /// Zeroes a per-CPU traffic counter (a freshly allocated id must not inherit the
    /// previous occupant's numbers).
    fn reset_traffic(&mut self, map: &'static str, index: u32) -> Result<(), DataplaneError> {
        let cpus = aya::util::nr_cpus().map_err(|(_, e)| DataplaneError::Map {
            map,
            source: aya::maps::MapError::IoError(e),
        })?;
        let mut arr: PerCpuArray<&mut MapData, Traffic> =
            PerCpuArray::try_from(self.map_mut(map)?).map_err(|source| map_err(map, source))?;
        let zeros = PerCpuValues::try_from(vec![Traffic::default(); cpus])
            .map_err(|e| map_err(map, aya::maps::MapError::IoError(e)))?;
        arr.set(index, zeros, 0)
            .map_err(|source| map_err(map, source))
    }

    fn new_generation(&mut self) -> u32 {
        let g = self.next_generation;
        self.next_generation = self.next_generation.wrapping_add(1).max(1);
        g
    }
}

fn map_err(map: &'static str, source: aya::maps::MapError) -> DataplaneError {
    DataplaneError::Map { map, source }
}

fn program_mut<'a>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut Xdp, DataplaneError> {
    let prog = ebpf.program_mut(name).ok_or(DataplaneError::Program {
        program: name,
        source: aya::programs::ProgramError::UnexpectedProgramType,
    })?;
    prog.try_into().map_err(|source| DataplaneError::Program {
        program: name,
        source,
    })
}

pub(crate) fn ifindex(ifname: &str) -> Result<u32, DataplaneError> {
    nix::net::if_::if_nametoindex(ifname)
        .map_err(|_| DataplaneError::NoInterface(ifname.to_string()))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s
}
