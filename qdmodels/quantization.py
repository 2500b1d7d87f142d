"""Fake (simulated) weight quantization of chosen sites, verified, reported and reversible.

A :class:`QuantScheme` says *how* to quantize (bits, symmetric or not, tensor/channel/group granularity,
round-to-nearest, optional MSE-optimal clipping); a :class:`ProtectionPlan` says *what stays in full
precision*; :func:`quantized` applies both to a model in place, verifies that quantization really happened,
and restores the original weights bit-exactly on exit (no reload).

Quantization grid (per group of ``g`` consecutive weights along the **input** dimension of a weight):

* symmetric: ``s = alpha * max|w| / (2^(b-1) - 1)``, ``q = clamp(round(w / s), -2^(b-1), 2^(b-1) - 1)``,
  ``w_hat = s * q``. Zero is on the grid, so pruned zeros stay zero.
* asymmetric: ``lo = alpha * min(w)``, ``hi = alpha * max(w)``, ``s = (hi - lo) / (2^b - 1)``,
  ``q = clamp(round((w - lo) / s), 0, 2^b - 1)``, ``w_hat = lo + s * q`` (the "scale + min" form of GGUF Q4_1).

``alpha`` is 1 without clipping; with ``clip='mse'`` it is chosen per group from the grid
``1.00, 0.95, ..., 0.30`` (15 values) to minimize the group's squared reconstruction error.
Rounding is round-half-to-even (``torch.round``).

Examples
--------
>>> from qdmodels.testing import tiny_model
>>> lm = tiny_model("llama")
>>> scheme = QuantScheme.parse("int4-g16-sym")
>>> with quantized(lm.model, scheme) as report:
...     report.verified
True
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

from qdmodels.sites import SiteMap, site_map
from qdstats._validation import DegenerateDataWarning, WarningCollector, check_option
from qdstats.records import Measurement, ModelRef

__all__ = [
    "BackupStorage",
    "CLIP_GRID",
    "Granularity",
    "ProtectionPlan",
    "QuantScheme",
    "QuantizationHandle",
    "QuantizationReport",
    "QuantizedTensor",
    "SiteQuantStats",
    "TiedWeightError",
    "apply_quantization",
    "fake_quantize",
    "quantized",
    "resolve_sites",
]

Granularity = Literal["tensor", "channel", "group"]
#: Shrink factors searched by ``clip='mse'`` (1.0 down to 0.3 in steps of 0.05).
CLIP_GRID: tuple[float, ...] = tuple(round(1.0 - 0.05 * k, 2) for k in range(15))
_KEY_RE = re.compile(r"^int(?P<bits>[2-8])-(?P<gran>t|ch|g(?P<gs>\d+))-(?P<sym>sym|asym)(?P<rest>(-[a-z0-9]+)*)$")


class TiedWeightError(ValueError):
    """A selection quantizes/prunes one site of a tied group but not the others."""


class QuantScheme(BaseModel):
    """How to fake-quantize a weight tensor.

    Parameters
    ----------
    bits : int
        2 to 8.
    symmetric : bool, default True
    granularity : {'tensor', 'channel', 'group'}, default 'group'
        One scale per tensor, per output channel (row of ``out x in``), or per group of ``group_size``
        consecutive input weights of a row.
    group_size : int, optional
        Required (>= 2) for ``'group'``; must be None otherwise. Default 128 for ``'group'``.
    clip : {'none', 'mse'}, default 'none'
        ``'mse'`` searches a shrink factor per group over :data:`CLIP_GRID` (15 values, 1.00 to 0.30).
    rounding : {'rtn'}, default 'rtn'
        Round-to-nearest (half to even).
    ragged : {'error', 'last_group_smaller'}, default 'error'
        What to do when ``group_size`` does not divide a row: raise, or let the last group of each row be
        smaller.
    scale_bits : int, default 16
        Storage bits of each scale and each zero point/min (for the true bits-per-weight accounting).

    Examples
    --------
    >>> QuantScheme(bits=4, group_size=128).key
    'int4-g128-sym'
    >>> QuantScheme.parse("int3-ch-asym-mse").granularity
    'channel'
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    bits: int = Field(ge=2, le=8, description="Bits per weight code (2..8).")
    symmetric: bool = Field(default=True, description="Symmetric grid around zero (no zero point).")
    granularity: Granularity = Field(default="group", description="Scale granularity.")
    group_size: int | None = Field(default=None, description="Group size along the input dimension (granularity='group').")
    clip: Literal["none", "mse"] = Field(default="none", description="Clipping search.")
    rounding: Literal["rtn"] = Field(default="rtn", description="Rounding rule.")
    ragged: Literal["error", "last_group_smaller"] = Field(default="error", description="Groups not dividing a row.")
    scale_bits: int = Field(default=16, ge=1, le=32, description="Bits to store each scale / zero point.")

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            if data.get("granularity", "group") == "group" and data.get("group_size") is None:
                data["group_size"] = 128
            if isinstance(data.get("bits"), bool):
                raise ValueError(f"`bits` must be an integer in 2..8; got {data['bits']!r}.")
        return data

    @model_validator(mode="after")
    def _check(self) -> QuantScheme:
        if self.granularity == "group":
            if self.group_size is None or self.group_size < 2:
                raise ValueError(f"`group_size` must be an integer >= 2 for granularity='group'; got {self.group_size!r}.")
        elif self.group_size is not None:
            raise ValueError(
                f"`group_size` must be None for granularity={self.granularity!r}; got {self.group_size!r}."
            )
        return self

    @property
    def key(self) -> str:
        """Short stable name, e.g. ``'int4-g128-sym'``, ``'int3-ch-asym-mse'``; inverse of :meth:`parse`."""
        gran = {"tensor": "t", "channel": "ch"}.get(self.granularity, f"g{self.group_size}")
        parts = [f"int{self.bits}", gran, "sym" if self.symmetric else "asym"]
        if self.clip == "mse":
            parts.append("mse")
        if self.ragged == "last_group_smaller":
            parts.append("ragged")
        if self.scale_bits != 16:
            parts.append(f"s{self.scale_bits}")
        return "-".join(parts)

    @classmethod
    def parse(cls, key: str) -> QuantScheme:
        """Build a scheme from its :attr:`key` (``'int4-g128-sym'``, ``'int8-ch-asym'``, ``'int3-t-sym-mse'``).

        Raises
        ------
        ValueError
            A key that does not follow ``int<bits>-<t|ch|g<N>>-<sym|asym>[-mse][-ragged][-s<bits>]``.
        """
        m = _KEY_RE.match(str(key).strip().lower())
        if not m:
            raise ValueError(
                f"`key` must look like 'int4-g128-sym' (int<2..8>-<t|ch|g<N>>-<sym|asym>[-mse][-ragged][-s<bits>]); got {key!r}."
            )
        gran = m["gran"]
        kw: dict[str, Any] = {"bits": int(m["bits"]), "symmetric": m["sym"] == "sym"}
        if gran == "t":
            kw["granularity"] = "tensor"
        elif gran == "ch":
            kw["granularity"] = "channel"
        else:
            kw.update(granularity="group", group_size=int(m["gs"]))
        for extra in [e for e in m["rest"].split("-") if e]:
            if extra == "mse":
                kw["clip"] = "mse"
            elif extra == "ragged":
                kw["ragged"] = "last_group_smaller"
            elif re.fullmatch(r"s\d+", extra):
                kw["scale_bits"] = int(extra[1:])
            else:
                raise ValueError(f"`key` {key!r} has an unknown suffix {extra!r}; allowed: 'mse', 'ragged', 's<bits>'.")
        return cls(**kw)

    def __str__(self) -> str:
        return self.key


