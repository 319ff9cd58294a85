//! One VRRP instance at work: the pure state machine ([`fsm`]) wrapped in its IO — the
//! raw socket, timers, virtual addresses, gratuitous ARP / neighbour advertisements,
//! notify scripts — as one tokio task. Other tasks talk to it through [`InstanceHandle`].

use std::{
    collections::BTreeMap,
    net::IpAddr,
    time::{Duration, SystemTime},
};

use tokio::{
    sync::{mpsc, oneshot, watch},
    time::Instant,
};
use tracing::{debug, info, warn};

use crate::config::{IpRoute, IpRule};

use super::{
    ah::{self, AhError, SeqCounter},
    arbiter::{self, ArbiterSpec},
    fsm::{self, Action, Event},
    notify::{Notifier, NotifyScripts, NotifyState, Subject},
    packet::{self, DropReason, Expect},
    paths::{PathChange, PathWatch},
    probe::{Sender, VipProbe},
    receiver::{Incoming, Receiver, TakenCount, Template},
    routes,
    socket::{SocketConfig, VrrpSocket},
    split_brain::{self, Change, Detector, Episode, Evidence, Rank, Resolution, Verdict},
    types::{Advert, Auth, InstanceAuth, State, Version},
    vip::{self, Vip, VipManager},
};

/// keepalived's gratuitous-ARP policy on becoming master.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GarpPolicy {
    /// Delay before the second burst (`garp_master_delay`, 0 = none).
    pub delay: Duration,
    /// Packets per burst (`garp_master_repeat`).
    pub repeat: u32,
    /// Periodic burst while master (`garp_master_refresh`).
    pub refresh: Option<Duration>,
    /// Gap between packets of a burst (`vrrp_garp_interval` / `vrrp_gna_interval`).
    pub interval: Duration,
}

/// Everything an instance needs, resolved from the configuration.
#[derive(Debug, Clone)]
pub struct InstanceSpec {
    pub fsm: fsm::Params,
    pub interface: String,
    pub vips: Vec<Vip>,
    /// `virtual_ipaddress_excluded`: held while master like `vips`, never advertised.
    pub excluded: Vec<Vip>,
    /// `virtual_routes` / `virtual_rules`: added after the VIPs on becoming master,
    /// removed before them on leaving it.
    pub routes: Vec<IpRoute>,
    pub rules: Vec<IpRule>,
    /// VRRPv2 authentication (v3: always none).
    pub auth: InstanceAuth,
    /// The multicast group, or None for unicast to `unicast_peers`.
    pub multicast_group: Option<IpAddr>,
    pub unicast_peers: Vec<IpAddr>,
    pub garp: GarpPolicy,
    pub notify: NotifyScripts,
    /// E-mail alerts and notify-FIFO lines on transitions, or none.
    pub report: Option<crate::alerts::Reporter>,
    pub script_timeout: Duration,
    pub script_user: Option<String>,
    /// VRIDs of the other instances on the same interface and family: their adverts are
    /// not "wrong VRID" drops.
    pub sibling_vrids: Vec<u8>,
    /// The data plane to consult around mastership (None: VRRP only).
    pub gate: Option<mpsc::UnboundedSender<GateRequest>>,
    /// A previous daemon stopped with --keep-dataplane while this instance was MASTER:
    /// keep its VIPs and take mastership over at once (no failover to a peer).
    pub adopt_master: bool,
    /// Split-brain detection (None: off, keepalived's behaviour).
    pub split_brain: Option<SplitBrainSpec>,
    /// The arbiter this node must reach to be MASTER (None: none).
    pub arbiter: Option<ArbiterSpec>,
    /// More heartbeat paths besides `interface` (`heartbeat_paths`).
    pub paths: Vec<PathSpec>,
}

/// One more path for the adverts: its own socket, source and destinations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathSpec {
    pub interface: String,
    pub src: IpAddr,
    /// The group, or None for unicast to `unicast_peers`.
    pub multicast_group: Option<IpAddr>,
    pub unicast_peers: Vec<IpAddr>,
}

impl PathSpec {
    fn destinations(&self) -> Vec<IpAddr> {
        match self.multicast_group {
            Some(group) => vec![group],
            None => self.unicast_peers.clone(),
        }
    }
}

/// `split_brain_check` and friends: probe our VIPs while MASTER, and what to do when
/// another node answers for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitBrainSpec {
    /// Between probe rounds.
    pub interval: Duration,
    pub resolution: Resolution,
    /// `notify_split_brain`.
    pub notify: Option<String>,
}

impl InstanceSpec {
    /// Every address held while master: the advertised ones, then the excluded ones.
    pub fn held(&self) -> impl Iterator<Item = &Vip> {
        self.vips.iter().chain(&self.excluded)
    }
}

/// The data plane's say in mastership: asked before the VIPs are added (so the node never
/// owns a VIP it cannot forward for), told after they are removed.
#[derive(Debug)]
pub enum GateRequest {
    BecomeMaster {
        instance: String,
        reply: oneshot::Sender<Result<(), String>>,
    },
    LeftMaster {
        instance: String,
    },
}

/// How long the data plane may take to get ready before the VIPs are added anyway.
const GATE_TIMEOUT: Duration = Duration::from_secs(5);

/// Commands from the rest of the daemon.
#[derive(Debug, Clone)]
pub enum Command {
    /// Tracking changed: fault reasons (empty = healthy) and the effective priority.
    Tracking { faults: Vec<String>, priority: u8 },
    /// A sync group moves this instance.
    Force(State),
    /// Graceful stop: priority-0 advert, VIPs removed, notify_stop.
    Shutdown,
    /// A reload changed the other instances on this interface: their VRIDs.
    SiblingVrids(Vec<u8>),
    /// A reload changed this instance but not its socket (interface, VRID, version,
    /// source, multicast or unicast): applied in place, the state kept.
    Reconfigure(Box<InstanceSpec>),
    /// A tracked BFD session to this neighbor left Up (`track_bfd`, docs/bfd.md): a
    /// BACKUP whose MASTER it is acts as if the master-down timer expired.
    PeerDown(IpAddr),
}

/// A state change, for sync groups and the data plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub instance: String,
    pub from: State,
    pub to: State,
    pub reason: String,
}

/// What an instance tells the rest of the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    Transition(Transition),
    /// A sync-group member asks its group before moving on its own (keepalived only lets
    /// a member become MASTER when all want to, or leave FAULT when none is faulty).
    Request {
        instance: String,
        want: State,
    },
    /// A split-brain episode began (`Some`) or ended (`None`): the hook for alerts
    /// beyond the notify script (e-mail).
    SplitBrain {
        instance: String,
        episode: Option<String>,
    },
}

/// What status and metrics show of an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceStatus {
    pub name: String,
    pub state: State,
    pub base_priority: u8,
    pub effective_priority: u8,
    pub master: Option<IpAddr>,
    pub last_transition: Option<(SystemTime, String)>,
    pub transitions: u64,
    /// Adverts accepted by the instance task; see [`Self::adverts_received_total`].
    pub adverts_received: u64,
    /// Adverts its receive thread took without waking the task (a steady master's).
    pub adverts_taken: TakenCount,
    pub adverts_sent: u64,
    pub drops: BTreeMap<&'static str, u64>,
    /// keepalived's `wantstate == MASTER` (sync groups).
    pub wants_master: bool,
    /// Its own tracking reports a fault (not merely forced to FAULT by a sync group).
    pub faulty: bool,
    /// The split-brain episode going on: who else holds our VIPs.
    pub split_brain: Option<String>,
    /// Split-brain episodes since start.
    pub split_brain_episodes: u64,
    /// Adverts from another MASTER while we were MASTER (it did not yield to us).
    pub foreign_master_adverts: u64,
    /// Holding BACKUP after a split-brain step-down.
    pub held: bool,
    /// With `heartbeat_paths`: each path (the instance's interface first) with whether it
    /// delivers and how often it was lost.
    pub paths: Vec<PathStatus>,
}

