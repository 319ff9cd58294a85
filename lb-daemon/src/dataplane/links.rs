//! The XDP attachments: every link is pinned under the pin directory the moment it is
//! made (`link_<interface>`), so the kernel keeps the program attached, with its pinned
//! maps, whatever happens to the process — a crash (SIGKILL, OOM kill, abort) leaves the
//! data plane forwarding like IPVS after keepalived dies. `detach` and a clean shutdown
//! remove the pin; an upgrade (`stop --keep-dataplane`) just lets go of the handles; the
//! next daemon adopts the pinned links and swaps its program in atomically.

use std::path::{Path, PathBuf};

use aya::{
    programs::{
        links::{FdLink, PinnedLink},
        xdp::XdpLink,
        XdpMode,
    },
    util::KernelVersion,
};
use lb_common::program_names;
use tracing::{info, warn};

use super::{error_chain, ifindex, program_mut, Dataplane, DataplaneError};

/// How the program runs on an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachMode {
    /// In the driver (fast path).
    Native,
    /// In the kernel's generic (SKB) path: works everywhere, slower.
    Generic,
}

/// One interface the program is attached to. The link is owned here (not by the
/// program): dropping it closes this process's handle, and the pin, when there is one,
/// keeps the attachment alive.
#[derive(Debug)]
pub(super) struct Attachment {
    ifname: String,
    mode: AttachMode,
    link: XdpLink,
    /// `link_<interface>` in the pin directory; None for a netlink attachment (kernels
    /// before 5.9 have no bpf_link for XDP), which dies with the process.
    pin: Option<PathBuf>,
}

/// Pinned XDP links are named `link_<interface>` in the pin directory.
const LINK_PIN_PREFIX: &str = "link_";

/// Where the XDP link of `ifname` is pinned.
pub fn link_pin_path(pin_dir: &Path, ifname: &str) -> PathBuf {
    pin_dir.join(format!("{LINK_PIN_PREFIX}{ifname}"))
}

/// The interface a pin in the pin directory belongs to (None: not a link pin).
pub fn link_pin_interface(file_name: &str) -> Option<&str> {
    file_name
        .strip_prefix(LINK_PIN_PREFIX)
        .filter(|s| !s.is_empty())
}

/// XDP bpf_links (the only attachments that can be pinned) exist from Linux 5.9; before
/// that aya attaches through netlink.
fn kernel_has_xdp_links() -> bool {
    KernelVersion::current()
        .map(|v| v >= KernelVersion::new(5, 9, 0))
        .unwrap_or(true)
}

/// Pins `link` at `path` and hands it back, owned.
fn pin(link: XdpLink, ifname: &str, path: &Path) -> Result<XdpLink, DataplaneError> {
    let fd_link = FdLink::try_from(link).map_err(|e| {
        DataplaneError::Bpffs(format!(
            "{ifname}: the XDP attachment is not a bpf_link and cannot be pinned ({e}); the \
             program may stay attached: `ip link set dev {ifname} xdp off`"
        ))
    })?;
    if let Err(e) = std::fs::remove_file(path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            return Err(DataplaneError::Bpffs(format!(
                "removing the stale link pin {}: {e}",
                path.display()
            )));
        }
    }
    let pinned = fd_link.pin(path).map_err(|e| {
        DataplaneError::Bpffs(format!(
            "pinning the XDP link of {ifname} at {}: {e}; the pin directory must be on a bpffs",
            path.display()
        ))
    })?;
    XdpLink::try_from(FdLink::from(pinned)).map_err(|e| {
        let _ = std::fs::remove_file(path);
        DataplaneError::Bpffs(format!(
            "{ifname}: the pinned link is not an XDP link ({e})"
        ))
    })
}

/// Removes a link pin; a pin already gone is fine.
fn remove_pin(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            warn!(pin = %path.display(), error = %e, "removing the XDP link pin failed; the program stays attached until it is removed");
        }
    }
}

