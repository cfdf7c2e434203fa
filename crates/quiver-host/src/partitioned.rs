//! Runs by parts: a mergeable method (its manifest declares the steps `partial`, `merge` and
//! `finish`) computed partition by partition, the partitions' states merged in a balanced tree,
//! and the result finished from the merged state (docs/scale.md). Only one partition's tables and
//! O(log partitions) states are held at a time.

use crate::run::{validate_owned, validate_views, with_views};
use crate::{ArrayValues, Estimator, Host, HostError, InputError, Progress, RunContext, RunOutput, Table};
use quiver_abi::{BytesColumn, ColumnData, ColumnView, TableView};
use serde_json::{Map, Value};

/// The steps of a method computed by parts.
const STEPS: [&str; 3] = ["partial", "merge", "finish"];

/// What `finish` of a method computed in rounds gives: the result, or the broadcast of another
/// pass over the data (docs/scale.md).
#[derive(Debug)]
pub enum Finished {
    /// The result: what the one-call run returns.
    Result(RunOutput),
    /// Run `partial` over every partition again with this broadcast, merge, and finish with it.
    Again(Vec<u8>),
}

impl Estimator {
    /// Whether the method can be computed by parts (its manifest declares `partial`, `merge` and
    /// `finish`).
    pub fn is_mergeable(&self) -> bool {
        STEPS.iter().all(|s| self.manifest().step(s).is_some())
    }

    /// Whether the method may take several passes over the data (the manifest property
    /// `"rounds"`): its `finish` may answer with a broadcast ([`Estimator::finish_round`]).
    pub fn in_rounds(&self) -> bool {
        let properties: Value = serde_json::from_str(self.manifest().properties_json.as_str()).unwrap_or(Value::Null);
        properties.get("rounds").and_then(Value::as_bool).unwrap_or(false)
    }

    fn require_mergeable(&self) -> Result<(), HostError> {
        if self.is_mergeable() {
            return Ok(());
        }
        Err(HostError::Parameter(format!(
            "method '{}' cannot be computed by parts (its manifest declares no partial/merge/finish steps): give \
             each table once",
            self.method()
        )))
    }

    /// The sealed state of one partition: its `tables` (checked against the manifest first), and
    /// `offsets`, the rows of each table in the partitions before it.
    pub fn partial(&self, tables: &[Table], offsets: &[(String, u64)]) -> Result<Vec<u8>, HostError> {
        self.partial_in_round(tables, offsets, None)
    }

    /// [`Estimator::partial`] in the round of `broadcast` (what [`Estimator::finish_round`] gave;
    /// `None` in the first round).
    pub fn partial_in_round(
        &self,
        tables: &[Table],
        offsets: &[(String, u64)],
        broadcast: Option<&[u8]>,
    ) -> Result<Vec<u8>, HostError> {
        self.require_mergeable()?;
        validate_owned(self.manifest(), tables)?;
        with_views(tables, |views| self.partial_on(views, offsets, broadcast))
    }

