"""Activation statistics per language and layer, streamed with scoped hooks over real tokens only.

For each language the items are run through the model in padded batches; hooks on the decoder blocks (and
optionally on the inputs of the MLP down-projections) update running statistics with the activations of
real text tokens only (padding and the prepended context token are masked out). Moments are merged exactly
across batches in float64 (Chan et al. / Pébay pairwise update), so no activation tensor is ever stored.
Hooks are removed when the function returns, also on error.

Examples
--------
>>> from qdmodels.models.tiny import tiny_model
>>> from qdmodels.eval.scoring import text_items
>>> from qdmodels.probes.activations import activation_stats
>>> recs = activation_stats(tiny_model("llama"), text_items({"eng_Latn": ["The fox jumps."]}), progress=False)
>>> sorted({r.site for r in recs})
['layers.0', 'layers.1']
"""

from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from qdmodels.compress.conditions import DEFAULT_CONDITION
from qdmodels.corpora.types import ParallelItem
from qdmodels.eval.batching import make_batches, run_batch
from qdmodels.eval.encoding import encode_items
from qdmodels.models.hooks import HookSet
from qdmodels.runtime import (
    context_token,
    flatten_items,
    iter_languages,
    model_device,
    resolve_model,
)
from qdstats.records import Measurement
from qdstats.validation import DegenerateDataWarning, check_int, check_option

__all__ = ["Moments", "activation_stats"]

ROUTINE = "qdmodels.probes.activations.activation_stats"
Point = Literal["residual", "down_proj_input"]


@dataclass
class Moments:
    """Exact streaming central moments (float64) of a stream of numbers: ``n, mean, M2, M3, M4``.

    ``update`` merges a whole batch with the pairwise formulas of Chan et al. (1979) / Pébay (2008).
    """

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0
    m3: float = 0.0
    m4: float = 0.0

    def update(self, x: torch.Tensor) -> None:
        xb = x.reshape(-1).to(torch.float64)
        nb = xb.numel()
        if nb == 0:
            return
        mb = float(xb.mean())
        d = xb - mb
        d2 = d * d
        m2b, m3b, m4b = float(d2.sum()), float((d2 * d).sum()), float((d2 * d2).sum())
        na = self.n
        if na == 0:
            self.n, self.mean, self.m2, self.m3, self.m4 = nb, mb, m2b, m3b, m4b
            return
        n = na + nb
        delta = mb - self.mean
        m2 = self.m2 + m2b + delta**2 * na * nb / n
        m3 = (self.m3 + m3b + delta**3 * na * nb * (na - nb) / n**2
              + 3.0 * delta * (na * m2b - nb * self.m2) / n)
        m4 = (self.m4 + m4b + delta**4 * na * nb * (na * na - na * nb + nb * nb) / n**3
              + 6.0 * delta**2 * (na * na * m2b + nb * nb * self.m2) / n**2
              + 4.0 * delta * (na * m3b - nb * self.m3) / n)
        self.n, self.mean, self.m2, self.m3, self.m4 = n, self.mean + delta * nb / n, m2, m3, m4

    @property
    def variance(self) -> float:
        return self.m2 / self.n if self.n else math.nan

    @property
    def excess_kurtosis(self) -> float:
        """Fisher excess kurtosis (biased), as ``scipy.stats.kurtosis(fisher=True, bias=True)``."""
        if self.n == 0 or self.m2 == 0:
            return math.nan
        return self.n * self.m4 / (self.m2 * self.m2) - 3.0


@dataclass
class _Acc:
    moments: Moments = field(default_factory=Moments)
    sumsq: float = 0.0
    absmax: float = 0.0
    first_absmax: float = 0.0
    channel_absmax: np.ndarray | None = None
    n_tokens: int = 0

    def update(self, h: torch.Tensor, text_mask: torch.Tensor, first_mask: torch.Tensor) -> None:
        x = h[text_mask]  # (n_tok, d): real text tokens only
        if x.numel():
            xd = x.to(torch.float64)
            self.moments.update(xd)
            self.sumsq += float((xd * xd).sum())
            self.absmax = max(self.absmax, float(xd.abs().max()))
            ch = xd.abs().amax(dim=0).cpu().numpy()
            self.channel_absmax = ch if self.channel_absmax is None else np.maximum(self.channel_absmax, ch)
            self.n_tokens += x.shape[0]
        f = h[first_mask]
        if f.numel():
            self.first_absmax = max(self.first_absmax, float(f.abs().max()))


