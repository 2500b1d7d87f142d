"""Typed, frozen measurement records with provenance, and their storage (JSONL, DataFrame, Parquet)."""

from qdstats.records.io import (
    RecordFormatError,
    atomic_write_text,
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
from qdstats.records.provenance import Provenance, provenance_stamp
from qdstats.records.refs import LANGUAGE_PATTERN, CorpusRef, ModelRef

__all__ = [
    "LANGUAGE_PATTERN", "CorpusRef", "ErrorInfo", "FailedMeasurement", "Measurement", "ModelRef", "Provenance",
    "Record", "RecordFormatError", "atomic_write_text", "export_json_schemas", "from_frame", "provenance_stamp",
    "read_parquet", "read_records", "record_from_dict", "to_frame", "write_parquet", "write_records",
]
