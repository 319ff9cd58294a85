//! Tracking, keepalived style: `vrrp_script`/`track_script`, `track_interface` and
//! `track_file` turn into a fault flag and a priority offset for an instance.
//!
//! The rules are pure functions (tested without processes or links); `track_io` runs the
//! scripts and watches links and files.

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
    /// `track_file`: the file's integer times the weight is added; with weight 0 a
    /// non-zero value means FAULT.
    File {
        name: String,
        value: i64,
        weight: i32,
    },
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
            } => {
                if *weight == 0 {
                    if *value != 0 {
                        v.faults.push(name.clone());
                    }
                } else {
                    let add = value.saturating_mul(*weight as i64);
                    v.weight = v
                        .weight
                        .saturating_add(add.clamp(i32::MIN as i64, i32::MAX as i64) as i32);
                }
            }
        }
    }
    v
}

/// The integer a `track_file` holds: its first token, 0 when empty or unreadable (as
/// keepalived does for a missing file).
pub fn parse_track_file(content: &str) -> i64 {
    content
        .split_whitespace()
        .next()
        .and_then(|t| t.parse().ok())
        .unwrap_or(0)
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
            },
            Tracked::File {
                name: "/b".into(),
                value: 1,
                weight: 0,
            },
            Tracked::File {
                name: "/c".into(),
                value: 0,
                weight: 0,
            },
        ]);
        assert_eq!(v.weight, -6);
        assert_eq!(v.faults, vec!["/b".to_string()]);
        assert_eq!(parse_track_file(" 42\n"), 42);
        assert_eq!(parse_track_file("-5 trailing"), -5);
        assert_eq!(parse_track_file(""), 0);
        assert_eq!(parse_track_file("x"), 0);
    }
}
