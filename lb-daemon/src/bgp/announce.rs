//! When a VIP announced by BGP is announced, and why: a pure state machine, one per VIP.
//!
//! A VIP is announced while its service is programmed in the data plane with the program
//! attached, it has quorum (keepalived's quorum and hysteresis are applied upstream) and the
//! operator has not drained the node. Withdrawal is immediate when any of these fails. After
//! quorum was lost, the VIP comes back only once quorum has held for `hold_down` without a
//! break, so a flapping backend set does not flap the route on the routers. A daemon that
//! starts is in [`State::START`]: nothing is announced until the inputs say ready.
//!
//! No IO and no clock: the caller passes `now` and re-evaluates at the latest when the
//! remaining hold-down in [`Reason::HoldDown`] has passed.

use std::fmt;
use std::time::{Duration, Instant};

/// What the rest of the daemon knows about one VIP's service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conditions {
    /// The service is in the data plane's maps and the program is attached.
    pub programmed: bool,
    /// Healthy backends >= quorum (hysteresis already applied).
    pub quorum: bool,
    /// The operator drained this node (`lb-daemon drain`).
    pub drained: bool,
}

impl Conditions {
    pub const READY: Conditions = Conditions {
        programmed: true,
        quorum: true,
        drained: false,
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Not announced.
    Withdrawn {
        /// Since when quorum has held without a break (None: it does not hold now).
        quorum_since: Option<Instant>,
        /// Quorum was lost since the last announcement: the hold-down applies.
        hold: bool,
    },
    Announced,
}

impl State {
    /// A starting daemon: nothing announced, no hold-down owed.
    pub const START: State = State::Withdrawn {
        quorum_since: None,
        hold: false,
    };

    pub fn is_announced(&self) -> bool {
        matches!(self, State::Announced)
    }
}

/// The change to make on the VIP interface (address added = announced).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Announce,
    Withdraw,
}

/// Why a VIP is (not) announced, for `status`. When several conditions fail, the one the
/// operator would act on first is given: drained, then not programmed, then quorum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Announced: programmed, with quorum, not drained.
    Programmed,
    NotProgrammed,
    BelowQuorum,
    Drained,
    /// Quorum is back but has not held long enough yet.
    HoldDown {
        remaining: Duration,
    },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Programmed => f.write_str("programmed"),
            Reason::NotProgrammed => f.write_str("not programmed"),
            Reason::BelowQuorum => f.write_str("below quorum"),
            Reason::Drained => f.write_str("drained"),
            Reason::HoldDown { remaining } => {
                write!(f, "hold-down ({}ms left)", remaining.as_millis())
            }
        }
    }
}

/// The result of one evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub state: State,
    pub action: Option<Action>,
    pub reason: Reason,
}

/// The transition function: the next state given the conditions at `now`.
pub fn step(state: State, c: Conditions, hold_down: Duration, now: Instant) -> Step {
    let (quorum_since, hold) = match state {
        State::Announced => (Some(now), false),
        State::Withdrawn { quorum_since, hold } => (quorum_since, hold),
    };
    // Losing quorum (seen as held before, now not) is what owes a hold-down.
    let hold = hold || (quorum_since.is_some() && !c.quorum);
    let quorum_since = if c.quorum {
        quorum_since.or(Some(now))
    } else {
        None
    };
    let withdrawn = State::Withdrawn { quorum_since, hold };
    let blocked = if c.drained {
        Some(Reason::Drained)
    } else if !c.programmed {
        Some(Reason::NotProgrammed)
    } else if !c.quorum {
        Some(Reason::BelowQuorum)
    } else {
        let held = quorum_since.map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
        (hold && held < hold_down).then(|| Reason::HoldDown {
            remaining: hold_down - held,
        })
    };
    let was_announced = state.is_announced();
    match blocked {
        Some(reason) => Step {
            state: withdrawn,
            action: was_announced.then_some(Action::Withdraw),
            reason,
        },
        None => Step {
            state: State::Announced,
            action: (!was_announced).then_some(Action::Announce),
            reason: Reason::Programmed,
        },
    }
}

/// One VIP's machine with its hold-down, for callers that keep it in a map.
#[derive(Debug, Clone)]
pub struct Announcer {
    hold_down: Duration,
    state: State,
    reason: Reason,
}

impl Announcer {
    pub fn new(hold_down: Duration) -> Self {
        Announcer {
            hold_down,
            state: State::START,
            reason: Reason::NotProgrammed,
        }
    }

