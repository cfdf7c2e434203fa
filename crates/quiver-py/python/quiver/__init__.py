"""Quiver from Python: statistical estimators with guarantees, run by the same plugin files and
host as the ``quiver`` command line.

>>> import quiver
>>> quiver.methods()
['batch-pi', 'conformal-selection', ...]
>>> sel = quiver.ConformalSelector("conformal-selection", q=0.1, c=7).calibrate(cal_df)
>>> result = sel.select(test_df)
>>> result.selected, result.p_values, result.threshold

Families: :class:`ConformalSelector`, :class:`BatchPredictor`, :class:`Shrinkage`,
:class:`QuantileAggregator`, :class:`Critic`, :class:`Evaluator`; :func:`run` runs any method's whole lifecycle.
Tables are pandas DataFrames, dicts of 1-D arrays or structured arrays; contiguous ``float64``
columns reach the plugin without a copy. See ``docs/python.md``.
"""

from ._errors import (
    CancelledError,
    DeviceError,
    InvalidInputError,
    InvalidParameterError,
    NumericalError,
    PluginPanicError,
    QuiverError,
    QuiverWarning,
    StateError,
    UnknownMethodError,
    UnsupportedError,
)
from ._estimators import (
    BatchPredictor,
    ConformalSelector,
    Critic,
    Estimator,
    Evaluator,
    QuantileAggregator,
    Shrinkage,
    run,
)
from ._host import describe, doctor, info, methods, plugin_dirs
from ._quiver import abi_version
from ._results import (
    AggregationResult,
    BatchResult,
    CriticResult,
    EvaluationResult,
    Result,
    SelectionResult,
    ShrinkageResult,
)

__version__ = "0.1.0"

__all__ = [
    "AggregationResult",
    "BatchPredictor",
    "BatchResult",
    "CancelledError",
    "NumericalError",
    "ConformalSelector",
    "Critic",
    "CriticResult",
    "DeviceError",
    "Estimator",
    "EvaluationResult",
    "Evaluator",
    "InvalidInputError",
    "InvalidParameterError",
    "PluginPanicError",
    "QuantileAggregator",
    "QuiverError",
    "QuiverWarning",
    "Result",
    "SelectionResult",
    "Shrinkage",
    "ShrinkageResult",
    "StateError",
    "UnknownMethodError",
    "UnsupportedError",
    "abi_version",
    "describe",
    "doctor",
    "info",
    "methods",
    "plugin_dirs",
    "run",
]
