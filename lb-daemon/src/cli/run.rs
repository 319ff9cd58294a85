//! `lb-daemon run --config FILE`: the daemon in the foreground.
//!
//! It runs the VRRP instances of the configuration (the way keepalived fronts HAProxy or
//! nginx: VIPs move with mastership, tracking and sync groups apply, notify scripts run)
//! and the health checks of its virtual servers (each verdict change yields the
//! service's new desired backend set). With virtual servers it drives a data plane, XDP
//! or IPVS (`dataplane`, see [`plane_choice`]): a service is forwarded while the VRRP
//! instance holding its VIP is MASTER (services no instance holds always are), with the
//! healthy backends of the moment.
//! SIGTERM/SIGINT stop it gracefully: priority-0 adverts, VIPs removed, services removed,
//! XDP detached and maps unpinned (or our IPVS services deleted).

use std::path::Path;

use anyhow::{bail, Context, Result};
use tracing::{info, warn};

use std::sync::{Arc, RwLock};

use tokio::sync::{mpsc, oneshot};
use tracing::error;

use crate::{
    config,
    daemon::{
        control::{self, Action, ReloadRequest},
        dataplane_owner::{Msg, Owner},
        metrics, plane_choice,
        snapshot::Snapshot,
        systemd,
        view::View,
    },
    health::runner::{Health, Update},
    vrrp::{instance::GateRequest, runtime::Vrrp},
};

pub fn run(path: &Path) -> Result<()> {
    let loaded = super::check_config::load_checked(path)?;
    for w in &loaded.warnings {
        warn!("{w}");
    }
    let config = loaded.config;
    // One thread, like keepalived: the work is I/O-bound, and thousands of checks a
    // second cost less without cross-thread wake-ups.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(path, config))
}

/// The running parts.
struct Daemon {
    path: std::path::PathBuf,
    config: config::Config,
    owner: Option<mpsc::UnboundedSender<Msg>>,
    /// The data plane's name in status and metrics.
    dataplane: &'static str,
    updates: mpsc::UnboundedSender<Update>,
    health: Health,
    vrrp: Option<Vrrp>,
    view: Arc<RwLock<View>>,
}

async fn serve(path: &Path, config: config::Config) -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    if config.vrrp_instances.is_empty() && config.virtual_servers.is_empty() {
        bail!("the configuration has no vrrp_instance and no virtual_server: nothing to run");
    }
    // The data-plane owner first, so health updates and mastership find it.
    let mut plane_name = "none";
    let owner = match plane_choice::choose(&config)? {
        Some(plane) => {
            plane_name = plane.name();
            let (tx, rx) = mpsc::unbounded_channel::<Msg>();
            tokio::spawn(Owner::new(&config, plane)?.run(rx));
            Some(tx)
        }
        None => None,
    };
    let gate = owner.as_ref().map(gate_to);
    let (updates_tx, mut updates) = mpsc::unbounded_channel::<Update>();
    let health = Health::start(&config, updates_tx.clone());
    let to_owner = owner.clone();
    tokio::spawn(async move {
        while let Some(u) = updates.recv().await {
            log_update(&u);
            if let Some(owner) = &to_owner {
                let _ = owner.send(Msg::Health(u));
            }
        }
    });
    let vrrp = if config.vrrp_instances.is_empty() {
        None
    } else {
        Some(Vrrp::start(&config, gate, &take_kept_masters(&config)).await?)
    };
    let view = Arc::new(RwLock::new(make_view(
        &config,
        plane_name,
        vrrp.as_ref(),
        &health,
    )));
    if let (Some(owner), Ok(v)) = (&owner, view.read()) {
        v.spawn_refresher(owner.clone());
    }
    let source: Arc<dyn Fn() -> Snapshot + Send + Sync> = {
        let view = Arc::clone(&view);
        Arc::new(move || view.read().map(|v| v.snapshot()).unwrap_or_default())
    };
    let (reload_tx, mut reloads) = mpsc::unbounded_channel::<ReloadRequest>();
    let _control = control::serve_control(
        &config.global.control_socket,
        Arc::clone(&source),
        reload_tx,
    )
    .await
    .context("opening the control socket (is another lb-daemon running?)")?;
    let _metrics = match config.global.metrics_listen {
        Some(addr) => Some(metrics::serve_metrics(addr, Arc::clone(&source)).await?),
        None => None,
    };
    info!(
        instances = config.vrrp_instances.len(),
        virtual_servers = config.virtual_servers.len(),
        "lb-daemon running"
    );
    systemd::ready();
    let mut daemon = Daemon {
        path: path.to_path_buf(),
        config,
        owner,
        dataplane: plane_name,
        updates: updates_tx,
        health,
        vrrp,
        view,
    };
    let mut keep_dataplane = false;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                match daemon.reload().await {
                    Ok(msg) => info!("{msg}"),
                    Err(e) => error!("reload rejected, the running configuration is kept: {e}"),
                }
            }
            Some(req) = reloads.recv() => {
                match req.action {
                    Action::Reload => {
                        let r = daemon.reload().await;
                        match &r {
                            Ok(msg) => info!("{msg}"),
                            Err(e) => error!("reload rejected, the running configuration is kept: {e}"),
                        }
                        let _ = req.reply.send(r);
                    }
                    Action::Stop { keep_dataplane: keep } => {
                        keep_dataplane = keep;
                        let _ = req.reply.send(Ok(if keep {
                            "stopping; the data plane and the VIPs stay for the next daemon".into()
                        } else {
                            "stopping".into()
                        }));
                        break;
                    }
                }
            }
        }
    }
    systemd::stopping();
    if keep_dataplane {
        daemon.keep().await;
    } else {
        daemon.stop().await;
    }
    info!("stopped");
    Ok(())
}

