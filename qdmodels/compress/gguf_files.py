"""GGUF files: write a model's current weights with chosen tensor types, and read a file's per-tensor layout.

:func:`write_gguf` is the one GGUF writer of ``qd``: it writes every weight of a model with ``gguf.GGUFWriter``,
the selected sites (a :class:`~qdmodels.compress.scheme.ProtectionPlan` selection, as for every condition) in a
chosen tensor type (``Q8_0``, ``Q4_0``...), quantized by ``gguf.quants.quantize``, the other 2-D tensors in ``F32``
(or ``F16``) and 1-D tensors (norms, biases) in ``F32``. Parameter names are mapped to GGUF tensor names with
transformers' own map (``get_gguf_hf_weights_map``, built on gguf-py's ``TensorNameMap``), and each tensor gets the
inverse of the transform transformers' GGUF loader applies when reading (the llama q/k row permutation of
llama.cpp's converter, Gemma's ``norm - 1``), so that loading the file with transformers gives back the model's
weights. A model loaded from a GGUF file keeps every key/value field of its source file (tokenizer included);
a tiny Llama built from a config gets the minimal llama metadata (no tokenizer).

:func:`read_gguf_layout` reads the per-tensor types of any GGUF file (the source of the embedded models, a file
llama.cpp wrote) as a :class:`GGUFLayout`: GGUF name, canonical site, layer, type, and the storage cost measured
from the file (bytes per tensor, scales included).

Examples
--------
>>> import tempfile, pathlib
>>> from qdmodels.models.tiny import tiny_model
>>> from qdmodels.compress.gguf_files import write_gguf
>>> path = pathlib.Path(tempfile.mkdtemp()) / "tiny-q4_0.gguf"
>>> layout = write_gguf(tiny_model("llama"), path, quant_type="Q4_0")
>>> sorted({t.gguf_type for t in layout.tensors})
['F32', 'Q4_0']
>>> layout.tensor("blk.0.attn_q.weight").bits_per_weight
4.5
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from qdmodels.compress.scheme import ProtectionPlan, resolve_sites
from qdmodels.models.sites import site_map
from qdmodels.runtime import unwrap_model
from qdstats.records import Measurement, ModelRef, atomic_path
from qdstats.validation import UnknownNameError, did_you_mean

__all__ = ["FP_TYPES", "GGUFLayout", "GGUFTensorInfo", "describe_layer_source_types", "describe_source_types",
           "gguf_arch", "iter_gguf_weights", "layer_source_types", "read_gguf_layout", "site_source_types",
           "source_gguf", "write_gguf"]

#: Unquantized GGUF tensor types the writer can use for the tensors it does not quantize.
FP_TYPES: tuple[str, ...] = ("F32", "F16")
#: transformers' model_type -> GGUF architecture name, where they differ (as in transformers' GGUF loader).
_ARCH_OF_MODEL_TYPE = {"gemma3_text": "gemma3", "cohere": "command-r", "qwen2_moe": "qwen2moe"}
_MODEL_TYPE_OF_ARCH = {v: k for k, v in _ARCH_OF_MODEL_TYPE.items()}
_BLK = re.compile(r"^blk\.(\d+)\.")


# ---- types and names -----------------------------------------------------------------------------------------


def _qtype(name: str, what: str = "quant_type") -> Any:
    """``gguf.GGMLQuantizationType`` named ``name`` (case-insensitive); clear error otherwise."""
    from gguf import GGMLQuantizationType

    allowed = [t.name for t in GGMLQuantizationType]
    key = str(name).upper()
    if key not in allowed:
        raise UnknownNameError(f"`{what}` {name!r} is not a GGML tensor type; allowed: {allowed}."
                               + did_you_mean(key, allowed))
    return GGMLQuantizationType[key]


def gguf_arch(model: Any) -> str:
    """The GGUF architecture name of a transformers model (``'llama'``, ``'gemma3'``...)."""
    mt = unwrap_model(model).config.model_type
    return _ARCH_OF_MODEL_TYPE.get(mt, mt)


def _processor(model: torch.nn.Module) -> Any:
    """transformers' GGUF tensor processor for the model's architecture (what its GGUF loader applies)."""
    from transformers.modeling_gguf_pytorch_utils import (
        TENSOR_PROCESSORS,
        TensorProcessor,
    )

    return TENSOR_PROCESSORS.get(gguf_arch(model), TensorProcessor)(config=model.config.to_dict())


def _name_map(model: torch.nn.Module, processor: Any) -> dict[str, str]:
    """HF parameter path -> GGUF tensor name (the inverse of transformers' ``get_gguf_hf_weights_map``)."""
    from transformers.modeling_gguf_pytorch_utils import get_gguf_hf_weights_map

    return {hf: g for g, hf in get_gguf_hf_weights_map(model, processor).items()}


def _loader_transform(processor: Any, x: np.ndarray, gguf_name: str) -> np.ndarray:
    """What transformers' GGUF loader does to tensor ``gguf_name`` after dequantizing it."""
    return np.asarray(processor.process(weights=x, name=gguf_name, tensor_key_mapping={}, parsed_parameters={}).weights)


def _to_file_layout(processor: Any, w: np.ndarray, gguf_name: str) -> np.ndarray:
    """The inverse of :func:`_loader_transform` for ``w``: a row permutation (llama q/k) or a constant shift
    (Gemma norms), found by probing transformers' own processor; any other transform is refused."""
    rows = w.shape[0]
    zero = _loader_transform(processor, np.zeros(rows, dtype=np.float64), gguf_name)
    ramp = _loader_transform(processor, np.arange(rows, dtype=np.float64), gguf_name) - zero
    if np.all(zero == zero[0]) and np.array_equal(np.sort(ramp), np.arange(rows)):
        perm = np.argsort(ramp.astype(np.int64))  # loader: out[i] = in[ramp[i]]  =>  in = out[argsort(ramp)]
        out = w[perm] if not np.array_equal(ramp, np.arange(rows)) else w
        return (out - zero[0]).astype(w.dtype) if zero[0] != 0 else out
    raise ValueError(f"cannot write tensor {gguf_name!r}: transformers' GGUF loader applies a transform to it that "
                     "is neither a row permutation nor a constant shift.")


# ---- layout ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GGUFTensorInfo:
    """One tensor of a GGUF file: names, type and storage cost measured from the file."""

    name: str
    site: str | None
    param: str | None
    layer: int | None
    gguf_type: str
    shape: tuple[int, ...]
    n_elements: int
    n_bytes: int

    @property
    def bits_per_weight(self) -> float:
        """Storage bits per weight of this tensor in the file (``n_bytes * 8 / n_elements``; scales included)."""
        return self.n_bytes * 8 / self.n_elements


@dataclass(frozen=True)
class GGUFLayout:
    """The per-tensor types of a GGUF file (:func:`read_gguf_layout`).

    Attributes
    ----------
    path : str
    architecture : str
    file_type : int or None
        ``general.file_type`` (llama.cpp's ``llama_ftype``).
    tensors : tuple of GGUFTensorInfo
        In file order.
    """

    path: str
    architecture: str
    file_type: int | None
    tensors: tuple[GGUFTensorInfo, ...]

    def tensor(self, name: str) -> GGUFTensorInfo:
        """The tensor with GGUF name ``name``."""
        for t in self.tensors:
            if t.name == name:
                return t
        raise KeyError(f"`name` {name!r} is not a tensor of {self.path}.")

    @property
    def bits_per_weight(self) -> float:
        """The whole file's tensor storage per weight (all tensor bytes x 8 / all elements)."""
        return sum(t.n_bytes for t in self.tensors) * 8 / sum(t.n_elements for t in self.tensors)

    def type_counts(self) -> dict[str, int]:
        """Number of tensors of each GGUF type."""
        out: dict[str, int] = {}
        for t in self.tensors:
            out[t.gguf_type] = out.get(t.gguf_type, 0) + 1
        return dict(sorted(out.items()))

    def by_layer(self, *, matrices_only: bool = True) -> dict[int, dict[str, str]]:
        """Block index -> {site kind (``'attn.q_proj'``...) or GGUF name: GGUF type}; 1-D tensors skipped by default."""
        out: dict[int, dict[str, str]] = {}
        for t in self.tensors:
            if t.layer is None or (matrices_only and len(t.shape) < 2):
                continue
            kind = t.site.split(".", 2)[2] if t.site else t.name
            out.setdefault(t.layer, {})[kind] = t.gguf_type
        return dict(sorted(out.items()))

    def to_frame(self) -> Any:
        """One row per tensor: name, site, param, layer, gguf_type, shape, n_elements, n_bytes, bits_per_weight."""
        import pandas as pd

        return pd.DataFrame([{"name": t.name, "site": t.site, "param": t.param, "layer": t.layer,
                              "gguf_type": t.gguf_type, "shape": "x".join(map(str, t.shape)),
                              "n_elements": t.n_elements, "n_bytes": t.n_bytes,
                              "bits_per_weight": t.bits_per_weight} for t in self.tensors])

    def to_records(self, model_ref: ModelRef | None = None, *, condition: Mapping[str, Any] | None = None,
                   routine: str = "qdmodels.compress.gguf_files.read_gguf_layout") -> list[Measurement]:
        """``quant.bits_per_weight`` per tensor (attributes: GGUF name and type, layer, shape) and for the file."""
        cond = dict(condition or {})
        recs = [Measurement(quantity="quant.bits_per_weight", value=t.bits_per_weight, model=model_ref, site=t.site,
                            condition=cond, n=t.n_elements, routine=routine,
                            attributes={"gguf_name": t.name, "gguf_type": t.gguf_type, "layer": t.layer,
                                        "shape": "x".join(map(str, t.shape)), "n_bytes": t.n_bytes,
                                        "scope": "gguf_tensor"})
                for t in self.tensors]
        recs.append(Measurement(quantity="quant.bits_per_weight", value=self.bits_per_weight, model=model_ref,
                                condition=cond, n=sum(t.n_elements for t in self.tensors), routine=routine,
                                attributes={"scope": "gguf_file", "file_type": self.file_type,
                                            "gguf_file": os.path.basename(self.path)}))
        return recs


def _skeleton(arch: str, n_layers: int) -> torch.nn.Module:
    """A model of ``arch`` on the meta device (no memory), only for its parameter names."""
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.for_model(_MODEL_TYPE_OF_ARCH.get(arch, arch), num_hidden_layers=n_layers)
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config)


