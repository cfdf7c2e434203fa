//! Concise construction of [`Manifest`]s.

use crate::Choice;
use crate::Family;
use quiver_abi::abi_stable::std_types::{RString, RVec};
use quiver_abi::{Bound, ColumnKind, ColumnSpec, Device, Manifest, ParamKind, ParamSpec, StepSpec, TableSpec};

/// Builder for a [`Manifest`].
pub struct ManifestBuilder {
    m: Manifest,
    family: Option<Family>,
    step_tables: Vec<(String, Vec<String>)>,
    mergeable: Option<Vec<String>>,
    rounds: bool,
    whole: Vec<String>,
}

impl ManifestBuilder {
    /// Start a manifest for method `name` of `family`: its label and its steps come from the
    /// family (version defaults to the SDK's; set it with [`ManifestBuilder::version`], usually to
    /// `env!("CARGO_PKG_VERSION")`). Each step reads the tables of the roles its family names for
    /// it that the manifest declares (every declared table when none is named);
    /// [`ManifestBuilder::step_tables`] says otherwise.
    pub fn new(name: &str, family: Family) -> Self {
        let mut b = Self::custom(name, family.label());
        b.family = Some(family);
        b
    }
    /// Start a manifest for a family the SDK has no trait for, labelled `family`: declare its
    /// steps with [`ManifestBuilder::step`] (docs/extending.md).
    pub fn custom(name: &str, family: &str) -> Self {
        ManifestBuilder {
            m: Manifest {
                name: name.into(),
                family: family.into(),
                version: env!("CARGO_PKG_VERSION").into(),
                summary: RString::new(),
                guarantee: RString::new(),
                reference: RString::new(),
                params: RVec::new(),
                tables: RVec::new(),
                devices: RVec::from(vec![Device::Cpu]),
                steps: RVec::new(),
                properties_json: RString::new(),
            },
            family: None,
            step_tables: Vec::new(),
            mergeable: None,
            rounds: false,
            whole: Vec::new(),
        }
    }
    /// Declare a step (for [`ManifestBuilder::custom`] manifests): `mutates` when it changes the
    /// estimator, `in_run` when a one-call run goes through it, and the roles it reads.
    pub fn step(mut self, name: &str, mutates: bool, in_run: bool, roles: &[&str], doc: &str) -> Self {
        self.m.steps.push(StepSpec {
            name: name.into(),
            mutates,
            in_run,
            tables: roles.iter().map(|&r| RString::from(r)).collect(),
            doc: doc.into(),
        });
        self
    }
    /// The roles without which step `step` cannot run (the manifest's `requires` property: a host
    /// refuses a run that lacks one before any step starts).
    pub fn step_requires(self, step: &str, roles: &[&str]) -> Self {
        roles.iter().fold(self, |b, role| b.add_requirement(step, serde_json::json!(role)))
    }
    /// Role `role` is required by step `step` unless parameter `param` is set to `value` (a mode
    /// that does without it).
    pub fn step_requires_unless(self, step: &str, role: &str, (param, value): (&str, &str)) -> Self {
        self.add_requirement(step, serde_json::json!({"role": role, "unless": {param: value}}))
    }
    fn add_requirement(mut self, step: &str, entry: serde_json::Value) -> Self {
        let mut props: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(self.m.properties_json.as_str()).unwrap_or_default();
        let requires = props.entry("requires").or_insert_with(|| serde_json::json!({}));
        match requires[step].as_array_mut() {
            Some(list) => list.push(entry),
            None => requires[step] = serde_json::json!([entry]),
        }
        self.m.properties_json = serde_json::Value::Object(props).to_string().into();
        self
    }
    /// Declare the method computable by parts ([`crate::mergeable`]): the read-only steps
    /// `partial` (reading the tables of roles `data`, and `partition`), `merge` and `finish` (the
    /// table `states`), and the property `"mergeable": true`. The estimator must be boxed with
    /// [`crate::Created::mergeable`].
    pub fn mergeable(mut self, data: &[&str]) -> Self {
        self.mergeable = Some(data.iter().map(|r| r.to_string()).collect());
        self.property("mergeable", serde_json::json!(true))
    }
    /// Declare a method computed by parts in several passes over the data
    /// ([`crate::mergeable::RoundsImpl`], boxed with [`crate::Created::in_rounds`]): `partial` and
    /// `finish` also read the table `broadcast`, and the property `"rounds": true` tells a driver
    /// to run the partitions again while `finish` answers with a broadcast. Call after
    /// [`ManifestBuilder::mergeable`].
    pub fn rounds(mut self) -> Self {
        self.rounds = true;
        self.property(crate::mergeable::ROUNDS, serde_json::json!(true))
    }
    /// Roles that a run by parts gives **whole** to every partition, beside the partitioned
    /// roles of [`ManifestBuilder::mergeable`] — small tables every partition needs, such as the
    /// calibration set of a selector whose test units are partitioned. `partial` reads them too;
    /// the property `"whole"` lists them, so the host and the CLI know not to cut them.
    pub fn given_whole(mut self, roles: &[&str]) -> Self {
        self.whole = roles.iter().map(|r| r.to_string()).collect();
        let list: Vec<&str> = roles.to_vec();
        self.property(crate::mergeable::WHOLE, serde_json::json!(list))
    }
    /// Partitioned roles (of [`ManifestBuilder::mergeable`]) whose every row is a unit of its
    /// own — a bandit round, a test unit, a fit row — so that a run by parts may cut them between
    /// any two rows: the host then streams a large file in small slices rather than by the file's
    /// own parts (docs/scale.md). Leave out a role whose rows belong together (an RL log's
    /// episodes): its partitions stay the parts the data came in. The property `"cut_anywhere"`
    /// lists them; a method must give the same result however such a table is cut.
    pub fn cut_anywhere(self, roles: &[&str]) -> Self {
        let list: Vec<&str> = roles.to_vec();
        self.property(crate::mergeable::CUT_ANYWHERE, serde_json::json!(list))
    }
    /// The roles step `step` reads, instead of those its family names.
    pub fn step_tables(mut self, step: &str, roles: &[&str]) -> Self {
        self.step_tables.push((step.to_string(), roles.iter().map(|r| r.to_string()).collect()));
        self
    }
    /// A property of the manifest (a key of [`Manifest::properties_json`]).
    pub fn property(mut self, key: &str, value: serde_json::Value) -> Self {
        let mut props: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(self.m.properties_json.as_str()).unwrap_or_default();
        props.insert(key.to_string(), value);
        self.m.properties_json = serde_json::Value::Object(props).to_string().into();
        self
    }
    /// Plugin version.
    pub fn version(mut self, v: &str) -> Self {
        self.m.version = v.into();
        self
    }
    /// One-line summary.
    pub fn summary(mut self, s: &str) -> Self {
        self.m.summary = s.into();
        self
    }
    /// The guarantee, stated exactly.
    pub fn guarantee(mut self, s: &str) -> Self {
        self.m.guarantee = s.into();
        self
    }
    /// The paper(s) implemented.
    pub fn reference(mut self, s: &str) -> Self {
        self.m.reference = s.into();
        self
    }
    /// Declare that a CUDA path exists.
    pub fn cuda(mut self) -> Self {
        if !self.m.devices.contains(&Device::Cuda) {
            self.m.devices.push(Device::Cuda);
        }
        self
    }
    /// Add a parameter.
    pub fn param(mut self, p: impl Into<ParamSpec>) -> Self {
        self.m.params.push(p.into());
        self
    }
    /// Add the parameters of a typed configuration (see [`crate::config!`]), in field order.
    pub fn config<C: crate::ConfigFields>(mut self) -> Self {
        self.m.params.extend(C::param_specs());
        self
    }
    /// Add a table.
    pub fn table(mut self, t: TableBuilder) -> Self {
        self.m.tables.push(t.spec);
        self
    }
    /// Finish: the family's steps, with the tables each reads.
    pub fn build(mut self) -> Manifest {
        if let Some(family) = self.family {
            let declared: Vec<String> = self.m.tables.iter().map(|t| t.role.to_string()).collect();
            let mut requires: Vec<(&str, Vec<String>)> = Vec::new();
            for s in family.steps() {
                let roles: Vec<String> = match self.step_tables.iter().find(|(n, _)| n == s.name) {
                    Some((_, r)) => r.clone(),
                    None => {
                        let named: Vec<String> = match s.roles {
                            ["*", except @ ..] => {
                                declared.iter().filter(|r| !except.contains(&r.as_str())).cloned().collect()
                            }
                            roles => declared.iter().filter(|r| roles.contains(&r.as_str())).cloned().collect(),
                        };
                        if named.is_empty() {
                            declared.clone()
                        } else {
                            named
                        }
                    }
                };
                if s.needs_roles && !roles.is_empty() {
                    requires.push((s.name, roles.clone()));
                }
                self.m.steps.push(StepSpec {
                    name: s.name.into(),
                    mutates: s.mutates,
                    in_run: true,
                    tables: roles.into_iter().map(RString::from).collect(),
                    doc: s.doc.into(),
                });
            }
            for (step, roles) in requires {
                let roles: Vec<&str> = roles.iter().map(String::as_str).collect();
                self = self.step_requires(step, &roles);
            }
        }
        if let Some(data) = self.mergeable.take() {
            use crate::mergeable::{BROADCAST, FINISH, MERGE, PARTIAL, PARTITION, STATES};
            let round: &[&str] = if self.rounds { &[BROADCAST] } else { &[] };
            let partial: Vec<&str> = data
                .iter()
                .chain(self.whole.iter())
                .map(String::as_str)
                .chain([PARTITION])
                .chain(round.iter().copied())
                .collect();
            let finish: Vec<&str> = [STATES].into_iter().chain(round.iter().copied()).collect();
            let finish_doc = if self.rounds {
                "the result from the state of all the data, or the broadcast of another round"
            } else {
                "the result from the state of all the data"
            };
            let steps = [
                (PARTIAL, partial, "the state of one partition of the data"),
                (MERGE, vec![STATES], "two partitions' states as one"),
                (FINISH, finish, finish_doc),
            ];
            for (name, roles, doc) in steps {
                self.m.steps.push(StepSpec {
                    name: name.into(),
                    mutates: false,
                    in_run: false,
                    tables: roles.into_iter().map(RString::from).collect(),
                    doc: doc.into(),
                });
            }
        }
        self.m
    }
}

