//! Counting sorted calibration values below / at query values.

use rayon::prelude::*;

/// The bits of `x` as an unsigned key in the order of `f64::total_cmp` (negative values have
/// every bit flipped, the others their sign bit set).
#[inline]
pub fn total_order_key(x: f64) -> u64 {
    let b = x.to_bits();
    if b >> 63 == 1 {
        !b
    } else {
        b | (1 << 63)
    }
}

/// The indices that put `x` in ascending total order, ties in index order (stable): an LSD radix
/// sort on 16-bit digits of [`total_order_key`], four passes at most (a digit every value shares
/// is skipped), with the four histograms from one sequential pass over `x` and each pass
/// scattering 4-byte indices (two index buffers: 8 bytes a value). No comparisons, so none of the
/// cache misses an index sort's comparator takes at every step: 1e6 uniform values in 22–27 ms
/// on one core of this project's machine, where `par_sort_unstable_by` with the indirect
/// (stable) comparator took 35–60 ms on two, and 11-bit or 8-bit digits 29 and 33 ms. `x.len()`
/// must fit in u32.
pub fn argsort(x: &[f64]) -> Vec<u32> {
    assert!(x.len() <= u32::MAX as usize, "argsort: at most 2^32 - 1 values");
    const DIGIT: usize = 1 << 16;
    let n = x.len();
    let mut hist = vec![[0u32; 4]; DIGIT];
    for &v in x {
        let k = total_order_key(v);
        for pass in 0..4 {
            hist[((k >> (16 * pass)) & 0xFFFF) as usize][pass] += 1;
        }
    }
    let mut order: Vec<u32> = (0..n as u32).collect();
    let mut next = vec![0u32; n];
    for pass in 0..4 {
        let shift = 16 * pass;
        // a digit all values share leaves the order as it is
        if hist.iter().any(|h| h[pass] as usize == n) {
            continue;
        }
        let mut start = vec![0u32; DIGIT];
        let mut acc = 0u32;
        for (s, h) in start.iter_mut().zip(&hist) {
            *s = acc;
            acc += h[pass];
        }
        for &i in &order {
            let d = ((total_order_key(x[i as usize]) >> shift) & 0xFFFF) as usize;
            next[start[d] as usize] = i;
            start[d] += 1;
        }
        std::mem::swap(&mut order, &mut next);
    }
    order
}

/// The values at 0-based `ranks` (strictly ascending, each below `x.len()`) of `x` in ascending
/// total order (`f64::total_cmp`), as a full sort would place them, without sorting `x`: one pass
/// counts the values by the top 16 bits of [`total_order_key`], a second gathers only the buckets
/// that hold a wanted rank, and each gathered bucket is cut at its ranks by recursive selection
/// (`select_nth_unstable_by`, halving the ranks each level). O(n) passes plus selection within the
/// wanted buckets: when the values spread over many buckets that is a small fraction of n (1e6
/// uniform values, 50 ranks: a few ms on one core, against 22–27 ms for [`argsort`]); when they
/// all share a bucket it is a recursive selection over all n, O(n log(ranks)).
pub fn order_statistics(x: &[f64], ranks: &[usize]) -> Vec<f64> {
    assert!(ranks.windows(2).all(|w| w[0] < w[1]), "order_statistics: ranks must be strictly ascending");
    assert!(ranks.last().is_none_or(|&r| r < x.len()), "order_statistics: a rank past the values");
    if ranks.is_empty() {
        return Vec::new();
    }
    const BUCKETS: usize = 1 << 16;
    let bucket = |v: f64| (total_order_key(v) >> 48) as usize;
    let mut counts = vec![0usize; BUCKETS];
    for &v in x {
        counts[bucket(v)] += 1;
    }
    // each wanted bucket's first rank, and the wanted ranks it holds
    let mut wanted = vec![false; BUCKETS];
    let mut first = vec![0usize; BUCKETS];
    let mut below = 0usize;
    let mut r = 0usize;
    for (b, &c) in counts.iter().enumerate() {
        first[b] = below;
        while r < ranks.len() && ranks[r] < below + c {
            wanted[b] = true;
            r += 1;
        }
        below += c;
    }
    let mut gathered: std::collections::BTreeMap<usize, Vec<f64>> =
        (0..BUCKETS).filter(|&b| wanted[b]).map(|b| (b, Vec::with_capacity(counts[b]))).collect();
    for &v in x {
        let b = bucket(v);
        if wanted[b] {
            gathered.get_mut(&b).expect("a wanted bucket").push(v);
        }
    }
    let mut out = Vec::with_capacity(ranks.len());
    let mut r = 0usize;
    for (b, mut values) in gathered {
        let start = r;
        while r < ranks.len() && ranks[r] < first[b] + values.len() {
            r += 1;
        }
        let local: Vec<usize> = ranks[start..r].iter().map(|&k| k - first[b]).collect();
        let mut picked = vec![0.0; local.len()];
        select_ranks(&mut values, 0, &local, &mut picked);
        out.extend(picked);
    }
    out
}

