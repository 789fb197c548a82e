//! The order Teddy gets a pass's atoms in, which decides which atoms share a bucket (the
//! sweep buckets them the same way).
//!
//! This models a private detail of `aho-corasick`'s Teddy (pattern `k` goes to bucket
//! `k % buckets`); only speed depends on it, never what is found: any order finds the same
//! atoms. `scripts/bench-scan.sh` with `BUCKET_ORDER=1` measures it against the plain order.

use super::pass::ANCHOR_LEN;

/// The order Teddy gets `atoms` in: [`bucket_order`]; in the build that
/// `scripts/bench-scan.sh` compares it with (`RUSTFLAGS="--cfg agentbak_plain_order"`), the
/// order given. Not an option: the cfg exists only for that benchmark.
pub(super) fn teddy_order(atoms: &[Vec<u8>]) -> Vec<usize> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
