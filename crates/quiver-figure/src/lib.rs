//! What each method's picture shows, as data: a [`Figure`] of panels built from a result (its
//! JSON summary and typed arrays) and, where the picture needs them, the input tables the run
//! read — never by running anything again. Two renderers draw the same figure: `quiver-plot`
//! (plotters, SVG and PNG: `quiver run ... --plot FILE`) and the Python package's
//! `result.plot()` (matplotlib), so a picture is described once.
//!
//! The pictures, per family (docs/<family>.md shows them):
//! * selectors: the Benjamini–Hochberg step over the sorted conformal p-values
//!   (`conformal-selection`); the risk–coverage curve of the calibration judgments with λ̂
//!   (`selective-risk`); the calibration scores' distribution with the batch bound (`batch-pi`);
//! * shrinkage: raw against shrunk estimates with their intervals, and SURE against λ where the
//!   run swept a curve (`sure-normal`, `sure-binomial`);
//! * OPE: a forest plot of the estimators with their intervals (`ope`); every policy's estimate
//!   and the control variates' variance reduction (`ope-many`);
//! * critics: V per state (with the unpenalised V for the conservative critics, the return
//!   distribution's 10–90 % band for the quantile critic); a neural critic's training curve;
//! * quantile aggregation: coverage of each central interval against its nominal level, the
//!   weights per level, and the test rows' quantile fan;
//! * evaluators: the aggregate metrics' intervals, P(X > Y) and the performance profiles
//!   (`rl-aggregate`); SharpeRatio@k (`ope-assessment`).

mod aggregation;
mod critics;
mod evaluation;
mod ope;
mod selection;
mod shrinkage;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A picture: one or more panels, drawn one above the other.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    /// The panels, in order.
    pub panels: Vec<Panel>,
}

/// One chart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Panel {
    /// A short name to ask for the panel by (`iqm`, `bh`, `coverage`).
    pub key: String,
    /// What is shown.
    pub title: String,
    /// The horizontal axis, with its unit.
    pub x_label: String,
    /// The vertical axis, with its unit (empty for a forest plot's labels).
    pub y_label: String,
    /// The marks.
    pub kind: Kind,
}

/// A panel's marks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Kind {
    /// A forest plot: one row per label, a dot at the estimate and a bar over the interval.
    Intervals {
        /// The rows, top to bottom.
        rows: Vec<IntervalRow>,
        /// A vertical reference line (a value of no effect, a true value).
        reference: Option<Reference>,
    },
    /// Series on two numeric axes.
    Xy {
        /// The series; a legend when more than one has a name.
        series: Vec<Series>,
        /// Reference lines across the panel.
        references: Vec<Reference>,
        /// Whether x takes whole numbers only (ranks, k).
        x_integer: bool,
    },
}

/// A forest plot's row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntervalRow {
    /// The row's label.
    pub label: String,
    /// The point estimate.
    pub estimate: f64,
    /// The interval, when there is one.
    pub interval: Option<(f64, f64)>,
}

/// How a series is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Style {
    /// A line through the points.
    Line,
    /// Dots.
    Points,
    /// A line with a dot at each point.
    LinePoints,
    /// A step function (an empirical distribution).
    Step,
    /// A thin grey guide line (the diagonal of no shrinkage, of perfect calibration).
    Guide,
}

/// Points (x, y), drawn in a style, with an optional band or error bars.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// The legend entry (empty: none).
    pub name: String,
    /// How it is drawn.
    pub style: Style,
    /// Abscissae.
    pub x: Vec<f64>,
    /// Ordinates.
    pub y: Vec<f64>,
    /// A shaded band (lower, upper at each x).
    pub band: Option<(Vec<f64>, Vec<f64>)>,
    /// Vertical error bars (lower, upper at each x).
    pub bars: Option<(Vec<f64>, Vec<f64>)>,
}

impl Series {
    /// A series without band or bars.
    pub fn new(name: impl Into<String>, style: Style, x: Vec<f64>, y: Vec<f64>) -> Series {
        Series { name: name.into(), style, x, y, band: None, bars: None }
    }
}

/// Which axis a reference line crosses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Axis {
    /// A vertical line at x = value.
    X,
    /// A horizontal line at y = value.
    Y,
}

/// A labelled reference line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reference {
    /// The axis whose value it marks.
    pub axis: Axis,
    /// The value.
    pub value: f64,
    /// What it is.
    pub label: String,
}

impl Reference {
    /// A vertical line at x = `value`.
    pub fn x(value: f64, label: impl Into<String>) -> Reference {
        Reference { axis: Axis::X, value, label: label.into() }
    }
    /// A horizontal line at y = `value`.
    pub fn y(value: f64, label: impl Into<String>) -> Reference {
        Reference { axis: Axis::Y, value, label: label.into() }
    }
}

/// Why no figure was made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FigureError {
    /// The method has no picture.
    #[error("method '{0}' has no picture")]
    NoPicture(String),
    /// The result lacks what the picture shows.
    #[error("the result has no '{0}' to draw")]
    Missing(String),
    /// The picture needs an input table the caller did not give.
    #[error("the picture of {method} needs column '{column}' of table '{table}' (give the table: the command line reads it, in Python `result.plot({table}=...)`)")]
    NeedsInput {
        /// Method.
        method: String,
        /// Table.
        table: String,
        /// Column.
        column: String,
    },
}

