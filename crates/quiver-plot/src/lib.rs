//! Pictures of results: a [`quiver_figure::Figure`] — what a method's picture shows, built from
//! its result — drawn with `plotters` into SVG, one panel of 800 × 500 above the other, and
//! rendered to PNG by `resvg` (its text in a system font: DejaVu Sans, Liberation Sans, ...):
//! what `quiver run METHOD ... --plot FILE.svg` (or `.png`) writes. Forest plots (a row per label, a dot at the
//! estimate and a bar over the interval) and series on numeric axes (lines, dots, steps, shaded
//! bands, error bars), with labelled reference lines and a legend where a panel has more than
//! one named series.

use plotters::prelude::*;
use quiver_figure::{Axis, Figure, IntervalRow, Kind, Panel, Reference, Series, Style};
use std::path::Path;

/// Why no picture was drawn.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// The method has no picture, or the result or inputs lack what it shows.
    #[error(transparent)]
    Figure(#[from] quiver_figure::FigureError),
    /// The file name's extension is not one this crate writes.
    #[error("{0}: write an .svg or a .png file")]
    Format(String),
    /// A PNG's text needs a font, and the system has none.
    #[error("{0}: a PNG's text needs a TrueType font and none was found (apt install fonts-dejavu-core, or set QUIVER_FONT to a .ttf file; an .svg needs none)")]
    NoFont(String),
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

/// Width and height of a panel, in pixels: readable at 800 × 500.
pub const PANEL: (u32, u32) = (800, 500);

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

/// Reference lines: a mid grey.
const REFERENCE: RGBColor = RGBColor(110, 110, 110);

fn colour(i: usize) -> RGBColor {
    COLOURS[i % COLOURS.len()]
}

/// Draw the picture of `method`'s result (`source`) into `path` (an `.svg` or `.png` file).
pub fn plot(method: &str, source: &quiver_figure::Source<'_>, path: &Path) -> Result<Drawn, PlotError> {
    check_path(path)?;
    let figure = quiver_figure::figure(method, source)?;
    draw(&figure, path)
}

/// The formats written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Svg,
    Png,
}

/// The path's format and folder, checked before anything is drawn.
fn check_path(path: &Path) -> Result<Format, PlotError> {
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    let format = match ext.as_deref() {
        Some("svg") => Format::Svg,
        Some("png") => Format::Png,
        _ => return Err(PlotError::Format(path.display().to_string())),
    };
    // a missing folder is said before anything is drawn
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.is_dir() {
            return Err(PlotError::Write {
                path: path.display().to_string(),
                reason: format!("no folder {}", dir.display()),
            });
        }
    }
    Ok(format)
}

/// Draw `figure` into `path` (`.svg`, or `.png` of the same size), its panels one above the
/// other.
pub fn draw(figure: &Figure, path: &Path) -> Result<Drawn, PlotError> {
    let format = check_path(path)?;
    let write = |reason: String| PlotError::Write { path: path.display().to_string(), reason };
    let (svg, drawn) = svg_of(figure).map_err(write)?;
    match format {
        Format::Svg => std::fs::write(path, svg).map_err(|e| write(e.to_string()))?,
        Format::Png => {
            let png = png_of(&svg).map_err(|e| match e {
                PngError::NoFont => PlotError::NoFont(path.display().to_string()),
                PngError::Other(reason) => write(reason),
            })?;
            std::fs::write(path, png).map_err(|e| write(e.to_string()))?;
        }
    }
    Ok(drawn)
}

/// The SVG document of `figure`, and what it drew.
pub fn svg_of(figure: &Figure) -> Result<(String, Drawn), String> {
    let n = figure.panels.len().max(1);
    let mut svg = String::new();
    let mut drawn = Drawn { panels: Vec::new(), series: Vec::new() };
    {
        let root = SVGBackend::with_string(&mut svg, (PANEL.0, PANEL.1 * n as u32)).into_drawing_area();
        let err = |e: DrawingAreaErrorKind<std::io::Error>| format!("{e:?}");
        root.fill(&WHITE).map_err(err)?;
        let areas = root.split_evenly((n, 1));
        for (panel, area) in figure.panels.iter().zip(&areas) {
            let series = match &panel.kind {
                Kind::Intervals { rows, reference } => intervals(area, panel, rows, reference.as_ref()).map_err(err)?,
                Kind::Xy { series, references, x_integer } => {
                    xy(area, panel, series, references, *x_integer).map_err(err)?
                }
            };
            drawn.panels.push(panel.title.clone());
            drawn.series.push(series);
        }
        root.present().map_err(err)?;
    }
    Ok((svg, drawn))
}

