//! The known-value matcher: every form of every value the tool knows, found in one pass.
//!
//! Every pattern is at least [`MIN_KNOWN_LEN`] (8) bytes long, so every occurrence starts with
//! the pattern's first 8 bytes. The pass reads the text's 8-byte words; a filter of hashed
//! keys rejects almost every position with one multiply and one word test, and the rare
//! survivors are compared in full. When every pattern is at
//! least `7 + s` bytes long, each enters the filter with its words at offsets `0..s` and only
//! every `s`-th position is read (up to 16): an occurrence starting anywhere meets one of
//! them. The filter has about 16 bits per key, two of them set in one 64-bit word per key, so
//! false hits stay near 2% at the cost of one memory access per read word, within 8 KiB
//! (in L1 cache) for a few values and up to 1 MiB for thousands; the keys are grouped by
//! filter word, so a hit is confirmed against one or two keys. This runs at memory speed
//! whatever the number of patterns (an Aho-Corasick automaton over thousands of random
//! patterns has no usable prefilter), reports every occurrence including overlapping ones,
//! and keeps all derived data in zeroized memory.
//!
//! Invariants: values shorter than 8 bytes are not searched (they would match everywhere) and
//! are listed by [`KnownValues::too_short`] so callers can say they could not be proven absent;
//! the derived forms are held in [`Secret`]s, the prefix table and the filter in `Zeroizing`
//! buffers; `Debug` shows only counts.

use std::fmt;

use zeroize::Zeroizing;

use super::encode::{Encoding, forms};
use crate::secret::Secret;

/// Bounds of the prefix filter's size, in bits (log2): 8 KiB to 1 MiB.
const FILTER_BITS: std::ops::RangeInclusive<u32> = 16..=23;

/// Most positions one sampled word stands for.
const MAX_STRIDE: usize = 16;

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
    /// (8 bytes of a form at `offset` as a little-endian `u64`, form index, offset), sorted by
    /// filter word (see `starts`), then key.
    prefixes: Zeroizing<Vec<(u64, u32, u8)>>,
    /// `prefixes[starts[w]..starts[w + 1]]` are the keys whose filter bit lies in filter word
    /// `w`: a filter hit is confirmed in about one key, not a binary search of all of them.
    starts: Zeroizing<Vec<u32>>,
    /// Distance between sampled positions: every form is at least `7 + stride` bytes long and
    /// is entered at offsets `0..stride`, so an occurrence at any position meets a sample.
    stride: usize,
    /// Two bits per key, both in the word its hash picks (see `filter_slot`).
    filter: Zeroizing<Vec<u64>>,
    /// `64 - log2(filter words)`: the hash's top bits pick the word.
    shift: u32,
    max_len: usize,
}

/// The 8 bytes of `bytes` at `at` as a little-endian `u64`, if there are 8.
fn word(bytes: &[u8], at: usize) -> Option<u64> {
    let eight: [u8; 8] = bytes.get(at..at + MIN_KNOWN_LEN)?.try_into().ok()?;
    Some(u64::from_le_bytes(eight))
}

/// Where a key lives in the filter: its 64-bit word (the hash's top bits, `shift` =
/// 64 - log2(words)) and two bits in that word (from its middle bits, mixed with the top).
/// Two bits in one word cost one memory access, like one bit, and make false hits about 4x
/// rarer at 16 bits per key.
fn filter_slot(prefix: u64, shift: u32) -> (usize, u64) {
    let hash = prefix.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mixed = hash ^ (hash >> 32);
    let bits = (1 << ((mixed >> 8) & 63)) | (1 << ((mixed >> 14) & 63));
    ((hash >> shift) as usize, bits)
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
        let min_len = forms_out.iter().map(|f| f.pattern.len()).min().unwrap_or(0);
        let stride = (min_len + 1)
            .saturating_sub(MIN_KNOWN_LEN)
            .clamp(1, MAX_STRIDE);
        let keys = forms_out.len() * stride;
        let bits = (keys * 16)
            .next_power_of_two()
            .trailing_zeros()
            .clamp(*FILTER_BITS.start(), *FILTER_BITS.end());
        let shift = 64 - (bits - 6);
        let mut prefixes = Zeroizing::new(Vec::with_capacity(keys));
        let mut filter = Zeroizing::new(vec![0u64; (1 << bits) / 64]);
        for (index, form) in forms_out.iter().enumerate() {
            for offset in 0..stride {
                let key = word(form.pattern.expose(), offset)
                    .expect("every form is long enough for its keys");
                prefixes.push((key, index as u32, offset as u8));
                let (word, bits) = filter_slot(key, shift);
                filter[word] |= bits;
            }
        }
        let word_of = |key: u64| filter_slot(key, shift).0;
        prefixes.sort_unstable_by_key(|&(key, index, offset)| (word_of(key), key, index, offset));
        let mut starts = Zeroizing::new(vec![0u32; filter.len() + 1]);
        for &(key, _, _) in prefixes.iter() {
            starts[word_of(key) + 1] += 1;
        }
        for w in 1..starts.len() {
            starts[w] += starts[w - 1];
        }
        KnownValues {
            labels,
            forms: forms_out,
            too_short,
            prefixes,
            starts,
            stride,
            filter,
            shift,
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

    /// Number of patterns (all forms of all values) searched.
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
        let mut out = Vec::new();
        if self.forms.is_empty() || hay.len() < from + MIN_KNOWN_LEN {
            return out;
        }
        let mut p = from;
        while let Some(window) = word(hay, p) {
            let (word, bits) = filter_slot(window, self.shift);
            if self.filter[word] & bits == bits {
                self.confirm(hay, p, window, word, (from, new_from), &mut out);
            }
            p += self.stride;
        }
        out
    }

    /// Compares every form with a key equal to `window` (the 8 bytes at `at`, which fall in
    /// filter word `word`) with the text where that form would start; occurrences must start
    /// at or after `from` and end after `new_from`.
    fn confirm(
        &self,
        hay: &[u8],
        at: usize,
        window: u64,
        word: usize,
        (from, new_from): (usize, usize),
        out: &mut Vec<KnownHit>,
    ) {
        let keys = self.starts[word] as usize..self.starts[word + 1] as usize;
        for &(p, index, offset) in &self.prefixes[keys] {
            if p != window {
                continue;
            }
            let Some(start) = at.checked_sub(usize::from(offset)).filter(|s| *s >= from) else {
                continue;
            };
            let form = &self.forms[index as usize];
            let pattern = form.pattern.expose();
            let end = start + pattern.len();
            if end > new_from && hay.get(start..end) == Some(pattern) {
                out.push(KnownHit {
                    value: form.value,
                    encoding: form.encoding,
                    start,
                    end,
                });
            }
        }
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
