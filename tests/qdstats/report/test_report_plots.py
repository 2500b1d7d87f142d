"""Tests of qdstats.report.plots: what is drawn equals the (SYNTHETIC) tables, read back from the artists."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import TwoSlopeNorm
from numpy.testing import assert_allclose
from report_synthetic import (
    LANGUAGES,
    make_eval_records,
    make_premium_records,
    make_sensitivity_records,
    make_word_records,
)

from qdstats.report import data as rd
from qdstats.report import plots

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def deg_table() -> pd.DataFrame:
    return rd.degradation_table(make_eval_records(n_items=12, n_docs=4), n_resamples=99, rng=0)[0]


def _by_gid(ax, gid):
    return [a for a in ax.get_children() if a.get_gid() == gid]


def test_forest_plot_draws_estimates_cis_zero_line_and_reference(deg_table):
    fig = plots.forest_plot(deg_table, reference="eng_Latn")
    assert len(fig.axes) == 2  # one panel per condition
    for ax, (cond, g) in zip(fig.axes, deg_table.groupby("condition_short", sort=True)):
        g = g.sort_values("language", ascending=False)
        (pts,) = [ln for ln in ax.lines if ln.get_gid() == "estimates"]
        assert_allclose(pts.get_xdata(), g["estimate"], rtol=0)
        (zero,) = [ln for ln in ax.lines if ln.get_gid() == "zero-line"]
        assert list(zero.get_xdata()) == [0.0, 0.0]
        (ref,) = [ln for ln in ax.lines if ln.get_gid() == "reference"]
        assert_allclose(ref.get_xdata(), g[g["language"] == "eng_Latn"]["estimate"], rtol=0)
        (bars,) = _by_gid(ax, "ci-bars")
        segs = np.array([s[:, 0] for s in bars.get_segments()])
        assert_allclose(segs, g[["ci_low", "ci_high"]].to_numpy(), rtol=0)
        labels = [t.get_text() for t in ax.get_yticklabels()]
        assert "eng_Latn (ref) (n=12)" in labels and "heb_Hebr (n=12)" in labels
        assert cond in ax.get_title()


def test_forest_plot_without_reference_and_bad_input(deg_table):
    fig = plots.forest_plot(deg_table, reference=None)
    assert not any(ln.get_gid() == "reference" for ax in fig.axes for ln in ax.lines)
    with pytest.raises(ValueError, match=r"`table` lacks column\(s\) \['ci_low'\]"):
        plots.forest_plot(deg_table.drop(columns="ci_low"))
    with pytest.raises(ValueError, match="`table` is empty"):
        plots.forest_plot(deg_table.iloc[:0])
    with pytest.raises(TypeError, match="`table` must be a pandas DataFrame"):
        plots.forest_plot(deg_table.to_dict())


def test_sensitivity_heatmap_array_equals_matrix_and_norm():
    table, _ = rd.sensitivity_table(make_sensitivity_records())
    mat = rd.sensitivity_matrix(table, model_key=table["model_key"][0], condition=table["condition"][0])
    fig = plots.sensitivity_heatmap(mat)
    (im,) = [a for a in fig.axes[0].get_images() if a.get_gid() == "heatmap"]
    assert_allclose(np.asarray(im.get_array()), mat.to_numpy(), rtol=0)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == sorted(LANGUAGES)
    # mixed signs: diverging scale centred at 0; a NaN cell is masked
    mixed = mat.copy()
    mixed.iloc[1, 1] = -0.2
    mixed.iloc[2, 2] = np.nan
    im2 = plots.sensitivity_heatmap(mixed).axes[0].get_images()[0]
    assert isinstance(im2.norm, TwoSlopeNorm) and im2.norm.vcenter == 0.0
    assert np.ma.getmaskarray(im2.get_array())[2, 2]
    with pytest.raises(ValueError, match="`matrix` is empty"):
        plots.sensitivity_heatmap(mat.iloc[:0])


def test_alignment_scatter_points_and_fit_lines():
    pairs, fits, _ = rd.alignment_damage(make_word_records(n_sent=6), n_resamples=99)
    fig = plots.alignment_scatter(pairs, fits)
    ax = fig.axes[0]
    for _, f in fits.iterrows():
        lang = f["language"]
        (pts,) = _by_gid(ax, f"points:{lang}")
        g = pairs[pairs["language"] == lang]
        assert_allclose(pts.get_offsets(), g[["alignment", "damage"]].to_numpy(), rtol=0)
        (line,) = [ln for ln in ax.lines if ln.get_gid() == f"fit:{lang}"]
        x = line.get_xdata()
        assert_allclose(line.get_ydata(), f["intercept"] + f["slope"] * x, rtol=1e-12)
        assert_allclose(x, [g["alignment"].min(), g["alignment"].max()], rtol=0)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(t.startswith("heb_Hebr: slope") and "n=36 words / 6 sent." in t for t in legend)


def test_premium_bars_heights_cis_and_parity_line():
    table, _ = rd.tokenizer_premiums(make_premium_records())
    fig = plots.premium_bars(table, reference="eng_Latn")
    ax = fig.axes[0]
    t = table.sort_values("language")
    heights = [next(p.get_height() for p in ax.patches if p.get_gid() == f"premium:{lang}") for lang in t["language"]]
    assert_allclose(heights, t["value"], rtol=0)
    ref_patch = next(p for p in ax.patches if p.get_gid() == "premium:eng_Latn")
    assert ref_patch.get_hatch() == "//"
    (parity,) = [ln for ln in ax.lines if ln.get_gid() == "parity-line"]
    assert list(parity.get_ydata()) == [1.0, 1.0]
    has_ci = t.dropna(subset=["ci_low"])
    (err,) = [c for c in ax.containers if getattr(c, "has_yerr", False)]  # label None on matplotlib 3.8
    segs = err.lines[2][0].get_segments()
    assert_allclose([[s[0, 1], s[1, 1]] for s in segs], has_ci[["ci_low", "ci_high"]].to_numpy(), rtol=1e-12)


def test_figure_png_is_deterministic_png(deg_table):
    a = plots.figure_png(plots.forest_plot(deg_table))
    b = plots.figure_png(plots.forest_plot(deg_table))
    assert a[:8] == b"\x89PNG\r\n\x1a\n" and a == b


def _bpw_records(costs: dict[str, float], *, report_keys: bool = False) -> list:
    from report_synthetic import SYN_MODEL

    from qdstats.records import Measurement

    out = []
    for scheme, bpw in costs.items():
        cond = ({"scheme": scheme, "protect": "none", "backend": "lib"} if report_keys  # what a GGUF report writes
                else {"scheme": scheme, "protect": "none", "prune": "none"})
        out.append(Measurement(quantity="quant.bits_per_weight", value=bpw + 0.5, unit="bit/weight", model=SYN_MODEL,
                               condition=cond, site=None, attributes={"scope": "gguf_file"},
                               routine="tests.synthetic"))  # a layout's file-level record: not the format's cost
        out.append(Measurement(quantity="quant.bits_per_weight", value=bpw, unit="bit/weight", model=SYN_MODEL,
                               condition=cond, routine="tests.synthetic"))
        out.append(Measurement(quantity="quant.model_bits_per_weight", value=bpw + 1.0, unit="bit/weight",
                               model=SYN_MODEL, condition=cond, routine="tests.synthetic"))
    return out


def test_storage_table_and_did_vs_bits_lines_equal_the_tables():
    """Bits per weight from the quant records; each family's line goes through its conditions' (bits, DiD)."""
    costs = {"int4-g64-sym": 4.25, "int3-g64-sym": 3.25}
    recs = make_eval_records(n_items=12, n_docs=4) + _bpw_records(costs)
    st, _ = rd.storage_table(recs)
    assert dict(zip(st["scheme"], st["bits_per_weight"])) == costs
    assert dict(zip(st["scheme"], st["model_bits_per_weight"])) == {k: v + 1.0 for k, v in costs.items()}
    assert set(st["family"]) == {"round-to-nearest"}
    deg = rd.degradation_table(recs, n_resamples=99, rng=0)[0]
    merged = deg.assign(condition_key=deg["condition"].map(rd.storage_key)).merge(
        st[["model_key", "condition_key", "family", "bits_per_weight", "model_bits_per_weight"]],
        on=["model_key", "condition_key"])
    assert len(merged) == len(deg)
    fig = plots.did_vs_bits(merged, reference="eng_Latn", bits="bits_per_weight")
    langs = sorted(set(merged["language"]) - {"eng_Latn"})
    shown = [ax for ax in fig.axes if ax.get_visible() and ax.get_title()]
    assert [ax.get_title() for ax in shown] == langs
    for ax, lang in zip(shown, langs):
        want = merged[merged["language"] == lang].sort_values("bits_per_weight")
        (line,) = [ln for ln in ax.lines if ln.get_gid() == "family:round-to-nearest"]
        assert_allclose(line.get_xdata(), want["bits_per_weight"], rtol=0)
        assert_allclose(line.get_ydata(), want["did"], rtol=0)
    assert rd.format_family("gguf-q4_k_m") == "llama.cpp k-quants" and rd.format_family("bnb-nf4") == "bitsandbytes"
    # GPTQ keys are the grid's key plus '-gptq' (qdmodels.compress.gptq.gptq_scheme_key): not round-to-nearest
    assert rd.format_family("int4-g64-sym-gptq") == "GPTQ-style" and rd.format_family("int4-g64-sym") == "round-to-nearest"
    assert rd.storage_table(make_eval_records(n_items=4, n_docs=2))[0] is None
    whole = plots.did_vs_bits(merged, reference="eng_Latn")  # default x: the whole model's bits per weight
    (line,) = [ln for ln in whole.axes[0].lines if ln.get_gid() == "family:round-to-nearest"]
    assert_allclose(sorted(line.get_xdata()), sorted(v + 1.0 for v in costs.values()), rtol=0)
    with pytest.raises(ValueError, match="model_bits_per_weight"):
        plots.did_vs_bits(merged.assign(model_bits_per_weight=float("nan")))


def test_report_draws_did_vs_bits_when_storage_records_exist(tmp_path):
    from qdstats.report import build_report

    recs = make_eval_records(n_items=12, n_docs=4) + _bpw_records({"int4-g64-sym": 4.25, "int3-g64-sym": 3.25})
    res = build_report(recs, out_dir=tmp_path, n_resamples=99)
    assert any("did-vs-bits" in str(p) for p in res.paths)
    res3 = build_report(make_eval_records(n_items=12, n_docs=4)
                        + _bpw_records({"int4-g64-sym": 4.25, "int3-g64-sym": 3.25}, report_keys=True),
                        out_dir=tmp_path / "c", n_resamples=99)
    assert any("did-vs-bits" in str(p) for p in res3.paths)  # paired although the keys differ (prune, backend)
    res2 = build_report(make_eval_records(n_items=12, n_docs=4), out_dir=tmp_path / "b", n_resamples=99)
    assert not any("did-vs-bits" in str(p) for p in res2.paths)
