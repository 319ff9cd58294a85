//! `lb_local_macs`: the MAC addresses each attached interface answers to, so that the
//! program leaves alone a frame to a VIP that a switch flooded here for another node
//! (`vip_other_host`). Written for an interface before the program is attached to it or
//! adopted on it, refreshed by the owner (an address can change), cleared on detach.
//! An interface's addresses are its own and those of the devices stacked on it (a
//! bridge it is a port of, macvlans such as keepalived's VMACs): frames to those arrive
//! through it too.

use std::{
    collections::{HashMap, HashSet},
    path::Path,
};

use aya::maps::{Array, MapData};
use lb_common::{capacity, map_names, LocalMacs, LOCAL_MACS_PER_INTERFACE};
use tracing::{debug, warn};

use super::{map_err, Dataplane, DataplaneError};

/// The entry for `ifindex` with `macs`: no check (count 0) when there are none, or
/// more than an entry holds (the program then forwards whatever MAC a frame carries).
pub fn entry(ifindex: u32, macs: &[[u8; 6]]) -> LocalMacs {
    let mut e = LocalMacs {
        ifindex,
        ..LocalMacs::default()
    };
    if macs.len() <= LOCAL_MACS_PER_INTERFACE {
        e.macs[..macs.len()].copy_from_slice(macs);
        e.count = macs.len() as u32;
    }
    e
}

/// The slot of `ifindex` in `lb_local_macs`.
pub fn slot(ifindex: u32) -> u32 {
    ifindex % capacity::LOCAL_MAC_SLOTS
}

/// `ifname`'s own MAC and its upper devices', without duplicates, broadcast or all-zero
/// addresses (an interface without Ethernet addresses gets no check). Addresses come
/// from netlink (this network namespace's, whatever `/sys` shows); the upper devices'
/// names from sysfs (`upper_*`), trusted only when sysfs shows this namespace's
/// interface (same index, same address): entered with `nsenter`, without remounting
/// `/sys`, it would show the host's, and a VMAC missed would stop its traffic.
pub fn macs_of(ifname: &str, ifindex: u32) -> Result<Vec<[u8; 6]>, ForeignSysfs> {
    let links = link_macs();
    let usable = |m: &[u8; 6]| *m != [0; 6] && *m != [0xff; 6];
    let Some(own) = links.get(ifname).copied().filter(usable) else {
        return Ok(Vec::new());
    };
    let mut macs = vec![own];
    let dir = Path::new("/sys/class/net").join(ifname);
    let read = |file: &str| std::fs::read_to_string(dir.join(file)).unwrap_or_default();
    let sysfs_is_ours = read("ifindex").trim().parse::<u32>().ok() == Some(ifindex)
        && parse_mac(read("address").trim()) == Some(own);
    if !sysfs_is_ours {
        return Err(ForeignSysfs);
    }
    let mut uppers: Vec<String> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    name.strip_prefix("upper_").map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default();
    uppers.sort();
    for upper in uppers {
        if let Some(mac) = links.get(&upper).copied().filter(usable) {
            if !macs.contains(&mac) {
                macs.push(mac);
            }
        }
    }
    Ok(macs)
}

/// `/sys/class/net` shows another network namespace's interfaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForeignSysfs;

