"""PyTorch quantization libraries as conditions: torchao, optimum-quanto, HQQ and bitsandbytes.

A scheme key whose prefix names a backend (``torchao-``, ``quanto-``, ``hqq-``, ``bnb-``) gives a condition in which
every selected weight is replaced by **the library's own quantize -> dequantize** of that weight: the library builds
its quantized tensor (its storage format, its scales and zero points), and the condition writes back the weight
that tensor stands for, so it reproduces what the deployed kernel multiplies by. The selection (protection plans),
the exact restore (:mod:`qdmodels.compress.restore`) and the report (:class:`~qdmodels.compress.gguf.GGUFReport`,
reused) follow the GGUF formats; bits per weight are *measured*: the bytes of the library's stored tensors (codes,
scales, zero points / shifts / absmax; format-wide lookup tables excluded) times 8 over the number of weights.

Keys
----
* ``torchao-int8wo`` (per row), ``torchao-int8wo-g<N>`` (per group): ``Int8WeightOnlyConfig`` -> ``Int8Tensor``,
  symmetric int8 codes, float32 scales, int8 zero points (stored, all zero); ``Int8Tensor.dequantize()``.
* ``torchao-int4wo-g<N>`` (N in 32, 64, 128): the CPU int4 weight-only path of torchao
  (``PrototypeInt4WeightOnlyConfig`` -> ``Int4OpaqueTensor``, tinygemm asymmetric qparams, codes packed for
  ``_weight_int4pack_mm_for_cpu``; its storage is what is counted). That tensor has no ``dequantize``; the condition
  writes torchao's tinygemm dequantization of the same codes, which the tests check against the kernel itself
  (``F.linear(I, W_q)``, an identity input: equal within 1e-6), i.e. the weight the kernel multiplies by.
* ``quanto-qint8``, ``quanto-qint4``: ``optimum.quanto.quantize`` + ``freeze`` on a ``Linear`` holding the weight
  (per-row qint8; qint4 affine in groups of the largest divisor of the row <= 128, as quanto chooses: 96 for a row
  of 576), then ``QTensor.dequantize()``.
* ``hqq-<b>bit-g<N>`` (b in 1, 2, 3, 4, 8): ``HQQLinear`` with ``BaseQuantizeConfig(nbits=b, group_size=N)``
  (HQQ's half-quadratic optimizer of the zero points, axis 1), then ``HQQLinear.dequantize()``.
* ``bnb-nf4``, ``bnb-fp4`` (blocks of 64, ``-g<N>`` for other block sizes, ``-dq`` for double-quantized absmax):
  ``bitsandbytes.functional.quantize_4bit`` / ``dequantize_4bit``; ``bnb-int8``: ``int8_vectorwise_quant`` /
  ``int8_vectorwise_dequant`` (the LLM.int8 row-wise weight storage; its int8 activation quantization and outlier
  decomposition act on activations and are not part of this weight-only condition).

Each library is imported lazily; a missing one raises ``ImportError`` naming the key and the pip command. The
quantizers run on the CPU in float32 (or the weight's dtype where the library requires it) and the result goes back
to the weight's device and dtype.

Examples
--------
>>> from qdmodels.models.tiny import tiny_model
>>> from qdmodels.compress.backends import backend_quantized
>>> lm = tiny_model("llama")
>>> with backend_quantized(lm, "bnb-nf4") as report:  # doctest: +SKIP
...     report.bits_per_weight, report.verified
(4.5, True)
"""

from __future__ import annotations

import contextlib
import importlib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from qdmodels.compress.conditions import DEFAULT_CONDITION, EvalCondition
from qdmodels.compress.gguf import GGUFReport, GGUFSiteStats
from qdmodels.compress.restore import BackupStorage, RestoreHandle, WeightBackup
from qdmodels.compress.scheme import ProtectionPlan, resolve_sites, unique_param_count
from qdmodels.models.sites import site_map
from qdmodels.runtime import unwrap_model
from qdstats.validation import (
    DegenerateDataWarning,
    UnknownNameError,
    WarningCollector,
    did_you_mean,
)

