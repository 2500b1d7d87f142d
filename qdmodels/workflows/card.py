"""``qd card MODEL``: a per-language disparity card (card.html, card.md, card.json and the records) within a time budget.

:func:`make_card` loads a model, orders each language's items so that every prefix is spread over the corpus's
documents (deterministic for a seed), and adds items per language in rounds until the difference-in-differences CI
half-width of every condition is below ``target`` (default 0.03 bit/byte) or the budget is spent. Each round scores
only the new items under every condition (:func:`qdmodels.eval.scoring.evaluate_conditions`); a language that reached
the target gets no more items, and the reference gets as many as the largest other language (every difference in
differences is computed on the items a language shares with the reference,
:func:`qdstats.report.card.pairwise_did_table`). Then the tokenizer premium (:func:`qdmodels.tokenization.parity.
parity_table`) and, when asked, a layer sensitivity map (output-error proxy or measured sweep) are added, and
:func:`qdstats.report.card.write_card` renders the card. Time per stage is recorded in ``card.json``.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from qdstats.records import Record, write_records
from qdstats.validation import check_int, check_option

from qdmodels.compress.conditions import QUANT_BACKENDS
from qdmodels.workflows.demo import DEFAULT_LANGUAGES, load_demo_corpus

__all__ = ["CardRun", "DEFAULT_RTN", "default_conditions", "make_card", "next_sizes", "spread_order"]

#: the RTN ladder of the card (g64: divides every SmolLM2 and Gemma-3-270M row)
DEFAULT_RTN: tuple[str, ...] = ("int8-g64-sym", "int4-g64-sym", "int3-g64-sym")
_DEPLOYED_WANTED: tuple[str, ...] = ("gguf-q8_0", "gguf-q4_0")
Sensitivity = Literal["none", "proxy", "sweep"]


def default_conditions() -> tuple[str, ...]:
    """fp32 is implicit; the RTN ladder plus the deployed formats that quantize in-process here.

    The deployed formats are those of :data:`qdmodels.compress.gguf.GGUF_TYPES` (the formats gguf-py can quantize);
    a format missing from it is left out rather than failing mid-run.
    """
    from qdmodels.compress.gguf import GGUF_TYPES

    runnable = {f"gguf-{t}" for t in GGUF_TYPES}
    return DEFAULT_RTN + tuple(k for k in _DEPLOYED_WANTED if k in runnable)


def spread_order(items: Sequence[Any], *, seed: int) -> list[Any]:
    """Items reordered so that every prefix is spread over the documents: documents in a seeded random order, the
    sentences of each document in a seeded random order, then one sentence per document in turn (round robin).

    Examples
    --------
    >>> from types import SimpleNamespace as S
    >>> its = [S(item_id=f"d{d}.{k}", document_id=f"d{d}") for d in range(3) for k in range(2)]
    >>> sorted({x.document_id for x in spread_order(its, seed=0)[:3]})
    ['d0', 'd1', 'd2']
    """
    rng = np.random.default_rng(seed)
    docs: dict[str, list[Any]] = {}
    for it in items:
        docs.setdefault(str(getattr(it, "document_id", None) or it.item_id), []).append(it)
    names = list(docs)
    order = [names[i] for i in rng.permutation(len(names))]
    queues = [[docs[d][i] for i in rng.permutation(len(docs[d]))] for d in order]
    out: list[Any] = []
    depth = 0
    while len(out) < len(items):
        for q in queues:
            if depth < len(q):
                out.append(q[depth])
        depth += 1
    return out


def next_sizes(n: dict[str, int], half_width: dict[str, float], *, target: float, pool: dict[str, int],
               reference: str, min_step: int = 8, growth: float = 2.0) -> dict[str, int]:
    """Items per language for the next round.

    A language whose widest DiD half-width is at most ``target`` (or whose pool is used up) keeps its items;
    otherwise it grows to ``n · (hw / target)² · 1.1`` (the 1/√n law with 10% margin), at least ``n + min_step`` and at
    most ``growth · n``, capped by its pool. The reference gets the largest size of any language.

    Examples
    --------
    >>> next_sizes({"eng": 16, "kor": 16, "heb": 16}, {"kor": 0.06, "heb": 0.02}, target=0.03,
    ...            pool={"eng": 100, "kor": 100, "heb": 100}, reference="eng")
    {'eng': 32, 'kor': 32, 'heb': 16}
    """
    out: dict[str, int] = {}
    for lang, k in n.items():
        if lang == reference:
            continue
        hw = half_width.get(lang, math.inf)
        if hw <= target or k >= pool[lang]:
            out[lang] = k
            continue
        want = k * (hw / target) ** 2 * 1.1 if math.isfinite(hw) else growth * k
        out[lang] = int(min(pool[lang], max(k + min_step, min(math.ceil(want), math.ceil(growth * k)))))
    out[reference] = min(pool[reference], max([n[reference], *out.values()]))
    return {lang: out[lang] for lang in n}


class _StageClock:
    """Seconds per stage (load, quantize, score, statistics, tokenizer, sensitivity, render)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def stage(self, name: str) -> Any:
        t = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t


