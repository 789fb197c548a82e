//! The known-value matcher: every form of every value the tool knows, in one Aho-Corasick
//! automaton.
//!
//! Invariants: values shorter than [`MIN_KNOWN_LEN`] bytes are not searched (they would match
//! everywhere) and are listed by [`KnownValues::too_short`] so callers can say they could not
//! be proven absent; the derived forms are held in [`Secret`]s and never printed; `Debug` shows
//! only counts. The automaton runs with standard (overlapping) semantics so that one value
//! inside another, or two values that overlap, are each reported.

use std::fmt;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

use super::encode::{Encoding, forms};
use crate::secret::Secret;

/// Shortest value (in bytes) that a search can prove absent.
pub const MIN_KNOWN_LEN: usize = 8;

/// One searched pattern: which value it came from and how it was encoded.
struct Form {
    value: usize,
    encoding: Encoding,
    pattern: Secret,
}

/// A set of known secret values and every encoded form of each.
pub struct KnownValues {
    labels: Vec<String>,
    forms: Vec<Form>,
    too_short: Vec<String>,
    automaton: Option<AhoCorasick>,
    max_len: usize,
}

/// A known value found in a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KnownHit {
    /// Index of the value's label.
    pub value: usize,
    /// The form that matched.
    pub encoding: Encoding,
    /// Byte range in the searched buffer.
    pub start: usize,
    /// End of the range (exclusive).
    pub end: usize,
}

impl KnownValues {
    /// Builds the matcher. `label` is what a finding shows (a handle such as
    /// `vault:agents/kevin/openai#api_key`), never the value. A value given twice under two
    /// labels is searched once, under the first label.
    pub fn new(values: impl IntoIterator<Item = (String, Secret)>) -> KnownValues {
        let mut labels = Vec::new();
        let mut forms_out: Vec<Form> = Vec::new();
        let mut too_short = Vec::new();
        let mut seen: Vec<Secret> = Vec::new();
        for (label, value) in values {
            if value.len() < MIN_KNOWN_LEN {
                if !too_short.contains(&label) {
                    too_short.push(label);
                }
                continue;
            }
            if seen.contains(&value) {
                continue;
            }
            let index = labels.len();
            labels.push(label);
            for (encoding, pattern) in forms(value.expose()) {
                forms_out.push(Form {
                    value: index,
                    encoding,
                    pattern,
                });
            }
            seen.push(value);
        }
        let max_len = forms_out.iter().map(|f| f.pattern.len()).max().unwrap_or(0);
        let automaton = if forms_out.is_empty() {
            None
        } else {
            let built = AhoCorasickBuilder::new()
                .match_kind(MatchKind::Standard)
                .build(forms_out.iter().map(|f| f.pattern.expose()));
            // Building fails only past the automaton's size limits (billions of states);
            // that many values cannot come from a manifest, so this is a programming error.
            Some(built.expect("known-value automaton within size limits"))
        };
        KnownValues {
            labels,
            forms: forms_out,
            too_short,
            automaton,
            max_len,
        }
    }

    /// Labels of the values shorter than 8 bytes: they cannot be proven absent, so they are
    /// not searched, and a report should say so.
    pub fn too_short(&self) -> &[String] {
        &self.too_short
    }

    /// Whether there is nothing to search for.
    pub fn is_empty(&self) -> bool {
        self.forms.is_empty()
    }

    /// Number of distinct values searched.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Number of patterns (all forms of all values) in the automaton.
    pub fn pattern_count(&self) -> usize {
        self.forms.len()
    }

    /// Length of the longest pattern: a stream must keep this many bytes minus one between
    /// chunks so that no match straddles a boundary unseen.
    pub fn max_pattern_len(&self) -> usize {
        self.max_len
    }

    /// The label of value `index`.
    pub(crate) fn label(&self, index: usize) -> &str {
        &self.labels[index]
    }

    /// Every occurrence of every form in `hay[from..]`, reported only when it ends after
    /// `new_from`: the bytes before `new_from` were searched in an earlier chunk.
    pub(crate) fn search(&self, hay: &[u8], from: usize, new_from: usize) -> Vec<KnownHit> {
        let Some(ac) = &self.automaton else {
            return Vec::new();
        };
        let input = aho_corasick::Input::new(hay).span(from..hay.len());
        let mut out = Vec::new();
        for m in ac.find_overlapping_iter(input) {
            if m.end() <= new_from {
                continue;
            }
            let form = &self.forms[m.pattern().as_usize()];
            out.push(KnownHit {
                value: form.value,
                encoding: form.encoding,
                start: m.start(),
                end: m.end(),
            });
        }
        out
    }
}

impl fmt::Debug for KnownValues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KnownValues")
            .field("values", &self.labels.len())
            .field("patterns", &self.forms.len())
            .field("too_short", &self.too_short)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(values: &[(&str, &str)]) -> KnownValues {
        KnownValues::new(
            values
                .iter()
                .map(|(l, v)| (l.to_string(), Secret::from(v.to_string()))),
        )
    }

    #[test]
    fn short_values_are_listed_not_searched() {
        let k = kv(&[("env:PIN", "1234"), ("env:LONG", "long-enough-value")]);
        assert_eq!(k.too_short(), ["env:PIN".to_string()]);
        assert_eq!(k.len(), 1);
        assert!(k.search(b"1234 1234", 0, 0).is_empty());
    }

    #[test]
    fn debug_shows_counts_not_values() {
        let k = kv(&[("vault:a#b", "hunter2hunter2-secret")]);
        let shown = format!("{k:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("patterns"));
    }

    #[test]
    fn overlapping_values_are_each_reported() {
        let k = kv(&[("a", "abcdefgh12345678"), ("b", "12345678ZZZZZZZZ")]);
        let hits = k.search(b"xxabcdefgh12345678ZZZZZZZZxx", 0, 0);
        let mut values: Vec<usize> = hits
            .iter()
            .filter(|h| h.encoding == Encoding::Raw)
            .map(|h| h.value)
            .collect();
        values.sort();
        assert_eq!(values, vec![0, 1]);
    }

    #[test]
    fn hits_that_end_in_old_bytes_are_skipped() {
        let k = kv(&[("a", "abcdefgh12345678")]);
        let hay = b"abcdefgh12345678 and abcdefgh12345678";
        let hits = k.search(hay, 0, 16);
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].start, 21);
    }
}