__all__ = ["BACKEND_EXAMPLES", "BACKEND_PREFIXES", "BackendSpec", "apply_backend", "backend_condition",
           "backend_quantized", "backend_roundtrip", "is_backend_key", "parse_backend_key", "skip_modules"]

#: Backend prefix -> (import name, pip distribution, version checked here).
_PACKAGES: dict[str, tuple[str, str, str]] = {
    "torchao": ("torchao", "torchao", "0.18.0"),
    "quanto": ("optimum.quanto", "optimum-quanto", "0.2.7"),
    "hqq": ("hqq", "hqq", "0.2.8.post1"),
    "bnb": ("bitsandbytes", "bitsandbytes", "0.50.2"),
}
BACKEND_PREFIXES: tuple[str, ...] = tuple(f"{p}-" for p in _PACKAGES)
#: Keys of every backend format, one per pattern (``-g<N>`` accepts other group sizes).
BACKEND_EXAMPLES: tuple[str, ...] = (
    "torchao-int8wo", "torchao-int8wo-g64", "torchao-int4wo-g32", "torchao-int4wo-g64", "torchao-int4wo-g128",
    "quanto-qint8", "quanto-qint4", "hqq-4bit-g64", "hqq-3bit-g64", "hqq-2bit-g16", "hqq-8bit-g64",
    "bnb-nf4", "bnb-fp4", "bnb-nf4-dq", "bnb-int8",
)
_PATTERNS: dict[str, re.Pattern[str]] = {
    "torchao": re.compile(r"^torchao-(?:(?P<i8>int8wo)(?:-g(?P<g8>\d+))?|int4wo-g(?P<g4>32|64|128))$"),
    "quanto": re.compile(r"^quanto-qint(?P<bits>8|4)$"),
    "hqq": re.compile(r"^hqq-(?P<bits>[12348])bit-g(?P<g>\d+)$"),
    "bnb": re.compile(r"^bnb-(?:(?P<q4>nf4|fp4)(?:-g(?P<g>64|128|256|512|1024|2048|4096))?(?P<dq>-dq)?|(?P<i8>int8))$"),
}


@dataclass(frozen=True)
class BackendSpec:
    """A parsed backend key: which library, which format, code bits and group size along the input dimension.

    ``group`` is None for one group per row; ``levels_checked`` says whether at most ``2**bits`` distinct values per
    group is a property of the format (True for every format here).
    """

    key: str
    backend: str
    fmt: str
    bits: int
    group: int | None
    double_quant: bool = False


def is_backend_key(key: Any) -> bool:
    """Whether ``key`` names a PyTorch backend format (a prefix in :data:`BACKEND_PREFIXES`)."""
    return isinstance(key, str) and key.strip().lower().startswith(BACKEND_PREFIXES)


def parse_backend_key(key: str) -> BackendSpec:
    """The :class:`BackendSpec` of a backend key.

    Raises
    ------
    UnknownNameError
        A key that names no backend, or a backend format outside the allowed patterns (the message lists them).
    """
    k = str(key).strip().lower()
    prefix = k.split("-", 1)[0]
    pat = _PATTERNS.get(prefix)
    m = pat.match(k) if pat is not None else None
    if m is None:
        allowed = [e for e in BACKEND_EXAMPLES if pat is None or e.startswith(prefix + "-")]
        raise UnknownNameError(f"`quant` {key!r} is not a backend format; allowed: {allowed} (-g<N>: another group "
                               "size)." + did_you_mean(k, BACKEND_EXAMPLES))
    if prefix == "torchao":
        if m["i8"]:
            g = int(m["g8"]) if m["g8"] else None
            if g is not None and g < 2:
                raise ValueError(f"`quant` {key!r}: the group size must be >= 2; got {g}.")
            return BackendSpec(k, prefix, "int8wo", 8, g)
        return BackendSpec(k, prefix, "int4wo", 4, int(m["g4"]))
    if prefix == "quanto":
        bits = int(m["bits"])
        return BackendSpec(k, prefix, f"qint{bits}", bits, None)  # quanto chooses the qint4 group per tensor
    if prefix == "hqq":
        g = int(m["g"])
        if g < 2:
            raise ValueError(f"`quant` {key!r}: the group size must be >= 2; got {g}.")
        return BackendSpec(k, prefix, "hqq", int(m["bits"]), g)
    if m["i8"]:
        return BackendSpec(k, prefix, "int8", 8, None)
    return BackendSpec(k, prefix, m["q4"], 4, int(m["g"] or 64), double_quant=bool(m["dq"]))


