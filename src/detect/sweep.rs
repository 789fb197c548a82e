//! A vectorized search that reports every occurrence of every atom in one sweep.
//!
//! The keyword prefilter's atoms are found by Teddy, the SIMD algorithm of Hyperscan, which
//! the `aho-corasick` crate implements. That implementation returns one match per call, so
//! finding every occurrence means a new call one byte after each: on agent logs, where `token`
//! is on every line, those restarts cost more than the search itself.
//!
//! This is the same candidate search, reduced to what the prefilter needs: at most eight
//! buckets, fingerprints of the first three bytes, AVX2 only. For 32 positions at a time it
//! computes, from a table lookup per nibble of each of the three bytes, whether some bucket's
//! atoms could start there; each candidate is then compared with the atoms that start with
//! its byte, and every atom found is reported before the sweep moves on. Without AVX2 the
//! prefilter keeps using `aho-corasick`.
//!
//! # Unsafe code
//!
//! The crate denies `unsafe`; this module is the one exception (`docs/security.md`). It has
//! two unsafe operations, each beside its reason: calling the AVX2 function once `Sweep::new`
//! found AVX2 at run time, and an unaligned load of 32 bytes from a `&[u8; 32]` that safe,
//! bounds-checked slicing produced.
//! Everything else, the candidate checks included, is safe code over slices. A property test
//! compares the sweep with a plain scan on inputs of every length.
#![allow(unsafe_code)]

/// Bytes of each atom that form its fingerprint.
const WIDTH: usize = 3;

/// Buckets: one bit of a candidate byte each.
const BUCKETS: usize = 8;

/// Positions per block.
const BLOCK: usize = 32;

/// A compiled set of atoms, each at least [`WIDTH`] bytes long.
#[derive(Debug)]
pub(super) struct Sweep {
    /// `low[k][n]`: the buckets with an atom whose byte `k` has low nibble `n`; twice over,
    /// for the two 128-bit lanes of a shuffle.
    low: [[u8; 32]; WIDTH],
    /// The same for high nibbles.
    high: [[u8; 32]; WIDTH],
    /// The atoms, in order of their first byte.
    atoms: Vec<Atom>,
    /// `by_first[b]`: the range of `atoms` that start with byte `b`.
    by_first: Box<[(u16, u16); 256]>,
    /// `0x20` when the atoms are found in any case, else 0: or-ed into the text's bytes.
    fold: u8,
}

/// An atom, with its first eight bytes as a number for a quick first comparison.
#[derive(Debug)]
struct Atom {
    index: usize,
    /// Its first bytes (up to eight, little-endian), and the mask of those.
    head: u64,
    head_mask: u64,
    /// `0x20` at each letter of the head when the sweep ignores case: or-ed into the text's
    /// bytes, it turns their capitals into the atom's small letters.
    head_fold: u64,
    bytes: Box<[u8]>,
    folded: bool,
}

impl Atom {
    /// Atom `index`, with `bytes` in small letters when `folded`.
    fn new(index: usize, bytes: &[u8], folded: bool) -> Atom {
        let mut head = [0u8; 8];
        let mut mask = [0u8; 8];
        let mut fold = [0u8; 8];
        for (i, &b) in bytes.iter().take(8).enumerate() {
            head[i] = b;
            mask[i] = 0xff;
            if folded && b.is_ascii_lowercase() {
                fold[i] = 0x20;
            }
        }
        Atom {
            index,
            head: u64::from_le_bytes(head),
            head_mask: u64::from_le_bytes(mask),
            head_fold: u64::from_le_bytes(fold),
            bytes: bytes.into(),
            folded,
        }
    }

    /// Whether `rest` starts with the atom; `head` is its first eight bytes, if it has them.
    #[inline]
    fn at_start_of(&self, rest: &[u8], head: Option<u64>) -> bool {
        let whole = || match rest.get(..self.bytes.len()) {
            Some(start) if self.folded => start.eq_ignore_ascii_case(&self.bytes),
            Some(start) => start == &*self.bytes,
            None => false,
        };
        match head {
            Some(h) => {
                (h | self.head_fold) & self.head_mask == self.head
                    && (self.bytes.len() <= 8 || whole())
            }
            None => whole(),
        }
    }
}

