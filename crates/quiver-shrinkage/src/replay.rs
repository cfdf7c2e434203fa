//! A search over sweeps driven one pass over the data at a time.
//!
//! Computed by parts (docs/scale.md), each sweep of SURE's search for λ̂ is a pass over every
//! partition: the partitions sum their units' terms at the sweep's points, the sums are added,
//! and the search decides the next points from the result. The search
//! ([`crate::risk::branch_and_bound`]) is a deterministic function of the sweeps it is given, so
//! the driver need not suspend it: at the end of each pass it runs the search again from the
//! start, answering every sweep from the log of sweeps already made, and the first sweep the log
//! does not hold is the next pass's request. Replaying costs no pass over the data (only the
//! search's own arithmetic, a few hundred points), and a search replayed on the same sums takes
//! the same path, so its answer is the one-table search's on those sums.

use crate::risk::SweepResult;

/// A sweep the log does not hold: the points the next pass must sum at.
#[derive(Debug, Clone, PartialEq)]
pub struct NeedSweep(pub Vec<f64>);

/// A replayed search: the points of the next sweep, or its answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Replayed<T> {
    /// Sum the units' terms at these points in the next pass.
    Need(Vec<f64>),
    /// The search's answer.
    Done(T),
}

/// A replay that asked for other points than those its log recorded at the same place: the
/// search is not a function of its sweeps (a defect), or the log belongs to another search.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("the search asked for sweep {index} at {asked} point(s) where its log holds {logged}: a log of another search")]
pub struct ReplayMismatch {
    /// Which sweep (from 0).
    pub index: usize,
    /// Points asked for.
    pub asked: usize,
    /// Points in the log there.
    pub logged: usize,
}

/// Run `search` with its sweeps answered from `log` — each entry the points of a sweep and its
/// summed terms, in the order the search asked for them — through `finish` (sums → risks and
/// bounds). The first sweep past the log ends the replay with [`Replayed::Need`].
pub fn replay<T>(
    log: &[(Vec<f64>, Vec<f64>)],
    finish: impl Fn(&[f64], &[f64]) -> SweepResult,
    search: impl FnOnce(&mut dyn FnMut(&[f64]) -> Result<SweepResult, NeedSweep>) -> Result<T, NeedSweep>,
) -> Result<Replayed<T>, ReplayMismatch> {
    let mut next = 0;
    let mut mismatch = None;
    let mut answer = |ts: &[f64]| -> Result<SweepResult, NeedSweep> {
        let Some((logged, sums)) = log.get(next) else { return Err(NeedSweep(ts.to_vec())) };
        if logged.as_slice() != ts {
            mismatch = Some(ReplayMismatch { index: next, asked: ts.len(), logged: logged.len() });
            // stop the search here; the mismatch is reported below
            return Err(NeedSweep(Vec::new()));
        }
        next += 1;
        Ok(finish(ts, sums))
    };
    let outcome = search(&mut answer);
    if let Some(m) = mismatch {
        return Err(m);
    }
    Ok(match outcome {
        Ok(t) => Replayed::Done(t),
        Err(NeedSweep(ts)) => Replayed::Need(ts),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::risk::{branch_and_bound, sweep_of_sums, QuadraticRisk, Weight};

    /// Driven one sweep per pass, with each pass's sums added over four slices of the units,
    /// the search ends where the one-call search ends: the same λ̂, risk, bound and sweeps.
    #[test]
    fn a_search_replayed_pass_by_pass_equals_the_one_call_search() {
        let mut u = crate::test_rng::lcg(11);
        let p = 500;
        let a: Vec<f64> = (0..p).map(|_| 0.2 + 3.0 * u()).collect();
        let x: Vec<f64> = (0..p).map(|i| (u() - 0.5) * 4.0 + a[i].sqrt() * (u() - 0.5)).collect();
        let risk = QuadraticRisk {
            d: x.iter().map(|v| v * v).collect(),
            e: a.clone(),
            h: a.clone(),
            c: a.iter().sum(),
            weight: Weight::Decreasing,
        };
        let whole = risk.minimize(crate::Sweep::Cpu).unwrap();
        let slices: Vec<QuadraticRisk> = [0..130, 130..131, 131..400, 400..500]
            .into_iter()
            .map(|r| QuadraticRisk {
                d: risk.d[r.clone()].to_vec(),
                e: risk.e[r.clone()].to_vec(),
                h: risk.h[r].to_vec(),
                c: 0.0,
                weight: Weight::Decreasing,
            })
            .collect();
        let (s, unit) = (risk.scale(), (risk.c / p as f64).abs());
        let mut log: Vec<(Vec<f64>, Vec<f64>)> = Vec::new();
        let found = loop {
            let finish = |ts: &[f64], sums: &[f64]| sweep_of_sums(p, risk.c, ts, sums);
            match replay(&log, finish, |sweep| branch_and_bound(sweep, unit, 1e-2, s)).unwrap() {
                Replayed::Done(m) => break m,
                Replayed::Need(ts) => {
                    let mut total = vec![0.0; 5 * ts.len() - 2];
                    for slice in &slices {
                        for (t, v) in total.iter_mut().zip(slice.sweep_sums(&ts, s)) {
                            *t += v;
                        }
                    }
                    log.push((ts, total));
                }
            }
        };
        assert_eq!(found.sweeps, log.len());
        // sums added in another order differ in their last bits, and near a flat minimum Newton
        // may then stop elsewhere: the two searches certify the same minimum to their tolerance
        // (1e-9 of R), each λ̂ inside the other's bracket
        let tol = 1e-9 * whole.risk.abs().max(unit);
        assert!((found.risk - whole.risk).abs() <= tol, "{} vs {}", found.risk, whole.risk);
        assert!((found.lower_bound - whole.lower_bound).abs() <= tol);
        let inside = |l: f64, b: (f64, f64)| b.0 <= l && l <= b.1;
        assert!(inside(found.lambda, whole.bracket) && inside(whole.lambda, found.bracket));
        // a log of other points is refused, never answered
        let mut other = log.clone();
        other[0].0[1] += 1e-3;
        let finish = |ts: &[f64], sums: &[f64]| sweep_of_sums(p, risk.c, ts, sums);
        let e = replay(&other, finish, |sweep| branch_and_bound(sweep, unit, 1e-2, s)).unwrap_err();
        assert_eq!(e.index, 0);
    }
}