def _import(spec: BackendSpec) -> Any:
    mod, dist, ver = _PACKAGES[spec.backend]
    try:
        return importlib.import_module(mod)
    except ImportError as e:
        raise ImportError(f"`quant` {spec.key!r} needs the {dist} package, which is not importable here ({e}); install "
                          f"it without touching torch: pip install --no-deps {dist}=={ver}") from e


def _version(spec: BackendSpec) -> str:
    from importlib.metadata import PackageNotFoundError, version

    dist = _PACKAGES[spec.backend][1]
    try:
        return f"{dist} {version(dist)}"
    except PackageNotFoundError:
        return dist


def _bytes(tensors: list[Any]) -> int:
    """Storage bytes of tensors, looking inside tensor subclasses (``__tensor_flatten__``) to their plain data."""
    total = 0
    for t in tensors:
        if t is None:
            continue
        if type(t) is not torch.Tensor and hasattr(t, "__tensor_flatten__"):
            names, _ = t.__tensor_flatten__()
            total += _bytes([getattr(t, n) for n in names])
        else:
            total += t.numel() * t.element_size()
    return total


# ---- the four libraries: weight [out, in] (float, CPU) -> (dequantized weight, stored bytes) ------------


def _torchao(spec: BackendSpec, w: torch.Tensor) -> tuple[torch.Tensor, int]:
    _import(spec)
    from torchao.quantization import quantize_

    lin = torch.nn.Linear(w.shape[1], w.shape[0], bias=False, dtype=w.dtype)
    lin.weight.data.copy_(w)
    if spec.fmt == "int8wo":
        from torchao.quantization import Int8WeightOnlyConfig, PerGroup, PerRow

        quantize_(lin, Int8WeightOnlyConfig(granularity=PerRow() if spec.group is None else PerGroup(spec.group),
                                            set_inductor_config=False))
        qw = lin.weight
        return qw.dequantize().to(w.dtype), _bytes([qw])
    from torchao.prototype.quantization.int4 import PrototypeInt4WeightOnlyConfig

    quantize_(lin, PrototypeInt4WeightOnlyConfig(group_size=spec.group, set_inductor_config=False))
    qw = lin.weight
    if type(qw) is torch.Tensor or not hasattr(qw, "__tensor_flatten__"):
        raise RuntimeError(f"`quant` {spec.key!r}: torchao left the weight {tuple(w.shape)} unquantized.")
    # The weight the tinygemm kernel multiplies by: torchao's tinygemm qparams, codes and dequantization (the same
    # primitives Int4OpaqueTensor.from_hp packs; the test reads the kernel back with an identity input, F.linear(I,
    # W_q), and finds this weight within 1e-6 -- that read-back itself costs an in x in x out matmul per tensor).
    from torchao.quantization.quant_primitives import (
        MappingType,
        _choose_qparams_affine_tinygemm,
        _dequantize_affine_tinygemm,
        _quantize_affine_tinygemm,
    )

    bs = [1, spec.group]
    sc, zp = _choose_qparams_affine_tinygemm(w, MappingType.ASYMMETRIC, bs, torch.int32, 0, 15, 1e-6, None, w.dtype)
    codes = _quantize_affine_tinygemm(w, bs, sc, zp, torch.int32, 0, 15)
    deq = _dequantize_affine_tinygemm(codes, bs, sc, zp, torch.int32, 0, 15, output_dtype=w.dtype)
    return deq, _bytes([qw])


