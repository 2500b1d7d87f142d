"""Load a causal LM with its tokenizer and a pinned :class:`~qdstats.records.ModelRef`.

Three kinds of names are accepted by :func:`load_model`:

* an **embedded default model** (``'smollm2-135m'``, ``'gemma3-270m'``), resolved through :mod:`qdmodels.models.zoo`
  to a GGUF file in the model cache;
* a **GGUF file** (a path ending in ``.gguf``, or a directory plus ``gguf_file=``), read by transformers'
  GGUF support, which dequantizes every tensor to the requested dtype;
* a **Hugging Face id or local directory**, loaded with ``AutoModelForCausalLM``/``AutoTokenizer``, offline
  by default (``local_files_only=True``); hub models are pinned to the commit hash of the local snapshot.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from qdmodels.runtime import describe_device, resolve_device
from qdstats.records import ModelRef
from qdstats.validation import check_option

__all__ = ["DType", "LoadedModel", "count_parameters", "dequantized_cache_dir", "load_model"]

DType = Literal["float32", "bfloat16", "float16"]
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
_HEX40 = re.compile(r"^[0-9a-f]{40}$")


@dataclass
class LoadedModel:
    """A model in eval mode, its tokenizer, and the pinned reference every record will carry."""

    model: Any
    tokenizer: Any
    ref: ModelRef

    @property
    def family(self) -> str | None:
        """Architecture family (``config.model_type``)."""
        return self.ref.family


def count_parameters(model: torch.nn.Module) -> int:
    """Number of parameters, counting each tied/shared tensor once (by storage pointer).

    Examples
    --------
    >>> from qdmodels.models.tiny import tiny_model
    >>> lm = tiny_model("gpt2")
    >>> count_parameters(lm.model) < sum(p.numel() for _, p in lm.model.named_parameters(remove_duplicate=False))
    True
    """
    seen: set[tuple[int, int]] = set()
    total = 0
    for _, p in model.named_parameters(remove_duplicate=False):
        key = (p.data_ptr(), p.numel())
        if key in seen:
            continue
        seen.add(key)
        total += p.numel()
    return total


def _sha256_file(path: Path) -> str:
    from qdmodels.models.zoo import sha256_file

    return sha256_file(path)


def _sha256_dir_weights(path: Path) -> str | None:
    files = sorted([*path.glob("*.safetensors"), *path.glob("*.bin")])
    if not files:
        return None
    if len(files) == 1:
        return _sha256_file(files[0])
    h = hashlib.sha256()
    for f in files:
        h.update(f"{f.name}:{_sha256_file(f)}\n".encode())
    return h.hexdigest()


def _hub_revision(name: str, revision: str | None, local_files_only: bool) -> str | None:
    """Resolve a hub model's commit hash from the local snapshot (or the hub when online)."""
    if revision is not None and _HEX40.match(revision):
        return revision
    try:
        from huggingface_hub import snapshot_download

        snap = snapshot_download(name, revision=revision, local_files_only=local_files_only,
                                 allow_patterns=["config.json"])
    except Exception:  # noqa: BLE001 - transformers raises the informative error on load
        return None
    commit = Path(snap).name
    return commit if _HEX40.match(commit) else None


def dequantized_cache_dir(gguf_sha256: str, dtype: str) -> Path:
    """Where :func:`load_model` caches the dequantized form of a GGUF file (see ``cache_dequantized``)."""
    import transformers

    from qdmodels.models.zoo import model_dir

    return model_dir() / "dequantized" / f"{gguf_sha256[:16]}-{dtype}-tf{transformers.__version__}"


def _load_gguf(path: Path, sha: str, torch_dtype: torch.dtype, dtype: str, use_cache: bool,
               trust_remote_code: bool) -> tuple[Any, Any]:
    import shutil
    import tempfile

    from safetensors.torch import save_model as st_save_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cache = dequantized_cache_dir(sha, dtype)
    if use_cache and (cache / "COMPLETE").is_file():
        # from_pretrained initializes on the meta device and maps the safetensors file: peak memory about one copy
        # of the weights (from_config + safetensors.load_model peaked at about two and a half)
        model = AutoModelForCausalLM.from_pretrained(cache, dtype=torch_dtype, local_files_only=True,
                                                     trust_remote_code=trust_remote_code)
        tokenizer = AutoTokenizer.from_pretrained(cache, local_files_only=True, trust_remote_code=trust_remote_code)
        _mark_source(model, path, sha)
        return model, tokenizer
    kw: dict[str, Any] = dict(gguf_file=path.name, local_files_only=True, trust_remote_code=trust_remote_code)
    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), **kw)
    model = AutoModelForCausalLM.from_pretrained(str(path.parent), dtype=torch_dtype, **kw)
    if use_cache:
        tmp = None
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=cache.name + ".", dir=cache.parent))
            st_save_model(model, str(tmp / "model.safetensors"))  # shared (tied) tensors stored once
            model.config.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            (tmp / "COMPLETE").write_text(json.dumps({"gguf": path.name, "gguf_sha256": sha}) + "\n")
            if cache.exists():
                shutil.rmtree(cache, ignore_errors=True)
            os.replace(tmp, cache)
            tmp = None
        except OSError:  # a read-only cache is not an error: the model is loaded either way
            pass
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
    _mark_source(model, path, sha)
    return model, tokenizer


