"""Tests for qdmodels.probes.ablation: scoped head / neuron / sublayer ablation and the per-language measurements.

Oracles: zeroing the matching weight columns of ``o_proj`` / ``down_proj`` (an independent way to remove the same
features), replacing the attention module's output by the ``o_proj`` bias, plain ``evaluate`` runs, and the
closed-form OLS slope (``numpy.polyfit``).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from qdmodels.probes.ablation import (
    Ablation,
    ablated,
    ablation_means,
    attention_geometry,
    dose_response,
    head_importance,
)
from qdmodels.eval.scoring import evaluate
from qdmodels.eval.encoding import text_items
from qdmodels.models.hooks import capture, count_hooks
from qdmodels.models.sites import site_map
from qdmodels.models.tiny import tiny_model

IDS = torch.tensor([[1, 40, 41, 42, 43, 44, 45], [1, 50, 51, 52, 53, 54, 55]])
ITEMS = text_items({
    "eng_Latn": ["The quick brown fox jumps.", "Quantization hurts some languages.", "A dog sleeps here.",
                 "Birds sing in the morning."],
    "heb_Hebr": ["השועל החום המהיר קופץ.", "בבית הספר לומדים עברית.", "הכלב העצלן ישן.", "ציפורים שרות בבוקר."],
})
DEV_ITEMS = text_items({
    "eng_Latn": ["Larger models are more robust.", "The lazy dog."],
    "heb_Hebr": ["מעל הכלב העצלן.", "שלום עולם."],
}, prefix="dev")


def _logits(model, ids=IDS):
    with torch.no_grad():
        return model(ids).logits


def _zero_columns(model, site, cols):
    """Oracle: remove features by zeroing the weight entries that read them (Linear: columns, Conv1D: rows)."""
    mod = site_map(model).sites[site].module
    with torch.no_grad():
        if type(mod).__name__ == "Conv1D":
            mod.weight[cols, :] = 0
        else:
            mod.weight[:, cols] = 0


@pytest.mark.parametrize("family", ["gpt2", "llama", "gemma3"])
def test_hooks_removed_and_outputs_bit_identical_after_exit(family, tiny_models, tiny_state_guard):
    lm = tiny_models[family]
    before = _logits(lm.model)
    with ablated(lm, [Ablation("head", 0, (1,)), Ablation("neuron", 1, (0, 5)), Ablation("mlp", 0)]):
        assert count_hooks(lm.model) == 3
        inside = _logits(lm.model)
    assert count_hooks(lm.model) == 0
    assert not torch.equal(before, inside)
    assert torch.equal(before, _logits(lm.model))  # bit-identical: weights are never touched


def test_hooks_removed_on_error(tiny_llama):
    with pytest.raises(RuntimeError, match="boom"):
        with ablated(tiny_llama, [Ablation("head", 0, (0,))]):
            raise RuntimeError("boom")
    assert count_hooks(tiny_llama.model) == 0


@pytest.mark.parametrize("family,heads", [("gpt2", (2,)), ("llama", (1, 3)), ("gemma3", (0,)), ("qwen2", (3,)),
                                          ("opt", (1,)), ("bloom", (2,)), ("gpt_neox", (0, 1))])
def test_head_ablation_equals_zeroed_o_proj_columns(family, heads):
    """Oracle: zero-ablating query head h equals zeroing o_proj's input columns [h*hd, (h+1)*hd).

    Llama/Qwen2 use grouped-query attention (4 query heads, 2 kv heads), Gemma-3 one kv head: heads are query
    heads. atol 1e-6: same arithmetic, fp32 summation order may differ.
    """
    lm = tiny_model(family)
    hd = attention_geometry(lm).head_dim
    with ablated(lm, [Ablation("head", 1, heads)]):
        hooked = _logits(lm.model)
    cols = [c for h in heads for c in range(h * hd, (h + 1) * hd)]
    _zero_columns(lm.model, "layers.1.attn.o_proj", cols)
    np.testing.assert_allclose(hooked.numpy(), _logits(lm.model).numpy(), atol=1e-6, rtol=0, err_msg=family)


@pytest.mark.parametrize("family", ["gpt2", "llama", "gemma3", "qwen2", "opt", "gpt_neox"])
def test_all_heads_equals_attention_output_replaced_by_o_proj_bias(family, tiny_models, tiny_state_guard):
    """Zeroing every head's slice of the o_proj input leaves o_proj's output = its bias (0 without bias).

    Compared: logits with all heads zero-ablated vs logits with a forward hook on the attention module (the
    parent of o_proj) that replaces its first output by the o_proj bias broadcast (zeros when there is no bias).
    Also: the whole-sublayer ablation 'attn' equals replacing the attention module's output by zeros.
    BLOOM is excluded: its attention module adds the residual inside, so its output is not the attention
    contribution. atol 1e-6 (fp32, same operations).
    """
    lm = tiny_models[family]
    smap = site_map(lm.model)
    geo = attention_geometry(lm)
    o_site = smap.sites["layers.0.attn.o_proj"]
    attn_mod = lm.model.get_submodule(o_site.path.rsplit(".", 1)[0])
    bias_site = "layers.0.attn.o_proj.bias"
    bias = smap.sites[bias_site].param.detach() if bias_site in smap.sites else None

    def replace(value_fn):
        def hook(mod, args, out):
            first = out[0] if isinstance(out, tuple) else out
            new = value_fn(first)
            return (new, *out[1:]) if isinstance(out, tuple) else new
        return hook

    with ablated(lm, [Ablation("head", 0, tuple(range(geo.n_heads)))]):
        all_heads = _logits(lm.model)
    h = attn_mod.register_forward_hook(replace(lambda t: (bias.expand_as(t).clone() if bias is not None
                                                          else torch.zeros_like(t))))
    try:
        oracle = _logits(lm.model)
    finally:
        h.remove()
    np.testing.assert_allclose(all_heads.numpy(), oracle.numpy(), atol=1e-6, rtol=0, err_msg=family)

    with ablated(lm, [Ablation("attn", 0)]):
        sub = _logits(lm.model)
    h = attn_mod.register_forward_hook(replace(torch.zeros_like))
    try:
        oracle0 = _logits(lm.model)
    finally:
        h.remove()
    np.testing.assert_allclose(sub.numpy(), oracle0.numpy(), atol=1e-6, rtol=0, err_msg=family)
    if bias is not None:  # with a bias, all-heads-zero and removing the sublayer differ: the test can tell them apart
        assert not torch.allclose(all_heads, sub, atol=1e-6)


@pytest.mark.parametrize("family", ["gpt2", "llama", "gemma3"])
def test_neuron_and_mlp_ablation(family):
    """Neurons: oracle is zeroing down_proj's input columns. 'mlp': oracle is zeroing the MLP module output."""
    lm = tiny_model(family)
    smap = site_map(lm.model)
    with ablated(lm, [Ablation("neuron", 0, (3, 7, 20))]):
        hooked = _logits(lm.model)
    with ablated(lm, [Ablation("mlp", 1)]):
        no_mlp = _logits(lm.model)
    d_site = smap.sites["layers.1.mlp.down_proj"]
    mlp_mod = lm.model.get_submodule(d_site.path.rsplit(".", 1)[0])
    h = mlp_mod.register_forward_hook(lambda m, a, o: torch.zeros_like(o))
    try:
        oracle_mlp = _logits(lm.model)
    finally:
        h.remove()
    np.testing.assert_allclose(no_mlp.numpy(), oracle_mlp.numpy(), atol=1e-6, rtol=0)
    _zero_columns(lm.model, "layers.0.mlp.down_proj", [3, 7, 20])
    np.testing.assert_allclose(hooked.numpy(), _logits(lm.model).numpy(), atol=1e-6, rtol=0)


