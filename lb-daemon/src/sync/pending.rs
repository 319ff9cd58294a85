//! Records received for services this node does not program yet (pure): a VRRP BACKUP
//! keeps its MASTER's flows here and writes them into its tables when it becomes MASTER,
//! before it adds the VIPs. Bounded in entries; a record expires once it is older than
//! the idle timeout a connection would have (a newer copy of the same flow replaces it).

use std::{collections::HashMap, net::SocketAddr};

use crate::dataplane::{
    flow_sync::{FlowKind, FlowRecord},
    ServiceId,
};

type FlowId = (FlowKind, SocketAddr, SocketAddr);

#[derive(Debug)]
pub struct Pending {
    capacity: usize,
    len: usize,
    by_service: HashMap<ServiceId, HashMap<FlowId, (FlowRecord, u64)>>,
}

impl Pending {
    pub fn new(capacity: usize) -> Self {
        Pending {
            capacity,
            len: 0,
            by_service: HashMap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Keeps `records` (received at `now_ms`); returns how many did not fit.
    pub fn insert(&mut self, records: impl IntoIterator<Item = FlowRecord>, now_ms: u64) -> u64 {
        let mut refused = 0;
        for r in records {
            let flows = self.by_service.entry(r.service).or_default();
            let id = (r.kind, r.client, r.dst);
            if let Some(slot) = flows.get_mut(&id) {
                *slot = (r, now_ms);
            } else if self.len < self.capacity {
                flows.insert(id, (r, now_ms));
                self.len += 1;
            } else {
                refused += 1;
            }
        }
        refused
    }

    /// Takes every record of `service` (to install them), their idle time grown by
    /// the time they were kept: timeouts keep running.
    pub fn take(&mut self, service: &ServiceId, now_ms: u64) -> Vec<FlowRecord> {
        let Some(flows) = self.by_service.remove(service) else {
            return Vec::new();
        };
        self.len -= flows.len();
        flows
            .into_values()
            .map(|(mut r, at)| {
                let kept = u32::try_from(now_ms.saturating_sub(at)).unwrap_or(u32::MAX);
                r.idle_ms = r.idle_ms.saturating_add(kept);
                r
            })
            .collect()
    }

    /// Forgets records received more than `ttl_ms` before `now_ms`; how many.
    pub fn expire(&mut self, now_ms: u64, ttl_ms: u64) -> usize {
        let before = self.len;
        for flows in self.by_service.values_mut() {
            flows.retain(|_, (_, at)| now_ms.saturating_sub(*at) <= ttl_ms);
        }
        self.by_service.retain(|_, f| !f.is_empty());
        self.len = self.by_service.values().map(HashMap::len).sum();
        before - self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lb_common::Protocol;

    fn rec(vip: &str, port: u16) -> FlowRecord {
        FlowRecord {
            kind: FlowKind::Nat,
            service: ServiceId {
                vip: vip.parse().unwrap(),
                port: 80,
                protocol: Protocol::Tcp,
            },
            client: SocketAddr::new("203.0.113.7".parse().unwrap(), port),
            dst: SocketAddr::new(vip.parse().unwrap(), 80),
            real: "10.0.0.21:8080".parse().unwrap(),
            xsrc: SocketAddr::new("203.0.113.7".parse().unwrap(), port),
            state: 0,
            idle_ms: 0,
        }
    }

    #[test]
    fn kept_by_service_bounded_and_refreshed() {
        let mut p = Pending::new(3);
        assert_eq!(p.insert([rec("192.0.2.1", 1), rec("192.0.2.1", 2)], 0), 0);
        // The same flow again replaces its record (no room taken).
        assert_eq!(p.insert([rec("192.0.2.1", 2)], 10), 0);
        assert_eq!(p.insert([rec("192.0.2.2", 1), rec("192.0.2.2", 2)], 10), 1);
        assert_eq!(p.len(), 3);
        let a = p.take(&rec("192.0.2.1", 1).service, 25);
        assert_eq!(a.len(), 2);
        // Kept 25 and 15 ms: their idle time grew by as much.
        let mut idle: Vec<u32> = a.iter().map(|r| r.idle_ms).collect();
        idle.sort_unstable();
        assert_eq!(idle, [15, 25]);
        assert_eq!(p.len(), 1);
        assert!(p.take(&rec("192.0.2.1", 1).service, 30).is_empty());
    }

    #[test]
    fn old_records_expire() {
        let mut p = Pending::new(10);
        p.insert([rec("192.0.2.1", 1)], 0);
        p.insert([rec("192.0.2.1", 2)], 500);
        assert_eq!(p.expire(1000, 600), 1);
        assert_eq!(p.len(), 1);
        assert_eq!(p.expire(2000, 600), 1);
        assert!(p.is_empty());
    }
}
