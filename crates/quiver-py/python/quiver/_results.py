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


class Result:
    """A method's result. Every field of the JSON result is an attribute (and an item:
    ``r.threshold`` or ``r["threshold"]``); per-unit values are NumPy arrays, infinite ends are
    ``float('inf')``. ``to_dict()`` gives plain Python values; in a notebook the result renders
    as a table."""

    def __init__(self, method: str, summary: Dict[str, Any], arrays: Dict[str, np.ndarray]) -> None:
        fields = {k: _numbers(v) for k, v in summary.items()}
        fields.update(arrays)
        object.__setattr__(self, "_method", method)
        object.__setattr__(self, "_fields", fields)

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

    def plot(self, ax: Any = None, metric: Optional[str] = None) -> Any:
        """Draw the result with matplotlib and return the Axes (a new figure's when ``ax`` is
        ``None``): ``rl-aggregate`` — one metric's estimate and interval per algorithm (``metric``,
        default the first reported); ``ope-assessment`` — SharpeRatio@k against k per estimator.
        The command line draws the same pictures (``quiver run ... --plot FILE.svg``)."""
        try:
            import matplotlib.pyplot as plt
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError("result.plot() needs matplotlib: pip install matplotlib") from e
        f = self._fields
        if ax is None:
            _, ax = plt.subplots(figsize=(8, 5))
        if "metrics" in f and "algorithms" in f:
            metrics = f["metrics"]
            name = metric or next(iter(metrics))
            if name not in metrics:
                raise KeyError(f"metric '{name}' is not in this result (it has: {', '.join(metrics)})")
            algos = list(f["algorithms"])
            for i, a in enumerate(algos):
                v = metrics[name][a]
                ax.plot([v["lower"], v["upper"]], [i, i], linewidth=4, color=f"C{i}")
                ax.plot([v["estimate"]], [i], "o", markersize=8, color=f"C{i}")
            ax.set_yticks(range(len(algos)))
            ax.set_yticklabels(algos)
            level = 100 * (1 - float(f.get("alpha", 0.05)))
            ax.set_title(f"{name} with {level:.0f}% stratified bootstrap intervals")
            ax.set_xlabel("normalised score")
        elif "estimators" in f:
            for i, (name, v) in enumerate(f["estimators"].items()):
                sr = v["top_k"]["sharpe_ratio"]
                ks = [k + 1 for k, s in enumerate(sr) if s is not None]
                ax.plot(ks, [s for s in sr if s is not None], "o-", color=f"C{i}", label=name)
            ax.set_xlabel("k: policies deployed for A/B tests")
            ax.set_ylabel("SharpeRatio@k")
            ax.set_title("SharpeRatio@k: (best@k - J(behaviour)) / std@k")
            if len(f["estimators"]) > 1:
                ax.legend()
        else:
            raise NotImplementedError(f"{self._method} has no picture yet")
        return ax


RESULT_OF_FAMILY = {
    "conformal-selector": SelectionResult,
    "batch-pi": BatchResult,
    "shrinkage": ShrinkageResult,
    "quantile-aggregator": AggregationResult,
    "critic": CriticResult,
    "evaluator": EvaluationResult,
}
