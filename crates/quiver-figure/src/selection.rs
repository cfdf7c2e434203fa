//! The selectors' pictures: the Benjamini–Hochberg step over the sorted conformal p-values
//! (Jin & Candès 2023), the risk–coverage curve of a selective-risk threshold, and the
//! calibration scores' distribution with a batch prediction bound (Lee et al.).

use crate::{thin, FigureError, Kind, Panel, Reference, Series, Source, Style, MOST_POINTS};

fn needs(method: &str, table: &str, column: &str) -> FigureError {
    FigureError::NeedsInput { method: method.into(), table: table.into(), column: column.into() }
}

/// The empirical distribution function of `v` (sorted, at most [`MOST_POINTS`] steps).
fn ecdf(mut v: Vec<f64>) -> (Vec<f64>, Vec<f64>) {
    v.retain(|x| x.is_finite());
    v.sort_by(f64::total_cmp);
    let n = v.len();
    thin(n, MOST_POINTS).into_iter().map(|i| (v[i], (i + 1) as f64 / n as f64)).unzip()
}

/// The sorted p-values p_(1) ≤ … against their rank j, the BH line q·j/m and k*, over the ranks
/// that matter (up to 4 k* or 100, and all when fewer).
pub fn conformal_selection(src: &Source<'_>) -> Result<Vec<Panel>, FigureError> {
    let mut p = src.numbers("p_values").ok_or(FigureError::Missing("p_values".into()))?;
    p.sort_by(f64::total_cmp);
    let m = p.len();
    let q = src.summary["parameters"]["q"].as_f64().ok_or(FigureError::Missing("parameters.q".into()))?;
    let k_star = src.summary["k_star"].as_u64().unwrap_or(0) as usize;
    let shown = m.min((4 * k_star).max(100));
    let ranks: Vec<f64> = (1..=shown).map(|j| j as f64).collect();
    let mut series = vec![
        Series::new("sorted p-values", Style::Points, ranks.clone(), p[..shown].to_vec()),
        Series::new(
            format!("BH line q j / m (q = {q})"),
            Style::Line,
            vec![0.0, shown as f64],
            vec![0.0, q * shown as f64 / m as f64],
        ),
    ];
    if k_star > 0 {
        series.push(Series::new(
            format!("selected: the {k_star} smallest"),
            Style::Points,
            ranks[..k_star.min(shown)].to_vec(),
            p[..k_star.min(shown)].to_vec(),
        ));
    }
    Ok(vec![Panel {
        key: "bh".into(),
        title: format!("Benjamini-Hochberg at q = {q}: {k_star} of {m} test units selected"),
        x_label: "rank j of the p-value".into(),
        y_label: "conformal p-value".into(),
        kind: Kind::Xy { series, references: vec![Reference::x(k_star as f64, "k*")], x_integer: true },
    }])
}

/// With the calibration judgments (`score`, `error`): the error rate among the accepted against
/// the share accepted as the threshold rises, α and λ̂ marked; without: the test scores'
/// distribution with λ̂.
pub fn selective_risk(src: &Source<'_>) -> Result<Vec<Panel>, FigureError> {
    let lambda = crate::number(src.field("lambda_hat")?).ok_or(FigureError::Missing("lambda_hat".into()))?;
    let alpha = src.summary["parameters"]["alpha"].as_f64().unwrap_or(0.1);
    // the calibration judgments' scores: given, or the BPE score of a pairwise judge's two verdicts
    let score = (src.input)("calibration", "score").or_else(|| {
        let (f, r) = ((src.input)("calibration", "p_fwd")?, (src.input)("calibration", "p_rev")?);
        f.iter().zip(&r).map(|(a, b)| quiver_numerics::bpe_score(*a, *b).ok()).collect()
    });
    if let (Some(score), Some(error)) = (score, (src.input)("calibration", "error")) {
        let mut pairs: Vec<(f64, f64)> = score.into_iter().zip(error).collect();
        pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
        let n = pairs.len();
        let (mut coverage, mut risk) = (Vec::new(), Vec::new());
        let mut errors = 0.0;
        let mut at = (f64::NAN, f64::NAN);
        for (i, (s, e)) in pairs.iter().enumerate() {
            errors += e;
            // at the last judgment of each score
            if pairs.get(i + 1).is_none_or(|next| next.0 > *s) {
                coverage.push((i + 1) as f64 / n as f64);
                risk.push(errors / (i + 1) as f64);
                if *s <= lambda {
                    at = ((i + 1) as f64 / n as f64, errors / (i + 1) as f64);
                }
            }
        }
        let keep = thin(coverage.len(), MOST_POINTS);
        let series = vec![
            Series::new(
                "calibration judgments",
                Style::Line,
                keep.iter().map(|&i| coverage[i]).collect(),
                keep.iter().map(|&i| risk[i]).collect(),
            ),
            Series::new(format!("lambda_hat = {}", crate::short(lambda)), Style::Points, vec![at.0], vec![at.1]),
        ];
        return Ok(vec![Panel {
            key: "risk_coverage".into(),
            title: format!("Risk-coverage on the calibration judgments: accept scores <= lambda_hat (alpha = {alpha})"),
            x_label: "share of judgments accepted (coverage)".into(),
            y_label: "error rate among the accepted".into(),
            kind: Kind::Xy { series, references: vec![Reference::y(alpha, "alpha")], x_integer: false },
        }]);
    }
    let scores = src.numbers("scores").ok_or_else(|| needs("selective-risk", "calibration", "score"))?;
    let (x, y) = ecdf(scores);
    Ok(vec![Panel {
        key: "scores".into(),
        title: "Test judgments' uncertainty scores: those <= lambda_hat are accepted".into(),
        x_label: "uncertainty score".into(),
        y_label: "share of test judgments with a lower score".into(),
        kind: Kind::Xy {
            series: vec![Series::new("test judgments", Style::Step, x, y)],
            references: vec![Reference::x(lambda, format!("lambda_hat = {}", crate::short(lambda)))],
            x_integer: false,
        },
    }])
}

/// The calibration scores' distribution with the bound on the batch's scores (`pac`: on each
/// score; `mean`: on their mean).
pub fn batch_pi(src: &Source<'_>) -> Result<Vec<Panel>, FigureError> {
    let bound = crate::number(src.field("bound")?).ok_or(FigureError::Missing("bound".into()))?;
    let scores = (src.input)("calibration", "score").ok_or_else(|| needs("batch-pi", "calibration", "score"))?;
    let mode = src.summary["mode"].as_str().unwrap_or("pac");
    let m = src.summary["m"].as_u64().unwrap_or(0);
    let (x, y) = ecdf(scores);
    let what = if mode == "mean" { "bound on the batch's mean score" } else { "bound on the batch's scores" };
    Ok(vec![Panel {
        key: "scores".into(),
        title: format!("Calibration scores and the {what} (batch of {m}, mode {mode})"),
        x_label: "nonconformity score".into(),
        y_label: "share of calibration scores below".into(),
        kind: Kind::Xy {
            series: vec![Series::new("calibration scores", Style::Step, x, y)],
            references: vec![Reference::x(bound, format!("{what}: {}", crate::short(bound)))],
            x_integer: false,
        },
    }])
}
