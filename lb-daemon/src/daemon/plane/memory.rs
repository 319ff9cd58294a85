//! A forwarding plane that only records what it was asked: the owner's unit tests
//! check gating, health updates, reload and stop against it.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, HashSet},
    net::IpAddr,
    sync::{Arc, Mutex},
};

use anyhow::Result;
use lb_common::Traffic;

use super::{ForwardingPlane, Programming};
use crate::dataplane::{
    flow_sync::{FlowRecord, InstallReport},
    NatTimeouts, ServiceId, ServiceStatus,
};

/// What the plane forwards: each programmed service's backends as "addr:port weight".
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Forwarding {
    pub services: BTreeMap<String, Vec<String>>,
    /// Where each service was last programmed to attach.
    pub interfaces: BTreeMap<String, Vec<String>>,
    /// Set by a stop: "shutdown" or "kept".
    pub stopped: Option<&'static str>,
    /// Each programmed service's counters: tests add traffic; removal drops them, as
    /// the data plane drops a service's counters with the service.
    pub traffic: HashMap<ServiceId, Traffic>,
    /// Flow-state sync: new flows the tests make the plane report, and peers' flows
    /// installed (in order).
    pub learned: Vec<FlowRecord>,
    pub installed: Vec<FlowRecord>,
    /// VIPs in no-accept mode, and where they were to be dropped.
    pub strict_vips: BTreeSet<IpAddr>,
    pub strict_interfaces: Vec<String>,
}

/// The plane; tests keep a clone of `state` to look inside while the owner runs.
#[derive(Debug, Default, Clone)]
pub struct MemoryPlane {
    pub state: Arc<Mutex<Forwarding>>,
}

impl MemoryPlane {
    fn with<T>(&self, f: impl FnOnce(&mut Forwarding) -> T) -> T {
        f(&mut self.state.lock().expect("memory plane poisoned"))
    }
}

impl ForwardingPlane for MemoryPlane {
    fn take_over(&mut self, _configured: HashSet<ServiceId>, _nat_timeouts: &NatTimeouts) {}

    fn program(&mut self, s: &Programming<'_>) -> Result<Vec<String>> {
        let backends = s
            .backends
            .iter()
            .map(|b| format!("{}:{} {}", b.addr, b.port, b.weight))
            .collect();
        self.with(|f| {
            f.services.insert(s.id.to_string(), backends);
            f.interfaces.insert(s.id.to_string(), s.interfaces.to_vec());
            f.traffic.entry(s.id).or_default();
        });
        Ok(s.real_interfaces.to_vec())
    }

    fn set_strict_vips(&mut self, vips: &BTreeSet<IpAddr>, interfaces: &[String]) -> Result<()> {
        self.with(|f| {
            f.strict_vips = vips.clone();
            f.strict_interfaces = interfaces.to_vec();
        });
        Ok(())
    }

    fn is_programmed(&self, id: &ServiceId) -> bool {
        self.with(|f| f.services.contains_key(&id.to_string()))
    }

    fn remove(&mut self, id: &ServiceId) {
        self.with(|f| {
            f.services.remove(&id.to_string());
            f.traffic.remove(id);
            // As in XDP: a removed service's flows lose their backends.
            f.installed.retain(|r| r.service != *id);
        });
    }

    fn status(&mut self) -> Vec<ServiceStatus> {
        self.with(|f| {
            f.traffic
                .iter()
                .map(|(id, traffic)| ServiceStatus {
                    id: *id,
                    mode: None,
                    table_size: 0,
                    traffic: *traffic,
                    backends: Vec::new(),
                    nat_connections: None,
                })
                .collect()
        })
    }

    fn set_sync_learning(&mut self, _on: bool) -> Result<()> {
        Ok(())
    }

    fn drain_learned(&mut self, max: usize) -> Vec<FlowRecord> {
        self.with(|f| {
            let n = f.learned.len().min(max);
            f.learned.drain(..n).collect()
        })
    }

    fn dump_flows(&mut self) -> Vec<FlowRecord> {
        self.with(|f| f.installed.clone())
    }

    fn install_flows(&mut self, records: &[FlowRecord]) -> InstallReport {
        self.with(|f| f.installed.extend_from_slice(records));
        InstallReport {
            installed: records.len() as u64,
            ..InstallReport::default()
        }
    }

    fn keep(&mut self) -> Result<Vec<String>, String> {
        self.with(|f| f.stopped = Some("kept"));
        Ok(Vec::new())
    }

    fn shutdown(&mut self, configured: &[ServiceId]) {
        self.with(|f| {
            for id in configured {
                f.services.remove(&id.to_string());
            }
            f.stopped = Some("shutdown");
        });
    }
}