/// The values at `ranks` (ascending, offset by `base`) of `v` in total order, into `out`: select
/// the middle rank, then the ranks below it in the left part and above it in the right.
fn select_ranks(v: &mut [f64], base: usize, ranks: &[usize], out: &mut [f64]) {
    if ranks.is_empty() {
        return;
    }
    let mid = ranks.len() / 2;
    let k = ranks[mid] - base;
    let (left, kth, right) = v.select_nth_unstable_by(k, f64::total_cmp);
    out[mid] = *kth;
    let (out_left, out_rest) = out.split_at_mut(mid);
    let size = left.len() + right.len();
    let (left_ranks, right_ranks) = (&ranks[..mid], &ranks[mid + 1..]);
    let (base_right, out_right) = (base + k + 1, &mut out_rest[1..]);
    let mut go_left = move || select_ranks(left, base, left_ranks, out_left);
    let mut go_right = move || select_ranks(right, base_right, right_ranks, out_right);
    if size > 1 << 16 {
        rayon::join(go_left, go_right);
    } else {
        go_left();
        go_right();
    }
}

/// `x` sorted ascending in place (total order), without a copy.
pub fn into_sorted(mut x: Vec<f64>) -> Vec<f64> {
    x.par_sort_unstable_by(f64::total_cmp);
    x
}

/// (#{i : sorted\[i\] < v}, #{i : sorted\[i\] <= v}) by binary search.
#[inline]
pub fn count_one(sorted: &[f64], v: f64) -> (u64, u64) {
    let lt = sorted.partition_point(|&s| s < v);
    let le = lt + sorted[lt..].partition_point(|&s| s <= v);
    (lt as u64, le as u64)
}

/// For each query v: (#{i : sorted\[i\] < v}, #{i : sorted\[i\] <= v}).
///
/// Few queries: a binary search each, parallel. Many queries: sort the queries, then walk them and
/// the calibration values together in parallel chunks (each chunk finds its start by one binary
/// search), which reads memory sequentially: O(m log m + n) and cache friendly.
pub fn counts_below(sorted: &[f64], queries: &[f64]) -> Vec<(u64, u64)> {
    counts_below_map(sorted, queries, |_, lt, le| (lt, le))
}

/// `f(j, lt, le)` for each query j, with the counts of [`counts_below`], without holding the
/// counts: the queries are ordered by an index array (4 bytes a query), and the results written
/// in that order are put back in query order.
pub fn counts_below_map<T: Send + Copy + Default>(
    sorted: &[f64],
    queries: &[f64],
    f: impl Fn(usize, u64, u64) -> T + Sync,
) -> Vec<T> {
    counts_below_by(sorted, queries.len(), |j| queries[j], f)
}

/// [`counts_below_map`] with the m queries computed on demand by `query(j)` (cheap, and the same
/// value every call) instead of held in an array: a p-value per test unit needs no array of the
/// test scores beside the p-values.
///
/// Few queries: a binary search each. Many: a [`SortedIndex`] over `sorted`, and the queries in
/// blocks of 2^17, each block grouped by the index's segment (a counting pass, then a scatter of
/// (value, query, bucket)) so that a group's lookups stay in one cache-sized section of `sorted`;
/// the results are written in query order. No sort of the queries: at n = m = 10^6 normal scores
/// on this project's 2-core machine, 21 ms against 42 ms for the sorted-queries walk it replaced
/// (`examples/counts_time.rs`).
pub fn counts_below_by<T: Send + Copy + Default>(
    sorted: &[f64],
    m: usize,
    query: impl Fn(usize) -> f64 + Sync,
    f: impl Fn(usize, u64, u64) -> T + Sync,
) -> Vec<T> {
    let mut out = vec![T::default(); m];
    counts_below_over(sorted, &mut out, query, |j, o, lt, le| *o = f(j, lt, le));
    out
}

