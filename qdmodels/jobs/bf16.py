"""The bf16 screening gate: bf16 compute only where its measured error is a small fraction of the CI half-width.

``analyses/bf16_screening/run.py`` measures, per model, scheme and language, ``|Δ_bf16 - Δ_fp32|`` and
``|DiD_bf16 - DiD_fp32|`` against the half-width of the fp32 95% CI, and writes one verdict per (model, scheme) to
``bf16_validation.json`` next to this module. :func:`check_bf16` reads it: a sweep (or any screening stage) asks for
``compute_dtype='bfloat16'`` and gets it only for validated pairs; otherwise an error (or a warning) names the model,
the scheme and the measurement.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from qdstats.validation import check_option

__all__ = ["Bf16NotValidatedError", "Bf16NotValidatedWarning", "bf16_verdicts", "check_bf16"]

VALIDATION_FILE = Path(__file__).with_name("bf16_validation.json")


class Bf16NotValidatedError(ValueError):
    """bf16 compute was asked for a (model, scheme) whose bf16 error was not measured, or not small enough."""


class Bf16NotValidatedWarning(UserWarning):
    """bf16 compute is used for a (model, scheme) whose bf16 error was not measured, or not small enough."""


@lru_cache(maxsize=1)
def _load() -> dict[str, Any]:
    try:
        return json.loads(VALIDATION_FILE.read_text(encoding="utf-8"))
    except OSError:  # an install without the package data: nothing is validated
        return {"fraction_of_ci_half_width": 0.25, "verdicts": []}


def bf16_verdicts() -> dict[tuple[str, str], dict[str, Any]]:
    """``(model, scheme) -> verdict`` from the saved screening run (fields as in analyses/bf16_screening/result.json)."""
    return {(v["model"], v["scheme"]): v for v in _load()["verdicts"]}


def check_bf16(model: str, schemes: Sequence[str], *, on_fail: Literal["error", "warn"] = "error") -> list[str]:
    """Check that bf16 compute is validated for ``model`` under every scheme in ``schemes``.

    Parameters
    ----------
    model : str
        Model name as the screening run loaded it (``'smollm2-135m'``).
    schemes : sequence of str
        QuantScheme keys (``'int4-g64-sym'``); ``'fp32'`` is skipped (no compressed condition to screen).
    on_fail : {'error', 'warn'}, default 'error'
        Raise :class:`Bf16NotValidatedError`, or warn with :class:`Bf16NotValidatedWarning` and go on.

    Returns
    -------
    list of str
        One message per scheme that is not validated (empty when all are).

    Raises
    ------
    Bf16NotValidatedError
        With ``on_fail='error'``, when any scheme is not validated.

    Notes
    -----
    A (model, scheme) pair is validated when, over 8 languages and 50 NTREX-128 sentences per language, the largest
    ``|estimate_bf16 - estimate_fp32|`` of Δ and of DiD vs English is below ``fraction`` (0.25) x the half-width
    of the fp32 95% cluster-bootstrap CI. Validated against: the saved run it reads
    (tests/qdmodels/jobs/test_bf16_gate.py recomputes the verdicts from analyses/bf16_screening/result.json).

    Examples
    --------
    >>> check_bf16("smollm2-135m", ["int4-g64-sym"])
    []
    """
    check_option(on_fail, "on_fail", ("error", "warn"))
    data = _load()
    frac = data["fraction_of_ci_half_width"]
    table = bf16_verdicts()
    bad = []
    for s in schemes:
        if s == "fp32":
            continue
        v = table.get((model, s))
        if v is None:
            known = sorted({f"{m}:{k}" for m, k in table})
            bad.append(f"bf16 compute for model {model!r} under {s!r} was never measured against fp32 (measured "
                       f"pairs: {', '.join(known)}); run analyses/bf16_screening/run.py --model {model}.")
        elif not v["validated"]:
            bad.append(f"bf16 compute for model {model!r} under {s!r} is not validated: its largest error is "
                       f"{v['max_ratio_delta']:.2f} (Δ, {v['worst_language_delta']}) and {v['max_ratio_did']:.2f} "
                       f"(DiD, {v['worst_language_did']}) x the fp32 CI half-width, above the declared {frac} "
                       f"({v['source']}); use compute_dtype='float32'.")
    if bad:
        if on_fail == "error":
            raise Bf16NotValidatedError(" ".join(bad))
        for m in bad:
            warnings.warn(m, Bf16NotValidatedWarning, stacklevel=2)
    return bad
