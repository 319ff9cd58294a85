//! Assembling a [`Snapshot`] from the running parts: VRRP instance statuses and health
//! statuses (live, through watch channels) and the data plane's counters (refreshed every
//! second from the data-plane owner, which alone touches the maps).

use std::{
    collections::{BTreeMap, HashMap},
    net::IpAddr,
    sync::{atomic::Ordering, Arc, Mutex, RwLock},
    time::{Duration, UNIX_EPOCH},
};

use tokio::sync::{mpsc, oneshot, watch};

use super::{
    dataplane_owner::Msg,
    snapshot::{
        AttachmentSnapshot, BackendSnapshot, BgpSnapshot, ConnFilterSnapshot, EmailCounters,
        FifoCounters, HealthCounters, HeartbeatPathSnapshot, InstanceSnapshot, ServiceSnapshot,
        Snapshot, TableSnapshot,
    },
};
use crate::{
    alerts::Alerts,
    config::Config,
    dataplane,
    health::runner::{self, Counters, ServiceStatus},
    vrrp::instance::InstanceStatus,
};

/// Forwarding methods as status shows them: each service's (`DR`, `TUN`, `NAT`), and
/// a real's own where it differs from its service's (keepalived's per-real
/// `lvs_method`, which the IPVS plane implements).
#[derive(Debug, Default, PartialEq, Eq)]
struct LbKinds {
    services: HashMap<dataplane::ServiceId, String>,
    reals: HashMap<(dataplane::ServiceId, IpAddr, u16), String>,
}

impl LbKinds {
    fn of(config: &Config) -> LbKinds {
        let name = |k: &crate::config::LbKind| format!("{k:?}").to_uppercase();
        let mut kinds = LbKinds::default();
        for vs in &config.virtual_servers {
            let id = dataplane::from_config::service_id(vs);
            kinds.services.insert(id, name(&vs.lb_kind));
            for r in vs.real_servers.iter().filter(|r| r.lb_kind != vs.lb_kind) {
                kinds
                    .reals
                    .insert((id, r.address, r.port), name(&r.lb_kind));
            }
        }
        kinds
    }
}

/// The data plane's side, as last fetched.
#[derive(Default)]
struct DataplaneView {
    services: Vec<dataplane::ServiceStatus>,
    counters: Vec<(String, u64)>,
    usage: dataplane::PlaneUsage,
}

#[derive(Clone)]
pub struct View {
    router_id: String,
    dataplane: String,
    /// Each service's forwarding method, and the reals' own where it differs (IPVS).
    lb_kinds: Arc<LbKinds>,
    instances: Vec<watch::Receiver<InstanceStatus>>,
    health: Vec<watch::Receiver<ServiceStatus>>,
    health_counters: Arc<Counters>,
    dp: Arc<Mutex<DataplaneView>>,
    /// The announcer's status, when some VIP is announced by BGP.
    bgp: Option<Arc<RwLock<BgpSnapshot>>>,
    alerts: Alerts,
    /// Flow-state sync's counters, when `[sync]` is configured.
    sync: Option<Arc<crate::sync::task::SyncStats>>,
    /// The BFD sessions' states and counters.
    bfd: Option<watch::Receiver<crate::bfd::session::Snapshot>>,
}

impl View {
    pub fn new(
        config: &Config,
        dataplane: &str,
        instances: Vec<watch::Receiver<InstanceStatus>>,
        health: Vec<watch::Receiver<ServiceStatus>>,
        health_counters: Arc<Counters>,
    ) -> View {
        let router_id = config.global.router_id.clone().unwrap_or_else(|| {
            // keepalived's default router_id: the host name.
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_default()
        });
        View {
            router_id,
            dataplane: dataplane.to_string(),
            lb_kinds: Arc::new(LbKinds::of(config)),
            instances,
            health,
            health_counters,
            dp: Arc::default(),
            bgp: None,
            alerts: Alerts::default(),
            sync: None,
            bfd: None,
        }
    }

    /// Shows the BFD sessions too.
    pub fn with_bfd(mut self, bfd: watch::Receiver<crate::bfd::session::Snapshot>) -> View {
        self.bfd = Some(bfd);
        self
    }

    /// Counts the e-mail alerts and notify-FIFO lines too.
    pub fn with_alerts(mut self, alerts: Alerts) -> View {
        self.alerts = alerts;
        self
    }

    /// Shows the announcer's status too.
    pub fn with_bgp(mut self, bgp: Option<Arc<RwLock<BgpSnapshot>>>) -> View {
        self.bgp = bgp;
        self
    }

    pub fn with_sync(mut self, sync: Option<Arc<crate::sync::task::SyncStats>>) -> View {
        self.sync = sync;
        self
    }

