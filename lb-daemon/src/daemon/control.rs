//! The control socket: a Unix stream socket (root only) through which `lb-daemon status`
//! and `lb-daemon reload` talk to the running daemon.
//!
//! Protocol: one request line per connection, one JSON line back, then the daemon closes.
//!
//! - `status`: the [`Snapshot`].
//! - `reload`: `{"ok":true,"message":...}` or `{"ok":false,"error":...}`, once the daemon
//!   has applied (or refused) the configuration file; a refused file's error is its
//!   diagnostics, one per line, then the summary line.
//! - `drain` / `undrain`: withdraw every VIP announced by BGP (forwarding goes on) / announce
//!   them again; `{"ok":true,"message":...}` at once (`status` shows the drain's progress).
//! - `stop`, `stop no-drain`, `stop keep-dataplane`: see [`Action::Stop`].
//! - anything else: `{"ok":false,"error":"unknown command ..."}`.
//!
//! At most `MAX_CONNECTIONS` connections are served at once (see `daemon::admission`).

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader as AsyncBufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use super::admission::{Admission, Admitted};
use super::snapshot::Snapshot;

/// A request line longer than this is not one of ours.
pub(crate) const MAX_REQUEST: u64 = 1024;
/// A client that has not sent its request by then is dropped.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once (file descriptors held); see [`Admission`].
const MAX_CONNECTIONS: usize = 64;

/// A `reload` asked for on the socket; the daemon answers on `reply` when done: Ok with
/// a summary, or Err with why the running configuration was kept.
#[derive(Debug)]
pub struct ReloadRequest {
    pub action: Action,
    pub reply: oneshot::Sender<Result<String, String>>,
}

/// What a control request asks the daemon to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Reload,
    /// Stop; with `keep_dataplane` the XDP program stays attached (pinned link) and the
    /// maps pinned, and the VIPs stay, for a new daemon to adopt (upgrades).
    Stop {
        keep_dataplane: bool,
        /// Drain the VIPs announced by BGP first (the default; `stop --no-drain` skips it).
        drain: bool,
    },
    Drain,
    Undrain,
    /// Debug builds only: block the main loop this long (the watchdog test's wedge).
    #[cfg(debug_assertions)]
    DebugBlockLoop(Duration),
}

/// The answer to `reload` (and to a request the daemon could not serve).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Reply {
    pub fn ok(message: impl Into<String>) -> Self {
        Self {
            ok: true,
            message: Some(message.into()),
            error: None,
        }
    }

    pub fn error(error: impl Into<String>) -> Self {
        Self {
            ok: false,
            message: None,
            error: Some(error.into()),
        }
    }

    /// Parses a reply line.
    pub fn parse(line: &str) -> Result<Self> {
        serde_json::from_str(line).with_context(|| format!("unexpected answer: {line}"))
    }

    fn to_line(&self) -> String {
        // A struct of strings and a bool always serializes.
        let mut s = serde_json::to_string(self).unwrap_or_else(|_| r#"{"ok":false}"#.into());
        s.push('\n');
        s
    }
}

/// The listening socket; dropping it stops accepting and removes the socket file.
#[derive(Debug)]
pub struct ControlHandle {
    path: PathBuf,
    /// Identity of the file we bound, so a newer daemon's socket is never removed.
    inode: (u64, u64),
    task: JoinHandle<()>,
}

impl ControlHandle {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ControlHandle {
    fn drop(&mut self) {
        self.task.abort();
        let ours = std::fs::symlink_metadata(&self.path)
            .map(|m| (m.dev(), m.ino()) == self.inode)
            .unwrap_or(false);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

pub(crate) type Source = Arc<dyn Fn() -> Snapshot + Send + Sync>;

/// Binds the control socket at `path` (mode 0600) and serves it on a task.
///
/// A socket file left by a daemon that died is replaced; a socket some process still
/// listens on, or a file that is not a socket, is an error rather than clobbered.
pub async fn serve_control(
    path: &Path,
    source: Source,
    reload: mpsc::UnboundedSender<ReloadRequest>,
) -> Result<ControlHandle> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
    }
    remove_stale(path)?;
    let listener = bind_private(path)?;
    let meta = std::fs::symlink_metadata(path)
        .with_context(|| format!("reading back {}", path.display()))?;
    let task = tokio::spawn(accept_loop(listener, source, reload));
    Ok(ControlHandle {
        path: path.to_owned(),
        inode: (meta.dev(), meta.ino()),
        task,
    })
}

fn remove_stale(path: &Path) -> Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("checking {}", path.display())),
    };
    if !meta.file_type().is_socket() {
        bail!(
            "{} exists and is not a socket; remove it or set global.control_socket elsewhere",
            path.display()
        );
    }
    if StdUnixStream::connect(path).is_ok() {
        bail!(
            "another process (lb-daemon already running?) listens on the control socket {}",
            path.display()
        );
    }
    std::fs::remove_file(path).with_context(|| format!("removing the stale {}", path.display()))
}

