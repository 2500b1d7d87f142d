"""qdstats: statistics for quantization-disparity measurements (never imports torch or transformers)."""

from qdstats.records.provenance import package_version as _pv

__version__ = _pv()
