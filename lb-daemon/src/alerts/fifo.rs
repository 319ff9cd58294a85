//! keepalived's notify FIFOs (`notify_fifo`, `vrrp_notify_fifo`, `lvs_notify_fifo`, each
//! with an optional `*_script` reading it): one line per event, in keepalived's format
//! (`INSTANCE "VI_1" MASTER 100`, `GROUP "G1" BACKUP 0`, `VS [192.0.2.10]:tcp:80 UP`,
//! `RS [10.0.0.2]:tcp:80 [192.0.2.10]:tcp:80 DOWN`).
//!
//! As keepalived: the FIFO is created (mode 0644) unless it exists, its script is started
//! with the FIFO's path as last argument and left running, and the FIFO is opened
//! read-write and non-blocking, so a missing or slow reader never blocks the daemon: a
//! line that does not fit is dropped and counted. At stop the FIFO we created is removed
//! first (a reader that reopens it in a loop cannot find it again), then closed, and the
//! script is stopped.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use thiserror::Error;
use tracing::{info, warn};

use super::email::{Endpoint, VrrpState};

#[derive(Debug, Error)]
pub enum FifoError {
    #[error("creating the FIFO {0}: {1}")]
    Create(PathBuf, std::io::Error),
    #[error("{0} exists and is not a FIFO: remove it or choose another path")]
    NotFifo(PathBuf),
    #[error("opening the FIFO {0}: {1}")]
    Open(PathBuf, std::io::Error),
    #[error("starting {0}: {1}")]
    Script(String, std::io::Error),
}

/// Which events a FIFO carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carries {
    /// `notify_fifo`: VRRP and LVS lines.
    All,
    /// `vrrp_notify_fifo`.
    Vrrp,
    /// `lvs_notify_fifo`.
    Lvs,
}

/// One configured FIFO.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FifoSpec {
    pub path: PathBuf,
    /// Run as `SCRIPT... PATH`, as the script user, for the daemon's life.
    pub script: Option<String>,
    pub carries: Carries,
}

/// The FIFOs `[global]` configures.
pub fn specs(global: &crate::config::Global) -> Vec<FifoSpec> {
    [
        (&global.notify_fifo, Carries::All),
        (&global.vrrp_notify_fifo, Carries::Vrrp),
        (&global.lvs_notify_fifo, Carries::Lvs),
    ]
    .into_iter()
    .filter_map(|(fifo, carries)| {
        fifo.as_ref().map(|f| FifoSpec {
            path: f.path.clone(),
            script: f.script.clone(),
            carries,
        })
    })
    .collect()
}

/// keepalived's VRRP line.
pub fn vrrp_line(group: bool, name: &str, state: VrrpState, priority: u8) -> String {
    let kind = if group { "GROUP" } else { "INSTANCE" };
    let state = match state {
        VrrpState::Master => "MASTER",
        VrrpState::Backup => "BACKUP",
        VrrpState::Fault => "FAULT",
        VrrpState::Stop => "STOP",
    };
    format!("{kind} \"{name}\" {state} {priority}\n")
}

/// keepalived's line for an instance event (`INSTANCE "VI_1" MASTER_RX_LOWER_PRI 150`).
pub fn event_line(name: &str, event: &str, priority: u8) -> String {
    format!("INSTANCE \"{name}\" {event} {priority}\n")
}

/// keepalived's virtual-server line.
pub fn vs_line(service: Endpoint, up: bool) -> String {
    format!("VS {service} {}\n", if up { "UP" } else { "DOWN" })
}

/// keepalived's real-server line.
pub fn rs_line(real: Endpoint, service: Endpoint, up: bool) -> String {
    format!("RS {real} {service} {}\n", if up { "UP" } else { "DOWN" })
}

struct Open {
    spec: FifoSpec,
    file: File,
    created: bool,
    script: Option<tokio::process::Child>,
}

