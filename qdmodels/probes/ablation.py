"""Redundancy probes: scoped ablation of attention heads, MLP neurons and whole sublayers, measured per language.

Where ablations act
-------------------
Every family concatenates the per-head attention outputs and feeds them to one output projection (site
``layers.{i}.attn.o_proj``: GPT-2 ``c_proj`` (Conv1D), Llama/SmolLM2/Gemma-3/Qwen2 ``o_proj``, OPT ``out_proj``,
BLOOM/GPT-NeoX ``dense``). A **head** ablation edits the input of that projection with a forward pre-hook: head
``h`` is the slice ``[h*head_dim, (h+1)*head_dim)`` with ``head_dim = in_features / num_attention_heads``. With
grouped-query attention the heads are the *query* heads (several query heads share one key/value head; each
still has its own slice of the ``o_proj`` input). An MLP **neuron** ablation edits the input of
``layers.{i}.mlp.down_proj`` (after the activation / gating). A **sublayer** ablation (``'attn'``/``'mlp'``)
replaces the *output* of ``o_proj`` / ``down_proj`` with zeros (or its mean), which removes the sublayer's
contribution to the residual stream in every supported family: what follows the projection maps 0 to 0
(dropout in eval mode, Gemma-3's post-attention/post-feedforward RMSNorm, BLOOM's ``dropout_add``).

``'zero'`` writes zeros; ``'mean'`` writes the mean of the same activations over a reference set of items
(:func:`ablation_means`), taken over every non-padding position (the context token included, i.e. exactly the
positions that are ablated). All hooks live in a :class:`~qdmodels.models.hooks.HookSet` and are removed when the
``with`` block exits, also on error; the model's weights are never modified.

Measurements
------------
:func:`head_importance` ablates one head at a time and records the paired change in bits per byte per language
(``ablation.delta_bits_per_byte``) with a cluster-bootstrap CI. :func:`dose_response` ablates a growing fraction
of heads (random orders with repeated seeds, or ranked by an importance measured on a *separate* dev set), on
the full-precision and on quantized models, and records the curve, a per-language slope with CI, the slope's
difference to a reference language (``ablation.dose_slope_did``, paired bootstrap over parallel items) and the
quantized-minus-full-precision slope (``ablation.dose_slope_quant_diff``).

Examples
--------
>>> import torch
>>> from qdmodels.models.tiny import tiny_model
>>> lm = tiny_model("llama")
>>> ids = torch.tensor([[1, 40, 41, 42]])
>>> with ablated(lm, [Ablation("head", layer=0, units=(0, 3))]):
...     changed = lm.model(ids).logits
>>> bool((changed != lm.model(ids).logits).any())
True
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd
import torch

from qdmodels.compress.conditions import DEFAULT_CONDITION
from qdmodels.corpora.types import ParallelItem
from qdmodels.eval.batching import make_batches
from qdmodels.eval.encoding import EncodedItem, encode_items
from qdmodels.models.hooks import HookSet
from qdmodels.models.sites import SiteMap, site_map
from qdmodels.runtime import content_hash, context_token, flatten_items, resolve_model
from qdstats.options import BOOTSTRAP_KINDS, BootstrapKind
from qdstats.records import Measurement
from qdstats.resampling import (
    RngLike,
    as_generator,
    cluster_bootstrap_ci,
    seed_detail,
)
from qdstats.results import ci_attributes
from qdstats.validation import check_confidence_level, check_int, check_option

__all__ = [
    "Ablation",
    "AblationKind",
    "AblationMeans",
    "AblationMethod",
    "AttentionGeometry",
    "DoseResponseResult",
    "ImportanceResult",
    "ablated",
    "ablation_means",
    "attention_geometry",
    "dose_response",
    "head_importance",
]

AblationKind = Literal["head", "neuron", "attn", "mlp"]
AblationMethod = Literal["zero", "mean"]
Order = Literal["random", "ranked"]
Cluster = Literal["document", "item"]
KINDS: tuple[str, ...] = get_args(AblationKind)
METHODS: tuple[str, ...] = get_args(AblationMethod)
LN2 = math.log(2.0)
_ROUTINE_IMP = "qdmodels.probes.ablation.head_importance"
_ROUTINE_DOSE = "qdmodels.probes.ablation.dose_response"


# ----------------------------------------------------------------------------- geometry and specs
@dataclass(frozen=True)
class AttentionGeometry:
    """Attention/MLP shapes that ablation needs.

    Attributes
    ----------
    n_layers, n_heads, n_kv_heads, head_dim, d_intermediate : int
        ``n_heads`` counts query heads; ``head_dim = o_proj in_features / n_heads``; ``d_intermediate`` is the
        input width of ``down_proj``.
    """

    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    d_intermediate: int


def _in_features(site_module: torch.nn.Module) -> int:
    if type(site_module).__name__ == "Conv1D":  # GPT-2: weight is [in, out]
        return int(site_module.weight.shape[0])
    return int(site_module.weight.shape[1])


def attention_geometry(model: Any) -> AttentionGeometry:
    """Heads, head size and MLP width of a causal LM, read from its config and its ``o_proj``/``down_proj``.

    Raises
    ------
    ValueError
        The config names no head count, or ``o_proj``'s input width is not a multiple of it.
    """
    smap = site_map(model)
    m = smap.sites["layers.0.attn.o_proj"].module
    cfg = _model_of(model).config
    if hasattr(cfg, "get_text_config"):  # multimodal configs nest the decoder's config
        cfg = cfg.get_text_config()
    n_heads = getattr(cfg, "num_attention_heads", None) or getattr(cfg, "n_head", None)
    if not isinstance(n_heads, int) or n_heads < 1:
        raise ValueError(f"`model` config gives no attention head count (num_attention_heads / n_head); got {n_heads!r}.")
    n_kv = getattr(cfg, "num_key_value_heads", None) or n_heads
    width = _in_features(m)
    if width % n_heads:
        raise ValueError(f"o_proj input width {width} is not a multiple of {n_heads} heads; cannot locate heads.")
    d_int = _in_features(smap.sites["layers.0.mlp.down_proj"].module)
    return AttentionGeometry(n_layers=smap.n_layers, n_heads=n_heads, n_kv_heads=int(n_kv), head_dim=width // n_heads,
                             d_intermediate=d_int)


def _model_of(model: Any) -> torch.nn.Module:
    inner = getattr(model, "model", None)
    if hasattr(model, "tokenizer") and isinstance(inner, torch.nn.Module):
        return inner
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"`model` must be a torch.nn.Module or a LoadedModel; got {type(model).__name__}.")
    return model


@dataclass(frozen=True)
class Ablation:
    """One ablation.

    Parameters
    ----------
    kind : {'head', 'neuron', 'attn', 'mlp'}
        Attention heads (query heads), MLP neurons (``down_proj`` inputs), or the whole attention / MLP sublayer.
    layer : int
        Block index (negative counts from the end).
    units : tuple of int, default ()
        Head or neuron indices; must be empty for ``'attn'``/``'mlp'``.
    method : {'zero', 'mean'}, default 'zero'
        Write zeros, or the reference mean from :func:`ablation_means`.

    Examples
    --------
    >>> Ablation("head", layer=3, units=(0, 5)).key
    'head:3:0,5:zero'
    """

    kind: AblationKind
    layer: int
    units: tuple[int, ...] = ()
    method: AblationMethod = "zero"

    def __post_init__(self) -> None:
        check_option(self.kind, "kind", KINDS)
        check_option(self.method, "method", METHODS)
        check_int(self.layer, "layer")
        units = tuple(self.units)
        for u in units:
            if isinstance(u, bool) or not isinstance(u, (int, np.integer)) or u < 0:
                raise ValueError(f"`units` must hold non-negative int indices; got {u!r}.")
        if len(set(units)) != len(units):
            raise ValueError(f"`units` must not repeat an index; got {units}.")
        if self.kind in ("attn", "mlp") and units:
            raise ValueError(f"`units` must be empty for a whole-sublayer ablation (kind={self.kind!r}); got {units}.")
        if self.kind in ("head", "neuron") and not units:
            raise ValueError(f"`units` must name at least one index for kind={self.kind!r}; got none.")
        object.__setattr__(self, "units", tuple(int(u) for u in units))

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.layer}:{','.join(map(str, self.units))}:{self.method}"


# point names: where a value is written or a mean is taken
def _point(kind: str) -> tuple[str, str]:
    return {"head": ("attn.o_proj", "in"), "attn": ("attn.o_proj", "out"),
            "neuron": ("mlp.down_proj", "in"), "mlp": ("mlp.down_proj", "out")}[kind]


@dataclass(frozen=True)
class AblationMeans:
    """Mean activations over a reference set, for mean ablation.

    Attributes
    ----------
    values : dict
        ``(site, 'in' | 'out') -> 1-D float32 tensor``; site is e.g. ``'layers.3.attn.o_proj'``.
    n_positions : int
        Non-padding positions averaged (per layer).
    items_sha256 : str
        Hash of the reference items.
    """

    values: dict[tuple[str, str], torch.Tensor]
    n_positions: int
    items_sha256: str

    def get(self, site: str, io: str) -> torch.Tensor:
        key = (site, io)
        if key not in self.values:
            raise ValueError(f"`means` has no mean for {site} ({io}put); compute it with ablation_means(..., layers=[...]) "
                             "covering this layer.")
        return self.values[key]


def ablation_means(
    loaded: Any,
    items: Sequence[ParallelItem] | Mapping[str, Sequence[ParallelItem]],
    *,
    layers: Sequence[int] | None = None,
    batch_size: int = 8,
) -> AblationMeans:
    """Mean input and output of every ``o_proj`` and ``down_proj`` over a reference set (for mean ablation).

    Parameters
    ----------
    loaded : LoadedModel
    items : sequence of ParallelItem or dict
        The reference set (use items that are not evaluated afterwards).
    layers : sequence of int, optional
        Blocks to cover; default all.
    batch_size : int, default 8

    Returns
    -------
    AblationMeans

    Notes
    -----
    The mean runs over every non-padding position of every item, the context token included (the same
    positions that ablation overwrites), in float64. Computed in the model's current state.
    Validated against: the mean of the activations captured with :func:`qdmodels.models.hooks.capture` on the
    unpadded items, atol 1e-6 (tests).
    """
    model, tokenizer, _ = resolve_model(loaded, None, None)
    flat = flatten_items(items)
    smap = site_map(model)
    idx = _layers(layers, smap)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    ctx_id, _ = context_token(tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else ctx_id
    encoded = encode_items(model, tokenizer, flat)
    sums: dict[tuple[str, str], torch.Tensor] = {}
    count = 0
    for b in make_batches(encoded, batch_size=batch_size, pad_id=pad_id):
        mask = b.attention_mask.bool()
        with torch.inference_mode(), HookSet() as hs:
            for i in idx:
                for kind in ("attn.o_proj", "mlp.down_proj"):
                    site = f"layers.{i}.{kind}"
                    mod = smap.sites[site].module

                    def acc(x: torch.Tensor, key: tuple[str, str], _mask: torch.Tensor = mask) -> None:
                        s = x[_mask].double().sum(dim=0)
                        sums[key] = sums[key] + s if key in sums else s

                    hs.pre(mod, lambda m, a, _s=site: acc(a[0], (_s, "in")))
                    hs.forward(mod, lambda m, a, o, _s=site: acc(o, (_s, "out")))
            model(input_ids=b.input_ids, attention_mask=b.attention_mask, use_cache=False)
        count += int(mask.sum())
    values = {k: (v / count).float() for k, v in sums.items()}
    return AblationMeans(values=values, n_positions=count, items_sha256=content_hash(flat))


def _layers(layers: Sequence[int] | None, smap: SiteMap) -> list[int]:
    if layers is None:
        return list(range(smap.n_layers))
    out: list[int] = []
    for i in layers:
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not -smap.n_layers <= i < smap.n_layers:
            raise ValueError(f"`layers` must hold block indices in [-{smap.n_layers}, {smap.n_layers}); got {i!r}.")
        if int(i) % smap.n_layers not in out:
            out.append(int(i) % smap.n_layers)
    return out


@contextlib.contextmanager
def ablated(
    model: Any, ablations: Sequence[Ablation], *, means: AblationMeans | None = None
) -> Iterator[list[Ablation]]:
    """Apply ablations with hooks for the duration of a ``with`` block; every hook is removed on exit.

    Parameters
    ----------
    model : torch.nn.Module or LoadedModel
    ablations : sequence of Ablation
        Several ablations of one module are merged into one hook (their indices united).
    means : AblationMeans, optional
        Required when any ablation uses ``method='mean'``.

    Yields
    ------
    list of Ablation
        The ablations with layer indices normalized to ``[0, n_layers)``.

    Raises
    ------
    ValueError
        A layer, head or neuron index out of range; mean ablation without ``means`` or with means of the wrong
        width; a module ablated with both methods.
    TypeError
        An entry that is not an :class:`Ablation`.

    Notes
    -----
    Head/neuron ablation: a forward pre-hook on ``o_proj``/``down_proj`` returns a copy of its input with the
    selected feature slices overwritten. Sublayer ablation: a forward hook returns zeros (or the mean output)
    of the projection's output shape. Weights are untouched, so outputs after the block are bit-identical to
    outputs before it (tested). Validated against: zeroing the matching columns of the ``o_proj`` weight
    (atol 1e-6), and, for all heads of a layer, replacing the attention module's output by the ``o_proj``
    bias (tests on gpt2, llama (GQA), gemma3, qwen2, opt, gpt_neox).
    """
    net = _model_of(model)
    smap = site_map(net)
    geo = attention_geometry(net)
    if isinstance(ablations, Ablation):
        ablations = [ablations]
    plan, normalized = _ablation_plan(ablations, geo)
    hooks = _ablation_hooks(plan, smap, means)
    with HookSet() as hs:
        for mod, where, fn in hooks:
            (hs.pre if where == "pre" else hs.forward)(mod, fn)
        yield normalized


def _ablation_plan(
    ablations: Sequence[Ablation], geo: AttentionGeometry
) -> tuple[dict[tuple[str, str], dict[str, Any]], list[Ablation]]:
    """Validate ``ablations`` and merge them per hook point: ``(site, 'in'|'out') -> {method, features, whole}``."""
    plan: dict[tuple[str, str], dict[str, Any]] = {}
    normalized: list[Ablation] = []
    for a in ablations:
        if not isinstance(a, Ablation):
            raise TypeError(f"`ablations` must contain Ablation objects; got {type(a).__name__}.")
        if not -geo.n_layers <= a.layer < geo.n_layers:
            raise ValueError(f"`layer` must be in [-{geo.n_layers}, {geo.n_layers}); got {a.layer} in {a.key}.")
        layer = a.layer % geo.n_layers
        a = Ablation(a.kind, layer, a.units, a.method)
        normalized.append(a)
        kind_site, io = _point(a.kind)
        site = f"layers.{layer}.{kind_site}"
        limit = geo.n_heads if a.kind == "head" else geo.d_intermediate
        if a.kind in ("head", "neuron") and max(a.units) >= limit:
            what = "head" if a.kind == "head" else "neuron"
            raise ValueError(f"`units` {what} index {max(a.units)} out of range: layer {layer} has {limit} {what}s.")
        entry = plan.setdefault((site, io), {"method": a.method, "features": set(), "whole": False})
        if entry["method"] != a.method:
            raise ValueError(f"{site} is ablated with both 'zero' and 'mean'; use one method per module.")
        if a.kind == "head":
            for h in a.units:
                entry["features"].update(range(h * geo.head_dim, (h + 1) * geo.head_dim))
        elif a.kind == "neuron":
            entry["features"].update(a.units)
        else:
            entry["whole"] = True
    return plan, normalized


def _ablation_hooks(
    plan: Mapping[tuple[str, str], Mapping[str, Any]], smap: SiteMap, means: AblationMeans | None
) -> list[tuple[torch.nn.Module, str, Any]]:
    """One ``(module, 'pre'|'out', hook)`` per entry of the plan (checks the means that mean ablation needs)."""
    hooks: list[tuple[torch.nn.Module, str, Any]] = []
    for (site, io), entry in plan.items():
        mean = None
        if entry["method"] == "mean":
            if means is None:
                raise ValueError("`means` is required for method='mean' (compute it with ablation_means on a reference set).")
            mean = means.get(site, io)
        mod = smap.sites[site].module
        if io == "in":
            idx = torch.tensor(sorted(entry["features"]), dtype=torch.long)
            if mean is not None and mean.shape[0] != _in_features(mod):
                raise ValueError(f"`means` for {site} has width {mean.shape[0]}; the module's input has {_in_features(mod)}.")
            hooks.append((mod, "pre", _overwrite_input(idx, mean)))
        else:
            hooks.append((mod, "out", _replace_output(mean)))
    return hooks


def _overwrite_input(idx: torch.Tensor, mean: torch.Tensor | None) -> Any:
    """Forward pre-hook: a copy of the input with features ``idx`` set to 0 (or to ``mean[idx]``)."""

    def pre(m: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
        x = args[0].clone()
        if mean is None:
            x[..., idx] = 0
        else:
            x[..., idx] = mean[idx].to(dtype=x.dtype, device=x.device)
        return (x, *args[1:])

    return pre


def _replace_output(mean: torch.Tensor | None) -> Any:
    """Forward hook: zeros (or the mean output) in the output's shape."""

    def post(m: Any, args: Any, out: torch.Tensor) -> torch.Tensor:
        if mean is None:
            return torch.zeros_like(out)
        return mean.to(dtype=out.dtype, device=out.device).expand_as(out).clone()

    return post


