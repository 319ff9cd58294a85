//! Running operator scripts (`vrrp_script`, notify scripts, and later `MISC_CHECK`): in
//! their own process group, as a configured user, with a timeout that kills the whole
//! group, never blocking the caller's protocol work.
//!
//! keepalived's `enable_script_security` is always on: a script that would run as root
//! is refused when its file, or any directory above it, is writable by a non-root user
//! (that user could otherwise run anything as root).

use std::{
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use nix::{
    sys::signal::{killpg, Signal},
    unistd::{Pid, User},
};

/// Where `sh -c` looks for a command when the daemon's environment has no PATH.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What to run. `command` is a shell command line as the operator wrote it (keepalived
/// style: `"/etc/lb/notify.sh master"`); `args` are appended as separate words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    pub command: String,
    pub args: Vec<String>,
    pub timeout: Duration,
    /// Run as this user (keepalived's `script_user`); None = the daemon's user.
    pub user: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Exited(i32),
    /// Killed by a signal (not ours).
    Signalled(i32),
    TimedOut,
    /// Could not start: the reason.
    Failed(String),
}

impl Outcome {
    pub fn success(&self) -> bool {
        matches!(self, Outcome::Exited(0))
    }

    /// For logs: "exit 1", "signal 9", "timeout", ...
    pub fn describe(&self) -> String {
        match self {
            Outcome::Exited(code) => format!("exit {code}"),
            Outcome::Signalled(sig) => format!("signal {sig}"),
            Outcome::TimedOut => "timeout".into(),
            Outcome::Failed(why) => format!("not started: {why}"),
        }
    }
}

pub async fn run(script: &Script) -> Outcome {
    let mut cmd = tokio::process::Command::new("/bin/sh");
    // `"$@"` appends the extra arguments as separate words, quoted safely.
    cmd.arg("-c")
        .arg(format!("{} \"$@\"", script.command))
        .arg("sh")
        .args(&script.args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .kill_on_drop(true);
    let mut uid = nix::unistd::geteuid().as_raw();
    if let Some(name) = &script.user {
        match User::from_name(name) {
            Ok(Some(user)) => {
                cmd.uid(user.uid.as_raw()).gid(user.gid.as_raw());
                uid = user.uid.as_raw();
            }
            Ok(None) => return Outcome::Failed(format!("no user {name:?}")),
            Err(e) => return Outcome::Failed(format!("looking up user {name:?}: {e}")),
        }
    }
    if uid == 0 {
        if let Err(why) = check_secure(&script.command) {
            return Outcome::Failed(why);
        }
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return Outcome::Failed(e.to_string()),
    };
    let pid = child.id();
    match tokio::time::timeout(script.timeout, child.wait()).await {
        Ok(Ok(status)) => {
            use std::os::unix::process::ExitStatusExt;
            match (status.code(), status.signal()) {
                (Some(code), _) => Outcome::Exited(code),
                (None, Some(sig)) => Outcome::Signalled(sig),
                (None, None) => Outcome::Failed("no exit status".into()),
            }
        }
        Ok(Err(e)) => Outcome::Failed(e.to_string()),
        Err(_) => {
            // The whole group: a script's own children must not outlive it.
            if let Some(pid) = pid {
                let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
            }
            let _ = child.wait().await;
            Outcome::TimedOut
        }
    }
}

/// keepalived's `enable_script_security` for a script run as root: its executable (the
/// first word, found on PATH when it has no `/`) and every directory above it must be
/// owned by root and writable by no one else. A first word found nowhere is a shell
/// builtin or keyword (`test`, `exit`): nothing on disk to tamper with.
pub fn check_secure(command: &str) -> Result<(), String> {
    let Some(program) = command
        .split_whitespace()
        .next()
        .map(|w| w.trim_matches(['"', '\'']))
    else {
        return Ok(());
    };
    let Some(path) = locate(program) else {
        return Ok(());
    };
    // The path as written (a symlink can be swapped in a writable directory) and the file
    // it leads to.
    let real = path.canonicalize().unwrap_or_else(|_| path.clone());
    for candidate in [&path, &real] {
        for part in candidate.ancestors().filter(|p| !p.as_os_str().is_empty()) {
            if let Some(who) = writable_by_non_root(part) {
                return Err(format!(
                    "Unsafe permissions found for script '{}' - disabling ({} is {who}; make it root's and not group- or world-writable, or run the script as a non-root script_user)",
                    path.display(),
                    part.display()
                ));
            }
        }
    }
    Ok(())
}

fn locate(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        return Some(PathBuf::from(program));
    }
    let path = std::env::var("PATH").unwrap_or_else(|_| DEFAULT_PATH.into());
    path.split(':')
        .map(|dir| Path::new(dir).join(program))
        .find(|p| p.is_file())
}

