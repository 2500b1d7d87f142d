"""`qd tokenize parity`: tokenizer parity metrics per language on parallel text, saved as records.

Exit codes: 0 ok; 2 usage or validation error (unknown tokenizer, language or corpus, missing data, an existing
``--out`` without ``--append``/``--overwrite``). Records go to ``--out`` (JSONL); the summary table goes to stdout.
"""

from __future__ import annotations

import typer

from qdmodels.cli import _common as c
from qdmodels.cli._common import (
    AllSplitOpt,
    AppendOpt,
    CorpusOpt,
    DataDirOpt,
    LangsOpt,
    LimitOpt,
    NResamplesOpt,
    OutOpt,
    OverwriteOpt,
    ReferenceOpt,
    SeedOpt,
    TokenizerNameOpt,
    TokenizerOpt,
)

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Tokenizer measurements: parity across languages on parallel text.")


@app.callback()
def _group() -> None:
    """Tokenizer measurements (a command group, so ``qd tokenize parity`` keeps its name)."""


@app.command("parity")
def parity_cmd(
    tokenizer: TokenizerOpt,
    out: OutOpt,
    corpus: CorpusOpt = "ntrex128",
    langs: LangsOpt = "all",
    reference: ReferenceOpt = "eng",
    split: AllSplitOpt = None,
    limit: LimitOpt = None,
    n_resamples: NResamplesOpt = c.N_RESAMPLES,
    seed: SeedOpt = 0,
    name: TokenizerNameOpt = None,
    data_dir: DataDirOpt = None,
    append: AppendOpt = False,
    overwrite: OverwriteOpt = False,
) -> None:
    """Tokens per sentence, premium vs the reference language, bytes/chars per token, UNK / byte-fallback /
    partial-character fractions and fertility, per language.

    --langs all (the default) takes all 128 NTREX languages (another --corpus: all its languages); the reference is
    added when missing (NTREX) or must be in the corpus (other corpora).
    A language named twice (eng and eng_Latn) is measured once.
    --n-resamples: document-cluster bootstrap of the premium CI. --limit: the first N items per language.

    Examples:

      qd tokenize parity -t gpt2 --corpus ntrex128 --split all --n-resamples 999 --seed 0 --out gpt2.jsonl
      qd tokenize parity -t qwen3 --langs heb,zho-CN --reference eng_Latn --limit 20 --n-resamples 0 --out qwen3.jsonl
      qd tokenize parity -t gpt2 --corpus my_sentences.tsv --reference eng --out mine.jsonl
    """
    import math
    import warnings

    def run() -> None:
        from qdmodels.corpora.manifest import get_manifest
        from qdmodels.corpora.ntrex import load_ntrex
        from qdmodels.tokenization import load_tokenizer, parity_frame, parity_table

        mode = c.check_out(out, append=append, overwrite=overwrite)
        tok = load_tokenizer(tokenizer, name=name, data_dir=data_dir)
        if corpus in c.CORPORA:
            if langs.strip() == "all":
                codes = [le.source_code for le in get_manifest("ntrex128").languages]
            else:
                codes = c.split_list(langs, "--langs")
            keys, ref = c.language_keys(codes, reference)
            pc = load_ntrex(keys, split=c.corpus_split(corpus, split, "all"), limit=limit, data_dir=data_dir)  # type: ignore[arg-type]
            items = {k: pc.items[k] for k in keys}
        else:
            from qdmodels.corpora import resolve_language

            ref = resolve_language(reference)
            wanted = c.corpus_languages(langs)
            if wanted is not None and ref not in wanted:
                wanted = [ref, *wanted]
            pc = c.load_corpus(corpus, wanted, split, limit, data_dir)
            if ref not in pc.items:
                raise ValueError(f"`--reference` {reference!r} ({ref}) is not in {corpus}; its languages: "
                                 f"{', '.join(pc.items)}.")
            items = dict(pc.items)
        c.err(f"tokenizer {tok.name} ({tok.kind}, sha256 {tok.ref.sha256[:12]}...), {len(items)} languages, "
              f"{len(items[ref])} items each")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # every warning is also in the records' `warnings`: shown once below
            recs = parity_table(tok, items, reference=ref, n_resamples=n_resamples, rng=seed)
        n = c.write_out(out, recs, mode)
        df = parity_frame(recs).reset_index().sort_values("premium_vs_reference")
        for _, r in df.iterrows():
            fert = r.get("fertility", math.nan)
            c.echo(f"{r['label']:<10} premium {r['premium_vs_reference']:.3f}  tokens/sent {r['tokens_per_sentence']:.1f}  "
                   f"bytes/token {r['bytes_per_token']:.2f}  fertility {'n/a' if math.isnan(fert) else f'{fert:.2f}'}")
        c.record_notes(recs)
        c.err(f"wrote {n} records to {out}")

    c.guard(run)