def test_mean_ablation_writes_the_reference_mean(tiny_llama):
    """The o_proj input seen during mean ablation holds the reference mean in the ablated slices, unchanged elsewhere."""
    lm = tiny_llama
    means = ablation_means(lm, DEV_ITEMS, layers=[1])
    hd = attention_geometry(lm).head_dim
    o_proj = site_map(lm.model).sites["layers.1.attn.o_proj"].module
    with capture({"o": o_proj}, what="input") as plain:
        _logits(lm.model)
    with ablated(lm, [Ablation("head", 1, (2,), "mean")], means=means):
        with capture({"o": o_proj}, what="input") as store:
            _logits(lm.model)
    x = store["o"][0]
    mean = means.get("layers.1.attn.o_proj", "in")
    sl = slice(2 * hd, 3 * hd)
    assert torch.equal(x[..., sl], mean[sl].expand_as(x[..., sl]))
    assert torch.equal(x[..., : 2 * hd], plain["o"][0][..., : 2 * hd])
    assert torch.equal(x[..., 3 * hd:], plain["o"][0][..., 3 * hd:])


def test_ablation_means_equal_unbatched_capture(tiny_gpt2):
    """Oracle: mean over all positions of o_proj inputs captured item by item (no padding). atol 1e-6 (fp32 sums)."""
    lm = tiny_gpt2
    means = ablation_means(lm, ITEMS, layers=[0], batch_size=3)
    o_proj = site_map(lm.model).sites["layers.0.attn.o_proj"].module
    rows = []
    with capture({"o": o_proj}, what="input") as store:
        for it in ITEMS:
            ids = [lm.tokenizer.bos_token_id] + lm.tokenizer(it.text, add_special_tokens=False).input_ids
            _logits(lm.model, torch.tensor([ids]))
    rows = torch.cat([t[0] for t in store["o"]])
    assert means.n_positions == rows.shape[0]
    np.testing.assert_allclose(means.get("layers.0.attn.o_proj", "in").numpy(), rows.double().mean(0).numpy(),
                               atol=1e-6, rtol=0)


