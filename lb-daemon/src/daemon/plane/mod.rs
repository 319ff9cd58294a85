//! The seam between the data-plane owner and what forwards packets.
//!
//! The owner keeps the desired state (which services, which backends, which VRRP
//! instance gates them) and decides *when* a service is programmed or removed; a
//! [`ForwardingPlane`] knows *how*: XDP maps and attachments ([`xdp`]), the kernel's
//! IPVS table ([`ipvs`]), or a record in memory for the owner's unit tests.
//!
//! It lives in `daemon/` rather than `dataplane/` because it joins two data planes
//! (`dataplane` is the XDP one, `ipvs` the other) to the daemon's desired state; a new
//! forwarding plane implements this trait and is chosen in [`super::plane_choice`].

pub mod ipvs;
#[cfg(test)]
pub mod memory;
pub mod xdp;

use std::{
    collections::{BTreeSet, HashSet},
    net::IpAddr,
};

use anyhow::Result;
use tracing::warn;

use super::next_hops::NextHops;
use crate::{
    config,
    dataplane::{
        flow_sync::{FlowRecord, InstallReport},
        Dataplane, NatTimeouts, PlaneUsage, ServiceId, ServiceStatus,
    },
    health::verdict::DesiredBackend,
    ipvs::Ipvs,
};

/// The plane [`super::plane_choice`] chose, before the owner drives it.
pub enum Plane {
    Xdp(Box<Dataplane>),
    Ipvs(Box<Ipvs>),
}

impl Plane {
    /// As status and metrics name it.
    pub fn name(&self) -> &'static str {
        match self {
            Plane::Xdp(_) => "xdp",
            Plane::Ipvs(_) => "ipvs",
        }
    }
}

impl From<Plane> for Box<dyn ForwardingPlane> {
    fn from(plane: Plane) -> Self {
        match plane {
            Plane::Xdp(dp) => Box::new(xdp::XdpPlane::new(*dp)),
            Plane::Ipvs(ipvs) => Box::new(ipvs::IpvsPlane::new(*ipvs)),
        }
    }
}

/// One service to program with its desired backends of the moment.
pub struct Programming<'a> {
    pub id: ServiceId,
    pub vs: &'a config::VirtualServer,
    /// Where the service lives: its `interfaces`, else its VRRP instance's interface.
    pub interfaces: &'a [String],
    /// NAT reals' interfaces found when it was last programmed (kept across reloads).
    pub real_interfaces: &'a [String],
    pub backends: &'a [DesiredBackend],
    /// Resolved next hops by backend address (filled only for planes that use them).
    pub next_hops: &'a NextHops,
}

/// A forwarding plane the owner drives. Every call is quick and synchronous: next hops
/// are resolved by the owner beforehand (see [`ForwardingPlane::uses_next_hops`]).
pub trait ForwardingPlane: Send {
    /// Whether programming needs the backends' next hops resolved (XDP rewrites MACs).
    fn uses_next_hops(&self) -> bool {
        false
    }

    /// What a previous run left: adopt it, keep what `configured` names, drop the rest.
    fn take_over(&mut self, configured: HashSet<ServiceId>, nat_timeouts: &NatTimeouts);

    /// The configured services changed (a reload).
    fn configured(&mut self, _ids: HashSet<ServiceId>) {}

