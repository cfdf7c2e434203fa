"""The exceptions of ``quiver``.

Every error a plugin or the host reports is a :class:`QuiverError`. Bad input and bad parameters
are also :class:`ValueError`\\ s, so code that already catches ``ValueError`` keeps working.
"""

from __future__ import annotations

from typing import Optional

__all__ = [
    "QuiverError",
    "InvalidInputError",
    "InvalidParameterError",
    "UnknownMethodError",
    "UnsupportedError",
    "DeviceError",
    "StateError",
    "PluginPanicError",
    "CancelledError",
    "NumericalError",
    "QuiverWarning",
]


class QuiverError(Exception):
    """An error reported by Quiver's host or one of its plugins.

    ``table``, ``column`` and ``row`` name the offending cell where the error is about one
    (``row`` is the 0-based position in the table, as in ``df.iloc[row]``; messages count rows
    from 1, as the data rows of a CSV file); otherwise they are ``None``.
    """

    def __init__(
        self,
        message: str,
        *,
        table: Optional[str] = None,
        column: Optional[str] = None,
        row: Optional[int] = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.table = table
        self.column = column
        self.row = row


class InvalidInputError(QuiverError, ValueError):
    """A table, column or value is unusable: missing, of the wrong type, not finite, out of range."""


class InvalidParameterError(QuiverError, ValueError):
    """A parameter is unknown, of the wrong type or out of its range."""


class UnknownMethodError(QuiverError, LookupError):
    """No loaded plugin provides the method."""


class UnsupportedError(QuiverError):
    """The request is valid, but this method or device cannot do it (e.g. ``device="cuda"`` for a
    method without a CUDA path)."""


class DeviceError(QuiverError):
    """The GPU could not be used."""


class StateError(QuiverError):
    """A lifecycle step was called out of order (e.g. ``select`` before ``calibrate``)."""


class PluginPanicError(QuiverError):
    """The plugin panicked. The panic was caught at the plugin boundary: the interpreter and the
    other estimators are unharmed, but this estimator should not be used again."""


class CancelledError(QuiverError):
    """The plugin stopped because it was asked to."""


class NumericalError(QuiverError, ArithmeticError):
    """A numerical method (an LP or a solver) failed on input that is valid: not the data's fault.
    The message says what failed; report it with the data that caused it."""


class QuiverWarning(UserWarning):
    """A plugin's notice about a run, e.g. that ``device="auto"`` found no usable GPU and ran on
    the CPU (the result's ``notice`` field holds the same text)."""
