"""Your own text (`load_corpus`): long/wide TSV, CSV, JSONL, Parquet, a folder of <lang>.txt files, hub datasets
(mocked `datasets`), corpus ids; errors that name the file, the line and the value; NFC; provenance; and the key
equivalence: the same NTREX sentences through a TSV give the same evaluation records as through `load_ntrex`."""

from __future__ import annotations

import hashlib
import json
import sys
import types
import unicodedata

import pytest

from qdmodels.corpora import (
    NO_DOCUMENT_ID_NOTE,
    CorpusFileError,
    CorpusFormatError,
    ParallelCorpus,
    corpus_ids,
    load_corpus,
    resolve_language,
)
from qdmodels.corpora.manifest import CorpusManifest, get_manifest
from qdstats.validation import UnknownNameError

LONG = (
    "language\titem_id\tdocument_id\ttext\n"
    "eng\ts1\td1\tThe cat sat.\n"
    "he\ts1\td1\tהחתול ישב.\n"
    "heb_Hebr\ts2\td2\tכלב נבח.\n"
    "eng_Latn\ts2\td2\tA dog barked.\n"
    "eng\ts3\td2\tIt rained.\n"
    "heb\ts3\td2\tירד גשם.\n"
)


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def _texts(corpus, lang):
    return [it.text for it in corpus[lang]]


# ---------------------------------------------------------------- long format

def test_long_tsv_is_parallel_with_normalized_codes_documents_and_provenance(tmp_path):
    p = _write(tmp_path, "mine.tsv", LONG)
    c = load_corpus(p)
    assert isinstance(c, ParallelCorpus)
    assert c.languages == ("eng_Latn", "heb_Hebr")  # heb, he and heb_Hebr are one language
    assert c.parallel and c.has_document_ids and c.notes == ()
    assert [it.item_id for it in c["eng_Latn"]] == [it.item_id for it in c["heb_Hebr"]] == ["s1", "s2", "s3"]
    assert [it.document_id for it in c["heb_Hebr"]] == ["d1", "d2", "d2"]
    assert [it.source_code for it in c["heb_Hebr"]] == ["he", "heb_Hebr", "heb"]
    assert [it.line for it in c["eng_Latn"]] == [1, 4, 5]  # 0-based line of the row in the file
    ref = c["eng_Latn"][0].corpus
    assert ref.corpus_id == "user:mine.tsv" and ref.split == "all" and ref.normalization == ("NFC",)
    assert ref.sha256 == hashlib.sha256(p.read_bytes()).hexdigest()


def test_languages_are_selected_and_keyed_by_the_requested_names(tmp_path):
    p = _write(tmp_path, "mine.tsv", LONG)
    c = load_corpus(p, languages=["he", "eng"])
    assert list(c.items) == ["he", "eng"]
    assert c["he"][0].language == "heb_Hebr"
    with pytest.raises(UnknownNameError, match=r"'kor' \(kor_Hang\) is not in .*mine\.tsv.*eng_Latn, heb_Hebr"):
        load_corpus(p, languages=["kor"])


def test_without_document_id_each_item_is_its_own_document_and_the_corpus_says_so_once(tmp_path):
    p = _write(tmp_path, "nodoc.tsv", "language\titem_id\ttext\neng\t1\tOne.\nheb\t1\tאחת.\neng\t2\tTwo.\nheb\t2\tשתיים.\n")
    c = load_corpus(p)
    assert not c.has_document_ids and c.parallel
    assert c.notes == (NO_DOCUMENT_ID_NOTE,) and NO_DOCUMENT_ID_NOTE == "no document_id: CIs cluster by item"
    assert [it.document_id for it in c["eng_Latn"]] == ["1", "2"]


def test_without_item_id_nothing_is_paired(tmp_path):
    p = _write(tmp_path, "loose.csv", "language,text\neng,One.\nheb,אחת.\neng,Two.\n")
    c = load_corpus(p)
    assert not c.parallel
    assert [it.item_id for it in c["eng_Latn"]] == ["eng_Latn:1", "eng_Latn:2"]
    assert any("no item_id" in n for n in c.notes) and NO_DOCUMENT_ID_NOTE in c.notes