/// Why a PNG was not rendered.
enum PngError {
    NoFont,
    Other(String),
}

/// Font families tried for a PNG's text (after `$QUIVER_FONT`): those Debian and others install.
const FONT_FAMILIES: [&str; 4] = ["DejaVu Sans", "Liberation Sans", "Noto Sans", "FreeSans"];

/// An SVG document rendered to PNG at its own size (resvg), its text in `$QUIVER_FONT` or a
/// system sans-serif font.
fn png_of(svg: &str) -> Result<Vec<u8>, PngError> {
    let mut options = resvg::usvg::Options::default();
    let chosen = std::env::var_os("QUIVER_FONT");
    let db = options.fontdb_mut();
    if let Some(font) = &chosen {
        db.load_font_file(font)
            .map_err(|e| PngError::Other(format!("QUIVER_FONT {}: {e}", Path::new(font).display())))?;
    }
    let own: Option<String> = db.faces().next().and_then(|f| f.families.first().map(|(name, _)| name.clone()));
    db.load_system_fonts();
    let families: Vec<String> = db.faces().flat_map(|f| f.families.iter().map(|(name, _)| name.clone())).collect();
    let family = own
        .or_else(|| FONT_FAMILIES.iter().find(|f| families.iter().any(|n| n == *f)).map(|f| f.to_string()))
        .or_else(|| families.first().cloned())
        .ok_or(PngError::NoFont)?;
    db.set_sans_serif_family(family);
    let tree = resvg::usvg::Tree::from_str(svg, &options)
        .map_err(|e| PngError::Other(format!("the SVG does not parse: {e}")))?;
    let size = tree.size().to_int_size();
    let mut pixmap = resvg::tiny_skia::Pixmap::new(size.width(), size.height())
        .ok_or_else(|| PngError::Other(format!("no {} x {} image", size.width(), size.height())))?;
    resvg::render(&tree, resvg::tiny_skia::Transform::default(), &mut pixmap.as_mut());
    pixmap.encode_png().map_err(|e| PngError::Other(e.to_string()))
}

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;
type DrawResult<T> = Result<T, DrawingAreaErrorKind<std::io::Error>>;

/// The legend of a chart of several series: readable type on a pale box, in the corner `at`.
fn legend<'a, 'b: 'a, X, Y>(
    chart: &mut ChartContext<'a, SVGBackend<'b>, Cartesian2d<X, Y>>,
    at: SeriesLabelPosition,
) -> DrawResult<()>
where
    X: Ranged,
    Y: Ranged,
{
    chart
        .configure_series_labels()
        .position(at)
        .label_font(("sans-serif", 14))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
}

/// The finite range of `values`, padded by 6 % (a single value gets a unit, or half itself,
/// either side), within the doubles: values near ±1.8e308 do not overflow it.
fn range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) =
        values.filter(|v| v.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    if !(lo.is_finite() && hi.is_finite()) {
        return (0.0, 1.0);
    }
    let pad = if hi > lo { (hi / 2.0 - lo / 2.0) * 0.12 } else { lo.abs().max(1.0) * 0.5 };
    let pad = pad.max(1e-9 * hi.abs().max(lo.abs())).max(f64::MIN_POSITIVE);
    // the axis's width must itself be a double (plotters' ticks loop forever on an infinite one):
    // values beyond ±4.5e307 sit on the panel's edge
    const EDGE: f64 = f64::MAX / 4.0;
    ((lo - pad).clamp(-EDGE, EDGE / 2.0), (hi + pad).clamp(-EDGE / 2.0, EDGE))
}

