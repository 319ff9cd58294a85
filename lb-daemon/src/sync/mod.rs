//! Flow-state sync between LB nodes (keepalived's `lvs_sync_daemon`): the new flows the
//! data plane reports are sent to the peers, and the peers' flows installed here, so a
//! NAT or full-NAT connection, or a flow whose real is no longer the Maglev choice,
//! survives a failover or an ECMP move. See `docs/sync.md`.
//!
//! - [`wire`] (pure): the message format, its HMAC-SHA256 tag, and every reason a
//!   message is dropped; [`replay`] (pure): per-sender sequence numbers and freshness;
//!   [`pending`] (pure): a BACKUP's records, kept until it serves their service;
//!   [`bulk`] (pure): when a starting node has its peers' flows.
//! - [`task`]: the UDP sender and receiver; the owner drains and installs
//!   (`daemon/dataplane_owner.rs`), this module never touches a map.

pub mod bulk;
pub mod pending;
pub mod replay;
pub mod task;
pub mod wire;