# ----------------------------------------------------------------------------- scoring helpers
class _Scorer:
    """Per-item bits per byte of fixed items under the model's current state, restarting at a block."""

    def __init__(self, model: torch.nn.Module, encoded: Sequence[EncodedItem], *, batch_size: int, pad_id: int,
                 prefix_cache: bool) -> None:
        from qdmodels.eval.sensitivity import PrefixCache

        self.model = model
        self.encoded = list(encoded)
        self.batches = make_batches(self.encoded, batch_size=batch_size, pad_id=pad_id)
        self.pos = {id(e): k for k, e in enumerate(self.encoded)}
        self.nbytes = np.array([len(e.item.text.encode("utf-8")) for e in self.encoded], dtype=np.float64)
        self.cache = PrefixCache(model, self.batches).build() if prefix_cache else None
        self.prefix_cache = prefix_cache
        self.base = self._bpb(self.cache.fp_logprobs) if self.cache is not None else self.score(0)

    def _bpb(self, per_batch: Sequence[Sequence[np.ndarray]]) -> np.ndarray:
        nll = np.empty(len(self.encoded))
        for b, lps in zip(self.batches, per_batch):
            for e, lp in zip(b.encoded, lps):
                nll[self.pos[id(e)]] = -float(lp.sum())
        return nll / LN2 / self.nbytes

    def score(self, start_layer: int) -> np.ndarray:
        from qdmodels.eval.batching import batch_logprobs

        if self.cache is not None:
            return self._bpb(self.cache.logprobs_from(start_layer))
        with torch.inference_mode():
            per = [batch_logprobs(self.model, b) for b in self.batches]
        return self._bpb(per)


