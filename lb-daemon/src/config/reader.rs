//! Typed reading of the spanned toml tree, reporting every problem instead of stopping at
//! the first (which is what serde's derive would do).
//!
//! A section decoder asks its [`Table`] for each key it knows; whatever was not asked for
//! is an unknown key, answered with "did you mean …?" against the keys asked for. Getters
//! return `None` after reporting, so the decoder carries on with a default and the file is
//! rejected at the end with all its errors.

use std::fmt::Display;
use std::ops::RangeInclusive;
use std::path::{Path as FsPath, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::address::valid_ifname;
use super::diagnostic::{Diagnostic, Severity};
use super::duration::{parse_duration, seconds, DURATION_HINT};
use super::source::{KeyPath, LineIndex, Position, SourceIndex, Span};
use super::suggest;

/// A finding made while decoding, anchored to a byte span.
pub(crate) struct Finding {
    severity: Severity,
    key: String,
    span: Span,
    message: String,
    hint: Option<String>,
}

impl Finding {
    pub(crate) fn hint(&mut self, hint: impl Into<String>) -> &mut Self {
        self.hint = Some(hint.into());
        self
    }

    pub(crate) fn maybe_hint(&mut self, hint: Option<String>) -> &mut Self {
        self.hint = hint;
        self
    }
}

/// Collects findings and the position of every key read.
pub(crate) struct Decoder<'t> {
    lines: LineIndex<'t>,
    findings: Vec<Finding>,
    /// Errors among `findings`.
    errors: usize,
    spans: Vec<(KeyPath, Span)>,
}

impl<'t> Decoder<'t> {
    pub(crate) fn new(text: &'t str) -> Self {
        Self {
            lines: LineIndex::new(text),
            findings: Vec::new(),
            errors: 0,
            spans: Vec::new(),
        }
    }

    pub(crate) fn error(
        &mut self,
        path: &KeyPath,
        span: Span,
        message: impl Into<String>,
    ) -> &mut Finding {
        self.push(Severity::Error, path, span, message.into())
    }

    pub(crate) fn warning(
        &mut self,
        path: &KeyPath,
        span: Span,
        message: impl Into<String>,
    ) -> &mut Finding {
        self.push(Severity::Warning, path, span, message.into())
    }

    fn push(
        &mut self,
        severity: Severity,
        path: &KeyPath,
        span: Span,
        message: String,
    ) -> &mut Finding {
        let index = self.findings.len();
        self.errors += usize::from(severity == Severity::Error);
        self.findings.push(Finding {
            severity,
            key: path.to_string(),
            span,
            message,
            hint: None,
        });
        &mut self.findings[index]
    }

    pub(crate) fn error_count(&self) -> usize {
        self.errors
    }

    pub(crate) fn record(&mut self, path: &KeyPath, span: Span) {
        self.spans.push((path.clone(), span));
    }

    pub(crate) fn position(&self, span: &Span) -> Position {
        self.lines.position(span.start)
    }

    /// The position index and the findings, in file order.
    pub(crate) fn finish(self, file: &FsPath) -> (SourceIndex, Vec<Diagnostic>) {
        let index = SourceIndex::new(file, &self.lines, &self.spans);
        let mut diagnostics: Vec<Diagnostic> = self
            .findings
            .into_iter()
            .map(|f| {
                let pos = self.lines.position(f.span.start);
                Diagnostic {
                    severity: f.severity,
                    file: file.to_owned(),
                    line: pos.line,
                    column: pos.column,
                    key: f.key,
                    message: f.message,
                    hint: f.hint,
                }
            })
            .collect();
        diagnostics.sort_by_key(|d| (d.line, d.column));
        (index, diagnostics)
    }
}

/// A toml table being decoded.
pub(crate) struct Table<'a, 'i> {
    entries: &'a DeTable<'i>,
    span: Span,
    path: KeyPath,
    known: Vec<&'static str>,
    /// keepalived spellings that differ here, with what to write instead.
    renames: &'static [(&'static str, &'static str)],
}

