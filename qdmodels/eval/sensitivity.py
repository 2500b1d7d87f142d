"""Sensitivity maps: quantize one site group at a time and measure Δ bits per byte per language.

Prefix caching
--------------
Quantizing only block ``i`` leaves blocks ``0..i-1`` unchanged, so their full-precision outputs can be reused.
:class:`PrefixCache` runs the full-precision model once per batch and stores the output of every decoder
block. To evaluate a perturbation whose first changed block is ``i``, it temporarily replaces the ``forward``
of blocks ``0..i-1`` with functions that return the cached output of block ``i-1``, and calls the model as
usual. Everything the model computes outside the blocks (embeddings, attention masks, rotary/position
embeddings of every layer type, the final norm, the LM head, Gemma's final-logit soft-capping) runs through
the model's own code, so no family-specific tail has to be re-implemented; only the skipped blocks' compute
is saved. Results equal the naive full forward within ``1e-5`` (tested on every tiny family).

Resumable sweeps
----------------
:func:`sweep_layers` treats each ``(site group, language)`` pair as a unit. With ``out=path`` each finished
unit's records are appended at once with :func:`qdstats.records.write_records` (one atomic write per record,
fsynced), and a rerun skips the units already in the file (matched on model, language, condition and a
hash of the language's items). A unit that raises is recorded as a :class:`FailedMeasurement` and the
sweep goes on; failed units are retried on the next run.
"""

from __future__ import annotations

import contextlib
import json
import math
import warnings
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch

from qdmodels.compress.conditions import DEFAULT_CONDITION
from qdmodels.compress.gguf_files import describe_layer_source_types, describe_source_types
from qdmodels.corpora.types import ParallelItem
from qdmodels.eval.batching import (
    Batch,
    batch_logprobs,
    logprobs_from_logits,
    make_batches,
    packed_logprobs,
    run_batch,
    scored_positions_only,
)
from qdmodels.eval.encoding import EncodedItem, encode_items
from qdmodels.models.blocks import decoder_layers
from qdmodels.models.hooks import HookSet, detach_output, patched_forward
from qdmodels.runtime import (
    content_hash,
    context_token,
    flatten_items,
    iter_languages,
    resolve_model,
)
from qdstats.records import (
    FailedMeasurement,
    Measurement,
    ModelRef,
    Record,
    read_records,
    write_records,
)
from qdstats.resampling import seed_detail
from qdstats.validation import (
    SmallSampleWarning,
    check_confidence_level,
    check_int,
    check_option,
)

__all__ = [
    "PrefixCache",
    "ProtectionSearchResult",
    "SiteGroup",
    "SweepResult",

    "search_protection",
    "site_groups",
    "sweep_layers",
]

ROUTINE = "qdmodels.eval.sensitivity.sweep_layers"
Granularity = Literal["layer", "component"]


# ----------------------------------------------------------------------------- layers and groups

@dataclass(frozen=True)
class SiteGroup:
    """Sites quantized together in one sweep unit; ``label`` goes into ``condition['sites']``."""

    label: str
    sites: tuple[str, ...]
    first_layer: int

    def __post_init__(self) -> None:
        if not self.sites:
            raise ValueError(f"site group {self.label!r} is empty.")


def site_groups(
    model: torch.nn.Module,
    *,
    granularity: Granularity = "layer",
    layers: Sequence[int] | None = None,
    components: Sequence[Literal["attention", "mlp"]] = ("attention", "mlp"),
) -> list[SiteGroup]:
    """Site groups for a sweep: one per layer (``'layers.3'``) or per layer and component (``'layers.3.attn'``,
    ``'layers.3.mlp'``), with the projection weights only (biases, norms, embeddings, lm_head excluded).

    Raises
    ------
    ValueError
        Unknown ``granularity`` or component, a layer out of range.
    """
    from qdmodels.models.sites import site_map

    check_option(granularity, "granularity", ("layer", "component"))
    for c in components:
        check_option(c, "components", ("attention", "mlp"))
    sm = site_map(model)
    idx = list(range(sm.n_layers)) if layers is None else [int(i) % sm.n_layers for i in layers]
    groups = []
    for i in idx:
        if granularity == "layer":
            names = sm.select(layers=[i])
            if names:
                groups.append(SiteGroup(f"layers.{i}", tuple(names), i))
        else:
            for c in components:
                names = sm.select(layers=[i], components=[c])
                short = "attn" if c == "attention" else "mlp"
                if names:
                    groups.append(SiteGroup(f"layers.{i}.{short}", tuple(names), i))
    return groups


