//! One scan of one buffer region: known values, keyword windows, rule regexes, gates,
//! placeholder and overlap filtering, and the making of findings.
//!
//! The caller (the stream) says which part of the buffer is new: rule matches count when their
//! secret starts in `rule_from..rule_to`, known values when they end after `known_new_from`.
//! Bytes around that range are context, searched again but never reported twice.

use std::collections::BTreeMap;
use std::ops::Range;

use super::assign::assignment_value;
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
