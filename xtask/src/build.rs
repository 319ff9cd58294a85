//! Building the eBPF object (nightly, bpfel-unknown-none) and the host binaries (stable).

use std::path::PathBuf;

use anyhow::{ensure, Context, Result};

use crate::util;

pub const EBPF_TARGET: &str = "bpfel-unknown-none";

/// Full debug info plus `--btf` for bpf-linker: the loader needs BTF to create the
/// maps, and the verifier's messages get source lines. BPF CPU v3 (Linux 5.12+): the
/// atomic `or` of `lb_conn_filter`'s bits, and 32-bit sub-registers.
const EBPF_RUSTFLAGS: &[&str] = &["-Cdebuginfo=2", "-Clink-arg=--btf", "-Ctarget-cpu=v3"];

/// `CARGO_ENCODED_RUSTFLAGS` separates flags with 0x1f, so flags may contain spaces.
pub fn encode_rustflags(flags: &[&str]) -> String {
    flags.join("\x1f")
}

fn profile_dir(release: bool) -> &'static str {
    if release {
        "release"
    } else {
        "debug"
    }
}

pub fn ebpf_object(release: bool) -> PathBuf {
    util::target_dir()
        .join(EBPF_TARGET)
        .join(profile_dir(release))
        .join("lb-ebpf")
}

/// The VRRP advert filter, built with the XDP program (a second binary of lb-ebpf).
pub fn vrrp_filter_object(release: bool) -> PathBuf {
    ebpf_object(release).with_file_name("lb-vrrp-filter")
}

pub fn daemon_binary() -> PathBuf {
    util::target_dir().join("release").join("lb-daemon")
}

/// Builds lb-ebpf (the XDP object and the VRRP advert filter) and returns the XDP
/// object's absolute path.
pub fn build_ebpf(release: bool) -> Result<PathBuf> {
    let mut cmd = util::nightly_cargo()?;
    cmd.args(["build", "--package", "lb-ebpf", "--target", EBPF_TARGET]);
    // bpfel-unknown-none ships no precompiled core.
    cmd.args(["-Z", "build-std=core"]);
    if release {
        cmd.arg("--release");
    }
    cmd.env("CARGO_ENCODED_RUSTFLAGS", encode_rustflags(EBPF_RUSTFLAGS));
    util::add_llvm_library_path(&mut cmd, &util::nightly_sysroot()?)?;
    util::run(&mut cmd)
        .context("building the eBPF program failed (tools missing? `cargo xtask setup`)")?;

    let object = ebpf_object(release);
    for built in [object.clone(), vrrp_filter_object(release)] {
        ensure!(
            built.is_file(),
            "cargo succeeded but {} is missing",
            built.display()
        );
        println!("build-ebpf: {}", built.display());
    }
    Ok(object)
}

/// The daemon feature xtask builds with: `cargo xtask run` defaults to `lb-daemon lab`.
/// A plain `cargo build -p lb-daemon` leaves the labs out of the production binary.
pub const DAEMON_LAB_FEATURE: &str = "lb-daemon/lab";

/// Builds every host crate in release mode (the daemon with its labs) and returns the
/// daemon's path.
pub fn build_host() -> Result<PathBuf> {
    let mut cmd = util::host_cargo()?;
    cmd.args(["build", "--release", "--workspace", "--exclude", "lb-ebpf"]);
    cmd.args(["--features", DAEMON_LAB_FEATURE]);
    util::run(&mut cmd)?;

    let daemon = daemon_binary();
    ensure!(
        daemon.is_file(),
        "cargo succeeded but {} is missing",
        daemon.display()
    );
    println!("build: {}", daemon.display());
    Ok(daemon)
}

/// `cargo xtask build`: the eBPF object, then the host binaries.
pub fn build_all() -> Result<(PathBuf, PathBuf)> {
    let object = build_ebpf(true)?;
    let daemon = build_host()?;
    Ok((object, daemon))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rustflags_are_unit_separated() {
        assert_eq!(
            encode_rustflags(EBPF_RUSTFLAGS),
            "-Cdebuginfo=2\u{1f}-Clink-arg=--btf\u{1f}-Ctarget-cpu=v3"
        );
        assert_eq!(encode_rustflags(&[]), "");
    }

    #[test]
    fn object_paths_follow_the_profile() {
        let release = ebpf_object(true);
        assert!(release.is_absolute());
        assert!(release.ends_with("target/bpfel-unknown-none/release/lb-ebpf"));
        assert!(ebpf_object(false).ends_with("target/bpfel-unknown-none/debug/lb-ebpf"));
        assert!(
            vrrp_filter_object(true).ends_with("target/bpfel-unknown-none/release/lb-vrrp-filter")
        );
        assert!(daemon_binary().ends_with("target/release/lb-daemon"));
    }
}
