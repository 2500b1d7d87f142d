"""Experimental conditions: a ``condition`` dict for the records plus a reversible way to apply it to a model.

An :class:`EvalCondition` is what every scorer (:func:`qdmodels.eval.evaluate_conditions`, sweeps, probes) takes:
``apply(model)`` returns a context manager that changes the weights on entry and restores them bit-exactly on exit.
:func:`fp_condition` is the full-precision reference, :func:`quant_condition` round-to-nearest fake quantization,
:func:`qdmodels.compress.gptq_condition` GPTQ-style calibrated quantization; :func:`as_condition` accepts the
shorthands (``'fp32'``, a scheme key, ``(scheme, plan)``).

Examples
--------
>>> from qdmodels.compress.conditions import as_condition
>>> as_condition("int4-g64-sym").condition
{'scheme': 'int4-g64-sym', 'protect': 'none', 'prune': 'none'}
"""

from __future__ import annotations

import contextlib
import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["DEFAULT_CONDITION", "QUANT_BACKENDS", "EvalCondition", "as_condition", "canonical_quant_key", "check_applicable", "fp_condition", "quant_condition"]

#: Canonical condition keys and the value that means "not applied".
DEFAULT_CONDITION: dict[str, str] = {"scheme": "fp32", "protect": "none", "prune": "none"}


@dataclass(frozen=True)
class EvalCondition:
    """One experimental condition: the ``condition`` dict for records and how to apply it to a model.

    ``apply(model)`` must return a context manager that changes the model on entry and restores it on exit
    (``None``: the model is evaluated as it is, e.g. full precision). ``check(model)``, when given, raises if the
    condition cannot apply to ``model`` (a protected layer it does not have, a group size that does not divide a
    row): scorers call it for every condition before any compute, so a bad plan fails at once, not mid-run.
    """

    condition: dict[str, Any]
    apply: Callable[[torch.nn.Module], contextlib.AbstractContextManager[Any]] | None = None
    check: Callable[[torch.nn.Module], None] | None = None

    @property
    def key(self) -> str:
        return json.dumps(self.condition, sort_keys=True)


def fp_condition() -> EvalCondition:
    """The full-precision reference condition (``scheme='fp32'``, nothing protected or pruned)."""
    return EvalCondition(dict(DEFAULT_CONDITION))


def quant_condition(scheme: Any, *, plan: Any = None) -> EvalCondition:
    """A fake-quantization condition from a ``QuantScheme`` (or its key) and an optional ``ProtectionPlan``.

    Uses :func:`qdmodels.compress.rtn.quantized`, which restores the full-precision weights on exit. A key whose
    prefix is in :data:`QUANT_BACKENDS` goes to that backend instead: ``'gguf-<type>'`` to the deployed GGUF block
    formats (:func:`qdmodels.compress.gguf.gguf_condition`), ``'torchao-'``, ``'quanto-'``, ``'hqq-'`` and ``'bnb-'``
    to the PyTorch libraries (:func:`qdmodels.compress.backends.backend_condition`). An unknown key raises
    ``UnknownNameError`` naming it and the allowed patterns.
    """
    from qdmodels.compress.rtn import quantized
    from qdmodels.compress.scheme import QuantScheme

    if isinstance(scheme, str):
        backend = _backend_of(scheme)
        if backend is not None:  # a key prefix names a backend: its module builds the condition
            module, attr = QUANT_BACKENDS[backend].split(":")
            return getattr(importlib.import_module(module), attr)(scheme.strip().lower(), plan=plan)
        try:
            scheme = QuantScheme.parse(scheme)
        except ValueError as e:
            from qdstats.validation import UnknownNameError

            raise UnknownNameError(
                f"`quant` {scheme!r} is neither a round-to-nearest key (int<2..8>-<t|ch|g<N>>-<sym|asym>, e.g. "
                f"'int4-g64-sym') nor a backend key (prefixes {sorted(QUANT_BACKENDS)}, e.g. "
                f"{list(_backend_examples())}); {e}"
            ) from None
    cond = dict(DEFAULT_CONDITION)
    cond["scheme"] = scheme.key
    cond["protect"] = plan.key if plan is not None else "none"

    def _apply(model: torch.nn.Module) -> contextlib.AbstractContextManager[Any]:
        return quantized(model, scheme, plan=plan)

    def _check(model: torch.nn.Module) -> None:
        check_applicable(model, scheme, plan=plan)

    return EvalCondition(cond, _apply, _check)


#: Scheme-key prefix -> ``module:constructor`` of the backend that builds its condition (``constructor(key, plan=)``).
QUANT_BACKENDS: dict[str, str] = {
    "gguf-": "qdmodels.compress.gguf:gguf_condition",
    "torchao-": "qdmodels.compress.backends:backend_condition",
    "quanto-": "qdmodels.compress.backends:backend_condition",
    "hqq-": "qdmodels.compress.backends:backend_condition",
    "bnb-": "qdmodels.compress.backends:backend_condition",
}


def _backend_of(key: str) -> str | None:
    k = key.strip().lower()
    return next((p for p in QUANT_BACKENDS if k.startswith(p)), None)


def _backend_examples() -> tuple[str, ...]:
    from qdmodels.compress.backends import BACKEND_EXAMPLES
    from qdmodels.compress.gguf import GGUF_TYPES

    return (*(f"gguf-{t}" for t in GGUF_TYPES), *BACKEND_EXAMPLES)


def canonical_quant_key(key: str) -> str:
    """The canonical form of any ``--quant`` key (round-to-nearest or backend), validated without a model.

    Raises
    ------
    UnknownNameError, ValueError
        A key no backend accepts, naming the value and the allowed keys.
    """
    return str(quant_condition(key).condition["scheme"])


def check_applicable(model: Any, scheme: Any, *, plan: Any = None) -> None:
    """Raise now if ``scheme`` under ``plan`` cannot be applied to ``model``, without changing any weight.

    Checks that the plan's layers exist and its selection is not empty or split across tied weights
    (:func:`~qdmodels.compress.scheme.resolve_sites`), and that the scheme's grid fits every selected tensor (a group
    size that does not divide a row, unless ragged groups are allowed).

    Raises
    ------
    ValueError
        Naming the plan's layer, the site or the group size that does not fit.
    """
    from qdmodels.compress.rtn import check_grid
    from qdmodels.compress.scheme import ProtectionPlan, QuantScheme, resolve_sites
    from qdmodels.models.sites import site_map

    if isinstance(scheme, str):
        scheme = QuantScheme.parse(scheme)
    if isinstance(plan, str):
        plan = ProtectionPlan.parse(plan)
    smap = site_map(model)
    for name in resolve_sites(smap, plan=plan):
        check_grid(smap.get(name), scheme)



def as_condition(c: Any) -> EvalCondition:
    """An :class:`EvalCondition` from a condition or a shorthand (``None``/``'fp32'``, a scheme or its key, ``(scheme, plan)``)."""
    if isinstance(c, EvalCondition):
        return c
    if c is None or (isinstance(c, str) and c in ("fp", "fp32", "none")):
        return fp_condition()
    if isinstance(c, tuple) and len(c) == 2:
        return quant_condition(c[0], plan=c[1])
    if type(c).__name__ == "QuantScheme" or isinstance(c, str):
        return quant_condition(c)
    raise TypeError(
        f"`conditions` entries must be EvalCondition, 'fp32', a QuantScheme (or its key) or (QuantScheme, ProtectionPlan); "
        f"got {type(c).__name__}."
    )


