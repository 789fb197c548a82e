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
//! Both passes report every occurrence of every atom (the folded pass in one [`Sweep`] where
//! the processor has AVX2; Teddy and Aho-Corasick restart one byte after each atom found), and
//! no atom contains another, so every occurrence of every keyword is found, overlapping ones
//! included.
//!
//! A rule whose matches start at its keyword gets one range per hit, starting there, and its
//! regex runs anchored. The few others get a window from [`BEFORE`] bytes before the keyword to
//! the rule's reach after it; windows of one rule that touch are merged, so a dense run of
//! keywords costs one regex pass, not one per hit.

use std::cell::RefCell;
use std::ops::Range;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind, Span, packed};

use super::assign::{assigned_len, assigned_len_past, assigned_values, is_name};
use super::rules::{self, Compiled, MAX_REACH};
use super::sweep::Sweep;

/// How far before its keyword a match may start (assignment names, URL schemes, PEM dashes).
pub const BEFORE: usize = 128;

/// How many bytes of a case-sensitive keyword the exact pass searches for.
const ANCHOR_LEN: usize = 3;

/// A keyword as it must appear, where its atom sits inside it, and the rules it triggers.
#[derive(Debug)]
struct Keyword {
    bytes: Vec<u8>,
    offset: usize,
    /// The keyword is its atom: found is matched.
    whole: bool,
    rules: Vec<usize>,
    /// When every rule of the keyword is an anchored assignment rule: the shortest value any
    /// of them takes (see [`assigned_len`]); a hit with a shorter one is dropped before the
    /// rules are looked at. Otherwise 0.
    assign_min: usize,
    /// The keyword's length when it is made of name characters (which `assigned_len` then
    /// need not read again), else 0.
    name_len: usize,
}

/// What finds the atoms of a pass.
enum Finder {
    /// Teddy: a vectorized search for up to a few dozen short literals. Atoms are handed to
    /// it in the order `order` gives (see [`bucket_order`]): Teddy's pattern `k` is atom
    /// `order[k]`.
    Packed(packed::Searcher, Vec<usize>),
    /// Aho-Corasick, for the sets Teddy cannot take (too many atoms, one or two bytes long).
    Automaton(AhoCorasick),
    /// Teddy without a restart per hit (see [`Sweep`]), for up to [`SWEEP_ATOMS`] atoms
    /// when the processor has AVX2. Folded keywords are found on every line of some logs.
    /// It finds them in any case itself: their pass needs no lowercased copy.
    Sweep(Sweep),
}

/// The most atoms a [`Sweep`] takes: beyond, its eight buckets fill up and the candidates
/// they let through cost more than restarts save.
const SWEEP_ATOMS: usize = 32;

impl Finder {
    /// A finder of `atoms`; when `folded`, they are in small letters and must be found in
    /// any case, which the sweep does and the others do in a lowercased copy.
    fn new(atoms: &[Vec<u8>], folded: bool) -> Finder {
        // Teddy and the sweep both take atoms of at least ANCHOR_LEN bytes, bucketed by order.
        let order = atoms
            .iter()
            .all(|a| a.len() >= ANCHOR_LEN)
            .then(|| teddy_order(atoms));
        if let Some(order) = order.as_ref().filter(|_| atoms.len() <= SWEEP_ATOMS) {
            let mut bucket = vec![0; atoms.len()];
            for (k, &atom) in order.iter().enumerate() {
                bucket[atom] = k;
            }
            if let Some(sweep) = Sweep::new(atoms, folded, |atom| bucket[atom]) {
                return Finder::Sweep(sweep);
            }
        }
        let packed = order.map(|order| {
            let searcher = packed::Config::new()
                .match_kind(packed::MatchKind::LeftmostLongest)
                .only_teddy(true)
                .heuristic_pattern_limits(false)
                .builder()
                .extend(order.iter().map(|&i| &atoms[i]))
                .build();
            searcher.map(|s| (s, order))
        });
        match packed.flatten() {
            Some((searcher, order)) => Finder::Packed(searcher, order),
            None => Finder::Automaton(
                AhoCorasickBuilder::new()
                    .match_kind(MatchKind::LeftmostLongest)
                    .build(atoms)
                    .expect("keyword automaton within size limits"),
            ),
        }
    }

    /// Calls `found(at, atom)` for every atom found in `hay`, in order of `at`; overlapping
    /// atoms included: Teddy and Aho-Corasick restart one byte after each.
    fn each(&self, hay: &[u8], found: &mut impl FnMut(usize, usize)) {
        let mut from = 0;
        while from < hay.len() {
            let next = match self {
                Finder::Sweep(sweep) => return sweep.each(hay, found),
                Finder::Packed(s, order) => s
                    .find_in(hay, Span::from(from..hay.len()))
                    .map(|m| (m.start(), order[m.pattern().as_usize()])),
                Finder::Automaton(ac) => ac
                    .find(aho_corasick::Input::new(hay).span(from..hay.len()))
                    .map(|m| (m.start(), m.pattern().as_usize())),
            };
            let Some((at, atom)) = next else { return };
            found(at, atom);
            from = at + 1;
        }
    }
}

