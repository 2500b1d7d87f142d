"""Typed, frozen measurement records with provenance, and their storage (JSONL, DataFrame, Parquet)."""

from qdstats.records.io import (
    RecordFormatError,
    atomic_path,
    atomic_write_text,
    default_file_mode,
    export_json_schemas,
    from_frame,
    read_parquet,
    read_records,
    record_from_dict,
    to_frame,
    write_parquet,
    write_records,
)
from qdstats.records.measurement import ErrorInfo, FailedMeasurement, Measurement, Record
from qdstats.records.pairing import BASELINE_CONDITION, condition_label, paired_frame, paired_items
from qdstats.records.provenance import Provenance, current_routine, provenance_stamp
from qdstats.records.refs import LANGUAGE_PATTERN, CorpusRef, ModelRef

__all__ = [
    "BASELINE_CONDITION", "condition_label", "current_routine", "paired_frame", "paired_items",
    "LANGUAGE_PATTERN", "CorpusRef", "ErrorInfo", "FailedMeasurement", "Measurement", "ModelRef", "Provenance",
    "Record", "RecordFormatError", "atomic_path", "atomic_write_text", "default_file_mode", "export_json_schemas", "from_frame", "provenance_stamp",
    "read_parquet", "read_records", "record_from_dict", "to_frame", "write_parquet", "write_records",
]
