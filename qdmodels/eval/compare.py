"""Released checkpoints against their original: the same items scored under several models, paired by item.

A quantized checkpoint downloaded from the hub (GPTQ, AWQ, a GGUF file) is a different model, so within-model
pairing cannot compare it with its original. :func:`evaluate_checkpoints` scores identical items under a base model
and every other model; :func:`qdstats.records.paired_frame` with ``across_models=True`` then pairs them by
``(language, item_id)``, each other model being a condition ``checkpoint=<model>``. Bits per byte does not depend
on the tokenizer, so the models may tokenize differently (each record also carries that model's ``eval.n_tokens``).

Examples
--------
>>> from qdmodels.models.tiny import tiny_model
>>> from qdmodels.eval.compare import evaluate_checkpoints
>>> from qdmodels.eval.encoding import text_items
>>> from qdstats.records import paired_frame
>>> res = evaluate_checkpoints(tiny_model("llama", seed=0), [tiny_model("llama", seed=1)],
...                            text_items({"eng_Latn": ["The fox."]}), progress=False)
>>> frame = paired_frame([r for er in res.values() for r in er.records], across_models=True)
>>> bool(frame["condition_short"].str.startswith("checkpoint=tiny:llama@").all())
True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from qdmodels.compress.conditions import DEFAULT_CONDITION, EvalCondition, fp_condition
from qdmodels.corpora.types import ParallelItem
from qdmodels.eval.scoring import ComputeDtype, EvalResult, evaluate_conditions
from qdmodels.runtime import flatten_items

__all__ = ["evaluate_checkpoints"]


def _label(lm: Any) -> str:
    ref = lm.ref
    return f"{ref.model_id}@{ref.sha256 or ref.revision}"


def evaluate_checkpoints(
    base: Any,
    others: Sequence[Any],
    items: Sequence[ParallelItem] | Mapping[str, Sequence[ParallelItem]],
    *,
    batch_size: int = 16,
    max_batch_tokens: int | None = None,
    compute_dtype: ComputeDtype = "float32",
    progress: bool = True,
) -> dict[str, EvalResult]:
    """Score the same items under ``base`` and every model in ``others`` (each as loaded, no compression).

    Parameters
    ----------
    base : LoadedModel
        The reference model (e.g. the original full-precision release).
    others : sequence of LoadedModel
        Models to compare with it (e.g. its quantized releases); at least one, all distinct from ``base``.
    items : sequence of ParallelItem or dict language -> items
        Scored identically under every model.
    batch_size, max_batch_tokens, compute_dtype, progress
        As in :func:`qdmodels.eval.scoring.evaluate`.

    Returns
    -------
    dict
        ``'<model_id>@<sha256 or revision>'`` -> :class:`~qdmodels.eval.scoring.EvalResult`, base first. Every
        record carries its own model in ``record.model``; pair them with
        ``qdstats.records.paired_frame(records, across_models=True)``.

    Raises
    ------
    TypeError
        A model without a ``.ref`` (a bare module cannot be told apart from another).
    ValueError
        No other model, or the same model (same weights) twice.

    Notes
    -----
    Each model is scored as it is, with :func:`~qdmodels.eval.scoring.evaluate_conditions`: the base under the
    full-precision condition, every other model under ``{'scheme': 'checkpoint', 'checkpoint': '<model>', ...}``
    (a dequantized checkpoint carries its own grid; nothing is quantized in process). Validated against: separate evaluations of each model
    (identical records) and a checkpoint equal to the base (Δ exactly 0), tests/qdmodels/eval/test_compare.py.
    """
    models = [base, *others]
    if not others:
        raise ValueError("`others` must name at least one model to compare with `base`.")
    for lm in models:
        if not hasattr(lm, "ref") or not hasattr(lm, "model"):
            raise TypeError(f"every model must be a LoadedModel (with a pinned .ref); got {type(lm).__name__}.")
    labels = [_label(lm) for lm in models]
    if len(set(labels)) != len(labels):
        raise ValueError(f"the same model (same weights) appears twice: {labels}; compare distinct checkpoints.")
    flat = flatten_items(items)
    out: dict[str, EvalResult] = {}
    for k, (label, lm) in enumerate(zip(labels, models)):
        cond = fp_condition() if k == 0 else EvalCondition({**DEFAULT_CONDITION, "scheme": "checkpoint", "checkpoint": label})
        res = evaluate_conditions(lm, flat, [cond], batch_size=batch_size, max_batch_tokens=max_batch_tokens,
                                  compute_dtype=compute_dtype, progress=progress)
        out[label] = next(iter(res.values()))
    return out
