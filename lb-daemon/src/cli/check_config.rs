//! `lb-daemon check-config FILE`: everything a running daemon would reject, with
//! file:line:column, the key and what to do.

use std::path::Path;

use anyhow::Result;

use crate::config::{self, Invalid, Loaded};
use crate::convert;

/// Loads the file (TOML, or keepalived's language converted in memory) and checks what
/// needs the live system (interfaces). Refusals are an [`Invalid`].
pub fn load_checked(path: &Path) -> Result<Loaded> {
    let file = match convert::load(path) {
        Ok(f) => f,
        Err(errors) => {
            return Err(Invalid {
                summary: format!("{}: the configuration is invalid", path.display()),
                report: errors.to_string(),
            }
            .into())
        }
    };
    let loaded = &file.loaded;
    let mut missing = config::check_interfaces(&loaded.config, |name| {
        nix::net::if_::if_nametoindex(name).is_ok()
    });
    missing.extend(config::check_availability(&loaded.config));
    let missing: Vec<_> = missing.into_iter().map(|d| file.remap(d)).collect();
    if !missing.is_empty() {
        let report = config::cap(missing)
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>();
        return Err(Invalid {
            summary: format!(
                "{}: the configuration names interfaces that do not exist, or asks the data plane for what it cannot do",
                path.display()
            ),
            report: report.join("\n"),
        }
        .into());
    }
    Ok(file.loaded)
}

pub fn run(path: &Path) -> Result<()> {
    let loaded = load_checked(path)?;
    for w in &loaded.warnings {
        eprintln!("{w}");
    }
    println!("{}: OK", path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    /// The Debian package's /etc/lb/lb.toml.
    const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/debian/lb.toml");

    /// The shipped file with its commented example sections and keys uncommented.
    fn uncommented(text: &str) -> String {
        text.lines()
            .map(|line| match line.strip_prefix("# ") {
                Some(rest) if rest.starts_with('[') || rest.contains(" = ") => rest,
                _ => line,
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn the_packaged_configuration_and_its_example_are_valid() {
        let dir = std::env::temp_dir().join(crate::netns::unique_name("lb-conffile"));
        std::fs::create_dir_all(&dir).unwrap();
        let text = std::fs::read_to_string(SHIPPED).unwrap();
        let example = dir.join("example.toml");
        std::fs::write(&example, uncommented(&text)).unwrap();
        for path in [std::path::Path::new(SHIPPED), &example] {
            if let Err(errors) = crate::convert::load(path) {
                panic!("{}: {errors}", path.display());
            }
        }
        let loaded = crate::convert::load(&example).ok().unwrap().loaded;
        assert_eq!(loaded.config.vrrp_instances.len(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
