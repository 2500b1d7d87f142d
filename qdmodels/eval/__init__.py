"""What turns text into bits: encoding, batching, per-item scoring, layer sensitivity and its cheap proxies.

* :mod:`~qdmodels.eval.encoding`: items to token ids (context token prepended, never truncated), token byte spans;
* :mod:`~qdmodels.eval.batching`: length-sorted padded batches, token budgets, log-probs from the packed head;
* :mod:`~qdmodels.eval.scoring`: :func:`evaluate` / :func:`evaluate_conditions` (bits per byte per item, one record
  per quantity; pair them with :func:`qdstats.records.paired_frame`);
* :mod:`~qdmodels.eval.sensitivity`: one-site-group-at-a-time sweeps with prefix caching, protection search;
* :mod:`~qdmodels.eval.proxies`: cheap per-layer sensitivity proxies validated against the measured sweep;
* :mod:`~qdmodels.eval.compare`: released checkpoints against their original (:func:`evaluate_checkpoints`).
"""

from qdmodels.eval.compare import evaluate_checkpoints
from qdmodels.eval.encoding import EncodedItem, encode_items, text_items
from qdmodels.eval.scoring import EvalResult, ItemScore, TokenLogprobs, evaluate, evaluate_conditions
from qdmodels.eval.sensitivity import PrefixCache, SweepResult, search_protection, site_groups, sweep_layers

__all__ = [
    "EncodedItem", "EvalResult", "evaluate_checkpoints", "ItemScore", "PrefixCache", "SweepResult", "TokenLogprobs", "encode_items",
    "evaluate", "evaluate_conditions", "search_protection", "site_groups", "sweep_layers",
    "text_items",
]