def _mark_source(model: Any, path: Path, sha: str) -> None:
    """Remember on the module which GGUF file it came from (``config.qd_source_gguf`` and its sha256), so code that
    only holds the ``nn.Module`` (a condition's ``apply``) can still find the source file's metadata and types."""
    model.config.qd_source_gguf = str(path.resolve())
    model.config.qd_source_gguf_sha256 = sha


def _finish(model: Any, tokenizer: Any, ref_kwargs: dict[str, Any], device: torch.device | None = None) -> LoadedModel:
    if device is not None:
        model.to(device)
        ref_kwargs = {**ref_kwargs, "device": describe_device(device)}
    model.eval()
    if tokenizer is not None and getattr(tokenizer, "pad_token", None) is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    model_type = getattr(model.config, "model_type", None)
    family = {"gemma3_text": "gemma3"}.get(model_type, model_type)
    ref = ModelRef(n_params=count_parameters(model), family=family, **ref_kwargs)
    return LoadedModel(model=model, tokenizer=tokenizer, ref=ref)


_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)?$")


def _check_dir_or_hub_id(name: str, local: Path) -> None:
    """A name that is neither an existing directory nor a hub id (``org/name``) is a path that was not found."""
    if local.is_dir():
        return
    from qdmodels.models import zoo

    allowed = (f"an embedded model {sorted(zoo.ZOO)}, a .gguf file, a local model directory, or a Hugging Face hub id "
               "('org/name')")
    if local.is_file():
        raise ValueError(f"`name_or_path` {name!r} is a file but not a .gguf file; expected {allowed}.")
    looks_like_path = name.startswith(("/", "./", "../", "~")) or "\\" in name or name.count("/") > 1
    if looks_like_path or not _HUB_ID.match(name) or name.endswith((".", "-")) or len(name) > 96:
        raise FileNotFoundError(f"`name_or_path` {name!r} not found: no such directory; expected {allowed}.")


