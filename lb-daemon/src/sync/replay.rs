//! Replay protection (pure): a sender's sequence numbers only go up, and a message older
//! than the allowed clock skew is refused even by a node that just started (and so has
//! no sequence number of that sender yet).

use std::collections::HashMap;

use super::wire::{Drop, Header};

/// How far a sender's clock may be from ours (ms).
pub const DEFAULT_MAX_SKEW_MS: u64 = 30_000;

#[derive(Debug, Clone)]
pub struct ReplayGuard {
    max_skew_ms: u64,
    /// The highest sequence number accepted, by sender id.
    last: HashMap<u32, u64>,
}

impl ReplayGuard {
    pub fn new(max_skew_ms: u64) -> Self {
        ReplayGuard {
            max_skew_ms,
            last: HashMap::new(),
        }
    }

    /// Accepts `h` (and remembers its sequence number) or says why not. `now_ms`: our
    /// wall clock.
    pub fn check(&mut self, h: &Header, now_ms: u64) -> Result<(), Drop> {
        if h.time_ms.abs_diff(now_ms) > self.max_skew_ms {
            return Err(Drop::Replayed);
        }
        match self.last.get(&h.sender) {
            Some(&last) if h.sequence <= last => Err(Drop::Replayed),
            _ => {
                self.last.insert(h.sender, h.sequence);
                Ok(())
            }
        }
    }

    /// The last sequence number accepted from `sender`.
    pub fn last(&self, sender: u32) -> Option<u64> {
        self.last.get(&sender).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(sender: u32, sequence: u64, time_ms: u64) -> Header {
        Header {
            sync_id: 0,
            sender,
            sequence,
            time_ms,
        }
    }

    #[test]
    fn sequence_numbers_only_go_up_per_sender() {
        let mut g = ReplayGuard::new(DEFAULT_MAX_SKEW_MS);
        let now = 1_000_000;
        assert_eq!(g.check(&h(1, 10, now), now), Ok(()));
        assert_eq!(g.check(&h(1, 10, now), now), Err(Drop::Replayed));
        assert_eq!(g.check(&h(1, 9, now), now), Err(Drop::Replayed));
        assert_eq!(g.check(&h(2, 1, now), now), Ok(()), "another sender");
        assert_eq!(g.check(&h(1, 11, now), now), Ok(()));
        assert_eq!(g.last(1), Some(11));
    }

    #[test]
    fn stale_or_future_messages_are_refused() {
        let mut g = ReplayGuard::new(1000);
        let now = 1_000_000;
        assert_eq!(g.check(&h(1, 1, now - 1001), now), Err(Drop::Replayed));
        assert_eq!(g.check(&h(1, 1, now + 1001), now), Err(Drop::Replayed));
        assert_eq!(g.check(&h(1, 1, now - 1000), now), Ok(()));
    }
}
