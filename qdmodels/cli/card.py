"""`qd card MODEL`: a per-language disparity card (card.html, card.md, card.json, records.jsonl) within a budget.

Progress and notes go to stderr; the headline sentences to stdout. Exit codes: 0 ok, 1 failed run, 2 usage or
validation error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qdmodels.cli import _common as c

__all__ = ["card", "register"]

_LANGS = "eng_Latn,deu_Latn,fin_Latn,tur_Latn,heb_Hebr,arb_Arab,kor_Hang,zho_Hans"


def card(
    model_arg: Annotated[str | None, typer.Argument(metavar="MODEL", help="Same as --model.")] = None,
    model: c.ModelOpt = "smollm2-135m",
    corpus: c.CorpusOpt = "ntrex128",
    langs: c.LangsOpt = "",
    reference: c.ReferenceOpt = "eng_Latn",
    quant: c.QuantsOpt = None,
    budget_minutes: Annotated[float, typer.Option(
        "--budget-minutes", min=0.1, help="Wall-time budget including model load.")] = 12.0,
    target: Annotated[float, typer.Option(
        "--target", min=0.0001, help="DiD CI half-width (bit/byte) at which a language gets no more items.")] = 0.03,
    sensitivity: Annotated[str, typer.Option(
        "--sensitivity", help="Layer map: proxy (cheap, not validated), sweep (measured, slow) or none.")] = "proxy",
    limit: c.LimitOpt = None,
    split: c.TestSplitOpt = None,
    out: c.OutDirOpt = Path("qd-card"),
    batch_size: c.BatchOpt = 8,
    max_batch_tokens: c.MaxBatchTokensOpt = 512,
    n_resamples: c.NResamplesOpt = c.N_RESAMPLES,
    seed: c.SeedOpt = 0,
    revision: c.RevisionOpt = None,
    device: c.DeviceOpt = "auto",
    dtype: c.DTypeOpt = "float32",
    data_dir: c.DataDirOpt = None,
    progress: c.ProgressOpt = True,
) -> None:
    """A disparity card: which languages lose more than English under which compression, and how sure we are.

    Default conditions: fp32 baseline, INT8/INT4/INT3 (RTN g64) and the deployed GGUF formats that run here
    (Q8_0, Q4_0); default languages: the 8 of the claims table plus --langs. Items are added per language until the
    DiD CI half-width is below --target or --budget-minutes is spent. --limit caps the items per language.
    --out is a directory: card.html, card.md, card.json, records.jsonl and figures/ in it are replaced.

    Examples:

      qd card smollm2-135m
      qd card gemma3-270m --budget-minutes 45 --out cards/gemma3
      qd card smollm2-135m --quant int4-g64-sym,gguf-q4_0 --langs swh_Latn --out cards/smollm2-swahili
      qd card ./my-model --corpus my_sentences.tsv --sensitivity none
    """
    log = c.stage_logger(progress)

    def run():  # type: ignore[no-untyped-def]
        from qdstats.validation import check_option

        from qdmodels.workflows.card import make_card

        check_option(sensitivity, "--sensitivity", ("none", "proxy", "sweep"))
        if model_arg is not None and model != "smollm2-135m" and model_arg != model:
            raise ValueError(f"MODEL {model_arg!r} and `--model` {model!r} disagree; give one.")
        name = model_arg or model
        c.check_out_dir(out)
        embedded = corpus in ("dataset_build", "ntrex128")
        ref = c.language(reference) if embedded else c.corpus_languages(reference, "--reference")[0]  # type: ignore[index]
        extra = [] if not langs else (c.languages(langs) if embedded else c.corpus_languages(langs) or [])
        base = c.languages(_LANGS) if embedded else c.corpus_languages(_LANGS) or []
        return make_card(name, corpus=corpus, languages=base, extra_languages=extra, reference=ref,
                         quants=c.schemes(quant) or None, target=target, budget_minutes=budget_minutes,
                         max_items=limit, split=c.corpus_split(corpus, split, "test"), sensitivity=sensitivity,  # type: ignore[arg-type]
                         out_dir=out, batch_size=batch_size, max_batch_tokens=max_batch_tokens or None,
                         n_resamples=n_resamples, seed=seed, data_dir=data_dir, revision=revision, device=device,
                         dtype=dtype, log=log)

    res = c.guard(run)
    for h in res.headlines:
        c.echo(h)
    c.err(f"stop: {res.stop_reason}; {len(res.rounds)} round(s) in {res.seconds:.0f} s "
          f"({', '.join(f'{k} {v:.0f} s' for k, v in res.stages.items())})")
    for p in (res.html, res.markdown, res.json, res.records_path):
        c.err(f"wrote {p}")


def register(app: typer.Typer) -> None:
    """Add `card` to the main app."""
    app.command("card")(card)
