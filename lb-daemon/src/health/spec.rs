//! What a check is and what it found: the configured checker parameters (plain data
//! owned by `config::check`, re-exported here for the checkers) and the outcome of one
//! attempt.

use std::{borrow::Cow, time::Duration};

pub use crate::config::check::*;

/// The result of one check attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub up: bool,
    /// `misc_dynamic`: the weight the script asked for.
    pub weight: Option<u32>,
    /// FILE_CHECK: added to the real server's configured weight while up.
    pub offset: Option<i64>,
    /// Why (for logs): "connected", "refused", "timeout", "status 503",
    /// "digest mismatch", "TLS error: ...", "exit 1", ... (most are constants: a
    /// check that finds what the last one found allocates nothing).
    pub reason: Cow<'static, str>,
    pub duration: Duration,
}
