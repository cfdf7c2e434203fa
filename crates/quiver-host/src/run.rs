//! Running a method: estimators and their per-family handles, the device contract, and the
//! checked one-call `run` paths.

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

    /// A conformal-selector handle.
    pub fn selector(&self, method: &str, params: &Map<String, Value>, ctx: RunContext) -> Result<Selector, HostError> {
        Selector::new(self.create(method, params, ctx)?)
    }

    /// A batch-predictor handle.
    pub fn batch_predictor(
        &self,
        method: &str,
        params: &Map<String, Value>,
        ctx: RunContext,
    ) -> Result<BatchPredictor, HostError> {
        BatchPredictor::new(self.create(method, params, ctx)?)
    }

    /// A quantile-aggregator handle.
    pub fn aggregator(
        &self,
        method: &str,
        params: &Map<String, Value>,
        ctx: RunContext,
    ) -> Result<Aggregator, HostError> {
        Aggregator::new(self.create(method, params, ctx)?)
    }

    /// A shrinkage handle.
    pub fn shrinker(&self, method: &str, params: &Map<String, Value>, ctx: RunContext) -> Result<Shrinker, HostError> {
        Shrinker::new(self.create(method, params, ctx)?)
    }

    /// A critic handle.
    pub fn critic(&self, method: &str, params: &Map<String, Value>, ctx: RunContext) -> Result<Critic, HostError> {
        Critic::new(self.create(method, params, ctx)?)
    }

    /// Run a method's whole lifecycle on `tables` (each lifecycle step sees every table) and
    /// return its JSON result: what the CLI and demo do, generic over families.
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
        let columns: Vec<Vec<ColumnView<'_>>> = tables.iter().map(Table::column_views).collect();
        let views: Vec<TableView<'_>> = tables.iter().zip(&columns).map(|(t, c)| t.view(c)).collect();
        self.run_checked(method, params, &views, ctx, progress)
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
        let est = self.create_observed(method, params, ctx, progress)?;
        let t = quiver_abi::tables(views);
        match est.family() {
            Family::ConformalSelector => {
                let mut h = Selector::new(est)?;
                h.est.invoke(h.inner.calibrate(t))?;
                selection_output(method, h.est.invoke(h.inner.select(t))?)
            }
            Family::BatchPredictive => {
                let mut h = BatchPredictor::new(est)?;
                h.est.invoke(h.inner.calibrate(t))?;
                batch_output(method, h.est.invoke(h.inner.bound(t))?)
            }
            Family::QuantileAggregator => {
                let mut h = Aggregator::new(est)?;
                h.est.invoke(h.inner.fit(t))?;
                h.est.invoke(h.inner.calibrate(t))?;
                aggregation_output(method, h.est.invoke(h.inner.predict(t))?)
            }
            Family::Shrinkage => {
                let h = Shrinker::new(est)?;
                shrinkage_output(method, h.est.invoke(h.inner.estimate(t))?)
            }
            Family::Critic => {
                let mut h = Critic::new(est)?;
                h.est.invoke(h.inner.fit(t))?;
                critic_output(method, h.est.invoke(h.inner.values(t))?)
            }
        }
    }
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

/// A constructed estimator, before it is narrowed to its family's handle.
pub struct Estimator {
    method: String,
    manifest: Manifest,
    inner: quiver_abi::Estimator,
    _progress: Option<Progress>,
}

impl Estimator {
    /// Its family.
    pub fn family(&self) -> Family {
        self.inner.family()
    }
}

/// What every handle knows about its method (and the progress observer it keeps alive).
#[derive(Clone)]
pub(crate) struct EstimatorInfo {
    method: String,
    manifest: Manifest,
    _progress: Option<Progress>,
}

impl EstimatorInfo {
    fn of(e: &Estimator) -> Self {
        EstimatorInfo { method: e.method.clone(), manifest: e.manifest.clone(), _progress: e._progress.clone() }
    }

