//! One scan of one buffer region: known values, keyword windows, rule regexes, gates,
//! placeholder and overlap filtering, and the making of findings.
//!
//! The caller (the stream) says which part of the buffer is new: rule matches count when their
//! secret starts in `rule_from..rule_to`, known values when they end after `known_new_from`.
//! Bytes around that range are context, searched again but never reported twice.

use std::collections::BTreeMap;
use std::ops::Range;

use super::finding::{Finding, FindingKind, INLINE_ALLOW, Severity, fingerprint};
use super::rules::{self, Gate, KNOWN_VALUE_RULE, MAX_REACH};
use super::{Detector, Encoding, prefilter};
use crate::handle::{PLACEHOLDER_PREFIX, find_placeholders};
use crate::secret::mask;
use regex_automata::util::captures::Captures;
use regex_automata::{Anchored, Input};

/// The part of a buffer to report on.
pub(crate) struct Region<'a> {
    pub hay: &'a [u8],
    pub rule_from: usize,
    pub rule_to: usize,
    pub known_new_from: usize,
    pub binary: bool,
    /// Matches reported by earlier rounds of a stream that reach into this one: a match
    /// overlapping one of them is not reported again under another rule (as in one buffer).
    pub reported: &'a [Range<usize>],
}

/// What matched.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Source {
    Known { value: usize, encoding: Encoding },
    Rule(usize),
}

/// A match before it becomes a finding: the secret's byte range in the buffer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hit {
    pub start: usize,
    pub end: usize,
    pub source: Source,
}

/// How far a line is searched for `agentbak:allow` and fingerprint context.
const LINE_REACH: usize = 4096;

impl Detector {
    /// Every hit in the region, known values first, then rules in table order; a rule hit
    /// that overlaps an earlier hit is dropped.
    pub(crate) fn hits(&self, r: &Region<'_>) -> Vec<Hit> {
        let mut hits = Vec::new();
        let mut taken: BTreeMap<usize, usize> = BTreeMap::new();
        for span in r.reported {
            let end = taken.entry(span.start).or_insert(span.end);
            *end = (*end).max(span.end);
        }
        if let Some(known) = &self.known {
            let from = r.known_new_from.saturating_sub(known.max_pattern_len());
            for h in known.search(r.hay, from, r.known_new_from) {
                if in_placeholder(r.hay, h.start, h.end) {
                    continue;
                }
                let end = taken.entry(h.start).or_insert(h.end);
                *end = (*end).max(h.end);
                hits.push(Hit {
                    start: h.start,
                    end: h.end,
                    source: Source::Known {
                        value: h.value,
                        encoding: h.encoding,
                    },
                });
            }
        }
        let mut windows: Vec<Vec<Range<usize>>> = vec![Vec::new(); self.rules.len()];
        let kw_from = r.rule_from.saturating_sub(MAX_REACH + 2);
        let kw_to = (r.rule_to + prefilter::BEFORE + 64).min(r.hay.len());
        if kw_from < kw_to {
            self.prefilter
                .windows(&self.rules, r.hay, kw_from..kw_to, r.binary, &mut windows);
        }
        for &i in &self.prefilter.always {
            let start = r.rule_from.saturating_sub(prefilter::BEFORE);
            let end = (r.rule_to + self.rules[i].reach + 2).min(r.hay.len());
            windows[i].push(start..end);
        }
        let mut spans = Vec::new();
        for (i, rule_windows) in windows.iter().enumerate() {
            let gate = self.rules[i].gate;
            if rule_windows.is_empty() || r.binary && self.rules[i].text_only() {
                continue;
            }
            let mut caps = self.rules[i].regex().create_captures();
            for w in rule_windows {
                self.rule_matches(i, r.hay, w.clone(), &mut caps, &mut spans);
                for span in spans.drain(..) {
                    if span.start < r.rule_from || span.start >= r.rule_to {
                        continue;
                    }
                    if !rules::passes(gate, &r.hay[span.clone()])
                        || in_placeholder(r.hay, span.start, span.end)
                        || overlaps(&taken, &span)
                    {
                        continue;
                    }
                    taken.insert(span.start, span.end);
                    hits.push(Hit {
                        start: span.start,
                        end: span.end,
                        source: Source::Rule(i),
                    });
                }
            }
        }
        hits.sort_by_key(|h| (h.start, h.end));
        hits
    }