    /// Programs the service; returns the NAT reals' interfaces it now serves on too.
    fn program(&mut self, service: &Programming<'_>) -> Result<Vec<String>>;

    /// Whether `id` is programmed.
    fn is_programmed(&self, id: &ServiceId) -> bool;

    /// Stops forwarding `id` (errors are logged).
    fn remove(&mut self, id: &ServiceId);

    /// keepalived's no-accept mode: traffic to `vips` that no service takes is dropped,
    /// on `interfaces` (where those VIPs' instances run) besides the services' own. Only
    /// the XDP plane can; the others refuse a non-empty set.
    fn set_strict_vips(&mut self, vips: &BTreeSet<IpAddr>, _interfaces: &[String]) -> Result<()> {
        if vips.is_empty() {
            return Ok(());
        }
        anyhow::bail!(
            "no-accept mode (vrrp_strict, accept = false) drops VIP traffic only on the XDP data plane: the host still answers {} VIP(s) here; set accept = true on those instances to say so",
            vips.len()
        )
    }

    /// Re-reads what it keeps of the interfaces it runs on (XDP: their MAC addresses,
    /// which tell the frames meant for this host from those a switch flooded here).
    fn refresh_interfaces(&mut self) {}

    /// Releases interfaces no active service needs any more.
    fn release_interfaces_except(&mut self, _needed: &HashSet<String>) {}

    fn status(&mut self) -> Vec<ServiceStatus>;

    /// Counters by name.
    fn counters(&self) -> Vec<(String, u64)> {
        Vec::new()
    }

    /// How full its tables are and where it runs (metrics).
    fn usage(&self) -> PlaneUsage {
        PlaneUsage::default()
    }

    /// Removes the NAT entries of finished or idle connections.
    fn sweep_nat(&mut self, _timeouts: &NatTimeouts) {}

    /// Rebuilds the filter of the connection table's keys (XDP: `lb_conn_filter`).
    fn refresh_conn_filter(&mut self) {}

    /// Next hops (address, ifindex) the plane met unresolved since the last call.
    fn take_neigh_misses(&mut self) -> Vec<(IpAddr, u32)> {
        Vec::new()
    }

    /// Flow-state sync: the plane reports the new flows it schedules (XDP only).
    fn set_sync_learning(&mut self, _on: bool) -> Result<()> {
        anyhow::bail!("flow-state sync ([sync]) needs the XDP data plane")
    }

    /// Up to `max` new flows reported since the last call.
    fn drain_learned(&mut self, _max: usize) -> Vec<FlowRecord> {
        Vec::new()
    }

    /// Every flow of the plane's tables, for a peer that asks (bulk sync).
    fn dump_flows(&mut self) -> Vec<FlowRecord> {
        Vec::new()
    }

    /// Writes a peer's flows into the plane's tables (never over a valid local entry).
    fn install_flows(&mut self, records: &[FlowRecord]) -> InstallReport {
        let mut report = InstallReport::default();
        if !records.is_empty() {
            report.skipped.insert("unsupported", records.len() as u64);
        }
        report
    }

    /// Reads the plane's state back and corrects drift (changes made by hand).
    fn reconcile(&mut self) {}

    /// Stop for an upgrade: leave the forwarding in place for the next daemon; returns
    /// the interfaces kept.
    fn keep(&mut self) -> Result<Vec<String>, String>;

    /// Stop: remove what this daemon programmed.
    fn shutdown(&mut self, configured: &[ServiceId]);
}

/// Warnings given once (per key), however often the condition is met again.
#[derive(Debug, Default)]
pub struct WarnOnce(HashSet<String>);

impl WarnOnce {
    /// True the first time `key` is seen.
    pub fn first(&mut self, key: String) -> bool {
        self.0.insert(key)
    }
}

/// NAT replies are routed by the kernel's FIB, which forwards only where IP forwarding
/// is on (as for IPVS NAT): say so once per family and interface.
pub fn warn_if_forwarding_off(warned: &mut WarnOnce, ifname: &str, vip: IpAddr) {
    let family = if vip.is_ipv4() { "ipv4" } else { "ipv6" };
    let path = format!("/proc/sys/net/{family}/conf/{ifname}/forwarding");
    let on = std::fs::read_to_string(&path).is_ok_and(|v| v.trim() == "1");
    if !on && warned.first(format!("{family}/{ifname}")) {
        warn!(
            iface = ifname,
            "{family} forwarding is off on {ifname}: NAT replies cannot be routed to clients; set net.{family}.conf.{ifname}.forwarding = 1 (or net.ipv4.ip_forward = 1 / net.ipv6.conf.all.forwarding = 1)"
        );
    }
}
