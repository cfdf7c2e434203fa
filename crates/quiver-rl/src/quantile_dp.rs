//! The tabular quantile dynamic-programming operator (κ = 0) by selection, not sorting.
//!
//! One application maps θ (N quantiles per pair) to θ′: for pair k, the target distribution is
//! the mixture over its rows i (weight 1/n_k) of the point mass at r_i where the episode ends,
//! else the atoms r_i + γθ_{j′}(s′_i, a′) with weight π(a′|s′_i)/N; θ′_j(k) is the smallest atom z
//! with F_k(z) ≥ τ_j (less a relative 1e-12, as a sorted accumulation would find it). Written
//! out, that is rows × actions × N atoms a pair — 10⁷ an iteration at 40 000 rows and N = 128,
//! sorted 270 times on the way to a 1e-12 fixed point.
//!
//! Here the atoms are never written out. A pair's rows are grouped by their next state (the
//! episode's ends form one more group, whose "next distribution" is the point 0), each group's
//! rewards sorted once; the next state's distribution D (its actions' quantiles, 2N or so atoms)
//! is sorted once an iteration. Then F_k(z) = Σ_groups (1/n_k) Σ_{d ∈ D} w_d #{r : r + γd ≤ z} is
//! |D| binary searches per group, and the atoms inside a value bracket (lo, hi] are enumerated by
//! two searches per (group, d). Each quantile is found in a bracket that holds it: after the first
//! iteration, every atom moved by at most γΔ, where Δ is the largest change of any quantile in the
//! last iteration, so every quantile moved by at most that much too (an order statistic of points
//! that each move by ≤ γΔ moves by ≤ γΔ); the bracket is checked by F at its ends and widened if
//! rounding put the answer outside, and narrowed by bisection while it holds more than
//! [`ENUMERATE`] atoms. The answer is the same atom the sorted accumulation picks: the atoms are
//! computed with the same expression r + γ·d, and the threshold is the same.

use rayon::prelude::*;

/// Atoms a bracket may hold before they are listed and sorted (above it, bisect on the value).
pub const ENUMERATE: u64 = 4096;

/// One group of a pair's rows: their rewards, sorted, and the next-distribution they continue
/// with (`None`: the episode ended; the atoms are the rewards themselves).
#[derive(Debug, Clone)]
pub struct Group {
    /// Rewards of the group's rows, ascending.
    pub rewards: Vec<f64>,
    /// Index of the next state's distribution, or `None` for the rows that end an episode.
    pub next: Option<usize>,
}

/// The atoms of one (group, next atom) inside a bracket: group, next atom, and the rewards'
/// index range [a, b).
type Span = (u32, u32, u32, u32);

/// A pair's rows, grouped.
#[derive(Debug, Clone)]
pub struct PairRows {
    /// The groups.
    pub groups: Vec<Group>,
    /// 1/n_k, the weight of each row.
    pub row_weight: f64,
}

/// A next state's distribution: atoms (ascending), their weights π(a′|s′)/N, and where each
/// came from (the flat index k′·N + j′ of θ_{j′}(k′)).
#[derive(Debug, Clone, Default)]
pub struct NextDist {
    /// Atom values θ_{j′}(s′, a′), ascending.
    pub values: Vec<f64>,
    /// Their weights.
    pub weights: Vec<f64>,
    /// Their sources in θ (flat).
    pub sources: Vec<u32>,
}

/// The source of an atom that continues nowhere (a row that ends its episode).
pub const NO_SOURCE: u32 = u32::MAX;

const TERMINAL: ([f64; 1], [f64; 1], [u32; 1]) = ([0.0], [1.0], [NO_SOURCE]);

/// How many of the first elements of `v` satisfy `pred`, which holds on a prefix of `v`: the
/// branch-free binary search (the halving step compiles to a conditional move, so the search
/// does not stall on a mispredicted branch at every step, as `partition_point` does here).
#[inline]
fn prefix_len(v: &[f64], pred: impl Fn(f64) -> bool) -> usize {
    if v.is_empty() {
        return 0;
    }
    let (mut base, mut n) = (0usize, v.len());
    while n > 1 {
        let half = n / 2;
        base = if pred(v[base + half]) { base + half } else { base };
        n -= half;
    }
    base + usize::from(pred(v[base]))
}

