//! Pictures of results, drawn from a method's JSON result (never by running anything again) with
//! `plotters` into SVG: what `quiver run METHOD ... --plot FILE.svg` writes.
//!
//! * `rl-aggregate`: each aggregate metric's estimate and interval per algorithm (the interval
//!   plot of Agarwal et al. 2021), the probability of improvement of each pair, and the
//!   performance profiles with their bands;
//! * `ope-assessment`: SharpeRatio@k against k for each estimator (Kiyohara et al. 2024).
//!
//! Other methods have no picture yet: [`PlotError::NoPicture`] says so.

use plotters::prelude::*;
use serde_json::Value;
use std::path::Path;

/// Why no picture was drawn.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// The method has no picture (yet).
    #[error("method '{0}' has no picture yet (pictures: rl-aggregate, ope-assessment)")]
    NoPicture(String),
    /// The file name's extension is not one this crate writes.
    #[error("{0}: write an .svg file (the only format drawn here)")]
    Format(String),
    /// The result lacks what the picture shows.
    #[error("the result has no '{0}' to draw")]
    Missing(&'static str),
    /// Drawing or writing failed (a missing folder, a read-only file).
    #[error("could not write the picture {path}: {reason}")]
    Write {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

/// What was drawn: panels and, per panel, the series (a legend entry each, or one for a single
/// series).
#[derive(Debug, Clone, PartialEq)]
pub struct Drawn {
    /// Panel titles, in order.
    pub panels: Vec<String>,
    /// Series per panel.
    pub series: Vec<usize>,
}

/// Width and height of a picture, in pixels: readable at 800 × 500 per panel.
const PANEL: (u32, u32) = (800, 500);

/// A categorical palette (colour-blind friendly: Okabe & Ito).
const COLOURS: [RGBColor; 8] = [
    RGBColor(0, 114, 178),
    RGBColor(230, 159, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
    RGBColor(213, 94, 0),
    RGBColor(240, 228, 66),
    RGBColor(0, 0, 0),
];

fn colour(i: usize) -> RGBColor {
    COLOURS[i % COLOURS.len()]
}

/// Draw the picture of `method`'s `result` into `path` (an `.svg` file).
pub fn plot(method: &str, result: &Value, path: &Path) -> Result<Drawn, PlotError> {
    let svg = path.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case("svg"));
    if !svg {
        return Err(PlotError::Format(path.display().to_string()));
    }
    let write_err = |e: String| PlotError::Write { path: path.display().to_string(), reason: e };
    // a missing folder would make plotters panic at the first write: checked first
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.is_dir() {
            return Err(write_err(format!("no folder {}", dir.display())));
        }
    }
    let drawn = match method {
        "rl-aggregate" => rl_aggregate(result, path),
        "ope-assessment" => ope_assessment(result, path),
        other => return Err(PlotError::NoPicture(other.to_string())),
    }?;
    // plotters reports a failed write only when the backend is dropped: read it back
    std::fs::metadata(path).map_err(|e| write_err(e.to_string()))?;
    Ok(drawn)
}

fn number(v: &Value) -> Option<f64> {
    v.as_f64()
}

/// Map a plotters error to [`PlotError::Write`].
fn drawing<E: std::fmt::Debug>(path: &Path) -> impl Fn(E) -> PlotError + '_ {
    move |e| PlotError::Write { path: path.display().to_string(), reason: format!("{e:?}") }
}