# ----------------------------------------------------------------------------- prefix cache
class PrefixCache:
    """Full-precision outputs of every decoder block for fixed batches, to restart the forward at any block.

    Parameters
    ----------
    model : torch.nn.Module
        A causal LM whose blocks :func:`decoder_layers` finds.
    batches : list of Batch
        The padded batches (from :func:`qdmodels.eval.batching.make_batches`); reused for every perturbation.
    start_layers : iterable of int, optional
        The start layers that will be requested; only the outputs of the blocks just before them are kept
        (default: every block's output, so any start layer works).

    Notes
    -----
    Memory: ``n_layers * n_tokens_padded * hidden_size`` floats (about 310 MB for 30 layers, 4,500 padded
    tokens and hidden size 576). Call :meth:`build` inside the full-precision state of the model.
    Validated against: the naive full forward, ``atol=1e-5`` on logits' log-probs (tests, every tiny family).
    """

    def __init__(self, model: torch.nn.Module, batches: Sequence[Batch], *, start_layers: Any = None) -> None:
        self.model = model
        self.batches = list(batches)
        self.layers = decoder_layers(model)
        n = len(self.layers)
        if start_layers is None:
            self._keep = set(range(n))
        else:
            starts = [int(i) for i in start_layers]
            bad = [i for i in starts if not 0 <= i < n]
            if bad:
                raise ValueError(f"`start_layers` must be in [0, {n}); got {bad}.")
            self._keep = {i - 1 for i in starts if i > 0}
        self._outputs: list[list[Any]] = []  # [batch][layer] -> block output
        self.fp_logprobs: list[list[np.ndarray]] = []

    def build(self) -> "PrefixCache":
        """Run the full-precision forward once per batch, storing every block's output and the fp log-probs."""
        self._outputs = []
        self.fp_logprobs = []
        with torch.inference_mode():
            for b in self.batches:
                outs: list[Any] = [None] * len(self.layers)
                with HookSet() as hs:
                    for j, layer in enumerate(self.layers):
                        if j not in self._keep:
                            continue

                        def keep(mod: Any, args: Any, out: Any, _j: int = j) -> None:
                            outs[_j] = detach_output(out)

                        hs.forward(layer, keep)
                    lps = batch_logprobs(self.model, b)
                self._outputs.append(outs)
                self.fp_logprobs.append(lps)
        return self

    def logits_from(self, start_layer: int, batch_index: int) -> torch.Tensor:
        """Logits of batch ``batch_index`` computed by the current model from block ``start_layer`` on.

        Blocks ``0..start_layer-1`` are skipped: each returns (a clone of) the cached full-precision output of
        block ``start_layer-1``, which is what block ``start_layer`` receives. ``start_layer=0`` is a full forward.
        """
        if not self._outputs:
            raise RuntimeError("PrefixCache.build() must be called before logits_from().")
        n = len(self.layers)
        if not 0 <= start_layer < n:
            raise ValueError(f"`start_layer` must be in [0, {n}); got {start_layer}.")
        b = self.batches[batch_index]
        patches: dict[torch.nn.Module, Callable[..., Any]] = {}
        if start_layer > 0:
            cached = self._outputs[batch_index][start_layer - 1]
            if cached is None:
                raise ValueError(f"`start_layer` {start_layer} was not among the cache's `start_layers`.")

            def skip(*args: Any, **kwargs: Any) -> Any:
                return detach_output(cached)

            for j in range(start_layer):
                patches[self.layers[j]] = skip
        with torch.inference_mode(), patched_forward(patches):
            return run_batch(self.model, b).logits

    def _logprobs_from_batch(self, start_layer: int, batch_index: int) -> list[np.ndarray]:
        b = self.batches[batch_index]
        with scored_positions_only(self.model, b) as packed:
            logits = self.logits_from(start_layer, batch_index)
        return packed_logprobs(logits, b) if packed else logprobs_from_logits(logits, b)

    def logprobs_from(self, start_layer: int) -> list[list[np.ndarray]]:
        """Per-batch, per-item token log-probs of the current model, restarting at ``start_layer``."""
        return [self._logprobs_from_batch(start_layer, k) for k in range(len(self.batches))]


def _naive_logprobs(model: torch.nn.Module, batches: Sequence[Batch]) -> list[list[np.ndarray]]:
    with torch.inference_mode():
        return [batch_logprobs(model, b) for b in batches]


