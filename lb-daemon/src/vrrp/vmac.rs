//! keepalived's `use_vmac`: a macvlan interface (private mode) on the instance's
//! interface, with the virtual router MAC `00:00:5e:00:01:{VRID}` (IPv6:
//! `00:00:5e:00:02:{VRID}`, RFC 5798 7.3). The VIPs live on it, so the MAC clients learn
//! for a VIP is the same on whichever node is master; adverts go out of it too (unless
//! `vmac_xmit_base`: out of the base interface).
//!
//! keepalived's kernel settings come with it. IPv4: on the macvlan `arp_ignore=1`,
//! `accept_local=1`, `rp_filter=0`, `promote_secondaries=1` and IPv6 off (an IPv4
//! instance needs no link-local address there, RFC 5798 7.4); on the base interface
//! `arp_ignore=1` and `arp_filter=1` (it must not answer ARP for the VIP with its own
//! MAC), put back as they were when the last macvlan on it goes. IPv6: no automatic
//! link-local address on the macvlan (`addr_gen_mode` none: every node's would be the
//! same EUI-64 of the shared MAC), and the advert source — `unicast_src_ip`, else the
//! base's link-local address — added to it, so adverts leave the macvlan from a
//! non-VIP address with the virtual MAC (keepalived's `set_link_local_address`).

use std::net::{IpAddr, Ipv6Addr};
use std::path::PathBuf;

use rtnetlink::{packet_route::link::MacVlanMode, LinkMacVlan};
use thiserror::Error;
use tracing::{info, warn};

use crate::net::{address, link};

#[derive(Debug, Error)]
pub enum VmacError {
    #[error("the interface {0} does not exist")]
    NoBase(String),
    #[error("{name} exists and is not this instance's VMAC (a private macvlan on {base} with MAC {mac}): remove it or name another with use_vmac = \"NAME\"")]
    Foreign {
        name: String,
        base: String,
        mac: String,
    },
    #[error("creating the VMAC interface {0}: {1}")]
    Create(String, rtnetlink::Error),
    #[error("{0}: {1}")]
    Netlink(&'static str, rtnetlink::Error),
    #[error("adding the advert source {addr} to the VMAC interface {name}: {source}")]
    Source {
        name: String,
        addr: Ipv6Addr,
        source: rtnetlink::Error,
    },
}

/// The virtual router MAC of `vrid` (RFC 5798 7.3: `...:01:VRID` for IPv4, `...:02:VRID`
/// for IPv6).
pub fn mac(vrid: u8, v6: bool) -> [u8; 6] {
    [0x00, 0x00, 0x5e, 0x00, if v6 { 0x02 } else { 0x01 }, vrid]
}

/// What the instance needs on its VMAC beyond the MAC: the family's settings, and for an
/// IPv6 instance sending from the VMAC the link-local source of its adverts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmacFamily {
    V4,
    V6 { advert_source: Option<Ipv6Addr> },
}

pub fn mac_text(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A VMAC interface this daemon set up.
#[derive(Debug, Clone)]
pub struct Vmac {
    pub name: String,
    pub base: String,
    pub ifindex: u32,
    /// The base's `arp_ignore` and `arp_filter` before we changed them.
    saved_base: Option<(String, String)>,
}

fn sysctl(iface: &str, key: &str) -> PathBuf {
    PathBuf::from(format!("/proc/sys/net/ipv4/conf/{iface}/{key}"))
}

fn sysctl6(iface: &str, key: &str) -> PathBuf {
    PathBuf::from(format!("/proc/sys/net/ipv6/conf/{iface}/{key}"))
}

fn read(path: &PathBuf) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|v| v.trim().to_string())
}

fn write(path: &PathBuf, value: &str) {
    if let Err(e) = std::fs::write(path, value) {
        warn!(path = %path.display(), value, error = %e, "cannot set a VMAC kernel setting");
    }
}