/// The atom a quantile picked: its value, and how it is made — r + γθ[source] (or r alone).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pick {
    /// The quantile's value.
    pub value: f64,
    /// The reward of the row the atom came from.
    pub reward: f64,
    /// The flat index of the next quantile it adds (γ times), or [`NO_SOURCE`].
    pub source: u32,
}

impl PairRows {
    fn dist<'a>(&self, g: &Group, dists: &'a [NextDist]) -> (&'a [f64], &'a [f64], &'a [u32]) {
        match g.next {
            Some(s) => (&dists[s].values, &dists[s].weights, &dists[s].sources),
            None => (&TERMINAL.0, &TERMINAL.1, &TERMINAL.2),
        }
    }

    /// (F(z), #atoms ≤ z): the weight and the number of the pair's atoms r + γd ≤ z.
    pub fn cdf(&self, dists: &[NextDist], gamma: f64, z: f64) -> (f64, u64) {
        let (mut f, mut c) = (0.0, 0u64);
        for g in &self.groups {
            let (vals, ws, _) = self.dist(g, dists);
            let terminal = g.next.is_none();
            let mut fg = 0.0;
            for (&v, &w) in vals.iter().zip(ws) {
                let gv = gamma * v;
                let n =
                    if terminal { prefix_len(&g.rewards, |r| r <= z) } else { prefix_len(&g.rewards, |r| r + gv <= z) };
                fg += w * n as f64;
                c += n as u64;
            }
            f += self.row_weight * fg;
        }
        (f, c)
    }

    /// F(lo), the number of atoms ≤ lo and in (lo, hi], and where the latter are: for each
    /// (group, next atom d)
    /// the rewards' index range [a, b) — two searches each.
    fn ranges(&self, dists: &[NextDist], gamma: f64, lo: f64, hi: f64) -> (f64, u64, u64, Vec<Span>) {
        let (mut f, mut below, mut count, mut out) = (0.0, 0u64, 0u64, Vec::new());
        for (gi, g) in self.groups.iter().enumerate() {
            let (vals, ws, _) = self.dist(g, dists);
            let terminal = g.next.is_none();
            let mut fg = 0.0;
            for (d, (&v, &w)) in vals.iter().zip(ws).enumerate() {
                let gv = gamma * v;
                let atom = |r: f64| if terminal { r } else { r + gv };
                let a = prefix_len(&g.rewards, |r| atom(r) <= lo);
                let b = a + prefix_len(&g.rewards[a..], |r| atom(r) <= hi);
                fg += w * a as f64;
                below += a as u64;
                count += (b - a) as u64;
                if b > a {
                    out.push((gi as u32, d as u32, a as u32, b as u32));
                }
            }
            f += self.row_weight * fg;
        }
        (f, below, count, out)
    }

    /// The atoms of `ranges` as (value, weight, reward, source), rows with equal rewards merged
    /// into one atom (the same value, made the same way).
    fn atoms(&self, dists: &[NextDist], gamma: f64, ranges: &[Span]) -> Vec<(f64, f64, f64, u32)> {
        let mut out = Vec::new();
        for &(gi, d, a, b) in ranges {
            let g = &self.groups[gi as usize];
            let (vals, ws, srcs) = self.dist(g, dists);
            let (gv, w, src) = (gamma * vals[d as usize], self.row_weight * ws[d as usize], srcs[d as usize]);
            let rewards = &g.rewards[a as usize..b as usize];
            let mut i = 0;
            while i < rewards.len() {
                let r = rewards[i];
                let run = rewards[i..].partition_point(|&x| x == r);
                let value = if g.next.is_none() { r } else { r + gv };
                out.push((value, w * run as f64, r, src));
                i += run;
            }
        }
        out
    }

    /// The smallest and largest atoms.
    pub fn range(&self, dists: &[NextDist], gamma: f64) -> (f64, f64) {
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for g in &self.groups {
            let (vals, _, _) = self.dist(g, dists);
            let (Some(&r0), Some(&r1)) = (g.rewards.first(), g.rewards.last()) else { continue };
            let (v0, v1) = (vals[0], vals[vals.len() - 1]);
            let (a, b) = if g.next.is_none() { (r0, r1) } else { (r0 + gamma * v0, r1 + gamma * v1) };
            lo = lo.min(a);
            hi = hi.max(b);
        }
        (lo, hi)
    }

    /// The smallest atom z with F(z) ≥ τ(1 − 1e-12), searched from the bracket (lo, hi] (which
    /// is checked, and widened when it does not hold the answer), and how it is made.
    pub fn quantile(&self, dists: &[NextDist], gamma: f64, tau: f64, guess: (f64, f64)) -> Pick {
        let t = tau * (1.0 - 1e-12);
        let (min, max) = self.range(dists, gamma);
        // below every atom, F = 0
        let below = min - (min.abs() + 1.0);
        let (mut lo, mut hi) = (guess.0.max(below), guess.1.min(max));
        if hi.is_nan() || lo.is_nan() || hi <= lo {
            (lo, hi) = (below, max);
        }
        // widening starts from no less than 1e-12 of the atoms' span, and quadruples
        let mut width = (hi - lo).max((max - min) * 1e-12).max(f64::MIN_POSITIVE);
        for _ in 0..4000 {
            // F(lo) and the atoms in (lo, hi]: two searches per (group, next atom)
            let (flo, clo, count, ranges) = self.ranges(dists, gamma, lo, hi);
            if flo >= t {
                width *= 4.0;
                lo = if lo - width <= min { below } else { lo - width };
                continue;
            }
            let (flo, ranges) = if count > ENUMERATE {
                // narrow by value (one search each) while the bracket holds many atoms: F is
                // nearly continuous there, so interpolate (Illinois), bisecting every third step
                let (mut clo, mut chi) = (clo, clo + count);
                let (mut fl, mut fh) = (flo, self.cdf(dists, gamma, hi).0);
                let mut side = 0i8;
                let mut step = 0;
                while chi - clo > ENUMERATE {
                    let a = lo.max(min);
                    step += 1;
                    let mid = if step % 3 == 0 || fh <= fl {
                        0.5 * (a + hi)
                    } else {
                        let m = a + (t - fl) / (fh - fl) * (hi - a);
                        // keep off the ends: a step of at least 1/64 of the bracket
                        m.clamp(a + (hi - a) / 64.0, hi - (hi - a) / 64.0)
                    };
                    if !(mid > lo && mid < hi) {
                        break;
                    }
                    let (fm, cm) = self.cdf(dists, gamma, mid);
                    if fm >= t {
                        (hi, chi, fh) = (mid, cm, fm);
                        if side == 1 {
                            fl = t - 0.5 * (t - fl);
                        }
                        side = 1;
                    } else {
                        (lo, clo, fl) = (mid, cm, fm);
                        if side == -1 {
                            fh = t + 0.5 * (fh - t);
                        }
                        side = -1;
                    }
                }
                let (f, _, _, r) = self.ranges(dists, gamma, lo, hi);
                (f, r)
            } else {
                (flo, ranges)
            };
            let mut atoms = self.atoms(dists, gamma, &ranges);
            atoms.sort_by(|a, b| a.0.total_cmp(&b.0));
            let mut acc = flo;
            for &(value, w, reward, source) in &atoms {
                acc += w;
                if acc >= t {
                    return Pick { value, reward, source };
                }
            }
            if hi >= max {
                // rounding: the total fell a hair short of τ(1 − 1e-12); the largest atom
                if let Some(&(value, _, reward, source)) = atoms.last() {
                    return Pick { value, reward, source };
                }
                lo = below;
                continue;
            }
            width *= 4.0;
            hi = (hi + width).min(max);
        }
        unreachable!("the bracket widens to every atom within 4000 rounds")
    }
}

