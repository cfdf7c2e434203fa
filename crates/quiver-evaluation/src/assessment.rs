//! How good an off-policy estimator is at what it is used for — choosing policies — after Kiyohara,
//! Kishimoto, Kawakami, Kobayashi, Nakata & Saito, "Towards assessing and benchmarking risk–return
//! tradeoff of off-policy evaluation" (ICLR 2024; SCOPE-RL). Given one estimator's estimates
//! Ĵ(π_i) of K candidate policies, their true values J(π_i) and the behaviour policy's J(π_b):
//!
//! * the ranking: candidates by Ĵ, highest first (ties: in the candidates' given order);
//! * **top-k** (k = 1 … K), the k policies the estimator would deploy for A/B tests:
//!   best@k = max J over them, std@k = the sample standard deviation of their J (k ≥ 2), and
//!   **SharpeRatio@k** = (best@k − J(π_b)) / std@k — the return of deploying the top k over the
//!   risk of the bad policies among them;
//! * **regret@k** = max_i J(π_i) − best@k;
//! * **nDCG@k** with relevance J(π_i) − min_j J(π_j) (so the worst candidate counts 0):
//!   Σ_{r ≤ k} rel_(r)/log₂(r + 1) over the same sum in the true order;
//! * **Spearman's ρ** between Ĵ and J (average ranks for ties);
//! * **MSE** = mean (Ĵ − J)², **relative MSE** = MSE / J(π_b)²;
//! * **type I / II error rates** at a safety threshold τ: among the truly safe (J ≥ τ), the
//!   fraction estimated unsafe (Ĵ < τ); among the truly unsafe, the fraction estimated safe.

/// The candidates by estimate, highest first; ties in the given order.
pub fn ranking(estimates: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..estimates.len()).collect();
    order.sort_by(|&a, &b| estimates[b].total_cmp(&estimates[a]).then(a.cmp(&b)));
    order
}

/// best@k and std@k (the sample standard deviation, `None` for k = 1) of the true values of the
/// first `k` of `order`.
pub fn top_k(order: &[usize], truth: &[f64], k: usize) -> (f64, Option<f64>) {
    let vals: Vec<f64> = order[..k].iter().map(|&i| truth[i]).collect();
    let best = vals.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if k < 2 {
        return (best, None);
    }
    let mean = vals.iter().map(|v| v / k as f64).sum::<f64>();
    // deviations scaled by the largest: their squares neither overflow nor underflow
    let big = vals.iter().map(|v| (v - mean).abs()).fold(0.0, f64::max);
    if big == 0.0 {
        return (best, Some(0.0));
    }
    let var = vals.iter().map(|v| ((v - mean) / big).powi(2)).sum::<f64>() / (k - 1) as f64;
    (best, Some(big * var.sqrt()))
}

/// nDCG@k of `order` against the true values (relevance J − min J).
pub fn ndcg(order: &[usize], truth: &[f64], k: usize) -> f64 {
    let floor = truth.iter().copied().fold(f64::INFINITY, f64::min);
    let dcg = |idx: &mut dyn Iterator<Item = usize>| -> f64 {
        idx.take(k).enumerate().map(|(r, i)| (truth[i] - floor) / ((r + 2) as f64).log2()).sum()
    };
    let mut ideal: Vec<usize> = (0..truth.len()).collect();
    ideal.sort_by(|&a, &b| truth[b].total_cmp(&truth[a]));
    let best = dcg(&mut ideal.into_iter());
    if best > 0.0 {
        dcg(&mut order.iter().copied()) / best
    } else {
        // every candidate equally good: any order is ideal
        1.0
    }
}

/// Ranks 1…n with ties given their average rank.
fn average_ranks(x: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..x.len()).collect();
    idx.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut ranks = vec![0.0; x.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && x[idx[j + 1]] == x[idx[i]] {
            j += 1;
        }
        let r = (i + j) as f64 / 2.0 + 1.0;
        for &t in &idx[i..=j] {
            ranks[t] = r;
        }
        i = j + 1;
    }
    ranks
}

