//! The evaluators' pictures: `rl-aggregate` (Agarwal et al., NeurIPS 2021: the interval plot of
//! each aggregate metric, the probability of improvement, the performance profiles) and
//! `ope-assessment` (Kiyohara et al., ICLR 2024: SharpeRatio@k against k).

use crate::{level, number, numbers, FigureError, IntervalRow, Kind, Panel, Reference, Series, Source, Style};

fn metric_title(name: &str) -> String {
    match name {
        "iqm" => "Interquartile mean (IQM)".into(),
        "median" => "Median of task means".into(),
        "mean" => "Mean".into(),
        "optimality_gap" => "Optimality gap (lower is better)".into(),
        other => other.into(),
    }
}

fn row(label: String, v: &serde_json::Value) -> Option<IntervalRow> {
    Some(IntervalRow {
        label,
        estimate: number(&v["estimate"])?,
        interval: Some((number(&v["lower"])?, number(&v["upper"])?)),
    })
}

/// One panel per metric (estimate and interval per algorithm), then P(X > Y), then the run-score
/// profiles with their bands.
pub fn rl_aggregate(src: &Source<'_>) -> Result<Vec<Panel>, FigureError> {
    let r = src.summary;
    let metrics = src.field("metrics")?.as_object().ok_or(FigureError::Missing("metrics".into()))?;
    let algorithms: Vec<String> = src
        .field("algorithms")?
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect();
    let level = level(r["alpha"].as_f64());
    let mut panels: Vec<Panel> = metrics
        .iter()
        .map(|(name, per)| Panel {
            key: name.clone(),
            title: format!("{} with {level} stratified bootstrap intervals", metric_title(name)),
            x_label: "normalised score".into(),
            y_label: String::new(),
            kind: Kind::Intervals {
                rows: algorithms.iter().filter_map(|a| row(a.clone(), &per[a])).collect(),
                reference: None,
            },
        })
        .collect();
    if let Some(pairs) = r["improvement"].as_array().filter(|p| !p.is_empty()) {
        panels.push(Panel {
            key: "improvement".into(),
            title: format!("Probability of improvement with {level} intervals"),
            x_label: "P(X > Y): a random run of X beats one of Y on a random task".into(),
            y_label: String::new(),
            kind: Kind::Intervals {
                rows: pairs
                    .iter()
                    .filter_map(|p| row(format!("P({} > {})", p["x"].as_str()?, p["y"].as_str()?), p))
                    .collect(),
                reference: Some(Reference::x(0.5, "no difference")),
            },
        });
    }
    if let Some(p) = r.get("profile").filter(|p| p.is_object()) {
        let tau = numbers(&p["tau"]).ok_or(FigureError::Missing("profile.tau".into()))?;
        let series = algorithms
            .iter()
            .filter_map(|a| {
                let c = &p["run_score"][a];
                let mut s = Series::new(a.clone(), Style::Line, tau.clone(), numbers(&c["fraction"])?);
                s.band = Some((numbers(&c["lower"])?, numbers(&c["upper"])?));
                Some(s)
            })
            .collect();
        panels.push(Panel {
            key: "profile".into(),
            title: "Performance profiles: fraction of runs with score above tau".into(),
            x_label: "normalised score tau".into(),
            y_label: "fraction of runs above tau".into(),
            kind: Kind::Xy { series, references: Vec::new(), x_integer: false },
        });
    }
    Ok(panels)
}

/// SharpeRatio@k against k, one curve per estimator.
pub fn ope_assessment(src: &Source<'_>) -> Result<Vec<Panel>, FigureError> {
    let est = src.field("estimators")?.as_object().ok_or(FigureError::Missing("estimators".into()))?;
    let series = est
        .iter()
        .map(|(name, v)| {
            let (x, y): (Vec<f64>, Vec<f64>) = v["top_k"]["sharpe_ratio"]
                .as_array()
                .map(|a| a.iter().enumerate().filter_map(|(k, s)| Some(((k + 1) as f64, s.as_f64()?))).unzip())
                .unwrap_or_default();
            Series::new(name.clone(), Style::LinePoints, x, y)
        })
        .collect();
    Ok(vec![Panel {
        key: "sharpe_ratio".into(),
        title: "SharpeRatio@k: (best@k - J(behaviour)) / std@k of each estimator's top k".into(),
        x_label: "k: policies deployed for A/B tests".into(),
        y_label: "SharpeRatio@k (higher: better return for the risk)".into(),
        kind: Kind::Xy { series, references: Vec::new(), x_integer: true },
    }])
}
