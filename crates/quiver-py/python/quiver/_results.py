"""Results: typed attributes over a method's JSON summary and its per-unit NumPy arrays."""

from __future__ import annotations

import html
import json
import math
from typing import Any, Dict, Iterator, List, Optional

import numpy as np

_SPECIAL = {"inf": math.inf, "+inf": math.inf, "-inf": -math.inf, "nan": math.nan}


def _numbers(v: Any) -> Any:
    """JSON's stand-ins for non-finite numbers (``"inf"``, ``"-inf"``, ``"nan"``) as floats, and
    lists of numbers as NumPy arrays."""
    if isinstance(v, str):
        return _SPECIAL.get(v, v)
    if isinstance(v, dict):
        return {k: _numbers(x) for k, x in v.items()}
    if isinstance(v, list):
        items = [_numbers(x) for x in v]
        if items and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in items):
            return np.asarray(items, dtype=np.int64 if all(isinstance(x, int) for x in items) else np.float64)
        if items and all(isinstance(x, np.ndarray) and x.ndim == 1 for x in items):
            if len({x.shape for x in items}) == 1:
                return np.stack(items).astype(np.float64)
        return items
    return v


def _numeric_columns(table: Any) -> Dict[str, List[float]]:
    """The numeric columns of a table (a pandas DataFrame, a dict of arrays, an Arrow table) as
    lists of floats, for a picture."""
    if hasattr(table, "column_names") and hasattr(table, "column"):  # pyarrow
        cols = {c: table.column(c).to_numpy() for c in table.column_names}
    elif hasattr(table, "columns") and hasattr(table, "__getitem__"):  # pandas
        cols = {str(c): np.asarray(table[c]) for c in table.columns}
    elif isinstance(table, dict):
        cols = {str(c): np.asarray(v) for c, v in table.items()}
    else:
        return {}
    return {c: v.astype(np.float64).tolist() for c, v in cols.items() if v.ndim == 1 and v.dtype.kind in "fiub"}


def _floats(values: List[Any]) -> np.ndarray:
    """A figure's list of numbers (``None`` where JSON had no number: NaN, infinities) as floats."""
    return np.asarray([np.nan if v is None else v for v in values], dtype=float)


def _draw_panel(ax: Any, panel: Dict[str, Any]) -> None:
    """One panel of a figure (:meth:`Result.figure`) on a matplotlib Axes."""
    marks = panel["kind"]
    if marks["kind"] == "intervals":
        rows = marks["rows"]
        for i, r in enumerate(rows):
            if r["interval"] is not None and None not in r["interval"]:
                ax.plot(r["interval"], [i, i], linewidth=4, color=f"C{i}")
            ax.plot([r["estimate"]], [i], "o", markersize=8, color=f"C{i}")
        ax.set_yticks(range(len(rows)))
        ax.set_yticklabels([r["label"] for r in rows])
        ref = marks.get("reference")
        if ref is not None:
            ax.axvline(ref["value"], color="grey", linewidth=1, label=ref["label"])
            if ref["label"]:
                ax.legend()
    else:
        labelled = 0
        for i, s in enumerate(marks["series"]):
            colour = "grey" if s["style"] == "guide" else f"C{i}"
            x, y = _floats(s["x"]), _floats(s["y"])
            if s.get("band") is not None:
                lo, hi = (_floats(b) for b in s["band"])
                ax.fill_between(x, lo, hi, color=colour, alpha=0.2, linewidth=0)
            if s.get("bars") is not None:
                lo, hi = (_floats(b) for b in s["bars"])
                ax.vlines(x, lo, hi, color=colour, alpha=0.6)
            label = s["name"] or None
            labelled += label is not None
            style = s["style"]
            if style == "points":
                ax.plot(x, y, "o", markersize=8 if len(x) <= 5 else 3, color=colour, label=label)
            elif style == "line_points":
                ax.plot(x, y, "o-", markersize=4, color=colour, label=label)
            elif style == "step":
                ax.step(x, y, where="post", color=colour, label=label)
            elif style == "guide":
                ax.plot(x, y, color=colour, linewidth=1, label=label)
            else:
                ax.plot(x, y, color=colour, label=label)
        for r in marks["references"]:
            line = ax.axvline if r["axis"] == "x" else ax.axhline
            line(r["value"], color="grey", linewidth=1, linestyle="--", label=r["label"] or None)
            labelled += bool(r["label"])
        if labelled > 1:
            ax.legend()
    ax.set_title(panel["title"])
    ax.set_xlabel(panel["x_label"])
    if panel["y_label"]:
        ax.set_ylabel(panel["y_label"])