# ----------------------------------------------------------------------------- sweep
@dataclass
class SweepResult:
    """Result of :func:`sweep_layers`.

    Attributes
    ----------
    records : list of Measurement or FailedMeasurement
        ``sens.delta_bits_per_byte`` per (site group, language) computed in this call, plus failures (and
        per-item ``eval.bits_per_byte`` records when ``keep_item_records=True``).
    skipped : list of (str, str)
        ``(group label, language)`` units found already done in ``out`` and not recomputed.
    out : Path or None
        The record file, when given.
    """

    records: list[Record]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    out: Path | None = None

    def frame(self) -> pd.DataFrame:
        """Tidy frame of the sensitivity records: ``sites, language, delta_bpb, ci_low, ci_high, n``."""
        rows = []
        for r in self.records:
            if isinstance(r, Measurement) and r.quantity == "sens.delta_bits_per_byte":
                rows.append({"sites": r.condition.get("sites"), "language": r.language, "delta_bpb": r.value,
                             "ci_low": r.attributes.get("ci_low"), "ci_high": r.attributes.get("ci_high"), "n": r.n})
        return pd.DataFrame(rows, columns=["sites", "language", "delta_bpb", "ci_low", "ci_high", "n"])


def _unit_key(model_ref: ModelRef, language: str | None, condition: Mapping[str, Any], items_sha: Any) -> str:
    return json.dumps([model_ref.model_dump(mode="json"), language, dict(sorted(condition.items())), items_sha],
                      sort_keys=True)


def _done_units(out: Path | None) -> set[str]:
    if out is None or not out.exists():
        return set()
    done = set()
    for r in read_records(out, on_error="warn"):
        if isinstance(r, Measurement) and r.quantity == "sens.delta_bits_per_byte" and r.model is not None:
            done.add(_unit_key(r.model, r.language, r.condition, r.attributes.get("items_sha256")))
    return done


def _per_item_bpb(encoded: Sequence[EncodedItem], lps: Sequence[np.ndarray]) -> np.ndarray:
    return np.array([-lp.sum() / math.log(2.0) / len(e.item.text.encode("utf-8")) for e, lp in zip(encoded, lps)])


def _flat(batches: Sequence[Batch], per_batch: Sequence[Sequence[np.ndarray]]) -> tuple[list[EncodedItem], list[np.ndarray]]:
    enc, lps = [], []
    for b, lp in zip(batches, per_batch):
        enc.extend(b.encoded)
        lps.extend(lp)
    return enc, lps


def _delta_record(
    *, delta: np.ndarray, bpb_fp: np.ndarray, bpb_q: np.ndarray, clusters: Sequence[str], model_ref: ModelRef,
    language: str, condition: dict[str, Any], corpus: Any, items_sha: str, group: SiteGroup, prefix_cache: bool,
    n_resamples: int, confidence_level: float, seed: int | None, rng: Any, routine: str, stacklevel: int = 3,
    source_types: str | None = None,
) -> Measurement:
    from qdstats.resampling import cluster_bootstrap_ci
    from qdstats.results import ci_attributes

    msgs: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ci = None
        if n_resamples > 0 and len(set(clusters)) >= 2:
            res = cluster_bootstrap_ci(delta, np.asarray(clusters), statistic="mean", kind="percentile",
                                       confidence_level=confidence_level, n_resamples=n_resamples, rng=rng)
            ci = res.ci
            msgs.extend(res.warnings)
        elif n_resamples > 0:
            msgs.append(f"{language} {group.label}: fewer than 2 clusters; no confidence interval.")
    for w in caught:
        m = str(w.message)
        if m not in msgs:
            msgs.append(m)
    for m in msgs:
        warnings.warn(m, SmallSampleWarning if "cluster" in m.lower() else UserWarning, stacklevel=stacklevel)
    attrs: dict[str, Any] = {
        **ci_attributes(ci, level=confidence_level, n_clusters=len(set(clusters))), "cluster_by": "document_id",
        "mean_bpb_fp": float(bpb_fp.mean()), "mean_bpb": float(bpb_q.mean()),
        "first_changed_layer": group.first_layer, "n_sites": len(group.sites),
        "prefix_cache": prefix_cache, "items_sha256": items_sha,
    }
    if source_types is not None:  # the group's precision in the GGUF file the model was loaded from
        attrs["source_gguf_types"] = source_types
    attrs = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in attrs.items()}
    return Measurement(quantity="sens.delta_bits_per_byte", value=float(delta.mean()), model=model_ref, language=language,
                       corpus=corpus, condition=condition, attributes=attrs, n=len(delta), seed=seed,
                       warnings=tuple(msgs), routine=routine)


