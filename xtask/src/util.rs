//! Paths, child-process environments and running external commands.

use std::env;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

/// The workspace root: xtask lives one directory below it.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask's manifest dir has a parent")
        .to_path_buf()
}

/// Cargo's target dir. Child cargos never see `CARGO_TARGET_DIR` (see
/// `is_inherited_build_var`), so this is always where their output lands.
pub fn target_dir() -> PathBuf {
    workspace_root().join("target")
}

pub fn home_dir() -> Result<PathBuf> {
    env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .context("HOME is not set")
}

pub fn cargo_home() -> Result<PathBuf> {
    match env::var_os("CARGO_HOME").filter(|h| !h.is_empty()) {
        Some(h) => Ok(PathBuf::from(h)),
        None => Ok(home_dir()?.join(".cargo")),
    }
}

/// `existing` (a PATH-like list) with `dir` moved to the front.
pub fn prepend_dir(existing: Option<&OsStr>, dir: &Path) -> Result<OsString> {
    let mut dirs = vec![dir.to_path_buf()];
    if let Some(existing) = existing {
        dirs.extend(env::split_paths(existing).filter(|d| d != dir && !d.as_os_str().is_empty()));
    }
    env::join_paths(dirs).with_context(|| format!("cannot put {} into a path list", dir.display()))
}

/// Whether a variable inherited from `cargo xtask` (i.e. `cargo run`) must not reach a
/// nested cargo: `CARGO_MANIFEST_DIR`, `CARGO_PKG_*`, `CARGO_TARGET_DIR`, ... would
/// describe xtask's build, and `RUSTUP_TOOLCHAIN`/`RUSTC*`/`RUSTFLAGS` would pin or
/// reconfigure the compiler (the reason aya-template cleans them too).
pub fn is_inherited_build_var(key: &str, keep_toolchain: bool) -> bool {
    if key == "CARGO_HOME" || key == "RUSTUP_HOME" {
        return false;
    }
    if key.starts_with("CARGO") {
        return true;
    }
    if keep_toolchain {
        return false;
    }
    matches!(key, "RUSTUP_TOOLCHAIN" | "RUSTFLAGS" | "RUSTDOCFLAGS") || key.starts_with("RUSTC")
}

/// Gives `cmd` the environment of a nested build: inherited build variables removed
/// (`keep_toolchain` keeps `RUSTUP_TOOLCHAIN`/`RUSTC*`/`RUSTFLAGS`) and ~/.cargo/bin
/// first in PATH.
pub fn build_env(cmd: &mut Command, keep_toolchain: bool) -> Result<()> {
    for (key, _) in env::vars_os() {
        if key
            .to_str()
            .is_some_and(|k| is_inherited_build_var(k, keep_toolchain))
        {
            cmd.env_remove(&key);
        }
    }
    // rustup's `cargo` proxy (needed for `+nightly`) and bpf-linker live in ~/.cargo/bin;
    // first, so a toolchain's own bin dir earlier in PATH cannot shadow the proxy.
    let bin = cargo_home()?.join("bin");
    cmd.env("PATH", prepend_dir(env::var_os("PATH").as_deref(), &bin)?);
    Ok(())
}

fn cargo_command(toolchain: Option<&str>, keep_toolchain: bool) -> Result<Command> {
    let mut cmd = Command::new("cargo");
    build_env(&mut cmd, keep_toolchain)?;
    if let Some(toolchain) = toolchain {
        cmd.arg(format!("+{toolchain}"));
    }
    cmd.current_dir(workspace_root());
    Ok(cmd)
}

/// `cargo` for host builds. Keeps the toolchain xtask itself runs with, so
/// `cargo +1.95 xtask test` tests with 1.95.
pub fn host_cargo() -> Result<Command> {
    cargo_command(None, true)
}

/// `cargo run --release -p lb-tests --bin BIN --`, the program's arguments to follow.
pub fn run_lb_tests_bin(bin: &str) -> Result<Command> {
    let mut cmd = host_cargo()?;
    cmd.args([
        "run",
        "--release",
        "--package",
        "lb-tests",
        "--bin",
        bin,
        "--",
    ]);
    Ok(cmd)
}

/// `cargo` with the default toolchain and no inherited compiler settings.
pub fn clean_cargo() -> Result<Command> {
    cargo_command(None, false)
}

/// `cargo +nightly` with no inherited compiler settings.
pub fn nightly_cargo() -> Result<Command> {
    cargo_command(Some("nightly"), false)
}