def test_validation_errors(tiny_llama):
    with pytest.raises(ValueError, match="`kind`.*'head'"):
        Ablation("heads", 0, (1,))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`units` must be empty"):
        Ablation("attn", 0, (1,))
    with pytest.raises(ValueError, match="`units` must name at least one"):
        Ablation("head", 0)
    with pytest.raises(ValueError, match="`units` head index 4 out of range"):
        with ablated(tiny_llama, [Ablation("head", 0, (4,))]):
            pass
    with pytest.raises(ValueError, match="`layer` must be in"):
        with ablated(tiny_llama, [Ablation("head", 5, (0,))]):
            pass
    with pytest.raises(ValueError, match="`means` is required"):
        with ablated(tiny_llama, [Ablation("head", 0, (0,), "mean")]):
            pass
    with pytest.raises(ValueError, match="both 'zero' and 'mean'"):
        with ablated(tiny_llama, [Ablation("head", 0, (0,)), Ablation("head", 0, (1,), "mean")]):
            pass
    assert count_hooks(tiny_llama.model) == 0


def test_head_importance_equals_two_evaluations(tiny_llama, tiny_state_guard):
    """Oracle: Δ per item from two plain evaluate() runs (with / without the ablation).

    Without the prefix cache the forward passes are the same batches: atol 1e-10 bits. With the prefix cache the
    restarted forward differs in fp32 rounding: atol 1e-5 bits (PrefixCache is validated at 1e-5 nats).
    """
    lm = tiny_llama
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        naive = head_importance(lm, ITEMS, layers=[1], heads=[0, 2], prefix_cache=False, n_resamples=99)
        cached = head_importance(lm, ITEMS, layers=[1], heads=[0, 2], n_resamples=99)
    base = evaluate(lm, None, ITEMS, batch_size=8, progress=False).frame()
    with ablated(lm, [Ablation("head", 1, (2,))]):
        abl = evaluate(lm, None, ITEMS, batch_size=8, progress=False).frame()
    expect = abl["bits_per_byte"].to_numpy() - base["bits_per_byte"].to_numpy()
    for res, atol in ((naive, 1e-10), (cached, 1e-5)):
        got = res.item_deltas.query("head == 2")["delta"].to_numpy()
        np.testing.assert_allclose(got, expect, atol=atol, rtol=0)
        rec = [r for r in res.records if r.attributes["head"] == 2 and r.language == "heb_Hebr"][0]
        np.testing.assert_allclose(rec.value, expect[4:].mean(), atol=atol, rtol=0)
        assert rec.condition["ablation"] == "head:1:2:zero" and rec.site == "layers.1.attn.o_proj"
        assert rec.attributes["ci_low"] <= rec.value <= rec.attributes["ci_high"]
    assert count_hooks(lm.model) == 0


