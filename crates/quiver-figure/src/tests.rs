//! Each method's figure from a small result whose marks are known.

use super::*;
use serde_json::json;

fn source<'a>(summary: &'a Value, array: ArrayOf<'a>, input: InputOf<'a>) -> Source<'a> {
    Source { summary, array, input }
}

fn no_array(_: &str) -> Option<(Vec<f64>, usize)> {
    None
}

fn no_input(_: &str, _: &str) -> Option<Vec<f64>> {
    None
}

fn xy(p: &Panel) -> (&Vec<Series>, &Vec<Reference>) {
    match &p.kind {
        Kind::Xy { series, references, .. } => (series, references),
        Kind::Intervals { .. } => panic!("{}: not an xy panel", p.key),
    }
}

fn rows(p: &Panel) -> &Vec<IntervalRow> {
    match &p.kind {
        Kind::Intervals { rows, .. } => rows,
        Kind::Xy { .. } => panic!("{}: not a forest plot", p.key),
    }
}

#[test]
fn the_bh_plot_of_five_p_values_has_five_points_and_one_line() {
    let r = json!({"parameters": {"q": 0.2}, "k_star": 2, "p_values": [0.5, 0.01, 0.9, 0.05, 0.3]});
    let f = figure("conformal-selection", &source(&r, &no_array, &no_input)).unwrap();
    let (series, refs) = xy(&f.panels[0]);
    assert_eq!(series[0].y, vec![0.01, 0.05, 0.3, 0.5, 0.9], "sorted p-values");
    assert_eq!(series[0].x, vec![1.0, 2.0, 3.0, 4.0, 5.0]);
    // the BH line q j / m from (0, 0) to (5, q)
    assert_eq!((series[1].style, series[1].y.clone()), (Style::Line, vec![0.0, 0.2]));
    assert_eq!(series[2].y, vec![0.01, 0.05], "the selected");
    assert_eq!(refs[0].value, 2.0);
}

#[test]
fn the_risk_coverage_curve_steps_at_each_score() {
    let r = json!({"lambda_hat": 0.5, "parameters": {"alpha": 0.25}});
    let input = |t: &str, c: &str| match (t, c) {
        ("calibration", "score") => Some(vec![0.1, 0.2, 0.2, 0.9]),
        ("calibration", "error") => Some(vec![0.0, 1.0, 0.0, 1.0]),
        _ => None,
    };
    let f = figure("selective-risk", &source(&r, &no_array, &input)).unwrap();
    let (series, refs) = xy(&f.panels[0]);
    // three distinct scores: coverage 1/4, 3/4, 1 with risk 0, 1/3, 1/2
    assert_eq!(series[0].x, vec![0.25, 0.75, 1.0]);
    assert_eq!(series[0].y, vec![0.0, 1.0 / 3.0, 0.5]);
    assert_eq!((series[1].x[0], series[1].y[0]), (0.75, 1.0 / 3.0), "lambda_hat = 0.5 accepts the first three");
    assert_eq!(refs[0].value, 0.25);
    // without the calibration table: the test scores' distribution
    let r = json!({"lambda_hat": 0.5, "scores": [0.3, 0.1, 0.7]});
    let f = figure("selective-risk", &source(&r, &no_array, &no_input)).unwrap();
    let (series, _) = xy(&f.panels[0]);
    assert_eq!((series[0].x.clone(), series[0].y.clone()), (vec![0.1, 0.3, 0.7], vec![1.0 / 3.0, 2.0 / 3.0, 1.0]));
}

#[test]
fn batch_pi_needs_its_calibration_scores() {
    let r = json!({"bound": 0.8, "mode": "pac", "m": 10});
    let e = figure("batch-pi", &source(&r, &no_array, &no_input)).unwrap_err();
    assert!(e.to_string().contains("needs column 'score' of table 'calibration'"), "{e}");
    let input = |t: &str, c: &str| (t == "calibration" && c == "score").then(|| vec![0.5, 0.1, 0.9, 0.3]);
    let f = figure("batch-pi", &source(&r, &no_array, &input)).unwrap();
    let (series, refs) = xy(&f.panels[0]);
    assert_eq!(series[0].x, vec![0.1, 0.3, 0.5, 0.9]);
    assert_eq!(refs[0].value, 0.8);
}

