//! The composition root: `lb-daemon run` assembled and driven until it is stopped.
//!
//! It runs the VRRP instances of the configuration (the way keepalived fronts HAProxy or
//! nginx: VIPs move with mastership, tracking and sync groups apply, notify scripts run)
//! and the health checks of its virtual servers (each verdict change yields the
//! service's new desired backend set). With virtual servers it drives a forwarding
//! plane, XDP or IPVS (see [`plane_choice`]), through the data-plane owner: a service is
//! forwarded while the VRRP instance holding its VIP is MASTER (services no instance
//! holds always are), with the healthy backends of the moment. VRRP and the health
//! checks send to the owner directly.
//! Virtual servers announced by BGP get an announcer ([`announcer`]) that owns the VIP
//! interface; the owner tells it which services are ready.
//! SIGTERM/SIGINT stop it gracefully: BGP-announced VIPs drained (withdrawn, then
//! forwarding until the traffic ends or `drain_timeout`), priority-0 adverts, VIPs
//! removed, services removed, XDP detached and maps unpinned (or our IPVS services
//! deleted).

use std::{
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
};

use anyhow::{bail, Context, Result};
use tokio::{
    signal::unix::{signal, SignalKind},
    sync::{mpsc, oneshot},
};
use tracing::{error, info, warn};

use super::{
    announcer::{Announcer, AnnouncerHandle, Cmd, Readiness},
    control::{self, Action, ReloadRequest},
    dataplane_owner::{self, Msg, Owner, OwnerHandle},
    kept_masters, metrics, plane_choice,
    snapshot::Snapshot,
    systemd,
    view::View,
    watchdog,
};
use crate::{
    alerts::{
        email::{self, Mailer},
        fifo::{self, NotifyFifos},
        Alerts,
    },
    bfd::runtime::Bfd,
    bgp::vip_link::VipLink,
    config::{self, Loaded},
    health::{
        from_config::plan,
        runner::{Health, Update},
    },
    vrrp::runtime::Vrrp,
};

/// Reads and checks the configuration file (at start and on every reload).
pub type LoadConfig = fn(&Path) -> Result<Loaded>;

/// Runs the daemon in the foreground until it is stopped.
pub fn run(path: &Path, config: config::Config, load: LoadConfig) -> Result<()> {
    // One thread, like keepalived: the work is I/O-bound, and thousands of checks a
    // second cost less without cross-thread wake-ups.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(path, config, load))
}

/// The running parts.
pub(super) struct Daemon {
    pub(super) path: PathBuf,
    pub(super) load: LoadConfig,
    pub(super) config: config::Config,
    pub(super) owner: Option<OwnerHandle>,
    /// The data plane's name in status and metrics.
    pub(super) dataplane: &'static str,
    /// Where health updates go (the owner, or nowhere without virtual servers).
    pub(super) updates: mpsc::UnboundedSender<Update>,
    pub(super) health: Health,
    pub(super) vrrp: Option<Vrrp>,
    /// The `[[bfd_instance]]` sessions (none: no socket open).
    pub(super) bfd: Bfd,
    pub(super) view: Arc<RwLock<View>>,
    /// Present when some virtual server is announced by BGP.
    pub(super) announcer: Option<AnnouncerHandle>,
    /// E-mail alerts (settings replaced on reload) and notify FIFOs.
    pub(super) mailer: Mailer,
    pub(super) alerts: Alerts,
    /// Flow-state sync's counters (for the status view), when `[sync]` is configured.
    pub(super) sync_stats: Option<Arc<crate::sync::task::SyncStats>>,
    /// Kept for the daemon's life: dropping them closes the socket and the listener.
    _control: control::ControlHandle,
    _metrics: Option<tokio::task::JoinHandle<()>>,
}

/// How the main loop ended.
enum Stop {
    /// Drain the BGP-announced VIPs first when `drain`.
    Shutdown { drain: bool },
    /// `lb-daemon stop --keep-dataplane`.
    KeepDataplane,
}

async fn serve(path: &Path, config: config::Config, load: LoadConfig) -> Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let (mut daemon, mut reloads) = Daemon::start(path, config, load).await?;
    let mut watchdog = watchdog::Pinger::new(watchdog::from_env());
    let stop = loop {
        tokio::select! {
            () = watchdog.tick() => systemd::watchdog(),
            _ = term.recv() => break Stop::Shutdown { drain: true },
            _ = int.recv() => break Stop::Shutdown { drain: true },
            _ = hup.recv() => {
                let _ = daemon.reload().await;
            }
            Some(req) = reloads.recv() => match req.action {
                Action::Reload => {
                    let _ = req.reply.send(daemon.reload().await);
                }
                Action::Stop { keep_dataplane, drain } => {
                    let _ = req.reply.send(Ok(if keep_dataplane {
                        "stopping; the data plane and the VIPs stay for the next daemon".into()
                    } else if drain && daemon.announcer.is_some() {
                        "stopping: draining the announced VIPs first".into()
                    } else {
                        "stopping".into()
                    }));
                    break if keep_dataplane { Stop::KeepDataplane } else { Stop::Shutdown { drain } };
                }
                Action::Drain => {
                    let _ = req.reply.send(daemon.ask_announcer(|reply| Cmd::Drain { reply }).await);
                }
                Action::Undrain => {
                    let _ = req.reply.send(daemon.ask_announcer(|reply| Cmd::Undrain { reply }).await);
                }
                #[cfg(debug_assertions)]
                Action::DebugBlockLoop(how_long) => {
                    let _ = req.reply.send(Ok(format!("blocking the main loop for {how_long:?}")));
                    // Blocks the whole (current-thread) runtime, as a wedged daemon would.
                    std::thread::sleep(how_long);
                }
            },
        }
    };
    systemd::stopping();
    match stop {
        Stop::KeepDataplane => daemon.keep().await,
        Stop::Shutdown { drain } => daemon.stop(drain).await,
    }
    info!("stopped");
    Ok(())
}

