//! A point-in-time view of the whole daemon, for `lb-daemon status`, the control socket
//! and the Prometheus metrics. Built by the daemon from its parts; plain data.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use crate::sync::task::{PeerSnapshot as SyncPeerSnapshot, SyncSnapshot};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub router_id: String,
    /// "xdp", "ipvs" or "none" (VRRP / health checks only).
    pub dataplane: String,
    pub instances: Vec<InstanceSnapshot>,
    pub services: Vec<ServiceSnapshot>,
    /// Data-plane drop counters by reason (`lb_dataplane_drops_total{reason}`).
    pub dataplane_drops: BTreeMap<String, u64>,
    pub health: HealthCounters,
    /// Present when some virtual server is announced by BGP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bgp: Option<BgpSnapshot>,
    /// The data plane's flow tables (XDP): entries and capacity.
    #[serde(default)]
    pub tables: Vec<TableSnapshot>,
    /// Interfaces the XDP program is attached to, and in which mode.
    #[serde(default)]
    pub xdp_attachments: Vec<AttachmentSnapshot>,
    /// The connection-table filter, once trusted (XDP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conn_filter: Option<ConnFilterSnapshot>,
    /// E-mail alerts (keepalived's `smtp_alert`): what became of them.
    #[serde(default)]
    pub email: EmailCounters,
    /// Notify FIFOs: lines written, and dropped because a FIFO was full.
    #[serde(default)]
    pub notify_fifo: FifoCounters,
    /// Flow-state sync (`[sync]`), when configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync: Option<SyncSnapshot>,
    /// The `[[bfd_instance]]` sessions.
    #[serde(default)]
    pub bfd: Vec<BfdSessionSnapshot>,
    /// BFD packets dropped, by reason (every reason, zeros included, when BFD runs).
    #[serde(default)]
    pub bfd_drops: BTreeMap<String, u64>,
}

