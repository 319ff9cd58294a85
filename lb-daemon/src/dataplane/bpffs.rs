//! The bpffs directory the maps are pinned in: mounted when missing, and cleared of pins
//! that no longer fit this build (so an upgrade never runs on a map of the wrong layout).

use std::path::{Path, PathBuf};

use aya::maps::MapInfo;
use tracing::{info, warn};

use super::DataplaneError;

const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

fn is_bpffs(path: &Path) -> bool {
    nix::sys::statfs::statfs(path)
        .map(|s| s.filesystem_type().0 == BPF_FS_MAGIC)
        .unwrap_or(false)
}

/// Makes `pin_dir` exist on a bpffs. If its parent is not on one, a bpffs is mounted on
/// the parent (`/sys/fs/bpf` for the default `/sys/fs/bpf/lb`).
pub fn ensure_pin_dir(pin_dir: &Path) -> Result<(), DataplaneError> {
    let parent = pin_dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .ok_or_else(|| {
            DataplaneError::Bpffs(format!(
                "bpf_pin_path {} must be a directory below a bpffs mount, e.g. /sys/fs/bpf/lb",
                pin_dir.display()
            ))
        })?;
    std::fs::create_dir_all(parent)
        .map_err(|e| DataplaneError::Bpffs(format!("cannot create {}: {e}", parent.display())))?;
    if !is_bpffs(parent) {
        info!(path = %parent.display(), "mounting bpffs");
        nix::mount::mount(
            Some("bpf"),
            parent,
            Some("bpf"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )
        .map_err(|e| {
            DataplaneError::Bpffs(format!(
                "{} is not on a bpffs and mounting one there failed ({e}); run as root, or \
                 `mount -t bpf bpf {}`",
                parent.display(),
                parent.display()
            ))
        })?;
    }
    std::fs::create_dir_all(pin_dir)
        .map_err(|e| DataplaneError::Bpffs(format!("cannot create {}: {e}", pin_dir.display())))?;
    Ok(())
}

/// The shape a pinned map must have to be re-used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapShape {
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
}

/// Removes the pin of `name` if it exists with another shape; returns whether a pin that
/// fits remains (and will be re-used).
pub fn keep_pin_if_compatible(
    pin_dir: &Path,
    name: &str,
    want: MapShape,
) -> Result<bool, DataplaneError> {
    let path = pin_path(pin_dir, name);
    if !path.exists() {
        return Ok(false);
    }
    let fits = MapInfo::from_pin(&path)
        .map(|info| MapShape {
            key_size: info.key_size(),
            value_size: info.value_size(),
            max_entries: info.max_entries(),
        })
        .map(|got| {
            if got != want {
                warn!(
                    map = name,
                    ?got,
                    ?want,
                    "pinned map has another layout; replacing it"
                );
            }
            got == want
        })
        .unwrap_or(false);
    if !fits {
        std::fs::remove_file(&path).map_err(|e| {
            DataplaneError::Bpffs(format!("cannot remove stale pin {}: {e}", path.display()))
        })?;
    }
    Ok(fits)
}

pub fn pin_path(pin_dir: &Path, name: &str) -> PathBuf {
    pin_dir.join(name)
}

/// Removes the pinned maps only (link pins stay for the next daemon to adopt).
pub fn remove_map_pins(pin_dir: &Path) {
    for name in lb_common::map_names::ALL {
        let _ = std::fs::remove_file(pin_path(pin_dir, name));
    }
}

/// Removes every pin this program owns — the maps and the XDP links (`link_<interface>`):
/// a link whose pin goes and that no process holds is detached — then the directory if
/// empty.
pub fn remove_pins(pin_dir: &Path) {
    remove_map_pins(pin_dir);
    if let Ok(entries) = std::fs::read_dir(pin_dir) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            if name.to_str().and_then(super::link_pin_interface).is_some() {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    let _ = std::fs::remove_dir(pin_dir);
}
