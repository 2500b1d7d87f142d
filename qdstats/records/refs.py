"""References to the model and the corpus a measurement was made on."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_serializer, model_validator

__all__ = ["CorpusRef", "ModelRef", "LANGUAGE_PATTERN"]

LANGUAGE_PATTERN = r"^[a-z]{3}_[A-Z][a-z]{3}$"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ModelRef(BaseModel):
    """A pinned reference to a model: a hub id with a revision, or a local file/directory with its sha256."""

    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="constants")

    model_id: str = Field(description="Hugging Face id, local path, GGUF file name or 'tiny:<family>' for configs built in tests.")
    source: Literal["hub", "local", "gguf", "config"] = Field(description="Where the weights came from.")
    revision: str | None = Field(default=None, description="Hub commit hash (required for source='hub'; no floating 'main').")
    sha256: str | None = Field(default=None, description="sha256 of the weights file (gguf/safetensors), or of the config JSON + seed for source='config'.")
    dtype: str = Field(default="float32", description="Compute dtype of the loaded weights, e.g. 'float32'.")
    device: str | None = Field(default=None, description="Device the model was loaded on, e.g. 'cpu' or 'cuda:0 (NVIDIA H100 80GB HBM3)'; None in records made before it was recorded.")
    n_params: int | None = Field(default=None, ge=0, description="Number of parameters (tied weights counted once).")
    family: str | None = Field(default=None, description="Architecture family, e.g. 'llama', 'gpt2', 'gemma3'.")
    note: str | None = Field(default=None, description="Caveats, e.g. 'fp32 baseline is a dequantized Q4_1 GGUF'.")

    @model_serializer(mode="wrap")
    def _omit_unrecorded_device(self, handler: Any) -> dict[str, Any]:
        # records made before the device was recorded serialize (and hash) exactly as they did
        data = handler(self)
        if isinstance(data, dict) and data.get("device") is None:
            data.pop("device", None)
        return data

    @model_validator(mode="after")
    def _pinned(self) -> "ModelRef":
        if self.sha256 is not None and not _SHA256.match(self.sha256):
            raise ValueError(f"`sha256` must be 64 lowercase hex digits; got {self.sha256!r}.")
        if self.source == "hub":
            if not self.revision or self.revision in {"main", "master", "HEAD"}:
                raise ValueError(
                    f"`revision` must pin a commit for hub model {self.model_id!r}; got {self.revision!r}."
                )
        elif self.sha256 is None and self.revision is None:
            raise ValueError(f"a {self.source} model ({self.model_id!r}) needs `sha256` (or `revision`) to be pinned.")
        return self


class CorpusRef(BaseModel):
    """A pinned reference to the text a measurement was made on."""

    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="constants")

    corpus_id: str = Field(description="Corpus id as in corpora/<id>/manifest.yaml, e.g. 'ntrex128'.")
    split: str | None = Field(default=None, description="'dev', 'test', 'all' or a treebank split name.")
    sha256: str = Field(description="sha256 of the source file the items came from (or of the sorted file hashes for several).")
    normalization: tuple[str, ...] = Field(default=("NFC",), description="Text normalization steps applied, in order.")
    version: str | None = Field(default=None, description="Upstream version or commit of the corpus.")
    license_flags: tuple[str, ...] = Field(default=(), description="License restrictions to show in reports, e.g. ('non-commercial',).")

    @model_validator(mode="after")
    def _hash(self) -> "CorpusRef":
        if not _SHA256.match(self.sha256):
            raise ValueError(f"`sha256` must be 64 lowercase hex digits; got {self.sha256!r}.")
        return self
