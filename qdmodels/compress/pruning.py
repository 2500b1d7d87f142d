"""Magnitude pruning (unstructured per site or global, and N:M semi-structured), scoped and reversible.

Pruning zeroes the smallest-magnitude weights of the selected sites in place, with the same site selection
(:class:`~qdmodels.compress.scheme.ProtectionPlan`, explicit ``sites``, tie checks) and the same exact restore
as :mod:`qdmodels.compress.rtn`. Composition "prune then quantize" is nesting::

    with pruned(model, "2:4"), quantized(model, "int4-g128-sym"):
        ...  # symmetric quantization keeps pruned zeros at exactly zero

:func:`compressed` does both and returns the condition dict (``scheme``, ``protect``, ``prune``) for records.

Examples
--------
>>> from qdmodels.models.tiny import tiny_model
>>> lm = tiny_model("llama")
>>> with pruned(lm, "unstructured-0.5") as rep:
...     rep.sites[0].sparsity
0.5
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

from qdmodels.compress.restore import BackupStorage, RestoreHandle, WeightBackup
from qdmodels.compress.rtn import QuantizationReport, apply_quantization
from qdmodels.compress.scheme import (
    ProtectionPlan,
    QuantScheme,
    resolve_sites,
    unique_param_count,
)
from qdmodels.models.sites import site_map
from qdmodels.runtime import unwrap_model
from qdstats.records import Measurement, ModelRef

__all__ = [
    "PruneSpec",
    "PruningHandle",
    "PruningReport",
    "SitePruneStats",
    "apply_pruning",
    "compressed",
    "nm_mask",
    "pruned",
    "smallest_k_mask",
]

_UNSTRUCT_RE = re.compile(r"^unstructured(?P<glob>-global)?-(?P<s>0?\.\d+|0|1(\.0*)?)$")
_NM_RE = re.compile(r"^(?P<n>\d+):(?P<m>\d+)$")


class PruneSpec(BaseModel):
    """How to prune.

    Parameters
    ----------
    method : {'unstructured', 'nm'}
    sparsity : float, optional
        Fraction of weights zeroed, in (0, 1), for ``'unstructured'``.
    scope : {'site', 'global'}, default 'site'
        ``'site'``: each tensor loses exactly ``round(sparsity * numel)`` weights; ``'global'``: one magnitude
        threshold over all selected tensors (exactly ``round(sparsity * total)`` zeroed overall).
    n, m : int, optional
        For ``'nm'``: keep the ``n`` largest of every ``m`` consecutive input weights of each output row.

    Examples
    --------
    >>> PruneSpec.parse("2:4").key
    '2:4'
    >>> PruneSpec.parse("unstructured-global-0.3").scope
    'global'
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: Literal["unstructured", "nm"] = Field(description="Pruning pattern.")
    sparsity: float | None = Field(default=None, description="Target fraction of zeros (unstructured).")
    scope: Literal["site", "global"] = Field(default="site", description="Per-tensor or global threshold.")
    n: int | None = Field(default=None, description="Weights kept per block of m (N:M).")
    m: int | None = Field(default=None, description="Block length along the input dimension (N:M).")

    @model_validator(mode="after")
    def _check(self) -> PruneSpec:
        if self.method == "unstructured":
            if self.sparsity is None or not (0.0 < self.sparsity < 1.0):
                raise ValueError(f"`sparsity` must be in (0, 1) for method='unstructured'; got {self.sparsity!r}.")
            if self.n is not None or self.m is not None:
                raise ValueError("`n`/`m` apply only to method='nm'.")
        else:
            if self.n is None or self.m is None or not (1 <= self.n < self.m):
                raise ValueError(f"`n` and `m` must satisfy 1 <= n < m for method='nm'; got n={self.n!r}, m={self.m!r}.")
            if self.sparsity is not None or self.scope != "site":
                raise ValueError("`sparsity`/`scope` apply only to method='unstructured'.")
        return self

    @property
    def key(self) -> str:
        """``'unstructured-0.5'``, ``'unstructured-global-0.5'`` or ``'2:4'``."""
        if self.method == "nm":
            return f"{self.n}:{self.m}"
        return f"unstructured{'-global' if self.scope == 'global' else ''}-{self.sparsity:g}"

    @classmethod
    def parse(cls, key: str) -> PruneSpec:
        """Inverse of :attr:`key`. Raises ``ValueError`` for other strings."""
        k = str(key).strip().lower()
        if m := _NM_RE.match(k):
            return cls(method="nm", n=int(m["n"]), m=int(m["m"]))
        if m := _UNSTRUCT_RE.match(k):
            return cls(method="unstructured", sparsity=float(m["s"]), scope="global" if m["glob"] else "site")
        raise ValueError(f"`prune` must look like 'unstructured-0.5', 'unstructured-global-0.5' or '2:4'; got {key!r}.")


