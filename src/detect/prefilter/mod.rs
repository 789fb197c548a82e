//! The keyword prefilter: a pass over a buffer decides which rule regexes run, and where.
//!
//! Every rule lists literals that occur in each of its matches. They are found in two passes,
//! each a search for a few short *atoms* followed by a byte-for-byte check of the keywords
//! built on each atom found:
//!
//! - **Folded**: the keywords of case-insensitive rules (`token`, `secret`, `bearer`, …) are
//!   searched in any case (by the sweep itself, or else in a lowercased copy of the buffer).
//!   Their atoms are the keywords that contain no other keyword: `vault_token` is checked
//!   where `token` is found. A keyword whose rules all take an assignment's value drops a hit
//!   whose value is too short before its rules are looked at.
//! - **Exact**: the keywords of case-sensitive rules (`ghp_`, `AKIA`, `sk-ant-`, …) are searched
//!   by their rarest three bytes (`hp_`, `KIA`, `sk-`), which keeps a vectorized (Teddy) search
//!   over dozens of prefixes fast on prose and code.
//!
//! Both passes report every occurrence of every atom (the folded pass in one
//! [`Sweep`](super::sweep::Sweep) where the processor has AVX2; Teddy and Aho-Corasick restart
//! one byte after each atom found), and no atom contains another, so every occurrence of every
//! keyword is found, overlapping ones included.
//!
//! A rule whose matches start at its keyword gets one range per hit, starting there, and its
//! regex runs anchored. The few others get a window from [`BEFORE`] bytes before the keyword to
//! the rule's reach after it; windows of one rule that touch are merged, so a dense run of
//! keywords costs one regex pass, not one per hit.
//!
//! Four parts: this module turns keyword hits into the search ranges of each rule (and drops
//! assignments whose value fails the rule's gate before any regex runs); `pass` holds the
//! keywords of one pass and checks each atom found against them; `finder` finds the atoms
//! (the sweep, Teddy or Aho-Corasick); `order` chooses the order Teddy gets them in.

mod finder;
mod order;
mod pass;

#[cfg(test)]
pub(crate) use pass::ANCHOR_LEN;

use std::cell::RefCell;
use std::ops::Range;

use super::assign::{assigned_len, assigned_values};
use super::rules::{self, Compiled, MAX_REACH};
use pass::{Pass, Passes, has_no_keyword};

/// How far before its keyword a match may start (assignment names, URL schemes, PEM dashes).
pub const BEFORE: usize = 128;

/// The keyword passes of a rule set.
pub(crate) struct Prefilter {
    /// Over the keywords of every rule, for text.
    text: Passes,
    /// Without the rules binary data skips (assignments and entropy), whose keywords are
    /// common words: `token`, `key`, `session`. A tar stream is binary.
    binary: Passes,
    /// Rules without keywords: they run over every region.
    pub always: Vec<usize>,
    /// The longest shortest `secret` of the assignment rules: how far a hit's value is read
    /// to decide whether it is long enough.
    value_cap: usize,
    /// The longest `secret` of the assignment rules: how far a value long enough is read for
    /// its gate.
    value_max: usize,
}

