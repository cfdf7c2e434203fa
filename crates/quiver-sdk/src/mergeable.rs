//! Mergeable estimators: results computed by parts and merged exactly (docs/scale.md).
//!
//! A method whose answer is a function of sums over rows implements [`MergeableImpl`] beside its
//! family trait: `partial(tables) → State` on each partition of the data, `merge(State, State) →
//! State` (associative: any tree of merges gives the same state up to the rounding of sums), and
//! `finish(State)` → the result its one-call run returns. [`Created::mergeable`] adds the three
//! as read-only steps of the one estimator object, and [`ManifestBuilder::mergeable`] declares
//! them (steps `partial`, `merge`, `finish`, property `"mergeable": true`) — data, not a layout
//! change: older hosts ignore them, and the host refuses a partitioned run of a method without
//! them.
//!
//! What crosses the boundary is bytes: a state is sealed in an envelope ([`seal`], [`open`]) —
//! magic, format, the method, its version and a hash of its parameters, the payload (serde with
//! postcard, a compact binary format) and a checksum — so that merging states of another method,
//! version or parameters is a clear error, and a truncated or corrupted state an error, never a
//! crash. States travel as the bytes column `state` of a table `states` (`merge`: two rows;
//! `finish`: one) and come back as the bytes array `state`. A partition may need to know where it
//! starts (a counter-based draw per global row): the host passes a one-row table `partition` with
//! one column per data table, the number of that table's rows in the partitions before it
//! ([`Offsets`]). A method may also read tables **whole** in every partition (a selector's
//! calibration set beside its partitioned test units: [`crate::ManifestBuilder::given_whole`]).
//!
//! **Rounds.** A method whose answer takes several passes over the data (SURE's search for λ̂:
//! each sweep a sum over units at points the previous sweeps chose) implements [`RoundsImpl`]
//! instead: `finish` may answer [`Round::Again`] with a **broadcast** — the next pass's small
//! instructions (the λ points to sweep), sealed like a state but as a broadcast (magic `QVBC`) —
//! and the driver runs `partial` over every partition again with the table `broadcast` (bytes
//! column `broadcast`, one row), merges, and finishes with that broadcast, until `finish` returns
//! the result ([`Round::Done`]). Every state and broadcast carries its round, so states of
//! different rounds refuse to merge. [`crate::ManifestBuilder::rounds`] declares it (property
//! `"rounds": true`).

use crate::{Context, Created, Result, StepResult, Tables};
use quiver_abi::abi_stable::sabi_trait::TD_Opaque;
use quiver_abi::abi_stable::std_types::{RStr, RVec};
use quiver_abi::{ArrayData, ErrorKind, NamedArray, PluginError, PluginResult, StepOutput, TableViews};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The step that computes a partition's state.
pub const PARTIAL: &str = "partial";
/// The step that merges two states.
pub const MERGE: &str = "merge";
/// The step that turns a state into the result.
pub const FINISH: &str = "finish";
/// The table of states (`merge`, `finish`) and its bytes column.
pub const STATES: &str = "states";
/// The bytes column (and output array) holding a state.
pub const STATE: &str = "state";
/// The table that tells a partition where it starts.
pub const PARTITION: &str = "partition";
/// The manifest property listing the roles given whole to every partition
/// ([`crate::ManifestBuilder::given_whole`]).
pub const WHOLE: &str = "whole";
/// The table (and its bytes column, and the output array of `finish`) holding a round's broadcast.
pub const BROADCAST: &str = "broadcast";
/// The manifest property of a method computed in rounds ([`crate::ManifestBuilder::rounds`]).
pub const ROUNDS: &str = "rounds";
/// The manifest property listing the partitioned roles whose rows a partition boundary may fall
/// between anywhere ([`crate::ManifestBuilder::cut_anywhere`]).
pub const CUT_ANYWHERE: &str = "cut_anywhere";

/// A method computed by parts: see the [module](self) documentation.
pub trait MergeableImpl: Send + Sync + 'static {
    /// What a partition contributes (sums, counts, extremes): serde-serialisable.
    type State: Serialize + DeserializeOwned;
    /// The result `finish` returns — the same type, and the same JSON, as the run's last step.
    type Output: StepResult;
    /// The state of one partition of the data (`tables`), which starts at `offsets`.
    fn partial(&self, tables: &Tables<'_>, offsets: &Offsets) -> Result<Self::State>;
    /// Two partitions' states as one (`a`'s rows before `b`'s).
    fn merge(&self, a: Self::State, b: Self::State) -> Result<Self::State>;
    /// The result from the state of all the data.
    fn finish(&self, state: Self::State) -> Result<Self::Output>;
}

