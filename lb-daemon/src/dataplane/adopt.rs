//! Re-using pinned maps after a restart: rebuild the user-space mirror (ids, ring regions,
//! tables, backends) from what the maps hold, so the next apply writes only differences
//! and established flows keep their backends.

use std::collections::HashMap;

use aya::maps::{Array, HashMap as BpfHashMap, MapData};
use lb_common::{backend_flags, map_names, Backend, ServiceInfo, ServiceKey};
use tracing::warn;

use super::{
    map_err, spec::decode_addr, BackendState, Dataplane, DataplaneError, ServiceId, ServiceState,
};

impl Dataplane {
    pub(super) fn adopt(&mut self) -> Result<(), DataplaneError> {
        let services: Vec<(ServiceKey, ServiceInfo)> = {
            let map: BpfHashMap<&MapData, ServiceKey, ServiceInfo> =
                BpfHashMap::try_from(self.map(map_names::SERVICES)?)
                    .map_err(|e| map_err(map_names::SERVICES, e))?;
            map.iter().filter_map(Result::ok).collect()
        };
        let backends = self.read_active_backends()?;
        let mut by_service: HashMap<u32, Vec<(u32, Backend)>> = HashMap::new();
        for (id, b) in backends {
            by_service.entry(b.service).or_default().push((id, b));
        }

        for (key, info) in services {
            let Some(mut id) = ServiceId::from_key(&key) else {
                warn!(?key, "pinned service entry is not understood; ignoring it");
                continue;
            };
            // A firewall-mark group is named by its mark, as the configuration names it.
            if (1..=ServiceId::FWMARK_MAX).contains(&info.group) {
                id = ServiceId::fwmark(info.group, id.vip.is_ipv6());
            }
            // Every (address, port) of a group holds the same entry: the first one met
            // makes the service, each is one of its members.
            if info.group != 0 {
                if let Some(owner) = self
                    .services
                    .values_mut()
                    .find(|s| s.info.id == info.id && s.info == info)
                {
                    owner.member_keys.push(key);
                    continue;
                }
            }
            if !self.service_ids.reserve(info.id)
                || !self.rings.reserve(info.ring_offset, info.ring_size)
            {
                warn!(service = %id, "pinned service entry overlaps another; it will be rewritten");
                continue;
            }
            let ring = self.read_ring(info.ring_offset, info.ring_size)?;
            let mut state = ServiceState {
                info,
                ring,
                backends: HashMap::new(),
                spec: None,
                member_keys: id.fwmark_of().map(|_| vec![key]).unwrap_or_default(),
            };
            for (bid, entry) in by_service.remove(&info.id).unwrap_or_default() {
                let Some(addr) = decode_addr(&entry.addr, entry.family) else {
                    continue;
                };
                if !self.backend_ids.reserve(bid) {
                    continue;
                }
                self.next_generation = self.next_generation.max(entry.generation.wrapping_add(1));
                state.backends.insert(
                    (addr, u16::from_be(entry.port)),
                    BackendState {
                        id: bid,
                        entry,
                        weight: 0,
                    },
                );
            }
            self.services.insert(id, state);
        }
        Ok(())
    }

    fn read_active_backends(&self) -> Result<Vec<(u32, Backend)>, DataplaneError> {
        let map: Array<&MapData, Backend> = Array::try_from(self.map(map_names::BACKENDS)?)
            .map_err(|e| map_err(map_names::BACKENDS, e))?;
        Ok(map
            .iter()
            .enumerate()
            .filter_map(|(i, b)| b.ok().map(|b| (i as u32, b)))
            .filter(|(_, b)| b.flags & backend_flags::ACTIVE != 0)
            .collect())
    }

    fn read_ring(&self, offset: u32, size: u32) -> Result<Vec<u32>, DataplaneError> {
        let map: Array<&MapData, u32> = Array::try_from(self.map(map_names::MAGLEV)?)
            .map_err(|e| map_err(map_names::MAGLEV, e))?;
        (offset..offset + size)
            .map(|i| map.get(&i, 0).map_err(|e| map_err(map_names::MAGLEV, e)))
            .collect()
    }
}
