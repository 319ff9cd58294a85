//! What the converter reports: the loader's [`Diagnostic`]s, positioned in the
//! keepalived file (`FILE:LINE:COL: error: BLOCK: MESSAGE (WHAT TO DO)`).

use crate::config::suggest;
use crate::config::{Diagnostic, Severity, MAX_ERRORS};

use super::lexer::Pos;

#[derive(Debug, Default)]
pub(crate) struct Diags {
    pub list: Vec<Diagnostic>,
    /// Past [`MAX_ERRORS`] of a severity the rest are only counted (errors, warnings).
    omitted: [usize; 2],
}

impl Diags {
    pub(crate) fn error(
        &mut self,
        pos: &Pos,
        context: &str,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        self.push(Severity::Error, pos, context, message.into(), hint);
    }

    pub(crate) fn warning(
        &mut self,
        pos: &Pos,
        context: &str,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        self.push(Severity::Warning, pos, context, message.into(), hint);
    }

    /// An unknown keyword, with the closest known one.
    pub(crate) fn unknown(&mut self, pos: &Pos, context: &str, keyword: &str, known: &[&str]) {
        // Past the cap the suggestion (an edit distance per known keyword) is not worth
        // computing: a file of garbage is one unknown keyword per line.
        if self.is_full(Severity::Error) {
            self.omitted[0] += 1;
            return;
        }
        let hint = match suggest::closest(keyword, known.iter().copied()) {
            Some(best) => format!("did you mean `{best}`?"),
            None => "see docs/convert.md for the keywords this block takes".into(),
        };
        let place = if context.is_empty() {
            "at the top level".to_owned()
        } else {
            format!("in {context}")
        };
        self.error(
            pos,
            context,
            format!("unknown keyword `{keyword}` {place}"),
            Some(hint),
        );
    }

    fn is_full(&self, severity: Severity) -> bool {
        self.list.iter().filter(|d| d.severity == severity).count() >= MAX_ERRORS
    }

    /// The diagnostics, at most [`MAX_ERRORS`] of each severity and a count of the rest.
    pub(crate) fn finish(mut self, file: &std::path::Path) -> Vec<Diagnostic> {
        for (severity, n) in [Severity::Error, Severity::Warning]
            .into_iter()
            .zip(self.omitted)
        {
            if n > 0 {
                self.list
                    .push(Diagnostic::more_not_shown(file, severity, n));
            }
        }
        self.list
    }

    fn push(
        &mut self,
        severity: Severity,
        pos: &Pos,
        context: &str,
        message: String,
        hint: Option<String>,
    ) {
        if self.is_full(severity) {
            self.omitted[usize::from(severity == Severity::Warning)] += 1;
            return;
        }
        self.list.push(Diagnostic {
            severity,
            file: pos.file.as_ref().clone(),
            line: pos.line,
            column: pos.column,
            key: context.to_owned(),
            message,
            hint,
        });
    }
}
