//! Types shared by the XDP program (`lb-ebpf`) and user space (`lb-daemon`).
//!
//! Every map key and value is `#[repr(C)]`, padding-free (explicit `pad` fields) and
//! size-checked at compile time, so the kernel and user space agree byte for byte and
//! `bpftool map dump` prints named fields from the BTF the object carries.
//! Addresses and ports are stored in network byte order, exactly as they appear on the
//! wire, so the fast path compares them without conversion.
#![no_std]

pub mod conn_filter;
pub mod hash;
pub mod maglev;
mod protocol;

pub use protocol::Protocol;

/// Map names: the pinned files under the bpffs pin directory carry these names.
pub mod map_names {
    pub const SERVICES: &str = "lb_services";
    pub const BACKENDS: &str = "lb_backends";
    pub const MAGLEV: &str = "lb_maglev";
    pub const CONNTRACK: &str = "lb_conntrack";
    pub const STATS: &str = "lb_stats";
    pub const SERVICE_STATS: &str = "lb_service_stats";
    pub const BACKEND_STATS: &str = "lb_backend_stats";
    pub const NAT: &str = "lb_nat";
    pub const NAT_REALS: &str = "lb_nat_reals";
    pub const NEIGH_MISS: &str = "lb_neigh_miss";
    pub const FLAGS: &str = "lb_flags";
    pub const VIP_FILTER: &str = "lb_vip_filter";
    pub const SERVICE_INFO: &str = "lb_service_info";
    /// The VIPs whose traffic no service takes is dropped (keepalived's no-accept mode).
    pub const STRICT_VIPS: &str = "lb_strict_vips";
    /// New flows the data plane reports for flow-state sync (a ring buffer, not pinned:
    /// nothing in it outlives the daemon that drains it).
    pub const SYNC_EVENTS: &str = "lb_sync_events";
    /// The MAC addresses each attached interface answers to (not pinned: the daemon
    /// writes it before its program sees a frame).
    pub const LOCAL_MACS: &str = "lb_local_macs";
    /// The bitmap of the connection table's keys ([`crate::conn_filter`]; not pinned:
    /// each daemon builds its own from the table before trusting it).
    pub const CONN_FILTER: &str = "lb_conn_filter";
    /// Every pinned map, in the order `docs/maps.md` lists them.
    pub const ALL: [&str; 14] = [
        SERVICES,
        BACKENDS,
        MAGLEV,
        CONNTRACK,
        STATS,
        SERVICE_STATS,
        BACKEND_STATS,
        NAT,
        NAT_REALS,
        NEIGH_MISS,
        FLAGS,
        VIP_FILTER,
        SERVICE_INFO,
        STRICT_VIPS,
    ];
}

/// Program names in the object.
pub mod program_names {
    /// The load balancer.
    pub const LB: &str = "lb_xdp";
    /// Returns `XDP_PASS`: benchmark baseline, and the program a veth peer needs so that
    /// native-mode `XDP_TX` frames are not dropped.
    pub const PASS: &str = "lb_pass";
    /// Swaps MAC addresses and returns `XDP_TX`: benchmark baseline.
    pub const MAC_SWAP: &str = "lb_mac_swap";
    /// Strips TUN encapsulation on a backend that has no tunnel device.
    pub const DECAP: &str = "lb_decap";
    /// Always `XDP_DROP`: the veth peer of the live-frames benchmark.
    pub const DROP: &str = "lb_drop";
    /// Live-frames benchmark wrapper: restores the frame, varies the flow, tail-calls
    /// the program under test (`lb_bench_progs[0]`).
    pub const BENCH_WRAP: &str = "lb_bench_wrap";
}

/// The VRRP advert filter: a second, small object (`lb-vrrp-filter`), loaded by the VRRP
/// side of the daemon whether or not a data plane runs. Nothing in it is pinned.
pub mod vrrp_quiet {
    /// The socket filter attached to each VRRP instance's receive socket.
    pub const PROGRAM: &str = "lb_vrrp_quiet";
    /// Socket cookie (`SO_COOKIE`) -> slot of [`SLOTS`].
    pub const COOKIES: &str = "lb_vrrp_cookies";
    /// The slots (`BPF_F_MMAPABLE` array of [`super::VrrpQuiet`]), mapped by the daemon.
    pub const SLOTS: &str = "lb_vrrp_slots";
    /// Instances that can have a filter slot at once; more fall back to reading every
    /// advert in user space.
    pub const CAPACITY: u32 = 1024;
    /// The longest VRRP message a slot holds (v3 with 30 IPv4 or 7 IPv6 addresses).
    pub const PAYLOAD_MAX: usize = 128;
}