    /// [`Estimator::partial_in_round`] on borrowed tables (no copy of their columns).
    pub fn partial_views(
        &self,
        views: &[TableView<'_>],
        offsets: &[(String, u64)],
        broadcast: Option<&[u8]>,
    ) -> Result<Vec<u8>, HostError> {
        self.require_mergeable()?;
        validate_views(self.manifest(), views)?;
        self.partial_on(views, offsets, broadcast)
    }

    fn partial_on(
        &self,
        views: &[TableView<'_>],
        offsets: &[(String, u64)],
        broadcast: Option<&[u8]>,
    ) -> Result<Vec<u8>, HostError> {
        let mut partition = Table::new("partition");
        for (role, offset) in offsets {
            partition = partition.with_i64(role, vec![*offset as i64]);
        }
        let columns = partition.column_views();
        let mut all: Vec<TableView<'_>> = views.to_vec();
        if !offsets.is_empty() {
            all.push(partition.view(&columns));
        }
        let bytes_offsets = broadcast_offsets(broadcast);
        let broadcast_columns = broadcast.map(|b| broadcast_column(b, &bytes_offsets));
        if let Some(c) = &broadcast_columns {
            self.require_rounds()?;
            all.push(TableView::new("broadcast", 1, c));
        }
        let out = self.query_views("partial", &all)?;
        self.state_of(out)
    }

    fn require_rounds(&self) -> Result<(), HostError> {
        if self.in_rounds() {
            return Ok(());
        }
        Err(HostError::Parameter(format!(
            "method '{}' is computed by parts in one pass: it takes no broadcast",
            self.method()
        )))
    }

    /// Two states as one (`a`'s partitions before `b`'s).
    pub fn merge(&self, a: &[u8], b: &[u8]) -> Result<Vec<u8>, HostError> {
        self.require_mergeable()?;
        let out = self.on_states("merge", &[a, b], None)?;
        self.state_of(out)
    }

    /// The result from the state of all the data: what the one-call run returns. A method computed
    /// in rounds that asks for another pass is an error here: drive it with
    /// [`Estimator::finish_round`] (or [`Host::run_in_rounds`]).
    pub fn finish(&self, state: &[u8]) -> Result<RunOutput, HostError> {
        match self.finish_round(state, None)? {
            Finished::Result(out) => Ok(out),
            Finished::Again(_) => Err(HostError::Parameter(format!(
                "method '{}' needs another pass over the data after this one (it is computed in rounds): run \
                 partial over the partitions again with the broadcast that finish_round returns",
                self.method()
            ))),
        }
    }

    /// The result from the state of all the data in the round of `broadcast` (`None`: the first),
    /// or the broadcast of the next round.
    pub fn finish_round(&self, state: &[u8], broadcast: Option<&[u8]>) -> Result<Finished, HostError> {
        self.require_mergeable()?;
        if broadcast.is_some() {
            self.require_rounds()?;
        }
        let mut out = self.on_states("finish", &[state], broadcast)?;
        match out.arrays.iter().position(|(n, _)| n == "broadcast") {
            Some(k) => match out.arrays.swap_remove(k).1.values {
                ArrayValues::Bytes(b) => Ok(Finished::Again(b.into_vec())),
                _ => Err(HostError::BadResult {
                    method: self.method().into(),
                    reason: "its finish step returned a 'broadcast' array that is not bytes".into(),
                }),
            },
            None => Ok(Finished::Result(out)),
        }
    }

    fn on_states(&self, step: &str, states: &[&[u8]], broadcast: Option<&[u8]>) -> Result<RunOutput, HostError> {
        let (mut data, mut offsets) = (Vec::new(), vec![0u64]);
        for s in states {
            data.extend_from_slice(s);
            offsets.push(data.len() as u64);
        }
        let columns = [ColumnView::new("state", ColumnData::Bytes(BytesColumn::new(&data, &offsets)))];
        let bytes_offsets = broadcast_offsets(broadcast);
        let broadcast_columns = broadcast.map(|b| broadcast_column(b, &bytes_offsets));
        let mut views = vec![TableView::new("states", states.len(), &columns)];
        if let Some(c) = &broadcast_columns {
            views.push(TableView::new("broadcast", 1, c));
        }
        self.query_views(step, &views)
    }

    fn state_of(&self, out: RunOutput) -> Result<Vec<u8>, HostError> {
        match out.arrays.into_iter().find(|(n, _)| n == "state").map(|(_, a)| a.values) {
            Some(ArrayValues::Bytes(b)) => Ok(b.into_vec()),
            _ => Err(HostError::BadResult {
                method: self.method().into(),
                reason: "its partial or merge step returned no bytes array 'state'".into(),
            }),
        }
    }
}

/// The offsets of a one-row bytes column holding `broadcast`.
fn broadcast_offsets(broadcast: Option<&[u8]>) -> [u64; 2] {
    [0, broadcast.map_or(0, <[u8]>::len) as u64]
}

/// The table `broadcast`'s one column, over `bytes` cut at `offsets` ([`broadcast_offsets`]).
fn broadcast_column<'a>(bytes: &'a [u8], offsets: &'a [u64; 2]) -> [ColumnView<'a>; 1] {
    [ColumnView::new("broadcast", ColumnData::Bytes(BytesColumn::new(bytes, offsets)))]
}

/// States merged as they arrive, in a balanced tree: like a binary counter, a new state merges
/// with the last one of its level, so at most log₂(partitions) + 1 states are held.
pub struct Merger<'e> {
    estimator: &'e Estimator,
    levels: Vec<(u32, Vec<u8>)>,
}

