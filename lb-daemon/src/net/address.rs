//! Addresses on a link over rtnetlink: listing them in preference order, and adding and
//! removing them the way `ip addr add` / `ip addr del` (and keepalived) do.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures::TryStreamExt;
use rtnetlink::packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressScope,
};
use rtnetlink::packet_route::AddressFamily;

use super::rtnl::errno;

/// One address on one interface, as `ip addr add A/P dev D label L` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OnLink<'a> {
    pub ifindex: u32,
    pub addr: IpAddr,
    pub prefix: u8,
    /// IPv4 only (the kernel has no labels for IPv6 addresses; ignored there).
    pub label: Option<&'a str>,
}

/// The interface's IPv4 and IPv6 addresses, in preference order: primary IPv4 first; IPv6
/// by scope (global first), usable before tentative/deprecated, DAD-failed ones left out.
pub async fn list(
    handle: &rtnetlink::Handle,
    ifindex: u32,
) -> Result<(Vec<Ipv4Addr>, Vec<Ipv6Addr>), rtnetlink::Error> {
    let msgs = dump(handle, ifindex).await?;
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for msg in &msgs {
        let flags = address_flags(msg);
        match address_of(msg) {
            Some(IpAddr::V4(a)) => v4.push((flags.contains(AddressFlags::Secondary), a)),
            Some(IpAddr::V6(_)) if flags.contains(AddressFlags::Dadfailed) => {}
            Some(IpAddr::V6(a)) => v6.push((v6_rank(msg.header.scope, flags), a)),
            None => {}
        }
    }
    // Stable sorts: the kernel's order is kept within a rank.
    v4.sort_by_key(|(secondary, _)| *secondary);
    v6.sort_by_key(|(rank, _)| *rank);
    Ok((
        v4.into_iter().map(|(_, a)| a).collect(),
        v6.into_iter().map(|(_, a)| a).collect(),
    ))
}

/// Every address on the interface with its prefix length, in the kernel's order.
pub async fn with_prefixes(
    handle: &rtnetlink::Handle,
    ifindex: u32,
) -> Result<Vec<(IpAddr, u8)>, rtnetlink::Error> {
    let msgs = dump(handle, ifindex).await?;
    Ok(msgs
        .iter()
        // The dump may ignore the index filter on old kernels: check it again.
        .filter(|m| m.header.index == ifindex)
        .filter_map(|m| Some((address_of(m)?, m.header.prefix_len)))
        .collect())
}

/// RTM_GETADDR for the interface's addresses. A dump can fail when addresses change
/// under it (the kernel's NLM_F_DUMP_INTR): a failed dump is tried again, twice at most.
async fn dump(
    handle: &rtnetlink::Handle,
    ifindex: u32,
) -> Result<Vec<AddressMessage>, rtnetlink::Error> {
    let mut attempt = 0;
    loop {
        let result = handle
            .address()
            .get()
            .set_link_index_filter(ifindex)
            .execute()
            .try_collect()
            .await;
        match result {
            Err(_) if attempt < 2 => attempt += 1,
            done => return done,
        }
    }
}

/// Adds the address (with prefix and label); an address already there is fine. IPv6
/// addresses are added with IFA_F_NODAD so they can be used (and announced) at once.
pub async fn add(handle: &rtnetlink::Handle, a: OnLink<'_>) -> Result<(), rtnetlink::Error> {
    let mut request = handle.address().add(a.ifindex, a.addr, a.prefix);
    shape_new_address(request.message_mut(), a);
    match request.execute().await {
        Err(e) if errno(&e) == Some(libc::EEXIST) => Ok(()),
        result => result,
    }
}

/// Removes the address, whatever its label; an address already gone is fine.
pub async fn remove(handle: &rtnetlink::Handle, a: OnLink<'_>) -> Result<(), rtnetlink::Error> {
    match handle.address().del(delete_message(a)).execute().await {
        Err(e) if errno(&e) == Some(libc::EADDRNOTAVAIL) => Ok(()),
        result => result,
    }
}

/// Whether the address, with this prefix length, is on the interface.
pub async fn contains(handle: &rtnetlink::Handle, a: OnLink<'_>) -> Result<bool, rtnetlink::Error> {
    let mut request = handle
        .address()
        .get()
        .set_link_index_filter(a.ifindex)
        .set_prefix_length_filter(a.prefix)
        .set_address_filter(a.addr);
    request.message_mut().header.family = family(a.addr);
    let found: Vec<AddressMessage> = request.execute().try_collect().await?;
    Ok(!found.is_empty())
}

pub fn family(addr: IpAddr) -> AddressFamily {
    match addr {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

/// Turns rtnetlink's RTM_NEWADDR into what `ip addr add` / keepalived send.
fn shape_new_address(msg: &mut AddressMessage, a: OnLink<'_>) {
    // rtnetlink adds a broadcast address to IPv4 ones; `ip addr add` does not unless asked.
    msg.attributes
        .retain(|attr| !matches!(attr, AddressAttribute::Broadcast(_)));
    match (a.addr, a.label) {
        (IpAddr::V4(_), Some(label)) => msg.attributes.push(AddressAttribute::Label(label.into())),
        (IpAddr::V4(_), None) => {}
        (IpAddr::V6(_), _) => {
            msg.header.flags = AddressHeaderFlags::Nodad;
            msg.attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
    }
}

/// RTM_DELADDR for `addr/prefix` on the interface, whatever its label.
fn delete_message(a: OnLink<'_>) -> AddressMessage {
    let mut msg = AddressMessage::default();
    msg.header.family = family(a.addr);
    msg.header.prefix_len = a.prefix;
    msg.header.index = a.ifindex;
    msg.attributes.push(AddressAttribute::Address(a.addr));
    msg.attributes.push(AddressAttribute::Local(a.addr));
    msg
}

/// IFA_LOCAL is the interface's own address (IFA_ADDRESS is the peer on point-to-point links).
fn address_of(msg: &AddressMessage) -> Option<IpAddr> {
    let find = |local: bool| {
        msg.attributes.iter().find_map(|a| match a {
            AddressAttribute::Local(ip) if local => Some(*ip),
            AddressAttribute::Address(ip) if !local => Some(*ip),
            _ => None,
        })
    };
    find(true).or_else(|| find(false))
}

/// The full flags (IFA_FLAGS) when present, else the header's 8 bits.
fn address_flags(msg: &AddressMessage) -> AddressFlags {
    msg.attributes
        .iter()
        .find_map(|a| match a {
            AddressAttribute::Flags(f) => Some(*f),
            _ => None,
        })
        .unwrap_or_else(|| AddressFlags::from_bits_retain(u32::from(msg.header.flags.bits())))
}

/// Sort key of an IPv6 address: wider scope first, then usable before tentative/deprecated.
fn v6_rank(scope: AddressScope, flags: AddressFlags) -> (u8, bool) {
    let scope = match scope {
        AddressScope::Universe => 0,
        AddressScope::Site => 1,
        AddressScope::Link => 2,
        AddressScope::Host => 3,
        _ => 4,
    };
    let impaired = flags.intersects(AddressFlags::Tentative | AddressFlags::Deprecated);
    (scope, impaired)
}
