"""Tables from Python objects: a pandas DataFrame, a dict of 1-D arrays, a structured NumPy
array, or any mapping or frame-like object whose columns have ``__array__``; and Arrow data — a
``pyarrow.Table`` or ``RecordBatch``, a polars DataFrame, anything with ``__arrow_c_stream__`` —
read by the native module through the Arrow C stream interface: a ``float64`` or ``int64`` column
without nulls in one chunk reaches the plugin without a copy; others are converted once, and a
null is an error naming its row.

``float64`` columns that are contiguous cross to the plugin without a copy (the plugin reads the
array's own memory while the GIL is released, so do not modify it from another thread during a
call). Integer columns are passed as ``int64`` (and converted to floats where the method wants
floats), booleans as flags, other float types are converted to ``float64``. Columns the method
does not read may be of any dtype: non-numeric ones are left out. A column the method reads that
is not numeric is an :class:`~quiver.InvalidInputError` naming it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Dict, Iterable, List, Optional, Tuple

import numpy as np

from ._errors import InvalidInputError

Columns = List[Tuple[str, np.ndarray]]


def is_arrow(table: Any) -> bool:
    """Whether ``table`` exports Arrow data and is not a pandas object (pandas exports through
    pyarrow, converting; its NumPy columns are lent as they are)."""
    return hasattr(table, "__arrow_c_stream__") and not type(table).__module__.startswith("pandas")


def _items(table: Any, role: str) -> Iterable[Tuple[Any, Any]]:
    if isinstance(table, Mapping):
        return table.items()
    names = getattr(getattr(table, "dtype", None), "names", None)
    if isinstance(table, np.ndarray) and names:
        return ((n, table[n]) for n in names)
    columns = getattr(table, "columns", None)
    if columns is not None and hasattr(table, "__getitem__"):
        # a DataFrame (pandas, or anything shaped like one): column by column, no copy
        names = [str(c) for c in columns]
        for k, name in enumerate(names):
            if name in names[:k]:
                raise InvalidInputError(
                    f"table '{role}': column '{name}' is given twice", table=role, column=name
                )
        return ((c, table[c]) for c in columns)
    raise InvalidInputError(
        f"table '{role}': expected a pandas DataFrame, a dict of 1-D arrays or a structured NumPy "
        f"array, got {type(table).__name__}",
        table=role,
    )


def _declared_type(spec: Optional[Dict[str, Any]], name: str) -> Optional[str]:
    """The type (``f64``, ``i64``, ``bool``, ``bytes``: text) the manifest gives column ``name``, if
    it names it."""
    if spec is None:
        return None
    best = None
    for c in spec["columns"]:
        cname = c["name"]
        if cname == name:
            return c["type"]
        if cname.endswith("*") and name.startswith(cname[:-1]):
            best = c["type"]
    return best


def _integral(a: np.ndarray, role: str, name: str) -> np.ndarray:
    """Floats that are exactly integers (a pandas ``Int64`` column, a ``category`` of ints, a
    column read as floats) as ``int64``; a missing value (NaN) or a fraction is an error naming
    its row."""
    bad = ~np.isfinite(a)
    if bad.any():
        row = int(np.argmax(bad))
        what = "missing (NaN)" if np.isnan(a[row]) else f"{a[row]}"
        raise InvalidInputError(
            f"table '{role}', column '{name}', row {row + 1}: value {what} is not an integer",
            table=role,
            column=name,
            row=row,
        )
    frac = (a != np.round(a)) | (np.abs(a) > 2.0**53)
    if frac.any():
        row = int(np.argmax(frac))
        raise InvalidInputError(
            f"table '{role}', column '{name}', row {row + 1}: value {float(a[row])!r} is not an integer",
            table=role,
            column=name,
            row=row,
        )
    return a.astype(np.int64)


def _text(col: Any, role: str, name: str) -> List[bytes]:
    """A text column (labels: str, bytes, or whole numbers written as text) as UTF-8 byte strings;
    a missing or non-text value is refused with its row."""
    values = col.tolist() if hasattr(col, "tolist") else list(col)
    out: List[bytes] = []
    for i, v in enumerate(values):
        if isinstance(v, str):
            out.append(v.encode("utf-8"))
        elif isinstance(v, bytes):
            out.append(v)
        elif isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)):
            out.append(str(int(v)).encode("utf-8"))
        else:
            raise InvalidInputError(
                f"table '{role}', column '{name}', row {i + 1}: expected text (a label), got {v!r}",
                table=role,
                column=name,
                row=i,
            )
    return out


def _array(col: Any) -> np.ndarray:
    to_numpy = getattr(col, "to_numpy", None)
    if to_numpy is not None and not isinstance(col, np.ndarray):
        kind = getattr(getattr(col, "dtype", None), "kind", None)
        if kind in (None, "O") or not isinstance(getattr(col, "dtype", None), np.dtype):
            # pandas' nullable dtypes: missing values become NaN, refused below with their row
            try:
                return to_numpy(dtype=np.float64, na_value=np.nan)
            except (TypeError, ValueError):
                return np.asarray(to_numpy())
        return to_numpy()
    return np.asarray(col)


def columns(table: Any, role: str, spec: Optional[Dict[str, Any]]) -> Columns:
    """The columns of ``table`` (the table of role ``role``; ``spec`` its manifest entry) as
    1-D ``float64`` / ``int64`` / ``uint8`` (flag) arrays, ready for the native host."""
    out: Columns = []
    seen: List[str] = []
    seen_set = set()
    for key, col in _items(table, role):
        name = str(key)
        if name in seen_set:
            raise InvalidInputError(f"table '{role}': column '{name}' is given twice", table=role, column=name)
        seen.append(name)
        seen_set.add(name)
        declared_type = _declared_type(spec, name)
        declared = declared_type is not None
        if declared_type == "bytes":
            out.append((name, _text(col, role, name)))  # type: ignore[arg-type]
            continue
        try:
            a = _array(col)
        except Exception as e:  # noqa: BLE001 - any failure to read a column is bad input
            if not declared:
                continue
            raise InvalidInputError(
                f"table '{role}', column '{name}': cannot be read as an array ({e})", table=role, column=name
            ) from None
        if a.ndim != 1:
            if not declared:
                continue
            raise InvalidInputError(
                f"table '{role}', column '{name}': expected a 1-D array, got shape {a.shape}",
                table=role,
                column=name,
            )
        kind = a.dtype.kind
        if kind == "f" and declared_type == "i64":
            a = _integral(np.asarray(a, dtype=np.float64), role, name)
        elif kind == "f":
            a = np.ascontiguousarray(a, dtype=np.float64)
        elif kind in "iu":
            if kind == "u" and a.dtype.itemsize == 8 and a.size and a.max() > np.iinfo(np.int64).max:
                a = a.astype(np.float64)
            else:
                a = np.ascontiguousarray(a, dtype=np.int64)
        elif kind == "b":
            a = np.ascontiguousarray(a).view(np.uint8)
        elif kind in "cmM" and declared:
            # complex numbers, dates and durations are not the numbers a method reads
            raise InvalidInputError(
                f"table '{role}', column '{name}': expected real numbers, got {a.dtype} values",
                table=role,
                column=name,
            )
        elif declared:
            try:
                a = np.ascontiguousarray(a, dtype=np.float64)
            except (TypeError, ValueError):
                raise InvalidInputError(
                    f"table '{role}', column '{name}': expected numbers, got {a.dtype} values",
                    table=role,
                    column=name,
                ) from None
        else:
            continue
        out.append((name, a))
    if not out and seen:
        # every column was left out: say what the method reads rather than "empty"
        reads = ", ".join(c["name"] for c in spec["columns"]) if spec else "nothing"
        raise InvalidInputError(
            f"table '{role}' has none of the columns the method reads (it has: {', '.join(seen)}; "
            f"it reads: {reads})",
            table=role,
        )
    return out