def test_dose_response_slopes_curves_and_quantized(tiny_llama, tiny_state_guard):
    """Slope oracle: numpy.polyfit (degree 1) of the language's mean curve with (0, 0) included, rtol 1e-10.

    Curve oracle: the first seed's head order reproduced with numpy and evaluated directly with ablated().
    """
    lm = tiny_llama
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = dose_response(lm, ITEMS, fractions=[0.25, 0.5], seeds=[0, 1], schemes=["fp32", "int4-ch-sym"],
                            prefix_cache=False, n_resamples=99, batch_size=8)
    curve = res.curve()
    assert set(curve["fraction"]) == {0.25, 0.5}  # pool 8 heads -> k = 2, 4
    for scheme in ("fp32", "int4-ch-sym"):
        for lang in ("eng_Latn", "heb_Hebr"):
            c = curve[(curve.scheme == scheme) & (curve.language == lang)].sort_values("fraction")
            x = np.concatenate([[0.0], c["fraction"].to_numpy()])
            y = np.concatenate([[0.0], c["delta"].to_numpy()])
            slope = [r for r in res.records if r.quantity == "ablation.dose_slope" and r.language == lang
                     and r.condition["scheme"] == scheme][0]
            np.testing.assert_allclose(slope.value, np.polyfit(x, y, 1)[0], rtol=1e-10)
    did = [r for r in res.records if r.quantity == "ablation.dose_slope_did" and r.condition["scheme"] == "fp32"]
    assert [r.language for r in did] == ["heb_Hebr"]
    s = res.slopes.query("scheme == 'fp32'")
    np.testing.assert_allclose(did[0].value, s[s.language == "heb_Hebr"]["slope"].to_numpy().mean()
                               - s[s.language == "eng_Latn"]["slope"].to_numpy().mean(), rtol=1e-10)
    qd = [r for r in res.records if r.quantity == "ablation.dose_slope_quant_diff"]
    assert len(qd) == 2 and all(r.condition["scheme"] == "int4-ch-sym" for r in qd)
    # curve oracle: seed 0, fraction 0.25 -> first 2 heads of the seed-0 permutation of the pool
    pool = [(layer, h) for layer in range(2) for h in range(4)]
    chosen = [pool[j] for j in np.random.default_rng(0).permutation(8)[:2]]
    abl = [Ablation("head", layer, (h,)) for layer, h in chosen]
    base = evaluate(lm, None, ITEMS, batch_size=8, progress=False).frame()["bits_per_byte"].to_numpy()
    with ablated(lm, abl):
        got = evaluate(lm, None, ITEMS, batch_size=8, progress=False).frame()["bits_per_byte"].to_numpy()
    draw = res.item_deltas.query("scheme == 'fp32' and seed == 0 and k_heads == 2")["delta"].to_numpy()
    np.testing.assert_allclose(draw, got - base, atol=1e-10, rtol=0)


def test_dose_response_ranked_needs_a_separate_dev_set(tiny_gpt2, tiny_state_guard):
    lm = tiny_gpt2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        imp = head_importance(lm, DEV_ITEMS, layers=[0, 1], n_resamples=99)
        with pytest.raises(ValueError, match="separate"):
            dose_response(lm, DEV_ITEMS, fractions=[0.25], order="ranked", importance=imp, n_resamples=99)
        with pytest.raises(ValueError, match="`importance` is required"):
            dose_response(lm, ITEMS, fractions=[0.25], order="ranked", n_resamples=99)
        res = dose_response(lm, ITEMS, fractions=[0.125, 0.25], order="ranked", importance=imp, n_resamples=99)
    first = imp.ranking()[0]
    draw = res.item_deltas.query("k_heads == 1")["delta"].to_numpy()
    base = evaluate(lm, None, ITEMS, batch_size=8, progress=False).frame()["bits_per_byte"].to_numpy()
    with ablated(lm, [Ablation("head", first[0], (first[1],))]):
        got = evaluate(lm, None, ITEMS, batch_size=8, progress=False).frame()["bits_per_byte"].to_numpy()
    np.testing.assert_allclose(draw, got - base, atol=1e-5, rtol=0)  # prefix cache: fp32 rounding, see above


def test_dose_response_validation(tiny_gpt2):
    with pytest.raises(ValueError, match="`fractions` must be distinct values in"):
        dose_response(tiny_gpt2, ITEMS, fractions=[0.0, 0.5])
    with pytest.raises(ValueError, match="duplicate head counts"):
        dose_response(tiny_gpt2, ITEMS, fractions=[0.5, 0.52])
    with pytest.raises(ValueError, match="`order`"):
        dose_response(tiny_gpt2, ITEMS, fractions=[0.5], order="rnd")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`cluster`"):
        dose_response(tiny_gpt2, ITEMS, fractions=[0.5], cluster="doc")  # type: ignore[arg-type]


