//! The workspace's debug test build, as `cargo xtask test` makes it: every test
//! executable, the daemon and lb-tests' programs (`lb-soak`, `lb-xdp-fuzz`). The steps
//! after the tests (fuzzing, the soak, the VM) take their binaries from it: the same
//! packages and features, so nothing recompiles. Their own `cargo build -p …` resolved
//! features differently and compiled lb-daemon again, once per step.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::util;

pub struct TestBuild {
    /// (test target name, executable) as cargo names them.
    pub executables: Vec<(String, PathBuf)>,
    debug: PathBuf,
}

impl TestBuild {
    /// A binary target of the build (`lb-daemon`, `lb-soak`, `lb-xdp-fuzz`).
    pub fn bin(&self, name: &str) -> PathBuf {
        self.debug.join(name)
    }
}

/// `cargo test --workspace --exclude lb-ebpf --no-run`: what `cargo xtask test` runs,
/// without running it (nothing to do right after it).
pub fn build(object: &Path) -> Result<TestBuild> {
    let mut cmd = util::host_cargo()?;
    cmd.args(["test", "--workspace", "--exclude", "lb-ebpf", "--no-run"])
        .env(crate::OBJECT_ENV, object);
    Ok(TestBuild {
        executables: no_run(&mut cmd, "the tests")?.0,
        debug: util::target_dir().join("debug"),
    })
}

/// Runs `cmd` (a `cargo test … --no-run`) in the workspace: the executables it named,
/// under the workspace root, and what it printed; fails naming `what` with its output.
pub fn no_run(cmd: &mut Command, what: &str) -> Result<(Vec<(String, PathBuf)>, String)> {
    let out = cmd
        .current_dir(util::workspace_root())
        .output()
        .context("failed to start cargo")?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        bail!("building {what} failed:\n{stderr}");
    }
    let root = util::workspace_root();
    let found = executables(&stderr)
        .into_iter()
        .map(|(name, path)| (name, root.join(path)))
        .collect();
    Ok((found, stderr))
}

/// `Executable tests/NAME.rs (PATH)` lines of `cargo test --no-run`.
pub fn executables(cargo_stderr: &str) -> Vec<(String, PathBuf)> {
    cargo_stderr
        .lines()
        .filter_map(|l| {
            let rest = l.trim().strip_prefix("Executable ")?;
            let (source, path) = rest.split_once(" (")?;
            let name = Path::new(source).file_stem()?.to_str()?.to_string();
            Some((name, PathBuf::from(path.strip_suffix(')')?)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_test_executables_in_cargo_output() {
        let stderr = "   Compiling lb-tests v0.1.0
    Finished `test` profile [unoptimized + debuginfo] target(s) in 9.1s
  Executable unittests src/lib.rs (target/debug/deps/lb_common-47dd19365954f0e1)
  Executable tests/ipvs_vm.rs (target/debug/deps/ipvs_vm-791cce8c571e3e37)
";
        assert_eq!(
            executables(stderr),
            vec![
                (
                    "lib".to_string(),
                    PathBuf::from("target/debug/deps/lb_common-47dd19365954f0e1")
                ),
                (
                    "ipvs_vm".to_string(),
                    PathBuf::from("target/debug/deps/ipvs_vm-791cce8c571e3e37")
                )
            ]
        );
    }
}