def load_model(
    name_or_path: str | os.PathLike[str],
    *,
    revision: str | None = None,
    gguf_file: str | None = None,
    dtype: DType = "float32",
    device: str = "cpu",
    local_files_only: bool = True,
    trust_remote_code: bool = False,
    cache_dequantized: bool = True,
) -> LoadedModel:
    """Load a causal LM, its tokenizer and a pinned :class:`~qdstats.records.ModelRef`.

    Parameters
    ----------
    name_or_path : str or path
        An embedded model name (``'smollm2-135m'``, ``'gemma3-270m'``), a ``.gguf`` file, a local model
        directory, or a Hugging Face id.
    revision : str, optional
        Hub revision (branch, tag or commit); the resolved commit hash is recorded. Only for hub ids: GGUF files
        and local directories are pinned by sha256 instead.
    gguf_file : str, optional
        GGUF file name inside the directory/repo ``name_or_path``.
    dtype : {'float32', 'bfloat16', 'float16'}, default 'float32'
        Dtype of the weights; GGUF tensors are dequantized to it. fp32 is the reference for deltas; the others
        are for a GPU (on CPU, bf16 matmuls are slow and fp16 may be unsupported by some kernels).
    device : {'cpu', 'auto', 'cuda', 'cuda:N', 'mps'}, default 'cpu'
        Where the model is placed (:func:`qdmodels.runtime.resolve_device`: ``'auto'`` picks CUDA when present;
        asking for CUDA on a machine without it is a clear error). Every compressor, probe and scorer keeps its
        tensors on the model's device. Recorded in ``ref.device`` (with the GPU's name).
    local_files_only : bool, default True
        Never touch the network unless False (the CLI's ``--online``).
    trust_remote_code : bool, default False
        Passed to transformers; keep False unless you have read the model's code.
    cache_dequantized : bool, default True
        For GGUF files: keep the dequantized model as safetensors in
        ``<model cache>/dequantized/<gguf sha256[:16]>-<dtype>-tf<transformers version>/`` and load from there
        next time (seconds instead of a minute on 2 cores). The ``ModelRef`` is the same either way (the GGUF's
        sha256); the cache is keyed by that hash, so a changed file never reuses a stale cache.

    Returns
    -------
    LoadedModel
        ``model`` (eval mode, on ``device``), ``tokenizer`` (pad token set to eos when missing) and ``ref``
        (``source`` 'gguf'/'local'/'hub', ``sha256`` of the weights file(s) or the hub commit ``revision``,
        ``dtype``, ``n_params`` counting tied weights once, ``family`` = ``config.model_type``).

    Raises
    ------
    ValueError
        Bad ``dtype``; ``revision`` given for a file or directory; an embedded model whose file fails its sha256
        check; a hub model whose commit hash cannot be resolved.
    qdmodels.models.zoo.ModelNotFetchedError
        An embedded model that has not been fetched (``qd models fetch NAME``).
    OSError
        The model is not available locally and ``local_files_only`` is True (raised by transformers).

    Notes
    -----
    GGUF files are dequantized by transformers (``gguf`` package); for the embedded models the resulting
    fp32 weights are exactly the 4-bit grid of the file, so ``ref.note`` says "fp32 baseline is a dequantized
    Q4_1/Q4_K_M GGUF". Validated against: the tests in ``tests/qdmodels/models/test_loading.py`` (tiny models saved and
    reloaded give identical logits, atol 0 in fp32; the real GGUFs give finite logits whose next-token
    prediction on English text beats chance by a wide margin; the dequantized cache gives bit-identical logits).

    References
    ----------
    .. [1] Allal, L. B. et al. (2025). SmolLM2: When Smol Goes Big. arXiv:2502.02737.
    .. [2] Gemma Team (2025). Gemma 3 Technical Report. arXiv:2503.19786.
    .. [3] GGUF file format, https://github.com/ggml-org/ggml/blob/master/docs/gguf.md

    Examples
    --------
    >>> lm = load_model("smollm2-135m")  # doctest: +SKIP
    >>> lm.ref.source, lm.ref.family  # doctest: +SKIP
    ('gguf', 'llama')
    """
    check_option(dtype, "dtype", tuple(_DTYPES))
    torch_dtype = _DTYPES[dtype]
    target = resolve_device(device)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    name = os.fspath(name_or_path)
    note = None
    from qdmodels.models import zoo

    if revision is not None and (zoo.is_embedded(name) or gguf_file is not None or name.endswith(".gguf")):
        raise ValueError(f"`revision` applies only to hub ids; got revision={revision!r} for the GGUF model {name!r}.")
    if zoo.is_embedded(name):
        entry = zoo.ZOO[name]
        path = zoo.resolve(name, verify_hash=False)
        note = entry.note
        model_id = name
    elif gguf_file is not None or name.endswith(".gguf"):
        path = Path(name) / gguf_file if gguf_file is not None else Path(name)
        model_id = name if gguf_file is None else f"{name}/{gguf_file}"
    else:
        path = None

    if path is not None:  # GGUF
        if not Path(path).is_file():
            raise FileNotFoundError(f"`name_or_path`/`gguf_file`: GGUF file {path} does not exist.")
        sha = _sha256_file(Path(path))
        if zoo.is_embedded(name) and sha != zoo.ZOO[name].sha256:
            raise ValueError(
                f"{path} has sha256 {sha}, expected {zoo.ZOO[name].sha256} for {name!r}; "
                f"delete it and run `qd models fetch {name}`."
            )
        model, tokenizer = _load_gguf(Path(path), sha, torch_dtype, dtype, cache_dequantized, trust_remote_code)
        if note is None:
            note = "weights dequantized from a GGUF file (the fp baseline carries the file's quantization grid)"
        return _finish(model, tokenizer, dict(model_id=model_id, source="gguf", sha256=sha, dtype=dtype, note=note), target)

    kw = dict(local_files_only=local_files_only, trust_remote_code=trust_remote_code)
    local = Path(name)
    _check_dir_or_hub_id(name, local)
    if local.is_dir():
        if revision is not None:
            raise ValueError(f"`revision` applies only to hub ids; got revision={revision!r} for the directory {local}.")
        tokenizer = AutoTokenizer.from_pretrained(name, **kw)
        model = AutoModelForCausalLM.from_pretrained(name, dtype=torch_dtype, **kw)
        sha = _sha256_dir_weights(local)
        if sha is None:
            raise FileNotFoundError(f"`name_or_path`: no *.safetensors or *.bin weights in {local} to pin by sha256.")
        return _finish(model, tokenizer, dict(model_id=str(local.resolve()), source="local", sha256=sha, dtype=dtype), target)

    commit = _hub_revision(name, revision, local_files_only)
    rev = commit or revision
    tokenizer = AutoTokenizer.from_pretrained(name, revision=rev, **kw)
    model = AutoModelForCausalLM.from_pretrained(name, revision=rev, dtype=torch_dtype, **kw)
    if commit is None:
        commit = _hub_revision(name, rev, True)
    if commit is None:
        raise ValueError(
            f"could not resolve a commit hash for hub model {name!r} (revision {revision!r}); "
            "pass `revision=` a 40-hex commit so the record is pinned."
        )
    return _finish(model, tokenizer, dict(model_id=name, source="hub", revision=commit, dtype=dtype), target)
