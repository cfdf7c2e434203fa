"""The estimator families as Python classes, and ``run`` for any method."""

from __future__ import annotations

import json
import math
import numbers
import warnings
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np

from ._errors import InvalidInputError, InvalidParameterError, QuiverWarning
from ._host import PluginDirs, describe, registry
from ._results import (
    RESULT_OF_FAMILY,
    AggregationResult,
    BatchResult,
    CriticResult,
    EvaluationResult,
    Result,
    SelectionResult,
    ShrinkageResult,
)
from ._tables import columns, is_arrow

_DEVICES = ("auto", "cpu", "cuda")


def _result(cls: type, method: str, summary_json: str, arrays: list, inputs: Optional[Dict[str, Any]] = None) -> Result:
    summary = json.loads(summary_json)
    notice = summary.get("notice")
    if isinstance(notice, str):
        # shown once per call site by Python's default warning filter
        warnings.warn(notice, QuiverWarning, stacklevel=3)
    return cls(method, summary, dict(arrays), inputs)


def _param_value(name: str, kind: str, value: Any) -> Any:
    """A Python value as the JSON the plugin's parameter check expects (which does the checking:
    ranges, choices, names)."""
    if isinstance(value, np.generic):
        value = value.item()
    if kind == "float" and isinstance(value, numbers.Real) and not isinstance(value, bool):
        try:
            x = float(value)
        except OverflowError:
            raise InvalidParameterError(f"parameter '{name}' = {value} is too large for a double") from None
        if math.isnan(x):
            return "nan"
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        return value if isinstance(value, int) else x
    if kind == "text" and isinstance(value, (list, tuple, np.ndarray)):
        return ",".join(repr(float(v)) if isinstance(v, float) else str(v) for v in value)
    if isinstance(value, float) and not math.isfinite(value):
        # JSON has no NaN or infinity: as text, refused by the plugin's check with its rule
        return repr(value)
    if isinstance(value, (str, bool, int, float)) or value is None:
        return value
    raise InvalidParameterError(f"parameter '{name}': a {type(value).__name__} is not a {kind} value")


def _params_json(manifest: Dict[str, Any], params: Mapping[str, Any]) -> str:
    kinds = {p["name"]: p["type"] for p in manifest["parameters"]}
    # unknown names go through as they are: the plugin refuses them with the list of known ones
    out = {k: _param_value(k, kinds.get(k, "text"), v) for k, v in params.items()}
    return json.dumps(out, allow_nan=False)


def _looks_like_table(v: Any) -> bool:
    return isinstance(v, (Mapping, np.ndarray)) or hasattr(v, "columns")


def _check_device(device: str) -> str:
    if not isinstance(device, str) or device not in _DEVICES:
        raise InvalidParameterError(f"device {device!r} is not one of 'auto', 'cpu', 'cuda'")
    return device


def _check_threads(threads: int) -> int:
    if isinstance(threads, bool) or not isinstance(threads, numbers.Integral) or not 0 <= threads < 2**32:
        raise InvalidParameterError(f"threads = {threads!r} must be an integer >= 0 (0: one per core)")
    return int(threads)


def _native_tables(manifest: Dict[str, Any], tables: Mapping[str, Any]) -> List[Tuple[str, list]]:
    specs = {t["role"]: t for t in manifest["tables"]}
    out = []
    for role, table in tables.items():
        if role not in specs:
            raise InvalidInputError(
                f"method '{manifest['name']}' reads no '{role}' table (it reads: {', '.join(specs)})", table=role
            )
        # Arrow data (pyarrow, polars, ...) crosses as it is, through the Arrow C stream interface
        out.append((role, table if is_arrow(table) else columns(table, role, specs[role])))
    return out


