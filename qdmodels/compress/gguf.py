"""Deployed GGUF block formats as conditions: weights round-tripped through gguf-py's own quantizer.

A scheme key ``gguf-<type>`` (``gguf-q4_0``, ``gguf-q4_1``, ``gguf-q5_0``, ``gguf-q5_1``, ``gguf-q8_0``,
``gguf-mxfp4``, ``gguf-tq1_0``, ``gguf-tq2_0``, ``gguf-f16``, ``gguf-bf16``) names a real llama.cpp tensor format:
every selected weight is quantized with ``gguf.quants.quantize`` and dequantized with ``gguf.quants.dequantize``
(the reference Python implementation of the GGML formats that ships with llama.cpp), with its blocks along the input
dimension, as llama.cpp stores a ``[out, in]`` weight (``ne0 = in``). The selection (protection plans), the exact
restore and the report follow round-to-nearest quantization (:mod:`qdmodels.compress.rtn`); the report states the
format's real storage cost in bits per weight (scales and minima included: Q4_0 = 4.5) and the fraction of each
site's weights the format changed, so formats compare at matched storage cost.

K-quants and llama.cpp's mixed presets (``gguf-q4_k_m``, ``gguf-q5_k_m``, ``gguf-q3_k_m``, ``gguf-q2_k``,
``gguf-q6_k``...) are quantized by llama.cpp itself: those keys are routed to :mod:`qdmodels.compress.llamacpp`
(the model written to GGUF, quantized by ``llama_model_quantize``, read back and dequantized by gguf-py). A bare
k-quant tensor type (``gguf-q4_k``) is refused: llama.cpp only makes k-quants through a preset.

Examples
--------
>>> from qdmodels.models.tiny import tiny_model
>>> from qdmodels.compress.gguf import gguf_quantized
>>> lm = tiny_model("llama")
>>> with gguf_quantized(lm, "gguf-q4_0") as report:
...     round(report.bits_per_weight, 3), report.verified
(4.5, True)
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from qdstats.validation import DegenerateDataWarning, UnknownNameError, WarningCollector, did_you_mean

from qdmodels.compress.conditions import DEFAULT_CONDITION, EvalCondition
from qdmodels.compress.restore import BackupStorage, RestoreHandle, WeightBackup
from qdmodels.compress.scheme import ProtectionPlan, resolve_sites, unique_param_count
from qdmodels.models.sites import site_map
from qdmodels.runtime import unwrap_model

__all__ = ["GGUF_TYPES", "GGUFReport", "GGUFSiteStats", "apply_gguf", "gguf_condition", "gguf_quantized",
           "gguf_roundtrip", "is_gguf_key"]

#: Formats gguf-py can quantize (lower-case names as in the scheme key ``gguf-<type>``).
GGUF_TYPES: tuple[str, ...] = ("q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "mxfp4", "tq1_0", "tq2_0", "f16", "bf16")
_DEQUANT_ONLY = ("q3_k", "q4_k", "q5_k", "q8_k", "iq1_s", "iq1_m", "iq2_xxs", "iq2_xs", "iq2_s", "iq3_xxs")
_PREFIX = "gguf-"


def is_gguf_key(key: Any) -> bool:
    """Whether ``key`` names a GGUF format condition (``'gguf-...'``)."""
    return isinstance(key, str) and key.lower().startswith(_PREFIX)


def _is_llamacpp(key: str) -> bool:
    from qdmodels.compress.llamacpp import is_llamacpp_key

    return is_llamacpp_key(key)


def _ggml_type(key: str) -> Any:
    """The ``gguf.GGMLQuantizationType`` of a ``gguf-<type>`` key (clear errors for unknown / dequantize-only types)."""
    from gguf import GGMLQuantizationType

    name = key.lower().removeprefix(_PREFIX)
    if name in _DEQUANT_ONLY:
        from qdmodels.compress.llamacpp import LLAMACPP_ONLY

        raise ValueError(
            f"`quant` {key!r}: gguf-py can dequantize {name.upper()} but not quantize it, and llama.cpp makes k-quants "
            f"only through a preset; in-process GGUF formats: {[_PREFIX + t for t in GGUF_TYPES]}; llama.cpp presets: "
            f"{[_PREFIX + t for t in LLAMACPP_ONLY]}."
        )
    if name not in GGUF_TYPES:
        from qdmodels.compress.llamacpp import LLAMACPP_ONLY

        raise UnknownNameError(f"`quant` {key!r} is not a GGUF format gguf-py can quantize nor a llama.cpp preset; "
                               f"allowed: {[_PREFIX + t for t in GGUF_TYPES + LLAMACPP_ONLY]}."
                               + did_you_mean(name, GGUF_TYPES + LLAMACPP_ONLY))
    return getattr(GGMLQuantizationType, name.upper())


def _format_bits(qtype: Any) -> tuple[int, float]:
    """``(block size, bits per weight)`` of a GGML type: storage bytes per block x 8 / weights per block."""
    from gguf import GGML_QUANT_SIZES

    block, nbytes = GGML_QUANT_SIZES[qtype]
    return block, nbytes * 8 / block


def gguf_roundtrip(weight: torch.Tensor, key: str, *, layout: str | None = "out_in") -> torch.Tensor:
    """``dequantize(quantize(weight))`` in format ``key``, blocks along the input dimension (a new tensor).

    ``layout='in_out'`` (GPT-2 ``Conv1D``) transposes so that blocks still run along the input dimension. The
    arithmetic is gguf-py's (NumPy, float32, on the CPU); the result comes back in the weight's dtype and device.

    Raises
    ------
    ValueError
        The input dimension is not a multiple of the format's block size.
    """
    qtype = _ggml_type(key)
    block, _ = _format_bits(qtype)
    w2 = weight.detach()
    w2 = w2.t() if layout == "in_out" else w2
    if w2.ndim != 2 or w2.shape[1] % block:
        raise ValueError(f"`quant` {key!r}: blocks of {block} along the input dimension do not fit a weight of shape "
                         f"{tuple(weight.shape)} (input dimension {w2.shape[-1]}).")
    from gguf import quants

    x = w2.to("cpu", torch.float32).contiguous().numpy()
    deq = quants.dequantize(quants.quantize(x, qtype), qtype).reshape(x.shape).astype(np.float32)
    out = torch.from_numpy(deq).to(device=weight.device, dtype=weight.dtype)
    return (out.t() if layout == "in_out" else out).contiguous()


@dataclass(frozen=True)
class GGUFSiteStats:
    """What the format did to one weight tensor."""

    site: str
    shape: tuple[int, ...]
    numel: int
    bits_per_weight: float
    frac_changed: float
    relative_error: float
    gguf_type: str | None = None


@dataclass(frozen=True)
class GGUFReport:
    """Report of :func:`apply_gguf` and of llama.cpp presets: per-site stats, storage cost, verification.

    For ``backend='llama.cpp'``, ``sites`` carry the type llama.cpp chose for each tensor (``gguf_type``) and its
    measured bits per weight, ``bits_per_weight`` is the weighted mean over the converted sites, ``preset`` the
    llama.cpp preset and ``layout`` the quantized file's whole per-tensor layout (copied-back or not).
    """

    key: str
    plan_key: str
    sites: tuple[GGUFSiteStats, ...]
    n_params_quantized: int
    n_params_total: int
    bits_per_weight: float
    model_bits_per_weight: float
    verified: bool
    warnings: tuple[str, ...]
    backend: str = "gguf-py"
    preset: str | None = None
    layout: Any = None
    backend_version: str | None = None

    @classmethod
    def from_sites(cls, *, key: str, plan_key: str, sites: Sequence[GGUFSiteStats], n_params_total: int,
                   fp_bits: int, warnings: tuple[str, ...], **extra: Any) -> GGUFReport:
        """The report of converted ``sites``: their count, the weighted bits per weight (the format's own value when
        every site has the same), the whole model's bits per weight (the other tensors at ``fp_bits``) and whether
        any weight changed. ``extra``: ``backend``, ``preset``, ``layout``, ``backend_version``."""
        n_q = sum(s.numel for s in sites)
        per = {s.bits_per_weight for s in sites}
        if len(per) == 1:
            bits = per.pop()
            q_bits = bits * n_q
        else:
            q_bits = sum(s.bits_per_weight * s.numel for s in sites)
            bits = q_bits / n_q if n_q else math.nan
        return cls(key=key, plan_key=plan_key, sites=tuple(sites), n_params_quantized=n_q,
                   n_params_total=n_params_total, bits_per_weight=bits,
                   model_bits_per_weight=(q_bits + fp_bits * (n_params_total - n_q)) / n_params_total,
                   verified=any(s.frac_changed > 0 for s in sites), warnings=warnings, **extra)

    def to_records(self, model_ref: Any, *, condition: dict[str, Any] | None = None,
                   routine: str = "qdmodels.compress.gguf") -> list[Any]:
        """Per-site ``quant.bits_per_weight``, ``quant.frac_changed``, ``quant.relative_error`` (attribute
        ``gguf_type``), the converted tensors' and the model's bits per weight, and for llama.cpp presets the
        file's per-tensor layout (:meth:`GGUFLayout.to_records`, ``scope='gguf_tensor'``)."""
        from qdstats.records import Measurement

        cond = {"scheme": self.key, "protect": self.plan_key, "backend": self.backend, **(condition or {})}
        recs = []
        for s in self.sites:
            attrs = {"gguf_type": s.gguf_type or self.key.removeprefix(_PREFIX).upper(), "numel": s.numel}
            for q, v in (("quant.bits_per_weight", s.bits_per_weight), ("quant.frac_changed", s.frac_changed),
                         ("quant.relative_error", s.relative_error)):
                recs.append(Measurement(quantity=q, value=v, model=model_ref, site=s.site, condition=cond, n=s.numel,
                                        attributes=attrs, routine=routine,
                                        warnings=("relative error undefined (all-zero weights)",)
                                        if isinstance(v, float) and math.isnan(v) else ()))
        recs.append(Measurement(quantity="quant.bits_per_weight", value=self.bits_per_weight, model=model_ref,
                                condition=cond, n=self.n_params_quantized, warnings=self.warnings, routine=routine,
                                attributes={"scope": "quantized_tensors", "preset": self.preset}))
        recs.append(Measurement(quantity="quant.model_bits_per_weight", value=self.model_bits_per_weight,
                                model=model_ref, condition=cond, n=self.n_params_total, warnings=self.warnings,
                                routine=routine))
        if self.layout is not None:
            recs.extend(self.layout.to_records(model_ref, condition=cond, routine=routine))
        return recs


