//! What the loader tells the operator: errors and warnings, each pinned to a file position
//! and a key, printed the way compilers do so editors can jump to them.

use std::fmt;
use std::path::{Path, PathBuf};

/// Errors (and warnings) reported per file, as keepalived does: past a few dozen the rest
/// is noise, and a file of garbage must not cost megabytes of output.
pub const MAX_ERRORS: usize = 40;

/// How bad a [`Diagnostic`] is: errors reject the file, warnings only inform.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Error,
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// One finding about the configuration.
///
/// Displays as `FILE:LINE:COL: error: KEY: MESSAGE (HINT)`; the key and the hint are left
/// out when empty. `line` and `column` are 1-based; both are 0 when the finding is about the
/// file as a whole (it could not be read).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    /// Dotted key such as `vrrp_instance "VI_1".priority`; empty for syntax errors.
    pub key: String,
    pub message: String,
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl Diagnostic {
    /// The line that stands for `omitted` diagnostics left out past [`MAX_ERRORS`].
    pub fn more_not_shown(file: &Path, severity: Severity, omitted: usize) -> Self {
        Diagnostic {
            severity,
            file: file.to_owned(),
            line: 0,
            column: 0,
            key: String::new(),
            message: format!("and {omitted} more {severity}s not shown"),
            hint: Some("fix these first".into()),
        }
    }
}

/// `list` with at most [`MAX_ERRORS`] of each severity, the rest counted in one line.
pub fn cap(list: Vec<Diagnostic>) -> Vec<Diagnostic> {
    let mut kept = Vec::with_capacity(list.len().min(2 * MAX_ERRORS + 2));
    let mut omitted = [(Severity::Error, 0, None), (Severity::Warning, 0, None)];
    for d in list {
        let seen = kept
            .iter()
            .filter(|k: &&Diagnostic| k.severity == d.severity)
            .count();
        if seen < MAX_ERRORS {
            kept.push(d);
        } else if let Some(o) = omitted.iter_mut().find(|o| o.0 == d.severity) {
            o.1 += 1;
            o.2.get_or_insert(d.file);
        }
    }
    for (severity, n, file) in omitted {
        if let Some(file) = file {
            kept.push(Diagnostic::more_not_shown(&file, severity, n));
        }
    }
    kept
}

/// Config text quoted in a diagnostic, control characters escaped (`\u{1b}`): a file
/// holding `ESC[2J` must not clear the operator's terminal.
struct Escaped<'a>(&'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            if c.is_control() && c != '\t' {
                write!(f, "{}", c.escape_default())?;
            } else {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", Escaped(&self.file.to_string_lossy()))?;
        if self.line > 0 {
            write!(f, "{}:{}:", self.line, self.column)?;
        }
        write!(f, " {}: ", self.severity)?;
        if !self.key.is_empty() {
            write!(f, "{}: ", Escaped(&self.key))?;
        }
        write!(f, "{}", Escaped(&self.message))?;
        if let Some(hint) = &self.hint {
            write!(f, " ({})", Escaped(hint))?;
        }
        Ok(())
    }
}

/// The file was rejected: every error found (never just the first), plus the warnings
/// gathered on the way so a fixed file does not surprise the operator with new ones.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", render(.errors))]
pub struct ConfigErrors {
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
}

/// A configuration refused: the one-line summary (Display), and the diagnostics
/// (file:line:col each) that `check-config` prints above it and `reload` sends back.
#[derive(Debug, thiserror::Error)]
#[error("{summary}")]
pub struct Invalid {
    pub summary: String,
    pub report: String,
}

impl Invalid {
    /// The report then the summary, as the operator reads them.
    pub fn full(&self) -> String {
        if self.report.is_empty() {
            self.summary.clone()
        } else {
            format!("{}\n{}", self.report, self.summary)
        }
    }
}

fn render(diagnostics: &[Diagnostic]) -> String {
    diagnostics
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diag(key: &str, hint: Option<&str>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            file: PathBuf::from("lb.toml"),
            line: 12,
            column: 3,
            key: key.into(),
            message: "unknown key `priorty`".into(),
            hint: hint.map(Into::into),
        }
    }

    #[test]
    fn display_has_position_key_message_and_hint() {
        let d = diag("vrrp_instance \"VI_1\"", Some("did you mean `priority`?"));
        assert_eq!(
            d.to_string(),
            "lb.toml:12:3: error: vrrp_instance \"VI_1\": unknown key `priorty` (did you mean `priority`?)"
        );
    }

    #[test]
    fn display_omits_empty_key_hint_and_missing_position() {
        let mut d = diag("", None);
        assert_eq!(d.to_string(), "lb.toml:12:3: error: unknown key `priorty`");
        d.line = 0;
        d.column = 0;
        d.severity = Severity::Warning;
        assert_eq!(d.to_string(), "lb.toml: warning: unknown key `priorty`");
    }

    #[test]
    fn control_characters_are_escaped() {
        let mut d = diag("a\x1b[2J", Some("\u{7}"));
        d.message = "unknown key `\x1b[2J\r`".into();
        let shown = d.to_string();
        assert!(!shown.chars().any(|c| c.is_control()), "{shown:?}");
        assert!(shown.contains(r"\u{1b}[2J\r"), "{shown}");
    }

    #[test]
    fn cap_keeps_a_few_dozen_and_counts_the_rest() {
        let capped = cap(vec![diag("k", None); 100_000]);
        assert_eq!(capped.len(), MAX_ERRORS + 1);
        assert_eq!(
            capped.last().unwrap().to_string(),
            "lb.toml: error: and 99960 more errors not shown (fix these first)"
        );
        assert_eq!(cap(vec![diag("k", None); 3]).len(), 3);
    }

    #[test]
    fn config_errors_list_every_error_on_its_own_line() {
        let errors = ConfigErrors {
            errors: vec![diag("a", None), diag("b", None)],
            warnings: vec![],
        };
        assert_eq!(errors.to_string().lines().count(), 2);
    }
}
