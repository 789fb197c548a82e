//! Reading an assignment by hand: `name`, an optional closing quote, an operator (`:=`, `=>`,
//! `:`, `=`), an optional opening quote, then the value.
//!
//! The assignment and entropy rules match `name op value`; most hits of their keywords
//! (`token`, `key`, `session`) are prose, a name without a value, or a value too short or too
//! plain to be a secret. The prefilter reads the value after each hit with these helpers and
//! runs a rule's regex only when one could pass its gate; the engine reads a match's value
//! with them instead of resolving capture groups.
//!
//! Invariant, checked by the tests below against the builtin regexes: whatever those regexes
//! capture as `secret` is one of the values read here ([`assigned_values`],
//! [`assignment_value`]), and never longer than [`assigned_len`] says. The regexes read bytes
//! (no Unicode classes), which is what makes a byte-by-byte reading exact.

use std::ops::Range;

/// How many value bytes (up to `cap`) an assignment gives the name that starts at `at`: the
/// name's characters (`[A-Za-z0-9_.-]`), an optional closing quote, up to four spaces, an
/// operator (`:=`, `=>`, `:` or `=`), up to four spaces, an optional opening quote, then value
/// bytes (none of whitespace, quotes, `,` or `;`); 0 when no operator follows. The assignment
/// and entropy rules' regexes match only where this reaches their `secret` group's shortest
/// length: the prefilter checks it in a few bytes before a regex runs, since most hits of
/// `key` or `token` are prose, a name without a value, or a short value.
pub(super) fn assigned_len(hay: &[u8], at: usize, cap: usize) -> usize {
    assigned_len_past(hay, at, 0, cap)
}

/// [`assigned_len`] when the first `known` bytes at `at` are known to be name characters (a
/// keyword made of them, just found there): they are not read again.
pub(super) fn assigned_len_past(hay: &[u8], at: usize, known: usize, cap: usize) -> usize {
    // On every hit of `token` in some logs: no ranges built, one pass over the bytes.
    let Some((rest, op)) = operator(hay, at, known) else {
        return 0;
    };
    let len = |i: usize| {
        let from = value_start(rest, i);
        skip(rest, from, cap, VALUE) - from
    };
    let one = len(op + 1);
    if two_byte_operator(rest, op) {
        one.max(len(op + 2))
    } else {
        one
    }
}

/// The values (up to `cap` bytes each) that the assignment whose name starts at `at` may
/// have, as ranges of `hay`, read as [`assigned_len`] describes: one, or two for the
/// operators `:=` and `=>`, which may also be read as `:` or `=` followed by a value that
/// starts with `=` or `>`. The builtin assignment and entropy regexes read bytes (no Unicode
/// classes), so when one matches here, its `secret` is one of these values.
pub(super) fn assigned_values(hay: &[u8], at: usize, cap: usize) -> [Option<Range<usize>>; 2] {
    let Some((rest, op)) = operator(hay, at, 0) else {
        return [None, None];
    };
    let value = |i: usize| {
        let from = value_start(rest, i);
        at + from..at + skip(rest, from, cap, VALUE)
    };
    let two = two_byte_operator(rest, op).then(|| value(op + 2));
    [Some(value(op + 1)), two]
}

/// `hay[at..]` and the index in it of the operator (its first byte) after the name that
/// starts at `at` (its first `known` bytes name characters already), an optional closing
/// quote and up to four spaces; `None` without one.
fn operator(hay: &[u8], at: usize, known: usize) -> Option<(&[u8], usize)> {
    const MAX_NAME: usize = 64;
    let rest = hay.get(at..).unwrap_or_default();
    let known = known.min(rest.len());
    let mut i = skip(rest, known, MAX_NAME + 1 - known.min(MAX_NAME + 1), NAME);
    if i > MAX_NAME {
        return None;
    }
    if matches!(rest.get(i), Some(b'"' | b'\'')) {
        i += 1;
    }
    i = skip(rest, i, 5, SPACE);
    matches!(rest.get(i), Some(b':' | b'=')).then_some((rest, i))
}

/// Whether the operator at `op` may be read as `:=` or `=>`.
fn two_byte_operator(rest: &[u8], op: usize) -> bool {
    matches!(rest.get(op..op + 2), Some(b":=" | b"=>"))
}

