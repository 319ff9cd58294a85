//! The one task that owns the eBPF maps. Others send it desired state:
//! - health updates (a service's desired backend set),
//! - VRRP gating: before an instance adds its VIPs it asks the owner to attach the
//!   program and program that instance's services (so the node never owns a VIP it
//!   cannot forward for); after it removed them, the services are removed (so it stops
//!   forwarding for a VIP it no longer owns).
//!
//! A virtual server belongs to the VRRP instance whose `virtual_ipaddress` holds its
//! address; a virtual server no instance holds is served whenever the daemon runs.
//!
//! The data plane is XDP or IPVS ([`Plane`]); gating, health and reload work the same
//! on both. IPVS has no interfaces to attach and no NAT table to sweep; instead the
//! kernel's table is read back and corrected every [`IPVS_RECONCILE_EVERY`].

use std::{
    collections::{HashMap, HashSet},
    net::IpAddr,
    time::Duration,
};

use anyhow::{Context, Result};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use crate::{
    config::{self, Config},
    dataplane::{self, from_config::service_id, BackendSpec, Dataplane, ServiceId, ServiceSpec},
    health::runner::Update,
    ipvs::{self, Ipvs},
    net::neigh::Neighbours,
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
    /// NAT without `interfaces`: the interfaces its reals are routed through (their
    /// replies must meet the program too), found when the service is programmed.
    real_interfaces: Vec<String>,
}

impl Service {
    fn all_interfaces(&self) -> impl Iterator<Item = &String> {
        self.interfaces.iter().chain(&self.real_interfaces)
    }
}

/// How often NAT entries of finished connections are swept away.
const NAT_SWEEP_EVERY: Duration = Duration::from_secs(1);
/// How often next hops the data plane found unresolved are resolved.
const NEIGH_MISS_EVERY: Duration = Duration::from_millis(200);

/// The forwarding plane the owner drives.
pub enum Plane {
    Xdp(Box<Dataplane>),
    Ipvs(Box<Ipvs>),
}

impl Plane {
    /// As status and metrics name it.
    pub fn name(&self) -> &'static str {
        match self {
            Plane::Xdp(_) => "xdp",
            Plane::Ipvs(_) => "ipvs",
        }
    }
}

/// How often the IPVS table is read back and drift (changes by hand) corrected.
pub const IPVS_RECONCILE_EVERY: Duration = Duration::from_secs(5);

pub struct Owner {
    plane: Plane,
    neigh: Neighbours,
    services: Vec<Service>,
    desired: HashMap<usize, Vec<crate::health::verdict::DesiredBackend>>,
    masters: HashSet<String>,
    nat_timeouts: dataplane::NatTimeouts,
    /// Warnings given once: forwarding off (per family and interface), what IPVS
    /// cannot do (per service).
    warned_once: HashSet<String>,
}

/// The instance whose virtual_ipaddress holds `addr`.
fn owning_instance(config: &Config, addr: IpAddr) -> Option<&config::VrrpInstance> {
    config
        .vrrp_instances
        .iter()
        .find(|i| i.all_addresses().any(|v| v.address == addr))
}

impl Owner {
    pub fn new(config: &Config, plane: Plane) -> Result<Owner> {
        let neigh = Neighbours::new().context("opening rtnetlink")?;
        Ok(Owner {
            plane,
            neigh,
            services: services_of(config),
            desired: HashMap::new(),
            masters: HashSet::new(),
            nat_timeouts: config.global.lvs_timeouts,
            warned_once: HashSet::new(),
        })
    }

    fn reconfigure(&mut self, config: &Config) {
        let mut new = services_of(config);
        // Keep where the reals' replies arrive until the service is programmed again.
        for s in &mut new {
            if let Some(old) = self.services.iter().find(|o| {
                service_id(&o.vs) == service_id(&s.vs) && o.vs.interfaces == s.vs.interfaces
            }) {
                s.real_interfaces = old.real_interfaces.clone();
            }
        }
        let kept: HashSet<ServiceId> = new.iter().map(|s| service_id(&s.vs)).collect();
        let dropped: Vec<ServiceId> = self
            .services
            .iter()
            .map(|s| service_id(&s.vs))
            .filter(|id| !kept.contains(id))
            .collect();
        for id in dropped {
            if self.unserve(&id) {
                info!(service = %id, "service removed by reload");
            }
        }
        // Desired sets are indexed by position: the new checks resend them.
        self.desired.clear();
        self.services = new;
        if let Plane::Ipvs(ipvs) = &mut self.plane {
            ipvs.set_managed(kept);
        }
        self.detach_unused();
    }

