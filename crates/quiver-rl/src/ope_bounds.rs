//! Finite-sample OPE intervals from *declared* bounds: a reward range [lo, hi] that every reward
//! lies in, and (where needed) a bound ρ_max on the per-step importance ratio π(a|s)/μ(a|s).
//!
//! The bounds are what makes an interval valid at every n: they are stated before the data are
//! seen, and each row is checked against them (a reward outside the range, or a ratio above
//! ρ_max, is an error naming the row). Plugging in the *observed* range instead gives neither a
//! valid nor a tight interval, so Quiver does not.
//!
//! * **betting** (Waudby-Smith & Ramdas 2024; Karampatziakis, Mineiro & Ramdas 2021): for
//!   importance-weighted estimators (IPW, TIS, PDIS) the reward range alone suffices. With
//!   rewards padded by 0 after an episode ends and weights held at their last value,
//!   lo′ = min(lo, 0), hi′ = max(hi, 0) and G = Σ_{t<H} γ^t over the horizon H (1 for bandits):
//!   X⁺ = Σ_t γ^t w_t (r_t − lo′)/((hi′ − lo′)G) and X⁻ = Σ_t γ^t w_t (hi′ − r_t)/((hi′ − lo′)G)
//!   are non-negative with E X⁺ + E X⁻ = 1 (E_μ w_t = 1 at every t), and the value is
//!   lo′G + (hi′ − lo′)G·E X⁺. (TIS takes w_T at every step.) See `quiver_numerics::betting`.
//!   DR's per-unit values are not one-signed, so its betting interval needs ρ_max and treats them
//!   as bounded (below); SNIPW's ([`snipw_betting`]) tests each m on w(r − m), which ρ_max bounds
//!   below.
//! * **empirical-bernstein** (Maurer & Pontil 2009) and **hoeffding**: for per-unit values in a
//!   known range [A, B], which for importance-weighted values needs ρ_max:
//!   IPW w r ∈ [ρ_max min(lo, 0), ρ_max max(hi, 0)]; bandit DR ∈ [lo − ρ_max(hi − lo),
//!   hi + ρ_max(hi − lo)] (the reward model inside the reward range); TIS, PDIS and per-decision
//!   DR sum their steps' bounds with w_t ≤ ρ_max^{t+1}.
//!
//! Every interval is clipped to the value's possible range and then widened, if need be, to
//! contain its point estimate (both keep the coverage).

use quiver_numerics::betting;
use std::ops::Range;

/// The bounds a user declares for finite-sample intervals.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Declared {
    /// Every reward lies in [lo, hi].
    pub reward: (f64, f64),
    /// Every per-step importance ratio π/μ is at most this (optional).
    pub weight_max: Option<f64>,
}

impl Declared {
    /// (lo′, hi′): the reward range widened to contain 0, the reward after an episode ends.
    pub fn padded(&self) -> (f64, f64) {
        (self.reward.0.min(0.0), self.reward.1.max(0.0))
    }
}

/// A per-unit variable known to lie in [a, b].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range1 {
    /// Lower end.
    pub a: f64,
    /// Upper end.
    pub b: f64,
}

/// The finite-sample kinds of interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FiniteKind {
    /// Testing by betting.
    Betting,
    /// Maurer & Pontil's empirical Bernstein bound.
    EmpiricalBernstein,
    /// Hoeffding's bound.
    Hoeffding,
}

/// Clip `(lo, hi)` to `range`, then widen it to contain `estimate`.
pub fn finish(estimate: f64, (lo, hi): (f64, f64), range: Range1) -> (f64, f64) {
    let (lo, hi) = (lo.max(range.a), hi.min(range.b));
    (lo.min(estimate), hi.max(estimate))
}

/// The betting interval of the mean of `values` (i.i.d., each in `bounds`), clipped to the value's
/// possible range `range`. (Hoeffding's and the empirical Bernstein interval need only a summary:
/// [`bounded_mean_from`].)
pub fn betting_mean(values: &[f64], bounds: Range1, range: Range1, alpha: f64) -> (f64, f64) {
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    let width = bounds.b - bounds.a;
    let plus: Vec<f64> = values.iter().map(|v| ((v - bounds.a) / width).clamp(0.0, 1.0)).collect();
    let minus: Vec<f64> = plus.iter().map(|p| 1.0 - p).collect();
    let (l, u) = betting::interval_from_pair(&plus, &minus, alpha);
    finish(mean, (bounds.a + width * l, bounds.a + width * u), range)
}

/// Hoeffding's or the empirical Bernstein interval of a mean from the values' count, mean and
/// standard deviation — all they need, so a summary merged over partitions gives them (docs/scale.md);
/// `None` for betting, which runs through the values in order.
pub fn bounded_mean_from(
    n: f64,
    mean: f64,
    sd: f64,
    bounds: Range1,
    range: Range1,
    kind: FiniteKind,
    alpha: f64,
) -> Option<(f64, f64)> {
    let width = bounds.b - bounds.a;
    let h = match kind {
        FiniteKind::Betting => return None,
        FiniteKind::Hoeffding => betting::hoeffding_half_width(n, width, alpha),
        FiniteKind::EmpiricalBernstein => betting::empirical_bernstein_half_width(n, sd, width, alpha),
    };
    Some(finish(mean, (mean - h, mean + h), range))
}