def _timed(cond: Any, clock: _StageClock) -> Any:
    """The same condition, with the time spent applying and restoring it counted as 'quantize'."""
    from qdmodels.compress.conditions import EvalCondition

    if cond.apply is None:
        return cond

    @contextlib.contextmanager
    def apply(model: Any) -> Any:
        with clock.stage("quantize"):  # some conditions convert the weights when called, others on __enter__
            cm = cond.apply(model)
            rep = cm.__enter__()
        try:
            yield rep
        finally:
            with clock.stage("quantize"):
                cm.__exit__(None, None, None)

    return EvalCondition(cond.condition, apply, cond.check)


@dataclass
class CardRun:
    """What :func:`make_card` produced."""

    out_dir: Path
    html: Path
    markdown: Path
    json: Path
    records_path: Path
    n_records: int
    seconds: float
    stages: dict[str, float]
    rounds: list[dict[str, Any]]
    stop_reason: str
    precision: Any
    headlines: list[str] = field(default_factory=list)


def make_card(
    model: str = "smollm2-135m",
    *,
    corpus: str = "ntrex128",
    languages: Sequence[str] = DEFAULT_LANGUAGES,
    extra_languages: Sequence[str] = (),
    quants: Sequence[str] | None = None,
    reference: str = "eng_Latn",
    target: float = 0.03,
    budget_minutes: float = 12.0,
    initial_items: int = 16,
    max_items: int | None = None,
    split: str | None = "test",
    sensitivity: Sensitivity = "proxy",
    sensitivity_items: int = 4,
    claims_table: str | os.PathLike[str] | None = "analyses/claims_table/claims_table.json",
    claims_specs: str | os.PathLike[str] | None = "analyses/claims",
    out_dir: str | os.PathLike[str] = "qd-card",
    batch_size: int = 8,
    max_batch_tokens: int | None = 512,
    n_resamples: int = 2000,
    seed: int = 0,
    data_dir: str | os.PathLike[str] | None = None,
    revision: str | None = None,
    device: str = "auto",
    dtype: str = "float32",
    loaded: Any = None,
    log: Callable[[str], None] = print,
) -> CardRun:
    """Measure and write a disparity card.

    Parameters
    ----------
    model : str, default 'smollm2-135m'
        Embedded name, GGUF file, local folder or HF id (:func:`qdmodels.models.loading.load_model`); ignored when
        ``loaded`` is given.
    corpus : str, default 'ntrex128'
        ``ntrex128`` (data directory), ``dataset_build`` or your own file/folder/``hf:`` corpus (as ``qd demo``).
    languages, extra_languages : sequence of str
        Normalized codes; default the 8 languages of the claims table, plus any extra ones.
    quants : sequence of str, optional
        Condition keys (default :func:`default_conditions`: INT8/INT4/INT3 RTN g64 and GGUF Q8_0/Q4_0); fp32 is
        always the baseline.
    reference : str, default 'eng_Latn'
    target : float, default 0.03
        DiD CI half-width (bit/byte) at which a language gets no more items.
    budget_minutes : float, default 12
        Wall-time budget including model load; a round that would not fit is shrunk or skipped.
    initial_items : int, default 16
        Items per language in the first round.
    max_items : int, optional
        Cap of items per language (default: the whole split).
    sensitivity : {'none', 'proxy', 'sweep'}, default 'proxy'
        Layer × language map: the output-error proxy (:func:`qdmodels.eval.proxies.output_error_proxies`, cheap,
        not validated as a screen) or a measured per-layer sweep (:func:`qdmodels.eval.sensitivity.sweep_layers`,
        slow); on ``sensitivity_items`` items per language, under the INT4 condition (else the first).
    claims_table, claims_specs : path, optional
        The committed claims table and its specs (the card lists the claims its data touch); None skips.
    out_dir : path
        Writes ``records.jsonl``, ``card.html``, ``card.md``, ``card.json`` and ``figures/``.
    batch_size, max_batch_tokens, n_resamples, seed, data_dir, revision, device, dtype
        As in :func:`qdmodels.workflows.demo.run_demo`.
    loaded : LoadedModel, optional
        An already loaded model (tests use tiny models).

    Returns
    -------
    CardRun

    Notes
    -----
    Deterministic for a seed and a given number of rounds; the budget can change how many rounds run on a slower
    machine (the card states the rounds and the achieved precision). Validated against: the pieces it composes
    (scoring, :mod:`qdstats.disparity`); the adaptive rule is tested on planted data.
    """
    from qdmodels.compress.conditions import as_condition
    from qdmodels.corpora.languages import NTREX_LANGUAGES
    from qdmodels.eval.scoring import evaluate_conditions
    from qdstats.report.card import build_card_data, claims_touched, write_card
    from qdstats.report.headlines import DecisionRule

    check_option(sensitivity, "sensitivity", ("none", "proxy", "sweep"))
    initial_items = check_int(initial_items, "initial_items", minimum=2)
    if not (isinstance(target, (int, float)) and target > 0):
        raise ValueError(f"`target` must be a positive number of bit/byte; got {target!r}.")
    if not (isinstance(budget_minutes, (int, float)) and budget_minutes > 0):
        raise ValueError(f"`budget_minutes` must be positive; got {budget_minutes!r}.")
    langs = list(dict.fromkeys([reference, *languages, *extra_languages]))
    keys = list(dict.fromkeys(quants if quants else default_conditions()))
    conds = [as_condition("fp32"), *(as_condition(k) for k in keys)]
    t0 = time.perf_counter()
    budget = 60.0 * float(budget_minutes)
    clock = _StageClock()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with clock.stage("load"):
        if loaded is None:
            from qdmodels.models.loading import load_model

            log(f"loading model {model} ...")
            loaded = load_model(model, revision=revision, device=device, dtype=dtype)  # type: ignore[arg-type]
    for c in conds:  # a condition that cannot apply fails now, before any scoring
        if c.check is not None:
            c.check(loaded.model)
    with clock.stage("corpus"):
        if corpus == "ntrex128":  # the whole split; spread_order below decides which items come first
            from qdmodels.corpora.ntrex import load_ntrex

            pc = load_ntrex(langs, split=split or "test", data_dir=data_dir)  # type: ignore[arg-type]
            items = {k: list(v) for k, v in pc.items.items()}
            parallel, corpus_notes = True, ()
        else:
            items, parallel, corpus_notes = load_demo_corpus(corpus, langs, limit=max_items or 10**9, split=split,
                                                             data_dir=data_dir)
    missing = [lang for lang in langs if not items.get(lang)]
    if missing:
        raise ValueError(f"`languages` {missing} have no items in corpus {corpus!r}.")
    if parallel:
        order = [it.item_id for it in spread_order(items[reference], seed=seed)]
        pos = {i: k for k, i in enumerate(order)}
        pools = {lang: sorted(its, key=lambda it: pos.get(it.item_id, len(pos))) for lang, its in items.items()}
    else:
        pools = {lang: spread_order(its, seed=seed) for lang, its in items.items()}
    if max_items:
        pools = {lang: v[:max_items] for lang, v in pools.items()}
    pool_n = {lang: len(v) for lang, v in pools.items()}
    timed = [_timed(c, clock) for c in conds]
    records: list[Record] = []
    n = {lang: 0 for lang in langs}
    want = {lang: min(initial_items, pool_n[lang]) for lang in langs}
    rounds: list[dict[str, Any]] = []
    stop = "target reached for every language"
    # cost model of a round: a fixed part (quantizing the model once per condition, the statistics over every record so
    # far) plus scoring time proportional to the new bytes; a per-byte rate that folded the fixed part in would make a
    # small first round look far too slow and end the card early
    sec_per_byte: float | None = None
    fixed_round = 0.0
    half: dict[str, float] = {}
    card_prec = None
    reserve = 20.0 + (0.0 if sensitivity == "none" else 30.0)
    while True:
        new = {lang: pools[lang][n[lang]:want[lang]] for lang in langs if want[lang] > n[lang]}
        if not new:
            if any(n[lang] >= pool_n[lang] for lang in langs if lang != reference and half.get(lang, 0) > target):
                stop = "corpus exhausted before the target"
            break
        nbytes = sum(len(it.text.encode("utf-8")) for v in new.values() for it in v)
        elapsed = time.perf_counter() - t0
        if sec_per_byte is not None:
            room = budget - reserve - elapsed
            if room <= 0:
                stop = "budget spent"
                break
            need = fixed_round + sec_per_byte * nbytes
            if need > room:  # shrink the round to what fits after its fixed cost
                frac = max(room - fixed_round, 0.0) / max(sec_per_byte * nbytes, 1e-12)
                new = {lang: v[:int(len(v) * frac)] for lang, v in new.items()}
                new = {lang: v for lang, v in new.items() if v}
                if not new or sum(len(v) for v in new.values()) < 2:
                    stop = "budget spent"
                    break
                nbytes = sum(len(it.text.encode("utf-8")) for v in new.values() for it in v)
                stop = "budget spent"
        log(f"round {len(rounds) + 1}: {sum(len(v) for v in new.values())} new items "
            f"({', '.join(f'{k} +{len(v)}' for k, v in new.items())})")
        t_round = time.perf_counter()
        q_before = clock.seconds.get("quantize", 0.0)
        res = evaluate_conditions(loaded, new, timed, batch_size=batch_size, max_batch_tokens=max_batch_tokens,
                                  progress=False)
        t_eval = time.perf_counter() - t_round
        t_quant = clock.seconds.get("quantize", 0.0) - q_before
        clock.seconds["score"] = clock.seconds.get("score", 0.0) + t_eval - t_quant
        sec_per_byte = max(t_eval - t_quant, 0.0) / max(nbytes, 1)
        s_before = clock.seconds.get("statistics", 0.0)
        records += [r for er in res.values() for r in er.records]
        for lang, v in new.items():
            n[lang] += len(v)
        with clock.stage("statistics"):
            from qdstats.report.card import pairwise_did_table, precision_table

            did = pairwise_did_table(records, reference=reference, n_resamples=n_resamples, rng=seed)
            card_prec = precision_table(did, reference=reference, target=target)
        half = {str(r["language"]): float(r["max_half_width"]) for _, r in card_prec.iterrows()
                if r["language"] != reference}
        fixed_round = t_quant + (clock.seconds.get("statistics", 0.0) - s_before)
        rounds.append({"round": len(rounds) + 1, "items": dict(n), "seconds": time.perf_counter() - t_round,
                       "max_half_width": dict(half)})
        if stop == "budget spent":
            break
        want = next_sizes(n, half, target=target, pool=pool_n, reference=reference)
    records_path = out / "records.jsonl"
    # tokenizer premium and bytes per token on the measured items
    with clock.stage("tokenizer"):
        from qdmodels.tokenization.loading import load_tokenizer
        from qdmodels.tokenization.parity import parity_table

        measured = {lang: pools[lang][:n[lang]] for lang in langs if n[lang]}
        tok_recs = parity_table(load_tokenizer(loaded.tokenizer, name=loaded.ref.model_id), measured,
                                reference=reference, n_resamples=0)
        records += tok_recs
    sens_q = None
    sens_label = ""
    sens_unit = ""
    omitted: dict[str, str] = {}
    # proxies and layer sweeps take round-to-nearest keys only (a backend format has no per-block fake quantizer)
    rtn = [k for k in keys if not k.startswith(tuple(QUANT_BACKENDS))]
    scheme = next((k for k in rtn if k.startswith("int4")), next(iter(rtn), None))
    if sensitivity != "none" and scheme is not None:
        few = {lang: pools[lang][:min(sensitivity_items, pool_n[lang])] for lang in langs}
        with clock.stage("sensitivity"):
            if sensitivity == "proxy":
                from qdmodels.eval.proxies import output_error_proxies

                records += output_error_proxies(loaded, few, scheme, batch_size=batch_size)
                sens_q, sens_unit = "proxy.output_rel_mse", "relative MSE, lang − ref"
                sens_label = (f"Output-error proxy (relative MSE of each block's output when only that block is "
                              f"quantized to {scheme}), language minus {reference}, {sensitivity_items} items per "
                              "language. A screening proxy, NOT validated: its rank correlation with measured "
                              "per-layer Δ was −0.06 to 0.11 on SmolLM2 (docs/calibration.md). Use --sensitivity "
                              "sweep for the measured map.")
            else:
                from qdmodels.eval.sensitivity import sweep_layers

                sw = sweep_layers(loaded, few, scheme, batch_size=batch_size, progress=False)
                records += list(sw.records)
                sens_q, sens_unit = "sens.delta_bits_per_byte", "bit/byte, DiD vs ref"
                sens_label = (f"Measured per-layer difference in differences: Δ bit/byte when only that layer is "
                              f"quantized to {scheme}, language minus {reference} ({sensitivity_items} items per "
                              "language; point estimates).")
    elif sensitivity == "none":
        omitted["sensitivity"] = "not asked (--sensitivity none)."
    write_records(records_path, records, mode="w")
    claims_df = None
    if claims_table is not None and claims_specs is not None and Path(claims_table).exists():
        from qdstats.claims.spec import load_specs
        from qdstats.report.render import claims_frame

        claims_df = claims_touched(claims_frame(claims_table), load_specs(claims_specs), conditions=keys,
                                   languages=langs, family=loaded.ref.family)
    else:
        omitted["claims"] = f"claims table not found ({claims_table})."
    names = {code: info.name for info in NTREX_LANGUAGES.values() for code in [info.code]}
    names.setdefault("eng_Latn", "English")
    names["eng_Latn"] = "English"
    caveats = list(corpus_notes)
    if loaded.ref.note:
        caveats.append(f"Model: {loaded.ref.note}. INT4/INT3 here re-quantize weights that already lie near a 4-bit "
                       "grid; GGUF formats are fake-quantized (round-tripped through gguf-py) in fp32 compute.")
    if stop == "budget spent":
        caveats.append(f"The budget ({budget_minutes:g} min) ended the measurement before every language reached the "
                       f"target half-width {target:g}; see the precision table.")
    if not parallel:
        caveats.append("The corpus is not parallel: languages are resampled independently (topic-matched, not the "
                       "same sentences).")
    ref_name = names.get(reference, reference)
    with clock.stage("render"):
        card = build_card_data(
            records, title=f"Disparity card: {loaded.ref.model_id} on {corpus}", reference=reference, target=target,
            rule=DecisionRule(margin=target), names=names, sensitivity_quantity=sens_q, sensitivity_label=sens_label,
            sensitivity_unit=sens_unit, claims=claims_df, caveats=caveats, omitted=omitted, n_resamples=n_resamples,
            rng=seed,
            meta={"summary_lines": [
                f"Model {loaded.ref.model_id} (sha256 {str(loaded.ref.sha256)[:12]}…, {loaded.ref.dtype}); corpus "
                f"{corpus}{'' if split is None else ' split ' + split}; reference {ref_name}.",
                f"Conditions: fp32 baseline, {', '.join(keys)}. Languages: {', '.join(langs)}.",
                f"Adaptive sample: {len(rounds)} round(s), stop: {stop}."],
                "precision_note": (f"Items were added per language (spread over documents, seed {seed}) until the "
                                   f"widest DiD CI half-width over the conditions was ≤ {target:g} bit/byte or the "
                                   f"budget of {budget_minutes:g} min was spent ({stop})."),
                "claims_note": ("Rows of the committed claims table (analyses/claims_table, 200 NTREX test sentences "
                                "per language) whose test uses only these conditions, languages and model family; "
                                "the last column is this card's own estimate on its own items."),
                "provenance_items": {"model": f"{loaded.ref.model_id} ({loaded.ref.source}, sha256 {loaded.ref.sha256})",
                                     "device": str(getattr(loaded.ref, "device", None) or device),
                                     "records": str(records_path), "seed": str(seed),
                                     "rounds": "; ".join(f"{r['round']}: {sum(r['items'].values())} items, "
                                                         f"{r['seconds']:.0f} s" for r in rounds)},
                "stages_seconds": clock.seconds, "rounds": rounds, "stop_reason": stop,
                "budget_minutes": budget_minutes})
        res = write_card(card, out)
    return CardRun(out_dir=out, html=res.html, markdown=res.markdown, json=res.json, records_path=records_path,
                   n_records=len(records), seconds=time.perf_counter() - t0, stages=dict(clock.seconds),
                   rounds=rounds, stop_reason=stop, precision=card.precision,
                   headlines=[h.sentence for h in card.headlines])
