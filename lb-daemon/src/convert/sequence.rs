//! keepalived's sequence and list blocks (`lib/parser.c`, keepalived.conf(5) "Sequence
//! blocks", "List blocks"): a line starting `~SEQ(var, start, step, end)`,
//! `~SEQx(...)` (the value in hexadecimal) or `~LST(var, v1, v2, ...)` /
//! `~LST({a, b}, {1, 2}, {3, 4})` stands for the rest of the line once per value, with
//! `$var` defined as that value. Pure: the lexer defines the variables and reads the rest.

/// Values one block gives, in order: each a set of `(variable, value)` bindings.
pub(crate) type Bindings = Vec<Vec<(String, String)>>;

/// Why a block cannot be read; the message says what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SequenceError {
    #[error("`{0}` is not closed with `)`")]
    Unclosed(&'static str),
    #[error("~SEQ takes (VAR, END), (VAR, START, END) or (VAR, START, STEP, END)")]
    SeqArity,
    #[error("`{0}` is not a number (decimal, or hexadecimal with 0x)")]
    NotNumber(String),
    #[error("a step of 0 never ends")]
    ZeroStep,
    #[error("`{0}` is not a variable name (letters, digits and `_`)")]
    BadName(String),
    #[error("~LST needs at least one value")]
    NoValues,
    #[error("`{value}` gives {got} values for {want} variables")]
    TupleArity {
        value: String,
        got: usize,
        want: usize,
    },
    #[error("the block would repeat the line more than {0} times")]
    TooMany(usize),
}

/// A line starting with a block: its bindings and the rest of the line. `None` when the
/// line does not start with `~SEQ` / `~SEQx` / `~LST`.
pub(crate) fn split(line: &str, limit: usize) -> Option<Result<(Bindings, &str), SequenceError>> {
    let (kind, args) = if let Some(r) = line.strip_prefix("~SEQx(") {
        ("~SEQx", r)
    } else if let Some(r) = line.strip_prefix("~SEQ(") {
        ("~SEQ", r)
    } else if let Some(r) = line.strip_prefix("~LST(") {
        ("~LST", r)
    } else {
        return None;
    };
    Some(block(kind, args, limit))
}

fn block<'a>(
    kind: &'static str,
    args: &'a str,
    limit: usize,
) -> Result<(Bindings, &'a str), SequenceError> {
    let close = closing_paren(args).ok_or(SequenceError::Unclosed(kind))?;
    let (inside, rest) = (&args[..close], args[close + 1..].trim_start());
    let items = top_level_items(inside);
    let bindings = match kind {
        "~LST" => list(&items, limit)?,
        _ => sequence(&items, kind == "~SEQx", limit)?,
    };
    Ok((bindings, rest))
}

/// The `)` closing the block (braces may hold commas, never parentheses).
fn closing_paren(s: &str) -> Option<usize> {
    let mut braces = 0usize;
    for (i, c) in s.char_indices() {
        match c {
            '{' => braces += 1,
            '}' => braces = braces.saturating_sub(1),
            ')' if braces == 0 => return Some(i),
            _ => {}
        }
    }
    None
}

