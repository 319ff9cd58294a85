//! Redundant heartbeat paths: an instance sends its adverts over every path (its own
//! interface, then each `heartbeat_paths` entry) and accepts them from any; the peer is
//! alive while any path delivers. A path that stays silent for a master-down interval
//! while another path delivers is lost: logged and counted, nothing else changes. It is
//! restored by its next advert.
//!
//! Pure: the caller passes the time in.

use std::time::{Duration, Instant};

/// What changed on a path (its index: 0 is the instance's own interface).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathChange {
    Lost(usize),
    Restored(usize),
}

#[derive(Debug, Clone)]
struct Path {
    last: Option<Instant>,
    up: bool,
    lost: u64,
}

/// The paths of one instance.
#[derive(Debug, Clone)]
pub struct PathWatch {
    paths: Vec<Path>,
}

impl PathWatch {
    pub fn new(count: usize) -> Self {
        Self {
            paths: vec![
                Path {
                    last: None,
                    up: true,
                    lost: 0,
                };
                count
            ],
        }
    }

    /// (up, times lost) per path.
    pub fn states(&self) -> Vec<(bool, u64)> {
        self.paths.iter().map(|p| (p.up, p.lost)).collect()
    }

    /// An advert arrived on `path` at `now`; `window` is the master-down interval. Every
    /// other path silent for longer than `window` is lost (while this one delivers).
    pub fn advert(&mut self, path: usize, now: Instant, window: Duration) -> Vec<PathChange> {
        let mut changes = Vec::new();
        let Some(p) = self.paths.get_mut(path) else {
            return changes;
        };
        p.last = Some(now);
        if !p.up {
            p.up = true;
            changes.push(PathChange::Restored(path));
        }
        for (i, other) in self.paths.iter_mut().enumerate() {
            // A path never heard from counts from the first advert on any path.
            let since = other.last.unwrap_or(now);
            if i != path && other.up && now.saturating_duration_since(since) > window {
                other.up = false;
                other.lost += 1;
                changes.push(PathChange::Lost(i));
            }
            if other.last.is_none() {
                other.last = Some(now);
            }
        }
        changes
    }

    /// All paths start over (we became MASTER: nothing is heard from backups).
    pub fn reset(&mut self) -> Vec<PathChange> {
        let mut changes = Vec::new();
        for (i, p) in self.paths.iter_mut().enumerate() {
            p.last = None;
            if !p.up {
                p.up = true;
                changes.push(PathChange::Restored(i));
            }
        }
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_silent_path_is_lost_while_another_delivers_and_restored_by_its_next_advert() {
        let t0 = Instant::now();
        let s = |n: u64| t0 + Duration::from_secs(n);
        let w = Duration::from_secs(3);
        let mut p = PathWatch::new(2);
        assert!(p.advert(0, s(0), w).is_empty());
        assert!(p.advert(1, s(0), w).is_empty());
        assert!(
            p.advert(0, s(3), w).is_empty(),
            "not longer than the window"
        );
        assert_eq!(p.advert(0, s(4), w), vec![PathChange::Lost(1)]);
        assert!(p.advert(0, s(5), w).is_empty(), "lost once");
        assert_eq!(p.states(), vec![(true, 0), (false, 1)]);
        assert_eq!(p.advert(1, s(6), w), vec![PathChange::Restored(1)]);
        assert_eq!(p.states(), vec![(true, 0), (true, 1)]);
    }

    #[test]
    fn a_path_never_heard_counts_from_the_first_advert() {
        let t0 = Instant::now();
        let w = Duration::from_secs(3);
        let mut p = PathWatch::new(2);
        assert!(p.advert(0, t0, w).is_empty());
        assert_eq!(
            p.advert(0, t0 + Duration::from_secs(4), w),
            vec![PathChange::Lost(1)]
        );
        assert_eq!(p.reset(), vec![PathChange::Restored(1)]);
        assert!(p.advert(0, t0 + Duration::from_secs(10), w).is_empty());
    }
}