/// Builder for a [`TableSpec`].
pub struct TableBuilder {
    spec: TableSpec,
}

impl TableBuilder {
    /// A required table with role `role`.
    pub fn new(role: &str, doc: &str) -> Self {
        TableBuilder { spec: TableSpec { role: role.into(), required: true, doc: doc.into(), columns: RVec::new() } }
    }
    /// Mark the table optional.
    pub fn optional(mut self) -> Self {
        self.spec.required = false;
        self
    }
    /// Mark the table required (the default; for builders shared by several methods).
    pub fn required(mut self) -> Self {
        self.spec.required = true;
        self
    }
    /// Add a column.
    pub fn column(mut self, c: ColumnSpec) -> Self {
        self.spec.columns.push(c);
        self
    }
}

/// A parameter spec under construction: [`param::float`] etc., then ranges, then
/// [`ManifestBuilder::param`].
#[derive(Clone, Debug)]
pub struct Param(pub ParamSpec);

impl Param {
    /// Values must be `>= x`.
    pub fn at_least(mut self, x: f64) -> Self {
        self.0.lower = Bound { value: x, inclusive: true };
        self
    }
    /// Values must be `> x`.
    pub fn greater_than(mut self, x: f64) -> Self {
        self.0.lower = Bound { value: x, inclusive: false };
        self
    }
    /// Values must be `<= x`.
    pub fn at_most(mut self, x: f64) -> Self {
        self.0.upper = Bound { value: x, inclusive: true };
        self
    }
    /// Values must be `< x`.
    pub fn less_than(mut self, x: f64) -> Self {
        self.0.upper = Bound { value: x, inclusive: false };
        self
    }
    /// Values must lie in the open interval `(lo, hi)` (levels such as α ∈ (0, 1)).
    pub fn open(self, lo: f64, hi: f64) -> Self {
        self.greater_than(lo).less_than(hi)
    }
    /// `+inf` is allowed (as the string `"inf"`; e.g. λ ∈ [0, ∞]).
    pub fn up_to_inf(self) -> Self {
        self.at_most(f64::INFINITY)
    }
    /// `-inf` is allowed.
    pub fn down_to_neg_inf(self) -> Self {
        self.at_least(f64::NEG_INFINITY)
    }
}