    /// Validate `tables` (the ones this method reads, that are present) and call `f` with their
    /// ABI views.
    fn call<T>(
        &self,
        tables: &[Table],
        f: impl FnOnce(quiver_abi::Tables<'_>) -> quiver_abi::PluginResult<T>,
    ) -> Result<T, HostError> {
        validate_owned(&self.manifest, tables)?;
        let columns: Vec<Vec<ColumnView<'_>>> = tables.iter().map(Table::column_views).collect();
        let views: Vec<TableView<'_>> = tables.iter().zip(&columns).map(|(t, c)| t.view(c)).collect();
        self.invoke(f(quiver_abi::tables(&views)))
    }

    /// [`EstimatorInfo::call`] on borrowed tables ([`validate_view`]).
    fn call_views<T>(
        &self,
        views: &[TableView<'_>],
        f: impl FnOnce(quiver_abi::Tables<'_>) -> quiver_abi::PluginResult<T>,
    ) -> Result<T, HostError> {
        validate_views(&self.manifest, views)?;
        self.invoke(f(quiver_abi::tables(views)))
    }

    /// A plugin call's result as the host's.
    fn invoke<T>(&self, r: quiver_abi::PluginResult<T>) -> Result<T, HostError> {
        r.into_result().map_err(|e| plugin_error(&self.method, e))
    }
}

macro_rules! handle {
    ($(#[$doc:meta])* $name:ident, $boxed:ty, $variant:ident, { $( $(#[$mdoc:meta])* fn $method:ident / $views:ident (& $($mut_:ident)?) -> $ret:ty; )* }) => {
        $(#[$doc])*
        pub struct $name {
            inner: $boxed,
            est: EstimatorInfo,
        }

        impl $name {
            /// Narrow a constructed estimator to this family's handle.
            pub fn new(e: Estimator) -> Result<Self, HostError> {
                let est = EstimatorInfo::of(&e);
                match e.inner {
                    quiver_abi::Estimator::$variant(inner) => Ok($name { inner, est }),
                    other => Err(HostError::WrongFamily {
                        name: e.method,
                        wanted: Family::$variant.name(),
                        found: other.family().name(),
                    }),
                }
            }

            /// The method name.
            pub fn method(&self) -> &str {
                &self.est.method
            }

            /// The method's manifest.
            pub fn manifest(&self) -> &Manifest {
                &self.est.manifest
            }
            $(
                $(#[$mdoc])*
                pub fn $method(& $($mut_)? self, tables: &[Table]) -> Result<$ret, HostError> {
                    let inner = & $($mut_)? self.inner;
                    self.est.call(tables, |t| inner.$method(t))
                }

                /// The same step on borrowed tables (no copy of their columns); see
                /// [`Host::run_views`].
                pub fn $views(& $($mut_)? self, tables: &[TableView<'_>]) -> Result<$ret, HostError> {
                    let inner = & $($mut_)? self.inner;
                    self.est.call_views(tables, |t| inner.$method(t))
                }
            )*
        }
    };
}

handle!(
    /// A conformal selector: `calibrate` then `select` (many times).
    Selector, quiver_abi::SelectorBox, ConformalSelector, {
        /// Ingest the `calibration` table.
        fn calibrate / calibrate_views(&mut) -> ();
        /// Select units of the `test` table.
        fn select / select_views(&) -> SelectionResult;
    }
);

handle!(
    /// A batch predictor: `calibrate` then `bound`.
    BatchPredictor, quiver_abi::BatchBox, BatchPredictive, {
        /// Ingest the calibration scores.
        fn calibrate / calibrate_views(&mut) -> ();
        /// The set or bound for a batch.
        fn bound / bound_views(&) -> BatchResult;
    }
);

handle!(
    /// A quantile aggregator: `fit`, `calibrate`, `predict`.
    Aggregator, quiver_abi::AggregatorBox, QuantileAggregator, {
        /// Fit weights.
        fn fit / fit_views(&mut) -> ();
        /// Conformal calibration.
        fn calibrate / calibrate_views(&mut) -> ();
        /// Predict quantiles.
        fn predict / predict_views(&) -> AggregationResult;
    }
);

handle!(
    /// A shrinkage estimator: `estimate`.
    Shrinker, quiver_abi::ShrinkageBox, Shrinkage, {
        /// Tune and estimate.
        fn estimate / estimate_views(&) -> ShrinkageResult;
    }
);

handle!(
    /// A critic: `fit` then `values`.
    Critic, quiver_abi::CriticBox, Critic, {
        /// Fit on transitions.
        fn fit / fit_views(&mut) -> ();
        /// Query values.
        fn values / values_views(&) -> CriticResult;
    }
);