def _quanto(spec: BackendSpec, w: torch.Tensor) -> tuple[torch.Tensor, int]:
    oq = _import(spec)
    m = torch.nn.Sequential(torch.nn.Linear(w.shape[1], w.shape[0], bias=False, dtype=w.dtype))
    m[0].weight.data.copy_(w)
    oq.quantize(m, weights=oq.qint8 if spec.bits == 8 else oq.qint4)
    oq.freeze(m)
    qw = m[0].weight
    g = qw.__tensor_flatten__()[1].get("group_size", "None")  # quanto picks a divisor of the row <= 128
    _LAST_GROUP[0] = None if g in (None, "None") else int(g)
    return qw.dequantize().to(w.dtype), _bytes([qw])


def _hqq(spec: BackendSpec, w: torch.Tensor) -> tuple[torch.Tensor, int]:
    _import(spec)
    from hqq.core.quantize import BaseQuantizeConfig, HQQLinear

    lin = torch.nn.Linear(w.shape[1], w.shape[0], bias=False, dtype=w.dtype)
    lin.weight.data.copy_(w)
    h = HQQLinear(lin, quant_config=BaseQuantizeConfig(nbits=spec.bits, group_size=spec.group),
                  compute_dtype=w.dtype, device="cpu", del_orig=True)
    stored = [h.W_q, *(v for v in h.meta.values() if isinstance(v, torch.Tensor))]
    return h.dequantize().reshape(w.shape).to(w.dtype), _bytes(stored)


def _bnb(spec: BackendSpec, w: torch.Tensor) -> tuple[torch.Tensor, int]:
    bnb = _import(spec)
    F = bnb.functional
    if spec.fmt == "int8":
        q, row_stats, _ = F.int8_vectorwise_quant(w.float())
        return F.int8_vectorwise_dequant(q, row_stats).to(w.dtype), _bytes([q, row_stats])
    q, st = F.quantize_4bit(w.float(), blocksize=spec.group, quant_type=spec.fmt, compress_statistics=spec.double_quant)
    deq = F.dequantize_4bit(q, st).reshape(w.shape).to(w.dtype)
    stats = [st.absmax]  # per-block statistics; the 16-value code table is a format constant
    if spec.double_quant:
        stats += [st.state2.absmax, st.offset]
    return deq, _bytes([q, *stats])


_LAST_GROUP: list[int | None] = [None]  # the group quanto chose for the last tensor (read by apply_backend)

_RUN: dict[str, Callable[[BackendSpec, torch.Tensor], tuple[torch.Tensor, int]]] = {
    "torchao": _torchao, "quanto": _quanto, "hqq": _hqq, "bnb": _bnb,
}


def backend_roundtrip(weight: torch.Tensor, key: str | BackendSpec, *,
                      layout: str | None = "out_in") -> tuple[torch.Tensor, float]:
    """The library's quantize -> dequantize of one ``[out, in]`` weight, and its measured bits per weight.

    Parameters
    ----------
    weight : torch.Tensor
        2-D; ``layout='in_out'`` (GPT-2 ``Conv1D``) is transposed so that groups run along the input dimension.
    key : str or BackendSpec

    Returns
    -------
    (torch.Tensor, float)
        A new tensor in the weight's dtype and device; stored bytes x 8 / number of weights.

    Raises
    ------
    ValueError
        A weight whose input dimension is not a multiple of the format's group.
    ImportError
        The library is missing (the message has the pip command).
    """
    spec = key if isinstance(key, BackendSpec) else parse_backend_key(key)
    w2 = weight.detach()
    w2 = w2.t() if layout == "in_out" else w2
    _check_shape(spec, tuple(w2.shape), "`weight`")
    w = w2.to("cpu").contiguous()
    if w.dtype not in (torch.float32, torch.bfloat16, torch.float16):
        w = w.float()
    deq, nbytes = _RUN[spec.backend](spec, w)
    out = deq.reshape(w2.shape).to(device=weight.device, dtype=weight.dtype)
    return (out.t() if layout == "in_out" else out).contiguous(), nbytes * 8 / w.numel()


