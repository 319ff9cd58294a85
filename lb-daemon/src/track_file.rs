//! keepalived's tracked files (`track_file.c`), shared by VRRP's `track_file` and the
//! real servers' FILE_CHECK: the integer a file holds, what it means for its tracker
//! (pure), and a watcher that re-reads the file whenever it is written, moved or
//! deleted (inotify on its directory, as keepalived; polling where inotify fails).

use std::{
    ffi::OsString,
    io::Read,
    path::{Path, PathBuf},
    time::Duration,
};

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use tokio::{io::unix::AsyncFd, sync::watch};
use tracing::{info, warn};

/// keepalived reads at most this many bytes of a tracked file.
const READ_MAX: usize = 127;
/// Re-read period when inotify cannot watch the file's directory (and as a safety net).
const POLL: Duration = Duration::from_secs(1);

/// The value of a file's `content`, as keepalived's `strtol(buf, NULL, 0)`: leading
/// white space, a sign, then decimal, `0x` hexadecimal or `0` octal digits up to the
/// first other character; no digits is 0. `None` outside keepalived's accepted range
/// (`INT32_MIN ..= INT32_MAX + 1`): keepalived logs and ignores such a value.
pub fn parse(content: &[u8]) -> Option<i64> {
    let text = &content[..content.len().min(READ_MAX)];
    let mut rest = text
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .map_or(&[][..], |i| &text[i..]);
    let negative = match rest.first() {
        Some(b'-') => {
            rest = &rest[1..];
            true
        }
        Some(b'+') => {
            rest = &rest[1..];
            false
        }
        _ => false,
    };
    let (radix, digits) = match rest {
        [b'0', b'x' | b'X', d, ..] if d.is_ascii_hexdigit() => (16, &rest[2..]),
        [b'0', ..] => (8, rest),
        _ => (10, rest),
    };
    let mut value: i64 = 0;
    for &b in digits {
        let Some(d) = (b as char).to_digit(radix) else {
            break;
        };
        value = value
            .checked_mul(i64::from(radix))?
            .checked_add(i64::from(d))?;
    }
    let value = if negative { -value } else { value };
    (i64::from(i32::MIN)..=i64::from(i32::MAX) + 1)
        .contains(&value)
        .then_some(value)
}

/// Reads `path` as keepalived does: a missing, unreadable or empty file is 0.
pub fn read(path: &Path) -> Option<i64> {
    let mut buf = [0u8; READ_MAX];
    let Ok(mut file) = std::fs::File::open(path) else {
        return Some(0);
    };
    let len = file.read(&mut buf).unwrap_or(0);
    parse(&buf[..len])
}

/// What a tracked file's value does to the thing tracking it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// FAULT (an instance) or down (a real server).
    Fault,
    /// Added to the priority (an instance) or the weight (a real server).
    Offset(i64),
}

/// keepalived's rule before the tracker's own limits: with weight 0 the value only
/// says up (0) or fault (anything else; `reverse`: the other way round); otherwise
/// value × weight (× -1 with `reverse`), clamped to 32 bits.
fn status(value: i64, weight: i32, reverse: bool) -> Option<i64> {
    if weight == 0 {
        return ((value == 0) != reverse).then_some(0);
    }
    let multiplier = if reverse { -1 } else { 1 };
    let product = i128::from(value) * i128::from(weight) * multiplier;
    let clamped = product.clamp(i128::from(i32::MIN), i128::from(i32::MAX));
    Some(clamped as i64)
}

/// For a real server's FILE_CHECK (`process_update_checker_track_file_status`): fault
/// when weight 0 says so, or when the product reaches IPVS's fault value (`INT_MIN`).
pub fn checker_effect(value: i64, weight: i32, reverse: bool) -> Effect {
    match status(value, weight, reverse) {
        Some(s) if s > i64::from(i32::MIN) => Effect::Offset(s),
        _ => Effect::Fault,
    }
}

/// For a VRRP instance (`process_update_vrrp_track_file_status`): the product is
/// clamped to -254 ..= 253, and -254 is FAULT.
pub fn vrrp_effect(value: i64, weight: i32, reverse: bool) -> Effect {
    match status(value, weight, reverse) {
        Some(s) if s > -254 => Effect::Offset(s.min(253)),
        _ => Effect::Fault,
    }
}

/// Watches `path`: the receiver holds its current value (see [`read`]), updated when
/// the file is closed after writing, moved, created or deleted. An invalid value keeps
/// the previous one (logged). The watch ends when every receiver is dropped.
pub fn watch(path: PathBuf) -> watch::Receiver<i64> {
    // Watch first, then read: a change in between is seen.
    let inotify = match watch_dir(&path) {
        Ok(i) => Some(i),
        Err(e) => {
            warn!(file = %path.display(), error = %e, "cannot watch the tracked file's directory: polling it every second");
            None
        }
    };
    let first = read(&path);
    if first.is_none() {
        warn!(file = %path.display(), "tracked file holds no valid number: taken as 0");
    }
    let (tx, rx) = watch::channel(first.unwrap_or(0));
    tokio::spawn(run(path, inotify, tx));
    rx
}