    /// Re-evaluates; returns the change to make, if any.
    pub fn update(&mut self, c: Conditions, now: Instant) -> Option<Action> {
        let s = step(self.state, c, self.hold_down, now);
        self.state = s.state;
        self.reason = s.reason;
        s.action
    }

    pub fn is_announced(&self) -> bool {
        self.state.is_announced()
    }

    pub fn reason(&self) -> Reason {
        self.reason
    }

    /// When to call [`Announcer::update`] again if nothing else changes.
    pub fn wake_in(&self) -> Option<Duration> {
        match self.reason {
            Reason::HoldDown { remaining } => Some(remaining),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOLD: Duration = Duration::from_secs(10);
    const P: bool = true;
    const Q: bool = true;
    const D: bool = true;

    fn c(programmed: bool, quorum: bool, drained: bool) -> Conditions {
        Conditions {
            programmed,
            quorum,
            drained,
        }
    }

    fn hd(ms: u64) -> Reason {
        Reason::HoldDown {
            remaining: Duration::from_millis(ms),
        }
    }

    use Action::{Announce, Withdraw};
    use Reason::{BelowQuorum, Drained, NotProgrammed, Programmed};

    /// (time in ms, conditions, expected action, expected reason).
    type Row = (u64, Conditions, Option<Action>, Reason);

    /// Runs the rows from START.
    fn run(name: &str, steps: &[Row]) {
        let t0 = Instant::now();
        let mut state = State::START;
        for (i, &(ms, cond, action, reason)) in steps.iter().enumerate() {
            let s = step(state, cond, HOLD, t0 + Duration::from_millis(ms));
            assert_eq!(
                (s.action, s.reason),
                (action, reason),
                "{name}: step {i} at {ms} ms with {cond:?} from {state:?}"
            );
            assert_eq!(
                s.state.is_announced(),
                s.reason == Programmed,
                "{name}: step {i}"
            );
            state = s.state;
        }
    }

    /// The 8 combinations of the inputs.
    fn every_condition() -> impl Iterator<Item = Conditions> {
        (0..8u8).map(|bits| c(bits & 1 != 0, bits & 2 != 0, bits & 4 != 0))
    }

    #[test]
    fn every_single_input_from_start() {
        // Exhaustive: only all-good announces, at once.
        for cond in every_condition() {
            let s = step(State::START, cond, HOLD, Instant::now());
            let want = if cond.drained {
                Drained
            } else if !cond.programmed {
                NotProgrammed
            } else if !cond.quorum {
                BelowQuorum
            } else {
                Programmed
            };
            assert_eq!(s.reason, want, "{cond:?}");
            let action = (want == Programmed).then_some(Announce);
            assert_eq!(s.action, action, "{cond:?}");
        }
    }

    #[test]
    fn every_failure_from_announced_withdraws_at_once() {
        for cond in every_condition() {
            let s = step(State::Announced, cond, HOLD, Instant::now());
            if cond == Conditions::READY {
                assert_eq!((s.action, s.reason), (None, Programmed));
            } else {
                assert_eq!(s.action, Some(Withdraw), "{cond:?}");
                assert!(!s.state.is_announced());
            }
        }
    }

    #[test]
    fn table() {
        let cases: &[(&str, &[Row])] = &[
            (
                "start: nothing until programmed",
                &[
                    (0, c(!P, Q, !D), None, NotProgrammed),
                    (500, c(!P, Q, !D), None, NotProgrammed),
                    (900, c(P, Q, !D), Some(Announce), Programmed),
                    (1000, c(P, Q, !D), None, Programmed),
                ],
            ),
            (
                "start: quorum comes after programming, no hold-down owed",
                &[
                    (0, c(P, !Q, !D), None, BelowQuorum),
                    (100, c(P, Q, !D), Some(Announce), Programmed),
                ],
            ),
            (
                "quorum lost: withdrawn at once, back after the hold-down",
                &[
                    (0, c(P, Q, !D), Some(Announce), Programmed),
                    (1000, c(P, !Q, !D), Some(Withdraw), BelowQuorum),
                    (2000, c(P, Q, !D), None, hd(10_000)),
                    (5000, c(P, Q, !D), None, hd(7000)),
                    (11_999, c(P, Q, !D), None, hd(1)),
                    (12_000, c(P, Q, !D), Some(Announce), Programmed),
                ],
            ),
            (
                "flapping quorum restarts the hold-down each time",
                &[
                    (0, c(P, Q, !D), Some(Announce), Programmed),
                    (100, c(P, !Q, !D), Some(Withdraw), BelowQuorum),
                    (200, c(P, Q, !D), None, hd(10_000)),
                    (9000, c(P, !Q, !D), None, BelowQuorum),
                    (9100, c(P, Q, !D), None, hd(10_000)),
                    (19_000, c(P, Q, !D), None, hd(100)),
                    (19_100, c(P, Q, !D), Some(Announce), Programmed),
                ],
            ),
            (
                "unprogrammed: withdrawn and back at once (no quorum loss)",
                &[
                    (0, c(P, Q, !D), Some(Announce), Programmed),
                    (100, c(!P, Q, !D), Some(Withdraw), NotProgrammed),
                    (200, c(P, Q, !D), Some(Announce), Programmed),
                ],
            ),
            (
                "drain and undrain: immediate both ways",
                &[
                    (0, c(P, Q, !D), Some(Announce), Programmed),
                    (100, c(P, Q, D), Some(Withdraw), Drained),
                    (200, c(P, Q, D), None, Drained),
                    (300, c(P, Q, !D), Some(Announce), Programmed),
                ],
            ),
            (
                "hold-down keeps running while drained",
                &[
                    (0, c(P, Q, !D), Some(Announce), Programmed),
                    (100, c(P, !Q, D), Some(Withdraw), Drained),
                    (200, c(P, Q, D), None, Drained),
                    (5200, c(P, Q, !D), None, hd(5000)),
                    (10_200, c(P, Q, !D), Some(Announce), Programmed),
                ],
            ),
            (
                "undrained after the hold-down elapsed: at once",
                &[
                    (0, c(P, Q, !D), Some(Announce), Programmed),
                    (100, c(P, !Q, !D), Some(Withdraw), BelowQuorum),
                    (200, c(P, Q, D), None, Drained),
                    (60_000, c(P, Q, !D), Some(Announce), Programmed),
                ],
            ),
            (
                "quorum lost while not programmed still owes a hold-down",
                &[
                    (0, c(!P, Q, !D), None, NotProgrammed),
                    (100, c(!P, !Q, !D), None, NotProgrammed),
                    (200, c(!P, Q, !D), None, NotProgrammed),
                    (300, c(P, Q, !D), None, hd(9900)),
                    (10_200, c(P, Q, !D), Some(Announce), Programmed),
                ],
            ),
            (
                "the reason names drained first, then programming, then quorum",
                &[
                    (0, c(!P, !Q, D), None, Drained),
                    (1, c(!P, !Q, !D), None, NotProgrammed),
                    (2, c(P, !Q, !D), None, BelowQuorum),
                ],
            ),
            (
                "after a re-announcement, the hold-down is owed again only on a new loss",
                &[
                    (0, c(P, Q, !D), Some(Announce), Programmed),
                    (100, c(P, !Q, !D), Some(Withdraw), BelowQuorum),
                    (200, c(P, Q, !D), None, hd(10_000)),
                    (10_200, c(P, Q, !D), Some(Announce), Programmed),
                    (10_300, c(!P, Q, !D), Some(Withdraw), NotProgrammed),
                    (10_400, c(P, Q, !D), Some(Announce), Programmed),
                ],
            ),
        ];
        for (name, steps) in cases {
            run(name, steps);
        }
    }

    #[test]
    fn zero_hold_down_announces_at_once() {
        let t0 = Instant::now();
        let s = step(State::Announced, c(P, !Q, !D), Duration::ZERO, t0);
        let s = step(s.state, Conditions::READY, Duration::ZERO, t0);
        assert_eq!((s.action, s.reason), (Some(Announce), Programmed));
    }

    #[test]
    fn announcer_tracks_reason_and_wake_up() {
        let t0 = Instant::now();
        let mut a = Announcer::new(HOLD);
        assert_eq!((a.reason(), a.is_announced()), (NotProgrammed, false));
        assert_eq!(a.update(Conditions::READY, t0), Some(Announce));
        assert!(a.is_announced());
        assert_eq!(a.update(c(P, !Q, !D), t0), Some(Withdraw));
        assert_eq!(
            a.update(Conditions::READY, t0 + Duration::from_secs(1)),
            None
        );
        assert_eq!(a.wake_in(), Some(HOLD));
        assert_eq!(a.reason().to_string(), "hold-down (10000ms left)");
        assert_eq!(
            a.update(Conditions::READY, t0 + Duration::from_secs(11)),
            Some(Announce)
        );
        assert_eq!(a.wake_in(), None);
    }
}
