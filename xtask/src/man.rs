//! `cargo xtask man`: lb-daemon's man pages (section 8, one per subcommand) and its
//! bash, zsh and fish completions, generated from the clap definition
//! (`lb_daemon::cli::args::command`) by the `gen-docs` example, so the help text is
//! written once. The example keeps clap_mangen and clap_complete out of the daemon and
//! out of xtask, which would otherwise compile the whole daemon before any task.

use std::path::PathBuf;

use anyhow::{ensure, Result};

use crate::util;

/// What `gen-docs` wrote.
pub struct Docs {
    /// `*.8` pages.
    pub man8: PathBuf,
    /// `lb-daemon.bash`, `_lb-daemon`, `lb-daemon.fish`.
    pub completions: PathBuf,
}

/// Generates into `target/man`; `release` reuses the release build `cargo xtask deb`
/// has just made (debug otherwise: what `cargo build -p lb-daemon` already built).
pub fn generate(release: bool) -> Result<Docs> {
    let out = util::target_dir().join("man");
    if out.exists() {
        std::fs::remove_dir_all(&out)?;
    }
    let mut cmd = util::host_cargo()?;
    cmd.args([
        "run",
        "--quiet",
        "--package",
        "lb-daemon",
        "--example",
        "gen-docs",
    ]);
    if release {
        cmd.arg("--release");
    }
    cmd.arg("--").arg(&out);
    util::run(&mut cmd)?;
    let docs = Docs {
        man8: out.join("man8"),
        completions: out.join("completions"),
    };
    for (dir, first) in [
        (&docs.man8, "lb-daemon.8"),
        (&docs.completions, "_lb-daemon"),
    ] {
        ensure!(
            dir.join(first).is_file(),
            "gen-docs succeeded but {} is missing",
            dir.join(first).display()
        );
    }
    println!("man: {}", out.display());
    Ok(docs)
}