def test_cli_ablate(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from qdmodels.cli import _common, probe
    from qdstats.records import read_records

    seen = []

    def fake_items(corpus, langs, split, limit, data_dir, sample="first"):
        seen.append(sample)
        src = DEV_ITEMS if split == "dev" else ITEMS
        return {lang: [it for it in src if it.language == lang] for lang in ("eng_Latn", "heb_Hebr")}

    monkeypatch.setattr(_common, "load_items", fake_items)
    out = tmp_path / "a.jsonl"
    res = CliRunner().invoke(probe.app, ["ablate", "--model", "tiny:llama", "--mode", "dose", "--fractions", "0.25,0.5",
                                         "--seeds", "0", "--order", "ranked", "--method", "mean",
                                         "--n-resamples", "50", "--sample", "spread", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert seen == ["spread", "spread"]  # test items and the dev items used for ranking
    q = [r.quantity for r in read_records(out)]
    assert q.count("ablation.dose_slope") == 2 and q.count("ablation.dose_slope_did") == 1
    assert q.count("ablation.delta_bits_per_byte") == 8 * 2 + 2 * 2  # dev importance (8 heads x 2 langs) + curve
    bad = CliRunner().invoke(probe.app, ["ablate", "--model", "tiny:llama", "--mode", "dosee",
                                         "--out", str(tmp_path / "bad.jsonl")])
    assert bad.exit_code == 2 and "`mode`" in bad.output
    monkeypatch.undo()
    bad = CliRunner().invoke(probe.app, ["ablate", "--model", "tiny:llama", "--sample", "random",
                                         "--out", str(tmp_path / "bad.jsonl")])
    assert bad.exit_code == 2 and "`--sample` must be one of" in bad.output


def test_one_document_gives_no_interval(tiny_gpt2, tiny_state_guard):
    """All items from one document, cluster='document': no CI and no p-value (a 1-cluster bootstrap is fake)."""
    one_doc = [it.model_copy(update={"document_id": "doc"}) for it in ITEMS]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = dose_response(tiny_gpt2, one_doc, fractions=[0.25, 0.5], seeds=[0], n_resamples=50)
        per_item = dose_response(tiny_gpt2, one_doc, fractions=[0.25, 0.5], seeds=[0], n_resamples=50, cluster="item")
    did = [r for r in res.records if r.quantity == "ablation.dose_slope_did"][0]
    assert did.attributes["ci_low"] is None and did.attributes["pvalue"] is None
    assert any("fewer than 2 shared clusters" in w for w in did.warnings)
    did_i = [r for r in per_item.records if r.quantity == "ablation.dose_slope_did"][0]
    assert did_i.value == did.value and did_i.attributes["ci_low"] is not None and did_i.attributes["n_clusters"] == 4


@pytest.mark.slow
@pytest.mark.integration
def test_smollm2_integration(smollm2):
    """SmolLM2-135M on NTREX: 2 languages x 8 test sentences (2 dev for ranking), late layers only, 2 fractions.

    Quantization is restricted to blocks 28-29 (an EvalCondition) to keep the run short on 2 CPU cores. Checks
    structure, finiteness and sanity (ablating heads hurts on average; damage is in [0, 1]); not a claim.
    """
    import os

    from qdmodels.corpora.ntrex import load_ntrex
    from qdmodels.compress.conditions import EvalCondition
    from qdmodels.compress.rtn import quantized

    data = os.environ.get("QD_DATA_DIR", "/work/shared/data")
    try:
        test = load_ntrex(["eng_Latn", "heb_Hebr"], split="test", limit=8, data_dir=data).items
        dev = load_ntrex(["eng_Latn", "heb_Hebr"], split="dev", limit=2, data_dir=data).items
    except (FileNotFoundError, ValueError) as exc:
        pytest.skip(f"NTREX-128 not available: {exc}")
    late = EvalCondition({"scheme": "int4-g64-sym", "protect": "none", "prune": "none", "sites": "layers.28,layers.29"},
                         lambda m: quantized(m, "int4-g64-sym", sites=["layers.28", "layers.29"]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        imp = head_importance(smollm2, dev, layers=[28, 29], cluster="item", n_resamples=199)
        res = dose_response(smollm2, test, fractions=[0.25, 0.5], layers=[28, 29], order="ranked", importance=imp,
                            rank_language="heb_Hebr", schemes=["fp32", late], cluster="item", n_resamples=199)
    assert count_hooks(smollm2.model) == 0
    q = [r.quantity for r in res.records]
    assert q.count("ablation.delta_bits_per_byte") == 2 * 2 * 2 and q.count("ablation.dose_slope") == 4
    assert q.count("ablation.dose_slope_did") == 2 and q.count("ablation.dose_slope_quant_diff") == 2
    for r in res.records:
        assert np.isfinite(r.value) and r.attributes["ci_low"] is not None, r.quantity
    curve = res.curve()
    assert (curve.groupby("scheme")["delta"].mean() > 0).all()  # removing half the late heads hurts on average
    qdiff = [r for r in res.records if r.quantity == "ablation.dose_slope_quant_diff"][0]
    assert qdiff.condition["sites"] == "layers.28,layers.29"
