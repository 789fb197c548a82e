//! Pass 2 of discovery: text files (logs, notes), finding by finding.
//!
//! Each finding whose value pass 1 did not find becomes a `regex` rule anchored on the words
//! before it on its line (`Bearer (…)`, `api_key=(…)`). Invariant: a rule is proposed only
//! when it captures exactly the finding's value at the finding's place; one that captures
//! several different values (a token that rotates through a log) is marked ephemeral.

use std::collections::BTreeSet;

use regex::bytes::Regex;

use crate::detect::Finding;
use crate::manifest::Locator;
use crate::secret::Secret;

use super::classify::is_reference;
use super::{Attention, Candidate};

/// Symbols a token may hold besides letters and digits (RFC 6750 `b64token`).
const TOKEN_SYMBOLS: &[u8] = b"-._~+/=";

/// Pass 2 for one text file: a regex rule per finding whose value pass 1 did not find.
pub(super) fn from_text(
    rel: &str,
    bytes: &[u8],
    findings: &[Finding],
    known: &[Secret],
    out: &mut Vec<Candidate>,
    attention: &mut Vec<Attention>,
) {
    let mut patterns: Vec<String> = Vec::new();
    for f in findings {
        let start = f.offset as usize;
        let Some(value) = bytes.get(start..start + f.length) else {
            continue;
        };
        if known.iter().any(|k| k.expose() == value)
            || std::str::from_utf8(value).is_ok_and(is_reference)
        {
            continue;
        }
        let Some((anchor, pattern)) = anchored_pattern(bytes, start, value) else {
            attention.push(Attention {
                file: rel.to_string(),
                line: Some(f.line),
                message: format!(
                    "{} finding with no words before it on its line to anchor a rule: \
                     add a `regex` rule by hand",
                    f.rule
                ),
            });
            continue;
        };
        if patterns.contains(&pattern) {
            continue;
        }
        let re = Regex::new(&pattern).expect("an escaped anchor and a class compile");
        // One pass: the distinct values the rule would capture, and whether it captures exactly
        // this finding.
        let mut distinct: BTreeSet<&[u8]> = BTreeSet::new();
        let mut exact = false;
        for m in re.captures_iter(bytes).filter_map(|c| c.get(1)) {
            exact |= m.start() == start && m.as_bytes() == value;
            distinct.insert(m.as_bytes());
        }
        if !exact {
            attention.push(Attention {
                file: rel.to_string(),
                line: Some(f.line),
                message: format!(
                    "{} finding that no simple rule captures exactly: add a `regex` rule by hand",
                    f.rule
                ),
            });
            continue;
        }
        patterns.push(pattern.clone());
        out.push(Candidate {
            file: rel.to_string(),
            files: vec![rel.to_string()],
            locator: Locator::Regex(pattern),
            value: Secret::from_slice(value),
            reason: f.rule.clone(),
            name: anchor,
            ephemeral: distinct.len() > 1,
        });
    }
}

/// A regex that captures `value` at `start` from the words before it on its line:
/// `Bearer ([A-Za-z0-9._-]+)`. Returns the anchor's last word and the pattern.
fn anchored_pattern(bytes: &[u8], start: usize, value: &[u8]) -> Option<(String, String)> {
    let line_start = bytes[..start]
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i + 1);
    let before = std::str::from_utf8(&bytes[line_start..start]).ok()?;
    // The separator between the word and the value (`: `, `=`, `="`, ` `), then the word.
    // In a JSON-escaped transcript the separator may be `\": \"`.
    let word_end = before
        .trim_end_matches([' ', '\t', ':', '=', '"', '\'', '\\'])
        .len();
    let mut word_start = before[..word_end]
        .char_indices()
        .rev()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
        .map_or(0, |(i, c)| i + c.len_utf8());
    // `\nHF_TOKEN=` in a JSON string: the `n` belongs to the escape, not to the name. The
    // rule then starts at a word boundary or after such an escape, so it matches the raw and
    // the escaped line alike.
    let escaped = word_start > 0
        && before.as_bytes()[word_start - 1] == b'\\'
        && before[word_start..word_end].len() > 1
        && before[word_start..].starts_with(['n', 'r', 't']);
    if escaped {
        word_start += 1;
    }
    let word = &before[word_start..word_end];
    if word.is_empty() || word.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    // The characters of a token (RFC 6750's b64token), so that tomorrow's value, with other
    // symbols, still matches; only the value's own symbols when a token character follows it
    // (`token=abc.` at the end of a sentence).
    let after = bytes.get(start + value.len()).copied();
    let broad = after.is_none_or(|b| !(b.is_ascii_alphanumeric() || TOKEN_SYMBOLS.contains(&b)));
    let mut class = String::from("A-Za-z0-9");
    let mut symbols: Vec<char> = std::str::from_utf8(value)
        .ok()?
        .chars()
        .filter(|c| !c.is_ascii_alphanumeric())
        .chain(b"-_".iter().map(|b| *b as char))
        .chain(TOKEN_SYMBOLS.iter().map(|b| *b as char).filter(|_| broad))
        .collect();
    symbols.sort_unstable();
    symbols.dedup();
    if symbols.iter().any(|c| !c.is_ascii_graphic()) {
        return None;
    }
    for c in symbols {
        // Inside a class `-`, `]`, `^`, `&&`, `~~` mean something: escape what is meta.
        if regex_syntax::is_meta_character(c) {
            class.push('\\');
        }
        class.push(c);
    }
    // A variable assignment (`GH_TOKEN=`) also turns up JSON-escaped after a `\n` in
    // transcripts, where `\b` does not hold: the rule matches both.
    let variable = word.len() >= 2
        && word.starts_with(|c: char| c.is_ascii_uppercase())
        && word
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    let boundary = if escaped || variable {
        r"(?:\b|\\[nrt])"
    } else {
        word_boundary(word)
    };
    let pattern = format!(
        r"{boundary}{}([{class}]+)",
        regex::escape(&before[word_start..])
    );
    Some((word.to_string(), pattern))
}

