//! The wide forecast table: `y`, one column `q_<model>_<tau>` per base model and level, and
//! optional features `x_<name>`. Columns are borrowed (no copy of the n × J × K forecasts is ever
//! made).

use crate::AggregationError;

/// The base models and levels read from the `q_` column names of the `fit` table.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Layout {
    /// Model names, in the order of their first column.
    pub models: Vec<String>,
    /// Levels τ_1 < … < τ_K, each in (0, 1).
    pub levels: Vec<f64>,
    /// Feature names (`x_<name>` without the prefix), in column order.
    pub features: Vec<String>,
    /// The column name of each (model j, level k), at index `j * K + k`.
    pub columns: Vec<String>,
}

impl Layout {
    /// Number of base models J.
    pub fn n_models(&self) -> usize {
        self.models.len()
    }
    /// Number of levels K.
    pub fn n_levels(&self) -> usize {
        self.levels.len()
    }
    /// The column index of model `j` at level `k`.
    pub fn col(&self, j: usize, k: usize) -> usize {
        j * self.levels.len() + k
    }

    /// The layout of table `role` from its column names. Every model must have every level;
    /// there must be at least two models (one model has nothing to aggregate — `granularity=none`
    /// scores it) unless `allow_single` is set, and every level must lie in (0, 1).
    pub fn from_names(role: &str, names: &[&str], allow_single: bool) -> Result<Layout, AggregationError> {
        let mut models: Vec<String> = Vec::new();
        let mut entries: Vec<(usize, f64, String)> = Vec::new();
        let mut features = Vec::new();
        // (model, level) → column: one lookup per column, whatever their number
        let mut seen: std::collections::HashMap<(usize, u64), &str> = std::collections::HashMap::new();
        let mut model_index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        for &name in names {
            if let Some(f) = name.strip_prefix("x_") {
                if f.is_empty() {
                    return Err(AggregationError::Input(format!(
                        "table '{role}', column '{name}': a feature column needs a name after 'x_'"
                    )));
                }
                features.push(f.to_string());
                continue;
            }
            let Some(rest) = name.strip_prefix("q_") else { continue };
            let bad = |why: &str| {
                AggregationError::Input(format!(
                    "table '{role}', column '{name}': {why} (forecast columns are named q_<model>_<level>, e.g. \
                     q_gbm_0.05)"
                ))
            };
            let (model, tau_text) = rest.rsplit_once('_').ok_or_else(|| bad("no '_' before the level"))?;
            if model.is_empty() {
                return Err(bad("the model name is empty"));
            }
            let tau: f64 = tau_text.parse().map_err(|_| bad(&format!("'{tau_text}' is not a number")))?;
            if !(tau > 0.0 && tau < 1.0) {
                return Err(bad(&format!("level {tau_text} is outside (0, 1)")));
            }
            let j = *model_index.entry(model.to_string()).or_insert_with(|| {
                models.push(model.to_string());
                models.len() - 1
            });
            if let Some(other) = seen.insert((j, tau.to_bits()), name) {
                return Err(bad(&format!("model '{model}' at level {tau} is also column '{other}'")));
            }
            entries.push((j, tau, name.to_string()));
        }
        if models.is_empty() {
            return Err(AggregationError::Input(format!(
                "table '{role}' has no forecast columns (q_<model>_<level>, e.g. q_gbm_0.05); columns: {}",
                names.join(", ")
            )));
        }
        let mut levels: Vec<f64> = entries.iter().map(|e| e.1).collect();
        levels.sort_by(f64::total_cmp);
        levels.dedup();
        let k = levels.len();
        let mut columns = vec![String::new(); models.len() * k];
        for (j, tau, name) in entries {
            let kk = levels.binary_search_by(|t| t.total_cmp(&tau)).expect("collected above");
            columns[j * k + kk] = name;
        }
        for (j, m) in models.iter().enumerate() {
            if let Some(kk) = (0..k).find(|&kk| columns[j * k + kk].is_empty()) {
                let have: Vec<&str> =
                    (0..k).filter_map(|q| Some(columns[j * k + q].as_str()).filter(|c| !c.is_empty())).collect();
                return Err(AggregationError::Input(format!(
                    "table '{role}': model '{m}' has no column for level {} (expected e.g. q_{m}_{}; it has {}); every \
                     model needs every level",
                    levels[kk],
                    levels[kk],
                    have.join(", ")
                )));
            }
        }
        if models.len() < 2 && !allow_single {
            return Err(AggregationError::Parameter(format!(
                "table '{role}' holds forecasts of one model ('{}'): aggregation needs at least two; \
                 granularity=none scores a single model's quantiles",
                models[0]
            )));
        }
        Ok(Layout { models, levels, features, columns })
    }

    /// Check that another table (`calibration`, `test`: `role`, with columns `columns`) has this
    /// layout's forecast columns (and the features when `need_features`); extra columns are
    /// ignored.
    pub fn check_same(&self, role: &str, columns: &[&str], need_features: bool) -> Result<(), AggregationError> {
        let names: std::collections::HashSet<&str> = columns.iter().copied().collect();
        for (ci, c) in self.columns.iter().enumerate() {
            if names.contains(c.as_str()) {
                continue;
            }
            let (j, k) = (ci / self.n_levels(), ci % self.n_levels());
            // the same model and level may be spelt differently there (0.1 against 0.10)
            let spelt = columns.iter().find(|name| {
                name.strip_prefix("q_")
                    .and_then(|r| r.rsplit_once('_'))
                    .is_some_and(|(m, t)| m == self.models[j] && t.parse::<f64>().ok() == Some(self.levels[k]))
            });
            return Err(AggregationError::Input(match spelt {
                Some(s) => format!("table '{role}': column '{s}' must be spelt '{c}' as in the fit table"),
                None => format!("table '{role}' has no column '{c}' (the fit table has it)"),
            }));
        }
        if need_features {
            for f in &self.features {
                if !names.contains(format!("x_{f}").as_str()) {
                    return Err(AggregationError::Input(format!(
                        "table '{role}' has no feature column 'x_{f}' (local weights use every feature of the fit table)"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// The forecasts of one table, borrowed column by column.
#[derive(Debug, Clone)]
pub struct Forecasts<'a> {
    /// Rows.
    pub n: usize,
    /// The observed outcome, when the table has `y`.
    pub y: Option<&'a [f64]>,
    /// Column `j * K + k`: model j's forecasts at level k.
    pub q: Vec<&'a [f64]>,
    /// Feature columns (the layout's order); empty unless asked for.
    pub x: Vec<&'a [f64]>,
}

impl<'a> Forecasts<'a> {
    /// The outcome, or an error naming what needs it.
    pub fn y_for(&self, role: &str, what: &str) -> Result<&'a [f64], AggregationError> {
        self.y.ok_or_else(|| {
            AggregationError::Input(format!("table '{role}' has no column 'y': {what} needs the outcomes"))
        })
    }
}