/// One VRRP instance's slot in the advert filter ([`vrrp_quiet`]). While `armed` is 1
/// the filter drops each advert identical to the template (same interface, source,
/// destination, TTL and VRRP message), records its arrival in `last_ns` and counts it in
/// `taken`; the first datagram that differs sets `armed` to 0 and is received, and so is
/// everything after it until the daemon arms the slot again.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VrrpQuiet {
    pub armed: u32,
    pub ifindex: u32,
    /// IPv4 addresses in the first 4 bytes, the rest zero.
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub ttl: u8,
    /// 1 = IPv6.
    pub v6: u8,
    /// Length of the VRRP message, 1..=[`vrrp_quiet::PAYLOAD_MAX`].
    pub len: u16,
    pub pad: u32,
    /// The VRRP message, zero after `len` bytes (native-endian words of its bytes).
    pub payload: [u64; vrrp_quiet::PAYLOAD_MAX / 8],
    /// `CLOCK_MONOTONIC` (`bpf_ktime_get_ns`) arrival of the last advert taken; 0 = none.
    pub last_ns: u64,
    /// Adverts taken since the slot was armed.
    pub taken: u64,
}

/// Maps of the live-frames benchmark wrapper (never pinned; unused by the daemon).
pub mod bench_maps {
    pub const FRAME: &str = "lb_bench_frame";
    pub const PROGS: &str = "lb_bench_progs";
    pub const SEQ: &str = "lb_bench_seq";
}

/// Value of `lb_bench_frame`: the headers the benchmark wrapper writes back into every
/// live frame (live mode recycles pages without restoring their data), and how it
/// varies the flow from packet to packet.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct BenchFrame {
    /// The first `words * 8` bytes of the frame.
    pub head: [u64; BENCH_HEAD_WORDS],
    pub words: u32,
    /// Offset of a 32-bit big-endian word (the client address's last word) that becomes
    /// `vary_base + (n % flows)` for the n-th packet on this CPU (`flows == 0`: `n`).
    pub vary_offset: u32,
    pub vary_base: u32,
    pub flows: u32,
}

/// Header bytes the benchmark wrapper restores: enough for Ethernet + IPv6 + TCP.
pub const BENCH_HEAD_WORDS: usize = 10;

/// Default map capacities compiled into the object; user space may override them at
/// load time (`LoadOptions`).
pub mod capacity {
    pub const SERVICES: u32 = 1024;
    pub const BACKENDS: u32 = 4096;
    /// Maglev slots shared by all services: 16 services at the default table size.
    pub const MAGLEV_SLOTS: u32 = 16 * crate::maglev::DEFAULT_TABLE_SIZE;
    pub const CONNTRACK: u32 = 65536;
    /// Entries of `lb_conn_filter` for the default connection table.
    pub const CONN_FILTER: u32 =
        crate::conn_filter::map_entries(crate::conn_filter::words_for(CONNTRACK));
    /// NAT translation entries: two per NAT'ed connection (one per direction).
    pub const NAT: u32 = 131072;
    /// Real servers of NAT services answered without a translation entry.
    pub const NAT_REALS: u32 = 4096;
    /// Next hops the data plane found unresolved, for user space to resolve.
    pub const NEIGH_MISS: u32 = 256;
    /// Slots of `lb_vip_filter` (a power of two: the slot is the top bits of a hash).
    pub const VIP_FILTER_SLOTS: u32 = 1 << VIP_FILTER_BITS;
    pub const VIP_FILTER_BITS: u32 = 16;
    /// VIPs of instances in no-accept mode (`lb_strict_vips`).
    pub const STRICT_VIPS: u32 = 1024;
    /// Slots of `lb_local_macs` (the slot is the ifindex modulo this).
    pub const LOCAL_MAC_SLOTS: u32 = 1024;
}