    /// Fetches the data plane's counters every second (and once at once).
    pub fn spawn_refresher(&self, owner: mpsc::UnboundedSender<Msg>) {
        let dp = Arc::clone(&self.dp);
        tokio::spawn(async move {
            loop {
                let (stx, srx) = oneshot::channel();
                let (ctx, crx) = oneshot::channel();
                let (utx, urx) = oneshot::channel();
                if owner.send(Msg::Status { reply: stx }).is_err()
                    || owner.send(Msg::Counters { reply: ctx }).is_err()
                    || owner.send(Msg::Usage { reply: utx }).is_err()
                {
                    return;
                }
                if let (Ok(services), Ok(counters), Ok(usage)) = (srx.await, crx.await, urx.await) {
                    if let Ok(mut v) = dp.lock() {
                        *v = DataplaneView {
                            services,
                            counters,
                            usage,
                        };
                    }
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }

    pub fn snapshot(&self) -> Snapshot {
        let dp = self
            .dp
            .lock()
            .map(|v| (v.services.clone(), v.counters.clone(), v.usage.clone()));
        let (dp_services, dp_counters, usage) = dp.unwrap_or_default();
        Snapshot {
            router_id: self.router_id.clone(),
            dataplane: self.dataplane.clone(),
            instances: self
                .instances
                .iter()
                .map(|rx| instance(&rx.borrow()))
                .collect(),
            services: self
                .health
                .iter()
                .map(|rx| self.service(&rx.borrow(), &dp_services))
                .collect(),
            dataplane_drops: drops(&dp_counters),
            health: health_counters(&self.health_counters),
            bgp: self
                .bgp
                .as_ref()
                .and_then(|b| b.read().ok().map(|s| s.clone())),
            sync: self.sync.as_ref().map(|s| s.snapshot()),
            bfd: self
                .bfd
                .as_ref()
                .map(|rx| rx.borrow().sessions.iter().map(bfd_session).collect())
                .unwrap_or_default(),
            bfd_drops: self
                .bfd
                .as_ref()
                .filter(|rx| !rx.borrow().sessions.is_empty())
                .map(|rx| bfd_drops(&rx.borrow()))
                .unwrap_or_default(),
            tables: usage
                .tables
                .iter()
                .map(|t| TableSnapshot {
                    table: t.table.to_string(),
                    entries: t.entries,
                    capacity: t.capacity,
                })
                .collect(),
            // Before its first rebuild the program does not consult it.
            conn_filter: usage
                .conn_filter
                .filter(|f| f.trusted && f.bits > 0)
                .map(|f| ConnFilterSnapshot {
                    bits_set: f.bits_set,
                    bits: f.bits,
                }),
            xdp_attachments: usage
                .attached
                .iter()
                .map(|(interface, mode)| AttachmentSnapshot {
                    interface: interface.clone(),
                    mode: mode.name().to_string(),
                })
                .collect(),
            notify_fifo: self
                .alerts
                .fifos
                .as_ref()
                .map(|f| {
                    let (written, dropped) = f.counts();
                    FifoCounters { written, dropped }
                })
                .unwrap_or_default(),
            email: self
                .alerts
                .mailer
                .as_ref()
                .map(|m| {
                    let c = m.counters();
                    EmailCounters {
                        sent: c.sent.load(Ordering::Relaxed),
                        failed: c.failed.load(Ordering::Relaxed),
                        dropped: c.dropped.load(Ordering::Relaxed),
                    }
                })
                .unwrap_or_default(),
        }
    }

    fn service(&self, s: &ServiceStatus, dp: &[dataplane::ServiceStatus]) -> ServiceSnapshot {
        let programmed = dp
            .iter()
            .find(|d| d.id.vip == s.service.vip && d.id.port == s.service.port);
        let backend = |addr: IpAddr, port: u16| {
            programmed.and_then(|p| p.backends.iter().find(|b| b.addr == addr && b.port == port))
        };
        ServiceSnapshot {
            address: s.service.vip.to_string(),
            port: s.service.port,
            protocol: format!("{:?}", s.service.protocol).to_uppercase(),
            lb_kind: self
                .lb_kinds
                .services
                .get(&s.service)
                .cloned()
                .unwrap_or_default(),
            quorum_up: s.quorum_up,
            packets: programmed.map(|p| p.traffic.packets).unwrap_or(0),
            bytes: programmed.map(|p| p.traffic.bytes).unwrap_or(0),
            nat_connections: programmed.and_then(|p| p.nat_connections),
            backends: s
                .reals
                .iter()
                .map(|r| {
                    let b = backend(r.address, r.port);
                    BackendSnapshot {
                        address: r.address.to_string(),
                        port: r.port,
                        weight: r.weight,
                        healthy: r.healthy,
                        last_check: r.last_result.clone(),
                        packets: b.map_or(0, |b| b.traffic.packets),
                        bytes: b.map_or(0, |b| b.traffic.bytes),
                        connections: b.and_then(|b| b.connections),
                        forwarding_weight: programmed.map(|_| b.map_or(0, |b| b.weight)),
                        lb_kind: self
                            .lb_kinds
                            .reals
                            .get(&(s.service, r.address, r.port))
                            .cloned(),
                    }
                })
                .collect(),
        }
    }
}

fn instance(s: &InstanceStatus) -> InstanceSnapshot {
    InstanceSnapshot {
        name: s.name.clone(),
        state: s.state.to_string(),
        state_code: s.state.metric(),
        priority_effective: s.effective_priority,
        priority_configured: s.base_priority,
        master: s.master.map(|m| m.to_string()),
        last_transition_unix: s
            .last_transition
            .as_ref()
            .and_then(|(t, _)| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_secs()),
        last_transition_reason: s.last_transition.as_ref().map(|(_, r)| r.clone()),
        transitions: s.transitions,
        adverts_received: s.adverts_received_total(),
        adverts_filtered: s.adverts_taken.in_kernel(),
        adverts_sent: s.adverts_sent,
        adverts_dropped: s.drops.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        split_brain: s.split_brain.clone(),
        split_brain_total: s.split_brain_episodes,
        foreign_master_adverts: s.foreign_master_adverts,
        held: s.held,
        heartbeat_paths: s
            .paths
            .iter()
            .map(|p| HeartbeatPathSnapshot {
                path: p.name.clone(),
                up: p.up,
                lost: p.lost,
            })
            .collect(),
    }
}

/// The data plane's drop counters by reason.
fn drops(counters: &[(String, u64)]) -> BTreeMap<String, u64> {
    const DROPS: [&str; 12] = [
        "no_backend",
        "truncated_eth",
        "truncated_ipv4",
        "truncated_ipv6",
        "truncated_l4",
        "malformed_ipv4",
        "encap_failed",
        "bad_backend",
        "verdict_drop",
        // The data path's rare events (no aya-log: these counters are how they surface).
        "nat_table_full",
        "snat_ports_exhausted",
        "fib_no_neigh",
    ];
    counters
        .iter()
        .filter(|(name, _)| DROPS.contains(&name.as_str()))
        .map(|(n, v)| (n.clone(), *v))
        .collect()
}

fn health_counters(c: &Counters) -> HealthCounters {
    HealthCounters {
        checks: c.checks.load(Ordering::Relaxed),
        failures: c.failures.load(Ordering::Relaxed),
        verdict_changes: c.verdict_changes.load(Ordering::Relaxed),
        duration_buckets: runner::DURATION_BUCKETS
            .iter()
            .zip(c.duration_buckets.iter())
            .map(|(b, n)| (*b, n.load(Ordering::Relaxed)))
            .collect(),
        duration_sum_seconds: c.duration_sum_us.load(Ordering::Relaxed) as f64 / 1e6,
    }
}

fn bfd_session(s: &crate::bfd::session::SessionStatus) -> super::snapshot::BfdSessionSnapshot {
    super::snapshot::BfdSessionSnapshot {
        name: s.name.clone(),
        neighbor: s.neighbor.to_string(),
        state: s.state.name().to_string(),
        state_code: s.state.code(),
        remote_discriminator: s.remote_discr,
        tx_interval_us: s.tx_interval_us,
        rx_interval_us: s.rx_interval_us,
        detection_time_us: s.detection_time_us,
        last_down: s
            .last_down
            .map(|d| d.label().to_string())
            .unwrap_or_default(),
        transitions: s.transitions,
        packets_in: s.packets_in,
        packets_out: s.packets_out,
    }
}

/// Every drop reason, zeros included (a counter that appears only on its first drop
/// breaks `rate()`).
fn bfd_drops(s: &crate::bfd::session::Snapshot) -> BTreeMap<String, u64> {
    crate::bfd::packet::DropReason::ALL
        .iter()
        .map(|r| {
            let label = r.label();
            (label.to_string(), s.drops.get(label).copied().unwrap_or(0))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_real_with_its_own_method_is_named_beside_its_service_s() {
        let text = "[global]\ndataplane = \"ipvs\"\n\
            [[virtual_server]]\naddress = \"198.18.0.100\"\nport = 80\nlb_kind = \"DR\"\n\
            [[virtual_server.real_server]]\naddress = \"198.18.0.21\"\n\
            [[virtual_server.real_server]]\naddress = \"198.18.0.22\"\nport = 8080\nlb_kind = \"NAT\"\n\
            [[virtual_server]]\naddress = \"198.18.0.100\"\nport = 80\nprotocol = \"UDP\"\nlb_kind = \"TUN\"\n\
            [[virtual_server.real_server]]\naddress = \"198.18.0.21\"\n";
        let config = Config::from_str(text, "lb.toml").expect("valid").config;
        let kinds = LbKinds::of(&config);
        let id = |protocol| dataplane::ServiceId {
            vip: "198.18.0.100".parse().expect("ip"),
            port: 80,
            protocol,
        };
        // TCP and UDP on the same address and port keep their own methods.
        assert_eq!(kinds.services[&id(dataplane::Protocol::Tcp)], "DR");
        assert_eq!(kinds.services[&id(dataplane::Protocol::Udp)], "TUN");
        let reals: Vec<_> = kinds.reals.iter().collect();
        assert_eq!(
            reals,
            [(
                &(
                    id(dataplane::Protocol::Tcp),
                    "198.18.0.22".parse().expect("ip"),
                    8080
                ),
                &"NAT".to_string()
            )]
        );
    }
}
