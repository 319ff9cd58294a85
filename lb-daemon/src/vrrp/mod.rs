//! VRRP (RFC 3768 v2, RFC 5798 v3), wire-compatible with keepalived 2.2.7.
//!
//! - [`types`]: the vocabulary shared by the codec, the state machine and the IO.
//! - [`packet`]: encoding and decoding adverts, checksums as keepalived computes them.
//! - [`fsm`]: the per-instance state machine, pure: `(state, event) -> actions`.
//! - [`sync_group`]: `vrrp_sync_group` — instances that change state together.

pub mod fsm;
pub mod packet;
pub mod sync_group;
pub mod types;