def sweep_layers(
    loaded: Any,
    items: Sequence[ParallelItem] | Mapping[str, Sequence[ParallelItem]],
    scheme: Any,
    *,
    granularity: Granularity = "layer",
    layers: Sequence[int] | None = None,
    out: str | Path | None = None,
    prefix_cache: bool = True,
    batch_size: int = 16,
    n_resamples: int = 2000,
    confidence_level: float = 0.95,
    rng: int | np.random.Generator | None = 0,
    keep_item_records: bool = False,
    quantize: Callable[[torch.nn.Module, Any, Sequence[str]], contextlib.AbstractContextManager[Any]] | None = None,
    progress: bool = True,
) -> SweepResult:
    """Single-layer (or single-component) quantization sensitivity per language, with cluster-bootstrap CIs.

    Parameters
    ----------
    loaded : LoadedModel
        Model, tokenizer and ref (the model is modified inside each unit and restored).
    items : sequence of ParallelItem or dict language -> items
        Evaluation items; each language is one stratum of units.
    scheme : QuantScheme or str
        Quantization scheme (or its key, e.g. ``'int4-g128-sym'``) applied to one site group at a time.
    granularity : {'layer', 'component'}, default 'layer'
        ``'layer'``: all projection weights of one block (``sites='layers.3'``); ``'component'``: the attention
        or MLP projections of one block (``'layers.3.attn'``, ``'layers.3.mlp'``).
    layers : sequence of int, optional
        Restrict to these blocks (default: all).
    out : path, optional
        JSONL file; each finished unit's records are appended immediately and units already present are skipped.
    prefix_cache : bool, default True
        Restart each perturbed forward at the first changed block from cached full-precision outputs
        (:class:`PrefixCache`); ``False`` runs the naive full forward (same numbers, slower).
    batch_size : int, default 16
        Items per forward pass.
    n_resamples : int, default 2000
        Cluster-bootstrap resamples for each CI; 0 skips the CI (``ci_method='none'``, bounds None).
    confidence_level : float, default 0.95
        CI level.
    rng : int or numpy.random.Generator, default 0
        Seed of the bootstrap (recorded in ``seed`` when an int). An int seeds each (site group, language) unit
        from (seed, language, group label), so resuming or splitting a sweep over languages gives the records of one
        uninterrupted run; a Generator is consumed by the units in order.
    keep_item_records : bool, default False
        Also return (and write) per-item ``eval.bits_per_byte`` records of every perturbed condition.
    quantize : callable, optional
        ``quantize(model, scheme, sites) -> context manager`` that fake-quantizes ``sites`` and restores them on
        exit; default :func:`qdmodels.compress.rtn.quantized` with ``sites=``.
    progress : bool, default True
        Progress bar on stderr.

    Returns
    -------
    SweepResult
        ``records``: per unit a ``sens.delta_bits_per_byte`` :class:`Measurement` (value = mean over items of
        bits-per-byte compressed minus full precision; ``n`` = items; ``condition`` = ``{scheme, protect='none',
        prune='none', sites}``; ``attributes``: ``ci_low``, ``ci_high``, ``ci_level``, ``ci_method``,
        ``n_clusters``, ``mean_bpb_fp``, ``mean_bpb``, ``first_changed_layer``, ``n_sites``, ``prefix_cache``,
        ``items_sha256`` and, for a model loaded from a GGUF file, ``source_gguf_types``: the unit's sites and
        their type in that file, e.g. ``'mlp.down_proj=Q6_K,...'``, since a layer stored at higher precision loses
        more when re-quantized), or a :class:`FailedMeasurement`; ``skipped`` units; ``out``.

    Raises
    ------
    ValueError
        Bad options, empty or duplicated items, items longer than the context.

    Notes
    -----
    CIs resample documents (``ParallelItem.document_id``) with replacement (cluster bootstrap,
    :func:`qdstats.resampling.cluster_bootstrap_ci`, percentile), since sentences of one document are not
    independent. Units are computed language by language; the full-precision pass of a language is skipped
    when all its units are done.
    Validated against: prefix-cached vs naive forward (``atol=1e-5``) and against :func:`evaluate` under
    ``quantized(...)`` for the same sites (``atol=1e-4``; tests/qdmodels/test_sensitivity.py).
    """
    import sys

    from tqdm.auto import tqdm

    iv = _sweep_layers_iv(loaded, items, scheme, granularity=granularity, layers=layers, out=out,
                          prefix_cache=prefix_cache, batch_size=batch_size, n_resamples=n_resamples,
                          confidence_level=confidence_level, rng=rng, quantize=quantize)
    result = SweepResult(records=[], out=iv.out)
    langs = list(iter_languages(iv.flat))
    bar = tqdm(total=len(langs) * len(iv.groups), desc=f"sweep {iv.scheme_key}", disable=not progress, file=sys.stderr,
               unit="unit", leave=False)
    try:
        for lang, lang_items in langs:
            st = _stratum(iv, lang, lang_items)
            todo = []
            for g in iv.groups:
                if _unit_key(iv.model_ref, lang, st.conds[g.label], st.items_sha) in iv.done:
                    result.skipped.append((g.label, lang))
                    bar.update(1)
                else:
                    todo.append(g)
            if not todo:
                continue
            fp = _fp_pass(iv, lang_items, todo)
            for g in todo:
                recs = _unit_records(iv, st, fp, g, keep_item_records=keep_item_records)
                if iv.out is not None:
                    write_records(iv.out, recs)  # the unit's summary record is written last
                result.records.extend(recs)
                bar.update(1)
    finally:
        bar.close()
    return result