class Result:
    """A method's result. Every field of the JSON result is an attribute (and an item:
    ``r.threshold`` or ``r["threshold"]``); per-unit values are NumPy arrays, infinite ends are
    ``float('inf')``. ``to_dict()`` gives plain Python values; in a notebook the result renders
    as a table."""

    def __init__(
        self,
        method: str,
        summary: Dict[str, Any],
        arrays: Dict[str, np.ndarray],
        inputs: Optional[Dict[str, Any]] = None,
    ) -> None:
        fields = {k: _numbers(v) for k, v in summary.items()}
        fields.update(arrays)
        object.__setattr__(self, "_method", method)
        object.__setattr__(self, "_fields", fields)
        object.__setattr__(self, "_summary", summary)
        object.__setattr__(self, "_arrays", arrays)
        # the tables the run read, for the pictures that show them beside the result
        object.__setattr__(self, "_inputs", dict(inputs or {}))

    def figure(self, **tables: Any) -> Dict[str, Any]:
        """What this result's picture shows, as data: ``{"panels": [...]}``, each panel a title,
        axis labels and its marks (a forest plot's rows, or series of points with bands, bars
        and reference lines) — the figure ``quiver run ... --plot`` draws. Tables given here
        (``calibration=df``) replace those the run read."""
        from ._quiver import figure

        inputs = {**self._inputs, **tables}
        arrays = {}
        for name, a in self._arrays.items():
            a = np.asarray(a)
            if a.dtype.kind in "fiub" and a.ndim in (1, 2):
                arrays[name] = (a.astype(np.float64).ravel().tolist(), 1 if a.ndim == 1 else a.shape[1])
        native_inputs = {role: _numeric_columns(t) for role, t in inputs.items()}
        return json.loads(figure(self._method, json.dumps(self._summary), arrays, native_inputs))

    def plot(self, ax: Any = None, panel: Optional[str] = None, *, metric: Optional[str] = None, **tables: Any) -> Any:
        """Draw one panel of this result's picture with matplotlib and return the Axes (a new
        figure's when ``ax`` is ``None``), so it composes with a figure of your own. ``panel``
        (or ``metric``) names the panel — e.g. ``"iqm"``, ``"improvement"``, ``"profile"`` of
        rl-aggregate, ``"curve"`` of sure-normal; the first by default. The command line draws
        every panel (``quiver run ... --plot FILE.svg``). Tables given here replace the run's
        (a picture of the calibration scores needs ``calibration=``)."""
        try:
            import matplotlib.pyplot as plt
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError("result.plot() needs matplotlib: pip install matplotlib") from e
        panels = self.figure(**tables)["panels"]
        name = panel or metric
        if name is None:
            chosen = panels[0]
        else:
            found = [p for p in panels if p["key"] == name]
            if not found:
                what = "metric" if metric is not None else "panel"
                have = ", ".join(p["key"] for p in panels)
                raise KeyError(f"{what} '{name}' is not in this result's picture (it has: {have})")
            chosen = found[0]
        if ax is None:
            _, ax = plt.subplots(figsize=(8, 5))
        _draw_panel(ax, chosen)
        return ax

    @property
    def method(self) -> str:
        """The method that computed this result."""
        return self._method

    @property
    def device(self) -> Optional[str]:
        """The device it ran on (``cpu`` or ``cuda``), where the method reports it."""
        d = self._fields.get("device")
        return d if isinstance(d, str) else None

    def __getattr__(self, name: str) -> Any:
        fields = object.__getattribute__(self, "_fields")
        if name in fields:
            return fields[name]
        raise AttributeError(f"{self._method} result has no field '{name}' (fields: {', '.join(fields)})")

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("results are read-only")

    def __getitem__(self, name: str) -> Any:
        return self._fields[name]

    def __contains__(self, name: object) -> bool:
        return name in self._fields

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def keys(self) -> List[str]:
        """The field names."""
        return list(self._fields)

    def __dir__(self) -> List[str]:
        return sorted(set(super().__dir__()) | set(self._fields))

    def to_dict(self) -> Dict[str, Any]:
        """The result as plain Python values (NumPy arrays as lists)."""

        def plain(v: Any) -> Any:
            if isinstance(v, np.ndarray):
                return v.tolist()
            if isinstance(v, dict):
                return {k: plain(x) for k, x in v.items()}
            if isinstance(v, list):
                return [plain(x) for x in v]
            if isinstance(v, np.generic):
                return v.item()
            return v

        return {k: plain(v) for k, v in self._fields.items()}

    def _short(self, v: Any) -> str:
        if isinstance(v, np.ndarray):
            head = np.array2string(v.ravel()[:6], precision=6, separator=", ")[1:-1]
            more = ", ..." if v.size > 6 else ""
            return f"array{list(v.shape)} {v.dtype}: [{head}{more}]"
        if isinstance(v, float):
            return f"{v:.6g}"
        text = json.dumps(v, default=str) if isinstance(v, (dict, list)) else str(v)
        return text if len(text) <= 100 else text[:97] + "..."

    def __repr__(self) -> str:
        width = max((len(k) for k in self._fields), default=0)
        rows = [f"  {k:{width}}  {self._short(v)}" for k, v in self._fields.items() if v is not None]
        return f"<{type(self).__name__} of {self._method}>\n" + "\n".join(rows)

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
            f"<td style='text-align:left'><code>{html.escape(self._short(v))}</code></td></tr>"
            for k, v in self._fields.items()
            if v is not None
        )
        return f"<b>{html.escape(type(self).__name__)}</b> of <code>{html.escape(self._method)}</code><table>{rows}</table>"


