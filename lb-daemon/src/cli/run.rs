//! `lb-daemon run --config FILE`: the daemon in the foreground.
//!
//! Today it runs the VRRP instances of the configuration (the way keepalived fronts
//! HAProxy or nginx): VIPs move with mastership, tracking and sync groups apply, notify
//! scripts run. SIGTERM/SIGINT stop it gracefully (priority-0 adverts, VIPs removed).

use std::path::Path;

use anyhow::{bail, Context, Result};
use tracing::{info, warn};

use crate::{config, vrrp::runtime::Vrrp};

pub fn run(path: &Path) -> Result<()> {
    let loaded = super::check_config::load_checked(path)?;
    for w in &loaded.warnings {
        warn!("{w}");
    }
    let config = loaded.config;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
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
    if config.vrrp_instances.is_empty() {
        bail!("the configuration has no vrrp_instance: nothing to run");
    }
    let vrrp = Vrrp::start(&config).await?;
    info!(instances = vrrp.instances.len(), "lb-daemon running");
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                warn!("reloading the configuration is not available in this version; restart the daemon to apply a new configuration (the running one is unchanged)");
            }
        }
    }
    info!("stopping: priority-0 adverts, removing VIPs");
    vrrp.shutdown().await;
    info!("stopped");
    Ok(())
}
