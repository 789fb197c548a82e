//! The keyword prefilter: one Aho-Corasick pass over a buffer decides which rule regexes run,
//! and where.
//!
//! Every rule lists literals that occur in each of its matches. The automaton holds all of
//! them, ASCII case-insensitively; a hit on a keyword of a case-sensitive rule is confirmed
//! byte for byte before it counts. Each hit opens a window around it for its rules; windows
//! of one rule that touch are merged, so a dense run of keywords costs one regex pass, not one
//! per hit. Invariant: a window spans from [`BEFORE`] bytes before the keyword to the rule's
//! reach after it, which covers every match that contains the keyword; a rule whose matches
//! start at their keyword gets one range per hit instead, starting at the keyword, and runs
//! anchored there.

use std::ops::Range;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

use super::rules::Compiled;

/// How far before its keyword a match may start (assignment names, URL schemes, PEM dashes).
pub const BEFORE: usize = 128;

/// Which rules a keyword belongs to, and whether each compares case-sensitively.
struct Entry {
    keyword: Vec<u8>,
    rules: Vec<(usize, bool)>,
}

/// The keyword automaton of a rule set.
pub(crate) struct Prefilter {
    automaton: Option<AhoCorasick>,
    entries: Vec<Entry>,
    /// Rules without keywords: they run over every region.
    pub always: Vec<usize>,
}

impl Prefilter {
    pub(crate) fn new(rules: &[Compiled]) -> Prefilter {
        let mut entries: Vec<Entry> = Vec::new();
        let mut always = Vec::new();
        for (index, rule) in rules.iter().enumerate() {
            if rule.keywords.is_empty() {
                always.push(index);
            }
            for keyword in &rule.keywords {
                let lower = keyword.to_ascii_lowercase().into_bytes();
                let sensitive = !rule.case_insensitive;
                match entries.iter_mut().find(|e| e.keyword == lower) {
                    Some(e) => e.rules.push((index, sensitive)),
                    None => entries.push(Entry {
                        keyword: lower,
                        rules: vec![(index, sensitive)],
                    }),
                }
            }
        }
        let automaton = (!entries.is_empty()).then(|| {
            AhoCorasickBuilder::new()
                .ascii_case_insensitive(true)
                .match_kind(MatchKind::Standard)
                .build(entries.iter().map(|e| &e.keyword))
                .expect("keyword automaton within size limits")
        });
        Prefilter {
            automaton,
            entries,
            always,
        }
    }

    /// The search windows of each rule for the keyword hits in `hay[range]`: for rule `i`,
    /// `out[i]` holds ranges of `hay` to run its regex over: merged windows for windowed
    /// rules, and for anchored rules one range per hit that starts at the keyword.
    pub(crate) fn windows(
        &self,
        rules: &[Compiled],
        hay: &[u8],
        range: Range<usize>,
        out: &mut [Vec<Range<usize>>],
    ) {
        let Some(ac) = &self.automaton else { return };
        let input = aho_corasick::Input::new(hay).span(range);
        for m in ac.find_overlapping_iter(input) {
            let entry = &self.entries[m.pattern().as_usize()];
            for &(rule, sensitive) in &entry.rules {
                if sensitive && !keyword_exact(rules, rule, &hay[m.start()..m.end()]) {
                    continue;
                }
                let windows = &mut out[rule];
                if rules[rule].anchored {
                    // The match starts at the keyword: one anchored try per position.
                    let end = (m.start() + rules[rule].reach + 2).min(hay.len());
                    if windows.last().is_none_or(|w| w.start != m.start()) {
                        windows.push(m.start()..end);
                    }
                    continue;
                }
                let start = m.start().saturating_sub(BEFORE);
                let end = (m.start() + rules[rule].reach + 2).min(hay.len());
                match windows.last_mut() {
                    Some(last) if start <= last.end => {
                        last.start = last.start.min(start);
                        last.end = last.end.max(end);
                    }
                    _ => windows.push(start..end),
                }
            }
        }
    }
}

impl std::fmt::Debug for Prefilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prefilter")
            .field("keywords", &self.entries.len())
            .field("always", &self.always)
            .finish()
    }
}

/// Whether `found` is one of the rule's keywords exactly as written.
fn keyword_exact(rules: &[Compiled], rule: usize, found: &[u8]) -> bool {
    rules[rule].keywords.iter().any(|k| k.as_bytes() == found)
}