impl Sweep {
    /// A sweep for `atoms`, atom `i` in bucket `bucket(i) % 8`; `None` when an atom is shorter
    /// than three bytes or the processor has no AVX2. When `folded`, the atoms are in small
    /// letters and are found in any case: each byte's fingerprint is taken with bit 5 set
    /// (`A` and `a` both give `a`; a byte that is not a letter only meets itself or a byte
    /// that the check then rejects), so the text needs no lowercased copy.
    pub(super) fn new(
        atoms: &[Vec<u8>],
        folded: bool,
        bucket: impl Fn(usize) -> usize,
    ) -> Option<Sweep> {
        if !avx2() || atoms.iter().any(|a| a.len() < WIDTH) {
            return None;
        }
        let mut sweep = Sweep {
            low: [[0; 32]; WIDTH],
            high: [[0; 32]; WIDTH],
            atoms: Vec::with_capacity(atoms.len()),
            by_first: Box::new([(0, 0); 256]),
            fold: if folded { 0x20 } else { 0 },
        };
        if folded && atoms.iter().flatten().any(u8::is_ascii_uppercase) {
            return None;
        }
        for (i, atom) in atoms.iter().enumerate() {
            let b = bucket(i) % BUCKETS;
            for (k, &byte) in atom[..WIDTH].iter().enumerate() {
                let byte = byte | sweep.fold;
                for lane in [0, 16] {
                    sweep.low[k][lane + usize::from(byte & 15)] |= 1 << b;
                    sweep.high[k][lane + usize::from(byte >> 4)] |= 1 << b;
                }
            }
            sweep.atoms.push(Atom::new(i, atom, folded));
        }
        sweep.atoms.sort_by_key(|a| a.bytes[0]);
        for (i, atom) in sweep.atoms.iter().enumerate() {
            let i = u16::try_from(i).expect("at most SWEEP_ATOMS atoms");
            let range = &mut sweep.by_first[usize::from(atom.bytes[0])];
            if range.0 == range.1 {
                range.0 = i;
            }
            range.1 = i + 1;
        }
        Some(sweep)
    }

    /// Calls `found(at, atom)` for every occurrence of every atom in `hay`, in order of `at`.
    pub(super) fn each(&self, hay: &[u8], found: &mut impl FnMut(usize, usize)) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `new` returns a sweep only when the processor has AVX2, the one obligation
        // of calling an AVX2 function.
        unsafe {
            self.each_avx2(hay, found);
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (hay, found);
    }