impl Dataplane {
    /// Attaches the load balancer to `ifname`: native mode, or generic mode (with the
    /// reason logged) when the driver cannot run XDP. The link is pinned at once.
    pub fn attach(&mut self, ifname: &str) -> Result<AttachMode, DataplaneError> {
        self.attach_with(ifname, &[AttachMode::Native, AttachMode::Generic])
    }

    /// Attaches in exactly one mode.
    pub fn attach_mode(
        &mut self,
        ifname: &str,
        mode: AttachMode,
    ) -> Result<AttachMode, DataplaneError> {
        self.attach_with(ifname, &[mode])
    }

    fn attach_with(
        &mut self,
        ifname: &str,
        modes: &[AttachMode],
    ) -> Result<AttachMode, DataplaneError> {
        let ifindex = ifindex(ifname)?;
        if let Some(a) = self.attachments.get(&ifindex) {
            return Ok(a.mode);
        }
        // Before the program sees the interface's first frame.
        self.note_local_macs(ifindex, ifname);
        let program_err = |source| DataplaneError::Program {
            program: program_names::LB,
            source,
        };
        let prog = program_mut(&mut self.ebpf, program_names::LB)?;
        let mut errors = Vec::new();
        let mut attached = None;
        for &mode in modes {
            let xdp_mode = match mode {
                AttachMode::Native => XdpMode::Driver,
                AttachMode::Generic => XdpMode::Skb,
            };
            match prog.attach_to_if_index(ifindex, xdp_mode) {
                Ok(id) => {
                    attached = Some((mode, prog.take_link(id).map_err(program_err)?));
                    break;
                }
                Err(e) => errors.push(error_chain(&e)),
            }
        }
        let Some((mode, link)) = attached else {
            let _ = self.clear_local_macs(ifindex);
            return Err(DataplaneError::Attach {
                iface: ifname.to_string(),
                native: errors.first().cloned().unwrap_or_default(),
                generic: errors.get(1).cloned().unwrap_or_else(|| "not tried".into()),
            });
        };
        if !errors.is_empty() {
            warn!(iface = ifname, reason = %errors.join("; "), "native XDP unavailable; running in generic mode");
        }
        let (link, pin_path) = if kernel_has_xdp_links() {
            let path = link_pin_path(&self.pin_dir, ifname);
            (pin(link, ifname, &path)?, Some(path))
        } else {
            warn!(
                iface = ifname,
                "this kernel attaches XDP through netlink (no bpf_link before 5.9): the link \
                 cannot be pinned, and a crash of the daemon detaches the program"
            );
            (link, None)
        };
        info!(iface = ifname, ?mode, pin = ?pin_path, "XDP program attached");
        self.attachments.insert(
            ifindex,
            Attachment {
                ifname: ifname.to_string(),
                mode,
                link,
                pin: pin_path,
            },
        );
        Ok(mode)
    }

    /// Detaches from `ifname` (no-op when not attached): the pin goes, then the link.
    pub fn detach(&mut self, ifname: &str) -> Result<(), DataplaneError> {
        let Some((&ifindex, _)) = self.attachments.iter().find(|(_, a)| a.ifname == ifname) else {
            return Ok(());
        };
        if let Some(a) = self.attachments.remove(&ifindex) {
            if let Some(path) = &a.pin {
                remove_pin(path);
            }
            // Dropping the last handle of an unpinned link detaches the program.
            drop(a.link);
            info!(iface = ifname, "XDP program detached");
            if let Err(e) = self.clear_local_macs(ifindex) {
                warn!(iface = ifname, error = %e, "clearing lb_local_macs failed");
            }
        }
        Ok(())
    }

    /// Interfaces the program is attached to, by ifindex.
    pub(super) fn attached_indexes(&self) -> Vec<(u32, String)> {
        self.attachments
            .iter()
            .map(|(&i, a)| (i, a.ifname.clone()))
            .collect()
    }

