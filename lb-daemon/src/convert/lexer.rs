//! keepalived's configuration language, read line by line the way keepalived's
//! `lib/parser.c` reads it: comments (`#` and `!`, `\#` and `\!` escape them),
//! `$NAME=value` definitions (multi-line with a trailing `\`) and `$NAME` / `${NAME}`
//! expansion, `@id` / `@^id` conditional lines, `include` with globs relative to the
//! including file's directory, quoted strings, and braces split off as lines of their own.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::diag::Diags;
use super::glob;

/// Nested includes deeper than this are a loop keepalived would not finish either.
const MAX_INCLUDE_DEPTH: usize = 32;
/// Rounds of `$NAME` expansion on one line (a definition may use another).
const MAX_EXPANSION_ROUNDS: usize = 16;
/// Work `$NAME` expansion may do for one file and its includes, in bytes produced plus
/// [`SUBSTITUTION_COST`] per substitution: definitions that double each other would
/// otherwise grow without bound (2^40 bytes, or 2^16 lines, from 40 lines).
const MAX_EXPANDED_BYTES: usize = 1 << 20;
const SUBSTITUTION_COST: usize = 64;

/// Where a word was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Pos {
    pub file: Arc<PathBuf>,
    pub line: usize,
    pub column: usize,
}

impl Pos {
    fn at_column(&self, column: usize) -> Pos {
        Pos {
            column,
            ..self.clone()
        }
    }
}

/// One word: quoted strings lose their quotes and keep their spaces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Word {
    pub text: String,
    pub quoted: bool,
    pub pos: Pos,
}

/// A logical line: a statement's words, or a lone `{` / `}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Line {
    pub words: Vec<Word>,
}

impl Line {
    pub(crate) fn pos(&self) -> &Pos {
        &self.words[0].pos
    }

    pub(crate) fn is(&self, brace: &str) -> bool {
        self.words.len() == 1 && !self.words[0].quoted && self.words[0].text == brace
    }
}

/// Reads `text` (the content of `path`) and every file it includes.
pub(crate) fn read(path: &Path, text: &str, config_id: &str, diags: &mut Diags) -> Vec<Line> {
    let mut lexer = Lexer {
        config_id,
        defs: HashMap::new(),
        lines: Vec::new(),
        including: Vec::new(),
        expanded: 0,
        diags,
    };
    lexer.file(path, text);
    lexer.lines
}

struct Lexer<'a> {
    config_id: &'a str,
    defs: HashMap<String, String>,
    lines: Vec<Line>,
    /// The chain of files being read, to refuse include loops.
    including: Vec<PathBuf>,
    /// Expansion work so far, against [`MAX_EXPANDED_BYTES`].
    expanded: usize,
    diags: &'a mut Diags,
}

/// A definition whose value goes on over the next lines (trailing `\`).
struct Multiline {
    name: String,
    value: String,
}