def _field(reader: Any, key: str) -> Any:
    f = reader.get_field(key)
    return f.contents() if f is not None else None


def read_gguf_layout(path: str | os.PathLike[str], *, model: Any = None) -> GGUFLayout:
    """Read the per-tensor types and storage cost of a GGUF file.

    Parameters
    ----------
    path : path
        A ``.gguf`` file (or an embedded model name such as ``'gemma3-270m'``).
    model : torch.nn.Module or LoadedModel, optional
        The model the file holds, for the site names; default: a meta-device skeleton of the file's architecture.

    Returns
    -------
    GGUFLayout

    Raises
    ------
    FileNotFoundError
        No such file.

    Notes
    -----
    Site names come from transformers' GGUF name map (the one its loader uses) and :func:`site_map`; a tensor
    that maps to no parameter keeps ``site=None``. Bytes per tensor are the file's own (``GGUFReader``'s
    ``n_bytes``). Validated against: Q4_0 and Q8_0 tensors read back at 4.5 and 8.5 bits per weight, the block
    sizes of ``gguf.GGML_QUANT_SIZES`` (tests/qdmodels/compress/test_gguf_files.py).
    """
    from gguf import GGUFReader

    p = _resolve_path(path)
    reader = GGUFReader(p)
    arch = str(_field(reader, "general.architecture"))
    if model is None:
        n_layers = int(_field(reader, f"{arch}.block_count") or 0)
        try:
            mdl = _skeleton(arch, n_layers)
        except Exception:  # noqa: BLE001 - an architecture transformers cannot build: layout without site names
            mdl = None
    else:
        mdl = unwrap_model(model)
    g2hf: dict[str, str] = {}
    hf2site: dict[str, str] = {}
    if mdl is not None:
        g2hf = {g: hf for hf, g in _name_map(mdl, _processor(mdl)).items()}
        try:
            smap = site_map(mdl)
            hf2site = {s.param_path: name for name, s in smap.sites.items()}
        except (ValueError, KeyError):
            pass
    tensors = []
    for t in reader.tensors:
        hf = g2hf.get(t.name)
        m = _BLK.match(t.name)
        tensors.append(GGUFTensorInfo(
            name=t.name, site=hf2site.get(hf) if hf else None, param=hf, layer=int(m.group(1)) if m else None,
            gguf_type=t.tensor_type.name, shape=tuple(int(x) for x in reversed(t.shape)), n_elements=int(t.n_elements),
            n_bytes=int(t.n_bytes)))
    ft = _field(reader, "general.file_type")
    return GGUFLayout(path=str(p), architecture=arch, file_type=int(ft) if ft is not None else None,
                      tensors=tuple(tensors))


