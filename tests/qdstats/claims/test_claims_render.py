"""Rendering: rounding only in Markdown/LaTeX; JSON and CSV at full precision; JSON round-trips."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest
from numpy.testing import assert_allclose
from claims_synth import bpb_records, did_specs, spec_dict

from qdstats.claims import (
    ClaimSpec,
    ClaimsTable,
    build_claims_table,
    to_csv,
    to_json,
    to_latex,
    to_markdown,
    write_table,
)


@pytest.fixture(scope="module")
def table():
    recs = bpb_records(effects={"eng_Latn": 0.0, "heb_Hebr": 0.1, "arb_Arab": 0.0}, n_items=30, seed=2)
    specs = did_specs(["heb_Hebr", "arb_Arab"])
    specs.append(ClaimSpec.model_validate(spec_dict(id="T.err", params={**spec_dict()["params"], "cluster": "zz"})))
    return build_claims_table(specs, recs)


def test_json_round_trip_full_precision(table):
    back = ClaimsTable.model_validate_json(to_json(table))
    assert back == table
    raw = json.loads(to_json(table))
    assert raw["rows"][0]["estimate"] == table.rows[0].estimate  # not rounded


def test_csv_full_precision(table):
    df = pd.read_csv(io.StringIO(to_csv(table)))
    assert df.loc[0, "estimate"] == table.rows[0].estimate
    assert df.loc[0, "p_adj"] == table.rows[0].p_adj
    assert list(df["verdict"]) == [r.verdict for r in table.rows]


def test_markdown_rounds_and_shows_n_ci_and_messages(table):
    md = to_markdown(table, digits=3)
    r = table.rows[0]
    assert f"did = {r.estimate:.3g} [{r.ci_low:.3g}, {r.ci_high:.3g}]" in md
    assert repr(r.estimate) not in md
    assert "**supported**" in md and "**error**" in md
    assert "UnknownNameError" in md  # the error message is shown
    assert "30 (items 30" in md


def test_latex_escapes(table):
    tex = to_latex(table)
    assert r"T.did.heb\_Hebr" in tex and r"\begin{tabular}" in tex and r"\bottomrule" in tex


def test_write_table_writes_four_files(table, tmp_path):
    paths = write_table(table, tmp_path / "out")
    assert sorted(p.name for p in paths.values()) == ["claims_table.csv", "claims_table.json", "claims_table.md", "claims_table.tex"]
    assert all(p.stat().st_size > 0 for p in paths.values())


def test_specification_curves_are_drawn_from_the_rows(table, tmp_path):
    """Rows with a specification curve get one figure per (family, model); the points drawn are the stored
    estimates sorted, coloured by each specification's verdict; rows without a curve draw nothing."""
    from qdstats.claims.render import specification_frame
    from qdstats.report.plots import VERDICT_COLORS, specification_curve_plot

    specs = {"bits_per_byte/first_in": {"estimate": 0.02, "ci_low": 0.01, "ci_high": 0.03, "p_adj": 0.01,
                                        "min_abs_effect": 0.01, "verdict": "supported"},
             "bits_per_sentence/first_in": {"estimate": -0.5, "ci_low": -1.0, "ci_high": 0.1, "p_adj": 0.4,
                                            "min_abs_effect": 0.2, "verdict": "inconclusive"}}
    row = table.rows[0].model_copy(update={"details": {**table.rows[0].details, "specifications": specs},
                                           "model": "m1"})
    curved = table.model_copy(update={"rows": (row, *table.rows[1:])})
    frame = specification_frame(curved)
    assert list(frame["specification"]) == list(specs) and set(frame["claim_id"]) == {row.claim_id}
    assert frame["estimate"].tolist() == [0.02, -0.5]
    fig = specification_curve_plot(frame)
    (pts,) = [c for c in fig.axes[0].collections if c.get_gid() == f"spec:{row.claim_id}"]
    # in units of each specification's minimum effect (0.01 and 0.2): -2.5 and 2.0, sorted
    assert_allclose(pts.get_offsets()[:, 1], [-0.5 / 0.2, 0.02 / 0.01], rtol=1e-12)
    assert len([ln for ln in fig.axes[0].lines if ln.get_gid() == "min-effect"]) == 2
    raw = specification_curve_plot(frame.drop(columns="min_abs_effect"))
    (pts,) = [c for c in raw.axes[0].collections if c.get_gid() == f"spec:{row.claim_id}"]
    assert pts.get_offsets()[:, 1].tolist() == [-0.5, 0.02]  # raw estimates, sorted
    from matplotlib.colors import to_rgba

    assert [tuple(c) for c in pts.get_facecolors()] == [to_rgba(VERDICT_COLORS["inconclusive"]),
                                                        to_rgba(VERDICT_COLORS["supported"])]
    paths = write_table(curved, tmp_path / "out")
    assert paths[f"speccurve_{row.family}_m1"].name == f"speccurve_{row.family}_m1.png"
    assert paths[f"speccurve_{row.family}_m1"].read_bytes()[:4] == b"\x89PNG"
    assert specification_frame(table).empty and not any(p.suffix == ".png" for p in write_table(
        table, tmp_path / "plain").values())
    write_table(table, tmp_path / "out")  # the same directory without curves: the stale figure goes
    assert not list((tmp_path / "out").glob("speccurve_*.png"))


def test_summary_counts_verdicts_per_family_from_the_table(table):
    from qdstats.claims.render import summary_markdown

    md = summary_markdown(table)
    counts = {v: sum(r.verdict == v for r in table.rows) for v in ("supported", "not_supported", "error")}
    assert md.splitlines()[0].startswith(f"{len(table.rows)} claims: ")
    assert f"{counts['supported']} supported" in md and f"{counts['error']} error" in md
    assert "- **T** (3 rows): " in md  # one family, three rows


def test_sync_and_check_summary_block(table, tmp_path):
    from qdstats.claims.render import check_summary, summary_markdown, sync_summary

    doc = tmp_path / "README.md"
    doc.write_text("intro\n<!-- claims-summary:start -->\nold numbers\n<!-- claims-summary:end -->\nrest\n")
    assert check_summary(doc, table)  # stale block
    doc.write_text(sync_summary(doc.read_text(), table))
    assert check_summary(doc, table) == []
    assert summary_markdown(table).rstrip() in doc.read_text() and doc.read_text().endswith("rest\n")
    doc.write_text(doc.read_text().replace("supported", "supp0rted", 1))  # a hand edit of a generated number/word
    assert check_summary(doc, table)
    (tmp_path / "plain.md").write_text("no block here\n")
    assert "no `<!-- claims-summary:start -->`" in check_summary(tmp_path / "plain.md", table)[0]
