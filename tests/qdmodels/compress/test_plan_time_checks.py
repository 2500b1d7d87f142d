"""A condition that cannot apply to the model fails before any compute (not mid-run)."""

from __future__ import annotations

import pytest

from qdmodels.compress.conditions import check_applicable, quant_condition
from qdmodels.compress.scheme import ProtectionPlan
from qdmodels.eval.encoding import text_items
from qdmodels.eval.scoring import evaluate_conditions
from qdmodels.models.tiny import tiny_model


def test_protected_layer_that_does_not_exist_fails_before_scoring(monkeypatch):
    """Regression: `--protect layers=99` failed only when the quantized condition started (after the fp pass)."""
    lm = tiny_model("llama", n_layers=2)
    import qdmodels.eval.scoring as scoring

    calls = []
    monkeypatch.setattr(scoring, "score_encoded", lambda *a, **k: calls.append(1))
    conds = ["fp32", quant_condition("int4-ch-sym", plan=ProtectionPlan.parse("layers=99"))]
    with pytest.raises(ValueError, match="`layers` holds 99, but the model has 2 blocks"):
        evaluate_conditions(lm, text_items({"eng_Latn": ["The fox."]}), conds, progress=False)
    assert calls == []  # nothing was scored


def test_group_size_that_does_not_divide_a_row_fails_at_plan_time():
    lm = tiny_model("llama", n_layers=2)
    with pytest.raises(ValueError, match=r"`group_size` 7 does not divide the input dimension \d+ of site"):
        check_applicable(lm.model, "int4-g7-sym")
    check_applicable(lm.model, "int4-g7-sym-ragged")  # allowed
    check_applicable(lm.model, "int4-ch-sym", plan="layers=0")


def test_cli_bad_protect_plan_exits_2_before_compute(tmp_path):
    from typer.testing import CliRunner

    from qdmodels.cli.main import app

    out = tmp_path / "r.jsonl"
    res = CliRunner().invoke(app, ["eval", "-m", "tiny:llama", "--corpus", "ntrex128", "--langs", "eng_Latn",
                                   "--quant", "int4-ch-sym", "--protect", "layers=99", "--limit", "2", "--out", str(out)])
    if "data directory" in res.output or "not found" in res.output and "ntrex" in res.output:
        pytest.skip("needs the NTREX data directory")
    assert res.exit_code == 2, res.output
    assert "layers` holds 99" in res.output and not out.exists()