/// The corner of the plotting area with the fewest of the series' points: where the legend
/// hides the least.
fn emptiest_corner(series: &[Series], (x0, x1): (f64, f64), (y0, y1): (f64, f64)) -> SeriesLabelPosition {
    let mut count = [0usize; 4];
    let (xm, ym) = ((x0 + x1) / 2.0, (y0 + y1) / 2.0);
    for s in series {
        for (x, y) in s.x.iter().zip(&s.y) {
            count[usize::from(*x >= xm) + 2 * usize::from(*y < ym)] += 1;
        }
    }
    let corners = [
        SeriesLabelPosition::UpperLeft,
        SeriesLabelPosition::UpperRight,
        SeriesLabelPosition::LowerLeft,
        SeriesLabelPosition::LowerRight,
    ];
    // ties go to the upper right, where readers look for a legend
    let best = [1, 0, 3, 2].into_iter().min_by_key(|&i| count[i]).unwrap_or(1);
    corners[best].clone()
}

/// A forest plot: one row per label, the interval as a thick bar and the estimate as a dot.
fn intervals(area: &Area<'_>, panel: &Panel, rows: &[IntervalRow], reference: Option<&Reference>) -> DrawResult<usize> {
    let ends = rows.iter().flat_map(|r| [Some(r.estimate), r.interval.map(|i| i.0), r.interval.map(|i| i.1)]).flatten();
    let (lo, hi) = range(ends.chain(reference.map(|r| r.value)));
    let labels: Vec<String> = rows.iter().map(|r| r.label.clone()).collect();
    let widest = labels.iter().map(|l| l.chars().count()).max().unwrap_or(4) as u32;
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, ("sans-serif", 19))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size((widest * 8 + 16).clamp(60, 260))
        .build_cartesian_2d(lo..hi, (0..rows.len().saturating_sub(1)).into_segmented())?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 15))
        .x_desc(&panel.x_label)
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => labels.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .draw()?;
    if let Some(r) = reference {
        let top = SegmentValue::Exact(rows.len());
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(r.value, SegmentValue::Exact(0)), (r.value, top)],
                REFERENCE,
            )))?
            .label(r.label.clone())
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], REFERENCE));
    }
    chart.draw_series(rows.iter().enumerate().filter_map(|(i, r)| {
        let (a, b) = r.interval.filter(|(a, b)| a.is_finite() && b.is_finite())?;
        Some(PathElement::new(
            vec![(a, SegmentValue::CenterOf(i)), (b, SegmentValue::CenterOf(i))],
            colour(i).stroke_width(4),
        ))
    }))?;
    chart.draw_series(
        rows.iter()
            .enumerate()
            .filter(|(_, r)| r.estimate.is_finite())
            .map(|(i, r)| Circle::new((r.estimate, SegmentValue::CenterOf(i)), 6, colour(i).filled())),
    )?;
    if reference.is_some_and(|r| !r.label.is_empty()) {
        legend(&mut chart, SeriesLabelPosition::UpperRight)?;
    }
    Ok(1)
}

