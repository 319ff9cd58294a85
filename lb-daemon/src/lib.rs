//! lb-daemon: the control plane of the XDP load balancer.
//!
//! - [`dataplane`]: loads the XDP program, pins and programs its maps (the only owner of
//!   the eBPF maps).
//! - [`net`]: links, addresses, neighbours, checksums and protocol constants, shared by the
//!   data plane and VRRP.
//! - [`netns`]: network-namespace helpers for the lab (`lb-daemon lab`) and the tests.

pub mod bgp;
pub mod cli;
pub mod config;
pub mod convert;
pub mod daemon;
pub mod dataplane;
pub mod health;
pub mod ipvs;
pub mod lab;
pub mod net;
pub mod netns;
pub mod script;
pub mod vrrp;
