//! Support for the packet fixtures, the network-namespace tests and the benchmarks.

pub mod bench;
pub mod daemon_lab;
pub mod family;
pub mod frames;
pub mod harness;
pub mod ipvsadm;
pub mod prometheus;
pub mod single_node;
pub mod soak;
pub mod vrrp_lab;
pub mod xdp_fuzz;
