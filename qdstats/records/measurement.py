"""The measurement record and the failure record."""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from qdstats.quantities import get_quantity
from qdstats.records.provenance import Provenance, provenance_stamp
from qdstats.records.refs import LANGUAGE_PATTERN, CorpusRef, ModelRef

__all__ = ["FailedMeasurement", "Measurement", "Record", "ConditionValue"]

ConditionValue = Union[bool, int, float, str, None]


def _sorted_dict(d: dict[str, Any] | None, name: str) -> dict[str, Any]:
    if d is None:
        return {}
    for k, v in d.items():
        if not isinstance(k, str):
            raise ValueError(f"`{name}` keys must be strings; got {k!r}.")
        if isinstance(v, float) and math.isinf(v):
            raise ValueError(f"`{name}[{k!r}]` is infinite; only finite numbers are allowed.")
    return {k: d[k] for k in sorted(d)}


def _stamp_or_sync(data: dict[str, Any]) -> None:
    """Stamp provenance from ``routine`` when absent; when present, keep ``routine`` in sync with it."""
    prov = data.get("provenance")
    if prov is None:
        data["provenance"] = provenance_stamp(str(data.get("routine") or "unknown"))
        data.setdefault("routine", data["provenance"].routine)
    elif "routine" not in data:
        data["routine"] = prov.routine if isinstance(prov, Provenance) else prov.get("routine", "unknown")


class Measurement(BaseModel):
    """One measured value, with everything needed to defend it.

    ``unit`` is filled from the quantity registry when omitted and must agree with it when given.
    ``value`` may be NaN only when ``warnings`` explains why. ``provenance`` is stamped automatically.

    Examples
    --------
    >>> from qdstats.records import Measurement, ModelRef
    >>> m = Measurement(quantity="eval.bits_per_byte", value=1.25, language="heb_Hebr",
    ...                 model=ModelRef(model_id="tiny:gpt2", source="config", sha256="0" * 64),
    ...                 item_id="ntrex128:17", condition={"scheme": "int4-g128-sym"}, routine="doc.example")
    >>> m.unit
    'bit/byte'
    """

    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="constants")

    schema_name: Literal["qd.measurement"] = Field(default="qd.measurement", description="Self-identifying schema name.")
    schema_version: Literal[1] = Field(default=1, description="Schema version; bumped on any breaking change.")
    quantity: str = Field(description="Registered quantity name (see qdstats.quantities).")
    value: float = Field(description="The measured value at full precision. NaN only with a warning.")
    unit: str = Field(default="", description="Unit, copied from the quantity registry.")
    model: ModelRef | None = Field(default=None, description="The model measured, pinned by revision or sha256.")
    site: str | None = Field(default=None, description="Canonical site name from qdmodels.models.sites, e.g. 'layers.3.mlp.down_proj'.")
    language: str | None = Field(default=None, pattern=LANGUAGE_PATTERN, description="ISO 639-3 + ISO 15924 script, e.g. 'heb_Hebr'.")
    corpus: CorpusRef | None = Field(default=None, description="The text the value was measured on.")
    item_id: str | None = Field(default=None, description="Unit of observation inside the corpus (sentence id, 'sent:word' id).")
    condition: dict[str, ConditionValue] = Field(default_factory=dict, description="Experimental condition, e.g. {'scheme': 'int4-g128-sym', 'protect': 'none'}.")
    attributes: dict[str, ConditionValue] = Field(default_factory=dict, description="Descriptive covariates of the unit (document id, word length, alignment...).")
    n: int | None = Field(default=None, ge=0, description="Number of items aggregated into `value` (None for a single item).")
    seed: int | None = Field(default=None, description="Random seed used, if any.")
    warnings: tuple[str, ...] = Field(default=(), description="Degeneracy notes that travel into claims tables.")
    routine: str = Field(default="unknown", exclude=True, description="Producing routine; used only to stamp provenance.")
    provenance: Provenance | None = Field(default=None, description="Automatic stamp: package version, git sha, routine, time, libraries.")

    @field_validator("condition", "attributes", mode="before")
    @classmethod
    def _sort(cls, v: Any, info: Any) -> Any:
        return _sorted_dict(v, info.field_name) if isinstance(v, dict) or v is None else v

    @model_validator(mode="before")
    @classmethod
    def _fill(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            q = data.get("quantity")
            if isinstance(q, str):
                unit = get_quantity(q).unit  # raises UnknownNameError with suggestions
                given = data.get("unit")
                if given in (None, ""):
                    data["unit"] = unit
                elif given != unit:
                    raise ValueError(f"`unit` for quantity {q!r} must be {unit!r}; got {given!r}.")
            _stamp_or_sync(data)
        return data

    @model_validator(mode="after")
    def _nan_needs_warning(self) -> "Measurement":
        if math.isinf(self.value):
            raise ValueError(f"`value` of {self.quantity!r} is infinite; record NaN with a warning instead.")
        if math.isnan(self.value) and not self.warnings:
            raise ValueError(f"`value` of {self.quantity!r} is NaN; a NaN must carry a `warnings` entry explaining it.")
        return self

    def content_key(self) -> str:
        """sha256 of the record's content without provenance (stable across reruns)."""
        payload = self.model_dump(mode="json", exclude={"provenance"})
        return hashlib.sha256(json.dumps(payload, sort_keys=True, allow_nan=True).encode()).hexdigest()


class ErrorInfo(BaseModel):
    """What went wrong in a failed step."""

    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="constants")

    error_type: str = Field(description="Exception class name.")
    message: str = Field(description="Exception message.")
    traceback: str | None = Field(default=None, description="Formatted traceback, if captured.")


class FailedMeasurement(BaseModel):
    """A step that failed: the failure is data, and a sweep keeps going (QCElemental's FailedOperation)."""

    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="constants")

    schema_name: Literal["qd.failed_measurement"] = Field(default="qd.failed_measurement", description="Self-identifying schema name.")
    schema_version: Literal[1] = Field(default=1, description="Schema version.")
    success: Literal[False] = Field(default=False, description="Always False.")
    quantity: str | None = Field(default=None, description="The quantity that was to be measured, if known.")
    model: ModelRef | None = Field(default=None, description="Model involved, if known.")
    site: str | None = Field(default=None, description="Site involved, if any.")
    language: str | None = Field(default=None, pattern=LANGUAGE_PATTERN, description="Language involved, if any.")
    corpus: CorpusRef | None = Field(default=None, description="Corpus involved, if any.")
    item_id: str | None = Field(default=None, description="Item involved, if any.")
    condition: dict[str, ConditionValue] = Field(default_factory=dict, description="Condition of the failed step.")
    input: dict[str, Any] = Field(default_factory=dict, description="JSON-serializable inputs needed to retry the step.")
    error: ErrorInfo = Field(description="The error.")
    routine: str = Field(default="unknown", exclude=True, description="Producing routine; used only to stamp provenance.")
    provenance: Provenance | None = Field(default=None, description="Automatic stamp.")

    @model_validator(mode="before")
    @classmethod
    def _stamp(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            _stamp_or_sync(data)
        return data

    @classmethod
    def from_exception(cls, exc: BaseException, *, routine: str, with_traceback: bool = True, **context: Any) -> "FailedMeasurement":
        """Build a failure record from an exception and the step's context."""
        import traceback as _tb

        tb = "".join(_tb.format_exception(type(exc), exc, exc.__traceback__)) if with_traceback else None
        return cls(error=ErrorInfo(error_type=type(exc).__name__, message=str(exc), traceback=tb), routine=routine, **context)


Record = Union[Measurement, FailedMeasurement]
