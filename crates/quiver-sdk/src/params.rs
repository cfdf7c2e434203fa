//! Parameters, validated against the manifest in one place.
//!
//! [`Params::from_json`] is the only check a plugin needs: unknown names are refused, defaults are
//! filled in, and every value is checked against its declared type, range and choices. Every
//! message names the parameter, the value given and what is allowed, e.g.
//! `parameter 'q' = 2 must be a number in (0, 1)`. The getters then read typed values; a
//! plugin's own configuration type (its "valid parameters", as in linfa) is built from them and
//! only checks constraints between parameters.

use quiver_abi::{ErrorKind, Manifest, ParamKind, ParamSpec, PluginError};

use serde_json::{Map, Value};

pub use quiver_numerics::Choice;

/// Validated parameters: every manifest parameter present (default filled in), no unknown names,
/// each of its declared type, inside its declared range, one of its declared choices.
#[derive(Clone, Debug)]
pub struct Params {
    method: String,
    values: Map<String, Value>,
}

/// A JSON value as a float: numbers, and the strings `inf`, `+inf`, `infinity`, `-inf`,
/// `-infinity` (JSON has no infinities).
pub fn json_float(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "inf" | "+inf" | "infinity" | "+infinity" => Some(f64::INFINITY),
            "-inf" | "-infinity" => Some(f64::NEG_INFINITY),
            _ => None,
        },
        _ => None,
    }
}

/// A JSON value as an integer: integers, and floats with no fractional part below 2^53.
fn json_int(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_f64().filter(|x| x.fract() == 0.0 && x.abs() < 9.007e15).map(|x| x as i64))
}

/// Check one value against its spec; `Ok` holds the normalised value (floats as numbers, or the
/// strings `"inf"` / `"-inf"`).
pub fn check_value(spec: &ParamSpec, v: &Value) -> Result<Value, String> {
    let ok = match spec.kind {
        ParamKind::Float => json_float(v).filter(|&x| spec.in_range(x)).map(crate::json_f64),
        ParamKind::Int => json_int(v).filter(|&x| spec.in_range(x as f64)).map(Value::from),
        ParamKind::Bool => v.as_bool().map(Value::Bool),
        ParamKind::Choice => v.as_str().filter(|s| spec.choices.iter().any(|c| c.as_str() == *s)).map(Value::from),
        ParamKind::Text => v.as_str().map(Value::from),
    };
    ok.ok_or_else(|| format!("parameter '{}' = {v} must be {}", spec.name, spec.requirement()))
}

impl Params {
    /// Parse `json` (an object, or empty text for "no parameters") against `manifest`: the one
    /// place parameters are checked.
    pub fn from_json(manifest: &Manifest, json: &str) -> Result<Params, PluginError> {
        let method = manifest.name.to_string();
        let given: Map<String, Value> = if json.trim().is_empty() {
            Map::new()
        } else {
            serde_json::from_str(json)
                .map_err(|e| PluginError::param(format!("parameters are not a JSON object: {e}")))?
        };
        let known: Vec<&str> = manifest.params.iter().map(|p| p.name.as_str()).collect();
        if let Some(key) = given.keys().find(|k| !known.contains(&k.as_str())) {
            let known = if known.is_empty() { "none".to_string() } else { known.join(", ") };
            return Err(PluginError::param(format!("unknown parameter '{key}' (known: {known})")));
        }
        let mut values = Map::new();
        for spec in manifest.params.iter() {
            let name = spec.name.as_str();
            let default: Value = serde_json::from_str(spec.default_json.as_str()).map_err(|e| {
                PluginError::new(ErrorKind::Internal, format!("manifest: bad default for '{name}': {e}"))
            })?;
            let v = match given.get(name) {
                Some(Value::Null) if !default.is_null() => {
                    return Err(PluginError::param(format!(
                        "parameter '{name}' = null must be {} (default {default})",
                        spec.requirement()
                    )))
                }
                Some(v) => v.clone(),
                None => default,
            };
            let v = if v.is_null() { v } else { check_value(spec, &v).map_err(PluginError::param)? };
            values.insert(name.to_string(), v);
        }
        Ok(Params { method, values })
    }

    /// The method these parameters belong to.
    pub fn method(&self) -> &str {
        &self.method
    }

    fn raw(&self, name: &str) -> Result<&Value, PluginError> {
        self.values.get(name).ok_or_else(|| {
            PluginError::new(
                ErrorKind::Internal,
                format!("plugin '{}' reads parameter '{name}', which its manifest does not declare", self.method),
            )
        })
    }

    fn unset(&self, name: &str) -> PluginError {
        PluginError::param(format!("parameter '{name}' must be set"))
    }

    fn mistyped(&self, name: &str, want: &str) -> PluginError {
        PluginError::new(
            ErrorKind::Internal,
            format!("plugin '{}' reads parameter '{name}' as {want}, which its manifest does not declare", self.method),
        )
    }

    /// A float parameter, `None` when unset (its default is `null` and none was given).
    pub fn f64_opt(&self, name: &str) -> Result<Option<f64>, PluginError> {
        match self.raw(name)? {
            Value::Null => Ok(None),
            v => json_float(v).map(Some).ok_or_else(|| self.mistyped(name, "a float")),
        }
    }

    /// A float parameter that must be set.
    pub fn f64(&self, name: &str) -> Result<f64, PluginError> {
        self.f64_opt(name)?.ok_or_else(|| self.unset(name))
    }

    /// An integer parameter, `None` when unset.
    pub fn i64_opt(&self, name: &str) -> Result<Option<i64>, PluginError> {
        match self.raw(name)? {
            Value::Null => Ok(None),
            v => v.as_i64().map(Some).ok_or_else(|| self.mistyped(name, "an integer")),
        }
    }

