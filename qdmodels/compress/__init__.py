"""What changes weights, reversibly: quantization schemes, protection plans, compressors and conditions.

* :mod:`~qdmodels.compress.scheme`: :class:`QuantScheme` (how), :class:`ProtectionPlan` (what stays full precision),
  site selection;
* :mod:`~qdmodels.compress.restore`: exact weight backups and the one :class:`RestoreHandle` every compressor returns;
* :mod:`~qdmodels.compress.rtn`: round-to-nearest fake quantization (:func:`quantized`, :func:`apply_quantization`);
* :mod:`~qdmodels.compress.gptq`: GPTQ-style calibrated quantization (:func:`apply_gptq`);
* :mod:`~qdmodels.compress.gguf`: deployed GGUF block formats (``gguf-q4_0``...) through gguf-py's own quantizer;
* :mod:`~qdmodels.compress.calibration_sets`: calibration token streams of a declared composition;
* :mod:`~qdmodels.compress.pruning`: magnitude pruning, alone or before quantization;
* :mod:`~qdmodels.compress.conditions`: :class:`EvalCondition`, a record's ``condition`` plus the context manager
  that applies it, which every scorer takes.

A new quantization backend is a module here whose apply function changes the selected sites in place, backs them
up with :class:`WeightBackup`, returns a :class:`RestoreHandle`, and has a ``*_condition`` constructor.
"""

from qdmodels.compress.calibration_sets import CalibrationSet, build_calibration, calibration_pool
from qdmodels.compress.conditions import DEFAULT_CONDITION, EvalCondition, as_condition, fp_condition, quant_condition
from qdmodels.compress.gguf import GGUF_TYPES, apply_gguf, gguf_condition, gguf_quantized
from qdmodels.compress.gptq import apply_gptq, gptq_condition, gptq_quantized
from qdmodels.compress.pruning import PruneSpec, apply_pruning, compressed, pruned
from qdmodels.compress.restore import RestoreHandle, WeightBackup
from qdmodels.compress.rtn import QuantizationReport, apply_quantization, fake_quantize, quantized
from qdmodels.compress.scheme import ProtectionPlan, QuantScheme, resolve_sites

__all__ = [
    "DEFAULT_CONDITION", "GGUF_TYPES", "CalibrationSet", "apply_gguf", "gguf_condition", "gguf_quantized", "EvalCondition", "ProtectionPlan", "PruneSpec", "QuantScheme",
    "QuantizationReport", "RestoreHandle", "WeightBackup", "apply_gptq", "apply_pruning", "apply_quantization",
    "as_condition", "build_calibration", "calibration_pool", "compressed", "fake_quantize", "fp_condition",
    "gptq_condition", "gptq_quantized", "pruned", "quant_condition", "quantized", "resolve_sites",
]
