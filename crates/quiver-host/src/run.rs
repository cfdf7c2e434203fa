//! Running a method: the estimator handle (named steps, any family), the device contract, and
//! the one way to run a whole lifecycle.

use super::*;

impl Host {
    /// Construct an estimator of `method` with `params` (a JSON object, validated by the
    /// plugin's SDK against its manifest: names, types, ranges, choices).
    ///
    /// The device contract: `cuda` for a method whose manifest lists no CUDA path is refused
    /// here ([`HostError::NoCudaPath`]); `auto` for such a method runs on the CPU without asking
    /// the plugin to probe for a GPU; a method with a CUDA path resolves `auto` and `cuda` itself
    /// (CUDA where a GPU is usable).
    pub fn create(&self, method: &str, params: &Map<String, Value>, ctx: RunContext) -> Result<Estimator, HostError> {
        self.create_observed(method, params, ctx, None)
    }

    /// [`Host::create`] with a progress observer: the plugin reports the progress of its long
    /// steps to `progress`, and stops with an [`ErrorKind::Cancelled`] error when it returns
    /// `false`. The estimator keeps the observer alive.
    pub fn create_observed(
        &self,
        method: &str,
        params: &Map<String, Value>,
        ctx: RunContext,
        progress: Option<&Progress>,
    ) -> Result<Estimator, HostError> {
        let plugin = self.get(method)?;
        let mut ctx = device_contract(&plugin.manifest, ctx)?;
        // more worker threads than cores only slow a method down (and thousands exhaust the
        // process): cap them at the machine's parallelism
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
        ctx.threads = ctx.threads.min(cores);
        if let Some(p) = progress {
            ctx.progress = p.sink();
        }
        let text = Value::Object(params.clone()).to_string();
        let create = plugin.module.create();
        let inner = create(text.as_str().into(), ctx).into_result().map_err(|e| plugin_error(method, e))?;
        Ok(Estimator { method: method.into(), manifest: plugin.manifest.clone(), inner, _progress: progress.cloned() })
    }

    /// [`Host::create`] for a caller that needs a method of one family (label `family`): any other
    /// is refused with [`HostError::WrongFamily`].
    pub fn create_as(
        &self,
        method: &str,
        family: &'static str,
        params: &Map<String, Value>,
        ctx: RunContext,
    ) -> Result<Estimator, HostError> {
        let found = self.get(method)?.manifest.family.to_string();
        if found != family {
            return Err(HostError::WrongFamily { name: method.into(), wanted: family, found });
        }
        self.create(method, params, ctx)
    }

    /// Run a method's whole lifecycle on `tables` — every step its manifest marks `in_run`, in
    /// order, each seeing every table — and return the last step's JSON result: what the CLI and
    /// demo do, for any family.
    pub fn run(
        &self,
        method: &str,
        params: &Map<String, Value>,
        tables: &[Table],
        ctx: RunContext,
    ) -> Result<Value, HostError> {
        self.run_observed(method, params, tables, ctx, None)
    }

    /// [`Host::run`] with a progress observer (see [`Host::create_observed`]).
    pub fn run_observed(
        &self,
        method: &str,
        params: &Map<String, Value>,
        tables: &[Table],
        ctx: RunContext,
        progress: Option<&Progress>,
    ) -> Result<Value, HostError> {
        Ok(self.run_output_observed(method, params, tables, ctx, progress)?.into_json())
    }

    /// [`Host::run_observed`] with the per-unit arrays kept typed ([`RunOutput`]): what a
    /// front-end that streams large results uses (a JSON value costs 32 bytes a number).
    pub fn run_output_observed(
        &self,
        method: &str,
        params: &Map<String, Value>,
        tables: &[Table],
        ctx: RunContext,
        progress: Option<&Progress>,
    ) -> Result<RunOutput, HostError> {
        validate_owned(&self.get(method)?.manifest, tables)?;
        with_views(tables, |views| self.run_checked(method, params, views, ctx, progress))
    }

