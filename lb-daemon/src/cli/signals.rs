//! Ctrl-C / SIGTERM as a flag, so commands stop between steps and clean up (namespaces,
//! pins) instead of dying mid-way.

use std::sync::atomic::{AtomicBool, Ordering};

use nix::sys::signal::{SigSet, Signal};

static STOP: AtomicBool = AtomicBool::new(false);

/// Blocks SIGINT and SIGTERM in this thread (and the threads it spawns later) and waits
/// for them on a dedicated thread. Call before spawning other threads.
pub fn install() -> nix::Result<()> {
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    set.thread_block()?;
    std::thread::spawn(move || {
        if set.wait().is_ok() {
            STOP.store(true, Ordering::Relaxed);
        }
    });
    Ok(())
}

pub fn stop_requested() -> bool {
    STOP.load(Ordering::Relaxed)
}

/// Sleeps in short steps; false if a stop was requested meanwhile.
pub fn sleep(d: std::time::Duration) -> bool {
    let end = std::time::Instant::now() + d;
    while std::time::Instant::now() < end {
        if stop_requested() {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    !stop_requested()
}
