//! The one task that owns the forwarding plane (the eBPF maps, or our IPVS services).
//! Others send it desired state, straight into its [`Inbox`]:
//! - health updates (a service's desired backend set),
//! - VRRP gating: before an instance adds its VIPs it asks the owner to attach the
//!   program and program that instance's services (so the node never owns a VIP it
//!   cannot forward for); after it removed them, the services are removed (so it stops
//!   forwarding for a VIP it no longer owns),
//! - the daemon's requests ([`Msg`]: status, counters, reload, stop).
//!
//! A virtual server belongs to the VRRP instance whose `virtual_ipaddress` holds its
//! address; a virtual server no instance holds is served whenever the daemon runs.
//!
//! A virtual server announced by BGP (`announce = "bgp"`) is served from the start on
//! `[bgp].interfaces` (or its own); after every event the owner publishes each such
//! service's readiness (programmed, quorum) to the announcer ([`super::announcer`]),
//! which decides whether its VIP is announced.
//!
//! The owner keeps the desired state by [`ServiceId`] and decides when a service is
//! programmed; the [`ForwardingPlane`] (XDP, IPVS) does it. Backends' next hops come
//! from a cache ([`NextHops`]) filled ahead of need, so a MASTER transition programs its
//! services without waiting on lookups one after another.

use std::{
    collections::{BTreeSet, HashMap, HashSet},
    net::IpAddr,
    sync::Arc,
    time::Duration,
};

use anyhow::Result;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, info, warn};

pub use super::plane::Plane;
use super::{
    announcer::{Readiness, ServiceReadiness},
    counter_totals::CounterTotals,
    next_hops::{NextHops, Resolved, Resolver},
    plane::{ipvs::IPVS_RECONCILE_EVERY, ForwardingPlane, Programming},
};
use crate::{
    config::{self, Config},
    dataplane::{
        self,
        flow_sync::{FlowRecord, InstallReport},
        from_config::{attach_interfaces, gating_instance, service_id},
        ServiceId,
    },
    health::{runner::Update, verdict::DesiredBackend},
    net::neigh::Neighbours,
    sync::{
        bulk::{BulkWindow, BULK_QUIET, BULK_WAIT},
        pending::Pending,
        task::{not_sent, Outgoing, SyncHandle, SyncStats, Synced},
    },
    vrrp::instance::GateRequest,
};