/// Values of `lb_vip_filter[vip_slot(dst)]`: what the services on the destination
/// addresses hashing to that slot need. 0: no service, the packet is not for a VIP.
pub mod vip_filter {
    /// A DR or TUN service without persistence: its established flows are found with
    /// one connection-table lookup, keyed by the full 5-tuple, before any service lookup.
    pub const FAST: u8 = 1;
    /// A NAT or persistent service: the service is looked up first.
    pub const SLOW: u8 = 2;
    /// A VIP in no-accept mode (`lb_strict_vips`) hashes here: a frame no service takes
    /// is looked up there, and dropped if its destination is one.
    pub const STRICT: u8 = 4;
}

/// The `lb_vip_filter` slot of a destination address (the top bits of a multiplicative
/// hash of its words, family-blind: a collision only costs a service lookup).
#[inline(always)]
pub fn vip_slot(addr: &Addr) -> u32 {
    let x = addr[0] ^ addr[1].rotate_left(8) ^ addr[2].rotate_left(16) ^ addr[3].rotate_left(24);
    x.wrapping_mul(0x9e37_79b1) >> (32 - capacity::VIP_FILTER_BITS)
}

/// Source ports full-NAT (`snat_address`) allocates: below Linux's default ephemeral
/// range (32768-60999), so they never collide with the host's own connections from
/// the same address.
pub mod snat_ports {
    pub const FIRST: u16 = 1024;
    pub const COUNT: u16 = 31744;
    /// Candidates tried before a new flow is dropped.
    pub const TRIES: u32 = 4;
}

pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86DD;
pub const ETH_P_8021Q: u16 = 0x8100;
pub const ETH_P_ARP: u16 = 0x0806;

pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_IPIP: u8 = 4;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
/// SCTP (IPVS data plane only).
pub const IPPROTO_SCTP: u8 = 132;
pub const IPPROTO_IPV6: u8 = 41;
pub const IPPROTO_ICMPV6: u8 = 58;
pub const IPPROTO_VRRP: u8 = 112;

/// Address family tags used in keys (not the kernel's AF_* values, which differ per OS).
pub const FAMILY_V4: u8 = 4;
pub const FAMILY_V6: u8 = 6;

/// Ring slot value meaning "no backend": the service has no backend with weight > 0.
pub const NO_BACKEND: u32 = u32::MAX;

/// TTL / hop limit of outer tunnel headers.
pub const TUNNEL_TTL: u8 = 64;

/// An IPv4 or IPv6 address in network byte order. IPv4 uses `words[0]`; the rest is 0.
pub type Addr = [u32; 4];

/// Key of the `lb_services` hash map: a virtual service.
/// `port == 0` is a wildcard service (all ports); exact matches are looked up first.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct ServiceKey {
    pub addr: Addr,
    /// Network byte order.
    pub port: u16,
    pub proto: u8,
    pub family: u8,
}

/// Forwarding mode, stored in the low byte of [`ServiceInfo::flags`].
pub mod mode {
    pub const DR: u32 = 0;
    pub const TUN: u32 = 1;
    /// Destination NAT (and, with [`super::service_flags::SNAT`], source NAT too).
    pub const NAT: u32 = 2;
    pub const MASK: u32 = 0xff;
}

/// Service flags above the mode byte.
pub mod service_flags {
    /// Hash over the source address only (`maglev_src`, IPVS `sh`).
    pub const HASH_SRC: u32 = 1 << 8;
    /// `persistence_timeout`: connection-table entries are keyed by the client address
    /// (source port 0), like an IPVS persistence template.
    pub const PERSISTENT: u32 = 1 << 9;
    /// NAT only: the client address is replaced by [`super::ServiceInfo::snat`] and a
    /// source port allocated per flow (full-NAT).
    pub const SNAT: u32 = 1 << 10;
    /// With [`PERSISTENT`]: bits 16..24 hold how many low bits of the client address a
    /// persistence entry ignores (keepalived's `persistence_granularity`; 0 = the whole
    /// address, 8 = an IPv4 /24). See [`super::persistence_client`].
    pub const PERSIST_HOST_BITS_SHIFT: u32 = 16;
    pub const PERSIST_HOST_BITS_MASK: u32 = 0xff << PERSIST_HOST_BITS_SHIFT;

    /// The host bits [`PERSIST_HOST_BITS_MASK`] holds in `flags`.
    #[inline(always)]
    pub fn persist_host_bits(flags: u32) -> u32 {
        (flags & PERSIST_HOST_BITS_MASK) >> PERSIST_HOST_BITS_SHIFT
    }
}

