//! The progress observer long plugin steps report to (and may be stopped through).

/// A progress observer for long plugin steps: called with `(done, total, label)` (`total` 0 when
/// unknown) from whichever thread the plugin runs; returning `false` asks the plugin to stop.
/// Cheap to clone; every estimator built with it keeps it alive.
#[derive(Clone)]
pub struct Progress(pub(crate) std::sync::Arc<ProgressCallback>);

pub(crate) type ProgressCallback = Box<dyn Fn(u64, u64, &str) -> bool + Send + Sync>;

extern "C" fn progress_trampoline(
    data: *const (),
    done: u64,
    total: u64,
    label: quiver_abi::abi_stable::std_types::RStr<'_>,
) -> bool {
    // SAFETY: `data` is the `ProgressCallback` inside the Arc of a `Progress` that the estimator
    // (which the plugin belongs to) keeps alive; the callback is Send + Sync.
    let f = unsafe { &*(data as *const ProgressCallback) };
    // a panicking observer stops the plugin rather than unwinding into it
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(done, total, label.as_str()))).unwrap_or(false)
}

impl Progress {
    /// An observer calling `f(done, total, label)`; `f` returns whether to go on.
    pub fn new(f: impl Fn(u64, u64, &str) -> bool + Send + Sync + 'static) -> Self {
        Progress(std::sync::Arc::new(Box::new(f)))
    }
    /// The ABI view of this observer (valid while this `Progress` or a clone lives).
    pub fn sink(&self) -> quiver_abi::ProgressSink {
        quiver_abi::ProgressSink {
            data: std::sync::Arc::as_ptr(&self.0) as *const (),
            report: Some(progress_trampoline),
        }
    }
}
