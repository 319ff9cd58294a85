//! keepalived's `use_vmac`: a macvlan interface (private mode) on the instance's
//! interface, with the virtual router MAC `00:00:5e:00:01:{VRID}` (RFC 5798 7.3). The
//! VIPs live on it, so the MAC clients learn for a VIP is the same on whichever node is
//! master; adverts go out of it too (unless `vmac_xmit_base`: out of the base interface).
//!
//! keepalived's kernel settings come with it: on the macvlan `arp_ignore=1`,
//! `accept_local=1`, `rp_filter=0`, `promote_secondaries=1` and IPv6 off (an IPv4
//! instance needs no link-local address there, RFC 5798 7.4); on the base interface
//! `arp_ignore=1` and `arp_filter=1` (it must not answer ARP for the VIP with its own
//! MAC), put back as they were when the last macvlan on it goes.

use std::path::PathBuf;

use rtnetlink::{packet_route::link::MacVlanMode, LinkMacVlan};
use thiserror::Error;
use tracing::{info, warn};

use crate::net::link;

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
}

/// The virtual router MAC of `vrid` (IPv4).
pub fn mac(vrid: u8) -> [u8; 6] {
    [0x00, 0x00, 0x5e, 0x00, 0x01, vrid]
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
) -> Result<Vmac, VmacError> {
    let want = mac(vrid);
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
    for (key, value) in [
        ("arp_ignore", "1"),
        ("accept_local", "1"),
        ("rp_filter", "0"),
        ("promote_secondaries", "1"),
    ] {
        write(&sysctl(name, key), value);
    }
    // An IPv4 instance wants no IPv6 (no link-local address) on the VMAC.
    write(
        &PathBuf::from(format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6")),
        "1",
    );
    if read(&sysctl("all", "rp_filter")).is_some_and(|v| v != "0") {
        warn!(vmac = name, "net.ipv4.conf.all.rp_filter is on: adverts arriving on the VMAC may be dropped (keepalived's advice: 0)");
    }
    let (ignore, filter) = (sysctl(base, "arp_ignore"), sysctl(base, "arp_filter"));
    let saved_base = match (read(&ignore), read(&filter)) {
        (Some(i), Some(f)) if i != "1" || f != "1" => {
            write(&ignore, "1");
            write(&filter, "1");
            Some((i, f))
        }
        _ => None,
    };
    link::set_up(handle, ifindex)
        .await
        .map_err(|e| VmacError::Netlink("bringing the VMAC interface up", e))?;
    info!(vmac = name, base, mac = %mac_text(&want), "VMAC interface up");
    Ok(Vmac {
        name: name.into(),
        base: base.into(),
        ifindex,
        saved_base,
    })
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
        assert_eq!(mac_text(&mac(51)), "00:00:5e:00:01:33");
    }
}
