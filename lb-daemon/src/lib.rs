//! lb-daemon: the control plane of the XDP load balancer.
//!
//! - [`dataplane`]: loads the XDP program, pins and programs its maps (the only owner of
//!   the eBPF maps).
//! - [`net`]: links, addresses, neighbours, checksums and protocol constants, shared by the
//!   data plane and VRRP.
//! - `lab` and `netns` (feature `lab`): the namespace labs (`lb-daemon lab`) and the
//!   helpers the tests build them with; the production binary carries neither.

pub mod alerts;
pub mod bfd;
pub mod bgp;
pub mod cli;
pub mod config;
pub mod convert;
pub mod daemon;
pub mod dataplane;
// Entry points of the parsers of outside input, for the fuzz targets (tests/fuzz) only.
#[doc(hidden)]
pub mod fuzzing;
pub mod health;
pub mod ipvs;
#[cfg(feature = "lab")]
pub mod lab;
pub mod map_memory;
pub mod net;
// The daemon's own unit tests build namespaces too.
#[cfg(any(test, feature = "lab"))]
pub mod netns;
pub mod script;
pub mod sync;
pub mod top;
pub mod track_file;
pub mod vrrp;