    /// An integer parameter that must be set.
    pub fn i64(&self, name: &str) -> Result<i64, PluginError> {
        self.i64_opt(name)?.ok_or_else(|| self.unset(name))
    }

    /// A non-negative integer parameter (its manifest range must start at 0 or above).
    pub fn usize(&self, name: &str) -> Result<usize, PluginError> {
        let x = self.i64(name)?;
        usize::try_from(x).map_err(|_| self.mistyped(name, "a non-negative integer"))
    }

    /// A non-negative integer parameter, `None` when unset.
    pub fn usize_opt(&self, name: &str) -> Result<Option<usize>, PluginError> {
        self.i64_opt(name)?
            .map(|x| usize::try_from(x).map_err(|_| self.mistyped(name, "a non-negative integer")))
            .transpose()
    }

    /// A boolean parameter.
    pub fn flag(&self, name: &str) -> Result<bool, PluginError> {
        match self.raw(name)? {
            Value::Null => Err(self.unset(name)),
            v => v.as_bool().ok_or_else(|| self.mistyped(name, "a boolean")),
        }
    }

    /// A choice parameter as its enum.
    pub fn choice<C: crate::Choice>(&self, name: &str) -> Result<C, PluginError> {
        match self.raw(name)? {
            Value::Null => Err(self.unset(name)),
            v => v.as_str().and_then(C::from_name).ok_or_else(|| {
                PluginError::new(
                    ErrorKind::Internal,
                    format!(
                        "plugin '{}': parameter '{name}' = {v} is not one of the enum's choices {}",
                        self.method,
                        C::NAMES.join(" | ")
                    ),
                )
            }),
        }
    }

    /// A text parameter.
    pub fn text(&self, name: &str) -> Result<&str, PluginError> {
        self.text_opt(name)?.ok_or_else(|| self.unset(name))
    }

    /// A text parameter, `None` when unset.
    pub fn text_opt(&self, name: &str) -> Result<Option<&str>, PluginError> {
        match self.raw(name)? {
            Value::Null => Ok(None),
            v => v.as_str().map(Some).ok_or_else(|| self.mistyped(name, "text")),
        }
    }

    /// All values, for echoing the parameters used into a result's JSON.
    pub fn to_json(&self) -> Value {
        Value::Object(self.values.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Family;
    use crate::{param, ManifestBuilder};

    crate::choices! {
        /// Test choices.
        enum Mode {
            /// a
            Alpha = "alpha",
            /// b
            Beta = "beta",
        }
    }

    fn manifest() -> Manifest {
        ManifestBuilder::new("m", Family::Shrinkage)
            .param(param::float("q", Some(0.1), "level").open(0.0, 1.0))
            .param(param::float("lambda", None, "fixed lambda").at_least(0.0).up_to_inf())
            .param(param::float("c", Some(0.0), "any finite"))
            .param(param::int("curve", Some(0), "points").at_least(0.0).at_most(10_000.0))
            .param(param::boolean("flag", false, "a flag"))
            .param(param::choice("mode", Mode::Beta, "mode"))
            .build()
    }

    #[test]
    fn defaults_ranges_and_messages() {
        let m = manifest();
        let p = Params::from_json(&m, "").unwrap();
        assert_eq!(p.f64("q").unwrap(), 0.1);
        assert_eq!(p.f64_opt("lambda").unwrap(), None);
        assert_eq!(p.usize("curve").unwrap(), 0);
        assert!(!p.flag("flag").unwrap());
        assert_eq!(p.choice::<Mode>("mode").unwrap(), Mode::Beta);
        let p = Params::from_json(&m, r#"{"lambda": "inf", "mode": "alpha"}"#).unwrap();
        assert_eq!(p.f64("lambda").unwrap(), f64::INFINITY);
        assert_eq!(p.choice::<Mode>("mode").unwrap(), Mode::Alpha);
        let err = |json: &str| Params::from_json(&m, json).unwrap_err().message.to_string();
        assert_eq!(err(r#"{"q": 2}"#), "parameter 'q' = 2 must be a number in (0, 1)");
        assert_eq!(err(r#"{"q": 0}"#), "parameter 'q' = 0 must be a number in (0, 1)");
        assert_eq!(err(r#"{"q": "lots"}"#), "parameter 'q' = \"lots\" must be a number in (0, 1)");
        assert_eq!(err(r#"{"lambda": -1}"#), "parameter 'lambda' = -1 must be a number in [0, inf]");
        assert_eq!(err(r#"{"c": "inf"}"#), "parameter 'c' = \"inf\" must be a finite number");
        assert_eq!(err(r#"{"curve": 20000}"#), "parameter 'curve' = 20000 must be an integer in [0, 10000]");
        assert_eq!(err(r#"{"curve": 1.5}"#), "parameter 'curve' = 1.5 must be an integer in [0, 10000]");
        assert_eq!(err(r#"{"flag": null}"#), "parameter 'flag' = null must be true or false (default false)");
        assert_eq!(err(r#"{"mode": "gamma"}"#), "parameter 'mode' = \"gamma\" must be one of alpha | beta");
        assert!(err(r#"{"nope": 1}"#).starts_with("unknown parameter 'nope' (known: q, lambda"));
        // reading a parameter the manifest does not declare is the plugin's bug, not the user's
        let p = Params::from_json(&m, "").unwrap();
        assert_eq!(p.f64("undeclared").unwrap_err().kind, ErrorKind::Internal);
        assert_eq!(p.flag("q").unwrap_err().kind, ErrorKind::Internal);
    }
}