/// Binds under a temporary name, restricts it to root, then renames it into place: a
/// socket bound at `path` directly would be reachable with the umask's mode until chmod.
fn bind_private(path: &Path) -> Result<UnixListener> {
    let name = path
        .file_name()
        .ok_or_else(|| anyhow!("{}: the control socket needs a file name", path.display()))?;
    let mut tmp_name = name.to_owned();
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let _ = std::fs::remove_file(&tmp);
    let listener = UnixListener::bind(&tmp)
        .with_context(|| format!("binding the control socket {}", tmp.display()))?;
    let placed = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("restricting {} to root", tmp.display()))
        .and_then(|()| {
            std::fs::rename(&tmp, path)
                .with_context(|| format!("moving the control socket to {}", path.display()))
        });
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(listener)
}

async fn accept_loop(
    listener: UnixListener,
    source: Source,
    reload: mpsc::UnboundedSender<ReloadRequest>,
) {
    let admission = Admission::new(MAX_CONNECTIONS);
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let Some(admitted) = admission.admit().await else {
                    debug!("control connection refused: every slot serves a request");
                    continue;
                };
                let (source, reload) = (source.clone(), reload.clone());
                tokio::spawn(async move {
                    if let Err(e) = handle(stream, admitted, source, reload).await {
                        debug!("control connection: {e}");
                    }
                });
            }
            Err(e) => {
                // Out of descriptors, usually: back off instead of spinning.
                warn!("accepting a control connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn handle(
    stream: UnixStream,
    mut admitted: Admitted,
    source: Source,
    reload: mpsc::UnboundedSender<ReloadRequest>,
) -> io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = AsyncBufReader::new(tokio::io::AsyncReadExt::take(read, MAX_REQUEST));
    let Some(read) = admitted
        .request(REQUEST_TIMEOUT, reader.read_line(&mut line))
        .await
    else {
        return Ok(());
    };
    read?;
    let answer = answer(line.trim(), &source, &reload).await;
    // A client that never reads its answer does not keep the slot either.
    match tokio::time::timeout(REQUEST_TIMEOUT, write.write_all(answer.as_bytes())).await {
        Ok(written) => written?,
        Err(_) => return Ok(()),
    }
    write.shutdown().await
}

/// The response line (newline included) to one request.
pub(crate) async fn answer(
    command: &str,
    source: &Source,
    reload: &mpsc::UnboundedSender<ReloadRequest>,
) -> String {
    match command {
        "status" => match serde_json::to_string(&source()) {
            Ok(mut json) => {
                json.push('\n');
                json
            }
            Err(e) => Reply::error(format!("serializing the status: {e}")).to_line(),
        },
        "reload" => ask_daemon(reload, Action::Reload).await,
        "stop" | "stop no-drain" | "stop keep-dataplane" => {
            let action = Action::Stop {
                keep_dataplane: command == "stop keep-dataplane",
                drain: command == "stop",
            };
            ask_daemon(reload, action).await
        }
        "drain" => ask_daemon(reload, Action::Drain).await,
        "undrain" => ask_daemon(reload, Action::Undrain).await,
        #[cfg(debug_assertions)]
        other if other.starts_with("debug-block-loop ") => match debug_block_secs(other) {
            Ok(secs) => ask_daemon(reload, Action::DebugBlockLoop(secs)).await,
            Err(e) => Reply::error(e).to_line(),
        },
        other => Reply::error(format!(
            "unknown command {other:?} (expected status, reload, drain, undrain, stop, stop no-drain or stop keep-dataplane)"
        ))
        .to_line(),
    }
}

/// `debug-block-loop SECS` (debug builds only).
#[cfg(debug_assertions)]
fn debug_block_secs(command: &str) -> std::result::Result<Duration, String> {
    let secs = command.trim_start_matches("debug-block-loop").trim();
    secs.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && (0.0..=300.0).contains(s))
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("debug-block-loop: {secs:?} is not a number of seconds (0 to 300)"))
}

/// Hands a request to the daemon and turns its answer into a reply line.
async fn ask_daemon(tx: &mpsc::UnboundedSender<ReloadRequest>, action: Action) -> String {
    let (reply, answer) = oneshot::channel();
    if tx.send(ReloadRequest { action, reply }).is_err() {
        return Reply::error("the daemon is not accepting requests (shutting down?)").to_line();
    }
    match answer.await {
        Ok(Ok(message)) => Reply::ok(message),
        Ok(Err(error)) => Reply::error(error),
        Err(_) => Reply::error("the daemon dropped the request"),
    }
    .to_line()
}

