//! What a BFD session's state means to a VRRP instance (`track_bfd`) and a real server
//! (`BFD_CHECK`), pure.
//!
//! keepalived 2.2.7 (`vrrp_track.c` `initialise_track_bfd_state`, `vrrp_scheduler.c`
//! `vrrp_handle_bfd_event`): weight 0 = FAULT while the session is not Up (while Up with
//! `reverse`); a positive weight is added while Up, a negative one while down; `reverse`
//! counts the other way. That is exactly [`Tracked::binary`], reused here.
//!
//! keepalived does nothing more on a BACKUP when the session to the MASTER goes down:
//! with weight 0 the backup itself goes to FAULT, otherwise its priority moves, and the
//! takeover still waits for the master-down timer (3 adverts + skew, 3.6 s at 1 s).
//! Our documented extension ([`master_down_now`]): a BACKUP whose tracked session's
//! neighbor is the current MASTER's address treats the session leaving Up as the
//! master-down timer expiring, which gives a takeover in the BFD detection time.

use std::net::IpAddr;

use crate::vrrp::track::Tracked;

/// A `track_bfd` entry's contribution (keepalived's semantics, see the module docs).
pub fn tracked(name: &str, up: bool, weight: i32, reverse: bool) -> Tracked {
    Tracked::binary(name, up, weight, reverse)
}

/// `BFD_CHECK`: the real server is up only while the session is Up.
pub fn checker_up(session_up: bool) -> bool {
    session_up
}

/// The extension: should a BACKUP act as if its master-down timer expired? Yes when the
/// session just left Up and its neighbor is the master the backup last heard from.
pub fn master_down_now(
    neighbor: IpAddr,
    was_up: bool,
    is_up: bool,
    current_master: Option<IpAddr>,
    is_backup: bool,
) -> bool {
    is_backup && was_up && !is_up && current_master == Some(neighbor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vrrp::track::verdict;

    /// keepalived's table: (up, weight, reverse) -> (fault, priority offset).
    #[test]
    fn keepalived_weights() {
        let table = [
            (true, 0, false, false, 0),
            (false, 0, false, true, 0),
            (true, 0, true, true, 0),
            (false, 0, true, false, 0),
            (true, 10, false, false, 10),
            (false, 10, false, false, 0),
            (true, -10, false, false, 0),
            (false, -10, false, false, -10),
            (true, 10, true, false, -10),
            (false, 10, true, false, 0),
        ];
        for (up, weight, reverse, fault, offset) in table {
            let v = verdict(&[tracked("b", up, weight, reverse)]);
            assert_eq!(!v.faults.is_empty(), fault, "{up} {weight} {reverse}");
            assert_eq!(v.weight, offset, "{up} {weight} {reverse}");
        }
    }

    #[test]
    fn master_down_only_for_the_master_on_a_backup() {
        let m: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(master_down_now(m, true, false, Some(m), true));
        assert!(!master_down_now(m, true, false, Some(other), true));
        assert!(!master_down_now(m, true, false, None, true));
        assert!(
            !master_down_now(m, true, false, Some(m), false),
            "a master ignores it"
        );
        assert!(
            !master_down_now(m, false, false, Some(m), true),
            "never was up"
        );
        assert!(!master_down_now(m, true, true, Some(m), true));
        assert!(checker_up(true) && !checker_up(false));
    }
}