impl Lexer<'_> {
    fn file(&mut self, path: &Path, text: &str) {
        let file = Arc::new(path.to_owned());
        let canonical = path.canonicalize().unwrap_or_else(|_| path.to_owned());
        self.including.push(canonical);
        let mut multiline: Option<Multiline> = None;
        for (index, raw) in text.lines().enumerate() {
            let pos = Pos {
                file: Arc::clone(&file),
                line: index + 1,
                column: 1,
            };
            let indent = raw.len() - raw.trim_start().len();
            let pos = pos.at_column(indent + 1);
            let Some(clean) = self.decomment(raw, &pos) else {
                continue;
            };
            if let Some(mut def) = multiline.take() {
                match clean.strip_suffix('\\') {
                    Some(more) => {
                        def.value.push('\n');
                        def.value.push_str(more.trim_end());
                        multiline = Some(def);
                    }
                    None => {
                        if !clean.is_empty() {
                            def.value.push('\n');
                            def.value.push_str(&clean);
                        }
                        self.defs.insert(def.name, def.value);
                    }
                }
                continue;
            }
            if clean.is_empty() {
                continue;
            }
            multiline = self.logical(clean, &pos, 0);
        }
        if let Some(def) = multiline {
            self.defs.insert(def.name, def.value);
        }
        self.including.pop();
    }

    /// Strips a comment and surrounding blanks; `None` after an unterminated quote.
    fn decomment(&mut self, raw: &str, pos: &Pos) -> Option<String> {
        let mut out = String::with_capacity(raw.len());
        let mut quote = false;
        let mut chars = raw.trim().chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '"' => {
                    quote = !quote;
                    out.push(c);
                }
                '\\' if !quote && matches!(chars.peek(), Some('#' | '!')) => {
                    out.extend(chars.next());
                }
                '#' | '!' if !quote => break,
                _ => out.push(c),
            }
        }
        if quote {
            self.diags.error(
                pos,
                "",
                "a quoted string is not closed on this line",
                Some("add the closing `\"`".into()),
            );
            return None;
        }
        Some(out.trim_end().to_owned())
    }

    /// One line after comments are gone: conditions, definitions, expansion, include,
    /// then words. Returns a definition that continues on the next lines.
    fn logical(&mut self, mut text: String, pos: &Pos, depth: usize) -> Option<Multiline> {
        for _ in 0..MAX_EXPANSION_ROUNDS {
            if text.starts_with('@') {
                text = self.condition(&text)?;
            }
            if let Some((name, value)) = definition(&text) {
                return match value.strip_suffix('\\') {
                    Some(first) => Some(Multiline {
                        name,
                        value: first.trim_end().to_owned(),
                    }),
                    None => {
                        self.defs.insert(name, value);
                        None
                    }
                };
            }
            if text.starts_with("~SEQ") || text.starts_with("~LST") {
                self.diags.error(
                    pos,
                    "",
                    format!("`{}` sequences are not supported", &text[..4]),
                    Some("write the lines it generates out in full".into()),
                );
                return None;
            }
            match self.expand(&text, pos) {
                Some(expanded) => {
                    let clean = self.decomment(&expanded, pos)?;
                    if clean.contains('\n') {
                        if depth >= MAX_EXPANSION_ROUNDS {
                            self.diags.error(
                                pos,
                                "",
                                "definitions expand into each other without end",
                                Some("check the $NAME definitions used on this line".into()),
                            );
                            return None;
                        }
                        // A multi-line definition: each of its lines is a line of the file.
                        for part in clean.lines() {
                            let part = part.trim();
                            if !part.is_empty() {
                                self.logical(part.to_owned(), pos, depth + 1);
                            }
                        }
                        return None;
                    }
                    text = clean;
                    if text.is_empty() {
                        return None;
                    }
                }
                None => break,
            }
        }
        if let Some(pattern) = include_pattern(&text) {
            self.include(pattern, pos);
            return None;
        }
        self.words(&text, pos);
        None
    }

    /// `@id rest` keeps `rest` when the config id is `id`; `@^id rest` when it is not.
    fn condition(&self, text: &str) -> Option<String> {
        let (negated, rest) = match text.strip_prefix("@^") {
            Some(rest) => (true, rest),
            None => (false, &text[1..]),
        };
        let (id, line) = rest.split_once([' ', '\t'])?;
        ((id == self.config_id) != negated).then(|| line.trim_start().to_owned())
    }

    /// `$NAME` and `${NAME}` replaced by their definitions; `None` when nothing changed,
    /// and past the expansion budget (reported once, the line dropped).
    fn expand(&mut self, text: &str, pos: &Pos) -> Option<String> {
        if !text.contains('$') {
            return None;
        }
        if self.expanded > MAX_EXPANDED_BYTES {
            return Some(String::new());
        }
        let mut out = String::with_capacity(text.len());
        let mut changed = false;
        let mut rest = text;
        while let Some(at) = rest.find('$') {
            out.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            let (name, used) = match after.strip_prefix('{') {
                Some(braced) => match braced.find('}') {
                    Some(end) => (&braced[..end], end + 2),
                    None => ("", 0),
                },
                None => {
                    let end = after
                        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .unwrap_or(after.len());
                    (&after[..end], end)
                }
            };
            let value = match name {
                "" => None,
                "_PWD" => pos.file.parent().map(|d| d.to_string_lossy().into_owned()),
                _ => self.defs.get(name).cloned(),
            };
            match value {
                Some(value) => {
                    self.expanded += value.len() + SUBSTITUTION_COST;
                    if self.expanded > MAX_EXPANDED_BYTES {
                        self.diags.error(
                            pos,
                            "",
                            format!("$NAME definitions expand to more than {} KiB (or {} substitutions); the lines using them are skipped", MAX_EXPANDED_BYTES >> 10, MAX_EXPANDED_BYTES / SUBSTITUTION_COST),
                            Some("check for definitions that use each other more than once".into()),
                        );
                        return Some(String::new());
                    }
                    out.push_str(&value);
                    changed = true;
                    rest = &after[used..];
                }
                None => {
                    out.push('$');
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        changed.then_some(out)
    }

    fn include(&mut self, pattern: &str, pos: &Pos) {
        let pattern = pattern.trim().trim_matches('"');
        let base = pos.file.parent().map(Path::to_path_buf).unwrap_or_default();
        let full = base.join(pattern);
        let files = match glob::expand(&full) {
            Ok(files) => files,
            Err(e) => {
                self.diags.error(
                    pos,
                    "include",
                    format!("cannot read `{}`: {e}", full.display()),
                    None,
                );
                return;
            }
        };
        if files.is_empty() {
            if glob::has_wildcards(pattern) {
                // keepalived only logs "No config files matched".
                self.diags.warning(
                    pos,
                    "include",
                    format!("no file matches `{}`", full.display()),
                    None,
                );
            } else if let Some(kind) = crate::config::file_text::unreadable_kind(&full) {
                self.diags.error(
                    pos,
                    "include",
                    format!("`{}` is {kind}, not a regular file", full.display()),
                    Some("include configuration files only".into()),
                );
            } else {
                self.diags.error(
                    pos,
                    "include",
                    format!("`{}` does not exist", full.display()),
                    Some(
                        "include paths are relative to the directory of the file that includes them"
                            .into(),
                    ),
                );
            }
            return;
        }
        for file in files {
            let canonical = file.canonicalize().unwrap_or_else(|_| file.clone());
            if self.including.contains(&canonical) {
                self.diags.error(
                    pos,
                    "include",
                    format!("`{}` includes itself (through this line)", file.display()),
                    Some("remove the include loop".into()),
                );
                continue;
            }
            if self.including.len() >= MAX_INCLUDE_DEPTH {
                self.diags.error(
                    pos,
                    "include",
                    format!("includes nest deeper than {MAX_INCLUDE_DEPTH} files"),
                    None,
                );
                return;
            }
            match crate::config::file_text::read(&file) {
                Ok(text) => self.file(&file, &text),
                Err(d) => self.diags.error(
                    pos,
                    "include",
                    format!("`{}`{}: {}", file.display(), at_position(&d), d.message),
                    d.hint,
                ),
            }
        }
    }

    /// Splits a line into words; `{` and `}` outside quotes become lines of their own.
    fn words(&mut self, text: &str, pos: &Pos) {
        let mut words: Vec<Word> = Vec::new();
        let mut chars = text.char_indices().peekable();
        let column = |at: usize| pos.column + text[..at].chars().count();
        while let Some(&(at, c)) = chars.peek() {
            if c.is_whitespace() {
                chars.next();
                continue;
            }
            if c == '{' || c == '}' {
                chars.next();
                if !words.is_empty() {
                    self.lines.push(Line {
                        words: std::mem::take(&mut words),
                    });
                }
                self.lines.push(Line {
                    words: vec![Word {
                        text: c.to_string(),
                        quoted: false,
                        pos: pos.at_column(column(at)),
                    }],
                });
                continue;
            }
            let mut word = String::new();
            let quoted = c == '"';
            if quoted {
                chars.next();
                for (_, c) in chars.by_ref() {
                    if c == '"' {
                        break;
                    }
                    word.push(c);
                }
            } else {
                while let Some(&(_, c)) = chars.peek() {
                    if c.is_whitespace() || matches!(c, '"' | '{' | '}') {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
            }
            words.push(Word {
                text: word,
                quoted,
                pos: pos.at_column(column(at)),
            });
        }
        if !words.is_empty() {
            self.lines.push(Line { words });
        }
    }
}

/// ` at LINE:COL` of a diagnostic about an included file, when it has a position.
fn at_position(d: &crate::config::Diagnostic) -> String {
    match d.line {
        0 => String::new(),
        line => format!(" at {line}:{}", d.column),
    }
}

/// `$NAME=value` (blanks allowed before `=`).
fn definition(text: &str) -> Option<(String, String)> {
    let rest = text.strip_prefix('$')?;
    let first = rest.chars().next()?;
    if !(first.is_ascii_alphabetic() || first == '_') {
        return None;
    }
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    let (name, after) = rest.split_at(end);
    let value = after.trim_start().strip_prefix('=')?;
    Some((name.to_owned(), value.trim().to_owned()))
}

/// The pattern of `include PATTERN` (and keepalived's `includer`, `includem`, … variants,
/// which only differ in how a missing file is reported).
fn include_pattern(text: &str) -> Option<&str> {
    let rest = text.strip_prefix("include")?;
    let rest = match rest.chars().next()? {
        c if c.is_whitespace() => rest,
        'r' | 'm' | 'w' | 'b' | 'a' if rest[1..].starts_with(char::is_whitespace) => &rest[1..],
        _ => return None,
    };
    Some(rest.trim())
}
