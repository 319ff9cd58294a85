//! BFD (RFC 5880 / 5881: single hop, asynchronous mode, no echo), keepalived 2.2.7's
//! `bfd_instance`: see docs/bfd.md.
//!
//! - `packet.rs`: the control packet codec, every malformed case a [`packet::DropReason`].
//! - `fsm.rs`: the session state machine (pure): transitions, timer negotiation,
//!   detection time, poll/final, jitter.
//! - `session.rs`: the IO: UDP 3784 in (TTL 255 check, GTSM), a source port in
//!   49152-65535 out with TTL 255, one task for all sessions; state changes go out on a
//!   watch channel that `track_bfd` and `BFD_CHECK` read.
//! - `runtime.rs`: the daemon's sessions from `[[bfd_instance]]`, one task per family,
//!   one merged snapshot; reloads keep unchanged sessions running.
//! - `track.rs`: what a session's state means to VRRP and to a real server.

pub mod fsm;
pub mod packet;
pub mod runtime;
pub mod session;
pub mod track;
