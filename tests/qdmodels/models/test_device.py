"""Device and dtype options: resolution, clear errors, what the records carry; CUDA paths run only with a GPU."""

from __future__ import annotations

import pytest
import torch

from qdmodels.eval.encoding import text_items
from qdmodels.eval.scoring import evaluate_conditions
from qdmodels.models.loading import load_model
from qdmodels.models.tiny import tiny_model
from qdmodels.runtime import resolve_device

CUDA = torch.cuda.is_available()


def test_auto_is_cuda_when_present_else_cpu():
    assert resolve_device("auto").type == ("cuda" if CUDA else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(CUDA, reason="this machine has CUDA")
def test_cuda_on_a_cpu_machine_is_a_clear_error():
    with pytest.raises(ValueError, match=r"`device` 'cuda': CUDA is not available on this machine"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="CUDA is not available"):
        tiny_model("llama", device="cuda")


@pytest.mark.parametrize("bad", ["tpu", "cuda:x", "cpu:1", ""])
def test_unknown_devices_are_refused(bad):
    with pytest.raises(ValueError, match=r"`device` must be one of \('auto', 'cpu', 'cuda', 'mps'\)"):
        resolve_device(bad)


def test_records_carry_device_and_dtype(tmp_path):
    lm = tiny_model("llama", seed=2)
    lm.model.save_pretrained(tmp_path)
    lm.tokenizer.save_pretrained(tmp_path)
    half = load_model(tmp_path, dtype="float16", device="auto")
    assert half.ref.dtype == "float16" and next(half.model.parameters()).dtype == torch.float16
    assert half.ref.device == ("cpu" if not CUDA else half.ref.device) and half.ref.device is not None
    full = load_model(tmp_path, device="cpu")
    res = evaluate_conditions(full, text_items({"eng_Latn": ["The fox."]}), ["fp32"], progress=False)
    rec = next(r for er in res.values() for r in er.records)
    assert rec.model.device == "cpu" and rec.model.dtype == "float32"
    assert lm.ref.device == "cpu"


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs CUDA")
def test_cuda_evaluation_and_int4_match_cpu():
    """On a GPU: the same tiny model gives the same bits per byte on CUDA as on CPU (fp32, TF32 off), and the INT4
    condition keeps every tensor on the GPU (no device mismatch), restoring the weights exactly."""
    torch.backends.cuda.matmul.allow_tf32 = False
    items = text_items({"eng_Latn": ["The quick brown fox.", "A dog."], "heb_Hebr": ["השועל החום.", "כלב."]})
    cpu = tiny_model("llama", seed=4)
    gpu = tiny_model("llama", seed=4, device="cuda")
    before = {n: p.detach().clone() for n, p in gpu.model.named_parameters()}
    a = evaluate_conditions(cpu, items, ["fp32", "int4-g16-sym"], progress=False)
    b = evaluate_conditions(gpu, items, ["fp32", "int4-g16-sym"], progress=False)
    for ka, kb in zip(a, b):
        va = [r.value for r in a[ka].records if r.quantity == "eval.bits_per_byte"]
        vb = [r.value for r in b[kb].records if r.quantity == "eval.bits_per_byte"]
        assert va == pytest.approx(vb, abs=1e-4)
    assert all(torch.equal(before[n], p) for n, p in gpu.model.named_parameters())
    assert b[next(iter(b))].records[0].model.device.startswith("cuda:")


@pytest.mark.skipif(CUDA, reason="this machine has CUDA")
def test_cli_cuda_on_a_cpu_machine_exits_2(tmp_path):
    from typer.testing import CliRunner

    from qdmodels.cli.main import app

    f = tmp_path / "t.tsv"
    f.write_text("language\ttext\neng\tThe fox.\nheb\tהשועל.\n", encoding="utf-8")
    res = CliRunner().invoke(app, ["eval", "-m", "tiny:llama", "--corpus", str(f), "--langs", "eng,heb",
                                   "--device", "cuda", "--out", str(tmp_path / "r.jsonl")])
    assert res.exit_code == 2, res.output
    assert "CUDA is not available" in res.output and not (tmp_path / "r.jsonl").exists()
    ok = CliRunner().invoke(app, ["eval", "-m", "tiny:llama", "--corpus", str(f), "--langs", "eng,heb",
                                  "--device", "cpu", "--out", str(tmp_path / "r.jsonl")])
    assert ok.exit_code == 0, ok.output
    from qdstats.records import read_records

    assert {r.model.device for r in read_records(tmp_path / "r.jsonl")} == {"cpu"}