@dataclass(frozen=True)
class _SweepInputs:
    """Validated inputs of :func:`sweep_layers`."""

    model: torch.nn.Module
    tokenizer: Any
    model_ref: ModelRef
    flat: list[ParallelItem]
    scheme: Any
    scheme_key: str
    quantize: Callable[[torch.nn.Module, Any, Sequence[str]], contextlib.AbstractContextManager[Any]]
    groups: list[SiteGroup]
    out: Path | None
    done: set[str]  # unit keys already in ``out``
    pad_id: int
    prefix_cache: bool
    batch_size: int
    n_resamples: int
    confidence_level: float
    gen: np.random.Generator
    seed: int | None
    source_types: dict[str, str] | None  # site -> GGUF type of the source file (None: not loaded from a GGUF)


def _source_types(loaded: Any) -> dict[str, str] | None:
    """Each site's type in the GGUF file the model came from, or None (with a warning when the file is unreadable)."""
    from qdmodels.compress.gguf_files import site_source_types

    try:
        return site_source_types(loaded)
    except (OSError, ValueError) as exc:
        warnings.warn(f"the source GGUF layout could not be read ({exc}); the sweep records no source types.",
                      UserWarning, stacklevel=4)
        return None


def _sweep_layers_iv(
    loaded: Any, items: Any, scheme: Any, *, granularity: str, layers: Sequence[int] | None, out: str | Path | None,
    prefix_cache: bool, batch_size: int, n_resamples: int, confidence_level: float, rng: Any, quantize: Any,
) -> _SweepInputs:
    """Input validation of :func:`sweep_layers` (and the units already done in ``out``)."""
    model, tokenizer, model_ref = resolve_model(loaded, None, None)
    flat = flatten_items(items)
    check_option(granularity, "granularity", ("layer", "component"))
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    n_resamples = check_int(n_resamples, "n_resamples", minimum=0)
    confidence_level = check_confidence_level(confidence_level)
    if not isinstance(prefix_cache, bool):
        raise TypeError(f"`prefix_cache` must be a bool; got {prefix_cache!r}.")
    scheme_obj, scheme_key = _scheme(scheme)
    if quantize is None:
        from qdmodels.compress.rtn import quantized

        def quantize(m: torch.nn.Module, s: Any, sites: Sequence[str]) -> contextlib.AbstractContextManager[Any]:
            return quantized(m, s, sites=list(sites))

    groups = site_groups(model, granularity=granularity, layers=layers)  # type: ignore[arg-type]
    out_path = Path(out) if out is not None else None
    done = _done_units(out_path)
    gen = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
    ctx_id, _ = context_token(tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else ctx_id
    return _SweepInputs(model=model, tokenizer=tokenizer, model_ref=model_ref, flat=list(flat), scheme=scheme_obj,
                        scheme_key=scheme_key, quantize=quantize, groups=groups, out=out_path, done=done,
                        pad_id=pad_id, prefix_cache=prefix_cache, batch_size=batch_size, n_resamples=n_resamples,
                        confidence_level=confidence_level, gen=gen, seed=seed_detail(rng),
                        source_types=_source_types(loaded))


@dataclass(frozen=True)
class _Stratum:
    """One language's items: their hash, their corpus (when shared) and the condition of every unit."""

    language: str
    items_sha: str
    corpus: Any
    conds: dict[str, dict[str, Any]]  # group label -> condition


def _stratum(iv: _SweepInputs, lang: str, lang_items: Sequence[ParallelItem]) -> _Stratum:
    corpus = lang_items[0].corpus if all(it.corpus == lang_items[0].corpus for it in lang_items) else None
    conds = {g.label: {**DEFAULT_CONDITION, "scheme": iv.scheme_key, "sites": g.label} for g in iv.groups}
    return _Stratum(language=lang, items_sha=content_hash(lang_items), corpus=corpus, conds=conds)


@dataclass(frozen=True)
class _FullPrecision:
    """A language's batches, its prefix cache (or None) and the full-precision bits per byte per item."""

    batches: list[Batch]
    cache: PrefixCache | None
    encoded: list[EncodedItem]  # batch order
    bpb_fp: np.ndarray
    clusters: list[str]


def _fp_pass(iv: _SweepInputs, lang_items: Sequence[ParallelItem], todo: Sequence[SiteGroup]) -> _FullPrecision:
    """Encode and batch a language's items and run the full-precision pass (building the cache when asked)."""
    encoded = encode_items(iv.model, iv.tokenizer, lang_items)
    batches = make_batches(encoded, batch_size=iv.batch_size, pad_id=iv.pad_id)
    if iv.prefix_cache:
        cache = PrefixCache(iv.model, batches, start_layers=[g.first_layer for g in todo]).build()
        fp_per_batch = cache.fp_logprobs
    else:
        cache = None
        fp_per_batch = _naive_logprobs(iv.model, batches)
    enc_flat, fp_lps = _flat(batches, fp_per_batch)
    return _FullPrecision(batches=list(batches), cache=cache, encoded=enc_flat, bpb_fp=_per_item_bpb(enc_flat, fp_lps),
                          clusters=[e.item.document_id for e in enc_flat])


def _unit_generator(iv: _SweepInputs, language: str, label: str) -> np.random.Generator:
    """The bootstrap generator of one (site group, language) unit.

    With an int seed it is derived from (seed, language, group label) alone, so a unit's CI does not depend on which
    units ran before it: a resumed sweep, or one split over ``items`` languages in separate runs, writes the same
    records as one uninterrupted run. A caller's Generator is shared by the units in order, as given.
    """
    if iv.seed is None:
        return iv.gen
    return np.random.default_rng([iv.seed, zlib.crc32(language.encode("utf-8")), zlib.crc32(label.encode("utf-8"))])


def _unit_records(iv: _SweepInputs, st: _Stratum, fp: _FullPrecision, g: SiteGroup, *,
                  keep_item_records: bool) -> list[Record]:
    """The records of one (site group, language) unit; an exception becomes a :class:`FailedMeasurement`."""
    cond = st.conds[g.label]
    try:
        with iv.quantize(iv.model, iv.scheme, g.sites):
            q_per_batch = (fp.cache.logprobs_from(g.first_layer) if fp.cache is not None
                           else _naive_logprobs(iv.model, fp.batches))
        _, q_lps = _flat(fp.batches, q_per_batch)
        bpb_q = _per_item_bpb(fp.encoded, q_lps)
        recs: list[Record] = [_delta_record(
            delta=bpb_q - fp.bpb_fp, bpb_fp=fp.bpb_fp, bpb_q=bpb_q, clusters=fp.clusters, model_ref=iv.model_ref,
            language=st.language, condition=cond, corpus=st.corpus, items_sha=st.items_sha, group=g,
            prefix_cache=iv.prefix_cache, n_resamples=iv.n_resamples, confidence_level=iv.confidence_level,
            seed=iv.seed, rng=_unit_generator(iv, st.language, g.label), routine=ROUTINE, stacklevel=4,
            source_types=describe_source_types(iv.source_types, g.sites))]
        if keep_item_records:
            recs = [Measurement(
                quantity="eval.bits_per_byte", value=float(v), model=iv.model_ref, language=st.language,
                corpus=e.item.corpus, item_id=e.item.item_id, condition=cond,
                attributes={"document_id": e.item.document_id, "items_sha256": st.items_sha},
                routine=ROUTINE) for e, v in zip(fp.encoded, bpb_q)] + recs
    except Exception as exc:  # a failed unit is data; the sweep goes on
        recs = [FailedMeasurement.from_exception(
            exc, routine=ROUTINE, quantity="sens.delta_bits_per_byte", model=iv.model_ref, language=st.language,
            condition=cond, input={"sites": list(g.sites), "scheme": iv.scheme_key, "items_sha256": st.items_sha})]
    return recs


def _scheme(scheme: Any) -> tuple[Any, str]:
    if isinstance(scheme, str):
        from qdmodels.compress.scheme import QuantScheme

        obj = QuantScheme.parse(scheme)
        return obj, obj.key
    key = getattr(scheme, "key", None)
    if not isinstance(key, str):
        raise TypeError(f"`scheme` must be a QuantScheme or its key string; got {type(scheme).__name__}.")
    return scheme, key


# ----------------------------------------------------------------------------- protection search
@dataclass
class ProtectionSearchResult:
    """Result of :func:`search_protection`.

    Attributes
    ----------
    layers : tuple of int
        Blocks kept in full precision, chosen on the dev items.
    plan_key : str
        ``ProtectionPlan.key`` of the chosen plan.
    dev_scores : pandas.DataFrame
        The selection criterion per candidate (``layer``, ``score``; for greedy also ``step``).
    test_records : list of Measurement
        Per-item evaluation records on the test items for ``fp32``, the unprotected scheme and the chosen plan
        (identical items, paired). For a model loaded from a GGUF file, the chosen plan's records carry
        ``attributes['source_gguf_types']``: each protected layer's matrices and their type in that file (layers
        stored at higher precision lose more when re-quantized, so the choice can follow the file's layout).
    bits_per_weight : dict
        ``{'unprotected': bpw, 'protected': bpw}`` from the quantizer's reports (storage cost of protection).
    method : str
        ``'topk'`` or ``'greedy'``.
    """

    layers: tuple[int, ...]
    plan_key: str
    dev_scores: pd.DataFrame
    test_records: list[Measurement]
    bits_per_weight: dict[str, float]
    method: str


def _objective(delta_by_lang: Mapping[str, float], objective: str) -> float:
    vals = list(delta_by_lang.values())
    return float(np.mean(vals)) if objective == "mean" else float(np.max(vals))


def search_protection(
    loaded: Any,
    dev_items: Sequence[ParallelItem] | Mapping[str, Sequence[ParallelItem]],
    test_items: Sequence[ParallelItem] | Mapping[str, Sequence[ParallelItem]],
    scheme: Any,
    *,
    k: int,
    method: Literal["topk", "greedy"] = "topk",
    objective: Literal["mean", "max"] = "mean",
    batch_size: int = 16,
    progress: bool = True,
) -> ProtectionSearchResult:
    """Choose ``k`` blocks to keep in full precision on dev items; report the choice on test items.

    Parameters
    ----------
    loaded : LoadedModel
    dev_items, test_items : sequences of ParallelItem (or dicts)
        Selection and reporting items; they must not share an ``item_id`` within a language (selection on the
        test set inflates the benefit: winner's curse).
    scheme : QuantScheme or str
    k : int
        Number of blocks to protect (1 <= k < n_layers).
    method : {'topk', 'greedy'}, default 'topk'
        ``'topk'``: the k blocks with the largest single-block sensitivity (one prefix-cached sweep on dev).
        ``'greedy'``: starting from everything quantized, repeatedly add the block whose protection lowers the
        dev objective most (``k * n_layers`` full dev evaluations).
    objective : {'mean', 'max'}, default 'mean'
        Aggregate over languages of the per-language mean Δ bits per byte: the mean, or the worst language.
    batch_size, progress
        As in :func:`sweep_layers`.

    Returns
    -------
    ProtectionSearchResult

    Raises
    ------
    ValueError
        Bad options, ``k`` out of range, or dev and test items that overlap.

    Notes
    -----
    Validated against: not independently validated (a selection procedure); its parts (sweep, evaluation)
    are tested.
    """
    iv = _search_protection_iv(loaded, dev_items, test_items, scheme, k=k, method=method, objective=objective)
    if method == "topk":
        chosen, rows = _topk_choice(loaded, iv, batch_size=batch_size, progress=progress)
    else:
        chosen, rows = _greedy_choice(loaded, iv, batch_size=batch_size)
    return _protection_result(loaded, iv, chosen, rows, batch_size=batch_size, progress=progress)


@dataclass(frozen=True)
class _SearchInputs:
    """Validated inputs of :func:`search_protection`."""

    model: torch.nn.Module
    n_layers: int
    k: int
    method: str
    objective: str
    dev: list[ParallelItem]
    test: list[ParallelItem]
    scheme: Any


def _search_protection_iv(loaded: Any, dev_items: Any, test_items: Any, scheme: Any, *, k: int, method: str,
                          objective: str) -> _SearchInputs:
    """Input validation of :func:`search_protection` (dev and test items must not overlap)."""
    model, _, _ = resolve_model(loaded, None, None)
    check_option(method, "method", ("topk", "greedy"))
    check_option(objective, "objective", ("mean", "max"))
    n_layers = len(decoder_layers(model))
    k = check_int(k, "k", minimum=1, maximum=n_layers - 1)
    dev = flatten_items(dev_items)
    test = flatten_items(test_items)
    overlap = {(i.language, i.item_id) for i in dev} & {(i.language, i.item_id) for i in test}
    if overlap:
        raise ValueError(f"`dev_items` and `test_items` overlap in {len(overlap)} items, e.g. {sorted(overlap)[0]}; "
                         "select on dev and report on disjoint test items.")
    scheme_obj, _ = _scheme(scheme)
    return _SearchInputs(model=model, n_layers=n_layers, k=k, method=method, objective=objective, dev=list(dev),
                         test=list(test), scheme=scheme_obj)


def _topk_choice(loaded: Any, iv: _SearchInputs, *, batch_size: int,
                 progress: bool) -> tuple[tuple[int, ...], list[dict[str, Any]]]:
    """The ``k`` blocks with the largest single-block sensitivity on dev (one prefix-cached sweep)."""
    sw = sweep_layers(loaded, iv.dev, iv.scheme, granularity="layer", batch_size=batch_size, n_resamples=0,
                      progress=progress)
    by_layer: dict[int, dict[str, float]] = {}
    for r in sw.records:
        if isinstance(r, Measurement) and r.quantity == "sens.delta_bits_per_byte":
            by_layer.setdefault(int(str(r.condition["sites"]).split(".")[1]), {})[r.language] = r.value
    rows = [{"layer": layer, "score": _objective(d, iv.objective)} for layer, d in sorted(by_layer.items())]
    ranked = sorted(rows, key=lambda r: -r["score"])
    return tuple(sorted(r["layer"] for r in ranked[:iv.k])), rows


def _greedy_choice(loaded: Any, iv: _SearchInputs, *, batch_size: int) -> tuple[tuple[int, ...], list[dict[str, Any]]]:
    """Add, ``k`` times, the block whose protection lowers the dev objective most."""
    rows: list[dict[str, Any]] = []
    chosen_list: list[int] = []
    for step in range(iv.k):
        best = None
        for cand in range(iv.n_layers):
            if cand in chosen_list:
                continue
            score = _dev_score(loaded, iv, tuple(sorted(chosen_list + [cand])), batch_size=batch_size)
            rows.append({"step": step, "layer": cand, "score": score})
            if best is None or score < best[1]:
                best = (cand, score)
        if best is None:  # unreachable: k < n_layers leaves a candidate
            raise RuntimeError("no candidate block left to protect")
        chosen_list.append(best[0])
    return tuple(sorted(chosen_list)), rows


def _dev_score(loaded: Any, iv: _SearchInputs, layers: tuple[int, ...], *, batch_size: int) -> float:
    """Dev objective of the per-language mean Δ bits per byte with ``layers`` kept in full precision."""
    from qdmodels.compress.conditions import quant_condition
    from qdmodels.compress.scheme import ProtectionPlan
    from qdmodels.eval.scoring import evaluate_conditions

    plan = ProtectionPlan(layers=layers)
    res = evaluate_conditions(loaded, iv.dev, ["fp32", quant_condition(iv.scheme, plan=plan)],
                              batch_size=batch_size, progress=False)
    fp, q = list(res.values())
    d: dict[str, list[float]] = {}
    for a, b in zip(fp.scores, q.scores):
        d.setdefault(a.language, []).append(b.bits_per_byte - a.bits_per_byte)
    return _objective({lang: float(np.mean(v)) for lang, v in d.items()}, iv.objective)


def _protection_result(loaded: Any, iv: _SearchInputs, chosen: tuple[int, ...], rows: list[dict[str, Any]], *,
                       batch_size: int, progress: bool) -> ProtectionSearchResult:
    """Evaluate fp32, the unprotected scheme and the chosen plan on the test items; storage cost of both plans."""
    from qdmodels.compress.conditions import quant_condition
    from qdmodels.compress.rtn import quantized
    from qdmodels.compress.scheme import ProtectionPlan
    from qdmodels.eval.scoring import evaluate_conditions

    plan = ProtectionPlan(layers=chosen)
    res = evaluate_conditions(loaded, iv.test, ["fp32", quant_condition(iv.scheme), quant_condition(iv.scheme, plan=plan)],
                              batch_size=batch_size, progress=progress)
    test_records = [r for er in res.values() for r in er.records]
    desc = describe_layer_source_types(_source_types(loaded), chosen)
    if desc is not None:  # the protected layers' precision in the source GGUF file (a confound of the selection)
        test_records = [r.model_copy(update={"attributes": {**r.attributes, "source_gguf_types": desc}})
                        if isinstance(r, Measurement) and r.condition.get("protect") == plan.key else r
                        for r in test_records]
    bpw: dict[str, float] = {}
    for label, p in (("unprotected", None), ("protected", plan)):
        with quantized(iv.model, iv.scheme, plan=p) as report:
            bpw[label] = float(report.bits_per_weight)
    return ProtectionSearchResult(layers=chosen, plan_key=plan.key, dev_scores=pd.DataFrame(rows),
                                  test_records=test_records, bits_per_weight=bpw, method=iv.method)