@dataclass(frozen=True)
class _Base:
    """A base state resolved without touching the model: its full condition dict and what applies it."""

    condition: dict[str, Any]
    state: Any = None  # None (full precision), a QuantScheme or an EvalCondition

    @property
    def label(self) -> str:
        return _label(self.condition)

    def apply(self, model: torch.nn.Module) -> contextlib.AbstractContextManager[Any]:
        """Context manager that puts ``model`` in this state (and restores it on exit)."""
        from qdmodels.compress.conditions import EvalCondition

        if self.state is None:
            return contextlib.nullcontext()
        if isinstance(self.state, EvalCondition):
            return self.state.apply(model) if self.state.apply is not None else contextlib.nullcontext()
        from qdmodels.compress.rtn import quantized

        return quantized(model, self.state)


def _resolve_base(scheme: Any) -> _Base:
    """The base state of ``'fp32'`` / None, a QuantScheme or its key, or an EvalCondition (canonical keys included)."""
    from qdmodels.compress.conditions import EvalCondition

    if scheme is None or (isinstance(scheme, str) and scheme in ("fp", "fp32", "none")):
        return _Base(dict(DEFAULT_CONDITION))
    if isinstance(scheme, EvalCondition):
        return _Base({**DEFAULT_CONDITION, **scheme.condition}, scheme)
    from qdmodels.compress.scheme import QuantScheme

    qs = QuantScheme.parse(scheme) if isinstance(scheme, str) else scheme
    if not isinstance(qs, QuantScheme):
        raise TypeError(f"`schemes` entries must be 'fp32', a QuantScheme, its key or an EvalCondition; "
                        f"got {type(scheme).__name__}.")
    return _Base({**DEFAULT_CONDITION, "scheme": qs.key}, qs)