/// keepalived's test: not root's, or group-writable with a non-root group, or
/// world-writable. `None` when safe (or gone: running it fails on its own).
fn writable_by_non_root(path: &Path) -> Option<&'static str> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    if meta.uid() != 0 {
        Some("owned by a non-root user")
    } else if meta.file_type().is_symlink() {
        // A symlink's mode is always 0777 and means nothing: its owner and its
        // directory decide who can change it, and its target is checked on its own.
        None
    } else if meta.mode() & 0o020 != 0 && meta.gid() != 0 {
        Some("writable by a non-root group")
    } else if meta.mode() & 0o002 != 0 {
        Some("world-writable")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A directory below the crate (root's, 0755 all the way up when tests run as root).
    struct SafeDir(PathBuf);

    impl SafeDir {
        fn new() -> Self {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join("target")
                .join(crate::netns::unique_name("lb-script-sec"));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
            Self(dir.canonicalize().unwrap())
        }

        fn script(&self, name: &str, mode: u32) -> PathBuf {
            let path = self.0.join(name);
            std::fs::write(&path, "#!/bin/sh\nexit 0\n").unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            path
        }
    }

    impl Drop for SafeDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn script_security_refuses_what_a_non_root_user_could_change() {
        if !nix::unistd::geteuid().is_root() {
            return; // needs root-owned files
        }
        let dir = SafeDir::new();
        if dir.0.ancestors().any(|p| writable_by_non_root(p).is_some()) {
            return; // the checkout itself is not root's: nothing to tell apart
        }
        let ok = dir.script("ok.sh", 0o755);
        assert_eq!(check_secure(&format!("{} arg", ok.display())), Ok(()));
        let group = dir.script("group.sh", 0o775);
        // Group root may write; another group may not.
        assert_eq!(check_secure(&group.display().to_string()), Ok(()));
        std::os::unix::fs::chown(&group, None, Some(65534)).unwrap();
        let e = check_secure(&group.display().to_string()).unwrap_err();
        assert!(e.starts_with("Unsafe permissions found for script"), "{e}");
        assert!(e.contains("writable by a non-root group"), "{e}");
        let world = dir.script("world.sh", 0o757);
        assert!(check_secure(&world.display().to_string())
            .unwrap_err()
            .contains("world-writable"));
        let owned = dir.script("owned.sh", 0o755);
        std::os::unix::fs::chown(&owned, Some(65534), None).unwrap();
        assert!(check_secure(&owned.display().to_string())
            .unwrap_err()
            .contains("owned by a non-root user"));
        // A safe file in a writable directory is not safe.
        let sub = dir.0.join("open");
        std::fs::create_dir(&sub).unwrap();
        std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o777)).unwrap();
        let inner = sub.join("inner.sh");
        std::fs::write(&inner, "").unwrap();
        let e = check_secure(&inner.display().to_string()).unwrap_err();
        assert!(
            e.contains(&format!("({} is world-writable", sub.display())),
            "{e}"
        );
        // A symlink to a safe file from a writable directory neither.
        let link = sub.join("link.sh");
        std::os::unix::fs::symlink(&ok, &link).unwrap();
        assert!(check_secure(&link.display().to_string()).is_err());
        // A root-owned symlink in a safe directory to a safe file is safe (a symlink's
        // mode is always 0777: Debian's /usr/bin/sh -> dash).
        let safe_link = dir.0.join("safe-link.sh");
        std::os::unix::fs::symlink(&ok, &safe_link).unwrap();
        assert_eq!(check_secure(&safe_link.display().to_string()), Ok(()));
        // ... but not one to an unsafe file.
        let to_world = dir.0.join("to-world.sh");
        std::os::unix::fs::symlink(&world, &to_world).unwrap();
        assert!(check_secure(&to_world.display().to_string()).is_err());
        // Commands found on PATH, and shell builtins.
        assert_eq!(check_secure("test -f /etc/hostname"), Ok(()));
        assert_eq!(check_secure("exit 0"), Ok(()));
    }

    #[tokio::test]
    async fn an_unsafe_script_is_not_run_as_root() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let dir = std::env::temp_dir().join(crate::netns::unique_name("lb-script-tmp"));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sh");
        std::fs::write(&path, "#!/bin/sh\nexit 0\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        // /tmp is world-writable: refused as root...
        let outcome = run(&script(&path.display().to_string(), &[], 2000)).await;
        assert!(
            matches!(&outcome, Outcome::Failed(why) if why.contains("world-writable")),
            "{outcome:?}"
        );
        // ...and run as a non-root script_user.
        let mut as_nobody = script(&path.display().to_string(), &[], 2000);
        as_nobody.user = Some("nobody".into());
        assert_eq!(run(&as_nobody).await, Outcome::Exited(0));
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn script(command: &str, args: &[&str], timeout_ms: u64) -> Script {
        Script {
            command: command.into(),
            args: args.iter().map(|s| s.to_string()).collect(),
            timeout: Duration::from_millis(timeout_ms),
            user: None,
        }
    }

    #[tokio::test]
    async fn exit_codes_signals_and_arguments() {
        assert_eq!(run(&script("true", &[], 2000)).await, Outcome::Exited(0));
        assert_eq!(run(&script("exit 3", &[], 2000)).await, Outcome::Exited(3));
        assert_eq!(
            run(&script("kill -9 $$", &[], 2000)).await,
            Outcome::Signalled(9)
        );
        // Extra arguments arrive as separate, unsplit words.
        let check = r#"test "$1" = INSTANCE && test "$2" = "VI 1" && test "$#" -eq 2 && true"#;
        assert_eq!(
            run(&script(check, &["INSTANCE", "VI 1"], 2000)).await,
            Outcome::Exited(0)
        );
    }

    #[tokio::test]
    async fn a_hanging_script_is_killed_with_its_children() {
        let dir = std::env::temp_dir().join(format!("lb-script-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let marker = dir.join("child-alive");
        let cmd = format!("(sleep 1; touch {}) & sleep 30", marker.display());
        let start = std::time::Instant::now();
        assert_eq!(run(&script(&cmd, &[], 200)).await, Outcome::TimedOut);
        assert!(start.elapsed() < Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(!marker.exists(), "the script's child was killed too");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn unknown_user_is_reported() {
        let mut s = script("true", &[], 1000);
        s.user = Some("no-such-user-lb".into());
        assert!(matches!(run(&s).await, Outcome::Failed(why) if why.contains("no-such-user-lb")));
        s.user = Some("nobody".into());
        assert_eq!(run(&s).await, Outcome::Exited(0));
    }
}
