//! Lines into statements: a statement is a keyword with its arguments, and a block when
//! the next line is `{` (on the same line or the next, as keepalived allows).

use super::diag::Diags;
use super::lexer::{Line, Pos, Word};

/// Blocks every keepalived configuration starts with; inside another block they mean a
/// `}` is missing above.
pub(crate) const TOP_LEVEL: &[&str] = &[
    "global_defs",
    "vrrp_script",
    "vrrp_track_file",
    "vrrp_instance",
    "vrrp_sync_group",
    "virtual_server",
    "virtual_server_group",
];

#[derive(Clone, Debug)]
pub(crate) struct Stmt {
    /// The keyword, then the arguments.
    pub words: Vec<Word>,
    pub block: Option<Vec<Stmt>>,
}

impl Stmt {
    pub(crate) fn keyword(&self) -> &str {
        &self.words[0].text
    }

    pub(crate) fn args(&self) -> &[Word] {
        &self.words[1..]
    }

    pub(crate) fn pos(&self) -> &Pos {
        &self.words[0].pos
    }

    /// The statements of the block (none when it has no block).
    pub(crate) fn body(&self) -> &[Stmt] {
        self.block.as_deref().unwrap_or_default()
    }
}

/// The statements of the file; unbalanced braces are reported with where the block
/// opened.
pub(crate) fn parse(lines: Vec<Line>, diags: &mut Diags) -> Vec<Stmt> {
    let mut lines = lines.into_iter().peekable();
    let mut stack: Vec<(Stmt, Vec<Stmt>)> = Vec::new();
    let mut top: Vec<Stmt> = Vec::new();
    while let Some(line) = lines.next() {
        if line.is("}") {
            match stack.pop() {
                Some((mut open, body)) => {
                    open.block = Some(body);
                    push(&mut stack, &mut top, open);
                }
                None => diags.error(
                    line.pos(),
                    "",
                    "`}` closes no block",
                    Some("remove it, or look for a `{` missing above".into()),
                ),
            }
            continue;
        }
        if line.is("{") {
            diags.error(
                line.pos(),
                "",
                "`{` opens a block no keyword names",
                Some("put the block's keyword before it, e.g. `virtual_ipaddress {`".into()),
            );
            // Read the block anyway so its `}` does not look extra.
            let anonymous = Stmt {
                words: line.words,
                block: None,
            };
            stack.push((anonymous, Vec::new()));
            continue;
        }
        let stmt = Stmt {
            words: line.words,
            block: None,
        };
        if lines.peek().is_some_and(|next| next.is("{")) {
            lines.next();
            stack.push((stmt, Vec::new()));
        } else {
            push(&mut stack, &mut top, stmt);
        }
    }
    // Innermost first: the block whose `}` is missing is most likely the last opened.
    while let Some((open, body)) = stack.pop() {
        let name = describe(&open);
        diags.error(
            open.pos(),
            "",
            format!("`{name}` opens a block that is never closed"),
            Some(format!(
                "add the `}}` that ends `{name}` (line {})",
                open.pos().line
            )),
        );
        let mut open = open;
        open.block = Some(body);
        push(&mut stack, &mut top, open);
    }
    top
}

fn push(stack: &mut [(Stmt, Vec<Stmt>)], top: &mut Vec<Stmt>, stmt: Stmt) {
    match stack.last_mut() {
        Some((_, body)) => body.push(stmt),
        None => top.push(stmt),
    }
}

/// `vrrp_instance VI_1`, `virtual_server 10.0.0.1 80`: the keyword and its arguments.
pub(crate) fn describe(stmt: &Stmt) -> String {
    stmt.words
        .iter()
        .map(|w| w.text.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}
