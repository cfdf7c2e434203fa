//! Parameters, validated against the manifest.

use quiver_abi::{Manifest, ParamKind, PluginError};
use serde_json::{Map, Value};

/// Validated parameters: every manifest parameter present (default filled in), no unknown names,
/// each of its declared type.
#[derive(Clone, Debug)]
pub struct Params {
    method: String,
    values: Map<String, Value>,
}

fn kind_ok(kind: ParamKind, v: &Value, choices: &[&str]) -> bool {
    match kind {
        ParamKind::Float => {
            v.is_number() || matches!(v.as_str(), Some("inf" | "-inf" | "+inf" | "infinity" | "-infinity"))
        }
        ParamKind::Int => v.is_i64() || v.as_f64().is_some_and(|x| x.fract() == 0.0 && x.abs() < 9e15),
        ParamKind::Bool => v.is_boolean(),
        ParamKind::Choice => v.as_str().is_some_and(|s| choices.contains(&s)),
        ParamKind::Text => v.is_string(),
    }
}

impl Params {
    /// Parse `json` (an object, or empty text for "no parameters") against `manifest`.
    pub fn from_json(manifest: &Manifest, json: &str) -> Result<Params, PluginError> {
        let method = manifest.name.to_string();
        let given: Map<String, Value> = if json.trim().is_empty() {
            Map::new()
        } else {
            serde_json::from_str(json)
                .map_err(|e| PluginError::param(format!("parameters are not a JSON object: {e}")))?
        };
        let known: Vec<&str> = manifest.params.iter().map(|p| p.name.as_str()).collect();
        for key in given.keys() {
            if !known.contains(&key.as_str()) {
                return Err(PluginError::param(format!("unknown parameter '{key}' (known: {})", known.join(", "))));
            }
        }
        let mut values = Map::new();
        for p in manifest.params.iter() {
            let name = p.name.as_str();
            let v = match given.get(name) {
                Some(v) => v.clone(),
                None => serde_json::from_str(p.default_json.as_str())
                    .map_err(|e| PluginError::param(format!("bad default for '{name}' in manifest: {e}")))?,
            };
            let choices: Vec<&str> = p.choices.iter().map(|c| c.as_str()).collect();
            if !v.is_null() && !kind_ok(p.kind, &v, &choices) {
                let want = match p.kind {
                    ParamKind::Float => "a number".to_string(),
                    ParamKind::Int => "an integer".to_string(),
                    ParamKind::Bool => "true or false".to_string(),
                    ParamKind::Choice => format!("one of {}", choices.join(" | ")),
                    ParamKind::Text => "text".to_string(),
                };
                return Err(PluginError::param(format!("parameter '{name}' = {v} must be {want}")));
            }
            values.insert(name.to_string(), v);
        }
        Ok(Params { method, values })
    }

    /// The method these parameters belong to.
    pub fn method(&self) -> &str {
        &self.method
    }

    fn raw(&self, name: &str) -> Result<&Value, PluginError> {
        self.values.get(name).ok_or_else(|| PluginError::param(format!("no parameter '{name}' in the manifest")))
    }

    /// A float parameter, `None` when unset.
    pub fn f64_opt(&self, name: &str) -> Result<Option<f64>, PluginError> {
        let v = self.raw(name)?;
        Ok(match v {
            Value::Null => None,
            Value::String(s) if s.starts_with('-') => Some(f64::NEG_INFINITY),
            Value::String(_) => Some(f64::INFINITY),
            v => v.as_f64(),
        })
    }

    /// A float parameter that must be set.
    pub fn f64(&self, name: &str) -> Result<f64, PluginError> {
        self.f64_opt(name)?.ok_or_else(|| PluginError::param(format!("parameter '{name}' must be set")))
    }

    /// A float parameter that must lie in the open interval (0, 1).
    pub fn level(&self, name: &str) -> Result<f64, PluginError> {
        let x = self.f64(name)?;
        if x > 0.0 && x < 1.0 {
            Ok(x)
        } else {
            Err(PluginError::param(format!("parameter '{name}' = {x} must be in (0, 1)")))
        }
    }

    /// An integer parameter, `None` when unset.
    pub fn i64_opt(&self, name: &str) -> Result<Option<i64>, PluginError> {
        Ok(self.raw(name)?.as_f64().map(|x| x as i64))
    }

    /// An integer parameter that must be set.
    pub fn i64(&self, name: &str) -> Result<i64, PluginError> {
        self.i64_opt(name)?.ok_or_else(|| PluginError::param(format!("parameter '{name}' must be set")))
    }

    /// A boolean parameter.
    pub fn bool(&self, name: &str) -> Result<bool, PluginError> {
        Ok(self.raw(name)?.as_bool().unwrap_or(false))
    }

    /// A choice or text parameter.
    pub fn str(&self, name: &str) -> Result<&str, PluginError> {
        self.raw(name)?.as_str().ok_or_else(|| PluginError::param(format!("parameter '{name}' must be set")))
    }

    /// All values, for echoing the parameters used into a result's JSON.
    pub fn to_json(&self) -> Value {
        Value::Object(self.values.clone())
    }
}
