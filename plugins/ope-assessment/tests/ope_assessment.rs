//! `ope-assessment` through the real plugin boundary: every statistic by hand on a small case,
//! SharpeRatio@k as the paper defines it, intervals' coverage, and bad input named.

use quiver_host::{RunContext, Table};
use quiver_testing as testing;
use serde_json::{json, Value};
use std::path::Path;

const METHOD: &str = "ope-assessment";

fn text(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// The behaviour policy (value 2) and four candidates of true values 1, 4, 2.5, 3.
fn truth() -> Table {
    Table::new("truth")
        .with_text("policy", &text(&["b", "p0", "p1", "p2", "p3"]))
        .with_f64("value", vec![2.0, 1.0, 4.0, 2.5, 3.0])
        .with_bool("behavior", vec![true, false, false, false, false])
}

fn run(params: Value, tables: &[Table]) -> Result<Value, String> {
    let host = testing::host();
    host.run(METHOD, params.as_object().unwrap(), tables, RunContext::default()).map_err(|e| e.to_string())
}

#[test]
fn statistics_by_hand() {
    // one estimator, ranking p1 (5), p3 (3.5), p0 (1), p2 (0)
    let est = Table::new("estimates")
        .with_text("estimator", &text(&["dr"; 4]))
        .with_text("policy", &text(&["p0", "p1", "p2", "p3"]))
        .with_f64("estimate", vec![1.0, 5.0, 0.0, 3.5])
        .with_f64("lower", vec![0.5, 3.0, -1.0, 3.2])
        .with_f64("upper", vec![1.5, 6.0, 1.0, 3.8]);
    let r = run(json!({"k": 2}), &[est, truth()]).unwrap();
    let d = &r["estimators"]["dr"];
    assert_eq!(d["ranking"], json!(["p1", "p3", "p0", "p2"]));
    // MSE: (0² + 1² + 2.5² + 0.5²)/4 = 7.5/4; relative to J(b)² = 4
    assert!((d["mse"].as_f64().unwrap() - 1.875).abs() < 1e-15);
    assert!((d["relative_mse"].as_f64().unwrap() - 1.875 / 4.0).abs() < 1e-15);
    // top-k true values 4 | 4, 3 | 4, 3, 1 | 4, 3, 1, 2.5
    let best: Vec<f64> = d["top_k"]["best"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert_eq!(best, vec![4.0, 4.0, 4.0, 4.0]);
    assert_eq!(d["top_k"]["std"][0], Value::Null);
    assert_eq!(d["top_k"]["sharpe_ratio"][0], Value::Null);
    // k = 2: std √0.5, SharpeRatio (4 − 2)/√0.5; k = 3: values 4, 3, 1, sd √(7/3)
    let s2 = d["top_k"]["sharpe_ratio"][1].as_f64().unwrap();
    assert!((s2 - 2.0 / 0.5f64.sqrt()).abs() < 1e-12, "{s2}");
    let s3 = d["top_k"]["sharpe_ratio"][2].as_f64().unwrap();
    assert!((s3 - 2.0 / (7.0f64 / 3.0).sqrt()).abs() < 1e-12, "{s3}");
    // regret@2: the best is in the top 2; nDCG@2: the top two are the true top two
    assert_eq!(d["regret_at_k"], 0.0);
    assert_eq!(d["ndcg_at_k"], 1.0);
    // threshold J(b) = 2: safe p1, p2, p3; p2 estimated 0 (missed) → type I 1/3; unsafe p0 estimated 1: fine
    assert!((d["type_i_error_rate"].as_f64().unwrap() - 1.0 / 3.0).abs() < 1e-15);
    assert_eq!(d["type_ii_error_rate"], 0.0);
    // intervals: p0 [0.5, 1.5] ∋ 1, p1 [3, 6] ∋ 4, p2 [−1, 1] ∌ 2.5, p3 [3.2, 3.8] ∌ 3
    assert_eq!(d["coverage"], 0.5);
    assert!((d["mean_width"].as_f64().unwrap() - (1.0 + 3.0 + 2.0 + 0.6) / 4.0).abs() < 1e-12);
    // Spearman: estimate ranks 2, 4, 1, 3 against true ranks 1, 4, 2, 3 → 0.8
    assert!((d["spearman"].as_f64().unwrap() - 0.8).abs() < 1e-12);
    assert_eq!(r["behavior_value"], 2.0);
}

/// An estimator that ranks the candidates in their true order has regret 0 and nDCG 1 at every
/// k, and its SharpeRatio@k is the top k's best over their spread; one that ranks them backwards
/// has the largest regret@1.
#[test]
fn perfect_and_reversed_rankings() {
    let values = [1.0, 4.0, 2.5, 3.0];
    let mut est = Vec::new();
    let mut names = Vec::new();
    let mut pol = Vec::new();
    for (e, sign) in [("perfect", 1.0), ("reversed", -1.0)] {
        for (j, v) in values.iter().enumerate() {
            names.push(e.to_string());
            pol.push(format!("p{j}"));
            est.push(sign * v);
        }
    }
    let t = Table::new("estimates").with_text("estimator", &names).with_text("policy", &pol).with_f64("estimate", est);
    for k in 1..=4 {
        let r = run(json!({"k": k}), &[t.clone(), truth()]).unwrap();
        assert_eq!(r["estimators"]["perfect"]["regret_at_k"], 0.0);
        assert_eq!(r["estimators"]["perfect"]["ndcg_at_k"], 1.0);
        assert_eq!(r["estimators"]["perfect"]["spearman"], 1.0);
        assert_eq!(r["estimators"]["reversed"]["spearman"], -1.0);
    }
    let r = run(json!({"k": 1}), &[t, truth()]).unwrap();
    assert_eq!(r["estimators"]["reversed"]["regret_at_k"], 3.0);
}

#[test]
fn bad_input_is_named() {
    let est = |policies: &[&str]| {
        Table::new("estimates")
            .with_text("estimator", &text(&vec!["dm"; policies.len()]))
            .with_text("policy", &text(policies))
            .with_f64("estimate", vec![1.0; policies.len()])
    };
    let e = run(json!({}), &[est(&["p0", "p1", "p2", "p9"]), truth()]).unwrap_err();
    assert!(e.contains("table 'estimates', column 'policy', row 4") && e.contains("'p9' is not a candidate"), "{e}");
    let e = run(json!({}), &[est(&["p0", "p1", "p2"]), truth()]).unwrap_err();
    assert!(e.contains("estimator 'dm' gives no estimate of policy 'p3'"), "{e}");
    let e = run(json!({}), &[est(&["p0", "p1", "p2", "p3", "p1"]), truth()]).unwrap_err();
    assert!(e.contains("row 5") && e.contains("again (first in row 2)"), "{e}");
    let no_behaviour = Table::new("truth")
        .with_text("policy", &text(&["p0", "p1"]))
        .with_f64("value", vec![1.0, 2.0])
        .with_bool("behavior", vec![false, false]);
    let e = run(json!({}), &[est(&["p0", "p1"]), no_behaviour]).unwrap_err();
    assert!(e.contains("no row has behavior = 1"), "{e}");
    let e = run(json!({}), &[est(&["b", "p0", "p1", "p2", "p3"]), truth()]).unwrap_err();
    assert!(e.contains("policy 'b' is not a candidate"), "{e}");
    let half = est(&["p0", "p1", "p2", "p3"]).with_f64("lower", vec![0.0; 4]);
    let e = run(json!({}), &[half, truth()]).unwrap_err();
    assert!(e.contains("give both 'lower' and 'upper'"), "{e}");
}

#[test]
fn conforms() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/ope-assessment");
    testing::conformance::check_method_with(&testing::own_plugin("ope_assessment"), METHOD, &example);
}
