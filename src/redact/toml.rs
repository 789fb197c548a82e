//! TOML: values by JSON Pointer over tables, arrays of tables, inline tables and arrays.
//!
//! `toml_edit` keeps each value's span; the body of a string is what lies between its
//! delimiters (after the line break that directly follows an opening `"""` or `'''`, which
//! TOML trims). A value that no longer fits a literal string is written as a basic string of
//! the same line kind, replacing the delimiters too; escapes are TOML 1.0's, written by
//! `crate::detect::encode` (the definition the leak gate searches with).

use serde::{Deserialize, Serialize};
use toml_edit::{Item, Table, Value};

use super::{Context, FormatError, Redactor, Site, Splice, Unfit, utf8};
use crate::detect::encode;
use crate::json_span::pointer_tokens;
use crate::secret::Secret;

/// The TOML redactor.
pub(crate) struct Toml;

/// The kind of a TOML string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "style", rename_all = "snake_case")]
pub enum TomlStyle {
    /// `"basic"`.
    Basic,
    /// `'literal'`.
    Literal,
    /// `"""multi-line basic"""`.
    MultiBasic {
        /// Bytes of the line break that follows the opening delimiter (TOML trims it): 0, 1
        /// (`\n`) or 2 (`\r\n`).
        newline: u8,
    },
    /// `'''multi-line literal'''`.
    MultiLiteral {
        /// Bytes of the line break that follows the opening delimiter, as for `MultiBasic`.
        newline: u8,
    },
}

enum Node<'a> {
    Item(&'a Item),
    Table(&'a Table),
    Value(&'a Value),
}

fn child<'a>(node: Node<'a>, token: &str) -> Option<Node<'a>> {
    let index = || {
        token
            .parse::<usize>()
            .ok()
            .filter(|_| token == "0" || !token.starts_with('0'))
    };
    match node {
        Node::Item(Item::Table(t)) | Node::Table(t) => t.get(token).map(Node::Item),
        Node::Item(Item::ArrayOfTables(a)) => a.get(index()?).map(Node::Table),
        Node::Item(Item::Value(v)) | Node::Value(v) => match v {
            Value::InlineTable(t) => t.get(token).map(Node::Value),
            Value::Array(a) => a.get(index()?).map(Node::Value),
            _ => None,
        },
        Node::Item(Item::None) => None,
    }
}

impl Redactor for Toml {
    fn format(&self) -> super::Format {
        super::Format::Toml
    }

    fn locate(&self, text: &str, locators: &[&str]) -> Result<Vec<Vec<Site>>, FormatError> {
        let doc = parse(text)?;
        let mut out = Vec::with_capacity(locators.len());
        for (i, pointer) in locators.iter().enumerate() {
            let tokens = pointer_tokens(pointer).ok_or_else(|| FormatError::BadLocator {
                locator: i,
                reason: "a JSON Pointer is empty or starts with `/`".into(),
            })?;
            let mut node = Some(Node::Item(doc.as_item()));
            for token in &tokens {
                node = node.and_then(|n| child(n, token));
            }
            let value = match node {
                None => {
                    out.push(Vec::new());
                    continue;
                }
                Some(Node::Item(Item::Value(v)) | Node::Value(v)) => v,
                Some(Node::Item(item)) => {
                    let found = if item.is_array_of_tables() {
                        "an array of tables"
                    } else {
                        "a table"
                    };
                    return Err(FormatError::NotAString { locator: i, found });
                }
                Some(Node::Table(_)) => {
                    return Err(FormatError::NotAString {
                        locator: i,
                        found: "a table",
                    });
                }
            };
            let (Value::String(s), Some(span)) = (value, value.span()) else {
                return Err(FormatError::NotAString {
                    locator: i,
                    found: value.type_name(),
                });
            };
            let (range, style) = body(text, span);
            out.push(vec![Site {
                range,
                value: Secret::from_slice(s.value().as_bytes()),
                context: Context::Toml(style),
            }]);
        }
        Ok(out)
    }

    fn keys(&self, text: &str) -> Result<Vec<String>, FormatError> {
        let doc = parse(text)?;
        let mut out = Vec::new();
        strings(Node::Item(doc.as_item()), &mut Vec::new(), &mut out);
        Ok(out)
    }
}

fn parse(text: &str) -> Result<toml_edit::Document<&str>, FormatError> {
    toml_edit::Document::parse(text).map_err(|e| {
        let (line, column) = super::position(text, e.span().map_or(0, |s| s.start));
        FormatError::Parse {
            line,
            column,
            reason: super::scrub(e.message()),
        }
    })
}