/// `rl-aggregate`: one panel per metric (estimate and interval per algorithm), then P(X > Y), then
/// the run-score profile.
fn rl_aggregate(r: &Value, path: &Path) -> Result<Drawn, PlotError> {
    let metrics = r["metrics"].as_object().ok_or(PlotError::Missing("metrics"))?;
    let algorithms: Vec<String> = r["algorithms"]
        .as_array()
        .ok_or(PlotError::Missing("algorithms"))?
        .iter()
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect();
    let improvement = r["improvement"].as_array().filter(|p| !p.is_empty());
    let profile = r.get("profile").filter(|p| p.is_object());
    let panels = metrics.len() + usize::from(improvement.is_some()) + usize::from(profile.is_some());
    let root = SVGBackend::new(path, (PANEL.0, PANEL.1 * panels as u32)).into_drawing_area();
    let err = drawing(path);
    root.fill(&WHITE).map_err(&err)?;
    let areas = root.split_evenly((panels, 1));
    let mut drawn = Drawn { panels: Vec::new(), series: Vec::new() };
    let level = 100.0 * (1.0 - r["alpha"].as_f64().unwrap_or(0.05));
    for ((name, per_alg), area) in metrics.iter().zip(&areas) {
        let rows: Vec<(String, f64, f64, f64)> = algorithms
            .iter()
            .filter_map(|a| {
                let v = &per_alg[a];
                Some((a.clone(), number(&v["estimate"])?, number(&v["lower"])?, number(&v["upper"])?))
            })
            .collect();
        let title = format!("{} with {level:.0}% stratified bootstrap intervals", metric_title(name));
        intervals(area, &title, "normalised score", &rows).map_err(&err)?;
        drawn.panels.push(title);
        drawn.series.push(1);
    }
    let mut next = metrics.len();
    if let Some(pairs) = improvement {
        let rows: Vec<(String, f64, f64, f64)> = pairs
            .iter()
            .filter_map(|p| {
                let label = format!("P({} > {})", p["x"].as_str()?, p["y"].as_str()?);
                Some((label, number(&p["estimate"])?, number(&p["lower"])?, number(&p["upper"])?))
            })
            .collect();
        let title = format!("Probability of improvement with {level:.0}% intervals");
        intervals(&areas[next], &title, "probability (0.5: no difference)", &rows).map_err(&err)?;
        drawn.panels.push(title);
        drawn.series.push(1);
        next += 1;
    }
    if let Some(p) = profile {
        let tau: Vec<f64> =
            p["tau"].as_array().ok_or(PlotError::Missing("profile.tau"))?.iter().filter_map(number).collect();
        let curves: Vec<Band> = algorithms
            .iter()
            .filter_map(|a| {
                let c = &p["run_score"][a];
                let list = |k: &str| -> Option<Vec<f64>> { Some(c[k].as_array()?.iter().filter_map(number).collect()) };
                Some(Band { name: a.clone(), value: list("fraction")?, lower: list("lower")?, upper: list("upper")? })
            })
            .collect();
        let title = "Performance profiles: fraction of runs with score > tau".to_string();
        profiles(&areas[next], &title, &tau, &curves).map_err(&err)?;
        drawn.panels.push(title);
        drawn.series.push(curves.len());
    }
    root.present().map_err(&err)?;
    Ok(drawn)
}

fn metric_title(name: &str) -> String {
    match name {
        "iqm" => "Interquartile mean (IQM)".into(),
        "median" => "Median of task means".into(),
        "mean" => "Mean".into(),
        "optimality_gap" => "Optimality gap (lower is better)".into(),
        other => other.into(),
    }
}

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

/// The legend of a chart of several series: readable type on a pale box.
fn legend<'a, 'b: 'a, X, Y>(
    chart: &mut ChartContext<'a, SVGBackend<'b>, Cartesian2d<X, Y>>,
) -> Result<(), DrawingAreaErrorKind<std::io::Error>>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    chart
        .configure_series_labels()
        .label_font(("sans-serif", 14))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
}

/// A curve with a band around it.
struct Band {
    name: String,
    value: Vec<f64>,
    lower: Vec<f64>,
    upper: Vec<f64>,
}

/// Horizontal intervals with a dot at each estimate, one row per label.
fn intervals(
    area: &Area<'_>,
    title: &str,
    x_label: &str,
    rows: &[(String, f64, f64, f64)],
) -> Result<(), DrawingAreaErrorKind<std::io::Error>> {
    let lo = rows.iter().map(|r| r.2).fold(f64::INFINITY, f64::min);
    let hi = rows.iter().map(|r| r.3).fold(f64::NEG_INFINITY, f64::max);
    let pad = ((hi - lo) * 0.08).max(1e-12 * hi.abs().max(1.0));
    let (lo, hi) = if lo.is_finite() && hi.is_finite() { (lo - pad, hi + pad) } else { (0.0, 1.0) };
    let labels: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(170)
        .build_cartesian_2d(lo..hi, (0..rows.len().saturating_sub(1)).into_segmented())?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 15))
        .x_desc(x_label)
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => labels.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .draw()?;
    chart.draw_series(rows.iter().enumerate().map(|(i, r)| {
        PathElement::new(
            vec![(r.2, SegmentValue::CenterOf(i)), (r.3, SegmentValue::CenterOf(i))],
            colour(i).stroke_width(4),
        )
    }))?;
    chart.draw_series(
        rows.iter().enumerate().map(|(i, r)| Circle::new((r.1, SegmentValue::CenterOf(i)), 6, colour(i).filled())),
    )?;
    Ok(())
}

