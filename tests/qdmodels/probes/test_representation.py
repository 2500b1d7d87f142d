"""Tests for qdmodels.probes.representation: linear CKA (closed forms, weighted-bootstrap identity) and the pipeline.

Oracles: the HSIC Gram-matrix formula of Kornblith et al. (2019, eq. 3) for linear CKA; explicit row duplication
for the weighted (bootstrap) CKA; identical states must give exactly 1 for every measure.
"""

from __future__ import annotations

import contextlib
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from qdmodels.compress.conditions import EvalCondition
from qdmodels.eval.encoding import text_items
from qdmodels.models.hooks import count_hooks
from qdmodels.probes.representation import (
    _GramStats,
    _pooling,
    cka_bootstrap,
    linear_cka,
    representation_damage,
    unit_spans,
)
from qdstats.validation import DegenerateDataWarning
from qdstats.records import Measurement

ITEMS = text_items({
    "eng_Latn": ["The quick brown fox jumps.", "Quantization hurts some languages.", "A dog sleeps here."],
    "heb_Hebr": ["השועל החום המהיר קופץ.", "בבית הספר לומדים עברית.", "הכלב העצלן ישן."],
})


def _hsic_cka(x, y):
    """Kornblith et al. (2019) eq. 3: HSIC(K, L) = tr(K H L H) / (n-1)^2 with K = XX', L = YY'."""
    n = x.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    k, ell = x @ x.T, y @ y.T
    hsic = lambda a, b: np.trace(a @ h @ b @ h)
    return hsic(k, ell) / np.sqrt(hsic(k, k) * hsic(ell, ell))


def test_linear_cka_closed_forms():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 6))
    y = x @ rng.normal(size=(6, 3)) + rng.normal(size=(40, 3))
    np.testing.assert_allclose(linear_cka(x, y), _hsic_cka(x, y), rtol=1e-10)  # same formula, two forms
    np.testing.assert_allclose(linear_cka(x, y), linear_cka(y, x), rtol=1e-12)
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)
    q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    np.testing.assert_allclose(linear_cka(x, 2.5 * x @ q + 7.0), 1.0, rtol=1e-10)  # orthogonal, scale, shift
    assert linear_cka(x, x * np.arange(1, 7)) < 0.999  # not invariant to anisotropic scaling: the test can fail


def _song_unbiased_cka(x, y):
    """Song et al. (2012) unbiased HSIC on Gram matrices with zeroed diagonals, then CKA."""
    n = x.shape[0]
    one = np.ones(n)

    def hsic1(k, ell):
        k, ell = k - np.diag(np.diag(k)), ell - np.diag(np.diag(ell))
        return (np.trace(k @ ell) + (one @ k @ one) * (one @ ell @ one) / ((n - 1) * (n - 2))
                - 2.0 / (n - 2) * one @ k @ ell @ one) / (n * (n - 3))

    k, ell = x @ x.T, y @ y.T
    return hsic1(k, ell) / np.sqrt(hsic1(k, k) * hsic1(ell, ell))


def test_debiased_cka_against_song_unbiased_hsic():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(15, 20))
    y = rng.normal(size=(15, 8))  # independent: plain CKA is biased upward at small n, debiased near 0
    np.testing.assert_allclose(linear_cka(x, y, debiased=True), _song_unbiased_cka(x, y), rtol=1e-10)
    z = x[:, :8] + 0.3 * rng.normal(size=(15, 8))
    np.testing.assert_allclose(linear_cka(x, z, debiased=True), _song_unbiased_cka(x, z), rtol=1e-10)
    assert abs(linear_cka(x, y, debiased=True)) < linear_cka(x, y)
    with pytest.raises(ValueError, match="at least 4 rows"):
        linear_cka(x[:3], y[:3], debiased=True)


@given(st.lists(st.integers(0, 3), min_size=5, max_size=5), st.integers(0, 2**31 - 1))
def test_weighted_cka_equals_duplicated_rows(weights, seed):
    """Oracle: a resample drawing sentence s w_s times is the token set with sentence s repeated w_s times."""
    if sum(1 for w in weights if w > 0) < 2:
        weights = [1, 1, *weights[2:]]
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 5, size=5)
    cl = np.repeat(np.arange(5), sizes)
    x = rng.normal(size=(cl.size, 4))
    y = x + rng.normal(scale=0.7, size=(cl.size, 4))
    w = np.asarray(weights, dtype=float)
    rows = np.concatenate([np.tile(np.where(cl == s)[0], int(w[s])) for s in range(5)])
    want = linear_cka(x[rows], y[rows])
    got = _GramStats(x, y, cl, 5).cka(w[None])[0]
    np.testing.assert_allclose(got, want, rtol=1e-9)