    /// Interfaces the program is attached to, with their mode.
    pub fn attached(&self) -> Vec<(String, AttachMode)> {
        let mut v: Vec<_> = self
            .attachments
            .values()
            .map(|a| (a.ifname.clone(), a.mode))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// For an upgrade: lets go of every XDP link, leaving it pinned, so the program stays
    /// attached (with its pinned maps) after this process exits. Returns the interfaces.
    /// A link that could not be pinned (netlink attachment) is detached and reported.
    pub fn keep_attached(&mut self) -> Result<Vec<String>, DataplaneError> {
        let mut kept = Vec::new();
        let mut unpinned = Vec::new();
        for (_, a) in self.attachments.drain() {
            match a.pin {
                Some(path) => {
                    info!(iface = %a.ifname, pin = %path.display(), "XDP link pinned: the program stays attached");
                    kept.push(a.ifname);
                }
                None => unpinned.push(a.ifname),
            }
        }
        if !unpinned.is_empty() {
            return Err(DataplaneError::Bpffs(format!(
                "the XDP attachments of {} are not bpf_links (kernel before 5.9) and cannot be \
                 kept; they are detached",
                unpinned.join(", ")
            )));
        }
        Ok(kept)
    }

    /// At start: takes over the XDP links a previous daemon pinned (an upgrade, or a
    /// crash), replacing its program by this one atomically (`bpf_link_update`: no packet
    /// unhandled). The pins stay. A pin whose interface or link is gone is removed.
    /// Returns the interfaces adopted.
    pub fn adopt_links(&mut self) -> Result<Vec<String>, DataplaneError> {
        let mut adopted = Vec::new();
        let Ok(entries) = std::fs::read_dir(&self.pin_dir) else {
            return Ok(adopted);
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            let Some(ifname) = link_pin_interface(&name).map(str::to_string) else {
                continue;
            };
            let path = entry.path();
            match self.adopt_link(&ifname, &path) {
                Ok(true) => adopted.push(ifname),
                Ok(false) => {}
                Err(e) => {
                    warn!(pin = %path.display(), error = %e, "stale XDP link pin; removing it");
                    remove_pin(&path);
                }
            }
        }
        adopted.sort();
        Ok(adopted)
    }

    /// Adopts one pinned link; false when the interface is attached already.
    fn adopt_link(&mut self, ifname: &str, path: &Path) -> Result<bool, DataplaneError> {
        let ifindex = ifindex(ifname)?;
        if self.attachments.contains_key(&ifindex) {
            return Ok(false);
        }
        let pinned = PinnedLink::from_pin(path)
            .map_err(|e| DataplaneError::Bpffs(format!("opening the pin: {e}")))?;
        // Before this program replaces the previous one on the interface.
        self.note_local_macs(ifindex, ifname);
        let xdp_link = XdpLink::try_from(FdLink::from(pinned))
            .map_err(|e| DataplaneError::Bpffs(format!("not an XDP link ({e})")))?;
        let program_err = |source| DataplaneError::Program {
            program: program_names::LB,
            source,
        };
        let prog = program_mut(&mut self.ebpf, program_names::LB)?;
        let id = prog.attach_to_link(xdp_link).map_err(program_err)?;
        let link = prog.take_link(id).map_err(program_err)?;
        info!(iface = %ifname, pin = %path.display(), "adopted the pinned XDP link of the previous daemon");
        self.attachments.insert(
            ifindex,
            Attachment {
                ifname: ifname.to_string(),
                mode: AttachMode::Native,
                link,
                pin: Some(path.to_path_buf()),
            },
        );
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_pins_are_named_after_their_interface() {
        let path = link_pin_path(Path::new("/sys/fs/bpf/lb"), "eth0");
        assert_eq!(path, Path::new("/sys/fs/bpf/lb/link_eth0"));
        let name = path.file_name().unwrap().to_str().unwrap();
        assert_eq!(link_pin_interface(name), Some("eth0"));
        assert_eq!(link_pin_interface("lb_services"), None);
        assert_eq!(link_pin_interface("link_"), None);
    }
}
