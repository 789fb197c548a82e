//! dotenv: values by key, every occurrence of a duplicated key.
//!
//! The dialect is the common core of python-dotenv, Docker Compose and Node's `dotenv`:
//! `KEY=value` lines with an optional `export ` prefix and spaces around `=`; `#` comment
//! lines; unquoted values (trimmed, cut at a `#` preceded by white space); single-quoted
//! values (no escapes); double-quoted values with `\n`, `\r`, `\t`, `\\`, `\"` and `\'`
//! escapes. Quoted values may span lines. `${VAR}` is not expanded: the value is the text.
//! Lines that are none of these are left alone, as those loaders do.
//!
//! Rehydration writes a value so that python-dotenv (interpolation on), Node's `dotenv`,
//! Docker Compose's `env_file` and bash (`set -a; . file`) read exactly that value:
//! - unquoted only when it holds nothing any of them treats specially;
//! - else single quotes, where no loader expands anything (python-dotenv aside, below), when
//!   it holds no `'` and no backslash python-dotenv would read as an escape;
//! - else double quotes with only `\\` and `\"` escaped and line breaks literal (bash reads
//!   `\n` as two characters), when it holds no `$` that bash would expand and no backquote:
//!   python-dotenv has no escape for `$` (`\$` stays two characters);
//! - else the value is refused before anything is written (a `'` together with an expandable
//!   `$`). python-dotenv expands `${NAME}` in every quoting, single quotes included, with no
//!   escape, so a value holding that pattern is refused too.
//!
//! A value keeps its original quoting when that quoting is exact for it. Node's `dotenv` reads
//! no escape but `\n` in double quotes, so a double-quoted value holding `\` or `"` reaches it
//! with the backslashes; single quotes are chosen first where a value leaves the choice.

use serde::{Deserialize, Serialize};

use super::{Context, FormatError, Redactor, Site, Splice, Unfit, utf8};
use crate::detect::encode;
use crate::secret::Secret;

/// The dotenv redactor.
pub(crate) struct Dotenv;

/// How a dotenv value is quoted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "style", rename_all = "snake_case")]
pub enum DotenvStyle {
    /// `KEY=value`.
    Unquoted,
    /// `KEY='value'`.
    Single,
    /// `KEY="value"`.
    Double,
}

/// One `KEY=value` assignment.
pub(crate) struct Entry<'a> {
    pub(crate) key: &'a str,
    /// The body of the value (inside its quotes).
    pub(crate) range: std::ops::Range<usize>,
    pub(crate) style: DotenvStyle,
}

fn is_key_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-')
}

fn error(text: &str, offset: usize, reason: &str) -> FormatError {
    let (line, column) = super::position(text, offset);
    FormatError::Parse {
        line,
        column,
        reason: reason.to_string(),
    }
}

