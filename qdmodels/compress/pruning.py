"""Magnitude pruning (unstructured per site or global, N:M semi-structured) and activation-aware (Wanda-style)
pruning, scoped and reversible.

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
    "input_norms",
    "nm_mask",
    "pruned",
    "smallest_k_mask",
    "wanda_mask",
]

_UNSTRUCT_RE = re.compile(r"^unstructured(?P<glob>-global)?-(?P<s>0?\.\d+|0|1(\.0*)?)$")
_NM_RE = re.compile(r"^(?P<n>\d+):(?P<m>\d+)$")
_WANDA_RE = re.compile(r"^wanda-(?P<s>0?\.\d+)$")


class PruneSpec(BaseModel):
    """How to prune.

    Parameters
    ----------
    method : {'unstructured', 'nm', 'wanda'}
        ``'wanda'``: activation-aware, each output row loses the ``round(sparsity * in_features)`` weights with the
        smallest ``|W_ij| · ||X_j||₂`` (input norms from calibration text; Sun et al. 2023).
    sparsity : float, optional
        Fraction of weights zeroed, in (0, 1), for ``'unstructured'`` and ``'wanda'``.
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
    >>> PruneSpec.parse("wanda-0.2").key
    'wanda-0.2'
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: Literal["unstructured", "nm", "wanda"] = Field(description="Pruning pattern.")
    sparsity: float | None = Field(default=None, description="Target fraction of zeros (unstructured).")
    scope: Literal["site", "global"] = Field(default="site", description="Per-tensor or global threshold.")
    n: int | None = Field(default=None, description="Weights kept per block of m (N:M).")
    m: int | None = Field(default=None, description="Block length along the input dimension (N:M).")

    @model_validator(mode="after")
    def _check(self) -> PruneSpec:
        if self.method in ("unstructured", "wanda"):
            if self.sparsity is None or not (0.0 < self.sparsity < 1.0):
                raise ValueError(f"`sparsity` must be in (0, 1) for method={self.method!r}; got {self.sparsity!r}.")
            if self.n is not None or self.m is not None:
                raise ValueError("`n`/`m` apply only to method='nm'.")
            if self.method == "wanda" and self.scope != "site":
                raise ValueError("method='wanda' compares weights within each output row; `scope` must be 'site'.")
        else:
            if self.n is None or self.m is None or not (1 <= self.n < self.m):
                raise ValueError(f"`n` and `m` must satisfy 1 <= n < m for method='nm'; got n={self.n!r}, m={self.m!r}.")
            if self.sparsity is not None or self.scope != "site":
                raise ValueError("`sparsity`/`scope` apply only to method='unstructured'.")
        return self

    @property
    def key(self) -> str:
        """``'unstructured-0.5'``, ``'unstructured-global-0.5'``, ``'2:4'`` or ``'wanda-0.5'``."""
        if self.method == "nm":
            return f"{self.n}:{self.m}"
        if self.method == "wanda":
            return f"wanda-{self.sparsity:g}"
        return f"unstructured{'-global' if self.scope == 'global' else ''}-{self.sparsity:g}"

    @classmethod
    def parse(cls, key: str) -> PruneSpec:
        """Inverse of :attr:`key`. Raises ``ValueError`` for other strings."""
        k = str(key).strip().lower()
        if m := _NM_RE.match(k):
            return cls(method="nm", n=int(m["n"]), m=int(m["m"]))
        if m := _UNSTRUCT_RE.match(k):
            return cls(method="unstructured", sparsity=float(m["s"]), scope="global" if m["glob"] else "site")
        if m := _WANDA_RE.match(k):
            return cls(method="wanda", sparsity=float(m["s"]))
        raise ValueError(f"`prune` must look like 'unstructured-0.5', 'unstructured-global-0.5', '2:4' or 'wanda-0.5'; "
                         f"got {key!r}.")

    @property
    def needs_calibration(self) -> bool:
        """True for activation-aware methods (``'wanda'``), which need calibration text."""
        return self.method == "wanda"


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


