//! The interface that carries the VIPs announced by BGP: BIRD's `protocol direct` on it turns
//! each address into a route, so adding a /32 or /128 here announces it and removing it
//! withdraws it.
//!
//! The link is a `dummy`; kernels built without the dummy driver get an `ifb` instead (same
//! use here: a link that is up, never carries packets and holds addresses). A link of the
//! chosen name that is something else is never touched: it belongs to someone.
//!
//! Everything happens in the network namespace of the thread that calls [`VipLink::ensure`].

use std::fmt;
use std::net::IpAddr;

use rtnetlink::packet_route::link::{InfoKind, LinkFlags, LinkMessage};
use rtnetlink::{LinkDummy, LinkIfb};

use crate::net::address::{self, OnLink};
use crate::net::link;
use crate::net::rtnl::{self, errno};

/// The interface name used when the configuration names none.
pub const DEFAULT_INTERFACE: &str = crate::config::DEFAULT_BGP_INTERFACE;

/// Longest interface name the kernel keeps (IFNAMSIZ - 1).
const IFNAME_MAX: usize = 15;

/// The kind of link carrying the VIPs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkKind {
    Dummy,
    /// Fallback where the kernel has no dummy driver.
    Ifb,
}

impl fmt::Display for LinkKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LinkKind::Dummy => "dummy",
            LinkKind::Ifb => "ifb",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VipLinkError {
    #[error("invalid VIP interface name {name:?}: 1..={IFNAME_MAX} bytes, no '/' or whitespace")]
    BadName { name: String },
    #[error(
        "interface {name} exists and is {kind}, not a dummy/ifb: choose another [bgp] interface"
    )]
    WrongKind { name: String, kind: String },
    #[error(
        "cannot create interface {name}: this kernel has neither the dummy nor the ifb link \
         type (modprobe dummy)"
    )]
    NoLinkType { name: String },
    #[error("cannot {op} interface {name}: {source}{}", hint(.source))]
    Netlink {
        op: &'static str,
        name: String,
        #[source]
        source: rtnetlink::Error,
    },
    #[error(transparent)]
    Connect(#[from] rtnl::ConnectError),
}

/// The VIP interface, known to exist and be up.
#[derive(Debug, Clone)]
pub struct VipLink {
    name: String,
    index: u32,
    kind: LinkKind,
    handle: rtnetlink::Handle,
}