def _check(smap: Any, names: list[str], key: str) -> None:
    block, _ = _format_bits(_ggml_type(key))
    for name in names:
        s = smap.sites[name]
        p = s.param
        cols = p.shape[0] if s.weight_layout == "in_out" else p.shape[-1]
        if p.ndim != 2 or cols % block:
            raise ValueError(f"`quant` {key!r}: site {name!r} {tuple(p.shape)} has input dimension {cols}, not a "
                             f"multiple of the format's block of {block}; protect it (ProtectionPlan) or use another format.")


def apply_gguf(model: Any, key: str, *, plan: ProtectionPlan | str | None = None, fp_bits: int = 16,
               backup: BackupStorage | None = None) -> RestoreHandle[GGUFReport]:
    """Replace the selected weights by their round trip through GGUF format ``key``, in place; return a handle.

    Parameters
    ----------
    model : torch.nn.Module or LoadedModel
    key : str
        ``'gguf-<type>'``, one of :data:`GGUF_TYPES`.
    plan : ProtectionPlan or str, optional
        What stays in full precision; default as round-to-nearest (attention and MLP projections are converted).
    fp_bits : int, default 16
        Storage bits assumed for the unconverted tensors in ``model_bits_per_weight``.
    backup : {'memory', 'disk'}, optional
        Where the originals are kept for the bit-exact restore (see :class:`~qdmodels.compress.restore.WeightBackup`).

    Returns
    -------
    RestoreHandle
        ``report`` (:class:`GGUFReport`) and ``restore()``; a context manager.

    Raises
    ------
    ValueError
        Unknown or dequantize-only format; a selected weight whose input dimension is not a multiple of the block.

    Notes
    -----
    Validated against: the written weights equal ``gguf.quants.dequantize(gguf.quants.quantize(w))`` of each
    original weight exactly, and the restore is bit-exact (tests/qdmodels/compress/test_gguf.py).
    """
    if _is_llamacpp(key):
        from qdmodels.compress.llamacpp import apply_llamacpp

        return apply_llamacpp(model, key, plan=plan, fp_bits=fp_bits, backup=backup)
    mdl = unwrap_model(model)
    if isinstance(plan, str):
        plan = ProtectionPlan.parse(plan)
    _, fmt_bits = _format_bits(_ggml_type(key))
    smap = site_map(mdl)
    names = resolve_sites(smap, plan=plan, what=f"convert to {key}")
    _check(smap, names, key)
    backup_ = WeightBackup(backup)
    wc = WarningCollector()
    stats = []
    try:
        with torch.no_grad():
            for name, site in smap.distinct(names):
                p = site.param
                new = gguf_roundtrip(p.data, key, layout=site.weight_layout)
                orig = backup_.save(p)
                p.data.copy_(new)
                if not torch.equal(p.detach(), new):
                    raise RuntimeError(f"verification failed at site {name!r}: the {key} weights were not written.")
                diff = (new.double() - orig.double())
                ssq = float(orig.double().square().sum())
                rel = math.sqrt(float(diff.square().sum()) / ssq) if ssq > 0 else math.nan
                stats.append(GGUFSiteStats(site=name, shape=tuple(p.shape), numel=p.numel(), bits_per_weight=fmt_bits,
                                           frac_changed=float((diff != 0).sum()) / p.numel(), relative_error=rel))
    except BaseException:
        backup_.restore()
        raise
    if not any(s.frac_changed > 0 for s in stats):
        wc.warn(f"{key} changed no weight of the {len(stats)} selected tensors.", DegenerateDataWarning)
    report = GGUFReport.from_sites(key=key.lower(), plan_key=plan.key if plan is not None else "none", sites=stats,
                                   n_params_total=unique_param_count(smap), fp_bits=fp_bits, warnings=wc.messages)
    return RestoreHandle(report=report, backup=backup_)