/// The nightly toolchain's sysroot (rust-src and libLLVM live there).
pub fn nightly_sysroot() -> Result<PathBuf> {
    let out = output(Command::new("rustc").args(["+nightly", "--print", "sysroot"]))?;
    Ok(PathBuf::from(out.trim()))
}

/// Lets bpf-linker (linked against nightly's libLLVM) find that library straight in the
/// sysroot whatever its RUNPATH says: the recipe's `$prefix/lib` only has `libLLVM.so`,
/// while the binary asks for the versioned soname. Under `cargo +nightly build` the
/// sysroot is already on the linker's library path; the standalone probe in setup needs
/// this, and the build keeps it so both see the same thing.
pub fn add_llvm_library_path(cmd: &mut Command, sysroot: &Path) -> Result<()> {
    let lib = sysroot.join("lib");
    let value = prepend_dir(env::var_os("LD_LIBRARY_PATH").as_deref(), &lib)?;
    cmd.env("LD_LIBRARY_PATH", value);
    Ok(())
}

/// The command line, for messages.
pub fn display(cmd: &Command) -> String {
    let mut words = vec![cmd.get_program().to_string_lossy().into_owned()];
    for arg in cmd.get_args() {
        let arg = arg.to_string_lossy();
        if arg.is_empty() || arg.contains(char::is_whitespace) {
            words.push(format!("'{arg}'"));
        } else {
            words.push(arg.into_owned());
        }
    }
    words.join(" ")
}

/// Runs `cmd` with inherited stdio; fails unless it exits 0.
pub fn run(cmd: &mut Command) -> Result<()> {
    let shown = display(cmd);
    let status = cmd
        .status()
        .with_context(|| format!("failed to start `{shown}`"))?;
    if !status.success() {
        bail!("`{shown}` failed ({status})");
    }
    Ok(())
}

/// Runs `cmd` and returns its stdout; fails (quoting stderr) unless it exits 0.
pub fn output(cmd: &mut Command) -> Result<String> {
    let shown = display(cmd);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("failed to start `{shown}`"))?;
    if !out.status.success() {
        bail!(
            "`{shown}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether `cmd` starts and exits 0; all output discarded (a presence probe).
pub fn succeeds(cmd: &mut Command) -> bool {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The effective uid from `/proc/self/status` content (`Uid: real effective saved fs`).
pub fn parse_effective_uid(status: &str) -> Option<u32> {
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

pub fn is_root() -> Result<bool> {
    let status =
        std::fs::read_to_string("/proc/self/status").context("cannot read /proc/self/status")?;
    let uid = parse_effective_uid(&status).context("no Uid line in /proc/self/status")?;
    Ok(uid == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleans_cargo_run_variables_but_not_homes() {
        for key in [
            "CARGO",
            "CARGO_MANIFEST_DIR",
            "CARGO_PKG_NAME",
            "CARGO_TARGET_DIR",
        ] {
            assert!(is_inherited_build_var(key, true), "{key}");
            assert!(is_inherited_build_var(key, false), "{key}");
        }
        for key in [
            "RUSTUP_TOOLCHAIN",
            "RUSTC",
            "RUSTC_WRAPPER",
            "RUSTFLAGS",
            "RUSTDOCFLAGS",
        ] {
            assert!(is_inherited_build_var(key, false), "{key}");
            assert!(!is_inherited_build_var(key, true), "{key}");
        }
        for key in [
            "CARGO_HOME",
            "RUSTUP_HOME",
            "RUST_LOG",
            "RUST_BACKTRACE",
            "PATH",
        ] {
            assert!(!is_inherited_build_var(key, false), "{key}");
        }
    }

    #[test]
    fn prepends_without_duplicates() {
        let joined = prepend_dir(
            Some(OsStr::new("/usr/bin:/c/bin:/bin")),
            Path::new("/c/bin"),
        );
        assert_eq!(joined.unwrap(), OsString::from("/c/bin:/usr/bin:/bin"));
        let alone = prepend_dir(None, Path::new("/c/bin")).unwrap();
        assert_eq!(alone, OsString::from("/c/bin"));
    }

    #[test]
    fn parses_effective_uid() {
        let status = "Name:\tcat\nUid:\t1000\t0\t0\t0\nGid:\t100\t100\t100\t100\n";
        assert_eq!(parse_effective_uid(status), Some(0));
        assert_eq!(parse_effective_uid("Name:\tcat\n"), None);
    }

    #[test]
    fn displays_commands_with_quoting() {
        let mut cmd = Command::new("cargo");
        cmd.args(["+nightly", "build", "a b"]);
        assert_eq!(display(&cmd), "cargo +nightly build 'a b'");
    }
}
