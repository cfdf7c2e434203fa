//! Borrowed, typed, named columns: the tables a step reads.

use abi_stable::{
    std_types::{RSlice, RStr},
    StableAbi,
};

/// The element type of a column.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnKind {
    /// 64-bit float.
    F64,
    /// 32-bit float.
    F32,
    /// 64-bit signed integer (ids, counts).
    I64,
    /// Boolean (0/1 flags).
    Bool,
    /// Variable-length bytes per row (a serialised state, a label): [`BytesColumn`].
    Bytes,
}

impl ColumnKind {
    /// Lower-case name used in manifests and messages.
    pub fn name(&self) -> &'static str {
        match self {
            ColumnKind::F64 => "f64",
            ColumnKind::F32 => "f32",
            ColumnKind::I64 => "i64",
            ColumnKind::Bool => "bool",
            ColumnKind::Bytes => "bytes",
        }
    }
}

/// The borrowed values of one column: contiguous, one entry per row.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug)]
pub enum ColumnData<'a> {
    /// 64-bit floats.
    F64(RSlice<'a, f64>),
    /// 32-bit floats.
    F32(RSlice<'a, f32>),
    /// 64-bit integers.
    I64(RSlice<'a, i64>),
    /// Booleans.
    Bool(RSlice<'a, bool>),
    /// Bytes, a run of them per row.
    Bytes(BytesColumn<'a>),
}

/// A column of variable-length byte strings in Arrow's binary layout: row `i` is
/// `data[offsets[i]..offsets[i + 1]]`, so `offsets` has one entry more than there are rows, starts
/// at 0, never decreases and ends at `data.len()` ([`BytesColumn::is_valid`]).
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug)]
pub struct BytesColumn<'a> {
    /// The rows' bytes, end to end.
    pub data: RSlice<'a, u8>,
    /// Where each row starts, and where the last ends.
    pub offsets: RSlice<'a, u64>,
}

impl<'a> BytesColumn<'a> {
    /// A column over `data` cut at `offsets`.
    pub fn new(data: &'a [u8], offsets: &'a [u64]) -> Self {
        BytesColumn { data: RSlice::from_slice(data), offsets: RSlice::from_slice(offsets) }
    }
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }
    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Whether the offsets describe rows inside `data` (see the type's documentation).
    pub fn is_valid(&self) -> bool {
        let o = self.offsets.as_slice();
        !o.is_empty()
            && o[0] == 0
            && o.windows(2).all(|w| w[0] <= w[1])
            && o.last().is_some_and(|&e| e == self.data.len() as u64)
    }
    /// Row `i`'s bytes, when the column is valid and `i` a row.
    pub fn get(&self, i: usize) -> Option<&'a [u8]> {
        let o = self.offsets.as_slice();
        let (a, b) = (*o.get(i)? as usize, *o.get(i + 1)? as usize);
        self.data.as_slice().get(a..b)
    }
}

impl ColumnData<'_> {
    /// Number of entries.
    pub fn len(&self) -> usize {
        match self {
            ColumnData::F64(s) => s.len(),
            ColumnData::F32(s) => s.len(),
            ColumnData::I64(s) => s.len(),
            ColumnData::Bool(s) => s.len(),
            ColumnData::Bytes(b) => b.len(),
        }
    }
    /// Whether the column has no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The element type.
    pub fn kind(&self) -> ColumnKind {
        match self {
            ColumnData::F64(_) => ColumnKind::F64,
            ColumnData::F32(_) => ColumnKind::F32,
            ColumnData::I64(_) => ColumnKind::I64,
            ColumnData::Bool(_) => ColumnKind::Bool,
            ColumnData::Bytes(_) => ColumnKind::Bytes,
        }
    }
}

/// A named column.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug)]
pub struct ColumnView<'a> {
    /// Column name, as the method's manifest declares it.
    pub name: RStr<'a>,
    /// Values.
    pub data: ColumnData<'a>,
}

/// A borrowed table: named columns of equal length, named by its role (`calibration`, `test`, ...).
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug)]
pub struct TableView<'a> {
    /// Role of the table (`calibration`, `test`, `data`, `transitions`, ...).
    pub role: RStr<'a>,
    /// Number of rows; every column has exactly this many entries.
    pub nrows: usize,
    /// The columns.
    pub columns: RSlice<'a, ColumnView<'a>>,
}

/// The tables of one step, by role.
pub type TableViews<'a> = RSlice<'a, TableView<'a>>;

/// Wrap a slice of table views for a step.
pub fn table_views<'a>(views: &'a [TableView<'a>]) -> TableViews<'a> {
    RSlice::from_slice(views)
}

impl<'a> TableView<'a> {
    /// A table view over `columns`, each of which must have `nrows` entries.
    pub fn new(role: &'a str, nrows: usize, columns: &'a [ColumnView<'a>]) -> Self {
        TableView { role: RStr::from_str(role), nrows, columns: RSlice::from_slice(columns) }
    }
}

impl<'a> ColumnView<'a> {
    /// A named column view.
    pub fn new(name: &'a str, data: ColumnData<'a>) -> Self {
        ColumnView { name: RStr::from_str(name), data }
    }
}

impl<'a> ColumnData<'a> {
    /// View f64 values.
    pub fn f64(v: &'a [f64]) -> Self {
        ColumnData::F64(RSlice::from_slice(v))
    }
    /// View i64 values.
    pub fn i64(v: &'a [i64]) -> Self {
        ColumnData::I64(RSlice::from_slice(v))
    }
    /// View booleans.
    pub fn bool(v: &'a [bool]) -> Self {
        ColumnData::Bool(RSlice::from_slice(v))
    }
    /// View f32 values.
    pub fn f32(v: &'a [f32]) -> Self {
        ColumnData::F32(RSlice::from_slice(v))
    }
}
