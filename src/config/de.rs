//! The file as written, deserialized into the raw structs with every type error and unknown
//! key reported, not only the first: serde stops at the first error, so the offending value
//! is replaced by a stand-in of the type serde expected (or removed, for an unknown key) and
//! deserialization runs again. Messages say "expected an integer, found string \"x\"" rather
//! than serde's "invalid type: string \"x\", expected i64", each with its line and column.

use std::borrow::Cow;

use serde_path_to_error::Segment;
use toml::de::{DeArray, DeInteger, DeTable, DeValue};
use toml::Spanned;

use super::locate::position;
use super::raw::RawConfig;
use super::ConfigProblem;

/// More rounds than this and the rest of the file is not looked at.
const MAX_ROUNDS: usize = 100;

/// A TOML or serde error as a problem of `key`, with its position when it has one.
pub(super) fn toml_problem(text: &str, key: &str, e: &toml::de::Error) -> ConfigProblem {
    // toml's message is one line; its Display adds a source snippet we do not want here.
    let mut p = ConfigProblem::new(key, friendly(e.message().trim()));
    p.at = e.span().map(|s| position(text, s.start));
    p
}

pub(super) fn deserialize(
    text: &str,
    doc: Spanned<DeTable<'_>>,
) -> Result<RawConfig, Vec<ConfigProblem>> {
    let span = doc.span();
    let mut root = doc.into_inner();
    let mut problems = Vec::new();
    // Keys given a stand-in: errors at or under them are consequences, not findings.
    let mut placed: Vec<String> = Vec::new();
    for _ in 0..MAX_ROUNDS {
        let de = toml::de::Deserializer::from(Spanned::new(span.clone(), root.clone()));
        let e = match serde_path_to_error::deserialize::<_, RawConfig>(de) {
            Ok(raw) if problems.is_empty() => return Ok(raw),
            Ok(_) => break,
            Err(e) => e,
        };
        let mut path: Vec<Segment> = e.path().iter().cloned().collect();
        let key = key_of(&path);
        let message = e.inner().message();
        let under_placed = |k: &str| {
            placed.iter().any(|p| {
                k == p
                    || k.strip_prefix(p.as_str())
                        .is_some_and(|rest| rest.starts_with(['.', '[']))
            })
        };
        let stand_in = if let Some(field) = missing_field(message) {
            let field = field.to_string();
            path.push(Segment::Map { key: field });
            let full = key_of(&path);
            if !under_placed(&full) {
                let mut p = ConfigProblem::new(&full, "missing (required)");
                p.at = e.inner().span().map(|s| position(text, s.start));
                problems.push(p);
            }
            // A string; if that is the wrong type too, the next round says which is right.
            Some(DeValue::String(Cow::Borrowed("")))
        } else {
            if !under_placed(&key) {
                problems.push(toml_problem(text, &key, e.inner()));
            }
            expected_value(message)
        };
        if stand_in.is_some() {
            placed.push(key_of(&path));
        }
        if !replace(&mut root, &path, stand_in) {
            break;
        }
    }
    if problems.is_empty() {
        problems.push(ConfigProblem::new(
            "(file)",
            "cannot be read as a configuration",
        ));
    }
    // In file order, as a person reads them (serde visits keys in its own order).
    problems.sort_by_key(|p| p.at.map_or((usize::MAX, 0), |a| (a.line, a.column)));
    Err(problems)
}

/// `bgp.peer[0].name`; the whole file is `(file)`.
fn key_of(path: &[Segment]) -> String {
    let mut key = String::new();
    for s in path {
        match s {
            Segment::Seq { index } => key.push_str(&format!("[{index}]")),
            Segment::Map { key: k } | Segment::Enum { variant: k } => {
                if !key.is_empty() {
                    key.push('.');
                }
                key.push_str(k);
            }
            Segment::Unknown => key.push_str(".?"),
        }
    }
    if key.is_empty() {
        "(file)".to_string()
    } else {
        key
    }
}

fn missing_field(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.strip_suffix('`')
}

/// Serde's "expected X" as a value of that type; None: remove the key (unknown keys).
fn expected_value(message: &str) -> Option<DeValue<'static>> {
    let (_, expected) = message.split_once(", expected ")?;
    Some(match expected {
        e if is_integer_type(e) => DeValue::Integer(DeInteger::default()),
        "a string" => DeValue::String(Cow::Borrowed("")),
        "a boolean" => DeValue::Boolean(false),
        "a sequence" => DeValue::Array(DeArray::new()),
        e if e.starts_with("struct ") || e == "a map" => DeValue::Table(DeTable::new()),
        _ => return None,
    })
}

fn is_integer_type(e: &str) -> bool {
    let signed = e.strip_prefix('i').or_else(|| e.strip_prefix('u'));
    signed.is_some_and(|bits| ["8", "16", "32", "64", "128"].contains(&bits))
}

