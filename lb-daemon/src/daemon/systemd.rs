//! sd_notify(3) without libsystemd: one datagram to `$NOTIFY_SOCKET`, so `Type=notify`
//! units learn when the daemon is ready, reloading or stopping.
//!
//! Outside systemd (`NOTIFY_SOCKET` unset) every call does nothing; a failed send is only
//! logged, because the daemon must keep working whatever the supervisor does.

use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::Path;

use tracing::debug;

/// Sends `state` (newline-separated `KEY=VALUE` assignments) to `$NOTIFY_SOCKET`, if set.
pub fn notify(state: &str) {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Some(socket) = socket.to_str() else {
        debug!("NOTIFY_SOCKET is not UTF-8; not notifying systemd");
        return;
    };
    if let Err(e) = notify_to(socket, state) {
        debug!(socket, "notifying systemd failed: {e}");
    }
}

/// The service is up: systemd ends `systemctl start` (and `reload`, after [`reloading`]).
pub fn ready() {
    notify("READY=1");
}

/// Shutting down (before the slow part: priority-0 adverts, VIP removal).
pub fn stopping() {
    notify("STOPPING=1");
}

/// A reload has begun; send [`ready`] when it is done. systemd ≥ 253 needs the
/// timestamp to tell this reload from an older one.
pub fn reloading() {
    notify(&reloading_message(monotonic_usec()));
}

/// The main loop is alive (`WatchdogSec=`; see [`super::watchdog`]).
pub fn watchdog() {
    notify("WATCHDOG=1");
}

/// Free-form status shown by `systemctl status`.
pub fn status(msg: &str) {
    notify(&status_message(msg));
}

fn reloading_message(usec: u64) -> String {
    format!("RELOADING=1\nMONOTONIC_USEC={usec}")
}

fn status_message(msg: &str) -> String {
    // A newline would start a new assignment.
    format!("STATUS={}", msg.replace('\n', " "))
}

/// Sends one datagram to `socket`: a path, or an abstract name written `@name`.
fn notify_to(socket: &str, state: &str) -> io::Result<()> {
    let sock = UnixDatagram::unbound()?;
    if let Some(name) = socket.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
        sock.send_to_addr(state.as_bytes(), &addr)?;
    } else {
        sock.send_to(state.as_bytes(), Path::new(socket))?;
    }
    Ok(())
}

/// CLOCK_MONOTONIC in microseconds, the clock systemd compares reload stamps against.
fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    if rc != 0 {
        return 0;
    }
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1_000_000).saturating_add(nanos / 1_000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn recv(sock: &UnixDatagram) -> String {
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 512];
        let n = sock.recv(&mut buf).unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn sends_to_a_path_socket() {
        let dir = std::env::temp_dir().join(crate::netns::unique_name("lb-sdnotify"));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify");
        let receiver = UnixDatagram::bind(&path).unwrap();
        notify_to(path.to_str().unwrap(), "READY=1").unwrap();
        assert_eq!(recv(&receiver), "READY=1");
        notify_to(
            path.to_str().unwrap(),
            &status_message("2 instances\nMASTER"),
        )
        .unwrap();
        assert_eq!(recv(&receiver), "STATUS=2 instances MASTER");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn sends_to_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = crate::netns::unique_name("lb-sdnotify");
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let receiver = UnixDatagram::bind_addr(&addr).unwrap();
        notify_to(&format!("@{name}"), "STOPPING=1").unwrap();
        assert_eq!(recv(&receiver), "STOPPING=1");
    }

    #[test]
    fn reloading_carries_the_monotonic_clock() {
        let before = monotonic_usec();
        assert!(before > 0);
        assert!(monotonic_usec() >= before);
        assert_eq!(
            reloading_message(1_234_567),
            "RELOADING=1\nMONOTONIC_USEC=1234567"
        );
    }

    #[test]
    fn a_missing_socket_is_an_error_not_a_panic() {
        let path = std::env::temp_dir().join(crate::netns::unique_name("lb-sdnotify-none"));
        assert!(notify_to(path.to_str().unwrap(), "READY=1").is_err());
    }
}
