//! `lb-daemon convert FILE [-o OUT.toml] [--config-id ID]`: a keepalived configuration as
//! this project's TOML, approximations marked by comments and warnings, constructs that
//! cannot be expressed refused with file:line and what to do.

use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::convert;

pub fn run(file: &Path, output: Option<&Path>, config_id: Option<String>) -> Result<()> {
    let id = config_id.unwrap_or_else(convert::config_id);
    let converted = match convert::convert_file(file, &id) {
        Ok(c) => c,
        Err(errors) => {
            for w in &errors.warnings {
                eprintln!("{w}");
            }
            eprintln!("{errors}");
            bail!(
                "{}: not converted ({} errors above: fix or remove those lines)",
                file.display(),
                errors.errors.len()
            );
        }
    };
    for w in &converted.warnings {
        eprintln!("{w}");
    }
    match output {
        Some(out) => {
            std::fs::write(out, &converted.toml)
                .with_context(|| format!("writing {}", out.display()))?;
            eprintln!(
                "{}: written ({} approximations marked `# approximated:`); check it with `lb-daemon check-config {}`",
                out.display(),
                converted.warnings.len(),
                out.display()
            );
        }
        None => print!("{}", converted.toml),
    }
    Ok(())
}
