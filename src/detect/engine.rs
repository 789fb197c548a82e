//! One scan of one buffer region: known values, keyword windows, rule regexes, gates,
//! placeholder and overlap filtering, and the making of findings.
//!
//! The caller (the stream) says which part of the buffer is new: rule matches count when their
//! secret starts in `rule_from..rule_to`, known values when they end after `known_new_from`.
//! Bytes around that range are context, searched again but never reported twice.

use std::collections::BTreeMap;
use std::ops::Range;

use super::assign::assignment_value;
use super::decode::{self, Carry, DECODE_BACK, Window};
use super::finding::{Finding, FindingKind, INLINE_ALLOW, Severity, fingerprint};
use super::rules::{self, Gate, KNOWN_VALUE_RULE, MAX_REACH};
use super::{Detector, Encoding, prefilter};
use crate::handle::{PLACEHOLDER_PREFIX, Target, find_placeholders};
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
    /// Whether to decode the region's encoded runs too (not for text that was decoded).
    pub decode: Option<Decoding>,
}

/// How a stream region is decoded: where it sits in the stream, the base64 block in progress
/// at its start, and whether another round follows (which needs the block's state).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Decoding {
    /// Stream offset of `hay[0]`.
    pub base: u64,
    pub carry: Option<Carry>,
    pub last: bool,
}

/// What matched.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Source {
    Known { value: usize, encoding: Encoding },
    Rule(usize),
}

/// A match before it becomes a finding: the secret's byte range in the buffer.
#[derive(Debug, Clone)]
pub(crate) struct Hit {
    pub start: usize,
    pub end: usize,
    pub source: Source,
    /// For a match in decoded text: the masked preview of the decoded secret (the range above
    /// is its encoded form).
    pub decoded: Option<String>,
}

/// How far a line is searched for `agentbak:allow` and fingerprint context.
const LINE_REACH: usize = 4096;