def gguf_quantized(model: Any, key: str, *, plan: ProtectionPlan | str | None = None,
                   backup: BackupStorage | None = None) -> RestoreHandle[GGUFReport]:
    """Context manager (the :class:`~qdmodels.compress.restore.RestoreHandle` of :func:`apply_gguf`): yields the
    report, restores on exit (also after an error)."""
    return apply_gguf(model, key, plan=plan, backup=backup)


def gguf_condition(key: str, *, plan: ProtectionPlan | str | None = None) -> EvalCondition:
    """An :class:`~qdmodels.compress.conditions.EvalCondition` for a GGUF format (what ``--quant gguf-q4_0`` builds).

    The condition is ``{'scheme': 'gguf-<type>', 'protect': <plan key or 'none'>, 'prune': 'none',
    'backend': 'gguf-py'}``; ``check`` refuses, before any scoring, a format or a weight shape that cannot apply.
    A llama.cpp preset key (``gguf-q4_k_m``...) gives :func:`qdmodels.compress.llamacpp.llamacpp_condition`.
    """
    if _is_llamacpp(key):
        from qdmodels.compress.llamacpp import llamacpp_condition

        return llamacpp_condition(key, plan=plan)
    _ggml_type(key)
    if isinstance(plan, str):
        plan = ProtectionPlan.parse(plan)
    cond = {**DEFAULT_CONDITION, "scheme": key.lower(), "protect": plan.key if plan is not None else "none",
            "backend": "gguf-py"}

    def _apply(model: torch.nn.Module) -> contextlib.AbstractContextManager[Any]:
        return gguf_quantized(model, key, plan=plan)

    def _check_model(model: torch.nn.Module) -> None:
        smap = site_map(model)
        _check(smap, resolve_sites(smap, plan=plan, what=f"convert to {key}"), key)

    return EvalCondition(cond, _apply, _check_model)
