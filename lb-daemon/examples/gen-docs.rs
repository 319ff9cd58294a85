//! Writes lb-daemon's man pages and shell completions from its clap definition:
//! `gen-docs OUT_DIR` fills OUT_DIR/man8 (lb-daemon.8 and one page per subcommand,
//! lb-daemon-run.8, ...) and OUT_DIR/completions/{lb-daemon.bash,_lb-daemon,lb-daemon.fish}.
//! Run by `cargo xtask man` (an example, so clap_mangen and clap_complete stay out of
//! the daemon and out of xtask's own build).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap_complete::Shell;

fn main() -> Result<()> {
    let out = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .context("usage: gen-docs OUT_DIR")?;
    let mut cmd = lb_daemon::cli::args::command();
    cmd.build();
    let man = out.join("man8");
    std::fs::create_dir_all(&man).with_context(|| format!("creating {}", man.display()))?;
    write_pages(&cmd, "lb-daemon", &man)?;

    let completions = out.join("completions");
    std::fs::create_dir_all(&completions)
        .with_context(|| format!("creating {}", completions.display()))?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let path = clap_complete::generate_to(shell, &mut cmd, "lb-daemon", &completions)
            .with_context(|| format!("writing the {shell} completion"))?;
        println!("{}", path.display());
    }
    Ok(())
}

/// `name.8` for `cmd`, then `name-sub.8` for each visible subcommand, recursively.
fn write_pages(cmd: &clap::Command, name: &str, dir: &Path) -> Result<()> {
    // clap names are &'static str without its `string` feature; a one-shot tool may leak.
    let page = cmd
        .clone()
        .name(&*Box::leak(name.to_string().into_boxed_str()));
    let mut text = Vec::new();
    clap_mangen::Man::new(page)
        .section("8")
        .render(&mut text)
        .with_context(|| format!("rendering the {name} page"))?;
    let path = dir.join(format!("{name}.8"));
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    println!("{}", path.display());
    for sub in cmd.get_subcommands() {
        if sub.is_hide_set() || sub.get_name() == "help" {
            continue;
        }
        write_pages(sub, &format!("{name}-{}", sub.get_name()), dir)?;
    }
    Ok(())
}
