//! INI: values by `section.key` (a key before any section: `key`), every occurrence.
//!
//! The dialect is Python `configparser`'s default: `[section]` headers, `key = value` or
//! `key: value`, `;` and `#` comment lines, no inline comments, names compared as written.
//! A value wholly inside double quotes (`key = "v"`) is the text between them, as PHP and
//! systemd read it. Multi-line (continuation) values are not supported: their first line
//! alone would be redacted, so they are refused.
//!
//! `%`: configparser's default interpolation reads `%%` as `%` and refuses a lone `%`, so a
//! plain value is read and written that way (`50%%off` is `50%off`), the safe default for the
//! dialect this module reads. A plain value found with a `%` configparser would refuse comes
//! from a file another program reads: it is recorded (`literal_percent`) and written back
//! with its `%` as it was. A value a plain INI entry cannot carry exactly (white space at
//! either end, which configparser trims; a line break or carriage return; text wholly inside
//! double quotes) is refused before anything is written.

use serde::{Deserialize, Serialize};

use super::{Context, FormatError, Redactor, Site, Splice, Unfit, utf8};
use crate::detect::encode;
use crate::secret::Secret;

/// The INI redactor.
pub(crate) struct Ini;

/// How an INI value is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "style", rename_all = "snake_case")]
pub enum IniStyle {
    /// `key = value`, as configparser reads it: `%%` is one `%`.
    Plain {
        /// The value as found held a `%` that is not `%%` or `%(`, which configparser's
        /// interpolation refuses: the file is not read by configparser, its `%` is text and
        /// is written back as it is.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        literal_percent: bool,
    },
    /// `key = "value"` (PHP, systemd: the quotes are not part of the value).
    Quoted,
}

/// Whether a plain value as written holds a `%` that configparser's `BasicInterpolation`
/// refuses (one not followed by `%` or `(`): then the file is not configparser's.
fn has_literal_percent(raw: &str) -> bool {
    let b = raw.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            match b.get(i + 1) {
                Some(b'%') => i += 1,
                Some(b'(') => {}
                _ => return true,
            }
        }
        i += 1;
    }
    false
}

struct Entry {
    name: String,
    range: std::ops::Range<usize>,
    style: IniStyle,
    line_end: usize,
}

fn entries(text: &str) -> Vec<Entry> {
    let mut out = Vec::new();
    let mut section = String::new();
    let mut pos = 0;
    while pos < text.len() {
        let line_end = text[pos..].find('\n').map_or(text.len(), |p| pos + p);
        let line = &text[pos..line_end];
        let trimmed = line.trim();
        let lead = line.len() - line.trim_start().len();
        if trimmed.starts_with('[') && trimmed.ends_with(']') {
            section = trimmed[1..trimmed.len() - 1].trim().to_string();
        } else if !(trimmed.is_empty() || trimmed.starts_with([';', '#']))
            && let Some(d) = line.find('=').or_else(|| line.find(':'))
        {
            let key = line[..d].trim();
            let raw = &line[d + 1..];
            let value = raw.trim();
            let start = pos + d + 1 + (raw.len() - raw.trim_start().len());
            let name = if section.is_empty() {
                key.to_string()
            } else {
                format!("{section}.{key}")
            };
            let quoted = value.len() >= 2 && value.starts_with('"') && value.ends_with('"');
            let (range, style) = if quoted {
                (start + 1..start + value.len() - 1, IniStyle::Quoted)
            } else {
                let literal_percent = has_literal_percent(value);
                (
                    start..start + value.len(),
                    IniStyle::Plain { literal_percent },
                )
            };
            if lead == 0 {
                out.push(Entry {
                    name,
                    range,
                    style,
                    line_end,
                });
            }
        }
        pos = line_end + 1;
    }
    out
}

/// Whether the line after `line_end` continues a value (it is indented and not blank).
fn continues(text: &str, line_end: usize) -> bool {
    let next = &text[(line_end + 1).min(text.len())..];
    let line = next.split('\n').next().unwrap_or("");
    line.starts_with([' ', '\t']) && !line.trim().is_empty()
}

pub(crate) fn encode(style: &IniStyle, value: &[u8]) -> Result<Splice, Unfit> {
    let v = utf8(value)?;
    if v.contains('\n') {
        return Err(Unfit("an INI value cannot hold a line break"));
    }
    match style {
        IniStyle::Plain { literal_percent } => {
            // Python reads a carriage return as a line break; configparser trims white space
            // around a value and keeps quotes as text, which other readers strip: no plain
            // value can carry these exactly.
            if v.contains('\r') {
                return Err(Unfit("an INI value cannot hold a carriage return"));
            }
            if v.starts_with(char::is_whitespace) || v.ends_with(char::is_whitespace) {
                return Err(Unfit(
                    "configparser trims white space at either end of an INI value",
                ));
            }
            if v.len() >= 2 && v.starts_with('"') && v.ends_with('"') {
                return Err(Unfit(
                    "an INI value wholly inside double quotes reads as a quoted value",
                ));
            }
            Ok(Splice::inside(if *literal_percent {
                v.as_bytes().to_vec()
            } else {
                encode::ini_body(v).into_bytes()
            }))
        }
        IniStyle::Quoted => Ok(Splice::inside(v.as_bytes().to_vec())),
    }
}