/// Appends the pointer of every string under `node` (whose path is `path`) to `out`.
fn strings(node: Node<'_>, path: &mut Vec<String>, out: &mut Vec<String>) {
    let mut visit = |token: String, child: Node<'_>, path: &mut Vec<String>| {
        path.push(token);
        strings(child, path, out);
        path.pop();
    };
    match node {
        Node::Item(Item::Table(t)) | Node::Table(t) => {
            for (k, item) in t.iter() {
                visit(k.to_string(), Node::Item(item), path);
            }
        }
        Node::Item(Item::ArrayOfTables(a)) => {
            for (i, t) in a.iter().enumerate() {
                visit(i.to_string(), Node::Table(t), path);
            }
        }
        Node::Item(Item::Value(v)) | Node::Value(v) => match v {
            Value::InlineTable(t) => {
                for (k, v) in t.iter() {
                    visit(k.to_string(), Node::Value(v), path);
                }
            }
            Value::Array(a) => {
                for (i, v) in a.iter().enumerate() {
                    visit(i.to_string(), Node::Value(v), path);
                }
            }
            Value::String(_) => out.push(crate::json_span::pointer(path)),
            _ => {}
        },
        Node::Item(Item::None) => {}
    }
}

/// The body of the string whose span (delimiters included) is `span`, and its kind.
fn body(text: &str, span: std::ops::Range<usize>) -> (std::ops::Range<usize>, TomlStyle) {
    let raw = &text[span.clone()];
    let multi = |delim: &str| raw.len() >= 6 && raw.starts_with(delim);
    if multi("\"\"\"") || multi("'''") {
        let mut start = span.start + 3;
        let rest = &text[start..];
        let skip = if rest.starts_with('\n') {
            1
        } else if rest.starts_with("\r\n") {
            2
        } else {
            0
        };
        start += skip;
        let newline = skip as u8;
        let style = if raw.starts_with('"') {
            TomlStyle::MultiBasic { newline }
        } else {
            TomlStyle::MultiLiteral { newline }
        };
        return (start..span.end - 3, style);
    }
    let style = if raw.starts_with('"') {
        TomlStyle::Basic
    } else {
        TomlStyle::Literal
    };
    (span.start + 1..span.end - 1, style)
}

/// The body of a basic string (`"..."`): any text fits.
pub(crate) fn basic_body(v: &str) -> String {
    encode::toml_basic_body(v)
}

pub(crate) fn encode(style: &TomlStyle, value: &[u8]) -> Result<Splice, Unfit> {
    let v = utf8(value)?;
    let no_control = |allow_newline: bool| {
        !v.chars()
            .any(|c| encode::toml_is_control(c) && c != '\t' && !(allow_newline && c == '\n'))
    };
    Ok(match *style {
        TomlStyle::Basic => Splice::inside(basic_body(v).into_bytes()),
        TomlStyle::Literal => {
            if no_control(false) && !v.contains('\'') {
                Splice::inside(v.as_bytes().to_vec())
            } else {
                Splice::widened(1, 1, format!("\"{}\"", basic_body(v)).into_bytes())
            }
        }
        TomlStyle::MultiBasic { newline } => {
            Splice::inside(encode::toml_multi_basic_body(v, newline > 0).into_bytes())
        }
        TomlStyle::MultiLiteral { newline } => {
            let fits = no_control(true)
                && !v.contains("'''")
                && !v.ends_with('\'')
                && (newline > 0 || !v.starts_with('\n'));
            if fits {
                Splice::inside(v.as_bytes().to_vec())
            } else {
                // The trimmed line break is inside the widened range: write it again.
                let before = 3 + usize::from(newline);
                let nl = ["", "\n", "\r\n"][usize::from(newline.min(2))];
                let body = encode::toml_multi_basic_body(v, newline > 0);
                Splice::widened(before, 3, format!("\"\"\"{nl}{body}\"\"\"").into_bytes())
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_string_kind() {
        let doc = "a = \"b\\\"s\"\n[t]\nl = 'lit'\nm = \"\"\"\nx\ny\"\"\"\n[[arr]]\nk = '''q'''\n[[arr]]\nk = { i = [\"z\"] }\n";
        for (pointer, body, value) in [
            ("/a", "b\\\"s", "b\"s"),
            ("/t/l", "lit", "lit"),
            ("/t/m", "x\ny", "x\ny"),
            ("/arr/0/k", "q", "q"),
            ("/arr/1/k/i/0", "z", "z"),
        ] {
            let s = Toml
                .locate(doc, &[pointer])
                .unwrap()
                .pop()
                .unwrap()
                .remove(0);
            assert_eq!(&doc[s.range.clone()], body, "{pointer}");
            assert_eq!(s.value.expose(), value.as_bytes(), "{pointer}");
        }
        let e = Toml.locate(doc, &["/t"]).unwrap_err();
        assert!(matches!(
            e,
            FormatError::NotAString {
                found: "a table",
                ..
            }
        ));
    }

    #[test]
    fn multi_line_quotes_never_close_the_string() {
        let Splice { bytes, .. } =
            encode(&TomlStyle::MultiBasic { newline: 1 }, b"a\"\"\"b\"").unwrap();
        assert_eq!(&bytes[..], b"a\"\"\\\"b\\\"");
    }
}