/// [`counts_below_by`] that updates `out[j]` in place by `f(j, &mut out[j], lt, le)` for each
/// query j < `out.len()`: an array that holds one number per query (a tie-breaking uniform)
/// becomes the results (a p-value) without a second array.
pub fn counts_below_over<T: Send>(
    sorted: &[f64],
    out: &mut [T],
    query: impl Fn(usize) -> f64 + Sync,
    f: impl Fn(usize, &mut T, u64, u64) + Sync,
) {
    if out.len() < 1 << 16 || sorted.len() > u32::MAX as usize {
        out.par_iter_mut().enumerate().for_each(|(j, o)| {
            let (lt, le) = count_one(sorted, query(j));
            f(j, o, lt, le)
        });
        return;
    }
    let index = SortedIndex::new(sorted);
    const BLOCK: usize = 1 << 17;
    let groups = index.segments();
    out.par_chunks_mut(BLOCK).enumerate().for_each_init(
        || (vec![0usize; groups + 1], Vec::<(u32, u8)>::new(), Vec::<(f64, u32, u32)>::new()),
        |(starts, located, queued), (k, out)| {
            let first = k * BLOCK;
            starts.iter_mut().for_each(|s| *s = 0);
            located.clear();
            for j in 0..out.len() {
                let (segment, bucket) = index.locate(query(first + j));
                starts[segment + 1] += 1;
                located.push((bucket as u32, segment as u8));
            }
            for g in 0..groups {
                starts[g + 1] += starts[g];
            }
            queued.resize(out.len(), (0.0, 0, 0));
            for (j, &(bucket, segment)) in located.iter().enumerate() {
                let segment = segment as usize;
                queued[starts[segment]] = (query(first + j), j as u32, bucket);
                starts[segment] += 1;
            }
            for &(v, j, bucket) in queued.iter() {
                let (lt, le) = index.count_in(bucket as usize, v);
                f(first + j as usize, &mut out[j as usize], lt, le);
            }
        },
    );
}

/// An index over ascending values that narrows a query to a few of them in O(1) expected time:
/// K ≤ 256 equal-count segments cut at the values of ranks s·n/K (found by a binary search over
/// the K knots, which sit in L1), each cut into P ≈ n/(4K) buckets linear in the value,
/// `b(v) = s·P + clamp(⌊(v − knot_s) · P / (knot_{s+1} − knot_s)⌋, 0, P − 1)`, and the first
/// position of each bucket in `sorted`. `b` is non-decreasing in v (equal values, −0 and +0
/// included, share a bucket), so every value in an earlier bucket is below the query and every
/// value in a later one above it: counting inside the query's bucket gives the exact counts.
/// Equal-count segments keep clusters and gaps (a clipped score's two modes, heavy tails) from
/// crowding the buckets; values that still crowd one bucket (one atom) only make its search longer.
pub struct SortedIndex<'a> {
    sorted: &'a [f64],
    /// The lower knot of each segment (the first is the smallest value).
    knots: Vec<f64>,
    /// P / (knot_{s+1} − knot_s) per segment, 0 where that is zero or not finite.
    scales: Vec<f64>,
    /// Buckets per segment, P.
    per_segment: usize,
    /// The cells of a linear table over [knot_0, the largest value] that finds a value's segment
    /// without a search: cells\[c\] = #{s ≥ 1 : cell(knot_s) < c} (4K + 1 entries); a value in
    /// cell c is in segment cells\[c\] plus the number of the knots between cells\[c\] and
    /// cells\[c + 1\] at or below it (usually none or one).
    cells: Vec<u32>,
    /// Cell of v: ⌊(v − knot_0) · cell_scale⌋ clamped (0 where the values' range is zero or past f64).
    cell_scale: f64,
    /// starts\[b\] = #{i : b(sorted\[i\]) < b}, K·P + 1 entries.
    starts: Vec<u32>,
}