    /// [`Host::run_output_observed`] on borrowed tables: columns that live elsewhere (NumPy
    /// arrays, memory maps) cross to the plugin without a copy. They are checked against the
    /// manifest as owned tables are ([`validate_view`]; errors name table, column and row).
    pub fn run_views(
        &self,
        method: &str,
        params: &Map<String, Value>,
        tables: &[TableView<'_>],
        ctx: RunContext,
        progress: Option<&Progress>,
    ) -> Result<RunOutput, HostError> {
        validate_views(&self.get(method)?.manifest, tables)?;
        self.run_checked(method, params, tables, ctx, progress)
    }

    /// The lifecycle on tables already checked against the manifest.
    fn run_checked(
        &self,
        method: &str,
        params: &Map<String, Value>,
        views: &[TableView<'_>],
        ctx: RunContext,
        progress: Option<&Progress>,
    ) -> Result<RunOutput, HostError> {
        check_run_tables(&self.get(method)?.manifest, params, views)?;
        let mut est = self.create_observed(method, params, ctx, progress)?;
        let steps: Vec<String> = est.manifest.run_steps().map(|s| s.name.to_string()).collect();
        let mut last = RunOutput::empty();
        for name in &steps {
            last = est.invoke_step(name, views)?;
        }
        if !last.is_empty() {
            return Ok(last);
        }
        Err(HostError::BadResult {
            method: method.into(),
            reason: format!(
                "its last run step ({}) returned no result",
                steps.last().map_or("none declared", String::as_str)
            ),
        })
    }
}

/// Refuse a run, before any step starts, when a table one of its steps cannot do without is
/// missing — a step that fails only after the steps before it have done their work wastes the
/// user's time. The manifest's `requires` property lists them: `{"step": [ENTRY, ...]}`, each
/// ENTRY a role, or `{"role": ROLE, "unless": {PARAM: VALUE}}` for a role a mode does without.
fn check_run_tables(
    manifest: &Manifest,
    params: &Map<String, Value>,
    views: &[TableView<'_>],
) -> Result<(), HostError> {
    let properties: Value = serde_json::from_str(manifest.properties_json.as_str()).unwrap_or(Value::Null);
    let Some(requires) = properties.get("requires").and_then(Value::as_object) else { return Ok(()) };
    let set_to = |param: &str, value: &Value| {
        params.get(param).is_some_and(|given| match (given, value) {
            (Value::String(g), Value::String(v)) => g == v,
            (g, v) => g == v,
        })
    };
    for step in manifest.run_steps() {
        for entry in requires.get(step.name.as_str()).and_then(Value::as_array).into_iter().flatten() {
            let (role, waived) = match entry {
                Value::String(role) => (role.as_str(), false),
                Value::Object(o) => (
                    o.get("role").and_then(Value::as_str).unwrap_or_default(),
                    o.get("unless").and_then(Value::as_object).is_some_and(|u| u.iter().any(|(p, v)| set_to(p, v))),
                ),
                _ => continue,
            };
            if !waived && !role.is_empty() && !views.iter().any(|v| v.role.as_str() == role) {
                return Err(crate::InputError::StepNeedsTable {
                    method: manifest.name.to_string(),
                    step: step.name.to_string(),
                    table: role.to_string(),
                }
                .into());
            }
        }
    }
    Ok(())
}

/// Call `f` with ABI views of owned tables (the views borrow their columns; nothing is copied).
pub(crate) fn with_views<T>(tables: &[Table], f: impl FnOnce(&[TableView<'_>]) -> T) -> T {
    let columns: Vec<Vec<ColumnView<'_>>> = tables.iter().map(Table::column_views).collect();
    let views: Vec<TableView<'_>> = tables.iter().zip(&columns).map(|(t, c)| t.view(c)).collect();
    f(&views)
}

/// Check the owned tables a method reads (those present) against its manifest.
pub(crate) fn validate_owned(manifest: &Manifest, tables: &[Table]) -> Result<(), HostError> {
    for t in tables {
        if let Some(spec) = manifest.tables.iter().find(|s| s.role.as_str() == t.role) {
            t.validate(spec)?;
        }
    }
    Ok(())
}

/// Check the borrowed tables a method reads (those present) against its manifest.
pub(crate) fn validate_views(manifest: &Manifest, views: &[TableView<'_>]) -> Result<(), HostError> {
    for t in views {
        if let Some(spec) = manifest.tables.iter().find(|s| s.role.as_str() == t.role.as_str()) {
            validate_view(t, spec)?;
        }
    }
    Ok(())
}

pub(crate) fn plugin_error(method: &str, e: quiver_abi::PluginError) -> HostError {
    HostError::Plugin { method: method.into(), kind: e.kind, message: e.message.into() }
}

/// Whether the manifest lists a CUDA path.
pub fn has_cuda_path(manifest: &Manifest) -> bool {
    manifest.devices.contains(&Device::Cuda)
}

/// Apply the device contract to a run context: a CUDA request for a method without a CUDA path
/// is an error; `auto` for such a method becomes `cpu`.
pub fn device_contract(manifest: &Manifest, ctx: RunContext) -> Result<RunContext, HostError> {
    if has_cuda_path(manifest) {
        return Ok(ctx);
    }
    match ctx.device {
        DeviceRequest::Cuda => Err(HostError::NoCudaPath {
            method: manifest.name.to_string(),
            devices: manifest.devices.iter().map(|d| d.name()).collect::<Vec<_>>().join(", "),
        }),
        _ => Ok(RunContext { device: DeviceRequest::Cpu, ..ctx }),
    }
}

/// A constructed estimator of any family: its steps are called by name (those its manifest
/// declares), on owned tables ([`Estimator::step`]) or borrowed ones ([`Estimator::step_views`]).
/// Tables are checked against the manifest first (errors name table, column and row).
pub struct Estimator {
    method: String,
    manifest: Manifest,
    inner: quiver_abi::EstimatorBox,
    _progress: Option<Progress>,
}

impl Estimator {
    /// The method name.
    pub fn method(&self) -> &str {
        &self.method
    }
    /// The method's manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }
    /// Its family label.
    pub fn family(&self) -> &str {
        self.manifest.family.as_str()
    }
    /// Run step `name` on `tables`: its output (empty for a step that returns nothing, `fit`,
    /// `calibrate`: [`RunOutput::is_empty`]).
    pub fn step(&mut self, name: &str, tables: &[Table]) -> Result<RunOutput, HostError> {
        validate_owned(&self.manifest, tables)?;
        with_views(tables, |views| self.invoke_step(name, views))
    }
    /// [`Estimator::step`] on borrowed tables (no copy of their columns); see
    /// [`Host::run_views`].
    pub fn step_views(&mut self, name: &str, tables: &[TableView<'_>]) -> Result<RunOutput, HostError> {
        validate_views(&self.manifest, tables)?;
        self.invoke_step(name, tables)
    }
    /// A step that does not change the estimator (a `select`, `values`, `predict`), through a
    /// shared reference: several may run at once.
    pub fn query(&self, name: &str, tables: &[Table]) -> Result<RunOutput, HostError> {
        validate_owned(&self.manifest, tables)?;
        let spec = self.spec(name)?;
        if spec.mutates {
            return Err(HostError::Parameter(format!(
                "step '{name}' of '{}' changes the estimator: call it with `step`, not `query`",
                self.method
            )));
        }
        with_views(tables, |views| self.output(self.inner.query(name.into(), quiver_abi::table_views(views))))
    }
    /// The read-only step `name` on borrowed tables, unchecked (the host's own tables: states, a
    /// partition's offsets).
    pub(crate) fn query_views(&self, name: &str, views: &[TableView<'_>]) -> Result<RunOutput, HostError> {
        if self.spec(name)?.mutates {
            return Err(HostError::Parameter(format!("step '{name}' of '{}' changes the estimator", self.method)));
        }
        self.output(self.inner.query(name.into(), quiver_abi::table_views(views)))
    }
    /// Run step `name` (through the ABI's `step` or `query`, as the manifest declares it) on
    /// tables already checked.
    fn invoke_step(&mut self, name: &str, views: &[TableView<'_>]) -> Result<RunOutput, HostError> {
        let mutates = self.spec(name)?.mutates;
        let t = quiver_abi::table_views(views);
        let out = if mutates { self.inner.step(name.into(), t) } else { self.inner.query(name.into(), t) };
        self.output(out)
    }
    fn spec(&self, name: &str) -> Result<&quiver_abi::StepSpec, HostError> {
        self.manifest.step(name).ok_or_else(|| {
            let steps: Vec<&str> = self.manifest.steps.iter().map(|s| s.name.as_str()).collect();
            HostError::Parameter(format!(
                "'{}' has no step '{name}' (its steps: {})",
                self.method,
                if steps.is_empty() { "none".to_string() } else { steps.join(", ") }
            ))
        })
    }
    fn output(&self, out: quiver_abi::PluginResult<StepOutput>) -> Result<RunOutput, HostError> {
        let out = out.into_result().map_err(|e| plugin_error(&self.method, e))?;
        step_output(&self.method, out)
    }
}
