//! Where a problem is in the file: a byte offset (from the TOML parser) or a dotted key such
//! as `bgp.peer[1].address` (from validation) turned into a line and column.

use std::fmt;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::ConfigProblem;

/// 1-based line and column (in characters), as editors count them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// The position of byte `offset` of `text` (clamped to the text).
pub(super) fn position(text: &str, offset: usize) -> Position {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    Position {
        line: before.matches('\n').count() + 1,
        column: before[line_start..].chars().count() + 1,
    }
}

enum Segment<'k> {
    Key(&'k str),
    Index(usize),
}

/// `service[1].prefixes[0]` -> service, 1, prefixes, 0.
fn segments(key: &str) -> Vec<Segment<'_>> {
    let mut out = Vec::new();
    for part in key.split('.') {
        let (name, mut rest) = part.split_once('[').map_or((part, ""), |(n, r)| (n, r));
        out.push(Segment::Key(name));
        while let Some((index, after)) = rest.split_once(']') {
            match index.parse() {
                Ok(i) => out.push(Segment::Index(i)),
                Err(_) => return out,
            }
            rest = after.strip_prefix('[').unwrap_or("");
        }
    }
    out
}

/// Byte offset of the deepest part of `key` that is in the document: its value when it is
/// there (a table: its name), else the table or list that should hold it.
fn find(root: &DeTable<'_>, key: &str) -> Option<usize> {
    let mut at = None;
    let mut table = Some(root);
    let mut value: Option<&Spanned<DeValue<'_>>> = None;
    for segment in segments(key) {
        let next = match (segment, table, value.map(|v| v.as_ref())) {
            (Segment::Key(k), Some(t), _) => t.get_key_value(k).map(|(name, v)| {
                let table = matches!(v.as_ref(), DeValue::Table(_));
                at = Some(if table { name.span() } else { v.span() }.start);
                v
            }),
            (Segment::Index(i), _, Some(DeValue::Array(a))) => a.get(i).inspect(|v| {
                at = Some(v.span().start);
            }),
            _ => None,
        };
        let Some(v) = next else { break };
        value = Some(v);
        table = match v.as_ref() {
            DeValue::Table(t) => Some(t),
            _ => None,
        };
    }
    at
}

/// Fills in the position of every problem that has none yet, by its key.
pub(super) fn locate_all(text: &str, mut problems: Vec<ConfigProblem>) -> Vec<ConfigProblem> {
    let Ok(doc) = DeTable::parse(text) else {
        return problems;
    };
    for p in problems.iter_mut().filter(|p| p.at.is_none()) {
        p.at = find(doc.as_ref(), &p.key).map(|offset| position(text, offset));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "[bgp]\nasn = 1\n\n[[bgp.peer]]\nname = \"a\"\n\n[[bgp.peer]]\nname = \"é\"\naddress = \"x\"\n";

    fn at(key: &str) -> Option<Position> {
        let doc = DeTable::parse(TEXT).unwrap();
        find(doc.as_ref(), key).map(|o| position(TEXT, o))
    }

    #[test]
    fn keys_are_found_down_to_list_items() {
        let p = |line, column| Some(Position { line, column });
        assert_eq!(at("bgp.asn"), p(2, 7));
        assert_eq!(at("bgp.peer[1].address"), p(9, 11));
        assert_eq!(at("bgp.peer[0].name"), p(5, 8));
        // Not in the file: the deepest part that is.
        assert_eq!(at("bgp.peer[1].port"), at("bgp.peer[1]"));
        assert_eq!(at("(file)"), None);
    }

    #[test]
    fn columns_count_characters() {
        assert_eq!(position("ab\ncé=x", 7), Position { line: 2, column: 4 });
        assert_eq!(position("x", 99), Position { line: 1, column: 2 });
    }
}
