//! Reading counters and the programmed state, for status output and metrics.

use std::collections::HashMap;
use std::net::IpAddr;

use aya::maps::{MapData, PerCpuArray};
use lb_common::{map_names, Counter, Traffic};

use super::{map_err, Dataplane, DataplaneError, ForwardMode, ServiceId};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendStatus {
    pub addr: IpAddr,
    pub port: u16,
    pub weight: u32,
    /// Slots of the Maglev table it holds.
    pub slots: u32,
    pub traffic: Traffic,
    /// Connections it serves now: NAT translations, or DR/TUN connection-table entries
    /// seen within the service's timeout (counted at most every [`CONN_COUNT_EVERY`]).
    pub connections: Option<u64>,
}

/// How often the connection table is walked to count each backend's connections (a walk
/// reads every entry: a few milliseconds per 64k entries).
pub const CONN_COUNT_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceStatus {
    pub id: ServiceId,
    pub mode: Option<ForwardMode>,
    pub table_size: u32,
    pub traffic: Traffic,
    pub backends: Vec<BackendStatus>,
    /// NAT services: connections in the translation table.
    pub nat_connections: Option<u64>,
}

impl Dataplane {
    /// Global counters, summed over CPUs, in `Counter` order.
    pub fn counters(&self) -> Result<Vec<(Counter, &'static str, u64)>, DataplaneError> {
        let name = map_names::STATS;
        let map: PerCpuArray<&MapData, u64> =
            PerCpuArray::try_from(self.map(name)?).map_err(|e| map_err(name, e))?;
        Counter::ALL
            .iter()
            .map(|&(c, label)| {
                let per_cpu = map.get(&(c as u32), 0).map_err(|e| map_err(name, e))?;
                Ok((c, label, per_cpu.iter().sum()))
            })
            .collect()
    }

    pub fn counter(&self, counter: Counter) -> Result<u64, DataplaneError> {
        Ok(self
            .counters()?
            .into_iter()
            .find(|(c, _, _)| *c == counter)
            .map(|(_, _, v)| v)
            .unwrap_or(0))
    }

    fn traffic(&self, name: &'static str, index: u32) -> Result<Traffic, DataplaneError> {
        let map: PerCpuArray<&MapData, Traffic> =
            PerCpuArray::try_from(self.map(name)?).map_err(|e| map_err(name, e))?;
        let per_cpu = map.get(&index, 0).map_err(|e| map_err(name, e))?;
        Ok(per_cpu.iter().fold(Traffic::default(), |acc, t| Traffic {
            packets: acc.packets + t.packets,
            bytes: acc.bytes + t.bytes,
        }))
    }

    /// Every programmed service with its backends and counters.
    pub fn status(&self) -> Result<Vec<ServiceStatus>, DataplaneError> {
        let mut out = Vec::new();
        let has_nat = self
            .services
            .values()
            .any(|s| s.spec.as_ref().is_some_and(|s| s.mode.is_nat()));
        let nat = if has_nat {
            self.nat_connections()?
        } else {
            Vec::new()
        };
        let conntrack = self.connections_by_backend();
        for (id, state) in &self.services {
            let is_nat = state.spec.as_ref().is_some_and(|s| s.mode.is_nat());
            let mut backends = Vec::new();
            for (&(addr, port), b) in &state.backends {
                let connections = if is_nat {
                    Some(
                        nat.iter()
                            .filter(|c| c.vip == (id.vip, id.port) && c.real == (addr, port))
                            .count() as u64,
                    )
                } else {
                    conntrack
                        .as_ref()
                        .map(|m| m.get(&b.id).copied().unwrap_or(0))
                };
                backends.push(BackendStatus {
                    addr,
                    port,
                    weight: b.weight,
                    slots: state.ring.iter().filter(|&&v| v == b.id).count() as u32,
                    traffic: self.traffic(map_names::BACKEND_STATS, b.id)?,
                    connections,
                });
            }
            backends.sort_by_key(|b| (b.addr, b.port));
            let nat_connections = is_nat.then(|| {
                nat.iter()
                    .filter(|c| c.vip == (id.vip, id.port) && c.protocol == id.protocol.number())
                    .count() as u64
            });
            out.push(ServiceStatus {
                id: *id,
                nat_connections,
                mode: state.spec.as_ref().map(|s| s.mode),
                table_size: state.info.ring_size,
                traffic: self.traffic(map_names::SERVICE_STATS, state.info.id)?,
                backends,
            });
        }
        out.sort_by_key(|s| (s.id.vip, s.id.port, s.id.protocol.number()));
        Ok(out)
    }

    /// DR/TUN connections per backend id: connection-table entries still naming the
    /// backend's generation and seen within their service's timeout. Walked at most every
    /// [`CONN_COUNT_EVERY`]; `None` when the table cannot be read.
    fn connections_by_backend(&self) -> Option<HashMap<u32, u64>> {
        let mut cache = self.conn_counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, counts)) = cache.as_ref() {
            if at.elapsed() < CONN_COUNT_EVERY {
                return Some(counts.clone());
            }
        }
        // backend id -> (generation, timeout in ns)
        let live: HashMap<u32, (u32, u64)> = self
            .services
            .values()
            .flat_map(|s| {
                let timeout = u64::from(s.info.timeout_s) * 1_000_000_000;
                s.backends
                    .values()
                    .map(move |b| (b.id, (b.entry.generation, timeout)))
            })
            .collect();
        let name = map_names::CONNTRACK;
        let map: aya::maps::HashMap<&MapData, lb_common::FlowKey, lb_common::Conn> =
            aya::maps::HashMap::try_from(self.map(name).ok()?).ok()?;
        let now = super::nat::monotonic_ns();
        let mut counts: HashMap<u32, u64> = HashMap::new();
        for (_, c) in map.iter().flatten() {
            let Some(&(generation, timeout)) = live.get(&c.backend) else {
                continue;
            };
            if c.generation == generation && now.saturating_sub(c.last_seen_ns) < timeout {
                *counts.entry(c.backend).or_default() += 1;
            }
        }
        *cache = Some((std::time::Instant::now(), counts.clone()));
        Some(counts)
    }
}