def _check_shape(spec: BackendSpec, shape: tuple[int, ...], where: str) -> None:
    if len(shape) != 2:
        raise ValueError(f"`quant` {spec.key!r}: {where} must be 2-D; got shape {shape}.")
    if spec.backend == "bnb" and spec.group is not None:  # bitsandbytes blocks run over the flattened tensor
        if (shape[0] * shape[1]) % spec.group:
            raise ValueError(f"`quant` {spec.key!r}: {where} {shape} has {shape[0] * shape[1]} weights, not a multiple "
                             f"of the format's block of {spec.group}; protect it (ProtectionPlan) or use another block.")
        return
    if spec.group is not None and shape[1] % spec.group:
        raise ValueError(f"`quant` {spec.key!r}: {where} {shape} has input dimension {shape[1]}, not a multiple of the "
                         f"format's group of {spec.group}; protect it (ProtectionPlan) or use another group size.")


def _check(smap: Any, names: list[str], spec: BackendSpec) -> None:
    for name in names:
        s = smap.sites[name]
        shape = tuple(s.param.shape)
        _check_shape(spec, shape[::-1] if s.weight_layout == "in_out" else shape, f"site {name!r}")


def _max_levels(w: torch.Tensor, group: int | None) -> int:
    """Most distinct values in any group of consecutive weights along the rows of an ``[out, in]`` tensor."""
    g = w.shape[1] if group is None else group
    x = w.reshape(-1, g).sort(dim=1).values  # row-major: groups of rows, or bitsandbytes blocks of the flat tensor
    return int(((x[:, 1:] != x[:, :-1]).sum(dim=1) + 1).max())


def skip_modules(model: Any, *, plan: ProtectionPlan | str | None = None) -> list[str]:
    """The plan compiled to a skip list: names of the model's ``Linear``-like modules the plan keeps unquantized.

    This is what the libraries' own model-level APIs take (``llm_int8_skip_modules`` of bitsandbytes, quanto's
    ``exclude``, HQQ's and torchao's filters), so a deployed model can be built with the same protection.
    """
    mdl = unwrap_model(model)
    if isinstance(plan, str):
        plan = ProtectionPlan.parse(plan)
    smap = site_map(mdl)
    chosen = {id(smap.sites[n].param) for n in resolve_sites(smap, plan=plan)}
    out = []
    for name, mod in mdl.named_modules():
        w = getattr(mod, "weight", None)
        if (isinstance(w, torch.nn.Parameter) and w.ndim == 2 and not isinstance(mod, torch.nn.Embedding)
                and id(w) not in chosen):
            out.append(name)
    return out