/// The destination address of a group service's persistence templates (see
/// [`ServiceInfo::group`]): the mark in network order in `words[0]`, as IPVS writes
/// `htonl(fwmark)` as the virtual address of a firewall-mark service's templates.
#[inline(always)]
pub fn group_template_addr(mark: u32) -> Addr {
    [mark.to_be(), 0, 0, 0]
}

/// Value of `lb_services`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ServiceInfo {
    /// Index into `lb_service_stats`.
    pub id: u32,
    /// [`mode`] | [`service_flags`].
    pub flags: u32,
    /// First slot of this service's Maglev table in `lb_maglev`.
    pub ring_offset: u32,
    /// Maglev table size M (prime).
    pub ring_size: u32,
    /// Connection-table entries older than this (since last seen) are re-hashed.
    pub timeout_s: u32,
    /// A group service (keepalived's `virtual_server fwmark N` on XDP): its mark N,
    /// else 0. Every (address, port) of the group is a key of `lb_services` holding this
    /// same value, so they share one Maglev table; with [`service_flags::PERSISTENT`]
    /// they also share one persistence template per client, keyed as IPVS keys a
    /// firewall-mark service's templates: destination address = the mark (network
    /// order, in `words[0]`: `0.0.0.N` / `0:N::`, never a VIP), destination port 0.
    pub group: u32,
    /// NAT with [`service_flags::SNAT`]: the source address of packets sent to the reals.
    pub snat: Addr,
}

/// The client address a persistent service remembers: `addr` with its last `host_bits`
/// bits cleared (IPVS's persistence netmask). Words hold network-order bytes.
#[inline(always)]
pub fn persistence_client(addr: &Addr, family: u8, host_bits: u32) -> Addr {
    if host_bits == 0 {
        return *addr;
    }
    let total: u32 = if family == FAMILY_V6 { 128 } else { 32 };
    let prefix = total.saturating_sub(host_bits);
    let mut out = [0u32; 4];
    let mut i = 0;
    while i < 4 {
        let keep = prefix.saturating_sub(32 * i as u32).min(32);
        let mask = match keep {
            0 => 0,
            32 => u32::MAX,
            k => u32::MAX.wrapping_shl(32 - k),
        };
        out[i] = (u32::from_be(addr[i]) & mask).to_be();
        i += 1;
    }
    out
}

/// Backend flags.
pub mod backend_flags {
    /// The slot holds a live backend (cleared when it is removed).
    pub const ACTIVE: u8 = 1;
}

/// Value of the `lb_backends` array, indexed by backend id. It carries everything the
/// fast path needs to forward to the backend, so a packet costs no extra lookups.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Backend {
    pub addr: Addr,
    /// Outer source address of tunnel packets (TUN): the LB's address on the egress
    /// interface, same family as `addr`.
    pub tun_src: Addr,
    /// Next-hop MAC: the backend's own (DR, on-link TUN) or its gateway's.
    pub mac: [u8; 6],
    /// MAC of the egress interface.
    pub src_mac: [u8; 6],
    pub family: u8,
    pub flags: u8,
    /// Network byte order (used by NAT).
    pub port: u16,
    /// Bumped every time the id is (re)allocated; connection-table entries remember it,
    /// so a flow whose backend was removed is re-hashed instead of following a reused id.
    pub generation: u32,
    /// Egress interface: `XDP_TX` when it is the ingress interface, else redirect.
    pub ifindex: u32,
    /// Id of the service this backend belongs to (lets a restarted daemon adopt the maps).
    pub service: u32,
}

/// Key of the `lb_conntrack` per-CPU LRU hash.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct FlowKey {
    pub src: Addr,
    pub dst: Addr,
    /// Network byte order; 0 for persistent services (client affinity; the template of
    /// a group service has its mark as `dst` and port 0, see [`ServiceInfo::group`]).
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
    pub family: u8,
    pub pad: u16,
}

/// Value of `lb_conntrack`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Conn {
    pub backend: u32,
    /// [`Backend::generation`] when the entry was made.
    pub generation: u32,
    /// `bpf_ktime_get_ns()` of the last packet.
    pub last_seen_ns: u64,
}

/// Indexes of `lb_flags`, the data plane's global settings (written by user space).
pub mod flags_index {
    /// [`super::global_flags`].
    pub const FLAGS: u32 = 0;
    /// The flood guard: new DR/TUN flows per CPU per second that get a connection-table
    /// entry; 0 = no limit.
    pub const NEW_FLOW_LIMIT: u32 = 1;
    pub const COUNT: u32 = 2;
}

