//! `lb-daemon run --config FILE`: the daemon in the foreground (see [`daemon::app`]).

use std::path::Path;

use anyhow::Result;
use tracing::warn;

use crate::daemon;

pub fn run(path: &Path) -> Result<()> {
    let loaded = super::check_config::load_checked(path)?;
    for w in &loaded.warnings {
        warn!("{w}");
    }
    daemon::app::run(path, loaded.config, super::check_config::load_checked)
}