impl Daemon {
    /// Starts every part, in order: the owner first, so health updates and mastership
    /// find it; then health checks, VRRP, the status view, control socket and metrics.
    async fn start(
        path: &Path,
        config: config::Config,
        load: LoadConfig,
    ) -> Result<(Daemon, mpsc::UnboundedReceiver<ReloadRequest>)> {
        if config.vrrp_instances.is_empty() && config.virtual_servers.is_empty() {
            bail!("the configuration has no vrrp_instance and no virtual_server: nothing to run");
        }
        // Before anything is attached: a foreign link of that name stops the start here.
        let vip_link = if config.bgp_servers().next().is_some() {
            let name = &config.bgp.interface;
            Some(
                VipLink::ensure(name)
                    .await
                    .with_context(|| format!("[bgp] interface {name}"))?,
            )
        } else {
            None
        };
        let (readiness_tx, readiness) = tokio::sync::watch::channel(Readiness::new());
        let mut sync_stats = None;
        // Read before anything else starts: the owner and the VRRP instances both use it.
        let kept = if config.vrrp_instances.is_empty() {
            Vec::new()
        } else {
            kept_masters::take(&config)
        };
        let chosen = match plane_choice::choose(&config) {
            Ok(plane) => plane,
            // Only no-accept mode wanted it: VRRP runs without, as keepalived's does
            // when its firewall rule cannot be added.
            Err(e) if config.virtual_servers.is_empty() => {
                warn!(error = %format!("{e:#}"), "no-accept mode (vrrp_strict, accept = false) needs the XDP data plane, which is not usable here: traffic to the VIPs is not dropped");
                None
            }
            Err(e) => return Err(e),
        };
        let (dataplane, owner) = match chosen {
            Some(plane) => {
                let name = plane.name();
                let mut owner = Owner::new(&config, plane)?.with_kept_masters(&kept);
                if vip_link.is_some() {
                    owner = owner.with_readiness(readiness_tx);
                }
                let (handle, inbox) = dataplane_owner::channels();
                if let Some(cfg) = &config.sync {
                    let sync = crate::sync::task::start(cfg, handle.synced.clone()).await?;
                    owner = owner.with_sync(&sync, cfg.vrrp_instance.clone());
                    sync_stats = Some(sync.stats);
                }
                tokio::spawn(owner.run(inbox));
                (name, Some(handle))
            }
            None => {
                if config.sync.is_some() {
                    warn!("[sync] is configured but no virtual_server is: nothing to sync");
                }
                ("none", None)
            }
        };
        let announcer = match (vip_link, &owner) {
            (Some(link), Some(owner)) => Some(
                Announcer::new(link, &config, readiness, owner.msgs.clone())
                    .await
                    .context("taking over the [bgp] interface")?
                    .spawn(),
            ),
            _ => None,
        };
        // Without an owner no virtual server sends updates: they would go nowhere.
        let updates = match &owner {
            Some(owner) => owner.health.clone(),
            None => mpsc::unbounded_channel().0,
        };
        let mailer = Mailer::start(email::Settings::from_config(
            &config.global,
            &email::host_name(),
        ));
        let fifo_specs = fifo::specs(&config.global);
        let fifos = if fifo_specs.is_empty() {
            None
        } else {
            let user = crate::vrrp::runtime::script_user(&config);
            Some(NotifyFifos::open(&fifo_specs, user.as_deref()).context("[global] notify FIFOs")?)
        };
        let alerts = Alerts {
            mailer: Some(mailer.clone()),
            fifos,
        };
        let bfd = Bfd::start(&config)?;
        let health = Health::run(
            plan(&config).with_bfd(bfd.states()),
            updates.clone(),
            alerts.clone(),
        );
        let vrrp = if config.vrrp_instances.is_empty() {
            None
        } else {
            let gate = owner.as_ref().map(|o| o.gate.clone());
            Some(Vrrp::start(&config, gate, &kept, alerts.clone(), bfd.states()).await?)
        };
        let view = make_view(&config, dataplane, vrrp.as_ref(), &health)
            .with_bgp(announcer.as_ref().map(|a| Arc::clone(&a.status)))
            .with_alerts(alerts.clone())
            .with_sync(sync_stats.clone())
            .with_bfd(bfd.states());
        if let Some(owner) = &owner {
            view.spawn_refresher(owner.msgs.clone());
        }
        let view = Arc::new(RwLock::new(view));
        let source: Arc<dyn Fn() -> Snapshot + Send + Sync> = {
            let view = Arc::clone(&view);
            Arc::new(move || view.read().map(|v| v.snapshot()).unwrap_or_default())
        };
        let (reload_tx, reloads) = mpsc::unbounded_channel::<ReloadRequest>();
        let control = control::serve_control(
            &config.global.control_socket,
            Arc::clone(&source),
            reload_tx,
        )
        .await
        .context("opening the control socket (is another lb-daemon running?)")?;
        let metrics = match config.global.metrics_listen {
            Some(addr) => Some(metrics::serve_metrics(addr, Arc::clone(&source)).await?),
            None => None,
        };
        info!(
            instances = config.vrrp_instances.len(),
            virtual_servers = config.virtual_servers.len(),
            "lb-daemon running"
        );
        systemd::ready();
        let daemon = Daemon {
            path: path.to_path_buf(),
            load,
            config,
            owner,
            dataplane,
            updates,
            health,
            vrrp,
            bfd,
            view,
            announcer,
            mailer,
            alerts,
            sync_stats,
            _control: control,
            _metrics: metrics,
        };
        Ok((daemon, reloads))
    }

