//! `lb-daemon run --config FILE`: the daemon in the foreground.
//!
//! It runs the VRRP instances of the configuration (the way keepalived fronts HAProxy or
//! nginx: VIPs move with mastership, tracking and sync groups apply, notify scripts run)
//! and the health checks of its virtual servers (each verdict change yields the
//! service's new desired backend set). SIGTERM/SIGINT stop it gracefully (priority-0
//! adverts, VIPs removed).

use std::path::Path;

use anyhow::{bail, Context, Result};
use tracing::{info, warn};

use crate::{
    config,
    health::runner::{Health, Update},
    vrrp::runtime::Vrrp,
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
    let vrrp = if config.vrrp_instances.is_empty() {
        None
    } else {
        Some(Vrrp::start(&config).await?)
    };
    let (updates_tx, mut updates) = tokio::sync::mpsc::unbounded_channel::<Update>();
    let health = Health::start(&config, updates_tx);
    tokio::spawn(async move {
        while let Some(u) = updates.recv().await {
            log_update(&u);
        }
    });
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
