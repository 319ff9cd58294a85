//! Reading a configuration file's text (TOML or keepalived.conf) with the checks every
//! reader needs: a regular file (or a pipe) of bounded size, valid UTF-8 with the first
//! bad byte named by line and column, and no control characters TOML forbids.

use std::io::Read;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use super::diagnostic::{Diagnostic, Severity, MAX_ERRORS};

/// A configuration bigger than this is not one: reading stops there (the size of
/// `/dev/zero` is not asked).
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// What kind of file `path` is, when it is not one a configuration can be read from
/// ("a directory", "a character device", ...); `None` for a regular file or a pipe.
pub fn unreadable_kind(path: &Path) -> Option<&'static str> {
    let kind = std::fs::metadata(path).ok()?.file_type();
    if kind.is_file() || kind.is_fifo() {
        None
    } else if kind.is_dir() {
        Some("a directory")
    } else if kind.is_char_device() {
        Some("a character device")
    } else if kind.is_block_device() {
        Some("a block device")
    } else if kind.is_socket() {
        Some("a socket")
    } else {
        Some("not a regular file")
    }
}

/// The text of `path`, or the one diagnostic that says why it cannot be configuration.
pub fn read(path: &Path) -> Result<String, Diagnostic> {
    let whole_file = |message: String, hint: Option<&str>| Diagnostic {
        severity: Severity::Error,
        file: path.to_owned(),
        line: 0,
        column: 0,
        key: String::new(),
        message,
        hint: hint.map(Into::into),
    };
    if let Some(kind) = unreadable_kind(path) {
        return Err(whole_file(
            format!("is {kind}, not a regular file"),
            Some("name the configuration file itself"),
        ));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| whole_file(format!("cannot read the file: {e}"), None))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(whole_file(
            format!("is larger than {} MiB", MAX_FILE_BYTES >> 20),
            Some("split it with include, or check that this is the right file"),
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        let good = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        // Valid up to here, so the prefix is text.
        let before = std::str::from_utf8(good).unwrap_or_default();
        let (line, column) = line_column(before, before.len());
        Diagnostic {
            line,
            column,
            ..whole_file(
                format!("invalid UTF-8 (byte 0x{:02x})", e.as_bytes()[good.len()]),
                Some("save the file as UTF-8"),
            )
        }
    })
}

/// 1-based line and column (in characters) of byte `at` in `text`.
fn line_column(text: &str, at: usize) -> (usize, usize) {
    let before = &text[..at];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (
        before.matches('\n').count() + 1,
        before[line_start..].chars().count() + 1,
    )
}

/// Control characters TOML allows nowhere (everything below 0x20 but tab, LF and CR,
/// and DEL), each an error at its line and column: at most [`MAX_ERRORS`] of them and a
/// count of the rest, so a megabyte of them costs no more than a few.
pub fn control_characters(text: &str, path: &Path) -> Vec<Diagnostic> {
    let mut found = Vec::new();
    let mut omitted = 0;
    let (mut line, mut line_start) = (1, 0);
    for (at, c) in text.char_indices() {
        if c == '\n' {
            line += 1;
            line_start = at + 1;
            continue;
        }
        if !c.is_ascii_control() || matches!(c, '\t' | '\r') {
            continue;
        }
        if found.len() == MAX_ERRORS {
            omitted += 1;
            continue;
        }
        found.push(Diagnostic {
            severity: Severity::Error,
            file: path.to_owned(),
            line,
            column: text[line_start..at].chars().count() + 1,
            key: String::new(),
            message: format!(
                "control character {} is not allowed in TOML",
                c.escape_default()
            ),
            hint: Some("remove it, or write it as an escape inside a string".into()),
        });
    }
    if omitted > 0 {
        found.push(Diagnostic::more_not_shown(path, Severity::Error, omitted));
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(crate::netns::unique_name("lb-text"));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn a_bad_byte_is_named_by_line_and_column() {
        let path = temp("lb.toml", b"[global]\nrouter_id = \"l\xe9b\"\n");
        let d = read(&path).unwrap_err();
        assert_eq!((d.line, d.column), (2, 15));
        assert!(d.to_string().contains("invalid UTF-8 (byte 0xe9)"), "{d}");
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn devices_and_directories_are_named_for_what_they_are() {
        let d = read(Path::new("/dev/zero")).unwrap_err();
        assert!(d.message.contains("a character device"), "{d}");
        let d = read(Path::new("/")).unwrap_err();
        assert!(d.message.contains("a directory"), "{d}");
    }

    #[test]
    fn control_characters_are_found_and_capped() {
        let text = format!("a = 1\nb\x1b = 2\n{}", "\x01".repeat(100_000));
        let found = control_characters(&text, Path::new("t.toml"));
        assert_eq!((found[0].line, found[0].column), (2, 2));
        assert_eq!(found.len(), MAX_ERRORS + 1);
        assert!(
            found[MAX_ERRORS].message.contains("and 99961 more"),
            "{}",
            found[MAX_ERRORS]
        );
        assert!(control_characters("a = \"\t\"\r\n", Path::new("t")).is_empty());
    }
}
