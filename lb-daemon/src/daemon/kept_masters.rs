//! The MASTER instances a daemon stopped with `--keep-dataplane` hands to the next one,
//! in a file next to the control socket (bpffs holds no plain files).

use std::path::PathBuf;

use tracing::{info, warn};

use crate::config;

fn path(config: &config::Config) -> PathBuf {
    let mut p = config.global.control_socket.clone().into_os_string();
    p.push(".masters");
    p.into()
}

/// Reads (and removes) the list a previous daemon left.
pub fn take(config: &config::Config) -> Vec<String> {
    let path = path(config);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Vec::new();
    };
    let _ = std::fs::remove_file(&path);
    let names: Vec<String> = text
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    if !names.is_empty() {
        info!(instances = ?names, "taking over the MASTER instances of the previous daemon");
    }
    names
}

/// Writes the list for the next daemon (a failure is logged: it then starts as BACKUP).
pub fn record(config: &config::Config, masters: &[String]) {
    let marker = path(config);
    if let Err(e) = std::fs::write(&marker, masters.join("\n")) {
        warn!(path = %marker.display(), error = %e, "cannot record the MASTER instances for the next daemon");
    }
}