impl<'e> Merger<'e> {
    /// A merger of `estimator`'s states.
    pub fn new(estimator: &'e Estimator) -> Self {
        Merger { estimator, levels: Vec::new() }
    }
    /// Add the next partition's state.
    pub fn push(&mut self, state: Vec<u8>) -> Result<(), HostError> {
        let mut item = (0u32, state);
        while self.levels.last().is_some_and(|(l, _)| *l == item.0) {
            let (level, a) = self.levels.pop().expect("checked");
            item = (level + 1, self.estimator.merge(&a, &item.1)?);
        }
        self.levels.push(item);
        Ok(())
    }
    /// The state of everything pushed (`None` when nothing was).
    pub fn into_state(mut self) -> Result<Option<Vec<u8>>, HostError> {
        while self.levels.len() > 1 {
            let (_, b) = self.levels.pop().expect("two");
            let (level, a) = self.levels.pop().expect("two");
            self.levels.push((level, self.estimator.merge(&a, &b)?));
        }
        Ok(self.levels.pop().map(|(_, s)| s))
    }
}

/// A refusal of a partition, said to be of that partition: the rows a plugin names, and those of
/// a bad cell the host finds in a table from memory, are the partition's own, so the message
/// says where the partition starts in each table. (A table read from a file counts its rows from
/// the file's first, and the caller names the file.)
fn in_partition(e: HostError, k: usize, offsets: &[(String, u64)], tables: &[Table]) -> HostError {
    let starts = || -> String {
        let starts: Vec<String> =
            offsets.iter().map(|(role, o)| format!("table '{role}' from row {} of all the data", o + 1)).collect();
        format!("(rows counted within partition {} of the run by parts, which holds {})", k + 1, starts.join(", "))
    };
    match e {
        HostError::Input(InputError::Cell { table, column, row, reason })
            if tables.iter().any(|t| t.role == table && t.first_row == 0 && !t.from_text) =>
        {
            let reason = format!("{reason} {}", starts());
            HostError::Input(InputError::Cell { table, column, row, reason })
        }
        HostError::Plugin { method, kind, message } if message.contains(", row ") => {
            let message = format!("{message} {}", starts());
            HostError::Plugin { method, kind, message }
        }
        other => other,
    }
}

/// The roles a run by parts of this method gives whole to every partition (the manifest property
/// `"whole"`, e.g. a selector's calibration set), beside the partitioned ones.
pub fn whole_roles(manifest: &quiver_abi::Manifest) -> Vec<String> {
    roles_property(manifest, "whole")
}