/// Where a daemon stopped with --keep-dataplane lists its MASTER instances (next to the
/// control socket: bpffs holds no plain files).
fn kept_masters_path(config: &config::Config) -> std::path::PathBuf {
    let mut p = config.global.control_socket.clone().into_os_string();
    p.push(".masters");
    p.into()
}

/// Reads (and removes) the list a previous daemon left.
fn take_kept_masters(config: &config::Config) -> Vec<String> {
    let path = kept_masters_path(config);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Vec::new();
    };
    let _ = std::fs::remove_file(&path);
    let names: Vec<String> = text
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    if !names.is_empty() {
        info!(instances = ?names, "taking over the MASTER instances of the previous daemon");
    }
    names
}

/// Forwards VRRP's gate requests to the data-plane owner.
fn gate_to(owner: &mpsc::UnboundedSender<Msg>) -> mpsc::UnboundedSender<GateRequest> {
    let (gate_tx, mut gate_rx) = mpsc::unbounded_channel::<GateRequest>();
    let owner = owner.clone();
    tokio::spawn(async move {
        while let Some(req) = gate_rx.recv().await {
            let msg = match req {
                GateRequest::BecomeMaster { instance, reply } => {
                    Msg::BecomeMaster { instance, reply }
                }
                GateRequest::LeftMaster { instance } => Msg::LeftMaster { instance },
            };
            let _ = owner.send(msg);
        }
    });
    gate_tx
}

fn make_view(
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

impl Daemon {
    /// Re-reads the configuration file. An invalid file changes nothing. Virtual servers
    /// are applied in place (the VRRP instances keep their state; the data plane is
    /// reprogrammed with diff writes); a change to the VRRP sections or to the global
    /// data-plane settings needs a restart in this version and is refused.
    async fn reload(&mut self) -> Result<String, String> {
        systemd::reloading();
        let result = self.try_reload().await;
        systemd::ready();
        result
    }

    async fn try_reload(&mut self) -> Result<String, String> {
        let loaded = super::check_config::load_checked(&self.path).map_err(|e| format!("{e:#}"))?;
        for w in &loaded.warnings {
            warn!("{w}");
        }
        let new = loaded.config;
        if new.global != self.config.global {
            return Err("[global] changed: restart the daemon to apply it".into());
        }
        if self.vrrp.is_none() != new.vrrp_instances.is_empty() {
            return Err("VRRP instances were added to a daemon started without any (or all removed): restart the daemon".into());
        }
        if !new.virtual_servers.is_empty() && self.owner.is_none() {
            return Err(
                "virtual servers were added to a daemon started without them: restart the daemon"
                    .into(),
            );
        }
        let (vrrp_changed, vrrp_summary) = match self.vrrp.as_mut() {
            Some(vrrp) => vrrp.apply(&new).await?,
            None => (false, "no VRRP instances".to_string()),
        };
        // Instance changes can move which instance owns a service: re-derive those too.
        if new.virtual_servers != self.config.virtual_servers || vrrp_changed {
            let old =
                std::mem::replace(&mut self.health, Health::start(&new, self.updates.clone()));
            old.stop();
            if let Some(owner) = &self.owner {
                let (tx, rx) = oneshot::channel();
                let _ = owner.send(Msg::Reconfigure {
                    config: Box::new(new.clone()),
                    reply: tx,
                });
                let _ = rx.await;
            }
        }
        let n = new.virtual_servers.len();
        let view = make_view(&new, self.dataplane, self.vrrp.as_ref(), &self.health);
        if let Some(owner) = &self.owner {
            view.spawn_refresher(owner.clone());
        }
        if let Ok(mut v) = self.view.write() {
            *v = view;
        }
        self.config = new;
        Ok(format!(
            "reloaded: {n} virtual servers applied; {vrrp_summary}"
        ))
    }

    /// Stop for an upgrade (`lb-daemon stop --keep-dataplane`): no priority-0 advert, the
    /// VIPs stay, the XDP links are pinned and the maps stay pinned, and the MASTER
    /// instances are written down for the next daemon, which takes them over at once.
    async fn keep(self) {
        self.health.stop();
        let masters = self.vrrp.map(Vrrp::abandon).unwrap_or_default();
        let marker = kept_masters_path(&self.config);
        if let Err(e) = std::fs::write(&marker, masters.join("\n")) {
            warn!(path = %marker.display(), error = %e, "cannot record the MASTER instances for the next daemon");
        }
        if let Some(owner) = self.owner {
            let (tx, rx) = oneshot::channel();
            if owner.send(Msg::Keep { reply: tx }).is_ok() {
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

    async fn stop(self) {
        self.health.stop();
        if let Some(vrrp) = self.vrrp {
            info!("stopping: priority-0 adverts, removing VIPs");
            vrrp.shutdown().await;
        }
        if let Some(owner) = self.owner {
            let (tx, rx) = oneshot::channel();
            if owner.send(Msg::Shutdown { reply: tx }).is_ok() {
                let _ = tokio::time::timeout(std::time::Duration::from_secs(5), rx).await;
            }
        }
    }
}

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
        service = %format!("{}:{} {:?}", u.service.address, u.service.port, u.service.protocol),
        quorum_up = u.quorum_up,
        backends = %backends.join(", "),
        "desired backend set"
    );
}
