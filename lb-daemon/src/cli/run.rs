//! `lb-daemon run --config FILE`: the daemon in the foreground.
//!
//! It runs the VRRP instances of the configuration (the way keepalived fronts HAProxy or
//! nginx: VIPs move with mastership, tracking and sync groups apply, notify scripts run)
//! and the health checks of its virtual servers (each verdict change yields the
//! service's new desired backend set). With virtual servers it loads the XDP data plane:
//! a service is forwarded while the VRRP instance holding its VIP is MASTER (services no
//! instance holds always are), with the healthy backends of the moment.
//! SIGTERM/SIGINT stop it gracefully: priority-0 adverts, VIPs removed, services removed,
//! XDP detached, maps unpinned.

use std::path::Path;

use anyhow::{bail, Context, Result};
use tracing::{info, warn};

use tokio::sync::{mpsc, oneshot};

use crate::{
    config,
    daemon::dataplane_owner::{Msg, Owner},
    dataplane::{Dataplane, LoadOptions},
    health::runner::{Health, Update},
    vrrp::{instance::GateRequest, runtime::Vrrp},
};

/// Loads the XDP data plane when the configuration has virtual servers.
fn load_dataplane(config: &config::Config) -> Result<Option<Dataplane>> {
    if config.virtual_servers.is_empty() {
        return Ok(None);
    }
    if config.global.dataplane == config::Dataplane::Ipvs {
        bail!("dataplane = \"ipvs\" is not available in this version; use \"xdp\" or \"auto\"");
    }
    if let Some(vs) = config
        .virtual_servers
        .iter()
        .find(|vs| vs.lb_kind == config::LbKind::Nat)
    {
        bail!(
            "virtual_server {}:{}: lb_kind NAT needs the NAT data plane, not available in this version; use DR or TUN",
            vs.address,
            vs.port
        );
    }
    let dp = Dataplane::load(&LoadOptions {
        pin_dir: config.global.bpf_pin_path.clone(),
        ..LoadOptions::default()
    })
    .context("loading the XDP data plane (root, BPF, a bpffs for bpf_pin_path)")?;
    if dp.adopted() {
        info!(pin_dir = %config.global.bpf_pin_path.display(), "re-using the pinned maps of a previous run");
    }
    Ok(Some(dp))
}

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
    runtime.block_on(serve(config))
}

async fn serve(config: config::Config) -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    if config.vrrp_instances.is_empty() && config.virtual_servers.is_empty() {
        bail!("the configuration has no vrrp_instance and no virtual_server: nothing to run");
    }
    // The data-plane owner first, so health updates and mastership find it.
    let owner = match load_dataplane(&config)? {
        Some(dp) => {
            let (tx, rx) = mpsc::unbounded_channel::<Msg>();
            tokio::spawn(Owner::new(&config, dp)?.run(rx));
            Some(tx)
        }
        None => None,
    };
    let gate = owner.as_ref().map(|owner| {
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
    });
    let (updates_tx, mut updates) = mpsc::unbounded_channel::<Update>();
    let health = Health::start(&config, updates_tx);
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
        Some(Vrrp::start(&config, gate).await?)
    };
    info!(
        instances = config.vrrp_instances.len(),
        virtual_servers = config.virtual_servers.len(),
        "lb-daemon running"
    );
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                warn!("reloading the configuration is not available in this version; restart the daemon to apply a new configuration (the running one is unchanged)");
            }
        }
    }
    health.stop();
    if let Some(vrrp) = vrrp {
        info!("stopping: priority-0 adverts, removing VIPs");
        vrrp.shutdown().await;
    }
    if let Some(owner) = owner {
        let (tx, rx) = oneshot::channel();
        if owner.send(Msg::Shutdown { reply: tx }).is_ok() {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), rx).await;
        }
    }
    info!("stopped");
    Ok(())
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