    /// Stop for an upgrade (`lb-daemon stop --keep-dataplane`): no priority-0 advert, the
    /// VIPs stay, the XDP links are pinned and the maps stay pinned, and the MASTER
    /// instances are written down for the next daemon, which takes them over at once.
    async fn keep(self) {
        // Dropping the announcer's handle ends it without a word: the addresses stay.
        drop(self.announcer);
        self.health.stop();
        let masters = self.vrrp.map(Vrrp::abandon).unwrap_or_default();
        self.bfd.stop();
        if let Some(fifos) = &self.alerts.fifos {
            fifos.close().await;
        }
        kept_masters::record(&self.config, &masters);
        if let Some(owner) = self.owner {
            let (tx, rx) = oneshot::channel();
            if owner.msgs.send(Msg::Keep { reply: tx }).is_ok() {
                match rx.await {
                    Ok(Ok(ifs)) => {
                        info!(interfaces = ?ifs, masters = ?masters, "data plane kept for the next daemon")
                    }
                    Ok(Err(e)) => error!("keeping the data plane failed: {e}"),
                    Err(_) => error!("the data-plane owner did not answer"),
                }
            }
        }
    }

    /// Stops every part; the announced VIPs first (drained when `drain`), while the data
    /// plane still forwards.
    async fn stop(self, drain: bool) {
        if let Some(announcer) = &self.announcer {
            if drain {
                let (tx, rx) = oneshot::channel();
                if announcer.cmds.send(Cmd::DrainForStop { reply: tx }).is_ok() {
                    let bound = self.config.bgp.drain_timeout + std::time::Duration::from_secs(2);
                    let _ = tokio::time::timeout(bound, rx).await;
                }
            }
            let (tx, rx) = oneshot::channel();
            if announcer.cmds.send(Cmd::WithdrawAll { reply: tx }).is_ok() {
                let _ = tokio::time::timeout(std::time::Duration::from_secs(5), rx).await;
            }
        }
        self.health.stop();
        if let Some(vrrp) = self.vrrp {
            info!("stopping: priority-0 adverts, removing VIPs");
            vrrp.shutdown().await;
        }
        self.bfd.stop();
        if let Some(owner) = self.owner {
            let (tx, rx) = oneshot::channel();
            if owner.msgs.send(Msg::Shutdown { reply: tx }).is_ok() {
                let _ = tokio::time::timeout(std::time::Duration::from_secs(5), rx).await;
            }
        }
        // The "Stopping" alerts of the instances, while the SMTP server answers quickly.
        self.mailer.flush(std::time::Duration::from_secs(3)).await;
        if let Some(fifos) = &self.alerts.fifos {
            fifos.close().await;
        }
    }
}

impl Daemon {
    /// Hands a drain/undrain to the announcer and returns its answer.
    async fn ask_announcer(
        &self,
        cmd: impl FnOnce(oneshot::Sender<String>) -> Cmd,
    ) -> Result<String, String> {
        let Some(announcer) = &self.announcer else {
            return Err(
                "no virtual_server is announced by BGP (announce = \"bgp\"): nothing to drain"
                    .into(),
            );
        };
        let (tx, rx) = oneshot::channel();
        announcer
            .cmds
            .send(cmd(tx))
            .map_err(|_| "the BGP announcer has stopped".to_string())?;
        rx.await
            .map_err(|_| "the BGP announcer dropped the request".to_string())
    }
}

/// The status view of the running parts.
pub(super) fn make_view(
    config: &config::Config,
    dataplane: &'static str,
    vrrp: Option<&Vrrp>,
    health: &Health,
) -> View {
    View::new(
        config,
        dataplane,
        vrrp.map(Vrrp::status_receivers).unwrap_or_default(),
        health.status.clone(),
        Arc::clone(&health.counters),
    )
}