impl Detector {
    /// Every hit in the region, known values first, then rules in table order, then matches
    /// in the decoded text; a hit that overlaps an earlier hit is dropped. Also returns the
    /// state of a base64 block in progress where the next round starts decoding.
    pub(crate) fn hits(&self, r: &Region<'_>) -> (Vec<Hit>, Option<Carry>) {
        let mut hits = Vec::new();
        let mut taken: BTreeMap<usize, usize> = BTreeMap::new();
        for span in r.reported {
            let end = taken.entry(span.start).or_insert(span.end);
            *end = (*end).max(span.end);
        }
        if let Some(known) = &self.known {
            let from = r.known_new_from.saturating_sub(known.max_pattern_len());
            for h in known.search(r.hay, from, r.known_new_from) {
                if self.in_placeholder(r.hay, h.start, h.end) {
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
                    decoded: None,
                });
            }
        }
        // Known values in decoded text come before rule matches in the text as it is, so that
        // a declared value is reported as such; decoded rule matches come last.
        let (decoded, carry) = match r.decode {
            Some(d) => self.decoded_hits(r, d),
            None => (Vec::new(), None),
        };
        let (decoded_known, mut decoded_rules): (Vec<Hit>, Vec<Hit>) = decoded
            .into_iter()
            .partition(|h| matches!(h.source, Source::Known { .. }));
        let keep = |h: Hit, taken: &mut BTreeMap<usize, usize>, hits: &mut Vec<Hit>| {
            if !overlaps(taken, &(h.start..h.end)) {
                taken.insert(h.start, h.end);
                hits.push(h);
            }
        };
        for h in decoded_known {
            keep(h, &mut taken, &mut hits);
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
        // Rules, then decoded rule matches, then the entropy rule: a token decoded out of a
        // base64 value is the finding, not the value's randomness (a warning that would hide
        // it).
        let weak = |i: usize| self.rules[i].gate == rules::Gate::Entropy;
        let strong: Vec<usize> = (0..self.rules.len()).filter(|&i| !weak(i)).collect();
        let last: Vec<usize> = (0..self.rules.len()).filter(|&i| weak(i)).collect();
        for (round, order) in [strong, last].into_iter().enumerate() {
            if round == 1 {
                for h in std::mem::take(&mut decoded_rules) {
                    keep(h, &mut taken, &mut hits);
                }
            }
            for i in order {
                let rule_windows = &windows[i];
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
                            || self.in_placeholder(r.hay, span.start, span.end)
                            || overlaps(&taken, &span)
                        {
                            continue;
                        }
                        taken.insert(span.start, span.end);
                        hits.push(Hit {
                            start: span.start,
                            end: span.end,
                            source: Source::Rule(i),
                            decoded: None,
                        });
                    }
                }
            }
        }
        hits.sort_by_key(|h| (h.start, h.end));
        (hits, carry)
    }

    /// Decodes the region's encoded runs (`decode.rs`) and returns the matches in the decoded
    /// text that start in the settled range, at their original offsets, and the state of a
    /// base64 block in progress for the next round.
    fn decoded_hits(&self, r: &Region<'_>, d: Decoding) -> (Vec<Hit>, Option<Carry>) {
        let mut hits = Vec::new();
        let from = r.rule_from.saturating_sub(DECODE_BACK);
        let next_from = r.rule_to.saturating_sub(DECODE_BACK);
        let window = Window {
            hay: r.hay,
            from,
            base: d.base,
            carry: d.carry,
            next_from: (!d.last).then_some(next_from),
            reach: self.decode_reach(),
        };
        let decoded = decode::decode(&window);
        for (buf, binary) in [(&decoded.text, r.binary), (&decoded.bin, true)] {
            if buf.is_empty() {
                continue;
            }
            let inner = Region {
                hay: buf.bytes(),
                rule_from: 0,
                rule_to: buf.bytes().len(),
                known_new_from: 0,
                binary,
                reported: &[],
                decode: None,
            };
            for h in self.hits(&inner).0 {
                let span = buf.original(&(h.start..h.end));
                if span.start < r.rule_from || span.start >= r.rule_to {
                    continue;
                }
                let encoding = buf.encoding(h.start);
                let source = match h.source {
                    Source::Known { value, .. } => Source::Known { value, encoding },
                    rule => rule,
                };
                hits.push(Hit {
                    start: span.start,
                    end: span.end,
                    source,
                    decoded: Some(mask(&buf.bytes()[h.start..h.end])),
                });
            }
        }
        (hits, decoded.carry)
    }

    /// How far around a `%XX` or `\u` escape text is decoded: the longest known value's
    /// longest form, or the prefilter's window, whichever is longer (at most a rule's reach).
    fn decode_reach(&self) -> usize {
        self.known_keep().clamp(prefilter::BEFORE + 256, MAX_REACH)
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
        let preview = hit.decoded.clone().unwrap_or_else(|| mask(secret));
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

impl Detector {
    /// Whether `hay[start..end]` overlaps one of agentbak's own placeholders: text in the
    /// exact grammar whose handle the placeholder set accepts (see [`Placeholders`]).
    fn in_placeholder(&self, hay: &[u8], start: usize, end: usize) -> bool {
        let prefix = PLACEHOLDER_PREFIX.as_bytes();
        let from = start.saturating_sub(512);
        let to = end.min(hay.len());
        if from >= to {
            return false;
        }
        memchr::memmem::find_iter(&hay[from..to], prefix).any(|p| {
            let at = from + p;
            let tail = &hay[at..(at + 1024).min(hay.len())];
            find_placeholders(tail).first().is_some_and(|m| {
                m.range.start == 0
                    && at + m.range.end > start
                    && self.placeholders.accepts(&m.handle)
            })
        })
    }
}

/// Which placeholders are agentbak's own, so that detection skips them: without a manifest,
/// any text in the exact placeholder grammar; with one, only the handles it declares (any
/// version) and those under its capture path. Text shaped like a placeholder that names
/// anything else (`+agentbak:env:<a secret>+`) is scanned like any other text.
#[derive(Debug, Clone, Default)]
pub struct Placeholders {
    known: Option<Known>,
}

#[derive(Debug, Clone)]
struct Known {
    /// Declared handles, versions cleared.
    declared: std::collections::BTreeSet<crate::handle::Handle>,
    /// The capture target: (store, path).
    capture: Option<(String, String)>,
}

impl Placeholders {
    /// Only `declared` handles (their `{agent}` already filled) and, if a capture target is
    /// given as (store, path), the handles at that path or below it.
    pub fn new(
        declared: impl IntoIterator<Item = crate::handle::Handle>,
        capture: Option<(String, String)>,
    ) -> Placeholders {
        Placeholders {
            known: Some(Known {
                declared: declared.into_iter().map(|h| h.at_version(None)).collect(),
                capture,
            }),
        }
    }

    /// Whether a placeholder naming `handle` is agentbak's own.
    pub fn accepts(&self, handle: &crate::handle::Handle) -> bool {
        let Some(known) = &self.known else {
            return true;
        };
        if known.declared.contains(&handle.at_version(None)) {
            return true;
        }
        match (&known.capture, &handle.target) {
            (Some((store, path)), Target::Kv { path: p, .. }) => {
                *store == handle.store
                    && (p == path
                        || p.strip_prefix(path.as_str())
                            .is_some_and(|r| r.starts_with('/')))
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::{Detector, KnownValues};
    use crate::handle::Handle;
    use crate::manifest::Detect;
    use crate::secret::Secret;

    const ANTHROPIC: &str = "sk-ant-api03-GEcIzzOLWON8oc11J8Ir8KKJtW7NLQNWRmfjvakbXjdJ5VTqGSjlaZ-aOQ2UFBSujhcSvxRmdq48veoDhnLrP7iFy3N1CAA";
    const DECLARED: &str = "Declared_Value_0123456789";

    fn detector(placeholders: Option<Placeholders>) -> Detector {
        let known = KnownValues::new([(
            "env:DECLARED".to_string(),
            Secret::from(DECLARED.to_string()),
        )]);
        let d = Detector::new(&Detect::default(), Some(known)).unwrap();
        match placeholders {
            Some(p) => d.with_placeholders(p),
            None => d,
        }
    }

    fn manifest_like() -> Placeholders {
        Placeholders::new(
            [
                Handle::parse("env:OPENAI_KEY").unwrap(),
                Handle::parse("vault:agents/kevin/openai#api_key").unwrap(),
            ],
            Some(("vault".to_string(), "agents/kevin/captured".to_string())),
        )
    }

    #[test]
    fn text_shaped_like_a_placeholder_hiding_a_value_is_scanned() {
        // Not the exact grammar (an env name has no `-`): scanned with or without a manifest.
        // In the grammar (a field may hold `-`): scanned when the manifest does not declare it.
        let loose = format!("see +agentbak:env:{ANTHROPIC}+");
        let exact = format!("see +agentbak:vault:x/y:{ANTHROPIC}+");
        for (p, text) in [
            (None, &loose),
            (Some(manifest_like()), &loose),
            (Some(manifest_like()), &exact),
        ] {
            let found = detector(p.clone()).scan_bytes("f", text.as_bytes());
            assert_eq!(found.len(), 1, "{p:?} {text}");
            assert_eq!(found[0].rule, "anthropic-api-key");
        }
        // A value in the exact grammar is skipped without a manifest (nothing says which
        // handles are real), found with one that does not declare it.
        let text = format!("see +agentbak:env:{DECLARED}+ and +agentbak:vault:a/b:{DECLARED}+");
        assert!(detector(None).scan_bytes("f", text.as_bytes()).is_empty());
        let found = detector(Some(manifest_like())).scan_bytes("f", text.as_bytes());
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found.iter().all(|f| f.rule == "known-value"));
    }

    #[test]
    fn declared_and_captured_placeholders_are_skipped() {
        let d = detector(Some(manifest_like()));
        let text = "a +agentbak:env:OPENAI_KEY+ b +agentbak:vault:agents/kevin/openai@3:api_key+ \
                    c +agentbak:vault:agents/kevin/captured:anthropic-0123456789ab+";
        assert!(d.scan_bytes("f", text.as_bytes()).is_empty());
        let p = manifest_like();
        let captured = |s: &str| p.accepts(&Handle::parse(s).unwrap());
        assert!(captured("vault:agents/kevin/captured#x"));
        assert!(captured("vault:agents/kevin/captured/deeper#x"));
        assert!(!captured("vault:agents/kevin/capturedx#x"));
        assert!(!captured("local:agents/kevin/captured#x"));
        assert!(!captured("env:OTHER"));
    }
}
