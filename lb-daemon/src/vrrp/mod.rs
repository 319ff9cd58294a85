//! VRRP (RFC 3768 v2, RFC 5798 v3), wire-compatible with keepalived 2.2.7.
//!
//! - [`types`]: the vocabulary shared by the codec, the state machine and the IO.
//! - [`packet`]: encoding and decoding adverts, checksums as keepalived computes them.
//! - [`fsm`]: the per-instance state machine, pure: `(state, event) -> actions`.
//! - [`sync_group`]: `vrrp_sync_group` — instances that change state together.
//! - [`track`]: tracking rules (scripts, interfaces, files) as pure functions.
//! - [`socket`], [`vip`]: raw VRRP sockets; VIPs, gratuitous ARP, unsolicited NA (the
//!   rtnetlink, checksum and protocol plumbing under them lives in [`crate::net`]).
//! - [`split_brain`]: split-brain detection and resolution (pure); [`probe`]: the ARP /
//!   neighbour-discovery probes of our own VIPs that feed it.
//! - [`notify`]: notify scripts; [`instance`]: one instance's task; [`runtime`]: all of
//!   them, built from the configuration.
//! - [`receiver`]: each instance's receive thread, which an idle backup hands its
//!   master-down timer; [`advert_filter`]: the kernel socket filter that spares that
//!   thread a wake-up for each of a steady master's adverts.

pub mod advert_filter;
pub mod ah;
pub mod arbiter;
pub mod fsm;
pub mod instance;
pub mod notify;
pub mod packet;
pub mod paths;
pub mod probe;
pub mod process;
pub mod receiver;
pub mod routes;
pub mod runtime;
pub mod socket;
pub mod split_brain;
pub mod sync_group;
pub mod track;
pub mod types;
pub mod vip;
pub mod vmac;
