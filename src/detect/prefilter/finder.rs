//! What finds the atoms of a pass: the sweep where the processor has AVX2 and the atoms are
//! few, else Teddy, else (atoms too many or too short for Teddy) Aho-Corasick.
//!
//! Invariant: every occurrence of every atom is reported, in order of position (the sweep by
//! itself; Teddy and Aho-Corasick restarted one byte after each atom found).

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind, Span, packed};

use super::order::teddy_order;
use super::pass::ANCHOR_LEN;
use crate::detect::sweep::Sweep;

/// What finds the atoms of a pass.
pub(super) enum Finder {
    /// Teddy: a vectorized search for up to a few dozen short literals. Atoms are handed to
    /// it in the order `order` gives (see [`teddy_order`]): Teddy's pattern `k` is atom
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

/// Whether `AGENTBAK_PORTABLE_SEARCH=1` forces the path of a processor without AVX2 (no
/// sweep: Teddy or Aho-Corasick), so that an AVX2 machine tests that path too; CI runs the
/// detection tests a second time with it. Read once per process.
fn portable_forced() -> bool {
    static FORCED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FORCED.get_or_init(|| std::env::var_os("AGENTBAK_PORTABLE_SEARCH").is_some_and(|v| v == "1"))
}

impl Finder {
    /// A finder of `atoms`; when `folded`, they are in small letters and must be found in
    /// any case, which the sweep does and the others do in a lowercased copy.
    pub(super) fn new(atoms: &[Vec<u8>], folded: bool) -> Finder {
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
            if !portable_forced()
                && let Some(sweep) = Sweep::new(atoms, folded, |atom| bucket[atom])
            {
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
    pub(super) fn each(&self, hay: &[u8], found: &mut impl FnMut(usize, usize)) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn avx2() -> bool {
        #[cfg(target_arch = "x86_64")]
        return std::arch::is_x86_feature_detected!("avx2");
        #[cfg(not(target_arch = "x86_64"))]
        return false;
    }

    /// The switch is what CI's second detection run relies on: under it no pass may use the
    /// sweep; without it, a processor with AVX2 must (else the first run never tests it).
    #[test]
    fn the_portable_switch_decides_whether_the_sweep_is_used() {
        let atoms: Vec<Vec<u8>> = ["token", "secret", "bearer"]
            .iter()
            .map(|a| a.as_bytes().to_vec())
            .collect();
        let finder = Finder::new(&atoms, true);
        let swept = matches!(finder, Finder::Sweep(_));
        if portable_forced() {
            assert!(!swept, "AGENTBAK_PORTABLE_SEARCH=1 and the sweep was used");
        } else if avx2() {
            assert!(
                swept,
                "a processor with AVX2 and no switch: the sweep must be used"
            );
        }
        let mut found = Vec::new();
        // In small letters: only the sweep folds by itself, the others get a lowercased copy.
        finder.each(b"x token bearer secret", &mut |at, atom| {
            found.push((at, atom))
        });
        assert_eq!(found, vec![(2, 0), (8, 2), (15, 1)]);
    }
}