/// θ′ = T(θ) for every pair and level, in parallel, and the atoms picked. Each quantile is
/// searched from a bracket around its guess `centre[k][j]`: ± `slack` (`None`: every atom),
/// narrowed to ± 2·`hint[k][j]` where a hint is given (how far that quantile moved last time,
/// times γ) — a guess [`PairRows::quantile`] checks, and widens where it does not hold the answer.
pub fn apply(
    pairs: &[PairRows],
    dists: &[NextDist],
    gamma: f64,
    tau: &[f64],
    centre: &[Vec<f64>],
    slack: Option<f64>,
    hint: Option<&[Vec<f64>]>,
) -> Vec<Vec<Pick>> {
    pairs
        .par_iter()
        .enumerate()
        .map(|(k, p)| {
            let (min, max) = p.range(dists, gamma);
            tau.par_iter()
                .enumerate()
                .map(|(j, &t)| {
                    let q = centre[k][j];
                    let guess = match slack {
                        Some(d) => {
                            let d = hint.map_or(d, |h| d.min(2.0 * h[k][j]));
                            let s = d * (1.0 + 1e-9) + 1e-12 * q.abs() + f64::MIN_POSITIVE;
                            (q - s, q + s)
                        }
                        None => (min - 1.0 - min.abs(), max),
                    };
                    p.quantile(dists, gamma, t, guess)
                })
                .collect()
        })
        .collect()
}

