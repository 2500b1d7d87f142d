"""Input validation helpers and warning classes shared by every :mod:`qdstats` function.

Conventions (see ``docs/conventions.md``):

* bad input raises ``ValueError`` / ``TypeError`` / :class:`UnknownNameError` whose message names the
  parameter in backticks, then what was received and what is allowed;
* legal but degenerate data returns NaN plus a :class:`DegenerateDataWarning` (issued with
  ``stacklevel=2`` *and* copied into the result's ``warnings`` tuple so it travels into claims tables);
* results on few units carry a :class:`SmallSampleWarning`.
"""

from __future__ import annotations

import difflib
import math
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

__all__ = [
    "DegenerateDataWarning",
    "SmallSampleWarning",
    "UnknownNameError",
    "WarningCollector",
    "as_1d_float",
    "check_confidence_level",
    "check_int",
    "check_option",
    "did_you_mean",
    "handle_nan",
]


class DegenerateDataWarning(UserWarning):
    """Legal but degenerate data (constant input, too few points, rank-deficient design)."""


class SmallSampleWarning(UserWarning):
    """The result rests on few units (for example fewer than 10 languages)."""


class UnknownNameError(KeyError, ValueError):
    """A name that is not in a registry; the message lists suggestions and valid names."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


def did_you_mean(value: str, options: Iterable[str]) -> str:
    """Return a ``" Did you mean 'x'?"`` suffix, or an empty string when nothing is close."""
    scored = sorted(
        ((difflib.SequenceMatcher(None, str(value), str(o)).ratio(), str(o)) for o in options), reverse=True
    )
    scored = [(r, o) for r, o in scored if r >= 0.6]
    # keep only candidates about as close as the best one
    close = [o for r, o in scored[:3] if r >= scored[0][0] - 0.05] if scored else []
    if not close:
        return ""
    if len(close) == 1:
        return f" Did you mean {close[0]!r}?"
    return " Did you mean one of " + ", ".join(repr(c) for c in close) + "?"


def check_option(value: Any, name: str, options: Sequence[str]) -> str:
    """Validate that ``value`` is one of ``options``.

    Raises
    ------
    ValueError
        "`name` must be one of {...}; got 'x'. Did you mean 'y'?"
    """
    if value not in options:
        opts = "{" + ", ".join(repr(o) for o in options) + "}"
        raise ValueError(
            f"`{name}` must be one of {opts}; got {value!r}." + did_you_mean(str(value), options)
        )
    return value


def check_int(value: Any, name: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """Validate an integer parameter (bools are rejected) within optional bounds."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"`{name}` must be an integer; got {value!r} of type {type(value).__name__}.")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"`{name}` must be >= {minimum}; got {value}.")
    if maximum is not None and value > maximum:
        raise ValueError(f"`{name}` must be <= {maximum}; got {value}.")
    return value


def check_confidence_level(value: Any, name: str = "confidence_level") -> float:
    """Validate a confidence level strictly between 0 and 1."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"`{name}` must be a number in (0, 1); got {value!r}.") from None
    if not (0.0 < v < 1.0) or math.isnan(v):
        raise ValueError(f"`{name}` must be strictly between 0 and 1; got {value!r}.")
    return v


def as_1d_float(x: Any, name: str) -> np.ndarray:
    """Convert to a 1-D float64 array, with a clear error naming the parameter."""
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"`{name}` must be a 1-D array of numbers; could not convert: {exc}") from None
    if arr.ndim != 1:
        raise ValueError(f"`{name}` must be 1-D; got an array with shape {arr.shape}.")
    if np.isinf(arr).any():
        raise ValueError(f"`{name}` contains infinite values; only finite numbers or NaN are allowed.")
    return arr


def handle_nan(
    arrays: dict[str, np.ndarray], nan_policy: str
) -> tuple[dict[str, np.ndarray], int, bool]:
    """Apply ``nan_policy`` to equally long arrays (row-wise).

    Returns
    -------
    (arrays, n_dropped, has_nan)
        With ``'omit'`` rows with any NaN are removed; with ``'propagate'`` arrays are returned as
        they are and ``has_nan`` tells the caller to return NaN; with ``'raise'`` a ``ValueError``
        names the offending parameter(s).
    """
    check_option(nan_policy, "nan_policy", ("raise", "omit", "propagate"))
    lengths = {k: len(v) for k, v in arrays.items()}
    if len(set(lengths.values())) > 1:
        desc = ", ".join(f"`{k}` has {n}" for k, n in lengths.items())
        raise ValueError(f"inputs must have the same length; {desc}.")
    if not arrays:
        return arrays, 0, False
    mask = np.zeros(next(iter(lengths.values())), dtype=bool)
    for v in arrays.values():
        mask |= np.isnan(v) if v.ndim == 1 else np.isnan(v).any(axis=1)
    if not mask.any():
        return arrays, 0, False
    if nan_policy == "raise":
        bad = [k for k, v in arrays.items() if (np.isnan(v) if v.ndim == 1 else np.isnan(v).any(axis=1)).any()]
        raise ValueError(
            f"{', '.join('`' + b + '`' for b in bad)} contain NaN ({int(mask.sum())} rows); "
            "pass nan_policy='omit' to drop those rows or 'propagate' to return NaN."
        )
    if nan_policy == "propagate":
        return arrays, 0, True
    return {k: v[~mask] for k, v in arrays.items()}, int(mask.sum()), False


class WarningCollector:
    """Collect warning texts for a result and emit them as Python warnings at the same time.

    Examples
    --------
    >>> wc = WarningCollector()
    >>> import warnings as _w
    >>> with _w.catch_warnings():
    ...     _w.simplefilter("ignore")
    ...     wc.warn("constant input", DegenerateDataWarning)
    >>> wc.messages
    ('constant input',)
    """

    def __init__(self) -> None:
        self._messages: list[str] = []

    def warn(self, message: str, category: type[Warning] = DegenerateDataWarning, stacklevel: int = 3) -> None:
        if message not in self._messages:
            self._messages.append(message)
        warnings.warn(message, category, stacklevel=stacklevel)

    def extend(self, messages: Iterable[str]) -> None:
        for m in messages:
            if m not in self._messages:
                self._messages.append(m)

    @property
    def messages(self) -> tuple[str, ...]:
        return tuple(self._messages)
