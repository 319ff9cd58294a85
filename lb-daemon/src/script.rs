//! Running operator scripts (`vrrp_script`, notify scripts, and later `MISC_CHECK`): in
//! their own process group, as a configured user, with a timeout that kills the whole
//! group, never blocking the caller's protocol work.

use std::{process::Stdio, time::Duration};

use nix::{
    sys::signal::{killpg, Signal},
    unistd::{Pid, User},
};

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
    if let Some(name) = &script.user {
        match User::from_name(name) {
            Ok(Some(user)) => {
                cmd.uid(user.uid.as_raw()).gid(user.gid.as_raw());
            }
            Ok(None) => return Outcome::Failed(format!("no user {name:?}")),
            Err(e) => return Outcome::Failed(format!("looking up user {name:?}: {e}")),
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

#[cfg(test)]
mod tests {
    use super::*;

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