/// Per-CPU state of the flood guard (`lb_flood`, not pinned).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FloodWindow {
    /// Start of the current one-second window (`bpf_ktime_get_coarse_ns`).
    pub start_ns: u64,
    /// New flows recorded in it.
    pub count: u64,
}

/// Bits of `lb_flags[0]`, the data plane's global switches (set by user space).
pub mod global_flags {
    /// A NAT service is programmed: packets not for a VIP may be NAT replies.
    pub const NAT: u32 = 1;
    /// Flow-state sync is on: new connection-table and NAT entries are reported in
    /// `lb_sync_events` ([`super::LearnedFlow`]). Off, the new-flow path costs one bit test.
    pub const SYNC: u32 = 2;
    /// `lb_strict_vips` holds a VIP in no-accept mode. Off, a frame that passes to the
    /// kernel costs one bit test more, no header read or lookup.
    pub const STRICT: u32 = 4;
}

/// Bytes of the `lb_sync_events` ring buffer (a power of two, a multiple of the page
/// size): 16384 records of [`LearnedFlow`] (64 bytes + the kernel's 8-byte header).
pub const SYNC_EVENTS_BYTES: u32 = 1 << 20;

/// What a [`LearnedFlow`] reports.
pub mod learned_kind {
    /// A new `lb_conntrack` entry: `flow` -> `backend`.
    pub const CONNTRACK: u8 = 1;
    /// A new NAT connection: `flow` (the client's packet) -> `backend`, its source
    /// translated to `xsrc`:`xsport` (the client itself without `snat_address`).
    pub const NAT: u8 = 2;
}

/// A record of `lb_sync_events`: a flow the data plane just scheduled, for the daemon to
/// send to its sync peers. The backend is this node's id: the daemon names it by its
/// service and address before anything leaves the node.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct LearnedFlow {
    /// The table key (`lb_conntrack`'s, or the client-side `lb_nat` key).
    pub flow: FlowKey,
    /// NAT: the source the real sees.
    pub xsrc: Addr,
    pub backend: u32,
    /// NAT: the source port the real sees (network byte order).
    pub xsport: u16,
    /// [`learned_kind`].
    pub kind: u8,
    pub pad: u8,
}

/// Direction of a [`NatEntry`].
pub mod nat_dir {
    /// Keyed by the client's packet to the VIP; rewrites it towards the real.
    pub const TO_REAL: u8 = 0;
    /// Keyed by the real's reply; rewrites it back to come from the VIP.
    pub const TO_CLIENT: u8 = 1;
}

/// Connection state of a [`NatEntry`], as the data plane sees it (both directions).
/// User space expires entries by state (`lvs_timeouts`) and removes both directions.
pub mod nat_state {
    /// TCP: only a SYN seen so far.
    pub const SYN: u8 = 1;
    pub const ESTABLISHED: u8 = 2;
    /// TCP: a FIN seen in either direction.
    pub const FIN: u8 = 3;
    /// TCP: an RST seen.
    pub const CLOSED: u8 = 4;
    /// UDP: no states, only the idle timeout.
    pub const UDP: u8 = 5;
}

/// Value of `lb_nat` (key: a [`FlowKey`] as the packet arrives): how to rewrite it.
/// A NAT'ed connection has two entries, one per direction; each names the other's
/// key implicitly (its rewritten tuple, reversed).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct NatEntry {
    /// The packet's new source and destination (network byte order).
    pub src: Addr,
    pub dst: Addr,
    pub sport: u16,
    pub dport: u16,
    /// The real server (its egress for [`nat_dir::TO_REAL`]).
    pub backend: u32,
    /// [`Backend::generation`] when the entry was made.
    pub generation: u32,
    /// [`nat_dir`].
    pub direction: u8,
    /// [`nat_state`].
    pub state: u8,
    pub pad: u16,
    /// `bpf_ktime_get_coarse_ns()` of the last packet.
    pub last_seen_ns: u64,
    /// [`nat_dir::TO_CLIENT`]: the route to the client from the kernel's FIB, cached
    /// so that a reply costs no FIB lookup; looked up again once older than
    /// [`NAT_HOP_TTL_NS`]. `hop_ifindex == 0`: none yet.
    pub hop_dmac: [u8; 6],
    pub hop_smac: [u8; 6],
    pub hop_ifindex: u32,
    pub hop_checked_ns: u64,
}