/// Comma-separated items, commas inside `{...}` kept, each trimmed.
fn top_level_items(s: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let (mut braces, mut start) = (0usize, 0);
    for (i, c) in s.char_indices() {
        match c {
            '{' => braces += 1,
            '}' => braces = braces.saturating_sub(1),
            ',' if braces == 0 => {
                items.push(s[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(s[start..].trim());
    items
}

fn name(s: &str) -> Result<String, SequenceError> {
    let ok = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(s.to_owned())
    } else {
        Err(SequenceError::BadName(s.to_owned()))
    }
}

/// keepalived reads the numbers with `strtol(.., 0)`: decimal, or hexadecimal with 0x.
fn number(s: &str) -> Result<i64, SequenceError> {
    let (negative, digits) = match s.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let value = match digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        Some(hex) => i64::from_str_radix(hex, 16),
        None => digits.parse::<i64>(),
    }
    .map_err(|_| SequenceError::NotNumber(s.to_owned()))?;
    Ok(if negative { -value } else { value })
}

/// `(VAR, END)`, `(VAR, START, END)`, `(VAR, START, STEP, END)` with keepalived's
/// defaults: START 1 (-1 when END is negative), STEP towards END.
fn sequence(items: &[&str], hex: bool, limit: usize) -> Result<Bindings, SequenceError> {
    let (var, nums) = items.split_first().ok_or(SequenceError::SeqArity)?;
    let var = name(var)?;
    let nums: Vec<i64> = nums.iter().map(|s| number(s)).collect::<Result<_, _>>()?;
    let towards = |start: i64, end: i64| if end >= start { 1 } else { -1 };
    let (start, step, end) = match nums[..] {
        [end] => {
            let start = if end >= 0 { 1 } else { -1 };
            (start, towards(start, end), end)
        }
        [start, end] => (start, towards(start, end), end),
        [start, step, end] => (start, step, end),
        _ => return Err(SequenceError::SeqArity),
    };
    if step == 0 {
        return Err(SequenceError::ZeroStep);
    }
    let mut out = Vec::new();
    let mut v = start;
    while (step > 0 && v <= end) || (step < 0 && v >= end) {
        if out.len() >= limit {
            return Err(SequenceError::TooMany(limit));
        }
        let text = if hex { format!("{v:x}") } else { v.to_string() };
        out.push(vec![(var.clone(), text)]);
        v = match v.checked_add(step) {
            Some(next) => next,
            None => break,
        };
    }
    Ok(out)
}

/// `(VAR, v1, v2, ...)` or `({A, B}, {a1, b1}, {a2, b2}, ...)`.
fn list(items: &[&str], limit: usize) -> Result<Bindings, SequenceError> {
    let (vars, values) = items.split_first().ok_or(SequenceError::NoValues)?;
    let unbrace = |s: &str| -> Vec<String> {
        let inner = s
            .strip_prefix('{')
            .and_then(|s| s.strip_suffix('}'))
            .unwrap_or(s);
        inner.split(',').map(|p| p.trim().to_owned()).collect()
    };
    let vars: Vec<String> = unbrace(vars)
        .iter()
        .map(|v| name(v))
        .collect::<Result<_, _>>()?;
    if values.is_empty() || values.iter().all(|v| v.is_empty()) {
        return Err(SequenceError::NoValues);
    }
    if values.len() > limit {
        return Err(SequenceError::TooMany(limit));
    }
    values
        .iter()
        .map(|value| {
            let parts = unbrace(value);
            if parts.len() != vars.len() {
                return Err(SequenceError::TupleArity {
                    value: (*value).to_owned(),
                    got: parts.len(),
                    want: vars.len(),
                });
            }
            Ok(vars.iter().cloned().zip(parts).collect())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(line: &str) -> (Vec<String>, String) {
        let (b, rest) = split(line, 1000).unwrap().unwrap();
        let v = b
            .iter()
            .map(|set| {
                set.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect();
        (v, rest.to_owned())
    }

    #[test]
    fn sequences_as_the_manual_shows_them() {
        let (v, rest) = values("~SEQ(SUBNET, 0, 3) ip_address 10.0.${SUBNET}.1");
        assert_eq!(v, ["SUBNET=0", "SUBNET=1", "SUBNET=2", "SUBNET=3"]);
        assert_eq!(rest, "ip_address 10.0.${SUBNET}.1");
        let (v, _) = values("~SEQx(SUBNET, 0x90, 0x10, 0xc0) x");
        assert_eq!(v, ["SUBNET=90", "SUBNET=a0", "SUBNET=b0", "SUBNET=c0"]);
        let (v, _) = values("~SEQx(AD1, 0x12, -1, 0x0c) x");
        assert_eq!(v.len(), 7);
        assert_eq!(v[6], "AD1=c");
        assert_eq!(values("~SEQ(N, 3) x").0, ["N=1", "N=2", "N=3"]);
        assert_eq!(values("~SEQ(N, -2) x").0, ["N=-1", "N=-2"]);
        assert_eq!(values("~SEQ(N, 5, 3) x").0, ["N=5", "N=4", "N=3"]);
        // Nested blocks: the rest starts with the next one.
        assert_eq!(
            values("~SEQ(A,1,2) ~SEQ(B,1,2) x").1,
            "~SEQ(B,1,2) x".to_string()
        );
    }

    #[test]
    fn lists_single_and_tuples() {
        let (v, rest) = values("~LST(IP, 1, 2, 3) 192.169.${IP}.1");
        assert_eq!(v, ["IP=1", "IP=2", "IP=3"]);
        assert_eq!(rest, "192.169.${IP}.1");
        let (v, _) = values("~LST({IP, IP1}, {10,1},{20,4}) 192.168.${IP}.${IP1}");
        assert_eq!(v, ["IP=10,IP1=1", "IP=20,IP1=4"]);
    }

    #[test]
    fn bad_blocks_say_why() {
        let err = |line: &str| split(line, 10).unwrap().unwrap_err();
        assert_eq!(err("~SEQ(A, 1, 2"), SequenceError::Unclosed("~SEQ"));
        assert_eq!(err("~SEQ(A) x"), SequenceError::SeqArity);
        assert_eq!(err("~SEQ(A, 1, 0, 5) x"), SequenceError::ZeroStep);
        assert_eq!(err("~SEQ(A, x) x"), SequenceError::NotNumber("x".into()));
        assert_eq!(err("~SEQ(1A, 3) x"), SequenceError::BadName("1A".into()));
        assert_eq!(err("~SEQ(A, 1, 100) x"), SequenceError::TooMany(10));
        assert_eq!(err("~LST(A) x"), SequenceError::NoValues);
        assert_eq!(
            err("~LST({A, B}, {1}) x"),
            SequenceError::TupleArity {
                value: "{1}".into(),
                got: 1,
                want: 2
            }
        );
        assert!(split("~FOO(A) x", 10).is_none());
        assert!(split("vrrp_instance VI_1 {", 10).is_none());
    }
}
