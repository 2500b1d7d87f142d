"""Cheap per-layer quantization-sensitivity proxies, and their validation against measured Δ bits per byte.

A full layer sweep (:func:`qdmodels.eval.sensitivity.sweep_layers`) evaluates the language model once per site
group. The proxies here avoid that:

* **Output reconstruction error** (:func:`output_error_proxies`): each block is run on its *full-precision*
  inputs (cached by one full-precision pass per language), once with full-precision weights and once with the
  site group fake-quantized (:func:`qdmodels.compress.rtn.quantized`, the same scheme as the sweep). Over the
  real (non-padding) token positions of the language's items:

  - ``proxy.output_rel_mse = ||Y_q - Y||^2 / ||Y||^2`` with ``Y`` the block output (the residual stream that the
    next block reads);
  - ``proxy.output_sqnr_db = 10 log10(||Y - X||^2 / ||Y_q - Y||^2)`` with ``Y - X`` the block's own contribution
    (its update of the residual stream), i.e. the signal-to-quantization-noise ratio of what the block adds.

  Cost: about two block forwards per site group (one full-precision pass is shared).
* **Diagonal Fisher** (:func:`fisher_proxies`): one backward pass over the language's items (gradients of the
  summed token NLL, accumulated over batches), then per site group

  - ``proxy.fisher_diag = Σ_j g_j^2`` over the group's weights, and
  - ``proxy.fisher_delta = ½ Σ_j g_j^2 Δw_j^2`` with ``Δw`` the RTN perturbation of the scheme: the second-order
    Taylor estimate of the loss change with the Fisher approximated by the squared gradient of the summed loss
    (a one-sample "empirical Fisher" diagonal; per-example gradients would cost one backward per item).

A proxy is a **screening tool**: it ranks layers for where to look; it never replaces the measurement.
:func:`validate_proxies` reports, per language and proxy, the Spearman rank correlation between the proxy and
the measured ``sens.delta_bits_per_byte`` of the same site groups, with a confidence interval
(:func:`qdstats.correlation.corr`), as ``proxy.rank_corr_with_measured`` records.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import torch

from qdmodels.compress.conditions import DEFAULT_CONDITION
from qdmodels.corpora.types import ParallelItem
from qdmodels.eval.batching import make_batches
from qdmodels.eval.encoding import encode_items
from qdmodels.runtime import (
    content_hash,
    context_token,
    flatten_items,
    iter_languages,
    resolve_model,
)
from qdstats.records import Measurement, Record
from qdstats.results import ci_attributes
from qdstats.validation import (
    DegenerateDataWarning,
    WarningCollector,
    check_confidence_level,
    check_int,
    check_option,
)

__all__ = [
    "EXPECTED_SIGN",
    "PROXY_QUANTITIES",
    "fisher_proxies",
    "output_error_proxies",
    "validate_proxies",
]

#: Proxies and the sign of their expected rank correlation with the measured Δ bits per byte.
EXPECTED_SIGN: dict[str, int] = {
    "proxy.output_rel_mse": 1,
    "proxy.output_sqnr_db": -1,
    "proxy.fisher_diag": 1,
    "proxy.fisher_delta": 1,
}
PROXY_QUANTITIES: tuple[str, ...] = tuple(EXPECTED_SIGN)
Granularity = Literal["layer", "component"]


def _scheme(scheme: Any) -> Any:
    from qdmodels.compress.scheme import QuantScheme

    if isinstance(scheme, str):
        return QuantScheme.parse(scheme)
    if not isinstance(scheme, QuantScheme):
        raise TypeError(f"`scheme` must be a QuantScheme or its key; got {type(scheme).__name__}.")
    return scheme


def _lang_batches(model: torch.nn.Module, tokenizer: Any, items: Sequence[ParallelItem], batch_size: int) -> list[Any]:
    ctx_id, _ = context_token(tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else ctx_id
    return make_batches(encode_items(model, tokenizer, items), batch_size=batch_size, pad_id=pad_id)


def _corpus(items: Sequence[ParallelItem]) -> Any:
    return items[0].corpus if all(it.corpus == items[0].corpus for it in items) else None


def output_error_proxies(
    loaded: Any,
    items: Sequence[ParallelItem] | Mapping[str, Sequence[ParallelItem]],
    scheme: Any,
    *,
    granularity: Granularity = "layer",
    layers: Sequence[int] | None = None,
    batch_size: int = 16,
) -> list[Measurement]:
    """Per site group and language: block-output reconstruction error under fake quantization of that group.

    Parameters
    ----------
    loaded : LoadedModel
    items : sequence of ParallelItem or dict language -> items
    scheme : QuantScheme or str
        Scheme applied to one site group at a time (the sweep's scheme, for validation).
    granularity : {'layer', 'component'}, default 'layer'
        Site groups as in :func:`qdmodels.eval.sensitivity.site_groups` (labels ``'layers.3'`` / ``'layers.3.mlp'``).
    layers : sequence of int, optional
        Restrict to these blocks.
    batch_size : int, default 16

    Returns
    -------
    list of Measurement
        ``proxy.output_rel_mse`` and ``proxy.output_sqnr_db`` per (group, language); ``condition`` =
        ``{scheme, protect='none', prune='none', sites=<label>}`` (as the sweep's records), ``n`` = real token
        positions, ``attributes``: ``items_sha256``, ``n_items``, ``first_changed_layer``.

    Raises
    ------
    TypeError, ValueError
        Bad options or items (see :func:`qdmodels.eval.scoring.evaluate`).

    Warns
    -----
    DegenerateDataWarning
        A group whose quantization changes nothing (error 0: SQNR infinite, recorded as NaN with a warning).

    Notes
    -----
    Formulas in the module docstring. Inputs to every block are the full-precision inputs (so each group is
    judged in isolation, like the single-group sweep). Validated against: a direct computation with
    ``capture`` hooks on the plain model under :func:`qdmodels.compress.rtn.quantized` (tests, ``rtol=1e-5``,
    float32 accumulation order); its relation to Δ bits per byte is what :func:`validate_proxies` measures.
    """
    from qdmodels.compress.rtn import quantized
    from qdmodels.eval.sensitivity import site_groups
    from qdmodels.models.blocks import collect_layer_inputs, run_block
    from qdmodels.models.sites import site_map

    model, tokenizer, model_ref = resolve_model(loaded, None, None)
    flat = flatten_items(items)
    check_option(granularity, "granularity", ("layer", "component"))
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    sch = _scheme(scheme)
    groups = site_groups(model, granularity=granularity, layers=layers)
    by_first: dict[int, list[Any]] = {}
    for g in groups:
        by_first.setdefault(g.first_layer, []).append(g)
    smap = site_map(model)
    recs: list[Measurement] = []
    for lang, lang_items in iter_languages(flat):
        sha = content_hash(lang_items)
        batches = _lang_batches(model, tokenizer, lang_items, batch_size)
        ids = [b.input_ids for b in batches]
        masks = [b.attention_mask for b in batches]
        hidden: list[torch.Tensor] = []
        calls: list[Any] = []
        for i_, m_ in zip(ids, masks):
            h, c = collect_layer_inputs(model, i_, batch_size=i_.shape[0], attention_mask=m_)
            hidden.extend(h)
            calls.extend(c)
        keep = [m.bool() for m in masks]
        n_tok = int(sum(int(k.sum()) for k in keep))
        last = max(by_first) if by_first else -1
        with torch.no_grad():
            for i in range(last + 1):
                layer = smap.layers[i]
                outs = [run_block(layer, h, calls[b][i]) for b, h in enumerate(hidden)]
                for g in by_first.get(i, []):
                    with quantized(model, sch, sites=list(g.sites)):
                        q_outs = [run_block(layer, h, calls[b][i]) for b, h in enumerate(hidden)]
                    err = sig = upd = 0.0
                    for b in range(len(hidden)):
                        k = keep[b]
                        y, yq, x = outs[b][k].double(), q_outs[b][k].double(), hidden[b][k].double()
                        err += float(((yq - y) ** 2).sum())
                        sig += float((y**2).sum())
                        upd += float(((y - x) ** 2).sum())
                    wc = WarningCollector()
                    rel = err / sig if sig > 0 else math.nan
                    sqnr = 10 * math.log10(upd / err) if err > 0 and upd > 0 else math.nan
                    if err == 0:
                        wc.warn(f"{lang} {g.label}: quantization left the block output unchanged; SQNR infinite.",
                                DegenerateDataWarning)
                    elif upd == 0 or sig == 0:
                        wc.warn(f"{lang} {g.label}: zero block output or update; ratio undefined.", DegenerateDataWarning)
                    cond = {**DEFAULT_CONDITION, "scheme": sch.key, "sites": g.label}
                    attrs = {"items_sha256": sha, "n_items": len(lang_items), "first_changed_layer": g.first_layer}
                    for q, v in (("proxy.output_rel_mse", rel), ("proxy.output_sqnr_db", sqnr)):
                        recs.append(Measurement(
                            quantity=q, value=v, model=model_ref, language=lang, corpus=_corpus(lang_items),
                            condition=cond, attributes=attrs, n=n_tok,
                            warnings=wc.messages if math.isnan(v) or err == 0 else (),
                            routine="qdmodels.eval.proxies.output_error_proxies"))
                if i < last:
                    hidden = outs
    return recs


def fisher_proxies(
    loaded: Any,
    items: Sequence[ParallelItem] | Mapping[str, Sequence[ParallelItem]],
    scheme: Any,
    *,
    granularity: Granularity = "layer",
    layers: Sequence[int] | None = None,
    batch_size: int = 16,
) -> list[Measurement]:
    """Per site group and language: squared-gradient (diagonal Fisher) scores from one backward pass per language.

    Parameters
    ----------
    loaded : LoadedModel
    items : sequence of ParallelItem or dict language -> items
    scheme : QuantScheme or str
        Defines the perturbation ``Δw`` (RTN) of ``proxy.fisher_delta``.
    granularity, layers, batch_size
        As in :func:`output_error_proxies`.

    Returns
    -------
    list of Measurement
        ``proxy.fisher_diag`` and ``proxy.fisher_delta`` per (group, language); same condition and attributes as
        :func:`output_error_proxies`, ``n`` = scored tokens.

    Raises
    ------
    TypeError, ValueError
        Bad options or items.

    Notes
    -----
    ``g`` is the gradient of the summed NLL (nats) of every text token of the language's items (batches
    accumulate into one gradient; float32). ``fisher_delta = ½ Σ g² Δw²``: the diagonal of ``g gᵀ`` (the
    squared gradient) stands in for the Fisher, as in Fisher-based pruning/quantization saliency
    (LeCun et al. 1990's diagonal OBD form with an empirical Fisher). Gradients and ``requires_grad`` flags
    are restored afterwards. Validated against: ``torch.autograd.grad`` of the same loss on one site
    (tests, ``rtol=1e-5``); not independently validated as a sensitivity measure (see :func:`validate_proxies`).

    References
    ----------
    LeCun, Denker, Solla (1990). Optimal Brain Damage. NeurIPS 2.
    Kirkpatrick et al. (2017). Overcoming catastrophic forgetting (diagonal Fisher). doi:10.1073/pnas.1611835114.
    """
    from qdmodels.compress.rtn import fake_quantize
    from qdmodels.eval.sensitivity import site_groups
    from qdmodels.models.sites import site_map

    model, tokenizer, model_ref = resolve_model(loaded, None, None)
    flat = flatten_items(items)
    check_option(granularity, "granularity", ("layer", "component"))
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    sch = _scheme(scheme)
    groups = site_groups(model, granularity=granularity, layers=layers)
    smap = site_map(model)
    site_names = sorted({n for g in groups for n in g.sites})
    params = {n: smap.sites[n].param for n in site_names}
    deltas = {}
    for n in site_names:
        s = smap.sites[n]
        deltas[n] = (fake_quantize(s.param.data, sch, layout=s.weight_layout, where=f"site {n!r}").dequantized.float()
                     - s.param.data.float())
    all_params = list(model.parameters())
    old_flags = [p.requires_grad for p in all_params]
    old_grads = [p.grad for p in all_params]
    recs: list[Measurement] = []
    try:
        for p in all_params:
            p.requires_grad_(False)
            p.grad = None
        for p in params.values():
            p.requires_grad_(True)
        for lang, lang_items in iter_languages(flat):
            sha = content_hash(lang_items)
            batches = _lang_batches(model, tokenizer, lang_items, batch_size)
            for p in params.values():
                p.grad = None
            n_tok = 0
            with torch.enable_grad():
                for b in batches:
                    logits = model(input_ids=b.input_ids, attention_mask=b.attention_mask, use_cache=False).logits
                    tgt = b.input_ids[:, 1:].clone()
                    tgt[b.attention_mask[:, 1:] == 0] = -100
                    loss = torch.nn.functional.cross_entropy(logits[:, :-1].float().reshape(-1, logits.shape[-1]),
                                                             tgt.reshape(-1), ignore_index=-100, reduction="sum")
                    loss.backward()
                    n_tok += int((tgt != -100).sum())
            g2 = {n: (p.grad.double() ** 2 if p.grad is not None else torch.zeros_like(p, dtype=torch.float64))
                  for n, p in params.items()}
            for g in groups:
                diag = float(sum(float(g2[n].sum()) for n in g.sites))
                delta = float(sum(0.5 * float((g2[n] * deltas[n].double() ** 2).sum()) for n in g.sites))
                cond = {**DEFAULT_CONDITION, "scheme": sch.key, "sites": g.label}
                attrs = {"items_sha256": sha, "n_items": len(lang_items), "first_changed_layer": g.first_layer,
                         "fisher": "squared_gradient_of_summed_nll"}
                for q, v in (("proxy.fisher_diag", diag), ("proxy.fisher_delta", delta)):
                    recs.append(Measurement(quantity=q, value=v, model=model_ref, language=lang,
                                            corpus=_corpus(lang_items), condition=cond, attributes=attrs, n=n_tok,
                                            routine="qdmodels.eval.proxies.fisher_proxies"))
    finally:
        for p, f, gr in zip(all_params, old_flags, old_grads):
            p.requires_grad_(f)
            p.grad = gr
    return recs


def validate_proxies(
    proxy_records: Sequence[Record],
    measured_records: Sequence[Record],
    *,
    proxies: Sequence[str] | None = None,
    confidence_level: float = 0.95,
    ci_method: Literal["fisher-z", "bootstrap"] = "fisher-z",
    n_resamples: int = 9999,
    rng: int | np.random.Generator | None = 0,
) -> list[Measurement]:
    """Spearman rank correlation (with CI) between each proxy and measured Δ bits per byte, per language.

    Parameters
    ----------
    proxy_records : sequence of Measurement
        From :func:`output_error_proxies` / :func:`fisher_proxies`.
    measured_records : sequence of Measurement
        ``sens.delta_bits_per_byte`` records of :func:`qdmodels.eval.sensitivity.sweep_layers` for the same model,
        scheme, site groups and items (matched on language, ``condition['sites']`` and ``condition['scheme']``).
    proxies : sequence of str, optional
        Proxy quantities to validate (default: those present).
    confidence_level : float, default 0.95
    ci_method : {'fisher-z', 'bootstrap'}, default 'fisher-z'
        Passed to :func:`qdstats.correlation.corr` (Fisher-z with the Bonett-Wright standard error for Spearman).
    n_resamples : int, default 9999
        Bootstrap resamples when ``ci_method='bootstrap'``.
    rng : int or Generator, default 0
        Bootstrap seed.

    Returns
    -------
    list of Measurement
        One ``proxy.rank_corr_with_measured`` per (proxy, language): value = Spearman rho over site groups,
        ``n`` = groups, ``condition`` = ``{scheme, proxy}``; ``attributes``: ``ci_low``, ``ci_high``, ``ci_level``,
        ``ci_method``, ``pvalue``, ``expected_sign`` (+1: a larger proxy should mean a larger Δ), ``model_id``.
        Warnings of ``corr`` (few groups, constant input) travel into ``warnings``.

    Raises
    ------
    ValueError
        No proxy or no measured records; proxies from different schemes than the measurements; unknown proxy.

    Notes
    -----
    Groups are the units (e.g. 30 layers of SmolLM2): with few groups the CI is wide and ``corr`` warns. The
    p-value tests rho = 0 (two-sided); a screening proxy should have a rho of the expected sign whose CI
    excludes 0. Validated against: :func:`qdstats.correlation.corr` (itself validated against R ``cor.test``).
    """
    from qdstats.correlation import corr

    confidence_level = check_confidence_level(confidence_level)
    check_option(ci_method, "ci_method", ("fisher-z", "bootstrap"))
    meas: dict[tuple[str, str, str], float] = {}
    models: set[str] = set()
    for r in measured_records:
        if isinstance(r, Measurement) and r.quantity == "sens.delta_bits_per_byte":
            meas[(str(r.language), str(r.condition.get("sites")), str(r.condition.get("scheme")))] = r.value
            if r.model is not None:
                models.add(r.model.model_id)
    if not meas:
        raise ValueError("`measured_records` has no 'sens.delta_bits_per_byte' records (run sensitivity.sweep_layers).")
    prox: dict[tuple[str, str], dict[str, float]] = {}
    for r in proxy_records:
        if isinstance(r, Measurement) and r.quantity in EXPECTED_SIGN:
            prox.setdefault((r.quantity, str(r.language)), {})[f"{r.condition.get('sites')}|{r.condition.get('scheme')}"] = r.value
    if not prox:
        raise ValueError(f"`proxy_records` has no proxy records ({', '.join(PROXY_QUANTITIES)}).")
    wanted = list(proxies) if proxies is not None else sorted({q for q, _ in prox})
    for q in wanted:
        check_option(q, "proxies", PROXY_QUANTITIES)
    out: list[Measurement] = []
    for (q, lang), vals in sorted(prox.items()):
        if q not in wanted:
            continue
        xs, ys, scheme_keys = [], [], set()
        for key, v in sorted(vals.items()):
            sites, scheme = key.split("|", 1)
            m = meas.get((lang, sites, scheme))
            if m is not None:
                xs.append(v)
                ys.append(m)
                scheme_keys.add(scheme)
        if not xs:
            raise ValueError(f"no measured Δ bits per byte matches proxy {q!r} for {lang} (same sites and scheme needed).")
        res = corr(np.array(xs), np.array(ys), method="spearman", confidence_level=confidence_level,
                   nan_policy="omit", ci_method=ci_method, n_resamples=n_resamples, rng=rng)
        attrs = {**ci_attributes(res.ci), "pvalue": res.pvalue, "expected_sign": EXPECTED_SIGN[q],
                 "model_id": ",".join(sorted(models)) or None}
        attrs = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in attrs.items()}
        out.append(Measurement(
            quantity="proxy.rank_corr_with_measured", value=float(res.estimate), language=lang,
            condition={"scheme": ",".join(sorted(scheme_keys)), "proxy": q}, attributes=attrs, n=res.n,
            warnings=tuple(res.warnings), routine="qdmodels.eval.proxies.validate_proxies"))
    return out