def smallest_k_mask(values: torch.Tensor, k: int) -> torch.Tensor:
    """Bool mask (same shape) marking exactly ``k`` entries with the smallest ``|values|``.

    Ties at the threshold are broken by flat index order, so the count is always exactly ``k``.
    """
    flat = values.detach().abs().reshape(-1)
    mask = torch.zeros_like(flat, dtype=torch.bool)
    if k <= 0:
        return mask.reshape(values.shape)
    if k >= flat.numel():
        return torch.ones_like(mask).reshape(values.shape)
    thr = torch.kthvalue(flat.float(), k).values
    mask = flat < thr
    need = k - int(mask.sum())
    if need > 0:
        eq = torch.nonzero(flat == thr, as_tuple=False).reshape(-1)[:need]
        mask[eq] = True
    return mask.reshape(values.shape)


def nm_mask(weight: torch.Tensor, n: int, m: int, *, layout: Literal["out_in", "in_out"] | None = "out_in",
            where: str = "`weight`") -> torch.Tensor:
    """Bool mask of weights to **zero** under N:M: in every block of ``m`` consecutive input weights of an
    output row, the ``m - n`` smallest ``|w|`` (ties: the lower index is kept). Vectorized with an ``m x m``
    comparison per block (no sort).

    Raises
    ------
    ValueError
        A non-2-D tensor or an input dimension that ``m`` does not divide.
    """
    if weight.ndim != 2:
        raise ValueError(f"N:M pruning needs a 2-D weight; {where} has shape {tuple(weight.shape)}.")
    w2 = weight.t() if layout == "in_out" else weight
    rows, cols = w2.shape
    if cols % m:
        raise ValueError(f"`m` = {m} does not divide the input dimension {cols} of {where}.")
    a = w2.detach().abs().float().reshape(rows, cols // m, m)
    # rank of each weight in its block: how many are larger, plus equal ones at a lower index (no sort)
    ai, aj = a.unsqueeze(-1), a.unsqueeze(-2)  # [..., i, 1], [..., 1, j]
    lower = torch.ones(m, m, dtype=torch.bool, device=a.device).tril(-1)  # [i, j]: j < i
    rank = ((aj > ai) | ((aj == ai) & lower)).sum(dim=-1)
    zero = (rank >= n).reshape(rows, cols)
    return zero.t() if layout == "in_out" else zero


@dataclass(frozen=True)
class SitePruneStats:
    """Sparsity of one pruned tensor (tied groups once)."""

    site: str
    tied_with: tuple[str, ...]
    numel: int
    n_zero: int
    n_pruned: int
    sparsity: float
    sparsity_before: float


@dataclass(frozen=True)
class PruningReport:
    """What :func:`pruned` did: per-site exact sparsity, overall sparsity and the magnitude threshold."""

    spec: PruneSpec
    plan_key: str
    sites: tuple[SitePruneStats, ...]
    n_params_pruned_sites: int
    n_params_total: int
    sparsity: float
    model_sparsity: float

    @property
    def condition(self) -> dict[str, str]:
        return {"prune": self.spec.key, "protect": self.plan_key}

    def site(self, name: str) -> SitePruneStats:
        for s in self.sites:
            if s.site == name or name in s.tied_with:
                return s
        raise KeyError(f"site {name!r} was not pruned")

    def to_records(self, model_ref: ModelRef, *, condition: dict[str, Any] | None = None,
                   routine: str = "qdmodels.compress.pruning") -> list[Measurement]:
        """``prune.sparsity`` per site and overall (``site=None``, over the pruned tensors)."""
        cond = {**self.condition, **(condition or {})}
        recs = [
            Measurement(quantity="prune.sparsity", value=s.sparsity, model=model_ref, site=s.site, condition=cond,
                        n=s.numel, attributes={"tied_with": ",".join(s.tied_with) or None,
                                               "sparsity_before": s.sparsity_before}, routine=routine)
            for s in self.sites
        ]
        recs.append(Measurement(quantity="prune.sparsity", value=self.sparsity, model=model_ref, condition=cond,
                                n=self.n_params_pruned_sites, attributes={"scope": "pruned_tensors"}, routine=routine))
        return recs


#: What the apply function returns: the report and a bit-exact restore.
PruningHandle = RestoreHandle

def apply_pruning(model: Any, spec: PruneSpec | str, *, plan: ProtectionPlan | str | None = None,
                  sites: str | Sequence[str] | None = None, backup: BackupStorage | None = None) -> PruningHandle:
    """Zero the smallest-magnitude weights of the selected sites in place.

    Parameters
    ----------
    model : torch.nn.Module or LoadedModel
    spec : PruneSpec or str
        A spec or its key (``'unstructured-0.5'``, ``'unstructured-global-0.5'``, ``'2:4'``).
    plan, sites
        Site selection as in :func:`qdmodels.compress.scheme.resolve_sites` (default: attention and MLP
        projection weights of every block).
    backup : {'memory', 'disk'}, optional
        Where the copies for the exact restore live, as in :func:`qdmodels.compress.rtn.apply_quantization`.

    Returns
    -------
    PruningHandle

    Raises
    ------
    TypeError, ValueError
        Bad ``spec``/``plan``/``sites``; N:M on a 1-D site or an input dimension ``m`` does not divide.
    qdmodels.compress.scheme.TiedWeightError
        A selection that splits a tied group.

    Notes
    -----
    Exact counts: per site exactly ``round(sparsity * numel)`` weights are zeroed (``'site'`` scope), or
    ``round(sparsity * total)`` over all selected tensors (``'global'``); ties at the threshold are broken by
    index order. Weights that were already zero count toward the target (they are the smallest).
    Validated against: exact sparsity counts and the N:M pattern checked block by block in tests.

    References
    ----------
    .. [1] Han, S., Pool, J., Tran, J. & Dally, W. (2015). Learning both Weights and Connections for Efficient
       Neural Networks. NeurIPS. arXiv:1506.02626 (magnitude pruning).
    .. [2] Mishra, A. et al. (2021). Accelerating Sparse Deep Neural Networks. arXiv:2104.08378 (2:4 sparsity).

    Examples
    --------
    >>> from qdmodels.models.tiny import tiny_model
    >>> lm = tiny_model("gpt2")
    >>> h = apply_pruning(lm, "2:4")
    >>> h.report.sparsity
    0.5
    >>> h.restore()
    """
    if isinstance(spec, str):
        spec = PruneSpec.parse(spec)
    if not isinstance(spec, PruneSpec):
        raise TypeError(f"`spec` must be a PruneSpec or its key; got {type(spec).__name__}.")
    if isinstance(plan, str):
        plan = ProtectionPlan.parse(plan)
    mdl = unwrap_model(model)
    smap = site_map(mdl)
    names = resolve_sites(smap, plan=plan, sites=sites, what="prune")
    plan_key = plan.key if plan is not None else ("sites" if sites is not None else ProtectionPlan().key)
    # unique tensors, in order
    uniq: list[str] = []
    seen: set[int] = set()
    for n in names:
        ptr = smap.sites[n].param.data_ptr()
        if ptr not in seen:
            seen.add(ptr)
            uniq.append(n)
    masks: dict[str, torch.Tensor] = {}
    if spec.method == "nm":
        for n in uniq:
            s = smap.sites[n]
            masks[n] = nm_mask(s.param, spec.n, spec.m, layout=s.weight_layout, where=f"site {n!r}")  # type: ignore[arg-type]
    elif spec.scope == "site":
        for n in uniq:
            p = smap.sites[n].param
            masks[n] = smallest_k_mask(p, int(round(spec.sparsity * p.numel())))  # type: ignore[operator]
    else:
        flat = torch.cat([smap.sites[n].param.detach().reshape(-1) for n in uniq])
        gmask = smallest_k_mask(flat, int(round(spec.sparsity * flat.numel())))  # type: ignore[operator]
        off = 0
        for n in uniq:
            p = smap.sites[n].param
            masks[n] = gmask[off: off + p.numel()].reshape(p.shape)
            off += p.numel()
    backup = WeightBackup(backup)
    stats = []
    try:
        with torch.no_grad():
            for n in uniq:
                p = smap.sites[n].param
                before = float((p == 0).sum()) / p.numel()
                backup.save(p)
                p.data.masked_fill_(masks[n], 0.0)
                nz = int((p == 0).sum())
                stats.append(SitePruneStats(site=n, tied_with=smap.tied_with(n), numel=p.numel(), n_zero=nz,
                                            n_pruned=int(masks[n].sum()), sparsity=nz / p.numel(),
                                            sparsity_before=before))
    except BaseException:
        backup.restore()
        raise
    n_sel = sum(s.numel for s in stats)
    n_total = unique_param_count(smap)
    n_zero = sum(s.n_zero for s in stats)
    report = PruningReport(spec=spec, plan_key=plan_key, sites=tuple(stats), n_params_pruned_sites=n_sel,
                           n_params_total=n_total, sparsity=n_zero / n_sel, model_sparsity=n_zero / n_total)
    return RestoreHandle(report=report, backup=backup)


@contextlib.contextmanager
def pruned(model: Any, spec: PruneSpec | str, *, plan: ProtectionPlan | str | None = None,
           sites: str | Sequence[str] | None = None, backup: BackupStorage | None = None) -> Iterator[PruningReport]:
    """Context manager around :func:`apply_pruning`: prune, yield the report, restore bit-exactly on exit."""
    handle = apply_pruning(model, spec, plan=plan, sites=sites, backup=backup)
    try:
        yield handle.report
    finally:
        handle.restore()


@dataclass(frozen=True)
class CompressionReport:
    """Both reports of :func:`compressed` and the condition dict for records."""

    quantization: QuantizationReport | None
    pruning: PruningReport | None
    condition: dict[str, str]


@contextlib.contextmanager
def compressed(model: Any, *, scheme: QuantScheme | str | None = None, prune: PruneSpec | str | None = None,
               plan: ProtectionPlan | str | None = None,
               sites: str | Sequence[str] | None = None,
               backup: BackupStorage | None = None) -> Iterator[CompressionReport]:
    """Prune (if ``prune``) then quantize (if ``scheme``) the same selection; restore both on exit.

    Yields a :class:`CompressionReport` whose ``condition`` is ``{'scheme': key or 'fp32', 'protect': plan key,
    'prune': key or 'none'}`` (the canonical condition keys). With neither ``scheme`` nor ``prune`` nothing is
    changed and the condition is the full-precision one.
    """
    if isinstance(plan, str):
        plan = ProtectionPlan.parse(plan)
    if isinstance(scheme, str):
        scheme = QuantScheme.parse(scheme)
    if isinstance(prune, str):
        prune = None if prune == "none" else PruneSpec.parse(prune)
    plan_key = plan.key if plan is not None else ("sites" if sites is not None else "none")
    cond = {"scheme": scheme.key if scheme is not None else "fp32", "protect": plan_key,
            "prune": prune.key if prune is not None else "none"}
    with contextlib.ExitStack() as stack:
        prep = qrep = None
        if prune is not None:
            prep = stack.enter_context(pruned(model, prune, plan=plan, sites=sites, backup=backup))
        if scheme is not None:
            h = apply_quantization(model, scheme, plan=plan, sites=sites, backup=backup)
            stack.callback(h.restore)
            qrep = h.report
        yield CompressionReport(quantization=qrep, pruning=prep, condition=cond)
