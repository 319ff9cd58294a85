//! The BGP announcer: the task that owns the VIP interface (`[bgp].interface`) and puts an
//! announced VIP's address on it (BIRD exports it) or takes it off (withdrawn).
//!
//! Design: the data-plane owner publishes each announced service's readiness (programmed
//! with the program attached, and the quorum of its last health update) on a watch
//! channel after every event it handles; this task folds that into one
//! [`crate::bgp::announce`] machine per VIP ([`vips`]) and does the netlink IO. The owner
//! already knows both inputs, so nothing else has to be relayed, and the owner never
//! waits on netlink or on BIRD: announcing is strictly downstream of forwarding, so a VIP
//! can never be announced before its service is programmed.
//!
//! It also reads BIRD's session states every few seconds (never fatal: announcing is only
//! an address), runs drains (withdraw all, then watch the data plane's packet counters
//! until `drain_idle` or `drain_timeout`), and publishes a [`BgpSnapshot`] for status
//! and metrics.

pub mod vips;

use std::{
    collections::BTreeSet,
    net::IpAddr,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use tokio::sync::{mpsc, oneshot, watch};
use tracing::{info, warn};

use super::{
    dataplane_owner::Msg,
    snapshot::{BgpSessionSnapshot, BgpSnapshot, VipSnapshot},
};
use crate::{
    bgp::{
        announce::Action,
        bird::{BgpSession, BirdClient, SessionState},
        vip_link::VipLink,
    },
    config::{self, Config},
};
use vips::{Drain, Vips};
pub use vips::{Readiness, ServiceReadiness};

/// How often BIRD's sessions are read (and the interface's addresses re-checked).
const BIRD_POLL_EVERY: Duration = Duration::from_secs(3);
/// How often a drain looks at the packet counters.
const DRAIN_POLL_EVERY: Duration = Duration::from_millis(250);

/// What the daemon asks of the announcer.
pub enum Cmd {
    /// `lb-daemon drain`: withdraw every VIP, then watch the traffic end. Answers at once.
    Drain { reply: oneshot::Sender<String> },
    /// `lb-daemon undrain`: announce again what is ready.
    Undrain { reply: oneshot::Sender<String> },
    /// Stopping: drain (if anything is announced) and answer once the drain ended.
    DrainForStop { reply: oneshot::Sender<()> },
    /// Stopping: remove every address, then end.
    WithdrawAll { reply: oneshot::Sender<()> },
    /// A reload with other announced VIPs ([bgp] itself is unchanged).
    Reconfigure { vips: Vec<IpAddr> },
}

/// The announced VIPs of `config` (each once).
pub fn announced_vips(config: &Config) -> Vec<IpAddr> {
    let set: BTreeSet<IpAddr> = config.bgp_servers().map(|v| v.address).collect();
    set.into_iter().collect()
}

pub struct Announcer {
    link: VipLink,
    bgp: config::Bgp,
    vips: Vips,
    bird: BirdClient,
    readiness: watch::Receiver<Readiness>,
    owner: mpsc::UnboundedSender<Msg>,
    status: Arc<RwLock<BgpSnapshot>>,
    drain: Option<Drain>,
    /// VIPs announced when the drain began: their packets are the ones watched.
    drained_vips: BTreeSet<IpAddr>,
    stop_waiters: Vec<oneshot::Sender<()>>,
    bird_state: String,
    sessions: Vec<BgpSession>,
}

/// The running announcer: commands in, status out.
pub struct AnnouncerHandle {
    pub cmds: mpsc::UnboundedSender<Cmd>,
    pub status: Arc<RwLock<BgpSnapshot>>,
}

impl Announcer {
    /// Takes the VIP interface over: configured VIPs already on it (left by a daemon
    /// stopped with `--keep-dataplane`) stay until their services' state is known; other
    /// host addresses on it are removed.
    pub async fn new(
        link: VipLink,
        config: &Config,
        readiness: watch::Receiver<Readiness>,
        owner: mpsc::UnboundedSender<Msg>,
    ) -> anyhow::Result<Announcer> {
        let on_link = link.addresses().await?;
        let (vips, stray) = Vips::new(announced_vips(config), config.bgp.hold_down, &on_link);
        for addr in stray {
            info!(vip = %addr, interface = link.name(), "removing an address no virtual server announces");
            link.remove(addr).await?;
        }
        Ok(Announcer {
            bird: BirdClient::new(&config.bgp.bird_socket),
            bgp: config.bgp.clone(),
            link,
            vips,
            readiness,
            owner,
            status: Arc::default(),
            drain: None,
            drained_vips: BTreeSet::new(),
            stop_waiters: Vec::new(),
            bird_state: "not read yet".into(),
            sessions: Vec::new(),
        })
    }

    pub fn spawn(self) -> AnnouncerHandle {
        let (tx, rx) = mpsc::unbounded_channel();
        let status = Arc::clone(&self.status);
        self.publish();
        tokio::spawn(self.run(rx));
        AnnouncerHandle { cmds: tx, status }
    }

    async fn run(mut self, mut cmds: mpsc::UnboundedReceiver<Cmd>) {
        let (bird_tx, mut bird_rx) = mpsc::unbounded_channel();
        let mut bird_tick = tokio::time::interval(BIRD_POLL_EVERY);
        let mut drain_tick = tokio::time::interval(DRAIN_POLL_EVERY);
        for t in [&mut bird_tick, &mut drain_tick] {
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        }
        let mut polling = false;
        self.evaluate().await;
        loop {
            let wake = self.vips.wake_in().unwrap_or(Duration::from_secs(3600));
            tokio::select! {
                changed = self.readiness.changed() => {
                    if changed.is_err() {
                        // The owner is gone: the daemon is stopping; wait for its word.
                        self.readiness = watch::channel(Readiness::new()).1;
                    }
                    self.evaluate().await;
                }
                cmd = cmds.recv() => match cmd {
                    Some(Cmd::WithdrawAll { reply }) => {
                        self.withdraw_all().await;
                        let _ = reply.send(());
                        return;
                    }
                    Some(cmd) => self.on_cmd(cmd).await,
                    // Dropped without a word: stopped with --keep-dataplane, addresses stay.
                    None => return,
                },
                _ = tokio::time::sleep(wake) => self.evaluate().await,
                _ = bird_tick.tick(), if !polling => {
                    polling = true;
                    let (bird, done) = (self.bird.clone(), bird_tx.clone());
                    tokio::spawn(async move {
                        let _ = done.send(bird.bgp_sessions().await);
                    });
                    self.reconcile().await;
                }
                Some(result) = bird_rx.recv() => {
                    polling = false;
                    self.on_bird(result);
                }
                _ = drain_tick.tick(), if self.drain.as_ref().is_some_and(|d| !d.ended()) => {
                    self.watch_drain().await;
                }
            }
        }
    }

    async fn on_cmd(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Drain { reply } => {
                let withdrawn = self.start_drain().await;
                let _ = reply.send(format!(
                    "drained: {withdrawn} VIPs withdrawn; forwarding goes on until no packet for {}s (at most {}s); `lb-daemon status` shows the progress",
                    self.bgp.drain_idle.as_secs_f64(),
                    self.bgp.drain_timeout.as_secs_f64()
                ));
            }
            Cmd::Undrain { reply } => {
                self.vips.set_drained(false);
                self.drain = None;
                self.drained_vips.clear();
                self.wake_stop_waiters();
                self.evaluate().await;
                info!("undrained: VIPs are announced again as they are ready");
                let _ = reply.send(format!(
                    "undrained: {} VIPs announced",
                    self.vips.on_link().len()
                ));
            }
            Cmd::DrainForStop { reply } => {
                if self.vips.any_announced() || self.drain.is_some() {
                    self.start_drain().await;
                }
                match &self.drain {
                    Some(d) if !d.ended() => self.stop_waiters.push(reply),
                    _ => {
                        let _ = reply.send(());
                    }
                }
            }
            Cmd::WithdrawAll { .. } => unreachable!("handled by the loop"),
            Cmd::Reconfigure { vips } => {
                for vip in self.vips.reconfigure(vips, self.bgp.hold_down) {
                    self.apply(vip, Action::Withdraw).await;
                }
                self.evaluate().await;
            }
        }
    }

    /// Withdraws everything and starts watching the traffic; how many were withdrawn.
    async fn start_drain(&mut self) -> usize {
        let before = self.vips.on_link();
        self.vips.set_drained(true);
        self.evaluate().await;
        if self.drain.is_none() {
            info!(
                vips = before.len(),
                "draining: VIPs withdrawn, forwarding goes on"
            );
            self.drained_vips = before.clone();
            self.drain = Some(Drain::new(
                Instant::now(),
                self.bgp.drain_timeout,
                self.bgp.drain_idle,
            ));
            self.publish();
        }
        before.len()
    }

    async fn watch_drain(&mut self) {
        let packets = self.drained_packets().await;
        let Some(drain) = self.drain.as_mut() else {
            return;
        };
        if let Some(end) = drain.observe(packets, Instant::now()) {
            info!(?end, "drain complete");
            self.wake_stop_waiters();
        }
        self.publish();
    }

    fn wake_stop_waiters(&mut self) {
        for w in self.stop_waiters.drain(..) {
            let _ = w.send(());
        }
    }

    /// Packets the data plane counted for the drained VIPs' services (None: unknown).
    async fn drained_packets(&self) -> Option<u64> {
        let (tx, rx) = oneshot::channel();
        self.owner.send(Msg::Status { reply: tx }).ok()?;
        let services = tokio::time::timeout(Duration::from_secs(1), rx)
            .await
            .ok()?
            .ok()?;
        Some(
            services
                .iter()
                .filter(|s| self.drained_vips.contains(&s.id.vip))
                .map(|s| s.traffic.packets)
                .sum(),
        )
    }

    async fn evaluate(&mut self) {
        let readiness = self.readiness.borrow_and_update().clone();
        for (vip, action) in self.vips.evaluate(&readiness, Instant::now()) {
            self.apply(vip, action).await;
        }
        self.publish();
    }

    async fn apply(&self, vip: IpAddr, action: Action) {
        let (result, verb) = match action {
            Action::Announce => (self.link.add(vip).await, "announced"),
            Action::Withdraw => (self.link.remove(vip).await, "withdrawn"),
        };
        match result {
            Ok(()) => info!(%vip, interface = self.link.name(), "VIP {verb}"),
            // The periodic reconcile tries again.
            Err(e) => warn!(%vip, error = %e, "VIP could not be {verb}"),
        }
    }

    /// Makes the interface carry exactly what should be announced (a failed change, or
    /// an address someone removed or added by hand).
    async fn reconcile(&self) {
        let Ok(present) = self.link.addresses().await else {
            return;
        };
        let present: BTreeSet<IpAddr> = present.into_iter().collect();
        let wanted = self.vips.on_link();
        for vip in wanted.difference(&present) {
            self.apply(*vip, Action::Announce).await;
        }
        for vip in present.difference(&wanted) {
            self.apply(*vip, Action::Withdraw).await;
        }
    }

    async fn withdraw_all(&mut self) {
        let present = self.link.addresses().await.unwrap_or_default();
        let wanted = self.vips.on_link();
        for vip in present.into_iter().chain(wanted).collect::<BTreeSet<_>>() {
            self.apply(vip, Action::Withdraw).await;
        }
        info!(interface = self.link.name(), "every VIP withdrawn");
    }

    fn on_bird(&mut self, result: Result<Vec<BgpSession>, crate::bgp::bird::BirdError>) {
        match result {
            Ok(sessions) => {
                if self.bird_state != "ok" {
                    info!(sessions = sessions.len(), "BIRD reachable");
                }
                self.bird_state = "ok".into();
                self.sessions = sessions;
            }
            Err(e) => {
                let state = format!("unreachable: {e}");
                if state != self.bird_state {
                    warn!(
                        "BIRD {state} (retrying every {}s)",
                        BIRD_POLL_EVERY.as_secs()
                    );
                }
                self.bird_state = state;
                self.sessions.clear();
            }
        }
        self.publish();
    }

    fn publish(&self) {
        let now = Instant::now();
        let snapshot = BgpSnapshot {
            interface: self.link.name().to_owned(),
            bird: self.bird_state.clone(),
            sessions: self
                .sessions
                .iter()
                .map(|s| BgpSessionSnapshot {
                    name: s.name.clone(),
                    up: s.state == SessionState::Up,
                    info: s.info.clone(),
                })
                .collect(),
            drained: self.vips.drained(),
            drain: self.drain.as_ref().map(|d| d.describe(now)),
            vips: self
                .vips
                .rows()
                .into_iter()
                .map(|(vip, announced, state)| VipSnapshot {
                    vip: vip.to_string(),
                    announced,
                    state,
                })
                .collect(),
        };
        if let Ok(mut s) = self.status.write() {
            *s = snapshot;
        }
    }
}
