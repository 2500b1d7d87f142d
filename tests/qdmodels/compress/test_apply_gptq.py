"""Model-level GPTQ (apply_gptq / gptq_quantized / gptq_condition) on tiny models."""

from __future__ import annotations

import pytest
import torch

from qdmodels.compress.gptq import apply_gptq, gptq_condition, gptq_quantize_weight, gptq_quantized
from qdmodels.compress.calibration_sets import build_calibration
from qdmodels.eval.scoring import evaluate_conditions
from qdstats.records import paired_frame
from qdmodels.eval.encoding import text_items
from qdmodels.models.hooks import capture, count_hooks
from qdmodels.compress.scheme import ProtectionPlan, QuantScheme
from qdmodels.compress.rtn import quantized
from qdmodels.models.sites import site_map
from qdmodels.models.tiny import tiny_model
from qdstats.records import Measurement


def _ids(seed: int, n: int = 32, L: int = 32) -> torch.Tensor:
    return torch.randint(3, 60, (n, L), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("family", ["gpt2", "llama", "gemma3"])
def test_exact_restore_no_hooks_verified(family: str, tiny_models, tiny_state_guard) -> None:
    """Scoped: weights restored bit-exactly (torch.equal, guard fixture), no hook left; GPT-2 Conv1D layout."""
    lm = tiny_models[family]
    with gptq_quantized(lm, "int3-g16-sym", _ids(0, n=8, L=16)) as rep:
        assert rep.verified
        assert count_hooks(lm.model) == 0
        assert all(s.method == "gptq" for s in rep.sites)
        assert all(s.max_levels_per_group <= 8 for s in rep.sites)
    assert count_hooks(lm.model) == 0


def test_same_sites_and_bits_as_rtn_and_plan_respected(tiny_llama, tiny_state_guard) -> None:
    """Same selection and bits per weight as RTN for the same scheme/plan; protected layer untouched."""
    plan = ProtectionPlan(layers=(1,))
    smap = site_map(tiny_llama.model)
    before = smap.sites["layers.1.mlp.down_proj"].param.detach().clone()
    with quantized(tiny_llama, "int4-g16-sym", plan=plan) as rtn:
        rtn_sites = [s.site for s in rtn.sites]
        rtn_bpw = rtn.bits_per_weight
    with gptq_quantized(tiny_llama, "int4-g16-sym", _ids(1, n=8, L=16), plan=plan) as rep:
        assert [s.site for s in rep.sites] == rtn_sites
        assert rep.bits_per_weight == pytest.approx(rtn_bpw, rel=1e-12)
        assert torch.equal(smap.sites["layers.1.mlp.down_proj"].param, before)
        assert rep.condition["protect"] == plan.key


def test_released_embeddings_fall_back_to_rtn(tiny_llama, tiny_state_guard) -> None:
    """Tied embedding/LM head outside blocks: quantized round-to-nearest, reported as such."""
    plan = ProtectionPlan(keep_embeddings=False, keep_lm_head=False)
    with gptq_quantized(tiny_llama, "int4-g16-sym", _ids(2, n=4, L=16), plan=plan) as rep:
        methods = {s.site: s.method for s in rep.sites}
    assert methods["embed_tokens"] == "rtn" if "embed_tokens" in methods else any(m == "rtn" for m in methods.values())
    assert any(m == "gptq" for m in methods.values())


def _block_outputs(lm, ids: torch.Tensor) -> list[torch.Tensor]:
    layers = site_map(lm.model).layers
    with torch.no_grad(), capture({str(i): m for i, m in enumerate(layers)}) as store:
        lm.model(input_ids=ids, use_cache=False)
    return [store[str(i)][0] for i in range(len(layers))]


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_heldout_block_output_error_below_rtn(family: str) -> None:
    """On held-out token sequences, the last block's output (and the logits) are closer to full precision under
    GPTQ than under RTN at the same bits (int3), given enough calibration data (64 x 32 tokens)."""
    lm = tiny_model(family, seed=3, n_layers=3)  # own model: weights change
    held = _ids(99, n=16, L=32)
    fp = _block_outputs(lm, held)
    with torch.no_grad():
        fp_logits = lm.model(input_ids=held, use_cache=False).logits
    with quantized(lm, "int3-g16-sym"):
        rt = _block_outputs(lm, held)
        with torch.no_grad():
            rt_logits = lm.model(input_ids=held, use_cache=False).logits
    with gptq_quantized(lm, "int3-g16-sym", _ids(5, n=64, L=32)):
        gq = _block_outputs(lm, held)
        with torch.no_grad():
            gq_logits = lm.model(input_ids=held, use_cache=False).logits

    def rel(a: torch.Tensor, b: torch.Tensor) -> float:
        return float(((a - b) ** 2).sum() / (b**2).sum())

    assert rel(gq[-1], fp[-1]) < rel(rt[-1], fp[-1])
    assert rel(gq_logits, fp_logits) < rel(rt_logits, fp_logits)


def test_report_records_and_condition(tiny_gpt2, tiny_state_guard) -> None:
    """Records: gptq.layer_error for both methods on the same inputs; condition keys the W2 claims select on."""
    pool = text_items({"eng_Latn": ["The quick brown fox jumps over the lazy dog again and again."] * 12})
    cal = build_calibration(tiny_gpt2.tokenizer, pool, composition="eng", n_sequences=4, seq_len=16, seed=0)
    with gptq_quantized(tiny_gpt2, "int4-g16-sym", cal) as rep:
        recs = rep.to_records(tiny_gpt2.ref)
    assert rep.condition["scheme"] == "int4-g16-sym-gptq"
    assert rep.condition["calibration"] == "eng" and rep.condition["method"] == "gptq"
    errs = [r for r in recs if r.quantity == "gptq.layer_error"]
    assert {r.condition["method"] for r in errs} == {"gptq", "rtn"}
    for r in recs:
        assert Measurement.model_validate_json(r.model_dump_json()) == r


def test_condition_in_evaluate_conditions(tiny_llama, tiny_state_guard) -> None:
    """gptq_condition plugs into the paired evaluation; calibration text disjoint from evaluation items."""
    pool = text_items({"eng_Latn": ["Calibration text about foxes and dogs, repeated."] * 10}, prefix="cal")
    cal = build_calibration(tiny_llama.tokenizer, pool, composition="eng", n_sequences=4, seq_len=16, seed=0)
    items = text_items({"eng_Latn": ["Held out one.", "Held out two."], "heb_Hebr": ["שלום.", "עולם."]})
    cal.check_disjoint(items)
    res = evaluate_conditions(tiny_llama, items, ["fp32", "int4-g16-sym", gptq_condition("int4-g16-sym", cal)],
                              progress=False)
    frame = paired_frame([r for er in res.values() for r in er.records])
    assert set(frame["scheme"]) == {"int4-g16-sym", "int4-g16-sym-gptq"}


def test_bad_calibration_type(tiny_llama) -> None:
    with pytest.raises(TypeError, match="`calibration` must be a CalibrationSet"):
        apply_gptq(tiny_llama, "int4-g16-sym", [[1, 2, 3]])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`key` must look like"):
        apply_gptq(tiny_llama, "int4-g16", _ids(0, n=2, L=8))


@pytest.mark.parametrize("skip", [0, 1, 3])
def test_skip_positions_leaves_leading_positions_out_of_the_hessian(skip: int, tiny_llama, tiny_state_guard) -> None:
    """Oracle: a block-0 site's Hessian built by hand from its captured full-precision inputs without the first
    ``skip`` positions, quantized with :func:`gptq_quantize_weight` (float64, atol 1e-10)."""
    ids = _ids(7, n=4, L=12)
    site = site_map(tiny_llama.model).sites["layers.0.attn.q_proj"]
    with torch.no_grad(), capture({"q": site.module}, what="input") as store:
        tiny_llama.model(input_ids=ids, use_cache=False)
    x = torch.cat([t[:, skip:, :].reshape(-1, t.shape[-1]) for t in store["q"]]).double()
    hessian = 2.0 * x.t() @ x / x.shape[0]
    expected = gptq_quantize_weight(site.param.detach().clone(), hessian, QuantScheme.parse("int4-g16-sym"),
                                    compute_dtype="float64").dequantized
    with gptq_quantized(tiny_llama, "int4-g16-sym", ids, sites=["layers.0.attn.q_proj"], skip_positions=skip,
                        compute_dtype="float64") as rep:
        got = site.param.detach().clone()
    assert rep.sites[0].n_calib_tokens == ids.numel()
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-10)


