//! One daemon in a namespace of its own, on a veth link (`d0`, 192.0.2.1/24, its peer
//! `d1` up): enough for VRRP instances that run alone. Killed on drop; the scratch
//! directory is removed, and the daemon's log printed when the test failed.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
};

use lb_daemon::netns::{unique_name, Netns, NsChild};

use crate::vrrp_lab::daemon_bin;

pub struct SingleNode {
    pub dir: PathBuf,
    pub ns: Netns,
    daemon: Option<NsChild>,
}

impl SingleNode {
    /// The namespace and a scratch directory; no daemon yet (start what it needs first).
    pub fn new(prefix: &str) -> SingleNode {
        let dir = std::env::temp_dir().join(unique_name(prefix));
        std::fs::create_dir_all(&dir).unwrap();
        let ns = Netns::new(prefix).unwrap();
        ns.ip(&["link", "set", "lo", "up"]).unwrap();
        ns.ip(&["link", "add", "d0", "type", "veth", "peer", "name", "d1"])
            .unwrap();
        ns.ip(&["link", "set", "d1", "up"]).unwrap();
        ns.ip(&["addr", "add", "192.0.2.1/24", "dev", "d0"])
            .unwrap();
        ns.ip(&["link", "set", "d0", "up"]).unwrap();
        SingleNode {
            dir,
            ns,
            daemon: None,
        }
    }

    /// Writes `config` to `DIR/lb.toml` and runs the daemon on it (log: `DIR/daemon.log`).
    pub fn start(&mut self, config: &str) {
        let path = self.dir.join("lb.toml");
        std::fs::write(&path, config).unwrap();
        let log = std::fs::File::create(self.dir.join("daemon.log")).unwrap();
        let bin = daemon_bin();
        let argv = [
            bin.to_str().unwrap(),
            "run",
            "--config",
            path.to_str().unwrap(),
        ];
        let child = self
            .ns
            .spawn_with(&argv, Stdio::null(), Stdio::from(log))
            .expect("starting lb-daemon");
        self.daemon = Some(child);
    }

    /// The control socket every config of these tests sets (`DIR/lb.sock`).
    pub fn socket(&self) -> PathBuf {
        self.dir.join("lb.sock")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for SingleNode {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default();
            eprintln!("--- daemon.log:\n{log}");
        }
        drop(self.daemon.take());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
