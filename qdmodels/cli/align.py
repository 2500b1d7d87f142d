"""`qd align`: morpheme-boundary alignment of a tokenizer against a gold segmentation, saved as records.

``qd align --tokenizer T --gold NAME --out F.jsonl``. Gold names: a UD treebank id with segmentation
(``ud_hebrew_iahltwiki``, ``ud_hebrew_htb``, ``ud_korean_kaist``, ``ud_korean_pud``; sentences, so both modes
work), or a word list ``morpho_challenge_2010:<eng|fin|tur>`` / ``sigmorphon2022:<eng|fra>`` (isolated words only).
Exit codes: 0 ok; 2 usage or validation error. Per-word records and per-language aggregates (with
cluster-bootstrap CIs, cluster = sentence) go to ``--out``; the aggregates are also printed to stderr.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False,
                  help="Morpheme-boundary alignment of a tokenizer against gold segmentations.")

_WORDLISTS = ("morpho_challenge_2010", "sigmorphon2022")


def _err(msg: str) -> None:
    typer.echo(msg, err=True)


def _load_gold(gold: str, split: str | None, limit: int | None, data_dir: Path | None):
    """(sentences or words, corpus ref, is_sentences)."""
    if ":" in gold:
        name, lang = gold.split(":", 1)
        if name not in _WORDLISTS:
            raise ValueError(f"`--gold` word list must be one of {list(_WORDLISTS)} followed by ':<language>'; got {gold!r}.")
        from qdmodels.corpora.morphology import (
            load_morpho_challenge,
            load_sigmorphon2022,
        )

        if name == "morpho_challenge_2010":
            gs = load_morpho_challenge(lang, split=split or "combined", data_dir=data_dir)  # type: ignore[arg-type]
        else:
            gs = load_sigmorphon2022(lang, split=split or "dev", data_dir=data_dir)  # type: ignore[arg-type]
        words = list(gs.words)[:limit] if limit else list(gs.words)
        return words, gs.corpus, False
    from qdmodels.corpora.ud import load_conllu

    sents = load_conllu(gold, split or "test", limit=limit, data_dir=data_dir)  # type: ignore[arg-type]
    return sents, (sents[0].corpus if sents else None), True


@app.callback(invoke_without_command=True)
def align_cmd(
    tokenizer: Annotated[str, typer.Option("--tokenizer", "-t", help="Short name (gpt2, llama2, llama3, qwen3, gemma3), tokenizer.json, encoder.json or a directory.")],
    gold: Annotated[str, typer.Option("--gold", help="UD treebank id (e.g. ud_hebrew_iahltwiki) or morpho_challenge_2010:<lang> / sigmorphon2022:<lang>.")],
    out: Annotated[Path, typer.Option("--out", help="Output JSONL file (replaced): per-word records, then aggregates.")],
    mode: Annotated[str | None, typer.Option("--mode", help="'context' (default for treebanks) or 'isolated' (default and only option for word lists).")] = None,
    split: Annotated[str | None, typer.Option("--split", help="Treebank split (dev/test, default test); word lists: MC2010 train/dev/combined (default combined), SIGMORPHON dev/test (default dev).")] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="First N sentences (treebanks) or words (word lists).")] = None,
    n_resamples: Annotated[int, typer.Option("--n-resamples", min=0, help="Cluster-bootstrap resamples for the aggregates; 0 = none.")] = 999,
    seed: Annotated[int, typer.Option("--seed", help="Bootstrap seed.")] = 0,
    name: Annotated[str | None, typer.Option("--name", help="Tokenizer name in the records.")] = None,
    summary_only: Annotated[bool, typer.Option("--summary-only", help="Write only the per-language aggregates (small files).")] = False,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Data directory (else $QD_DATA_DIR, else the user cache).")] = None,
) -> None:
    """Per-word boundary precision / recall / F1 / MorphScore and per-language aggregates with CIs."""
    import math
    import warnings

    from qdmodels.tokenization import (
        align_morphemes,
        alignment_records,
        alignment_summary,
        load_tokenizer,
    )
    from qdstats._validation import UnknownNameError
    from qdstats.records import write_records

    try:
        tok = load_tokenizer(tokenizer, name=name)
        data, corpus_ref, is_sents = _load_gold(gold, split, limit, data_dir)
        m = mode or ("context" if is_sents else "isolated")
        alignments = align_morphemes(tok, data, mode=m)  # type: ignore[arg-type]
    except (UnknownNameError, ValueError, FileNotFoundError, TypeError) as exc:
        _err(f"error: {exc}")
        raise typer.Exit(2) from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # copied into the records' `warnings`
        words = [] if summary_only else alignment_records(tok, alignments, corpus=corpus_ref)
        summary = alignment_summary(tok, alignments, corpus=corpus_ref, n_resamples=n_resamples, rng=seed)
    n = write_records(out, [*words, *summary], mode="w")
    for r in summary:
        lo, hi = r.attributes.get("ci_low", math.nan), r.attributes.get("ci_high", math.nan)
        _err(f"{r.language} {r.condition['mode']:<8} {r.quantity:<26} {r.value:.4f}  [{lo:.4f}, {hi:.4f}]  n={r.n}")
    _err(f"{len(alignments)} words aligned; wrote {n} records to {out}")