impl From<Param> for ParamSpec {
    fn from(p: Param) -> ParamSpec {
        p.0
    }
}

/// Parameter spec constructors. Floats take every finite number and integers every integer
/// until a range is set ([`Param::at_least`], [`Param::open`], ...).
pub mod param {
    use super::*;

    fn spec(name: &str, kind: ParamKind, default_json: String, doc: &str) -> Param {
        Param(ParamSpec {
            name: name.into(),
            kind,
            default_json: default_json.into(),
            choices: RVec::new(),
            lower: Bound::NONE_BELOW,
            upper: Bound::NONE_ABOVE,
            doc: doc.into(),
        })
    }
    /// A float parameter with a default (`None`: optional, unset unless given).
    pub fn float(name: &str, default: Option<f64>, doc: &str) -> Param {
        let d = match default {
            Some(x) => crate::json_f64(x).to_string(),
            None => "null".into(),
        };
        spec(name, ParamKind::Float, d, doc)
    }
    /// A level in the open interval (0, 1), such as α, δ or an FDR target q.
    pub fn level(name: &str, default: f64, doc: &str) -> Param {
        float(name, Some(default), doc).open(0.0, 1.0)
    }
    /// An integer parameter (`None`: optional, unset unless given).
    pub fn int(name: &str, default: Option<i64>, doc: &str) -> Param {
        spec(name, ParamKind::Int, default.map_or("null".into(), |x| x.to_string()), doc)
    }
    /// A boolean parameter.
    pub fn boolean(name: &str, default: bool, doc: &str) -> Param {
        spec(name, ParamKind::Bool, default.to_string(), doc)
    }
    /// A choice among the variants of `C` (see [`crate::choices!`]), defaulting to `default`.
    pub fn choice<C: Choice>(name: &str, default: C, doc: &str) -> Param {
        let mut s = spec(name, ParamKind::Choice, format!("\"{}\"", default.name()), doc);
        s.0.choices = C::NAMES.iter().map(|c| RString::from(*c)).collect();
        s
    }
    /// Free text (`None`: optional).
    pub fn text(name: &str, default: Option<&str>, doc: &str) -> Param {
        spec(name, ParamKind::Text, default.map_or("null".into(), |t| serde_json::json!(t).to_string()), doc)
    }
}

