//! Tracking, keepalived style: `vrrp_script`/`track_script`, `track_interface` and
//! `track_file` turn into a fault flag and a priority offset for an instance.
//!
//! The rules are pure functions (tested without processes or links); `track_io` runs the
//! scripts and watches links and files.

use crate::track_file::{self, Effect};

/// A tracked script's result history with keepalived's `rise`/`fall` hysteresis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptState {
    rise: u32,
    fall: u32,
    up: bool,
    /// Consecutive results against the current state.
    streak: u32,
}

impl ScriptState {
    /// keepalived treats a script as passing until shown otherwise (unless `init_fail`).
    pub fn new(rise: u32, fall: u32, init_fail: bool) -> Self {
        Self {
            rise: rise.max(1),
            fall: fall.max(1),
            up: !init_fail,
            streak: 0,
        }
    }

    pub fn up(&self) -> bool {
        self.up
    }

    /// Records one run; returns the new state when it changed.
    pub fn record(&mut self, success: bool) -> Option<bool> {
        if success == self.up {
            self.streak = 0;
            return None;
        }
        self.streak += 1;
        let needed = if success { self.rise } else { self.fall };
        if self.streak >= needed {
            self.up = success;
            self.streak = 0;
            Some(self.up)
        } else {
            None
        }
    }
}

/// One tracked thing's current contribution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tracked {
    /// A script or an interface: up or down, with its weight. keepalived: weight 0 =>
    /// down means FAULT; weight > 0 is added while up; weight < 0 is added while down.
    Binary { name: String, up: bool, weight: i32 },
    /// `track_file`: the file's integer times the weight (negated with `reverse`) is
    /// added, FAULT at -254 or below; with weight 0 a non-zero value means FAULT (a zero
    /// one with `reverse`). See [`crate::track_file::vrrp_effect`].
    File {
        name: String,
        value: i64,
        weight: i32,
        reverse: bool,
    },
}

impl Tracked {
    /// A script, interface or process; with keepalived's `reverse` the weight counts
    /// the other way, which is the opposite state with the opposite weight (a positive
    /// weight is subtracted while up; weight 0: FAULT while up).
    pub fn binary(name: &str, up: bool, weight: i32, reverse: bool) -> Tracked {
        let (up, weight) = if reverse {
            (!up, -weight)
        } else {
            (up, weight)
        };
        Tracked::Binary {
            name: name.to_string(),
            up,
            weight,
        }
    }
}

/// What tracking means for an instance right now.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Verdict {
    /// The names of the tracked things that put the instance in FAULT.
    pub faults: Vec<String>,
    /// Sum of the weights that apply.
    pub weight: i32,
}

pub fn verdict(tracked: &[Tracked]) -> Verdict {
    let mut v = Verdict::default();
    for t in tracked {
        match t {
            Tracked::Binary { name, up, weight } => match (*weight, *up) {
                (0, false) => v.faults.push(name.clone()),
                (w, true) if w > 0 => v.weight += w,
                (w, false) if w < 0 => v.weight += w,
                _ => {}
            },
            Tracked::File {
                name,
                value,
                weight,
                reverse,
            } => match track_file::vrrp_effect(*value, *weight, *reverse) {
                Effect::Fault => v.faults.push(name.clone()),
                Effect::Offset(add) => {
                    v.weight = v.weight.saturating_add(add as i32);
                }
            },
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rise_and_fall_need_consecutive_results() {
        let mut s = ScriptState::new(2, 3, false);
        assert!(s.up());
        assert_eq!(s.record(false), None);
        assert_eq!(s.record(false), None);
        assert_eq!(s.record(true), None, "streak broken");
        assert_eq!(s.record(false), None);
        assert_eq!(s.record(false), None);
        assert_eq!(s.record(false), Some(false), "third consecutive failure");
        assert_eq!(s.record(true), None);
        assert_eq!(s.record(true), Some(true), "second consecutive success");
        let mut init_fail = ScriptState::new(1, 1, true);
        assert!(!init_fail.up());
        assert_eq!(init_fail.record(true), Some(true));
    }

    #[test]
    fn reverse_counts_the_weight_the_other_way_as_keepalived() {
        // keepalived (vrrp_track.c): a reversed positive weight is subtracted while up,
        // a reversed negative one added while down, a reversed 0 faults while up.
        let v = |up, w| verdict(&[Tracked::binary("s", up, w, true)]);
        assert_eq!(v(true, 10).weight, -10);
        assert_eq!(v(false, 10).weight, 0);
        assert_eq!(v(false, -10).weight, 10);
        assert_eq!(v(true, -10).weight, 0);
        assert_eq!(v(true, 0).faults, ["s"]);
        assert!(v(false, 0).faults.is_empty());
    }

    fn binary(name: &str, up: bool, weight: i32) -> Tracked {
        Tracked::Binary {
            name: name.into(),
            up,
            weight,
        }
    }

    #[test]
    fn weights_apply_like_keepalived() {
        let v = verdict(&[
            binary("chk_up_positive", true, 10),
            binary("chk_down_positive", false, 5),
            binary("chk_down_negative", false, -20),
            binary("chk_up_negative", true, -7),
        ]);
        assert_eq!(v.weight, 10 - 20);
        assert!(v.faults.is_empty());
    }

    #[test]
    fn weight_zero_failure_is_a_fault() {
        let v = verdict(&[binary("eth1", false, 0), binary("chk", true, 0)]);
        assert_eq!(v.faults, vec!["eth1".to_string()]);
        assert_eq!(v.weight, 0);
    }

    #[test]
    fn track_file_values() {
        let v = verdict(&[
            Tracked::File {
                name: "/a".into(),
                value: 3,
                weight: -2,
                reverse: false,
            },
            Tracked::File {
                name: "/b".into(),
                value: 1,
                weight: 0,
                reverse: false,
            },
            Tracked::File {
                name: "/c".into(),
                value: 0,
                weight: 0,
                reverse: false,
            },
            Tracked::File {
                name: "/d".into(),
                value: 0,
                weight: 0,
                reverse: true,
            },
            Tracked::File {
                name: "/e".into(),
                value: 2,
                weight: 5,
                reverse: true,
            },
            Tracked::File {
                name: "/f".into(),
                value: -200,
                weight: 2,
                reverse: false,
            },
        ]);
        assert_eq!(v.weight, -16);
        assert_eq!(v.faults, ["/b", "/d", "/f"]);
    }
}
