//! `sure-normal` computed by parts, in rounds (docs/scale.md; the driver is
//! `quiver_shrinkage_kit::by_parts`): `xkb-location` and `xkb-grand-mean`, λ searched or fixed,
//! with the SURE curve. The first pass sums the units, Σ x_i (the grand mean) and Σ A_i (c, and
//! the scale s = mean of A); the sweeps' terms are [`crate::xkb_risk`]'s toward the broadcast μ,
//! and the estimates [`crate::xkb_estimates`]. `james-stein`, `xkb-estimated`, `xkb-monotone` and
//! `ci=robust-ebci` are not computed by parts yet: each is refused by name.

use crate::{result_json, shrinkage_result, xkb_estimates, xkb_risk, xkb_summary, Method, SureNormal};
use quiver_sdk::abi::{abi_stable::std_types::ROption, ErrorKind, PluginError};
use quiver_sdk::serde_json::json;
use quiver_sdk::{ShrinkageResult, Tables};
use quiver_shrinkage::QuadraticRisk;
use quiver_shrinkage_kit::by_parts::{scale, Plan, SurePasses, Whole};
use serde::{Deserialize, Serialize};

/// The first pass over a partition: units, Σ x_i, Σ A_i.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Moments {
    n: u64,
    sum_x: f64,
    sum_a: f64,
}

/// The data table's columns, checked as the one-call run checks them: normal numbers
/// (subnormals named by row), variances > 0.
fn columns<'t>(tables: &'t Tables<'_>) -> Result<(&'t [f64], &'t [f64]), PluginError> {
    let data = tables.get("data")?;
    let x = data.f64_normal("x")?;
    let a = data.f64_normal("a")?;
    data.check_each("a", a, |v| v > 0.0, "must be > 0 (a variance)")?;
    Ok((x, a))
}

impl SurePasses for SureNormal {
    type Moments = Moments;
    /// μ, the location shrunk toward (x̄, or the parameter `location`).
    type Target = f64;

    fn check_supported(&self) -> Result<(), PluginError> {
        let refuse = |what: String| Err(PluginError::new(ErrorKind::Unsupported, what));
        if !matches!(self.config.method, Method::XkbLocation | Method::XkbGrandMean) {
            return refuse(format!(
                "method '{}' is not computed by parts (xkb-location and xkb-grand-mean are): give the table once",
                quiver_sdk::Choice::name(self.config.method)
            ));
        }
        if self.config.ebci.intervals() {
            return refuse("ci=robust-ebci is not computed by parts yet: give the table once, or leave ci out".into());
        }
        Ok(())
    }

    fn moments(&self, tables: &Tables<'_>) -> Result<Moments, PluginError> {
        let (x, a) = columns(tables)?;
        Ok(Moments { n: x.len() as u64, sum_x: x.iter().sum(), sum_a: a.iter().sum() })
    }

    fn add(&self, a: Moments, b: Moments) -> Moments {
        Moments { n: a.n + b.n, sum_x: a.sum_x + b.sum_x, sum_a: a.sum_a + b.sum_a }
    }

    fn whole(&self, m: Moments) -> Result<Whole<f64>, PluginError> {
        let grand = self.config.method == Method::XkbGrandMean;
        let mu = if grand { m.sum_x / m.n as f64 } else { self.config.location };
        Ok(Whole { n: m.n, target: mu, c: m.sum_a, s: scale(m.sum_a, m.n) })
    }

    fn risk(&self, tables: &Tables<'_>, w: &Whole<f64>) -> Result<QuadraticRisk, PluginError> {
        let (x, a) = columns(tables)?;
        // the grand mean's degrees of freedom are the whole data's: 1 − 1/p over every unit
        Ok(xkb_risk(x, a, w.target, self.config.method == Method::XkbGrandMean, w.n as usize))
    }

    fn estimates(&self, tables: &Tables<'_>, w: &Whole<f64>, lambda: f64) -> Result<Vec<f64>, PluginError> {
        let (x, a) = columns(tables)?;
        Ok(xkb_estimates(x, a, lambda, w.target))
    }

    fn fixed_lambda(&self) -> Option<f64> {
        self.config.lambda
    }

    fn curve_points(&self) -> usize {
        self.config.curve
    }

    fn result(&self, w: &Whole<f64>, plan: &Plan, estimates: Vec<f64>) -> Result<ShrinkageResult, PluginError> {
        let mut summary = json!({});
        xkb_summary(&mut summary, plan.minimum.as_ref(), plan.curve.as_ref(), w.target);
        summary["lambda_hat"] = quiver_sdk::json_f64(plan.lambda);
        summary["sure"] = json!(plan.risk);
        let ctx = self.ctx.on_cpu("computed by parts: the sweeps run on the CPU");
        let json = result_json(&ctx, estimates.len(), &summary);
        Ok(shrinkage_result(&ctx, &json, estimates, plan.lambda, plan.risk, ROption::RNone))
    }
}