thread_local! {
    /// The lowercased copy the folded pass searches without a sweep, kept per thread between
    /// buffers.
    static FOLDED: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl Prefilter {
    pub(crate) fn new(rules: &[Compiled]) -> Prefilter {
        Prefilter {
            text: Passes::new(rules, |_| true),
            binary: Passes::new(rules, |rule| !rule.text_only()),
            always: (0..rules.len())
                .filter(|&i| has_no_keyword(&rules[i]))
                .collect(),
            value_cap: value_cap(rules),
            value_max: rules
                .iter()
                .filter(|r| r.text_only())
                .map(|r| r.max_secret.min(MAX_REACH))
                .max()
                .unwrap_or(0),
        }
    }

    /// The search ranges of each rule for the keyword hits in `hay[range]`: for rule `i`,
    /// `out[i]` holds ranges of `hay` to run its regex over, in order: merged windows for
    /// windowed rules, and for anchored rules one range per hit that starts at the keyword.
    /// In `binary` data, rules that only run on text get none; an anchored assignment rule
    /// gets none where the value after its keyword is shorter than its secret
    /// ([`assigned_len`], read once for all the rules of a hit).
    pub(crate) fn windows(
        &self,
        rules: &[Compiled],
        hay: &[u8],
        range: Range<usize>,
        binary: bool,
        out: &mut [Vec<Range<usize>>],
    ) {
        let mut assigned = (usize::MAX, 0);
        let mut values = (usize::MAX, [None, None]);
        let mut hit = |rule: usize, at: usize| {
            let r = &rules[rule];
            if r.anchored && r.text_only() {
                if assigned.0 != at {
                    assigned = (at, assigned_len(hay, at, self.value_cap));
                }
                if assigned.1 < r.min_secret.max(1) {
                    return;
                }
                // Most values long enough are placeholders, paths, names or digests, which
                // the rule's gate rejects: apply it here to the values its regex would
                // capture (cut where the regex would stop), and run the regex only when one
                // passes. See `gated_value`.
                if values.0 != at {
                    values = (at, assigned_values(hay, at, self.value_max));
                }
                let window_end = at + r.reach + 2;
                if !values
                    .1
                    .iter()
                    .flatten()
                    .any(|v| gated_value(hay, v, r, window_end))
                {
                    return;
                }
            }
            let reach = (at + rules[rule].reach + 2).min(hay.len());
            let start = if rules[rule].anchored {
                at
            } else {
                at.saturating_sub(BEFORE)
            };
            out[rule].push(start..reach);
        };
        let passes = if binary { &self.binary } else { &self.text };
        let cap = self.value_cap;
        if let Some(pass) = &passes.exact {
            pass.run(hay, &hay[range.clone()], range.start, cap, &mut hit);
        }
        if let Some(pass) = passes.folded.as_ref().filter(|p| !p.needs_lowercase()) {
            pass.run(hay, &hay[range.clone()], range.start, cap, &mut hit);
        } else if let Some(pass) = &passes.folded {
            FOLDED.with_borrow_mut(|lower| {
                lower.clear();
                lower.extend(hay[range.clone()].iter().map(u8::to_ascii_lowercase));
                pass.run(hay, lower, range.start, cap, &mut hit);
            });
        }
        for (rule, windows) in out.iter_mut().enumerate() {
            if windows.len() > 1 {
                normalize(windows, rules[rule].anchored);
            }
        }
    }
}

/// Whether `value` (of [`assigned_values`]) could be the `secret` of a match of the assignment
/// or entropy rule `rule` that passes its gate: long enough, and passing the gate once cut to
/// the rule's longest secret and to the end of its window (`window_end`), as the regex would
/// cut it. The engine applies the same gate to what the regex captures; for these two rules
/// that is one of the values `assigned_values` returns, so a value rejected here would be
/// rejected there.
fn gated_value(hay: &[u8], value: &Range<usize>, rule: &Compiled, window_end: usize) -> bool {
    let end = value
        .end
        .min(value.start.saturating_add(rule.max_secret))
        .min(window_end)
        .min(hay.len());
    end.saturating_sub(value.start) >= rule.min_secret
        && rules::passes(rule.gate, &hay[value.start..end])
}

/// Sorts a rule's ranges; drops repeated anchored starts and merges windows that touch.
fn normalize(windows: &mut Vec<Range<usize>>, anchored: bool) {
    windows.sort_unstable_by_key(|w| (w.start, w.end));
    windows.dedup_by(|next, kept| {
        if anchored {
            next.start == kept.start
        } else if next.start <= kept.end {
            kept.end = kept.end.max(next.end);
            true
        } else {
            false
        }
    });
}

/// The longest shortest `secret` of the assignment rules: how far a hit's value is read to
/// decide whether it is long enough.
fn value_cap(rules: &[Compiled]) -> usize {
    rules
        .iter()
        .filter(|r| r.text_only())
        .map(|r| r.min_secret)
        .max()
        .unwrap_or(0)
}

impl std::fmt::Debug for Prefilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let atoms = |p: &Option<Pass>| p.as_ref().map_or(0, Pass::atoms);
        f.debug_struct("Prefilter")
            .field("folded_atoms", &atoms(&self.text.folded))
            .field("exact_atoms", &atoms(&self.text.exact))
            .field("always", &self.always)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_sorted_and_merged() {
        let mut w = vec![10..20, 0..5, 15..30, 4..8, 40..50];
        normalize(&mut w, false);
        assert_eq!(w, [0..8, 10..30, 40..50]);
        let mut w = vec![10..20, 0..5, 10..30];
        normalize(&mut w, true);
        assert_eq!(w, [0..5, 10..20]);
    }

    #[test]
    fn assignments_whose_value_fails_the_gate_get_no_window() {
        let detector = crate::detect::Detector::builtin();
        let rules = &detector.rules;
        let generic = rules
            .iter()
            .position(|r| r.id == "generic-assignment")
            .expect("rule");
        let windows = |text: &str| {
            let mut out = vec![Vec::new(); rules.len()];
            let hay = text.as_bytes();
            detector
                .prefilter
                .windows(rules, hay, 0..hay.len(), false, &mut out);
            out[generic].len()
        };
        assert_eq!(windows(r#""api_key": "${OPENAI_API_KEY}""#), 0);
        assert_eq!(windows(r#""token": "<your-token-goes-here>""#), 0);
        assert_eq!(windows(r#""api_key": "q7Xv2LmZ9pR4tW8kq7Xv""#), 1);
    }

    proptest::proptest! {
        /// The gate applied before the regex never drops a match the engine would report: when
        /// an assignment or entropy regex matches at a keyword and its `secret` passes the
        /// gate, one of the values read without the regex passes too. Values of every length
        /// around the rules' limits (8, 16, 200, 400 bytes) and both readings of `:=`, `=>`.
        #[test]
        fn the_early_gate_keeps_every_match_the_engine_reports(
            name in "(token|key|secret|password|api_key)[a-z_]{0,3}",
            sep in r#"["']?[ \t]{0,5}(:=|=>|:|=)[ ]{0,5}["'`]?[=>]?"#,
            value in "[A-Za-z0-9+/=>_-]{0,12}",
            repeat in 0usize..60,
            end in r#"[ "',;]?"#,
        ) {
            static DETECTOR: std::sync::LazyLock<crate::detect::Detector> =
                std::sync::LazyLock::new(crate::detect::Detector::builtin);
            // Long values repeat a random-looking piece (whose entropy the gate accepts).
            let long = "q7Xv2LmZ9pR4tW8k".repeat(repeat);
            let text = format!("{name}{sep}{value}{long}{end} rest");
            let hay = text.as_bytes();
            for rule in DETECTOR.rules.iter().filter(|r| r.text_only()) {
                let window_end = (rule.reach + 2).min(hay.len());
                let input = regex_automata::Input::new(hay)
                    .range(0..window_end)
                    .anchored(regex_automata::Anchored::Yes);
                let mut caps = rule.regex().create_captures();
                rule.regex().search_captures(&input, &mut caps);
                let Some(secret) = caps.get_group_by_name("secret") else {
                    continue;
                };
                if !rules::passes(rule.gate, &hay[secret.range()]) {
                    continue;
                }
                let values = assigned_values(hay, 0, MAX_REACH);
                proptest::prop_assert!(
                    values.iter().flatten().any(|v| gated_value(hay, v, rule, rule.reach + 2)),
                    "rule {} on {:?}: secret {:?}, values {:?}", rule.id, text, secret.range(), values
                );
            }
        }
    }
}
