//! INI: values by `section.key` (a key before any section: `key`), every occurrence.
//!
//! The dialect is Python `configparser`'s default: `[section]` headers, `key = value` or
//! `key: value`, `;` and `#` comment lines, no inline comments, names compared as written.
//! A value wholly inside double quotes (`key = "v"`) is the text between them, as PHP and
//! systemd read it. Multi-line (continuation) values are not supported: their first line
//! alone would be redacted, so they are refused.

use serde::{Deserialize, Serialize};

use super::{Context, FormatError, Redactor, Site, Splice, Unfit, utf8};
use crate::secret::Secret;

/// The INI redactor.
pub(crate) struct Ini;

/// How an INI value is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "style", rename_all = "snake_case")]
pub enum IniStyle {
    /// `key = value`.
    Plain,
    /// `key = "value"`.
    Quoted,
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
                (start..start + value.len(), IniStyle::Plain)
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
    // A line feed ends the value. A carriage return is text to INI readers; at either end it
    // would be trimmed as white space, so such a value is written quoted (below).
    if v.contains('\n') {
        return Err(Unfit("an INI value cannot hold a line break"));
    }
    // The reader trims white space around a value, so a plain value may not start or end
    // with any.
    let padded = v.starts_with(char::is_whitespace) || v.ends_with(char::is_whitespace);
    let looks_quoted = v.len() >= 2 && v.starts_with('"') && v.ends_with('"');
    let plain = !padded && !looks_quoted;
    Ok(match style {
        IniStyle::Plain if plain => Splice::inside(v.as_bytes().to_vec()),
        IniStyle::Plain => Splice::inside(format!("\"{v}\"").into_bytes()),
        IniStyle::Quoted => Splice::inside(v.as_bytes().to_vec()),
    })
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
                out[i].push(Site {
                    range: entry.range.clone(),
                    value: Secret::from_slice(text[entry.range.clone()].as_bytes()),
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
        let Splice { bytes, .. } = encode(&IniStyle::Plain, b"v\r").unwrap();
        assert_eq!(&bytes[..], b"\"v\r\"");
        assert!(encode(&IniStyle::Quoted, b"a\nb").is_err());
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
