//! How a long computation reports progress, learns that it should stop, and how many worker
//! threads it may use — a small trait of the algorithm crates' own, so that they run the same
//! under a plugin (whose context forwards to the host's progress bar and Ctrl-C), in a test, or
//! in a user's program ([`Silent`]).

use thiserror::Error;

/// Where a long computation reports progress.
pub trait Progress: Sync {
    /// `done` of `total` units (0 when unknown) of the work `label` are done; `false` asks the
    /// computation to stop.
    fn report(&self, done: u64, total: u64, label: &str) -> bool;
    /// Worker threads the computation may use (0: one per core).
    fn threads(&self) -> u32 {
        0
    }
}

/// A computation stopped because its caller asked it to ([`Progress::report`] returned `false`).
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("stopped on request during '{label}' ({done} of {total} done)")]
pub struct Cancelled {
    /// The work being done.
    pub label: String,
    /// Units done.
    pub done: u64,
    /// Units in all (0 when unknown).
    pub total: u64,
}

/// Report progress to `progress` and go on, or stop with [`Cancelled`] when asked to: a
/// checkpoint that a loop passes with `?`.
pub fn checkpoint(progress: &dyn Progress, done: u64, total: u64, label: &str) -> Result<(), Cancelled> {
    if progress.report(done, total, label) {
        Ok(())
    } else {
        Err(Cancelled { label: label.to_string(), done, total })
    }
}

/// No progress reports, never a request to stop, the default thread count.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Progress for Silent {
    fn report(&self, _: u64, _: u64, _: &str) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct StopAfter(u64);
    impl Progress for StopAfter {
        fn report(&self, done: u64, _: u64, _: &str) -> bool {
            done < self.0
        }
    }

    #[test]
    fn checkpoints_stop_when_asked() {
        assert!(checkpoint(&Silent, 5, 10, "x").is_ok());
        assert!(checkpoint(&StopAfter(3), 2, 10, "fit").is_ok());
        let e = checkpoint(&StopAfter(3), 3, 10, "fit").unwrap_err();
        assert_eq!(e.to_string(), "stopped on request during 'fit' (3 of 10 done)");
    }
}