class ProtectionPlan(BaseModel):
    """What stays in full precision when a model is quantized or pruned.

    Parameters
    ----------
    layers : tuple of int, default ()
        Blocks kept entirely in full precision.
    components : tuple of {'attention', 'mlp'}, default ()
        Components kept in full precision in every block.
    sites : tuple of str, default ()
        Further canonical site names or dotted prefixes kept in full precision.
    keep_embeddings, keep_lm_head, keep_norms, keep_biases : bool, default True
        Keep these tensor classes in full precision (the practical weight-only regime). For a tied model,
        quantizing ``lm_head`` means quantizing the shared embedding too, so both flags must be False.

    Examples
    --------
    >>> ProtectionPlan().key
    'none'
    >>> ProtectionPlan(layers=(0, 11), components=("mlp",)).key
    'layers=0,11;comp=mlp'
    >>> ProtectionPlan.parse("layers=0,11;comp=mlp") == ProtectionPlan(layers=(0, 11), components=("mlp",))
    True
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    layers: tuple[int, ...] = Field(default=(), description="Blocks kept in full precision.")
    components: tuple[Literal["attention", "mlp"], ...] = Field(default=(), description="Components kept in every block.")
    sites: tuple[str, ...] = Field(default=(), description="Site names or prefixes kept in full precision.")
    keep_embeddings: bool = Field(default=True, description="Keep token/position embeddings in full precision.")
    keep_lm_head: bool = Field(default=True, description="Keep the output head in full precision.")
    keep_norms: bool = Field(default=True, description="Keep norm gains/biases in full precision.")
    keep_biases: bool = Field(default=True, description="Keep biases in full precision.")

    @model_validator(mode="after")
    def _norm(self) -> ProtectionPlan:
        for i in self.layers:
            if i < 0:
                raise ValueError(f"`layers` must hold non-negative block indices; got {i}.")
        object.__setattr__(self, "layers", tuple(sorted(set(self.layers))))
        object.__setattr__(self, "components", tuple(sorted(set(self.components))))
        object.__setattr__(self, "sites", tuple(sorted(set(self.sites))))
        return self

    @property
    def key(self) -> str:
        """``'none'`` for the default plan, else ``';'``-joined parts such as ``'layers=0,11;comp=mlp'``."""
        parts = []
        if self.layers:
            parts.append("layers=" + ",".join(str(i) for i in self.layers))
        if self.components:
            parts.append("comp=" + ",".join(self.components))
        if self.sites:
            parts.append("sites=" + ",".join(self.sites))
        released = [n for n, keep in (("embed", self.keep_embeddings), ("head", self.keep_lm_head),
                                      ("norms", self.keep_norms), ("biases", self.keep_biases)) if not keep]
        if released:
            parts.append("quantize=" + ",".join(released))
        return ";".join(parts) if parts else "none"

    @classmethod
    def parse(cls, key: str) -> ProtectionPlan:
        """Inverse of :attr:`key`. Raises ``ValueError`` naming the bad part."""
        key = str(key).strip()
        if key in ("", "none"):
            return cls()
        kw: dict[str, Any] = {}
        for part in key.split(";"):
            name, sep, val = part.partition("=")
            items = [v for v in val.split(",") if v]
            if not sep or not items:
                raise ValueError(f"`key` part {part!r} must look like 'name=v1,v2'; got {key!r}.")
            if name == "layers":
                try:
                    kw["layers"] = tuple(int(v) for v in items)
                except ValueError:
                    raise ValueError(f"`key` part {part!r}: layers must be integers.") from None
            elif name == "comp":
                kw["components"] = tuple(check_option(v, "components", ("attention", "mlp")) for v in items)
            elif name == "sites":
                kw["sites"] = tuple(items)
            elif name == "quantize":
                flags = {"embed": "keep_embeddings", "head": "keep_lm_head", "norms": "keep_norms", "biases": "keep_biases"}
                for v in items:
                    kw[flags[check_option(v, "quantize", tuple(flags))]] = False
            else:
                raise ValueError(
                    f"`key` part {part!r} has unknown name {name!r}; allowed: 'layers', 'comp', 'sites', 'quantize'."
                )
        return cls(**kw)

    def resolve(self, smap: SiteMap) -> list[str]:
        """Sites this plan lets be compressed, in model order (tie conflicts are checked by the caller)."""
        for i in self.layers:
            if i >= smap.n_layers:
                raise ValueError(f"`layers` holds {i}, but the model has {smap.n_layers} blocks.")
        protected = set(smap.match(list(self.sites))) if self.sites else set()
        out = []
        comp_map = {"attention": "attention", "mlp": "mlp"}
        for name, s in smap.sites.items():
            if name in protected:
                continue
            if s.is_bias and self.keep_biases:
                continue
            if s.component == "norm" and self.keep_norms:
                continue
            if s.component == "embedding" and self.keep_embeddings:
                continue
            if s.component == "lm_head" and self.keep_lm_head:
                continue
            if s.layer is not None and s.layer in self.layers:
                continue
            if s.component in {comp_map[c] for c in self.components}:
                continue
            out.append(name)
        return out


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


def _base_stats(x: torch.Tensor, symmetric: bool) -> tuple[torch.Tensor, ...]:
    if symmetric:
        return (x.abs().amax(dim=-1, keepdim=True),)
    return (x.amin(dim=-1, keepdim=True), x.amax(dim=-1, keepdim=True))


def _quant_dequant(x: torch.Tensor, bits: int, symmetric: bool, base: tuple[torch.Tensor, ...],
                   alpha: torch.Tensor | float) -> tuple[torch.Tensor, ...]:
    """x: [R, G, g]; alpha: [R, G, 1] or a float. Returns (deq, codes, scale, lo).

    Degenerate groups need no special case: a symmetric group with max|w| = 0 is all zeros (codes 0, deq 0);
    an asymmetric constant group has x - lo = 0 at alpha = 1 (codes 0, deq = lo = the constant).
    """
    if symmetric:
        qmax = 2 ** (bits - 1) - 1
        scale = base[0] * alpha / qmax
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
    per-group Python loop written from the formulas in the module docstring (``tests/qdmodels/test_quantization.py``,
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
            d = _quant_dequant(x, scheme.bits, scheme.symmetric, base, a)[0]
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
    deq, codes, scale, lo = _quant_dequant(x, scheme.bits, scheme.symmetric, base, alpha)
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


# ---- site selection ------------------------------------------------------------------------------------


def resolve_sites(smap: SiteMap, *, plan: ProtectionPlan | None = None, sites: str | Sequence[str] | None = None,
                  what: str = "quantize") -> list[str]:
    """The site names to compress: ``sites`` (names, prefixes or globs) filtered by ``plan``.

    With neither, the default :class:`ProtectionPlan` applies (attention and MLP projection weights of
    every block). With only ``sites``: exact site names are taken as given (``'lm_head'``,
    ``'layers.0.norm.input'``), while prefixes and globs are filtered by the default plan, so ``'layers.3'``
    means the projection weights of block 3. With both, ``plan`` filters every match.
    A selection that splits a tied group raises :class:`TiedWeightError`; an empty one raises ``ValueError``.
    """
    if plan is not None and not isinstance(plan, ProtectionPlan):
        raise TypeError(f"`plan` must be a ProtectionPlan or None; got {type(plan).__name__}.")
    if sites is None:
        chosen = (plan or ProtectionPlan()).resolve(smap)
    else:
        pats = [sites] if isinstance(sites, str) else list(sites)
        chosen = smap.match(pats)
        allowed = set((plan or ProtectionPlan()).resolve(smap))
        exact = set(pats) & set(smap.sites) if plan is None else set()
        chosen = [n for n in chosen if n in allowed or n in exact]
    chosen_set = set(chosen)
    for group in smap.tied_groups:
        inside = [n for n in group if n in chosen_set]
        if inside and len(inside) != len(group):
            outside = [n for n in group if n not in chosen_set]
            raise TiedWeightError(
                f"`sites`: {inside} share one tensor with {outside} (tied weights); to {what} it you must select the "
                f"whole group {list(group)} explicitly (e.g. ProtectionPlan(keep_embeddings=False, keep_lm_head=False)), "
                "or keep all of it in full precision."
            )
    if not chosen:
        raise ValueError(f"nothing to {what}: the `plan`/`sites` selection is empty for this {smap.family} model.")
    return chosen


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
                   routine: str = "qdmodels.quantization") -> list[Measurement]:
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


# ---- apply / restore ------------------------------------------------------------------------------------


BackupStorage = Literal["memory", "disk"]
_BACKUP_STORAGES = ("memory", "disk")


def resolve_backup_storage(backup: BackupStorage | None) -> BackupStorage:
    """``backup`` if given, else ``$QD_BACKUP`` (``'memory'`` or ``'disk'``), else ``'disk'``.

    Raises
    ------
    ValueError
        An option (or the environment variable) outside ``{'memory', 'disk'}``.
    """
    if backup is None:
        env = os.environ.get("QD_BACKUP")
        if env is None or env == "":
            return "disk"
        check_option(env, "QD_BACKUP (environment variable)", _BACKUP_STORAGES)
        return env  # type: ignore[return-value]
    check_option(backup, "backup", _BACKUP_STORAGES)
    return backup


def spill_dir() -> str:
    """Directory of the disk backups: ``$QD_SPILL_DIR`` if set, else the system temporary directory."""
    return os.environ.get("QD_SPILL_DIR") or tempfile.gettempdir()


class _Backup:
    """Exact copies of tensors before in-place modification; restores them bit-exactly.

    ``storage='memory'`` keeps clones next to the tensors (same device). ``'disk'`` writes their raw bytes to an
    anonymous temporary file in :func:`spill_dir` (unlinked when created, so nothing is left behind, even after
    a crash) and reads them back on restore: the backup then costs no process memory, which for a whole-model
    condition is the size of every quantized tensor (SmolLM2-135M: 406 MiB of 513 MiB). If the temporary
    directory is a RAM-backed tmpfs, set ``QD_SPILL_DIR`` to a directory on disk.
    """

    def __init__(self, storage: BackupStorage | None = None) -> None:
        self.storage: BackupStorage = resolve_backup_storage(storage)
        self._saved: list[tuple[torch.nn.Parameter, Any]] = []
        self._file: Any = None
        self.restored = False

    def save(self, p: torch.nn.Parameter) -> torch.Tensor:
        """Back up ``p``; return an exact copy of its current values (the caller's to use and drop)."""
        orig = p.detach().clone()
        if self.storage == "memory":
            self._saved.append((p, orig))
            return orig
        cpu = orig.to("cpu").contiguous()
        nbytes = cpu.numel() * cpu.element_size()
        try:
            if self._file is None:
                self._file = tempfile.TemporaryFile(dir=spill_dir(), prefix="qd-backup-")
            off = self._file.seek(0, os.SEEK_END)
            if nbytes:
                self._file.write(memoryview(cpu.reshape(-1).view(torch.uint8).numpy()))
        except OSError as e:
            raise OSError(
                f"could not write the weight backup ({nbytes} bytes) to {spill_dir()!r}: {e}. Set QD_SPILL_DIR to a "
                "writable directory with room, or QD_BACKUP=memory (or backup='memory') to keep it in memory."
            ) from e
        self._saved.append((p, (off, nbytes, cpu.dtype, tuple(cpu.shape))))
        return orig

    def restore(self) -> None:
        if self.restored:
            return
        with torch.no_grad():
            for p, item in reversed(self._saved):
                if isinstance(item, torch.Tensor):
                    p.data.copy_(item)
                    continue
                off, nbytes, dtype, shape = item
                if nbytes == 0:
                    continue
                buf = bytearray(nbytes)
                self._file.seek(off)
                got = self._file.readinto(buf)
                if got != nbytes:
                    raise OSError(f"weight backup file truncated: read {got} of {nbytes} bytes at offset {off}.")
                p.data.copy_(torch.frombuffer(buf, dtype=torch.uint8).view(dtype).reshape(shape))
        self.restored = True
        self._saved.clear()
        if self._file is not None:
            self._file.close()
            self._file = None


@dataclass
class QuantizationHandle:
    """Returned by :func:`apply_quantization`: the report, and :meth:`restore` to undo (bit-exact)."""

    report: QuantizationReport
    _backup: _Backup = field(repr=False)

    @property
    def restored(self) -> bool:
        return self._backup.restored

    def restore(self) -> None:
        """Put the full-precision weights back (idempotent)."""
        self._backup.restore()

    def __enter__(self) -> QuantizationReport:
        return self.report

    def __exit__(self, *exc: object) -> None:
        self.restore()


def _unwrap(model: Any) -> torch.nn.Module:
    if hasattr(model, "ref") and hasattr(model, "tokenizer") and isinstance(getattr(model, "model", None), torch.nn.Module):
        return model.model
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"`model` must be a torch.nn.Module or LoadedModel; got {type(model).__name__}.")
    return model