impl<'a, 'i> Table<'a, 'i> {
    pub(crate) fn new(
        d: &mut Decoder<'_>,
        entries: &'a DeTable<'i>,
        span: Span,
        path: KeyPath,
    ) -> Self {
        d.record(&path, span.clone());
        Self {
            entries,
            span,
            path,
            known: Vec::new(),
            renames: &[],
        }
    }

    pub(crate) fn with_renames(mut self, renames: &'static [(&'static str, &'static str)]) -> Self {
        self.renames = renames;
        self
    }

    pub(crate) fn path(&self) -> &KeyPath {
        &self.path
    }

    pub(crate) fn span(&self) -> Span {
        self.span.clone()
    }

    /// Where `key`'s value is, if written (without marking it known).
    pub(crate) fn span_of(&self, key: &str) -> Option<Span> {
        self.entries
            .iter()
            .find(|(k, _)| k.get_ref() == key)
            .map(|(_, v)| v.span())
    }

    /// The value of `key`, if written; marks `key` as known either way.
    pub(crate) fn get(&mut self, d: &mut Decoder<'_>, key: &'static str) -> Option<Field<'a, 'i>> {
        self.known.push(key);
        let (_, value) = self.entries.iter().find(|(k, _)| k.get_ref() == key)?;
        let path = self.path.key(key);
        d.record(&path, value.span());
        Some(Field { value, path })
    }

    /// Like [`Self::get`], reporting the key's absence at the table.
    pub(crate) fn required(
        &mut self,
        d: &mut Decoder<'_>,
        key: &'static str,
    ) -> Option<Field<'a, 'i>> {
        let field = self.get(d, key);
        if field.is_none() {
            d.error(
                &self.path,
                self.span.clone(),
                format!("missing required key `{key}`"),
            );
        }
        field
    }

    /// Reports the keys no getter asked for.
    pub(crate) fn finish(self, d: &mut Decoder<'_>) {
        for (key, _) in self.entries.iter() {
            let name: &str = key.get_ref();
            if self.known.contains(&name) {
                continue;
            }
            let renamed = self.renames.iter().find(|(from, _)| *from == name);
            let hint = match renamed {
                Some((_, instead)) => Some((*instead).to_owned()),
                // Past the cap the error is only counted: no edit distances for a file of
                // a hundred thousand unknown keys.
                None if d.error_count() >= super::MAX_ERRORS => None,
                None => suggest::hint(name, &self.known),
            };
            d.error(&self.path.key(name), key.span(), "unknown key")
                .maybe_hint(hint);
        }
    }
}

/// Peeks at the string `key` of a table, so its diagnostics can show it.
pub(crate) fn peek_str<'a>(entries: &'a DeTable<'_>, key: &str) -> Option<&'a str> {
    entries
        .iter()
        .find(|(k, _)| k.get_ref() == key)
        .and_then(|(_, v)| v.get_ref().as_str())
}

/// Peeks at the integer `key` of a table (a port, to name a server).
pub(crate) fn peek_int(entries: &DeTable<'_>, key: &str) -> Option<i64> {
    let (_, value) = entries.iter().find(|(k, _)| k.get_ref() == key)?;
    let int = value.get_ref().as_integer()?;
    i64::from_str_radix(int.as_str(), int.radix()).ok()
}

/// One value being decoded.
pub(crate) struct Field<'a, 'i> {
    value: &'a Spanned<DeValue<'i>>,
    path: KeyPath,
}

impl<'a, 'i> Field<'a, 'i> {
    pub(crate) fn path(&self) -> &KeyPath {
        &self.path
    }

    pub(crate) fn span(&self) -> Span {
        self.value.span()
    }

