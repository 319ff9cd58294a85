//! `lb-daemon status` and `lb-daemon reload`: clients of the running daemon's control
//! socket.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::config;
use crate::daemon::{control, snapshot::Snapshot, status_view};

/// A status is a copy of in-memory state: anything slower means a stuck daemon.
const STATUS_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `stop` waits for the daemon to go.
const STOP_WAIT: Duration = Duration::from_secs(15);
/// ... when it drains first (the daemon bounds the drain by its drain_timeout).
const STOP_DRAIN_WAIT: Duration = Duration::from_secs(15 * 60);
/// A reload waits for the daemon to apply the file (sockets, VIPs, maps, first checks).
const RELOAD_TIMEOUT: Duration = Duration::from_secs(90);

/// The control socket to use: `--socket`, else the configuration's
/// `global.control_socket` when `--config` is given, else the default.
pub fn socket_path(socket: Option<PathBuf>, config_file: Option<&Path>) -> Result<PathBuf> {
    if let Some(socket) = socket {
        return Ok(socket);
    }
    let Some(file) = config_file else {
        return Ok(PathBuf::from(config::DEFAULT_CONTROL_SOCKET));
    };
    match crate::convert::load(file) {
        Ok(f) => Ok(f.loaded.config.global.control_socket),
        Err(errors) => {
            eprintln!("{errors}");
            bail!(
                "{}: the configuration is invalid, so its control_socket is unknown (pass --socket)",
                file.display()
            );
        }
    }
}

/// Prints the daemon's state: a table, or the snapshot's JSON with `json`.
pub fn status(socket: &Path, json: bool) -> Result<()> {
    let line = control::request(socket, "status", STATUS_TIMEOUT)?;
    let snapshot: Snapshot = match serde_json::from_str(&line) {
        Ok(s) => s,
        Err(e) => match control::Reply::parse(&line) {
            Ok(control::Reply {
                error: Some(error), ..
            }) => bail!("lb-daemon: {error}"),
            _ => return Err(e).with_context(|| format!("unexpected status: {line}")),
        },
    };
    if json {
        println!("{line}");
    } else {
        print!("{}", status_view::render(&snapshot));
    }
    Ok(())
}

/// Asks the daemon to reload its configuration file; fails (non-zero exit) with the
/// daemon's reason when it keeps the running configuration.
pub fn reload(socket: &Path) -> Result<()> {
    let line = control::request(socket, "reload", RELOAD_TIMEOUT)?;
    let reply = control::Reply::parse(&line)?;
    match (reply.ok, reply.message, reply.error) {
        (true, message, _) => {
            println!("{}", message.unwrap_or_else(|| "reloaded".into()));
            Ok(())
        }
        (false, _, error) => bail!(
            "reload refused; the running configuration is unchanged: {}",
            error.unwrap_or_else(|| "no reason given".into())
        ),
    }
}

/// Asks the daemon to stop; with `keep_dataplane` it leaves the XDP program attached,
/// the maps pinned and the VIPs in place for the next daemon (upgrades). Waits until the
/// process has released the control socket.
/// With `drain` (the default) the daemon drains its BGP-announced VIPs first, which may
/// take up to its drain_timeout.
pub fn stop(socket: &Path, keep_dataplane: bool, drain: bool) -> Result<()> {
    let command = match (keep_dataplane, drain) {
        (true, _) => "stop keep-dataplane",
        (false, true) => "stop",
        (false, false) => "stop no-drain",
    };
    let line = control::request(socket, command, STATUS_TIMEOUT)?;
    let reply = control::Reply::parse(&line)?;
    if !reply.ok {
        bail!("stop refused: {}", reply.error.unwrap_or_default());
    }
    let message = reply.message.unwrap_or_else(|| "stopping".into());
    println!("{message}");
    let wait = if message.contains("draining") {
        STOP_DRAIN_WAIT
    } else {
        STOP_WAIT
    };
    let deadline = std::time::Instant::now() + wait;
    while socket.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Ok(())
}

/// `lb-daemon drain` / `undrain`: prints the daemon's answer.
pub fn drain(socket: &Path, command: &str) -> Result<()> {
    let line = control::request(socket, command, STATUS_TIMEOUT)?;
    let reply = control::Reply::parse(&line)?;
    match (reply.ok, reply.message, reply.error) {
        (true, message, _) => {
            println!("{}", message.unwrap_or_else(|| format!("{command}ed")));
            Ok(())
        }
        (false, _, error) => bail!(
            "{command} refused: {}",
            error.unwrap_or_else(|| "no reason given".into())
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_path_precedence() {
        let dir = std::env::temp_dir().join(crate::netns::unique_name("lb-ctl-cli"));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("lb.toml");
        std::fs::write(
            &file,
            "[global]\nrouter_id = \"lb1\"\ncontrol_socket = \"/run/other/ctl.sock\"\n",
        )
        .unwrap();
        assert_eq!(
            socket_path(Some("/tmp/x.sock".into()), Some(&file)).unwrap(),
            PathBuf::from("/tmp/x.sock")
        );
        assert_eq!(
            socket_path(None, Some(&file)).unwrap(),
            PathBuf::from("/run/other/ctl.sock")
        );
        assert_eq!(
            socket_path(None, None).unwrap(),
            PathBuf::from(config::DEFAULT_CONTROL_SOCKET)
        );
        assert!(socket_path(None, Some(&dir.join("missing.toml"))).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
