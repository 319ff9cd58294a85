//! Resolving how this node reaches a backend: next-hop MAC, egress interface and its MAC,
//! and the tunnel source address, from the kernel's routing and neighbour tables.

use std::{net::IpAddr, time::Duration};

use super::Egress;
use crate::net::neigh::{NeighError, Neighbours};

pub async fn resolve_egress(
    neigh: &Neighbours,
    backend: IpAddr,
    timeout: Duration,
) -> Result<Egress, NeighError> {
    let hop = neigh.resolve(backend, timeout).await?;
    let link = neigh.link_by_index(hop.ifindex).await?;
    let tunnel_src = match backend {
        IpAddr::V4(_) => link.ipv4.first().copied().map(IpAddr::V4),
        IpAddr::V6(_) => link.ipv6.first().copied().map(IpAddr::V6),
    };
    Ok(Egress {
        ifindex: hop.ifindex,
        next_hop_mac: hop.mac,
        src_mac: link.mac,
        tunnel_src,
    })
}