/// The daemon's requests to the owner.
pub enum Msg {
    Status {
        reply: oneshot::Sender<Vec<dataplane::ServiceStatus>>,
    },
    /// Counters by name.
    Counters {
        reply: oneshot::Sender<Vec<(String, u64)>>,
    },
    /// Table use and attachments.
    Usage {
        reply: oneshot::Sender<dataplane::PlaneUsage>,
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

/// Where the others send to the owner: the daemon, VRRP (gating), health checks and
/// the sync receiver.
#[derive(Clone)]
pub struct OwnerHandle {
    pub msgs: mpsc::UnboundedSender<Msg>,
    pub gate: mpsc::UnboundedSender<GateRequest>,
    pub health: mpsc::UnboundedSender<Update>,
    /// Peers' flows and bulk-sync requests (bounded: the receiver counts what does not
    /// fit).
    pub synced: mpsc::Sender<Synced>,
}

/// What the owner receives; it stops when the daemon's channel closes.
pub struct Inbox {
    msgs: mpsc::UnboundedReceiver<Msg>,
    gate: mpsc::UnboundedReceiver<GateRequest>,
    health: mpsc::UnboundedReceiver<Update>,
    synced: mpsc::Receiver<Synced>,
}

/// Batches of peers' flows waiting for the owner, at most.
const SYNCED_QUEUE: usize = 1024;

/// A connected handle and inbox.
pub fn channels() -> (OwnerHandle, Inbox) {
    let (msgs_tx, msgs) = mpsc::unbounded_channel();
    let (gate_tx, gate) = mpsc::unbounded_channel();
    let (health_tx, health) = mpsc::unbounded_channel();
    let (synced_tx, synced) = mpsc::channel(SYNCED_QUEUE);
    let handle = OwnerHandle {
        msgs: msgs_tx,
        gate: gate_tx,
        health: health_tx,
        synced: synced_tx,
    };
    (
        handle,
        Inbox {
            msgs,
            gate,
            health,
            synced,
        },
    )
}

/// Flow-state sync, as the owner drives it: new flows out, peers' flows in.
struct OwnerSync {
    to_peers: mpsc::Sender<Outgoing>,
    stats: Arc<SyncStats>,
    /// The VRRP instance whose MASTER sends (None: always, a BGP tier).
    instance: Option<String>,
    /// Peers' flows for services not programmed here yet.
    pending: Pending,
    /// Bulk sync at start: no MASTER transition, no announcement before it closes.
    bulk: BulkWindow,
    /// MASTER transitions waiting for the bulk window.
    deferred: Vec<(String, oneshot::Sender<Result<(), String>>)>,
}

/// How often the data plane's new-flow reports are drained.
const LEARN_EVERY: Duration = Duration::from_millis(10);
/// Reports drained at most per tick (the ring holds 16384).
const LEARN_MAX: usize = 16_384;
/// How often a sending node resends its whole table, so a peer's kept copy of a
/// long-lived flow never expires (a third of [`PENDING_TTL`]), like IPVS sync's refresh.
const SYNC_REFRESH_EVERY: Duration = Duration::from_secs(300);
/// Peers' flows kept for services not programmed here, at most.
const PENDING_CAPACITY: usize = 262_144;
/// A kept flow is forgotten after this long without a newer copy (the NAT table's
/// established-TCP timeout by default: a connection idle that long is gone anyway).
const PENDING_TTL: Duration = Duration::from_secs(900);

/// One virtual server, as the owner needs it.
#[derive(Debug, Clone)]
struct Service {
    id: ServiceId,
    vs: config::VirtualServer,
    /// The VRRP instance holding its address (None: always served).
    instance: Option<String>,
    /// Announced by BGP: its readiness goes to the announcer.
    bgp: bool,
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

/// A VRRP instance in no-accept mode (keepalived's `vrrp_strict` / `no_accept`): while
/// it is MASTER, traffic to its addresses that no service takes is dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
struct StrictInstance {
    name: String,
    interface: String,
    vips: Vec<IpAddr>,
}

fn strict_instances(config: &Config) -> Vec<StrictInstance> {
    config
        .vrrp_instances
        .iter()
        .filter(|i| i.drops_vip_traffic())
        .map(|i| StrictInstance {
            name: i.name.clone(),
            interface: i.interface.clone(),
            vips: i.all_addresses().map(|v| v.address).collect(),
        })
        .collect()
}

/// Whether the owner goes on after a message.
#[derive(Debug, PartialEq, Eq)]
enum Running {
    On,
    Stopped,
}

/// How often NAT entries of finished connections are swept away.
const NAT_SWEEP_EVERY: Duration = Duration::from_secs(1);
/// How often next hops the data plane found unresolved are resolved.
const NEIGH_MISS_EVERY: Duration = Duration::from_millis(200);
/// The first rebuild of the connection-table filter, which lets the program trust it
/// (then every `conn_filter::EVERY`, or less often for a table whose walk is long).
const CONN_FILTER_FIRST: Duration = Duration::from_secs(1);
/// How often the cached next hops are looked up again (a backend's MAC may change).
const NEXT_HOP_REFRESH_EVERY: Duration = Duration::from_secs(30);

pub struct Owner {
    plane: Box<dyn ForwardingPlane>,
    /// Only for planes that use next hops.
    resolver: Option<Resolver>,
    next_hops: NextHops,
    /// Where background lookups report (set when the owner runs).
    lookups_done: Option<mpsc::UnboundedSender<Vec<Resolved>>>,
    services: Vec<Service>,
    desired: HashMap<ServiceId, Vec<DesiredBackend>>,
    masters: HashSet<String>,
    nat_timeouts: dataplane::NatTimeouts,
    /// Quorum of each service's last health update.
    quorum: HashMap<ServiceId, bool>,
    /// Where the BGP services' readiness goes (None: no announcer).
    readiness: Option<watch::Sender<Readiness>>,
    /// Lifetime totals: the plane's counters restart when a service is re-programmed.
    totals: CounterTotals,
    /// Flow-state sync (`[sync]`), when configured.
    sync: Option<OwnerSync>,
    /// The bulk window closed and nothing waits for it any more.
    bulk_over: bool,
    /// Instances a previous daemon stopped with `--keep-dataplane` handed over as MASTER:
    /// their tables are intact and no peer took over, so their first MASTER transition
    /// does not wait for bulk sync (it would leave them without adverts for its window).
    kept_masters: HashSet<String>,
    /// Instances in no-accept mode.
    strict: Vec<StrictInstance>,
}

fn services_of(config: &Config) -> Vec<Service> {
    config
        .virtual_servers
        .iter()
        .map(|vs| Service {
            id: service_id(vs),
            vs: vs.clone(),
            instance: gating_instance(config, vs).map(|i| i.name.clone()),
            bgp: vs.announce == config::Announce::Bgp,
            interfaces: attach_interfaces(config, vs),
            real_interfaces: Vec::new(),
        })
        .collect()
}

/// Every address a configured backend (real or sorry server) of `servers` may have.
fn backend_addresses<'a>(
    servers: impl IntoIterator<Item = &'a config::VirtualServer>,
) -> HashSet<IpAddr> {
    servers
        .into_iter()
        .flat_map(|vs| {
            let reals = vs.real_servers.iter().map(|r| r.address);
            reals.chain(vs.sorry_server.map(|(a, _)| a))
        })
        .collect()
}

impl Owner {
    /// Must be called inside the tokio runtime (next-hop lookups use rtnetlink).
    pub fn new(config: &Config, plane: impl Into<Box<dyn ForwardingPlane>>) -> Result<Owner> {
        let plane = plane.into();
        let resolver = if plane.uses_next_hops() {
            let neigh = Neighbours::new().map_err(|e| anyhow::anyhow!("opening rtnetlink: {e}"))?;
            Some(Resolver::new(neigh))
        } else {
            None
        };
        Ok(Owner {
            plane,
            resolver,
            next_hops: NextHops::default(),
            lookups_done: None,
            services: services_of(config),
            desired: HashMap::new(),
            masters: HashSet::new(),
            nat_timeouts: config.global.lvs_timeouts,
            quorum: HashMap::new(),
            readiness: None,
            totals: CounterTotals::default(),
            sync: None,
            bulk_over: false,
            kept_masters: HashSet::new(),
            strict: strict_instances(config),
        })
    }

    /// The MASTER instances handed over by the previous daemon (`kept_masters::take`).
    pub fn with_kept_masters(mut self, kept: &[String]) -> Owner {
        self.kept_masters = kept.iter().cloned().collect();
        self
    }

    /// Runs flow-state sync: new flows go to `sync`'s sender (while this node is MASTER
    /// of `instance`, or always without one), peers' flows come in through the inbox.
    pub fn with_sync(mut self, sync: &SyncHandle, instance: Option<String>) -> Owner {
        self.sync = Some(OwnerSync {
            to_peers: sync.to_peers.clone(),
            stats: Arc::clone(&sync.stats),
            instance,
            pending: Pending::new(PENDING_CAPACITY),
            bulk: BulkWindow::new(std::time::Instant::now(), BULK_WAIT, BULK_QUIET),
            deferred: Vec::new(),
        });
        self
    }

    /// Whether bulk sync at start is over (always without sync).
    fn bulk_done(&self) -> bool {
        self.sync
            .as_ref()
            .is_none_or(|s| s.bulk.done(std::time::Instant::now()))
    }

    /// MASTER transitions deferred by the bulk window, now that it closed.
    async fn run_deferred(&mut self) {
        if !self.bulk_done() {
            return;
        }
        let deferred = match &mut self.sync {
            Some(sync) if !sync.deferred.is_empty() => std::mem::take(&mut sync.deferred),
            _ => return,
        };
        for (instance, reply) in deferred {
            info!(instance = %instance, "peers' flows in (bulk sync): becoming MASTER");
            let r = self.become_master(&instance).await;
            let _ = reply.send(r.map_err(|e| format!("{e:#}")));
        }
    }

    /// Publishes the BGP services' readiness on `tx` (for the announcer).
    pub fn with_readiness(mut self, tx: watch::Sender<Readiness>) -> Owner {
        self.readiness = Some(tx);
        self
    }

    /// Tells the announcer, if anything changed, which BGP services are programmed and
    /// have quorum.
    fn publish_readiness(&self) {
        let Some(tx) = &self.readiness else { return };
        let now: Readiness = self
            .services
            .iter()
            .filter(|s| s.bgp)
            .map(|s| {
                let r = ServiceReadiness {
                    vip: s.vs.address,
                    // Not announced before the peers' flows are in (bulk sync).
                    programmed: self.plane.is_programmed(&s.id) && self.bulk_done(),
                    quorum: self.quorum.get(&s.id).copied(),
                };
                (s.id, r)
            })
            .collect();
        tx.send_if_modified(|old| {
            let changed = *old != now;
            if changed {
                *old = now;
            }
            changed
        });
    }

    /// Runs the owner in a task of its own; its handle.
    pub fn spawn(self) -> OwnerHandle {
        let (handle, inbox) = channels();
        tokio::spawn(self.run(inbox));
        handle
    }

    fn configured_ids(&self) -> HashSet<ServiceId> {
        self.services.iter().map(|s| s.id).collect()
    }

    fn service(&self, id: &ServiceId) -> Option<&Service> {
        self.services.iter().find(|s| s.id == *id)
    }

    fn active(&self, s: &Service) -> bool {
        s.instance.as_ref().is_none_or(|i| self.masters.contains(i))
    }

    pub async fn run(mut self, mut inbox: Inbox) {
        let (done_tx, mut lookups_done) = mpsc::unbounded_channel::<Vec<Resolved>>();
        self.lookups_done = Some(done_tx);
        self.plane
            .take_over(self.configured_ids(), &self.nat_timeouts);
        self.prefetch(
            backend_addresses(self.services.iter().map(|s| &s.vs))
                .into_iter()
                .collect(),
        );
        // Services no instance holds are served from the start.
        let unowned: Vec<ServiceId> = self
            .services
            .iter()
            .filter(|s| s.instance.is_none())
            .map(|s| s.id)
            .collect();
        self.resolve_missing_for(&unowned).await;
        self.sync_strict();
        for id in &unowned {
            if let Err(e) = self.program(id) {
                warn!(error = %format!("{e:#}"), "programming a service failed");
            }
        }
        self.publish_readiness();
        if self.sync.is_some() {
            if let Err(e) = self.plane.set_sync_learning(true) {
                warn!(error = %format!("{e:#}"), "flow-state sync cannot learn new flows here; it only receives");
            }
        }
        let syncing = self.sync.is_some();
        let mut bulk_check = tokio::time::interval(Duration::from_millis(50));
        bulk_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut learn = tokio::time::interval(LEARN_EVERY);
        learn.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut sweep = tokio::time::interval(NAT_SWEEP_EVERY);
        let mut misses = tokio::time::interval(NEIGH_MISS_EVERY);
        let later = |every| tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        let mut reconcile = later(IPVS_RECONCILE_EVERY);
        let mut resend = later(SYNC_REFRESH_EVERY);
        let mut refresh = later(NEXT_HOP_REFRESH_EVERY);
        let mut conn_filter = tokio::time::interval_at(
            tokio::time::Instant::now() + CONN_FILTER_FIRST,
            crate::dataplane::conn_filter::EVERY,
        );
        for timer in [
            &mut conn_filter,
            &mut sweep,
            &mut misses,
            &mut reconcile,
            &mut refresh,
            &mut resend,
        ] {
            timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        }
        loop {
            tokio::select! {
                // In this order: mastership is what waits, then desired state before
                // the requests that read it back.
                biased;
                Some(req) = inbox.gate.recv() => self.on_gate(req).await,
                Some(update) = inbox.health.recv() => self.on_health(update).await,
                Some(results) = lookups_done.recv() => self.on_lookups(results),
                Some(synced) = inbox.synced.recv() => match synced {
                    Synced::Flows(records) => self.on_synced(records),
                    Synced::BulkRequest => self.send_table(),
                },
                msg = inbox.msgs.recv() => match msg {
                    Some(msg) => {
                        if self.on_msg(msg) == Running::Stopped {
                            return;
                        }
                    }
                    None => return,
                },
                _ = learn.tick(), if syncing => self.send_learned(),
                _ = bulk_check.tick(), if syncing && !self.bulk_over => {
                    self.run_deferred().await;
                    self.bulk_over = self.bulk_done();
                }
                _ = resend.tick(), if syncing => self.send_table(),
                // Nothing to sweep or resolve without NAT services, sync or services at
                // all: a VRRP-only daemon does not wake for them (an idle backup's CPU).
                _ = sweep.tick(), if self.sweeps() => {
                    self.sweep_nat();
                    self.expire_pending();
                }
                _ = misses.tick(), if !self.services.is_empty() => self.resolve_neigh_misses(),
                _ = reconcile.tick() => self.plane.reconcile(),
                _ = conn_filter.tick(), if !self.services.is_empty() => {
                    self.plane.refresh_conn_filter()
                }
                _ = refresh.tick() => {
                    self.prefetch(self.next_hops.addresses());
                    self.plane.refresh_interfaces();
                }
            }
            self.publish_readiness();
        }
    }

    /// Background lookups answered: services forwarding to a backend whose next hop just
    /// appeared (it was left out) or changed (a new MAC) are programmed again.
    fn on_lookups(&mut self, results: Vec<Resolved>) {
        let changed = self.next_hops.record(results);
        for id in self.active_services_using(&changed) {
            if let Err(e) = self.program(&id) {
                warn!(error = %format!("{e:#}"), "updating a service failed");
            }
        }
    }

    /// The forwarded services with a desired backend among `addrs`.
    fn active_services_using(&self, addrs: &HashSet<IpAddr>) -> Vec<ServiceId> {
        if addrs.is_empty() {
            return Vec::new();
        }
        self.services
            .iter()
            .filter(|s| self.active(s))
            .filter(|s| {
                self.desired
                    .get(&s.id)
                    .is_some_and(|d| d.iter().any(|b| addrs.contains(&b.addr)))
            })
            .map(|s| s.id)
            .collect()
    }

    fn on_msg(&mut self, msg: Msg) -> Running {
        match msg {
            Msg::Status { reply } => {
                let live = self.plane.status();
                let _ = reply.send(self.totals.status(live));
            }
            Msg::Counters { reply } => {
                let live = self.plane.counters();
                let _ = reply.send(self.totals.counters(live));
            }
            Msg::Usage { reply } => {
                let _ = reply.send(self.plane.usage());
            }
            Msg::Reconfigure { config, reply } => {
                self.reconfigure(&config);
                let _ = reply.send(());
            }
            Msg::Keep { reply } => {
                let _ = reply.send(self.plane.keep());
                return Running::Stopped;
            }
            Msg::Shutdown { reply } => {
                self.shutdown();
                let _ = reply.send(());
                return Running::Stopped;
            }
        }
        Running::On
    }

    async fn on_gate(&mut self, req: GateRequest) {
        // A VMAC made for the instance since: its address must be known before its
        // services forward (`lb_local_macs`).
        self.plane.refresh_interfaces();
        match req {
            GateRequest::BecomeMaster { instance, reply } => {
                let handed_over = self.kept_masters.remove(&instance);
                if !self.bulk_done() && !handed_over {
                    if let Some(sync) = &mut self.sync {
                        info!(instance = %instance, "waiting for the peers' flows (bulk sync) before becoming MASTER");
                        sync.deferred.push((instance, reply));
                        return;
                    }
                }
                let r = self.become_master(&instance).await;
                let _ = reply.send(r.map_err(|e| format!("{e:#}")));
            }
            GateRequest::LeftMaster { instance } => self.left_master(&instance),
        }
    }

    fn reconfigure(&mut self, config: &Config) {
        let mut new = services_of(config);
        // Keep where the reals' replies arrive until the service is programmed again.
        for s in &mut new {
            if let Some(old) = self
                .services
                .iter()
                .find(|o| o.id == s.id && o.vs.interfaces == s.vs.interfaces)
            {
                s.real_interfaces = old.real_interfaces.clone();
            }
        }
        let kept: HashSet<ServiceId> = new.iter().map(|s| s.id).collect();
        let dropped: Vec<ServiceId> = self
            .services
            .iter()
            .map(|s| s.id)
            .filter(|id| !kept.contains(id))
            .collect();
        self.retire_counters(&dropped);
        for id in dropped {
            if self.unserve(&id) {
                info!(service = %id, "service removed by reload");
            }
        }
        // The new checks resend every desired set (the reals may have changed); the
        // quorum known so far stays until they do, so a reload does not flap a route.
        self.desired.clear();
        self.quorum.retain(|id, _| kept.contains(id));
        self.services = new;
        self.plane.configured(kept);
        self.strict = strict_instances(config);
        self.sync_strict();
        self.release_unused_interfaces();
        let backends = backend_addresses(&config.virtual_servers);
        self.next_hops.retain(&backends);
        self.prefetch(self.next_hops.missing(backends));
    }

    /// Banks the counters of those of `ids` about to be removed from the plane (which
    /// drops them): one read of the plane for all of them.
    fn retire_counters(&mut self, ids: &[ServiceId]) {
        if !ids.iter().any(|id| self.plane.is_programmed(id)) {
            return;
        }
        let last = self.plane.status();
        for id in ids {
            self.totals.retire(*id, last.iter().find(|s| s.id == *id));
        }
    }

    /// Stops forwarding `id` if it is programmed; whether it was.
    fn unserve(&mut self, id: &ServiceId) -> bool {
        if !self.plane.is_programmed(id) {
            return false;
        }
        self.plane.remove(id);
        true
    }

    async fn on_health(&mut self, u: Update) {
        log_update(&u);
        let Some(id) = self
            .services
            .iter()
            .find(|s| {
                s.vs.address == u.service.vip
                    && s.vs.port == u.service.port
                    && s.vs.protocol == u.service.protocol
            })
            .map(|s| s.id)
        else {
            return;
        };
        let addrs: Vec<IpAddr> = u.backends.iter().map(|b| b.addr).collect();
        self.quorum.insert(id, u.quorum_up);
        self.desired.insert(id, u.backends);
        if self.service(&id).is_some_and(|s| self.active(s)) {
            // A changed backend set is looked up afresh, as programming always did.
            self.resolve_now(addrs).await;
            if let Err(e) = self.program(&id) {
                warn!(error = %format!("{e:#}"), "updating a service failed");
            }
        }
    }

    /// The services gated by `instance`'s VRRP state.
    fn services_of(&self, instance: &str) -> Vec<ServiceId> {
        self.services
            .iter()
            .filter(|s| s.instance.as_deref() == Some(instance))
            .map(|s| s.id)
            .collect()
    }

    async fn become_master(&mut self, instance: &str) -> Result<()> {
        self.masters.insert(instance.to_string());
        // Before the instance adds its VIPs: the host never answers them meanwhile.
        self.sync_strict();
        let mine = self.services_of(instance);
        self.serve_all(&mine).await
    }

    /// keepalived's no-accept mode: the plane drops what no service takes of the traffic
    /// to the addresses of the instances in that mode that are MASTER (keepalived adds
    /// its firewall rule on becoming MASTER and removes it on leaving). A failure is
    /// logged; VRRP goes on, as keepalived's does when its firewall rule fails.
    fn sync_strict(&mut self) {
        let mut vips = BTreeSet::new();
        let mut interfaces: Vec<String> = Vec::new();
        for s in self
            .strict
            .iter()
            .filter(|s| self.masters.contains(&s.name))
        {
            vips.extend(s.vips.iter().copied());
            if !interfaces.contains(&s.interface) {
                interfaces.push(s.interface.clone());
            }
        }
        if let Err(e) = self.plane.set_strict_vips(&vips, &interfaces) {
            warn!(error = %format!("{e:#}"), "no-accept mode: traffic to the VIPs is not dropped");
        }
    }

    fn left_master(&mut self, instance: &str) {
        if let Some(sync) = &mut self.sync {
            // A transition still waiting for the bulk window is called off.
            for (_, reply) in sync.deferred.extract_if(.., |(i, _)| i == instance) {
                let _ = reply.send(Err(format!("{instance} left MASTER before it was served")));
            }
        }
        self.masters.remove(instance);
        let mine = self.services_of(instance);
        self.keep_flows_of(&mine);
        self.retire_counters(&mine);
        for id in mine {
            self.unserve(&id);
        }
        self.sync_strict();
        self.release_unused_interfaces();
    }

    /// Programs `ids` with their desired backends (stopping at the first failure).
    async fn serve_all(&mut self, ids: &[ServiceId]) -> Result<()> {
        self.resolve_missing_for(ids).await;
        for id in ids {
            self.program(id)?;
        }
        Ok(())
    }

    /// Looks up, all at once, the next hops of `ids`' desired backends not cached yet.
    async fn resolve_missing_for(&mut self, ids: &[ServiceId]) {
        let wanted = ids
            .iter()
            .filter_map(|id| self.desired.get(id))
            .flatten()
            .map(|b| b.addr);
        let missing = self.next_hops.missing(wanted);
        self.resolve_now(missing).await;
    }

    /// Programs the service with its current desired backends.
    fn program(&mut self, id: &ServiceId) -> Result<()> {
        let Some(idx) = self.services.iter().position(|s| s.id == *id) else {
            return Ok(());
        };
        let s = &self.services[idx];
        let real_interfaces = self.plane.program(&Programming {
            id: *id,
            vs: &s.vs,
            interfaces: &s.interfaces,
            real_interfaces: &s.real_interfaces,
            backends: self.desired.get(id).map(Vec::as_slice).unwrap_or_default(),
            next_hops: &self.next_hops,
        })?;
        self.services[idx].real_interfaces = real_interfaces;
        self.install_pending(id);
        Ok(())
    }

    /// New flows the plane reported: to the peers while this node sends (MASTER of the
    /// sync instance, or always in a BGP tier); else drained and dropped, as a keepalived
    /// BACKUP does not send.
    fn send_learned(&mut self) {
        let Some(sync) = &self.sync else { return };
        let records = self.plane.drain_learned(LEARN_MAX);
        let sending = sync
            .instance
            .as_ref()
            .is_none_or(|i| self.masters.contains(i));
        sync.stats.update(|s| s.sending = sending);
        if records.is_empty() || !sending {
            return;
        }
        let n = records.len() as u64;
        let out = Outgoing {
            records,
            bulk: false,
        };
        if sync.to_peers.try_send(out).is_err() {
            not_sent(&sync.stats, "queue_full", n);
        }
    }

    /// Bulk sync: a peer that just started asked for this node's flows (also every
    /// [`SYNC_REFRESH_EVERY`]). Answered while this node sends (MASTER of the sync
    /// instance, or always in a BGP tier).
    fn send_table(&mut self) {
        let Some(sync) = &self.sync else { return };
        let sending = sync
            .instance
            .as_ref()
            .is_none_or(|i| self.masters.contains(i));
        if !sending {
            return;
        }
        let records = self.plane.dump_flows();
        let n = records.len() as u64;
        info!(
            flows = n,
            "sending this node's flows to a starting peer (bulk sync)"
        );
        if n == 0 {
            return;
        }
        let out = Outgoing {
            records,
            bulk: true,
        };
        if sync.to_peers.try_send(out).is_err() {
            not_sent(&sync.stats, "queue_full", n);
        }
    }

    /// Peers' flows: written now for services this node programs, else kept until it
    /// does (a BACKUP installs its MASTER's flows when it takes over, before its VIPs).
    fn on_synced(&mut self, records: Vec<FlowRecord>) {
        let Some(sync) = &mut self.sync else { return };
        sync.bulk.flows(std::time::Instant::now());
        let (now, later): (Vec<FlowRecord>, Vec<FlowRecord>) = records
            .into_iter()
            .partition(|r| self.plane.is_programmed(&r.service));
        let refused = sync.pending.insert(later, wall_ms());
        let pending = sync.pending.len() as u64;
        let report = self.plane.install_flows(&now);
        sync.stats.update(|s| {
            s.pending = pending;
            if refused > 0 {
                *s.skipped.entry("pending_full".into()).or_default() += refused;
            }
        });
        record_install(&sync.stats, &report);
    }

    /// Writes the flows kept for `id` (just programmed).
    fn install_pending(&mut self, id: &ServiceId) {
        let Some(sync) = &mut self.sync else { return };
        let records = sync.pending.take(id, wall_ms());
        if records.is_empty() {
            return;
        }
        let pending = sync.pending.len() as u64;
        let report = self.plane.install_flows(&records);
        info!(service = %id, installed = report.installed, skipped = ?report.skipped, "peers' flows installed before serving");
        sync.stats.update(|s| s.pending = pending);
        record_install(&sync.stats, &report);
    }

    /// A MASTER stepping down keeps its services' flows with the peers' records, to be
    /// written back when it is MASTER again: keepalived + LVS keep them too (a BACKUP's
    /// IPVS table holds the connections until they expire), whereas here the tables go
    /// with the service. Without this a flow the new MASTER's Maglev table sends
    /// elsewhere breaks when mastership comes back (the soak's master link cut after a
    /// SIGKILL failover and preemption: DR connections reset).
    fn keep_flows_of(&mut self, ids: &[ServiceId]) {
        let Some(sync) = &mut self.sync else { return };
        let records: Vec<FlowRecord> = self
            .plane
            .dump_flows()
            .into_iter()
            .filter(|r| ids.contains(&r.service))
            .collect();
        if records.is_empty() {
            return;
        }
        let flows = records.len();
        let refused = sync.pending.insert(records, wall_ms());
        let pending = sync.pending.len() as u64;
        sync.stats.update(|s| {
            s.pending = pending;
            if refused > 0 {
                *s.skipped.entry("pending_full".into()).or_default() += refused;
            }
        });
        info!(
            flows,
            "left MASTER: this node's flows kept for its next MASTER transition"
        );
    }

    fn expire_pending(&mut self) {
        let Some(sync) = &mut self.sync else { return };
        if sync
            .pending
            .expire(wall_ms(), PENDING_TTL.as_millis() as u64)
            > 0
        {
            let pending = sync.pending.len() as u64;
            sync.stats.update(|s| s.pending = pending);
        }
    }

    /// Looks `addrs` up concurrently and waits for them (at most about one lookup's
    /// timeout); failures are logged where the backend is left out.
    async fn resolve_now(&mut self, addrs: Vec<IpAddr>) {
        let Some(resolver) = &self.resolver else {
            return;
        };
        if addrs.is_empty() {
            return;
        }
        let results = resolver.resolve_all(addrs).await;
        for r in &results {
            if let Err(e) = &r.egress {
                debug!(backend = %r.addr, error = %e, "next hop unresolved");
            }
        }
        self.next_hops.record(results);
    }

    /// Looks `addrs` up in the background; the cache is filled when they answer.
    fn prefetch(&self, addrs: Vec<IpAddr>) {
        let (Some(resolver), Some(done)) = (self.resolver.clone(), self.lookups_done.clone())
        else {
            return;
        };
        if addrs.is_empty() {
            return;
        }
        tokio::spawn(async move {
            let _ = done.send(resolver.resolve_all(addrs).await);
        });
    }

    /// Removes the NAT entries of finished or idle connections (the data plane never
    /// deletes them, so a full table cannot evict an established connection).
    /// Whether the 1 s sweep has anything to do: NAT entries, or kept peer flows.
    fn sweeps(&self) -> bool {
        self.sync.is_some() || self.has_nat()
    }

    fn has_nat(&self) -> bool {
        self.services
            .iter()
            .any(|s| s.vs.lb_kind == config::LbKind::Nat)
    }

    fn sweep_nat(&mut self) {
        if self.has_nat() {
            self.plane.sweep_nat(&self.nat_timeouts);
        }
    }

    /// Next hops the data plane met without a neighbour entry (it dropped those
    /// packets): have the kernel resolve them, so the next packets go through, and
    /// refresh the cache with what they resolve to.
    fn resolve_neigh_misses(&mut self) {
        let (Some(resolver), Some(done)) = (&self.resolver, &self.lookups_done) else {
            return;
        };
        for (addr, ifindex) in self.plane.take_neigh_misses() {
            debug!(next_hop = %addr, ifindex, "resolving a next hop for the data plane");
            let (resolver, done) = (resolver.clone(), done.clone());
            tokio::spawn(async move {
                let r = resolver.resolve(addr).await;
                if let Err(e) = &r.egress {
                    warn!(next_hop = %addr, error = %e, "next hop of NAT replies unresolved");
                }
                let _ = done.send(vec![r]);
            });
        }
    }

    /// Releases interfaces no active service (nor a MASTER in no-accept mode) needs.
    fn release_unused_interfaces(&mut self) {
        let strict = self
            .strict
            .iter()
            .filter(|s| self.masters.contains(&s.name))
            .map(|s| s.interface.clone());
        let needed: HashSet<String> = self
            .services
            .iter()
            .filter(|s| self.active(s))
            .flat_map(|s| s.all_interfaces().cloned())
            .chain(strict)
            .collect();
        self.plane.release_interfaces_except(&needed);
    }

    fn shutdown(&mut self) {
        let ids: Vec<ServiceId> = self.services.iter().map(|s| s.id).collect();
        self.plane.shutdown(&ids);
    }
}

fn record_install(stats: &SyncStats, report: &InstallReport) {
    stats.update(|s| {
        s.installed += report.installed;
        for (why, n) in &report.skipped {
            *s.skipped.entry((*why).to_string()).or_default() += n;
        }
    });
}

fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The "desired backend set" line: what health checking asks of the data plane.
fn log_update(u: &Update) {
    let backends: Vec<String> = u
        .backends
        .iter()
        .map(|b| {
            let sorry = if b.sorry { " (sorry server)" } else { "" };
            format!("{}:{} weight {}{sorry}", b.addr, b.port, b.weight)
        })
        .collect();
    info!(
        service = %format!("{}:{} {:?}", u.service.vip, u.service.port, u.service.protocol),
        quorum_up = u.quorum_up,
        backends = %backends.join(", "),
        "desired backend set"
    );
}

#[cfg(test)]
mod tests;