/// How long a NAT reply's cached route ([`NatEntry::hop_ifindex`]) is trusted.
pub const NAT_HOP_TTL_NS: u64 = 1_000_000_000;

/// Value of `lb_nat_reals` (key: the real's address, port, protocol, family as a
/// [`ServiceKey`]): the VIP a reply from that real comes from when it has no
/// translation entry (NAT table full, or after a failover). Only for reals that serve
/// exactly one NAT service without `snat_address`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct NatReal {
    pub vip: Addr,
    /// Network byte order.
    pub vport: u16,
    pub pad: u16,
    /// Service id (stats index).
    pub service: u32,
}

/// Key of `lb_neigh_miss`: a next hop `bpf_fib_lookup` found no neighbour entry for.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct NeighMiss {
    pub addr: Addr,
    pub ifindex: u32,
    pub family: u8,
    pub pad: [u8; 3],
}

/// Key of `lb_strict_vips`: a VIP of a VRRP instance in no-accept mode (keepalived's
/// `vrrp_strict` / `no_accept`) while it is MASTER. The value (a `u8`) is unused.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct StrictVip {
    pub addr: Addr,
    pub family: u8,
    pub pad: [u8; 3],
}

/// An entry of `lb_local_macs`, in slot `ifindex % LOCAL_MAC_SLOTS`: the destination
/// MACs a frame to a VIP may carry on that interface (its own, and those of the devices
/// stacked on it: a bridge it is a port of, macvlans such as keepalived's VMACs). A
/// frame to any other MAC is another host's, flooded here by a switch. `count` 0, or
/// another interface's `ifindex` in the slot: no check.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct LocalMacs {
    pub ifindex: u32,
    pub count: u32,
    pub macs: [[u8; 6]; LOCAL_MACS_PER_INTERFACE],
}

/// MACs one `lb_local_macs` entry holds; an interface with more gets no check.
pub const LOCAL_MACS_PER_INTERFACE: usize = 4;

/// Packets and bytes, per CPU, for `lb_service_stats` and `lb_backend_stats`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Traffic {
    pub packets: u64,
    pub bytes: u64,
}

