//! The one task that owns the eBPF maps. Others send it desired state:
//! - health updates (a service's desired backend set),
//! - VRRP gating: before an instance adds its VIPs it asks the owner to attach the
//!   program and program that instance's services (so the node never owns a VIP it
//!   cannot forward for); after it removed them, the services are removed (so it stops
//!   forwarding for a VIP it no longer owns).
//!
//! A virtual server belongs to the VRRP instance whose `virtual_ipaddress` holds its
//! address; a virtual server no instance holds is served whenever the daemon runs.

use std::{
    collections::{HashMap, HashSet},
    net::IpAddr,
    time::Duration,
};

use anyhow::{Context, Result};
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use crate::{
    config::{self, Config},
    dataplane::{
        self, neigh::Neighbours, BackendSpec, Dataplane, ForwardMode, HashMode, Protocol,
        ServiceId, ServiceSpec,
    },
    health::runner::Update,
};

/// How long resolving one backend's next hop may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(1);

pub enum Msg {
    Health(Update),
    /// The instance is about to add its VIPs.
    BecomeMaster {
        instance: String,
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// The instance removed its VIPs.
    LeftMaster {
        instance: String,
    },
    Status {
        reply: oneshot::Sender<Vec<dataplane::ServiceStatus>>,
    },
    /// Counters by name.
    Counters {
        reply: oneshot::Sender<Vec<(String, u64)>>,
    },
    /// A reloaded configuration (its VRRP side unchanged): services are re-derived,
    /// removed ones unprogrammed; the new health checks send fresh desired sets.
    Reconfigure {
        config: Box<Config>,
        reply: oneshot::Sender<()>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
    /// Stop for an upgrade: pin the XDP links, keep the maps pinned, touch nothing else.
    Keep {
        reply: oneshot::Sender<Result<Vec<String>, String>>,
    },
}

/// One virtual server, as the owner needs it.
#[derive(Debug, Clone)]
struct Service {
    vs: config::VirtualServer,
    /// The VRRP instance holding its address (None: always served).
    instance: Option<String>,
    /// Interfaces to attach to when serving.
    interfaces: Vec<String>,
}

pub struct Owner {
    dp: Dataplane,
    neigh: Neighbours,
    services: Vec<Service>,
    desired: HashMap<usize, Vec<crate::health::verdict::DesiredBackend>>,
    masters: HashSet<String>,
}

fn service_id(vs: &config::VirtualServer) -> ServiceId {
    ServiceId {
        vip: vs.address,
        port: vs.port,
        protocol: match vs.protocol {
            config::Protocol::Tcp => Protocol::Tcp,
            config::Protocol::Udp => Protocol::Udp,
        },
    }
}

/// The instance whose virtual_ipaddress holds `addr`.
fn owning_instance(config: &Config, addr: IpAddr) -> Option<&config::VrrpInstance> {
    config
        .vrrp_instances
        .iter()
        .find(|i| i.virtual_ipaddress.iter().any(|v| v.address == addr))
}

impl Owner {
    pub fn new(config: &Config, dp: Dataplane) -> Result<Owner> {
        let neigh = Neighbours::new().context("opening rtnetlink")?;
        Ok(Owner {
            dp,
            neigh,
            services: services_of(config),
            desired: HashMap::new(),
            masters: HashSet::new(),
        })
    }

    fn reconfigure(&mut self, config: &Config) {
        let new = services_of(config);
        let kept: HashSet<ServiceId> = new.iter().map(|s| service_id(&s.vs)).collect();
        for s in &self.services {
            let id = service_id(&s.vs);
            if !kept.contains(&id) && self.dp.service_spec(&id).is_some() {
                match self.dp.remove_service(&id) {
                    Ok(()) => info!(service = %id, "service removed by reload"),
                    Err(e) => warn!(service = %id, error = %e, "removing a service failed"),
                }
            }
        }
        // Desired sets are indexed by position: the new checks resend them.
        self.desired.clear();
        self.services = new;
        self.detach_unused();
    }
}

fn services_of(config: &Config) -> Vec<Service> {
    config
        .virtual_servers
        .iter()
        .map(|vs| {
            let inst = owning_instance(config, vs.address);
            let interfaces = if !vs.interfaces.is_empty() {
                vs.interfaces.clone()
            } else if let Some(i) = inst {
                vec![i.interface.clone()]
            } else {
                Vec::new()
            };
            Service {
                vs: vs.clone(),
                instance: inst.map(|i| i.name.clone()),
                interfaces,
            }
        })
        .collect()
}

impl Owner {
    fn active(&self, s: &Service) -> bool {
        s.instance.as_ref().is_none_or(|i| self.masters.contains(i))
    }

    pub async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Msg>) {
        // A previous daemon stopped with --keep-dataplane: take its XDP links over.
        match self.dp.adopt_links() {
            Ok(ifs) if !ifs.is_empty() => {
                info!(interfaces = ?ifs, "data plane adopted from the previous daemon")
            }
            Ok(_) => {}
            Err(e) => warn!(error = %e, "adopting the previous daemon's XDP links failed"),
        }
        // Pinned maps of a previous run may hold services this configuration dropped.
        let known: HashSet<ServiceId> = self.services.iter().map(|s| service_id(&s.vs)).collect();
        for id in self.dp.service_ids() {
            if !known.contains(&id) {
                match self.dp.remove_service(&id) {
                    Ok(()) => info!(service = %id, "removed a service left by a previous run"),
                    Err(e) => warn!(service = %id, error = %e, "removing a stale service failed"),
                }
            }
        }
        // Services no instance holds are served from the start.
        for idx in 0..self.services.len() {
            if self.services[idx].instance.is_none() {
                if let Err(e) = self.serve(idx).await {
                    warn!(error = %format!("{e:#}"), "programming a service failed");
                }
            }
        }
        while let Some(msg) = rx.recv().await {
            match msg {
                Msg::Health(u) => self.on_health(u).await,
                Msg::BecomeMaster { instance, reply } => {
                    let r = self.become_master(&instance).await;
                    let _ = reply.send(r.map_err(|e| format!("{e:#}")));
                }
                Msg::LeftMaster { instance } => self.left_master(&instance),
                Msg::Status { reply } => {
                    let _ = reply.send(self.dp.status().unwrap_or_default());
                }
                Msg::Counters { reply } => {
                    let counters = self
                        .dp
                        .counters()
                        .map(|v| v.into_iter().map(|(_, n, c)| (n.to_string(), c)).collect())
                        .unwrap_or_default();
                    let _ = reply.send(counters);
                }
                Msg::Reconfigure { config, reply } => {
                    self.reconfigure(&config);
                    let _ = reply.send(());
                }
                Msg::Keep { reply } => {
                    let kept = self.dp.keep_attached().map_err(|e| e.to_string());
                    let _ = reply.send(kept);
                    return;
                }
                Msg::Shutdown { reply } => {
                    self.shutdown();
                    let _ = reply.send(());
                    return;
                }
            }
        }
    }

    async fn on_health(&mut self, u: Update) {
        let Some(idx) = self.services.iter().position(|s| {
            s.vs.address == u.service.address
                && s.vs.port == u.service.port
                && s.vs.protocol == u.service.protocol
        }) else {
            return;
        };
        self.desired.insert(idx, u.backends);
        if self.active(&self.services[idx]) {
            if let Err(e) = self.serve(idx).await {
                warn!(error = %format!("{e:#}"), "updating a service failed");
            }
        }
    }

    async fn become_master(&mut self, instance: &str) -> Result<()> {
        self.masters.insert(instance.to_string());
        let mine: Vec<usize> = (0..self.services.len())
            .filter(|&i| self.services[i].instance.as_deref() == Some(instance))
            .collect();
        for idx in mine {
            self.serve(idx).await?;
        }
        Ok(())
    }

    fn left_master(&mut self, instance: &str) {
        self.masters.remove(instance);
        for s in self
            .services
            .iter()
            .filter(|s| s.instance.as_deref() == Some(instance))
        {
            let id = service_id(&s.vs);
            if self.dp.service_spec(&id).is_some() {
                if let Err(e) = self.dp.remove_service(&id) {
                    warn!(service = %id, error = %e, "removing a service failed");
                }
            }
        }
        self.detach_unused();
    }

    /// Detaches from interfaces no active service needs any more.
    fn detach_unused(&mut self) {
        let needed: HashSet<String> = self
            .services
            .iter()
            .filter(|s| self.active(s))
            .flat_map(|s| s.interfaces.iter().cloned())
            .collect();
        for (ifname, _) in self.dp.attached() {
            if !needed.contains(&ifname) {
                if let Err(e) = self.dp.detach(&ifname) {
                    warn!(iface = %ifname, error = %e, "detaching failed");
                }
            }
        }
    }

    /// Attaches where the service lives and programs its current desired backends.
    async fn serve(&mut self, idx: usize) -> Result<()> {
        let s = self.services[idx].clone();
        for ifname in &s.interfaces {
            self.dp
                .attach(ifname)
                .with_context(|| format!("attaching XDP to {ifname} for {}", service_id(&s.vs)))?;
        }
        let spec = self.spec(&s, idx).await;
        let report = self.dp.apply_service(&spec)?;
        info!(service = %spec.id, backends = spec.backends.len(), slots_written = report.slots_written, "service programmed");
        Ok(())
    }

    async fn spec(&self, s: &Service, idx: usize) -> ServiceSpec {
        let mut backends = Vec::new();
        for b in self
            .desired
            .get(&idx)
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            match dataplane::resolve_egress(&self.neigh, b.addr, RESOLVE_TIMEOUT).await {
                Ok(egress) => backends.push(BackendSpec {
                    addr: b.addr,
                    port: b.port,
                    weight: b.weight,
                    egress,
                }),
                Err(e) => warn!(backend = %b.addr, error = %e, "backend unreachable: left out"),
            }
        }
        let vs = &s.vs;
        ServiceSpec {
            id: service_id(vs),
            mode: match vs.lb_kind {
                config::LbKind::Tun => ForwardMode::Tun,
                _ => ForwardMode::Dr,
            },
            hash: if vs.lb_algo == config::LbAlgo::MaglevSrc {
                HashMode::Source
            } else {
                HashMode::FiveTuple
            },
            table_size: vs.table_size,
            persistence_timeout: vs.persistence_timeout,
            idle_timeout: dataplane::default_idle_timeout(service_id(vs).protocol),
            backends,
        }
    }

    fn shutdown(&mut self) {
        for s in &self.services {
            let id = service_id(&s.vs);
            if self.dp.service_spec(&id).is_some() {
                let _ = self.dp.remove_service(&id);
            }
        }
        for (ifname, _) in self.dp.attached() {
            let _ = self.dp.detach(&ifname);
        }
        self.dp.unpin();
        info!("data plane stopped: services removed, XDP detached, maps unpinned");
    }
}