/// One pass: the atoms to find and the keywords to check at each.
struct Pass {
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
    fn new(
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

    /// Whether the finder searches a lowercased copy of the text (see [`Finder::new`]).
    fn needs_lowercase(&self) -> bool {
        self.folded && !matches!(self.finder, Finder::Sweep(_))
    }

    /// Calls `hit(rule, at)` for every keyword found starting at `at`, its atom lying in
    /// `search[..]`, which is `hay[base..]` (or its lowercased copy, when
    /// [`Pass::needs_lowercase`]).
    /// A hit of a keyword with an [`Keyword::assign_min`] has its value read up to `value_cap`
    /// bytes.
    fn run(
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
struct Passes {
    folded: Option<Pass>,
    exact: Option<Pass>,
}

impl Passes {
    /// The passes over the keywords of the rules `include` accepts.
    fn new(rules: &[Compiled], include: impl Fn(&Compiled) -> bool) -> Passes {
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

/// A rule without keywords (or with an empty one) runs over every region.
fn has_no_keyword(rule: &Compiled) -> bool {
    rule.keywords.is_empty() || rule.keywords.iter().any(String::is_empty)
}

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

/// The order Teddy gets `atoms` in: [`bucket_order`]; in the build that
/// `scripts/bench-scan.sh` compares it with (`RUSTFLAGS="--cfg agentbak_plain_order"`), the
/// order given. Not an option: the cfg exists only for that benchmark.
#[allow(unexpected_cfgs)]
fn teddy_order(atoms: &[Vec<u8>]) -> Vec<usize> {
    if cfg!(agentbak_plain_order) {
        (0..atoms.len()).collect()
    } else {
        bucket_order(atoms)
    }
}

/// An order of `atoms` (all at least [`ANCHOR_LEN`] long) that makes Teddy fast.
///
/// Teddy sorts the patterns into buckets and, for each of the first bytes of a pattern, keeps
/// per bucket the set of low and of high nibbles its patterns have there. A position is a
/// candidate for a bucket when each byte's nibbles are in those sets, and each candidate costs
/// a check of the bucket's patterns. Mixing unrelated atoms in a bucket widens the sets until
/// ordinary text hits them at every few bytes: with the rule prefixes, the candidates of an
/// arbitrary order cost half of the search.
///
/// Teddy gives pattern `k` to bucket `k % buckets` (16 buckets beyond 32 patterns, else 8):
/// this groups similar atoms, starting from an order by last byte (`ghp_`, `npm_` and `hf_`
/// share their `_`) and then swapping atoms between groups while that lowers the expected
/// candidates on text, and deals the groups out so that each lands in one bucket. Only
/// speed depends on this: any order finds the same atoms.
fn bucket_order(atoms: &[Vec<u8>]) -> Vec<usize> {
    let buckets = if atoms.len() > 32 { 16 } else { 8 };
    let width = atoms
        .iter()
        .map(Vec::len)
        .min()
        .unwrap_or(0)
        .min(ANCHOR_LEN);
    let mut sorted: Vec<usize> = (0..atoms.len()).collect();
    sorted.sort_by_key(|&i| atoms[i][..width].iter().rev().copied().collect::<Vec<u8>>());
    // Group `g` gets the positions `k` with `k % buckets == g`.
    let mut groups: Vec<Vec<usize>> = vec![Vec::new(); buckets];
    let mut rest = sorted.into_iter();
    for (g, group) in groups.iter_mut().enumerate() {
        let size = (atoms.len() + buckets - 1 - g) / buckets;
        group.extend(rest.by_ref().take(size));
    }
    let prefixes: Vec<&[u8]> = atoms.iter().map(|a| &a[..width]).collect();
    let cost = |group: &[usize]| bucket_cost(group.iter().map(|&i| prefixes[i]));
    let mut costs: Vec<f64> = groups.iter().map(|g| cost(g)).collect();
    // A few rounds of improving swaps find nearly all of the gain.
    for _ in 0..4 {
        let mut better = false;
        for a in 0..buckets {
            for b in a + 1..buckets {
                for i in 0..groups[a].len() {
                    for j in 0..groups[b].len() {
                        (groups[a][i], groups[b][j]) = (groups[b][j], groups[a][i]);
                        let (ca, cb) = (cost(&groups[a]), cost(&groups[b]));
                        if ca + cb < (costs[a] + costs[b]) * 0.999 {
                            (costs[a], costs[b]) = (ca, cb);
                            better = true;
                        } else {
                            (groups[a][i], groups[b][j]) = (groups[b][j], groups[a][i]);
                        }
                    }
                }
            }
        }
        if !better {
            break;
        }
    }
    (0..atoms.len())
        .map(|k| groups[k % buckets][k / buckets])
        .collect()
}

/// How common byte `b` is in text, as a share of all text (a rough model: letters, spaces,
/// quotes and digits common, other bytes rare).
fn text_share(b: u8) -> f64 {
    fn weight(b: u8) -> f64 {
        match b {
            b'a'..=b'z' => 30.0,
            b' ' | b'"' => 40.0,
            b'0'..=b'9' => 20.0,
            b'A'..=b'Z' | b'\n' => 10.0,
            b'!'..=b'~' => 15.0,
            _ => 1.0,
        }
    }
    static TOTAL: std::sync::LazyLock<f64> =
        std::sync::LazyLock::new(|| (0..=255).map(weight).sum());
    weight(b) / *TOTAL
}

/// The expected share of text positions that are candidates for a Teddy bucket holding
/// `atoms`: per byte, the weight of the bytes whose nibbles are both in the bucket's sets.
fn bucket_cost<'a>(atoms: impl Iterator<Item = &'a [u8]> + Clone) -> f64 {
    // ROWS[high][half][set]: how common in text the bytes are whose high nibble is `high` and
    // whose low nibble is in `set` (the low eight nibbles when `half` is 0, the high eight when
    // 1), as a share of all text. A bucket's share at a position is then a sum over its high
    // nibbles only: this runs for every swap `bucket_order` tries.
    static ROWS: std::sync::LazyLock<Box<[[[f64; 256]; 2]; 16]>> = std::sync::LazyLock::new(|| {
        let mut rows = Box::new([[[0.0; 256]; 2]; 16]);
        for (high, row) in rows.iter_mut().enumerate() {
            for (half, sums) in row.iter_mut().enumerate() {
                for (set, sum) in sums.iter_mut().enumerate() {
                    *sum = (0..8)
                        .filter(|bit| set & (1 << bit) != 0)
                        .map(|bit| text_share((high << 4 | (half * 8 + bit)) as u8))
                        .sum();
                }
            }
        }
        rows
    });
    let mut low = [0u16; ANCHOR_LEN];
    let mut high = [0u16; ANCHOR_LEN];
    let mut width = ANCHOR_LEN;
    for atom in atoms {
        width = width.min(atom.len());
        for (at, &b) in atom.iter().take(ANCHOR_LEN).enumerate() {
            low[at] |= 1 << (b & 15);
            high[at] |= 1 << (b >> 4);
        }
    }
    let mut product = 1.0;
    for at in 0..width {
        let [lo, hi] = low[at].to_le_bytes().map(usize::from);
        let mut share = 0.0;
        let mut highs = high[at];
        while highs != 0 {
            let row = &ROWS[highs.trailing_zeros() as usize];
            highs &= highs - 1;
            share += row[0][lo] + row[1][hi];
        }
        product *= share;
    }
    product
}

impl std::fmt::Debug for Prefilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let atoms = |p: &Option<Pass>| p.as_ref().map_or(0, |p| p.keywords.len());
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
    fn bucket_order_is_a_permutation_that_lowers_the_candidates() {
        let atoms: Vec<Vec<u8>> = [
            "hp_", "AKI", "sk-", "ho_", "ASI", "hu_", "xb-", "xp-", "://",
        ]
        .iter()
        .chain(["ABI", "pm_", "hf_", "r8_", "xe-", "lc_", "ACC", "eyJ"].iter())
        .map(|a| a.as_bytes().to_vec())
        .collect();
        // The sum of bucket costs when Teddy puts position k in bucket k % 8.
        let cost = |order: &[usize]| {
            (0..8)
                .map(|b| bucket_cost(order.iter().skip(b).step_by(8).map(|&i| &atoms[i][..])))
                .sum::<f64>()
        };
        let order = bucket_order(&atoms);
        let mut seen = order.clone();
        seen.sort_unstable();
        let given: Vec<usize> = (0..atoms.len()).collect();
        assert_eq!(seen, given);
        assert!(
            cost(&order) < cost(&given) / 2.0,
            "{} {}",
            cost(&order),
            cost(&given)
        );
        let alike = bucket_cost([&b"ho_"[..], b"hu_"].into_iter());
        let mixed = bucket_cost([&b"ho_"[..], b"AKI"].into_iter());
        assert!(alike < mixed, "{alike} {mixed}");
    }

    /// The cost is, per position, the share of the bytes whose two nibbles are both in the
    /// bucket's sets, multiplied over the positions.
    #[test]
    fn bucket_cost_is_the_share_of_bytes_a_bucket_lets_through() {
        let sets: [&[&[u8]]; 4] = [
            &[b"hp_"],
            &[b"ho_", b"hu_", b"AKI"],
            &[b"sk-", b"xb-", b"\xff\x00\x10"],
            &[b"tok", b"pas", b"sal", b"key"],
        ];
        for set in sets {
            let mut want = 1.0;
            for at in 0..ANCHOR_LEN {
                let through = |b: u8| {
                    let nibbles = |n: fn(u8) -> u8| set.iter().any(|a| n(a[at]) == n(b));
                    nibbles(|x| x >> 4) && nibbles(|x| x & 15)
                };
                want *= (0..=255u8)
                    .filter(|&b| through(b))
                    .map(text_share)
                    .sum::<f64>();
            }
            let got = bucket_cost(set.iter().copied());
            assert!((got - want).abs() <= want * 1e-9, "{set:?}: {got} {want}");
        }
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