/// Every assignment of a dotenv file, in order.
pub(crate) fn entries(text: &str) -> Result<Vec<Entry<'_>>, FormatError> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < b.len() {
        let line_end = text[pos..].find('\n').map_or(b.len(), |p| pos + p);
        let mut i = pos;
        let skip_ws = |mut i: usize| {
            while i < b.len() && matches!(b[i], b' ' | b'\t') {
                i += 1;
            }
            i
        };
        i = skip_ws(i);
        if text[i..].starts_with("export ") || text[i..].starts_with("export\t") {
            i = skip_ws(i + 7);
        }
        let key_start = i;
        while i < line_end && is_key_char(b[i]) {
            i += 1;
        }
        let key = &text[key_start..i];
        i = skip_ws(i);
        let first = key.as_bytes().first();
        if key.is_empty() || first.is_some_and(|c| c.is_ascii_digit()) || b.get(i) != Some(&b'=') {
            pos = line_end + 1;
            continue;
        }
        let eq = i + 1;
        i = skip_ws(eq);
        let (range, style, end) = match b.get(i) {
            Some(&q @ (b'\'' | b'"')) => {
                let close = closing_quote(b, i + 1, q)
                    .ok_or_else(|| error(text, i, "unterminated quoted value"))?;
                let style = if q == b'"' {
                    DotenvStyle::Double
                } else {
                    DotenvStyle::Single
                };
                (i + 1..close, style, close + 1)
            }
            _ => {
                let rest = &text[i..line_end];
                let cut = comment_start(rest).unwrap_or(rest.len());
                let value = rest[..cut].trim_end();
                if value.contains('\r') {
                    // Loaders disagree on a carriage return inside a line (python-dotenv keeps
                    // it, others end the line there): no value can be read back for certain.
                    return Err(error(text, i, "a carriage return inside an unquoted value"));
                }
                if value.is_empty() && cut == 0 && i == eq {
                    // `KEY=#...`: the comment touches the `=`, so no value fits there without
                    // turning the comment into part of it. An empty value hides nothing; the
                    // key names no value.
                    pos = line_end + 1;
                    continue;
                }
                // An empty value sits right after `=`, so that a placeholder there does not
                // swallow the space that makes the rest of the line a comment.
                let start = if value.is_empty() { eq } else { i };
                (start..start + value.len(), DotenvStyle::Unquoted, line_end)
            }
        };
        if style != DotenvStyle::Unquoted {
            // After a closing quote: only white space and a comment.
            let tail_end = text[end..].find('\n').map_or(b.len(), |p| end + p);
            let tail = text[end..tail_end].trim_start_matches([' ', '\t']);
            if !(tail.is_empty() || tail.starts_with('#') || tail == "\r") {
                return Err(error(text, end, "unexpected text after the closing quote"));
            }
            pos = tail_end + 1;
        } else {
            pos = line_end + 1;
        }
        out.push(Entry { key, range, style });
    }
    Ok(out)
}

/// Where an unquoted value's inline comment starts: a `#` after a space or tab.
fn comment_start(rest: &str) -> Option<usize> {
    let b = rest.as_bytes();
    if b.first() == Some(&b'#') {
        return Some(0);
    }
    (1..b.len()).find(|&i| b[i] == b'#' && matches!(b[i - 1], b' ' | b'\t'))
}