class SelectionResult(Result):
    """A conformal selector's result: ``selected`` (or ``accepted``) indices into the test
    table, the per-unit ``p_values`` (or ``scores``), and the data-dependent ``threshold``."""

    @property
    def selected(self) -> np.ndarray:
        """The selected (accepted) test rows, 0-based, ascending (``int64``)."""
        f = self._fields
        return f["selected"] if "selected" in f else f["accepted"]

    @property
    def threshold(self) -> float:
        """The data-dependent threshold (BH cut-off on the p-values, or λ̂)."""
        return float(self._fields["threshold"])


class BatchResult(Result):
    """A batch prediction set: ``lower`` and ``upper`` ends (``-inf`` below a one-sided
    ``bound``), or the ``selected`` units in selection mode."""

    @property
    def lower(self) -> float:
        """Lower end of the set (``-inf`` for a one-sided bound)."""
        return float(self._fields.get("lower", -math.inf))

    @property
    def upper(self) -> float:
        """Upper end of the set: the two-sided set's upper end, or the one-sided ``bound``."""
        f = self._fields
        return float(f["upper"] if "upper" in f else f.get("bound", math.inf))


class ShrinkageResult(Result):
    """Shrunken ``estimates`` (one per unit), ``lower`` / ``upper`` interval ends when intervals
    were asked for, the tuned ``lambda_hat`` and the unbiased risk estimate where the method has
    them."""

    @property
    def estimates(self) -> np.ndarray:
        """One estimate per unit (``float64``)."""
        return self._fields["estimates"]


class AggregationResult(Result):
    """A quantile aggregation: ``test_quantiles`` (one row of quantiles per test row) with the
    fit's weights and scores."""

    @property
    def test_quantiles(self) -> Optional[np.ndarray]:
        """Test quantiles, shape (test rows, levels); ``None`` when no test table was given."""
        return self._fields.get("test_quantiles")


class CriticResult(Result):
    """A critic's query: ``values`` (V or Q per queried row) and the fit's summary."""

    @property
    def values(self) -> Optional[np.ndarray]:
        """V or Q per queried row."""
        return self._fields.get("values")


class EvaluationResult(Result):
    """An evaluator's statistics (the ``evaluator`` family): metrics per algorithm or estimator
    with their intervals, curves — every field of the JSON result, nothing per unit."""

    pass


RESULT_OF_FAMILY = {
    "conformal-selector": SelectionResult,
    "batch-pi": BatchResult,
    "shrinkage": ShrinkageResult,
    "quantile-aggregator": AggregationResult,
    "critic": CriticResult,
    "evaluator": EvaluationResult,
}