/// A typed array of a result by name: its values (row-major) and columns (1 for a vector).
pub type ArrayOf<'a> = &'a dyn Fn(&str) -> Option<(Vec<f64>, usize)>;

/// A numeric column of an input table by `(table, column)`.
pub type InputOf<'a> = &'a dyn Fn(&str, &str) -> Option<Vec<f64>>;

/// What a figure is made from: the result and, for some pictures, the run's input tables.
pub struct Source<'a> {
    /// The result's JSON summary (fields without the typed arrays, or with them).
    pub summary: &'a Value,
    /// A typed array of the result by name: its values (row-major) and columns (1 for a vector).
    pub array: ArrayOf<'a>,
    /// A numeric column of an input table: `(table, column)`.
    pub input: InputOf<'a>,
}

impl Source<'_> {
    /// A vector of the result: a typed array, or a list of numbers in the summary.
    pub fn numbers(&self, name: &str) -> Option<Vec<f64>> {
        if let Some((v, _)) = (self.array)(name) {
            return Some(v);
        }
        numbers(&self.summary[name])
    }
    /// A matrix of the result (rows of equal length): a typed array, or a list of lists.
    pub fn matrix(&self, name: &str) -> Option<(Vec<f64>, usize)> {
        if let Some(m) = (self.array)(name) {
            return Some(m);
        }
        let rows = self.summary[name].as_array()?;
        let cols = rows.first()?.as_array()?.len();
        let mut out = Vec::with_capacity(rows.len() * cols);
        for r in rows {
            let r = numbers(r)?;
            if r.len() != cols {
                return None;
            }
            out.extend(r);
        }
        Some((out, cols))
    }
    /// A field of the summary that must be there.
    fn field(&self, key: &str) -> Result<&Value, FigureError> {
        match &self.summary[key] {
            Value::Null => Err(FigureError::Missing(key.into())),
            v => Ok(v),
        }
    }
}

/// A list of numbers (JSON numbers; `"inf"`/`"-inf"` strings as infinities), or `None`.
pub fn numbers(v: &Value) -> Option<Vec<f64>> {
    v.as_array()?.iter().map(number).collect()
}

/// A JSON number, or Quiver's `"inf"` / `"-inf"` strings.
pub fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) if s == "inf" => Some(f64::INFINITY),
        Value::String(s) if s == "-inf" => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

/// The methods with a picture.
pub const METHODS: &[&str] = &[
    "batch-pi",
    "conformal-selection",
    "critic-cfcql",
    "critic-chunked",
    "critic-cql",
    "critic-expectile",
    "critic-lowrank",
    "critic-lstd",
    "critic-net-dqc",
    "critic-net-dsac",
    "critic-net-flow",
    "critic-net-fqe",
    "critic-net-iql",
    "critic-quantile",
    "ope",
    "ope-assessment",
    "ope-many",
    "quantile-aggregation",
    "rl-aggregate",
    "selective-risk",
    "sure-binomial",
    "sure-normal",
];

/// The figure of `method`'s result.
pub fn figure(method: &str, src: &Source<'_>) -> Result<Figure, FigureError> {
    let panels = match method {
        "rl-aggregate" => evaluation::rl_aggregate(src)?,
        "ope-assessment" => evaluation::ope_assessment(src)?,
        "conformal-selection" => selection::conformal_selection(src)?,
        "selective-risk" => selection::selective_risk(src)?,
        "batch-pi" => selection::batch_pi(src)?,
        "sure-normal" => shrinkage::sure_normal(src)?,
        "sure-binomial" => shrinkage::sure_binomial(src)?,
        "ope" => ope::ope(src)?,
        "ope-many" => ope::ope_many(src)?,
        "quantile-aggregation" => aggregation::quantile_aggregation(src)?,
        m if m.starts_with("critic-") => critics::critic(m, src)?,
        other => return Err(FigureError::NoPicture(other.into())),
    };
    Ok(Figure { panels })
}

/// The level of a result's intervals as a percentage, from its `alpha` (default 0.05).
fn level(alpha: Option<f64>) -> String {
    format!("{:.0}%", 100.0 * (1.0 - alpha.unwrap_or(0.05)))
}

/// Most points a curve or a cloud of per-unit values draws (per series).
const MOST_POINTS: usize = 2000;

/// The index of the level nearest `t` (the first of equally near ones; `None` without levels).
fn nearest_level(levels: &[f64], t: f64) -> Option<usize> {
    levels.iter().enumerate().min_by(|a, b| (a.1 - t).abs().total_cmp(&(b.1 - t).abs())).map(|(i, _)| i)
}

/// At most `most` of `n` indices, evenly spaced (all when n ≤ most): a picture of a million
/// units draws a readable sample of them.
fn thin(n: usize, most: usize) -> Vec<usize> {
    if n <= most {
        return (0..n).collect();
    }
    (0..most).map(|i| i * (n - 1) / (most - 1).max(1)).collect()
}

#[cfg(test)]
mod tests;

/// A number for a legend, a title or an axis: at most four significant digits, trailing zeros
/// dropped, in scientific notation when very large or small.
pub fn short(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let e = x.abs().log10().floor();
    if (-3.0..5.0).contains(&e) {
        let decimals = (3.0 - e).max(0.0) as usize;
        let text = format!("{x:.decimals$}");
        if text.contains('.') {
            text.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            text
        }
    } else {
        format!("{x:.3e}")
    }
}
