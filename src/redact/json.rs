//! JSON (RFC 8259): values by JSON Pointer, through `json_span`'s one-pass scanner.
//!
//! A value is the body of a JSON string, between its quotes. Writers differ in how they escape
//! (serde_json and JavaScript escape only what they must, Python escapes every non-ASCII
//! character, PHP escapes `/`, Go escapes `<`, `>` and `&`), so each site records the flavour
//! that reproduces its bytes; a string no flavour reproduces is restored with the usual one.
//! The escaping itself is `crate::detect::encode`'s, which the leak gate searches with.

use serde::{Deserialize, Serialize};

use super::{Context, FormatError, Redactor, Site, Splice, Unfit, utf8};
use crate::detect::encode::{JsonFlavour, json_body};
use crate::json_span::{self, ScanError};
use crate::secret::Secret;

/// The JSON redactor.
pub(crate) struct Json;

/// The escaping flavour of a JSON string. All `false` is the minimal escaping of serde_json
/// and `JSON.stringify`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct JsonStyle {
    /// Non-ASCII characters and DEL written as `\uXXXX` (Python's `ensure_ascii`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ascii: bool,
    /// `/` written as `\/` (PHP).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub slash: bool,
    /// `<`, `>`, `&`, U+2028 and U+2029 written as `\uXXXX` (Go).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub html: bool,
    /// Hex digits of `\u` escapes in upper case.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub upper_hex: bool,
}

impl JsonStyle {
    /// Every flavour, the minimal one first.
    fn all() -> impl Iterator<Item = JsonStyle> {
        (0u8..16).map(|bits| JsonStyle {
            ascii: bits & 1 != 0,
            slash: bits & 2 != 0,
            html: bits & 4 != 0,
            upper_hex: bits & 8 != 0,
        })
    }
}

impl JsonStyle {
    /// The writer's flavour of this style (`crate::detect::encode` defines the escaping).
    fn flavour(&self) -> JsonFlavour {
        JsonFlavour {
            ascii: self.ascii,
            slash: self.slash,
            html: self.html,
            upper_hex: self.upper_hex,
        }
    }
}

/// Writes `text` as the body of a JSON string in the given flavour.
pub(crate) fn escape(style: &JsonStyle, text: &str) -> Vec<u8> {
    json_body(text, style.flavour()).into_bytes()
}

pub(crate) fn encode(style: &JsonStyle, value: &[u8]) -> Result<Splice, Unfit> {
    Ok(Splice::inside(escape(style, utf8(value)?)))
}

fn parse_error(doc: &str, e: ScanError) -> FormatError {
    let (line, column) = super::position(doc, e.offset);
    FormatError::Parse {
        line,
        column,
        reason: e.reason.to_string(),
    }
}

fn kind_of(first: u8) -> &'static str {
    match first {
        b'{' => "an object",
        b'[' => "an array",
        b't' | b'f' => "a boolean",
        b'n' => "null",
        _ => "a number",
    }
}

impl Redactor for Json {
    fn format(&self) -> super::Format {
        super::Format::Json
    }

    fn locate(&self, text: &str, locators: &[&str]) -> Result<Vec<Vec<Site>>, FormatError> {
        for (i, pointer) in locators.iter().enumerate() {
            if json_span::pointer_tokens(pointer).is_none() {
                return Err(FormatError::BadLocator {
                    locator: i,
                    reason: "a JSON Pointer is empty or starts with `/`".into(),
                });
            }
        }
        let doc = text.as_bytes();
        let spans = json_span::value_spans(doc, locators).map_err(|e| parse_error(text, e))?;
        let mut out = Vec::with_capacity(spans.len());
        for (i, span) in spans.into_iter().enumerate() {
            let Some(span) = span else {
                out.push(Vec::new());
                continue;
            };
            if doc[span.start] != b'"' {
                return Err(FormatError::NotAString {
                    locator: i,
                    found: kind_of(doc[span.start]),
                });
            }
            let body = span.start + 1..span.end - 1;
            let value =
                json_span::decode_string(doc, span.clone()).map_err(|e| parse_error(text, e))?;
            let raw = &doc[body.clone()];
            let style = JsonStyle::all()
                .find(|s| escape(s, &value) == raw)
                .unwrap_or_default();
            out.push(vec![Site {
                range: body,
                value: Secret::from(value),
                context: Context::Json(style),
            }]);
        }
        Ok(out)
    }

    fn keys(&self, text: &str) -> Result<Vec<String>, FormatError> {
        // The scanner reports syntax errors by position without quoting the text.
        json_span::value_spans(text.as_bytes(), &[]).map_err(|e| parse_error(text, e))?;
        let doc: serde_json::Value =
            serde_json::from_str(text).map_err(|e| FormatError::Parse {
                line: e.line(),
                column: e.column(),
                reason: "not valid JSON".into(),
            })?;
        let mut out = Vec::new();
        strings(&doc, &mut Vec::new(), &mut out);
        Ok(out)
    }
}

/// Appends the pointer of every string under `value` (whose path is `path`) to `out`.
fn strings(value: &serde_json::Value, path: &mut Vec<String>, out: &mut Vec<String>) {
    let mut visit = |token: String, child, path: &mut Vec<String>| {
        path.push(token);
        strings(child, path, out);
        path.pop();
    };
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                visit(k.clone(), v, path);
            }
        }
        serde_json::Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                visit(i.to_string(), v, path);
            }
        }
        serde_json::Value::String(_) => out.push(json_span::pointer(path)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sites(doc: &str, pointer: &str) -> Vec<Site> {
        Json.locate(doc, &[pointer]).unwrap().pop().unwrap()
    }

    #[test]
    fn finds_the_body_of_a_string_and_its_flavour() {
        let doc = r#"{"a": {"k": "x\"\u00e9"}, "b": "p\/q"}"#;
        let s = sites(doc, "/a/k");
        assert_eq!(&doc[s[0].range.clone()], r#"x\"\u00e9"#);
        assert_eq!(s[0].value.expose(), "x\"é".as_bytes());
        assert!(matches!(
            s[0].context,
            Context::Json(JsonStyle { ascii: true, .. })
        ));
        let s = sites(doc, "/b");
        assert!(matches!(
            s[0].context,
            Context::Json(JsonStyle { slash: true, .. })
        ));
    }

    #[test]
    fn a_number_is_not_a_string() {
        let e = Json.locate(r#"{"a": 1}"#, &["/a"]).unwrap_err();
        assert_eq!(
            e,
            FormatError::NotAString {
                locator: 0,
                found: "a number"
            }
        );
    }

    #[test]
    fn escapes_what_json_needs() {
        let s = JsonStyle::default();
        assert_eq!(
            escape(&s, "a\"b\\c\n\u{1}é/"),
            b"a\\\"b\\\\c\\n\\u0001\xc3\xa9/"
        );
        let py = JsonStyle {
            ascii: true,
            ..JsonStyle::default()
        };
        assert_eq!(escape(&py, "😀"), b"\\ud83d\\ude00");
    }

    #[test]
    fn parse_errors_name_a_position_not_the_text() {
        let e = Json.locate("{\n \"a\": sk-live }", &["/a"]).unwrap_err();
        let FormatError::Parse {
            line,
            column,
            reason,
        } = e
        else {
            panic!("{e:?}")
        };
        assert_eq!((line, column), (2, 7));
        assert!(!reason.contains("sk-live"));
    }
}
