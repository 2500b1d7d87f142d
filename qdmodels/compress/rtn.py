"""Round-to-nearest fake (simulated) weight quantization of chosen sites, verified, reported and reversible.

A :class:`QuantScheme` says *how* to quantize (bits, symmetric or not, tensor/channel/group granularity,
round-to-nearest, optional MSE-optimal clipping); a :class:`ProtectionPlan` says *what stays in full
precision*; :func:`quantized` applies both to a model in place, verifies that quantization really happened,
and restores the original weights bit-exactly on exit (no reload).

Quantization grid (per group of ``g`` consecutive weights along the **input** dimension of a weight):

* symmetric: ``s = alpha * max|w| / (2^(b-1) - 1)``, ``q = clamp(round(w / s), -2^(b-1), 2^(b-1) - 1)``,
  ``w_hat = s * q``. Zero is on the grid, so pruned zeros stay zero. With ``full_range`` (key suffix ``-full``,
  the reference GPTQ's symmetric grid) ``s = alpha * 2 max|w| / (2^b - 1)`` and the same clamp, so all ``2^b``
  codes are used.
* asymmetric: ``lo = alpha * min(w)``, ``hi = alpha * max(w)``, ``s = (hi - lo) / (2^b - 1)``,
  ``q = clamp(round((w - lo) / s), 0, 2^b - 1)``, ``w_hat = lo + s * q`` (the "scale + min" form of GGUF Q4_1).

``alpha`` is 1 without clipping; with ``clip='mse'`` it is chosen per group from the grid
``1.00, 0.95, ..., 0.30`` (15 values) to minimize the group's squared reconstruction error.
Rounding is round-half-to-even (``torch.round``).

Examples
--------
>>> from qdmodels.models.tiny import tiny_model
>>> lm = tiny_model("llama")
>>> scheme = QuantScheme.parse("int4-g16-sym")
>>> with quantized(lm.model, scheme) as report:
...     report.verified
True
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch

from qdmodels.compress.restore import BackupStorage, RestoreHandle, WeightBackup
from qdmodels.compress.scheme import (
    CLIP_GRID,
    ProtectionPlan,
    QuantScheme,
    resolve_sites,
    unique_param_count,
)
from qdmodels.models.sites import site_map
from qdmodels.runtime import unwrap_model
from qdstats.records import Measurement, ModelRef
from qdstats.validation import DegenerateDataWarning, WarningCollector

__all__ = [
    "check_grid",
    "QuantizationHandle",
    "QuantizationReport",
    "QuantizedTensor",
    "SiteQuantStats",
    "apply_quantization",
    "fake_quantize",
    "quantized",
]

# ---- the tensor kernel ----------------------------------------------------------------------------------


@dataclass
class QuantizedTensor:
    """Result of :func:`fake_quantize` on one tensor (all tensors in the ``[rows, n_groups, g]`` group view).

    Attributes
    ----------
    dequantized : torch.Tensor
        Same shape and layout as the input.
    codes : torch.Tensor
        Integer codes (int16), group view; padded positions hold the edge code.
    scales, offsets : torch.Tensor
        Per-group scale and (asymmetric) min ``lo``; ``offsets`` is zeros for symmetric schemes.
    alpha : torch.Tensor
        Chosen clipping factor per group (1 without clipping).
    mask : torch.Tensor or None
        Bool, group view: True at real (not padded) positions; None when nothing was padded.
    n_groups : int
        Number of quantization groups (scales) in the tensor.
    """

    dequantized: torch.Tensor
    codes: torch.Tensor
    scales: torch.Tensor
    offsets: torch.Tensor
    alpha: torch.Tensor
    mask: torch.Tensor | None
    n_groups: int


def _group_view(w2: torch.Tensor, scheme: QuantScheme, where: str) -> tuple[torch.Tensor, torch.Tensor | None, int]:
    """``[rows, cols]`` -> ``[R, G, g]`` group view (edge-padded when ragged), mask, original cols."""
    rows, cols = w2.shape
    if scheme.granularity == "tensor":
        return w2.reshape(1, 1, rows * cols), None, cols
    if scheme.granularity == "channel":
        return w2.reshape(rows, 1, cols), None, cols
    g = int(scheme.group_size)  # type: ignore[arg-type]
    if cols % g == 0:
        return w2.reshape(rows, cols // g, g), None, cols
    if scheme.ragged == "error":
        raise ValueError(
            f"`group_size` {g} does not divide the input dimension {cols} of {where}; choose a divisor of {cols} "
            "or pass ragged='last_group_smaller'."
        )
    n_groups = math.ceil(cols / g)
    pad = n_groups * g - cols
    padded = torch.cat([w2, w2[:, -1:].expand(rows, pad)], dim=1)  # edge padding: min/max unchanged
    mask = torch.ones(rows, n_groups * g, dtype=torch.bool, device=w2.device)
    mask[:, cols:] = False
    return padded.reshape(rows, n_groups, g), mask.reshape(rows, n_groups, g), cols


def check_grid(site: Any, scheme: QuantScheme) -> None:
    """Raise ``ValueError`` now if ``scheme``'s groups do not fit the site's weight (no weight is touched)."""
    p = site.param
    if p.ndim != 2 or scheme.granularity != "group":
        return
    cols = p.shape[0] if site.weight_layout == "in_out" else p.shape[1]  # groups run along the input dimension
    g = int(scheme.group_size)  # type: ignore[arg-type]
    if cols % g and scheme.ragged == "error":
        raise ValueError(
            f"`group_size` {g} does not divide the input dimension {cols} of site {site.name!r} {tuple(p.shape)}; "
            f"choose a divisor of {cols} or pass ragged='last_group_smaller'."
        )


def _base_stats(x: torch.Tensor, symmetric: bool) -> tuple[torch.Tensor, ...]:
    if symmetric:
        return (x.abs().amax(dim=-1, keepdim=True),)
    return (x.amin(dim=-1, keepdim=True), x.amax(dim=-1, keepdim=True))


def _quant_dequant(x: torch.Tensor, bits: int, symmetric: bool, base: tuple[torch.Tensor, ...],
                   alpha: torch.Tensor | float, *, full_range: bool = False) -> tuple[torch.Tensor, ...]:
    """x: [R, G, g]; alpha: [R, G, 1] or a float. Returns (deq, codes, scale, lo).

    Degenerate groups need no special case: a symmetric group with max|w| = 0 is all zeros (codes 0, deq 0);
    an asymmetric constant group has x - lo = 0 at alpha = 1 (codes 0, deq = lo = the constant).
    """
    if symmetric:
        qmax = 2 ** (bits - 1) - 1
        scale = base[0] * alpha / ((2**bits - 1) / 2 if full_range else qmax)
        safe = torch.where(scale > 0, scale, torch.ones_like(scale))
        codes = torch.round(x / safe).clamp_(-qmax - 1, qmax)
        return codes * safe, codes, scale, torch.zeros_like(scale)
    levels = 2**bits - 1
    lo = base[0] * alpha
    scale = (base[1] * alpha - lo) / levels
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    codes = torch.round((x - lo) / safe).clamp_(0, levels)
    return codes * safe + lo, codes, scale, lo


def fake_quantize(weight: torch.Tensor, scheme: QuantScheme, *, layout: Literal["out_in", "in_out"] | None = "out_in",
                  where: str = "`weight`") -> QuantizedTensor:
    """Quantize and dequantize one tensor (pure function; the input is not modified).

    Parameters
    ----------
    weight : torch.Tensor
        1-D (treated as one row) or 2-D.
    scheme : QuantScheme
    layout : {'out_in', 'in_out'}, default 'out_in'
        ``'in_out'`` for GPT-2 ``Conv1D`` weights ``[in, out]``: groups then run along dimension 0.
    where : str
        Name used in error messages.

    Returns
    -------
    QuantizedTensor

    Raises
    ------
    TypeError
        ``scheme`` is not a :class:`QuantScheme` or ``weight`` not a tensor.
    ValueError
        A tensor with more than 2 dimensions, or a group size that does not divide the input dimension
        with ``ragged='error'``.

    Notes
    -----
    Formulas in the module docstring (round-to-nearest as in [1]_). Computed in float32 whatever the input
    dtype; the result is cast back. Validated against: a naive
    per-group Python loop written from the formulas in the module docstring (``tests/qdmodels/compress/test_rtn.py``,
    exact equality in float32), and the closed-form level bound (at most ``2**bits`` distinct values per group).

    References
    ----------
    .. [1] Nagel, M. et al. (2021). A White Paper on Neural Network Quantization. arXiv:2106.08295.

    Examples
    --------
    >>> qt = fake_quantize(torch.tensor([[127.0, -3.6, 0.5]]), QuantScheme(bits=8, granularity="tensor"))
    >>> qt.dequantized
    tensor([[127.,  -4.,   0.]])
    """
    if not isinstance(scheme, QuantScheme):
        raise TypeError(f"`scheme` must be a QuantScheme; got {type(scheme).__name__}.")
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"`weight` must be a torch.Tensor; got {type(weight).__name__}.")
    if weight.ndim not in (1, 2):
        raise ValueError(f"{where} must be 1-D or 2-D; got shape {tuple(weight.shape)}.")
    w = weight.detach().to(torch.float32)
    w2 = w.reshape(1, -1) if w.ndim == 1 else (w.t() if layout == "in_out" else w)
    x, mask, cols = _group_view(w2, scheme, where)
    R, G, _ = x.shape
    base = _base_stats(x, scheme.symmetric)
    if scheme.clip == "none":
        alpha = torch.ones(R, G, 1, dtype=x.dtype, device=x.device)
    else:  # loop over the candidate factors; every group is processed at once for each
        best_err: torch.Tensor | None = None
        alpha = torch.ones(R, G, 1, dtype=x.dtype, device=x.device)
        for a in CLIP_GRID:
            d = _quant_dequant(x, scheme.bits, scheme.symmetric, base, a, full_range=scheme.full_range)[0]
            err = d.sub_(x).square_()
            if mask is not None:
                err.mul_(mask)
            err = err.sum(dim=-1, keepdim=True)
            if best_err is None:
                best_err = err
                continue
            better = err < best_err  # strict: ties keep the larger factor
            best_err = torch.where(better, err, best_err)
            alpha = torch.where(better, torch.full_like(alpha, a), alpha)
    deq, codes, scale, lo = _quant_dequant(x, scheme.bits, scheme.symmetric, base, alpha, full_range=scheme.full_range)
    deq2 = deq.reshape(R, -1)
    if scheme.granularity == "group":
        deq2 = deq2.reshape(w2.shape[0], -1)[:, :cols]
    deq2 = deq2.reshape(w2.shape)
    out = deq2.reshape(weight.shape) if weight.ndim == 1 else (deq2.t() if layout == "in_out" else deq2)
    return QuantizedTensor(
        dequantized=out.to(weight.dtype).contiguous(), codes=codes.to(torch.int16), scales=scale.squeeze(-1),
        offsets=lo.squeeze(-1), alpha=alpha.squeeze(-1), mask=mask, n_groups=R * G,
    )


def _max_codes_per_group(codes: torch.Tensor, bits: int, symmetric: bool) -> int:
    """Largest number of distinct codes in any group of a [R, G, g] code tensor (no sort: an occupancy table).

    Padded slots of ragged groups hold the code of their row's last real weight, so they add no new code.
    """
    R, G, g = codes.shape
    shift = 2 ** (bits - 1) if symmetric else 0
    idx = (codes.to(torch.int64) + shift).reshape(R * G, g)
    occ = torch.zeros(R * G, 2**bits, dtype=torch.bool, device=codes.device)
    occ.scatter_(1, idx, True)
    return int(occ.sum(dim=1).max())



#: What :func:`apply_quantization` returns: the report and a bit-exact restore.
QuantizationHandle = RestoreHandle


# ---- report ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SiteQuantStats:
    """Verification and error statistics of one quantized tensor (one entry per tied group)."""

    site: str
    tied_with: tuple[str, ...]
    shape: tuple[int, ...]
    numel: int
    n_groups: int
    bits: int
    bits_per_weight: float
    mse: float
    relative_error: float
    sqnr_db: float
    max_levels_per_group: int
    level_limit: int
    frac_changed: float
    clip_ratio_mean: float
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class QuantizationReport:
    """What :func:`quantized` / :func:`apply_quantization` did, verified.

    Attributes
    ----------
    scheme : QuantScheme
    plan_key : str
        :attr:`ProtectionPlan.key`, or ``'sites'`` when an explicit site list was given without a plan.
    sites : tuple of SiteQuantStats
        One per quantized tensor, in model order (tied groups once, named by their first site).
    n_params_quantized, n_params_total : int
        Parameters counted once per tensor (tied weights once).
    bits_per_weight : float
        True storage bits per quantized weight: ``bits + n_scales * scale_bits / n`` (plus the zero points for
        asymmetric schemes).
    model_bits_per_weight : float
        Over all parameters, counting full-precision tensors at ``fp_bits`` (16).
    verified : bool
        Every group has at most ``2**bits`` distinct values and at least one weight changed.
    warnings : tuple of str
    """

    scheme: QuantScheme
    plan_key: str
    sites: tuple[SiteQuantStats, ...]
    n_params_quantized: int
    n_params_total: int
    bits_per_weight: float
    model_bits_per_weight: float
    fp_bits: int
    verified: bool
    warnings: tuple[str, ...] = ()

    @property
    def condition(self) -> dict[str, str]:
        """``{'scheme': ..., 'protect': ...}`` for :attr:`Measurement.condition`."""
        return {"scheme": self.scheme.key, "protect": self.plan_key}

    def site(self, name: str) -> SiteQuantStats:
        for s in self.sites:
            if s.site == name or name in s.tied_with:
                return s
        raise KeyError(f"site {name!r} was not quantized; quantized: {[s.site for s in self.sites]}")

    def to_records(self, model_ref: ModelRef, *, condition: dict[str, Any] | None = None,
                   routine: str = "qdmodels.compress.rtn") -> list[Measurement]:
        """Per-site ``quant.*`` measurements plus model-level bits per weight.

        Quantities: ``quant.reconstruction_mse``, ``quant.relative_error``, ``quant.sqnr_db``,
        ``quant.max_levels_per_group``, ``quant.bits_per_weight``, ``quant.frac_changed``,
        ``quant.clip_ratio_mean`` per site; ``quant.bits_per_weight`` (``site=None``, quantized tensors) and
        ``quant.model_bits_per_weight`` for the model.
        """
        cond = {**self.condition, **(condition or {})}
        recs: list[Measurement] = []
        for s in self.sites:
            attrs = {"n_groups": s.n_groups, "numel": s.numel, "tied_with": ",".join(s.tied_with) or None,
                     "level_limit": s.level_limit}
            vals = {
                "quant.reconstruction_mse": s.mse,
                "quant.relative_error": s.relative_error,
                "quant.sqnr_db": s.sqnr_db,
                "quant.max_levels_per_group": float(s.max_levels_per_group),
                "quant.bits_per_weight": s.bits_per_weight,
                "quant.frac_changed": s.frac_changed,
                "quant.clip_ratio_mean": s.clip_ratio_mean,
            }
            for q, v in vals.items():
                warn = s.warnings if math.isnan(v) or q == "quant.frac_changed" else ()
                recs.append(Measurement(quantity=q, value=v, model=model_ref, site=s.site, condition=cond,
                                        attributes=attrs, n=s.numel, warnings=warn, routine=routine))
        recs.append(Measurement(quantity="quant.bits_per_weight", value=self.bits_per_weight, model=model_ref,
                                condition=cond, n=self.n_params_quantized, warnings=self.warnings, routine=routine,
                                attributes={"scope": "quantized_tensors"}))
        recs.append(Measurement(quantity="quant.model_bits_per_weight", value=self.model_bits_per_weight,
                                model=model_ref, condition=cond, n=self.n_params_total, warnings=self.warnings,
                                routine=routine, attributes={"fp_bits": self.fp_bits}))
        return recs

    def summary(self) -> str:
        """A short human-readable summary (not for parsing)."""
        worst = max(self.sites, key=lambda s: s.relative_error if not math.isnan(s.relative_error) else -1)
        return (
            f"{self.scheme.key} protect={self.plan_key}: {len(self.sites)} tensors, "
            f"{self.n_params_quantized}/{self.n_params_total} params, {self.bits_per_weight:.4g} bit/w "
            f"(model {self.model_bits_per_weight:.4g}), worst rel. error {worst.relative_error:.4g} at {worst.site}, "
            f"verified={self.verified}"
        )



def apply_quantization(
    model: Any,
    scheme: QuantScheme | str,
    *,
    plan: ProtectionPlan | str | None = None,
    sites: str | Sequence[str] | None = None,
    fp_bits: int = 16,
    backup: BackupStorage | None = None,
) -> QuantizationHandle:
    """Fake-quantize the selected sites of ``model`` in place; return a handle that can restore them.

    Parameters
    ----------
    model : torch.nn.Module or LoadedModel
    scheme : QuantScheme or str
        A scheme or its key (``'int4-g128-sym'``).
    plan : ProtectionPlan or str, optional
        What stays in full precision (or its key). Default: :class:`ProtectionPlan()` (only attention and MLP
        projection weights are quantized).
    sites : str or sequence of str, optional
        Explicit site names / prefixes / globs; see :func:`resolve_sites`.
    fp_bits : int, default 16
        Storage bits assumed for full-precision tensors in ``model_bits_per_weight``.
    backup : {'memory', 'disk'}, optional
        Where the full-precision copies for :meth:`QuantizationHandle.restore` live: ``'disk'`` (an anonymous
        temporary file in ``$QD_SPILL_DIR`` or the system temp directory; no process memory) or ``'memory'``
        (clones on the weights' device; no disk I/O). Default ``$QD_BACKUP``, else ``'disk'``. Both restore
        bit-exactly.

    Returns
    -------
    QuantizationHandle
        ``.report`` (:class:`QuantizationReport`) and ``.restore()``.

    Raises
    ------
    TypeError, ValueError
        Bad ``scheme``/``plan``/``sites``; a group size that does not divide a selected site's input dimension
        (``ragged='error'``); an empty selection.
    TiedWeightError
        A selection that quantizes one member of a tied group (e.g. ``lm_head`` of a tied model) but not all.
    RuntimeError
        Verification failed (a group with more than ``2**bits`` distinct values): the weights are restored first.

    Warns
    -----
    DegenerateDataWarning
        A site whose weights did not change (already on the grid) or is all zeros; also in ``report.warnings``.

    Notes
    -----
    Each tied tensor is quantized once. Verification after writing: the parameter now equals the computed grid
    values exactly (the write landed), each group uses at most ``2**bits`` distinct codes (counted with an
    occupancy table, so at most ``2**bits`` distinct values), and the reconstruction error and the fraction of
    weights changed are measured against the saved full-precision copy.
    ``report.verified`` is False when no weight at all changed. Validated against: naive per-group reference
    implementation and the level bound (tests), exact restore checked with ``torch.equal``.

    References
    ----------
    .. [1] Nagel, M. et al. (2021). A White Paper on Neural Network Quantization. arXiv:2106.08295.
    .. [2] Dettmers, T. & Zettlemoyer, L. (2023). The case for 4-bit precision: k-bit inference scaling laws.
       ICML. arXiv:2212.09720 (group-wise quantization and bits per weight including scales).

    Examples
    --------
    >>> from qdmodels.models.tiny import tiny_model
    >>> lm = tiny_model("llama")
    >>> h = apply_quantization(lm, "int4-g16-sym", plan=ProtectionPlan(layers=(0,)))
    >>> h.report.bits_per_weight
    5.0
    >>> h.restore()
    """
    if isinstance(scheme, str):
        scheme = QuantScheme.parse(scheme)
    if not isinstance(scheme, QuantScheme):
        raise TypeError(f"`scheme` must be a QuantScheme or its key; got {type(scheme).__name__}.")
    if isinstance(plan, str):
        plan = ProtectionPlan.parse(plan)
    mdl = unwrap_model(model)
    smap = site_map(mdl)
    names = resolve_sites(smap, plan=plan, sites=sites, what="quantize")
    plan_key = plan.key if plan is not None else ("sites" if sites is not None else ProtectionPlan().key)
    wc = WarningCollector()
    backup = WeightBackup(backup)
    stats: list[SiteQuantStats] = []
    limit = 2**scheme.bits
    try:
        with torch.no_grad():
            for name, site in smap.distinct(names):
                p = site.param
                tied = smap.tied_with(name)
                qt = fake_quantize(p.data, scheme, layout=site.weight_layout, where=f"site {name!r} {tuple(p.shape)}")
                orig = backup.save(p)
                p.data.copy_(qt.dequantized)
                # verification: the write landed (what is in the model is the grid we computed), and the grid
                # uses at most 2**bits codes per group, so each group holds at most 2**bits distinct values
                if not torch.equal(p.detach(), qt.dequantized):
                    raise RuntimeError(f"verification failed at site {name!r}: the quantized values were not written.")
                max_lv = _max_codes_per_group(qt.codes, scheme.bits, scheme.symmetric)
                diff = p.detach().to(torch.float32) - orig.to(torch.float32)
                sse = float(diff.double().square_().sum())
                ssq = float(orig.double().square_().sum())
                n = orig.numel()
                frac = float((diff != 0).sum()) / n
                site_warn: list[str] = []
                rel = math.sqrt(sse / ssq) if ssq > 0 else float("nan")
                if ssq == 0:
                    site_warn.append(f"site {name!r} is all zeros; relative error and SQNR are undefined.")
                sqnr = 10 * math.log10(ssq / sse) if (sse > 0 and ssq > 0) else float("nan")
                if sse == 0 and ssq > 0:
                    site_warn.append(
                        f"site {name!r} is unchanged by {scheme.key} (weights already on the grid); SQNR is infinite."
                    )
                for m in site_warn:
                    wc.warn(m, DegenerateDataWarning)
                n_scale = qt.n_groups * (1 if scheme.symmetric else 2)
                bpw = scheme.bits + n_scale * scheme.scale_bits / n
                stats.append(SiteQuantStats(
                    site=name, tied_with=tied, shape=tuple(p.shape), numel=n, n_groups=qt.n_groups, bits=scheme.bits,
                    bits_per_weight=bpw, mse=sse / n, relative_error=rel, sqnr_db=sqnr, max_levels_per_group=max_lv,
                    level_limit=limit, frac_changed=frac, clip_ratio_mean=float(qt.alpha.double().mean()),
                    warnings=tuple(site_warn),
                ))
                if max_lv > limit:
                    raise RuntimeError(
                        f"verification failed at site {name!r}: a group has {max_lv} distinct values > 2**{scheme.bits}."
                    )
    except BaseException:
        backup.restore()
        raise
    n_q = sum(s.numel for s in stats)
    n_total = unique_param_count(smap)
    bits_q = sum(s.bits_per_weight * s.numel for s in stats)
    changed = any(s.frac_changed > 0 for s in stats)
    if not changed:
        wc.warn(f"{scheme.key} changed no weight of the {len(stats)} selected tensors.", DegenerateDataWarning)
    report = QuantizationReport(
        scheme=scheme, plan_key=plan_key, sites=tuple(stats), n_params_quantized=n_q, n_params_total=n_total,
        bits_per_weight=bits_q / n_q, model_bits_per_weight=(bits_q + (n_total - n_q) * fp_bits) / n_total,
        fp_bits=fp_bits, verified=changed and all(s.max_levels_per_group <= limit for s in stats),
        warnings=wc.messages,
    )
    return RestoreHandle(report=report, backup=backup)


@contextlib.contextmanager
def quantized(
    model: Any,
    scheme: QuantScheme | str,
    *,
    plan: ProtectionPlan | str | None = None,
    sites: str | Sequence[str] | None = None,
    fp_bits: int = 16,
    backup: BackupStorage | None = None,
) -> Iterator[QuantizationReport]:
    """Context manager: fake-quantize in place, yield the :class:`QuantizationReport`, restore on exit.

    Same parameters, errors and notes as :func:`apply_quantization`; the full-precision weights are restored
    bit-exactly when the block exits, also on an exception. Nested with :func:`qdmodels.compress.pruning.pruned`
    (prune outside, quantize inside) it composes "prune then quantize".

    Examples
    --------
    >>> from qdmodels.models.tiny import tiny_model
    >>> lm = tiny_model("gpt2")
    >>> before = lm.model.transformer.h[0].attn.c_attn.weight.clone()
    >>> with quantized(lm, "int3-ch-sym") as rep:
    ...     rep.site("layers.0.attn.qkv_proj").max_levels_per_group <= 8
    True
    >>> bool(torch.equal(before, lm.model.transformer.h[0].attn.c_attn.weight))
    True
    """
    handle = apply_quantization(model, scheme, plan=plan, sites=sites, fp_bits=fp_bits, backup=backup)
    try:
        yield handle.report
    finally:
        handle.restore()
