//! Runs by parts with several workers (docs/scale.md): the partitions come in independent
//! **streams** — a Parquet file's row groups — each read in order by one worker, which checks
//! and computes the state of each of its partitions right after reading it (the partition still
//! in the processor's caches); the run merges the states in the streams' order, so the result
//! does not depend on the number of workers. One pass of a method computed in rounds is one
//! round of the workers.

use crate::partitioned::Pass;
use crate::{Host, HostError, Progress, RunContext, RunOutput, Table};
use serde_json::{Map, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

/// States of one stream that may wait for the merge (small: a state is sums, not rows).
const STATES_AHEAD: usize = 64;

/// One stream's partitions, in order: each the tables of one partition, or the error that ends
/// the stream.
pub type Partitions<'a> = Box<dyn Iterator<Item = Result<Vec<Table>, HostError>> + 'a>;

/// The partitions of a run in independent streams, each read in order by one worker.
pub trait PartitionStreams: Sync {
    /// How many streams there are.
    fn streams(&self) -> usize;
    /// How many partitions stream `g` gives (for progress).
    fn partitions(&self, g: usize) -> usize;
    /// Stream `g`: its partitions in order, read in the calling thread. Each partition's tables
    /// count their rows from their whole table's first ([`Table::first_row`]): that is the
    /// partition's place, the offset a method keys its rows by.
    fn open(&self, g: usize) -> Result<Partitions<'_>, HostError>;
}

/// What a worker sends the merge: a partition's state, the error that ends its work, or the end
/// of a stream.
enum Done {
    State(Vec<u8>),
    Failed(HostError),
    StreamEnd,
}

impl Host {
    /// Run `method` by parts over `streams` on `workers` threads (at least one; each takes the
    /// next stream not yet taken, so that they finish together): like [`Host::run_in_rounds`],
    /// with the partitions read, checked and computed on the workers, and the states merged in
    /// the streams' order — the same result for any number of workers. `whole` holds the tables given whole to every
    /// partition. The first error in the streams' order is returned; a panic while reading a
    /// stream is an error, not a crash.
    #[allow(clippy::too_many_arguments)]
    pub fn run_streams(
        &self,
        method: &str,
        params: &Map<String, Value>,
        whole: Vec<Table>,
        streams: &dyn PartitionStreams,
        workers: usize,
        ctx: RunContext,
        progress: Option<&Progress>,
    ) -> Result<RunOutput, HostError> {
        let count = streams.streams();
        let workers = workers.clamp(1, count.max(1));
        // each stream's first partition, numbered across the streams (for messages), and after
        // the last stream's, the number of partitions
        let firsts: Vec<usize> = std::iter::once(0)
            .chain((0..count).scan(0usize, |before, g| {
                *before = streams.partitions(g).saturating_add(*before);
                Some(*before)
            }))
            .collect();
        let total = firsts[count] as u64;
        self.run_passes(method, params, whole, ctx, progress, |pass, merger| {
            let (senders, receivers): (Vec<SyncSender<Done>>, Vec<Receiver<Done>>) =
                (0..count).map(|g| sync_channel(streams.partitions(g).min(STATES_AHEAD) + 1)).unzip();
            let next = AtomicUsize::new(0);
            std::thread::scope(|scope| {
                for _ in 0..workers {
                    scope.spawn(|| work(pass, streams, &firsts, &next, &senders));
                }
                // the receivers dropped (on return, before the workers are joined) end the workers
                // at their next state
                merge_in_order(pass, merger, receivers, total)
            })
        })
    }
}

/// A worker: the states of every partition of the next stream not yet taken, in order, sent to
/// the merge through that stream's channel; then the next stream, until none is left or the work
/// stops (an error sent, or the merge gone).
fn work(
    pass: &Pass<'_>,
    streams: &dyn PartitionStreams,
    firsts: &[usize],
    next: &AtomicUsize,
    out: &[SyncSender<Done>],
) {
    loop {
        let g = next.fetch_add(1, Ordering::Relaxed);
        let Some(out) = out.get(g) else { return };
        let kept_on = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            stream_states(pass, streams, (g, firsts[g]), out)
        }))
        .unwrap_or_else(|panic| {
            let why = quiver_sdk::panic_message(panic.as_ref());
            let failed = HostError::Parameter(format!("reading part {} of the input failed: {why}", g + 1));
            let _ = out.send(Done::Failed(failed));
            false
        });
        if !kept_on {
            return;
        }
    }
}

/// Stream `g`'s states sent to the merge, then its end; false when the work stops (an error
/// sent, or the merge gone). Its partitions are numbered from `first` in messages.
fn stream_states(
    pass: &Pass<'_>,
    streams: &dyn PartitionStreams,
    (g, first): (usize, usize),
    out: &SyncSender<Done>,
) -> bool {
    let partitions = match streams.open(g) {
        Ok(p) => p,
        Err(e) => {
            let _ = out.send(Done::Failed(e));
            return false;
        }
    };
    for (k, partition) in partitions.enumerate() {
        let k = first.saturating_add(k);
        let state = partition.and_then(|tables| {
            pass.refuse_whole(&tables)?;
            if tables.iter().all(|t| t.nrows == 0) {
                return Ok(None);
            }
            let here: Vec<(String, u64)> = tables.iter().map(|t| (t.role.clone(), t.first_row as u64)).collect();
            pass.state(k, tables, &here).map(Some)
        });
        let message = match state {
            Ok(Some(s)) => Done::State(s),
            Ok(None) => continue,
            Err(e) => Done::Failed(e),
        };
        let failed = matches!(message, Done::Failed(_));
        if out.send(message).is_err() || failed {
            return false;
        }
    }
    out.send(Done::StreamEnd).is_ok()
}

/// The workers' states merged stream by stream, in order.
fn merge_in_order(
    pass: &Pass<'_>,
    merger: &mut crate::Merger<'_>,
    receivers: Vec<Receiver<Done>>,
    total: u64,
) -> Result<(), HostError> {
    let mut done = 0u64;
    for (g, from) in receivers.iter().enumerate() {
        loop {
            pass.go_on(done, total)?;
            match from.recv() {
                Ok(Done::State(s)) => {
                    merger.push(s)?;
                    done += 1;
                }
                Ok(Done::Failed(e)) => return Err(e),
                Ok(Done::StreamEnd) => break,
                Err(_) => {
                    return Err(HostError::Parameter(format!(
                        "the worker reading part {} of the input stopped without a result",
                        g + 1
                    )))
                }
            }
        }
    }
    pass.finished(total);
    Ok(())
}
