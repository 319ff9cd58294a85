//! Programming services: backends, Maglev tables (diff writes) and service entries, in an
//! order that never lets a packet see a half-made service:
//! new backends first, then their ring slots, then the service entry; removed backends
//! only after no ring slot points to them any more.

use std::{collections::HashMap, net::IpAddr};

use lb_common::{backend_flags, map_names, Backend, ServiceInfo, ServiceKey, NO_BACKEND};
use tracing::debug;

use super::{
    maglev, spec::encode_addr, BackendSpec, BackendState, Dataplane, DataplaneError, ServiceId,
    ServiceSpec, ServiceState, SpecError,
};

/// What an apply changed (for logs and tests).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ApplyReport {
    pub created: bool,
    pub backends_added: usize,
    pub backends_removed: usize,
    pub backends_updated: usize,
    pub slots_written: usize,
}

impl Dataplane {
    /// Creates or updates a service to match `spec`. Established flows keep their backend
    /// unless it was removed; new flows follow the new Maglev table.
    pub fn apply_service(&mut self, spec: &ServiceSpec) -> Result<ApplyReport, DataplaneError> {
        spec.validate()?;
        let id = spec.id;
        let mut report = ApplyReport::default();
        let mut state = match self.services.remove(&id) {
            Some(state) => state,
            None => {
                report.created = true;
                self.new_service(spec)?
            }
        };
        let result = self.apply_to(&mut state, spec, &mut report);
        // Whatever happened, keep tracking what the maps hold.
        self.services.insert(id, state);
        result?;
        self.sync_nat_reals()?;
        self.sync_vip_filter()?;
        debug!(service = %id, ?report, "service programmed");
        Ok(report)
    }

    fn new_service(&mut self, spec: &ServiceSpec) -> Result<ServiceState, DataplaneError> {
        let service = spec.id;
        let sid = self.service_ids.allocate().ok_or(DataplaneError::Full {
            what: "the service table",
            used: self.service_ids.in_use() as u64,
            capacity: self.service_ids.capacity() as u64,
            service,
        })?;
        let Some(offset) = self.rings.allocate(spec.table_size) else {
            self.service_ids.release(sid);
            return Err(self.ring_full(service));
        };
        if let Err(e) = self.reset_traffic(map_names::SERVICE_STATS, sid) {
            self.service_ids.release(sid);
            self.rings.release(offset);
            return Err(e);
        }
        Ok(ServiceState {
            info: ServiceInfo {
                id: sid,
                flags: 0,
                ring_offset: offset,
                ring_size: spec.table_size,
                timeout_s: 0,
                group: 0,
                snat: [0; 4],
            },
            ring: Vec::new(),
            backends: HashMap::new(),
            spec: None,
            member_keys: Vec::new(),
        })
    }

    fn ring_full(&self, service: ServiceId) -> DataplaneError {
        DataplaneError::Full {
            what: "the Maglev slot array",
            used: self.rings.used() as u64,
            capacity: self.rings.capacity() as u64,
            service,
        }
    }

