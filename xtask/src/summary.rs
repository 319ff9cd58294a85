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

/// Runs `cmd`, echoing its stdout, and prints the totals last.
pub fn run_with_summary(cmd: &mut Command) -> Result<()> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .context("starting cargo test")?;
    let stdout = child.stdout.take().context("cargo test stdout")?;
    let mut totals = Totals::default();
    let mut out = std::io::stdout().lock();
    for line in BufReader::new(stdout).lines() {
        let line = line.context("reading cargo test output")?;
        totals.add_line(&line);
        writeln!(out, "{line}")?;
    }
    let status = child.wait().context("waiting for cargo test")?;
    writeln!(
        out,
        "summary: {} passed, {} failed",
        totals.passed, totals.failed
    )?;
    if !status.success() {
        bail!("cargo test failed ({status})");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
