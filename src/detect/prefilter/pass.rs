//! The keywords of one pass, grouped by the atom each is found by, and the check of each
//! atom found against the keywords built on it.
//!
//! Invariants: no atom contains another (an atom that does is shrunk to the one inside it),
//! so a search that reports every occurrence of every atom finds every occurrence of every
//! keyword, overlapping ones included; a keyword is reported only where all its bytes are
//! (in any case for the folded pass).

use std::ops::Range;

use super::finder::Finder;
use crate::detect::assign::{assigned_len_past, is_name};
use crate::detect::rules::Compiled;

/// How many bytes of a case-sensitive keyword the exact pass searches for.
pub(crate) const ANCHOR_LEN: usize = 3;

/// A keyword as it must appear, where its atom sits inside it, and the rules it triggers.
#[derive(Debug)]
struct Keyword {
    bytes: Vec<u8>,
    offset: usize,
    /// The keyword is its atom: found is matched.
    whole: bool,
    rules: Vec<usize>,
    /// When every rule of the keyword is an anchored assignment rule: the shortest value any
    /// of them takes (see [`assigned_len`](crate::detect::assign::assigned_len)); a hit with a shorter one is dropped before the
    /// rules are looked at. Otherwise 0.
    assign_min: usize,
    /// The keyword's length when it is made of name characters (which `assigned_len` then
    /// need not read again), else 0.
    name_len: usize,
}

/// One pass: the atoms to find and the keywords to check at each.
pub(super) struct Pass {
    finder: Finder,
    /// `keywords[atom]`: the keywords that atom stands for, those that start with it first.
    keywords: Vec<Vec<Keyword>>,
    /// `inner[atom]`: where in `keywords[atom]` the keywords with bytes before the atom begin,
    /// and the set of those bytes (the byte just before the atom, 256 bits).
    inner: Vec<(usize, [u64; 4])>,
    folded: bool,
}