    fn apply_to(
        &mut self,
        state: &mut ServiceState,
        spec: &ServiceSpec,
        report: &mut ApplyReport,
    ) -> Result<(), DataplaneError> {
        let wanted: HashMap<(IpAddr, u16), &BackendSpec> = spec
            .backends
            .iter()
            .map(|b| ((b.addr, b.port), b))
            .collect();
        let new_count = wanted
            .keys()
            .filter(|k| !state.backends.contains_key(k))
            .count();
        let free = (self.backend_ids.capacity() as usize).saturating_sub(self.backend_ids.in_use());
        if new_count > free {
            return Err(DataplaneError::Full {
                what: "the backend table",
                used: self.backend_ids.in_use() as u64,
                capacity: self.backend_ids.capacity() as u64,
                service: spec.id,
            });
        }

        // A new table size needs a new region; the old one is freed once the service
        // entry points at the new one.
        let old_region = if state.info.ring_size != spec.table_size {
            let offset = self
                .rings
                .allocate(spec.table_size)
                .ok_or_else(|| self.ring_full(spec.id))?;
            let old = state.info.ring_offset;
            state.info.ring_offset = offset;
            state.info.ring_size = spec.table_size;
            state.ring.clear();
            Some(old)
        } else {
            None
        };

        // 1. Backends that are new or changed (weight changes touch only the ring).
        for (key, b) in &wanted {
            match state.backends.get_mut(key) {
                Some(existing) => {
                    existing.weight = b.weight;
                    let entry = backend_entry(b, state.info.id, existing.entry.generation);
                    if entry != existing.entry {
                        self.backends_map()?
                            .set(existing.id, entry, 0)
                            .map_err(|source| super::map_err(map_names::BACKENDS, source))?;
                        existing.entry = entry;
                        report.backends_updated += 1;
                    }
                }
                None => {
                    let id = self.backend_ids.allocate().ok_or(DataplaneError::Full {
                        what: "the backend table",
                        used: self.backend_ids.in_use() as u64,
                        capacity: self.backend_ids.capacity() as u64,
                        service: spec.id,
                    })?;
                    let generation = self.new_generation();
                    let entry = backend_entry(b, state.info.id, generation);
                    self.reset_traffic(map_names::BACKEND_STATS, id)?;
                    self.backends_map()?
                        .set(id, entry, 0)
                        .map_err(|source| super::map_err(map_names::BACKENDS, source))?;
                    state.backends.insert(
                        *key,
                        BackendState {
                            id,
                            entry,
                            weight: b.weight,
                        },
                    );
                    report.backends_added += 1;
                }
            }
        }

        // 2. The Maglev table over the wanted backends; write only changed slots.
        let identities: Vec<(String, u32, u32)> = wanted
            .iter()
            .filter_map(|(key, b)| {
                state
                    .backends
                    .get(key)
                    .map(|s| (b.identity(), s.id, b.weight))
            })
            .collect();
        let members: Vec<maglev::MaglevBackend<'_>> = identities
            .iter()
            .map(|(identity, value, weight)| maglev::MaglevBackend {
                identity: identity.as_bytes(),
                value: *value,
                weight: *weight,
            })
            .collect();
        let table = maglev::build(&members, spec.table_size).map_err(|source| {
            DataplaneError::Spec(SpecError::Maglev {
                service: spec.id,
                source,
            })
        })?;
        report.slots_written += self.write_ring(state.info.ring_offset, &state.ring, &table)?;
        state.ring = table;

        // 3. The service entry: from here on packets use the new table.
        state.info.flags = spec.flags();
        state.info.snat = match spec.mode {
            super::ForwardMode::Nat { snat: Some(a) } => encode_addr(a).0,
            _ => [0; 4],
        };
        state.info.timeout_s = spec.timeout().as_secs().min(u32::MAX as u64) as u32;
        state.info.group = spec.group_mark();
        let info = state.info;
        self.write_service_info(info.id, info)?;
        let member_keys = spec.member_keys();
        {
            let mut services = self.services_map()?;
            // A firewall-mark service's own name is no address: its members match.
            let own = spec.id.fwmark_of().is_none().then(|| spec.id.key());
            for key in own.into_iter().chain(member_keys.iter().copied()) {
                services
                    .insert(key, info, 0)
                    .map_err(|source| super::map_err(map_names::SERVICES, source))?;
            }
        }
        // Members no longer listed stop matching (unless another service took them).
        let dropped: Vec<ServiceKey> = state
            .member_keys
            .iter()
            .filter(|k| !member_keys.contains(k))
            .copied()
            .collect();
        for key in dropped {
            self.remove_owned_key(&key, info.id)?;
        }
        state.member_keys = member_keys;
        if let Some(old) = old_region {
            self.rings.release(old);
        }

        // 4. Backends no longer wanted: no slot points to them now.
        let removed: Vec<(IpAddr, u16)> = state
            .backends
            .keys()
            .filter(|k| !wanted.contains_key(k))
            .copied()
            .collect();
        for key in removed {
            if let Some(b) = state.backends.remove(&key) {
                self.clear_backend(b.id)?;
                report.backends_removed += 1;
            }
        }
        state.spec = Some(spec.clone());
        Ok(())
    }

    /// Writes the slots of `new` that differ from `old` (all of them when `old` is empty,
    /// i.e. unknown). Returns how many were written.
    fn write_ring(
        &mut self,
        offset: u32,
        old: &[u32],
        new: &[u32],
    ) -> Result<usize, DataplaneError> {
        // Changed slots only (all when the length changed).
        let slots: Vec<(u32, u32)> = if old.len() == new.len() {
            maglev::changed_slots(old, new).collect()
        } else {
            new.iter()
                .enumerate()
                .map(|(i, &v)| (i as u32, v))
                .collect()
        };
        // In memory when the map is mapped (see `mapped_ring`), else a call per slot.
        if let Some(mapped) = &self.maglev_mapped {
            for &(index, value) in &slots {
                if !mapped.set(offset + index, value) {
                    return Err(DataplaneError::Map {
                        map: map_names::MAGLEV,
                        source: aya::maps::MapError::OutOfBounds {
                            index: offset + index,
                            max_entries: self.capacity.maglev_slots,
                        },
                    });
                }
            }
            return Ok(slots.len());
        }
        let mut ring = self.maglev_map()?;
        for &(index, value) in &slots {
            ring.set(offset + index, value, 0)
                .map_err(|source| super::map_err(map_names::MAGLEV, source))?;
        }
        Ok(slots.len())
    }