def _resolve_path(path: str | os.PathLike[str]) -> Path:
    from qdmodels.models import zoo

    name = os.fspath(path)
    if zoo.is_embedded(name):
        return zoo.resolve(name, verify_hash=False)
    p = Path(name)
    if not p.is_file():
        raise FileNotFoundError(f"`path` {name!r}: no such GGUF file (or embedded model {sorted(zoo.ZOO)}).")
    return p


def source_gguf(lm: Any) -> Path | None:
    """The GGUF file a model was loaded from (checked by sha256), or None.

    ``lm`` is a :class:`~qdmodels.models.loading.LoadedModel` (its ``ref``) or the bare module that
    :func:`~qdmodels.models.loading.load_model` made (``config.qd_source_gguf``), which is what a condition's
    ``apply`` receives.
    """
    from qdmodels.models import zoo

    ref = getattr(lm, "ref", None)
    if ref is not None:
        if ref.source != "gguf":
            return None
        cand, sha = (zoo.model_path(ref.model_id) if zoo.is_embedded(ref.model_id) else Path(ref.model_id)), ref.sha256
    else:
        cfg = getattr(unwrap_model(lm), "config", None)
        path, sha = getattr(cfg, "qd_source_gguf", None), getattr(cfg, "qd_source_gguf_sha256", None)
        if not path or not sha:
            return None
        cand = Path(path)
    if cand.is_file() and zoo.sha256_file(cand) == sha:
        return cand
    return None