/// Global counters: indexes into the per-CPU `lb_stats` array.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    VerdictPass = 0,
    VerdictTx = 1,
    VerdictDrop = 2,
    VerdictAborted = 3,
    ConntrackHit = 4,
    ConntrackMiss = 5,
    /// A VIP packet whose service has no backend with weight > 0: dropped.
    NoBackend = 6,
    /// Shorter than an Ethernet header (or its VLAN tag): dropped.
    TruncatedEth = 7,
    /// IPv4 header cut short, or a TCP/UDP datagram whose total length runs past the
    /// frame: dropped.
    TruncatedIpv4 = 8,
    /// IPv6 header cut short, or a TCP/UDP datagram whose payload length runs past the
    /// frame: dropped.
    TruncatedIpv6 = 9,
    /// TCP/UDP header cut short by the frame or by the datagram's own length: dropped.
    TruncatedL4 = 10,
    /// IHL < 5, total length shorter than the header, or a version mismatch: dropped.
    MalformedIpv4 = 11,
    /// IPv4 with options: parsed past and load-balanced normally (counted).
    Ipv4Options = 12,
    /// IPv4 fragment: passed to the kernel (no ports to hash on).
    Ipv4Fragment = 13,
    /// IPv6 with a fragment header: passed to the kernel.
    Ipv6Fragment = 14,
    /// IPv6 with other extension headers first: passed to the kernel.
    Ipv6ExtHeader = 15,
    /// Sent out of another interface than the one it came in on.
    VerdictRedirect = 16,
    /// `bpf_xdp_adjust_head` failed, or the backend's family cannot carry the packet:
    /// dropped.
    EncapFailed = 17,
    /// A connection-table hit whose backend was removed or changed: re-hashed.
    ConntrackStale = 18,
    /// A connection-table hit older than the service timeout: re-hashed.
    ConntrackExpired = 19,
    /// A backend id from the ring that is not an active backend: dropped.
    BadBackend = 20,
    /// Packets for a VIP (service matched).
    VipPackets = 21,
    /// Tunnel packets stripped by `lb_decap` (backends of TUN services).
    Decapsulated = 22,
    /// Client packets rewritten towards a real server (NAT).
    NatToReal = 23,
    /// Replies rewritten back to come from the VIP (NAT).
    NatToClient = 24,
    /// A new NAT'ed flow found the NAT table full: translated without state (its
    /// replies use `lb_nat_reals`), or dropped for a full-NAT service.
    NatTableFull = 25,
    /// A reply translated from `lb_nat_reals` (no translation entry).
    NatStatelessReply = 26,
    /// Full-NAT found no free source port for a new flow: dropped.
    SnatPortsExhausted = 27,
    /// ICMP errors about a NAT'ed flow, translated.
    IcmpTranslated = 28,
    /// A NAT reply whose next hop has no neighbour entry yet: dropped, and the next
    /// hop queued in `lb_neigh_miss` for user space to resolve.
    FibNoNeigh = 29,
    /// A NAT reply the routing table cannot forward (no route, forwarding disabled on
    /// the interface, ...): dropped.
    FibFailed = 30,
    /// A new DR/TUN flow above the flood guard's rate (`new_flow_limit` per CPU per
    /// second): forwarded by Maglev without a connection-table entry.
    FloodGuard = 31,
    /// A new flow flow-state sync could not report (`lb_sync_events` full: the daemon
    /// is behind): the flow is forwarded, only its peers do not learn it.
    SyncLost = 32,
    /// A frame for a NAT VIP whose tuple is a reply entry's key (its source is the VIP
    /// itself: spoofed): dropped, never translated back towards the VIP.
    NatMisdirected = 33,
    /// A frame to a VIP in no-accept mode (keepalived's `vrrp_strict` / `no_accept`)
    /// that no service takes (not VRRP, not neighbour discovery): dropped.
    VipStrictDrop = 34,
    /// A frame to a VIP whose destination MAC is not the receiving interface's (a frame
    /// a switch flooded to every port, meant for another node): passed to the kernel,
    /// which discards it as addressed to another host, never forwarded.
    VipOtherHost = 35,
}

impl Counter {
    pub const COUNT: u32 = 36;

