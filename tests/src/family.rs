//! The address family of a table-driven test case: tests that differ only in IPv4 vs IPv6
//! addresses run one body over a table of cases, each naming its family.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    /// `v4` or `v6`, whichever belongs to this family.
    pub fn pick<T>(self, v4: T, v6: T) -> T {
        match self {
            Family::V4 => v4,
            Family::V6 => v6,
        }
    }
}

/// Prints the case before running it: a failing assertion's output then names the case
/// (the test harness shows a failed test's captured output).
pub fn announce(case: &impl std::fmt::Debug) {
    println!("case: {case:?}");
}