def layer_source_types(lm: Any) -> dict[int, dict[str, str]]:
    """For a model loaded from a GGUF file: block index -> {site kind: GGUF type of the source file}.

    What layer-level analyses record as each layer's source precision (the embedded Gemma-3-270M mixes Q5_0,
    Q4_K, Q6_K and Q8_0 across layers). Raises ``ValueError`` for a model that was not loaded from a GGUF file.
    """
    src = source_gguf(lm)
    if src is None:
        ref = getattr(lm, "ref", None)
        raise ValueError(f"`lm` {getattr(ref, 'model_id', lm)!r} was not loaded from a GGUF file that is still on disk "
                         "with the same sha256; it has no source tensor types.")
    return read_gguf_layout(src, model=lm).by_layer()


def site_source_types(lm: Any) -> dict[str, str] | None:
    """For a model loaded from a GGUF file: canonical site name -> GGUF type of its matrix in the source file.

    ``None`` for a model that was not loaded from a GGUF file still on disk (a checkpoint, a tiny model): layer-level
    analyses then record no source types rather than failing.

    Examples
    --------
    >>> from qdmodels.models.loading import load_model
    >>> site_source_types(load_model("gemma3-270m"))["layers.0.attn.v_proj"]  # doctest: +SKIP
    'Q8_0'
    """
    src = source_gguf(lm)
    if src is None:
        return None
    layout = read_gguf_layout(src, model=lm)
    return {t.site: t.gguf_type for t in layout.tensors if t.site and len(t.shape) >= 2}


def describe_source_types(types: Mapping[str, str] | None, sites: Iterable[str]) -> str | None:
    """``'attn.v_proj=Q8_0,mlp.down_proj=Q6_K,...'`` for ``sites`` (their part after ``layers.N.``), sorted; the
    value layer-level records keep in ``attributes['source_gguf_types']``. ``None`` when ``types`` is ``None``; a
    site absent from the file's layout is listed as ``'?'``.

    Examples
    --------
    >>> describe_source_types({"layers.0.mlp.down_proj": "Q6_K", "layers.0.attn.q_proj": "Q5_0"},
    ...                       ["layers.0.attn.q_proj", "layers.0.mlp.down_proj"])
    'attn.q_proj=Q5_0,mlp.down_proj=Q6_K'
    """
    if types is None:
        return None
    parts = []
    for site in sites:
        tail = site.split(".", 2)[2] if site.startswith("layers.") and site.count(".") >= 2 else site
        parts.append(f"{tail}={types.get(site, '?')}")
    return ",".join(sorted(parts))


def describe_layer_source_types(types: Mapping[str, str] | None, layers: Iterable[int]) -> str | None:
    """``'layers.0:attn.q_proj=Q5_0,...;layers.17:...'``: every matrix of each of ``layers`` and its source type
    (what protection records keep in ``attributes['source_gguf_types']``); ``None`` when ``types`` is ``None``.

    Examples
    --------
    >>> describe_layer_source_types({"layers.0.mlp.down_proj": "Q6_K", "layers.2.mlp.down_proj": "Q4_K"}, [2, 0])
    'layers.0:mlp.down_proj=Q6_K;layers.2:mlp.down_proj=Q4_K'
    """
    if types is None:
        return None
    return ";".join(f"layers.{layer}:" + (describe_source_types(
        types, [s for s in types if s.startswith(f"layers.{layer}.")]) or "") for layer in sorted(layers))