def wanda_mask(weight: torch.Tensor, norms: torch.Tensor, sparsity: float, *,
               layout: Literal["out_in", "in_out"] | None = "out_in", where: str = "`weight`") -> torch.Tensor:
    """Bool mask of weights to **zero** under Wanda: per output row, the ``round(sparsity * in_features)`` entries
    with the smallest score ``|W_ij| · norms_j`` (ties: the lower input index is zeroed first).

    Parameters
    ----------
    weight : torch.Tensor
        2-D weight; ``layout`` says whether rows are outputs (``'out_in'``, ``nn.Linear``) or inputs (``'in_out'``,
        GPT-2's ``Conv1D``).
    norms : torch.Tensor
        ``(in_features,)`` L2 norms of the inputs the weight multiplies, over the calibration tokens.
    sparsity : float
        Fraction of each row zeroed, in (0, 1).

    Examples
    --------
    >>> import torch
    >>> w = torch.tensor([[1.0, -2.0, 3.0, 0.5]])
    >>> wanda_mask(w, torch.tensor([10.0, 1.0, 1.0, 1.0]), 0.5).tolist()  # scores 10, 2, 3, 0.5
    [[False, True, False, True]]
    """
    if weight.ndim != 2:
        raise ValueError(f"Wanda pruning needs a 2-D weight; {where} has shape {tuple(weight.shape)}.")
    w2 = weight.t() if layout == "in_out" else weight
    rows, cols = w2.shape
    if norms.shape != (cols,):
        raise ValueError(f"`norms` for {where} must have shape ({cols},); got {tuple(norms.shape)}.")
    k = int(round(sparsity * cols))
    score = w2.detach().abs().double() * norms.detach().double().to(w2.device)[None, :]
    zero = torch.zeros(rows, cols, dtype=torch.bool, device=w2.device)
    if k > 0:
        order = torch.argsort(score, dim=1, stable=True)[:, :k]
        zero.scatter_(1, order, True)
    return zero.t() if layout == "in_out" else zero


