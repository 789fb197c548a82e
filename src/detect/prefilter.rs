//! The keyword prefilter: one Aho-Corasick pass over a buffer decides which rule regexes run,
//! and where.
//!
//! Every rule lists literals that occur in each of its matches. One automaton holds all of
//! them, ASCII case-insensitively, and runs leftmost-longest without overlaps (the fast search
//! mode: an overlapping search costs several times more). A keyword that occurs inside a longer
//! one (`token` in `vault_token`, `key` in `api_key`) would then be hidden, so each keyword
//! carries the rules of every keyword it contains, at their offsets. A hit on a keyword of a
//! case-sensitive rule is confirmed byte for byte before it counts.
//!
//! A rule whose matches start at its keyword gets one range per hit, starting there, and its
//! regex runs anchored. The few others get a window from [`BEFORE`] bytes before the keyword to
//! the rule's reach after it; windows of one rule that touch are merged, so a dense run of
//! keywords costs one regex pass, not one per hit.

use std::ops::Range;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};

use super::rules::Compiled;

/// How far before its keyword a match may start (assignment names, URL schemes, PEM dashes).
pub const BEFORE: usize = 128;

/// A rule to try when a keyword is found: the rule, whether it compares case-sensitively,
/// and where (offset, length) its own keyword sits inside the found one.
#[derive(Clone, Copy)]
struct Target {
    rule: usize,
    sensitive: bool,
    offset: usize,
    len: usize,
}

/// One distinct keyword (lowercased) and the rules it triggers.
struct Entry {
    keyword: Vec<u8>,
    own: Vec<(usize, bool)>,
    targets: Vec<Target>,
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
                let own = (index, !rule.case_insensitive);
                match entries.iter_mut().find(|e| e.keyword == lower) {
                    Some(e) => e.own.push(own),
                    None => entries.push(Entry {
                        keyword: lower,
                        own: vec![own],
                        targets: Vec::new(),
                    }),
                }
            }
        }
        // Each keyword triggers its own rules and those of every keyword inside it.
        let contained: Vec<Vec<Target>> = entries
            .iter()
            .map(|outer| {
                let mut targets = Vec::new();
                for inner in &entries {
                    let k = &inner.keyword;
                    for offset in 0..=outer.keyword.len().saturating_sub(k.len()) {
                        if outer.keyword[offset..].starts_with(k) {
                            targets.extend(inner.own.iter().map(|&(rule, sensitive)| Target {
                                rule,
                                sensitive,
                                offset,
                                len: k.len(),
                            }));
                        }
                    }
                }
                targets
            })
            .collect();
        for (entry, targets) in entries.iter_mut().zip(contained) {
            entry.targets = targets;
        }
        let automaton = (!entries.is_empty()).then(|| {
            AhoCorasickBuilder::new()
                .ascii_case_insensitive(true)
                .match_kind(MatchKind::LeftmostLongest)
                .kind(Some(AhoCorasickKind::DFA))
                .build(entries.iter().map(|e| &e.keyword))
                .expect("keyword automaton within size limits")
        });
        Prefilter {
            automaton,
            entries,
            always,
        }
    }

    /// The search ranges of each rule for the keyword hits in `hay[range]`: for rule `i`,
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
        for m in ac.find_iter(input) {
            for t in &self.entries[m.pattern().as_usize()].targets {
                let at = m.start() + t.offset;
                if t.sensitive && !keyword_exact(rules, t.rule, &hay[at..at + t.len]) {
                    continue;
                }
                let rule = &rules[t.rule];
                let end = (at + rule.reach + 2).min(hay.len());
                let windows = &mut out[t.rule];
                if rule.anchored {
                    if windows.last().is_none_or(|w| w.start != at) {
                        windows.push(at..end);
                    }
                    continue;
                }
                let start = at.saturating_sub(BEFORE);
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