# ---- writer ---------------------------------------------------------------------------------------------------


def _copy_metadata(writer: Any, src: Path, *, file_type: int) -> None:
    """Every key/value field of ``src`` except the reader's virtual fields and the architecture (the writer adds
    it); ``general.file_type`` set to ``file_type`` (as gguf-py's ``gguf_new_metadata`` copies fields)."""
    from gguf import GGUFReader, GGUFValueType, Keys

    reader = GGUFReader(src)
    for field in reader.fields.values():
        if field.name == Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
            continue
        if field.name == Keys.General.FILE_TYPE:
            continue
        vtype = field.types[0]
        sub = field.types[-1] if vtype == GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), vtype, sub_type=sub)
    writer.add_file_type(file_type)


def _minimal_llama_metadata(writer: Any, model: torch.nn.Module, name: str, file_type: int) -> None:
    cfg = model.config
    if cfg.model_type != "llama":
        raise ValueError(f"`model`: writing a GGUF without a source file is implemented for Llama models only (the "
                         f"minimal llama metadata); got model_type {cfg.model_type!r}.")
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    rope = (getattr(cfg, "rope_parameters", None) or {}).get("rope_theta", getattr(cfg, "rope_theta", 10000.0))
    writer.add_name(name)
    writer.add_context_length(cfg.max_position_embeddings)
    writer.add_embedding_length(cfg.hidden_size)
    writer.add_block_count(cfg.num_hidden_layers)
    writer.add_feed_forward_length(cfg.intermediate_size)
    writer.add_head_count(cfg.num_attention_heads)
    writer.add_head_count_kv(cfg.num_key_value_heads)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(float(rope))
    writer.add_layer_norm_rms_eps(float(cfg.rms_norm_eps))
    writer.add_vocab_size(cfg.vocab_size)
    if head_dim * cfg.num_attention_heads != cfg.hidden_size:
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
    writer.add_file_type(file_type)


def _file_type(quant_type: str) -> int:
    from gguf import LlamaFileType

    if quant_type == "F32":
        return int(LlamaFileType.ALL_F32)
    member = f"MOSTLY_{quant_type}"
    return int(getattr(LlamaFileType, member)) if hasattr(LlamaFileType, member) else int(LlamaFileType.GUESSED)


