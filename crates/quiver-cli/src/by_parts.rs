//! `quiver run` by parts (docs/scale.md): a mergeable method's tables given in parts (files,
//! patterns) are read one partition at a time; one Parquet file is read by row groups, or — for a
//! table the method may cut anywhere — in slices on every core ([`quiver_host::ParquetParts`]).

use quiver_host::{ErrorKind, Host, HostError, LoadedPlugin, PartInput, Progress, RunContext, RunOutput};
use serde_json::{Map, Value};
use std::path::PathBuf;

/// The partitions of a run: one when every table is given once as one file; with a table given
/// in parts (the same role several times, a pattern matching several files, or — for a method
/// computed by parts — a Parquet file of several row groups), every table must be given in as
/// many parts, and partition i holds the i-th part of each — except the roles in `whole`, which
/// a method computed by parts reads whole in every partition (returned first, once each).
pub(crate) fn partitions(
    inputs: &[(String, PathBuf)],
    by_parts: bool,
    whole: &[String],
) -> Result<(Vec<PartInput>, Vec<Vec<PartInput>>), HostError> {
    let mut roles: Vec<(&str, Vec<PartInput>)> = Vec::new();
    let mut given_whole: Vec<PartInput> = Vec::new();
    for (role, path) in inputs {
        if by_parts && whole.contains(role) {
            if given_whole.iter().any(|p| &p.role == role) {
                return Err(HostError::Parameter(format!(
                    "table '{role}' is read whole by every partition: give it once (one file), not in parts"
                )));
            }
            given_whole.push(PartInput { role: role.clone(), path: path.clone(), row_group: None });
            continue;
        }
        let groups =
            if by_parts && quiver_host::is_parquet(path) { quiver_host::parquet_row_groups(path, role)? } else { 0 };
        let parts: Vec<PartInput> = if groups > 1 {
            (0..groups).map(|g| PartInput { role: role.clone(), path: path.clone(), row_group: Some(g) }).collect()
        } else {
            vec![PartInput { role: role.clone(), path: path.clone(), row_group: None }]
        };
        match roles.iter_mut().find(|(r, _)| r == role) {
            Some((_, p)) => p.extend(parts),
            None => roles.push((role, parts)),
        }
    }
    let parts = roles.iter().map(|(_, p)| p.len()).max().unwrap_or(1);
    if let Some((role, p)) = roles.iter().find(|(_, p)| p.len() != parts) {
        return Err(HostError::Parameter(format!(
            "table '{role}' is given in {} part(s) and another in {parts}: a run by parts reads every table in as \
             many parts (partition i holds the i-th part of each)",
            p.len()
        )));
    }
    Ok((given_whole, (0..parts).map(|i| roles.iter().map(|(_, p)| p[i].clone()).collect()).collect()))
}

/// Run by parts when the inputs call for it: `None` when they do not (every table given once and
/// not a Parquet file of several parts), or when a method refuses its settings by parts
/// (`ErrorKind::Unsupported`) and each table was given once — then the caller reads the files
/// whole, as for a method not computed by parts.
pub(crate) fn run(
    host: &Host,
    plugin: &LoadedPlugin,
    params: &Map<String, Value>,
    inputs: &[(String, PathBuf)],
    (given_whole, parts): (&[PartInput], &[Vec<PartInput>]),
    ctx: RunContext,
    progress: &Progress,
) -> Result<Option<RunOutput>, HostError> {
    let method = plugin.name();
    let manifest = &plugin.manifest;
    // each table given once: a method that refuses these settings by parts then reads the file whole
    let implicit_parts = inputs.iter().all(|(r, _)| inputs.iter().filter(|(q, _)| q == r).count() == 1);
    // the tables read in parts: one Parquet file?
    let whole = quiver_host::whole_roles(manifest);
    let cut: Vec<&(String, PathBuf)> = inputs.iter().filter(|(r, _)| !whole.contains(r)).collect();
    let one_parquet = match cut.as_slice() {
        [(role, path)] if quiver_host::is_parquet(path) => Some((role, path)),
        _ => None,
    };
    let result = match one_parquet {
        // one Parquet file: its row groups (or slices) read on the workers
        Some((role, path)) => {
            use quiver_host::PartitionStreams;
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            let workers = if ctx.threads > 0 { cores.min(ctx.threads as usize) } else { cores };
            let mut budget = quiver_host::InputBudget::from_limit();
            let file =
                quiver_host::ParquetParts::open(manifest, role, path, quiver_host::SLICE_ROWS, workers, &mut budget)?;
            let partitions = (0..file.streams()).fold(0usize, |n, g| n.saturating_add(file.partitions(g)));
            if partitions < 2 {
                return Ok(None);
            }
            // a table cut only at its row groups is read one row group at a time (memory holds one)
            let workers = if file.sliced() { workers } else { 1 };
            quiver_host::retain_freed_memory();
            let whole_tables = quiver_host::read_partition(manifest, given_whole)?;
            host.run_streams(method, params, whole_tables, &file, workers, ctx, Some(progress)).map_err(|e| match e {
                HostError::Input(i) if !matches!(i, quiver_host::InputError::File { .. }) => {
                    HostError::Parameter(format!("{i} (in {})", path.display()))
                }
                e => e,
            })
        }
        None if parts.len() > 1 => {
            // one partition read at a time: memory holds one partition, the tables every
            // partition reads whole, and the states
            // the partitions' columns, freed one after another, reuse the same pages
            quiver_host::retain_freed_memory();
            let whole_tables = quiver_host::read_partition(manifest, given_whole)?;
            // the partition being read: a bad value found in it counts rows from its own files'
            // first, so the message says which files those are
            let current = std::cell::Cell::new(None);
            // read afresh for each pass over the data (a method computed in rounds makes several)
            let read = || {
                Ok(parts.iter().enumerate().map(|(k, part)| {
                    current.set(Some(k));
                    quiver_host::read_partition(manifest, part)
                }))
            };
            host.run_in_rounds(method, params, whole_tables, read, ctx, Some(progress)).map_err(|e| {
                match (e, current.get()) {
                    (HostError::Input(i), Some(k)) if !matches!(i, quiver_host::InputError::File { .. }) => {
                        let files: Vec<String> = parts[k].iter().map(|p| p.path.display().to_string()).collect();
                        HostError::Parameter(format!(
                            "{i} (in {}: partition {} of the run by parts)",
                            files.join(", "),
                            k + 1
                        ))
                    }
                    (e, _) => e,
                }
            })
        }
        None => return Ok(None),
    };
    match result {
        Err(HostError::Plugin { kind: ErrorKind::Unsupported, message, .. }) if implicit_parts => {
            eprintln!("note: {message}; reading the whole file instead");
            Ok(None)
        }
        other => other.map(Some),
    }
}