    /// The counter at index `i` of [`Counter::ALL`].
    #[inline(always)]
    pub fn from_index(i: u32) -> Option<Counter> {
        if i < Self::COUNT {
            Some(Self::ALL[i as usize].0)
        } else {
            None
        }
    }
    /// Every counter with its name (metrics label / docs name), in index order.
    pub const ALL: [(Counter, &'static str); Self::COUNT as usize] = [
        (Counter::VerdictPass, "verdict_pass"),
        (Counter::VerdictTx, "verdict_tx"),
        (Counter::VerdictDrop, "verdict_drop"),
        (Counter::VerdictAborted, "verdict_aborted"),
        (Counter::ConntrackHit, "conntrack_hit"),
        (Counter::ConntrackMiss, "conntrack_miss"),
        (Counter::NoBackend, "no_backend"),
        (Counter::TruncatedEth, "truncated_eth"),
        (Counter::TruncatedIpv4, "truncated_ipv4"),
        (Counter::TruncatedIpv6, "truncated_ipv6"),
        (Counter::TruncatedL4, "truncated_l4"),
        (Counter::MalformedIpv4, "malformed_ipv4"),
        (Counter::Ipv4Options, "ipv4_options"),
        (Counter::Ipv4Fragment, "ipv4_fragment"),
        (Counter::Ipv6Fragment, "ipv6_fragment"),
        (Counter::Ipv6ExtHeader, "ipv6_ext_header"),
        (Counter::VerdictRedirect, "verdict_redirect"),
        (Counter::EncapFailed, "encap_failed"),
        (Counter::ConntrackStale, "conntrack_stale"),
        (Counter::ConntrackExpired, "conntrack_expired"),
        (Counter::BadBackend, "bad_backend"),
        (Counter::VipPackets, "vip_packets"),
        (Counter::Decapsulated, "decapsulated"),
        (Counter::NatToReal, "nat_to_real"),
        (Counter::NatToClient, "nat_to_client"),
        (Counter::NatTableFull, "nat_table_full"),
        (Counter::NatStatelessReply, "nat_stateless_reply"),
        (Counter::SnatPortsExhausted, "snat_ports_exhausted"),
        (Counter::IcmpTranslated, "icmp_translated"),
        (Counter::FibNoNeigh, "fib_no_neigh"),
        (Counter::FibFailed, "fib_failed"),
        (Counter::FloodGuard, "flood_guard"),
        (Counter::SyncLost, "sync_lost"),
        (Counter::NatMisdirected, "nat_misdirected"),
        (Counter::VipStrictDrop, "vip_strict_drop"),
        (Counter::VipOtherHost, "vip_other_host"),
    ];
}

// The layouts are ABI between kernel and user space: any change must be deliberate.
const _: () = {
    assert!(core::mem::size_of::<ServiceKey>() == 20);
    assert!(core::mem::size_of::<ServiceInfo>() == 40);
    assert!(core::mem::size_of::<Backend>() == 60);
    assert!(core::mem::size_of::<FlowKey>() == 40);
    assert!(core::mem::size_of::<Conn>() == 16);
    assert!(core::mem::size_of::<Traffic>() == 16);
    assert!(core::mem::size_of::<NatEntry>() == 80);
    assert!(core::mem::size_of::<NatReal>() == 24);
    assert!(core::mem::size_of::<NeighMiss>() == 24);
    assert!(core::mem::size_of::<BenchFrame>() == 96);
    assert!(core::mem::size_of::<FloodWindow>() == 16);
    assert!(core::mem::size_of::<LearnedFlow>() == 64);
    assert!(core::mem::size_of::<StrictVip>() == 20);
    assert!(core::mem::size_of::<LocalMacs>() == 32);
    assert!(core::mem::size_of::<VrrpQuiet>() == 192);
    // The filter masks lengths with PAYLOAD_MAX - 1.
    assert!(vrrp_quiet::PAYLOAD_MAX.is_power_of_two());
};

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all of these are #[repr(C)], padding-free and valid for any bit pattern.
    unsafe impl aya::Pod for super::ServiceKey {}
    unsafe impl aya::Pod for super::ServiceInfo {}
    unsafe impl aya::Pod for super::Backend {}
    unsafe impl aya::Pod for super::FlowKey {}
    unsafe impl aya::Pod for super::Conn {}
    unsafe impl aya::Pod for super::Traffic {}
    unsafe impl aya::Pod for super::NatEntry {}
    unsafe impl aya::Pod for super::NatReal {}
    unsafe impl aya::Pod for super::NeighMiss {}
    unsafe impl aya::Pod for super::StrictVip {}
    unsafe impl aya::Pod for super::LocalMacs {}
    unsafe impl aya::Pod for super::BenchFrame {}
    unsafe impl aya::Pod for super::LearnedFlow {}
    unsafe impl aya::Pod for super::VrrpQuiet {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(a: [u8; 4]) -> Addr {
        [u32::from_ne_bytes(a), 0, 0, 0]
    }

    #[test]
    fn persistence_client_clears_the_host_bits() {
        let a = v4([192, 0, 2, 77]);
        assert_eq!(persistence_client(&a, FAMILY_V4, 0), a);
        assert_eq!(persistence_client(&a, FAMILY_V4, 8), v4([192, 0, 2, 0]));
        assert_eq!(persistence_client(&a, FAMILY_V4, 12), v4([192, 0, 0, 0]));
        assert_eq!(persistence_client(&a, FAMILY_V4, 32), v4([0, 0, 0, 0]));
        assert_eq!(persistence_client(&a, FAMILY_V4, 40), v4([0, 0, 0, 0]));
        // 2001:db8:1:2:3:4:5:6 /64 and /56.
        let words = |w: [u16; 8]| -> Addr {
            let mut out = [0u32; 4];
            for (i, o) in out.iter_mut().enumerate() {
                let hi = w[2 * i].to_be_bytes();
                let lo = w[2 * i + 1].to_be_bytes();
                *o = u32::from_ne_bytes([hi[0], hi[1], lo[0], lo[1]]);
            }
            out
        };
        let b = words([0x2001, 0xdb8, 1, 2, 3, 4, 5, 6]);
        assert_eq!(
            persistence_client(&b, FAMILY_V6, 64),
            words([0x2001, 0xdb8, 1, 2, 0, 0, 0, 0])
        );
        assert_eq!(
            persistence_client(&b, FAMILY_V6, 72),
            words([0x2001, 0xdb8, 1, 0, 0, 0, 0, 0])
        );
    }
}