    /// Checks the candidates of the block at `start`: bit `j` of `mask` set when an atom's
    /// fingerprint matches at `start + j`.
    #[inline]
    fn check(&self, hay: &[u8], start: usize, mut mask: u32, found: &mut impl FnMut(usize, usize)) {
        while mask != 0 {
            let j = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            let at = start + j;
            let rest = &hay[at..];
            let first = if self.fold != 0 {
                rest[0].to_ascii_lowercase()
            } else {
                rest[0]
            };
            let (from, to) = self.by_first[usize::from(first)];
            if from == to {
                continue;
            }
            let head = rest
                .get(..8)
                .map(|h| u64::from_le_bytes(h.try_into().expect("8 bytes")));
            for atom in &self.atoms[usize::from(from)..usize::from(to)] {
                if atom.at_start_of(rest, head) {
                    found(at, atom.index);
                }
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn each_avx2(&self, hay: &[u8], found: &mut impl FnMut(usize, usize)) {
        use std::arch::x86_64::__m256i;
        let table = |t: &[u8; 32]| load(t, 0);
        let low: [__m256i; WIDTH] = std::array::from_fn(|k| table(&self.low[k]));
        let high: [__m256i; WIDTH] = std::array::from_fn(|k| table(&self.high[k]));
        let fold = std::arch::x86_64::_mm256_set1_epi8(self.fold as i8);
        let mut start = 0;
        while let Some(window) = hay.get(start..start + WINDOW) {
            let window = window.try_into().expect("a slice of WINDOW bytes");
            let mask = candidates(window, fold, &low, &high);
            // Most blocks have no candidate: no call for them.
            if mask != 0 {
                self.check(hay, start, mask, found);
            }
            start += BLOCK;
        }
        // The last positions, from a zero-padded copy; candidates are checked in `hay`.
        while start + WIDTH <= hay.len() {
            let n = (hay.len() - start).min(WINDOW);
            let mut pad = [0u8; WINDOW];
            pad[..n].copy_from_slice(&hay[start..start + n]);
            let mut mask = candidates(&pad, fold, &low, &high);
            // Positions where an atom would run past the end cannot match.
            let last = n + 1 - WIDTH;
            if last < BLOCK {
                mask &= (1u32 << last) - 1;
            }
            self.check(hay, start, mask, found);
            start += BLOCK;
        }
    }
}

/// Bytes read for a block: its positions and the rest of the fingerprint of the last.
const WINDOW: usize = BLOCK + WIDTH - 1;

/// The 32 bytes of `bytes` from `at`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn load<const N: usize>(bytes: &[u8; N], at: usize) -> std::arch::x86_64::__m256i {
    let part: &[u8; 32] = bytes[at..at + 32].try_into().expect("32 bytes");
    // SAFETY: `part` is 32 readable bytes; the load has no alignment requirement.
    unsafe { std::arch::x86_64::_mm256_loadu_si256(part.as_ptr().cast()) }
}

/// The mask of the positions `j` of `window` where the fingerprint of an atom (its first three
/// bytes) may match bytes `j..j + 3`: bit `j` set when the nibble sets of some bucket have
/// each of those bytes' nibbles, each byte or-ed with `fold` first.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn candidates(
    window: &[u8; WINDOW],
    fold: std::arch::x86_64::__m256i,
    low: &[std::arch::x86_64::__m256i; WIDTH],
    high: &[std::arch::x86_64::__m256i; WIDTH],
) -> u32 {
    use std::arch::x86_64::*;
    let nibble = _mm256_set1_epi8(0x0f);
    let mut res = _mm256_set1_epi8(-1);
    for k in 0..WIDTH {
        let v = _mm256_or_si256(load(window, k), fold);
        let lo = _mm256_and_si256(v, nibble);
        let hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), nibble);
        let set = _mm256_and_si256(
            _mm256_shuffle_epi8(low[k], lo),
            _mm256_shuffle_epi8(high[k], hi),
        );
        res = _mm256_and_si256(res, set);
    }
    let none = _mm256_cmpeq_epi8(res, _mm256_setzero_si256());
    !(_mm256_movemask_epi8(none) as u32)
}