def unique_param_count(smap: SiteMap) -> int:
    """Parameters of all sites, tied tensors counted once."""
    seen: set[int] = set()
    total = 0
    for s in smap.sites.values():
        ptr = s.param.data_ptr()
        if ptr not in seen:
            seen.add(ptr)
            total += s.numel
    return total


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
    >>> from qdmodels.testing import tiny_model
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
    mdl = _unwrap(model)
    smap = site_map(mdl)
    names = resolve_sites(smap, plan=plan, sites=sites, what="quantize")
    plan_key = plan.key if plan is not None else ("sites" if sites is not None else ProtectionPlan().key)
    wc = WarningCollector()
    backup = _Backup(backup)
    stats: list[SiteQuantStats] = []
    done: set[int] = set()
    limit = 2**scheme.bits
    try:
        with torch.no_grad():
            for name in names:
                site = smap.sites[name]
                p = site.param
                if p.data_ptr() in done:
                    continue
                done.add(p.data_ptr())
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
    return QuantizationHandle(report=report, _backup=backup)


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
    bit-exactly when the block exits, also on an exception. Nested with :func:`qdmodels.pruning.pruned`
    (prune outside, quantize inside) it composes "prune then quantize".

    Examples
    --------
    >>> from qdmodels.testing import tiny_model
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
