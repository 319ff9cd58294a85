//! `run` and `check-config` take either format: a file whose first significant line is
//! not TOML (`[table]` or `key = value`) is keepalived's, converted in memory, and every
//! diagnostic points into it.

use std::path::Path;
use std::sync::OnceLock;

use crate::config::{Config, ConfigErrors, Diagnostic, Loaded};

use super::{convert_str, Converted};

static CONFIG_ID: OnceLock<String> = OnceLock::new();

/// Sets the id `@id` lines are matched against (keepalived's `--config-id`) for this
/// process; the first call wins.
pub fn set_config_id(id: String) {
    let _ = CONFIG_ID.set(id);
}

/// The id set by [`set_config_id`], else the host name up to its first dot, as in
/// keepalived.
pub fn config_id() -> String {
    if let Some(id) = CONFIG_ID.get() {
        return id.clone();
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host = host.trim();
    host.split('.').next().unwrap_or(host).to_owned()
}

/// Whether `text` is keepalived's language rather than TOML, judged by its first line
/// that is not blank or a comment: TOML starts with `[table]` or `key = value`,
/// keepalived with a keyword (`global_defs {`, `vrrp_instance VI_1 {`, `include …`,
/// `$NAME=…`, `@id …`).
pub fn is_keepalived(text: &str) -> bool {
    let Some(first) = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('!'))
    else {
        return false;
    };
    if first.starts_with('[') {
        return false;
    }
    let key_end = first
        .find(|c: char| !(c.is_ascii_alphanumeric() || "_-.\"'".contains(c)))
        .unwrap_or(first.len());
    let toml_key = key_end > 0 && first[key_end..].trim_start().starts_with('=');
    !toml_key
}

/// A loaded configuration, and the conversion it came from when it was keepalived's.
pub struct LoadedFile {
    pub loaded: Loaded,
    converted: Option<Converted>,
}

impl LoadedFile {
    /// A diagnostic about the loaded configuration, pointing into the file as written.
    pub fn remap(&self, d: Diagnostic) -> Diagnostic {
        match &self.converted {
            Some(c) => c.remap(d),
            None => d,
        }
    }
}

/// Reads `path` in either format.
pub fn load(path: &Path) -> Result<LoadedFile, ConfigErrors> {
    let text = crate::config::file_text::read(path).map_err(|d| ConfigErrors {
        errors: vec![d],
        warnings: Vec::new(),
    })?;
    if !is_keepalived(&text) {
        return Config::from_str(&text, path).map(|loaded| LoadedFile {
            loaded,
            converted: None,
        });
    }
    let converted = convert_str(&text, path, &config_id())?;
    match Config::from_str(&converted.toml, path) {
        Ok(mut loaded) => {
            let mut warnings = converted.warnings.clone();
            warnings.extend(loaded.warnings.drain(..).map(|w| converted.remap(w)));
            loaded.warnings = warnings;
            Ok(LoadedFile {
                loaded,
                converted: Some(converted),
            })
        }
        Err(e) => {
            let mut warnings = converted.warnings.clone();
            warnings.extend(e.warnings.into_iter().map(|w| converted.remap(w)));
            Err(ConfigErrors {
                errors: e.errors.into_iter().map(|d| converted.remap(d)).collect(),
                warnings,
            })
        }
    }
}