/// Where a value starts when its operator ends before `i`: up to four spaces and an opening
/// quote skipped.
fn value_start(rest: &[u8], i: usize) -> usize {
    let i = skip(rest, i, 4, SPACE);
    if matches!(rest.get(i), Some(b'"' | b'\'' | b'`')) {
        i + 1
    } else {
        i
    }
}

/// Byte classes of [`assigned_len`], as bits of [`CLASSES`]: name characters
/// (`[A-Za-z0-9_.-]`), spaces (space, tab, vertical tab, form feed: never a line end, so that
/// an empty `KEY=` does not take the next line as its value), and value bytes (neither ASCII
/// whitespace, quotes, `,`, `;` nor `\`: a value in JSON-escaped text ends at its `\n`, and a
/// `\u003c…` escape is not read as a value).
const NAME: u8 = 1;
const SPACE: u8 = 2;
const VALUE: u8 = 4;
static CLASSES: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-') {
            table[b] |= NAME;
        }
        if matches!(c, b' ' | b'\t' | 0x0b | 0x0c) {
            table[b] |= SPACE;
        }
        if !(c.is_ascii_whitespace()
            || c == 0x0b
            || matches!(c, b'"' | b'\'' | b'`' | b',' | b';' | b'\\'))
        {
            table[b] |= VALUE;
        }
        b += 1;
    }
    table
};

/// Whether every byte of `bytes` is a name character of [`assigned_len`].
pub(super) fn is_name(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| CLASSES[usize::from(b)] & NAME != 0)
}

/// The index after the run of at most `max` bytes of `bytes[from..]` of the class `class`.
#[inline]
fn skip(bytes: &[u8], from: usize, max: usize, class: u8) -> usize {
    let end = bytes.len().min(from.saturating_add(max));
    let mut i = from;
    while i < end && CLASSES[usize::from(bytes[i])] & class != 0 {
        i += 1;
    }
    i
}

