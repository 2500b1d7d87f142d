"""Tests of build_report and qdstats.report.render on SYNTHETIC records: files, sections, numbers shown with
their CI and n, self-containment, license flags, provenance, claims, graceful degradation."""

from __future__ import annotations

import base64
import re

import pandas as pd
import pytest
from report_synthetic import make_failure, make_premium_records

from qdstats.report import build_report
from qdstats.report import render as rr

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

_IMG = re.compile(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


@pytest.fixture(scope="module")
def report(all_records, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    res = build_report(all_records, out_dir=out, title="SYNTHETIC report", n_resamples=199, rng=7, strict=True)
    return res, res.html.read_text(encoding="utf-8"), res.markdown.read_text(encoding="utf-8")


def test_number_formatting():
    assert rr.fmt_num(0.0123456) == "0.01235"
    assert rr.fmt_num(float("nan")) == "NaN" and rr.fmt_num(None) == "NaN" and rr.fmt_num(float("-inf")) == "-inf"
    assert rr.fmt_estimate(0.25231, 0.2387, 0.26566, 24) == "0.2523 [0.2387, 0.2657] (n=24)"
    assert rr.fmt_estimate(1.0, float("nan"), None, 24) == "1 [NaN, NaN] (n=24)"
    assert rr.fmt_estimate(1.0, float("nan"), None, 24, always_ci=False) == "1 (n=24)"
    assert rr.fmt_estimate(1.0, float("nan"), 2.0, None) == "1 [NaN, 2] (n=?)"
    assert rr.fmt_p(0.000123456) == "0.00012" and rr.fmt_p(None) == "NaN"


def test_build_report_writes_all_sections_and_figures(report):
    res, html, md = report
    assert res.sections == ("degradation", "sensitivity", "alignment", "tokenizer")
    assert set(res.omitted) == {"claims"}
    assert len(res.figures) == 5 and all(p.exists() for p in res.figures)
    for sec in res.sections + ("licenses", "notes", "provenance"):
        assert f'<section id="{sec}">' in html
    # the Markdown references each figure by a relative path that exists beside it
    for p in res.figures:
        rel = p.relative_to(res.out_dir).as_posix()
        assert f"]({rel})" in md


def test_html_is_self_contained_and_embeds_the_figures(report):
    res, html, _ = report
    imgs = _IMG.findall(html)
    assert len(imgs) == html.count("<img ") == len(res.figures)
    assert sorted(base64.b64decode(b) for b in imgs) == sorted(p.read_bytes() for p in res.figures)
    assert not re.search(r'(src|href)="(?!data:|#)', html), "a resource outside the page is referenced"
    assert "http://" not in html and "https://" not in html
    assert "Content-Security-Policy" in html and "default-src 'none'" in html


def test_every_estimate_is_shown_with_ci_and_n(report):
    res, html, md = report
    d = res.data.degradation
    for _, r in d.iterrows():
        s = rr.fmt_estimate(r["estimate"], r["ci_low"], r["ci_high"], r["n"])
        assert s in md and s in html, s
        if not r["is_reference"]:
            assert rr.fmt_estimate(r["did"], r["did_ci_low"], r["did_ci_high"], r["n"]) in md
    for _, f in res.data.alignment_fits.iterrows():
        assert rr.fmt_estimate(f["slope"], f["ci_low"], f["ci_high"], f["n"]) in md
    for _, t in res.data.tokenizer.iterrows():
        assert rr.fmt_estimate(t["value"], t["ci_low"], t["ci_high"], t["n"], always_ci=False) in md
    for _, s in res.data.sensitivity.iterrows():
        assert rr.fmt_estimate(s["value"], s["ci_low"], s["ci_high"], s["n"], always_ci=False) in md
    # full precision stays in the data; rounding is only in the text
    assert "0.2523 [" not in str(res.data.degradation["estimate"].tolist())


def test_license_flags_and_provenance_are_shown(report):
    res, html, md = report
    for text in (html, md):
        assert "License restrictions" in text and "synthetic-parallel (non-commercial)" in text
        assert "a" * 64 in text  # model sha256
        assert res.data.provenance["report_qd_version"] in text
        assert "756 (755 measurements, 1 failed)" in text
        assert "RuntimeError: 1" in text
    if res.data.provenance["report_git_sha"]:
        assert res.data.provenance["report_git_sha"] in html


def test_report_is_reproducible(small_records, tmp_path):
    a = build_report(small_records, out_dir=tmp_path / "a", n_resamples=99, rng=1)
    b = build_report(small_records, out_dir=tmp_path / "b", n_resamples=99, rng=1)
    assert a.sections == ("degradation", "sensitivity", "alignment", "tokenizer")
    assert a.html.read_bytes() == b.html.read_bytes()
    assert a.markdown.read_bytes() == b.markdown.read_bytes()


def test_graceful_degradation_only_tokenizer_and_no_records(tmp_path):
    res = build_report(make_premium_records() + [make_failure()], out_dir=tmp_path / "tok", n_resamples=99)
    assert res.sections == ("tokenizer",)
    html = res.html.read_text(encoding="utf-8")
    assert '<section id="degradation">' not in html
    assert "Degradation per language (Δ bits per byte)</strong> omitted: no paired per-item eval.bits_per_byte" in html
    assert html.count("<img ") == 1
    empty = build_report([], out_dir=tmp_path / "empty", formats=("markdown",))
    assert empty.html is None and empty.sections == () and empty.figures == ()
    assert "No record names a corpus." in empty.markdown.read_text(encoding="utf-8")


def test_failing_figure_is_omitted_not_fatal(monkeypatch, small_records, tmp_path):
    from qdstats.report import plots

    def boom(*a, **k):
        raise RuntimeError("planted plot failure")

    monkeypatch.setattr(plots, "sensitivity_heatmap", boom)
    res = build_report(small_records, out_dir=tmp_path, n_resamples=99)
    assert any("planted plot failure" in v for v in res.omitted.values())
    assert res.html.read_text(encoding="utf-8").count("<img ") == 4  # forest, DiD forest, alignment, premiums
    with pytest.raises(RuntimeError, match="planted plot failure"):
        build_report(small_records, out_dir=tmp_path, n_resamples=99, strict=True)


def test_bad_options(all_records, tmp_path):
    with pytest.raises(ValueError, match="`formats` must be one of \\{'html', 'markdown'\\}; got 'pdf'"):
        build_report(all_records, out_dir=tmp_path, formats=("pdf",))
    with pytest.raises(TypeError, match="`title` must be a string"):
        build_report(all_records, out_dir=tmp_path, title=3)


# ----------------------------------------------------------------------------- claims
def _claims_table():
    engine = pytest.importorskip("qdstats.claims.engine")
    row = engine.ClaimRow(claim_id="H1-int4", version=1, statement="INT4 hurts Hebrew more than English (SYNTHETIC).",
                          family="H1", test="diff_in_diff", unit_of_analysis="item", alternative="greater",
                          evidence="simulated", n=24, estimate_name="did", estimate=0.2052, ci_low=0.1945,
                          ci_high=0.2158, ci_level=0.95, ci_method="cluster-bootstrap-bca", p=0.03125, p_adj=0.0625,
                          verdict="inconclusive", verdict_reason="simulated evidence is never supported",
                          grade="low", warnings=("only 5 languages",))
    return engine.ClaimsTable(rows=(row,), spec_hashes={"H1-int4": "0" * 64}, records_hash="1" * 64)


def test_claims_table_object_and_json_file(all_records, tmp_path):
    table = _claims_table()
    path = tmp_path / "claims" / "claims_table.json"
    path.parent.mkdir()
    path.write_text(table.model_dump_json(indent=2), encoding="utf-8")
    expected = rr.fmt_estimate(0.2052, 0.1945, 0.2158, 24)
    for source in (table, path, path.parent):
        res = build_report(all_records[:5], out_dir=tmp_path / "out", claims_table=source, n_resamples=99,
                           strict=True)
        assert "claims" in res.sections and "claims" not in res.omitted
        html = res.html.read_text(encoding="utf-8")
        assert '<section id="claims">' in html and "H1-int4" in html and expected in html
        assert "inconclusive" in html and "simulated" in html and "0.062 (holm)" in html
    df = rr.claims_frame([{"claim_id": "x", "estimate": 1.0, "ci": {"low": 0.5, "high": 1.5, "level": 0.9}, "n": 3}])
    assert rr._claims_rows(df)[1][0][3] == "1 [0.5, 1.5] (n=3), 90%"


def test_unreadable_claims_table_is_a_note_or_an_error(all_records, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"something": 1}', encoding="utf-8")
    res = build_report(all_records[:5], out_dir=tmp_path / "o", claims_table=bad, n_resamples=99)
    assert "could not be read" in res.omitted["claims"] and "no 'rows' list" in res.omitted["claims"]
    with pytest.raises(ValueError, match="no 'rows' list"):
        build_report(all_records[:5], out_dir=tmp_path / "o", claims_table=bad, strict=True)
    with pytest.raises(TypeError, match="`claims_table` must be a ClaimsTable"):
        rr.claims_frame(42)
    with pytest.raises(FileNotFoundError):
        rr.claims_frame(tmp_path / "nope.json")
    assert isinstance(rr.claims_frame({"rows": []}), pd.DataFrame)


def test_report_visual_language_no_dict_text_headlines_and_hidden_p(tmp_path):
    """Non-parallel items: every DiD p is undefined, so the p column is left out with one note; the baseline is
    written as text, never as a Python dict; headline sentences and the DiD forest come first; the data table names
    the language of each sha256."""
    from qdstats.records import CorpusRef, Measurement

    recs = []
    for lang, shift in (("eng_Latn", 0.05), ("kor_Hang", 0.40)):
        corpus = CorpusRef(corpus_id="mine", split="test", sha256=("a" if lang == "eng_Latn" else "b") * 64)
        for i in range(12):
            for scheme, d in (("fp32", 0.0), ("int4-g64-sym", shift + 0.001 * i)):
                recs.append(Measurement(quantity="eval.bits_per_byte", value=1.0 + 0.01 * i + d, language=lang,
                                        item_id=f"{lang}-{i}", corpus=corpus,
                                        condition={"scheme": scheme, "protect": "none", "prune": "none"}))
    res = build_report(recs, out_dir=tmp_path, n_resamples=199)
    md = res.markdown.read_text(encoding="utf-8")
    html = res.html.read_text(encoding="utf-8")
    for text in (md, html):
        assert "{'scheme'" not in text and "{&#x27;scheme" not in text
    assert "p (permutation)" in md  # defined here (independent permutation test)
    # every p undefined (e.g. a design where no permutation test applies): no p column, one note
    from dataclasses import replace

    from qdstats.report.data import summarize_records
    from qdstats.report.render import render_markdown

    data = summarize_records(recs, n_resamples=199)
    data = replace(data, degradation=data.degradation.assign(did_pvalue=float("nan")))
    md_nan = render_markdown(data, [], title="t")
    assert "p (permutation)" not in md_nan and md_nan.count("p column left out") == 1
    assert "- INT4 (int4-g64-sym): kor_Hang (+0.350 [" in md and "loses more bit/byte than eng_Latn" in md
    assert md.index("- INT4 (int4-g64-sym)") < md.index("figures/forest.png")
    assert "figures/did-forest.png" in md
    assert "| mine | test |  | " + "b" * 64 + " | kor_Hang |" in md
