//! When a starting node has its peers' flows (pure): bulk sync asks for them at start,
//! and the node must not become MASTER or announce a VIP before they are in. The answer
//! is a stream of messages with no end marker, so the window closes once flows came and
//! then stopped for `quiet`, or at `wait` after the start whatever came (no peer up, or
//! peers with nothing to send).

use std::time::{Duration, Instant};

/// How long a starting node waits for its peers' flows at most.
pub const BULK_WAIT: Duration = Duration::from_secs(2);
/// A pause this long after flows came ends the bulk answer.
pub const BULK_QUIET: Duration = Duration::from_millis(300);

#[derive(Debug, Clone)]
pub struct BulkWindow {
    deadline: Instant,
    quiet: Duration,
    last_flows: Option<Instant>,
}

impl BulkWindow {
    pub fn new(start: Instant, wait: Duration, quiet: Duration) -> Self {
        BulkWindow {
            deadline: start + wait,
            quiet,
            last_flows: None,
        }
    }

    /// Peers' flows arrived at `now`.
    pub fn flows(&mut self, now: Instant) {
        self.last_flows = Some(now);
    }

    /// Whether the node may become MASTER or announce at `now`.
    pub fn done(&self, now: Instant) -> bool {
        now >= self.deadline
            || self
                .last_flows
                .is_some_and(|t| now.saturating_duration_since(t) >= self.quiet)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn closes_after_a_quiet_pause_or_at_the_deadline() {
        let t0 = Instant::now();
        let mut w = BulkWindow::new(t0, 2000 * MS, 300 * MS);
        assert!(!w.done(t0));
        assert!(!w.done(t0 + 1999 * MS), "nothing came yet: wait");
        assert!(w.done(t0 + 2000 * MS), "nothing came: the deadline");
        w.flows(t0 + 100 * MS);
        w.flows(t0 + 350 * MS);
        assert!(!w.done(t0 + 600 * MS), "still coming");
        assert!(w.done(t0 + 650 * MS), "quiet for 300 ms");
        // Flows of normal operation later do not reopen a closed window at the deadline.
        w.flows(t0 + 2100 * MS);
        assert!(w.done(t0 + 2150 * MS));
    }
}