impl VipLink {
    /// Makes sure `name` exists as a dummy (or ifb) link and is up; creates it if missing.
    /// Must run inside a tokio runtime.
    pub async fn ensure(name: &str) -> Result<VipLink, VipLinkError> {
        if name.is_empty()
            || name.len() > IFNAME_MAX
            || name.contains(|c: char| c == '/' || c.is_whitespace())
        {
            return Err(VipLinkError::BadName {
                name: name.to_owned(),
            });
        }
        let handle = rtnl::connect()?;
        let netlink = |op| {
            move |source| VipLinkError::Netlink {
                op,
                name: name.to_owned(),
                source,
            }
        };

        let (index, kind) = match link::find(&handle, name)
            .await
            .map_err(netlink("look up"))?
        {
            Some(found) => (found.header.index, checked_kind(name, &found)?),
            None => create(&handle, name).await?,
        };
        link::set_up(&handle, index)
            .await
            .map_err(netlink("bring up"))?;
        tracing::debug!(interface = name, %kind, index, "VIP interface ready");
        Ok(VipLink {
            name: name.to_owned(),
            index,
            kind,
            handle,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn index(&self) -> u32 {
        self.index
    }

    pub fn kind(&self) -> LinkKind {
        self.kind
    }

    /// Puts `addr` on the interface as a /32 or /128 (announces it); already there is fine.
    pub async fn add(&self, addr: IpAddr) -> Result<(), VipLinkError> {
        address::add(&self.handle, self.on_link(addr))
            .await
            .map_err(|source| self.netlink("add an address to", source))
    }

    /// Takes `addr` off the interface (withdraws it); already gone is fine.
    pub async fn remove(&self, addr: IpAddr) -> Result<(), VipLinkError> {
        address::remove(&self.handle, self.on_link(addr))
            .await
            .map_err(|source| self.netlink("remove an address from", source))
    }

    /// The host addresses (/32 and /128) on the interface, i.e. what BIRD announces,
    /// sorted. The IPv6 link-local address and any shorter prefix are left out.
    pub async fn addresses(&self) -> Result<Vec<IpAddr>, VipLinkError> {
        let all = address::with_prefixes(&self.handle, self.index)
            .await
            .map_err(|source| self.netlink("list the addresses of", source))?;
        let mut found: Vec<IpAddr> = all
            .into_iter()
            .filter(|&(addr, prefix)| prefix == host_prefix(addr))
            .map(|(addr, _)| addr)
            .collect();
        found.sort();
        found.dedup();
        Ok(found)
    }

    fn on_link(&self, addr: IpAddr) -> OnLink<'static> {
        OnLink {
            ifindex: self.index,
            addr,
            prefix: host_prefix(addr),
            label: None,
        }
    }

    fn netlink(&self, op: &'static str, source: rtnetlink::Error) -> VipLinkError {
        VipLinkError::Netlink {
            op,
            name: self.name.clone(),
            source,
        }
    }
}

fn host_prefix(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// The link's kind, if it is one we may use.
fn checked_kind(name: &str, found: &LinkMessage) -> Result<LinkKind, VipLinkError> {
    match link::kind(found) {
        Some(InfoKind::Dummy) => Ok(LinkKind::Dummy),
        Some(InfoKind::Ifb) => Ok(LinkKind::Ifb),
        other => Err(VipLinkError::WrongKind {
            name: name.to_owned(),
            kind: match other {
                Some(k) => format!("a {k}"),
                None if found.header.flags.contains(LinkFlags::Loopback) => "the loopback".into(),
                None => "a physical interface".into(),
            },
        }),
    }
}

/// Creates a dummy link, or an ifb one where the kernel has no dummy driver.
async fn create(handle: &rtnetlink::Handle, name: &str) -> Result<(u32, LinkKind), VipLinkError> {
    let netlink = |op| {
        move |source| VipLinkError::Netlink {
            op,
            name: name.to_owned(),
            source,
        }
    };
    for (kind, message) in [
        (LinkKind::Dummy, LinkDummy::new(name).build()),
        (LinkKind::Ifb, LinkIfb::new(name).build()),
    ] {
        match link::add(handle, message).await {
            Ok(()) => {}
            // No such driver (EOPNOTSUPP: "Unknown device type"): try the next kind.
            Err(e) if errno(&e) == Some(libc::EOPNOTSUPP) => {
                tracing::debug!(interface = name, %kind, "no such link type in this kernel");
                continue;
            }
            // Someone created it meanwhile: use it if it is of a usable kind.
            Err(e) if errno(&e) == Some(libc::EEXIST) => {}
            Err(source) => return Err(netlink("create")(source)),
        }
        let found = link::find(handle, name).await.map_err(netlink("look up"))?;
        let Some(found) = found else { continue };
        let kind = checked_kind(name, &found)?;
        tracing::info!(interface = name, %kind, "created the VIP interface");
        return Ok((found.header.index, kind));
    }
    Err(VipLinkError::NoLinkType {
        name: name.to_owned(),
    })
}

fn hint(e: &rtnetlink::Error) -> &'static str {
    match errno(e) {
        Some(libc::EPERM | libc::EACCES) => " (run as root or with CAP_NET_ADMIN)",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    //! These tests need root and iproute2; they fail (rather than skip) without them.

    use super::*;
    use crate::netns::Netns;

    /// Multi-threaded: the namespace's thread blocks on futures that the workers drive.
    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn creates_brings_up_and_carries_host_addresses() {
        let ns = Netns::new("tbgpl").unwrap();
        let rt = runtime();
        let link = open(&ns, &rt, DEFAULT_INTERFACE).unwrap();
        let shown = ns
            .ip(&["-d", "-o", "link", "show", DEFAULT_INTERFACE])
            .unwrap();
        assert!(shown.contains(&link.kind().to_string()), "{shown}");
        assert!(shown.contains(",UP"), "not up: {shown}");
        // Idempotent: the same link again.
        let again = open(&ns, &rt, DEFAULT_INTERFACE).unwrap();
        assert_eq!((again.index(), again.kind()), (link.index(), link.kind()));

        let v4: IpAddr = "192.0.2.10".parse().unwrap();
        let v6: IpAddr = "2001:db8:10::10".parse().unwrap();
        rt.block_on(async {
            assert!(link.addresses().await.unwrap().is_empty());
            for addr in [v4, v6, v4, v6] {
                link.add(addr).await.unwrap();
            }
            assert_eq!(link.addresses().await.unwrap(), vec![v4, v6]);
        });
        assert!(ns.has_address(DEFAULT_INTERFACE, "192.0.2.10"));
        let out = ns
            .ip(&["-o", "addr", "show", "dev", DEFAULT_INTERFACE])
            .unwrap();
        assert!(
            out.contains("192.0.2.10/32") && out.contains("2001:db8:10::10/128"),
            "{out}"
        );
        // A shorter prefix is no VIP.
        ns.ip(&["addr", "add", "198.51.100.1/24", "dev", DEFAULT_INTERFACE])
            .unwrap();
        rt.block_on(async {
            assert_eq!(link.addresses().await.unwrap(), vec![v4, v6]);
            for addr in [v4, v4] {
                link.remove(addr).await.unwrap();
            }
            assert_eq!(link.addresses().await.unwrap(), vec![v6]);
            link.remove(v6).await.unwrap();
            assert!(link.addresses().await.unwrap().is_empty());
        });
    }

    #[test]
    fn a_foreign_link_of_that_name_is_refused() {
        let ns = Netns::new("tbgpw").unwrap();
        ns.ip(&[
            "link", "add", "lb-vip0", "type", "veth", "peer", "name", "lb-peer0",
        ])
        .unwrap();
        let rt = runtime();
        let err = open(&ns, &rt, "lb-vip0").unwrap_err();
        assert_eq!(
            err.to_string(),
            "interface lb-vip0 exists and is a veth, not a dummy/ifb: choose another [bgp] \
             interface"
        );
        let err = open(&ns, &rt, "lo").unwrap_err();
        assert!(err.to_string().contains("is the loopback"), "{err}");
        // Left as it was.
        assert!(ns
            .ip(&["link", "show", "lb-vip0"])
            .unwrap()
            .contains("lb-vip0@lb-peer0"));
        for bad in ["", "a-name-longer-than-15", "a/b"] {
            let err = open(&ns, &rt, bad).unwrap_err();
            assert!(
                matches!(err, VipLinkError::BadName { .. }),
                "{bad:?}: {err}"
            );
        }
    }

    /// [`VipLink::ensure`] run in `ns` (its sockets live there), driven by `rt`.
    fn open(
        ns: &Netns,
        rt: &tokio::runtime::Runtime,
        name: &'static str,
    ) -> Result<VipLink, VipLinkError> {
        let handle = rt.handle().clone();
        // The netlink sockets are opened on the namespace's thread, so they live there.
        ns.run(move || handle.block_on(VipLink::ensure(name)))
    }
}