/// The iteration θ ← T(θ) to the fixed point, with what it learns along the way: brackets for
/// the next step's quantiles, and the atoms the last step picked.
///
/// Each step applies T ([`apply`]) from brackets around the last iterate: every quantile moves by
/// at most γ times the largest move of the step before (T is a γ-contraction in the sup norm, and
/// a weighted order statistic of atoms that each move by ≤ γΔ moves by ≤ γΔ), narrowed to twice
/// its own last move as a guess that the search checks. Then **policy iteration on the picked
/// atoms**: θ′ = T(θ) is an affine function of θ for as long as T picks the same atoms (value
/// r + γθ[source]), and that affine map's fixed point has a closed form
/// ([`affine_fixed_point`]). Once a step picks the same atoms as the one before, that fixed point
/// θ̂ is tried: where T(θ̂) picks them again ([`holds`], to 1e-14), θ̂ is T's own unique fixed
/// point, and the iteration jumps there instead of approaching it at rate γ (85 steps instead of
/// 233 on one problem; the answer is the exact fixed point, where stopping at a relative change
/// of 1e-12 left the sorted iteration 1e-10 from it).
pub struct Iteration<'a, F> {
    pairs: &'a [PairRows],
    states: &'a [u32],
    pi: &'a crate::Policy,
    pair_of: &'a F,
    gamma: f64,
    tau: &'a [f64],
    slack: Option<f64>,
    hint: Option<Vec<Vec<f64>>>,
    last_made: Vec<(u32, u64)>,
}

impl<'a, F: Fn(u32, u32) -> usize + Sync> Iteration<'a, F> {
    /// The iteration over grouped rows (from [`group_rows`]), π, the pairs' indices in θ.
    pub fn new(
        pairs: &'a [PairRows],
        states: &'a [u32],
        pi: &'a crate::Policy,
        pair_of: &'a F,
        gamma: f64,
        tau: &'a [f64],
    ) -> Self {
        Iteration { pairs, states, pi, pair_of, gamma, tau, slack: None, hint: None, last_made: Vec::new() }
    }

    /// The next iterate after θ: T(θ), or T's fixed point where policy iteration finds it.
    pub fn next(&mut self, theta: &[Vec<f64>]) -> Vec<Vec<f64>> {
        let dists = next_dists(self.states, theta, self.pi, self.pair_of);
        let picks = apply(self.pairs, &dists, self.gamma, self.tau, theta, self.slack, self.hint.as_deref());
        let mut next: Vec<Vec<f64>> = picks.iter().map(|q| q.iter().map(|x| x.value).collect()).collect();
        let made: Vec<(u32, u64)> = picks.iter().flatten().map(|p| (p.source, p.reward.to_bits())).collect();
        if made == self.last_made {
            if let Some(hat) = affine_fixed_point(&picks, self.gamma) {
                let at_hat = next_dists(self.states, &hat, self.pi, self.pair_of);
                if holds(self.pairs, &at_hat, self.gamma, self.tau, &hat, 1e-14) {
                    next = hat;
                }
            }
        }
        self.last_made = made;
        let moved: Vec<Vec<f64>> = next
            .iter()
            .zip(theta)
            .map(|(a, b)| a.iter().zip(b).map(|(x, y)| self.gamma * (x - y).abs()).collect())
            .collect();
        self.slack = Some(moved.iter().flatten().fold(0.0, |m: f64, &x| m.max(x)));
        self.hint = Some(moved);
        next
    }
}

