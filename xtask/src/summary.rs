//! Runs `cargo test` with its output passed through, and ends with one line totalling
//! every test binary's `test result:` line (`summary: N passed, M failed`), so a reader
//! of the last line sees the whole run, not the last binary's count.

use std::{
    io::{BufRead, BufReader, Write},
    process::{Command, Stdio},
};

use anyhow::{bail, Context, Result};

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub passed: u64,
    pub failed: u64,
    pub ignored: u64,
}

impl Totals {
    /// Adds the counts of a `test result: ok. 3 passed; 0 failed; 1 ignored; ...` line.
    pub fn add_line(&mut self, line: &str) {
        let Some(rest) = line.trim().strip_prefix("test result:") else {
            return;
        };
        for part in rest.split(';') {
            let words: Vec<&str> = part.split_whitespace().collect();
            let count = |i: usize| {
                words
                    .get(i)
                    .and_then(|w| w.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            match words.as_slice() {
                [.., _, "passed"] => self.passed += count(words.len() - 2),
                [_, "failed"] => self.failed += count(0),
                [_, "ignored"] => self.ignored += count(0),
                _ => {}
            }
        }
    }
}

impl Totals {
    /// Adds every `test result:` line of a test log.
    pub fn add_log(&mut self, log: &str) {
        for line in log.lines() {
            self.add_line(line);
        }
    }

    pub fn add(&mut self, other: &Totals) {
        self.passed += other.passed;
        self.failed += other.failed;
        self.ignored += other.ignored;
    }

    /// The run's last line.
    pub fn line(&self) -> String {
        format!("summary: {} passed, {} failed", self.passed, self.failed)
    }
}

/// Runs `cmd`, echoing its stdout; the totals of its `test result:` lines, and whether
/// it succeeded.
pub fn run_counted(cmd: &mut Command) -> (Totals, Result<()>) {
    let mut totals = Totals::default();
    let result = run_into(cmd, &mut totals);
    (totals, result)
}

fn run_into(cmd: &mut Command, totals: &mut Totals) -> Result<()> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .context("starting cargo test")?;
    let stdout = child.stdout.take().context("cargo test stdout")?;
    let mut out = std::io::stdout().lock();
    for line in BufReader::new(stdout).lines() {
        let line = line.context("reading cargo test output")?;
        totals.add_line(&line);
        writeln!(out, "{line}")?;
    }
    let status = child.wait().context("waiting for cargo test")?;
    if !status.success() {
        bail!("cargo test failed ({status})");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_vm_logs_make_one_total() {
        let mut host = Totals::default();
        host.add_line("test result: ok. 10 passed; 0 failed; 2 ignored; 0 measured");
        let mut all = Totals::default();
        all.add(&host);
        all.add_log("running 7 tests\ntest result: ok. 7 passed; 0 failed; 0 ignored\nrunning 5 tests\ntest result: FAILED. 4 passed; 1 failed; 0 ignored\n");
        assert_eq!(all.line(), "summary: 21 passed, 1 failed");
        assert_eq!(all.ignored, 2);
    }

    #[test]
    fn totals_add_up_result_lines() {
        let mut t = Totals::default();
        t.add_line("test result: ok. 34 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 9.87s");
        t.add_line(
            "test result: FAILED. 2 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out",
        );
        t.add_line("running 3 tests");
        assert_eq!(
            t,
            Totals {
                passed: 36,
                failed: 1,
                ignored: 1
            }
        );
    }
}
