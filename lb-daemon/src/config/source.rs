//! Where things are in the file: key paths, byte offset → line:column, and the index of
//! positions a loaded [`Config`](super::Config) keeps so later checks (interfaces, reloads)
//! can still point at the right line.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path as FsPath, PathBuf};

use super::diagnostic::{Diagnostic, Severity};

/// Byte range into the configuration text, as the toml parser reports it.
pub(crate) type Span = Range<usize>;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Key(String),
    Index(usize),
    /// An entry of an array of tables, shown by its `name` when it has one.
    Entry(usize, Option<String>),
}

/// A key path such as `vrrp_instance[0].track_script[1].weight`.
///
/// Displayed with entry names where known (`vrrp_instance "VI_1".priority`), which is what
/// an operator recognises; looked up by index, which is stable while the name may be
/// missing or duplicated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct KeyPath {
    segments: Vec<Segment>,
}

impl KeyPath {
    pub(crate) fn root() -> Self {
        Self::default()
    }

    pub(crate) fn key(&self, key: &str) -> Self {
        self.with(Segment::Key(key.to_owned()))
    }

    pub(crate) fn index(&self, index: usize) -> Self {
        self.with(Segment::Index(index))
    }

    pub(crate) fn entry(&self, index: usize, name: Option<&str>) -> Self {
        self.with(Segment::Entry(index, name.map(str::to_owned)))
    }

    fn with(&self, segment: Segment) -> Self {
        let mut segments = self.segments.clone();
        segments.push(segment);
        Self { segments }
    }

    fn parent(&self) -> Option<Self> {
        let mut segments = self.segments.clone();
        segments.pop()?;
        Some(Self { segments })
    }

    /// The index-based form used as the position index key.
    fn lookup_key(&self) -> String {
        let mut out = String::new();
        for segment in &self.segments {
            match segment {
                Segment::Key(key) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(key);
                }
                Segment::Index(i) | Segment::Entry(i, _) => {
                    out.push_str(&format!("[{i}]"));
                }
            }
        }
        out
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, segment) in self.segments.iter().enumerate() {
            match segment {
                Segment::Key(key) if n == 0 => f.write_str(key)?,
                Segment::Key(key) => write!(f, ".{key}")?,
                Segment::Index(i) | Segment::Entry(i, None) => write!(f, "[{i}]")?,
                Segment::Entry(_, Some(name)) => write!(f, " {name:?}")?,
            }
        }
        Ok(())
    }
}

/// A 1-based line and column (columns count characters, not bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Position {
    pub line: usize,
    pub column: usize,
}

/// Converts byte offsets into positions.
pub(crate) struct LineIndex<'t> {
    text: &'t str,
    line_starts: Vec<usize>,
}

impl<'t> LineIndex<'t> {
    pub(crate) fn new(text: &'t str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self { text, line_starts }
    }

    pub(crate) fn position(&self, offset: usize) -> Position {
        let offset = offset.min(self.text.len());
        // Index of the last line starting at or before `offset`; line 0 always starts at 0.
        let line = self.line_starts.partition_point(|&s| s <= offset) - 1;
        let start = self.line_starts[line];
        let column = self
            .text
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count());
        Position {
            line: line + 1,
            column: column + 1,
        }
    }
}

/// Positions of the keys of a loaded file, by key path.
#[derive(Clone, Debug, Default)]
pub(crate) struct SourceIndex {
    file: PathBuf,
    positions: HashMap<String, Position>,
}

impl SourceIndex {
    pub(crate) fn new(file: &FsPath, index: &LineIndex<'_>, spans: &[(KeyPath, Span)]) -> Self {
        let positions = spans
            .iter()
            .map(|(path, span)| (path.lookup_key(), index.position(span.start)))
            .collect();
        Self {
            file: file.to_owned(),
            positions,
        }
    }

    /// Whether `path` itself was written in the file.
    pub(crate) fn written(&self, path: &KeyPath) -> bool {
        self.positions.contains_key(&path.lookup_key())
    }

    /// Position of `path`, or of its closest enclosing key when it was not written (a
    /// defaulted value is reported where its table is).
    pub(crate) fn locate(&self, path: &KeyPath) -> Position {
        let mut current = Some(path.clone());
        while let Some(p) = current {
            if let Some(pos) = self.positions.get(&p.lookup_key()) {
                return *pos;
            }
            current = p.parent();
        }
        Position { line: 1, column: 1 }
    }

    pub(crate) fn diagnostic(
        &self,
        severity: Severity,
        path: &KeyPath,
        message: impl Into<String>,
        hint: Option<String>,
    ) -> Diagnostic {
        let pos = self.locate(path);
        Diagnostic {
            severity,
            file: self.file.clone(),
            line: pos.line,
            column: pos.column,
            key: path.to_string(),
            message: message.into(),
            hint,
        }
    }
}

// Where a file came from says nothing about what it configures: two configs with the same
// settings are equal whatever their line numbers.
impl PartialEq for SourceIndex {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for SourceIndex {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_displays_names_and_looks_up_by_index() {
        let p = KeyPath::root()
            .key("vrrp_instance")
            .entry(0, Some("VI_1"))
            .key("track_script")
            .index(1)
            .key("weight");
        assert_eq!(
            p.to_string(),
            "vrrp_instance \"VI_1\".track_script[1].weight"
        );
        assert_eq!(p.lookup_key(), "vrrp_instance[0].track_script[1].weight");
        let unnamed = KeyPath::root()
            .key("vrrp_instance")
            .entry(2, None)
            .key("priority");
        assert_eq!(unnamed.to_string(), "vrrp_instance[2].priority");
    }

    #[test]
    fn offsets_become_one_based_char_columns() {
        let text = "a = 1\nbé = \"x\"\n";
        let idx = LineIndex::new(text);
        assert_eq!(idx.position(0), Position { line: 1, column: 1 });
        assert_eq!(idx.position(6), Position { line: 2, column: 1 });
        // "bé = " is 6 bytes but 5 characters.
        let quote = text.find('"').unwrap_or_default();
        assert_eq!(idx.position(quote), Position { line: 2, column: 6 });
        assert_eq!(idx.position(text.len()), Position { line: 3, column: 1 });
    }

    #[test]
    fn locate_falls_back_to_the_enclosing_key() {
        let text = "[[vrrp_instance]]\nname = \"VI_1\"\n";
        let table = KeyPath::root().key("vrrp_instance").entry(0, Some("VI_1"));
        let index = SourceIndex::new(
            FsPath::new("lb.toml"),
            &LineIndex::new(text),
            &[(table.clone(), 0..17)],
        );
        assert_eq!(
            index.locate(&table.key("priority")),
            Position { line: 1, column: 1 }
        );
    }
}