/// Curves with shaded bands, one per series, and a legend when there is more than one.
fn profiles(
    area: &Area<'_>,
    title: &str,
    tau: &[f64],
    curves: &[Band],
) -> Result<(), DrawingAreaErrorKind<std::io::Error>> {
    let (lo, hi) = (tau.first().copied().unwrap_or(0.0), tau.last().copied().unwrap_or(1.0));
    let hi = if hi > lo { hi } else { lo + 1.0 };
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(60)
        .build_cartesian_2d(lo..hi, 0.0..1.0)?;
    chart
        .configure_mesh()
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 15))
        .x_desc("normalised score tau")
        .y_desc("fraction of runs above tau")
        .draw()?;
    for (i, c) in curves.iter().enumerate() {
        let upper = tau.iter().zip(&c.upper).map(|(t, v)| (*t, *v));
        let band: Vec<(f64, f64)> = upper.chain(tau.iter().zip(&c.lower).rev().map(|(t, v)| (*t, *v))).collect();
        chart.draw_series(std::iter::once(Polygon::new(band, colour(i).mix(0.2).filled())))?;
        let points = tau.iter().zip(&c.value).map(|(t, v)| (*t, *v));
        let line = chart.draw_series(LineSeries::new(points, colour(i).stroke_width(2)))?;
        if curves.len() > 1 {
            line.label(c.name.clone()).legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour(i)));
        }
    }
    if curves.len() > 1 {
        legend(&mut chart)?;
    }
    Ok(())
}