/// The value of an assignment match `whole` (`name["']? op ["'`]?value`, the shape of the
/// assignment and entropy rules): the bytes after the name, quote, operator (`:=`, `=>`, `:`,
/// `=`), spaces and opening quote, up to the match's end. Those pieces are greedy and each
/// starts with bytes the one before cannot hold, so this is the span the rule's `secret`
/// group takes. `None` when the match has another shape.
pub(super) fn assignment_value(hay: &[u8], whole: &Range<usize>) -> Option<Range<usize>> {
    let m = &hay[whole.clone()];
    let mut i = m
        .iter()
        .position(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')))?;
    if matches!(m.get(i), Some(b'"' | b'\'')) {
        i += 1;
    }
    let space = |m: &[u8], i: usize| {
        m[i..]
            .iter()
            .take(4)
            .take_while(|b| CLASSES[usize::from(**b)] & SPACE != 0)
            .count()
    };
    i += space(m, i);
    i += match m.get(i..i + 2) {
        Some(b":=" | b"=>") => 2,
        _ if matches!(m.get(i), Some(b':' | b'=')) => 1,
        _ => return None,
    };
    i += space(m, i);
    if matches!(m.get(i), Some(b'"' | b'\'' | b'`')) {
        i += 1;
    }
    (i < m.len()).then(|| whole.start + i..whole.end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::Detector;
    use crate::detect::rules::Gate;
    use regex_automata::{Anchored, Input};

    /// The hand-read value of an assignment equals the regex's `secret` group, for every
    /// shape the two assignment rules accept.
    #[test]
    fn assignment_value_is_the_secret_group() {
        let detector = Detector::builtin();
        let samples = [
            "api_key = \"pT8wL2vQ9xZr4sY7uB3nK6mJ1hG5fD0c\"",
            "session_cookie='Qm9vZ2xlLWJhc2UtNjQtc2Vzc2lvbi1jb29raWU9eHl6'",
            "\"signing_key\": \"pT8wL2vQ9xZr4sY7uB3nK6mJ1hG5fD0c\"",
            "token:=abcDEF123456ghiJKL789",
            "secret=>`abcDEF123456ghiJKL789`",
            "password \t:  ==abc:DEF=123456ghi>JKL",
            "DB_PASSWORD=h7#Kq2!vLx9abc",
            "private-key: a=b:c>d123456789012345",
            "auth\u{b}=\u{b}x1y2z3w4v5u6t7s8r9",
        ];
        let mut checked = 0;
        for (i, rule) in detector.rules.iter().enumerate() {
            if !matches!(rule.gate, Gate::Entropy | Gate::Assignment) {
                continue;
            }
            let g = rule.group().expect("assignment rules have a secret group");
            let mut caps = rule.regex().create_captures();
            for s in samples {
                let hay = s.as_bytes();
                let Some(m) = rule.regex().search(&Input::new(hay)) else {
                    continue;
                };
                let exact = Input::new(hay).range(m.range()).anchored(Anchored::Yes);
                rule.regex().search_captures(&exact, &mut caps);
                let want = caps.get_group(g).map(|s| s.range());
                assert_eq!(assignment_value(hay, &m.range()), want, "rule {i} on {s:?}");
                let min = rule.min_secret;
                assert!(
                    assigned_len(hay, m.start(), min) >= min,
                    "rule {i} on {s:?}"
                );
                checked += 1;
            }
        }
        assert!(checked >= 12, "{checked} matches checked");
        assert_eq!(assigned_len(b"the token expired", 4, 16), 0);
        assert_eq!(assigned_len(b"token", 0, 16), 0);
        // Values end at spaces, quotes, commas; operators are read both ways; `cap` caps.
        assert_eq!(assigned_len(b"\"prompt_tokens\": 2676,", 8, 16), 4);
        assert_eq!(assigned_len(b"token := abcdefgh", 0, 16), 8);
        assert_eq!(assigned_len(b"token:=abcdefg", 0, 16), 8);
        assert_eq!(assigned_len(b"token: 'abcdefg'", 0, 16), 7);
        assert_eq!(assigned_len(b"token=abcdefghijklmnopqrstuvwxyz", 0, 16), 16);
        // Name bytes already known are skipped, with the same result.
        for hay in [
            &b"tokens=abcdefgh"[..],
            b"token : 'abc'",
            b"token",
            b"token_count=12",
        ] {
            for known in 0..=5 {
                assert_eq!(
                    assigned_len_past(hay, 0, known, 16),
                    assigned_len(hay, 0, 16),
                    "{known}"
                );
            }
        }
        // Issue 20: an empty `KEY=` read the next line as its value.
        assert_eq!(
            assigned_len(b"OPENAI_API_KEY=\nOPENAI_BASE_URL=x", 7, 16),
            0
        );
        assert_eq!(assigned_len(b"token:\r\n  expires: 2026-06-01", 0, 16), 0);
        assert_eq!(assigned_len(b"token\n= abcdefgh", 0, 16), 0);
        // A value in JSON-escaped text ends at its escape.
        assert_eq!(assigned_len(b"token=abcdefgh\\nPATH=/usr/bin", 0, 32), 8);
        let long = format!("{}=abcdefgh", "n".repeat(70));
        assert_eq!(assigned_len_past(long.as_bytes(), 0, 65, 16), 0);
        assert_eq!(assigned_len(long.as_bytes(), 0, 16), 0);
    }

    proptest::proptest! {
        /// The quick check never rejects what the regex of an assignment rule accepts.
        #[test]
        fn assigned_len_reaches_the_secret_of_every_regex_match(
            name in "(token|key|secret|password)",
            tail in r#"[a-z0-9_.\-"'`=:>,; \t\x0b]{0,30}"#,
        ) {
            static DETECTOR: std::sync::LazyLock<Detector> =
                std::sync::LazyLock::new(Detector::builtin);
            let text = format!("{name}{tail}");
            let hay = text.as_bytes();
            for rule in &DETECTOR.rules {
                if !matches!(rule.gate, Gate::Entropy | Gate::Assignment) {
                    continue;
                }
                let input = Input::new(hay).anchored(Anchored::Yes);
                if rule.regex().search(&input).is_some() {
                    proptest::prop_assert!(
                        assigned_len(hay, 0, rule.min_secret) >= rule.min_secret,
                        "rule {} on {:?}", rule.id, text
                    );
                }
            }
        }
    }
}