struct Inner {
    fifos: Mutex<Vec<Open>>,
    written: AtomicU64,
    /// The FIFO was full (no reader, or a slow one).
    dropped: AtomicU64,
}

/// The open FIFOs; cheap to clone.
#[derive(Clone)]
pub struct NotifyFifos {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for NotifyFifos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotifyFifos").finish_non_exhaustive()
    }
}

impl NotifyFifos {
    /// Creates and opens every FIFO and starts its script (inside a tokio runtime).
    pub fn open(specs: &[FifoSpec], script_user: Option<&str>) -> Result<NotifyFifos, FifoError> {
        let mut fifos = Vec::new();
        for spec in specs {
            let created = create(&spec.path)?;
            // Read-write: opening never waits for a reader, and writes never block.
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&spec.path)
                .map_err(|e| FifoError::Open(spec.path.clone(), e))?;
            let script = match &spec.script {
                Some(cmd) => Some(start_script(cmd, &spec.path, script_user)?),
                None => None,
            };
            info!(fifo = %spec.path.display(), script = ?spec.script, "notify FIFO open");
            fifos.push(Open {
                spec: spec.clone(),
                file,
                created,
                script,
            });
        }
        Ok(NotifyFifos {
            inner: Arc::new(Inner {
                fifos: Mutex::new(fifos),
                written: AtomicU64::new(0),
                dropped: AtomicU64::new(0),
            }),
        })
    }

    /// Writes a VRRP line to the FIFOs that carry it.
    pub fn vrrp(&self, line: &str) {
        self.write(line, Carries::Vrrp);
    }

    /// Writes a VS or RS line to the FIFOs that carry it.
    pub fn lvs(&self, line: &str) {
        self.write(line, Carries::Lvs);
    }

    fn write(&self, line: &str, kind: Carries) {
        let mut fifos = self.inner.fifos.lock().unwrap_or_else(|e| e.into_inner());
        for f in fifos
            .iter_mut()
            .filter(|f| f.spec.carries == Carries::All || f.spec.carries == kind)
        {
            // A line up to PIPE_BUF bytes is written whole or not at all.
            match f.file.write(line.as_bytes()) {
                Ok(n) if n == line.len() => {
                    self.inner.written.fetch_add(1, Ordering::Relaxed);
                }
                _ => {
                    self.inner.dropped.fetch_add(1, Ordering::Relaxed);
                    warn!(fifo = %f.spec.path.display(), line = line.trim_end(), "notify FIFO full: line dropped (is its reader running?)");
                }
            }
        }
    }

    /// (lines written, lines dropped)
    pub fn counts(&self) -> (u64, u64) {
        (
            self.inner.written.load(Ordering::Relaxed),
            self.inner.dropped.load(Ordering::Relaxed),
        )
    }

    /// Removes the FIFOs we created, closes them and stops their scripts.
    pub async fn close(&self) {
        let fifos =
            std::mem::take(&mut *self.inner.fifos.lock().unwrap_or_else(|e| e.into_inner()));
        for mut f in fifos {
            if f.created {
                let _ = std::fs::remove_file(&f.spec.path);
            }
            drop(f.file);
            if let Some(child) = f.script.as_mut() {
                // EOF first: a reader loop ends on its own; then make sure.
                let ended =
                    tokio::time::timeout(std::time::Duration::from_millis(500), child.wait()).await;
                if ended.is_err() {
                    // The whole group: the script's own children too.
                    if let Some(pid) = child.id() {
                        let _ = nix::sys::signal::killpg(
                            nix::unistd::Pid::from_raw(pid as i32),
                            nix::sys::signal::Signal::SIGKILL,
                        );
                    }
                    let _ = child.wait().await;
                }
            }
        }
    }
}

/// mkfifo unless a FIFO is already there; true when we created it.
fn create(path: &Path) -> Result<bool, FifoError> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_fifo() => return Ok(false),
        Ok(_) => return Err(FifoError::NotFifo(path.to_path_buf())),
        Err(_) => {}
    }
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o644))
        .map_err(|e| FifoError::Create(path.to_path_buf(), std::io::Error::from(e)))?;
    Ok(true)
}

