pub mod checkers;
pub mod quorum;
pub mod runner;
pub mod spec;
pub mod verdict;