/// Column spec constructors.
pub mod column {
    use super::*;

    fn spec(name: &str, kind: ColumnKind, required: bool, doc: &str) -> ColumnSpec {
        ColumnSpec {
            name: name.into(),
            kind,
            required,
            prefix: false,
            allow_nonfinite: false,
            empty_means_none: false,
            doc: doc.into(),
        }
    }
    /// An optional i64 id column in which an empty cell means "none" (read as -1).
    pub fn id_or_none(name: &str, doc: &str) -> ColumnSpec {
        ColumnSpec { empty_means_none: true, ..spec(name, ColumnKind::I64, false, doc) }
    }
    /// A required f64 column.
    pub fn f64(name: &str, doc: &str) -> ColumnSpec {
        spec(name, ColumnKind::F64, true, doc)
    }
    /// An optional f64 column.
    pub fn f64_opt(name: &str, doc: &str) -> ColumnSpec {
        spec(name, ColumnKind::F64, false, doc)
    }
    /// A required i64 column.
    pub fn i64(name: &str, doc: &str) -> ColumnSpec {
        spec(name, ColumnKind::I64, true, doc)
    }
    /// An optional i64 column.
    pub fn i64_opt(name: &str, doc: &str) -> ColumnSpec {
        spec(name, ColumnKind::I64, false, doc)
    }
    /// A required text column (labels: UTF-8 bytes per row; a CSV's text, a Parquet or Arrow
    /// string column, a Python column of str).
    pub fn text(name: &str, doc: &str) -> ColumnSpec {
        spec(name, ColumnKind::Bytes, true, doc)
    }
    /// A required boolean (0/1) column.
    pub fn boolean(name: &str, doc: &str) -> ColumnSpec {
        spec(name, ColumnKind::Bool, true, doc)
    }
    /// An optional boolean (0/1) column.
    pub fn boolean_opt(name: &str, doc: &str) -> ColumnSpec {
        spec(name, ColumnKind::Bool, false, doc)
    }
    /// A family of i64 columns whose names start with `prefix` (`a_` matches `a_0`, `a_1`: one
    /// action column per agent); `required`: at least one must be present.
    pub fn i64_prefix(prefix: &str, required: bool, doc: &str) -> ColumnSpec {
        ColumnSpec { prefix: true, ..spec(prefix, ColumnKind::I64, required, doc) }
    }
    /// A family of f64 columns whose names start with `prefix` (`q_` matches `q_gbm_0.05`);
    /// `required`: at least one must be present.
    pub fn f64_prefix(prefix: &str, required: bool, doc: &str) -> ColumnSpec {
        ColumnSpec { prefix: true, ..spec(prefix, ColumnKind::F64, required, doc) }
    }
}
