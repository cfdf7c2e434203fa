//! The quantile aggregation pictures (Fakoor et al., JMLR 2023): the coverage of each central
//! interval against its nominal level, for every model and the aggregate (the calibration plot);
//! the aggregation weights per level; the test rows' quantile fan.

use crate::{number, numbers, thin, FigureError, IntervalRow, Kind, Panel, Series, Source, Style};

/// Test rows a fan draws.
const FAN_ROWS: usize = 200;

/// `(1 − α, coverage)` of each central interval of a metrics entry.
fn coverage(m: &serde_json::Value) -> Option<(Vec<f64>, Vec<f64>)> {
    let pts: Vec<(f64, f64)> = m["intervals"]
        .as_array()?
        .iter()
        .filter_map(|iv| Some((1.0 - iv["alpha"].as_f64()?, number(&iv["coverage"])?)))
        .collect();
    (!pts.is_empty()).then(|| pts.into_iter().unzip())
}

/// Coverage by level, weights per level, and the fan.
pub fn quantile_aggregation(src: &Source<'_>) -> Result<Vec<Panel>, FigureError> {
    let r = src.summary;
    // the metrics of the rows with outcomes: test, else fit (granularity=none: its first table)
    let (metrics, rows) = if r["test_metrics"].is_object() {
        (&r["test_metrics"], "test")
    } else if r["fit_metrics"].is_object() {
        (&r["fit_metrics"], "fit")
    } else {
        let m = &r["metrics"];
        match ["fit", "calibration", "test"].iter().find(|k| m[**k].is_object()) {
            Some(k) => (&m[*k], *k),
            None => return Err(FigureError::Missing("metrics".into())),
        }
    };
    let mut series = Vec::new();
    let mut lo_hi = (1.0f64, 0.0f64);
    if let Some(models) = metrics["models"].as_object() {
        for (name, m) in models {
            if let Some((x, y)) = coverage(m) {
                lo_hi = x.iter().fold(lo_hi, |(a, b), v| (a.min(*v), b.max(*v)));
                series.push(Series::new(name.clone(), Style::LinePoints, x, y));
            }
        }
    }
    if let Some((x, y)) = coverage(&metrics["aggregate"]) {
        series.push(Series::new("aggregate", Style::LinePoints, x, y));
    }
    if series.is_empty() {
        return Err(FigureError::Missing("central intervals (a pair of levels tau and 1 - tau)".into()));
    }
    series.push(Series::new(
        "nominal",
        Style::Guide,
        vec![lo_hi.0.min(lo_hi.1), lo_hi.1],
        vec![lo_hi.0.min(lo_hi.1), lo_hi.1],
    ));
    let mut panels = vec![Panel {
        key: "coverage".into(),
        title: format!("Coverage of each central interval on the {rows} rows against its nominal level"),
        x_label: "nominal coverage 1 - alpha".into(),
        y_label: "share of outcomes inside the interval".into(),
        kind: Kind::Xy { series, references: Vec::new(), x_integer: false },
    }];
    let levels = numbers(&r["levels"]).unwrap_or_default();
    if let Some(w) = r["weights"].as_object().filter(|w| !w.contains_key("theta")) {
        let per_level: Vec<Series> = w
            .iter()
            .filter_map(|(m, v)| {
                Some(Series::new(
                    m.clone(),
                    Style::LinePoints,
                    levels.clone(),
                    numbers(v).filter(|v| v.len() == levels.len())?,
                ))
            })
            .collect();
        if !per_level.is_empty() {
            panels.push(Panel {
                key: "weights".into(),
                title: "Aggregation weights of each model per quantile level".into(),
                x_label: "quantile level tau".into(),
                y_label: "weight (each level's weights sum to 1)".into(),
                kind: Kind::Xy { series: per_level, references: Vec::new(), x_integer: false },
            });
        } else {
            let rows: Vec<IntervalRow> = w
                .iter()
                .filter_map(|(m, v)| Some(IntervalRow { label: m.clone(), estimate: v.as_f64()?, interval: None }))
                .collect();
            if !rows.is_empty() {
                panels.push(Panel {
                    key: "weights".into(),
                    title: "Aggregation weight of each model".into(),
                    x_label: "weight (the weights sum to 1)".into(),
                    y_label: String::new(),
                    kind: Kind::Intervals { rows, reference: None },
                });
            }
        }
    }
    if let Some((q, k)) = src.matrix("test_quantiles").filter(|(_, k)| *k >= 2 && *k == levels.len()) {
        let n = q.len() / k;
        let mid = crate::nearest_level(&levels, 0.5).unwrap_or(0);
        // the rows ordered by their middle forecast: the fan widens and narrows along it
        let mut order: Vec<usize> = thin(n, FAN_ROWS);
        order.sort_by(|&a, &b| q[a * k + mid].total_cmp(&q[b * k + mid]));
        let keep = order;
        let x: Vec<f64> = (1..=keep.len()).map(|i| i as f64).collect();
        let at = |j: usize| -> Vec<f64> { keep.iter().map(|&i| q[i * k + j]).collect() };
        let mut fan = Series::new(format!("level {}", levels[mid]), Style::Line, x.clone(), at(mid));
        fan.band = Some((at(0), at(k - 1)));
        let mut series = vec![fan];
        if let Some(y) = (src.input)("test", "y").filter(|y| y.len() == n) {
            series.push(Series::new("outcome", Style::Points, x, keep.iter().map(|&i| y[i]).collect()));
        }
        panels.push(Panel {
            key: "fan".into(),
            title: format!(
                "Aggregated quantiles of the test rows: level {} with the {}-{} band",
                levels[mid],
                levels[0],
                levels[k - 1]
            ),
            x_label: "test rows, ordered by their middle forecast".into(),
            y_label: "forecast (the outcome's unit)".into(),
            kind: Kind::Xy { series, references: Vec::new(), x_integer: true },
        });
    }
    Ok(panels)
}