#[test]
fn shrinkage_draws_raw_against_shrunk_with_intervals() {
    let r = json!({"location": 0.25, "lambda_hat": 1.0, "sure": 0.5,
                   "curve": [[0.0, 0.7], [1.0, 0.5], [2.0, 0.6]]});
    let array = |n: &str| match n {
        "estimates" => Some((vec![0.3, 0.2, 0.25], 1)),
        "lower" => Some((vec![0.2, 0.1, 0.15], 1)),
        "upper" => Some((vec![0.4, 0.3, 0.35], 1)),
        _ => None,
    };
    let input = |t: &str, c: &str| (t == "data" && c == "x").then(|| vec![0.5, 0.0, 0.25]);
    let f = figure("sure-normal", &source(&r, &array, &input)).unwrap();
    assert_eq!(f.panels.len(), 2);
    let (series, refs) = xy(&f.panels[0]);
    assert_eq!((series[0].x.clone(), series[0].y.clone()), (vec![0.5, 0.0, 0.25], vec![0.3, 0.2, 0.25]));
    assert_eq!(series[0].bars.as_ref().unwrap().0, vec![0.2, 0.1, 0.15]);
    assert_eq!(series[1].x, vec![0.0, 0.5], "the diagonal over the raw range");
    assert_eq!(refs[0].value, 0.25);
    let (curve, _) = xy(&f.panels[1]);
    assert_eq!((curve[0].x.len(), curve[1].x[0], curve[1].y[0]), (3, 1.0, 0.5));
    // without the data: the units in the order of their estimates
    let f = figure("sure-normal", &source(&r, &array, &no_input)).unwrap();
    let (series, _) = xy(&f.panels[0]);
    assert_eq!((series[0].x.clone(), series[0].y.clone()), (vec![1.0, 2.0, 3.0], vec![0.2, 0.25, 0.3]));
    // binomial: y/n
    let r = json!({"target": "pooled 0.25", "estimates": [0.3, 0.2]});
    let input = |t: &str, c: &str| match (t, c) {
        ("data", "y") => Some(vec![1.0, 0.0]),
        ("data", "n") => Some(vec![2.0, 4.0]),
        _ => None,
    };
    let f = figure("sure-binomial", &source(&r, &no_array, &input)).unwrap();
    let (series, refs) = xy(&f.panels[0]);
    assert_eq!((series[0].x.clone(), refs[0].value), (vec![0.5, 0.0], 0.25));
}

#[test]
fn ope_draws_a_row_per_estimator_and_ope_many_a_row_per_policy() {
    let iv = |e: f64| json!({"estimate": e, "lower": e - 1.0, "upper": e + 1.0});
    let r = json!({"ci": "t", "alpha": 0.1, "ipw": iv(1.0), "dr": iv(2.0), "ess": 40.0});
    let f = figure("ope", &source(&r, &no_array, &no_input)).unwrap();
    let forest = rows(&f.panels[0]);
    assert_eq!(forest.iter().map(|r| r.label.as_str()).collect::<Vec<_>>(), ["IPW", "DR"]);
    assert_eq!(forest[1].interval, Some((1.0, 3.0)));
    assert!(f.panels[0].title.contains("90%"));
    let r = json!({"values_are": "dr_cv", "interval": {"alpha": 0.05},
                   "dr_cv": {"estimate": [1.0, 2.0, 3.0], "lower": [0.5, 1.5, 2.5], "upper": [1.5, 2.5, 3.5], "variance_ratio": [1.1, 1.0, 2.0]},
                   "ipw_cv": {"estimate": [1.0, 2.0, 3.0], "variance_ratio": [3.0, 1.5, 1.2]}});
    let f = figure("ope-many", &source(&r, &no_array, &no_input)).unwrap();
    assert_eq!(rows(&f.panels[0]).len(), 3);
    let (series, refs) = xy(&f.panels[1]);
    assert_eq!((series.len(), series[1].y.clone(), refs[0].value), (2, vec![1.1, 1.0, 2.0], 1.0));
}

