//! The XDP plane: the eBPF program's maps, and the interfaces it is attached to.

use std::{
    collections::{BTreeSet, HashSet},
    net::IpAddr,
};

use anyhow::{Context, Result};
use tracing::{info, warn};

use super::{warn_if_forwarding_off, ForwardingPlane, Programming, WarnOnce};
use crate::dataplane::{
    self, BackendSpec, Dataplane, NatTimeouts, ServiceId, ServiceSpec, ServiceStatus,
};

pub struct XdpPlane {
    dp: Dataplane,
    warned: WarnOnce,
    /// The thread rebuilding `lb_conn_filter`, started at the first request.
    conn_filter: Option<dataplane::conn_filter::Rebuilder>,
}

impl XdpPlane {
    pub fn new(dp: Dataplane) -> Self {
        XdpPlane {
            dp,
            warned: WarnOnce::default(),
            conn_filter: None,
        }
    }
}

impl ForwardingPlane for XdpPlane {
    fn uses_next_hops(&self) -> bool {
        true
    }

    fn take_over(&mut self, configured: HashSet<ServiceId>, _nat_timeouts: &NatTimeouts) {
        // A previous daemon stopped with --keep-dataplane, or crashed: its XDP links are
        // pinned and still forwarding; take them over (atomically, no packet unhandled).
        match self.dp.adopt_links() {
            Ok(ifs) if !ifs.is_empty() => {
                info!(interfaces = ?ifs, "data plane adopted from the previous daemon")
            }
            Ok(_) => {}
            Err(e) => warn!(error = %e, "adopting the previous daemon's XDP links failed"),
        }
        // Pinned maps of a previous run may hold services this configuration dropped.
        for id in self.dp.service_ids() {
            if !configured.contains(&id) {
                match self.dp.remove_service(&id) {
                    Ok(()) => info!(service = %id, "removed a service left by a previous run"),
                    Err(e) => warn!(service = %id, error = %e, "removing a stale service failed"),
                }
            }
        }
    }

    fn program(&mut self, s: &Programming<'_>) -> Result<Vec<String>> {
        let spec = spec(s);
        // NAT: the reals' replies arrive on the interfaces they are routed through.
        let real_interfaces = if spec.mode.is_nat() && s.vs.interfaces.is_empty() {
            let mut extra: Vec<String> = Vec::new();
            for b in &spec.backends {
                if let Some(name) = ifname_of(b.egress.ifindex) {
                    if !s.interfaces.contains(&name) && !extra.contains(&name) {
                        extra.push(name);
                    }
                }
            }
            extra
        } else {
            s.real_interfaces.to_vec()
        };
        let all_interfaces = || s.interfaces.iter().chain(&real_interfaces);
        for ifname in all_interfaces() {
            self.dp
                .attach(ifname)
                .with_context(|| format!("attaching XDP to {ifname} for {}", s.id))?;
        }
        let report = self.dp.apply_service(&spec)?;
        if spec.mode.is_nat() {
            for ifname in all_interfaces() {
                warn_if_forwarding_off(&mut self.warned, ifname, s.vs.address);
            }
        }
        info!(service = %spec.id, backends = spec.backends.len(), slots_written = report.slots_written, "service programmed");
        Ok(real_interfaces)
    }

    fn is_programmed(&self, id: &ServiceId) -> bool {
        self.dp.service_spec(id).is_some()
    }

    fn remove(&mut self, id: &ServiceId) {
        if let Err(e) = self.dp.remove_service(id) {
            warn!(service = %id, error = %e, "removing a service failed");
        }
    }

    fn set_strict_vips(&mut self, vips: &BTreeSet<IpAddr>, interfaces: &[String]) -> Result<()> {
        for ifname in interfaces {
            self.dp
                .attach(ifname)
                .with_context(|| format!("attaching XDP to {ifname} for no-accept mode"))?;
        }
        if self.dp.strict_vips() != vips {
            self.dp.set_strict_vips(vips)?;
            info!(vips = ?vips, "VIPs in no-accept mode (traffic no service takes is dropped)");
        }
        Ok(())
    }

    fn refresh_interfaces(&mut self) {
        self.dp.refresh_local_macs();
    }

    fn release_interfaces_except(&mut self, needed: &HashSet<String>) {
        for (ifname, _) in self.dp.attached() {
            if !needed.contains(&ifname) {
                if let Err(e) = self.dp.detach(&ifname) {
                    warn!(iface = %ifname, error = %e, "detaching failed");
                }
            }
        }
    }