def input_norms(model: Any, sites: Sequence[str], calibration: Any, *, batch_size: int = 8) -> dict[str, torch.Tensor]:
    """Per site, the L2 norm of each input feature over all calibration tokens: ``||X_j||₂`` for Wanda's score.

    Inputs are read with forward pre-hooks on each site's module during plain forward passes of the unchanged model
    (one pass over the calibration text for every site at once), accumulated in float64.

    Parameters
    ----------
    model : torch.nn.Module or LoadedModel
    sites : sequence of str
        Canonical weight sites (:func:`qdmodels.models.sites.site_map`) of 2-D matrices.
    calibration : CalibrationSet or torch.Tensor
        :func:`qdmodels.compress.calibration_sets.build_calibration`, or int64 token ids ``(n_sequences, seq_len)``.
    batch_size : int, default 8
        Sequences per forward pass.

    Returns
    -------
    dict
        Site -> float64 tensor ``(in_features,)``.

    Notes
    -----
    Validated against: the inputs of the first block's projections recomputed by hand from the embedding and the
    block's input norm (tests/qdmodels/compress/test_pruning_wanda.py).
    """
    from qdmodels.compress.calibration_sets import calibration_ids

    ids = calibration_ids(calibration)[0]
    mdl = unwrap_model(model)
    smap = site_map(mdl)
    sums: dict[str, torch.Tensor] = {}
    hooks = []

    def _hook(name: str, in_dim: int):  # noqa: ANN202
        def pre(_module: torch.nn.Module, args: tuple[Any, ...]) -> None:
            x = args[0].detach().reshape(-1, in_dim).double()
            sums[name] = sums.get(name, torch.zeros(in_dim, dtype=torch.float64, device=x.device)) + (x * x).sum(0)
        return pre

    try:
        for n in sites:
            site = smap.sites[n]
            module = mdl.get_submodule(site.param_path.rsplit(".", 1)[0])
            in_dim = site.param.shape[1] if site.weight_layout != "in_out" else site.param.shape[0]
            hooks.append(module.register_forward_pre_hook(_hook(n, int(in_dim))))
        device = next(mdl.parameters()).device
        with torch.no_grad():
            for i in range(0, ids.shape[0], batch_size):
                mdl(input_ids=ids[i: i + batch_size].to(device))
    finally:
        for h in hooks:
            h.remove()
    missing = [n for n in sites if n not in sums]
    if missing:
        raise RuntimeError(f"no calibration input reached site(s) {missing[:5]}; cannot compute Wanda scores.")
    return {n: v.sqrt() for n, v in sums.items()}


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
    calibration: dict[str, Any] | None = None

    @property
    def condition(self) -> dict[str, Any]:
        """``prune`` and ``protect``; for activation-aware pruning also ``prune_calibration``, ``prune_calib_tokens``
        and ``prune_calib_seed`` (which text chose the weights)."""
        cal = {f"prune_{k}": v for k, v in (self.calibration or {}).items() if v is not None}
        return {"prune": self.spec.key, "protect": self.plan_key, **cal}

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
                  sites: str | Sequence[str] | None = None, backup: BackupStorage | None = None,
                  calibration: Any = None, batch_size: int = 8) -> PruningHandle:
    """Zero the smallest-magnitude (or, for ``'wanda-<s>'``, smallest activation-weighted) weights of the selected
    sites in place.

    Parameters
    ----------
    model : torch.nn.Module or LoadedModel
    spec : PruneSpec or str
        A spec or its key (``'unstructured-0.5'``, ``'unstructured-global-0.5'``, ``'2:4'``, ``'wanda-0.5'``).
    plan, sites
        Site selection as in :func:`qdmodels.compress.scheme.resolve_sites` (default: attention and MLP
        projection weights of every block).
    backup : {'memory', 'disk'}, optional
        Where the copies for the exact restore live, as in :func:`qdmodels.compress.rtn.apply_quantization`.
    calibration : CalibrationSet or torch.Tensor, optional
        Required for ``'wanda-<s>'`` (the input norms, :func:`input_norms`); refused for the other methods.
    batch_size : int, default 8
        Calibration sequences per forward pass (``'wanda-<s>'``).

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
    ``'wanda-<s>'`` zeroes ``round(s * in_features)`` weights of every output row by ``|W_ij| · ||X_j||₂``, with the
    input norms of every site taken in one pass of the unpruned model over the calibration text. The reference
    implementation instead prunes block by block and feeds each block the outputs of the already pruned ones;
    this one-shot variant is "Wanda-style", and the calibration text is a choice the records keep
    (``prune_calibration``), as it is for GPTQ.
    Validated against: exact sparsity counts and the N:M pattern checked block by block in tests; Wanda's mask
    against scores recomputed by hand from the first block's inputs.

    References
    ----------
    .. [1] Han, S., Pool, J., Tran, J. & Dally, W. (2015). Learning both Weights and Connections for Efficient
       Neural Networks. NeurIPS. arXiv:1506.02626 (magnitude pruning).
    .. [2] Mishra, A. et al. (2021). Accelerating Sparse Deep Neural Networks. arXiv:2104.08378 (2:4 sparsity).
    .. [3] Sun, M., Liu, Z., Bair, A. & Kolter, J. Z. (2023). A Simple and Effective Pruning Approach for Large
       Language Models. arXiv:2306.11695 (Wanda).

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
    if spec.needs_calibration and calibration is None:
        raise ValueError(f"`calibration` is required for prune={spec.key!r} (activation-aware): pass a CalibrationSet "
                         "from qdmodels.compress.calibration_sets.build_calibration or int64 token ids.")
    if not spec.needs_calibration and calibration is not None:
        raise ValueError(f"`calibration` applies only to activation-aware pruning ('wanda-<s>'); prune={spec.key!r} "
                         "is magnitude pruning.")
    masks: dict[str, torch.Tensor] = {}
    cal_info: dict[str, Any] | None = None
    if spec.method == "wanda":
        from qdmodels.compress.calibration_sets import calibration_ids

        _, cal_key, cal_tokens, cal_seed, _ = calibration_ids(calibration)
        cal_info = {"calibration": cal_key, "calib_tokens": cal_tokens, "calib_seed": cal_seed}
        norms = input_norms(mdl, uniq, calibration, batch_size=batch_size)
        for n in uniq:
            s = smap.sites[n]
            masks[n] = wanda_mask(s.param, norms[n], spec.sparsity, layout=s.weight_layout,  # type: ignore[arg-type]
                                  where=f"site {n!r}")
    elif spec.method == "nm":
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
                           n_params_total=n_total, sparsity=n_zero / n_sel, model_sparsity=n_zero / n_total,
                           calibration=cal_info)
    return RestoreHandle(report=report, backup=backup)


@contextlib.contextmanager
def pruned(model: Any, spec: PruneSpec | str, *, plan: ProtectionPlan | str | None = None,
           sites: str | Sequence[str] | None = None, backup: BackupStorage | None = None,
           calibration: Any = None) -> Iterator[PruningReport]:
    """Context manager around :func:`apply_pruning`: prune, yield the report, restore bit-exactly on exit."""
    handle = apply_pruning(model, spec, plan=plan, sites=sites, backup=backup, calibration=calibration)
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
               backup: BackupStorage | None = None, calibration: Any = None) -> Iterator[CompressionReport]:
    """Prune (if ``prune``) then quantize (if ``scheme``) the same selection; restore both on exit.

    Yields a :class:`CompressionReport` whose ``condition`` is ``{'scheme': key or 'fp32', 'protect': plan key,
    'prune': key or 'none'}`` (the canonical condition keys; activation-aware pruning adds its calibration keys).
    With neither ``scheme`` nor ``prune`` nothing is changed and the condition is the full-precision one.
    ``calibration`` goes to :func:`apply_pruning` (``'wanda-<s>'``).
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
            prep = stack.enter_context(pruned(model, prune, plan=plan, sites=sites, backup=backup,
                                              calibration=calibration))
            cond.update({k: v for k, v in prep.condition.items() if k.startswith("prune_")})
        if scheme is not None:
            h = apply_quantization(model, scheme, plan=plan, sites=sites, backup=backup)
            stack.callback(h.restore)
            qrep = h.report
        yield CompressionReport(quantization=qrep, pruning=prep, condition=cond)
