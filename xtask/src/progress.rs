//! Progress of long tasks as plain lines (CI logs are not terminals):
//! `[setup 3/6] apt packages ...` when a step starts, `... still running, 30 s` every
//! half minute while it runs, `[setup 3/6] apt packages: done in 12 s` at the end.

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// How often a running step says it is still running.
const HEARTBEAT: Duration = Duration::from_secs(30);

/// The steps of one task (`setup`, `vm`, `bench`, ...).
pub struct Progress {
    task: &'static str,
    total: usize,
    done: usize,
}

impl Progress {
    pub fn new(task: &'static str, total: usize) -> Self {
        Progress {
            task,
            total,
            done: 0,
        }
    }

    /// Starts the next step; call [`Step::done`] when it succeeds (dropped without it,
    /// it reports a failure).
    pub fn step(&mut self, name: &str) -> Step {
        self.done += 1;
        let label = label(self.task, self.done, self.total, name);
        println!("{label} ...");
        Step::start(label)
    }
}

/// `[task n/total] name`.
pub fn label(task: &str, n: usize, total: usize, name: &str) -> String {
    format!("[{task} {n}/{}] {name}", total.max(n))
}

/// Seconds, the way the lines show them.
pub fn seconds(elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64();
    if secs < 10.0 {
        format!("{secs:.1} s")
    } else {
        format!("{secs:.0} s")
    }
}

/// A running step: a heartbeat thread prints the elapsed time until it ends.
pub struct Step {
    label: String,
    started: Instant,
    stop: Option<mpsc::Sender<()>>,
    heartbeat: Option<thread::JoinHandle<()>>,
    succeeded: bool,
}

impl Step {
    fn start(label: String) -> Self {
        let started = Instant::now();
        let (stop, stopped) = mpsc::channel::<()>();
        let shown = label.clone();
        let heartbeat = thread::spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(HEARTBEAT) {
                println!("{shown} ... still running, {}", seconds(started.elapsed()));
            }
        });
        Step {
            label,
            started,
            stop: Some(stop),
            heartbeat: Some(heartbeat),
            succeeded: false,
        }
    }

    /// The step succeeded.
    pub fn done(mut self) {
        self.succeeded = true;
    }
}

impl Drop for Step {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(heartbeat) = self.heartbeat.take() {
            let _ = heartbeat.join();
        }
        let outcome = if self.succeeded { "done" } else { "failed" };
        println!(
            "{}: {outcome} in {}",
            self.label,
            seconds(self.started.elapsed())
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_count_steps() {
        assert_eq!(
            label("setup", 3, 6, "apt packages"),
            "[setup 3/6] apt packages"
        );
        // A step past the announced total still reads sensibly.
        assert_eq!(label("vm", 4, 3, "extra"), "[vm 4/4] extra");
    }

    #[test]
    fn seconds_are_short() {
        assert_eq!(seconds(Duration::from_millis(1234)), "1.2 s");
        assert_eq!(seconds(Duration::from_secs(42)), "42 s");
    }

    #[test]
    fn steps_count_up_and_end_quickly() {
        let mut progress = Progress::new("test", 2);
        let started = Instant::now();
        progress.step("one").done();
        drop(progress.step("two"));
        assert_eq!(progress.done, 2);
        // Ending a step does not wait for the heartbeat.
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