fn closing_quote(b: &[u8], mut i: usize, q: u8) -> Option<usize> {
    while i < b.len() {
        match b[i] {
            b'\\' if q == b'"' => i += 2,
            c if c == q => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// Decodes the body of a double-quoted value.
fn decode_double(body: &str) -> String {
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some(c @ ('\\' | '"' | '\'')) => out.push(c),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// The body of a double-quoted value as rehydration writes it (`\\` and `\"`, the rest
/// literal): `crate::detect::encode`'s definition.
pub(crate) fn double_body(v: &str) -> String {
    encode::dotenv_double_body(v)
}

/// Whether python-dotenv (with interpolation, its default) would expand part of `v`: its
/// `${NAME}` or `${NAME:-default}` pattern, which it expands in every quoting, single quotes
/// included, and has no escape for.
fn python_dotenv_expands(v: &str) -> bool {
    let b = v.as_bytes();
    (0..b.len()).any(|i| {
        if !b[i..].starts_with(b"${") {
            return false;
        }
        // `[^}:]*` then `}`, or `:-` then `[^}]*` then `}`.
        let rest = &b[i + 2..];
        match rest.iter().position(|c| matches!(c, b'}' | b':')) {
            Some(p) if rest[p] == b'}' => true,
            Some(p) => rest[p + 1..].starts_with(b"-") && rest[p + 1..].contains(&b'}'),
            None => false,
        }
    })
}

/// Whether every loader reads `v` unquoted as it is: only characters that no loader treats
/// specially (no white space, quote, `#`, `$`, `\`, `~`, backquote or shell operator).
fn fits_unquoted(v: &str) -> bool {
    v.chars().all(|c| {
        c.is_ascii_alphanumeric()
            || matches!(c, '_' | '.' | '/' | ':' | '@' | '%' | '+' | ',' | '=' | '-')
            || (!c.is_ascii() && !c.is_whitespace() && !c.is_control())
    })
}

/// Whether python-dotenv, Node's dotenv, Docker Compose and bash all read `'v'` as `v`:
/// no `'`, and no backslash python-dotenv would read as an escape (`\\`, or a final `\`
/// before the closing quote).
fn fits_single(v: &str) -> bool {
    !v.contains('\'') && !v.contains("\\\\") && !v.ends_with('\\')
}

/// Whether python-dotenv and bash both read `"double_body(v)"` as `v`: bash expands a `$`
/// followed by a name, a digit, a special parameter, `{`, `(` or `[`, and a backquote;
/// python-dotenv has no escape for either (`\$` stays two characters).
fn fits_double(v: &str) -> bool {
    let b = v.as_bytes();
    !v.contains('`')
        && (0..b.len()).all(|i| {
            b[i] != b'$'
                || !b
                    .get(i + 1)
                    .is_some_and(|n| n.is_ascii_alphanumeric() || b"_{([@*#?!$-".contains(n))
        })
}

pub(crate) fn encode(style: &DotenvStyle, value: &[u8]) -> Result<Splice, Unfit> {
    let v = utf8(value)?;
    if v.contains('\0') {
        return Err(Unfit("a dotenv value cannot hold a NUL character"));
    }
    if v.contains('\r') {
        // python-dotenv reads the file with universal newlines: a carriage return, quoted or
        // not, comes back as a line feed (bash keeps it, and reads the `\r` escape as two
        // characters).
        return Err(Unfit(
            "python-dotenv reads a carriage return in a dotenv value as a line feed",
        ));
    }
    if python_dotenv_expands(v) {
        return Err(Unfit(
            "python-dotenv expands `${...}` in every quoting and has no escape for it, so no dotenv quoting makes it read this value exactly",
        ));
    }
    let fits = |s: DotenvStyle| match s {
        DotenvStyle::Unquoted => fits_unquoted(v),
        DotenvStyle::Single => fits_single(v),
        DotenvStyle::Double => fits_double(v),
    };
    // The value keeps its quoting when every loader reads it there exactly; else single
    // quotes (nothing in them is special to any loader but `'` and python-dotenv's `\\`),
    // else double quotes.
    let order: &[DotenvStyle] = match style {
        DotenvStyle::Unquoted => &[
            DotenvStyle::Unquoted,
            DotenvStyle::Single,
            DotenvStyle::Double,
        ],
        DotenvStyle::Single => &[DotenvStyle::Single, DotenvStyle::Double],
        DotenvStyle::Double => &[DotenvStyle::Double, DotenvStyle::Single],
    };
    let Some(&chosen) = order.iter().find(|s| fits(**s)) else {
        return Err(Unfit(
            "no dotenv quoting makes python-dotenv and bash read this value alike (a `'`, `\\\\` or final `\\` rules out single quotes; a `$` that bash expands or a backquote rules out double quotes)",
        ));
    };
    let body = match chosen {
        DotenvStyle::Double => double_body(v).into_bytes(),
        _ => v.as_bytes().to_vec(),
    };
    let quoted = |body: Vec<u8>| {
        let q = if chosen == DotenvStyle::Double {
            b'"'
        } else {
            b'\''
        };
        let mut out = Vec::with_capacity(body.len() + 2);
        out.push(q);
        out.extend_from_slice(&body);
        out.push(q);
        out
    };
    Ok(if chosen == *style {
        Splice::inside(body)
    } else if *style == DotenvStyle::Unquoted {
        Splice::inside(quoted(body))
    } else {
        // Replace the old quotes too.
        Splice::widened(1, 1, quoted(body))
    })
}

impl Redactor for Dotenv {
    fn format(&self) -> super::Format {
        super::Format::Dotenv
    }

    fn locate(&self, text: &str, locators: &[&str]) -> Result<Vec<Vec<Site>>, FormatError> {
        let entries = entries(text)?;
        let mut out: Vec<Vec<Site>> = locators.iter().map(|_| Vec::new()).collect();
        for entry in &entries {
            for (i, key) in locators.iter().enumerate() {
                if entry.key != *key {
                    continue;
                }
                let body = &text[entry.range.clone()];
                let value = match entry.style {
                    DotenvStyle::Double => decode_double(body),
                    _ => body.to_string(),
                };
                if value.contains('\r') {
                    // See `encode`: loaders disagree on it, so no value can be read back for
                    // certain (an unquoted one was refused by `entries` already).
                    let (line, column) = super::position(text, entry.range.start);
                    return Err(FormatError::Parse {
                        line,
                        column,
                        reason: "a carriage return inside a quoted value".into(),
                    });
                }
                out[i].push(Site {
                    range: entry.range.clone(),
                    value: Secret::from(value),
                    context: Context::Dotenv(entry.style),
                });
            }
        }
        Ok(out)
    }

    fn keys(&self, text: &str) -> Result<Vec<String>, FormatError> {
        let mut out: Vec<String> = Vec::new();
        for entry in entries(text)? {
            if !out.iter().any(|k| k == entry.key) {
                out.push(entry.key.to_string());
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_quoting_and_duplicate_keys() {
        let doc =
            "# c\nexport A=plain # note\nB = 'x # y'\nC=\"l1\\nl\\\"2\" # c\nA=again\nD=a#b\n";
        let sites = Dotenv.locate(doc, &["A", "B", "C", "D"]).unwrap();
        let got: Vec<Vec<&str>> = sites
            .iter()
            .map(|s| s.iter().map(|s| s.value.expose_str().unwrap()).collect())
            .collect();
        assert_eq!(
            got,
            vec![
                vec!["plain", "again"],
                vec!["x # y"],
                vec!["l1\nl\"2"],
                vec!["a#b"]
            ]
        );
        assert_eq!(&doc[sites[2][0].range.clone()], "l1\\nl\\\"2");
    }

    #[test]
    fn a_comment_touching_the_equals_sign_names_no_value() {
        // Regression (found by `redact_arbitrary`): `KEY=#` got a placeholder before the `#`,
        // which made the comment part of the value and broke the round trip.
        let sites = Dotenv.locate("KEY=#c\nB= #c\n", &["KEY", "B"]).unwrap();
        assert!(sites[0].is_empty());
        assert_eq!(sites[1].len(), 1);
        assert_eq!(sites[1][0].range, 9..9);
        let red = crate::redact::round_trip_property(
            ".env",
            b"KEY=#",
            crate::manifest::Locator::Env("KEY".into()),
        );
        assert_eq!(red, Ok(()));
    }

    #[test]
    fn a_carriage_return_inside_an_unquoted_value_is_refused() {
        // Regression (found by `redact_arbitrary`): `KEY=\rKEY\r  ` redacted, then failed to
        // rehydrate. CRLF line ends stay fine.
        assert!(Dotenv.locate("KEY=\rKEY\r  ", &["KEY"]).is_err());
        let sites = Dotenv.locate("KEY=abc\r\nB=1\r\n", &["KEY"]).unwrap();
        assert_eq!(sites[0][0].value.expose(), b"abc");
    }

    #[test]
    fn unterminated_quotes_are_an_error_with_a_position() {
        let e = Dotenv.locate("A=1\nB=\"open\n", &["B"]).unwrap_err();
        assert!(
            matches!(
                e,
                FormatError::Parse {
                    line: 2,
                    column: 3,
                    ..
                }
            ),
            "{e:?}"
        );
    }

    #[test]
    fn a_value_that_outgrows_its_quoting_gets_quotes() {
        let enc = |s: DotenvStyle, v: &str| {
            let sp = encode(&s, v.as_bytes()).unwrap();
            (sp.before, String::from_utf8(sp.bytes.to_vec()).unwrap())
        };
        assert_eq!(enc(DotenvStyle::Unquoted, "a #b"), (0, "'a #b'".into()));
        assert_eq!(enc(DotenvStyle::Single, "it's"), (1, "\"it's\"".into()));
        assert_eq!(enc(DotenvStyle::Double, "a\"\n"), (0, "a\\\"\n".into()));
    }
}
