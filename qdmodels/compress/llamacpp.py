"""llama.cpp's k-quants and mixed presets as conditions: the model written to GGUF, quantized by llama.cpp itself.

A scheme key ``gguf-<preset>`` (``gguf-q4_k_m``, ``gguf-q5_k_m``, ``gguf-q3_k_m``, ``gguf-q2_k``, ``gguf-q6_k``,
and the other presets of :data:`LLAMACPP_PRESETS`) applies a llama.cpp quantization preset the way a user makes a
deployed file: the model's current weights are written to an F32 GGUF (:func:`~qdmodels.compress.gguf_files.write_gguf`),
quantized with ``llama_cpp.llama_model_quantize`` (the function behind ``llama-quantize``, so the preset chooses
each tensor's type by its own rules: Q6_K for half of ``attn_v``/``ffn_down`` in Q4_K_M, fallbacks for shapes
that do not fit a 256-block...), read back with ``gguf.GGUFReader``, dequantized tensor by tensor with
``gguf.quants.dequantize`` and copied into the model with the usual exact backup (:mod:`~qdmodels.compress.restore`).
``gguf-lcpp-<preset>`` names the same path for every preset, including those gguf-py also quantizes
(``gguf-lcpp-q4_0`` is llama.cpp's Q4_0 preset, with its Q6_K output tensor; ``gguf-q4_0`` is gguf-py's
tensor-by-tensor round trip).

Selection and protection: llama.cpp quantizes the whole file with the preset's unaltered layout; only the sites
the :class:`~qdmodels.compress.scheme.ProtectionPlan` selects (default: attention and MLP projections) are copied
back, so a protected site keeps its full-precision weights bit for bit, and protecting a site never changes the
type llama.cpp gives another one (llama.cpp's per-layer counters would shift under per-tensor type overrides).

``llama-cpp-python`` is imported only when such a condition is applied; without it the key fails with how to
install it.

Examples
--------
>>> from qdmodels.compress.llamacpp import LLAMACPP_PRESETS
>>> "q4_k_m" in LLAMACPP_PRESETS
True
"""

from __future__ import annotations

import contextlib
import logging
import math
import tempfile
from typing import Any

import numpy as np
import torch

from qdmodels.compress.conditions import DEFAULT_CONDITION, EvalCondition
from qdmodels.compress.restore import BackupStorage, RestoreHandle, WeightBackup, spill_dir
from qdmodels.compress.scheme import ProtectionPlan, resolve_sites, unique_param_count
from qdmodels.models.sites import site_map
from qdmodels.runtime import unwrap_model
from qdstats.validation import DegenerateDataWarning, UnknownNameError, WarningCollector, did_you_mean

__all__ = ["LLAMACPP_ONLY", "LLAMACPP_PRESETS", "apply_llamacpp", "is_llamacpp_key", "llamacpp_condition",
           "llamacpp_quantized", "llamacpp_version", "parse_llamacpp_key", "quantize_gguf_file"]