/// Whether every quantile of T(θ) lies within `s`·(1 + |c|) of `centre` c: F(c − δ) < τ(1 − 1e-12)
/// ≤ F(c + δ) for each pair and level (two CDF evaluations each, stopping at the first that
/// fails). `dists` are the next states' distributions under θ.
pub fn holds(pairs: &[PairRows], dists: &[NextDist], gamma: f64, tau: &[f64], centre: &[Vec<f64>], s: f64) -> bool {
    pairs.par_iter().zip(centre).all(|(p, c)| {
        tau.par_iter().zip(c).all(|(&t, &q)| {
            let (t, d) = (t * (1.0 - 1e-12), s * (1.0 + q.abs()));
            p.cdf(dists, gamma, q - d).0 < t && p.cdf(dists, gamma, q + d).0 >= t
        })
    })
}

/// The fixed point of the affine map the picks define, θ_x = r_x + γθ_{source(x)} (θ_x = r_x
/// where the source is none): each x points to one other, so it is solved along the chains, a
/// cycle x₀ → … → x_{L−1} → x₀ in closed form, θ_{x₀} = Σ_i γ^i r_{x_i} / (1 − γ^L). `None` for
/// γ ≥ 1 (a cycle has no finite solution).
pub fn affine_fixed_point(picks: &[Vec<Pick>], gamma: f64) -> Option<Vec<Vec<f64>>> {
    if gamma >= 1.0 {
        return None;
    }
    let n = picks.first().map_or(0, Vec::len);
    let flat: Vec<Pick> = picks.iter().flatten().copied().collect();
    let mut value = vec![f64::NAN; flat.len()];
    // 0: unseen, 1: on the current chain, 2: solved
    let mut state = vec![0u8; flat.len()];
    let mut chain = Vec::new();
    for start in 0..flat.len() {
        chain.clear();
        let mut x = start;
        while state[x] == 0 {
            state[x] = 1;
            chain.push(x);
            match flat[x].source {
                NO_SOURCE => break,
                s => x = s as usize,
            }
        }
        // where the chain stopped: a terminal atom (solve from its end), a solved node, or a node
        // on this chain (a cycle)
        let mut upto = chain.len();
        let last = *chain.last().unwrap_or(&x);
        if state[x] == 1 && flat[last].source != NO_SOURCE {
            let at = chain.iter().position(|&c| c == x).expect("on the chain");
            let cycle = &chain[at..];
            let (mut sum, mut g) = (0.0, 1.0);
            for &c in cycle {
                sum += g * flat[c].reward;
                g *= gamma;
            }
            value[cycle[0]] = sum / (1.0 - g);
            for i in (1..cycle.len()).rev() {
                let c = cycle[i];
                value[c] = flat[c].reward + gamma * value[flat[c].source as usize];
            }
            for &c in cycle {
                state[c] = 2;
            }
            upto = at;
        }
        for i in (0..upto).rev() {
            let c = chain[i];
            value[c] = match flat[c].source {
                NO_SOURCE => flat[c].reward,
                s => flat[c].reward + gamma * value[s as usize],
            };
            state[c] = 2;
        }
    }
    value.iter().all(|v| v.is_finite()).then(|| value.chunks(n.max(1)).map(<[f64]>::to_vec).collect())
}

