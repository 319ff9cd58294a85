//! The daemon's configuration file: TOML with keepalived's names.
//!
//! Operators migrating from keepalived find the same keys in lower case (`[global]` is
//! `global_defs`, each `vrrp_instance NAME { … }` block is a `[[vrrp_instance]]` table with
//! `name = "NAME"`), the same defaults and the same ranges. Loading never stops at the
//! first problem: every error and warning comes back as a [`Diagnostic`] pointing at a
//! line, a column and a key.
//!
//! ```text
//! lb.toml:14:12: error: vrrp_instance "VI_1".priority: must be between 1 and 255, got 300
//! lb.toml:15:1: error: vrrp_instance "VI_1".priorty: unknown key (did you mean `priority`?)
//! ```
//!
//! Layout: `schema` holds the typed result and `check` the health checkers' parameters;
//! `reader` reads the spanned toml tree into them through the section decoders in
//! `decode`; `validate` holds the cross-section rules; [`check_interfaces`] is the one
//! check that needs the machine.
//!
//! A leaf: plain data and its validation, depending on nothing else in the daemon (only
//! on `lb_common` for the protocol and the Maglev table sizes). Each consumer maps it to
//! its own types in its `from_config` module (`dataplane`, `ipvs`, `health`).

mod address;
mod availability;
pub mod check;
mod decode;
mod diagnostic;
mod duration;
pub mod file_text;
mod interfaces;
mod reader;
pub mod route;
mod schema;
mod source;
pub(crate) mod suggest;
mod validate;

#[cfg(test)]
mod tests;

use std::path::Path;

use toml::de::DeTable;

pub use address::{AddressError, AddressFamily, VirtualAddress};
pub use availability::check_availability;
pub use diagnostic::{cap, ConfigErrors, Diagnostic, Invalid, Severity, MAX_ERRORS};
pub use duration::{parse_duration, DurationError};
pub use interfaces::check_interfaces;
pub use route::{IpRoute, IpRule, Prefix, RouteError, RuleAction};
pub use schema::*;

use reader::Decoder;
use source::LineIndex;

/// A configuration that loaded, with the warnings found on the way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<Diagnostic>,
}

impl Config {
    /// Reads, parses and validates the file at `path`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Loaded, ConfigErrors> {
        let path = path.as_ref();
        match file_text::read(path) {
            Ok(text) => Self::from_str(&text, path),
            Err(d) => Err(ConfigErrors {
                errors: vec![d],
                warnings: Vec::new(),
            }),
        }
    }

    /// Parses and validates `text`; `path` only names the file in diagnostics.
    pub fn from_str(text: &str, path: impl AsRef<Path>) -> Result<Loaded, ConfigErrors> {
        let path = path.as_ref();
        // Before the parser, which would report each one (and keep them all).
        let control = file_text::control_characters(text, path);
        if !control.is_empty() {
            return Err(ConfigErrors {
                errors: control,
                warnings: Vec::new(),
            });
        }
        let (root, syntax_errors) = DeTable::parse_recoverable(text);
        if !syntax_errors.is_empty() {
            // Past a syntax error the tree is a guess; checking it would mostly add noise.
            return Err(ConfigErrors {
                errors: cap(syntax(path, text, &syntax_errors)),
                warnings: Vec::new(),
            });
        }
        let mut decoder = Decoder::new(text);
        let decoded = decode::document(&mut decoder, &root);
        let failed = decoder.error_count() > 0;
        let (source, diagnostics) = decoder.finish(path);
        let (errors, warnings): (Vec<_>, Vec<_>) =
            diagnostics.into_iter().partition(Diagnostic::is_error);
        if failed {
            return Err(ConfigErrors {
                errors: cap(errors),
                warnings: cap(warnings),
            });
        }
        let mut warnings = cap(warnings);
        if decoded.instances.is_empty() && decoded.virtual_servers.is_empty() {
            // keepalived starts with nothing to do too; the operator should know.
            warnings.push(Diagnostic {
                severity: Severity::Warning,
                file: path.to_owned(),
                line: 0,
                column: 0,
                key: String::new(),
                message: "nothing is configured: no vrrp_instance and no virtual_server".into(),
                hint: Some(
                    "check that this is the right file: the daemon would run with nothing to do"
                        .into(),
                ),
            });
        }
        Ok(Loaded {
            config: Config {
                global: decoded.global,
                vrrp_scripts: decoded.scripts,
                vrrp_track_processes: decoded.processes,
                bfd_instances: decoded.bfd_instances,
                vrrp_instances: decoded.instances,
                vrrp_sync_groups: decoded.groups,
                virtual_servers: decoded.virtual_servers,
                bgp: decoded.bgp,
                static_network: decoded.static_network,
                sync: decoded.sync,
                source,
            },
            warnings,
        })
    }
}

fn syntax(path: &Path, text: &str, errors: &[toml::de::Error]) -> Vec<Diagnostic> {
    let lines = LineIndex::new(text);
    let mut diagnostics: Vec<Diagnostic> = errors
        .iter()
        .map(|e| {
            let pos = lines.position(e.span().map_or(0, |s| s.start));
            Diagnostic {
                severity: Severity::Error,
                file: path.to_owned(),
                line: pos.line,
                column: pos.column,
                key: String::new(),
                message: e.message().trim().replace('\n', "; "),
                hint: None,
            }
        })
        .collect();
    diagnostics.sort_by_key(|d| (d.line, d.column));
    diagnostics
}
