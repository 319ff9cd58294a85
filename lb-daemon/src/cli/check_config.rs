//! `lb-daemon check-config FILE`: everything a running daemon would reject, with
//! file:line:column, the key and what to do.

use std::path::Path;

use anyhow::{bail, Result};

use crate::config::{self, Loaded};

/// Loads the file and checks what needs the live system (interfaces). Errors are printed
/// to stderr and returned as one failure.
pub fn load_checked(path: &Path) -> Result<Loaded> {
    let loaded = match config::Config::from_file(path) {
        Ok(l) => l,
        Err(errors) => {
            eprintln!("{errors}");
            bail!("{}: the configuration is invalid", path.display());
        }
    };
    let mut missing = config::check_interfaces(&loaded.config, |name| {
        nix::net::if_::if_nametoindex(name).is_ok()
    });
    missing.extend(config::check_availability(&loaded.config));
    if !missing.is_empty() {
        for d in &missing {
            eprintln!("{d}");
        }
        bail!(
            "{}: the configuration names interfaces that do not exist",
            path.display()
        );
    }
    Ok(loaded)
}

pub fn run(path: &Path) -> Result<()> {
    let loaded = load_checked(path)?;
    for w in &loaded.warnings {
        eprintln!("{w}");
    }
    println!("{}: OK", path.display());
    Ok(())
}