/// The pairs' rows grouped for [`apply`]: `rows[k]` are pair k's rows; a row continues to
/// `s_next` unless `done`. Returns the groups and the next states they refer to (the index of a
/// group's `next` in that list).
pub fn group_rows(rows: &[Vec<usize>], r: &[f64], done: &[bool], s_next: &[u32]) -> (Vec<PairRows>, Vec<u32>) {
    let mut states: Vec<u32> = rows.iter().flatten().filter(|&&i| !done[i]).map(|&i| s_next[i]).collect();
    states.sort_unstable();
    states.dedup();
    let pairs = rows
        .iter()
        .map(|rk| {
            let mut by: std::collections::BTreeMap<Option<usize>, Vec<f64>> = std::collections::BTreeMap::new();
            for &i in rk {
                let next = (!done[i]).then(|| states.binary_search(&s_next[i]).expect("a next state of these rows"));
                by.entry(next).or_default().push(r[i]);
            }
            let groups = by
                .into_iter()
                .map(|(next, mut rewards)| {
                    rewards.sort_by(f64::total_cmp);
                    Group { rewards, next }
                })
                .collect();
            PairRows { groups, row_weight: 1.0 / rk.len() as f64 }
        })
        .collect();
    (pairs, states)
}

/// The search steps one application of [`apply`] takes, about: for every pair and level, two
/// binary searches of each group's rewards per next atom (`actions(s)` actions at next state
/// `s`, N atoms each).
pub fn search_steps(pairs: &[PairRows], actions: impl Fn(usize) -> usize, n: usize) -> f64 {
    let per_level: f64 = pairs
        .iter()
        .flat_map(|p| &p.groups)
        .map(|g| {
            let atoms = g.next.map_or(1, |s| actions(s) * n) as f64;
            2.0 * atoms * (g.rewards.len() as f64 + 2.0).log2()
        })
        .sum();
    per_level * n as f64
}