def test_cka_bootstrap_estimate_ci_and_degenerate():
    rng = np.random.default_rng(1)
    cl = np.repeat(np.arange(12), 6)
    x = rng.normal(size=(72, 5))
    y = x + rng.normal(size=(72, 5))
    res = cka_bootstrap(x, y, cl, n_resamples=500, rng=0, kind="bca")
    np.testing.assert_allclose(res.estimate, linear_cka(x, y), rtol=1e-10)
    assert res.ci.low < res.estimate < res.ci.high and res.n_clusters == 12 and res.n == 72
    again = cka_bootstrap(x, y, cl, n_resamples=500, rng=0, kind="bca")
    assert again.ci == res.ci  # seeded
    with pytest.warns(DegenerateDataWarning, match="constant"):
        deg = cka_bootstrap(np.ones((72, 5)), y, cl, n_resamples=50, rng=0)
    assert np.isnan(deg.estimate) and deg.warnings
    with pytest.raises(ValueError, match="`clusters` must contain at least 2"):
        cka_bootstrap(x, y, np.zeros(72), n_resamples=50)
    with pytest.raises(ValueError, match="`kind`"):
        cka_bootstrap(x, y, cl, kind="bcaa")  # type: ignore[arg-type]


def test_unit_spans_and_pooling():
    text = "ab  שלום x"
    spans = unit_spans(text)
    data = text.encode("utf-8")
    assert [data[s:e].decode() for s, e in spans] == ["ab", "שלום", "x"]
    zh = "你好 a".encode()
    assert [zh[s:e].decode() for s, e in unit_spans("你好 a", units="characters")] == ["你", "好", "a"]
    # tokens: "ab", " ש", "לום", " x" (byte spans); the leading space belongs to no word
    tok = [(0, 2), (3, 6), (6, 12), (12, 14)]
    pm, dropped = _pooling(tok, spans)
    assert dropped == 0
    np.testing.assert_array_equal(pm, [[1, 0, 0, 0], [0, 0.5, 0.5, 0], [0, 0, 0, 1]])


@contextlib.contextmanager
def _noop(model):
    yield


def test_identical_states_give_one_and_hooks_are_removed(tiny_llama, tiny_state_guard):
    same = EvalCondition({"scheme": "fp32-copy", "protect": "none", "prune": "none"}, _noop)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = representation_damage(tiny_llama, ITEMS, [same], layers=[0, -1], n_resamples=99, rng=0)
    assert count_hooks(tiny_llama.model) == 0
    assert len(res.records) == 2 * 2 * 3  # layers x languages x measures
    for r in res.records:
        np.testing.assert_allclose(r.value, 1.0, atol=1e-12, err_msg=r.quantity)
        assert r.site in ("layers.0", "layers.1") and r.attributes["reference"] == "fp32"
        assert Measurement.model_validate_json(r.model_dump_json()) == r


