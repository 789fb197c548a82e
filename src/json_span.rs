//! Byte spans of values inside a JSON document, addressed by JSON Pointer (RFC 6901).
//!
//! `serde_json` forgets where a value came from. Two parts of agentbak need that position:
//! manifest validation (an error names the line and column of the offending field) and JSON
//! redaction (only the bytes of a value are edited). Both use this one small scanner, which
//! walks the document without building a tree and returns the byte range of the value a
//! pointer names.

use std::ops::Range;

/// Why a document could not be scanned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid JSON at byte {offset}: {reason}")]
pub struct ScanError {
    /// Byte offset of the problem.
    pub offset: usize,
    /// What was expected.
    pub reason: &'static str,
}

/// Splits a JSON Pointer into its unescaped reference tokens. `""` is the whole document.
pub fn pointer_tokens(pointer: &str) -> Option<Vec<String>> {
    if pointer.is_empty() {
        return Some(Vec::new());
    }
    let rest = pointer.strip_prefix('/')?;
    Some(
        rest.split('/')
            .map(|t| t.replace("~1", "/").replace("~0", "~"))
            .collect(),
    )
}

/// The JSON Pointer of `tokens` (`~` and `/` escaped): the inverse of [`pointer_tokens`].
pub fn pointer(tokens: &[String]) -> String {
    tokens
        .iter()
        .map(|t| format!("/{}", t.replace('~', "~0").replace('/', "~1")))
        .collect()
}

/// The byte range of the value at `pointer`, or `None` when the pointer names nothing. With
/// duplicate object keys, the last one wins, as in `serde_json`.
pub fn value_span(doc: &[u8], pointer: &str) -> Result<Option<Range<usize>>, ScanError> {
    Ok(value_spans(doc, &[pointer])?.pop().flatten())
}

/// The byte ranges of the values at several pointers, found in one pass over the document (a
/// redactor with a thousand pointers into a large file must not scan it a thousand times).
/// The result has one entry per pointer, in order; duplicate keys: the last one wins.
pub fn value_spans(doc: &[u8], pointers: &[&str]) -> Result<Vec<Option<Range<usize>>>, ScanError> {
    let mut root = Want::default();
    for (i, pointer) in pointers.iter().enumerate() {
        let tokens = pointer_tokens(pointer).ok_or(ScanError {
            offset: 0,
            reason: "a JSON Pointer starts with `/`",
        })?;
        let mut node = &mut root;
        for token in tokens {
            node = node.children.entry(token).or_default();
        }
        node.here.push(i);
    }
    let mut found = vec![None; pointers.len()];
    let mut s = Scanner { doc, pos: 0 };
    s.ws();
    s.value(Some(&root), 0, &mut found)?;
    s.ws();
    if s.pos != doc.len() {
        return Err(s.error("trailing characters after the document"));
    }
    Ok(found)
}

/// The pointers still wanted below one value: a trie of reference tokens.
#[derive(Default)]
struct Want {
    /// Indexes of the pointers that end at this value.
    here: Vec<usize>,
    /// Pointers that go on, by their next token.
    children: std::collections::HashMap<String, Want>,
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(doc: &[u8], offset: usize) -> (usize, usize) {
    let before = &doc[..offset.min(doc.len())];
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |p| p + 1);
    let col = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    (line, col)
}

/// Decodes the JSON string literal at `span` (quotes included) into its text.
pub fn decode_string(doc: &[u8], span: Range<usize>) -> Result<String, ScanError> {
    let mut s = Scanner {
        doc: &doc[..span.end],
        pos: span.start,
    };
    s.string()
}

const MAX_DEPTH: usize = 512;

struct Scanner<'a> {
    doc: &'a [u8],
    pos: usize,
}