/// Starts `cmd FIFO` (keepalived appends the FIFO's name), in its own process group, as
/// `user`; refused as root when a non-root user could modify it (script security).
fn start_script(
    cmd: &str,
    fifo: &Path,
    user: Option<&str>,
) -> Result<tokio::process::Child, FifoError> {
    let failed = |why: String| FifoError::Script(cmd.to_string(), std::io::Error::other(why));
    let mut command = tokio::process::Command::new("/bin/sh");
    command
        .arg("-c")
        .arg(format!("{cmd} \"$@\""))
        .arg("sh")
        .arg(fifo)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .process_group(0)
        .kill_on_drop(true);
    let mut uid = nix::unistd::geteuid().as_raw();
    if let Some(name) = user {
        match nix::unistd::User::from_name(name) {
            Ok(Some(u)) => {
                command.uid(u.uid.as_raw()).gid(u.gid.as_raw());
                uid = u.uid.as_raw();
            }
            _ => return Err(failed(format!("no user {name:?}"))),
        }
    }
    if uid == 0 {
        crate::script::check_secure(cmd).map_err(failed)?;
    }
    command
        .spawn()
        .map_err(|e| FifoError::Script(cmd.to_string(), e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::email::message::ep;

    #[test]
    fn lines_are_keepalived_s() {
        assert_eq!(
            vrrp_line(false, "VI_1", VrrpState::Master, 100),
            "INSTANCE \"VI_1\" MASTER 100\n"
        );
        assert_eq!(
            vrrp_line(true, "G1", VrrpState::Fault, 0),
            "GROUP \"G1\" FAULT 0\n"
        );
        assert_eq!(
            event_line("VI_1", "MASTER_RX_LOWER_PRI", 150),
            "INSTANCE \"VI_1\" MASTER_RX_LOWER_PRI 150\n"
        );
        assert_eq!(
            vs_line(ep("192.0.2.10", 80), false),
            "VS [192.0.2.10]:tcp:80 DOWN\n"
        );
        assert_eq!(
            rs_line(ep("2001:db8::2", 443), ep("2001:db8::1", 443), true),
            "RS [2001:db8::2]:tcp:443 [2001:db8::1]:tcp:443 UP\n"
        );
    }

    #[tokio::test]
    async fn lines_reach_the_reader_and_a_full_fifo_drops_without_blocking() {
        let dir = std::env::temp_dir().join(format!("lb-fifo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let all = dir.join("all.fifo");
        let lvs = dir.join("lvs.fifo");
        let fifos = NotifyFifos::open(
            &[
                FifoSpec {
                    path: all.clone(),
                    script: None,
                    carries: Carries::All,
                },
                FifoSpec {
                    path: lvs.clone(),
                    script: None,
                    carries: Carries::Lvs,
                },
            ],
            None,
        )
        .unwrap();
        let mut reader = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&lvs)
            .unwrap();
        fifos.vrrp(&vrrp_line(false, "VI_1", VrrpState::Backup, 90));
        fifos.lvs(&vs_line(ep("192.0.2.10", 80), true));
        let mut got = String::new();
        std::io::Read::read_to_string(&mut reader, &mut got).ok();
        assert_eq!(
            got, "VS [192.0.2.10]:tcp:80 UP\n",
            "the LVS FIFO carries no VRRP line"
        );
        // Nobody reads the global one: it fills up (64 KiB) and lines are dropped.
        for _ in 0..4000 {
            fifos.vrrp(&vrrp_line(false, "VI_1", VrrpState::Backup, 90));
        }
        let (written, dropped) = fifos.counts();
        assert!(dropped > 0 && written > 2, "{written} {dropped}");
        fifos.close().await;
        assert!(
            !all.exists() && !lvs.exists(),
            "the FIFOs we created are removed"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
