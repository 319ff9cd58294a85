//! When each check of a service runs: one timer queue per service instead of a task and
//! a timer per check (issue 13: health checks at or below keepalived's CPU, which walks
//! one timer list). Pure: the caller says what time it is and runs what is due.
//!
//! The rules are those of a fixed-rate timer with `MissedTickBehavior::Delay`, what each
//! check had before: a check runs every `period` after its first run (the warmup
//! spread), never twice at once; one that is still running when its next run is due runs
//! again the moment it ends, and its schedule restarts from there.

use std::{
    cmp::Reverse,
    collections::BinaryHeap,
    time::{Duration, Instant},
};

/// The schedule of a service's checks, by index.
#[derive(Debug)]
pub struct Schedule {
    periods: Vec<Duration>,
    /// When each running check's run was due (`None`: waiting).
    started: Vec<Option<Instant>>,
    /// Checks waiting for their time: (due, index). A running check is not in it.
    waiting: BinaryHeap<Reverse<(Instant, usize)>>,
}

impl Schedule {
    /// `checks`: each check's first run and period.
    pub fn new(checks: impl IntoIterator<Item = (Instant, Duration)>) -> Self {
        let mut periods = Vec::new();
        let mut waiting = BinaryHeap::new();
        for (i, (first, period)) in checks.into_iter().enumerate() {
            periods.push(period);
            waiting.push(Reverse((first, i)));
        }
        Schedule {
            started: vec![None; periods.len()],
            periods,
            waiting,
        }
    }

    /// When the next waiting check is due (`None`: none waits).
    pub fn next_due(&self) -> Option<Instant> {
        self.waiting.peek().map(|Reverse((due, _))| *due)
    }

    /// The next check due at `now`, marked running; `None` when none is due yet.
    pub fn take_due(&mut self, now: Instant) -> Option<usize> {
        let Reverse((due, i)) = *self.waiting.peek()?;
        if due > now {
            return None;
        }
        self.waiting.pop();
        self.started[i] = Some(due);
        Some(i)
    }

    /// Check `i` ended at `now`: it waits for its next run.
    pub fn finished(&mut self, i: usize, now: Instant) {
        let Some(started) = self.started.get_mut(i).and_then(Option::take) else {
            return;
        };
        let next = (started + self.periods[i]).max(now);
        self.waiting.push(Reverse((next, i)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Everything due at `now`, in order.
    fn due(s: &mut Schedule, now: Instant) -> Vec<usize> {
        std::iter::from_fn(|| s.take_due(now)).collect()
    }

    #[test]
    fn checks_run_at_a_fixed_rate_from_their_first_run() {
        let t0 = Instant::now();
        let mut s = Schedule::new([(t0 + ms(300), S), (t0 + ms(100), S)]);
        assert_eq!(s.next_due(), Some(t0 + ms(100)));
        assert_eq!(due(&mut s, t0), Vec::<usize>::new());
        assert_eq!(due(&mut s, t0 + ms(100)), [1]);
        // A check taking 40 ms does not shift its next run.
        s.finished(1, t0 + ms(140));
        assert_eq!(s.next_due(), Some(t0 + ms(300)));
        assert_eq!(due(&mut s, t0 + ms(350)), [0]);
        s.finished(0, t0 + ms(360));
        assert_eq!(s.next_due(), Some(t0 + ms(1100)));
        assert_eq!(due(&mut s, t0 + ms(1100)), [1]);
        s.finished(1, t0 + ms(1101));
        // Check 0 was due at 300 ms, taken late at 350 ms: its next run is still 1.3 s.
        assert_eq!(s.next_due(), Some(t0 + ms(1300)));
        assert_eq!(due(&mut s, t0 + ms(5000)), [0, 1]);
    }

    #[test]
    fn a_check_never_runs_twice_at_once_and_a_late_one_runs_when_it_ends() {
        let t0 = Instant::now();
        let mut s = Schedule::new([(t0, S)]);
        assert_eq!(due(&mut s, t0), [0]);
        // Still running at its next due time: nothing to start.
        assert_eq!(s.next_due(), None);
        assert_eq!(due(&mut s, t0 + ms(2500)), Vec::<usize>::new());
        // It ends 2.5 s in: it runs again at once, and every second from there.
        s.finished(0, t0 + ms(2500));
        assert_eq!(s.next_due(), Some(t0 + ms(2500)));
        assert_eq!(due(&mut s, t0 + ms(2500)), [0]);
        s.finished(0, t0 + ms(2510));
        assert_eq!(s.next_due(), Some(t0 + ms(3500)));
    }

    #[test]
    fn a_check_ending_that_was_not_started_is_ignored() {
        let t0 = Instant::now();
        let mut s = Schedule::new([(t0 + S, S)]);
        s.finished(0, t0);
        s.finished(7, t0);
        assert_eq!(due(&mut s, t0 + ms(999)), Vec::<usize>::new());
        assert_eq!(due(&mut s, t0 + S), [0]);
        assert_eq!(s.next_due(), None);
        // Ended twice: queued once.
        s.finished(0, t0 + S);
        s.finished(0, t0 + S);
        assert_eq!(due(&mut s, t0 + ms(5000)), [0]);
        assert_eq!(s.next_due(), None);
    }

    #[test]
    fn many_checks_come_due_in_time_order() {
        let t0 = Instant::now();
        let firsts: Vec<u64> = (0..1000).map(|i| (i * 7919) % 1000).collect();
        let mut s = Schedule::new(firsts.iter().map(|&f| (t0 + ms(f), S)));
        let mut last = t0;
        let mut seen = 0;
        while let Some(at) = s.next_due() {
            assert!(at >= last);
            last = at;
            let i = s.take_due(at).expect("due");
            assert_eq!(t0 + ms(firsts[i]), at);
            seen += 1;
        }
        assert_eq!(seen, 1000);
    }
}
