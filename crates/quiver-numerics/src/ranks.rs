//! Counting sorted calibration values below / at query values.

use rayon::prelude::*;

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
    const CHUNK: usize = 1 << 14;
    if queries.len() < 4 * CHUNK || queries.len() > u32::MAX as usize {
        return queries
            .par_iter()
            .enumerate()
            .map(|(j, &v)| {
                let (lt, le) = count_one(sorted, v);
                f(j, lt, le)
            })
            .collect();
    }
    let mut order: Vec<u32> = (0..queries.len() as u32).collect();
    order.par_sort_unstable_by(|&a, &b| queries[a as usize].total_cmp(&queries[b as usize]));
    let walked: Vec<T> = order
        .par_chunks(CHUNK)
        .flat_map_iter(|chunk| {
            let (lt, le) = count_one(sorted, queries[chunk[0] as usize]);
            let (mut lt, mut le) = (lt as usize, le as usize);
            let f = &f;
            chunk.iter().map(move |&j| {
                let v = queries[j as usize];
                while lt < sorted.len() && sorted[lt] < v {
                    lt += 1;
                }
                if le < lt {
                    le = lt;
                }
                while le < sorted.len() && sorted[le] <= v {
                    le += 1;
                }
                f(j as usize, lt as u64, le as u64)
            })
        })
        .collect();
    let mut out = vec![T::default(); queries.len()];
    for (&j, c) in order.iter().zip(walked) {
        out[j as usize] = c;
    }
    out
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
    fn merge_path_matches_binary_search() {
        // enough queries to take the sort-and-walk path, with many ties
        let cal: Vec<f64> = (0..5000).map(|i| ((i * 7919) % 1000) as f64 / 10.0).collect();
        let s = into_sorted(cal.clone());
        let q: Vec<f64> = (0..100_000u64).map(|i| ((i * 104729) % 1200) as f64 / 10.0 - 5.0).collect();
        let fast = counts_below(&s, &q);
        for (j, &v) in q.iter().enumerate() {
            assert_eq!(fast[j], count_one(&s, v));
        }
    }
}
