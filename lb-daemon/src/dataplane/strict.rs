//! `lb_strict_vips`: the VIPs in no-accept mode (keepalived's `vrrp_strict` /
//! `no_accept`) whose traffic the program drops unless a service takes it. The owner
//! writes the whole set (the VIPs of such instances while MASTER); only the difference
//! reaches the map, and the `lb_vip_filter` slots follow.

use std::{collections::BTreeSet, net::IpAddr};

use aya::maps::{HashMap as BpfHashMap, MapData};
use lb_common::{capacity, map_names, StrictVip};

use super::{
    map_err,
    spec::{decode_addr, encode_addr},
    Dataplane, DataplaneError,
};

fn key(addr: IpAddr) -> StrictVip {
    let (addr, family) = encode_addr(addr);
    StrictVip {
        addr,
        family,
        pad: [0; 3],
    }
}

impl Dataplane {
    /// Makes `lb_strict_vips` hold exactly `vips`: new entries are written before the
    /// filter marks their slots, old ones removed after it no longer does (a frame whose
    /// slot is marked but whose VIP the map lacks only passes).
    pub fn set_strict_vips(&mut self, vips: &BTreeSet<IpAddr>) -> Result<(), DataplaneError> {
        let capacity = capacity::STRICT_VIPS as usize;
        if vips.len() > capacity {
            return Err(DataplaneError::StrictVipsFull {
                wanted: vips.len(),
                capacity,
            });
        }
        let name = map_names::STRICT_VIPS;
        let added: Vec<IpAddr> = vips.difference(&self.strict_vips).copied().collect();
        let removed: Vec<IpAddr> = self.strict_vips.difference(vips).copied().collect();
        let mut written = Vec::new();
        let mut failed = None;
        {
            let mut map: BpfHashMap<&mut MapData, StrictVip, u8> =
                BpfHashMap::try_from(self.map_mut(name)?).map_err(|e| map_err(name, e))?;
            for &vip in &added {
                match map.insert(key(vip), 1, 0) {
                    Ok(()) => written.push(vip),
                    Err(e) => {
                        failed = Some(map_err(name, e));
                        break;
                    }
                }
            }
        }
        if let Some(e) = failed {
            // Written entries stay known (their slots unmarked: they only pass frames).
            self.strict_vips.extend(written);
            return Err(e);
        }
        self.strict_vips = vips.clone();
        self.sync_vip_filter()?;
        // On once entries and slots are in place; off (an empty set) before the
        // entries go.
        self.write_global_flags()?;
        let mut left = Vec::new();
        {
            let mut map: BpfHashMap<&mut MapData, StrictVip, u8> =
                BpfHashMap::try_from(self.map_mut(name)?).map_err(|e| map_err(name, e))?;
            for vip in removed {
                match map.remove(&key(vip)) {
                    Ok(()) | Err(aya::maps::MapError::KeyNotFound) => {}
                    Err(e) => {
                        left.push(vip);
                        failed = Some(map_err(name, e));
                    }
                }
            }
        }
        // Still in the map: kept in the set, so the next call removes them.
        self.strict_vips.extend(left);
        failed.map_or(Ok(()), Err)
    }

    /// The VIPs in no-accept mode now written.
    pub fn strict_vips(&self) -> &BTreeSet<IpAddr> {
        &self.strict_vips
    }

    /// After adopting pinned maps: the set a previous run left.
    pub(super) fn read_strict_vips(&mut self) -> Result<(), DataplaneError> {
        let name = map_names::STRICT_VIPS;
        let map: BpfHashMap<&MapData, StrictVip, u8> =
            BpfHashMap::try_from(self.map(name)?).map_err(|e| map_err(name, e))?;
        self.strict_vips = map
            .keys()
            .filter_map(Result::ok)
            .filter_map(|k| decode_addr(&k.addr, k.family))
            .collect();
        Ok(())
    }
}
