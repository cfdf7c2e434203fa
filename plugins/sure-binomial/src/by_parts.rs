//! `sure-binomial` computed by parts, in rounds (docs/scale.md; the driver is
//! `quiver_shrinkage_kit::by_parts`), one or two samples, λ searched or fixed, with the URE
//! curve. The first pass sums the units, the counts of the pooled mean (ΣY/Σn, or its two-sample
//! difference: sums of whole numbers, exact in any order), Σ V̂_i (the risk's constant) and Σ h_i
//! (the scale); the sweeps' terms are those of [`crate::Units::take_risk`] toward the broadcast
//! target. `ci=robust-ebci` is not computed by parts yet: it is refused by name.

use crate::{summary, SureBinomial, Units};
use quiver_sdk::abi::{
    abi_stable::std_types::{ROption, RVec},
    ErrorKind, PluginError,
};
use quiver_sdk::{ShrinkageResult, Tables};
use quiver_shrinkage::QuadraticRisk;
use quiver_shrinkage_kit::by_parts::{scale, Plan, SurePasses, Whole};
use serde::{Deserialize, Serialize};

/// The first pass over a partition.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Moments {
    n: u64,
    /// Σ y, Σ n (one sample; group 1 of two).
    y1: f64,
    n1: f64,
    /// Σ y2, Σ n2 (two samples).
    y2: f64,
    n2: f64,
    /// Σ V̂_i.
    var: f64,
    /// Σ h_i.
    h: f64,
    /// Partitions with and without a column m.
    with_m: u64,
    without_m: u64,
}

/// The shrinkage target after the first pass.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Target {
    /// The pooled mean (or difference).
    pooled: f64,
    /// Whether each unit's target is the column m (else the pooled mean).
    column: bool,
}

impl SureBinomial {
    /// A partition's units, shrunk toward the whole data's target.
    fn units(&self, tables: &Tables<'_>, w: &Whole<Target>) -> Result<Units, PluginError> {
        let mut u = Units::read_rows(&tables.get("data")?, self.config.two_sample)?;
        u.pooled = w.target.pooled;
        Ok(u)
    }
}

impl SurePasses for SureBinomial {
    type Moments = Moments;
    type Target = Target;

    fn check_supported(&self) -> Result<(), PluginError> {
        if self.config.intervals {
            return Err(PluginError::new(
                ErrorKind::Unsupported,
                "ci=robust-ebci is not computed by parts yet: give the table once, or leave ci out",
            ));
        }
        Ok(())
    }

    fn moments(&self, tables: &Tables<'_>) -> Result<Moments, PluginError> {
        let t = tables.get("data")?;
        let u = Units::read_rows(&t, self.config.two_sample)?;
        let sum = |c: &str| -> Result<f64, PluginError> { Ok(t.f64(c)?.iter().sum()) };
        let [y1, n1, y2, n2] = if self.config.two_sample {
            [sum("y1")?, sum("n1")?, sum("y2")?, sum("n2")?]
        } else {
            [sum("y")?, sum("n")?, 0.0, 0.0]
        };
        let m = t.has("m");
        Ok(Moments {
            n: u.raw.len() as u64,
            y1,
            n1,
            y2,
            n2,
            var: u.var.iter().sum(),
            h: u.h.iter().sum(),
            with_m: m as u64,
            without_m: !m as u64,
        })
    }

    fn add(&self, a: Moments, b: Moments) -> Moments {
        Moments {
            n: a.n + b.n,
            y1: a.y1 + b.y1,
            n1: a.n1 + b.n1,
            y2: a.y2 + b.y2,
            n2: a.n2 + b.n2,
            var: a.var + b.var,
            h: a.h + b.h,
            with_m: a.with_m + b.with_m,
            without_m: a.without_m + b.without_m,
        }
    }

    fn whole(&self, m: Moments) -> Result<Whole<Target>, PluginError> {
        if m.with_m > 0 && m.without_m > 0 {
            return Err(PluginError::input(format!(
                "table 'data': {} partition(s) have a column m and {} do not: give every partition the same columns",
                m.with_m, m.without_m
            )));
        }
        let pooled = if self.config.two_sample { m.y1 / m.n1 - m.y2 / m.n2 } else { m.y1 / m.n1 };
        Ok(Whole { n: m.n, target: Target { pooled, column: m.with_m > 0 }, c: m.var, s: scale(m.h, m.n) })
    }

    fn risk(&self, tables: &Tables<'_>, w: &Whole<Target>) -> Result<QuadraticRisk, PluginError> {
        Ok(self.units(tables, w)?.take_risk())
    }

    fn estimates(&self, tables: &Tables<'_>, w: &Whole<Target>, lambda: f64) -> Result<Vec<f64>, PluginError> {
        let mut u = self.units(tables, w)?;
        let h = std::mem::take(&mut u.h);
        Ok(u.shrink(&h, lambda))
    }

    fn fixed_lambda(&self) -> Option<f64> {
        self.config.lambda
    }

    fn curve_points(&self) -> usize {
        self.config.curve
    }

    fn result(&self, w: &Whole<Target>, plan: &Plan, estimates: Vec<f64>) -> Result<ShrinkageResult, PluginError> {
        let ctx = self.ctx.on_cpu("computed by parts: the sweeps run on the CPU");
        let pooled = (!w.target.column).then_some(w.target.pooled);
        let json = summary(&ctx, estimates.len(), pooled, plan);
        Ok(ShrinkageResult {
            device: ctx.device(),
            lambda_hat: ROption::RSome(plan.lambda),
            risk_estimate: ROption::RSome(plan.risk),
            estimates: RVec::from(estimates),
            intervals: ROption::RNone,
            json: json.to_string().into(),
        })
    }
}
