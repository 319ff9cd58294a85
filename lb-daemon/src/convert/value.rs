//! keepalived's argument syntax read into TOML values, with an error at the word when the
//! value is wrong: numbers, decimal seconds, addresses, flags, command lines.

use std::net::IpAddr;
use std::ops::RangeInclusive;

use super::diag::Diags;
use super::lexer::Word;
use super::parser::Stmt;
use super::toml_out::Value;

/// Reads the arguments of one statement, reporting problems in `context`.
pub(crate) struct Args<'a> {
    pub stmt: &'a Stmt,
    pub context: &'a str,
}

impl<'a> Args<'a> {
    pub(crate) fn new(stmt: &'a Stmt, context: &'a str) -> Self {
        Args { stmt, context }
    }

    fn keyword(&self) -> &str {
        self.stmt.keyword()
    }

    fn error(&self, d: &mut Diags, word: Option<&Word>, message: String, hint: &str) {
        let pos = word.map_or(self.stmt.pos(), |w| &w.pos);
        let hint = (!hint.is_empty()).then(|| hint.to_owned());
        d.error(pos, self.context, message, hint);
    }

    /// Exactly one argument.
    pub(crate) fn one(&self, d: &mut Diags) -> Option<&'a Word> {
        let args = self.stmt.args();
        match args {
            [] => {
                self.error(
                    d,
                    None,
                    format!("`{}` needs a value", self.keyword()),
                    &format!("write `{} VALUE`", self.keyword()),
                );
                None
            }
            [one] => Some(one),
            [_, extra, ..] => {
                self.error(
                    d,
                    Some(extra),
                    format!(
                        "unexpected `{}`: `{}` takes one value",
                        extra.text,
                        self.keyword()
                    ),
                    "remove the extra words (quote a value that contains spaces)",
                );
                None
            }
        }
    }

    pub(crate) fn none(&self, d: &mut Diags) -> bool {
        match self.stmt.args().first() {
            None => true,
            Some(extra) => {
                self.error(
                    d,
                    Some(extra),
                    format!("`{}` takes no value, got `{}`", self.keyword(), extra.text),
                    "remove the value",
                );
                false
            }
        }
    }

    pub(crate) fn string(&self, d: &mut Diags) -> Option<Value> {
        self.one(d).map(|w| Value::str(&w.text))
    }

    pub(crate) fn int(&self, d: &mut Diags, range: RangeInclusive<i64>) -> Option<i64> {
        let word = self.one(d)?;
        int_word(self, d, word, range)
    }

    /// Decimal seconds (`1`, `0.5`) as a duration string (`"1s"`, `"0.5s"`).
    pub(crate) fn seconds(&self, d: &mut Diags) -> Option<Value> {
        let word = self.one(d)?;
        seconds_word(self, d, word)
    }

    pub(crate) fn ip(&self, d: &mut Diags) -> Option<IpAddr> {
        let word = self.one(d)?;
        ip_word(self, d, word)
    }

    /// A flag: alone it means yes; keepalived also accepts an explicit boolean.
    pub(crate) fn flag(&self, d: &mut Diags) -> Option<bool> {
        match self.stmt.args() {
            [] => Some(true),
            [word] => match word.text.to_ascii_lowercase().as_str() {
                "true" | "on" | "yes" => Some(true),
                "false" | "off" | "no" => Some(false),
                _ => {
                    self.error(
                        d,
                        Some(word),
                        format!("`{}` is not a boolean", word.text),
                        "write the keyword alone, or follow it with true/false",
                    );
                    None
                }
            },
            _ => {
                self.one(d);
                None
            }
        }
    }

    /// A command line (a script and its arguments) as one shell string.
    pub(crate) fn command(&self, d: &mut Diags) -> Option<Value> {
        let args = self.stmt.args();
        if args.is_empty() {
            self.one(d);
            return None;
        }
        Some(Value::Str(command_line(args)))
    }
}

pub(crate) fn int_word(
    a: &Args<'_>,
    d: &mut Diags,
    word: &Word,
    range: RangeInclusive<i64>,
) -> Option<i64> {
    match word.text.parse::<i64>() {
        Ok(n) if range.contains(&n) => Some(n),
        _ => {
            a.error(
                d,
                Some(word),
                format!(
                    "`{}` must be an integer between {} and {}, got `{}`",
                    a.keyword(),
                    range.start(),
                    range.end(),
                    word.text
                ),
                "",
            );
            None
        }
    }
}

pub(crate) fn seconds_word(a: &Args<'_>, d: &mut Diags, word: &Word) -> Option<Value> {
    let text = word.text.as_str();
    let (whole, fraction) = text.split_once('.').unwrap_or((text, "0"));
    let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    if !digits(whole) || !digits(fraction) {
        a.error(
            d,
            Some(word),
            format!(
                "`{}` takes a number of seconds, got `{}`",
                a.keyword(),
                word.text
            ),
            "write e.g. `3` or `0.5`",
        );
        return None;
    }
    Some(Value::Str(format!("{text}s")))
}

/// keepalived's BFD timers: milliseconds with at most 3 decimals, as a duration string.
pub(crate) fn millis_word(a: &Args<'_>, d: &mut Diags, word: &Word) -> Option<Value> {
    let text = word.text.as_str();
    let (whole, fraction) = text.split_once('.').unwrap_or((text, "0"));
    let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    if !digits(whole) || !digits(fraction) || fraction.len() > 3 {
        a.error(
            d,
            Some(word),
            format!(
                "`{}` takes a number of milliseconds (3 decimals at most), got `{}`",
                a.keyword(),
                word.text
            ),
            "write e.g. `10` or `2.5`",
        );
        return None;
    }
    Some(Value::Str(format!("{text}ms")))
}

pub(crate) fn ip_word(a: &Args<'_>, d: &mut Diags, word: &Word) -> Option<IpAddr> {
    match word.text.parse() {
        Ok(ip) => Some(ip),
        Err(_) => {
            a.error(
                d,
                Some(word),
                format!("`{}` is not an IP address", word.text),
                "write an IPv4 or IPv6 address, e.g. 192.168.1.10 or 2001:db8::10",
            );
            None
        }
    }
}

/// Words joined into a shell command line; a quoted word that is one of several keeps
/// its spaces by single quotes (keepalived passes it as one argument).
pub(crate) fn command_line(words: &[Word]) -> String {
    if let [one] = words {
        return one.text.clone();
    }
    words
        .iter()
        .map(|w| {
            let plain = w
                .text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/._-=:,+@%".contains(c));
            if plain && !w.text.is_empty() {
                w.text.clone()
            } else {
                format!("'{}'", w.text.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
