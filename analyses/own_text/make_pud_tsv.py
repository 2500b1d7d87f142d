"""Write a long-format corpus file (``language, item_id, document_id, text``) from UD PUD sentences.

PUD has the same 1,000 sentences in each language (news and Wikipedia, translated from English), aligned by
``sent_id``; the English file's ``# newdoc id`` gives each sentence's source document. The file is written at run
time from the data directory and is not committed (the text stays in ``$QD_DATA_DIR``).

Usage::

    python make_pud_tsv.py --langs en,ar,ko --out pud.tsv
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from qdmodels.corpora import align_pud, get_manifest
from qdmodels.corpora.manifest import file_path


def newdoc_ids() -> dict[str, str]:
    """sent_id -> document id, from the ``# newdoc id`` lines of the English PUD file."""
    m = get_manifest("ud_english_pud")
    rel = next(f.path for f in m.files if f.path.endswith("-test.conllu"))
    doc, out = None, {}
    for line in file_path(m, rel).read_text(encoding="utf-8").splitlines():
        if line.startswith("# newdoc id = "):
            doc = line.split("=", 1)[1].strip()
        elif line.startswith("# sent_id = "):
            out[line.split("=", 1)[1].strip()] = doc
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--langs", default="en,ar,ko", help="UD language codes of PUD treebanks, comma-separated")
    ap.add_argument("--out", type=Path, default=Path("pud.tsv"))
    args = ap.parse_args()
    codes = [c.strip() for c in args.langs.split(",") if c.strip()]
    tuples = align_pud(codes)
    docs = newdoc_ids()
    with args.out.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, delimiter="\t", lineterminator="\n")
        w.writerow(["language", "item_id", "document_id", "text"])
        for sents in tuples:
            for code, s in zip(codes, sents):
                w.writerow([code, s.sent_id, docs[s.sent_id], s.text])
    print(f"wrote {args.out}: {len(tuples)} sentences x {len(codes)} languages, "
          f"{len({docs[t[0].sent_id] for t in tuples})} documents")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