/// The roles a manifest property lists (none when it is absent or not a list of names).
pub(crate) fn roles_property(manifest: &quiver_abi::Manifest, key: &str) -> Vec<String> {
    let properties: Value = serde_json::from_str(manifest.properties_json.as_str()).unwrap_or(Value::Null);
    properties
        .get(key)
        .and_then(Value::as_array)
        .map(|roles| roles.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default()
}

impl Host {
    /// Run `method` by parts over `partitions` — each item the tables of one partition, produced
    /// when asked (read one, compute its state, drop it) — merging the states in a balanced tree
    /// and finishing once. `whole` holds the tables given whole to every partition (the roles of
    /// [`whole_roles`]; read once, lent to each partition without a copy). Partitions whose tables
    /// are all empty contribute nothing. The result equals the one-table run's up to the rounding
    /// of sums (docs/scale.md). A method computed in rounds needs partitions it can read again:
    /// [`Host::run_in_rounds`].
    pub fn run_partitioned<I>(
        &self,
        method: &str,
        params: &Map<String, Value>,
        whole: Vec<Table>,
        partitions: I,
        ctx: RunContext,
        progress: Option<&Progress>,
    ) -> Result<RunOutput, HostError>
    where
        I: IntoIterator<Item = Result<Vec<Table>, HostError>>,
    {
        let mut once = Some(partitions);
        let again = || {
            once.take().ok_or_else(|| {
                HostError::Parameter(format!(
                    "method '{method}' takes several passes over the data (it is computed in rounds), and these \
                     partitions can be read only once: give partitions that can be read again (Host::run_in_rounds)"
                ))
            })
        };
        self.run_in_rounds(method, params, whole, again, ctx, progress)
    }

    /// [`Host::run_partitioned`] for any mergeable method, those computed in rounds included:
    /// `partitions()` gives the partitions afresh for each pass over the data — the first, and one
    /// more each time `finish` answers with a broadcast (the method's round), until it gives the
    /// result. A one-pass method reads them once.
    pub fn run_in_rounds<F, I>(
        &self,
        method: &str,
        params: &Map<String, Value>,
        whole: Vec<Table>,
        mut partitions: F,
        ctx: RunContext,
        progress: Option<&Progress>,
    ) -> Result<RunOutput, HostError>
    where
        F: FnMut() -> Result<I, HostError>,
        I: IntoIterator<Item = Result<Vec<Table>, HostError>>,
    {
        self.run_passes(method, params, whole, ctx, progress, |pass, merger| {
            let partitions = partitions()?.into_iter();
            // the partitions' progress (the observer may stop the run between two of them)
            let total = partitions.size_hint().1.unwrap_or(0) as u64;
            let mut offsets: Vec<(String, u64)> = Vec::new();
            for (k, partition) in partitions.enumerate() {
                pass.go_on(k as u64, total)?;
                let tables = partition?;
                pass.refuse_whole(&tables)?;
                if tables.iter().all(|t| t.nrows == 0) {
                    continue;
                }
                let before = |role: &str| offsets.iter().find(|(r, _)| r == role).map_or(0, |o| o.1);
                let here: Vec<(String, u64)> = tables.iter().map(|t| (t.role.clone(), before(&t.role))).collect();
                for t in &tables {
                    match offsets.iter_mut().find(|(r, _)| *r == t.role) {
                        Some(o) => o.1 += t.nrows as u64,
                        None => offsets.push((t.role.clone(), t.nrows as u64)),
                    }
                }
                merger.push(pass.state(k, tables, &here)?)?;
            }
            pass.finished(total);
            Ok(())
        })
    }

    /// The passes of a run by parts: `pass` computes one pass's states into the merger (through
    /// [`Pass::state`]); then `finish` gives the result, or a broadcast and another pass.
    pub(crate) fn run_passes(
        &self,
        method: &str,
        params: &Map<String, Value>,
        mut whole: Vec<Table>,
        ctx: RunContext,
        progress: Option<&Progress>,
        mut pass: impl FnMut(&Pass<'_>, &mut Merger<'_>) -> Result<(), HostError>,
    ) -> Result<RunOutput, HostError> {
        let est = self.create_observed(method, params, ctx, progress)?;
        est.require_mergeable()?;
        let given_whole = whole_roles(est.manifest());
        if let Some(t) = whole.iter().find(|t| !given_whole.contains(&t.role)) {
            return Err(HostError::Parameter(format!(
                "table '{}' cannot be given whole to every partition of '{method}' (the tables it takes whole: {})",
                t.role,
                if given_whole.is_empty() { "none".to_string() } else { given_whole.join(", ") }
            )));
        }
        for t in whole.iter_mut() {
            if let Some(spec) = est.manifest().tables.iter().find(|s| s.role.as_str() == t.role) {
                t.coerce(spec);
                t.validate(spec)?;
            }
        }
        let whole_columns: Vec<Vec<ColumnView<'_>>> = whole.iter().map(Table::column_views).collect();
        let whole_views: Vec<TableView<'_>> = whole.iter().zip(&whole_columns).map(|(t, c)| t.view(c)).collect();
        let mut broadcast: Option<Vec<u8>> = None;
        for number in 1.. {
            let label = if number == 1 { "partitions".to_string() } else { format!("partitions (pass {number})") };
            let this = Pass {
                est: &est,
                whole: &whole,
                whole_views: &whole_views,
                given_whole: &given_whole,
                broadcast: broadcast.as_deref(),
                label,
                progress,
            };
            let mut merger = Merger::new(&est);
            pass(&this, &mut merger)?;
            let state = merger.into_state()?.ok_or_else(|| {
                HostError::Parameter(format!("a partitioned run of '{method}' was given no rows in any partition"))
            })?;
            match est.finish_round(&state, broadcast.as_deref())? {
                Finished::Result(out) => return Ok(out),
                Finished::Again(next) => broadcast = Some(next),
            }
        }
        unreachable!("the passes end with a result or an error")
    }
}

/// One pass over the data of a run by parts: what computing a partition's state needs.
pub(crate) struct Pass<'a> {
    est: &'a Estimator,
    whole: &'a [Table],
    whole_views: &'a [TableView<'a>],
    given_whole: &'a [String],
    broadcast: Option<&'a [u8]>,
    label: String,
    progress: Option<&'a Progress>,
}