def _label(cond: Mapping[str, Any]) -> str:
    """Short label of a base condition: the scheme, plus the other non-default keys."""
    extra = [f"{k}={cond[k]}" for k in sorted(cond) if k != "scheme" and DEFAULT_CONDITION.get(k) != cond[k]]
    return ",".join([str(cond.get("scheme"))] + extra)


def _clusters(flat: Sequence[ParallelItem], cluster: str) -> np.ndarray:
    check_option(cluster, "cluster", get_args(Cluster))
    return np.array([it.document_id if cluster == "document" else it.item_id for it in flat], dtype=object)


@dataclass(frozen=True)
class _Boot:
    """Validated bootstrap settings of one call, with its generator and the seed to record."""

    kind: str
    level: float
    n_resamples: int
    gen: np.random.Generator
    seed: int | None


def _mean_ci(values: np.ndarray, clusters: np.ndarray, boot: _Boot, *,
             stacklevel: int = 3) -> tuple[dict[str, Any], list[str]]:
    """CI attributes and notes of the mean of ``values`` (cluster bootstrap); warnings re-emitted at ``stacklevel``."""
    msgs: list[str] = []
    n_cl = len(set(clusters.tolist()))
    attrs = ci_attributes(None, level=boot.level, n_clusters=n_cl)
    if n_cl < 2:
        msgs.append("fewer than 2 clusters; no confidence interval.")
        return attrs, msgs
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = cluster_bootstrap_ci(values, clusters.astype(str), statistic="mean", kind=boot.kind,  # type: ignore[arg-type]
                                   confidence_level=boot.level, n_resamples=boot.n_resamples, rng=boot.gen)
    for w in caught:
        warnings.warn(str(w.message), w.category, stacklevel=stacklevel)
    msgs.extend(dict.fromkeys([*res.warnings, *(str(w.message) for w in caught)]))
    attrs.update(ci_attributes(res.ci, n_clusters=n_cl))
    return attrs, msgs


def _item_keys(flat: Sequence[ParallelItem]) -> frozenset[str]:
    return frozenset(hashlib.sha256(f"{it.language}\t{it.text}".encode()).hexdigest() for it in flat)


def _check_common(kind: str, confidence_level: float, n_resamples: int, batch_size: int) -> tuple[float, int, int]:
    check_option(kind, "kind", BOOTSTRAP_KINDS)
    return (check_confidence_level(confidence_level), check_int(n_resamples, "n_resamples", minimum=1),
            check_int(batch_size, "batch_size", minimum=1))


def _check_method(method: str, means: AblationMeans | None) -> None:
    check_option(method, "method", METHODS)
    if method == "mean" and means is None:
        raise ValueError("`means` is required for method='mean' (compute it with ablation_means on a reference set).")


@dataclass(frozen=True)
class _EvalSet:
    """Encoded evaluation items with the per-item bookkeeping every measurement of this module shares."""

    flat: list[ParallelItem]
    encoded: list[EncodedItem]
    pad_id: int
    clusters: np.ndarray
    lang_arr: np.ndarray
    langs: list[str]
    items_sha: str

    def corpus(self, sel: np.ndarray) -> Any:
        """Corpus of the first selected item."""
        return self.flat[int(np.argmax(sel))].corpus

    def frame(self, lead: Mapping[str, Any], tail: Mapping[str, Any]) -> pd.DataFrame:
        """Per-item frame: the ``lead`` columns, ``language, item_id, cluster``, then the ``tail`` columns."""
        return pd.DataFrame({**lead, "language": self.lang_arr, "item_id": [it.item_id for it in self.flat],
                             "cluster": self.clusters, **tail})


