//! What the loader tells the operator: errors and warnings, each pinned to a file position
//! and a key, printed the way compilers do so editors can jump to them.

use std::fmt;
use std::path::PathBuf;

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

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.file.display())?;
        if self.line > 0 {
            write!(f, "{}:{}:", self.line, self.column)?;
        }
        write!(f, " {}: ", self.severity)?;
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, " ({hint})")?;
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
    fn config_errors_list_every_error_on_its_own_line() {
        let errors = ConfigErrors {
            errors: vec![diag("a", None), diag("b", None)],
            warnings: vec![],
        };
        assert_eq!(errors.to_string().lines().count(), 2);
    }
}
