//! `lb-daemon convert`: a keepalived configuration as this project's TOML.
//!
//! keepalived's language is read as keepalived reads it ([`lexer`]: comments, `include`
//! globs, `$NAME` definitions, `@id` lines; [`parser`]: blocks), then each block is
//! written as TOML ([`emit`]): every construct either maps to a key the loader accepts,
//! becomes a comment (with a warning when the behaviour differs), or is an error saying
//! file:line and what to do. Each TOML line remembers the keepalived line it came from,
//! so when `run` and `check-config` load a keepalived.conf in memory ([`load`]), the
//! loader's own diagnostics point into the keepalived file.
//!
//! ```text
//! keepalived.conf:12:5: error: vrrp_instance VI_1: unknown keyword `priorty` in vrrp_instance VI_1 (did you mean `priority`?)
//! ```

mod diag;
mod emit;
mod glob;
mod lexer;
mod load;
mod parser;
mod sequence;
mod toml_out;
mod value;

#[cfg(test)]
mod tests;

use std::path::Path;

use crate::config::{ConfigErrors, Diagnostic};

use diag::Diags;
use lexer::Pos;

pub use load::{config_id, is_keepalived, load, set_config_id, LoadedFile};

/// A converted configuration.
#[derive(Clone, Debug)]
pub struct Converted {
    /// The TOML document.
    pub toml: String,
    /// What was approximated (also written as comments in [`Self::toml`]).
    pub warnings: Vec<Diagnostic>,
    /// For each TOML line, the keepalived position it came from.
    origin: Vec<Option<Pos>>,
}

impl Converted {
    /// `d` (about the TOML text) moved to the keepalived line the TOML line came from.
    pub fn remap(&self, mut d: Diagnostic) -> Diagnostic {
        let origin = d
            .line
            .checked_sub(1)
            .and_then(|i| self.origin.get(i))
            .and_then(Option::as_ref);
        if let Some(pos) = origin {
            d.file = pos.file.as_ref().clone();
            d.line = pos.line;
            d.column = pos.column;
        }
        d
    }
}

/// Converts the keepalived configuration at `path`; `config_id` selects `@id` lines.
pub fn convert_file(path: &Path, config_id: &str) -> Result<Converted, ConfigErrors> {
    match crate::config::file_text::read(path) {
        Ok(text) => convert_str(&text, path, config_id),
        Err(d) => Err(ConfigErrors {
            errors: vec![d],
            warnings: Vec::new(),
        }),
    }
}

/// Converts `text`, the content of `path` (includes are relative to its directory).
pub fn convert_str(text: &str, path: &Path, config_id: &str) -> Result<Converted, ConfigErrors> {
    let mut diags = Diags::default();
    let lines = lexer::read(path, text, config_id, &mut diags);
    let stmts = parser::parse(lines, &mut diags);
    let header = vec![
        format!(
            "Converted from {} by `lb-daemon convert` (config id `{config_id}`).",
            path.display()
        ),
        "Comments starting with `approximated:` mark what behaves differently from keepalived (docs/convert.md).".to_owned(),
    ];
    let rendered = emit::document(&stmts, &mut diags, &header);
    let (errors, warnings): (Vec<_>, Vec<_>) = diags
        .finish(path)
        .into_iter()
        .partition(Diagnostic::is_error);
    if !errors.is_empty() {
        return Err(ConfigErrors { errors, warnings });
    }
    Ok(Converted {
        toml: rendered.text,
        warnings,
        origin: rendered.origin,
    })
}