impl InstanceStatus {
    /// Every advert accepted, by the task or its receive thread.
    pub fn adverts_received_total(&self) -> u64 {
        self.adverts_received + self.adverts_taken.get()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathStatus {
    pub name: String,
    pub up: bool,
    pub lost: u64,
}

pub struct InstanceHandle {
    pub name: String,
    pub commands: mpsc::UnboundedSender<Command>,
    pub status: watch::Receiver<InstanceStatus>,
    pub task: tokio::task::JoinHandle<()>,
}

/// Starts the instance task. Fails at once if its socket cannot be opened.
pub fn spawn(
    spec: InstanceSpec,
    reports: mpsc::UnboundedSender<Report>,
) -> anyhow::Result<InstanceHandle> {
    let (socket, reader) = VrrpSocket::open_split(&SocketConfig {
        interface: spec.interface.clone(),
        family_v6: spec.fsm.primary_address.is_ipv6(),
        src: spec.fsm.primary_address,
        multicast_group: spec.multicast_group,
        ah_key: spec.auth.ah_key(),
    })
    .map_err(|e| {
        anyhow::anyhow!(
            "instance {}: cannot open the VRRP socket on {} ({e}); is this root and does the interface exist?",
            spec.fsm.name,
            spec.interface
        )
    })?;
    let adverts_taken = TakenCount::default();
    let adverts = Receiver::spawn(&spec.fsm.name, reader, adverts_taken.clone()).map_err(|e| {
        anyhow::anyhow!(
            "instance {}: cannot start its VRRP receive thread ({e})",
            spec.fsm.name
        )
    })?;
    let vips = VipManager::new()?;
    let name = spec.fsm.name.clone();
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let status = InstanceStatus {
        name: name.clone(),
        state: State::Init,
        base_priority: spec.fsm.priority,
        effective_priority: spec.fsm.priority,
        master: None,
        last_transition: None,
        transitions: 0,
        adverts_received: 0,
        adverts_taken: adverts_taken.clone(),
        adverts_sent: 0,
        drops: BTreeMap::new(),
        wants_master: false,
        faulty: false,
        split_brain: None,
        split_brain_episodes: 0,
        foreign_master_adverts: 0,
        held: false,
        paths: path_names(&spec)
            .into_iter()
            .map(|name| PathStatus {
                name,
                up: true,
                lost: 0,
            })
            .collect(),
    };
    let (status_tx, status_rx) = watch::channel(status);
    let notifier = Notifier::spawn(
        Subject::Instance,
        &name,
        spec.notify.clone(),
        spec.script_timeout,
        spec.script_user.clone(),
        spec.report.clone(),
    );
    let mut paths = Vec::new();
    for p in &spec.paths {
        let socket = VrrpSocket::open(&SocketConfig {
            interface: p.interface.clone(),
            family_v6: p.src.is_ipv6(),
            src: p.src,
            multicast_group: p.multicast_group,
            ah_key: spec.auth.ah_key(),
        })
        .map_err(|e| {
            anyhow::anyhow!(
                "instance {}: cannot open the VRRP socket of heartbeat path {} ({e})",
                spec.fsm.name,
                p.interface
            )
        })?;
        paths.push(socket);
    }
    let watch = PathWatch::new(1 + spec.paths.len());
    let probe = open_probe(&spec);
    let arbiter = spec
        .arbiter
        .clone()
        .map(|a| arbiter::spawn(a, name.clone()));
    let runner = Runner {
        fsm: fsm::Instance::new(spec.fsm.clone()),
        spec,
        socket,
        adverts,
        vips,
        notifier,
        status: status_tx,
        reports,
        timers: Timers::default(),
        garp: None,
        drop_log: DropLog::default(),
        ah_seq: SeqCounter::default(),
        probe,
        detector: Detector::default(),
        last_master: None,
        arbiter,
        round: Round::default(),
        paths,
        watch,
    };
    let task = tokio::spawn(runner.run(cmd_rx));
    Ok(InstanceHandle {
        name,
        commands: cmd_tx,
        status: status_rx,
        task,
    })
}

/// The probe socket (ARP or neighbour discovery, by the instance's family) when
/// split-brain checks or an arbiter are on.
fn open_probe(spec: &InstanceSpec) -> Option<VipProbe> {
    if spec.split_brain.is_none() && spec.arbiter.is_none() {
        return None;
    }
    let src = spec.fsm.primary_address;
    match VipProbe::open(&spec.interface, src) {
        Ok(p) => Some(p),
        Err(e) => {
            warn!(instance = %spec.fsm.name, interface = %spec.interface, error = %e, "cannot open the split-brain probe socket; split brain is detected by adverts only");
            None
        }
    }
}

#[derive(Default)]
struct Timers {
    advert: Option<Instant>,
    master_down: Option<Instant>,
    preempt: Option<Instant>,
    /// The end of the current split-brain probe round (Some while probing).
    probe: Option<Instant>,
}

/// Logs drops at most once per reason per 10 s (keepalived floods otherwise).
#[derive(Default)]
struct DropLog {
    last: BTreeMap<&'static str, std::time::Instant>,
}

impl DropLog {
    fn should_log(&mut self, label: &'static str) -> bool {
        let now = std::time::Instant::now();
        match self.last.get(label) {
            Some(t) if now.duration_since(*t) < Duration::from_secs(10) => false,
            _ => {
                self.last.insert(label, now);
                true
            }
        }
    }
}

struct Runner {
    spec: InstanceSpec,
    fsm: fsm::Instance,
    /// Sends only: `adverts` reads the same socket on a thread of its own.
    socket: VrrpSocket,
    adverts: Receiver,
    vips: VipManager,
    notifier: Notifier,
    status: watch::Sender<InstanceStatus>,
    reports: mpsc::UnboundedSender<Report>,
    timers: Timers,
    /// The gratuitous-ARP task of the current mastership.
    garp: Option<tokio::task::JoinHandle<()>>,
    drop_log: DropLog,
    /// `auth_type AH`: keepalived's one sequence counter, for sending and receiving.
    ah_seq: SeqCounter,
    probe: Option<VipProbe>,
    detector: Detector,
    /// The last master heard (its adverts), for split-brain resolution.
    last_master: Option<Rank>,
    /// The arbiter's reachability changes.
    arbiter: Option<mpsc::UnboundedReceiver<bool>>,
    round: Round,
    /// The sockets of `spec.paths`, in order.
    paths: Vec<VrrpSocket>,
    watch: PathWatch,
}

/// "eth0" for the instance's interface, then each path's ("eth1", or "eth1 unicast").
fn path_names(spec: &InstanceSpec) -> Vec<String> {
    if spec.paths.is_empty() {
        return Vec::new();
    }
    std::iter::once(spec.interface.clone())
        .chain(spec.paths.iter().map(|p| p.interface.clone()))
        .collect()
}

/// The next packet on any extra path, with its index (1-based: 0 is the interface's).
async fn recv_paths(paths: &[VrrpSocket]) -> (usize, std::io::Result<super::socket::Received>) {
    if paths.is_empty() {
        return std::future::pending().await;
    }
    let recvs = paths
        .iter()
        .enumerate()
        .map(|(i, s)| Box::pin(async move { (i + 1, s.recv().await) }));
    futures::future::select_all(recvs).await.0
}

/// What the current probe round saw.
#[derive(Default)]
struct Round {
    /// Another node answered for one of our VIPs.
    answered: bool,
    /// Adverts were accepted.
    adverts: bool,
}

async fn recv_arbiter(rx: Option<&mut mpsc::UnboundedReceiver<bool>>) -> Option<bool> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn recv_probe(probe: Option<&VipProbe>) -> std::io::Result<Sender> {
    match probe {
        Some(p) => p.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

impl Runner {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        if self.spec.adopt_master {
            self.handle(Event::Startup).await;
            self.handle(Event::Force(State::Master)).await;
        } else {
            self.remove_stale_vips().await;
            self.handle(Event::Startup).await;
        }
        loop {
            tokio::select! {
                incoming = self.adverts.recv() => match incoming {
                    Incoming::Datagram(Ok(r)) => self.on_packet(0, r).await,
                    Incoming::Datagram(Err(e)) => warn!(instance = %self.spec.fsm.name, error = %e, "VRRP receive failed"),
                    // The delegated timer ran out: back here, it fires at once.
                    Incoming::Expired => self.take_back_timer(),
                },
                _ = sleep_until_opt(self.timers.advert) => {
                    self.timers.advert = None;
                    self.handle(Event::AdvertTimer).await;
                }
                _ = sleep_until_opt(self.timers.master_down) => {
                    self.timers.master_down = None;
                    self.handle(Event::MasterDownTimer).await;
                }
                _ = sleep_until_opt(self.timers.preempt) => {
                    self.timers.preempt = None;
                    self.handle(Event::PreemptDelayOver).await;
                }
                (path, received) = recv_paths(&self.paths) => match received {
                    Ok(r) => self.on_packet(path, r).await,
                    Err(e) => warn!(instance = %self.spec.fsm.name, path, error = %e, "VRRP receive failed on a heartbeat path"),
                },
                sender = recv_probe(self.probe.as_ref()) => match sender {
                    Ok(sender) => self.on_neighbour(sender).await,
                    Err(e) => warn!(instance = %self.spec.fsm.name, error = %e, "split-brain probe receive failed"),
                },
                _ = sleep_until_opt(self.timers.probe) => {
                    self.timers.probe = None;
                    self.probe_round().await;
                }
                reachable = recv_arbiter(self.arbiter.as_mut()) => match reachable {
                    Some(ok) => {
                        self.handle(Event::Arbiter(ok)).await;
                    }
                    None => self.arbiter = None,
                },
                cmd = commands.recv() => match cmd {
                    Some(Command::Tracking { faults, priority }) => self.on_tracking(faults, priority).await,
                    Some(Command::Force(state)) => {
                        self.handle(Event::Force(state)).await;
                    }
                    Some(Command::SiblingVrids(vrids)) => self.spec.sibling_vrids = vrids,
                    Some(Command::Reconfigure(spec)) => self.reconfigure(*spec).await,
                    Some(Command::PeerDown(neighbor)) => self.on_peer_down(neighbor).await,
                    Some(Command::Shutdown) | None => {
                        self.handle(Event::Shutdown).await;
                        self.notifier.notify(NotifyState::Stop, self.fsm.effective_priority());
                        return;
                    }
                },
            }
        }
    }

    /// A crashed predecessor may have left the VIPs behind; an instance starts without
    /// them (keepalived does the same), so only a master ever holds them.
    async fn remove_stale_vips(&self) {
        for v in self.spec.held() {
            if matches!(self.vips.present(v).await, Ok(true)) {
                info!(instance = %self.spec.fsm.name, vip = %v.addr, "removing a VIP left by a previous run");
                if let Err(e) = self.vips.remove(v).await {
                    warn!(instance = %self.spec.fsm.name, vip = %v.addr, error = %e, "removing a stale VIP failed");
                }
            }
        }
    }

    /// keepalived's reload: a Master swaps only the addresses that changed (the ones kept
    /// never leave the interface), then the state machine takes the new parameters.
    async fn reconfigure(&mut self, mut spec: InstanceSpec) {
        let name = spec.fsm.name.clone();
        if self.fsm.state() == State::Master {
            for v in self.spec.held().filter(|v| !spec.held().any(|n| n == *v)) {
                info!(instance = %name, vip = %v.addr, "reload: removing a VIP");
                if let Err(e) = self.vips.remove(v).await {
                    warn!(instance = %name, vip = %v.addr, error = %e, "removing VIP failed");
                }
            }
            let added: Vec<Vip> = spec
                .held()
                .filter(|n| !self.spec.held().any(|v| v == *n))
                .cloned()
                .collect();
            for v in &added {
                info!(instance = %name, vip = %v.addr, "reload: adding a VIP");
                if let Err(e) = self.vips.add(v).await {
                    warn!(instance = %name, vip = %v.addr, error = %e, "adding VIP failed");
                }
            }
            let handle = self.vips.handle();
            routes::uninstall(
                handle,
                &name,
                &routes::missing(&self.spec.routes, &spec.routes),
                &routes::missing(&self.spec.rules, &spec.rules),
            )
            .await;
            routes::install(
                handle,
                &name,
                &routes::missing(&spec.routes, &self.spec.routes),
                &routes::missing(&spec.rules, &self.spec.rules),
            )
            .await;
            if !added.is_empty() || spec.garp != self.spec.garp {
                if let Some(old) = self.garp.take() {
                    old.abort();
                }
                self.garp = Some(tokio::spawn(announce(
                    spec.held().cloned().collect(),
                    spec.garp,
                    name.clone(),
                )));
            }
        }
        let notify = (&spec.notify, spec.script_timeout, &spec.script_user);
        if notify
            != (
                &self.spec.notify,
                self.spec.script_timeout,
                &self.spec.script_user,
            )
            || spec.report.as_ref().map(|m| m.smtp_alert)
                != self.spec.report.as_ref().map(|m| m.smtp_alert)
        {
            self.notifier = Notifier::spawn(
                Subject::Instance,
                &name,
                spec.notify.clone(),
                spec.script_timeout,
                spec.script_user.clone(),
                spec.report.clone(),
            );
        }
        // The socket was bound to this source; the data-plane link and adoption belong
        // to the running instance.
        spec.fsm.primary_address = self.spec.fsm.primary_address;
        spec.gate = self.spec.gate.take();
        spec.adopt_master = self.spec.adopt_master;
        let params = spec.fsm.clone();
        if spec.split_brain.is_none() {
            // Detection turned off: an episode ends (with the old settings' hook), a hold
            // is lifted.
            if let Some(change) = self.detector.reset() {
                self.on_split_brain(change).await;
            }
            self.step(Event::Hold(false)).await;
        }
        let arbiter_changed = spec.arbiter != self.spec.arbiter;
        let probe_changed = (spec.split_brain.is_some() || spec.arbiter.is_some())
            != (self.spec.split_brain.is_some() || self.spec.arbiter.is_some());
        self.spec = spec;
        self.status
            .send_modify(|s| s.base_priority = params.priority);
        if probe_changed {
            self.probe = open_probe(&self.spec);
        }
        if arbiter_changed {
            // The old check task ends with its receiver; reachable until the new one says
            // otherwise.
            self.arbiter = self
                .spec
                .arbiter
                .clone()
                .map(|a| arbiter::spawn(a, name.clone()));
            self.step(Event::Arbiter(true)).await;
        }
        self.handle(Event::Reconfigure(params)).await;
    }

    /// Our extension to `track_bfd` (`bfd::track::master_down_now`): the BFD session to
    /// the MASTER went down, so its adverts will not come: take over now instead of
    /// after the master-down interval.
    async fn on_peer_down(&mut self, neighbor: IpAddr) {
        let backup = self.fsm.state() == State::Backup;
        let master = self.fsm.master_address();
        if crate::bfd::track::master_down_now(neighbor, true, false, master, backup) {
            info!(instance = %self.spec.fsm.name, %neighbor,
                "BFD session to the master went down: acting as if the master-down timer expired");
            self.take_back_timer();
            self.timers.master_down = None;
            self.handle(Event::MasterDownTimer).await;
        }
    }

    async fn on_tracking(&mut self, faults: Vec<String>, priority: u8) {
        if priority != self.fsm.effective_priority() {
            self.handle(Event::Priority(priority)).await;
        }
        let faulty = !faults.is_empty();
        // Compare with the instance's own fault: a sync group may have forced it into
        // FAULT without it being faulty itself.
        if faulty != self.fsm.is_faulty() {
            let reason = if faulty {
                format!("tracking failed: {}", faults.join(", "))
            } else {
                "tracking recovered".to_string()
            };
            self.handle(Event::Fault { faulty, reason }).await;
        }
    }

    fn expect(&self) -> Expect {
        Expect {
            version: self.spec.fsm.version,
            vrid: self.spec.fsm.vrid,
            auth: self.spec.auth.wire(),
            interval_cs: self.spec.fsm.advert_interval_cs,
            multicast: self.spec.multicast_group.is_some(),
            addresses: self.spec.vips.iter().map(|v| v.addr).collect(),
        }
    }

    fn on_paths(&mut self, changes: Vec<PathChange>) {
        if changes.is_empty() {
            return;
        }
        let names = path_names(&self.spec);
        let name = |i: usize| names.get(i).cloned().unwrap_or_default();
        for change in &changes {
            match *change {
                PathChange::Lost(i) => {
                    warn!(instance = %self.spec.fsm.name, path = %name(i), "heartbeat path lost: no adverts on it while another path delivers (nothing else changes)")
                }
                PathChange::Restored(i) => {
                    info!(instance = %self.spec.fsm.name, path = %name(i), "heartbeat path restored")
                }
            }
        }
        let states = self.watch.states();
        self.status.send_modify(|s| {
            for (p, (up, lost)) in s.paths.iter_mut().zip(states) {
                p.up = up;
                p.lost = lost;
            }
        });
    }

    fn count_drop(&mut self, reason: DropReason, from: IpAddr) {
        let label = reason.label();
        self.status
            .send_modify(|s| *s.drops.entry(label).or_default() += 1);
        if self.drop_log.should_log(label) {
            warn!(instance = %self.spec.fsm.name, %from, reason = %reason, "VRRP advert dropped");
        }
    }

    async fn on_packet(&mut self, path: usize, r: super::socket::Received) {
        let via = match path.checked_sub(1).and_then(|i| self.spec.paths.get(i)) {
            Some(p) => Via {
                multicast: p.multicast_group.is_some(),
                peers: &p.unicast_peers,
            },
            None => Via {
                multicast: self.spec.multicast_group.is_some(),
                peers: &self.spec.unicast_peers,
            },
        };
        let mut expect = self.expect();
        expect.multicast = via.multicast;
        match screen(&self.spec, via, &expect, &r, &mut self.ah_seq) {
            Screened::Accept(advert, seq) => {
                let before = (self.fsm.state() == State::Backup).then(|| self.fsm.clone());
                self.status.send_modify(|s| s.adverts_received += 1);
                if let Some(seq) = seq {
                    self.ah_on_advert(&advert, r.src, seq);
                }
                if !self.spec.paths.is_empty() && advert.priority != 0 {
                    let window = self.fsm.master_down_interval();
                    let changes = self.watch.advert(path, std::time::Instant::now(), window);
                    self.on_paths(changes);
                }
                self.round.adverts |= advert.priority != 0;
                let was_master = self.fsm.state() == State::Master;
                let ours = r.src == self.spec.fsm.primary_address;
                if advert.priority != 0 && !ours {
                    self.last_master = Some(Rank {
                        priority: advert.priority,
                        address: r.src,
                    });
                }
                let restart = self
                    .handle(Event::Advert {
                        from: r.src,
                        priority: advert.priority,
                        interval_cs: advert.interval_cs,
                    })
                    .await;
                if let (Some(before), Some(restart), Some(deadline)) =
                    (before, restart, self.timers.master_down)
                {
                    // The same advert again will do the same (a pure state machine in the
                    // same state): the receive thread may take it.
                    if before == self.fsm && path == 0 && !ours && self.quiet_allowed() {
                        self.adverts
                            .delegate(Template::of(&r), restart, deadline.into_std());
                        self.timers.master_down = None;
                    }
                }
                if was_master && self.fsm.state() == State::Master && advert.priority != 0 && !ours
                {
                    // Another master that did not yield to us: it cannot hear us.
                    self.status.send_modify(|s| s.foreign_master_adverts += 1);
                    self.evidence(Evidence::ForeignMaster {
                        from: r.src,
                        priority: advert.priority,
                    })
                    .await;
                }
            }
            Screened::Sibling | Screened::Ignore => {}
            Screened::Drop(reason) => self.count_drop(reason, r.src),
        }
    }

    /// keepalived's `vrrp_state_master_rx`: a MASTER hearing a lower-priority AH advert
    /// takes its sequence number plus one ("Syncing seq_num"), so its next adverts are
    /// accepted by a peer that counted past ours.
    fn ah_on_advert(&mut self, advert: &Advert, from: IpAddr, seq: u32) {
        if self.fsm.state() != State::Master {
            return;
        }
        let ours = self.fsm.effective_priority();
        let lower = advert.priority < ours
            || (advert.priority == ours && from < self.spec.fsm.primary_address);
        if advert.priority != 0 && lower {
            info!(instance = %self.spec.fsm.name, %from, seq, "IPsec AH: syncing the sequence number with a lower-priority advert");
            self.ah_seq.on_lower_priority(seq);
        }
    }

    /// Returns [`step`](Self::step)'s verdict.
    async fn handle(&mut self, event: Event) -> Option<Duration> {
        let restart = self.step(event).await;
        self.sync_probing().await;
        if self.fsm.state() == State::Master && !self.spec.paths.is_empty() {
            // A master hears no adverts: its paths start over.
            let changes = self.watch.reset();
            self.on_paths(changes);
        }
        restart
    }

    /// One event through the state machine and its actions. `Some(interval)` when all
    /// it did was restart the master-down timer (to `interval`).
    async fn step(&mut self, event: Event) -> Option<Duration> {
        debug!(instance = %self.spec.fsm.name, ?event, "event");
        // Adverts noted on the receive thread come first, in their order.
        self.take_back_timer();
        let actions = self.fsm.handle(event);
        let restart = match actions.as_slice() {
            [Action::ArmMasterDownTimer(d)] => Some(*d),
            _ => None,
        };
        for action in actions {
            self.apply(action).await;
        }
        let (state, prio, master) = (
            self.fsm.state(),
            self.fsm.effective_priority(),
            self.fsm.master_address(),
        );
        let (wants_master, faulty) = (self.fsm.wants_master(), self.fsm.is_faulty());
        let held = self.fsm.is_held();
        self.status.send_modify(|s| {
            s.state = state;
            s.effective_priority = prio;
            s.master = master;
            s.wants_master = wants_master;
            s.faulty = faulty;
            s.held = held;
        });
        restart
    }

    /// The master-down timer back from the receive thread, if it was delegated: as the
    /// adverts the thread took left it (restarted on each arrival).
    fn take_back_timer(&mut self) {
        if let Some(deadline) = self.adverts.take_back() {
            self.timers.master_down = Some(Instant::from_std(deadline));
        }
    }

    /// Whether adverts like the one just handled may be left to the receive thread: not
    /// with heartbeat paths (each advert feeds their watch), `auth_type AH` (a sequence
    /// number moves with each) or probing (a round counts the adverts it saw).
    fn quiet_allowed(&self) -> bool {
        self.spec.paths.is_empty() && self.spec.auth.ah_key().is_none() && !self.probing_wanted()
    }

    /// Probes run while MASTER, and while holding BACKUP after a step-down (to learn when
    /// the other node lets go of the VIPs).
    /// With an arbiter, a Backup probes too: before it takes over from a silent master
    /// it must know the master is gone, not merely cut off.
    fn probing_wanted(&self) -> bool {
        let state = self.fsm.state();
        (self.spec.split_brain.is_some() && (state == State::Master || self.fsm.is_held()))
            || (self.spec.arbiter.is_some() && state == State::Backup)
    }

    /// Between probe rounds: `split_brain_check_interval`, else the advert interval.
    fn probe_interval(&self) -> Duration {
        self.spec.split_brain.as_ref().map_or_else(
            || fsm_interval(self.spec.fsm.advert_interval_cs),
            |sb| sb.interval,
        )
    }

    /// Starts or stops the probe rounds after a state change.
    async fn sync_probing(&mut self) {
        match (self.probing_wanted(), self.timers.probe.is_some()) {
            (true, false) => {
                // A new series of rounds: what was seen before does not count.
                self.round = Round::default();
                self.send_probes();
            }
            (false, true) => {
                self.timers.probe = None;
                if let Some(change) = self.detector.reset() {
                    self.on_split_brain(change).await;
                }
            }
            _ => {}
        }
    }

    /// A probe of every IPv4 VIP on the instance's interface; the round ends after one
    /// interval.
    fn send_probes(&mut self) {
        self.timers.probe = Some(Instant::now() + self.probe_interval());
        let Some(probe) = &self.probe else { return };
        for v in self.spec.held().filter(|v| v.dev == self.spec.interface) {
            if let Err(e) = probe.send(v.addr) {
                debug!(instance = %self.spec.fsm.name, vip = %v.addr, error = %e, "split-brain probe not sent");
            }
        }
    }

    async fn probe_round(&mut self) {
        let round = std::mem::take(&mut self.round);
        if self.spec.split_brain.is_some() {
            let change = if self.fsm.is_held() && round.adverts {
                // Held back, and the master's adverts arrive again: the heartbeat is
                // back, VRRP decides from here.
                self.detector.reset()
            } else {
                self.detector.round_over()
            };
            if let Some(change) = change {
                self.on_split_brain(change).await;
            }
        }
        if self.spec.arbiter.is_some() && self.fsm.state() == State::Backup {
            // The VIPs answer but the master's adverts do not arrive: the heartbeat is
            // cut, the master alive.
            let elsewhere = round.answered && !round.adverts;
            self.step(Event::VipElsewhere(elsewhere)).await;
        }
        if self.probing_wanted() {
            self.send_probes();
        }
    }

    /// An ARP frame or neighbour advertisement from another MAC: evidence if it speaks
    /// for one of our VIPs.
    async fn on_neighbour(&mut self, sender: Sender) {
        if self.timers.probe.is_none() {
            return;
        }
        let vip = sender.ip;
        if !self.spec.held().any(|v| v.addr == vip) {
            return;
        }
        self.round.answered = true;
        // A Backup hears its master answer: only a Master (or one held back) sees a
        // split brain in it.
        if self.fsm.state() == State::Master || self.fsm.is_held() {
            self.evidence(Evidence::VipAnswered {
                vip,
                mac: sender.mac,
            })
            .await;
        }
    }

    async fn evidence(&mut self, ev: Evidence) {
        if self.spec.split_brain.is_none() {
            return;
        }
        if let Some(change) = self.detector.observe(ev, self.last_master) {
            self.on_split_brain(change).await;
        }
    }

    /// Log, status, notify script and report; then the resolution.
    async fn on_split_brain(&mut self, change: Change) {
        let name = self.spec.fsm.name.clone();
        let Some(sb) = self.spec.split_brain.clone() else {
            return;
        };
        let ours = Rank {
            priority: self.fsm.effective_priority(),
            address: self.spec.fsm.primary_address,
        };
        let own_mac = self
            .probe
            .as_ref()
            .map_or_else(|| "-".to_string(), |p| split_brain::mac_text(p.mac()));
        let prio = ours.priority;
        let (began, episode) = match &change {
            Change::Began(e) => (true, e.clone()),
            Change::Ended(e) => (false, e.clone()),
        };
        let text = episode.to_string();
        if let Some(cmd) = &sb.notify {
            self.notifier
                .split_brain(cmd, began, prio, script_args(&episode));
        }
        let _ = self.reports.send(Report::SplitBrain {
            instance: name.clone(),
            episode: began.then(|| text.clone()),
        });
        if let Some(r) = &self.spec.report {
            r.alerts.split_brain(&name, began, &text, r.smtp_alert);
        }
        if !began {
            info!(instance = %name, other = %text, "split brain over: the other node no longer answers for our VIPs, or the heartbeat is back");
            self.status.send_modify(|s| s.split_brain = None);
            if self.fsm.is_held() {
                self.step(Event::Hold(false)).await;
                self.status.send_modify(|s| s.held = false);
            } else if self.fsm.state() == State::Master {
                self.reannounce();
            }
            return;
        }
        let episodes = self.detector.episodes();
        self.status.send_modify(|s| {
            s.split_brain = Some(text.clone());
            s.split_brain_episodes = episodes;
        });
        let master = self.fsm.state() == State::Master;
        let verdict = if master {
            split_brain::verdict(sb.resolution, ours, episode.peer)
        } else {
            Verdict::Stay
        };
        let what = match (verdict, sb.resolution, episode.peer) {
            (Verdict::StepDown, _, _) => "stepping down: the other node outranks us",
            (Verdict::Stay, Resolution::Alert, _) => {
                "both stay MASTER (split_brain_resolution = \"alert\")"
            }
            (Verdict::Stay, _, None) => {
                "staying MASTER: the other node's priority is unknown (it decides)"
            }
            (Verdict::Stay, Resolution::StepDown, Some(_)) => {
                "staying MASTER: we outrank the other node"
            }
        };
        warn!(
            instance = %name,
            us = %format!("{} (priority {}, MAC {own_mac})", ours.address, ours.priority),
            other = %text,
            resolution = what,
            "split brain: another node holds our VIPs"
        );
        match verdict {
            Verdict::StepDown => {
                self.step(Event::StepDown {
                    reason: format!("split brain with {text}"),
                })
                .await;
                let held = self.fsm.is_held();
                self.status.send_modify(|s| s.held = held);
            }
            // Clients may have followed the other node's gratuitous ARPs: call them back.
            Verdict::Stay if master => self.reannounce(),
            Verdict::Stay => {}
        }
    }

    /// A new gratuitous-ARP / NA burst for the VIPs (the mastership's policy).
    fn reannounce(&mut self) {
        if let Some(old) = self.garp.take() {
            old.abort();
        }
        self.garp = Some(tokio::spawn(announce(
            self.spec.held().cloned().collect(),
            self.spec.garp,
            self.spec.fsm.name.clone(),
        )));
    }

    async fn apply(&mut self, action: Action) {
        let now = Instant::now();
        match action {
            Action::SendAdvert { priority } => self.send_advert(priority).await,
            Action::ArmAdvertTimer(d) => self.timers.advert = Some(now + d),
            Action::CancelAdvertTimer => self.timers.advert = None,
            Action::ArmMasterDownTimer(d) => self.timers.master_down = Some(now + d),
            Action::CancelMasterDownTimer => self.timers.master_down = None,
            Action::ArmPreemptDelay(d) => self.timers.preempt = Some(now + d),
            Action::AddVips => self.add_vips().await,
            Action::RemoveVips => self.remove_vips().await,
            Action::Transition { from, to, reason } => self.on_transition(from, to, reason),
            Action::HeardLowerPriority { from, priority } => {
                info!(instance = %self.spec.fsm.name, %from, priority, ours = self.fsm.effective_priority(), "MASTER heard a lower-priority advert");
                self.notifier
                    .heard_lower_priority(self.fsm.effective_priority());
            }
            Action::RequestState(want) => {
                let _ = self.reports.send(Report::Request {
                    instance: self.spec.fsm.name.clone(),
                    want,
                });
            }
        }
    }

    fn advert(&self, priority: u8) -> Advert {
        Advert {
            version: self.spec.fsm.version,
            vrid: self.spec.fsm.vrid,
            priority,
            interval_cs: self.spec.fsm.advert_interval_cs,
            addresses: self.spec.vips.iter().map(|v| v.addr).collect(),
            auth: match self.spec.fsm.version {
                Version::V2 => self.spec.auth.wire(),
                Version::V3 => Auth::None,
            },
        }
    }

    async fn send_advert(&mut self, priority: u8) {
        let advert = self.advert(priority);
        let src = self.spec.fsm.primary_address;
        // AH: one sequence number per advert, whatever the number of unicast peers.
        let seq = self.spec.auth.ah_key().map(|_| self.ah_seq.next_to_send());
        let destinations: Vec<IpAddr> = match self.spec.multicast_group {
            Some(group) => vec![group],
            None => self.spec.unicast_peers.clone(),
        };
        for (i, p) in self.spec.paths.iter().enumerate() {
            let Some(socket) = self.paths.get(i) else {
                continue;
            };
            for dst in p.destinations() {
                let sent = match (packet::encode(&advert, p.src, dst), seq) {
                    (Ok(bytes), Some(seq)) => socket.send_ah(&bytes, dst, seq).await,
                    (Ok(bytes), None) => socket.send(&bytes, dst).await,
                    (Err(e), _) => Err(std::io::Error::other(e.to_string())),
                };
                match sent {
                    Ok(()) => self.status.send_modify(|s| s.adverts_sent += 1),
                    Err(e) => {
                        debug!(instance = %self.spec.fsm.name, path = %p.interface, %dst, error = %e, "sending advert on a heartbeat path failed")
                    }
                }
            }
        }
        for dst in destinations {
            let bytes = match packet::encode(&advert, src, dst) {
                Ok(b) => b,
                Err(e) => {
                    warn!(instance = %self.spec.fsm.name, error = %e, "cannot encode advert");
                    return;
                }
            };
            let sent = match seq {
                Some(seq) => self.socket.send_ah(&bytes, dst, seq).await,
                None => self.socket.send(&bytes, dst).await,
            };
            match sent {
                Ok(()) => self.status.send_modify(|s| s.adverts_sent += 1),
                Err(e) => {
                    warn!(instance = %self.spec.fsm.name, %dst, error = %e, "sending advert failed")
                }
            }
        }
    }

    async fn add_vips(&mut self) {
        // `vrrp_state_goto_master`: a cycled AH counter starts again.
        self.ah_seq.on_become_master();
        self.gate_become_master().await;
        for v in self.spec.held() {
            if let Err(e) = self.vips.add(v).await {
                warn!(instance = %self.spec.fsm.name, vip = %v.addr, error = %e, "adding VIP failed");
            }
        }
        routes::install(
            self.vips.handle(),
            &self.spec.fsm.name,
            &self.spec.routes,
            &self.spec.rules,
        )
        .await;
        if let Some(old) = self.garp.take() {
            old.abort();
        }
        self.garp = Some(tokio::spawn(announce(
            self.spec.held().cloned().collect(),
            self.spec.garp,
            self.spec.fsm.name.clone(),
        )));
    }

    async fn remove_vips(&mut self) {
        if let Some(garp) = self.garp.take() {
            garp.abort();
        }
        routes::uninstall(
            self.vips.handle(),
            &self.spec.fsm.name,
            &self.spec.routes,
            &self.spec.rules,
        )
        .await;
        for v in self.spec.held() {
            if let Err(e) = self.vips.remove(v).await {
                warn!(instance = %self.spec.fsm.name, vip = %v.addr, error = %e, "removing VIP failed");
            }
        }
        if let Some(gate) = &self.spec.gate {
            let _ = gate.send(GateRequest::LeftMaster {
                instance: self.spec.fsm.name.clone(),
            });
        }
    }

    /// Waits until the data plane forwards for this instance's services.
    async fn gate_become_master(&self) {
        let Some(gate) = &self.spec.gate else { return };
        let (tx, rx) = oneshot::channel();
        let name = self.spec.fsm.name.clone();
        if gate
            .send(GateRequest::BecomeMaster {
                instance: name.clone(),
                reply: tx,
            })
            .is_err()
        {
            return;
        }
        match tokio::time::timeout(GATE_TIMEOUT, rx).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => {
                warn!(instance = %name, error = %e, "the data plane could not program this instance's services; adding the VIPs anyway")
            }
            _ => {
                warn!(instance = %name, "the data plane did not answer in time; adding the VIPs anyway")
            }
        }
    }

    fn on_transition(&mut self, from: State, to: State, reason: String) {
        let name = self.spec.fsm.name.clone();
        info!(instance = %name, %from, %to, %reason, "VRRP transition");
        let prio = self.fsm.effective_priority();
        let notify = match to {
            State::Master => Some(NotifyState::Master),
            State::Backup => Some(NotifyState::Backup),
            State::Fault => Some(NotifyState::Fault),
            State::Init => None,
        };
        if let Some(n) = notify {
            self.notifier.notify(n, prio);
        }
        let at = SystemTime::now();
        let why = reason.clone();
        self.status.send_modify(|s| {
            s.transitions += 1;
            s.last_transition = Some((at, why));
        });
        let _ = self.reports.send(Report::Transition(Transition {
            instance: name,
            from,
            to,
            reason,
        }));
    }
}

fn fsm_interval(cs: u16) -> Duration {
    Duration::from_millis(u64::from(cs) * 10)
}

/// `notify_split_brain`'s arguments after the first four: the other node's MAC, address
/// and the VIP it answered for (`-` when unknown).
fn script_args(e: &Episode) -> [String; 3] {
    let dash = || "-".to_string();
    [
        e.peer_mac.map_or_else(dash, split_brain::mac_text),
        e.peer.map_or_else(dash, |p| p.address.to_string()),
        e.vip.map_or_else(dash, |v| v.to_string()),
    ]
}

/// The path a packet came by: multicast, or unicast from these peers.
#[derive(Clone, Copy)]
struct Via<'a> {
    multicast: bool,
    peers: &'a [IpAddr],
}

/// What becomes of a received packet.
#[derive(Debug, PartialEq, Eq)]
enum Screened {
    /// With `auth_type AH`, the advert's sequence number.
    Accept(Advert, Option<u32>),
    /// Another instance's advert on the same interface: not ours, not a drop.
    Sibling,
    /// An AH header protecting another protocol: keepalived ignores it silently.
    Ignore,
    /// Counted under the reason's label.
    Drop(DropReason),
}

/// Every check on a received packet, in keepalived's order: the unicast peer list, then
/// the decoding checks (version, length, type, checksum), then the instance's (VRID, TTL
/// 255 / hop limit 255 when multicast, version, auth, interval, addresses).
///
/// With `auth_type AH` the VRRP message follows the AH header; the instance is found by
/// VRID first (keepalived's dispatcher), then the AH header is checked (ICV, SPI, sequence
/// number against `ah_seq`, which moves on success) before the instance's checks.
fn screen(
    spec: &InstanceSpec,
    via: Via<'_>,
    expect: &Expect,
    r: &super::socket::Received,
    ah_seq: &mut SeqCounter,
) -> Screened {
    if !via.multicast && !via.peers.contains(&r.src) {
        return Screened::Drop(DropReason::NotAPeer);
    }
    let key = spec.auth.ah_key();
    let msg = match key {
        Some(_) => match r.payload.get(ah::AH_LEN..) {
            Some(msg) => msg,
            None => return Screened::Drop(DropReason::TooShort),
        },
        None => &r.payload[..],
    };
    let advert = match packet::decode(msg, r.src, r.dst) {
        Ok(a) => a,
        Err(reason) => return Screened::Drop(reason),
    };
    if advert.vrid != spec.fsm.vrid && spec.sibling_vrids.contains(&advert.vrid) {
        return Screened::Sibling;
    }
    let mut seq = None;
    if let Some(key) = key {
        if advert.vrid == spec.fsm.vrid && advert.auth == Auth::Ah {
            let unicast = spec.multicast_group.is_none();
            match ah::open(&r.ip_header, &r.payload, &key, unicast, ah_seq) {
                Ok(opened) => seq = Some(opened.seq),
                Err(AhError::NotVrrp) => return Screened::Ignore,
                Err(AhError::TooShort) => return Screened::Drop(DropReason::TooShort),
                Err(AhError::BadIcv | AhError::BadSpi) => {
                    return Screened::Drop(DropReason::AhAuthFailure)
                }
                Err(AhError::Replay) => return Screened::Drop(DropReason::AhReplay),
            }
        }
    }
    match packet::validate(&advert, r.ttl, expect) {
        Ok(v) if v.address_mismatch => Screened::Drop(DropReason::AddressMismatch),
        Ok(_) => Screened::Accept(advert, seq),
        Err(reason) => Screened::Drop(reason),
    }
}

/// Gratuitous ARPs / unsolicited NAs for the VIPs: a burst now, another after `delay`,
/// then one every `refresh`, until the task is aborted (mastership ends).
async fn announce(vips: Vec<Vip>, policy: GarpPolicy, instance: String) {
    burst(&vips, &policy, &instance).await;
    if !policy.delay.is_zero() {
        tokio::time::sleep(policy.delay).await;
        burst(&vips, &policy, &instance).await;
    }
    if let Some(every) = policy.refresh {
        loop {
            tokio::time::sleep(every).await;
            burst(&vips, &policy, &instance).await;
        }
    }
}

async fn burst(vips: &[Vip], policy: &GarpPolicy, instance: &str) {
    for i in 0..policy.repeat.max(1) {
        if i > 0 && !policy.interval.is_zero() {
            tokio::time::sleep(policy.interval).await;
        }
        for v in vips {
            let sent = match v.addr {
                IpAddr::V4(a) => vip::send_garp(&v.dev, a),
                IpAddr::V6(a) => vip::send_unsolicited_na(&v.dev, a),
            };
            if let Err(e) = sent {
                warn!(instance, vip = %v.addr, error = %e, "announcing VIP failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The instance's own path (its interface, multicast or its unicast peers).
    fn via(s: &InstanceSpec) -> Via<'_> {
        Via {
            multicast: s.multicast_group.is_some(),
            peers: &s.unicast_peers,
        }
    }
    use crate::net::proto::VRRP_GROUP_V4;
    use crate::vrrp::socket::Received;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn spec(unicast: bool) -> InstanceSpec {
        InstanceSpec {
            fsm: fsm::Params {
                name: "VI_1".into(),
                version: Version::V2,
                vrid: 51,
                priority: 100,
                advert_interval_cs: 100,
                initial_state: State::Backup,
                preempt: true,
                preempt_delay: Duration::ZERO,
                primary_address: ip("10.0.0.1"),
                in_sync_group: false,
                strict: false,
            },
            interface: "eth0".into(),
            vips: vec![Vip {
                addr: ip("198.18.0.100"),
                prefix: 24,
                dev: "eth0".into(),
                label: None,
            }],
            excluded: Vec::new(),
            routes: Vec::new(),
            rules: Vec::new(),
            auth: InstanceAuth::Pass(packet::auth_field("secret").0),
            multicast_group: (!unicast).then_some(IpAddr::V4(VRRP_GROUP_V4)),
            unicast_peers: if unicast {
                vec![ip("10.0.0.2")]
            } else {
                Vec::new()
            },
            garp: GarpPolicy {
                delay: Duration::ZERO,
                repeat: 1,
                refresh: None,
                interval: Duration::ZERO,
            },
            notify: NotifyScripts::default(),
            report: None,
            script_timeout: Duration::from_secs(5),
            script_user: None,
            sibling_vrids: vec![52],
            gate: None,
            adopt_master: false,
            split_brain: None,
            arbiter: None,
            paths: Vec::new(),
        }
    }

    fn expect(spec: &InstanceSpec) -> Expect {
        Expect {
            version: spec.fsm.version,
            vrid: spec.fsm.vrid,
            auth: spec.auth.wire(),
            interval_cs: spec.fsm.advert_interval_cs,
            multicast: spec.multicast_group.is_some(),
            addresses: spec.vips.iter().map(|v| v.addr).collect(),
        }
    }

    fn advert(vrid: u8, pass: &str, addresses: &[&str]) -> Advert {
        Advert {
            version: Version::V2,
            vrid,
            priority: 150,
            interval_cs: 100,
            addresses: addresses.iter().map(|a| ip(a)).collect(),
            auth: Auth::Pass(packet::auth_field(pass).0),
        }
    }

    fn received(src: &str, dst: IpAddr, ttl: u8, a: &Advert) -> Received {
        Received {
            src: ip(src),
            dst,
            ttl,
            ifindex: 1,
            payload: packet::encode(a, ip(src), dst).unwrap(),
            ip_header: Vec::new(),
        }
    }

    /// A backup hearing a steady master (identical adverts, left to the receive thread)
    /// counts every advert and stays BACKUP; when they stop, it takes over after the
    /// master-down interval, as if each advert had restarted the timer on arrival.
    #[test]
    fn a_backup_counts_a_steady_masters_adverts_and_takes_over_when_they_stop() {
        use crate::vrrp::socket::testing::{in_ns, pair, runtime};
        let (a, b) = pair("vrrp-rx", 71);
        let rt = runtime();
        let interval_cs = 5u16; // 50 ms: master down = 3 x 50 + (256 - 100) / 256 x 50 ms
        let mut s = spec(false);
        s.fsm.version = Version::V3;
        s.fsm.advert_interval_cs = interval_cs;
        s.fsm.primary_address = ip("198.18.71.2");
        s.interface = "vb".into();
        s.auth = InstanceAuth::None;
        s.vips = vec![Vip {
            addr: ip("198.18.71.100"),
            prefix: 24,
            dev: "vb".into(),
            label: None,
        }];
        let (reports, _reports_rx) = mpsc::unbounded_channel();
        let handle = in_ns(&b, &rt, move || spawn(s, reports).unwrap());
        let group = IpAddr::V4(VRRP_GROUP_V4);
        let master = in_ns(&a, &rt, move || {
            VrrpSocket::open(&SocketConfig {
                interface: "va".into(),
                family_v6: false,
                src: "198.18.71.1".parse().unwrap(),
                multicast_group: Some(group),
                ah_key: None,
            })
            .unwrap()
        });
        let advert = Advert {
            version: Version::V3,
            vrid: 51,
            priority: 150,
            interval_cs,
            addresses: vec![ip("198.18.71.100")],
            auth: Auth::None,
        };
        let bytes = packet::encode(&advert, ip("198.18.71.1"), group).unwrap();
        let status = handle.status.clone();
        let sent = 40u64;
        let took_over = rt.block_on(async move {
            for _ in 0..sent {
                master.send(&bytes, group).await.unwrap();
                tokio::time::sleep(Duration::from_millis(50)).await;
                assert_eq!(
                    status.borrow().state,
                    State::Backup,
                    "a backup must not take over from a live master"
                );
            }
            let silent = tokio::time::Instant::now();
            loop {
                if status.borrow().state == State::Master {
                    break silent.elapsed();
                }
                assert!(
                    silent.elapsed() < Duration::from_secs(3),
                    "no takeover after the master went silent"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        let received = handle.status.borrow().adverts_received_total();
        assert_eq!(received, sent, "every advert is counted, noted ones too");
        // The kernel's advert filter took all but the first few: the receive thread did
        // not wake for them.
        let in_kernel = handle.status.borrow().adverts_taken.in_kernel();
        assert!(
            in_kernel >= sent - 3,
            "the advert filter took {in_kernel} of {sent} adverts"
        );
        // The master-down interval (about 180 ms) after the last advert, not earlier.
        assert!(
            took_over >= Duration::from_millis(100),
            "took over {took_over:?} after the last advert"
        );
        let _ = handle.commands.send(Command::Shutdown);
        rt.block_on(handle.task).unwrap();
    }

    #[test]
    fn every_drop_reason_of_a_received_packet() {
        let group = IpAddr::V4(VRRP_GROUP_V4);
        let (m, u) = (spec(false), spec(true));
        let good = advert(51, "secret", &["198.18.0.100"]);
        let screen_m =
            |r: &Received| screen(&m, via(&m), &expect(&m), r, &mut SeqCounter::default());
        assert_eq!(
            screen_m(&received("10.0.0.2", group, 255, &good)),
            Screened::Accept(good.clone(), None)
        );
        let cases = [
            (received("10.0.0.2", group, 254, &good), DropReason::BadTtl),
            (
                received(
                    "10.0.0.2",
                    group,
                    255,
                    &advert(51, "wrong", &["198.18.0.100"]),
                ),
                DropReason::AuthMismatch,
            ),
            (
                received(
                    "10.0.0.2",
                    group,
                    255,
                    &advert(53, "secret", &["198.18.0.100"]),
                ),
                DropReason::WrongVrid,
            ),
            (
                received(
                    "10.0.0.2",
                    group,
                    255,
                    &advert(51, "secret", &["198.18.0.101"]),
                ),
                DropReason::AddressMismatch,
            ),
        ];
        for (r, reason) in &cases {
            assert_eq!(screen_m(r), Screened::Drop(*reason), "{reason:?}");
        }
        let mut short = received("10.0.0.2", group, 255, &good);
        short.payload.truncate(13);
        assert_eq!(screen_m(&short), Screened::Drop(DropReason::BadLength));
        let mut version = received("10.0.0.2", group, 255, &good);
        version.payload[0] = 0x31;
        assert_eq!(screen_m(&version), Screened::Drop(DropReason::BadVersion));
        assert_eq!(
            screen_m(&received(
                "10.0.0.3",
                group,
                255,
                &advert(52, "x", &["198.18.0.1"])
            )),
            Screened::Sibling
        );
        // Unicast: only the configured peers, whatever the TTL.
        let to_us = ip("10.0.0.1");
        assert_eq!(
            screen(
                &u,
                via(&u),
                &expect(&u),
                &received("10.0.0.9", to_us, 255, &good),
                &mut SeqCounter::default()
            ),
            Screened::Drop(DropReason::NotAPeer)
        );
        assert_eq!(
            screen(
                &u,
                via(&u),
                &expect(&u),
                &received("10.0.0.2", to_us, 64, &good),
                &mut SeqCounter::default()
            ),
            Screened::Accept(good, None)
        );
    }

    /// An AH packet as the socket delivers it: the IPv4 header, then AH and the message.
    fn ah_received(src: &str, seq: u32, key: &[u8; 8], a: &Advert) -> Received {
        let group = IpAddr::V4(VRRP_GROUP_V4);
        let msg = packet::encode(a, ip(src), group).unwrap();
        let mut h = [0u8; 20];
        h[0] = 0x45;
        h[8] = 255;
        h[9] = ah::IPPROTO_AH;
        h[2..4].copy_from_slice(&((20 + ah::AH_LEN + msg.len()) as u16).to_be_bytes());
        h[5] = seq as u8;
        h[12..16].copy_from_slice(&[10, 0, 0, 2]);
        h[16..20].copy_from_slice(&VRRP_GROUP_V4.octets());
        let mut payload = ah::seal(&h, &msg, seq, key, false).to_vec();
        payload.extend_from_slice(&msg);
        Received {
            src: ip(src),
            dst: group,
            ttl: 255,
            ifindex: 1,
            payload,
            ip_header: h.to_vec(),
        }
    }

    #[test]
    fn ah_adverts_wrong_key_replay_and_siblings() {
        let key = packet::auth_field("secret").0;
        let mut s = spec(false);
        s.auth = InstanceAuth::Ah(key);
        let mut good = advert(51, "", &["198.18.0.100"]);
        good.auth = Auth::Ah;
        let mut c = SeqCounter::default();
        let e = expect(&s);
        assert_eq!(
            screen(
                &s,
                via(&s),
                &e,
                &ah_received("10.0.0.2", 5, &key, &good),
                &mut c
            ),
            Screened::Accept(good.clone(), Some(5))
        );
        assert_eq!(c.seq, 5);
        for (r, reason) in [
            (
                ah_received("10.0.0.2", 5, &key, &good),
                DropReason::AhReplay,
            ),
            (
                ah_received("10.0.0.2", 3, &key, &good),
                DropReason::AhReplay,
            ),
            (
                ah_received("10.0.0.2", 9, b"other\0\0\0", &good),
                DropReason::AhAuthFailure,
            ),
        ] {
            assert_eq!(
                screen(&s, via(&s), &e, &r, &mut c),
                Screened::Drop(reason),
                "{reason:?}"
            );
        }
        assert_eq!(c.seq, 5, "refused packets do not move the counter");
        // A PASS advert that reached the AH socket: an auth type mismatch.
        let mut pass = ah_received("10.0.0.2", 6, &key, &good);
        let plain = advert(51, "secret", &["198.18.0.100"]);
        let msg = packet::encode(&plain, ip("10.0.0.2"), IpAddr::V4(VRRP_GROUP_V4)).unwrap();
        pass.payload.truncate(ah::AH_LEN);
        pass.payload.extend_from_slice(&msg);
        assert_eq!(
            screen(&s, via(&s), &e, &pass, &mut c),
            Screened::Drop(DropReason::AuthMismatch)
        );
        // A sibling instance's AH advert (its own key) is not ours and not a failure.
        let mut sibling = advert(52, "", &["198.18.0.1"]);
        sibling.auth = Auth::Ah;
        assert_eq!(
            screen(
                &s,
                via(&s),
                &e,
                &ah_received("10.0.0.3", 1, b"sibling\0", &sibling),
                &mut c
            ),
            Screened::Sibling
        );
    }
}