/// One BFD session (docs/bfd.md).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BfdSessionSnapshot {
    pub name: String,
    pub neighbor: String,
    /// RFC 5880's name: AdminDown, Down, Init, Up.
    pub state: String,
    /// RFC 5880's code: 0 AdminDown, 1 Down, 2 Init, 3 Up.
    pub state_code: u8,
    /// The neighbor's discriminator (0 until heard).
    pub remote_discriminator: u32,
    /// Negotiated TX interval (none while passive and unheard).
    pub tx_interval_us: Option<u32>,
    pub rx_interval_us: u32,
    /// Detection time (none until the neighbor is heard).
    pub detection_time_us: Option<u64>,
    /// Why the session last went down (RFC 5880 diagnostic, snake_case); empty: never.
    pub last_down: String,
    pub transitions: u64,
    pub packets_in: u64,
    pub packets_out: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FifoCounters {
    pub written: u64,
    pub dropped: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailCounters {
    pub sent: u64,
    /// The SMTP server refused, timed out or could not be reached.
    pub failed: u64,
    /// The queue was full (a slow or dead SMTP server).
    pub dropped: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSnapshot {
    /// "conntrack" or "nat".
    pub table: String,
    pub entries: u64,
    pub capacity: u64,
}

/// The active bitmap of the connection-table filter (docs/dataplane.md).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnFilterSnapshot {
    pub bits_set: u64,
    pub bits: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentSnapshot {
    pub interface: String,
    /// "native" or "generic" (the kernel's slower SKB path).
    pub mode: String,
}

/// Active-active announcement: the VIPs, the drain and BIRD's sessions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BgpSnapshot {
    /// The dummy link holding the announced VIPs.
    pub interface: String,
    /// "ok" or "unreachable: <error>".
    pub bird: String,
    pub sessions: Vec<BgpSessionSnapshot>,
    /// Drained by the operator (`lb-daemon drain`): every VIP withdrawn.
    pub drained: bool,
    /// The drain's progress ("draining for 2.0s ...", "drained: ...").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain: Option<String>,
    pub vips: Vec<VipSnapshot>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BgpSessionSnapshot {
    /// The protocol's name in bird.conf.
    pub name: String,
    pub up: bool,
    /// BIRD's words: `Established`, `Active  Socket: Connection refused`, ...
    pub info: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VipSnapshot {
    pub vip: String,
    pub announced: bool,
    /// `announced` or `withdrawn: drained|not programmed|below quorum|hold-down (Ns left)`.
    pub state: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceSnapshot {
    pub name: String,
    /// INIT, BACKUP, MASTER or FAULT.
    pub state: String,
    /// 0 init, 1 backup, 2 master, 3 fault (`lb_vrrp_state`).
    pub state_code: u8,
    pub priority_effective: u8,
    pub priority_configured: u8,
    /// Address of the current master, if known.
    pub master: Option<String>,
    /// Unix time (seconds) and reason of the last transition.
    pub last_transition_unix: Option<u64>,
    pub last_transition_reason: Option<String>,
    pub transitions: u64,
    pub adverts_received: u64,
    /// Of `adverts_received`, those the kernel's advert filter took
    /// (`lb_vrrp_adverts_filtered_total`).
    #[serde(default)]
    pub adverts_filtered: u64,
    pub adverts_sent: u64,
    /// Dropped adverts by reason (`lb_vrrp_adverts_dropped_total{reason}`).
    pub adverts_dropped: BTreeMap<String, u64>,
    /// The split-brain episode going on (`lb_vrrp_split_brain`): the other node holding
    /// our VIPs, as far as known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_brain: Option<String>,
    /// Split-brain episodes since start (`lb_vrrp_split_brain_total`).
    #[serde(default)]
    pub split_brain_total: u64,
    /// Adverts from another MASTER while MASTER (`lb_vrrp_foreign_master_adverts_total`).
    #[serde(default)]
    pub foreign_master_adverts: u64,
    /// Holding BACKUP after a split-brain step-down.
    #[serde(default)]
    pub held: bool,
    /// With `heartbeat_paths`: every path, the instance's interface first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub heartbeat_paths: Vec<HeartbeatPathSnapshot>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatPathSnapshot {
    /// The interface the path goes over.
    pub path: String,
    /// Delivers adverts (`lb_vrrp_heartbeat_path_up`).
    pub up: bool,
    /// Times lost (`lb_vrrp_heartbeat_path_lost_total`).
    pub lost: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSnapshot {
    pub address: String,
    pub port: u16,
    /// TCP or UDP.
    pub protocol: String,
    /// DR, TUN or NAT.
    pub lb_kind: String,
    pub quorum_up: bool,
    pub packets: u64,
    pub bytes: u64,
    /// NAT: connections in the translation table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nat_connections: Option<u64>,
    pub backends: Vec<BackendSnapshot>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendSnapshot {
    pub address: String,
    pub port: u16,
    pub weight: u32,
    pub healthy: bool,
    /// The last check's result ("connected", "status 503", ...).
    pub last_check: Option<String>,
    pub packets: u64,
    pub bytes: u64,
    /// Connections it serves now (NAT translations, DR/TUN connection-table entries
    /// recently seen, IPVS's ActiveConn); `None` when the plane does not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<u64>,
    /// The weight the data plane gives it for new connections now (XDP: its weight in
    /// the programmed Maglev table; IPVS: the kernel's weight), 0 once health checking
    /// took it out; `None` while the service is not programmed. Read from the plane
    /// every second, so it follows `healthy` within about a second: what `ipvsadm -Ln`
    /// shows as Weight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forwarding_weight: Option<u32>,
    /// Its own forwarding method where it differs from the service's (a real's
    /// `lb_kind` / keepalived's per-real `lvs_method`, on IPVS); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lb_kind: Option<String>,
}

/// Health-check counters (`lb_healthcheck_duration_seconds` histogram and totals).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HealthCounters {
    pub checks: u64,
    pub failures: u64,
    pub verdict_changes: u64,
    /// (upper bound in seconds, cumulative count) per bucket.
    pub duration_buckets: Vec<(f64, u64)>,
    pub duration_sum_seconds: f64,
}

impl Eq for HealthCounters {}