/// What `finish` of a method computed in rounds answers: another pass over the data with this
/// broadcast, or the result.
#[derive(Debug, Clone, PartialEq)]
pub enum Round<B, O> {
    /// Run `partial` over every partition again with this broadcast, merge, and finish again.
    Again(B),
    /// The result.
    Done(O),
}

/// A method computed by parts in several passes over the data (see the [module](self)
/// documentation): each round's `partial` reads the round's broadcast, `None` in the first.
pub trait RoundsImpl: Send + Sync + 'static {
    /// What the driver sends every partition in a round after the first: small.
    type Broadcast: Serialize + DeserializeOwned;
    /// What a partition contributes in a round.
    type State: Serialize + DeserializeOwned;
    /// The result `finish` returns at the end — the same JSON as the one-call run.
    type Output: StepResult;
    /// The state of one partition in the round of `broadcast` (`None`: the first round).
    fn partial(
        &self,
        tables: &Tables<'_>,
        offsets: &Offsets,
        broadcast: Option<&Self::Broadcast>,
    ) -> Result<Self::State>;
    /// Two partitions' states of one round as one (`a`'s rows before `b`'s).
    fn merge(&self, a: Self::State, b: Self::State) -> Result<Self::State>;
    /// From the state of all the data in the round of `broadcast`: the next round's broadcast, or
    /// the result.
    fn finish(
        &self,
        state: Self::State,
        broadcast: Option<&Self::Broadcast>,
    ) -> Result<Round<Self::Broadcast, Self::Output>>;
}

/// A one-pass [`MergeableImpl`] as a method of one round.
struct OnePass<M>(M);

impl<M: MergeableImpl> RoundsImpl for OnePass<M> {
    type Broadcast = ();
    type State = M::State;
    type Output = M::Output;
    fn partial(&self, tables: &Tables<'_>, offsets: &Offsets, _: Option<&()>) -> Result<M::State> {
        self.0.partial(tables, offsets)
    }
    fn merge(&self, a: M::State, b: M::State) -> Result<M::State> {
        self.0.merge(a, b)
    }
    fn finish(&self, state: M::State, _: Option<&()>) -> Result<Round<(), M::Output>> {
        self.0.finish(state).map(Round::Done)
    }
}

/// Where a partition starts: for each data table, the rows of that table in the partitions before
/// it (0 for the first, or when the host passes no `partition` table).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Offsets(Vec<(String, u64)>);

impl Offsets {
    /// Read the `partition` table, when given.
    pub fn read(tables: &Tables<'_>) -> Result<Offsets> {
        let Some(t) = tables.opt(PARTITION) else { return Ok(Offsets::default()) };
        let mut out = Vec::new();
        for name in t.column_names() {
            let v = t.i64(name)?;
            match v {
                [x] if *x >= 0 => out.push((name.to_string(), *x as u64)),
                _ => {
                    return Err(PluginError::input(format!(
                        "table '{PARTITION}', column '{name}': one row holding a count of rows (>= 0)"
                    )))
                }
            }
        }
        Ok(Offsets(out))
    }
    /// The rows of table `role` before this partition.
    pub fn of(&self, role: &str) -> u64 {
        self.0.iter().find(|(r, _)| r == role).map_or(0, |(_, o)| *o)
    }
}

const MAGIC: &[u8; 4] = b"QVST";
const BROADCAST_MAGIC: &[u8; 4] = b"QVBC";
/// 2: the round after the parameters' hash.
const FORMAT: u8 = 2;

/// Who made a state: the method, its version and a hash of its parameters (as used, defaults
/// filled in).
#[derive(Debug, Clone, PartialEq)]
pub struct StateOwner {
    method: String,
    version: String,
    parameters: u64,
}

impl StateOwner {
    /// The owner of the states an estimator built with `ctx` makes.
    pub fn of(ctx: &Context) -> StateOwner {
        StateOwner {
            method: ctx.method().to_string(),
            version: ctx.version().to_string(),
            parameters: fnv1a(ctx.parameters().to_string().as_bytes()),
        }
    }
}

