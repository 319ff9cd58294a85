//! Reloading the configuration in a running daemon (SIGHUP or `lb-daemon reload`).

use tokio::sync::oneshot;
use tracing::{error, info, warn};

use std::sync::Arc;

use super::{
    announcer::{self, Cmd},
    app::{make_view, Daemon},
    dataplane_owner::Msg,
    systemd,
};
use crate::alerts::email;
use crate::health::{from_config::plan, runner::Health};

impl Daemon {
    /// Re-reads the configuration file. An invalid file changes nothing. Virtual servers
    /// are applied in place (the VRRP instances keep their state; the data plane is
    /// reprogrammed with diff writes); a change to the VRRP sections or to the global
    /// data-plane settings needs a restart in this version and is refused. The outcome
    /// is logged and returned (for `lb-daemon reload`).
    pub(super) async fn reload(&mut self) -> Result<String, String> {
        systemd::reloading();
        let result = self.try_reload().await;
        systemd::ready();
        match &result {
            Ok(msg) => info!("{msg}"),
            Err(e) => error!("reload rejected, the running configuration is kept: {e}"),
        }
        result
    }

    async fn try_reload(&mut self) -> Result<String, String> {
        // The diagnostics go back to the client, as check-config prints them.
        let loaded = (self.load)(&self.path).map_err(|e| {
            e.downcast_ref::<crate::config::Invalid>()
                .map_or_else(|| format!("{e:#}"), crate::config::Invalid::full)
        })?;
        for w in &loaded.warnings {
            warn!("{w}");
        }
        let new = loaded.config;
        // The e-mail settings apply in place; the rest of [global] needs a restart.
        let without_email = |g: &crate::config::Global| crate::config::Global {
            email: crate::config::Email::default(),
            ..g.clone()
        };
        if without_email(&new.global) != without_email(&self.config.global) {
            return Err("[global] changed: restart the daemon to apply it".into());
        }
        if self.vrrp.is_none() != new.vrrp_instances.is_empty() {
            return Err("VRRP instances were added to a daemon started without any (or all removed): restart the daemon".into());
        }
        if super::plane_choice::needs_plane(&new) && self.owner.is_none() {
            return Err(
                "virtual servers (or an instance in no-accept mode: vrrp_strict, accept = false) were added to a daemon started without any: restart the daemon"
                    .into(),
            );
        }
        if new.bgp != self.config.bgp {
            return Err("[bgp] changed: restart the daemon to apply it".into());
        }
        if new.sync != self.config.sync {
            return Err("[sync] changed: restart the daemon to apply it".into());
        }
        if self.announcer.is_some() != new.bgp_servers().next().is_some() {
            return Err("announce = \"bgp\" was added to a daemon started without it (or removed from all virtual servers): restart the daemon".into());
        }
        // Sessions first, so that new track_bfd and BFD_CHECK entries find them.
        self.bfd.apply(&new).map_err(|e| format!("{e:#}"))?;
        let applied = match self.vrrp.as_mut() {
            Some(vrrp) => vrrp.apply(&new).await,
            None => Ok((false, "no VRRP instances".to_string())),
        };
        let (vrrp_changed, vrrp_summary) = match applied {
            Ok(done) => done,
            Err(e) => {
                // The reload is refused: the sessions go back to the running set too
                // (unchanged sessions were never touched, so they keep their state).
                if let Err(back) = self.bfd.apply(&self.config) {
                    error!("reload: putting the BFD sessions back failed: {back:#}");
                }
                return Err(e);
            }
        };
        // Instance changes can move which instance owns a service: re-derive those too.
        if new.virtual_servers != self.config.virtual_servers || vrrp_changed {
            // The owner re-derives its services before the new checks send their first
            // desired sets (they reach it on a channel of their own, not behind this).
            if let Some(owner) = &self.owner {
                let (tx, rx) = oneshot::channel();
                let _ = owner.msgs.send(Msg::Reconfigure {
                    config: Box::new(new.clone()),
                    reply: tx,
                });
                let _ = rx.await;
            }
            let health = Health::run(
                plan(&new).with_bfd(self.bfd.states()),
                self.updates.clone(),
                self.alerts.clone(),
            );
            let old = std::mem::replace(&mut self.health, health);
            old.stop();
            if let Some(announcer) = &self.announcer {
                let vips = announcer::announced_vips(&new);
                let _ = announcer.cmds.send(Cmd::Reconfigure { vips });
            }
        }
        let n = new.virtual_servers.len();
        self.mailer.configure(email::Settings::from_config(
            &new.global,
            &email::host_name(),
        ));
        let view = make_view(&new, self.dataplane, self.vrrp.as_ref(), &self.health)
            .with_bgp(self.announcer.as_ref().map(|a| Arc::clone(&a.status)))
            .with_alerts(self.alerts.clone())
            .with_sync(self.sync_stats.clone())
            .with_bfd(self.bfd.states());
        if let Some(owner) = &self.owner {
            view.spawn_refresher(owner.msgs.clone());
        }
        if let Ok(mut v) = self.view.write() {
            *v = view;
        }
        self.config = new;
        Ok(format!(
            "reloaded: {n} virtual servers applied; {vrrp_summary}"
        ))
    }
}