async fn run(path: PathBuf, inotify: Option<AsyncFd<Watch>>, tx: watch::Sender<i64>) {
    let name = path.file_name().map(OsString::from);
    loop {
        let changed = match &inotify {
            Some(fd) => tokio::select! {
                _ = tx.closed() => return,
                r = fd.readable() => match r {
                    Ok(mut guard) => {
                        let events = guard.get_inner().0.read_events().unwrap_or_default();
                        guard.clear_ready();
                        events.iter().any(|e| e.name == name)
                    }
                    Err(_) => { tokio::time::sleep(POLL).await; true }
                },
                // The safety net: a file replaced by a mount, or events lost.
                _ = tokio::time::sleep(POLL * 30) => true,
            },
            None => tokio::select! {
                _ = tx.closed() => return,
                _ = tokio::time::sleep(POLL) => true,
            },
        };
        if !changed {
            continue;
        }
        match read(&path) {
            Some(value) => {
                tx.send_if_modified(|v| {
                    if *v == value {
                        return false;
                    }
                    info!(file = %path.display(), from = *v, to = value, "tracked file changed");
                    *v = value;
                    true
                });
            }
            None => {
                warn!(file = %path.display(), "tracked file holds an invalid number: ignored")
            }
        }
    }
}

/// An inotify instance for tokio's `AsyncFd` (which wants `AsRawFd`).
struct Watch(Inotify);

impl std::os::fd::AsRawFd for Watch {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsFd;
        self.0.as_fd().as_raw_fd()
    }
}

/// An inotify instance watching `path`'s directory for what replaces or rewrites it.
fn watch_dir(path: &Path) -> std::io::Result<AsyncFd<Watch>> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?;
    inotify.add_watch(
        dir,
        AddWatchFlags::IN_CLOSE_WRITE
            | AddWatchFlags::IN_MOVED_TO
            | AddWatchFlags::IN_MOVED_FROM
            | AddWatchFlags::IN_DELETE
            | AddWatchFlags::IN_CREATE,
    )?;
    // SAFETY: an Inotify owns its descriptor, which stays open and the same until
    // dropped, and the AsyncFd owns it from now on.
    unsafe { AsyncFd::register(Watch(inotify)) }.map_err(std::io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_as_strtol_base_0() {
        let table: &[(&[u8], Option<i64>)] = &[
            (b"", Some(0)),
            (b"42\n", Some(42)),
            (b"  -5 trailing", Some(-5)),
            (b"+7", Some(7)),
            (b"12abc", Some(12)),
            (b"0x1f", Some(31)),
            (b"0X10", Some(16)),
            (b"010", Some(8)),
            (b"0", Some(0)),
            (b"x", Some(0)),
            (b"0x", Some(0)),
            (b"2147483648", Some(2_147_483_648)),
            (b"2147483649", None),
            (b"-2147483648", Some(-2_147_483_648)),
            (b"-2147483649", None),
            (b"99999999999999999999999", None),
        ];
        for (content, expected) in table {
            assert_eq!(
                parse(content),
                *expected,
                "{:?}",
                String::from_utf8_lossy(content)
            );
        }
    }

    #[test]
    fn effects_follow_keepalived() {
        // (value, weight, reverse, checker, vrrp)
        let table = [
            (0, 0, false, Effect::Offset(0), Effect::Offset(0)),
            (3, 0, false, Effect::Fault, Effect::Fault),
            (0, 0, true, Effect::Fault, Effect::Fault),
            (3, 0, true, Effect::Offset(0), Effect::Offset(0)),
            (5, 2, false, Effect::Offset(10), Effect::Offset(10)),
            (5, 2, true, Effect::Offset(-10), Effect::Offset(-10)),
            (-200, 2, false, Effect::Offset(-400), Effect::Fault),
            (200, 2, false, Effect::Offset(400), Effect::Offset(253)),
            (-127, 2, false, Effect::Offset(-254), Effect::Fault),
            (-126, 2, false, Effect::Offset(-252), Effect::Offset(-252)),
            (i64::from(i32::MIN), 1, false, Effect::Fault, Effect::Fault),
            (
                i64::from(i32::MAX) + 1,
                254,
                true,
                Effect::Fault,
                Effect::Fault,
            ),
        ];
        for (value, weight, reverse, checker, vrrp) in table {
            assert_eq!(
                checker_effect(value, weight, reverse),
                checker,
                "checker {value} {weight} {reverse}"
            );
            assert_eq!(
                vrrp_effect(value, weight, reverse),
                vrrp,
                "vrrp {value} {weight} {reverse}"
            );
        }
    }

    #[tokio::test]
    async fn a_watched_file_is_reread_when_written_moved_or_deleted() {
        let dir = std::env::temp_dir().join(format!("lb-track-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("weight");
        std::fs::write(&path, "1\n").unwrap();
        let mut rx = watch(path.clone());
        assert_eq!(*rx.borrow(), 1);
        let next = |rx: &mut watch::Receiver<i64>| {
            let mut rx = rx.clone();
            async move {
                tokio::time::timeout(Duration::from_secs(5), rx.changed())
                    .await
                    .expect("no change seen within 5 s")
                    .unwrap();
                let v = *rx.borrow_and_update();
                v
            }
        };
        std::fs::write(&path, "7\n").unwrap();
        assert_eq!(next(&mut rx).await, 7);
        rx.mark_unchanged();
        // Replaced by a rename (what editors and `mv` do).
        std::fs::write(dir.join("tmp"), "0x10").unwrap();
        std::fs::rename(dir.join("tmp"), &path).unwrap();
        assert_eq!(next(&mut rx).await, 16);
        rx.mark_unchanged();
        // An invalid number keeps the value; deletion is 0.
        std::fs::write(&path, "99999999999").unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(next(&mut rx).await, 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
