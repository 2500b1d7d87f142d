"""`qd align`: morpheme-boundary alignment of a tokenizer against a gold segmentation, saved as records.

``qd align --tokenizer T --gold NAME --out F.jsonl``. Gold names: a UD treebank id with segmentation
(``ud_hebrew_iahltwiki``, ``ud_hebrew_htb``, ``ud_korean_kaist``, ``ud_korean_pud``; sentences, so both modes
work), or a word list ``morpho_challenge_2010:<eng|fin|tur>`` / ``sigmorphon2022:<eng|fra>`` (isolated words only).
Exit codes: 0 ok; 1 failed run; 2 usage or validation error (an existing ``--out`` needs ``--append`` or
``--overwrite``). Per-word records and per-language aggregates (with
cluster-bootstrap CIs, cluster = sentence) go to ``--out``; the aggregates are also printed to stdout.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qdmodels.cli import _common as c
from qdmodels.cli._common import (
    AppendOpt,
    DataDirOpt,
    GoldSplitOpt,
    LimitOpt,
    NResamplesOpt,
    OutOpt,
    OverwriteOpt,
    SeedOpt,
    TokenizerNameOpt,
    TokenizerOpt,
)

# no group help: `qd align --help` shows the callback's docstring (with its examples)
app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)

_WORDLISTS = ("morpho_challenge_2010", "sigmorphon2022")


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
    tokenizer: TokenizerOpt,
    gold: Annotated[str, typer.Option("--gold", help="UD treebank id (e.g. ud_hebrew_iahltwiki) or morpho_challenge_2010:<lang> / sigmorphon2022:<lang>.")],
    out: OutOpt,
    mode: Annotated[str | None, typer.Option("--mode", help="'context' (default for treebanks) or 'isolated' (default and only option for word lists).")] = None,
    split: GoldSplitOpt = None,
    limit: LimitOpt = None,
    n_resamples: NResamplesOpt = c.N_RESAMPLES,
    seed: SeedOpt = 0,
    name: TokenizerNameOpt = None,
    summary_only: Annotated[bool, typer.Option("--summary-only", help="Write only the per-language aggregates (small files).")] = False,
    data_dir: DataDirOpt = None,
    append: AppendOpt = False,
    overwrite: OverwriteOpt = False,
) -> None:
    """Morpheme-boundary alignment of a tokenizer against gold segmentations, with per-language CIs.

    Per-word boundary precision / recall / F1 / MorphScore records and per-language aggregates.

    --limit: first N sentences (treebanks) or words (word lists).

    --n-resamples: cluster bootstrap (cluster = sentence) of the aggregates.

    Examples:

      qd align -t gpt2 --gold ud_hebrew_iahltwiki --split dev --out heb_gpt2.jsonl
      qd align -t llama3 --gold morpho_challenge_2010:fin --out fin_llama3.jsonl
      qd align -t qwen3 --gold ud_korean_kaist --summary-only --n-resamples 999 --out kor_qwen3.jsonl
    """
    import warnings

    def run() -> None:
        from qdmodels.tokenization import (
            align_morphemes,
            alignment_records,
            alignment_summary,
            load_tokenizer,
        )

        out_mode = c.check_out(out, append=append, overwrite=overwrite)
        tok = load_tokenizer(tokenizer, name=name, data_dir=data_dir)
        data, corpus_ref, is_sents = _load_gold(gold, split, limit, data_dir)
        m = mode or ("context" if is_sents else "isolated")
        alignments = align_morphemes(tok, data, mode=m)  # type: ignore[arg-type]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # copied into the records' `warnings`: shown once below
            words = [] if summary_only else alignment_records(tok, alignments, corpus=corpus_ref)
            summary = alignment_summary(tok, alignments, corpus=corpus_ref, n_resamples=n_resamples, rng=seed)
        n = c.write_out(out, [*words, *summary], out_mode)
        for r in summary:
            lo, hi = (r.attributes.get(k) for k in ("ci_low", "ci_high"))
            ci = "[no CI]" if lo is None or hi is None else f"[{lo:.4f}, {hi:.4f}]"
            c.echo(f"{r.language} {r.condition['mode']:<8} {r.quantity:<26} {r.value:.4f}  {ci}  n={r.n}")
        c.record_notes(summary)
        c.err(f"{len(alignments)} words aligned; wrote {n} records to {out}")

    c.guard(run)