/// The value of a plain entry as configparser reads it: `%%` is `%` (unless the file is not
/// configparser's, see [`IniStyle::Plain`]).
fn decode_plain(raw: &str, literal_percent: bool) -> String {
    if literal_percent {
        raw.to_string()
    } else {
        raw.replace("%%", "%")
    }
}

impl Redactor for Ini {
    fn format(&self) -> super::Format {
        super::Format::Ini
    }

    fn locate(&self, text: &str, locators: &[&str]) -> Result<Vec<Vec<Site>>, FormatError> {
        let mut out: Vec<Vec<Site>> = locators.iter().map(|_| Vec::new()).collect();
        for entry in entries(text) {
            for (i, name) in locators.iter().enumerate() {
                if entry.name != *name {
                    continue;
                }
                if continues(text, entry.line_end) {
                    let (line, column) = super::position(text, entry.line_end + 1);
                    return Err(FormatError::Parse {
                        line,
                        column,
                        reason: "a multi-line value is not supported for a secret".into(),
                    });
                }
                let raw = &text[entry.range.clone()];
                let value = match entry.style {
                    IniStyle::Plain { literal_percent } => {
                        if raw.contains('\r') {
                            let (line, column) = super::position(text, entry.range.start);
                            return Err(FormatError::Parse {
                                line,
                                column,
                                reason: "a carriage return inside an INI value".into(),
                            });
                        }
                        Secret::from(decode_plain(raw, literal_percent))
                    }
                    IniStyle::Quoted => Secret::from_slice(raw.as_bytes()),
                };
                out[i].push(Site {
                    range: entry.range.clone(),
                    value,
                    context: Context::Ini(entry.style),
                });
            }
        }
        Ok(out)
    }

    fn keys(&self, text: &str) -> Result<Vec<String>, FormatError> {
        let mut out: Vec<String> = Vec::new();
        for entry in entries(text) {
            if !out.contains(&entry.name) {
                out.push(entry.name);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_carriage_return_at_an_end_of_a_value_round_trips_quoted() {
        // Regression (found by `redact_arbitrary`): `key = "\r"` was redacted, then refused on
        // rehydration ("cannot hold a line break").
        for doc in [&b"key = \"\r\""[..], b"key = \"a\r\"\r\nb = 1\r\n"] {
            let r = crate::redact::round_trip_property(
                "a.ini",
                doc,
                crate::manifest::Locator::Ini("key".into()),
            );
            assert_eq!(r, Ok(()));
        }
        assert!(encode(&IniStyle::Quoted, b"a\nb").is_err());
        // A carriage return inside a plain value is a line break to Python: refused on both
        // sides.
        let plain = IniStyle::Plain {
            literal_percent: false,
        };
        assert!(encode(&plain, b"v\r").is_err());
        assert!(Ini.locate("key = a\rb\n", &["key"]).is_err());
    }

    #[test]
    fn plain_values_are_configparser_values() {
        // Regression (issue 20): configparser raised on a lone `%` and interpolated
        // `%(user)s`; a padded value was quoted, and configparser kept the quotes.
        let plain = IniStyle::Plain {
            literal_percent: false,
        };
        let Splice { bytes, .. } = encode(&plain, b"50%off  %(user)s").unwrap();
        assert_eq!(&bytes[..], b"50%%off  %%(user)s");
        assert!(encode(&plain, b" padded").is_err());
        assert!(encode(&plain, b"padded\t").is_err());
        assert!(encode(&plain, b"\"quoted\"").is_err());
        let sites = Ini
            .locate("a = 50%%off\nb = 50%off\n", &["a", "b"])
            .unwrap();
        assert_eq!(sites[0][0].value.expose(), b"50%off");
        assert_eq!(sites[1][0].value.expose(), b"50%off");
        // The file that holds a lone `%` is not configparser's: its `%` stays as it was.
        let literal = sites[1][0].context.encode(b"9%x").unwrap();
        assert_eq!(&literal.bytes[..], b"9%x");
    }

    #[test]
    fn records_of_older_archives_still_read() {
        // Archives written before `literal_percent` say only `"style": "plain"`.
        let old: Context = serde_json::from_str(r#"{"format":"ini","style":"plain"}"#).unwrap();
        let plain = IniStyle::Plain {
            literal_percent: false,
        };
        assert_eq!(old, Context::Ini(plain));
        assert_eq!(
            serde_json::to_string(&Context::Ini(plain)).unwrap(),
            r#"{"format":"ini","style":"plain"}"#
        );
    }

    #[test]
    fn finds_section_keys_and_quoted_values() {
        let doc = "top = t\n[db]\npassword = \"p w\"\n; c\n[remote.origin]\nurl: u:x \n";
        let sites = Ini
            .locate(doc, &["top", "db.password", "remote.origin.url", "db.nope"])
            .unwrap();
        let got: Vec<Vec<&str>> = sites
            .iter()
            .map(|s| s.iter().map(|s| s.value.expose_str().unwrap()).collect())
            .collect();
        assert_eq!(got, vec![vec!["t"], vec!["p w"], vec!["u:x"], vec![]]);
    }

    #[test]
    fn continuation_lines_are_refused() {
        let e = Ini.locate("[a]\nk = v\n  more\n", &["a.k"]).unwrap_err();
        assert!(matches!(e, FormatError::Parse { line: 3, .. }));
    }
}