def test_true_sequential_groups_and_matches_a_manual_pipeline(tiny_llama, tiny_state_guard) -> None:
    """Oracle: a hand-written true-sequential pass over block 0 (forward hooks capture each group's inputs after
    the earlier groups are quantized, then gptq_quantize_weight). q/k/v (the first group) are the same in both
    modes; o_proj, which reads the output of the quantized q/k/v, differs from the one-pass result."""
    from qdmodels.compress.gptq import _site_groups
    from qdmodels.models.blocks import collect_layer_inputs

    lm = tiny_llama
    smap = site_map(lm.model)
    ids = _ids(7, n=6, L=16)
    names = [n for n, s in smap.sites.items() if s.layer == 0 and s.param.ndim == 2]
    hidden, calls = collect_layer_inputs(lm.model, ids, batch_size=8)
    groups = _site_groups(smap, names, smap.layers[0], hidden[0], calls[0][0])
    assert [[n.split(".")[-1] for n in g] for g in groups] == [
        ["q_proj", "k_proj", "v_proj"], ["o_proj"], ["gate_proj", "up_proj"], ["down_proj"]]
    # manual pipeline on block 0 only
    from qdmodels.models.blocks import run_block

    manual = {}
    orig = {n: smap.sites[n].param.detach().clone() for n in names}
    with torch.no_grad():
        for g in groups:
            xs: dict[str, list[torch.Tensor]] = {n: [] for n in g}
            hooks = [smap.sites[n].module.register_forward_pre_hook(
                lambda m, a, n=n: xs[n].append(a[0].reshape(-1, a[0].shape[-1]).double())) for n in g]
            for h, c in zip(hidden, [c[0] for c in calls]):
                run_block(smap.layers[0], h, c)
            for hk in hooks:
                hk.remove()
            for n in g:
                x = torch.cat(xs[n])
                res = gptq_quantize_weight(orig[n], 2.0 * x.t() @ x / x.shape[0], QuantScheme.parse("int4-g16-sym"),
                                           layout="out_in", percdamp=0.01)
                smap.sites[n].param.data.copy_(res.dequantized)
                manual[n] = res.dequantized.clone()
        for n in names:
            smap.sites[n].param.data.copy_(orig[n])
    with gptq_quantized(lm, "int4-g16-sym", ids, sites=names, true_sequential=True) as rep:
        seq = {n: smap.sites[n].param.detach().clone() for n in names}
        assert rep.condition["true_sequential"] is True and "act_order" not in rep.condition
    with gptq_quantized(lm, "int4-g16-sym", ids, sites=names) as rep:
        one = {n: smap.sites[n].param.detach().clone() for n in names}
        assert "true_sequential" not in rep.condition
    for n in names:
        torch.testing.assert_close(seq[n], manual[n], rtol=1e-6, atol=1e-7)
    for n in groups[0]:
        torch.testing.assert_close(seq[n], one[n], rtol=0, atol=0)
    assert not torch.equal(seq[groups[1][0]], one[groups[1][0]])
    with pytest.raises(TypeError, match="`true_sequential` must be a bool"):
        apply_gptq(lm, "int4-g16-sym", ids, true_sequential="yes")