/// Sends `command` to the daemon at `path` and returns its answer line (without the
/// newline). Blocking: for the CLI.
pub fn request(path: &Path, command: &str, timeout: Duration) -> Result<String> {
    let mut stream = StdUnixStream::connect(path).map_err(|e| connect_error(path, &e))?;
    let timeout = timeout.max(Duration::from_millis(1));
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream
        .write_all(format!("{command}\n").as_bytes())
        .with_context(|| format!("sending {command:?} to {}", path.display()))?;
    let mut line = String::new();
    match BufReader::new(stream).read_line(&mut line) {
        Ok(0) => bail!(
            "lb-daemon closed the control connection {} without answering",
            path.display()
        ),
        Ok(_) => Ok(line.trim_end_matches(['\r', '\n']).to_owned()),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            bail!(
                "lb-daemon did not answer {command:?} on {} within {timeout:?}",
                path.display()
            )
        }
        Err(e) => Err(e).with_context(|| format!("reading the answer from {}", path.display())),
    }
}

/// "cannot connect to the control socket PATH: is lb-daemon running? (REASON)".
fn connect_error(path: &Path, e: &io::Error) -> anyhow::Error {
    // The errno's text alone: "(os error 2)" means nothing to an operator.
    let reason = e.raw_os_error().map_or_else(
        || e.to_string(),
        |code| nix::errno::Errno::from_raw(code).desc().to_owned(),
    );
    let hint = match e.kind() {
        io::ErrorKind::PermissionDenied => "it is root's only: run as root",
        _ => "is lb-daemon running?",
    };
    anyhow!(
        "cannot connect to the control socket {}: {hint} ({reason})",
        path.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::snapshot::InstanceSnapshot;

    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            let dir = std::env::temp_dir().join(crate::netns::unique_name("lb-ctl"));
            Self(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn snapshot() -> Snapshot {
        Snapshot {
            router_id: "lb1".into(),
            dataplane: "none".into(),
            instances: vec![InstanceSnapshot {
                name: "VI_1".into(),
                state: "MASTER".into(),
                state_code: 2,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    /// The client is blocking: run it off the runtime's thread.
    async fn ask(path: &Path, command: &str) -> Result<String> {
        let (path, command) = (path.to_owned(), command.to_owned());
        tokio::task::spawn_blocking(move || request(&path, &command, Duration::from_secs(10)))
            .await
            .unwrap()
    }

    /// Connected sockets named in `path`'s directory: the listener's accepted ones
    /// (bound under a temporary name there; client ends have no name), so other tests'
    /// descriptors do not count.
    fn accepted(path: &Path) -> usize {
        let dir = format!(" {}/", path.parent().unwrap().display());
        std::fs::read_to_string("/proc/net/unix")
            .unwrap()
            .lines()
            .filter(|l| l.contains(&dir) && l.split_whitespace().nth(5) == Some("03"))
            .count()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_connection_flood_neither_exhausts_descriptors_nor_silences_status() {
        let dir = TempDir::new();
        let path = dir.0.join("lb.sock");
        let (reload_tx, _reload_rx) = mpsc::unbounded_channel();
        let _handle = serve_control(&path, Arc::new(snapshot), reload_tx)
            .await
            .unwrap();
        let flood_path = path.clone();
        // 2,000 clients that connect and never speak, held open.
        let flood = tokio::task::spawn_blocking(move || {
            (0..2000)
                .map(|_| StdUnixStream::connect(&flood_path).unwrap())
                .collect::<Vec<_>>()
        })
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let held = accepted(&path);
        assert!(
            held <= MAX_CONNECTIONS,
            "the daemon holds {held} connections ({} opened)",
            flood.len()
        );
        assert!(held > 0, "the count sees the daemon's connections");
        let status = ask(&path, "status").await.unwrap();
        assert_eq!(
            serde_json::from_str::<Snapshot>(&status).unwrap(),
            snapshot()
        );
    }

    #[tokio::test]
    async fn status_reload_and_unknown_commands() {
        let dir = TempDir::new();
        // A parent that does not exist yet is created.
        let path = dir.0.join("run").join("lb.sock");
        let (reload_tx, mut reload_rx) = mpsc::unbounded_channel();
        let handle = serve_control(&path, Arc::new(snapshot), reload_tx)
            .await
            .unwrap();
        assert_eq!(handle.path(), path);

        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        let status = ask(&path, "status").await.unwrap();
        let parsed: Snapshot = serde_json::from_str(&status).unwrap();
        assert_eq!(parsed, snapshot());

        // The daemon's side of a reload: refuse the first, accept the second.
        let daemon = tokio::spawn(async move {
            let first: ReloadRequest = reload_rx.recv().await.unwrap();
            first
                .reply
                .send(Err("lb.toml:3:1: error: unknown key".into()))
                .unwrap();
            let second = reload_rx.recv().await.unwrap();
            second
                .reply
                .send(Ok("2 instances reloaded".into()))
                .unwrap();
            reload_rx
        });
        let refused = Reply::parse(&ask(&path, "reload").await.unwrap()).unwrap();
        assert_eq!(refused, Reply::error("lb.toml:3:1: error: unknown key"));
        let line = ask(&path, "reload").await.unwrap();
        assert_eq!(line, r#"{"ok":true,"message":"2 instances reloaded"}"#);

        // With no one left to apply reloads, the client hears so instead of hanging.
        drop(daemon.await.unwrap());
        let gone = Reply::parse(&ask(&path, "reload").await.unwrap()).unwrap();
        assert!(!gone.ok);

        let unknown = ask(&path, "restart").await.unwrap();
        assert_eq!(
            unknown,
            r#"{"ok":false,"error":"unknown command \"restart\" (expected status, reload, drain, undrain, stop, stop no-drain or stop keep-dataplane)"}"#
        );

        drop(handle);
        assert!(!path.exists(), "the socket file goes with the handle");
    }

    #[tokio::test]
    async fn drain_undrain_and_the_stops_reach_the_daemon() {
        let dir = TempDir::new();
        let path = dir.0.join("lb.sock");
        let (tx, mut rx) = mpsc::unbounded_channel::<ReloadRequest>();
        let _handle = serve_control(&path, Arc::new(snapshot), tx).await.unwrap();
        let daemon = tokio::spawn(async move {
            let mut seen = Vec::new();
            while let Some(req) = rx.recv().await {
                seen.push(req.action);
                let _ = req.reply.send(Ok(format!("{:?}", req.action)));
                if seen.len() == 5 {
                    break;
                }
            }
            seen
        });
        for command in [
            "drain",
            "undrain",
            "stop",
            "stop no-drain",
            "stop keep-dataplane",
        ] {
            let reply = Reply::parse(&ask(&path, command).await.unwrap()).unwrap();
            assert!(reply.ok, "{command}: {reply:?}");
        }
        let stop = |keep_dataplane, drain| Action::Stop {
            keep_dataplane,
            drain,
        };
        assert_eq!(
            daemon.await.unwrap(),
            vec![
                Action::Drain,
                Action::Undrain,
                stop(false, true),
                stop(false, false),
                stop(true, false),
            ]
        );
    }

    #[tokio::test]
    async fn a_stale_socket_file_is_replaced() {
        let dir = TempDir::new();
        std::fs::create_dir_all(&dir.0).unwrap();
        let path = dir.0.join("lb.sock");
        // What a killed daemon leaves: the file, no listener.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists());

        let (reload_tx, _reload_rx) = mpsc::unbounded_channel();
        let _handle = serve_control(&path, Arc::new(snapshot), reload_tx.clone())
            .await
            .unwrap();
        let status = ask(&path, "status").await.unwrap();
        assert!(status.contains(r#""router_id":"lb1""#), "{status}");

        // A live socket is not taken over.
        let err = serve_control(&path, Arc::new(snapshot), reload_tx)
            .await
            .unwrap_err();
        assert!(format!("{err:#}").contains("already running"), "{err:#}");
        assert!(ask(&path, "status").await.is_ok());
    }

    #[tokio::test]
    async fn a_regular_file_is_not_clobbered() {
        let dir = TempDir::new();
        std::fs::create_dir_all(&dir.0).unwrap();
        let path = dir.0.join("lb.sock");
        std::fs::write(&path, "precious").unwrap();
        let (reload_tx, _reload_rx) = mpsc::unbounded_channel();
        let err = serve_control(&path, Arc::new(snapshot), reload_tx)
            .await
            .unwrap_err();
        assert!(format!("{err:#}").contains("is not a socket"), "{err:#}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious");
    }

    #[test]
    fn no_daemon_is_a_clear_error() {
        let path = std::env::temp_dir().join(crate::netns::unique_name("lb-ctl-none"));
        let err = request(&path, "status", Duration::from_secs(1)).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "cannot connect to the control socket {}: is lb-daemon running? (No such file or directory)",
                path.display()
            )
        );
    }

    #[test]
    fn a_silent_daemon_times_out() {
        let dir = TempDir::new();
        std::fs::create_dir_all(&dir.0).unwrap();
        let path = dir.0.join("lb.sock");
        // Accepts (the kernel does, from the backlog) but never answers.
        let _listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let err = request(&path, "status", Duration::from_millis(100)).unwrap_err();
        assert!(err.to_string().contains("did not answer"), "{err}");
    }
}