/// Each next state's distribution under θ: the quantiles θ(s′, a′) of the actions π takes there,
/// each with weight π(a′|s′)/N, ascending. `pair_of(s′, a′)` is the pair's index in θ.
pub fn next_dists(
    states: &[u32],
    theta: &[Vec<f64>],
    pi: &crate::Policy,
    pair_of: impl Fn(u32, u32) -> usize + Sync,
) -> Vec<NextDist> {
    states
        .par_iter()
        .map(|&s2| {
            let (acts, probs) = pi.at(s2).expect("policy coverage checked");
            let mut atoms: Vec<(f64, f64, u32)> = Vec::new();
            for (&a2, &p) in acts.iter().zip(probs) {
                let k2 = pair_of(s2, a2);
                let q = &theta[k2];
                let w = p / q.len() as f64;
                atoms.extend(q.iter().enumerate().map(|(j, &v)| (v, w, (k2 * q.len() + j) as u32)));
            }
            atoms.sort_by(|a, b| a.0.total_cmp(&b.0));
            // equal values are one atom (their weights summed; the first one's source): at θ = 0
            // every next distribution is the single point 0
            let mut d = NextDist::default();
            for (v, w, src) in atoms {
                if d.values.last() == Some(&v) {
                    *d.weights.last_mut().expect("a value") += w;
                } else {
                    d.values.push(v);
                    d.weights.push(w);
                    d.sources.push(src);
                }
            }
            d
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sorted-accumulation reference: every atom written out, sorted, accumulated — with
    /// compensated sums, since a plain running sum of thousands of weights drifts by 1e-13, the
    /// size of the threshold's slack, and then decides a tie at a level (F = τ exactly) by
    /// rounding.
    fn reference(p: &PairRows, dists: &[NextDist], gamma: f64, tau: f64) -> f64 {
        let mut atoms = Vec::new();
        for g in &p.groups {
            let (vals, ws, _) = p.dist(g, dists);
            for &r in &g.rewards {
                for (&v, &w) in vals.iter().zip(ws) {
                    atoms.push((if g.next.is_none() { r } else { r + gamma * v }, p.row_weight * w));
                }
            }
        }
        atoms.sort_by(|a, b| a.0.total_cmp(&b.0));
        let neumaier = |(s, c): (f64, f64), x: f64| {
            let t = s + x;
            (t, c + if s.abs() >= x.abs() { (s - t) + x } else { (x - t) + s })
        };
        let total = atoms.iter().fold((0.0, 0.0), |acc, a| neumaier(acc, a.1));
        let total = total.0 + total.1;
        let mut acc = (0.0, 0.0);
        for &(z, w) in &atoms {
            acc = neumaier(acc, w);
            if acc.0 + acc.1 >= tau * total * (1.0 - 1e-12) {
                return z;
            }
        }
        atoms.last().unwrap().0
    }

    fn uniform(state: &mut u64) -> f64 {
        *state = quiver_numerics::splitmix::mix(*state);
        (*state >> 11) as f64 / (1u64 << 53) as f64
    }

    #[test]
    fn affine_fixed_point_solves_chains_and_cycles() {
        let pick = |reward: f64, source: u32| Pick { value: 0.0, reward, source };
        // 0 → 1 → 2 → 1 (a cycle of two), 3 → 4 (terminal), 5 → 5 (a self-loop)
        let picks = vec![
            vec![pick(1.0, 1), pick(2.0, 2), pick(-1.0, 1)],
            vec![pick(0.5, 4), pick(3.0, NO_SOURCE), pick(2.0, 5)],
        ];
        let g = 0.9;
        let th = affine_fixed_point(&picks, g).unwrap();
        let flat: Vec<f64> = th.iter().flatten().copied().collect();
        let src = [1usize, 2, 1, 4, usize::MAX, 5];
        let rew = [1.0, 2.0, -1.0, 0.5, 3.0, 2.0];
        for x in 0..6 {
            let want = rew[x] + if src[x] == usize::MAX { 0.0 } else { g * flat[src[x]] };
            assert!((flat[x] - want).abs() < 1e-12, "node {x}: {} vs {want}", flat[x]);
        }
        assert!((flat[5] - 2.0 / (1.0 - g)).abs() < 1e-12);
        assert!(affine_fixed_point(&picks, 1.0).is_none());
    }

    #[test]
    fn selection_equals_the_sorted_accumulation() {
        let mut st = 11u64;
        for case in 0..40 {
            let n_groups = 1 + case % 3;
            let mut groups = Vec::new();
            let mut rows = 0;
            for g in 0..n_groups {
                let len = 1 + (uniform(&mut st) * 3000.0) as usize;
                rows += len;
                // some ties: rewards on a coarse grid in half the cases
                let mut rewards: Vec<f64> =
                    (0..len)
                        .map(|_| {
                            if case % 2 == 0 {
                                (uniform(&mut st) * 20.0).floor()
                            } else {
                                uniform(&mut st) * 5.0 - 1.0
                            }
                        })
                        .collect();
                rewards.sort_by(f64::total_cmp);
                groups.push(Group { rewards, next: if g == 2 { None } else { Some(g) } });
            }
            let n = 1 + case % 9;
            let dists: Vec<NextDist> = (0..2)
                .map(|_| {
                    let mut v: Vec<f64> = (0..2 * n).map(|_| uniform(&mut st) * 10.0).collect();
                    v.sort_by(f64::total_cmp);
                    NextDist { values: v, weights: vec![0.5 / n as f64; 2 * n], sources: (0..2 * n as u32).collect() }
                })
                .collect();
            let p = PairRows { groups, row_weight: 1.0 / rows as f64 };
            let gamma = 0.9;
            for j in 1..=n {
                let tau = (2 * j - 1) as f64 / (2 * n) as f64;
                let want = reference(&p, &dists, gamma, tau);
                let (min, max) = p.range(&dists, gamma);
                // from the widest bracket, and from narrow ones on either side of the answer
                for guess in
                    [(min - 1.0, max), (want - 1e-3, want + 1e-3), (want + 0.5, want + 1.0), (min - 5.0, min - 4.0)]
                {
                    let got = p.quantile(&dists, gamma, tau, guess).value;
                    assert_eq!(got, want, "case {case}, tau {tau}, guess {guess:?}");
                }
            }
        }
    }
}
