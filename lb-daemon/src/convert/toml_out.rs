//! The TOML being written: sections of keys and comments, each line remembering the
//! keepalived line it came from so the loader's diagnostics can point there.

use super::lexer::Pos;

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Value {
    Str(String),
    Int(i64),
    Bool(bool),
    Array(Vec<Value>),
    /// An inline table, keys in order.
    Table(Vec<(String, Value)>),
}

impl Value {
    pub(crate) fn str(text: impl Into<String>) -> Value {
        Value::Str(text.into())
    }

    fn render(&self, out: &mut String) {
        match self {
            Value::Str(s) => quote(s, out),
            Value::Int(i) => out.push_str(&i.to_string()),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    item.render(out);
                }
                out.push(']');
            }
            Value::Table(entries) => {
                out.push('{');
                for (i, (key, value)) in entries.iter().enumerate() {
                    out.push_str(if i > 0 { ", " } else { " " });
                    out.push_str(key);
                    out.push_str(" = ");
                    value.render(out);
                }
                out.push_str(if entries.is_empty() { "}" } else { " }" });
            }
        }
    }
}

/// A TOML basic string.
fn quote(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[derive(Clone, Debug)]
enum Item {
    Key { key: String, value: Value, pos: Pos },
    Comment { text: String, pos: Option<Pos> },
}

/// A table (`[global]`) or an entry of an array of tables (`[[vrrp_instance]]`): its
/// keys, then its sub-tables.
#[derive(Clone, Debug)]
pub(crate) struct Section {
    header: String,
    pos: Option<Pos>,
    items: Vec<Item>,
    children: Vec<Section>,
}

impl Section {
    pub(crate) fn new(header: impl Into<String>, pos: Option<&Pos>) -> Section {
        Section {
            header: header.into(),
            pos: pos.cloned(),
            items: Vec::new(),
            children: Vec::new(),
        }
    }

    pub(crate) fn header(&self) -> &str {
        &self.header
    }

    /// Sets `key`; a key written twice keeps its last value, as keepalived does.
    pub(crate) fn set(&mut self, key: &str, value: Value, pos: &Pos) {
        self.items
            .retain(|item| !matches!(item, Item::Key { key: k, .. } if k == key));
        self.items.push(Item::Key {
            key: key.to_owned(),
            value,
            pos: pos.clone(),
        });
    }

    pub(crate) fn get(&self, key: &str) -> Option<&Value> {
        self.items.iter().find_map(|item| match item {
            Item::Key { key: k, value, .. } if k == key => Some(value),
            _ => None,
        })
    }

    pub(crate) fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub(crate) fn remove(&mut self, key: &str) {
        self.items
            .retain(|item| !matches!(item, Item::Key { key: k, .. } if k == key));
    }

    pub(crate) fn comment(&mut self, text: impl Into<String>, pos: Option<&Pos>) {
        self.items.push(Item::Comment {
            text: text.into(),
            pos: pos.cloned(),
        });
    }

    pub(crate) fn child(&mut self, section: Section) {
        self.children.push(section);
    }

    /// `other`'s keys, comments and sub-tables after this section's own.
    pub(crate) fn append(&mut self, other: Section) {
        self.items.extend(other.items);
        self.children.extend(other.children);
    }
}

/// `text` with the control characters TOML forbids in a comment (all but tab) escaped,
/// so that words quoted from the keepalived file never make the output invalid.
fn comment_text(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() && c != '\t' {
                c.escape_default().collect()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// The TOML text, and for each of its lines the keepalived position it came from.
#[derive(Clone, Debug, Default)]
pub(crate) struct Rendered {
    pub text: String,
    pub origin: Vec<Option<Pos>>,
}

impl Rendered {
    pub(crate) fn line(&mut self, text: &str, pos: Option<&Pos>) {
        for part in text.split('\n') {
            self.text.push_str(part);
            self.text.push('\n');
            self.origin.push(pos.cloned());
        }
    }

    pub(crate) fn section(&mut self, section: &Section) {
        if !self.text.is_empty() {
            self.line("", None);
        }
        self.line(&section.header, section.pos.as_ref());
        self.items(&section.items);
        for child in &section.children {
            self.section(child);
        }
    }

    fn items(&mut self, items: &[Item]) {
        for item in items {
            match item {
                Item::Comment { text, pos } => {
                    for part in text.split('\n') {
                        self.line(&format!("# {}", comment_text(part)), pos.as_ref());
                    }
                }
                Item::Key { key, value, pos } => {
                    let mut line = format!("{key} = ");
                    value.render(&mut line);
                    self.line(&line, Some(pos));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::sync::Arc;

    fn pos(line: usize) -> Pos {
        Pos {
            file: Arc::new(PathBuf::from("k.conf")),
            line,
            column: 1,
        }
    }

    #[test]
    fn renders_values_escaped_and_remembers_origins() {
        let mut s = Section::new("[[vrrp_instance]]", Some(&pos(3)));
        s.set("name", Value::str("VI \"1\"\\"), &pos(3));
        s.comment("approximated", Some(&pos(4)));
        s.set(
            "auth",
            Value::Table(vec![
                ("a".into(), Value::Int(1)),
                ("b".into(), Value::Array(vec![Value::Bool(true)])),
            ]),
            &pos(5),
        );
        let mut r = Rendered::default();
        r.section(&s);
        assert_eq!(
            r.text,
            "[[vrrp_instance]]\nname = \"VI \\\"1\\\"\\\\\"\n# approximated\nauth = { a = 1, b = [true] }\n"
        );
        let lines: Vec<_> = r.origin.iter().map(|p| p.as_ref().unwrap().line).collect();
        assert_eq!(lines, [3, 3, 4, 5]);
        let parsed: toml::Table = r.text.parse().unwrap();
        assert_eq!(
            parsed["vrrp_instance"][0]["name"].as_str(),
            Some("VI \"1\"\\")
        );
    }

    #[test]
    fn a_key_set_twice_keeps_the_last_value() {
        let mut s = Section::new("[global]", None);
        s.set("router_id", Value::str("a"), &pos(1));
        s.set("router_id", Value::str("b"), &pos(2));
        assert_eq!(s.get("router_id"), Some(&Value::str("b")));
    }
}