impl Pass {
    /// A pass over `keywords` (as they must appear, with their rules), each first anchored on
    /// the part `anchor` picks; anchors that contain other anchors are replaced by those.
    pub(super) fn new(
        keywords: Vec<(Vec<u8>, Vec<usize>)>,
        folded: bool,
        anchor: impl Fn(&[u8]) -> Range<usize>,
    ) -> Option<Pass> {
        if keywords.is_empty() {
            return None;
        }
        let mut anchors: Vec<Range<usize>> = keywords.iter().map(|(k, _)| anchor(k)).collect();
        // Shrink each anchor to the smallest other anchor inside it, until none contains
        // another: then the leftmost-longest search, restarted one byte after each find,
        // reports every occurrence of every atom.
        loop {
            let mut changed = false;
            for i in 0..keywords.len() {
                let outer = &keywords[i].0[anchors[i].clone()];
                let inner = (0..keywords.len())
                    .filter_map(|j| {
                        let atom = &keywords[j].0[anchors[j].clone()];
                        (atom.len() < outer.len())
                            .then(|| memchr::memmem::find(outer, atom).map(|at| (at, atom.len())))
                            .flatten()
                    })
                    .min_by_key(|&(at, len)| (len, at));
                if let Some((at, len)) = inner {
                    let start = anchors[i].start + at;
                    anchors[i] = start..start + len;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        let mut atoms: Vec<Vec<u8>> = Vec::new();
        let mut grouped: Vec<Vec<Keyword>> = Vec::new();
        for ((bytes, rules), anchor) in keywords.into_iter().zip(anchors) {
            let atom = bytes[anchor.clone()].to_vec();
            let index = match atoms.iter().position(|a| *a == atom) {
                Some(index) => index,
                None => {
                    atoms.push(atom);
                    grouped.push(Vec::new());
                    atoms.len() - 1
                }
            };
            grouped[index].push(Keyword {
                whole: anchor == (0..bytes.len()),
                name_len: if is_name(&bytes) { bytes.len() } else { 0 },
                bytes,
                offset: anchor.start,
                rules,
                assign_min: 0,
            });
        }
        let inner = grouped
            .iter_mut()
            .map(|group| {
                group.sort_by_key(|k| k.offset > 0);
                let mut leads = [0u64; 4];
                for k in group.iter().filter(|k| k.offset > 0) {
                    let lead = k.bytes[k.offset - 1];
                    leads[usize::from(lead >> 6)] |= 1 << (lead & 63);
                }
                (group.partition_point(|k| k.offset == 0), leads)
            })
            .collect();
        Some(Pass {
            finder: Finder::new(&atoms, folded),
            keywords: grouped,
            inner,
            folded,
        })
    }

    /// How many atoms the pass searches for.
    pub(super) fn atoms(&self) -> usize {
        self.keywords.len()
    }

    /// Whether the finder searches a lowercased copy of the text (see [`Finder::new`]).
    pub(super) fn needs_lowercase(&self) -> bool {
        self.folded && !matches!(self.finder, Finder::Sweep(_))
    }

    /// Calls `hit(rule, at)` for every keyword found starting at `at`, its atom lying in
    /// `search[..]`, which is `hay[base..]` (or its lowercased copy, when
    /// [`Pass::needs_lowercase`]).
    /// A hit of a keyword with an [`Keyword::assign_min`] has its value read up to `value_cap`
    /// bytes.
    pub(super) fn run(
        &self,
        hay: &[u8],
        search: &[u8],
        base: usize,
        value_cap: usize,
        mut hit: impl FnMut(usize, usize),
    ) {
        self.finder.each(search, &mut |found, atom| {
            let found = base + found;
            let group = &self.keywords[atom];
            // The byte before the atom rules out every keyword that has bytes before it, in
            // most places: `token` is found far more often than `vault_token`.
            let (inner, leads) = &self.inner[atom];
            let before = match found.checked_sub(1).map(|i| hay[i]) {
                Some(b) if self.folded => Some(b.to_ascii_lowercase()),
                b => b,
            };
            let to = match before {
                Some(b) if leads[usize::from(b >> 6)] & (1 << (b & 63)) != 0 => group.len(),
                _ => *inner,
            };
            let short = |k: &Keyword, at: usize| {
                k.assign_min > 0 && assigned_len_past(hay, at, k.name_len, value_cap) < k.assign_min
            };
            for k in &group[..to] {
                if k.whole {
                    if !short(k, found) {
                        k.rules.iter().for_each(|&rule| hit(rule, found));
                    }
                    continue;
                }
                let Some(at) = found.checked_sub(k.offset) else {
                    continue;
                };
                if k.offset > 0 && before != Some(k.bytes[k.offset - 1]) {
                    continue;
                }
                let Some(text) = hay.get(at..at + k.bytes.len()) else {
                    continue;
                };
                let same = if self.folded {
                    text.eq_ignore_ascii_case(&k.bytes)
                } else {
                    text == k.bytes.as_slice()
                };
                if same && !short(k, at) {
                    for &rule in &k.rules {
                        hit(rule, at);
                    }
                }
            }
        });
    }
}

/// The two passes over the keywords of a set of rules.
pub(super) struct Passes {
    pub(super) folded: Option<Pass>,
    pub(super) exact: Option<Pass>,
}

impl Passes {
    /// The passes over the keywords of the rules `include` accepts.
    pub(super) fn new(rules: &[Compiled], include: impl Fn(&Compiled) -> bool) -> Passes {
        let mut folded: Vec<(Vec<u8>, Vec<usize>)> = Vec::new();
        let mut exact: Vec<(Vec<u8>, Vec<usize>)> = Vec::new();
        for (index, rule) in rules.iter().enumerate() {
            if !include(rule) || has_no_keyword(rule) {
                continue;
            }
            for keyword in &rule.keywords {
                let (list, bytes) = if rule.case_insensitive {
                    (&mut folded, keyword.to_ascii_lowercase().into_bytes())
                } else {
                    (&mut exact, keyword.clone().into_bytes())
                };
                match list.iter_mut().find(|(k, _)| *k == bytes) {
                    Some((_, rules)) if rules.contains(&index) => {}
                    Some((_, rules)) => rules.push(index),
                    None => list.push((bytes, vec![index])),
                }
            }
        }
        let mut passes = [
            Pass::new(folded, true, |k| 0..k.len()),
            Pass::new(exact, false, rarest),
        ];
        for pass in passes.iter_mut().flatten() {
            for k in pass.keywords.iter_mut().flatten() {
                let assignment = |&r: &usize| rules[r].anchored && rules[r].text_only();
                if k.rules.iter().all(assignment) {
                    k.assign_min = k
                        .rules
                        .iter()
                        .map(|&r| rules[r].min_secret.max(1))
                        .min()
                        .unwrap_or(0);
                }
            }
        }
        let [folded, exact] = passes;
        Passes { folded, exact }
    }
}

/// A rule without keywords (or with an empty one) runs over every region.
pub(super) fn has_no_keyword(rule: &Compiled) -> bool {
    rule.keywords.is_empty() || rule.keywords.iter().any(String::is_empty)
}

/// The [`ANCHOR_LEN`] bytes of a case-sensitive keyword least likely in prose, code and logs:
/// lowercase letters and spaces are common, capitals, digits and punctuation rarer.
fn rarest(keyword: &[u8]) -> Range<usize> {
    let len = ANCHOR_LEN.min(keyword.len());
    let cost = |b: &u8| match b {
        b' ' | b'"' | b'e' | b't' | b'a' | b'o' => 4,
        b'a'..=b'z' => 3,
        b'0'..=b'9' | b'_' | b'-' | b'.' | b'/' | b':' => 2,
        _ => 1,
    };
    let start = (0..=keyword.len() - len)
        .min_by_key(|&at| keyword[at..at + len].iter().map(cost).sum::<u32>())
        .unwrap_or(0);
    start..start + len
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The starts of every keyword hit of `keywords` (one rule each) in `hay`.
    fn hits(keywords: &[(&str, bool)], hay: &str) -> Vec<(usize, usize)> {
        let mut folded = Vec::new();
        let mut exact = Vec::new();
        for (i, (k, insensitive)) in keywords.iter().enumerate() {
            if *insensitive {
                folded.push((k.to_ascii_lowercase().into_bytes(), vec![i]));
            } else {
                exact.push((k.as_bytes().to_vec(), vec![i]));
            }
        }
        let mut found = Vec::new();
        let hay = hay.as_bytes();
        if let Some(pass) = Pass::new(exact, false, rarest) {
            pass.run(hay, hay, 0, 0, |rule, at| found.push((rule, at)));
        }
        if let Some(pass) = Pass::new(folded, true, |k| 0..k.len()) {
            let search = if pass.needs_lowercase() {
                hay.to_ascii_lowercase()
            } else {
                hay.to_vec()
            };
            pass.run(hay, &search, 0, 0, |rule, at| found.push((rule, at)));
        }
        found.sort_unstable();
        found
    }

    #[test]
    fn finds_overlapping_and_contained_keywords() {
        let keywords = [("token", true), ("vault_token", true), ("ken", true)];
        assert_eq!(
            hits(&keywords, "x VAULT_Token tokens"),
            [(0, 8), (0, 14), (1, 2), (2, 10), (2, 16)]
        );
        // `pass` and `session` overlap in `passession`: both are found.
        let keywords = [("pass", true), ("session", true)];
        assert_eq!(hits(&keywords, "passession"), [(0, 0), (1, 3)]);
    }

    #[test]
    fn exact_keywords_match_case_and_are_found_by_their_rarest_bytes() {
        assert_eq!(rarest(b"ghp_"), 1..4);
        assert_eq!(rarest(b"AKIA"), 0..3);
        let keywords = [("ghp_", false), ("AKIA", false), ("gh", false)];
        assert_eq!(
            hits(&keywords, "ghp_x GHP_x AKIA akia ghp_"),
            [(0, 0), (0, 22), (1, 12), (2, 0), (2, 22)]
        );
    }

    #[test]
    fn more_atoms_than_teddy_takes_fall_back_to_an_automaton() {
        let words: Vec<String> = (0..200).map(|i| format!("kw{i:03}_")).collect();
        let keywords: Vec<(&str, bool)> = words.iter().map(|w| (w.as_str(), false)).collect();
        let exact: Vec<(Vec<u8>, Vec<usize>)> = words
            .iter()
            .enumerate()
            .map(|(i, w)| (w.as_bytes().to_vec(), vec![i]))
            .collect();
        let pass = Pass::new(exact, false, rarest).expect("keywords");
        assert!(matches!(pass.finder, Finder::Automaton(_)));
        assert_eq!(
            hits(&keywords, "a kw007_ b kw199_kw000_"),
            [(0, 17), (7, 2), (199, 11)]
        );
    }
}
