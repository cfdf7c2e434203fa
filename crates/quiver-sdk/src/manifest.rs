//! Concise construction of [`Manifest`]s.

use quiver_abi::abi_stable::std_types::{RString, RVec};
use quiver_abi::{ColumnKind, ColumnSpec, Device, Family, Manifest, ParamKind, ParamSpec, TableSpec};

/// Builder for a [`Manifest`].
pub struct ManifestBuilder {
    m: Manifest,
}

impl ManifestBuilder {
    /// Start a manifest for method `name` of `family` (version defaults to the SDK's; set it with
    /// [`ManifestBuilder::version`], usually to `env!("CARGO_PKG_VERSION")`).
    pub fn new(name: &str, family: Family) -> Self {
        ManifestBuilder {
            m: Manifest {
                name: name.into(),
                family,
                version: env!("CARGO_PKG_VERSION").into(),
                summary: RString::new(),
                guarantee: RString::new(),
                reference: RString::new(),
                params: RVec::new(),
                tables: RVec::new(),
                devices: RVec::from(vec![Device::Cpu]),
            },
        }
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
    pub fn param(mut self, p: ParamSpec) -> Self {
        self.m.params.push(p);
        self
    }
    /// Add a table.
    pub fn table(mut self, t: TableBuilder) -> Self {
        self.m.tables.push(t.spec);
        self
    }
    /// Finish.
    pub fn build(self) -> Manifest {
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
    /// Add a column.
    pub fn column(mut self, c: ColumnSpec) -> Self {
        self.spec.columns.push(c);
        self
    }
}

/// Parameter spec constructors.
pub mod param {
    use super::*;

    fn spec(name: &str, kind: ParamKind, default_json: String, doc: &str) -> ParamSpec {
        ParamSpec { name: name.into(), kind, default_json: default_json.into(), choices: RVec::new(), doc: doc.into() }
    }
    /// A float parameter with a default (`None` = not set).
    pub fn float(name: &str, default: Option<f64>, doc: &str) -> ParamSpec {
        let d = match default {
            Some(x) => crate::json_f64(x).to_string(),
            None => "null".into(),
        };
        spec(name, ParamKind::Float, d, doc)
    }
    /// An integer parameter.
    pub fn int(name: &str, default: Option<i64>, doc: &str) -> ParamSpec {
        spec(name, ParamKind::Int, default.map_or("null".into(), |x| x.to_string()), doc)
    }
    /// A boolean parameter.
    pub fn boolean(name: &str, default: bool, doc: &str) -> ParamSpec {
        spec(name, ParamKind::Bool, default.to_string(), doc)
    }
    /// A choice among `choices`; the default is the first choice.
    pub fn choice(name: &str, choices: &[&str], doc: &str) -> ParamSpec {
        let mut s = spec(name, ParamKind::Choice, format!("\"{}\"", choices[0]), doc);
        s.choices = choices.iter().map(|c| RString::from(*c)).collect();
        s
    }
}

/// Column spec constructors.
pub mod column {
    use super::*;

    fn spec(name: &str, kind: ColumnKind, required: bool, doc: &str) -> ColumnSpec {
        ColumnSpec { name: name.into(), kind, required, prefix: false, allow_nonfinite: false, doc: doc.into() }
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
    /// A required boolean (0/1) column.
    pub fn boolean(name: &str, doc: &str) -> ColumnSpec {
        spec(name, ColumnKind::Bool, true, doc)
    }
}