def _encode(x: np.ndarray, qtype: Any, name: str) -> tuple[np.ndarray, Any]:
    """``(data, raw_dtype)`` for ``GGUFWriter.add_tensor``: F32/F16 as floats, every other type quantized by gguf-py."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, quants

    if qtype == GGMLQuantizationType.F32:
        return x.astype(np.float32), None
    if qtype == GGMLQuantizationType.F16:
        return x.astype(np.float16), None
    block = GGML_QUANT_SIZES[qtype][0]
    if x.shape[-1] % block:
        raise ValueError(f"tensor {name!r} {tuple(x.shape)}: input dimension {x.shape[-1]} is not a multiple of the "
                         f"{qtype.name} block of {block}; write it in F32 (leave it out of the selection).")
    return quants.quantize(x.astype(np.float32), qtype), qtype


def write_gguf(
    model: Any,
    path: str | os.PathLike[str],
    *,
    quant_type: str = "F32",
    plan: ProtectionPlan | str | None = None,
    sites: str | Sequence[str] | None = None,
    fp_type: str = "F32",
    site_types: Mapping[str, str] | None = None,
    source: str | os.PathLike[str] | None = None,
) -> GGUFLayout:
    """Write a model's current weights to a GGUF file, the selected sites in ``quant_type``.

    Parameters
    ----------
    model : LoadedModel or torch.nn.Module
        Written as it is now (e.g. the dequantized fp32 embedded model, or a model inside a condition).
    path : path
        The ``.gguf`` file to write (atomically: a partial file never appears under this name).
    quant_type : str, default 'F32'
        GGML type of the selected sites (``'Q8_0'``, ``'Q4_0'``, ``'Q5_1'``, ``'F16'``...; any type gguf-py
        quantizes). ``'F32'`` writes everything in full precision (the input llama.cpp's quantizer expects).
    plan, sites
        The selection, as for every condition (:func:`~qdmodels.compress.scheme.resolve_sites`): by default the
        attention and MLP projection weights; embeddings, ``lm_head`` and norms are written in ``fp_type``/F32.
    fp_type : {'F32', 'F16'}, default 'F32'
        Type of the 2-D tensors outside the selection; 1-D tensors (norms, biases) are always F32.
    site_types : dict, optional
        Per-site type overrides (site name -> GGML type), applied last.
    source : path, optional
        The GGUF whose key/value metadata (tokenizer included) is copied; default: the file the model was loaded
        from (:func:`source_gguf`). Without one, a Llama model gets the minimal llama metadata (no tokenizer).

    Returns
    -------
    GGUFLayout
        The written file's layout, read back.

    Raises
    ------
    ValueError
        Unknown type; a quantized tensor whose input dimension is not a multiple of the type's block; a
        non-Llama model without a source file.

    Notes
    -----
    Tied tensors are written once (``output.weight`` is left out when ``lm_head`` shares the embedding, which is how
    llama.cpp and transformers recognise tied embeddings). Validated against: reading the file back with
    ``gguf.GGUFReader`` + ``gguf.quants.dequantize`` + transformers' loader transform equals
    ``gguf.quants`` applied tensor by tensor (bit-exact), and transformers loads an F32 file to identical weights
    (tests/qdmodels/compress/test_gguf_files.py).
    """
    from gguf import GGMLQuantizationType, GGUFWriter

    mdl = unwrap_model(model)
    qt = _qtype(quant_type)
    if str(fp_type).upper() not in FP_TYPES:
        raise ValueError(f"`fp_type` must be one of {list(FP_TYPES)}; got {fp_type!r}.")
    fpt = _qtype(fp_type, "fp_type")
    smap = site_map(mdl)
    if isinstance(plan, str):
        plan = ProtectionPlan.parse(plan)
    chosen: dict[str, Any] = {}
    if qt != GGMLQuantizationType.F32:
        for name in resolve_sites(smap, plan=plan, sites=sites, what=f"write as {qt.name}"):
            chosen[smap.sites[name].param_path] = qt
    for name, t in (site_types or {}).items():
        chosen[smap.get(name).param_path] = _qtype(t, "site_types")
    src = Path(source) if source is not None else source_gguf(model)
    arch = gguf_arch(mdl)
    processor = _processor(mdl)
    names = _name_map(mdl, processor)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(p, suffix=".partial") as tmp:
        writer = GGUFWriter(str(tmp), arch)
        if src is not None:
            _copy_metadata(writer, src, file_type=_file_type(qt.name))
        else:
            _minimal_llama_metadata(writer, mdl, getattr(getattr(model, "ref", None), "model_id", None)
                                    or mdl.config.model_type, _file_type(qt.name))
        seen: set[tuple[int, int]] = set()
        for hf, param in mdl.named_parameters(remove_duplicate=False):
            key = (param.data_ptr(), param.numel())
            if key in seen:
                continue  # a tied tensor is stored once
            seen.add(key)
            gname = names.get(hf)
            if gname is None:
                raise ValueError(f"parameter {hf!r} has no GGUF tensor name for architecture {arch!r}.")
            x = param.detach().to("cpu", torch.float32).numpy()
            x = _to_file_layout(processor, x, gname)
            qtype = chosen.get(hf, fpt if x.ndim >= 2 else GGMLQuantizationType.F32)
            data, raw = _encode(x, qtype, gname)
            writer.add_tensor(gname, data, raw_dtype=raw)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    return read_gguf_layout(p, model=mdl)


def iter_gguf_weights(path: str | os.PathLike[str], model: Any) -> Iterator[tuple[str, GGUFTensorInfo, np.ndarray]]:
    """``(parameter path, tensor info, weights)`` for each tensor of a GGUF file that maps to a parameter of
    ``model``: dequantized by ``gguf.quants.dequantize`` and transformed as transformers' GGUF loader does
    (float32, ``[out, in]``)."""
    from gguf import GGUFReader, quants

    mdl = unwrap_model(model)
    processor = _processor(mdl)
    g2hf = {g: hf for hf, g in _name_map(mdl, processor).items()}
    layout = read_gguf_layout(path, model=mdl)
    reader = GGUFReader(_resolve_path(path))
    for info, t in zip(layout.tensors, reader.tensors):
        hf = g2hf.get(t.name)
        if hf is None:
            continue
        w = quants.dequantize(t.data, t.tensor_type).astype(np.float32).reshape(info.shape)
        yield hf, info, _loader_transform(processor, w, t.name).astype(np.float32)
