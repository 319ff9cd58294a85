pub mod checkers;
pub mod from_config;
pub mod quorum;
pub mod runner;
pub mod schedule;
pub mod spec;
pub mod verdict;