/// FNV-1a, 64 bits: the parameters' hash and the envelope's checksum (stable across platforms and
/// releases, unlike `std`'s hasher).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// A fingerprint of values every partition should share (a calibration set given whole to each):
/// FNV-1a over their bits, so that states made from different such tables refuse to merge.
pub fn fingerprint(values: impl IntoIterator<Item = f64>) -> u64 {
    values.into_iter().fold(0xcbf2_9ce4_8422_2325u64, |h, x| {
        x.to_bits().to_le_bytes().iter().fold(h, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
    })
}

fn put_text(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(&(text.len() as u32).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
}

/// Seal `state` for `owner`: magic `QVST`, format, method, version, parameters' hash, payload
/// length and payload (postcard), then the FNV-1a checksum of all that.
pub fn seal<T: Serialize>(owner: &StateOwner, state: &T) -> Result<Vec<u8>> {
    seal_as(MAGIC, owner, 0, state)
}

fn seal_as<T: Serialize>(magic: &[u8; 4], owner: &StateOwner, round: u32, state: &T) -> Result<Vec<u8>> {
    let payload = postcard::to_allocvec(state)
        .map_err(|e| PluginError::new(ErrorKind::Internal, format!("could not serialise a state: {e}")))?;
    let mut out = Vec::with_capacity(payload.len() + 64);
    out.extend_from_slice(magic);
    out.push(FORMAT);
    put_text(&mut out, &owner.method);
    put_text(&mut out, &owner.version);
    out.extend_from_slice(&owner.parameters.to_le_bytes());
    out.extend_from_slice(&round.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&payload);
    let sum = fnv1a(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    Ok(out)
}

/// A reader over an envelope that fails, never panics, on a short buffer.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }
    fn text(&mut self) -> Option<&'a str> {
        let n = u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")) as usize;
        std::str::from_utf8(self.take(n)?).ok()
    }
}

/// Open a state sealed by [`seal`] for `owner`: an error — naming what differs — when it was made
/// by another method, version or parameters; when it is truncated, corrupted or not a state.
pub fn open<T: DeserializeOwned>(owner: &StateOwner, bytes: &[u8]) -> Result<T> {
    open_as(MAGIC, (STATES, STATE), owner, bytes).map(|(_, t)| t)
}

/// [`open`] for the envelope `magic` (a state or a broadcast) read from table `at.0`, column
/// `at.1`: the round it was made in, and the payload.
fn open_as<T: DeserializeOwned>(
    magic: &[u8; 4],
    at: (&str, &str),
    owner: &StateOwner,
    bytes: &[u8],
) -> Result<(u32, T)> {
    let what = if magic == MAGIC { "state" } else { "broadcast" };
    let bad = |why: &str| PluginError::input(format!("table '{}', column '{}': {why}", at.0, at.1));
    let truncated = || bad(&format!("a truncated {what}"));
    if bytes.len() < magic.len() + 1 || &bytes[..4] != magic {
        let other = if magic == MAGIC { BROADCAST_MAGIC } else { MAGIC };
        if bytes.len() >= 4 && &bytes[..4] == other {
            return Err(bad(&format!(
                "a {} where a {what} belongs",
                if magic == MAGIC { "broadcast" } else { "state" }
            )));
        }
        let header = std::str::from_utf8(magic).expect("ASCII");
        return Err(bad(&format!("not a Quiver {what} (no {header} header)")));
    }
    if bytes.len() < 8 + 13 {
        return Err(truncated());
    }
    let (body, sum) = bytes.split_at(bytes.len() - 8);
    if fnv1a(body) != u64::from_le_bytes(sum.try_into().expect("8 bytes")) {
        return Err(bad(&format!("a corrupted or truncated {what} (its checksum does not match)")));
    }
    let mut r = Reader(&body[4..]);
    let format = r.take(1).ok_or_else(truncated)?[0];
    if format != FORMAT {
        return Err(bad(&format!("{what} format {format}, this build reads format {FORMAT}")));
    }
    let (method, version) = (r.text().ok_or_else(truncated)?, r.text().ok_or_else(truncated)?);
    let parameters = r.u64().ok_or_else(truncated)?;
    if method != owner.method {
        return Err(bad(&format!(
            "a {what} of method '{method}', not '{}': states merge only within a method",
            owner.method
        )));
    }
    if version != owner.version {
        return Err(bad(&format!(
            "a {what} of {method} {version}, not {}: merge states made by the same version",
            owner.version
        )));
    }
    if parameters != owner.parameters {
        return Err(bad(&format!(
            "a {what} made with other parameters: every partition of a run uses the same parameters"
        )));
    }
    let round = u32::from_le_bytes(r.take(4).ok_or_else(truncated)?.try_into().expect("4 bytes"));
    let len = r.u64().ok_or_else(truncated)?;
    let payload = usize::try_from(len).ok().and_then(|n| r.take(n)).ok_or_else(truncated)?;
    if !r.0.is_empty() {
        return Err(bad(&format!("bytes after the {what}'s payload")));
    }
    let value = postcard::from_bytes(payload).map_err(|e| bad(&format!("its payload does not decode ({e})")))?;
    Ok((round, value))
}

/// Most rounds a method may ask for: a search that never ends is a defect, stopped here.
pub const MAX_ROUNDS: u32 = 10_000;

struct MergeAdapter<M: RoundsImpl> {
    inner: quiver_abi::EstimatorBox,
    merge: M,
    owner: StateOwner,
}

impl<M: RoundsImpl> MergeAdapter<M> {
    fn states(&self, tables: &Tables<'_>, rows: usize) -> Result<Vec<(u32, M::State)>> {
        let t = tables.get(STATES)?;
        let col = t.bytes(STATE)?;
        if col.len() != rows {
            return Err(PluginError::input(format!("table '{STATES}': {rows} state(s) expected, {} given", col.len())));
        }
        (0..rows)
            .map(|i| open_as(MAGIC, (STATES, STATE), &self.owner, col.get(i).expect("a valid column's row")))
            .collect()
    }
    /// The round's broadcast (table `broadcast`, one row), `(0, None)` without one.
    fn broadcast(&self, tables: &Tables<'_>) -> Result<(u32, Option<M::Broadcast>)> {
        let Some(t) = tables.opt(BROADCAST) else { return Ok((0, None)) };
        let col = t.bytes(BROADCAST)?;
        if col.len() != 1 {
            return Err(PluginError::input(format!(
                "table '{BROADCAST}': one broadcast expected, {} given",
                col.len()
            )));
        }
        let (round, b) = open_as(BROADCAST_MAGIC, (BROADCAST, BROADCAST), &self.owner, col.get(0).expect("one row"))?;
        Ok((round, Some(b)))
    }
    fn sealed(&self, round: u32, state: &M::State) -> Result<StepOutput> {
        let bytes = seal_as(MAGIC, &self.owner, round, state)?;
        let mut array = NamedArray::vector(STATE, ArrayData::Bytes(RVec::from(bytes)));
        array.in_json = false;
        Ok(StepOutput::new(Default::default(), RVec::from(vec![array])))
    }
    fn run(&self, name: &str, tables: &Tables<'_>) -> Result<StepOutput> {
        match name {
            PARTIAL => {
                let offsets = Offsets::read(tables)?;
                let (round, broadcast) = self.broadcast(tables)?;
                let state = self.merge.partial(tables, &offsets, broadcast.as_ref())?;
                self.sealed(round, &state)
            }
            MERGE => {
                let mut s = self.states(tables, 2)?;
                let ((rb, b), (ra, a)) = (s.pop().expect("two"), s.pop().expect("two"));
                if ra != rb {
                    return Err(PluginError::input(format!(
                        "table '{STATES}': a state of round {ra} and one of round {rb}: states merge only within a round"
                    )));
                }
                let merged = self.merge.merge(a, b)?;
                self.sealed(ra, &merged)
            }
            _ => {
                let (round, state) = self.states(tables, 1)?.pop().expect("one");
                let (given, broadcast) = self.broadcast(tables)?;
                if given != round {
                    return Err(PluginError::input(format!(
                        "table '{BROADCAST}': the broadcast of round {given} with a state of round {round}: finish a \
                         round with the broadcast its partitions were given"
                    )));
                }
                match self.merge.finish(state, broadcast.as_ref())? {
                    Round::Done(out) => {
                        out.check_finite()?;
                        out.into_output()
                    }
                    Round::Again(_) if round + 1 >= MAX_ROUNDS => Err(PluginError::new(
                        ErrorKind::Numerical,
                        format!("the run by parts asked for more than {MAX_ROUNDS} passes over the data"),
                    )),
                    Round::Again(next) => {
                        let bytes = seal_as(BROADCAST_MAGIC, &self.owner, round + 1, &next)?;
                        let mut array = NamedArray::vector(BROADCAST, ArrayData::Bytes(RVec::from(bytes)));
                        array.in_json = false;
                        let summary = serde_json::json!({ "round": round + 1 }).to_string();
                        Ok(StepOutput::new(summary.into(), RVec::from(vec![array])))
                    }
                }
            }
        }
    }
}

impl<M: RoundsImpl> quiver_abi::EstimatorObject for MergeAdapter<M> {
    fn step(&mut self, name: RStr<'_>, tables: TableViews<'_>) -> PluginResult<StepOutput> {
        self.inner.step(name, tables)
    }
    fn query(&self, name: RStr<'_>, tables: TableViews<'_>) -> PluginResult<StepOutput> {
        match name.as_str() {
            PARTIAL | MERGE | FINISH => crate::run_step(name.as_str(), tables, |t| self.run(name.as_str(), t)),
            _ => self.inner.query(name, tables),
        }
    }
}

impl Created {
    /// This estimator, computable by parts: `partial`, `merge` and `finish` run `merge`'s methods
    /// (declare them with [`crate::ManifestBuilder::mergeable`]); `ctx` names the states' owner.
    pub fn mergeable<M: MergeableImpl>(self, merge: M, ctx: &Context) -> Created {
        self.in_rounds(OnePass(merge), ctx)
    }
    /// This estimator, computable by parts in several passes over the data (declare it with
    /// [`crate::ManifestBuilder::mergeable`] and [`crate::ManifestBuilder::rounds`]).
    pub fn in_rounds<M: RoundsImpl>(self, rounds: M, ctx: &Context) -> Created {
        let adapter = MergeAdapter { inner: self.object, merge: rounds, owner: StateOwner::of(ctx) };
        Created { family: self.family, object: quiver_abi::EstimatorObject_TO::from_value(adapter, TD_Opaque) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(method: &str, version: &str, p: u64) -> StateOwner {
        StateOwner { method: method.into(), version: version.into(), parameters: p }
    }

    #[test]
    fn states_round_trip_and_refuse_what_is_not_theirs() {
        let me = owner("ope", "0.1.0", 7);
        let state = (3u64, vec![1.5f64, -2.0, f64::MAX], Some("x".to_string()));
        let bytes = seal(&me, &state).unwrap();
        assert_eq!(open::<(u64, Vec<f64>, Option<String>)>(&me, &bytes).unwrap(), state);
        let msg = |o: &StateOwner| open::<(u64, Vec<f64>, Option<String>)>(o, &bytes).unwrap_err().message.to_string();
        assert!(msg(&owner("critic-lstd", "0.1.0", 7)).contains("a state of method 'ope', not 'critic-lstd'"));
        assert!(msg(&owner("ope", "0.2.0", 7)).contains("a state of ope 0.1.0, not 0.2.0"));
        assert!(msg(&owner("ope", "0.1.0", 8)).contains("other parameters"));
        // every truncation and every single-byte change is an error, never a panic
        for cut in 0..bytes.len() {
            assert!(open::<(u64, Vec<f64>, Option<String>)>(&me, &bytes[..cut]).is_err(), "cut at {cut}");
        }
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x5a;
            assert!(open::<(u64, Vec<f64>, Option<String>)>(&me, &b).is_err(), "byte {i} changed");
        }
        assert!(open::<u64>(&me, b"not a state at all").unwrap_err().message.contains("no QVST header"));
    }

    /// A broadcast keeps its round, is never taken for a state (nor a state for a broadcast), and
    /// a damaged one is an error.
    #[test]
    fn broadcasts_carry_their_round_and_are_not_states() {
        let me = owner("sure-normal", "0.1.0", 3);
        let b = seal_as(BROADCAST_MAGIC, &me, 7, &vec![0.25f64, 0.5]).unwrap();
        let at = (BROADCAST, BROADCAST);
        assert_eq!(open_as::<Vec<f64>>(BROADCAST_MAGIC, at, &me, &b).unwrap(), (7, vec![0.25, 0.5]));
        let e = open::<Vec<f64>>(&me, &b).unwrap_err().message.to_string();
        assert!(e.contains("a broadcast where a state belongs"), "{e}");
        let state = seal_as(MAGIC, &me, 2, &1u64).unwrap();
        let e = open_as::<u64>(BROADCAST_MAGIC, at, &me, &state).unwrap_err().message.to_string();
        assert!(e.contains("table 'broadcast', column 'broadcast': a state where a broadcast belongs"), "{e}");
        for cut in 0..b.len() {
            assert!(open_as::<Vec<f64>>(BROADCAST_MAGIC, at, &me, &b[..cut]).is_err(), "cut at {cut}");
        }
    }
}
