"""`qd tokenize parity`: tokenizer parity metrics per language on parallel text, saved as records.

Exit codes: 0 ok; 2 usage or validation error (unknown tokenizer, language or corpus, missing data).
Records go to ``--out`` (JSONL); a summary table goes to stderr.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Tokenizer measurements: parity across languages on parallel text.")


@app.callback()
def _group() -> None:
    """Tokenizer measurements (a command group, so ``qd tokenize parity`` keeps its name)."""


def _err(msg: str) -> None:
    typer.echo(msg, err=True)


@app.command("parity")
def parity_cmd(
    tokenizer: Annotated[str, typer.Option("--tokenizer", "-t", help="Short name (gpt2, llama2, llama3, qwen3, gemma3), tokenizer.json, encoder.json or a directory.")],
    out: Annotated[Path, typer.Option("--out", help="Output JSONL file for the records (replaced).")],
    corpus: Annotated[str, typer.Option("--corpus", help="Parallel corpus; only 'ntrex128' is supported.")] = "ntrex128",
    langs: Annotated[str | None, typer.Option("--langs", help="Comma-separated NTREX or normalized codes (default: all 128). The reference is added if missing.")] = None,
    reference: Annotated[str, typer.Option("--reference", help="Reference language for the premium (NTREX code).")] = "eng",
    split: Annotated[str, typer.Option("--split", help="'dev', 'test' or 'all' (document-level split).")] = "all",
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="First N items per language (smoke runs).")] = None,
    n_resamples: Annotated[int, typer.Option("--n-resamples", min=0, help="Cluster-bootstrap resamples (documents) for the premium CI; 0 = none.")] = 0,
    seed: Annotated[int, typer.Option("--seed", help="Bootstrap seed.")] = 0,
    name: Annotated[str | None, typer.Option("--name", help="Tokenizer name in the records (default: short/dir name).")] = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Data directory (else $QD_DATA_DIR, else the user cache).")] = None,
) -> None:
    """Tokens per sentence, premium vs English, bytes/chars per token, UNK / byte-fallback / partial-character
    fractions and fertility, per language."""
    import math
    import warnings

    from qdmodels.tokenization import load_tokenizer, parity_frame, parity_table
    from qdstats._validation import UnknownNameError
    from qdstats.records import write_records

    if corpus != "ntrex128":
        _err(f"error: `--corpus` must be 'ntrex128'; got {corpus!r}.")
        raise typer.Exit(2)
    try:
        from qdmodels.corpora.manifest import get_manifest
        from qdmodels.corpora.ntrex import load_ntrex

        tok = load_tokenizer(tokenizer, name=name)
        if langs:
            keys = [x.strip() for x in langs.split(",") if x.strip()]
        else:
            keys = [le.source_code for le in get_manifest("ntrex128").languages]
        if reference not in keys:
            keys = [reference, *keys]
        pc = load_ntrex(keys, split=split, limit=limit, data_dir=data_dir)  # type: ignore[arg-type]
        items = {k: pc.items[k] for k in keys}
    except (UnknownNameError, ValueError, FileNotFoundError, TypeError) as exc:
        _err(f"error: {exc}")
        raise typer.Exit(2) from None
    _err(f"tokenizer {tok.name} ({tok.kind}, sha256 {tok.ref.sha256[:12]}...), {len(items)} languages, "
         f"{len(items[reference])} items each")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # every warning is also in the records' `warnings`
        recs = parity_table(tok, items, reference=reference, n_resamples=n_resamples, rng=seed)
    n = write_records(out, recs, mode="w")
    df = parity_frame(recs).reset_index().sort_values("premium_vs_reference")
    for _, r in df.iterrows():
        fert = r.get("fertility", math.nan)
        _err(f"{r['label']:<10} premium {r['premium_vs_reference']:.3f}  tokens/sent {r['tokens_per_sentence']:.1f}  "
             f"bytes/token {r['bytes_per_token']:.2f}  fertility {'n/a' if math.isnan(fert) else f'{fert:.2f}'}")
    _err(f"wrote {n} records to {out}")
