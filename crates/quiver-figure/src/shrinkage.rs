//! The shrinkage pictures: each unit's raw estimate against its shrunk one (with the empirical
//! Bayes intervals when the run made them; Efron & Morris's picture of shrinkage toward the
//! location), and SURE against λ with λ̂ where the run swept a curve (Xie, Kou & Brown 2012).

use crate::{number, short, thin, FigureError, Kind, Panel, Reference, Series, Source, Style, MOST_POINTS};

/// `raw` (when the input was given; else the units in the order of their estimates) against the
/// estimates, with the intervals as bars, the diagonal and the location.
fn shrinkage_panel(
    src: &Source<'_>,
    raw: Option<Vec<f64>>,
    what: &str,
    location: Option<f64>,
) -> Result<Panel, FigureError> {
    let est = src.numbers("estimates").ok_or(FigureError::Missing("estimates".into()))?;
    let bars = match (src.numbers("lower"), src.numbers("upper")) {
        (Some(l), Some(u)) if l.len() == est.len() && u.len() == est.len() => Some((l, u)),
        _ => None,
    };
    let with_raw = raw.filter(|r| r.len() == est.len());
    let order: Vec<usize> = match &with_raw {
        Some(_) => (0..est.len()).collect(),
        None => {
            let mut o: Vec<usize> = (0..est.len()).collect();
            o.sort_by(|&a, &b| est[a].total_cmp(&est[b]));
            o
        }
    };
    let keep: Vec<usize> = thin(order.len(), MOST_POINTS).into_iter().map(|i| order[i]).collect();
    let x: Vec<f64> = match &with_raw {
        Some(r) => keep.iter().map(|&i| r[i]).collect(),
        None => (1..=keep.len()).map(|i| i as f64).collect(),
    };
    let mut units = Series::new("units", Style::Points, x.clone(), keep.iter().map(|&i| est[i]).collect());
    if let Some((l, u)) = &bars {
        units.bars = Some((keep.iter().map(|&i| l[i]).collect(), keep.iter().map(|&i| u[i]).collect()));
    }
    let mut series = vec![units];
    let mut references = Vec::new();
    if with_raw.is_some() {
        let (lo, hi) = x.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
        if lo.is_finite() && hi.is_finite() {
            series.push(Series::new("no shrinkage (y = x)", Style::Guide, vec![lo, hi], vec![lo, hi]));
        }
    }
    if let Some(loc) = location.filter(|l| l.is_finite()) {
        references.push(Reference::y(loc, "shrinkage target"));
    }
    let intervals = if bars.is_some() { " with their empirical Bayes intervals" } else { "" };
    Ok(Panel {
        key: "shrinkage".into(),
        title: match &with_raw {
            Some(_) => format!("Shrinkage: each unit's {what} and its shrunk estimate{intervals}"),
            None => format!("Shrunk estimates{intervals}, units in order"),
        },
        x_label: match &with_raw {
            Some(_) => format!("raw {what}"),
            None => "unit (ordered by its estimate)".into(),
        },
        y_label: "shrunk estimate".into(),
        kind: Kind::Xy { series, references, x_integer: with_raw.is_none() },
    })
}

/// SURE (or the binomial URE) against λ with λ̂, from the result's `curve`.
fn curve_panel(src: &Source<'_>, risk: &str) -> Option<Panel> {
    let (values, cols) = src.matrix("curve")?;
    if cols != 2 || values.is_empty() {
        return None;
    }
    let (x, y): (Vec<f64>, Vec<f64>) = values.chunks(2).map(|p| (p[0], p[1])).filter(|p| p.0.is_finite()).unzip();
    let lambda = number(&src.summary["lambda_hat"])?;
    let at = number(&src.summary[risk]);
    let mut series = vec![Series::new(risk.to_uppercase(), Style::LinePoints, x, y)];
    if let Some(at) = at.filter(|_| lambda.is_finite()) {
        series.push(Series::new(format!("lambda_hat = {}", short(lambda)), Style::Points, vec![lambda], vec![at]));
    }
    Some(Panel {
        key: "curve".into(),
        title: format!("{} against lambda: the tuned lambda_hat minimises it", risk.to_uppercase()),
        x_label: "lambda (shrinkage strength)".into(),
        y_label: format!("{} (estimated risk per unit)", risk.to_uppercase()),
        kind: Kind::Xy { series, references: Vec::new(), x_integer: false },
    })
}

/// `sure-normal`: x against the estimates; SURE against λ.
pub fn sure_normal(src: &Source<'_>) -> Result<Vec<Panel>, FigureError> {
    let location = number(&src.summary["location"]);
    let mut panels = vec![shrinkage_panel(src, (src.input)("data", "x"), "observation x", location)?];
    panels.extend(curve_panel(src, "sure"));
    Ok(panels)
}

/// `sure-binomial`: the raw proportions y/n (one sample) against the estimates; the URE against λ.
pub fn sure_binomial(src: &Source<'_>) -> Result<Vec<Panel>, FigureError> {
    let raw = match ((src.input)("data", "y"), (src.input)("data", "n")) {
        (Some(y), Some(n)) => Some(y.iter().zip(&n).map(|(y, n)| y / n).collect()),
        _ => None,
    };
    let target = src.summary["target"].as_str().and_then(|t| t.rsplit(' ').next()?.parse::<f64>().ok());
    let mut panels = vec![shrinkage_panel(src, raw, "proportion y/n", target)?];
    panels.extend(curve_panel(src, "ure"));
    Ok(panels)
}