/// Spearman's ρ: the Pearson correlation of the average ranks; `None` when either side is
/// constant (no ranking to correlate).
pub fn spearman(a: &[f64], b: &[f64]) -> Option<f64> {
    let (ra, rb) = (average_ranks(a), average_ranks(b));
    let n = a.len() as f64;
    let (ma, mb) = (ra.iter().sum::<f64>() / n, rb.iter().sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in ra.iter().zip(&rb) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma).powi(2);
        sbb += (y - mb).powi(2);
    }
    (saa > 0.0 && sbb > 0.0).then(|| sab / (saa * sbb).sqrt())
}

/// Type I and II error rates at `threshold`: (truly safe estimated unsafe / truly safe, truly
/// unsafe estimated safe / truly unsafe); 0 where the denominator is empty.
pub fn safety_errors(estimates: &[f64], truth: &[f64], threshold: f64) -> (f64, f64) {
    let (mut safe, mut unsafe_, mut missed, mut passed) = (0usize, 0usize, 0usize, 0usize);
    for (e, t) in estimates.iter().zip(truth) {
        if *t >= threshold {
            safe += 1;
            missed += usize::from(*e < threshold);
        } else {
            unsafe_ += 1;
            passed += usize::from(*e >= threshold);
        }
    }
    let rate = |a: usize, b: usize| if b > 0 { a as f64 / b as f64 } else { 0.0 };
    (rate(missed, safe), rate(passed, unsafe_))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_hand() {
        // true 1, 4, 2, 3; estimates put them in the order 1 (4), 3 (3.5), 0 (1), 2 (0)
        let truth = [1.0, 4.0, 2.0, 3.0];
        let est = [1.0, 5.0, 0.0, 3.5];
        let order = ranking(&est);
        assert_eq!(order, vec![1, 3, 0, 2]);
        assert_eq!(top_k(&order, &truth, 1), (4.0, None));
        // top 2: 4 and 3, std √0.5
        let (best, std) = top_k(&order, &truth, 2);
        assert_eq!(best, 4.0);
        assert!((std.unwrap() - 0.5f64.sqrt()).abs() < 1e-15);
        // relevance J − 1: 0, 3, 1, 2; DCG of 3, 2, 0, 1 over the ideal 3, 2, 1, 0
        let l = |r: f64| (r + 1.0).log2();
        let want = (3.0 / l(1.0) + 2.0 / l(2.0) + 0.0 / l(3.0) + 1.0 / l(4.0))
            / (3.0 / l(1.0) + 2.0 / l(2.0) + 1.0 / l(3.0) + 0.0 / l(4.0));
        assert!((ndcg(&order, &truth, 4) - want).abs() < 1e-15);
        assert_eq!(ndcg(&order, &truth, 2), 1.0);
        // ranks of est: 2, 4, 1, 3; of truth: 1, 4, 2, 3 → d² = 1 + 0 + 1 + 0: ρ = 1 − 6·2/(4·15)
        assert!((spearman(&est, &truth).unwrap() - 0.8).abs() < 1e-15);
        assert_eq!(spearman(&[1.0, 1.0], &[1.0, 2.0]), None);
        // threshold 2: safe 4, 2, 3 (estimated 5, 0, 3.5: one missed); unsafe 1 (estimated 1: fine)
        assert_eq!(safety_errors(&est, &truth, 2.0), (1.0 / 3.0, 0.0));
        // ties in the estimates keep the given order
        assert_eq!(ranking(&[2.0, 3.0, 2.0]), vec![1, 0, 2]);
        // ties in the values: average ranks
        assert!((spearman(&[1.0, 2.0, 2.0], &[1.0, 2.0, 3.0]).unwrap() - 0.8660254037844387).abs() < 1e-12);
    }
}