/// Creates (or adopts, after a restart) the VMAC `name` on `base` and brings it up.
pub async fn ensure(
    handle: &rtnetlink::Handle,
    name: &str,
    base: &str,
    vrid: u8,
    family: VmacFamily,
) -> Result<Vmac, VmacError> {
    let want = mac(vrid, family != VmacFamily::V4);
    let base_msg = link::find(handle, base)
        .await
        .map_err(|e| VmacError::Netlink("looking up the base interface", e))?
        .ok_or_else(|| VmacError::NoBase(base.to_string()))?;
    let base_index = base_msg.header.index;
    let existing = link::find(handle, name)
        .await
        .map_err(|e| VmacError::Netlink("looking up the VMAC interface", e))?;
    let ifindex = match existing {
        Some(found) => {
            let ours = link::kind(&found) == Some(rtnetlink::packet_route::link::InfoKind::MacVlan)
                && link::mac(&found) == Some(want)
                && link::parent(&found) == Some(base_index);
            if !ours {
                return Err(VmacError::Foreign {
                    name: name.into(),
                    base: base.into(),
                    mac: mac_text(&want),
                });
            }
            info!(
                vmac = name,
                "adopting the VMAC interface a previous run left"
            );
            found.header.index
        }
        None => {
            let msg = LinkMacVlan::new(name, base_index, MacVlanMode::Private)
                .address(want.to_vec())
                .build();
            link::add(handle, msg)
                .await
                .map_err(|e| VmacError::Create(name.into(), e))?;
            link::find(handle, name)
                .await
                .map_err(|e| VmacError::Netlink("looking up the new VMAC interface", e))?
                .map(|m| m.header.index)
                .ok_or_else(|| VmacError::NoBase(name.to_string()))?
        }
    };
    let saved_base = match family {
        VmacFamily::V4 => ipv4_settings(name, base),
        VmacFamily::V6 { .. } => {
            // Before the link is up, or the kernel adds the EUI-64 address at once.
            write(&sysctl6(name, "addr_gen_mode"), "1");
            write(&sysctl6(name, "disable_ipv6"), "0");
            None
        }
    };
    link::set_up(handle, ifindex)
        .await
        .map_err(|e| VmacError::Netlink("bringing the VMAC interface up", e))?;
    if let VmacFamily::V6 {
        advert_source: Some(addr),
    } = family
    {
        let on_link = address::OnLink {
            ifindex,
            addr: IpAddr::V6(addr),
            prefix: 64,
            label: None,
        };
        address::add(handle, on_link)
            .await
            .map_err(|source| VmacError::Source {
                name: name.into(),
                addr,
                source,
            })?;
    }
    info!(vmac = name, base, mac = %mac_text(&want), "VMAC interface up");
    Ok(Vmac {
        name: name.into(),
        base: base.into(),
        ifindex,
        saved_base,
    })
}

/// keepalived's IPv4 settings on the VMAC and its base; the base's previous ARP
/// settings when they were changed.
fn ipv4_settings(name: &str, base: &str) -> Option<(String, String)> {
    for (key, value) in [
        ("arp_ignore", "1"),
        ("accept_local", "1"),
        ("rp_filter", "0"),
        ("promote_secondaries", "1"),
    ] {
        write(&sysctl(name, key), value);
    }
    // An IPv4 instance wants no IPv6 (no link-local address) on the VMAC.
    write(&sysctl6(name, "disable_ipv6"), "1");
    if read(&sysctl("all", "rp_filter")).is_some_and(|v| v != "0") {
        warn!(vmac = name, "net.ipv4.conf.all.rp_filter is on: adverts arriving on the VMAC may be dropped (keepalived's advice: 0)");
    }
    let (ignore, filter) = (sysctl(base, "arp_ignore"), sysctl(base, "arp_filter"));
    match (read(&ignore), read(&filter)) {
        (Some(i), Some(f)) if i != "1" || f != "1" => {
            write(&ignore, "1");
            write(&filter, "1");
            Some((i, f))
        }
        _ => None,
    }
}

impl Vmac {
    /// Deletes the interface; puts the base's ARP settings back unless `base_still_used`.
    pub async fn remove(self, handle: &rtnetlink::Handle, base_still_used: bool) {
        if let Err(e) = handle.link().del(self.ifindex).execute().await {
            warn!(vmac = %self.name, error = %e, "removing the VMAC interface failed");
        } else {
            info!(vmac = %self.name, "VMAC interface removed");
        }
        if let (Some((ignore, filter)), false) = (self.saved_base, base_still_used) {
            write(&sysctl(&self.base, "arp_ignore"), &ignore);
            write(&sysctl(&self.base, "arp_filter"), &filter);
        }
    }

    /// The base's saved ARP settings pass to another VMAC on the same base (the last
    /// one removed restores them).
    pub fn take_saved(&mut self) -> Option<(String, String)> {
        self.saved_base.take()
    }

    pub fn give_saved(&mut self, saved: Option<(String, String)>) {
        if self.saved_base.is_none() {
            self.saved_base = saved;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_virtual_router_mac_is_rfc_5798_s() {
        assert_eq!(mac_text(&mac(51, false)), "00:00:5e:00:01:33");
        assert_eq!(mac_text(&mac(51, true)), "00:00:5e:00:02:33");
    }
}
