//! The maps of the program's fast path, derived from the services: `lb_vip_filter` (what
//! the services on the addresses hashing to each slot need) and `lb_service_info` (the
//! service entries by id, for flows found in the connection table without a service
//! lookup).

use aya::maps::{Array, MapData};
use lb_common::{flags_index, map_names, mode, service_flags, vip_filter, vip_slot, ServiceInfo};

use super::{map_err, Dataplane, DataplaneError};

impl Dataplane {
    /// The flood guard: at most `per_cpu_per_s` new DR/TUN flows per CPU per second get
    /// a connection-table entry; those above are forwarded by Maglev alone and counted
    /// (`flood_guard`). 0: no limit.
    pub fn set_new_flow_limit(&mut self, per_cpu_per_s: u32) -> Result<(), DataplaneError> {
        let name = map_names::FLAGS;
        let mut map: Array<&mut MapData, u32> =
            Array::try_from(self.map_mut(name)?).map_err(|e| map_err(name, e))?;
        map.set(flags_index::NEW_FLOW_LIMIT, per_cpu_per_s, 0)
            .map_err(|e| map_err(name, e))
    }

    /// Writes the slots of `lb_vip_filter` that differ from what the services need.
    pub(super) fn sync_vip_filter(&mut self) -> Result<(), DataplaneError> {
        let mut wanted = vec![0u8; self.vip_filter.len()];
        for (id, state) in &self.services {
            let flags = state.info.flags;
            let fast = flags & mode::MASK != mode::NAT && flags & service_flags::PERSISTENT == 0;
            let keys = std::iter::once(id.key()).chain(state.member_keys.iter().copied());
            for key in keys {
                if let Some(w) = wanted.get_mut(vip_slot(&key.addr) as usize) {
                    *w |= if fast {
                        vip_filter::FAST
                    } else {
                        vip_filter::SLOW
                    };
                }
            }
        }
        for vip in &self.strict_vips {
            let (addr, _) = super::spec::encode_addr(*vip);
            if let Some(w) = wanted.get_mut(vip_slot(&addr) as usize) {
                *w |= vip_filter::STRICT;
            }
        }
        let mut have = std::mem::take(&mut self.vip_filter);
        let result = self.write_vip_filter(&wanted, &mut have);
        self.vip_filter = have;
        result
    }

    /// Writes the slots where `wanted` and `have` differ, updating `have` as it goes.
    fn write_vip_filter(&mut self, wanted: &[u8], have: &mut [u8]) -> Result<(), DataplaneError> {
        let name = map_names::VIP_FILTER;
        let mut map: Array<&mut MapData, u8> =
            Array::try_from(self.map_mut(name)?).map_err(|e| map_err(name, e))?;
        for (slot, (&want, have)) in wanted.iter().zip(have.iter_mut()).enumerate() {
            if want != *have {
                map.set(slot as u32, want, 0)
                    .map_err(|e| map_err(name, e))?;
                *have = want;
            }
        }
        Ok(())
    }

    /// After adopting pinned maps: the filter as a previous run left it.
    pub(super) fn read_vip_filter(&mut self) -> Result<(), DataplaneError> {
        let name = map_names::VIP_FILTER;
        let map: Array<&MapData, u8> =
            Array::try_from(self.map(name)?).map_err(|e| map_err(name, e))?;
        let have: Result<Vec<u8>, _> = (0..self.vip_filter.len() as u32)
            .map(|slot| map.get(&slot, 0).map_err(|e| map_err(name, e)))
            .collect();
        self.vip_filter = have?;
        Ok(())
    }

    /// `lb_service_info[id]`: written before the service entry, so a flow scheduled through
    /// the entry always finds its service here.
    pub(super) fn write_service_info(
        &mut self,
        id: u32,
        info: ServiceInfo,
    ) -> Result<(), DataplaneError> {
        let name = map_names::SERVICE_INFO;
        let mut map: Array<&mut MapData, ServiceInfo> =
            Array::try_from(self.map_mut(name)?).map_err(|e| map_err(name, e))?;
        map.set(id, info, 0).map_err(|e| map_err(name, e))
    }
}
