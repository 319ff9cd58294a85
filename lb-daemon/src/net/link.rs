//! Interfaces: what the data plane needs to know about one, and looking one up by name or
//! index over rtnetlink. Lookups return the raw reply and error so each caller keeps its
//! own notion of "missing" and its own messages.

use std::net::{Ipv4Addr, Ipv6Addr};

use rtnetlink::packet_route::link::{InfoKind, LinkAttribute, LinkInfo, LinkMessage};
use rtnetlink::LinkUnspec;

use super::rtnl::{errno, first};

/// What the data plane needs to know about one interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkFacts {
    pub ifindex: u32,
    pub name: String,
    pub mac: [u8; 6],
    /// Primary addresses first.
    pub ipv4: Vec<Ipv4Addr>,
    /// Global (then site, link-local, host) scope first; DAD-failed addresses left out.
    pub ipv6: Vec<Ipv6Addr>,
}

/// RTM_GETLINK for the interface called `name`.
pub async fn by_name(
    handle: &rtnetlink::Handle,
    name: &str,
) -> Result<Option<LinkMessage>, rtnetlink::Error> {
    first(handle.link().get().match_name(name).execute()).await
}

/// Like [`by_name`], with "no such device" (ENODEV, or EINVAL on some kernels) as `None`.
pub async fn find(
    handle: &rtnetlink::Handle,
    name: &str,
) -> Result<Option<LinkMessage>, rtnetlink::Error> {
    match by_name(handle, name).await {
        Err(e) if matches!(errno(&e), Some(libc::ENODEV | libc::EINVAL)) => Ok(None),
        result => result,
    }
}

/// The link's kind (IFLA_INFO_KIND): None for physical ports and the loopback.
pub fn kind(msg: &LinkMessage) -> Option<InfoKind> {
    msg.attributes.iter().find_map(|a| match a {
        LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
            LinkInfo::Kind(k) => Some(k.clone()),
            _ => None,
        }),
        _ => None,
    })
}

/// The link this one sits on (a macvlan's or VLAN's parent), by index.
pub fn parent(msg: &LinkMessage) -> Option<u32> {
    msg.attributes.iter().find_map(|a| match a {
        LinkAttribute::Link(index) => Some(*index),
        _ => None,
    })
}

/// RTM_NEWLINK: creates a link from a prepared message (`LinkDummy::new(name).build()`).
pub async fn add(handle: &rtnetlink::Handle, msg: LinkMessage) -> Result<(), rtnetlink::Error> {
    handle.link().add(msg).execute().await
}

/// Sets the interface up.
pub async fn set_up(handle: &rtnetlink::Handle, ifindex: u32) -> Result<(), rtnetlink::Error> {
    handle
        .link()
        .set(LinkUnspec::new_with_index(ifindex).up().build())
        .execute()
        .await
}

/// RTM_GETLINK for the interface with index `ifindex`.
pub async fn by_index(
    handle: &rtnetlink::Handle,
    ifindex: u32,
) -> Result<Option<LinkMessage>, rtnetlink::Error> {
    first(handle.link().get().match_index(ifindex).execute()).await
}

/// The interface's name (IFLA_IFNAME).
pub fn name(msg: &LinkMessage) -> Option<String> {
    msg.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.clone()),
        _ => None,
    })
}

/// The interface's Ethernet MAC (IFLA_ADDRESS), if it has one.
pub fn mac(msg: &LinkMessage) -> Option<[u8; 6]> {
    msg.attributes.iter().find_map(|a| match a {
        LinkAttribute::Address(mac) => mac_from(mac),
        _ => None,
    })
}

/// A 6-byte, non-zero link-layer address (loopback's all-zero one does not count).
pub fn mac_from(bytes: &[u8]) -> Option<[u8; 6]> {
    let mac: [u8; 6] = bytes.try_into().ok()?;
    (mac != [0; 6]).then_some(mac)
}
