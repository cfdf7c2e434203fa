//! Weighted isotonic regression by the pool-adjacent-violators algorithm (PAVA).

/// The nondecreasing sequence z minimising Σ w_i (y_i − z_i)², for weights w_i > 0, in O(n):
/// adjacent blocks that violate the order are pooled into their weighted mean.
pub fn pava(y: &[f64], w: &[f64]) -> Vec<f64> {
    let mut out = y.to_vec();
    pava_in_place(&mut out, w);
    out
}

/// [`pava`] writing the fit over `y` (no second array of the data's size).
pub fn pava_in_place(y: &mut [f64], w: &[f64]) {
    assert_eq!(y.len(), w.len());
    // blocks: (weighted mean, total weight, length), grown as needed (pooled data hold far fewer
    // blocks than points)
    let mut blocks: Vec<(f64, f64, usize)> = Vec::new();
    for (&yi, &wi) in y.iter().zip(w) {
        let mut cur = (yi, wi, 1usize);
        while let Some(&(m, wt, len)) = blocks.last() {
            if m <= cur.0 {
                break;
            }
            blocks.pop();
            let total = wt + cur.1;
            cur = ((m * wt + cur.0 * cur.1) / total, total, len + cur.2);
        }
        blocks.push(cur);
    }
    let mut k = 0;
    for (m, _, len) in blocks {
        y[k..k + len].iter_mut().for_each(|v| *v = m);
        k += len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The O(n²) min–max formula: z_i = max_{j ≤ i} min_{k ≥ i} (weighted mean of y_j..y_k).
    fn minmax(y: &[f64], w: &[f64]) -> Vec<f64> {
        let n = y.len();
        let mean = |j: usize, k: usize| {
            let sw: f64 = w[j..=k].iter().sum();
            y[j..=k].iter().zip(&w[j..=k]).map(|(a, b)| a * b).sum::<f64>() / sw
        };
        (0..n)
            .map(|i| {
                (0..=i)
                    .map(|j| (i..n).map(|k| mean(j, k)).fold(f64::INFINITY, f64::min))
                    .fold(f64::NEG_INFINITY, f64::max)
            })
            .collect()
    }

    #[test]
    fn matches_the_min_max_formula() {
        let mut s = 7u64;
        let mut next = || {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (s >> 11) as f64 / (1u64 << 53) as f64
        };
        for n in 1..40 {
            let y: Vec<f64> = (0..n).map(|_| (next() * 10.0).round()).collect();
            let w: Vec<f64> = (0..n).map(|_| 0.1 + next()).collect();
            let a = pava(&y, &w);
            let b = minmax(&y, &w);
            for (x, z) in a.iter().zip(&b) {
                assert!((x - z).abs() < 1e-9, "{a:?} vs {b:?}");
            }
            assert!(a.windows(2).all(|p| p[0] <= p[1] + 1e-12));
        }
    }
}
