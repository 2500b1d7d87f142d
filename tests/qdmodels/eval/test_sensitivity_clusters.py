"""The sweep's confidence intervals resample documents, not sentences (a mutation review found this untested)."""

from __future__ import annotations

from qdmodels.corpora.types import ParallelItem
from qdmodels.eval.sensitivity import sweep_layers
from qdmodels.models.tiny import tiny_model


def _items() -> list[ParallelItem]:
    texts = ["The fox runs.", "A dog sleeps.", "Birds sing.", "Rain falls today.", "The sun is out.", "It is cold."]
    return [ParallelItem(item_id=f"s{k}", line=k, document_id=f"doc{k // 3}", language="eng_Latn", source_code="eng",
                         text=t) for k, t in enumerate(texts)]


def test_sweep_ci_clusters_by_document():
    lm = tiny_model("llama", n_layers=2, seed=3)
    res = sweep_layers(lm, _items(), "int3-ch-sym", layers=[0], n_resamples=199, rng=5, progress=False)
    (rec,) = res.records
    assert rec.quantity == "sens.delta_bits_per_byte" and rec.n == 6
    assert rec.attributes["n_clusters"] == 2 and rec.attributes["cluster_by"] == "document_id"