def run(
    method: str,
    /,
    *,
    plugins: PluginDirs = None,
    device: str = "auto",
    threads: int = 0,
    **tables_and_params: Any,
) -> Result:
    """Run ``method``'s whole lifecycle, as ``quiver run`` does: keyword arguments named after the
    method's tables (``calibration=``, ``test=``, ``data=``, ...) are tables, the others are
    parameters.

    >>> r = quiver.run("conformal-selection", calibration=cal, test=test, q=0.1, c=7)
    >>> r.selected
    """
    reg = registry(plugins)
    manifest = reg.manifest(method)
    roles = [t["role"] for t in manifest["tables"]]
    tables = {k: v for k, v in tables_and_params.items() if k in roles}
    params = {k: v for k, v in tables_and_params.items() if k not in roles}
    for k, v in params.items():
        if _looks_like_table(v):
            raise InvalidInputError(
                f"method '{method}' reads no '{k}' table (it reads: {', '.join(roles)})", table=k
            )
    summary, arrays = reg.native.run(
        method,
        _params_json(manifest, params),
        _native_tables(manifest, tables),
        _check_device(device),
        _check_threads(threads),
    )
    return _result(RESULT_OF_FAMILY.get(manifest["family"], Result), method, summary, arrays, tables)


class Estimator:
    """A method of any family, constructed with its parameters (checked by the plugin against
    its manifest: unknown names, types, ranges and choices are an
    :class:`~quiver.InvalidParameterError` at once); its steps run by name with :meth:`step`.
    The per-family classes (:class:`ConformalSelector`, :class:`Critic`, ...) are this class with
    one method per step and a check of the family.

    >>> est = quiver.Estimator("conformal-selection", q=0.1)
    >>> est.step("calibrate", calibration=cal)
    >>> r = est.step("select", test=test)

    ``device`` is ``"auto"`` (CUDA where the method has a CUDA path and a GPU is usable),
    ``"cpu"`` or ``"cuda"``; ``threads`` caps the worker threads (0: one per core); ``plugins``
    names plugin folders (default: ``$QUIVER_PLUGIN_PATH``, else the plugins in the wheel).
    """

    family: str = ""
    _result = Result

    def __init__(
        self,
        method: str,
        /,
        *,
        plugins: PluginDirs = None,
        device: str = "auto",
        threads: int = 0,
        **params: Any,
    ) -> None:
        reg = registry(plugins)
        manifest = reg.manifest(method)
        if self.family and manifest["family"] != self.family:

            def a(word: str) -> str:
                return f"an {word}" if word[:1] in "aeiou" else f"a {word}"

            raise InvalidParameterError(
                f"method '{method}' is {a(manifest['family'])}, not {a(self.family)}: use "
                f"quiver.{_CLASS_OF_FAMILY.get(manifest['family'], 'run')} for it"
            )
        self.method = method
        self.params = dict(params)
        self.device = _check_device(device)
        self._manifest = manifest
        self._native = reg.native.create(method, _params_json(manifest, params), device, _check_threads(threads))
        self.__doc__ = describe(method, plugins)

    def __repr__(self) -> str:
        args = "".join(f", {k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({self.method!r}{args})"

    @property
    def steps(self) -> List[str]:
        """The names of the method's steps, in lifecycle order (from its manifest)."""
        return [s["name"] for s in self._manifest.get("steps", [])]

    def step(self, name: str, /, **tables: Any) -> Optional[Result]:
        """Run step ``name`` (one of :attr:`steps`) on the tables given by role; returns its
        result, or ``None`` for a step that returns nothing (``fit``, ``calibrate``)."""
        return self._step(name, None, None, tables)

    @property
    def mergeable(self) -> bool:
        """Whether the method can be computed by parts (:meth:`partial`, :meth:`merge`,
        :meth:`finish`; ``docs/scale.md``)."""
        return all(s in self.steps for s in ("partial", "merge", "finish"))

    @property
    def rounds(self) -> bool:
        """Whether the method may take several passes over the data when computed by parts
        (:meth:`finish_round` then answers with a broadcast for the next pass)."""
        return bool((self._manifest.get("properties") or {}).get("rounds", False))

    def partial(
        self, *, offsets: Optional[Dict[str, int]] = None, broadcast: Optional[bytes] = None, **tables: Any
    ) -> bytes:
        """The state of one partition of the data (its tables by role): bytes that say which
        method, version and parameters made them, to :meth:`merge` and :meth:`finish`.
        ``offsets`` gives, per partitioned table, its rows in the partitions before this one (0
        when not given): methods that draw per row — conformal-selection's tie-breaking
        uniforms — draw for each row's place in the whole table. Tables the method reads whole
        (``whole_roles``, e.g. a calibration set) go to every partition as they are.
        ``broadcast``: for a method computed in rounds, what :meth:`finish_round` returned at the
        end of the previous pass (``None`` in the first)."""
        pairs = [(str(k), int(v)) for k, v in (offsets or {}).items()]
        if any(not 0 <= v < 2**63 for _, v in pairs):
            raise InvalidParameterError(f"offsets {offsets}: counts of rows, >= 0 and below 2^63")
        b = None if broadcast is None else bytes(broadcast)
        return self._native.partial(_native_tables(self._manifest, tables), pairs, b)

    @property
    def whole_roles(self) -> List[str]:
        """The tables a run by parts gives whole to every partition (e.g. a selector's
        calibration set), beside the partitioned ones."""
        return list((self._manifest.get("properties") or {}).get("whole", []))

    def merge(self, a: bytes, b: bytes, /) -> bytes:
        """Two partitions' states as one (``a``'s rows before ``b``'s)."""
        return self._native.merge(bytes(a), bytes(b))

    def finish(self, state: bytes, /) -> Result:
        """The result from the state of all the data: what :func:`run` returns on it as one
        table (to the rounding of sums)."""
        summary, arrays = self._native.finish(bytes(state))
        cls = self._result if self._result is not Result else RESULT_OF_FAMILY.get(self._manifest["family"], Result)
        return _result(cls, self.method, summary, arrays)

    def finish_round(
        self, state: bytes, /, broadcast: Optional[bytes] = None
    ) -> Tuple[Optional[Result], Optional[bytes]]:
        """The end of one pass of a method computed in rounds (:attr:`rounds`): ``(result,
        None)``, or ``(None, broadcast)`` when another pass is needed — run :meth:`partial` over
        every partition again with ``broadcast=broadcast``, merge, and call this again with it."""
        b = None if broadcast is None else bytes(broadcast)
        summary, arrays, again = self._native.finish_round(bytes(state), b)
        if again is not None:
            return None, bytes(again)
        cls = self._result if self._result is not Result else RESULT_OF_FAMILY.get(self._manifest["family"], Result)
        return _result(cls, self.method, summary, arrays), None

    def _step(self, step: str, default_role: Optional[str], table: Any, tables: Dict[str, Any]) -> Optional[Result]:
        if table is not None:
            if default_role is None:
                raise TypeError(f"{step}() takes tables by role only, e.g. {step}(queries=df)")
            if default_role in tables:
                raise TypeError(f"{step}() got the '{default_role}' table twice")
            tables = {default_role: table, **tables}
        summary, arrays = self._native.step(step, _native_tables(self._manifest, tables))
        # the tables of every step so far: a result's picture may show them (the calibration set)
        seen = self.__dict__.setdefault("_tables_seen", {})
        seen.update(tables)
        if summary is None:
            return None
        cls = self._result if self._result is not Result else RESULT_OF_FAMILY.get(self._manifest["family"], Result)
        return _result(cls, self.method, summary, arrays, seen)


class ConformalSelector(Estimator):
    """Conformal selection with FDR control, or a selective-risk threshold:
    ``ConformalSelector("conformal-selection", q=0.1, c=7).calibrate(cal).select(test)``."""

    family = "conformal-selector"
    _result = SelectionResult

    def calibrate(self, calibration: Any = None, **tables: Any) -> "ConformalSelector":
        """Ingest the calibration table; returns ``self``."""
        self._step("calibrate", "calibration", calibration, tables)
        return self

    def select(self, test: Any = None, **tables: Any) -> SelectionResult:
        """Select units of the test table (as often as wanted after one calibration)."""
        return self._step("select", "test", test, tables)  # type: ignore[return-value]


class BatchPredictor(Estimator):
    """A prediction set for a function of a whole batch of unseen outcomes:
    ``BatchPredictor("batch-pi", alpha=0.1, m=50, statistic="mean").calibrate(cal).bound()``."""

    family = "batch-pi"
    _result = BatchResult

    def calibrate(self, calibration: Any = None, **tables: Any) -> "BatchPredictor":
        """Ingest the calibration scores; returns ``self``."""
        self._step("calibrate", "calibration", calibration, tables)
        return self

    def bound(self, test: Any = None, **tables: Any) -> BatchResult:
        """The set for the batch (the test table where the mode reads one)."""
        return self._step("bound", "test", test, tables)  # type: ignore[return-value]


class Shrinkage(Estimator):
    """Compound estimation of many means tuned by an unbiased risk estimate:
    ``Shrinkage("sure-binomial").estimate(data)``."""

    family = "shrinkage"
    _result = ShrinkageResult

    def estimate(self, data: Any = None, **tables: Any) -> ShrinkageResult:
        """Tune and estimate."""
        return self._step("estimate", "data", data, tables)  # type: ignore[return-value]


class QuantileAggregator(Estimator):
    """Combine many models' quantile forecasts:
    ``QuantileAggregator("quantile-aggregation").fit(df).calibrate(cal).predict(test)``."""

    family = "quantile-aggregator"
    _result = AggregationResult

    def fit(self, fit: Any = None, **tables: Any) -> "QuantileAggregator":
        """Fit the weights on the ``fit`` table; returns ``self``."""
        self._step("fit", "fit", fit, tables)
        return self

    def calibrate(self, calibration: Any = None, **tables: Any) -> "QuantileAggregator":
        """Conformal calibration on the ``calibration`` table; returns ``self``."""
        self._step("calibrate", "calibration", calibration, tables)
        return self

    def predict(self, test: Any = None, **tables: Any) -> AggregationResult:
        """Quantiles for the ``test`` table, with the fit's weights and scores."""
        return self._step("predict", "test", test, tables)  # type: ignore[return-value]


class Critic(Estimator):
    """Value and Q-function estimation from offline RL data:
    ``Critic("critic-lstd", gamma=0.9).fit(transitions, policy=pi).values(queries=q)``."""

    family = "critic"
    _result = CriticResult

    def fit(self, transitions: Any = None, **tables: Any) -> "Critic":
        """Fit on the ``transitions`` table (and ``policy`` where the method reads one)."""
        self._step("fit", "transitions", transitions, tables)
        return self

    def values(self, queries: Any = None, **tables: Any) -> CriticResult:
        """V or Q at the ``queries`` rows (or the fit's summary where there are none)."""
        return self._step("values", "queries", queries, tables)  # type: ignore[return-value]


class Evaluator(Estimator):
    """Judging results rather than producing them (the ``evaluator`` family):
    ``Evaluator("my-evaluator").evaluate(scores=df)``."""

    family = "evaluator"
    _result = EvaluationResult

    def evaluate(self, **tables: Any) -> EvaluationResult:
        """The evaluation statistics of the tables given by role."""
        return self._step("evaluate", None, None, tables)  # type: ignore[return-value]


_CLASS_OF_FAMILY = {
    "conformal-selector": "ConformalSelector",
    "batch-pi": "BatchPredictor",
    "shrinkage": "Shrinkage",
    "quantile-aggregator": "QuantileAggregator",
    "critic": "Critic",
    "evaluator": "Evaluator",
}