def test_quantization_damage_orders_with_bits(tiny_gpt2, tiny_state_guard):
    """More bits, less damage: int8 states are closer to fp than int3 states (every measure, last layer)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = representation_damage(tiny_gpt2, ITEMS, ["int8-ch-sym", "int3-ch-sym"], layers=[-1], n_resamples=99)
    df = res.frame()
    for q in ("repr.linear_cka", "repr.cosine_token", "repr.cosine_word"):
        for lang in ("eng_Latn", "heb_Hebr"):
            sub = df[(df.quantity == q) & (df.language == lang)].set_index("condition")["value"]
            assert 1.0 > sub["int8-ch-sym"] > sub["int3-ch-sym"], (q, lang)
    r = res.records[0]
    assert r.attributes["ci_low"] <= r.value <= r.attributes["ci_high"] and r.n == r.attributes["n_tokens_total"]


def test_max_tokens_subsample_is_seeded(tiny_gpt2):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = representation_damage(tiny_gpt2, ITEMS, ["int3-ch-sym"], layers=[0], measures=["cka"], max_tokens=10,
                                  n_resamples=50, rng=3)
        b = representation_damage(tiny_gpt2, ITEMS, ["int3-ch-sym"], layers=[0], measures=["cka"], max_tokens=10,
                                  n_resamples=50, rng=3)
    assert [r.value for r in a.records] == [r.value for r in b.records]
    assert all(r.n == 10 and r.attributes["subsampled"] for r in a.records)


def test_unspaced_scripts(tiny_gpt2):
    zh = text_items({"zho_Hans": ["敏捷的棕色狐狸。", "量化会损害某些语言。"]})
    with pytest.raises(ValueError, match="`unspaced`='error'.*zho_Hans"):
        representation_damage(tiny_gpt2, zh, ["int4-ch-sym"], layers=[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        chars = representation_damage(tiny_gpt2, zh, ["int4-ch-sym"], layers=[0], unspaced="characters", n_resamples=20)
        skip = representation_damage(tiny_gpt2, zh, ["int4-ch-sym"], layers=[0], unspaced="skip", n_resamples=20)
    word = [r for r in chars.records if r.quantity == "repr.cosine_word"][0]
    assert word.attributes["units"] == "characters" and word.n == 8 + 10  # every non-space character, punctuation included
    assert "repr.cosine_word" not in {r.quantity for r in skip.records}


def test_validation(tiny_gpt2):
    with pytest.raises(ValueError, match="`measures`"):
        representation_damage(tiny_gpt2, ITEMS, ["int4-ch-sym"], measures=["ckaa"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="`layers`"):
        representation_damage(tiny_gpt2, ITEMS, ["int4-ch-sym"], layers=[2])
    with pytest.raises(ValueError, match="at least 2 sentences"):
        representation_damage(tiny_gpt2, text_items({"eng_Latn": ["One."]}), ["int4-ch-sym"])
    with pytest.raises(ValueError, match="`conditions` must be distinct"):
        representation_damage(tiny_gpt2, ITEMS, ["fp32"])
    with pytest.raises(ValueError, match="`max_tokens`"):
        representation_damage(tiny_gpt2, ITEMS, ["int4-ch-sym"], max_tokens=1)


def test_cli_repr(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from qdmodels.cli import _common, probe
    from qdstats.records import read_records

    monkeypatch.setattr(_common, "load_items", lambda corpus, langs, split, limit, data_dir, sample="first": {
        k: v for k, v in [("eng_Latn", ITEMS[:3]), ("heb_Hebr", ITEMS[3:])]})
    out = tmp_path / "r.jsonl"
    res = CliRunner().invoke(probe.app, ["repr", "--model", "tiny:gpt2", "--quant", "int4-ch-sym", "--layers", "1",
                                         "--n-resamples", "50", "--out", str(out)])
    assert res.exit_code == 0, res.output
    recs = read_records(out)
    assert len(recs) == 6 and {r.quantity for r in recs} == {"repr.linear_cka", "repr.cosine_token", "repr.cosine_word"}
    bad = CliRunner().invoke(probe.app, ["repr", "--model", "tiny:gpt2", "--quant", "int4-ch-sym", "--layers", "x",
                                         "--out", str(tmp_path / "bad.jsonl")])
    assert bad.exit_code == 2 and "`--layers` must be comma-separated integers" in bad.output


@pytest.mark.slow
@pytest.mark.integration
def test_smollm2_integration(smollm2):
    """SmolLM2-135M on NTREX: 2 languages x 8 test sentences, 2 layers; only block 29 is quantized (int3), so
    block 28 must be untouched (all similarities exactly 1) and block 29 damaged (< 1). Also words vs tokens."""
    import os

    from qdmodels.corpora.ntrex import load_ntrex
    from qdmodels.compress.rtn import quantized

    try:
        test = load_ntrex(["eng_Latn", "heb_Hebr"], split="test", limit=8,
                          data_dir=os.environ.get("QD_DATA_DIR", "/work/shared/data")).items
    except (FileNotFoundError, ValueError) as exc:
        pytest.skip(f"NTREX-128 not available: {exc}")
    cond = EvalCondition({"scheme": "int3-g64-sym", "protect": "none", "prune": "none", "sites": "layers.29"},
                         lambda m: quantized(m, "int3-g64-sym", sites=["layers.29"]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = representation_damage(smollm2, test, [cond], layers=[28, 29], max_tokens=512, n_resamples=199)
    assert count_hooks(smollm2.model) == 0
    df = res.frame()
    assert len(df) == 2 * 2 * 3
    np.testing.assert_allclose(df[df.layer == 28]["value"], 1.0, atol=1e-12)  # upstream of the change: identical
    late = df[df.layer == 29]
    assert ((late["value"] < 1.0) & (late["value"] > 0.5)).all()
    assert all(r.attributes["ci_low"] is not None for r in res.records if r.attributes["layer"] == 29)