#[test]
fn critics_draw_v_per_state_and_the_unpenalised_v() {
    let r =
        json!({"v": {"s": [0, 1, 2], "v": [1.0, 2.0, 3.0]}, "v_unpenalized": {"s": [0, 1, 2], "v": [1.5, 2.5, 3.5]}});
    let f = figure("critic-cql", &source(&r, &no_array, &no_input)).unwrap();
    let (series, _) = xy(&f.panels[0]);
    assert_eq!((series.len(), series[1].y.clone()), (2, vec![1.5, 2.5, 3.5]));
    let r = json!({"levels": [0.1, 0.5, 0.9], "v": {"s": [0, 1], "v": [1.0, 2.0]},
                   "state_quantiles": {"s": [0, 1], "q": [[0.0, 1.0, 2.0], [1.0, 2.0, 3.0]]}});
    let f = figure("critic-quantile", &source(&r, &no_array, &no_input)).unwrap();
    let (series, _) = xy(&f.panels[0]);
    assert_eq!(series[0].band, Some((vec![0.0, 1.0], vec![2.0, 3.0])));
    assert!(matches!(figure("critic-lstd", &source(&json!({}), &no_array, &no_input)), Err(FigureError::Missing(_))));
    // continuous states: the queried values along the queries' first coordinate, in its order
    let array = |n: &str| (n == "values").then(|| (vec![3.0, 1.0, 2.0], 1));
    let e = figure("critic-lstd", &source(&json!({}), &array, &no_input)).unwrap_err();
    assert!(e.to_string().contains("column 's_0' of table 'queries'"), "{e}");
    let input = |t: &str, c: &str| (t == "queries" && c == "s_0").then(|| vec![0.9, 0.1, 0.5]);
    let f = figure("critic-lstd", &source(&json!({}), &array, &input)).unwrap();
    let (series, _) = xy(&f.panels[0]);
    assert_eq!((series[0].x.clone(), series[0].y.clone()), (vec![0.1, 0.5, 0.9], vec![1.0, 2.0, 3.0]));
}

#[test]
fn aggregation_draws_coverage_weights_and_the_fan() {
    let cov = |c: f64| json!({"intervals": [{"alpha": 0.2, "coverage": c}, {"alpha": 0.5, "coverage": c - 0.3}]});
    let r = json!({"levels": [0.25, 0.5, 0.75], "fit_metrics": {"models": {"a": cov(0.7), "b": cov(0.9)}, "aggregate": cov(0.8)},
                   "weights": {"a": [0.5, 0.4, 0.3], "b": [0.5, 0.6, 0.7]}});
    let array = |n: &str| (n == "test_quantiles").then(|| (vec![0.0, 1.0, 2.0, 1.0, 2.0, 3.0], 3));
    let f = figure("quantile-aggregation", &source(&r, &array, &no_input)).unwrap();
    assert_eq!(f.panels.iter().map(|p| p.key.as_str()).collect::<Vec<_>>(), ["coverage", "weights", "fan"]);
    let (series, _) = xy(&f.panels[0]);
    // a, b, the aggregate and the diagonal
    assert_eq!(series.len(), 4);
    assert_eq!((series[2].x.clone(), series[2].y.clone()), (vec![0.8, 0.5], vec![0.8, 0.5]));
    let (fan, _) = xy(&f.panels[2]);
    assert_eq!((fan[0].y.clone(), fan[0].band.clone()), (vec![1.0, 2.0], Some((vec![0.0, 1.0], vec![2.0, 3.0]))));
}

#[test]
fn evaluators_keep_their_pictures_and_other_methods_have_none() {
    let r = json!({"candidates": 3, "estimators": {"dm": {"top_k": {"sharpe_ratio": [null, 2.0, 1.0]}}}});
    let f = figure("ope-assessment", &source(&r, &no_array, &no_input)).unwrap();
    let (series, _) = xy(&f.panels[0]);
    assert_eq!((series[0].x.clone(), series[0].y.clone()), (vec![2.0, 3.0], vec![2.0, 1.0]));
    assert!(matches!(figure("nothing", &source(&r, &no_array, &no_input)), Err(FigureError::NoPicture(_))));
    // a figure travels as JSON (to the Python package) and back
    let text = serde_json::to_string(&f).unwrap();
    assert_eq!(serde_json::from_str::<Figure>(&text).unwrap(), f);
}