impl Pass<'_> {
    /// Tell the observer that `done` of `total` partitions are done; an error when it stops the run.
    pub(crate) fn go_on(&self, done: u64, total: u64) -> Result<(), HostError> {
        if self.progress.is_none_or(|p| (p.0)(done, total, &self.label)) {
            return Ok(());
        }
        Err(HostError::Plugin {
            method: self.est.method().into(),
            kind: quiver_abi::ErrorKind::Cancelled,
            message: format!("cancelled after {done} partition(s) of the run by parts"),
        })
    }

    /// Tell the observer that the pass's `total` partitions are done (`done` at least one, so
    /// that a bar ends full); the run goes on to `finish` whatever it answers.
    pub(crate) fn finished(&self, total: u64) {
        if let Some(p) = self.progress {
            (p.0)(total.max(1), total, &self.label);
        }
    }

    /// A partition that holds a table given whole is refused.
    pub(crate) fn refuse_whole(&self, tables: &[Table]) -> Result<(), HostError> {
        match tables.iter().find(|t| self.given_whole.contains(&t.role)) {
            Some(t) => Err(HostError::Parameter(format!(
                "table '{}' is given whole to every partition of '{}': give it once, not in parts",
                t.role,
                self.est.method()
            ))),
            None => Ok(()),
        }
    }

    /// The state of partition `k` (its tables checked against the manifest first, beside the
    /// tables given whole), its tables starting after `here` rows of each.
    pub(crate) fn state(&self, k: usize, mut tables: Vec<Table>, here: &[(String, u64)]) -> Result<Vec<u8>, HostError> {
        crate::validate_tables_beside(self.est.manifest(), &mut tables, self.whole)
            .map_err(|e| in_partition(e, k, here, &tables))?;
        with_views(&tables, |views| {
            let mut all = views.to_vec();
            all.extend(self.whole_views.iter().cloned());
            self.est.partial_on(&all, here, self.broadcast)
        })
        .map_err(|e| in_partition(e, k, here, &tables))
    }
}