/// `ope-assessment`: SharpeRatio@k against k, one curve per estimator.
fn ope_assessment(r: &Value, path: &Path) -> Result<Drawn, PlotError> {
    let est = r["estimators"].as_object().ok_or(PlotError::Missing("estimators"))?;
    let curves: Vec<(String, Vec<(f64, f64)>)> = est
        .iter()
        .map(|(name, v)| {
            let pts = v["top_k"]["sharpe_ratio"]
                .as_array()
                .map(|a| a.iter().enumerate().filter_map(|(k, s)| Some(((k + 1) as f64, s.as_f64()?))).collect())
                .unwrap_or_default();
            (name.clone(), pts)
        })
        .collect();
    let kmax = r["candidates"].as_f64().unwrap_or(1.0).max(2.0);
    let ys = curves.iter().flat_map(|c| c.1.iter().map(|p| p.1));
    let (lo, hi) = ys.fold((0.0f64, f64::NEG_INFINITY), |(l, h), y| (l.min(y), h.max(y)));
    let hi = if hi > lo { hi * 1.08 } else { lo + 1.0 };
    let root = SVGBackend::new(path, PANEL).into_drawing_area();
    let err = drawing(path);
    root.fill(&WHITE).map_err(&err)?;
    let title = "SharpeRatio@k: (best@k - J(behaviour)) / std@k of each estimator's top k";
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(60)
        .build_cartesian_2d(1.0..kmax, lo..hi)
        .map_err(&err)?;
    chart
        .configure_mesh()
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 15))
        .x_desc("k: policies deployed for A/B tests")
        .x_label_formatter(&|k| format!("{k:.0}"))
        .y_desc("SharpeRatio@k (higher: better return for the risk)")
        .draw()
        .map_err(&err)?;
    for (i, (name, pts)) in curves.iter().enumerate() {
        let line = chart
            .draw_series(LineSeries::new(pts.iter().copied(), colour(i).stroke_width(2)).point_size(4))
            .map_err(&err)?;
        if curves.len() > 1 {
            line.label(name.clone()).legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour(i)));
        }
    }
    if curves.len() > 1 {
        legend(&mut chart).map_err(&err)?;
    }
    root.present().map_err(&err)?;
    Ok(Drawn { panels: vec![title.to_string()], series: vec![curves.len()] })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn aggregate_result() -> Value {
        let iv = |e: f64| json!({"estimate": e, "lower": e - 0.1, "upper": e + 0.1});
        json!({
            "algorithms": ["a", "b", "c"],
            "alpha": 0.05,
            "metrics": {
                "iqm": {"a": iv(0.5), "b": iv(0.7), "c": iv(0.6)},
                "mean": {"a": iv(0.4), "b": iv(0.8), "c": iv(0.65)},
            },
            "improvement": [
                {"x": "a", "y": "b", "estimate": 0.3, "lower": 0.2, "upper": 0.4},
                {"x": "a", "y": "c", "estimate": 0.4, "lower": 0.3, "upper": 0.5},
                {"x": "b", "y": "c", "estimate": 0.6, "lower": 0.5, "upper": 0.7},
            ],
            "profile": {
                "tau": [0.0, 0.25, 0.5, 0.75, 1.0],
                "run_score": {
                    "a": {"fraction": [1.0, 0.8, 0.5, 0.2, 0.0], "lower": [1.0, 0.7, 0.4, 0.1, 0.0], "upper": [1.0, 0.9, 0.6, 0.3, 0.0]},
                    "b": {"fraction": [1.0, 0.9, 0.7, 0.4, 0.0], "lower": [1.0, 0.8, 0.6, 0.3, 0.0], "upper": [1.0, 1.0, 0.8, 0.5, 0.1]},
                    "c": {"fraction": [1.0, 0.85, 0.6, 0.3, 0.0], "lower": [1.0, 0.8, 0.5, 0.2, 0.0], "upper": [1.0, 0.9, 0.7, 0.4, 0.0]},
                },
            },
        })
    }

    /// An SVG document: one root element, every element closed.
    fn well_formed(svg: &str) -> bool {
        let t = svg.trim();
        let opened = t.matches("<").count() - t.matches("</").count() - t.matches("<?").count();
        let closed = t.matches("</").count() + t.matches("/>").count();
        t.starts_with("<svg") && t.ends_with("</svg>") && opened == closed
    }

    #[test]
    fn the_aggregate_picture_has_a_mark_per_estimate_and_a_band_per_profile() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agg.svg");
        let drawn = plot("rl-aggregate", &aggregate_result(), &path).unwrap();
        assert_eq!(drawn.panels.len(), 4);
        assert_eq!(drawn.series, vec![1, 1, 1, 3]);
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(well_formed(&svg));
        // 2 metrics × 3 algorithms + 3 pairs: one dot each
        assert_eq!(svg.matches("<circle").count(), 9);
        // one shaded band per algorithm's profile
        assert_eq!(svg.matches("<polygon").count(), 3);
        assert!(svg.contains("Interquartile mean (IQM) with 95% stratified bootstrap intervals"));
        assert!(svg.contains("P(a &gt; b)") || svg.contains("P(a > b)"));
        // the algorithms named on the interval panels' axes (3 panels) and once more in the
        // profiles' legend
        assert_eq!(svg.lines().filter(|l| l.trim() == "b").count(), 3);
    }

    #[test]
    fn the_sharpe_ratio_picture_has_a_curve_per_estimator() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sr.svg");
        let r = json!({
            "candidates": 4,
            "estimators": {
                "dm": {"top_k": {"sharpe_ratio": [null, 2.0, 1.5, 1.0]}},
                "dr": {"top_k": {"sharpe_ratio": [null, 3.0, 2.5, 2.0]}},
            },
        });
        let drawn = plot("ope-assessment", &r, &path).unwrap();
        assert_eq!(drawn.series, vec![2]);
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(well_formed(&svg));
        // the curves are the thick lines (axes and ticks are drawn 1 px wide)
        let thick = svg.lines().filter(|l| l.contains("<polyline") && l.contains("stroke-width=\"2\"")).count();
        assert_eq!(thick, 2);
        assert_eq!(svg.lines().filter(|l| l.trim() == "dr").count(), 1, "a legend of the two estimators");
        // k = 2, 3, 4 for each estimator: the points
        assert_eq!(svg.matches("<circle").count(), 6);
    }

    #[test]
    fn bad_requests_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let r = aggregate_result();
        assert!(matches!(plot("rl-aggregate", &r, &dir.path().join("a.png")), Err(PlotError::Format(_))));
        let e = plot("rl-aggregate", &r, &dir.path().join("missing/a.svg")).unwrap_err();
        assert!(e.to_string().contains("no folder"), "{e}");
        assert!(matches!(plot("ope", &r, &dir.path().join("a.svg")), Err(PlotError::NoPicture(_))));
        assert!(matches!(plot("ope-assessment", &json!({}), &dir.path().join("a.svg")), Err(PlotError::Missing(_))));
    }
}