#: llama.cpp presets (``llama-quantize`` names, lower case) that need no importance matrix.
LLAMACPP_PRESETS: tuple[str, ...] = (
    "q2_k", "q3_k_s", "q3_k_m", "q3_k_l", "q4_k_s", "q4_k_m", "q5_k_s", "q5_k_m", "q6_k",
    "iq4_nl", "iq4_xs", "iq3_s", "iq3_m",
    "q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "tq1_0", "tq2_0",
)
#: Presets reachable as ``gguf-<preset>`` (gguf-py cannot make them); the others need ``gguf-lcpp-<preset>``.
LLAMACPP_ONLY: tuple[str, ...] = tuple(p for p in LLAMACPP_PRESETS
                                       if p not in ("q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "tq1_0", "tq2_0"))
_NEEDS_IMATRIX = ("q2_k_s", "iq1_s", "iq1_m", "iq2_xxs", "iq2_xs", "iq2_s", "iq2_m", "iq3_xxs", "iq3_xs")
_INSTALL = ("llama.cpp presets need the `llama-cpp-python` package (built from its sdist, ~15 min on 2 cores): "
            "`pip install --no-deps llama-cpp-python==0.3.36` then `pip install diskcache jinja2` (never let pip "
            "change torch).")


def parse_llamacpp_key(key: Any) -> str | None:
    """The preset a key names (``'gguf-q4_k_m'`` -> ``'q4_k_m'``, ``'gguf-lcpp-q4_0'`` -> ``'q4_0'``), else None.

    Raises
    ------
    ValueError
        A ``gguf-lcpp-`` key with an unknown preset, or a preset that needs an importance matrix.
    """
    if not isinstance(key, str) or not key.lower().startswith("gguf-"):
        return None
    k = key.lower()
    explicit = k.startswith("gguf-lcpp-")
    name = k.removeprefix("gguf-lcpp-") if explicit else k.removeprefix("gguf-")
    if name in (LLAMACPP_PRESETS if explicit else LLAMACPP_ONLY):
        return name
    if name in _NEEDS_IMATRIX:
        raise ValueError(f"`quant` {key!r}: llama.cpp's {name.upper()} needs an importance matrix, which qd does not "
                         f"compute; presets without one: {['gguf-' + p for p in LLAMACPP_ONLY]}.")
    if explicit:
        raise UnknownNameError(f"`quant` {key!r} is not a llama.cpp preset; allowed: "
                               f"{['gguf-lcpp-' + p for p in LLAMACPP_PRESETS]}." + did_you_mean(name, LLAMACPP_PRESETS))
    return None


def is_llamacpp_key(key: Any) -> bool:
    """Whether ``key`` names a llama.cpp preset condition (errors for malformed ``gguf-lcpp-`` keys)."""
    return parse_llamacpp_key(key) is not None


def _llama_cpp() -> Any:
    try:
        import llama_cpp
    except ImportError as exc:
        raise ImportError(f"{_INSTALL} ({exc})") from None
    return llama_cpp


def llamacpp_version() -> str:
    """The installed ``llama-cpp-python`` version (ImportError with install instructions when absent)."""
    return str(_llama_cpp().__version__)


def quantize_gguf_file(src: str, dst: str, preset: str, *, nthread: int = 1) -> None:
    """Quantize GGUF file ``src`` into ``dst`` with llama.cpp preset ``preset`` (``llama_model_quantize``).

    Raises
    ------
    ImportError
        ``llama-cpp-python`` is not installed (the message says how to install it).
    RuntimeError
        llama.cpp returned an error code.
    """
    lc = _llama_cpp()
    params = lc.llama_model_quantize_default_params()
    params.ftype = getattr(lc, f"LLAMA_FTYPE_MOSTLY_{preset.upper()}")
    params.nthread = int(nthread)
    log = logging.getLogger("llama-cpp-python")
    old = log.level
    log.setLevel(logging.ERROR)  # llama.cpp logs every tensor at INFO level
    try:
        rc = lc.llama_model_quantize(str(src).encode(), str(dst).encode(), params)
    finally:
        log.setLevel(old)
    if rc != 0:
        raise RuntimeError(f"llama.cpp's llama_model_quantize({preset.upper()}) failed with code {rc} on {src}.")


def apply_llamacpp(model: Any, key: str, *, plan: ProtectionPlan | str | None = None, fp_bits: int = 16,
                   backup: BackupStorage | None = None, nthread: int | None = None) -> RestoreHandle[Any]:
    """Apply llama.cpp preset ``key`` to the selected weights, in place; return a restore handle.

    Parameters
    ----------
    model : torch.nn.Module or LoadedModel
    key : str
        ``'gguf-<preset>'`` (:data:`LLAMACPP_ONLY`) or ``'gguf-lcpp-<preset>'`` (:data:`LLAMACPP_PRESETS`).
    plan : ProtectionPlan or str, optional
        Which sites take the preset's weights (default: attention and MLP projections); the others, protected
        ones included, keep their weights bit for bit.
    fp_bits : int, default 16
        Storage bits assumed for the sites that are not copied back, in ``model_bits_per_weight``.
    backup : {'memory', 'disk'}, optional
        Where the originals are kept for the exact restore.
    nthread : int, optional
        llama.cpp threads (default ``torch.get_num_threads()``).

    Returns
    -------
    RestoreHandle
        ``report`` is a :class:`~qdmodels.compress.gguf.GGUFReport` with ``backend='llama.cpp'``, per site the
        GGUF type llama.cpp chose and its measured bits per weight, and the whole file's ``layout``.

    Raises
    ------
    ImportError
        ``llama-cpp-python`` is not installed.
    ValueError
        Unknown preset; a model that cannot be written to GGUF.

    Notes
    -----
    Bits per weight come from the quantized file (bytes per tensor x 8 / elements, scales included).
    Validated against: llama.cpp's Q8_0/Q4_0 tensors read back equal gguf-py's round trip of the same weights
    bit for bit; a protected site is bit-identical; restore is exact (tests/qdmodels/compress/test_gguf_llamacpp.py).
    """
    from qdmodels.compress.gguf import GGUFReport, GGUFSiteStats
    from qdmodels.compress.gguf_files import iter_gguf_weights, write_gguf

    preset = parse_llamacpp_key(key)
    if preset is None:
        raise ValueError(f"`key` {key!r} is not a llama.cpp preset key; allowed: {['gguf-' + p for p in LLAMACPP_ONLY]}.")
    _llama_cpp()
    mdl = unwrap_model(model)
    if isinstance(plan, str):
        plan = ProtectionPlan.parse(plan)
    smap = site_map(mdl)
    names = resolve_sites(smap, plan=plan, what=f"convert to {key}")
    by_param: dict[str, str] = {}
    for name, site in smap.distinct(names):
        for n in (name, *smap.tied_with(name)):
            by_param[smap.sites[n].param_path] = name
    backup_ = WeightBackup(backup)
    wc = WarningCollector()
    stats = []
    with tempfile.TemporaryDirectory(prefix="qd-llamacpp-", dir=spill_dir()) as tmp:
        f32 = f"{tmp}/model-f32.gguf"
        out = f"{tmp}/model-{preset}.gguf"
        write_gguf(model, f32, quant_type="F32")
        quantize_gguf_file(f32, out, preset, nthread=nthread or torch.get_num_threads())
        try:
            from qdmodels.compress.gguf_files import read_gguf_layout

            layout = read_gguf_layout(out, model=mdl)
            done: set[str] = set()
            with torch.no_grad():
                for hf, info, w in iter_gguf_weights(out, mdl):
                    name = by_param.get(hf)
                    if name is None or name in done:
                        continue
                    done.add(name)
                    p = smap.sites[name].param
                    new = torch.from_numpy(np.ascontiguousarray(w)).to(device=p.device, dtype=p.dtype)
                    orig = backup_.save(p)
                    p.data.copy_(new)
                    if not torch.equal(p.detach(), new):
                        raise RuntimeError(f"verification failed at site {name!r}: the {key} weights were not written.")
                    diff = new.double() - orig.double()
                    ssq = float(orig.double().square().sum())
                    stats.append(GGUFSiteStats(
                        site=name, shape=tuple(p.shape), numel=p.numel(), bits_per_weight=info.bits_per_weight,
                        frac_changed=float((diff != 0).sum()) / p.numel(),
                        relative_error=math.sqrt(float(diff.square().sum()) / ssq) if ssq > 0 else math.nan,
                        gguf_type=info.gguf_type))
            missing = sorted(set(by_param.values()) - done)
            if missing:
                raise RuntimeError(f"the {key} file has no tensor for the selected sites {missing[:5]}.")
        except BaseException:
            backup_.restore()
            raise
    if not any(s.frac_changed > 0 for s in stats):
        wc.warn(f"{key} changed no weight of the {len(stats)} selected tensors.", DegenerateDataWarning)
    report = GGUFReport.from_sites(
        key=key.lower(), plan_key=plan.key if plan is not None else "none", sites=stats,
        n_params_total=unique_param_count(smap), fp_bits=fp_bits, warnings=wc.messages, backend="llama.cpp",
        preset=preset.upper(), layout=layout, backend_version=llamacpp_version(),
    )
    return RestoreHandle(report=report, backup=backup_)


def llamacpp_quantized(model: Any, key: str, *, plan: ProtectionPlan | str | None = None,
                       backup: BackupStorage | None = None) -> RestoreHandle[Any]:
    """Context manager (the :class:`~qdmodels.compress.restore.RestoreHandle` of :func:`apply_llamacpp`): yields the
    report, restores on exit (also after an error)."""
    return apply_llamacpp(model, key, plan=plan, backup=backup)


def llamacpp_condition(key: str, *, plan: ProtectionPlan | str | None = None) -> EvalCondition:
    """An :class:`~qdmodels.compress.conditions.EvalCondition` for a llama.cpp preset (``--quant gguf-q4_k_m``).

    The condition is ``{'scheme': <key>, 'protect': <plan key>, 'prune': 'none', 'backend': 'llama.cpp'}``; ``check``
    refuses, before any scoring, a missing ``llama-cpp-python`` and a plan that does not fit the model.
    """
    preset = parse_llamacpp_key(key)
    if preset is None:
        raise ValueError(f"`key` {key!r} is not a llama.cpp preset key; allowed: {['gguf-' + p for p in LLAMACPP_ONLY]}.")
    if isinstance(plan, str):
        plan = ProtectionPlan.parse(plan)
    cond = {**DEFAULT_CONDITION, "scheme": key.lower(), "protect": plan.key if plan is not None else "none",
            "backend": "llama.cpp"}

    def _apply(model: torch.nn.Module) -> contextlib.AbstractContextManager[Any]:
        return llamacpp_quantized(model, key, plan=plan)

    def _check_model(model: torch.nn.Module) -> None:
        _llama_cpp()
        smap = site_map(model)
        resolve_sites(smap, plan=plan, what=f"convert to {key}")

    return EvalCondition(cond, _apply, _check_model)
