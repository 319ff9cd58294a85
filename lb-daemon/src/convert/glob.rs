//! The part of glob(3) keepalived's `include` uses: `*`, `?` and `[…]` in any path
//! component, matches sorted, names starting with `.` matched only by a pattern that
//! starts with `.`.

use std::io;
use std::path::{Component, Path, PathBuf};

pub(crate) fn has_wildcards(pattern: &str) -> bool {
    pattern.contains(['*', '?', '['])
}

/// The existing files `pattern` names, sorted; a pattern without wildcards names itself
/// when it exists.
pub(crate) fn expand(pattern: &Path) -> io::Result<Vec<PathBuf>> {
    let mut found = vec![PathBuf::new()];
    for component in pattern.components() {
        let part = match component {
            Component::Normal(part) => part.to_string_lossy().into_owned(),
            other => {
                for path in &mut found {
                    path.push(other.as_os_str());
                }
                continue;
            }
        };
        let mut next = Vec::new();
        for dir in &found {
            if !has_wildcards(&part) {
                let path = dir.join(&part);
                if path.symlink_metadata().is_ok() {
                    next.push(path);
                }
                continue;
            }
            let listing = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir.as_path()
            };
            let Ok(entries) = std::fs::read_dir(listing) else {
                continue;
            };
            let mut names: Vec<String> = entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| !name.starts_with('.') || part.starts_with('.'))
                .filter(|name| matches(&part, name))
                .collect();
            names.sort();
            next.extend(names.into_iter().map(|name| dir.join(name)));
        }
        found = next;
    }
    // Only regular files are configuration.
    let mut files = Vec::new();
    for path in found {
        if std::fs::metadata(&path)?.is_file() {
            files.push(path);
        }
    }
    Ok(files)
}

/// Whether `name` matches the shell pattern `pattern` (`*`, `?`, `[abc]`, `[a-z]`, `[!a]`).
pub(crate) fn matches(pattern: &str, name: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    match_from(&pattern, &name)
}

fn match_from(pattern: &[char], name: &[char]) -> bool {
    match pattern.first() {
        None => name.is_empty(),
        Some('*') => (0..=name.len()).any(|skip| match_from(&pattern[1..], &name[skip..])),
        Some('?') => !name.is_empty() && match_from(&pattern[1..], &name[1..]),
        Some('[') => match (class(&pattern[1..]), name.first()) {
            (Some((set_matches, used)), Some(&c)) => {
                set_matches(c) && match_from(&pattern[1 + used..], &name[1..])
            }
            // An unclosed `[` is an ordinary character, as in glob(3).
            (None, Some('[')) => match_from(&pattern[1..], &name[1..]),
            _ => false,
        },
        Some(&p) => name.first() == Some(&p) && match_from(&pattern[1..], &name[1..]),
    }
}

/// A `[…]` class after its `[`: the test and how many characters it used, `]` included.
#[allow(clippy::type_complexity)]
fn class(pattern: &[char]) -> Option<(Box<dyn Fn(char) -> bool>, usize)> {
    let negated = matches!(pattern.first(), Some('!' | '^'));
    let start = usize::from(negated);
    // A `]` right after `[` (or `[!`) is a member, not the end.
    let end = start + 1 + pattern.get(start + 1..)?.iter().position(|&c| c == ']')?;
    let members: Vec<char> = pattern[start..end].to_vec();
    let test = move |c: char| {
        let mut i = 0;
        let mut hit = false;
        while i < members.len() {
            if i + 2 < members.len() && members[i + 1] == '-' {
                hit |= (members[i]..=members[i + 2]).contains(&c);
                i += 3;
            } else {
                hit |= members[i] == c;
                i += 1;
            }
        }
        hit != negated
    };
    Some((Box::new(test), end + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_patterns() {
        assert!(matches("*.conf", "a.conf"));
        assert!(!matches("*.conf", "a.conf.bak"));
        assert!(matches("vs?.conf", "vs1.conf"));
        assert!(matches("vs[0-9].conf", "vs7.conf"));
        assert!(!matches("vs[!0-9].conf", "vs7.conf"));
        assert!(matches("[]a]", "]"));
        assert!(matches("a[b", "a[b"));
    }

    #[test]
    fn expands_sorted_and_skips_hidden_files() {
        let dir = std::env::temp_dir().join(format!("lb-glob-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("conf.d")).unwrap();
        for name in ["b.conf", "a.conf", ".hidden.conf", "c.txt"] {
            std::fs::write(dir.join("conf.d").join(name), "").unwrap();
        }
        let found = expand(&dir.join("conf.d/*.conf")).unwrap();
        let names: Vec<_> = found
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a.conf", "b.conf"]);
        assert!(expand(&dir.join("nothing/*.conf")).unwrap().is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
