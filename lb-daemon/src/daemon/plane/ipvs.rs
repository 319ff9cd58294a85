//! The IPVS plane: the kernel's IPVS table, read back and corrected every
//! [`IPVS_RECONCILE_EVERY`]. It has no interfaces to attach and no NAT table to sweep.

use std::{collections::HashSet, time::Duration};

use anyhow::{Context, Result};
use tracing::{debug, info, warn};

use super::{warn_if_forwarding_off, ForwardingPlane, Programming, WarnOnce};
use crate::{
    config,
    dataplane::{NatTimeouts, ServiceId, ServiceStatus},
    ipvs::{self, Ipvs},
};

/// How often the IPVS table is read back and drift (changes by hand) corrected.
pub const IPVS_RECONCILE_EVERY: Duration = Duration::from_secs(5);

pub struct IpvsPlane {
    ipvs: Ipvs,
    warned: WarnOnce,
}

impl IpvsPlane {
    pub fn new(ipvs: Ipvs) -> Self {
        IpvsPlane {
            ipvs,
            warned: WarnOnce::default(),
        }
    }
}

impl ForwardingPlane for IpvsPlane {
    fn take_over(&mut self, configured: HashSet<ServiceId>, nat_timeouts: &NatTimeouts) {
        // Configured services are ours. Those a previous daemon left (kept for an
        // upgrade, or after a crash) stay until VRRP decides, at most one reconcile
        // period; other services are reported.
        self.ipvs.begin_grace();
        self.ipvs.set_managed(configured);
        if let Err(e) = self.ipvs.set_timeouts(nat_timeouts) {
            warn!(error = %e, "setting the IPVS connection timeouts (lvs_timeouts) failed");
        }
        if let Err(e) = self.ipvs.reconcile() {
            warn!(error = %e, "reading the IPVS table back failed");
        }
    }

    fn configured(&mut self, ids: HashSet<ServiceId>) {
        self.ipvs.set_managed(ids);
    }

    /// Programs the service with its desired backends (the whole table is read back and
    /// corrected on the way).
    fn program(&mut self, s: &Programming<'_>) -> Result<Vec<String>> {
        let desired = ipvs::from_config::desired_service(s.vs, s.backends);
        let id = desired.service.id;
        let warn_once = ipvs::from_config::unsupported(s.vs)
            .filter(|_| self.warned.first(format!("unsupported/{id}")));
        if let Some(w) = warn_once {
            warn!(service = %id, "{w}");
        }
        self.ipvs
            .apply(desired)
            .with_context(|| format!("programming IPVS service {id}"))?;
        info!(service = %id, backends = s.backends.len(), "IPVS service programmed");
        if s.vs.uses_lb_kind(config::LbKind::Nat) {
            warn_if_forwarding_off(&mut self.warned, "all", s.vs.address);
        }
        Ok(s.real_interfaces.to_vec())
    }

    fn is_programmed(&self, id: &ServiceId) -> bool {
        self.ipvs.is_desired(id)
    }

    fn remove(&mut self, id: &ServiceId) {
        if let Err(e) = self.ipvs.remove(id) {
            warn!(service = %id, error = %e, "removing an IPVS service failed");
        }
    }

    fn status(&mut self) -> Vec<ServiceStatus> {
        match self.ipvs.table() {
            Ok(table) => ipvs::status::of_table(&table),
            Err(e) => {
                debug!(error = %e, "reading the IPVS table for status failed");
                Vec::new()
            }
        }
    }

    fn reconcile(&mut self) {
        self.ipvs.end_grace();
        match self.ipvs.reconcile() {
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

    /// The kernel keeps the services; the next daemon reconciles them.
    fn keep(&mut self) -> Result<Vec<String>, String> {
        Ok(Vec::new())
    }

    fn shutdown(&mut self, _configured: &[ServiceId]) {
        match self.ipvs.cleanup() {
            Ok(n) => info!(
                services = n,
                "IPVS data plane stopped: our services removed"
            ),
            Err(e) => warn!(error = %e, "removing the IPVS services failed"),
        }
    }
}
