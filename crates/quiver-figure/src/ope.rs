//! The off-policy evaluation pictures: a forest plot of every estimator's estimate of J(π) with
//! its interval (`ope`), and for many target policies each policy's estimate with its interval
//! beside the control variates' variance reduction (`ope-many`).

use crate::{level, number, numbers, FigureError, IntervalRow, Kind, Panel, Reference, Series, Source, Style};

/// The estimators `ope` may report, in the order they are drawn, with their names.
const ESTIMATORS: &[(&str, &str)] = &[
    ("ipw", "IPW"),
    ("snipw", "SNIPW"),
    ("dm", "DM"),
    ("dr", "DR"),
    ("switch_dr", "Switch-DR"),
    ("dros", "DRos"),
    ("tis", "trajectory IS"),
    ("pdis", "per-decision IS"),
    ("sn_pdis", "self-normalised PDIS"),
    ("mis", "marginalised IS"),
];

/// One row per estimator the result holds (its interval when it has one).
pub fn ope(src: &Source<'_>) -> Result<Vec<Panel>, FigureError> {
    let r = src.summary;
    let mut rows: Vec<IntervalRow> = Vec::new();
    let mut seen = Vec::new();
    for (key, name) in ESTIMATORS {
        if let Some(e) = number(&r[*key]["estimate"]) {
            let interval = number(&r[*key]["lower"]).zip(number(&r[*key]["upper"]));
            rows.push(IntervalRow { label: (*name).into(), estimate: e, interval });
            seen.push(*key);
        }
    }
    // estimators a later release adds: any object with an estimate
    if let Some(obj) = r.as_object() {
        for (key, v) in obj {
            if !seen.contains(&key.as_str()) {
                if let Some(e) = number(&v["estimate"]) {
                    let interval = number(&v["lower"]).zip(number(&v["upper"]));
                    rows.push(IntervalRow { label: key.clone(), estimate: e, interval });
                }
            }
        }
    }
    if rows.is_empty() {
        return Err(FigureError::Missing("estimates".into()));
    }
    let ci = r["ci"].as_str().unwrap_or("none");
    let title = if ci == "none" {
        "Estimates of the target policy's value J(pi)".to_string()
    } else {
        format!("Estimates of J(pi) with {} intervals ({ci})", level(r["alpha"].as_f64()))
    };
    Ok(vec![Panel {
        key: "estimates".into(),
        title,
        x_label: "policy value J(pi)".into(),
        y_label: String::new(),
        kind: Kind::Intervals { rows, reference: None },
    }])
}

/// Each policy's estimate (the estimator the result's `values_are`) with its interval, and the
/// variance ratio (plain over control-variate) of IPW and DR per policy.
pub fn ope_many(src: &Source<'_>) -> Result<Vec<Panel>, FigureError> {
    let r = src.summary;
    let which = r["values_are"].as_str().unwrap_or("dr_cv");
    let v = &r[which];
    let est = numbers(&v["estimate"]).ok_or(FigureError::Missing(format!("{which}.estimate")))?;
    let (lo, hi) = (numbers(&v["lower"]), numbers(&v["upper"]));
    let names: Vec<String> = match r["policy_names"].as_array() {
        Some(n) => n.iter().filter_map(|s| s.as_str().map(str::to_string)).collect(),
        None => (1..=est.len()).map(|k| format!("policy {k}")).collect(),
    };
    let rows = est
        .iter()
        .enumerate()
        .map(|(k, &e)| IntervalRow {
            label: names.get(k).cloned().unwrap_or_else(|| format!("policy {}", k + 1)),
            estimate: e,
            interval: lo.as_ref().zip(hi.as_ref()).and_then(|(l, h)| Some((*l.get(k)?, *h.get(k)?))),
        })
        .collect();
    let alpha = r["interval"]["alpha"].as_f64();
    let mut panels = vec![Panel {
        key: "estimates".into(),
        title: format!(
            "{} estimate of each target policy's value with {} intervals",
            which.to_uppercase().replace('_', " + "),
            level(alpha)
        ),
        x_label: "policy value J(pi_k)".into(),
        y_label: String::new(),
        kind: Kind::Intervals { rows, reference: None },
    }];
    let series: Vec<Series> = [("ipw_cv", "IPW"), ("dr_cv", "DR")]
        .iter()
        .filter_map(|(key, name)| {
            let ratio = numbers(&r[*key]["variance_ratio"])?;
            Some(Series::new(*name, Style::Points, (1..=ratio.len()).map(|k| k as f64).collect(), ratio))
        })
        .collect();
    if !series.is_empty() {
        panels.push(Panel {
            key: "variance_ratio".into(),
            title: "Variance reduction by the control variates: plain variance over the control-variate one".into(),
            x_label: "target policy k".into(),
            y_label: "variance ratio (above 1: the controls help)".into(),
            kind: Kind::Xy { series, references: vec![Reference::y(1.0, "no reduction")], x_integer: true },
        });
    }
    Ok(panels)
}