impl Scanner<'_> {
    fn error(&self, reason: &'static str) -> ScanError {
        ScanError {
            offset: self.pos,
            reason,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.doc.get(self.pos).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn expect(&mut self, b: u8, reason: &'static str) -> Result<(), ScanError> {
        if self.peek() == Some(b) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(reason))
        }
    }

    /// Scans one value. `want` holds the pointers whose path goes through this value; each one
    /// that ends here gets this value's span in `found`.
    fn value(
        &mut self,
        want: Option<&Want>,
        depth: usize,
        found: &mut [Option<Range<usize>>],
    ) -> Result<(), ScanError> {
        if depth > MAX_DEPTH {
            return Err(self.error("nesting too deep"));
        }
        let start = self.pos;
        match self.peek() {
            Some(b'{') => self.object(want, depth, found)?,
            Some(b'[') => self.array(want, depth, found)?,
            Some(b'"') => self.skip_string()?,
            Some(b't') => self.literal(b"true")?,
            Some(b'f') => self.literal(b"false")?,
            Some(b'n') => self.literal(b"null")?,
            Some(b'-' | b'0'..=b'9') => self.number()?,
            _ => return Err(self.error("expected a value")),
        }
        for i in want.map_or(&[][..], |w| &w.here[..]) {
            found[*i] = Some(start..self.pos);
        }
        Ok(())
    }

    /// Steps over an opening bracket and any white space; whether `close` follows at once
    /// (an empty object or array, then stepped over too).
    fn open_empty(&mut self, close: u8) -> bool {
        self.pos += 1;
        self.ws();
        let empty = self.peek() == Some(close);
        if empty {
            self.pos += 1;
        }
        empty
    }

    fn object(
        &mut self,
        want: Option<&Want>,
        depth: usize,
        found: &mut [Option<Range<usize>>],
    ) -> Result<(), ScanError> {
        if self.open_empty(b'}') {
            return Ok(());
        }
        let want = want.filter(|w| !w.children.is_empty());
        loop {
            self.ws();
            if self.peek() != Some(b'"') {
                return Err(self.error("expected a string key"));
            }
            // Keys are decoded only where a pointer may go on through them.
            let sub = match want {
                Some(w) => {
                    let key = self.string()?;
                    w.children.get(&key)
                }
                None => {
                    self.skip_string()?;
                    None
                }
            };
            self.ws();
            self.expect(b':', "expected `:` after a key")?;
            self.ws();
            self.value(sub, depth + 1, found)?;
            self.ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(self.error("expected `,` or `}`")),
            }
        }
    }

    fn array(
        &mut self,
        want: Option<&Want>,
        depth: usize,
        found: &mut [Option<Range<usize>>],
    ) -> Result<(), ScanError> {
        if self.open_empty(b']') {
            return Ok(());
        }
        // Only canonical indexes name an element: `01` names nothing (RFC 6901).
        let want = want.filter(|w| !w.children.is_empty());
        let mut i = 0usize;
        loop {
            self.ws();
            let sub = want.and_then(|w| w.children.get(&i.to_string()));
            self.value(sub, depth + 1, found)?;
            i += 1;
            self.ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(self.error("expected `,` or `]`")),
            }
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), ScanError> {
        if self.doc[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(self.error("expected `true`, `false` or `null`"))
        }
    }

    fn number(&mut self) -> Result<(), ScanError> {
        let start = self.pos;
        while matches!(
            self.peek(),
            Some(b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
        ) {
            self.pos += 1;
        }
        if self.pos == start {
            return Err(self.error("expected a number"));
        }
        Ok(())
    }

    fn hex4(&mut self) -> Result<u32, ScanError> {
        let digits = self
            .doc
            .get(self.pos..self.pos + 4)
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| u32::from_str_radix(d, 16).ok())
            .ok_or(self.error("expected four hex digits after `\\u`"))?;
        self.pos += 4;
        Ok(digits)
    }

    /// Skips a string literal (the cursor is on its opening quote) without decoding it: the
    /// fast path for the many strings no pointer names.
    fn skip_string(&mut self) -> Result<(), ScanError> {
        self.expect(b'"', "expected `\"`")?;
        loop {
            let Some(b) = self.peek() else {
                return Err(self.error("unterminated string"));
            };
            match b {
                b'"' => {
                    self.pos += 1;
                    return Ok(());
                }
                b'\\' => {
                    let Some(e) = self.doc.get(self.pos + 1) else {
                        return Err(self.error("unterminated escape"));
                    };
                    match e {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.pos += 2,
                        b'u' => {
                            self.pos += 2;
                            self.hex4()?;
                        }
                        _ => return Err(self.error("invalid escape")),
                    }
                }
                b if b < 0x20 => return Err(self.error("control character in a string")),
                _ => self.pos += 1,
            }
        }
    }

    /// Scans a string literal (the cursor is on its opening quote) and returns its text.
    fn string(&mut self) -> Result<String, ScanError> {
        self.expect(b'"', "expected `\"`")?;
        let mut out = Vec::new();
        loop {
            let Some(b) = self.peek() else {
                return Err(self.error("unterminated string"));
            };
            self.pos += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    let Some(e) = self.peek() else {
                        return Err(self.error("unterminated escape"));
                    };
                    self.pos += 1;
                    let c = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hi = self.hex4()?;
                            let code = if (0xD800..0xDC00).contains(&hi)
                                && self.doc[self.pos..].starts_with(b"\\u")
                            {
                                self.pos += 2;
                                let lo = self.hex4()?;
                                0x10000 + ((hi - 0xD800) << 10) + (lo.wrapping_sub(0xDC00) & 0x3FF)
                            } else {
                                hi
                            };
                            char::from_u32(code).unwrap_or('\u{FFFD}')
                        }
                        _ => return Err(self.error("invalid escape")),
                    };
                    let mut buf = [0; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                b if b < 0x20 => return Err(self.error("control character in a string")),
                b => out.push(b),
            }
        }
        String::from_utf8(out).map_err(|_| self.error("invalid UTF-8 in a string"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"{
  "a": {"b": [10, {"c": "x\"y"}, true]},
  "k/e~y": null,
  "dup": 1, "dup": "two"
}"#;

    fn text(p: &str) -> Option<&'static str> {
        value_span(DOC.as_bytes(), p).unwrap().map(|r| &DOC[r])
    }

    #[test]
    fn finds_values_by_pointer() {
        assert_eq!(text("/a/b/0"), Some("10"));
        assert_eq!(text("/a/b/1/c"), Some(r#""x\"y""#));
        assert_eq!(text("/a/b/2"), Some("true"));
        assert_eq!(text("/k~1e~0y"), Some("null"));
        assert_eq!(text("/dup"), Some(r#""two""#));
        assert_eq!(text(""), Some(DOC));
        assert_eq!(text("/a/b/3"), None);
        assert_eq!(text("/a/b/01"), None);
        assert_eq!(text("/nope"), None);
    }

    #[test]
    fn decodes_strings_and_positions() {
        let span = value_span(DOC.as_bytes(), "/a/b/1/c").unwrap().unwrap();
        assert_eq!(decode_string(DOC.as_bytes(), span.clone()).unwrap(), "x\"y");
        assert_eq!(line_col(DOC.as_bytes(), span.start), (2, 25));
        let esc = br#""\u00e9\ud83d\ude00""#;
        assert_eq!(decode_string(esc, 0..esc.len()).unwrap(), "é😀");
    }

    #[test]
    fn finds_many_pointers_in_one_pass() {
        let ptrs = ["/a/b/1/c", "/dup", "/nope", "/a/b/0", "/a/b/1/c"];
        let spans = value_spans(DOC.as_bytes(), &ptrs).unwrap();
        let got: Vec<Option<&str>> = spans.into_iter().map(|r| r.map(|r| &DOC[r])).collect();
        assert_eq!(
            got,
            vec![
                Some(r#""x\"y""#),
                Some(r#""two""#),
                None,
                Some("10"),
                Some(r#""x\"y""#)
            ]
        );
    }

    #[test]
    fn reports_bad_json() {
        assert!(value_span(b"{\"a\": }", "/a").is_err());
        assert!(value_span(b"[1, 2", "/0").is_err());
        assert!(value_span(b"{} x", "").is_err());
    }
}