    /// Adds to `out` the secret spans of rule `i`'s matches in `window`. Look-around sees the
    /// whole buffer; matches stay inside the window. An anchored rule is tried once, at the
    /// start.
    fn rule_matches(
        &self,
        i: usize,
        hay: &[u8],
        window: Range<usize>,
        caps: &mut Captures,
        out: &mut Vec<Range<usize>>,
    ) {
        let rule = &self.rules[i];
        let mut pos = window.start;
        while pos <= window.end {
            let mut input = Input::new(hay).range(pos..window.end);
            if rule.anchored {
                input = input.anchored(Anchored::Yes);
            }
            // Most keyword hits do not match: find the match with the fast engines first, and
            // resolve capture groups only inside a match.
            let Some(m) = rule.regex().search(&input) else {
                break;
            };
            let whole = m.range();
            let assignment = matches!(rule.gate, Gate::Entropy | Gate::Assignment);
            let secret = match rule.group() {
                // The value of an assignment is what follows its operator: found by reading a
                // few bytes instead of resolving capture groups (most matches fail the gate).
                Some(_) if assignment && let Some(value) = assignment_value(hay, &whole) => value,
                Some(g) => {
                    let exact = input.clone().range(whole.clone()).anchored(Anchored::Yes);
                    rule.regex().search_captures(&exact, caps);
                    caps.get_group(g).map_or(whole.clone(), |s| s.range())
                }
                None => whole.clone(),
            };
            if !secret.is_empty() {
                out.push(secret);
            }
            if rule.anchored {
                break;
            }
            pos = if whole.end > whole.start {
                whole.end
            } else {
                whole.end + 1
            };
        }
    }

    /// Turns a hit into a finding, or `None` when an allowlist or `agentbak:allow` silences
    /// it. `offset`, `line` and `column` locate the hit's start in the stream.
    pub(crate) fn finding(
        &self,
        hay: &[u8],
        hit: &Hit,
        path: &str,
        at: (u64, usize, usize),
    ) -> Option<Finding> {
        let (offset, line, column) = at;
        let line_start =
            memchr::memrchr(b'\n', &hay[hit.start.saturating_sub(LINE_REACH)..hit.start])
                .map_or(hit.start.saturating_sub(LINE_REACH), |p| {
                    hit.start.saturating_sub(LINE_REACH) + p + 1
                });
        let after = &hay[hit.end..(hit.end + LINE_REACH).min(hay.len())];
        let line_end = hit.end + memchr::memchr(b'\n', after).unwrap_or(after.len());
        let secret = &hay[hit.start..hit.end];
        let preview = mask(secret);
        let prefix = &hay[line_start.max(hit.start.saturating_sub(40))..hit.start];
        let prefix = prefix.trim_ascii_start();
        let (rule, kind, severity) = match hit.source {
            Source::Known { value, encoding } => {
                let label = self
                    .known
                    .as_ref()
                    .map(|k| k.label(value).to_string())
                    .unwrap_or_default();
                let kind = FindingKind::KnownValue { label, encoding };
                (KNOWN_VALUE_RULE.to_string(), kind, Severity::Error)
            }
            Source::Rule(i) => {
                let rule = &self.rules[i];
                if memchr::memmem::find(&hay[line_start..line_end], INLINE_ALLOW.as_bytes())
                    .is_some()
                {
                    return None;
                }
                match rule.gate {
                    Gate::Entropy => (
                        rule.id.clone(),
                        FindingKind::Entropy,
                        self.entropy_severity.unwrap_or(Severity::Warn),
                    ),
                    _ => (rule.id.clone(), FindingKind::Rule, Severity::Error),
                }
            }
        };
        let finding = Finding {
            fingerprint: fingerprint(&rule, path, &preview, prefix),
            rule,
            path: path.to_string(),
            line,
            column,
            offset,
            length: secret.len(),
            severity,
            preview,
            kind,
            commit: None,
        };
        (!self.allow.allows(&finding)).then_some(finding)
    }
}

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
/// (`[A-Za-z0-9_.-]`), spaces (ASCII whitespace and vertical tab), and value bytes (neither
/// spaces, quotes, `,` nor `;`).
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
        if c.is_ascii_whitespace() || c == 0x0b {
            table[b] |= SPACE;
        } else if !matches!(c, b'"' | b'\'' | b'`' | b',' | b';') {
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
fn assignment_value(hay: &[u8], whole: &Range<usize>) -> Option<Range<usize>> {
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
            .take_while(|b| b.is_ascii_whitespace() || **b == 0x0b)
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

/// Whether `span` overlaps a range already taken. Taken ranges from rules never overlap each
/// other, so the neighbours on each side decide.
fn overlaps(taken: &BTreeMap<usize, usize>, span: &Range<usize>) -> bool {
    let before = taken.range(..=span.start).next_back();
    let after = taken.range(span.start + 1..).next();
    before.is_some_and(|(_, &end)| end > span.start)
        || after.is_some_and(|(&start, _)| start < span.end)
}

/// Whether `hay[start..end]` overlaps one of agentbak's placeholders.
fn in_placeholder(hay: &[u8], start: usize, end: usize) -> bool {
    let prefix = PLACEHOLDER_PREFIX.as_bytes();
    let from = start.saturating_sub(512);
    let to = end.min(hay.len());
    if from >= to {
        return false;
    }
    memchr::memmem::find_iter(&hay[from..to], prefix).any(|p| {
        let at = from + p;
        let tail = &hay[at..(at + 1024).min(hay.len())];
        find_placeholders(tail)
            .first()
            .is_some_and(|m| m.range.start == 0 && at + m.range.end > start)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