    /// Marks a backend id free: flows still pointing at it are re-hashed by the program.
    fn clear_backend(&mut self, id: u32) -> Result<(), DataplaneError> {
        self.backends_map()?
            .set(id, Backend::default(), 0)
            .map_err(|source| super::map_err(map_names::BACKENDS, source))?;
        self.backend_ids.release(id);
        Ok(())
    }

    /// Removes a service: it stops matching at once, then its backends and table go.
    pub fn remove_service(&mut self, id: &ServiceId) -> Result<(), DataplaneError> {
        let Some(state) = self.services.remove(id) else {
            return Err(DataplaneError::NoService(*id));
        };
        // A firewall-mark service has no key of its own (its members are removed below).
        let own = if id.fwmark_of().is_none() {
            self.services_map()?.remove(&id.key())
        } else {
            Ok(())
        };
        match own {
            Ok(()) | Err(aya::maps::MapError::KeyNotFound) => {}
            Err(source) => {
                self.services.insert(*id, state);
                return Err(super::map_err(map_names::SERVICES, source));
            }
        }
        for key in &state.member_keys {
            self.remove_owned_key(key, state.info.id)?;
        }
        for b in state.backends.values() {
            self.clear_backend(b.id)?;
        }
        let empty = vec![NO_BACKEND; state.info.ring_size as usize];
        self.write_ring(state.info.ring_offset, &state.ring, &empty)?;
        self.rings.release(state.info.ring_offset);
        self.write_service_info(state.info.id, ServiceInfo::default())?;
        self.service_ids.release(state.info.id);
        self.sync_nat_reals()?;
        self.sync_vip_filter()?;
        debug!(service = %id, "service removed");
        Ok(())
    }

    /// Removes a group member's `lb_services` entry if it still names service `sid`: a
    /// member handed to another service (a group whose first address changed, adopted
    /// under another member) stays.
    fn remove_owned_key(&mut self, key: &ServiceKey, sid: u32) -> Result<(), DataplaneError> {
        let mut services = self.services_map()?;
        match services.get(key, 0) {
            Ok(info) if info.id == sid => match services.remove(key) {
                Ok(()) | Err(aya::maps::MapError::KeyNotFound) => Ok(()),
                Err(source) => Err(super::map_err(map_names::SERVICES, source)),
            },
            Ok(_) | Err(aya::maps::MapError::KeyNotFound) => Ok(()),
            Err(source) => Err(super::map_err(map_names::SERVICES, source)),
        }
    }

    /// Services currently programmed.
    pub fn service_ids(&self) -> Vec<ServiceId> {
        self.services.keys().copied().collect()
    }

    /// The spec last applied to a service (None for unknown, or adopted and not yet
    /// re-applied).
    pub fn service_spec(&self, id: &ServiceId) -> Option<&ServiceSpec> {
        self.services.get(id).and_then(|s| s.spec.as_ref())
    }

    /// The Maglev table of a service as programmed (slot -> backend address and port).
    pub fn ring_backends(&self, id: &ServiceId) -> Option<Vec<Option<(IpAddr, u16)>>> {
        let state = self.services.get(id)?;
        let by_id: HashMap<u32, (IpAddr, u16)> =
            state.backends.iter().map(|(key, b)| (b.id, *key)).collect();
        Some(state.ring.iter().map(|v| by_id.get(v).copied()).collect())
    }
}

fn backend_entry(b: &BackendSpec, service: u32, generation: u32) -> Backend {
    let (addr, family) = encode_addr(b.addr);
    let tun_src = b
        .egress
        .tunnel_src
        .map(|a| encode_addr(a).0)
        .unwrap_or_default();
    Backend {
        addr,
        tun_src,
        mac: b.egress.next_hop_mac,
        src_mac: b.egress.src_mac,
        family,
        flags: backend_flags::ACTIVE,
        port: b.port.to_be(),
        generation,
        ifindex: b.egress.ifindex,
        service,
    }
}