fn avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::arch::is_x86_feature_detected!("avx2");
    #[cfg(not(target_arch = "x86_64"))]
    return false;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every occurrence of every atom, by a plain scan (in any case when `folded`).
    fn naive_in(atoms: &[Vec<u8>], hay: &[u8], folded: bool) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        for at in 0..hay.len() {
            for (i, a) in atoms.iter().enumerate() {
                let same = hay[at..].get(..a.len()).is_some_and(|h| {
                    if folded {
                        h.eq_ignore_ascii_case(a)
                    } else {
                        h == a.as_slice()
                    }
                });
                if same {
                    out.push((at, i));
                }
            }
        }
        out
    }

    fn naive(atoms: &[Vec<u8>], hay: &[u8]) -> Vec<(usize, usize)> {
        naive_in(atoms, hay, false)
    }

    fn swept(atoms: &[Vec<u8>], hay: &[u8], buckets: usize) -> Option<Vec<(usize, usize)>> {
        swept_in(atoms, hay, buckets, false)
    }

    fn swept_in(
        atoms: &[Vec<u8>],
        hay: &[u8],
        buckets: usize,
        folded: bool,
    ) -> Option<Vec<(usize, usize)>> {
        let Some(sweep) = Sweep::new(atoms, folded, |i| i % buckets) else {
            if !avx2() {
                skipped_without_avx2();
            }
            return None;
        };
        let mut out = Vec::new();
        sweep.each(hay, &mut |at, atom| out.push((at, atom)));
        out.sort_unstable();
        Some(out)
    }

    /// A sweep test that cannot run here says so; where `AGENTBAK_NO_SKIP` is set (CI) it
    /// fails instead, as `tests/it/common::skip` does: a green run must have tested the sweep.
    fn skipped_without_avx2() {
        if std::env::var_os("AGENTBAK_NO_SKIP").is_some() {
            panic!("no AVX2 here, and AGENTBAK_NO_SKIP is set: the sweep is untested");
        }
        eprintln!("SKIPPED: no AVX2 here, the sweep is not tested");
    }

    #[test]
    fn finds_overlapping_atoms_at_every_offset_and_at_the_very_end() {
        let atoms: Vec<Vec<u8>> = ["pass", "session", "token", "ion", "tok"]
            .iter()
            .map(|a| a.as_bytes().to_vec())
            .collect();
        for pad in 0..70 {
            let hay = format!("{}passession token tok{}", "x".repeat(pad), "tok");
            let Some(found) = swept(&atoms, hay.as_bytes(), 3) else {
                return; // no AVX2 here: the prefilter uses aho-corasick
            };
            assert_eq!(found, naive(&atoms, hay.as_bytes()), "pad {pad}");
        }
    }

    #[test]
    fn short_atoms_or_short_input_are_handled() {
        assert!(Sweep::new(&[b"ab".to_vec()], false, |_| 0).is_none());
        let atoms = vec![b"abc".to_vec()];
        for hay in ["", "a", "ab", "abc", "xabc", "abcabc"] {
            if let Some(found) = swept(&atoms, hay.as_bytes(), 1) {
                assert_eq!(found, naive(&atoms, hay.as_bytes()), "{hay}");
            }
        }
    }

    /// A byte of a small alphabet with extremes of both nibbles.
    fn byte() -> impl proptest::strategy::Strategy<Value = u8> {
        proptest::sample::select(b"abc\x00\xff\x0f\xf0".to_vec())
    }

    /// The same with capitals, and the pairs of bytes that differ in bit 5 without being
    /// letters (`@` and `` ` ``, `_` and DEL, `[` and `{`, `\x10` and `0`).
    fn any_case_byte() -> impl proptest::strategy::Strategy<Value = u8> {
        proptest::sample::select(b"abcABC@`_\x7f[{\x100\x00\xff".to_vec())
    }

    #[test]
    fn a_folding_sweep_finds_small_letter_atoms_in_any_case_and_rejects_bit_5_twins() {
        let atoms: Vec<Vec<u8>> = ["api_key", "token", "x@y"]
            .iter()
            .map(|a| a.as_bytes().to_vec())
            .collect();
        let hay = b"API_KEY Api_Key api\x7fkey ToKeN tokem X@Y x`y";
        let Some(found) = swept_in(&atoms, hay, 3, true) else {
            return; // no AVX2 here
        };
        assert_eq!(found, vec![(0, 0), (8, 0), (24, 1), (36, 2)]);
        assert!(Sweep::new(&[b"Token".to_vec()], true, |_| 0).is_none());
    }

    proptest::proptest! {
        /// On random text over a small alphabet (so that atoms occur often), with any number
        /// of buckets, the sweep finds exactly what a plain scan finds.
        #[test]
        fn agrees_with_a_plain_scan(
            atoms in proptest::collection::vec(proptest::collection::vec(byte(), 3..7), 1..20),
            hay in proptest::collection::vec(byte(), 0..300),
            buckets in 1usize..=8,
        ) {
            if let Some(found) = swept(&atoms, &hay, buckets) {
                proptest::prop_assert_eq!(found, naive(&atoms, &hay));
            }
        }

        /// The same for a sweep that ignores case, over text with capitals and with bytes
        /// that only bit 5 tells from others.
        #[test]
        fn a_folding_sweep_agrees_with_a_plain_scan_in_any_case(
            atoms in proptest::collection::vec(
                proptest::collection::vec(any_case_byte(), 3..10),
                1..20,
            ),
            hay in proptest::collection::vec(any_case_byte(), 0..300),
            buckets in 1usize..=8,
        ) {
            let atoms: Vec<Vec<u8>> = atoms.iter().map(|a| a.to_ascii_lowercase()).collect();
            if let Some(found) = swept_in(&atoms, &hay, buckets, true) {
                proptest::prop_assert_eq!(found, naive_in(&atoms, &hay, true));
            }
        }
    }
}