/// Puts `value` at `path` (or removes what is there for None). False if the path cannot be
/// followed.
fn replace<'i>(root: &mut DeTable<'i>, path: &[Segment], value: Option<DeValue<'i>>) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut table: Option<&mut DeTable<'i>> = Some(root);
    let mut array: Option<&mut DeArray<'i>> = None;
    for s in parents {
        let next = match (s, table.take(), array.take()) {
            (Segment::Map { key }, Some(t), _) => t.get_mut(key.as_str()),
            (Segment::Seq { index }, _, Some(a)) => a.get_mut(*index),
            _ => None,
        };
        let Some(next) = next else {
            return false;
        };
        match next.get_mut() {
            DeValue::Table(t) => table = Some(t),
            DeValue::Array(a) => array = Some(a),
            _ => return false,
        }
    }
    match (last, table, array, value) {
        (Segment::Map { key }, Some(t), _, None) => t.remove(key.as_str()).is_some(),
        (Segment::Map { key }, Some(t), _, Some(v)) => {
            let span = t.get(key.as_str()).map_or(0..0, |old| old.span());
            let name = Spanned::new(span.clone(), Cow::Owned(key.clone()));
            t.insert(name, Spanned::new(span, v));
            true
        }
        (Segment::Seq { index }, _, Some(a), Some(v)) => match a.get_mut(*index) {
            Some(item) => {
                *item.get_mut() = v;
                true
            }
            None => false,
        },
        _ => false,
    }
}

/// Serde's type errors in words: "expected an integer, found string \"x\"".
fn friendly(message: &str) -> String {
    let Some(rest) = message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "))
    else {
        return message.to_string();
    };
    let Some((found, expected)) = rest.split_once(", expected ") else {
        return message.to_string();
    };
    let expected = match expected {
        e if is_integer_type(e) => "an integer",
        "a sequence" => "a list",
        e if e.starts_with("struct ") || e == "a map" => "a table",
        e => e,
    };
    let found = match found {
        "sequence" => "a list".to_string(),
        "map" => "a table".to_string(),
        f => f.replace('`', ""),
    };
    format!("expected {expected}, found {found}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_messages_in_words() {
        assert_eq!(
            friendly("invalid type: string \"x\", expected i64"),
            "expected an integer, found string \"x\""
        );
        assert_eq!(
            friendly("invalid type: integer `1`, expected a boolean"),
            "expected a boolean, found integer 1"
        );
        assert_eq!(
            friendly("invalid type: string \"a\", expected a sequence"),
            "expected a list, found string \"a\""
        );
        assert_eq!(
            friendly("invalid type: integer `3`, expected struct RawMysql"),
            "expected a table, found integer 3"
        );
        assert_eq!(friendly("unknown field `x`"), "unknown field `x`");
    }
}

#[cfg(test)]
mod every_error {
    use crate::config::{parse, Position};

    const TEXT: &str = r#"[bgp]
asn = "x"
router_id = "198.19.0.11"
hold_time = true

[[bgp.peer]]
name = "tor1"
address = "198.18.1.0"
remote_asn = 65001
passive = "yes"
colour = 1

[[service]]
name = "main"
prefixes = "192.0.2.10/32"
[service.mysql]
socket = "/run/mysqld/mysqld.sock"
user = 7
rise = 2.5
"#;

    #[test]
    fn every_type_error_and_unknown_key_is_reported_with_its_position() {
        let p = parse(TEXT).unwrap_err();
        let lines: Vec<String> = p
            .iter()
            .map(|p| format!("{}: {p}", p.at.unwrap()))
            .collect();
        // The unknown-key line lists every allowed key; only its start is pinned here, so a
        // new peer key does not rewrite this test.
        let unknown = "11:1: bgp.peer[0].colour: unknown field `colour`, expected one of `name`, \
                       `address`,";
        let mut lines = lines;
        if let Some(l) = lines.iter_mut().find(|l| l.starts_with(unknown)) {
            *l = unknown.to_string();
        }
        assert_eq!(
            lines,
            [
                "2:7: bgp.asn: expected an integer, found string \"x\"",
                "4:13: bgp.hold_time: expected an integer, found boolean true",
                "10:11: bgp.peer[0].passive: expected a boolean, found string \"yes\"",
                unknown,
                "15:12: service[0].prefixes: expected a list, found string \"192.0.2.10/32\"",
                "18:8: service[0].mysql.user: expected a string, found integer 7",
                "19:8: service[0].mysql.rise: expected an integer, found floating point 2.5",
            ],
            "{p:#?}"
        );
    }

    #[test]
    fn a_missing_key_is_named_once_and_the_rest_still_checked() {
        let text = TEXT
            .replace("asn = \"x\"\n", "")
            .replace("name = \"main\"\n", "");
        let p = parse(&text).unwrap_err();
        let keys: Vec<&str> = p.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "bgp.asn",
                "bgp.hold_time",
                "bgp.peer[0].passive",
                "bgp.peer[0].colour",
                "service[0].name",
                "service[0].prefixes",
                "service[0].mysql.user",
                "service[0].mysql.rise",
            ],
            "{p:#?}"
        );
        assert_eq!(p[0].problem, "missing (required)");
        // Where it should be: the table that lacks it.
        assert_eq!(p[0].at, Some(Position { line: 1, column: 1 }));
    }

    #[test]
    fn syntax_errors_have_a_line_and_column() {
        let p = parse("[bgp]\nasn = 1\nrouter_id = \"x\n").unwrap_err();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].key, "(file)");
        assert_eq!(p[0].at.map(|a| a.line), Some(3), "{p:?}");
    }
}