def _points(model: torch.nn.Module, points: Sequence[str]) -> dict[str, torch.nn.Module]:
    from qdmodels.models.sites import site_map

    sm = site_map(model)
    mods: dict[str, torch.nn.Module] = {}
    for p in points:
        if p == "residual":
            for i, layer in enumerate(sm.layers):
                mods[f"layers.{i}"] = layer
        else:
            for name in sm.select(kinds=["down_proj"]):
                mods[f"{name}.input"] = sm.get(name).module
    return mods


def activation_stats(
    loaded_or_model: Any,
    items: Sequence[ParallelItem] | Mapping[str, Sequence[ParallelItem]],
    *,
    points: Sequence[Point] = ("residual",),
    outlier_threshold: float = 6.0,
    batch_size: int = 16,
    tokenizer: Any = None,
    model_ref: Any = None,
    condition: Mapping[str, Any] | None = None,
    progress: bool = True,
) -> list[Measurement]:
    """Per-language, per-layer activation statistics over real text tokens.

    Parameters
    ----------
    loaded_or_model : LoadedModel or torch.nn.Module
    items : sequence of ParallelItem or dict language -> items
    points : sequence of {'residual', 'down_proj_input'}, default ('residual',)
        ``'residual'``: the output of every decoder block (site ``'layers.{i}'``); ``'down_proj_input'``: the
        input of every MLP down-projection (site ``'layers.{i}.mlp.down_proj.input'``), where LLM.int8-style
        outlier features appear.
    outlier_threshold : float, default 6.0
        A channel is an outlier channel when its largest |activation| over the language's tokens exceeds this
        (the LLM.int8 threshold); recorded in ``condition['outlier_threshold']``.
    batch_size : int, default 16
    tokenizer, model_ref
        Required for a bare module.
    condition : dict, optional
        The model's condition (default full precision).
    progress : bool, default True

    Returns
    -------
    list of Measurement
        Per (language, site): ``act.mean``, ``act.rms``, ``act.absmax``, ``act.excess_kurtosis`` (pooled over all
        channels and text tokens), ``act.first_token_ratio`` (largest |activation| at the context-token
        position divided by the largest at text positions: massive activations), ``act.outlier_channel_count``
        (``attributes['outlier_channels']`` lists up to 20 channel indices by decreasing absmax). ``n`` is the
        number of text tokens; ``attributes`` hold ``n_items`` and ``hidden_size``.

    Raises
    ------
    ValueError
        Unknown ``points``, bad threshold or batch size, and the errors of :func:`qdmodels.eval.scoring.evaluate`.

    Warns
    -----
    DegenerateDataWarning
        Constant activations (kurtosis NaN) or a zero text absmax (ratio NaN); also in the records' ``warnings``.

    Notes
    -----
    Inputs are tokenized exactly as in evaluation (context token prepended, no other special tokens). The
    context token's position is excluded from every statistic except the numerator of ``act.first_token_ratio``.
    Hooks are scoped (:class:`qdmodels.models.hooks.HookSet`) and removed on exit.
    Validated against: ``scipy.stats.kurtosis`` / numpy on the concatenated masked activations captured from
    a plain forward, ``rtol=1e-9`` (tests/qdmodels/probes/test_activations.py).

    References
    ----------
    Dettmers, T. et al. (2022). LLM.int8(). arXiv:2208.07339.
    Sun, M. et al. (2024). Massive Activations in Large Language Models. arXiv:2402.17762.
    Pébay, P. (2008). Formulas for robust, one-pass parallel computation of covariances and arbitrary-order
    statistical moments. Sandia report SAND2008-6212.
    """
    model, tokenizer, model_ref = resolve_model(loaded_or_model, tokenizer, model_ref)
    flat = flatten_items(items)
    for p in points:
        check_option(p, "points", ("residual", "down_proj_input"))
    try:
        thr = float(outlier_threshold)
    except (TypeError, ValueError):
        raise TypeError(f"`outlier_threshold` must be a positive number; got {outlier_threshold!r}.") from None
    if not thr > 0 or math.isinf(thr):
        raise ValueError(f"`outlier_threshold` must be a positive finite number; got {outlier_threshold!r}.")
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    cond = {**dict(DEFAULT_CONDITION if condition is None else condition), "outlier_threshold": thr}
    mods = _points(model, list(dict.fromkeys(points)))
    ctx_id, ctx_rule = context_token(tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else ctx_id
    from tqdm.auto import tqdm

    out: list[Measurement] = []
    langs = list(iter_languages(flat))
    bar = tqdm(total=len(flat), desc="activations", disable=not progress, file=sys.stderr, leave=False, unit="item")
    try:
        for lang, lang_items in langs:
            accs = {name: _Acc() for name in mods}
            state: dict[str, torch.Tensor] = {}
            encoded = encode_items(model, tokenizer, lang_items)
            with HookSet() as hs, torch.inference_mode():
                for name, mod in mods.items():
                    is_input = name.endswith(".input")

                    def hook(m: Any, args: Any, output: Any, _n: str = name, _inp: bool = is_input) -> None:
                        h = args[0] if _inp else (output[0] if isinstance(output, (tuple, list)) else output)
                        accs[_n].update(h, state["text"], state["first"])

                    hs.forward(mod, hook)
                for b in make_batches(encoded, batch_size=batch_size, pad_id=pad_id):
                    text = b.attention_mask.bool().clone().to(model_device(model))
                    text[:, 0] = False
                    first = torch.zeros_like(text)
                    first[:, 0] = True
                    state["text"], state["first"] = text, first
                    run_batch(model, b)
                    bar.update(len(b.encoded))
            corpus = lang_items[0].corpus if all(i.corpus == lang_items[0].corpus for i in lang_items) else None
            for name, a in accs.items():
                out.extend(_records(name, a, lang=lang, corpus=corpus, thr=thr, cond=cond, model_ref=model_ref,
                                    n_items=len(lang_items), ctx_rule=ctx_rule))
    finally:
        bar.close()
    return out


def _records(name: str, a: _Acc, *, lang: str, corpus: Any, thr: float, cond: dict[str, Any], model_ref: Any,
             n_items: int, ctx_rule: str) -> list[Measurement]:
    mo = a.moments
    ch = a.channel_absmax if a.channel_absmax is not None else np.zeros(0)
    attrs = {"n_items": n_items, "hidden_size": int(ch.size), "context_token": ctx_rule}
    kurt = mo.excess_kurtosis
    ratio = a.first_absmax / a.absmax if a.absmax > 0 else math.nan
    outl = np.flatnonzero(ch > thr)
    outl = outl[np.argsort(-ch[outl], kind="stable")]
    vals: list[tuple[str, float, dict[str, Any]]] = [
        ("act.mean", mo.mean, {}),
        ("act.rms", math.sqrt(a.sumsq / mo.n) if mo.n else math.nan, {}),
        ("act.absmax", a.absmax, {}),
        ("act.excess_kurtosis", kurt, {}),
        ("act.first_token_ratio", ratio, {"first_token_absmax": a.first_absmax}),
        ("act.outlier_channel_count", float(outl.size),
         {"outlier_channels": ",".join(str(int(c)) for c in outl[:20]) or None}),
    ]
    recs = []
    for q, v, extra in vals:
        w: tuple[str, ...] = ()
        if math.isnan(v):
            w = (f"{lang} {name}: {q} is undefined (constant or empty activations); recorded as NaN.",)
            warnings.warn(w[0], DegenerateDataWarning, stacklevel=3)
        recs.append(Measurement(quantity=q, value=float(v), model=model_ref, site=name, language=lang, corpus=corpus,
                                condition=cond, attributes={**attrs, **extra}, n=a.n_tokens, warnings=w,
                                routine=ROUTINE))
    return recs