/// Every interface's Ethernet address in this network namespace, by name.
fn link_macs() -> HashMap<String, [u8; 6]> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return HashMap::new();
    };
    addrs
        .filter_map(|a| {
            let mac = a.address?.as_link_addr()?.addr()?;
            Some((a.interface_name, mac))
        })
        .collect()
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for byte in &mut mac {
        *byte = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// What the map holds, by slot (the daemon's mirror).
#[derive(Debug, Default)]
pub(super) struct LocalMacTable {
    slots: HashMap<u32, LocalMacs>,
    /// Interfaces warned about (unchecked): each warning once, not at every refresh.
    warned: HashSet<u32>,
}

impl Dataplane {
    /// Writes `ifindex`'s entry with `macs`, unless another interface owns its slot (that
    /// one keeps the check, this one has none, and the collision is logged).
    pub fn set_local_macs(&mut self, ifindex: u32, macs: &[[u8; 6]]) -> Result<(), DataplaneError> {
        let slot = slot(ifindex);
        let wanted = entry(ifindex, macs);
        match self.local_macs.slots.get(&slot) {
            Some(e) if *e == wanted => return Ok(()),
            Some(e) if e.ifindex != ifindex => {
                if !self.local_macs.warned.insert(ifindex) {
                    return Ok(());
                }
                warn!(
                    ifindex,
                    other = e.ifindex,
                    "two attached interfaces share a slot of lb_local_macs: frames flooded to this one for another host are not told apart"
                );
                return Ok(());
            }
            _ => {}
        }
        if macs.len() > LOCAL_MACS_PER_INTERFACE && self.local_macs.warned.insert(ifindex) {
            warn!(
                ifindex,
                addresses = macs.len(),
                "more MAC addresses than lb_local_macs holds for one interface: frames flooded to it for another host are not told apart"
            );
        }
        self.write_local_macs(slot, wanted)?;
        debug!(ifindex, ?macs, "lb_local_macs written");
        self.local_macs.slots.insert(slot, wanted);
        Ok(())
    }

    /// Clears `ifindex`'s entry (after a detach).
    pub(super) fn clear_local_macs(&mut self, ifindex: u32) -> Result<(), DataplaneError> {
        let slot = slot(ifindex);
        if self
            .local_macs
            .slots
            .get(&slot)
            .is_some_and(|e| e.ifindex == ifindex)
        {
            self.write_local_macs(slot, LocalMacs::default())?;
            self.local_macs.slots.remove(&slot);
        }
        self.local_macs.warned.remove(&ifindex);
        Ok(())
    }

    /// Writes the entry of an interface about to be attached or adopted.
    pub(super) fn note_local_macs(&mut self, ifindex: u32, ifname: &str) {
        let macs = macs_of(ifname, ifindex).unwrap_or_else(|ForeignSysfs| {
            if self.local_macs.warned.insert(ifindex) {
                warn!(
                    iface = ifname,
                    "/sys/class/net does not show this network namespace's interface (entered without remounting /sys?): frames flooded to it for another host are not told apart"
                );
            }
            Vec::new()
        });
        if let Err(e) = self.set_local_macs(ifindex, &macs) {
            warn!(iface = ifname, error = %e, "writing lb_local_macs failed: frames flooded here for another host may be forwarded");
        }
    }

    /// Re-reads the addresses of every attached interface (the owner calls it now and
    /// then: a MAC or an upper device can change).
    pub fn refresh_local_macs(&mut self) {
        let attached: Vec<(u32, String)> = self.attached_indexes();
        for (ifindex, ifname) in attached {
            self.note_local_macs(ifindex, &ifname);
        }
    }

    fn write_local_macs(&mut self, slot: u32, value: LocalMacs) -> Result<(), DataplaneError> {
        let name = map_names::LOCAL_MACS;
        let mut map: Array<&mut MapData, LocalMacs> =
            Array::try_from(self.map_mut(name)?).map_err(|e| map_err(name, e))?;
        map.set(slot, value, 0).map_err(|e| map_err(name, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_holds_up_to_four_addresses_else_none() {
        let macs: Vec<[u8; 6]> = (1..=5).map(|i| [2, 0, 0, 0, 0, i]).collect();
        let e = entry(7, &macs[..2]);
        assert_eq!((e.ifindex, e.count), (7, 2));
        assert_eq!(e.macs[1], [2, 0, 0, 0, 0, 2]);
        assert_eq!(e.macs[2], [0; 6]);
        assert_eq!(entry(7, &macs[..4]).count, 4);
        assert_eq!(entry(7, &macs).count, 0, "five addresses: no check");
        assert_eq!(entry(7, &[]).count, 0);
    }

    #[test]
    fn macs_parse_as_sysfs_prints_them() {
        assert_eq!(parse_mac("02:00:5e:00:01:0a"), Some([2, 0, 0x5e, 0, 1, 10]));
        assert_eq!(parse_mac("02:00:5e:00:01"), None);
        assert_eq!(parse_mac("02:00:5e:00:01:0a:0b"), None);
        assert_eq!(parse_mac("zz:00:5e:00:01:0a"), None);
    }

    #[test]
    fn loopback_has_no_ethernet_address_to_check() {
        assert_eq!(macs_of("lo", 1), Ok(Vec::new()));
        assert_eq!(macs_of("no-such-interface-x", 99), Ok(Vec::new()));
    }

    /// A port of a bridge answers to the bridge's MAC, a macvlan's base to the
    /// macvlan's; sysfs of another namespace is not trusted.
    #[test]
    fn an_interface_answers_to_its_upper_devices_macs() {
        let ns = crate::netns::Netns::new("lmac").unwrap();
        ns.sh("ip link add name base type veth peer name port \
             && ip link add link base name vm type macvlan mode private \
             && ip link add name bri type bridge && ip link set port master bri \
             && ip link set base address 02:00:00:00:00:0a \
             && ip link set port address 02:00:00:00:00:0b \
             && ip link set vm address 00:00:5e:00:01:0a \
             && ip link set bri address 02:00:00:00:00:0c")
            .unwrap();
        let (fresh, host_sysfs) = ns.run(|| {
            let index = |n: &str| nix::net::if_::if_nametoindex(n).unwrap();
            let host_sysfs = macs_of("base", index("base"));
            // As `ip netns exec` does: this namespace's own sysfs.
            use nix::{mount::*, sched::*};
            unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_FS).unwrap();
            mount(
                None::<&str>,
                "/",
                None::<&str>,
                MsFlags::MS_REC | MsFlags::MS_SLAVE,
                None::<&str>,
            )
            .unwrap();
            mount(
                Some("sysfs"),
                "/sys",
                Some("sysfs"),
                MsFlags::empty(),
                None::<&str>,
            )
            .unwrap();
            let fresh = [
                macs_of("base", index("base")),
                macs_of("port", index("port")),
            ];
            (fresh, host_sysfs)
        });
        let mac = |last| [2, 0, 0, 0, 0, last];
        assert_eq!(fresh[0], Ok(vec![mac(0x0a), [0, 0, 0x5e, 0, 1, 0x0a]]));
        assert_eq!(fresh[1], Ok(vec![mac(0x0b), mac(0x0c)]));
        assert_eq!(
            host_sysfs,
            Err(ForeignSysfs),
            "the host's /sys is not this namespace's"
        );
    }
}