impl<'a> SortedIndex<'a> {
    /// The index of `sorted` (ascending; at most u32::MAX values): O(n + K log K).
    pub fn new(sorted: &'a [f64]) -> SortedIndex<'a> {
        assert!(sorted.len() <= u32::MAX as usize, "SortedIndex: at most 2^32 - 1 values");
        let n = sorted.len();
        let k = n.clamp(1, 256);
        let per_segment = (n / (4 * k)).max(1);
        let knot = |s: usize| {
            if n == 0 {
                0.0
            } else if s < k {
                sorted[s * n / k]
            } else {
                sorted[n - 1]
            }
        };
        let knots: Vec<f64> = (0..k).map(knot).collect();
        let scales = (0..k)
            .map(|s| {
                // halves, so that the width cannot overflow
                let width = knot(s + 1) * 0.5 - knot(s) * 0.5;
                let scale = per_segment as f64 * 0.5 / width;
                if width > 0.0 && scale.is_finite() {
                    scale
                } else {
                    0.0
                }
            })
            .collect();
        let cell_count = 4 * k;
        let (first, last) = (knot(0), knot(k));
        let width = last * 0.5 - first * 0.5;
        let cell_scale = cell_count as f64 * 0.5 / width;
        let cell_scale = if width > 0.0 && cell_scale.is_finite() { cell_scale } else { 0.0 };
        let mut index = SortedIndex {
            sorted,
            knots,
            scales,
            per_segment,
            cells: vec![0; cell_count + 1],
            cell_scale,
            starts: vec![0; k * per_segment + 1],
        };
        for s in 1..k {
            let c = index.cell(index.knots[s]);
            index.cells[c + 1] += 1;
        }
        for c in 0..cell_count {
            index.cells[c + 1] += index.cells[c];
        }
        // a count per bucket, the segment found by walking the knots (the values ascend), then
        // running sums; the same segments a query's binary search finds
        let mut segment = 0usize;
        for &v in sorted {
            while segment + 1 < k && index.knots[segment + 1] <= v {
                segment += 1;
            }
            let b = index.bucket_in(segment, v);
            index.starts[b + 1] += 1;
        }
        let mut acc = 0u32;
        for s in &mut index.starts {
            acc += *s;
            *s = acc;
        }
        index
    }

    /// K, the number of segments.
    pub fn segments(&self) -> usize {
        self.knots.len()
    }

    /// (segment, bucket) of `v`: the last segment whose knot is ≤ v (the first if none).
    #[inline]
    pub fn locate(&self, v: f64) -> (usize, usize) {
        let c = self.cell(v);
        let (below, shared) = (self.cells[c] as usize, self.cells[c + 1] as usize);
        // the knots that share the cell: count those at or below v
        let knots = &self.knots[1 + below..1 + shared];
        let segment = below
            + if knots.len() <= 8 {
                knots.iter().map(|&k| (k <= v) as usize).sum::<usize>()
            } else {
                knots.partition_point(|&k| k <= v)
            };
        (segment, self.bucket_in(segment, v))
    }

    /// The cell of `v` in the segment-finding table (non-decreasing in v).
    #[inline]
    fn cell(&self, v: f64) -> usize {
        (((v - self.knots[0]) * self.cell_scale) as usize).min(self.cells.len() - 2)
    }

    /// The bucket of `v` in segment `s`.
    #[inline]
    fn bucket_in(&self, s: usize, v: f64) -> usize {
        // (the cast saturates: below the knot → 0, +∞ → usize::MAX; the values are never NaN)
        s * self.per_segment + (((v - self.knots[s]) * self.scales[s]) as usize).min(self.per_segment - 1)
    }

    /// (#{i : sorted\[i\] < v}, #{i : sorted\[i\] <= v}), v in bucket `bucket`.
    #[inline]
    pub fn count_in(&self, bucket: usize, v: f64) -> (u64, u64) {
        let (start, end) = (self.starts[bucket] as usize, self.starts[bucket + 1] as usize);
        let section = &self.sorted[start..end];
        let (lt, le) = if section.len() <= 16 {
            // a bucket holds about four values: count them without branches
            section.iter().fold((0u64, 0u64), |(lt, le), &s| (lt + (s < v) as u64, le + (s <= v) as u64))
        } else {
            count_one(section, v)
        };
        (start as u64 + lt, start as u64 + le)
    }

    /// (#{i : sorted\[i\] < v}, #{i : sorted\[i\] <= v}).
    #[inline]
    pub fn count(&self, v: f64) -> (u64, u64) {
        self.count_in(self.locate(v).1, v)
    }
}

/// Exclusive prefix sums of `w` in f64, length `w.len() + 1`, summed left to right (the CUDA
/// path reuses this exact array, so both devices see identical sums).
pub fn prefix_sums(w: &[f64]) -> Vec<f64> {
    let mut out = Vec::with_capacity(w.len() + 1);
    let mut acc = 0.0;
    out.push(0.0);
    for &x in w {
        acc += x;
        out.push(acc);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_statistics_are_the_sorted_values_at_their_ranks() {
        let mut st = 11u64;
        for case in 0..40 {
            let n = [1usize, 2, 17, 1000, 70_000, 300_000][case % 6];
            let spread = case % 4; // 0: ties and specials, 1: one bucket, 2: wide, 3: narrow
            let x: Vec<f64> = (0..n)
                .map(|_| {
                    st = crate::splitmix::mix(st);
                    let u = (st >> 11) as f64 / (1u64 << 53) as f64;
                    match (spread, st % 7) {
                        (0, 0) => -0.0,
                        (0, 1) => 0.0,
                        (0, 2) => f64::INFINITY,
                        (0, 3) => ((st >> 20) % 5) as f64,
                        (1, _) => 1.0 + u * 1e-3,
                        (3, _) => 0.97 + 0.03 * u,
                        _ => (u - 0.3) * 1e6,
                    }
                })
                .collect();
            let mut sorted = x.clone();
            sorted.sort_by(f64::total_cmp);
            let grid = [1usize, 3, 50, 1000][case % 4].min(n);
            let mut ranks: Vec<usize> = (1..=grid).map(|g| (g * n).div_ceil(grid) - 1).collect();
            ranks.dedup();
            let got = order_statistics(&x, &ranks);
            let want: Vec<f64> = ranks.iter().map(|&k| sorted[k]).collect();
            assert_eq!(
                got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "case {case}"
            );
        }
        assert!(order_statistics(&[], &[]).is_empty());
    }

    #[test]
    fn argsort_is_the_stable_total_order() {
        let mut st = 5u64;
        for case in 0..30 {
            let n = [0usize, 1, 2, 17, 1000, 70_000][case % 6];
            let x: Vec<f64> = (0..n)
                .map(|_| {
                    st = crate::splitmix::mix(st);
                    match st % 9 {
                        0 => -0.0,
                        1 => 0.0,
                        2 => f64::INFINITY,
                        3 => f64::NEG_INFINITY,
                        4 => ((st >> 20) % 7) as f64, // ties
                        5 => -(((st >> 20) % 5) as f64) * 1e-300,
                        _ => ((st >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * 1e6,
                    }
                })
                .collect();
            let mut want: Vec<u32> = (0..n as u32).collect();
            want.sort_by(|&a, &b| x[a as usize].total_cmp(&x[b as usize]).then(a.cmp(&b)));
            assert_eq!(argsort(&x), want, "case {case}");
        }
    }

    #[test]
    fn counts_match_brute_force() {
        let cal = [3.0, 1.0, 2.0, 2.0, 5.0, 2.0];
        let s = into_sorted(cal.to_vec());
        let q = [0.0, 1.0, 2.0, 2.5, 5.0, 9.0];
        let got = counts_below(&s, &q);
        for (v, (lt, le)) in q.iter().zip(got) {
            assert_eq!(lt, cal.iter().filter(|&&c| c < *v).count() as u64);
            assert_eq!(le, cal.iter().filter(|&&c| c <= *v).count() as u64);
        }
        assert_eq!(prefix_sums(&[1.0, 2.0]), vec![0.0, 1.0, 3.0]);
    }

    #[test]
    fn the_indexed_counts_match_binary_search_whatever_the_values() {
        // enough queries to take the indexed path; values of every awkward kind
        let mut st = 3u64;
        let mut uniform = move || {
            st = crate::splitmix::mix(st);
            ((st >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        for kind in 0..7 {
            let mut draw = |n: usize| -> Vec<f64> {
                (0..n)
                    .map(|i| {
                        let u = uniform();
                        match kind {
                            0 => ((i * 7919) % 1000) as f64 / 10.0,            // ties
                            1 => (u - 0.5).signum() / u,                       // heavy tails
                            2 => [-0.0, 0.0, 1.0, -1.0][i % 4],                // signed zeros
                            3 => [f64::NEG_INFINITY, f64::INFINITY, u][i % 3], // infinities
                            4 => 7.0,                                          // one value
                            5 => (u - 0.5) * f64::MAX * 1.9,                   // past f64's span
                            _ => (u - 0.5) * 1e-300,                           // tiny
                        }
                    })
                    .collect()
            };
            for n in [1usize, 2, 5000, 70_000] {
                let s = into_sorted(draw(n));
                let mut q = draw(100_000);
                q.extend([f64::NEG_INFINITY, f64::INFINITY, -0.0, 0.0, s[0], s[n - 1]]);
                let fast = counts_below(&s, &q);
                for (j, &v) in q.iter().enumerate() {
                    assert_eq!(fast[j], count_one(&s, v), "kind {kind}, n = {n}, query {v}");
                }
            }
        }
    }
}
