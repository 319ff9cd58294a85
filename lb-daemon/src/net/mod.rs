//! Network plumbing shared by the data plane and VRRP: everything that talks to the kernel
//! about links, addresses and neighbours, and the wire-level numbers several modules use.
//!
//! - [`proto`]: protocol numbers, multicast groups, Ethernet and ND constants.
//! - [`checksum`]: the RFC 1071 Internet checksum and the pseudo-headers it covers.
//! - [`rtnl`]: the one place an rtnetlink connection is opened.
//! - [`link`]: interface facts and lookup by name or index.
//! - [`link_watch`]: which links are up, from link events (VRRP's interface tracking).
//! - [`address`]: listing, adding and removing addresses on a link.
//! - [`neigh`]: next-hop resolution through routes and the neighbour table.
//! - [`route`]: adding and removing routes and policy rules (keepalived's syntax).

pub mod address;
pub mod checksum;
pub mod link;
pub mod link_watch;
pub mod neigh;
pub mod proto;
pub mod route;
pub mod rtnl;