/// `\b` before a word that starts with a word character, so `key=` does not match `monkey=`.
fn word_boundary(word: &str) -> &'static str {
    if word.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
        r"\b"
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_anchor_is_the_word_before_the_value() {
        let line: &[u8] = b"12:00 GET /v1 Authorization: Bearer abc.DEF-123_x~y^z end";
        let value: &[u8] = b"abc.DEF-123_x~y^z";
        let start = line.windows(value.len()).position(|w| w == value).unwrap();
        let (word, pattern) = anchored_pattern(line, start, value).unwrap();
        assert_eq!(word, "Bearer");
        assert!(pattern.starts_with(r"\bBearer "), "{pattern}");
        let re = Regex::new(&pattern).unwrap();
        let got = re.captures(line).unwrap().get(1).unwrap();
        assert_eq!((got.start(), got.as_bytes()), (start, value));
        // `key=` is a word: it does not match inside `monkey=`.
        let (_, pattern) = anchored_pattern(b"key=s3cr3t-value", 4, b"s3cr3t-value").unwrap();
        assert!(
            !Regex::new(&pattern)
                .unwrap()
                .is_match(b"monkey=s3cr3t-value")
        );
        // Regression: a multi-byte character before the word (it used to slice inside it).
        let line = "café·token=s3cr3t-value-0123".as_bytes();
        let start = line.len() - "s3cr3t-value-0123".len();
        let (word, _) = anchored_pattern(line, start, b"s3cr3t-value-0123").unwrap();
        assert_eq!(word, "token");
        // Regression: a JSON-escaped `\nHF_TOKEN=` in a transcript gave the anchor `nHF_TOKEN`.
        let line: &[u8] = br#"{"output":"ok\nHF_TOKEN=hf_Zq8vN2xT5mK9pL3wR7\n"}"#;
        let value: &[u8] = b"hf_Zq8vN2xT5mK9pL3wR7";
        let start = line.windows(value.len()).position(|w| w == value).unwrap();
        let (word, pattern) = anchored_pattern(line, start, value).unwrap();
        assert_eq!(word, "HF_TOKEN");
        let re = Regex::new(&pattern).unwrap();
        let got = re.captures(line).unwrap().get(1).unwrap();
        assert_eq!((got.start(), got.as_bytes()), (start, value));
        let raw = b"export HF_TOKEN=hf_Zq8vN2xT5mK9pL3wR7\n";
        assert!(re.is_match(raw), "{pattern}");
        assert!(
            !re.is_match(b"XHF_TOKEN=hf_Zq8vN2xT5mK9pL3wR7"),
            "{pattern}"
        );
        // An escaped quote before the value: `\"api_key\": \"…`.
        let line: &[u8] = br#"{"content":"{\"api_key\": \"Zq8vN2xT5mK9pL3wR7\"}"}"#;
        let start = line
            .windows(18)
            .position(|w| w == b"Zq8vN2xT5mK9pL3wR7")
            .unwrap();
        let (word, _) = anchored_pattern(line, start, b"Zq8vN2xT5mK9pL3wR7").unwrap();
        assert_eq!(word, "api_key");
        // No word before the value: no anchor.
        assert!(anchored_pattern(b"sk-abc", 0, b"sk-abc").is_none());
        assert!(anchored_pattern(b"2026 sk-abc", 5, b"sk-abc").is_none());
    }
}
