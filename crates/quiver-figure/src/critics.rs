//! The critics' picture: the estimated value V(s) of each state — beside the unpenalised V for
//! the conservative critics (CQL, CFCQL: how much pessimism the penalty bought), with the
//! 10–90 % band of the return distribution for the quantile critic.

use crate::{numbers, FigureError, Kind, Panel, Series, Source, Style};

/// The states and values of a `{s, v}` table of the result (states as numbers).
fn table(src: &Source<'_>, key: &str) -> Option<(Vec<f64>, Vec<f64>)> {
    let t = &src.summary[key];
    let (s, v) = (numbers(&t["s"])?, numbers(&t["v"])?);
    (s.len() == v.len() && !s.is_empty()).then_some((s, v))
}

/// The queried values along the queries' state (its first coordinate for continuous states), in
/// the order of the state: a critic with continuous states has no table of V per state.
fn along_queries(method: &str, src: &Source<'_>) -> Result<Vec<Panel>, FigureError> {
    let values = src.numbers("values").ok_or(FigureError::Missing("v (values per state) or values".into()))?;
    let (column, s) = ["s", "s_0"]
        .iter()
        .find_map(|c| Some((*c, (src.input)("queries", c)?)))
        .filter(|(_, s)| s.len() == values.len())
        .ok_or_else(|| FigureError::NeedsInput {
            method: method.into(),
            table: "queries".into(),
            column: "s_0".into(),
        })?;
    let mut order: Vec<usize> = (0..s.len()).collect();
    order.sort_by(|&a, &b| s[a].total_cmp(&s[b]));
    let keep: Vec<usize> = crate::thin(order.len(), crate::MOST_POINTS).into_iter().map(|i| order[i]).collect();
    let series = vec![Series::new(
        "",
        Style::LinePoints,
        keep.iter().map(|&i| s[i]).collect(),
        keep.iter().map(|&i| values[i]).collect(),
    )];
    Ok(vec![Panel {
        key: "values".into(),
        title: format!("{method}: the estimated value at each queried state"),
        x_label: format!("state ({column} of the query)"),
        y_label: "value (discounted return)".into(),
        kind: Kind::Xy { series, references: Vec::new(), x_integer: false },
    }])
}

/// A neural critic's training: the minibatch loss along the steps (the mean over each window of
/// the `training.curve`) — where a flat tail says the training settled and a rising one that it did
/// not.
fn training(method: &str, src: &Source<'_>) -> Option<Panel> {
    let curve = &src.summary["training"]["curve"];
    let (step, loss) = (numbers(&curve["step"])?, numbers(&curve["loss"])?);
    (step.len() == loss.len() && !step.is_empty()).then(|| Panel {
        key: "training".into(),
        title: format!("{method}: the training loss along the steps"),
        x_label: "gradient step".into(),
        y_label: "minibatch loss (mean over the window)".into(),
        kind: Kind::Xy {
            series: vec![Series::new("", Style::Line, step, loss)],
            references: Vec::new(),
            x_integer: true,
        },
    })
}

/// V per state, and the unpenalised V or the quantile band where the critic has them; for
/// continuous states, the queried values along the state; for a neural critic, its training curve
/// first.
pub fn critic(method: &str, src: &Source<'_>) -> Result<Vec<Panel>, FigureError> {
    if let Some(curve) = training(method, src) {
        let mut panels = vec![curve];
        // the values along the states when the run had a queries table (without one, the values
        // are Q at the logged rows, which no single state axis orders)
        if (src.input)("queries", "s_0").is_some() {
            panels.extend(along_queries(method, src)?);
        }
        return Ok(panels);
    }
    let Some((s, v)) = table(src, "v") else { return along_queries(method, src) };
    let mut main = Series::new("V(s)", Style::LinePoints, s.clone(), v);
    let mut series = Vec::new();
    let mut title = format!("{method}: the estimated value of each state");
    if let (Some(levels), Some(q)) = (numbers(&src.summary["levels"]), src.summary["state_quantiles"]["q"].as_array()) {
        if let (Some(lo), Some(hi)) = (crate::nearest_level(&levels, 0.1), crate::nearest_level(&levels, 0.9)) {
            let rows: Option<Vec<Vec<f64>>> = q.iter().map(numbers).collect();
            if let Some(rows) = rows.filter(|r| r.len() == s.len()) {
                main.band = Some((rows.iter().map(|r| r[lo]).collect(), rows.iter().map(|r| r[hi]).collect()));
                title = format!(
                    "{method}: the value of each state with the return distribution's {:.0}-{:.0}% quantiles",
                    100.0 * levels[lo],
                    100.0 * levels[hi]
                );
            }
        }
    }
    series.push(main);
    if let Some((su, vu)) = table(src, "v_unpenalized") {
        series[0].name = "V(s), penalised".into();
        series.push(Series::new("V(s) without the penalty", Style::LinePoints, su, vu));
        title = format!("{method}: the conservative value of each state beside the unpenalised one");
    }
    Ok(vec![Panel {
        key: "values".into(),
        title,
        x_label: "state s".into(),
        y_label: "value V(s) (discounted return)".into(),
        kind: Kind::Xy { series, references: Vec::new(), x_integer: true },
    }])
}
