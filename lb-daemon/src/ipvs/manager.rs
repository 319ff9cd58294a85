//! The IPVS table owner: holds the desired services, reads the kernel's table back on
//! every change (and whenever asked), and makes it match ([`plan`](super::plan)).

use std::collections::{HashMap, HashSet};

use tracing::{info, warn};

use super::{
    error::IpvsError,
    model::{request, service_family, DestEntry, ServiceEntry},
    plan::{plan, DesiredService, KernelService, Op},
    socket::Transport,
};
use crate::dataplane::ServiceId;

/// What one reconciliation did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Operations carried out (drift fixed, changes applied).
    pub applied: Vec<Op>,
    /// Services not ours, seen for the first time.
    pub new_foreign: Vec<ServiceId>,
}

pub struct Manager<T: Transport> {
    transport: T,
    desired: HashMap<ServiceId, DesiredService>,
    /// Services this daemon is responsible for (configured), whether served or not.
    managed: HashSet<ServiceId>,
    /// Managed services deleted when not desired: those this run served or removed, and
    /// all of them once [`Manager::end_grace`] was called.
    removable: HashSet<ServiceId>,
    grace: bool,
    /// Foreign services already reported (by description).
    reported: HashSet<String>,
}

impl<T: Transport> Manager<T> {
    pub fn new(transport: T) -> Self {
        Self {
            transport,
            desired: HashMap::new(),
            managed: HashSet::new(),
            removable: HashSet::new(),
            grace: false,
            reported: HashSet::new(),
        }
    }

    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }

    /// The configured services: present in the kernel while not desired, they are
    /// removed; anything else not desired is foreign and left alone.
    pub fn set_managed(&mut self, ids: impl IntoIterator<Item = ServiceId>) {
        self.managed = ids.into_iter().collect();
        self.managed.extend(self.desired.keys().copied());
        self.removable.retain(|id| self.managed.contains(id));
        if !self.grace {
            self.removable = self.managed.clone();
        }
    }

    /// Starts a grace period: configured services already in the kernel (a previous
    /// daemon's, kept with `stop --keep-dataplane`) stay until this run serves or
    /// removes them, or [`Manager::end_grace`] — so VRRP can take over mastership first.
    pub fn begin_grace(&mut self) {
        self.grace = true;
        self.removable.clear();
    }

    pub fn end_grace(&mut self) {
        self.grace = false;
        self.removable = self.managed.clone();
    }

    pub fn is_desired(&self, id: &ServiceId) -> bool {
        self.desired.contains_key(id)
    }

    pub fn desired(&self, id: &ServiceId) -> Option<&DesiredService> {
        self.desired.get(id)
    }

    /// Serves `d` (adds or updates it), then reconciles the whole table.
    pub fn apply(&mut self, d: DesiredService) -> Result<Report, IpvsError> {
        let id = d.service.id;
        self.managed.insert(id);
        self.removable.insert(id);
        self.desired.insert(id, d);
        self.reconcile()
    }

    /// Stops serving `id` (deletes it from the kernel), then reconciles.
    pub fn remove(&mut self, id: &ServiceId) -> Result<Report, IpvsError> {
        self.managed.insert(*id);
        self.removable.insert(*id);
        self.desired.remove(id);
        self.reconcile()
    }

    /// Reads the table back and fixes every difference in the services we manage.
    /// Every operation is tried; the first failure is returned.
    pub fn reconcile(&mut self) -> Result<Report, IpvsError> {
        let table = self.table()?;
        let plan = plan(&self.desired, &self.managed, &self.removable, &table);
        let mut report = Report::default();
        for id in plan.foreign {
            if self.reported.insert(id.to_string()) {
                warn!(service = %id, "IPVS service not in the configuration (added by hand or by another tool): left alone");
                report.new_foreign.push(id);
            }
        }
        let mut first_error = None;
        for op in plan.ops {
            match self.execute(&op) {
                Ok(()) => {
                    info!(change = %op, "IPVS");
                    report.applied.push(op);
                }
                Err(e) => {
                    warn!(change = %op, error = %e, "IPVS change failed");
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }

    /// keepalived's `lvs_timeouts` as IPVS's connection timeouts (whole seconds, at least 1).
    pub fn set_timeouts(&mut self, t: &crate::config::NatTimeouts) -> Result<(), IpvsError> {
        let secs = |d: std::time::Duration| u32::try_from(d.as_secs().max(1)).unwrap_or(u32::MAX);
        self.transport
            .request(request::set_timeouts(
                secs(t.tcp),
                secs(t.tcpfin),
                secs(t.udp),
            ))
            .map_err(|e| IpvsError::from_transport("set the connection timeouts", e))
    }

    /// Deletes every managed service from the kernel and forgets the desired ones.
    pub fn cleanup(&mut self) -> Result<usize, IpvsError> {
        self.desired.clear();
        self.end_grace();
        let report = self.reconcile()?;
        Ok(report
            .applied
            .iter()
            .filter(|op| matches!(op, Op::DelService(_)))
            .count())
    }

    /// The kernel's table: every TCP/UDP/SCTP address:port service and firewall-mark
    /// service with its destinations. Other kinds are reported once and skipped.
    pub fn table(&mut self) -> Result<Vec<KernelService>, IpvsError> {
        let services = self
            .transport
            .dump(request::get_services())
            .map_err(|e| IpvsError::from_transport("list the services", e))?;
        let mut out = Vec::new();
        for msg in services {
            let Some(attrs) = msg.service() else {
                continue;
            };
            let service = match ServiceEntry::from_attrs(attrs) {
                Ok(s) => s,
                Err(e) => {
                    let what = e.to_string();
                    if self.reported.insert(what.clone()) {
                        warn!(service = %what, "IPVS service this daemon does not manage: left alone");
                    }
                    continue;
                }
            };
            let dests = self
                .transport
                .dump(request::get_dests(&service.id))
                .map_err(|e| {
                    IpvsError::from_transport(&format!("list the reals of {}", service.id), e)
                })?;
            let family = service_family(&service.id);
            let mut list = Vec::new();
            for m in dests {
                if let Some(d) = m.dest() {
                    let dest = DestEntry::from_attrs(d, family).map_err(|e| {
                        IpvsError::Malformed(format!("a real of {}: {e}", service.id))
                    })?;
                    list.push(dest);
                }
            }
            out.push((service, list));
        }
        Ok(out)
    }

    fn execute(&mut self, op: &Op) -> Result<(), IpvsError> {
        let msg = match op {
            Op::NewService(s) => request::new_service(s),
            Op::SetService(s) => request::set_service(s),
            Op::DelService(id) => request::del_service(id),
            Op::NewDest(id, d) => request::new_dest(id, d),
            Op::SetDest(id, d) => request::set_dest(id, d),
            Op::DelDest(id, d) => request::del_dest(id, d.addr, d.port),
        };
        self.transport.request(msg).map_err(|e| match op {
            Op::NewService(s) | Op::SetService(s) => IpvsError::from_service_change(s, e),
            _ => IpvsError::from_transport(&op.to_string(), e),
        })
    }
}
