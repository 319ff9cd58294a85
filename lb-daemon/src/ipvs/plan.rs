//! Reconciliation as a pure function: the desired services, the set of services this
//! daemon manages and the kernel's table in, the operations that make the kernel match
//! out. Services the daemon does not manage (added by hand, or by another tool) are
//! reported and never touched; inside a managed service every difference is ours to fix.

use std::{
    collections::{HashMap, HashSet},
    fmt,
    net::IpAddr,
};

use super::model::{DestEntry, ServiceEntry};
use crate::dataplane::ServiceId;

/// A service as it should be in the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredService {
    pub service: ServiceEntry,
    pub dests: Vec<DestEntry>,
}

/// A service as a dump returned it.
pub type KernelService = (ServiceEntry, Vec<DestEntry>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    NewService(ServiceEntry),
    SetService(ServiceEntry),
    DelService(ServiceId),
    NewDest(ServiceId, DestEntry),
    SetDest(ServiceId, DestEntry),
    DelDest(ServiceId, DestEntry),
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::NewService(s) => write!(f, "add service {} ({})", s.id, describe(s)),
            Op::SetService(s) => write!(f, "change service {} to {}", s.id, describe(s)),
            Op::DelService(id) => write!(f, "delete service {id}"),
            Op::NewDest(id, d) => write!(
                f,
                "add real {d} to {id} ({}, weight {})",
                d.forward.ipvsadm_name(),
                d.weight
            ),
            Op::SetDest(id, d) => write!(
                f,
                "change real {d} of {id} to {}, weight {}",
                d.forward.ipvsadm_name(),
                d.weight
            ),
            Op::DelDest(id, d) => write!(f, "delete real {d} from {id}"),
        }
    }
}

fn describe(s: &ServiceEntry) -> String {
    match s.persistence {
        Some(t) => format!("scheduler {}, persistent {t} s", s.scheduler),
        None => format!("scheduler {}", s.scheduler),
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub ops: Vec<Op>,
    /// Services in the kernel this daemon does not manage (left alone).
    pub foreign: Vec<ServiceId>,
}

type DestKey = (IpAddr, u16);

/// What makes `kernel` match `desired`. Services in `managed` are ours: deleted when not
/// desired if also in `removable`, else left for now (a previous daemon's services
/// before VRRP has decided); every other service is foreign.
pub fn plan(
    desired: &HashMap<ServiceId, DesiredService>,
    managed: &HashSet<ServiceId>,
    removable: &HashSet<ServiceId>,
    kernel: &[KernelService],
) -> Plan {
    let mut out = Plan::default();
    let mut wanted: Vec<&DesiredService> = desired.values().collect();
    wanted.sort_by_key(|d| d.service.id.to_string());
    for d in &wanted {
        let id = d.service.id;
        match kernel.iter().find(|(s, _)| s.id == id) {
            None => {
                out.ops.push(Op::NewService(d.service.clone()));
                for dest in unique(&d.dests) {
                    out.ops.push(Op::NewDest(id, dest.clone()));
                }
            }
            Some((have, have_dests)) => {
                if !have.same_config(&d.service) {
                    out.ops.push(Op::SetService(d.service.clone()));
                }
                dests(&mut out.ops, id, &unique(&d.dests), have_dests);
            }
        }
    }
    for (s, _) in kernel {
        if wanted.iter().any(|d| d.service.id == s.id) {
            continue;
        }
        if removable.contains(&s.id) {
            out.ops.push(Op::DelService(s.id));
        } else if !managed.contains(&s.id) {
            out.foreign.push(s.id);
        }
    }
    out
}

/// Deletions first, then changes, then additions.
fn dests(ops: &mut Vec<Op>, id: ServiceId, want: &[&DestEntry], have: &[DestEntry]) {
    let key = |d: &DestEntry| -> DestKey { (d.addr, d.port) };
    for h in have {
        if !want.iter().any(|w| key(w) == key(h)) {
            ops.push(Op::DelDest(id, h.clone()));
        }
    }
    for w in want {
        if let Some(h) = have.iter().find(|h| key(h) == key(w)) {
            if !h.same_config(w) {
                ops.push(Op::SetDest(id, (*w).clone()));
            }
        }
    }
    for w in want {
        if !have.iter().any(|h| key(h) == key(w)) {
            ops.push(Op::NewDest(id, (*w).clone()));
        }
    }
}

/// One destination per address and port (the first).
fn unique(dests: &[DestEntry]) -> Vec<&DestEntry> {
    let mut seen = HashSet::new();
    dests
        .iter()
        .filter(|d| seen.insert((d.addr, d.port)))
        .collect()
}
