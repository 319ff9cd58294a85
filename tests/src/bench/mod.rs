//! Benchmarks run by `lb-bench` (`cargo xtask bench <what>`).

pub mod datapath;
pub mod failover;
pub mod health;
pub mod master_to_forwarding;
pub mod plot;
pub mod report;
pub mod scaleout;
pub mod split_brain;
pub mod sync;