    pub(crate) fn error<'d>(
        &self,
        d: &'d mut Decoder<'_>,
        message: impl Into<String>,
    ) -> &'d mut Finding {
        d.error(&self.path, self.span(), message)
    }

    pub(crate) fn warning<'d>(
        &self,
        d: &'d mut Decoder<'_>,
        message: impl Into<String>,
    ) -> &'d mut Finding {
        d.warning(&self.path, self.span(), message)
    }

    fn expected(&self, d: &mut Decoder<'_>, what: &str) {
        let found = self.value.get_ref().type_str();
        d.error(
            &self.path,
            self.span(),
            format!("expected {what}, found {found}"),
        );
    }

    /// The text of a decimal integer or a float, without reporting anything.
    pub(crate) fn number_text(&self) -> Option<&'a str> {
        match self.value.get_ref() {
            DeValue::Integer(i) if i.radix() == 10 => Some(i.as_str()),
            DeValue::Float(f) => Some(f.as_str()),
            _ => None,
        }
    }

    /// The string, if this is one, without reporting anything.
    pub(crate) fn peek_str(&self) -> Option<&'a str> {
        self.value.get_ref().as_str()
    }

    pub(crate) fn str(&self, d: &mut Decoder<'_>) -> Option<&'a str> {
        let s = self.peek_str();
        if s.is_none() {
            self.expected(d, "a string");
        }
        s
    }

    /// A string that must not be empty (commands, names, users).
    pub(crate) fn string(&self, d: &mut Decoder<'_>) -> Option<String> {
        let s = self.str(d)?;
        if s.trim().is_empty() {
            d.error(&self.path, self.span(), "must not be empty");
            return None;
        }
        Some(s.to_owned())
    }

    pub(crate) fn interface(&self, d: &mut Decoder<'_>) -> Option<String> {
        let name = self.str(d)?;
        if !valid_ifname(name) {
            d.error(
                &self.path,
                self.span(),
                format!("`{name}` is not a valid interface name"),
            )
            .hint("1 to 15 characters, without `/`, `:` or spaces");
            return None;
        }
        Some(name.to_owned())
    }

    pub(crate) fn absolute_path(&self, d: &mut Decoder<'_>) -> Option<PathBuf> {
        let path = PathBuf::from(self.string(d)?);
        if !path.is_absolute() {
            d.error(
                &self.path,
                self.span(),
                format!("`{}` is not an absolute path", path.display()),
            );
            return None;
        }
        Some(path)
    }

    /// The boolean, if this is one, without reporting anything.
    pub(crate) fn peek_bool(&self) -> Option<bool> {
        self.value.get_ref().as_bool()
    }

    pub(crate) fn bool(&self, d: &mut Decoder<'_>) -> Option<bool> {
        let b = self.value.get_ref().as_bool();
        if b.is_none() {
            self.expected(d, "true or false");
        }
        b
    }

    /// An integer within `range`, converted to `T` (whose bounds also apply).
    pub(crate) fn int<T>(&self, d: &mut Decoder<'_>, range: RangeInclusive<i64>) -> Option<T>
    where
        T: TryFrom<i64>,
    {
        let Some(int) = self.value.get_ref().as_integer() else {
            self.expected(d, "an integer");
            return None;
        };
        let value = i64::from_str_radix(int.as_str(), int.radix()).ok();
        let converted = value
            .filter(|v| range.contains(v))
            .and_then(|v| T::try_from(v).ok());
        if converted.is_none() {
            let shown = value.map_or_else(|| int.to_string(), |v| v.to_string());
            let message = if *range.end() == i64::MAX {
                format!("must be at least {}, got {shown}", range.start())
            } else {
                format!(
                    "must be between {} and {}, got {shown}",
                    range.start(),
                    range.end()
                )
            };
            d.error(&self.path, self.span(), message);
        }
        converted
    }

    /// A duration: a string with units, or a number of seconds.
    pub(crate) fn duration(&self, d: &mut Decoder<'_>) -> Option<Duration> {
        let parsed = match self.value.get_ref() {
            DeValue::String(s) => parse_duration(s),
            DeValue::Integer(i) if i.radix() == 10 => seconds(i.as_str()),
            DeValue::Float(f) => seconds(f.as_str()),
            _ => {
                self.expected(d, "a duration");
                return None;
            }
        };
        match parsed {
            Ok(duration) => Some(duration),
            Err(e) => {
                d.error(&self.path, self.span(), e.to_string())
                    .hint(DURATION_HINT);
                None
            }
        }
    }

    /// A duration longer than zero (intervals, timeouts).
    pub(crate) fn nonzero_duration(&self, d: &mut Decoder<'_>) -> Option<Duration> {
        let duration = self.duration(d)?;
        if duration.is_zero() {
            d.error(&self.path, self.span(), "must be longer than zero");
            return None;
        }
        Some(duration)
    }

    /// A duration within `range` (shown in messages as written there, e.g. `1000s`).
    pub(crate) fn duration_in(
        &self,
        d: &mut Decoder<'_>,
        range: RangeInclusive<Duration>,
    ) -> Option<Duration> {
        let duration = self.duration(d)?;
        if !range.contains(&duration) {
            let message = format!(
                "must be between {:?} and {:?}, got {duration:?}",
                range.start(),
                range.end()
            );
            d.error(&self.path, self.span(), message);
            return None;
        }
        Some(duration)
    }

    /// A string parsed with `FromStr` (addresses, socket addresses).
    pub(crate) fn parse<T>(&self, d: &mut Decoder<'_>, what: &str) -> Option<T>
    where
        T: FromStr,
        T::Err: Display,
    {
        let text = self.str(d)?;
        match text.trim().parse() {
            Ok(value) => Some(value),
            Err(e) => {
                d.error(
                    &self.path,
                    self.span(),
                    format!("`{text}` is not {what}: {e}"),
                );
                None
            }
        }
    }

    /// One of a fixed set of words, matched regardless of case (`"MASTER"`, `"master"`).
    pub(crate) fn keyword<T: Copy>(
        &self,
        d: &mut Decoder<'_>,
        choices: &[(&'static str, T)],
    ) -> Option<T> {
        let word = self.str(d)?;
        let found = choices
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(word.trim()))
            .map(|(_, value)| *value);
        if found.is_none() {
            let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
            d.error(&self.path, self.span(), format!("unknown value `{word}`"))
                .maybe_hint(suggest::hint(word, &names));
        }
        found
    }

    /// The elements of an array, each with its indexed path.
    pub(crate) fn array(&self, d: &mut Decoder<'_>) -> Option<Vec<Field<'a, 'i>>> {
        let Some(items) = self.value.get_ref().as_array() else {
            self.expected(d, "an array");
            return None;
        };
        Some(
            items
                .iter()
                .enumerate()
                .map(|(i, value)| {
                    let path = self.path.index(i);
                    d.record(&path, value.span());
                    Field { value, path }
                })
                .collect(),
        )
    }

    /// The entries of an array of tables (`[[section]]`), each path showing the entry's name.
    pub(crate) fn tables(&self, d: &mut Decoder<'_>, section: &str) -> Vec<Table<'a, 'i>> {
        self.labelled_tables(d, section, |entries| {
            peek_str(entries, "name").map(str::to_owned)
        })
    }

    /// Like [`Self::tables`], each path showing what `label` makes of the entry (entries
    /// without a `name`, such as servers, are recognised by their address).
    pub(crate) fn labelled_tables(
        &self,
        d: &mut Decoder<'_>,
        section: &str,
        label: impl Fn(&DeTable<'i>) -> Option<String>,
    ) -> Vec<Table<'a, 'i>> {
        let Some(items) = self.value.get_ref().as_array() else {
            let found = self.value.get_ref().type_str();
            let hint = self
                .value
                .get_ref()
                .is_table()
                .then(|| format!("write each entry as [[{section}]]"));
            d.error(
                &self.path,
                self.span(),
                format!("expected an array of tables, found {found}"),
            )
            .maybe_hint(hint);
            return Vec::new();
        };
        let mut tables = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match item.get_ref().as_table() {
                Some(entries) => {
                    let path = self.path.entry(i, label(entries).as_deref());
                    tables.push(Table::new(d, entries, item.span(), path));
                }
                None => {
                    let found = item.get_ref().type_str();
                    d.error(
                        &self.path.index(i),
                        item.span(),
                        format!("expected a table, found {found}"),
                    );
                }
            }
        }
        tables
    }

    /// Number of elements, if this is an array.
    pub(crate) fn array_len(&self) -> Option<usize> {
        self.value.get_ref().as_array().map(|a| a.len())
    }

    pub(crate) fn is_table(&self) -> bool {
        self.value.get_ref().is_table()
    }

    /// A table, or an array of tables (a key that may be given once or several times,
    /// such as a real server's checkers); array entries are shown by index.
    pub(crate) fn one_or_more_tables(&self, d: &mut Decoder<'_>) -> Vec<Table<'a, 'i>> {
        if let Some(entries) = self.value.get_ref().as_table() {
            return vec![Table::new(d, entries, self.span(), self.path.clone())];
        }
        if self.value.get_ref().as_array().is_none() {
            self.expected(d, "a table or an array of tables");
            return Vec::new();
        }
        let section = self.path.to_string();
        self.labelled_tables(d, &section, |_| None)
    }

    pub(crate) fn table(&self, d: &mut Decoder<'_>) -> Option<Table<'a, 'i>> {
        match self.value.get_ref().as_table() {
            Some(entries) => Some(Table::new(d, entries, self.span(), self.path.clone())),
            None => {
                self.expected(d, "a table");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_field<R>(
        text: &str,
        key: &'static str,
        f: impl FnOnce(&mut Decoder<'_>, Field<'_, '_>) -> R,
    ) -> (R, Vec<Diagnostic>) {
        let (root, errors) = DeTable::parse_recoverable(text);
        assert!(errors.is_empty(), "{errors:?}");
        let mut d = Decoder::new(text);
        let mut table = Table::new(&mut d, root.get_ref(), root.span(), KeyPath::root());
        let field = table.get(&mut d, key).expect("key present");
        let result = f(&mut d, field);
        let (_, diagnostics) = d.finish(FsPath::new("t.toml"));
        (result, diagnostics)
    }

    #[test]
    fn type_mismatch_names_both_types() {
        let (value, diags) = with_field("priority = \"100\"", "priority", |d, f| {
            f.int::<u8>(d, 1..=255)
        });
        assert_eq!(value, None);
        assert_eq!(diags[0].message, "expected an integer, found string");
        assert_eq!((diags[0].line, diags[0].column), (1, 12));
    }

    #[test]
    fn integers_respect_range_and_target_type() {
        let (value, diags) = with_field("x = 0x10", "x", |d, f| f.int::<u8>(d, 1..=255));
        assert_eq!((value, diags.len()), (Some(16), 0));
        let (value, diags) = with_field("x = 0", "x", |d, f| f.int::<u32>(d, 1..=i64::MAX));
        assert_eq!(value, None);
        assert_eq!(diags[0].message, "must be at least 1, got 0");
        let (_, diags) = with_field("x = 256", "x", |d, f| f.int::<u8>(d, 1..=255));
        assert_eq!(diags[0].message, "must be between 1 and 255, got 256");
    }

    #[test]
    fn durations_in_every_form() {
        for (text, expected) in [
            ("t = \"100ms\"", Duration::from_millis(100)),
            ("t = \"1.5s\"", Duration::from_millis(1500)),
            ("t = \"2m\"", Duration::from_secs(120)),
            ("t = \"1h\"", Duration::from_secs(3600)),
            ("t = 3", Duration::from_secs(3)),
            ("t = 0.1", Duration::from_millis(100)),
        ] {
            let (value, diags) = with_field(text, "t", |d, f| f.duration(d));
            assert_eq!(value, Some(expected), "{text}");
            assert!(diags.is_empty(), "{text}: {diags:?}");
        }
        let (value, diags) = with_field("t = \"5 fortnights\"", "t", |d, f| f.duration(d));
        assert_eq!(value, None);
        assert_eq!(diags[0].key, "t");
        assert_eq!(diags[0].message, "unknown unit `fortnights`");
        assert_eq!(diags[0].hint.as_deref(), Some(DURATION_HINT));
        let (_, diags) = with_field("t = true", "t", |d, f| f.duration(d));
        assert_eq!(diags[0].message, "expected a duration, found boolean");
    }

    #[test]
    fn keywords_ignore_case_and_suggest() {
        let choices = [("MASTER", 1), ("BACKUP", 2)];
        let (value, _) = with_field("s = \"master\"", "s", |d, f| f.keyword(d, &choices));
        assert_eq!(value, Some(1));
        let (value, diags) = with_field("s = \"BAKUP\"", "s", |d, f| f.keyword(d, &choices));
        assert_eq!(value, None);
        assert_eq!(diags[0].message, "unknown value `BAKUP`");
        assert_eq!(diags[0].hint.as_deref(), Some("did you mean `BACKUP`?"));
    }
}