    /// Stops forwarding `id` if it is programmed; whether it was.
    fn unserve(&mut self, id: &ServiceId) -> bool {
        match &mut self.plane {
            Plane::Xdp(dp) => {
                if dp.service_spec(id).is_none() {
                    return false;
                }
                if let Err(e) = dp.remove_service(id) {
                    warn!(service = %id, error = %e, "removing a service failed");
                }
                true
            }
            Plane::Ipvs(ipvs) => {
                if !ipvs.is_desired(id) {
                    return false;
                }
                if let Err(e) = ipvs.remove(id) {
                    warn!(service = %id, error = %e, "removing an IPVS service failed");
                }
                true
            }
        }
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
                real_interfaces: Vec::new(),
            }
        })
        .collect()
}

impl Owner {
    fn active(&self, s: &Service) -> bool {
        s.instance.as_ref().is_none_or(|i| self.masters.contains(i))
    }

    pub async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Msg>) {
        self.take_over();
        // Services no instance holds are served from the start.
        for idx in 0..self.services.len() {
            if self.services[idx].instance.is_none() {
                if let Err(e) = self.serve(idx).await {
                    warn!(error = %format!("{e:#}"), "programming a service failed");
                }
            }
        }
        let mut sweep = tokio::time::interval(NAT_SWEEP_EVERY);
        let mut misses = tokio::time::interval(NEIGH_MISS_EVERY);
        let mut reconcile = tokio::time::interval_at(
            tokio::time::Instant::now() + IPVS_RECONCILE_EVERY,
            IPVS_RECONCILE_EVERY,
        );
        for timer in [&mut sweep, &mut misses, &mut reconcile] {
            timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        }
        loop {
            let msg = tokio::select! {
                msg = rx.recv() => match msg {
                    Some(msg) => msg,
                    None => return,
                },
                _ = sweep.tick() => {
                    self.sweep_nat();
                    continue;
                }
                _ = misses.tick() => {
                    self.resolve_neigh_misses();
                    continue;
                }
                _ = reconcile.tick() => {
                    self.reconcile_ipvs();
                    continue;
                }
            };
            match msg {
                Msg::Health(u) => self.on_health(u).await,
                Msg::BecomeMaster { instance, reply } => {
                    let r = self.become_master(&instance).await;
                    let _ = reply.send(r.map_err(|e| format!("{e:#}")));
                }
                Msg::LeftMaster { instance } => self.left_master(&instance),
                Msg::Status { reply } => {
                    let _ = reply.send(self.status());
                }
                Msg::Counters { reply } => {
                    let counters = match &self.plane {
                        Plane::Xdp(dp) => dp
                            .counters()
                            .map(|v| v.into_iter().map(|(_, n, c)| (n.to_string(), c)).collect())
                            .unwrap_or_default(),
                        Plane::Ipvs(_) => Vec::new(),
                    };
                    let _ = reply.send(counters);
                }
                Msg::Reconfigure { config, reply } => {
                    self.reconfigure(&config);
                    let _ = reply.send(());
                }
                Msg::Keep { reply } => {
                    let kept = match &mut self.plane {
                        Plane::Xdp(dp) => dp.keep_attached().map_err(|e| e.to_string()),
                        // The kernel keeps the services; the next daemon reconciles them.
                        Plane::Ipvs(_) => Ok(Vec::new()),
                    };
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

    /// What a previous run left: XDP links and pinned services kept for an upgrade;
    /// IPVS services in the kernel (read back, ours corrected, others reported).
    fn take_over(&mut self) {
        let known: HashSet<ServiceId> = self.services.iter().map(|s| service_id(&s.vs)).collect();
        match &mut self.plane {
            Plane::Xdp(dp) => {
                // A previous daemon stopped with --keep-dataplane: take its XDP links over.
                match dp.adopt_links() {
                    Ok(ifs) if !ifs.is_empty() => {
                        info!(interfaces = ?ifs, "data plane adopted from the previous daemon")
                    }
                    Ok(_) => {}
                    Err(e) => warn!(error = %e, "adopting the previous daemon's XDP links failed"),
                }
                // Pinned maps of a previous run may hold services this configuration dropped.
                for id in dp.service_ids() {
                    if !known.contains(&id) {
                        match dp.remove_service(&id) {
                            Ok(()) => {
                                info!(service = %id, "removed a service left by a previous run")
                            }
                            Err(e) => {
                                warn!(service = %id, error = %e, "removing a stale service failed")
                            }
                        }
                    }
                }
            }
            Plane::Ipvs(ipvs) => {
                // Configured services are ours. Those a previous daemon left (kept for an
                // upgrade, or after a crash) stay until VRRP decides, at most one
                // reconcile period; other services are reported.
                ipvs.begin_grace();
                ipvs.set_managed(known);
                if let Err(e) = ipvs.set_timeouts(&self.nat_timeouts) {
                    warn!(error = %e, "setting the IPVS connection timeouts (lvs_timeouts) failed");
                }
                if let Err(e) = ipvs.reconcile() {
                    warn!(error = %e, "reading the IPVS table back failed");
                }
            }
        }
    }

    /// Reads the IPVS table back and corrects drift (changes made by hand).
    fn reconcile_ipvs(&mut self) {
        let Plane::Ipvs(ipvs) = &mut self.plane else {
            return;
        };
        ipvs.end_grace();
        match ipvs.reconcile() {
            Ok(r) if !r.applied.is_empty() => {
                warn!(
                    changes = r.applied.len(),
                    "IPVS table had drifted from the configuration: corrected"
                )
            }
            Ok(_) => {}
            Err(e) => warn!(error = %e, "reconciling the IPVS table failed"),
        }
    }

    fn status(&mut self) -> Vec<dataplane::ServiceStatus> {
        match &mut self.plane {
            Plane::Xdp(dp) => dp.status().unwrap_or_default(),
            Plane::Ipvs(ipvs) => match ipvs.table() {
                Ok(table) => ipvs::status::of_table(&table),
                Err(e) => {
                    debug!(error = %e, "reading the IPVS table for status failed");
                    Vec::new()
                }
            },
        }
    }

    /// Programs the IPVS service with its current desired backends (the whole table is
    /// read back and corrected on the way).
    fn serve_ipvs(&mut self, idx: usize) -> Result<()> {
        let vs = self.services[idx].vs.clone();
        let backends = self.desired.get(&idx).cloned().unwrap_or_default();
        let desired = ipvs::from_config::desired_service(&vs, &backends);
        let id = desired.service.id;
        let warn_once = ipvs::from_config::unsupported(&vs)
            .filter(|_| self.warned_once.insert(format!("unsupported/{id}")));
        if let Some(w) = warn_once {
            warn!(service = %id, "{w}");
        }
        let Plane::Ipvs(ipvs) = &mut self.plane else {
            return Ok(());
        };
        ipvs.apply(desired)
            .with_context(|| format!("programming IPVS service {id}"))?;
        info!(service = %id, backends = backends.len(), "IPVS service programmed");
        if vs.lb_kind == config::LbKind::Nat {
            self.check_forwarding("all", vs.address);
        }
        Ok(())
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
        let mine: Vec<ServiceId> = self
            .services
            .iter()
            .filter(|s| s.instance.as_deref() == Some(instance))
            .map(|s| service_id(&s.vs))
            .collect();
        for id in mine {
            self.unserve(&id);
        }
        self.detach_unused();
    }

    /// Removes the NAT entries of finished or idle connections (the data plane never
    /// deletes them, so a full table cannot evict an established connection).
    fn sweep_nat(&mut self) {
        let Plane::Xdp(dp) = &mut self.plane else {
            return;
        };
        if !self
            .services
            .iter()
            .any(|s| s.vs.lb_kind == config::LbKind::Nat)
        {
            return;
        }
        let now = dataplane::nat::monotonic_ns();
        match dp.sweep_nat(&self.nat_timeouts, now) {
            Ok(sweep) if sweep.expired > 0 => {
                debug!(
                    entries = sweep.entries,
                    expired = sweep.expired,
                    "NAT table swept"
                )
            }
            Ok(_) => {}
            Err(e) => warn!(error = %e, "sweeping the NAT table failed"),
        }
    }

    /// Next hops the data plane met without a neighbour entry (it dropped those
    /// packets): have the kernel resolve them, so the next packets go through.
    fn resolve_neigh_misses(&mut self) {
        let Plane::Xdp(dp) = &mut self.plane else {
            return;
        };
        let misses = match dp.take_neigh_misses() {
            Ok(m) => m,
            Err(e) => {
                warn!(error = %e, "reading lb_neigh_miss failed");
                return;
            }
        };
        for (addr, ifindex) in misses {
            debug!(next_hop = %addr, ifindex, "resolving a next hop for the data plane");
            let neigh = self.neigh.clone();
            tokio::spawn(async move {
                if let Err(e) = neigh.resolve(addr, RESOLVE_TIMEOUT).await {
                    warn!(next_hop = %addr, error = %e, "next hop of NAT replies unresolved");
                }
            });
        }
    }

    /// Detaches from interfaces no active service needs any more.
    fn detach_unused(&mut self) {
        let Plane::Xdp(dp) = &self.plane else {
            return;
        };
        let attached = dp.attached();
        let needed: HashSet<String> = self
            .services
            .iter()
            .filter(|s| self.active(s))
            .flat_map(|s| s.all_interfaces().cloned())
            .collect();
        let Plane::Xdp(dp) = &mut self.plane else {
            return;
        };
        for (ifname, _) in attached {
            if !needed.contains(&ifname) {
                if let Err(e) = dp.detach(&ifname) {
                    warn!(iface = %ifname, error = %e, "detaching failed");
                }
            }
        }
    }

    /// Programs the service with its current desired backends.
    async fn serve(&mut self, idx: usize) -> Result<()> {
        match self.plane {
            Plane::Xdp(_) => self.serve_xdp(idx).await,
            Plane::Ipvs(_) => self.serve_ipvs(idx),
        }
    }

    /// Attaches where the service lives and programs its current desired backends.
    async fn serve_xdp(&mut self, idx: usize) -> Result<()> {
        let s = self.services[idx].clone();
        let spec = self.spec(&s, idx).await;
        // NAT: the reals' replies arrive on the interfaces they are routed through.
        if spec.mode.is_nat() && s.vs.interfaces.is_empty() {
            let mut extra: Vec<String> = Vec::new();
            for b in &spec.backends {
                if let Some(name) = ifname_of(b.egress.ifindex) {
                    if !s.interfaces.contains(&name) && !extra.contains(&name) {
                        extra.push(name);
                    }
                }
            }
            self.services[idx].real_interfaces = extra;
        }
        let s = self.services[idx].clone();
        let Plane::Xdp(dp) = &mut self.plane else {
            return Ok(());
        };
        for ifname in s.all_interfaces() {
            dp.attach(ifname)
                .with_context(|| format!("attaching XDP to {ifname} for {}", service_id(&s.vs)))?;
        }
        let report = dp.apply_service(&spec)?;
        if spec.mode.is_nat() {
            for ifname in s.all_interfaces() {
                self.check_forwarding(ifname, s.vs.address);
            }
        }
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
        dataplane::from_config::service_spec(&s.vs, backends)
    }

    /// NAT replies are routed by the kernel's FIB, which forwards only where IP
    /// forwarding is on (as for IPVS NAT): say so once per interface.
    fn check_forwarding(&mut self, ifname: &str, vip: IpAddr) {
        let family = if vip.is_ipv4() { "ipv4" } else { "ipv6" };
        let path = format!("/proc/sys/net/{family}/conf/{ifname}/forwarding");
        let on = std::fs::read_to_string(&path).is_ok_and(|v| v.trim() == "1");
        if !on && self.warned_once.insert(format!("{family}/{ifname}")) {
            warn!(
                iface = ifname,
                "{family} forwarding is off on {ifname}: NAT replies cannot be routed to clients; set net.{family}.conf.{ifname}.forwarding = 1 (or net.ipv4.ip_forward = 1 / net.ipv6.conf.all.forwarding = 1)"
            );
        }
    }

    fn shutdown(&mut self) {
        let ids: Vec<ServiceId> = self.services.iter().map(|s| service_id(&s.vs)).collect();
        match &mut self.plane {
            Plane::Xdp(dp) => {
                for id in ids {
                    if dp.service_spec(&id).is_some() {
                        let _ = dp.remove_service(&id);
                    }
                }
                for (ifname, _) in dp.attached() {
                    let _ = dp.detach(&ifname);
                }
                dp.unpin();
                info!("data plane stopped: services removed, XDP detached, maps unpinned");
            }
            Plane::Ipvs(ipvs) => match ipvs.cleanup() {
                Ok(n) => info!(
                    services = n,
                    "IPVS data plane stopped: our services removed"
                ),
                Err(e) => warn!(error = %e, "removing the IPVS services failed"),
            },
        }
    }
}

/// The name of interface `ifindex` (0: none).
fn ifname_of(ifindex: u32) -> Option<String> {
    if ifindex == 0 {
        return None;
    }
    nix::net::if_::if_indextoname(ifindex)
        .ok()
        .and_then(|c| c.into_string().ok())
}