def test_unequal_item_sets_are_not_parallel_and_say_so(tmp_path):
    p = _write(tmp_path, "partial.tsv", "language\titem_id\ttext\neng\t1\tOne.\nheb\t1\tאחת.\neng\t2\tTwo.\n")
    c = load_corpus(p)
    assert not c.parallel and any("not have the same item_id" in n for n in c.notes)


def test_csv_quoting_keeps_commas_quotes_and_newlines(tmp_path):
    p = _write(tmp_path, "q.csv", 'language,item_id,text\neng,1,"Hello, ""world""\nsecond line"\nheb,1,"שלום, עולם"\n')
    c = load_corpus(p)
    assert _texts(c, "eng_Latn") == ['Hello, "world"\nsecond line']
    assert c["heb_Hebr"][0].line == 3


def test_jsonl_and_parquet_read_like_the_tsv(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"language": "eng", "item_id": 7, "text": "Seven.", "topic": "x"},
            {"language": "heb", "item_id": 7, "text": "שבע.", "topic": "y"}]
    pj = _write(tmp_path, "c.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    pp = tmp_path / "c.parquet"
    pq.write_table(pa.Table.from_pylist(rows), pp)
    for p in (pj, pp):
        c = load_corpus(p)
        assert c.parallel and [it.item_id for it in c["heb_Hebr"]] == ["7"]  # extra columns of a long file: ignored
        assert _texts(c, "heb_Hebr") == ["שבע."]
        assert c["eng_Latn"][0].corpus.sha256 == hashlib.sha256(p.read_bytes()).hexdigest()


def test_column_map(tmp_path):
    p = _write(tmp_path, "m.tsv", "lang\tid\tsentence\neng\ta\tHi.\nheb\ta\tהיי.\n")
    c = load_corpus(p, columns={"language": "lang", "item_id": "id", "text": "sentence"})
    assert c.parallel and _texts(c, "eng_Latn") == ["Hi."]
    with pytest.raises(CorpusFormatError, match=r"m\.tsv: `columns` maps 'text' to 'sentnce', which is not a column"):
        load_corpus(p, columns={"text": "sentnce"})


# ---------------------------------------------------------------- wide format and folders

def test_wide_file_is_parallel_by_row(tmp_path):
    p = _write(tmp_path, "w.tsv", "document_id\teng\the\tkor_Hang\nd1\tOne.\tאחת.\t하나.\nd1\tTwo.\tשתיים.\t둘.\n")
    c = load_corpus(p)
    assert c.languages == ("eng_Latn", "heb_Hebr", "kor_Hang") and c.parallel and c.has_document_ids
    assert [it.item_id for it in c["kor_Hang"]] == ["1", "2"]  # generated: the 1-based data row
    assert [it.source_code for it in c["heb_Hebr"]] == ["he", "he"]


def test_wide_file_with_an_unknown_column_names_file_line_and_value(tmp_path):
    p = _write(tmp_path, "w.tsv", "eng\theb\tcomment\nOne.\tאחת.\tok\n")
    with pytest.raises(CorpusFormatError, match=r"w\.tsv, line 1 \(header\): column 'comment' is neither a language"):
        load_corpus(p)


def test_folder_of_text_files(tmp_path):
    d = tmp_path / "texts"
    d.mkdir()
    (d / "eng.txt").write_text("One.\r\nTwo.\r\n", encoding="utf-8")
    (d / "he.txt").write_text("אחת.\nשתיים.\n", encoding="utf-8")
    (d / "README.md").write_text("ignored", encoding="utf-8")
    c = load_corpus(d)
    assert c.languages == ("eng_Latn", "heb_Hebr") and c.parallel and c.notes == (NO_DOCUMENT_ID_NOTE,)
    assert [it.item_id for it in c["heb_Hebr"]] == ["1", "2"] and _texts(c, "eng_Latn") == ["One.", "Two."]
    hashes = sorted(hashlib.sha256((d / f).read_bytes()).hexdigest() for f in ("eng.txt", "he.txt"))
    assert c["eng_Latn"][0].corpus.sha256 == hashlib.sha256("\n".join(hashes).encode()).hexdigest()
    assert c["eng_Latn"][0].corpus.corpus_id == "user:texts"
    (d / "he.txt").write_text("אחת.\n", encoding="utf-8")
    with pytest.raises(CorpusFormatError, match="different numbers of lines"):
        load_corpus(d)
    (d / "he.txt").write_text("אחת.\n\n", encoding="utf-8")
    with pytest.raises(CorpusFormatError, match=r"he\.txt, line 2: the heb_Hebr text is empty"):
        load_corpus(d)
    (d / "he.txt").unlink()
    (d / "hebrew.txt").write_text("אחת.\nשתיים.\n", encoding="utf-8")
    with pytest.raises(CorpusFormatError, match=r"hebrew\.txt: file name 'hebrew'"):
        load_corpus(d)


# ---------------------------------------------------------------- errors name the file, the line and the value

@pytest.mark.parametrize(("text", "pattern"), [
    ("language\ttext\neng\tOne.\nhebrew\tאחת.\n", r"bad\.tsv, line 3: `language` value 'hebrew'"),
    ("language\titem_id\ttext\neng\t1\tOne.\neng\t1\tUno.\n",
     r"bad\.tsv, line 3: duplicate \(language, item_id\) = \(eng_Latn, '1'\); first at .*bad\.tsv, line 2"),
    ("language\ttext\neng\tOne.\nheb\t   \n", r"bad\.tsv, line 3: the heb_Hebr text is empty"),
    ("language\titem_id\tdocument_id\ttext\neng\t1\ta\tOne.\nheb\t1\tb\tאחת.\n",
     r"bad\.tsv, line 3: item '1' has document_id 'b' in heb_Hebr, but 'a' in eng_Latn"),
    ("language\titem_id\ttext\neng\t\tOne.\n", r"bad\.tsv, line 2: `item_id` is empty"),
    ("language\ttext\neng\tOne.\textra\n", r"bad\.tsv, line 2: 3 field\(s\), but the header has 2"),
    ("language\ttext\n", r"bad\.tsv has a header but no rows"),
])
def test_format_errors(tmp_path, text, pattern):
    p = _write(tmp_path, "bad.tsv", text)
    with pytest.raises(CorpusFormatError, match=pattern):
        load_corpus(p)


def test_errors_are_value_errors_and_name_jsonl_lines(tmp_path):
    assert issubclass(CorpusFormatError, ValueError)
    p = _write(tmp_path, "bad.jsonl", '{"language": "eng", "text": "One."}\n{"language": "xx", "text": "Two."}\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl, line 2: `language` value 'xx'"):
        load_corpus(p)
    p = _write(tmp_path, "bad2.jsonl", '{"language": "eng", "text": "One."}\n{"language": "heb", "text": \n')
    with pytest.raises(CorpusFormatError, match=r"bad2\.jsonl, line 2: not valid JSON"):
        load_corpus(p)
    p = tmp_path / "latin1.tsv"
    p.write_bytes("language\ttext\neng\tcaf\xe9\n".encode("latin-1"))
    with pytest.raises(CorpusFormatError, match=r"latin1\.tsv, line 2: not UTF-8"):
        load_corpus(p)
    p = _write(tmp_path, "x.txt", "eng\tOne.\n")
    with pytest.raises(CorpusFormatError, match=r"unknown file type '\.txt'"):
        load_corpus(p)


def test_unknown_id_and_missing_path():
    with pytest.raises(UnknownNameError, match="Did you mean 'ntrex128'"):
        load_corpus("ntrex")
    with pytest.raises(CorpusFileError, match="no such file or folder"):
        load_corpus("no/such/file.tsv")
    assert {"ntrex128", "dataset_build", "flores_plus"} <= set(corpus_ids())


def test_resolve_language():
    assert {resolve_language(c) for c in ("heb", "he", "heb_Hebr", " heb ")} == {"heb_Hebr"}
    assert resolve_language("zho-CN") == "zho_Hans" and resolve_language("cmn_Hans") == "cmn_Hans"
    with pytest.raises(UnknownNameError, match="'hebrew' is not a known language code"):
        resolve_language("hebrew")


# ---------------------------------------------------------------- normalization, splits, limit

def test_texts_are_nfc_normalized_and_diacritics_stripping_is_recorded(tmp_path):
    decomposed = unicodedata.normalize("NFD", "café 한국어")
    p = _write(tmp_path, "nfd.tsv", f"language\titem_id\ttext\neng\t1\t{decomposed}\nheb\t1\tשָׁלוֹם\n")
    assert p.read_text(encoding="utf-8") != unicodedata.normalize("NFC", p.read_text(encoding="utf-8"))
    c = load_corpus(p)
    assert _texts(c, "eng_Latn") == ["café 한국어"] and unicodedata.is_normalized("NFC", c["eng_Latn"][0].text)
    s = load_corpus(p, strip_diacritics=True)
    assert _texts(s, "heb_Hebr") == ["שלום"]
    assert s["heb_Hebr"][0].corpus.normalization == ("NFC", "strip_hebrew_niqqud")
    assert s["eng_Latn"][0].corpus.normalization == ("NFC",)


def test_split_column_selects_rows(tmp_path):
    rows = "".join(f"{lang}\t{i}\t{'dev' if i < 2 else 'test'}\tt{i}\n" for i in range(5) for lang in ("eng", "heb"))
    p = _write(tmp_path, "s.tsv", "language\titem_id\tsplit\ttext\n" + rows)
    test = load_corpus(p, split="test")
    assert [it.item_id for it in test["eng_Latn"]] == ["2", "3", "4"] and test.split == "test"
    assert {it.split for it in test["heb_Hebr"]} == {"test"} and test["eng_Latn"][0].corpus.split == "test"
    assert [it.split for it in load_corpus(p)["eng_Latn"]] == ["dev", "dev", "test", "test", "test"]
    with pytest.raises(ValueError, match="`split` 'tset' matches no row.*Did you mean 'test'"):
        load_corpus(p, split="tset")
    with pytest.raises(ValueError, match="has no `split` column"):
        load_corpus(_write(tmp_path, "n.tsv", LONG), split="test")


def test_limit_and_spread_keep_the_same_items_in_every_language(tmp_path):
    rows = "".join(f"{lang}\t{i}\tt{i}\n" for lang in ("heb", "eng") for i in range(10))  # heb rows first
    p = _write(tmp_path, "l.tsv", "language\titem_id\ttext\n" + rows)
    first = load_corpus(p, limit=3)
    spread = load_corpus(p, limit=4, sample="spread")
    assert [it.item_id for it in first["eng_Latn"]] == ["0", "1", "2"]
    assert [it.item_id for it in spread["eng_Latn"]] == [it.item_id for it in spread["heb_Hebr"]] == ["0", "3", "6", "9"]


# ---------------------------------------------------------------- hub datasets (mocked `datasets`)

class _FakeDatasets(types.ModuleType):
    def __init__(self, data):
        super().__init__("datasets")
        self.data, self.calls = data, []

    def load_dataset(self, repo, config=None, *, split=None, revision=None):
        self.calls.append((repo, config, split, revision))
        by_split = self.data[config]
        return by_split[split] if split is not None else dict(by_split)


def test_hf_dataset_with_a_column_map(monkeypatch):
    fake = _FakeDatasets({None: {"test": [{"lang": "en", "id": 1, "sentence": "Hi."},
                                          {"lang": "he", "id": 1, "sentence": "היי."}]}})
    monkeypatch.setitem(sys.modules, "datasets", fake)
    c = load_corpus("hf:someone/corpus@abc123:test", columns={"language": "lang", "item_id": "id", "text": "sentence"})
    assert fake.calls == [("someone/corpus", None, "test", "abc123")]
    assert c.parallel and c.split == "test" and [it.split for it in c["heb_Hebr"]] == ["test"]
    ref = c["eng_Latn"][0].corpus
    assert ref.corpus_id == "hf:someone/corpus" and ref.version == "abc123" and len(ref.sha256) == 64
    unpinned = load_corpus("hf:someone/corpus:test", columns={"language": "lang", "item_id": "id", "text": "sentence"})
    assert any("not pinned to a revision" in n for n in unpinned.notes)
    with pytest.raises(CorpusFormatError, match=r"hf:someone/corpus \[default/test\]: a long-format file needs .*language"):
        load_corpus("hf:someone/corpus:test", columns={"text": "sentence", "item_id": "id"}, format="long")


def test_flores_plus_reads_one_configuration_per_language_at_the_pinned_revision(monkeypatch):
    m = get_manifest("flores_plus")
    assert m.location == "hub" and m.hub is not None and m.license.spdx == "CC-BY-SA-4.0"
    rows = {lang: {"devtest": [{"id": i, "text": f"{lang} {i}", "url": f"https://x/{i // 2}", "topic": "t"}
                               for i in (1, 2, 3)]} for lang in ("eng_Latn", "heb_Hebr")}
    fake = _FakeDatasets(rows)
    monkeypatch.setitem(sys.modules, "datasets", fake)
    c = load_corpus("flores_plus", languages=["eng", "he"], split="devtest")
    assert fake.calls == [(m.hub.repo_id, "eng_Latn", "devtest", m.hub.revision),
                          (m.hub.repo_id, "heb_Hebr", "devtest", m.hub.revision)]
    assert list(c.items) == ["eng", "he"] and c.parallel and c.has_document_ids
    assert [it.document_id for it in c["he"]] == ["https://x/0", "https://x/1", "https://x/1"]
    assert c["he"][0].corpus.corpus_id == "flores_plus" and c["he"][0].corpus.version == m.hub.revision
    assert any("gated" in n for n in c.notes)
    with pytest.raises(ValueError, match="`split` must be one of dev, devtest"):
        load_corpus("flores_plus", languages=["eng"])


def test_hf_without_datasets_is_an_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(ImportError, match="pip install datasets"):
        load_corpus("hf:someone/corpus:test")


@pytest.mark.hub
def test_flores_plus_from_the_hub():  # pragma: no cover - needs internet, a token and `datasets`; never run in CI
    c = load_corpus("flores_plus", languages=["eng_Latn", "heb_Hebr"], split="devtest", limit=3)
    assert c.parallel and len(c["eng_Latn"]) == 3


def test_flores_plus_manifest_is_a_valid_hub_manifest():
    m = get_manifest("flores_plus")
    data = m.model_dump()
    with pytest.raises(ValueError, match="location='hub' needs"):
        CorpusManifest.model_validate({**data, "files": [{"path": "a.txt", "bytes": 1, "sha256": "0" * 64,
                                                          "url": "https://example.org"}]})
    with pytest.raises(ValueError, match="`hub.revision`"):
        CorpusManifest.model_validate({**data, "hub": {**data["hub"], "revision": "1" * 40}})


# ---------------------------------------------------------------- corpus ids with loaders

def test_ntrex128_id_is_load_ntrex(tmp_path, use_manifests, corpus_writer):
    from qdmodels.corpora import load_ntrex

    n = 1997
    lines = lambda f: ("\r\n".join(f(i) for i in range(n)) + "\r\n").encode()
    files = {"ntrex128/DOCUMENT_IDS.tsv": lines(lambda i: f"doc{i // 200:02d}"),
             "ntrex128/NTREX-128/newstest2019-src.eng.txt": lines(lambda i: f"line {i}"),
             "ntrex128/NTREX-128/newstest2019-ref.heb.txt": lines(lambda i: f"שורה {i}")}
    data, mdir = corpus_writer(tmp_path, "ntrex128", files, kind="parallel",
                               languages=(("eng_Latn", "eng"), ("heb_Hebr", "heb")))
    use_manifests(data, mdir)
    assert load_corpus("ntrex128", languages=["heb", "eng_Latn"], split="test", limit=5) == \
        load_ntrex(["heb", "eng_Latn"], split="test", limit=5)
    with pytest.raises(ValueError, match="`columns` applies to files"):
        load_corpus("ntrex128", columns={"text": "x"})


# ---------------------------------------------------------------- the key equivalence (real NTREX, tiny model)

@pytest.mark.integration
def test_same_ntrex_sentences_through_a_tsv_give_identical_records(shared_data_dir, tmp_path):
    """3 languages x 6 NTREX dev items, read with load_ntrex and from a TSV (item_id, document_id, split and line
    columns carry what NTREX items carry), give identical records except the corpus reference and provenance."""
    import csv

    from qdmodels.corpora import load_ntrex
    from qdmodels.eval import evaluate_conditions
    from qdmodels.models.tiny import tiny_model

    ntrex = load_ntrex(["eng_Latn", "heb_Hebr", "kor_Hang"], split="dev", limit=6, data_dir=shared_data_dir)
    p = tmp_path / "ntrex_sample.tsv"
    with p.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, delimiter="\t", lineterminator="\n")
        w.writerow(["language", "item_id", "document_id", "split", "line", "text"])
        for lang, its in ntrex.items.items():
            for it in its:
                w.writerow([it.source_code, it.item_id, it.document_id, it.split, it.line, it.text])
    mine = load_corpus(p)
    assert mine.parallel and mine.has_document_ids and mine.notes == ()
    assert list(mine.items) == list(ntrex.items)
    for lang in ntrex.items:
        assert [it.model_dump(exclude={"corpus"}) for it in mine[lang]] == \
            [it.model_dump(exclude={"corpus"}) for it in ntrex[lang]]
    lm = tiny_model("llama")
    conds = ["fp32", "int4-g16-sym"]
    a = evaluate_conditions(lm, {k: list(v) for k, v in ntrex.items.items()}, conds, progress=False)
    b = evaluate_conditions(lm, {k: list(v) for k, v in mine.items.items()}, conds, progress=False)
    ra = [r for er in a.values() for r in er.records]
    rb = [r for er in b.values() for r in er.records]
    assert len(ra) == len(rb) == 2 * 3 * 6 * 8
    assert [r.model_dump(exclude={"provenance", "corpus"}) for r in ra] == \
        [r.model_dump(exclude={"provenance", "corpus"}) for r in rb]
    assert {r.corpus.corpus_id for r in rb} == {"user:ntrex_sample.tsv"}
    assert {r.corpus.sha256 for r in rb} == {hashlib.sha256(p.read_bytes()).hexdigest()}


# ---------------------------------------------------------------- the CLI

def _cli():
    from typer.testing import CliRunner

    from qdmodels.cli import main

    return CliRunner(), main.app


def test_qd_eval_takes_a_tsv(tmp_path):
    from qdstats.records import read_records

    runner, app = _cli()
    tsv = _write(tmp_path, "mine.tsv", "language\titem_id\ttext\neng\t1\tThe cat sat on the mat.\nheb\t1\tהחתול ישב על "
                                       "השטיח.\neng\t2\tA dog barked twice.\nhe\t2\tכלב נבח פעמיים.\n")
    out = tmp_path / "e.jsonl"
    r = runner.invoke(app, ["eval", "-m", "tiny:llama", "--corpus", str(tsv), "--langs", "eng,heb", "--quant",
                            "int4-g16-sym", "--out", str(out), "--no-progress"])
    assert r.exit_code == 0, r.output
    assert r.stderr.count(NO_DOCUMENT_ID_NOTE) == 1
    recs = read_records(out)
    assert len(recs) == 2 * 2 * 2 * 8  # 2 conditions x 2 languages x 2 sentences x 8 quantities
    assert {x.corpus.corpus_id for x in recs} == {"user:mine.tsv"} and {x.item_id for x in recs} == {"1", "2"}
    assert {x.attributes["document_id"] for x in recs} == {"1", "2"}


def test_cli_corpus_errors_exit_2_naming_file_and_line(tmp_path):
    runner, app = _cli()
    tsv = _write(tmp_path, "bad.tsv", "language\ttext\neng\tOne.\nklingon\tQapla'.\n")
    r = runner.invoke(app, ["eval", "-m", "tiny:llama", "--corpus", str(tsv), "--langs", "eng", "--out",
                            str(tmp_path / "e.jsonl"), "--no-progress"])
    assert r.exit_code == 2 and "bad.tsv, line 3" in r.stderr and "'klingon'" in r.stderr
    r = runner.invoke(app, ["eval", "-m", "tiny:llama", "--corpus", str(tsv), "--split", "test", "--langs", "eng",
                            "--out", str(tmp_path / "e.jsonl"), "--no-progress"])
    assert r.exit_code == 2
    r = runner.invoke(app, ["eval", "-m", "tiny:llama", "--corpus", "ntrx128", "--out", str(tmp_path / "e.jsonl")])
    assert r.exit_code == 2 and "Did you mean 'ntrex128'" in r.stderr


def test_load_items_prints_corpus_notes_once_per_command(tmp_path, capsys):
    from qdmodels.cli import _common

    tsv = _write(tmp_path, "s.tsv", "language\titem_id\tsplit\ttext\neng\t1\tdev\tOne.\neng\t2\ttest\tTwo.\n")
    got = _common.guard(lambda: (_common.load_items(str(tsv), "eng", _common.corpus_split(str(tsv), None, "test"),
                                                    None, None),
                                 _common.load_items(str(tsv), "eng", "dev", None, None)))
    assert [len(x["eng_Latn"]) for x in got] == [2, 1]
    assert capsys.readouterr().err.count(NO_DOCUMENT_ID_NOTE) == 1
    assert _common.corpus_split("ntrex128", None, "test") == "test"
    assert _common.corpus_split(str(tsv), None, "test") is None and _common.corpus_split("x", "dev", "test") == "dev"


def test_qd_data_knows_the_hub_corpus(tmp_path):
    runner, app = _cli()
    r = runner.invoke(app, ["data", "list", "--json", "--quick", "--data-dir", str(tmp_path)])
    row = next(x for x in json.loads(r.stdout) if x["corpus"] == "flores_plus")
    assert row["status"].startswith("hub: openlanguagedata/flores_plus@") and row["license"] == "CC-BY-SA-4.0"
    r = runner.invoke(app, ["data", "fetch", "flores_plus", "--data-dir", str(tmp_path)])
    assert r.exit_code == 1 and "read from the Hugging Face hub" in r.stderr


@pytest.mark.integration
def test_qd_tokenize_parity_takes_a_tsv(shared_data_dir, tmp_path, monkeypatch):
    from qdstats.records import read_records

    monkeypatch.setenv("QD_DATA_DIR", str(shared_data_dir))
    runner, app = _cli()
    tsv = _write(tmp_path, "mine.tsv", LONG)
    out = tmp_path / "p.jsonl"
    r = runner.invoke(app, ["tokenize", "parity", "-t", "gpt2", "--corpus", str(tsv), "--reference", "eng",
                            "--n-resamples", "0", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert {x.language for x in read_records(out)} == {"eng_Latn", "heb_Hebr"}
    r = runner.invoke(app, ["tokenize", "parity", "-t", "gpt2", "--corpus", str(tsv), "--reference", "kor",
                            "--n-resamples", "0", "--out", str(tmp_path / "q.jsonl")])
    assert r.exit_code == 2 and "kor" in r.stderr


def test_demo_reads_a_corpus_file(tmp_path):
    from qdmodels.workflows.demo import load_demo_corpus

    tsv = _write(tmp_path, "mine.tsv", LONG)
    items, parallel, notes = load_demo_corpus(str(tsv), ["eng_Latn", "heb_Hebr"], limit=2, split=None)
    assert parallel and notes == () and [it.item_id for it in items["heb_Hebr"]] == ["s1", "s3"]  # spread