/// The betting interval of an importance-weighted mean from its units' (X⁺, X⁻) (see the module
/// documentation), mapped to the value's scale a + (b − a)·m with `scale` = (a, b).
pub fn weighted_betting(plus: &[f64], minus: &[f64], scale: Range1, estimate: f64, alpha: f64) -> (f64, f64) {
    let (l, u) = betting::interval_from_pair(plus, minus, alpha);
    let w = scale.b - scale.a;
    finish(estimate, (scale.a + w * l, scale.a + w * u), scale)
}

/// A betting interval for the value v that self-normalised IPW estimates — the m with
/// E_μ[w(r − m)] = 0, as E_μ w = 1 — from the rows' weighted rewards `wr` = w·r and weights `w`
/// (rewards in the declared range [lo, hi], every weight ≤ w_max). For the lower end, under v = m the outcomes
/// X_i(m) = w_i(r_i − m)/(w_max(hi − lo)) have mean zero and are ≥ −a(m), a(m) = (m − lo)/(hi − lo);
/// the stakes λ_i(m) = min(λ̃_i, c/a(m)) (λ̃_i WSR's plug-in from the running variance of
/// w_j(r_j − lo)/(w_max(hi − lo)), j < i, which does not depend on m) keep every factor ≥ 1 − c and
/// make λ_i(m)X_i(m) non-increasing in m, so the confidence set's lower end is a root; the upper
/// end likewise with w_i(m − r_i). Each at α/2. Its centre is near the SNIPW estimate, where
/// Σ w(r − m) = 0, as the IPW intervals' is near IPW's.
pub fn snipw_betting(wr: &[f64], w: &[f64], d: &Declared, estimate: f64, alpha: f64) -> Option<(f64, f64)> {
    let wmax = d.weight_max?;
    let (lo, hi) = d.reward;
    let scale = wmax * (hi - lo);
    let c = betting::TRUNCATION;
    let up: Vec<f64> = wr.iter().zip(w).map(|(v, w)| ((v - lo * w) / scale).clamp(0.0, 1.0)).collect();
    let down: Vec<f64> = wr.iter().zip(w).map(|(v, w)| ((hi * w - v) / scale).clamp(0.0, 1.0)).collect();
    let (lam_up, lam_down) = (betting::plug_in_bets(&up, alpha / 2.0), betting::plug_in_bets(&down, alpha / 2.0));
    let n = w.len();
    let lower = betting::lower_root(n, alpha / 2.0, lo, hi, |i, m| {
        let a = (m - lo) / (hi - lo);
        let cap = if a > 0.0 { c / a } else { f64::INFINITY };
        lam_up[i].min(cap) * (wr[i] - m * w[i]) / scale
    });
    // the upper end: the same on the mirrored scale m′ = lo + hi − m, where w(m − r) is the outcome
    let mirrored = betting::lower_root(n, alpha / 2.0, lo, hi, |i, mm| {
        let m = lo + hi - mm;
        let b = (hi - m) / (hi - lo);
        let cap = if b > 0.0 { c / b } else { f64::INFINITY };
        lam_down[i].min(cap) * (m * w[i] - wr[i]) / scale
    });
    Some(finish(estimate, (lower, lo + hi - mirrored), Range1 { a: lo, b: hi }))
}

/// Σ_{t<h} γ^t c^t (c = ρ_max, or 1 for G).
pub fn discounted_sum(gamma: f64, c: f64, h: usize) -> f64 {
    let (mut s, mut f) = (0.0, 1.0);
    for _ in 0..h {
        s += f;
        f *= gamma * c;
    }
    s
}

/// Per-episode (X⁺, X⁻) of TIS and of PDIS for the betting interval, and the value scale (a, b)
/// they map to: rewards padded by 0 to the horizon `h`, weights held at their last value.
pub fn trajectory_pairs(
    episodes: &[Range<usize>],
    r: &[f64],
    w: &[f64],
    gamma: f64,
    h: usize,
    d: &Declared,
) -> (Range1, [Vec<f64>; 2], [Vec<f64>; 2]) {
    let (lo, hi) = d.padded();
    let g = discounted_sum(gamma, 1.0, h);
    let norm = (hi - lo) * g;
    let mut tis = [Vec::with_capacity(episodes.len()), Vec::with_capacity(episodes.len())];
    let mut pdis = [Vec::with_capacity(episodes.len()), Vec::with_capacity(episodes.len())];
    for rg in episodes {
        let last = if rg.is_empty() { 1.0 } else { w[rg.end - 1] };
        let (mut disc, mut ret, mut p_plus, mut p_minus) = (1.0, 0.0, 0.0, 0.0);
        for i in rg.clone() {
            ret += disc * r[i];
            p_plus += disc * w[i] * (r[i] - lo);
            p_minus += disc * w[i] * (hi - r[i]);
            disc *= gamma;
        }
        // the padded steps: reward 0, weight held at its last value
        let rest = g - discounted_sum(gamma, 1.0, rg.len());
        p_plus += rest * last * (0.0 - lo);
        p_minus += rest * last * hi;
        tis[0].push((last * (ret - lo * g)).max(0.0) / norm);
        tis[1].push((last * (hi * g - ret)).max(0.0) / norm);
        pdis[0].push(p_plus.max(0.0) / norm);
        pdis[1].push(p_minus.max(0.0) / norm);
    }
    (Range1 { a: lo * g, b: hi * g }, tis, pdis)
}