    fn status(&mut self) -> Vec<ServiceStatus> {
        self.dp.status().unwrap_or_default()
    }

    fn counters(&self) -> Vec<(String, u64)> {
        self.dp
            .counters()
            .map(|v| v.into_iter().map(|(_, n, c)| (n.to_string(), c)).collect())
            .unwrap_or_default()
    }

    fn usage(&self) -> dataplane::PlaneUsage {
        self.dp.usage().unwrap_or_else(|e| {
            // Every second: not worth a warning each time.
            tracing::debug!(error = %e, "reading the data plane's table use");
            dataplane::PlaneUsage {
                attached: self.dp.attached(),
                ..Default::default()
            }
        })
    }

    fn refresh_conn_filter(&mut self) {
        if self.conn_filter.is_none() {
            match self.dp.conn_filter_rebuilder() {
                Ok(rebuilder) => self.conn_filter = rebuilder,
                Err(e) => {
                    if self.warned.first(format!("conn_filter: {e}")) {
                        warn!(error = %e, "the connection-table filter cannot be rebuilt: every new flow keeps its table lookup");
                    }
                    return;
                }
            }
        }
        if let Some(rebuilder) = &self.conn_filter {
            rebuilder.request();
        }
    }

    fn sweep_nat(&mut self, timeouts: &NatTimeouts) {
        let now = dataplane::nat::monotonic_ns();
        match self.dp.sweep_nat(timeouts, now) {
            Ok(sweep) if sweep.expired > 0 => {
                tracing::debug!(
                    entries = sweep.entries,
                    expired = sweep.expired,
                    "NAT table swept"
                )
            }
            Ok(_) => {}
            Err(e) => warn!(error = %e, "sweeping the NAT table failed"),
        }
    }

    fn take_neigh_misses(&mut self) -> Vec<(std::net::IpAddr, u32)> {
        self.dp.take_neigh_misses().unwrap_or_else(|e| {
            warn!(error = %e, "reading lb_neigh_miss failed");
            Vec::new()
        })
    }

    fn set_sync_learning(&mut self, on: bool) -> Result<()> {
        self.dp
            .set_sync_learning(on)
            .context("turning on new-flow reports (lb_sync_events)")
    }

    fn drain_learned(&mut self, max: usize) -> Vec<crate::dataplane::flow_sync::FlowRecord> {
        self.dp.drain_learned(max)
    }

    fn dump_flows(&mut self) -> Vec<crate::dataplane::flow_sync::FlowRecord> {
        match self.dp.dump_flows() {
            Ok(records) => records,
            Err(e) => {
                warn!(error = %e, "reading the flow tables for a peer failed");
                Vec::new()
            }
        }
    }

    fn install_flows(
        &mut self,
        records: &[crate::dataplane::flow_sync::FlowRecord],
    ) -> crate::dataplane::flow_sync::InstallReport {
        self.dp.install_flows(records)
    }

    fn keep(&mut self) -> Result<Vec<String>, String> {
        self.dp.keep_attached().map_err(|e| e.to_string())
    }

    fn shutdown(&mut self, configured: &[ServiceId]) {
        for id in configured {
            if self.dp.service_spec(id).is_some() {
                let _ = self.dp.remove_service(id);
            }
        }
        for (ifname, _) in self.dp.attached() {
            let _ = self.dp.detach(&ifname);
        }
        self.dp.unpin();
        info!("data plane stopped: services removed, XDP detached, maps unpinned");
    }
}

/// The XDP service for a virtual server and its desired backends; backends whose next
/// hop is unresolved are left out (the data plane could not rewrite their frames).
fn spec(s: &Programming<'_>) -> ServiceSpec {
    let mut backends = Vec::new();
    for b in s.backends {
        match s.next_hops.get(b.addr) {
            Some(egress) => backends.push(BackendSpec {
                addr: b.addr,
                port: b.port,
                weight: b.weight,
                egress,
            }),
            None => warn!(backend = %b.addr, "backend unreachable: left out"),
        }
    }
    dataplane::from_config::service_spec(s.vs, backends)
}

/// The name of interface `ifindex` (0: none).
fn ifname_of(ifindex: u32) -> Option<String> {
    if ifindex == 0 {
        return None;
    }
    nix::net::if_::if_indextoname(ifindex)
        .ok()
        .and_then(|c| c.into_string().ok())
}