def _eval_set(model: torch.nn.Module, tokenizer: Any, flat: Sequence[ParallelItem], clusters: np.ndarray) -> _EvalSet:
    """Encode ``flat`` once (padding with the context token when the tokenizer has no pad token)."""
    ctx_id, _ = context_token(tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else ctx_id
    encoded = encode_items(model, tokenizer, flat)
    lang_arr = np.array([it.language for it in flat])
    return _EvalSet(flat=list(flat), encoded=list(encoded), pad_id=pad_id, clusters=clusters, lang_arr=lang_arr,
                    langs=list(dict.fromkeys(lang_arr.tolist())), items_sha=content_hash(flat))


# ----------------------------------------------------------------------------- single-head importance
@dataclass
class ImportanceResult:
    """Result of :func:`head_importance`.

    Attributes
    ----------
    records : list of Measurement
        ``ablation.delta_bits_per_byte`` per (layer, head, language), CI in attributes.
    item_deltas : pandas.DataFrame
        Per item: ``layer, head, language, item_id, cluster, base_bpb, delta``.
    item_keys : frozenset of str
        Hashes of (language, text) of the items, to check that a later evaluation set is disjoint.
    """

    records: list[Measurement]
    item_deltas: pd.DataFrame
    item_keys: frozenset[str] = field(default_factory=frozenset)

    def frame(self) -> pd.DataFrame:
        """One row per (layer, head, language): ``delta, ci_low, ci_high, n``."""
        rows = [{"layer": r.attributes["layer"], "head": r.attributes["head"], "language": r.language,
                 "delta": r.value, "ci_low": r.attributes.get("ci_low"), "ci_high": r.attributes.get("ci_high"),
                 "n": r.n} for r in self.records]
        return pd.DataFrame(rows, columns=["layer", "head", "language", "delta", "ci_low", "ci_high", "n"])

    def ranking(self, *, language: str | None = None) -> list[tuple[int, int]]:
        """Heads from most to least important: by the language's Δ, or by the mean of the per-language Δ.

        Ties are broken by (layer, head) so the order is deterministic.
        """
        df = self.frame()
        if language is not None:
            if language not in set(df["language"]):
                raise ValueError(f"`language` {language!r} is not in the importance result; has {sorted(set(df['language']))}.")
            df = df[df["language"] == language]
        score = df.groupby(["layer", "head"])["delta"].mean().reset_index()
        score = score.sort_values(["delta", "layer", "head"], ascending=[False, True, True], kind="stable")
        return [(int(a), int(b)) for a, b in zip(score["layer"], score["head"])]


def head_importance(
    loaded: Any,
    items: Sequence[ParallelItem] | Mapping[str, Sequence[ParallelItem]],
    *,
    layers: Sequence[int] | None = None,
    heads: Sequence[int] | None = None,
    method: AblationMethod = "zero",
    means: AblationMeans | None = None,
    scheme: Any = None,
    cluster: Cluster = "document",
    batch_size: int = 8,
    prefix_cache: bool = True,
    kind: BootstrapKind = "percentile",
    confidence_level: float = 0.95,
    n_resamples: int = 999,
    rng: RngLike = 0,
) -> ImportanceResult:
    """Single-head importance per language: Δ bits per byte when one attention head is ablated.

    Parameters
    ----------
    loaded : LoadedModel
    items : sequence of ParallelItem or dict
        Evaluation items (for a later ranked dose-response, a dev set disjoint from its test items).
    layers : sequence of int, optional
        Blocks whose heads are ablated one at a time; default all.
    heads : sequence of int, optional
        Head indices within each layer; default all.
    method : {'zero', 'mean'}, default 'zero'
    means : AblationMeans, optional
        Required for ``method='mean'``.
    scheme : QuantScheme, its key or None
        Base state: full precision (None / ``'fp32'``) or fake-quantized with :func:`qdmodels.compress.rtn.quantized`
        (restored on exit). Δ is relative to the same base state without ablation.
    cluster : {'document', 'item'}, default 'document'
        Bootstrap cluster (document id, or the sentence itself).
    batch_size : int, default 8
    prefix_cache : bool, default True
        Restart the forward at the ablated block from cached block outputs (:class:`qdmodels.eval.sensitivity.PrefixCache`).
    kind, confidence_level, n_resamples, rng
        Bootstrap settings (:func:`qdstats.resampling.cluster_bootstrap_ci`).

    Returns
    -------
    ImportanceResult

    Raises
    ------
    ValueError
        Bad options, out-of-range layers/heads, ``method='mean'`` without ``means``.

    Notes
    -----
    ``Δ_i = bpb_i(ablated) - bpb_i(base)`` per item; the record's value is the mean of ``Δ_i`` over the language's
    items, CI by cluster bootstrap (percentile by default). Validated against: Δ from two plain
    :func:`qdmodels.eval.scoring.evaluate` runs (with and without :func:`ablated`), atol 1e-9 bits (tests);
    the prefix cache equals the naive forward (tested in ``test_sensitivity``).

    References
    ----------
    Michel, P., Levy, O. & Neubig, G. (2019). Are sixteen heads really better than one? NeurIPS. arXiv:1905.10650
    """
    iv = _head_importance_iv(loaded, items, layers=layers, heads=heads, method=method, means=means, scheme=scheme,
                             cluster=cluster, batch_size=batch_size, kind=kind, confidence_level=confidence_level,
                             n_resamples=n_resamples, rng=rng)
    ev = _eval_set(iv.model, iv.tokenizer, iv.flat, iv.clusters)
    records: list[Measurement] = []
    rows: list[pd.DataFrame] = []
    with iv.base.apply(iv.model):
        scorer = _Scorer(iv.model, ev.encoded, batch_size=iv.batch_size, pad_id=ev.pad_id, prefix_cache=prefix_cache)
        for layer in iv.layers:
            for h in iv.heads:
                ab = Ablation("head", layer, (h,), method)
                with ablated(iv.model, [ab], means=means):
                    bpb = scorer.score(layer)
                delta = bpb - scorer.base
                rows.append(ev.frame({"layer": layer, "head": h}, {"base_bpb": scorer.base, "delta": delta}))
                records.extend(_importance_records(iv, ev, ab, delta, scorer.base, prefix_cache=prefix_cache))
    return ImportanceResult(records=records, item_deltas=pd.concat(rows, ignore_index=True),
                            item_keys=_item_keys(iv.flat))


@dataclass(frozen=True)
class _ImportanceInputs:
    """Validated inputs of :func:`head_importance`."""

    model: torch.nn.Module
    tokenizer: Any
    model_ref: Any
    flat: list[ParallelItem]
    geo: AttentionGeometry
    layers: list[int]
    heads: list[int]
    method: str
    base: _Base
    cluster: str
    clusters: np.ndarray
    batch_size: int
    boot: _Boot


def _head_importance_iv(
    loaded: Any, items: Any, *, layers: Sequence[int] | None, heads: Sequence[int] | None, method: str,
    means: AblationMeans | None, scheme: Any, cluster: str, batch_size: int, kind: str, confidence_level: float,
    n_resamples: int, rng: RngLike,
) -> _ImportanceInputs:
    """Input validation of :func:`head_importance` (raises before any forward pass)."""
    model, tokenizer, model_ref = resolve_model(loaded, None, None)
    flat = flatten_items(items)
    level, n_resamples, batch_size = _check_common(kind, confidence_level, n_resamples, batch_size)
    _check_method(method, means)
    smap = site_map(model)
    geo = attention_geometry(model)
    layer_idx = _layers(layers, smap)
    head_idx = list(range(geo.n_heads)) if heads is None else [int(h) for h in heads]
    for h in head_idx:
        if not 0 <= h < geo.n_heads:
            raise ValueError(f"`heads` must hold indices in [0, {geo.n_heads}); got {h}.")
    clusters = _clusters(flat, cluster)
    boot = _Boot(kind=kind, level=level, n_resamples=n_resamples, gen=as_generator(rng), seed=seed_detail(rng))
    return _ImportanceInputs(model=model, tokenizer=tokenizer, model_ref=model_ref, flat=list(flat), geo=geo,
                             layers=layer_idx, heads=head_idx, method=method, base=_resolve_base(scheme),
                             cluster=cluster, clusters=clusters, batch_size=batch_size, boot=boot)


def _importance_records(iv: _ImportanceInputs, ev: _EvalSet, ab: Ablation, delta: np.ndarray, base_bpb: np.ndarray,
                        *, prefix_cache: bool) -> list[Measurement]:
    """``ablation.delta_bits_per_byte`` of one ablated head, per language (mean of the item deltas, cluster CI)."""
    records = []
    layer, h = ab.layer, ab.units[0]
    for lang in ev.langs:
        sel = ev.lang_arr == lang
        attrs, msgs = _mean_ci(delta[sel], ev.clusters[sel], iv.boot, stacklevel=4)
        attrs.update(layer=layer, head=h, cluster_by=iv.cluster, mean_bpb_base=float(base_bpb[sel].mean()),
                     prefix_cache=prefix_cache, items_sha256=ev.items_sha, n_heads=iv.geo.n_heads,
                     n_kv_heads=iv.geo.n_kv_heads)
        cond = {**iv.base.condition, "ablation": ab.key, "ablation_method": iv.method}
        records.append(Measurement(
            quantity="ablation.delta_bits_per_byte", value=float(delta[sel].mean()), model=iv.model_ref,
            site=f"layers.{layer}.attn.o_proj", language=lang, corpus=ev.corpus(sel), condition=cond,
            attributes=attrs, n=int(sel.sum()), seed=iv.boot.seed, warnings=tuple(msgs), routine=_ROUTINE_IMP))
    return records


# ----------------------------------------------------------------------------- dose-response
@dataclass
class DoseResponseResult:
    """Result of :func:`dose_response`.

    Attributes
    ----------
    records : list of Measurement
        Curves (``ablation.delta_bits_per_byte`` per scheme x language x fraction), slopes
        (``ablation.dose_slope``), slope differences to the reference language (``ablation.dose_slope_did``) and,
        with several schemes, quantized-minus-fp slopes (``ablation.dose_slope_quant_diff``).
    item_deltas : pandas.DataFrame
        Per item and draw: ``scheme, seed, fraction, k_heads, language, item_id, cluster, delta``.
    slopes : pandas.DataFrame
        Per item: ``scheme, language, item_id, cluster, slope``.
    """

    records: list[Measurement]
    item_deltas: pd.DataFrame
    slopes: pd.DataFrame

    def curve(self) -> pd.DataFrame:
        """Curve rows: ``scheme, language, fraction, delta, ci_low, ci_high, n``."""
        rows = [{"scheme": r.condition["scheme"], "language": r.language, "fraction": r.condition["fraction"],
                 "delta": r.value, "ci_low": r.attributes.get("ci_low"), "ci_high": r.attributes.get("ci_high"),
                 "n": r.n} for r in self.records if r.quantity == "ablation.delta_bits_per_byte"]
        return pd.DataFrame(rows, columns=["scheme", "language", "fraction", "delta", "ci_low", "ci_high", "n"])


def _ols_weights(fractions: np.ndarray) -> np.ndarray:
    """Weights c with slope = sum_f c_f y_f for the OLS fit through the points (0, 0) and (fractions, y)."""
    x = np.concatenate([[0.0], fractions])
    xc = x - x.mean()
    return (xc / np.sum(xc**2))[1:]


def dose_response(
    loaded: Any,
    items: Sequence[ParallelItem] | Mapping[str, Sequence[ParallelItem]],
    *,
    fractions: Sequence[float],
    layers: Sequence[int] | None = None,
    order: Order = "random",
    seeds: Sequence[int] = (0, 1, 2),
    importance: ImportanceResult | None = None,
    rank_language: str | None = None,
    method: AblationMethod = "zero",
    means: AblationMeans | None = None,
    schemes: Sequence[Any] = ("fp32",),
    reference_language: str | None = "eng_Latn",
    cluster: Cluster = "document",
    batch_size: int = 8,
    prefix_cache: bool = True,
    kind: BootstrapKind = "percentile",
    confidence_level: float = 0.95,
    n_resamples: int = 999,
    rng: RngLike = 0,
) -> DoseResponseResult:
    """Dose-response of ablating a growing fraction of attention heads, per language, with slopes and CIs.

    Parameters
    ----------
    loaded : LoadedModel
    items : sequence of ParallelItem or dict
        Evaluation items; for ``order='ranked'`` they must be disjoint from the items ``importance`` was measured on.
    fractions : sequence of float
        Fractions of the head pool in (0, 1]; ``k = round(fraction * n_pool)`` heads (at least 1) are ablated and
        the realised fraction ``k / n_pool`` is what is recorded and fitted.
    layers : sequence of int, optional
        Blocks whose heads form the pool; default all.
    order : {'random', 'ranked'}, default 'random'
        Random: one random permutation of the pool per seed, nested (the first ``k`` heads). Ranked: most
        important first by ``importance.ranking(language=rank_language)``.
    seeds : sequence of int, default (0, 1, 2)
        Seeds of the random orders (ignored for ``'ranked'``).
    importance : ImportanceResult, optional
        Required for ``order='ranked'``, measured on a separate dev set.
    rank_language : str, optional
        Rank by this language's importance; default the mean over languages.
    method : {'zero', 'mean'}, default 'zero'
    means : AblationMeans, optional
        Required for ``method='mean'`` (used as given, also on quantized bases).
    schemes : sequence, default ('fp32',)
        Base states: ``'fp32'`` and/or quantization schemes (``QuantScheme`` or key). Each curve is relative to
        its own base without ablation. With several schemes, the first is the comparison base of
        ``ablation.dose_slope_quant_diff``.
    reference_language : str or None, default 'eng_Latn'
        Reference of ``ablation.dose_slope_did`` (skipped when None or absent).
    cluster : {'document', 'item'}, default 'document'
    batch_size : int, default 8
    prefix_cache : bool, default True
    kind, confidence_level, n_resamples, rng
        Bootstrap settings.

    Returns
    -------
    DoseResponseResult

    Raises
    ------
    ValueError
        Bad options or fractions, ``order='ranked'`` without ``importance`` or with overlapping items, duplicate
        schemes, ``method='mean'`` without ``means``.

    Notes
    -----
    Per item ``i`` and draw (seed), ``Δ_i(f)`` is ablated minus base bits per byte; ``Δ̄_i(f)`` averages the seeds.
    The curve record at ``f`` is the mean of ``Δ̄_i(f)`` over the language's items (CI: cluster bootstrap over
    items; conditional on the drawn head sets, whose spread is in ``attributes['seed_sd']``). The slope of item
    ``i`` is the OLS slope of ``Δ̄_i`` on the realised fractions with the point (0, 0) included (Δ is 0 without
    ablation by construction); since OLS is linear in ``y``, the slope of the language's mean curve equals the
    mean of the item slopes, so its bootstrap is a cluster bootstrap of item slopes. The difference of slopes to
    the reference language uses :func:`qdstats.disparity.diff_in_diff` on the item slopes (joint resampling of
    parallel items, sign-flip permutation p-value in ``attributes['pvalue']``).
    Validated against: the closed-form OLS slope of the mean curve (``numpy.polyfit``), rtol 1e-10 (tests);
    Δ at each fraction equals a direct evaluation with :func:`ablated`.

    References
    ----------
    Michel, P., Levy, O. & Neubig, G. (2019). Are sixteen heads really better than one? arXiv:1905.10650
    """
    iv = _dose_response_iv(loaded, items, fractions=fractions, layers=layers, order=order, seeds=seeds,
                           importance=importance, rank_language=rank_language, method=method, means=means,
                           schemes=schemes, cluster=cluster, batch_size=batch_size, kind=kind,
                           confidence_level=confidence_level, n_resamples=n_resamples, rng=rng)
    ev = _eval_set(iv.model, iv.tokenizer, iv.flat, iv.clusters)
    common_attrs = {"cluster_by": cluster, "n_pool_heads": iv.n_pool, "pool_layers": iv.pool_layers,
                    "prefix_cache": prefix_cache, "items_sha256": ev.items_sha,
                    "seeds": ",".join(str(s) for s in iv.orders if s is not None) or "ranked"}
    records: list[Measurement] = []
    draws: list[pd.DataFrame] = []
    slope_rows: list[pd.DataFrame] = []
    slopes_by_scheme: dict[str, np.ndarray] = {}
    for base in iv.bases:
        deltas = _dose_deltas(iv, ev, base, means=means, batch_size=batch_size, prefix_cache=prefix_cache)
        draws.extend(_draw_frames(iv, ev, base.label, deltas))
        mean_delta = deltas.mean(axis=0)  # (fractions, items)
        records.extend(_curve_records(iv, ev, base, deltas, mean_delta, common_attrs))
        slopes = _ols_weights(iv.realised) @ mean_delta  # (items,)
        slopes_by_scheme[base.label] = slopes
        slope_rows.append(ev.frame({"scheme": base.label}, {"slope": slopes}))
        records.extend(_slope_records(iv, ev, base, slopes, common_attrs))
        if reference_language is not None and reference_language in ev.langs and len(ev.langs) > 1:
            records.extend(_slope_did_records(iv, ev, base, slopes, common_attrs, reference_language))
    if len(iv.bases) > 1:
        records.extend(_quant_diff_records(iv, ev, slopes_by_scheme))
    return DoseResponseResult(records=records, item_deltas=pd.concat(draws, ignore_index=True),
                              slopes=pd.concat(slope_rows, ignore_index=True))


@dataclass(frozen=True)
class _DoseInputs:
    """Validated inputs of :func:`dose_response`."""

    model: torch.nn.Module
    tokenizer: Any
    model_ref: Any
    flat: list[ParallelItem]
    requested: np.ndarray  # fractions as asked
    ks: np.ndarray  # heads ablated per fraction
    realised: np.ndarray  # ks / n_pool
    n_pool: int
    pool_layers: str
    orders: dict[int | None, list[tuple[int, int]]]  # seed (None: ranked) -> head order
    bases: list[_Base]
    method: str
    order: str
    cluster: str
    clusters: np.ndarray
    boot: _Boot

    def condition(self, base: _Base) -> dict[str, Any]:
        """Condition of the records of one base state."""
        return {**base.condition, "ablation_method": self.method, "order": self.order, "n_draws": len(self.orders)}


def _dose_response_iv(
    loaded: Any, items: Any, *, fractions: Sequence[float], layers: Sequence[int] | None, order: str,
    seeds: Sequence[int], importance: ImportanceResult | None, rank_language: str | None, method: str,
    means: AblationMeans | None, schemes: Sequence[Any], cluster: str, batch_size: int, kind: str,
    confidence_level: float, n_resamples: int, rng: RngLike,
) -> _DoseInputs:
    """Input validation of :func:`dose_response` (raises before any forward pass)."""
    model, tokenizer, model_ref = resolve_model(loaded, None, None)
    flat = flatten_items(items)
    level, n_resamples, batch_size = _check_common(kind, confidence_level, n_resamples, batch_size)
    check_option(order, "order", get_args(Order))
    _check_method(method, means)
    fr = np.asarray(list(fractions), dtype=np.float64)
    if fr.size == 0 or not np.all((fr > 0) & (fr <= 1)) or len(set(fr.tolist())) != fr.size:
        raise ValueError(f"`fractions` must be distinct values in (0, 1]; got {list(fractions)}.")
    smap = site_map(model)
    geo = attention_geometry(model)
    pool = [(layer, h) for layer in _layers(layers, smap) for h in range(geo.n_heads)]
    n_pool = len(pool)
    ks = np.maximum(1, np.round(fr * n_pool).astype(int))
    if len(set(ks.tolist())) != ks.size:
        raise ValueError(f"`fractions` {list(fractions)} give duplicate head counts {ks.tolist()} for a pool of "
                         f"{n_pool} heads; use fewer or more widely spaced fractions.")
    if order == "ranked":
        orders = _ranked_order(importance, rank_language, pool, int(ks.max()), flat)
    else:
        orders = _random_orders(seeds, pool)
    clusters = _clusters(flat, cluster)
    boot = _Boot(kind=kind, level=level, n_resamples=n_resamples, gen=as_generator(rng), seed=seed_detail(rng))
    return _DoseInputs(model=model, tokenizer=tokenizer, model_ref=model_ref, flat=list(flat), requested=fr, ks=ks,
                       realised=ks / n_pool, n_pool=n_pool, pool_layers=",".join(map(str, sorted({p[0] for p in pool}))),
                       orders=orders, bases=_resolve_bases(schemes), method=method, order=order, cluster=cluster,
                       clusters=clusters, boot=boot)


def _ranked_order(importance: ImportanceResult | None, rank_language: str | None, pool: list[tuple[int, int]],
                  k_max: int, flat: Sequence[ParallelItem]) -> dict[int | None, list[tuple[int, int]]]:
    """The pool's heads, most important first, measured on items disjoint from ``flat``."""
    if importance is None:
        raise ValueError("`importance` is required for order='ranked' (measure it with head_importance on a dev set).")
    overlap = importance.item_keys & _item_keys(flat)
    if overlap:
        raise ValueError(f"`importance` was measured on {len(overlap)} of these items; rank heads on a separate "
                         "dev set (e.g. NTREX split='dev') and evaluate on other items (split='test').")
    ranked = [p for p in importance.ranking(language=rank_language) if p in set(pool)]
    if len(ranked) < k_max:
        raise ValueError(f"`importance` ranks {len(ranked)} heads of the pool; the largest fraction needs {k_max}.")
    return {None: ranked}


def _random_orders(seeds: Sequence[int], pool: list[tuple[int, int]]) -> dict[int | None, list[tuple[int, int]]]:
    """One random permutation of the pool per seed."""
    seeds = [check_int(s, "seeds", minimum=0) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"`seeds` must be distinct non-negative ints; got {list(seeds)}.")
    return {s: [pool[j] for j in np.random.default_rng(s).permutation(len(pool))] for s in seeds}


def _resolve_bases(schemes: Sequence[Any]) -> list[_Base]:
    """The base states of ``schemes``, refusing two with the same label."""
    bases: list[_Base] = []
    for scheme in schemes:
        base = _resolve_base(scheme)
        if base.label in [b.label for b in bases]:
            raise ValueError(f"`schemes` contains {base.label!r} twice.")
        bases.append(base)
    return bases


def _head_ablations(heads: Sequence[tuple[int, int]], method: str) -> list[Ablation]:
    """One head ablation per layer of ``heads`` (``(layer, head)`` pairs), in layer order."""
    by_layer: dict[int, list[int]] = {}
    for layer, h in heads:
        by_layer.setdefault(layer, []).append(h)
    return [Ablation("head", layer, tuple(sorted(hs)), method) for layer, hs in sorted(by_layer.items())]  # type: ignore[arg-type]


def _dose_deltas(iv: _DoseInputs, ev: _EvalSet, base: _Base, *, means: AblationMeans | None, batch_size: int,
                 prefix_cache: bool) -> np.ndarray:
    """Δ bits per byte (ablated minus base) per draw x fraction x item, under one base state."""
    deltas = np.zeros((len(iv.orders), iv.ks.size, len(ev.flat)))
    with base.apply(iv.model):
        scorer = _Scorer(iv.model, ev.encoded, batch_size=batch_size, pad_id=ev.pad_id, prefix_cache=prefix_cache)
        for a, head_order in enumerate(iv.orders.values()):
            for j, k in enumerate(iv.ks):
                abl = _head_ablations(head_order[: int(k)], iv.method)
                with ablated(iv.model, abl, means=means):
                    deltas[a, j] = scorer.score(abl[0].layer) - scorer.base
    return deltas


def _draw_frames(iv: _DoseInputs, ev: _EvalSet, label: str, deltas: np.ndarray) -> list[pd.DataFrame]:
    """Per-item frames of every (draw, fraction)."""
    return [ev.frame({"scheme": label, "seed": -1 if s is None else s, "fraction": iv.realised[j],
                      "k_heads": int(k)}, {"delta": deltas[a, j]})
            for a, s in enumerate(iv.orders) for j, k in enumerate(iv.ks)]


def _curve_records(iv: _DoseInputs, ev: _EvalSet, base: _Base, deltas: np.ndarray, mean_delta: np.ndarray,
                   common_attrs: Mapping[str, Any]) -> list[Measurement]:
    """``ablation.delta_bits_per_byte`` per language x fraction: mean over items of the draw-averaged Δ."""
    records = []
    cond = iv.condition(base)
    for lang in ev.langs:
        sel = ev.lang_arr == lang
        corpus = ev.corpus(sel)
        for j in range(iv.ks.size):
            attrs, msgs = _mean_ci(mean_delta[j, sel], ev.clusters[sel], iv.boot, stacklevel=4)
            per_draw = deltas[:, j][:, sel].mean(axis=1)
            attrs.update(common_attrs, k_heads=int(iv.ks[j]), requested_fraction=float(iv.requested[j]),
                         seed_sd=float(np.std(per_draw, ddof=1)) if per_draw.size > 1 else None)
            records.append(Measurement(
                quantity="ablation.delta_bits_per_byte", value=float(mean_delta[j, sel].mean()), model=iv.model_ref,
                language=lang, corpus=corpus, condition={**cond, "fraction": float(iv.realised[j])},
                attributes=attrs, n=int(sel.sum()), seed=iv.boot.seed, warnings=tuple(msgs), routine=_ROUTINE_DOSE))
    return records


def _fractions_attr(iv: _DoseInputs) -> str:
    return ",".join(repr(float(x)) for x in iv.realised)


def _slope_records(iv: _DoseInputs, ev: _EvalSet, base: _Base, slopes: np.ndarray,
                   common_attrs: Mapping[str, Any]) -> list[Measurement]:
    """``ablation.dose_slope`` per language: mean of the item slopes, cluster CI."""
    records = []
    for lang in ev.langs:
        sel = ev.lang_arr == lang
        attrs, msgs = _mean_ci(slopes[sel], ev.clusters[sel], iv.boot, stacklevel=4)
        attrs.update(common_attrs, fractions=_fractions_attr(iv), fit="ols_with_origin_point")
        records.append(Measurement(
            quantity="ablation.dose_slope", value=float(slopes[sel].mean()), model=iv.model_ref, language=lang,
            corpus=ev.corpus(sel), condition=iv.condition(base), attributes=attrs, n=int(sel.sum()),
            seed=iv.boot.seed, warnings=tuple(msgs), routine=_ROUTINE_DOSE))
    return records


def _slope_did_records(iv: _DoseInputs, ev: _EvalSet, base: _Base, slopes: np.ndarray,
                       common_attrs: Mapping[str, Any], reference: str) -> list[Measurement]:
    """``ablation.dose_slope_did`` per non-reference language (:func:`qdstats.disparity.diff_in_diff` of slopes)."""
    from qdstats.disparity import diff_in_diff

    frame = ev.frame({}, {"full": 0.0, "compressed": slopes})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        did = diff_in_diff(frame, reference=reference, cluster="cluster", kind=iv.boot.kind,
                           confidence_level=iv.boot.level, n_resamples=iv.boot.n_resamples, rng=iv.boot.gen)
    for w in caught:
        warnings.warn(str(w.message), w.category, stacklevel=3)
    ref_clusters = set(ev.clusters[ev.lang_arr == reference].tolist())
    records = []
    for lang in ev.langs:
        if lang == reference:
            continue
        est = did[lang]
        msgs = list(dict.fromkeys([*did.warnings, *est.warnings]))
        attrs = {**common_attrs, "reference_language": reference, "fractions": _fractions_attr(iv),
                 **ci_attributes(est.ci), "pvalue": est.pvalue, "resampling": "joint"}
        value = float(est.estimate)
        shared = set(ev.clusters[ev.lang_arr == lang].tolist()) & ref_clusters
        attrs["n_clusters"] = len(shared)
        if len(shared) < 2:  # one cluster: every resample is the data itself; an interval would be fake
            attrs.update(ci_attributes(None, level=iv.boot.level), pvalue=None)
            msgs.append(f"{lang} vs {reference}: fewer than 2 shared clusters ({iv.cluster}); "
                        "no confidence interval or p-value.")
        if math.isnan(value) and not msgs:
            msgs.append("slope difference undefined (no paired items).")
        records.append(Measurement(
            quantity="ablation.dose_slope_did", value=value, model=iv.model_ref, language=lang,
            corpus=ev.corpus(ev.lang_arr == lang), condition=iv.condition(base), attributes=attrs, n=est.n,
            seed=iv.boot.seed, warnings=tuple(msgs), routine=_ROUTINE_DOSE))
    return records


def _quant_diff_records(iv: _DoseInputs, ev: _EvalSet, slopes_by_scheme: Mapping[str, np.ndarray]) -> list[Measurement]:
    """``ablation.dose_slope_quant_diff`` per later base state and language: its item slopes minus the first's."""
    records = []
    first = iv.bases[0].label
    for other in iv.bases[1:]:
        diff = slopes_by_scheme[other.label] - slopes_by_scheme[first]
        for lang in ev.langs:
            sel = ev.lang_arr == lang
            attrs, msgs = _mean_ci(diff[sel], ev.clusters[sel], iv.boot, stacklevel=4)
            attrs.update(cluster_by=iv.cluster, base_scheme=first, n_pool_heads=iv.n_pool, items_sha256=ev.items_sha)
            records.append(Measurement(
                quantity="ablation.dose_slope_quant_diff", value=float(diff[sel].mean()), model=iv.model_ref,
                language=lang, corpus=ev.corpus(sel), condition=iv.condition(other), attributes=attrs,
                n=int(sel.sum()), seed=iv.boot.seed, warnings=tuple(msgs), routine=_ROUTINE_DOSE))
    return records