/// Series on numeric axes, with their bands and bars, and reference lines.
fn xy(
    area: &Area<'_>,
    panel: &Panel,
    series: &[Series],
    references: &[Reference],
    x_integer: bool,
) -> DrawResult<usize> {
    let xs = series.iter().flat_map(|s| s.x.iter().copied());
    let x_refs = references.iter().filter(|r| r.axis == Axis::X).map(|r| r.value);
    let (x0, x1) = range(xs.chain(x_refs));
    let ys = series.iter().flat_map(|s| {
        let band = s.band.iter().flat_map(|(l, u)| l.iter().chain(u));
        let bars = s.bars.iter().flat_map(|(l, u)| l.iter().chain(u));
        s.y.iter().chain(band).chain(bars).copied()
    });
    let y_refs = references.iter().filter(|r| r.axis == Axis::Y).map(|r| r.value);
    let (y0, y1) = range(ys.chain(y_refs));
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, ("sans-serif", 19))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d(x0..x1, y0..y1)?;
    chart
        .configure_mesh()
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 15))
        .x_desc(&panel.x_label)
        .y_desc(&panel.y_label)
        // whole-number axes label whole numbers only (a tick at 1.5 would read "2")
        .x_label_formatter(&|x| match x_integer {
            true if (x - x.round()).abs() > 1e-9 => String::new(),
            true => format!("{x:.0}"),
            false => quiver_figure::short(*x),
        })
        .y_label_formatter(&|y| quiver_figure::short(*y))
        .draw()?;
    let named = series.iter().filter(|s| !s.name.is_empty()).count()
        + references.iter().filter(|r| !r.label.is_empty()).count();
    for r in references {
        let line = match r.axis {
            Axis::X => vec![(r.value, y0), (r.value, y1)],
            Axis::Y => vec![(x0, r.value), (x1, r.value)],
        };
        let drawn = chart.draw_series(std::iter::once(PathElement::new(line, REFERENCE.stroke_width(1))))?;
        if !r.label.is_empty() && named > 1 {
            drawn.label(r.label.clone()).legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], REFERENCE));
        }
    }
    for (i, s) in series.iter().enumerate() {
        let c = colour(i);
        let pts: Vec<(f64, f64)> =
            s.x.iter().zip(&s.y).map(|(x, y)| (*x, *y)).filter(|p| p.0.is_finite() && p.1.is_finite()).collect();
        if let Some((l, u)) = &s.band {
            let upper = s.x.iter().zip(u).map(|(x, v)| (*x, *v));
            let band: Vec<(f64, f64)> = upper
                .chain(s.x.iter().zip(l).rev().map(|(x, v)| (*x, *v)))
                .filter(|p| p.0.is_finite() && p.1.is_finite())
                .collect();
            chart.draw_series(std::iter::once(Polygon::new(band, c.mix(0.2).filled())))?;
        }
        if let Some((l, u)) = &s.bars {
            chart.draw_series(
                s.x.iter()
                    .zip(l.iter().zip(u))
                    .filter(|(x, (a, b))| x.is_finite() && a.is_finite() && b.is_finite())
                    .map(|(x, (a, b))| PathElement::new(vec![(*x, *a), (*x, *b)], c.mix(0.6).stroke_width(2))),
            )?;
        }
        let drawn = match s.style {
            Style::Line => chart.draw_series(LineSeries::new(pts, c.stroke_width(2)))?,
            Style::Guide => chart.draw_series(LineSeries::new(pts, REFERENCE.stroke_width(1)))?,
            Style::LinePoints => chart.draw_series(LineSeries::new(pts, c.stroke_width(2)).point_size(4))?,
            Style::Points => {
                // a few marked points (λ̂, the selected) stand out; many are dots
                let r = if pts.len() <= 5 { 6 } else { 3 };
                chart.draw_series(pts.into_iter().map(|p| Circle::new(p, r, c.filled())))?
            }
            Style::Step => {
                let mut steps = Vec::with_capacity(2 * pts.len());
                for (k, p) in pts.iter().enumerate() {
                    if k > 0 {
                        steps.push((p.0, pts[k - 1].1));
                    }
                    steps.push(*p);
                }
                chart.draw_series(LineSeries::new(steps, c.stroke_width(2)))?
            }
        };
        if !s.name.is_empty() && named > 1 {
            let c = if s.style == Style::Guide { REFERENCE } else { c };
            drawn.label(s.name.clone()).legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c));
        }
    }
    if named > 1 {
        legend(&mut chart, emptiest_corner(series, (x0, x1), (y0, y1)))?;
    }
    Ok(series.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use quiver_figure::Source;
    use serde_json::{json, Value};

    fn no_array(_: &str) -> Option<(Vec<f64>, usize)> {
        None
    }

    fn no_input(_: &str, _: &str) -> Option<Vec<f64>> {
        None
    }

    fn source(v: &Value) -> Source<'_> {
        Source { summary: v, array: &no_array, input: &no_input }
    }

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

    /// An SVG document as an SVG renderer reads it (usvg): it parses, at the size drawn.
    fn well_formed(svg: &str) -> bool {
        resvg::usvg::Tree::from_str(svg, &resvg::usvg::Options::default()).is_ok_and(|t| t.size().width() == 800.0)
    }

    #[test]
    fn the_aggregate_picture_has_a_mark_per_estimate_and_a_band_per_profile() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agg.svg");
        let drawn = plot("rl-aggregate", &source(&aggregate_result()), &path).unwrap();
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
        let drawn = plot("ope-assessment", &source(&r), &path).unwrap();
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

    /// The BH picture of five p-values, two selected: five dots, two larger marks over the
    /// selected, one BH line, k* as a reference line, a legend of the four.
    #[test]
    fn the_bh_picture_of_five_p_values_has_five_points_and_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bh.svg");
        let r = json!({"parameters": {"q": 0.2}, "k_star": 2, "p_values": [0.5, 0.01, 0.9, 0.05, 0.3]});
        let drawn = plot("conformal-selection", &source(&r), &path).unwrap();
        assert_eq!(drawn.series, vec![3]);
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(well_formed(&svg));
        assert_eq!(svg.matches("<circle").count(), 5 + 2);
        // the BH line is the one thick line (axes, ticks, the reference and legend marks are thin)
        let thick = svg.lines().filter(|l| l.contains("<polyline") && l.contains("stroke-width=\"2\"")).count();
        assert_eq!(thick, 1);
        assert!(svg.contains("BH line q j / m (q = 0.2)") && svg.contains("k*"));
    }

    /// Points near the largest doubles, NaN and infinite values, and an empty series draw (no
    /// overflowing axis, no panic).
    #[test]
    fn extreme_values_draw() {
        use quiver_figure::{Figure, IntervalRow, Kind, Panel, Series, Style};
        let series = vec![
            Series::new("huge", Style::LinePoints, vec![-1.7e308, 0.0, 1.7e308], vec![1.7e308, f64::NAN, -1.7e308]),
            Series::new("none", Style::Points, vec![], vec![]),
        ];
        let rows = vec![
            IntervalRow { label: "a".into(), estimate: f64::INFINITY, interval: Some((f64::NEG_INFINITY, 1.0)) },
            IntervalRow { label: "b".into(), estimate: 1e-320, interval: None },
        ];
        let panel = |kind| Panel { key: "k".into(), title: "t".into(), x_label: "x".into(), y_label: "y".into(), kind };
        let xy = Figure { panels: vec![panel(Kind::Xy { series, references: Vec::new(), x_integer: false })] };
        let (svg, drawn) = svg_of(&xy).unwrap();
        assert!(well_formed(&svg) && drawn.series == vec![2]);
        let forest = Figure { panels: vec![panel(Kind::Intervals { rows, reference: None })] };
        let (svg, drawn) = svg_of(&forest).unwrap();
        assert!(well_formed(&svg) && drawn.series == vec![1]);
    }

    /// A PNG of the same picture: 800 × 500 a panel, with dark pixels (lines, dots, text).
    #[test]
    fn a_png_renders_at_the_panels_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agg.PNG");
        let drawn = plot("rl-aggregate", &source(&aggregate_result()), &path).unwrap();
        let png = std::fs::read(&path).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let (w, h) =
            (u32::from_be_bytes(png[16..20].try_into().unwrap()), u32::from_be_bytes(png[20..24].try_into().unwrap()));
        assert_eq!((w, h), (800, 500 * drawn.panels.len() as u32));
        let pixmap = resvg::tiny_skia::Pixmap::decode_png(&png).unwrap();
        let dark = pixmap.pixels().iter().filter(|p| p.red() < 100 && p.green() < 100 && p.blue() < 100).count();
        assert!(dark > 1000, "{dark} dark pixels");
    }

    #[test]
    fn bad_requests_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let r = aggregate_result();
        let r = source(&r);
        assert!(matches!(plot("rl-aggregate", &r, &dir.path().join("a.jpg")), Err(PlotError::Format(_))));
        let e = plot("rl-aggregate", &r, &dir.path().join("missing/a.svg")).unwrap_err();
        assert!(e.to_string().contains("no folder"), "{e}");
        let e = plot("nothing", &r, &dir.path().join("a.svg")).unwrap_err().to_string();
        assert!(e.contains("has no picture"), "{e}");
        let e = plot("ope-assessment", &source(&json!({})), &dir.path().join("a.svg")).unwrap_err().to_string();
        assert!(e.contains("the result has no 'estimators'"), "{e}");
    }
}
