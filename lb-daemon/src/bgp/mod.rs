//! Active-active VIPs announced over BGP by BIRD 2 (issue 12): the pieces that do not
//! depend on the rest of the daemon.
//!
//! - [`bird`]: BIRD's control socket (session states for `status` and `/metrics`).
//! - [`announce`]: when a VIP is announced, and why (pure state machine).
//! - [`vip_link`]: the dummy (or ifb) interface whose addresses BIRD announces.

pub mod announce;
pub mod bird;
pub mod vip_link;
