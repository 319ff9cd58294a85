//! A virtual service's quorum, keepalived's way: the summed weight of the live real
//! servers against `quorum`, with `hysteresis` as a flap dampener.
//!
//! Pure arithmetic; [`super::verdict`] decides when to evaluate it.

/// Quorum parameters as keepalived uses them, after its validation (see [`Quorum::new`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quorum {
    pub quorum: u64,
    pub hysteresis: u64,
}

/// What [`Quorum::new`] had to correct; the configuration layer reports these as
/// keepalived does (as warnings, not errors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuorumWarning {
    /// keepalived accepts quorum 1.. only and uses 1 instead
    /// (check_parser.c `quorum_handler`).
    ZeroQuorum,
    /// A quorum the reals can never reach is lowered to their total configured weight
    /// (check_data.c `validate_check_config`).
    QuorumAboveTotalWeight { quorum: u64, total_weight: u64 },
    /// Hysteresis must stay below the quorum; it becomes `quorum - 1`
    /// (check_data.c `validate_check_config`).
    HysteresisNotBelowQuorum { hysteresis: u64, quorum: u64 },
}

impl Quorum {
    /// The effective parameters for a service whose reals' configured weights sum to
    /// `total_weight`, with what had to be corrected.
    pub fn new(quorum: u32, hysteresis: u32, total_weight: u64) -> (Quorum, Vec<QuorumWarning>) {
        let mut warnings = Vec::new();
        let mut quorum = u64::from(quorum);
        let mut hysteresis = u64::from(hysteresis);
        if quorum == 0 {
            warnings.push(QuorumWarning::ZeroQuorum);
            quorum = 1;
        }
        if quorum > total_weight {
            warnings.push(QuorumWarning::QuorumAboveTotalWeight {
                quorum,
                total_weight,
            });
            quorum = total_weight;
        }
        if hysteresis >= quorum && hysteresis > 0 {
            warnings.push(QuorumWarning::HysteresisNotBelowQuorum { hysteresis, quorum });
            // keepalived's unsigned `quorum - 1` wraps for quorum 0; 0 is the sane reading.
            hysteresis = quorum.saturating_sub(1);
        }
        (Quorum { quorum, hysteresis }, warnings)
    }

    /// The quorum state after the live weight became `alive`, from state `up`
    /// (ipwrapper.c `update_quorum_state`): gained at `alive >= quorum + hysteresis`,
    /// lost at `alive < quorum - hysteresis` or when nothing is alive at all.
    ///
    /// Gaining also needs `alive > 0`: with quorum 0 (all reals weigh 0) keepalived never
    /// gains (its unsigned hysteresis wraps), and this keeps the state from flapping.
    pub fn next(self, up: bool, alive: u64) -> bool {
        if up {
            // `alive < quorum - hysteresis`, without underflow.
            !(alive == 0 || alive.saturating_add(self.hysteresis) < self.quorum)
        } else {
            alive > 0 && alive >= self.quorum.saturating_add(self.hysteresis)
        }
    }

    /// The state at start-up: keepalived first marks every quorum down (no real is alive
    /// yet when `set_quorum_states` runs), then `update_quorum_state(vs, init)` evaluates
    /// it with the reals that start alive.
    pub fn initial(self, alive: u64) -> bool {
        self.next(false, alive)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(quorum: u64, hysteresis: u64) -> Quorum {
        Quorum { quorum, hysteresis }
    }

    #[test]
    fn without_hysteresis_the_threshold_is_the_quorum_both_ways() {
        let q = q(3, 0);
        assert!(!q.next(false, 2));
        assert!(q.next(false, 3));
        assert!(q.next(true, 3));
        assert!(!q.next(true, 2));
    }

    #[test]
    fn hysteresis_widens_the_band() {
        let q = q(5, 2);
        // Gained at >= 7 only.
        assert!(!q.next(false, 6));
        assert!(q.next(false, 7));
        // Lost below 3 only: 3 keeps it.
        assert!(q.next(true, 3));
        assert!(!q.next(true, 2));
        // Inside the band the state holds both ways.
        for alive in 3..7 {
            assert!(q.next(true, alive));
            assert!(!q.next(false, alive));
        }
    }

    #[test]
    fn nothing_alive_always_loses_and_never_gains() {
        let q = q(0, 0);
        assert!(!q.next(true, 0));
        assert!(!q.next(false, 0));
        assert!(q.next(false, 1));
    }

    #[test]
    fn initial_is_a_gain_from_down() {
        let q = q(2, 1);
        assert!(!q.initial(2));
        assert!(q.initial(3));
    }

    #[test]
    fn validation_follows_keepalived() {
        assert_eq!(Quorum::new(2, 1, 10), (q(2, 1), vec![]));
        assert_eq!(
            Quorum::new(0, 0, 10),
            (q(1, 0), vec![QuorumWarning::ZeroQuorum])
        );
        assert_eq!(
            Quorum::new(12, 0, 10),
            (
                q(10, 0),
                vec![QuorumWarning::QuorumAboveTotalWeight {
                    quorum: 12,
                    total_weight: 10
                }]
            )
        );
        assert_eq!(
            Quorum::new(3, 3, 10),
            (
                q(3, 2),
                vec![QuorumWarning::HysteresisNotBelowQuorum {
                    hysteresis: 3,
                    quorum: 3
                }]
            )
        );
        // Lowered quorum, then the hysteresis is checked against the lowered value.
        let (got, warnings) = Quorum::new(5, 4, 3);
        assert_eq!(got, q(3, 2));
        assert_eq!(warnings.len(), 2);
        // All reals weigh 0: quorum 0, hysteresis 0 (no wrap).
        assert_eq!(Quorum::new(1, 0, 0).0, q(0, 0));
    }
}