def apply_backend(model: Any, key: str, *, plan: ProtectionPlan | str | None = None, fp_bits: int = 16,
                  backup: BackupStorage | None = None) -> RestoreHandle[GGUFReport]:
    """Replace the selected weights by the library's quantize -> dequantize, in place; return a handle.

    Parameters
    ----------
    model : torch.nn.Module or LoadedModel
    key : str
        A backend key (module docstring), e.g. ``'torchao-int8wo'``, ``'bnb-nf4'``, ``'hqq-4bit-g64'``.
    plan : ProtectionPlan or str, optional
        What stays in full precision; default as round-to-nearest (attention and MLP projections are quantized).
    fp_bits : int, default 16
        Storage bits assumed for the unquantized tensors in ``model_bits_per_weight``.
    backup : {'memory', 'disk'}, optional
        Where the originals are kept for the bit-exact restore.

    Returns
    -------
    RestoreHandle
        ``report`` (:class:`~qdmodels.compress.gguf.GGUFReport` with ``backend`` and ``backend_version``; per-site
        measured bits per weight, fraction of weights changed and relative error) and ``restore()``.

    Raises
    ------
    UnknownNameError, ValueError
        An unknown key; a selected weight whose input dimension is not a multiple of the group.
    ImportError
        The library is missing (the message names the key and the pip command).
    RuntimeError
        Verification failed (the write did not land, or a group holds more than ``2**bits`` distinct values); the
        weights are restored first.

    Notes
    -----
    ``verified`` is True when every write landed, every group holds at most ``2**bits`` distinct values and at least
    one weight changed. Validated against: each library's own quantize -> dequantize applied tensor by tensor, the
    closed-form storage cost, and a bit-exact restore (``tests/qdmodels/compress/test_backends.py``).
    """
    spec = parse_backend_key(key)
    mdl = unwrap_model(model)
    if isinstance(plan, str):
        plan = ProtectionPlan.parse(plan)
    smap = site_map(mdl)
    names = resolve_sites(smap, plan=plan, what=f"convert to {spec.key}")
    _check(smap, names, spec)
    _import(spec)
    backup_ = WeightBackup(backup)
    wc = WarningCollector()
    stats = []
    try:
        with torch.no_grad():
            for name, site in smap.distinct(names):
                p = site.param
                new, bpw = backend_roundtrip(p.data, spec, layout=site.weight_layout)
                orig = backup_.save(p)
                p.data.copy_(new)
                if not torch.equal(p.detach(), new):
                    raise RuntimeError(f"verification failed at site {name!r}: the {spec.key} weights were not written.")
                w2 = new.t() if site.weight_layout == "in_out" else new
                lv = _max_levels(w2.float(), _LAST_GROUP[0] if spec.backend == "quanto" else spec.group)
                if lv > 2**spec.bits:
                    raise RuntimeError(f"verification failed at site {name!r}: a group holds {lv} distinct values > "
                                       f"2**{spec.bits}.")
                diff = new.double() - orig.double()
                ssq = float(orig.double().square().sum())
                rel = math.sqrt(float(diff.square().sum()) / ssq) if ssq > 0 else math.nan
                stats.append(GGUFSiteStats(site=name, shape=tuple(p.shape), numel=p.numel(), bits_per_weight=bpw,
                                           frac_changed=float((diff != 0).sum()) / p.numel(), relative_error=rel,
                                           gguf_type=None))
    except BaseException:
        backup_.restore()
        raise
    changed = any(s.frac_changed > 0 for s in stats)
    if not changed:
        wc.warn(f"{spec.key} changed no weight of the {len(stats)} selected tensors.", DegenerateDataWarning)
    report = GGUFReport.from_sites(
        key=spec.key, plan_key=plan.key if plan is not None else "none", sites=stats,
        n_params_total=unique_param_count(smap), fp_bits=fp_bits, warnings=wc.messages, backend=spec.backend,
        backend_version=_version(spec),
    )
    return RestoreHandle(report=report, backup=backup_)


def backend_quantized(model: Any, key: str, *, plan: ProtectionPlan | str | None = None,
                      backup: BackupStorage | None = None) -> RestoreHandle[GGUFReport]:
    """Context manager (the :class:`~qdmodels.compress.restore.RestoreHandle` of :func:`apply_backend`): yields the
    report, restores on exit (also after an error)."""
    return apply_backend(model, key, plan=plan, backup=backup)


def backend_condition(key: str, *, plan: ProtectionPlan | str | None = None) -> EvalCondition:
    """An :class:`~qdmodels.compress.conditions.EvalCondition` for a backend key (what ``--quant bnb-nf4`` builds).

    The condition is ``{'scheme': <key>, 'protect': <plan key or 'none'>, 'prune': 'none', 'backend': <library>}``;
    ``check`` refuses, before any scoring, a missing library or a weight shape the format cannot take.
    """
    spec = parse_backend_key(key)
    if isinstance(plan, str):
        plan = ProtectionPlan.parse(plan)
    cond = {**DEFAULT_CONDITION, "scheme": spec.key, "protect": plan.key if plan is not None else "none",
            "backend": spec.backend}

    def _apply(model: torch.nn.Module) -> contextlib.AbstractContextManager[Any]:
        return backend_quantized(model, spec.key, plan=plan)

    def _check_model(model: torch.nn.Module) -> None:
        smap = site_map(unwrap_model(model))
        _check(smap, resolve_sites(smap, plan=plan, what=f"convert to {spec.key}"), spec)
        _import(spec)

    return EvalCondition(cond, _apply, _check_model)