/// Bounds of a trajectory unit's TIS, PDIS and per-decision DR values over the horizon `h` with
/// per-step ratio bound ρ_max and the reward model's range `q` (over Q̂ and V̂).
pub fn trajectory_unit_bounds(d: &Declared, rho_max: f64, gamma: f64, h: usize, q: Range1) -> [Range1; 3] {
    let (lo, hi) = d.padded();
    let (rl, rh) = d.reward;
    // w_T R: w_T ≤ ρ^h, R ∈ [lo G, hi G]
    let g = discounted_sum(gamma, 1.0, h);
    let wmax = rho_max.powi(h as i32);
    let tis = Range1 { a: wmax * (lo * g).min(0.0), b: wmax * (hi * g).max(0.0) };
    // Σ γ^t w_t r_t with w_t ≤ ρ^{t+1}
    let gr = rho_max * discounted_sum(gamma, rho_max, h);
    let pdis = Range1 { a: lo * gr, b: hi * gr };
    // Σ γ^t w_{t−1}[ρ_t (r_t − Q̂_t) + V̂_t], w_{t−1} ≤ ρ^t
    let low = rho_max * (rl - q.b).min(0.0) + q.a;
    let high = rho_max * (rh - q.a).max(0.0) + q.b;
    let gw = discounted_sum(gamma, rho_max, h);
    let dr = Range1 { a: gw * low.min(0.0), b: gw * high.max(0.0) };
    [tis, pdis, dr]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_sum_to_the_normalised_weights() {
        // two episodes, horizon 3: lengths 3 and 1
        let eps = [0..3, 3..4];
        let r = [1.0, -0.5, 2.0, 0.5];
        let w = [0.5, 1.0, 2.0, 3.0];
        let d = Declared { reward: (-1.0, 2.0), weight_max: None };
        let gamma = 0.9;
        let (scale, tis, pdis) = trajectory_pairs(&eps, &r, &w, gamma, 3, &d);
        let g = 1.0 + 0.9 + 0.81;
        assert_eq!(scale, Range1 { a: -g, b: 2.0 * g });
        // PDIS: X⁺ + X⁻ = Σ_t γ^t w_t / G (weights held after the end)
        let want = [(0.5 + 0.9 * 1.0 + 0.81 * 2.0) / g, 3.0];
        for e in 0..2 {
            assert!((pdis[0][e] + pdis[1][e] - want[e]).abs() < 1e-12);
            assert!((tis[0][e] + tis[1][e] - [2.0, 3.0][e]).abs() < 1e-12);
        }
        // the value map: a + (b − a) X⁺ recovers the PDIS unit value
        let pdis0 = 0.5 * 1.0 + 0.9 * 1.0 * -0.5 + 0.81 * 2.0 * 2.0;
        let lifted = scale.a * want[0] + (scale.b - scale.a) * pdis[0][0];
        assert!((lifted - pdis0).abs() < 1e-12, "{lifted} vs {pdis0}");
    }

    #[test]
    fn unit_bounds_hold_on_random_episodes() {
        let d = Declared { reward: (-0.5, 1.0), weight_max: Some(2.5) };
        let q = Range1 { a: -1.0, b: 3.0 };
        let gamma = 0.8;
        let h = 4;
        let [tis, pdis, dr] = trajectory_unit_bounds(&d, 2.5, gamma, h, q);
        let mut state = 7u64;
        let mut u = || {
            state = quiver_numerics::splitmix::mix(state);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        for _ in 0..2000 {
            let len = 1 + (u() * h as f64) as usize;
            let (mut w, mut disc, mut ret, mut p, mut dr_v) = (1.0, 1.0, 0.0, 0.0, 0.0);
            for _ in 0..len.min(h) {
                let rho = 2.5 * u();
                let r = -0.5 + 1.5 * u();
                let (qv, vv) = (-1.0 + 4.0 * u(), -1.0 + 4.0 * u());
                let w_prev = w;
                w *= rho;
                ret += disc * r;
                p += disc * w * r;
                dr_v += disc * (w * (r - qv) + w_prev * vv);
                disc *= gamma;
            }
            let t = w * ret;
            assert!(tis.a <= t && t <= tis.b && pdis.a <= p && p <= pdis.b && dr.a <= dr_v && dr_v <= dr.b);
        }
    }
}
